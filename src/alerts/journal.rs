//! The system journal channel. On Linux with journald, an alert is one entry written in the
//! native protocol to journald's socket, with `PRIORITY`, a stable `MESSAGE_ID` per alert kind,
//! `SYSLOG_IDENTIFIER=callhome` and the alert's key and audience as `CALLHOME_*` fields; where no
//! journal runs, one RFC 3164 line to the syslog socket (`/dev/log`). Which one is chosen at each
//! delivery: the journal when its socket exists.
//!
//! On Windows (compiled there only) the channel writes to the Windows Event Log instead: one
//! event under the source `callhome` in the Application log, its type from the alert's state
//! (error, warning, information), its event id from the alert kind (the low 16 bits of the
//! `MESSAGE_ID`), and the same fields as the journal's, one per line, as its text. Elsewhere
//! without Unix sockets the channel reports that it cannot deliver.

use sha2::{Digest, Sha256};

use super::channels::{Alert, Channel, ChannelError, Sending};
use crate::config::JournalConfig;

pub struct Journal {
    cfg: JournalConfig,
}

impl Journal {
    pub fn new(cfg: JournalConfig) -> Journal {
        Journal { cfg }
    }
}

/// The syslog priority of an alert state: critical, warning, or notice.
pub fn priority(state: &str) -> u8 {
    match state {
        "CRITICAL" => 2,
        "WARNING" => 4,
        _ => 5,
    }
}

/// A stable 128-bit id (32 hex digits) for an alert kind, as journald's `MESSAGE_ID` wants:
/// the first half of SHA-256("callhome alert " + kind), so it never changes between releases.
pub fn message_id(kind: &str) -> String {
    let digest = Sha256::digest(format!("callhome alert {kind}").as_bytes());
    hex::encode(&digest[..16])
}

/// The native journal protocol: each field as `NAME\n`, its length (u64, little-endian), the
/// value and `\n` — the form that allows newlines in values.
pub fn journal_entry(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    out
}

/// One syslog line (facility daemon), newlines folded into spaces.
pub fn syslog_line(alert: &Alert) -> String {
    let n = &alert.news;
    let pri = 3 * 8 + priority(n.state()) as u32;
    let text = format!("{}: {} [key={} audience={}]", alert.title(), n.body, n.key, n.audience().name());
    format!("<{pri}>callhome[{}]: {}", std::process::id(), text.replace(['\n', '\r'], " "))
}

fn fields(alert: &Alert) -> Vec<(&'static str, String)> {
    let n = &alert.news;
    vec![
        ("MESSAGE", format!("{}: {}", alert.title(), n.body)),
        ("PRIORITY", priority(n.state()).to_string()),
        ("MESSAGE_ID", message_id(&n.kind())),
        ("SYSLOG_IDENTIFIER", "callhome".into()),
        ("CALLHOME_ALERT_KEY", n.key.clone()),
        ("CALLHOME_ALERT_KIND", n.kind()),
        ("CALLHOME_ALERT_STATE", n.state().into()),
        ("CALLHOME_AUDIENCE", n.audience().name().into()),
        ("CALLHOME_INSTALL_ID", alert.install_id.clone()),
    ]
}

impl Channel for Journal {
    fn name(&self) -> &'static str {
        "journal"
    }

    fn target(&self) -> String {
        self.cfg.target()
    }

    fn send<'a>(&'a self, alert: &'a Alert) -> Sending<'a> {
        Box::pin(async move {
            #[cfg(unix)]
            {
                let (path, payload) = if self.cfg.has_journal() {
                    let f = fields(alert);
                    let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    (&self.cfg.journal_socket, journal_entry(&pairs))
                } else if self.cfg.syslog_socket.exists() {
                    (&self.cfg.syslog_socket, syslog_line(alert).into_bytes())
                } else {
                    return Err(ChannelError::NoJournal {
                        journal: self.cfg.journal_socket.display().to_string(),
                        syslog: self.cfg.syslog_socket.display().to_string(),
                    });
                };
                let err = |e: std::io::Error| ChannelError::Socket {
                    path: path.display().to_string(),
                    detail: e.to_string(),
                };
                let sock = tokio::net::UnixDatagram::unbound().map_err(err)?;
                sock.send_to(&payload, path).await.map_err(err)?;
                Ok(())
            }
            #[cfg(windows)]
            {
                let _ = syslog_line;
                event_log::report(alert)
            }
            #[cfg(not(any(unix, windows)))]
            {
                let _ = (alert, fields, syslog_line);
                Err(ChannelError::NoJournal {
                    journal: "no system journal on this platform".into(),
                    syslog: self.cfg.syslog_socket.display().to_string(),
                })
            }
        })
    }
}

/// The event id of an alert kind: the low 16 bits of its `MESSAGE_ID`, as the Event Log keeps
/// only those for a source without a message file.
pub fn event_id(kind: &str) -> u32 {
    let id = message_id(kind);
    u32::from_str_radix(&id[id.len() - 4..], 16).expect("message ids are hex")
}

#[cfg(windows)]
mod event_log {
    use windows_sys::Win32::System::EventLog::{
        DeregisterEventSource, EVENTLOG_ERROR_TYPE, EVENTLOG_INFORMATION_TYPE, EVENTLOG_WARNING_TYPE,
        RegisterEventSourceW, ReportEventW,
    };

    use super::{Alert, ChannelError, event_id, fields};

    const SOURCE: &str = "callhome";

    fn wide(s: &str) -> Vec<u16> {
        s.encode_utf16().chain(std::iter::once(0)).collect()
    }

    fn failed(what: &str) -> ChannelError {
        ChannelError::Socket {
            path: format!("the Windows Event Log (source {SOURCE})"),
            detail: format!("{what}: {}", std::io::Error::last_os_error()),
        }
    }

    /// One event in the Application log, written through the Win32 event-logging calls.
    pub fn report(alert: &Alert) -> Result<(), ChannelError> {
        let n = &alert.news;
        let kind = match n.state() {
            "CRITICAL" => EVENTLOG_ERROR_TYPE,
            "WARNING" => EVENTLOG_WARNING_TYPE,
            _ => EVENTLOG_INFORMATION_TYPE,
        };
        let text: Vec<String> = fields(alert).into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        let text = wide(&text.join("\r\n"));
        let source = wide(SOURCE);
        // SAFETY: `source` is a NUL-terminated UTF-16 string that outlives the call.
        let log = unsafe { RegisterEventSourceW(std::ptr::null(), source.as_ptr()) };
        if log.is_null() {
            return Err(failed("cannot open the event source"));
        }
        let strings = [text.as_ptr()];
        // SAFETY: `log` is the open handle from above; `strings` holds one NUL-terminated UTF-16
        // string that outlives the call; no SID and no raw data are passed.
        let ok = unsafe {
            ReportEventW(
                log,
                kind,
                0,
                event_id(&n.kind()),
                std::ptr::null_mut(),
                1,
                0,
                strings.as_ptr(),
                std::ptr::null(),
            )
        };
        let result = if ok == 0 { Err(failed("cannot write the event")) } else { Ok(()) };
        // SAFETY: `log` came from RegisterEventSourceW and is closed once.
        unsafe { DeregisterEventSource(log) };
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::News;

    #[test]
    fn message_ids_are_stable_per_kind() {
        assert_eq!(message_id("upload-failed"), message_id("upload-failed"));
        assert_ne!(message_id("upload-failed"), message_id("uploads-work"));
        assert_eq!(message_id("upload-failed").len(), 32);
    }

    #[test]
    fn event_ids_are_the_message_ids_low_16_bits() {
        let id = message_id("upload-failed");
        assert_eq!(event_id("upload-failed"), u32::from_str_radix(&id[28..], 16).unwrap());
        assert!(event_id("upload-failed") <= 0xFFFF);
        assert_ne!(event_id("upload-failed"), event_id("uploads-work"));
    }

    #[test]
    fn entries_carry_newlines_safely_and_syslog_lines_do_not() {
        let e = journal_entry(&[("MESSAGE", "a\nb")]);
        assert_eq!(e, b"MESSAGE\n\x03\0\0\0\0\0\0\0a\nb\n");
        let news = News {
            key: "uploads-work".into(),
            summary: "Uploads work again".into(),
            body: "x\ny".into(),
            urgent: false,
            once: false,
        };
        let line = syslog_line(&Alert { news, at: 0, install_id: "i".into(), host: "h".into() });
        assert!(line.starts_with("<29>callhome[") && line.contains("[callhome OK] Uploads work again: x y"), "{line}");
    }
}
