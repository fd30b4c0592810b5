//! The keys of the settings table and of the log-cursor table, typed: each kind of setting is a
//! [`Key`] variant and each kind of log a [`LogKey`] variant, and their `as_str` is the one place
//! that spells the stored text.
//!
//! Invariant: `as_str` gives exactly the text earlier agents stored, so a database written by any
//! of them keeps its settings and cursors. A new key is a new variant; a spelling never changes.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

use crate::programs::Program;
use crate::secrets::Secret;

/// A key in the settings table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// `program.<program>`: the administrator's choice for an optional program (`on`/`off`).
    Choice(Program),
    /// `program.telemetry_mode`: `automatic` or `manual`.
    TelemetryMode,
    /// `proxy.url`: the proxy `callhome proxy set` chose.
    ProxyUrl,
    /// `proxy.user`: its user name.
    ProxyUser,
    /// The secret's keyring name (`proxy-password`, `endpoint-token`, `smtp-password`,
    /// `webhook-secret`): holds `keyring` while the
    /// keyring has the secret, so the keyring is only asked then.
    SecretInKeyring(Secret),
    /// `version.latest`: the newest agent release the receiver announced.
    VersionLatest,
    /// `version.released`: when that release came out.
    VersionReleased,
    /// `usage.window.<program>`: where the program's next usage window starts (UTC seconds).
    Window(Program),
    /// `upload.last_cycle.<program>`: when the program's last upload cycle ran (UTC seconds).
    Cadence(Program),
    /// `errors.sent.<program>.<part>`: the last error row the program's bundles carry.
    ErrorsSent(Program, ErrorsPart),
    /// `notify.failing`: the failure code the notifications last reported.
    NotifyFailing,
    /// `notified.<news key>`: when that news was last shown (UTC seconds).
    NotifyShown(String),
    /// `notify.enabled`: desktop notifications on or off as set over the API (`on`/`off`); beats
    /// `notifications.enabled` of the configuration.
    NotifyEnabled,
    /// `notify.quiet_period`: the quiet period set over the API (seconds); beats
    /// `notifications.quiet_period`.
    NotifyQuiet,
    /// `grace.start.<feature>`: when the feature's supplemental grace period started (UTC seconds).
    GraceStart(String),
    /// `product.latest`: the newest product release the receiver announced.
    ProductLatest,
    /// `product.released`: when that product release came out.
    ProductReleased,
    /// `compliance.exemption`: the signed exemption (JSON) the receiver granted this install.
    Exemption,
    /// `ceip.id`: CEIP's own random identifier and when it was made (`<id> <UTC seconds>`),
    /// rotated on a schedule; never derived from the install id.
    CeipId,
}

/// Which of the errors collector's tables an [`Key::ErrorsSent`] mark is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorsPart {
    /// `error_counts`.
    Counts,
    /// `error_samples`.
    Samples,
}

impl ErrorsPart {
    pub fn name(self) -> &'static str {
        match self {
            ErrorsPart::Counts => "counts",
            ErrorsPart::Samples => "samples",
        }
    }
}

impl Key {
    /// The key as stored in the settings table.
    pub fn as_str(&self) -> Cow<'_, str> {
        match self {
            Key::Choice(p) => format!("program.{}", p.name()).into(),
            Key::TelemetryMode => "program.telemetry_mode".into(),
            Key::ProxyUrl => "proxy.url".into(),
            Key::ProxyUser => "proxy.user".into(),
            Key::SecretInKeyring(s) => s.key().into(),
            Key::VersionLatest => "version.latest".into(),
            Key::VersionReleased => "version.released".into(),
            Key::Window(p) => format!("usage.window.{}", p.name()).into(),
            Key::Cadence(p) => format!("upload.last_cycle.{}", p.name()).into(),
            Key::ErrorsSent(p, part) => format!("errors.sent.{}.{}", p.name(), part.name()).into(),
            Key::NotifyFailing => "notify.failing".into(),
            Key::NotifyShown(news) => format!("notified.{news}").into(),
            Key::NotifyEnabled => "notify.enabled".into(),
            Key::NotifyQuiet => "notify.quiet_period".into(),
            Key::GraceStart(feature) => format!("grace.start.{feature}").into(),
            Key::ProductLatest => "product.latest".into(),
            Key::ProductReleased => "product.released".into(),
            Key::Exemption => "compliance.exemption".into(),
            Key::CeipId => "ceip.id".into(),
        }
    }

    /// The key whose stored text is `s` exactly, if callhome knows it.
    pub fn parse(s: &str) -> Option<Key> {
        let program = |name: &str| name.parse::<Program>().ok();
        let key = match s {
            "program.telemetry_mode" => Key::TelemetryMode,
            "proxy.url" => Key::ProxyUrl,
            "proxy.user" => Key::ProxyUser,
            "version.latest" => Key::VersionLatest,
            "version.released" => Key::VersionReleased,
            "notify.failing" => Key::NotifyFailing,
            "notify.enabled" => Key::NotifyEnabled,
            "notify.quiet_period" => Key::NotifyQuiet,
            "product.latest" => Key::ProductLatest,
            "product.released" => Key::ProductReleased,
            "compliance.exemption" => Key::Exemption,
            "ceip.id" => Key::CeipId,
            _ if Secret::ALL.iter().any(|x| x.key() == s) => {
                Key::SecretInKeyring(Secret::ALL.into_iter().find(|x| x.key() == s).expect("found above"))
            }
            _ => {
                let (family, rest) = s.split_once('.')?;
                match family {
                    "program" => Key::Choice(program(rest)?),
                    "usage" => Key::Window(program(rest.strip_prefix("window.")?)?),
                    "upload" => Key::Cadence(program(rest.strip_prefix("last_cycle.")?)?),
                    "errors" => {
                        let (p, part) = rest.strip_prefix("sent.")?.split_once('.')?;
                        let part = [ErrorsPart::Counts, ErrorsPart::Samples].into_iter().find(|x| x.name() == part)?;
                        Key::ErrorsSent(program(p)?, part)
                    }
                    "notified" => Key::NotifyShown(rest.to_string()),
                    "grace" => Key::GraceStart(rest.strip_prefix("start.")?.to_string()),
                    _ => return None,
                }
            }
        };
        // Program names have aliases ("callhome"); only the spelling `as_str` writes is the key.
        (key.as_str() == s).then_some(key)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

/// A log's key in the cursor table (`log_cursors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKey<'a> {
    /// A vendor-daemon debug log (`licenses.debug_logs`): its path.
    DebugLog(&'a Path),
    /// A product log the errors collector reads (`collect.error_logs`): `errors:<path>`.
    ErrorLog(&'a Path),
}

impl LogKey<'_> {
    /// The key as stored in the cursor table.
    pub fn as_str(&self) -> Cow<'_, str> {
        match self {
            LogKey::DebugLog(path) => path.display().to_string().into(),
            LogKey::ErrorLog(path) => format!("errors:{}", path.display()).into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key and the text earlier agents stored under it.
    fn known() -> Vec<(Key, &'static str)> {
        vec![
            (Key::Choice(Program::CallHome), "program.call_home"),
            (Key::Choice(Program::Ceip), "program.ceip"),
            (Key::Choice(Program::Events), "program.events"),
            (Key::TelemetryMode, "program.telemetry_mode"),
            (Key::ProxyUrl, "proxy.url"),
            (Key::ProxyUser, "proxy.user"),
            (Key::SecretInKeyring(Secret::ProxyPassword), "proxy-password"),
            (Key::SecretInKeyring(Secret::EndpointToken), "endpoint-token"),
            (Key::SecretInKeyring(Secret::SmtpPassword), "smtp-password"),
            (Key::SecretInKeyring(Secret::WebhookSecret), "webhook-secret"),
            (Key::VersionLatest, "version.latest"),
            (Key::VersionReleased, "version.released"),
            (Key::Window(Program::Telemetry), "usage.window.telemetry"),
            (Key::Window(Program::Ceip), "usage.window.ceip"),
            (Key::Cadence(Program::CallHome), "upload.last_cycle.call_home"),
            (Key::ErrorsSent(Program::CallHome, ErrorsPart::Counts), "errors.sent.call_home.counts"),
            (Key::ErrorsSent(Program::Ceip, ErrorsPart::Samples), "errors.sent.ceip.samples"),
            (Key::NotifyFailing, "notify.failing"),
            (Key::CeipId, "ceip.id"),
            (Key::NotifyShown("compliance:30:1700000000".into()), "notified.compliance:30:1700000000"),
            (Key::NotifyShown(String::new()), "notified."),
            (Key::NotifyEnabled, "notify.enabled"),
            (Key::NotifyQuiet, "notify.quiet_period"),
            (Key::GraceStart("planner".into()), "grace.start.planner"),
            (Key::ProductLatest, "product.latest"),
            (Key::ProductReleased, "product.released"),
            (Key::Exemption, "compliance.exemption"),
        ]
    }

    #[test]
    fn keys_are_spelled_as_earlier_agents_stored_them() {
        for (key, text) in known() {
            assert_eq!(key.as_str(), text);
            assert_eq!(Key::parse(text), Some(key), "{text}");
        }
    }

    #[test]
    fn log_keys_are_spelled_as_earlier_agents_stored_them() {
        let path = Path::new("/var/log/vendor/lmgrd.log");
        assert_eq!(LogKey::DebugLog(path).as_str(), "/var/log/vendor/lmgrd.log");
        assert_eq!(LogKey::ErrorLog(path).as_str(), "errors:/var/log/vendor/lmgrd.log");
    }

    #[test]
    fn unknown_and_alias_spellings_are_no_key() {
        for text in ["program.callhome", "usage.window.usage", "errors.sent.ceip.lines", "proxy.pass", "nothing"] {
            assert_eq!(Key::parse(text), None, "{text}");
        }
    }
}
