//! The agent's state as documents: `GET /api/v1/status` (and `callhome status --json`), its
//! programs, compliance clock (and an exemption held), spool, last results, license events, the
//! agent's and the product's versions and alert channels.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::agent::{ChannelStatus, Status};
use crate::clock::rfc3339;
use crate::programs::Program;
use crate::store::Attempt;

/// `callhome status --json` and `GET /api/v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatusDoc {
    pub install_id: String,
    pub agent_version: String,
    /// Whether an agent (`callhome run`) currently owns the data directory, and which.
    pub agent: AgentDoc,
    pub now: String,
    pub compliance: ComplianceDoc,
    pub spool: SpoolDoc,
    pub programs: Vec<ProgramDoc>,
    /// Keyed by upload type: `compliance`, `usage` (Call Home and CEIP), `events`.
    #[schema(value_type = Object)]
    pub last_result: BTreeMap<String, Option<ResultDoc>>,
    pub next_upload: Option<String>,
    /// License events as of now: expiry, renewal, use above quantity.
    pub license_events: Vec<LicenseEventDoc>,
    pub version: VersionDoc,
    /// The product (`[product]`) against the newest product release a receiver advertised.
    #[serde(default)]
    pub product: ProductDoc,
    /// The configured alert channels (`[alerts]`), each with its last delivery and last error.
    #[serde(default)]
    pub alert_channels: Vec<AlertChannelDoc>,
    /// The open alerts, acknowledged or not.
    #[serde(default)]
    pub alerts: Vec<super::AlertDoc>,
    /// Supplemental grace periods running (or ended with the feature still over capacity).
    #[serde(default)]
    pub grace_periods: Vec<super::GracePeriodDoc>,
    /// Desktop notifications on or off (`GET /api/v1/notifications` has the details).
    #[serde(default = "yes")]
    pub notifications_enabled: bool,
}

fn yes() -> bool {
    true
}

/// One alert channel: where it delivers and how its deliveries went.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AlertChannelDoc {
    /// `email`, `webhook`, `journal`.
    pub name: String,
    /// Where it delivers: `smtp.example.com:587 (starttls)`, `hooks.example.com (json)`,
    /// `journald (…)` or `syslog (…)`.
    pub target: String,
    /// The last attempt (delivered or not), and the alert it was for.
    pub last_attempt: Option<String>,
    pub last_alert: Option<String>,
    /// The last successful delivery.
    pub last_delivery: Option<String>,
    /// The last error, and when it happened (it may be older than the last delivery).
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    /// Alerts delivered; attempts that failed (each retry counts); alerts given up on.
    pub delivered: u64,
    pub failed_attempts: u64,
    pub given_up: u64,
}

/// The running version against the newest release a receiver advertised.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VersionDoc {
    pub running: String,
    pub latest: Option<String>,
    pub latest_released: Option<String>,
    /// A newer release came out more than `upload.version_window` ago: install `latest`.
    pub outdated: bool,
}

/// The product's configured version against the newest product release a receiver advertised.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ProductDoc {
    pub name: String,
    /// `product.version` (`0.0.0`: not configured, nothing is compared).
    pub version: String,
    pub latest: Option<String>,
    pub latest_released: Option<String>,
    /// A newer release came out more than `upload.version_window` (six months) ago: upgrade.
    pub outdated: bool,
}

/// An exemption from the reporting rule the vendor granted this install.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExemptionDoc {
    pub id: String,
    /// `YYYY-MM-DD`: the last day it covers (UTC).
    pub until: String,
    /// When it ends (the start of the day after `until`).
    pub ends_at: String,
    pub reason: String,
    pub granted_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LicenseEventDoc {
    /// `expiring`, `expired`, `renewal_due`, `over_quantity`.
    pub kind: String,
    pub feature: String,
    pub message: String,
    /// Days to the date concerned (negative: past).
    pub days: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentDoc {
    pub running: bool,
    pub holder: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ComplianceDoc {
    pub days_since_last_upload: i64,
    pub days_remaining: i64,
    pub max_days: u32,
    /// `ok`, `warning`, `critical`, `overdue`, or `exempt` while an exemption lasts.
    pub state: String,
    pub last_success: Option<String>,
    pub deadline: String,
    /// The exemption that makes the state `exempt`.
    #[serde(default)]
    pub exemption: Option<ExemptionDoc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SpoolDoc {
    pub pending: usize,
    pub pending_bytes: u64,
    /// Bytes of the files in `exports/` (exports not yet receipted or confirmed, support
    /// bundles): they count against `max_bytes` too.
    pub exports_bytes: u64,
    pub max_bytes: u64,
    /// Bytes over `spool.max_bytes` that could not be evicted (compliance bundles are never).
    pub over_quota_bytes: u64,
    pub quarantined: usize,
    pub by_program: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProgramDoc {
    pub name: String,
    pub title: String,
    pub enabled: bool,
    pub mandatory: bool,
    pub identifiable: bool,
    /// `automatic` or `manual` for telemetry; `automatic` or `off` for the others.
    pub mode: String,
    /// How often the schedule uploads it (`24h`, `7d`).
    pub upload_interval: String,
    /// Locked on (by the configuration or a vendor policy rule): it cannot be turned off.
    pub locked: bool,
    pub locked_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResultDoc {
    pub code: String,
    pub message: String,
    pub at: String,
    pub bundle: Option<String>,
    pub http_status: Option<u16>,
}

impl From<&Attempt> for ResultDoc {
    fn from(a: &Attempt) -> ResultDoc {
        ResultDoc {
            code: a.code.clone(),
            message: a.message.clone(),
            at: rfc3339(a.at),
            bundle: a.bundle.clone(),
            http_status: a.http_status,
        }
    }
}

impl From<&Status> for StatusDoc {
    fn from(s: &Status) -> StatusDoc {
        let programs = Program::ALL
            .iter()
            .map(|p| ProgramDoc {
                name: p.name().into(),
                title: p.title().into(),
                enabled: s.consent.enabled(*p),
                mandatory: p.mandatory(),
                identifiable: p.identifiable(),
                mode: match p {
                    Program::Telemetry => s.consent.telemetry_mode.name().into(),
                    _ if s.consent.enabled(*p) => "automatic".into(),
                    _ => "off".into(),
                },
                upload_interval: humantime::format_duration(
                    s.intervals[Program::ALL.iter().position(|x| x == p).expect("a program")],
                )
                .to_string(),
                locked: s.locks.iter().any(|(l, _)| l == p),
                locked_reason: s.locks.iter().find(|(l, _)| l == p).map(|(_, r)| r.clone()),
            })
            .collect();
        let by_program = Program::ALL
            .iter()
            .map(|p| (p.name().to_string(), s.pending.iter().filter(|b| b.program == *p).count()))
            .collect();
        let pending_bytes = s.pending.iter().map(|p| p.size).sum::<u64>();
        StatusDoc {
            install_id: s.install.install_id.clone(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
            agent: AgentDoc { running: s.agent.is_some(), holder: s.agent.clone() },
            now: rfc3339(s.now),
            compliance: ComplianceDoc {
                days_since_last_upload: s.compliance.days_since_last_upload,
                days_remaining: s.compliance.days_remaining,
                max_days: s.max_days,
                state: s.compliance.state.name().into(),
                last_success: s.compliance.last_success.map(rfc3339),
                deadline: rfc3339(s.compliance.deadline),
                exemption: s.exemption.as_ref().map(|e| ExemptionDoc {
                    id: e.exemption_id.clone(),
                    until: e.until.clone(),
                    ends_at: rfc3339(e.ends_at()),
                    reason: e.reason.clone(),
                    granted_at: e.granted_at.clone(),
                }),
            },
            spool: SpoolDoc {
                pending: s.pending.len(),
                pending_bytes,
                exports_bytes: s.exports_bytes,
                over_quota_bytes: (pending_bytes + s.exports_bytes).saturating_sub(s.spool_max_bytes),
                max_bytes: s.spool_max_bytes,
                quarantined: s.quarantined,
                by_program,
            },
            programs,
            last_result: last_per_type(&s.last_attempts),
            next_upload: s.next_upload.map(rfc3339),
            version: VersionDoc {
                running: s.version.running.into(),
                latest: s.version.latest.clone(),
                latest_released: s.version.released.clone(),
                outdated: s.version.outdated,
            },
            product: ProductDoc {
                name: s.product.name.clone(),
                version: s.product.version.clone(),
                latest: s.product.latest.clone(),
                latest_released: s.product.released.clone(),
                outdated: s.product.outdated,
            },
            alert_channels: s.alert_channels.iter().map(AlertChannelDoc::from).collect(),
            alerts: s.alerts.iter().map(super::AlertDoc::from).collect(),
            grace_periods: s.grace_periods.iter().map(|g| super::GracePeriodDoc::new(g, s.now)).collect(),
            notifications_enabled: s.notifications_enabled,
            license_events: s
                .license_events
                .iter()
                .map(|e| LicenseEventDoc {
                    kind: e.kind.name().into(),
                    feature: e.feature.clone(),
                    message: e.message.clone(),
                    days: e.days,
                })
                .collect(),
        }
    }
}

impl From<&ChannelStatus> for AlertChannelDoc {
    fn from(c: &ChannelStatus) -> AlertChannelDoc {
        let d = c.delivery.as_ref();
        AlertChannelDoc {
            name: c.name.into(),
            target: c.target.clone(),
            last_attempt: d.map(|d| rfc3339(d.last_attempt)),
            last_alert: d.map(|d| d.last_key.clone()),
            last_delivery: d.and_then(|d| d.last_success).map(rfc3339),
            last_error: d.and_then(|d| d.last_error.clone()),
            last_error_at: d.and_then(|d| d.last_error_at).map(rfc3339),
            delivered: d.map_or(0, |d| d.delivered),
            failed_attempts: d.map_or(0, |d| d.failed_attempts),
            given_up: d.map_or(0, |d| d.given_up),
        }
    }
}

/// The newest attempt per upload type (Call Home and CEIP share `usage`).
fn last_per_type(per_program: &[(Program, Option<Attempt>)]) -> BTreeMap<String, Option<ResultDoc>> {
    let mut out: BTreeMap<&'static str, Option<&Attempt>> = BTreeMap::new();
    for (p, a) in per_program {
        let slot = out.entry(p.upload_kind()).or_default();
        if let Some(a) = a
            && slot.is_none_or(|cur| a.at >= cur.at)
        {
            *slot = Some(a);
        }
    }
    out.into_iter().map(|(k, a)| (k.to_string(), a.map(ResultDoc::from))).collect()
}
