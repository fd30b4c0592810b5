//! Times as both sides write them: UTC seconds since the Unix epoch, RFC 3339 in documents.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// UTC seconds since the Unix epoch.
pub type Timestamp = i64;

/// The system clock, UTC seconds.
pub fn now() -> Timestamp {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// RFC 3339 (UTC, seconds) for a timestamp.
pub fn rfc3339(t: Timestamp) -> String {
    let st = UNIX_EPOCH + Duration::from_secs(t.max(0) as u64);
    humantime::format_rfc3339_seconds(st).to_string()
}

/// Parses RFC 3339 into a timestamp.
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    humantime::parse_rfc3339_weak(s).ok()?.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_and_round_trip() {
        assert_eq!(rfc3339(1_679_283_497), "2023-03-20T03:38:17Z");
        assert_eq!(parse_rfc3339("2023-03-20T03:38:17Z"), Some(1_679_283_497));
    }
}
