//! JSON documents (wire types), built from the agent's domain types.

use serde::Serialize;

use crate::agent::Status;
use crate::clock::rfc3339;
use crate::programs::Program;
use crate::store::Attempt;

/// `callhome status --json` and `GET /api/v1/status`.
#[derive(Debug, Serialize)]
pub struct StatusDoc {
    pub install_id: String,
    pub agent_version: &'static str,
    /// Whether an agent (`callhome run`) currently owns the data directory, and which.
    pub agent: AgentDoc,
    pub now: String,
    pub compliance: ComplianceDoc,
    pub spool: SpoolDoc,
    pub programs: Vec<ProgramDoc>,
    /// Keyed by upload type: `compliance`, `usage` (Call Home and CEIP), `events`.
    pub last_result: std::collections::BTreeMap<&'static str, Option<ResultDoc>>,
    pub next_upload: Option<String>,
    /// License events as of now: expiry, renewal, use above quantity.
    pub license_events: Vec<LicenseEventDoc>,
}

#[derive(Debug, Serialize)]
pub struct LicenseEventDoc {
    /// `expiring`, `expired`, `renewal_due`, `over_quantity`.
    pub kind: &'static str,
    pub feature: String,
    pub message: String,
    /// Days to the date concerned (negative: past).
    pub days: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct AgentDoc {
    pub running: bool,
    pub holder: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ComplianceDoc {
    pub days_since_last_upload: i64,
    pub days_remaining: i64,
    pub max_days: u32,
    pub state: &'static str,
    pub last_success: Option<String>,
    pub deadline: String,
}

#[derive(Debug, Serialize)]
pub struct SpoolDoc {
    pub pending: usize,
    pub pending_bytes: u64,
    pub max_bytes: u64,
    /// Bytes over `spool.max_bytes` that could not be evicted (compliance bundles are never).
    pub over_quota_bytes: u64,
    pub quarantined: usize,
    pub by_program: std::collections::BTreeMap<&'static str, usize>,
}

#[derive(Debug, Serialize)]
pub struct ProgramDoc {
    pub name: &'static str,
    pub title: &'static str,
    pub enabled: bool,
    pub mandatory: bool,
    pub identifiable: bool,
    /// `automatic` or `manual` for telemetry; `automatic` or `off` for the others.
    pub mode: &'static str,
}

#[derive(Debug, Serialize)]
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
                name: p.name(),
                title: p.title(),
                enabled: s.consent.enabled(*p),
                mandatory: p.mandatory(),
                identifiable: p.identifiable(),
                mode: match p {
                    Program::Telemetry => s.consent.telemetry_mode.name(),
                    _ if s.consent.enabled(*p) => "automatic",
                    _ => "off",
                },
            })
            .collect();
        let by_program =
            Program::ALL.iter().map(|p| (p.name(), s.pending.iter().filter(|b| b.program == *p).count())).collect();
        let pending_bytes = s.pending.iter().map(|p| p.size).sum::<u64>();
        StatusDoc {
            install_id: s.install.install_id.clone(),
            agent_version: env!("CARGO_PKG_VERSION"),
            agent: AgentDoc { running: s.agent.is_some(), holder: s.agent.clone() },
            now: rfc3339(s.now),
            compliance: ComplianceDoc {
                days_since_last_upload: s.compliance.days_since_last_upload,
                days_remaining: s.compliance.days_remaining,
                max_days: s.max_days,
                state: s.compliance.state.name(),
                last_success: s.compliance.last_success.map(rfc3339),
                deadline: rfc3339(s.compliance.deadline),
            },
            spool: SpoolDoc {
                pending: s.pending.len(),
                pending_bytes,
                over_quota_bytes: pending_bytes.saturating_sub(s.spool_max_bytes),
                max_bytes: s.spool_max_bytes,
                quarantined: s.quarantined,
                by_program,
            },
            programs,
            last_result: last_per_type(&s.last_attempts),
            next_upload: s.next_upload.map(rfc3339),
            license_events: s
                .license_events
                .iter()
                .map(|e| LicenseEventDoc {
                    kind: e.kind.name(),
                    feature: e.feature.clone(),
                    message: e.message.clone(),
                    days: e.days,
                })
                .collect(),
        }
    }
}

/// The newest attempt per upload type (Call Home and CEIP share `usage`).
fn last_per_type(
    per_program: &[(Program, Option<Attempt>)],
) -> std::collections::BTreeMap<&'static str, Option<ResultDoc>> {
    let mut out: std::collections::BTreeMap<&'static str, Option<&Attempt>> = std::collections::BTreeMap::new();
    for (p, a) in per_program {
        let slot = out.entry(p.upload_kind()).or_default();
        if let Some(a) = a
            && slot.is_none_or(|cur| a.at >= cur.at)
        {
            *slot = Some(a);
        }
    }
    out.into_iter().map(|(k, a)| (k, a.map(ResultDoc::from))).collect()
}
