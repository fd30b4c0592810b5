//! The alert channels' and contacts' configuration: `[alerts.email]`, `[alerts.webhook]`,
//! `[alerts.journal]` and `[contacts]`, their reading from TOML and their checks (a plain SMTP
//! connection only to a loopback host, webhook URLs https or loopback http and never with
//! credentials, e-mail addresses that parse, an e-mail channel only with someone to write to).
//!
//! Every channel is off unless its table is present. Secrets (the SMTP password, the webhook's
//! signing secret) are never read from here: `crate::secrets` finds them.

use std::path::PathBuf;

use toml_edit::Item;

use super::Config;
use super::parser::{Loc, Parser};

/// `[alerts]`: where alerts go besides the desktop (or the log of the headless agent).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertsConfig {
    pub email: Option<EmailConfig>,
    pub webhook: Option<WebhookConfig>,
    pub journal: JournalConfig,
}

impl AlertsConfig {
    /// Whether any channel is configured.
    pub fn any(&self) -> bool {
        self.email.is_some() || self.webhook.is_some() || self.journal.enabled
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (required, never optional).
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No TLS at all: allowed only to a loopback host.
    None,
}

impl Security {
    pub fn name(self) -> &'static str {
        match self {
            Security::Starttls => "starttls",
            Security::Tls => "tls",
            Security::None => "none",
        }
    }

    /// The usual port for this kind of connection.
    pub fn default_port(self) -> u16 {
        match self {
            Security::Starttls => 587,
            Security::Tls => 465,
            Security::None => 25,
        }
    }
}

/// `[alerts.email]`.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailConfig {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// The sender address (`From:`).
    pub from: String,
    /// The SMTP login; its password comes from `crate::secrets` (`Secret::SmtpPassword`).
    pub user: Option<String>,
    /// Extra CA certificate (PEM) trusted besides the system's, for a private mail relay.
    pub ca_file: Option<PathBuf>,
}

impl EmailConfig {
    /// Where mail goes, for status: `smtp.example.com:587 (starttls)`.
    pub fn target(&self) -> String {
        format!("{}:{} ({})", self.host, self.port, self.security.name())
    }
}

/// The body shape a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// callhome's own JSON document.
    Json,
    /// A Slack incoming webhook (`text`).
    Slack,
    /// A Microsoft Teams incoming webhook (a MessageCard).
    Teams,
}

impl WebhookFormat {
    pub fn name(self) -> &'static str {
        match self {
            WebhookFormat::Json => "json",
            WebhookFormat::Slack => "slack",
            WebhookFormat::Teams => "teams",
        }
    }
}

/// `[alerts.webhook]`.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    pub url: String,
    pub format: WebhookFormat,
}

impl WebhookConfig {
    /// Where alerts are posted, for status: the host and the format (never the path, which may
    /// hold a token).
    pub fn target(&self) -> String {
        let host = reqwest::Url::parse(&self.url).ok().and_then(|u| u.host_str().map(str::to_string));
        format!("{} ({})", host.unwrap_or_default(), self.format.name())
    }
}

/// `[alerts.journal]`: the system journal (syslog where no journal runs).
#[derive(Debug, Clone, PartialEq)]
pub struct JournalConfig {
    pub enabled: bool,
    /// journald's native socket.
    pub journal_socket: PathBuf,
    /// The syslog socket used when `journal_socket` is absent.
    pub syslog_socket: PathBuf,
}

impl Default for JournalConfig {
    /// Off, at the standard sockets.
    fn default() -> Self {
        JournalConfig {
            enabled: false,
            journal_socket: PathBuf::from("/run/systemd/journal/socket"),
            syslog_socket: PathBuf::from("/dev/log"),
        }
    }
}

impl JournalConfig {
    /// Whether journald's socket is there (else syslog is used).
    pub fn has_journal(&self) -> bool {
        self.journal_socket.exists()
    }

    /// Which one alerts go to now, for status: `journald (/run/…)` or `syslog (/dev/log)`.
    pub fn target(&self) -> String {
        if self.has_journal() {
            format!("journald ({})", self.journal_socket.display())
        } else {
            format!("syslog ({})", self.syslog_socket.display())
        }
    }
}

/// `[contacts]`: who receives which alerts by e-mail.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactsConfig {
    /// Works the cases and runs the tools: upload failures, the compliance clock, the proxy.
    pub technical: Option<String>,
    /// Receives renewal and expiry notices: license expiry, renewal, over-use.
    pub renewal: Option<String>,
}

/// Whether `host` names this machine's loopback interface.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// An e-mail address as `From:` and `To:` take it.
pub fn check_address(s: &str) -> Result<(), String> {
    s.parse::<lettre::Address>().map(drop).map_err(|e| format!("{s:?} is not an e-mail address ({e})"))
}

/// `alerts.webhook.url`: https, or http to a loopback host; no credentials.
pub(super) fn check_webhook_url(s: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(s).map_err(|e| format!("{s:?} is not a URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if url.host_str().is_some_and(is_loopback_host) => {}
        other => return Err(format!("must be an https:// URL (http:// only to a loopback host), found {other}://")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; the signing secret goes into CALLHOME_WEBHOOK_SECRET, the \
                    credential webhook-secret or the keyring"
            .into());
    }
    Ok(())
}

impl Parser<'_> {
    /// One key of `[alerts]`: the `email`, `webhook` or `journal` table.
    pub(super) fn alerts(&mut self, k: &str, v: &Item, loc: &Loc, cfg: &mut Config) -> bool {
        let Some(t) = v.as_table_like() else {
            if matches!(k, "email" | "webhook" | "journal") {
                self.push(&loc.key, loc.span.clone(), format!("expected a table: [alerts.{k}]"));
                return true;
            }
            return false;
        };
        let fields: Vec<(String, Loc, Item)> = t
            .iter()
            .map(|(key, item)| {
                let l = Loc { key: format!("{}.{key}", loc.key), span: item.span().or(loc.span.clone()) };
                (key.to_string(), l, item.clone())
            })
            .collect();
        match k {
            "email" => cfg.alerts.email = self.email(&fields, loc),
            "webhook" => cfg.alerts.webhook = self.webhook(&fields, loc),
            "journal" => {
                for (key, l, item) in &fields {
                    let j = &mut cfg.alerts.journal;
                    match key.as_str() {
                        "enabled" => j.enabled = self.bool(item, l).unwrap_or(j.enabled),
                        "journal_socket" => {
                            j.journal_socket = self.string(item, l).map_or(j.journal_socket.clone(), PathBuf::from)
                        }
                        "syslog_socket" => {
                            j.syslog_socket = self.string(item, l).map_or(j.syslog_socket.clone(), PathBuf::from)
                        }
                        _ => self.unknown(l, "enabled, journal_socket, syslog_socket"),
                    }
                }
            }
            _ => return false,
        }
        true
    }

    fn unknown(&mut self, l: &Loc, known: &str) {
        self.push(&l.key, l.span.clone(), format!("unknown key (a misspelling?); this table has {known}"));
    }

    /// A secret written into the file: refused, saying where it goes instead.
    fn secret_in_file(&mut self, l: &Loc, secret: crate::secrets::Secret, channel: &str) {
        self.push(
            &l.key,
            l.span.clone(),
            format!(
                "secrets never go into the configuration file: give it as {}, the systemd credential {}, or store it \
                 with `callhome alerts set-password --channel {channel}`",
                secret.env(),
                secret.key()
            ),
        );
    }

    /// A string that `check` accepts; otherwise the problem is recorded.
    fn checked(&mut self, item: &Item, l: &Loc, check: fn(&str) -> Result<(), String>) -> Option<String> {
        let s = self.string(item, l)?;
        match check(&s) {
            Ok(()) => Some(s),
            Err(m) => {
                self.push(&l.key, l.span.clone(), m);
                None
            }
        }
    }

    fn email(&mut self, fields: &[(String, Loc, Item)], loc: &Loc) -> Option<EmailConfig> {
        let before = self.problem_count();
        let (mut host, mut port, mut security, mut from, mut user, mut ca_file) =
            (None, None, Security::Starttls, None, None, None);
        for (key, l, item) in fields {
            match key.as_str() {
                "host" => host = self.string(item, l).filter(|h| !h.is_empty()),
                "port" => match self.uint(item, l) {
                    Some(n) if (1..=65_535).contains(&n) => port = Some(n as u16),
                    Some(_) => self.push(&l.key, l.span.clone(), "a port is from 1 to 65535"),
                    None => {}
                },
                "security" => match self.string(item, l).as_deref() {
                    Some("starttls") => security = Security::Starttls,
                    Some("tls") => security = Security::Tls,
                    Some("none") => security = Security::None,
                    Some(other) => self.push(&l.key, l.span.clone(), format!("{other:?}: use starttls, tls or none")),
                    None => {}
                },
                "from" => from = self.checked(item, l, check_address),
                "user" => user = self.string(item, l).filter(|u| !u.is_empty()),
                "ca_file" => ca_file = self.string(item, l).map(PathBuf::from),
                "password" => self.secret_in_file(l, crate::secrets::Secret::SmtpPassword, "email"),
                _ => self.unknown(l, "host, port, security, from, user, ca_file"),
            }
        }
        let Some(host) = host else {
            self.push(&format!("{}.host", loc.key), loc.span.clone(), "is required: the SMTP server's name");
            return None;
        };
        let Some(from) = from else {
            self.push(&format!("{}.from", loc.key), loc.span.clone(), "is required: the sender's address");
            return None;
        };
        if security == Security::None && !is_loopback_host(&host) {
            self.push(
                &format!("{}.security", loc.key),
                loc.span.clone(),
                format!("\"none\" sends mail (and the password) in clear text: allowed only to a loopback host, not {host:?}; use starttls or tls"),
            );
        }
        (self.problem_count() == before).then(|| EmailConfig {
            port: port.unwrap_or(security.default_port()),
            host,
            security,
            from,
            user,
            ca_file,
        })
    }

    fn webhook(&mut self, fields: &[(String, Loc, Item)], loc: &Loc) -> Option<WebhookConfig> {
        let before = self.problem_count();
        let (mut url, mut format) = (None, WebhookFormat::Json);
        for (key, l, item) in fields {
            match key.as_str() {
                "url" => url = self.checked(item, l, check_webhook_url),
                "format" => match self.string(item, l).as_deref() {
                    Some("json") => format = WebhookFormat::Json,
                    Some("slack") => format = WebhookFormat::Slack,
                    Some("teams") => format = WebhookFormat::Teams,
                    Some(other) => self.push(&l.key, l.span.clone(), format!("{other:?}: use json, slack or teams")),
                    None => {}
                },
                "secret" => self.secret_in_file(l, crate::secrets::Secret::WebhookSecret, "webhook"),
                _ => self.unknown(l, "url, format"),
            }
        }
        if url.is_none() && self.problem_count() == before {
            self.push(&format!("{}.url", loc.key), loc.span.clone(), "is required: where to POST alerts");
        }
        (self.problem_count() == before).then(|| WebhookConfig { url: url.expect("checked above"), format })
    }

    /// One key of `[contacts]`.
    pub(super) fn contacts(&mut self, k: &str, v: &Item, loc: &Loc, c: &mut ContactsConfig) -> bool {
        let slot = match k {
            "technical" => &mut c.technical,
            "renewal" => &mut c.renewal,
            _ => return false,
        };
        if let Some(s) = self.checked(v, loc, check_address) {
            *slot = Some(s);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlay(text: &str) -> (Config, Vec<super::super::Problem>) {
        let mut cfg = Config::embedded();
        let problems = cfg.overlay(text, "t.toml");
        (cfg, problems)
    }

    #[test]
    fn channels_are_off_by_default() {
        let c = Config::embedded();
        assert!(!c.alerts.any());
        assert_eq!(c.contacts, ContactsConfig::default());
    }

    #[test]
    fn the_contract_parses() {
        let (c, p) = overlay(
            "[contacts]\ntechnical = \"ops@example.com\"\nrenewal = \"licensing@example.com\"\n\
             [alerts.email]\nhost = \"smtp.example.com\"\nport = 587\nsecurity = \"starttls\"\nfrom = \"callhome@example.com\"\nuser = \"callhome\"\n\
             [alerts.webhook]\nurl = \"https://hooks.example.com/callhome\"\nformat = \"slack\"\n\
             [alerts.journal]\nenabled = true\n",
        );
        assert!(p.is_empty(), "{p:?}");
        let e = c.alerts.email.unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.security, e.user.as_deref()),
            ("smtp.example.com", 587, Security::Starttls, Some("callhome"))
        );
        assert_eq!(c.alerts.webhook.unwrap().format, WebhookFormat::Slack);
        assert!(c.alerts.journal.enabled);
        assert_eq!(c.contacts.renewal.as_deref(), Some("licensing@example.com"));
    }

    #[test]
    fn plain_smtp_only_to_loopback_and_no_secret_in_the_file() {
        let (_, p) = overlay(
            "[contacts]\ntechnical = \"ops@example.com\"\n[alerts.email]\nhost = \"mail.example.com\"\nsecurity = \"none\"\nfrom = \"a@example.com\"\npassword = \"x\"\n",
        );
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["alerts.email.password", "alerts.email.security"], "{p:?}");
        let (c, p) = overlay(
            "[contacts]\ntechnical = \"ops@example.com\"\n[alerts.email]\nhost = \"127.0.0.1\"\nsecurity = \"none\"\nfrom = \"a@example.com\"\n",
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.alerts.email.unwrap().port, 25);
    }

    #[test]
    fn bad_urls_addresses_and_a_mail_channel_without_contacts_are_reported() {
        let (_, p) = overlay(
            "[contacts]\nrenewal = \"not an address\"\n[alerts.webhook]\nurl = \"http://hooks.example.com/x\"\n[alerts.email]\nhost = \"h\"\nfrom = \"a@example.com\"\n",
        );
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["contacts.renewal", "alerts.webhook.url", "alerts.email"], "{p:?}");
        assert!(p[2].message.contains("[contacts]"), "{}", p[2].message);
        assert!(check_webhook_url("http://127.0.0.1:8080/hook").is_ok());
        assert!(check_webhook_url("https://u:p@hooks.example.com/").is_err());
    }
}
