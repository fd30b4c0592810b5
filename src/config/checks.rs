//! The checks of values that need more than their own type: endpoint and proxy URLs (https, no
//! credentials), the rules between keys (retry bounds, warning thresholds below the limit, a
//! proxy user only with a proxy, an e-mail channel only with a contact), and the files a
//! configuration names. The alert channels' own values are checked in `alerts`.
//!
//! Reads the files it checks; writes nothing.

use toml_edit::Table;

use super::parser::Parser;
use super::{Config, Problem};

impl Config {
    /// Checks that the files the configuration names exist and hold what they should.
    pub fn check_files(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if let Some(ca) = &self.upload.ca_file {
            let path = self.resolve(ca);
            match std::fs::read(&path) {
                Ok(bytes) if bytes.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") => {}
                Ok(_) => out.push(problem("upload.ca_file", format!("{} holds no PEM certificate", path.display()))),
                Err(e) => out.push(problem("upload.ca_file", format!("cannot read {}: {e}", path.display()))),
            }
        }
        if let Some(ca) = self.alerts.email.as_ref().and_then(|e| e.ca_file.as_ref()) {
            let path = self.resolve(ca);
            match std::fs::read(&path) {
                Ok(bytes) if bytes.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") => {}
                Ok(_) => {
                    out.push(problem("alerts.email.ca_file", format!("{} holds no PEM certificate", path.display())))
                }
                Err(e) => out.push(problem("alerts.email.ca_file", format!("cannot read {}: {e}", path.display()))),
            }
        }
        if let Some(key) = &self.upload.receipt_public_key {
            let path = self.resolve(key);
            if let Err(e) = crate::receipt::load_public_key(&path) {
                out.push(problem("upload.receipt_public_key", e.to_string()));
            }
        }
        out
    }
}

fn problem(key: &str, message: String) -> Problem {
    Problem { key: key.into(), line: None, message }
}

impl Parser<'_> {
    /// The rules between keys, checked once every section is read.
    pub(super) fn cross_checks(&mut self, root: &Table, cfg: &Config) {
        let span_of = |section: &str, key: &str| {
            root.get(section).and_then(|s| s.as_table()).and_then(|t| t.key(key)).and_then(|k| k.span())
        };
        if cfg.upload.retry_base > cfg.upload.retry_max {
            self.push("upload.retry_base", span_of("upload", "retry_base"), "must not be longer than upload.retry_max");
        }
        if let Some(&largest) = cfg.compliance.warn_days.first()
            && largest >= cfg.compliance.max_days
        {
            self.push(
                "compliance.warn_days",
                span_of("compliance", "warn_days"),
                format!("every threshold must be below compliance.max_days ({})", cfg.compliance.max_days),
            );
        }
        if cfg.alerts.email.is_some() && cfg.contacts.technical.is_none() && cfg.contacts.renewal.is_none() {
            self.push(
                "alerts.email",
                root.get("alerts").and_then(|a| a.as_table()).and_then(|t| t.key("email")).and_then(|k| k.span()),
                "is set but nobody receives the mail: name contacts.technical and/or contacts.renewal in [contacts]",
            );
        }
        if cfg.upload.proxy_user.is_some() && cfg.upload.proxy.is_none() {
            self.push("upload.proxy_user", span_of("upload", "proxy_user"), "is set but upload.proxy is not");
        }
    }
}

/// `upload.endpoint`: an https URL without credentials.
pub(super) fn check_endpoint(s: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(s).map_err(|e| format!("{s:?} is not a URL ({e})"))?;
    if url.scheme() != "https" {
        return Err(format!("must be an https:// URL, found {}://", url.scheme()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; secrets never go into the configuration file".into());
    }
    Ok(())
}

/// A proxy URL (`upload.proxy`, `callhome proxy set`): http(s) or socks5, no password.
pub fn check_proxy(s: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(s).map_err(|e| format!("{s:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https" | "socks5" | "socks5h") {
        return Err(format!("unsupported proxy scheme {}:// (use http://, https://)", url.scheme()));
    }
    if url.password().is_some() {
        return Err(
            "must not carry a password; set proxy_user here and CALLHOME_PROXY_PASSWORD in the environment".into()
        );
    }
    Ok(())
}
