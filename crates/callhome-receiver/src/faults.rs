//! Faults the reference receiver can be told to inject, for tests and demos of failure handling.
//!
//! A spec is comma-separated: the kind first, then options. Kinds: `status=CODE` (answer that
//! status; `retry-after=SECS` adds the header), `drop` (close the connection without answering),
//! `delay=DURATION` (store the bundle, then wait before answering), `garbage` (answer 200 with a
//! body that is no receipt), `bad-signature` (a receipt whose signature does not verify). Option
//! `times=N` limits how many uploads the fault hits (default: every one). Faults queue in order.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    Status { code: u16, retry_after: Option<u64> },
    Drop,
    Delay(Duration),
    Garbage,
    BadSignature,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    /// Uploads left to hit; None: all of them.
    pub times: Option<u32>,
}

impl std::str::FromStr for Fault {
    type Err = String;
    fn from_str(spec: &str) -> Result<Fault, String> {
        let mut parts = spec.split(',').map(str::trim);
        let head = parts.next().unwrap_or("");
        let (name, value) = head.split_once('=').unwrap_or((head, ""));
        let mut retry_after = None;
        let mut times = None;
        for opt in parts {
            match opt.split_once('=') {
                Some(("retry-after", v)) => {
                    retry_after = Some(v.parse().map_err(|_| format!("retry-after={v}: expected seconds"))?)
                }
                Some(("times", v)) => times = Some(v.parse().map_err(|_| format!("times={v}: expected a count"))?),
                _ => {
                    return Err(format!(
                        "unknown fault option {opt:?} in {spec:?}; options are retry-after=SECS, times=N"
                    ));
                }
            }
        }
        let kind = match name {
            "status" => {
                let code: u16 =
                    value.parse().map_err(|_| format!("status={value}: expected an HTTP status such as 503"))?;
                if !(100..=599).contains(&code) {
                    return Err(format!("status={code}: not an HTTP status"));
                }
                FaultKind::Status { code, retry_after }
            }
            "drop" => FaultKind::Drop,
            "delay" => FaultKind::Delay(humantime::parse_duration(value).map_err(|e| format!("delay={value}: {e}"))?),
            "garbage" => FaultKind::Garbage,
            "bad-signature" => FaultKind::BadSignature,
            _ => {
                return Err(format!(
                    "unknown fault {name:?}; faults are status=CODE, drop, delay=DURATION, garbage, bad-signature"
                ));
            }
        };
        Ok(Fault { kind, times })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(
            "status=503,retry-after=2,times=1".parse::<Fault>().unwrap(),
            Fault { kind: FaultKind::Status { code: 503, retry_after: Some(2) }, times: Some(1) }
        );
        assert_eq!("delay=30s".parse::<Fault>().unwrap().kind, FaultKind::Delay(Duration::from_secs(30)));
        assert!("explode".parse::<Fault>().unwrap_err().contains("unknown fault"));
        assert!("drop,often".parse::<Fault>().is_err());
    }
}
