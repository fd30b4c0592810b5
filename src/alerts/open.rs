//! Alerts as objects: the conditions open right now, each with a stable key (and an id made from
//! it), a kind, a severity, a title and a text. Decided from the agent's [`Status`]: the
//! compliance clock, failing uploads, license events, supplemental grace periods, and an outdated
//! agent or product. Keeping them (first seen, last seen, acknowledgements) is `store::alerts`'; telling
//! people is the [`Notifier`](super)'s.
//!
//! What `callhome check` and `/metrics` count is the open alerts that are not acknowledged.

use sha2::{Digest, Sha256};

use crate::agent::{ProductStatus, Status, VersionStatus};
use crate::compliance;
use crate::licenses::EventKind;

/// How bad an open alert is: what `callhome check` exits with (1 or 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Severity, String> {
        match s {
            "warning" => Ok(Severity::Warning),
            "critical" => Ok(Severity::Critical),
            _ => Err(format!("{s:?} is not a severity (warning or critical)")),
        }
    }
}

/// One open condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The same condition keeps the same key across runs (`compliance:<from>`,
    /// `license:expired:<line>`, `upload-failed:<type>`, …).
    pub key: String,
    /// `compliance-threshold`, `compliance-overdue`, `upload-failed`, `license-expired`,
    /// `license-expiring`, `license-renewal-due`, `license-over-quantity`,
    /// `license-grace-period`, `agent-outdated`, `product-outdated`.
    pub kind: String,
    pub severity: Severity,
    pub title: String,
    pub text: String,
}

impl Condition {
    /// The alert's id: the first 12 hex digits of the SHA-256 of its key (stable, URL-safe).
    pub fn id(&self) -> String {
        id_of(&self.key)
    }
}

/// The id of the alert with this key.
pub fn id_of(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))[..12].to_string()
}

/// Every condition open in `s`, in a stable order.
pub fn conditions(s: &Status) -> Vec<Condition> {
    let mut out = Vec::new();
    let c = &s.compliance;
    // An exempt install raises nothing about the clock while the exemption lasts.
    if !matches!(c.state, compliance::State::Ok | compliance::State::Exempt) {
        let overdue = c.state == compliance::State::Overdue;
        out.push(Condition {
            key: format!("compliance:{}", c.counting_from),
            kind: if overdue { "compliance-overdue" } else { "compliance-threshold" }.into(),
            severity: if c.state == compliance::State::Warning { Severity::Warning } else { Severity::Critical },
            title: if overdue {
                "License reporting is overdue".into()
            } else {
                format!("{} days left to report license usage", c.days_remaining)
            },
            text: format!(
                "License telemetry was last reported {} days ago; the limit is {} days. Upload now, or export for manual reporting.",
                c.days_since_last_upload, s.max_days
            ),
        });
    }
    let mut failing: Vec<(&'static str, &crate::store::Attempt)> = Vec::new();
    for (p, a) in &s.last_attempts {
        let Some(a) = a else { continue };
        match failing.iter_mut().find(|(k, _)| *k == p.upload_kind()) {
            Some(slot) if a.at >= slot.1.at => slot.1 = a,
            Some(_) => {}
            None => failing.push((p.upload_kind(), a)),
        }
    }
    for (kind, a) in failing.into_iter().filter(|(_, a)| a.code != "CTX_UPLOADER_SUCCESS") {
        out.push(Condition {
            key: format!("upload-failed:{kind}"),
            kind: "upload-failed".into(),
            severity: Severity::Warning,
            title: format!("Upload failed ({kind}): {}", super::failure_words(&a.code).to_lowercase()),
            text: format!("{}. The data stays on this machine and is sent again later.", a.message),
        });
    }
    for e in &s.license_events {
        let news = super::Decider::default().license(e.kind.name(), &e.feature, &e.message);
        out.push(Condition {
            key: format!("license:{}", e.key),
            kind: news.kind(),
            severity: if e.kind == EventKind::Expired { Severity::Critical } else { Severity::Warning },
            title: news.summary,
            text: e.message.clone(),
        });
    }
    for g in &s.grace_periods {
        let news = super::grace_news(g, s.now);
        out.push(Condition {
            key: news.key.clone(),
            kind: news.kind(),
            severity: if news.urgent { Severity::Critical } else { Severity::Warning },
            title: news.summary,
            text: news.body,
        });
    }
    out.extend(currency(&s.version, &s.product));
    out
}

/// An agent or a product older than the newest release advertised, once that release is older
/// than `upload.version_window`: one warning each (also told once as news by the notifier).
pub fn currency(version: &VersionStatus, product: &ProductStatus) -> Vec<Condition> {
    let mut out = Vec::new();
    if version.outdated {
        let latest = version.latest.clone().unwrap_or_default();
        out.push(Condition {
            key: format!("agent-outdated:{latest}"),
            kind: "agent-outdated".into(),
            severity: Severity::Warning,
            title: format!("A newer agent ({latest}) is available"),
            text: format!(
                "This agent is {}; {latest} came out {}. Install it.",
                version.running,
                version.released.as_deref().unwrap_or("a while ago")
            ),
        });
    }
    if product.outdated {
        let latest = product.latest.clone().unwrap_or_default();
        out.push(Condition {
            key: format!("product-outdated:{latest}"),
            kind: "product-outdated".into(),
            severity: Severity::Warning,
            title: format!("{} is out of date: {latest} is available", product.name),
            text: format!(
                "This machine runs {} {}; {latest} came out {}, more than six months ago. Upgrade it.",
                product.name,
                product.version,
                product.released.as_deref().unwrap_or("a while ago")
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_short_and_url_safe() {
        assert_eq!(id_of("compliance:1800000000"), id_of("compliance:1800000000"));
        assert_ne!(id_of("compliance:1"), id_of("compliance:2"));
        assert!(id_of("license:expired:x:1.0:").bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(id_of("k").len(), 12);
        assert!(Severity::Critical > Severity::Warning);
    }

    #[test]
    fn an_outdated_agent_and_an_outdated_product_are_one_warning_each() {
        let version = VersionStatus {
            running: "0.1.0",
            latest: Some("0.9.0".into()),
            released: Some("2026-01-01".into()),
            outdated: true,
        };
        let product = ProductStatus {
            name: "License Server".into(),
            version: "2025.1".into(),
            latest: Some("2026.2".into()),
            released: Some("2026-01-15".into()),
            outdated: true,
        };
        let c = currency(&version, &product);
        let kinds: Vec<_> = c.iter().map(|c| (c.kind.as_str(), c.key.as_str(), c.severity)).collect();
        assert_eq!(
            kinds,
            [
                ("agent-outdated", "agent-outdated:0.9.0", Severity::Warning),
                ("product-outdated", "product-outdated:2026.2", Severity::Warning)
            ]
        );
        assert!(c[1].text.contains("runs License Server 2025.1; 2026.2 came out 2026-01-15"), "{}", c[1].text);
        let current = ProductStatus { outdated: false, ..product };
        assert_eq!(currency(&VersionStatus { outdated: false, ..version }, &current), []);
    }
}
