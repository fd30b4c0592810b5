//! JSON documents (wire types), built from the agent's domain types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::agent::Status;
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
    pub state: String,
    pub last_success: Option<String>,
    pub deadline: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SpoolDoc {
    pub pending: usize,
    pub pending_bytes: u64,
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
            version: VersionDoc {
                running: s.version.running.into(),
                latest: s.version.latest.clone(),
                latest_released: s.version.released.clone(),
                outdated: s.version.outdated,
            },
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

/// `PUT /api/v1/programs/{name}`: one of the two fields.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgramChange {
    /// Turn an optional program on or off.
    pub enabled: Option<bool>,
    /// Telemetry only: `automatic` or `manual`.
    pub mode: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProgramChanged {
    pub program: ProgramDoc,
    /// Pending bundles withdrawn because the program was turned off.
    pub withdrawn: Vec<String>,
}

/// `POST /api/v1/collect` and `/upload`: `{}` for every program, or one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkRequest {
    pub program: Option<String>,
}

/// A job started by the API.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobDoc {
    pub id: u64,
    /// `collect` or `upload`.
    pub kind: String,
    /// `running`, `succeeded` or `failed`.
    pub state: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub ok: Option<bool>,
    /// `collect`: a list of CollectedDoc; `upload`: an UploadReportDoc.
    #[schema(value_type = Object)]
    pub result: Option<serde_json::Value>,
    /// Where to follow it.
    pub href: String,
}

/// What one collection produced.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CollectedDoc {
    pub program: String,
    /// The bundle made, if any.
    pub bundle: Option<String>,
    pub size: Option<u64>,
    /// Collector errors recorded in its manifest.
    pub errors: usize,
    /// Why nothing was collected, if so.
    pub skipped: Option<String>,
}

impl From<&crate::agent::Collected> for CollectedDoc {
    fn from(c: &crate::agent::Collected) -> CollectedDoc {
        match c {
            crate::agent::Collected::Bundle { program, name, size, errors } => CollectedDoc {
                program: program.name().into(),
                bundle: Some(name.clone()),
                size: Some(*size),
                errors: *errors,
                skipped: None,
            },
            crate::agent::Collected::Skipped { program, reason } => CollectedDoc {
                program: program.name().into(),
                bundle: None,
                size: None,
                errors: 0,
                skipped: Some(reason.clone()),
            },
        }
    }
}

/// What an upload cycle did, per program.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UploadReportDoc {
    pub ok: bool,
    pub programs: Vec<ProgramUploadDoc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProgramUploadDoc {
    pub program: String,
    pub sent: Vec<String>,
    pub quarantined: Vec<String>,
    pub skipped: Option<String>,
    /// The result code of the failure that stopped the queue, if any.
    pub code: Option<String>,
    pub message: Option<String>,
}

impl From<&crate::agent::UploadReport> for UploadReportDoc {
    fn from(r: &crate::agent::UploadReport) -> UploadReportDoc {
        UploadReportDoc {
            ok: r.ok(),
            programs: r
                .programs
                .iter()
                .map(|p| ProgramUploadDoc {
                    program: p.program.name().into(),
                    sent: p.sent.clone(),
                    quarantined: p.quarantined.clone(),
                    skipped: p.skipped.clone(),
                    code: p.failure.as_ref().map(|f| f.code.as_str().into()),
                    message: p.failure.as_ref().map(|f| f.message.clone()),
                })
                .collect(),
        }
    }
}

/// A pending bundle.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BundleDoc {
    /// The file name; the bundle's id in the API.
    pub id: String,
    pub program: String,
    pub upload_type: String,
    pub size: u64,
    pub href: String,
}

impl From<&crate::spool::Pending> for BundleDoc {
    fn from(p: &crate::spool::Pending) -> BundleDoc {
        BundleDoc {
            id: p.name.clone(),
            program: p.program.name().into(),
            upload_type: p.program.upload_kind().into(),
            size: p.size,
            href: format!("/api/v1/bundles/{}", p.name),
        }
    }
}

/// One upload attempt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AttemptDoc {
    pub at: String,
    pub program: String,
    pub bundle: Option<String>,
    pub sha256: Option<String>,
    pub code: String,
    pub message: String,
    pub http_status: Option<u16>,
    pub duration_ms: u64,
}

impl From<&Attempt> for AttemptDoc {
    fn from(a: &Attempt) -> AttemptDoc {
        AttemptDoc {
            at: rfc3339(a.at),
            program: a.program.name().into(),
            bundle: a.bundle.clone(),
            sha256: a.sha256.clone(),
            code: a.code.clone(),
            message: a.message.clone(),
            http_status: a.http_status,
            duration_ms: a.duration_ms,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryPage {
    pub items: Vec<AttemptDoc>,
    pub limit: u32,
    pub offset: u32,
    /// The offset of the next page, when there may be one.
    pub next_offset: Option<u32>,
}

/// One ledger row.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LedgerDoc {
    pub seq: i64,
    pub at: String,
    /// `sent`, `withdrawn`, `evicted`, `quarantined`.
    pub event: String,
    pub program: String,
    pub bundle: String,
    pub sha256: String,
    pub size: u64,
    /// The receipt (JSON) for `sent`, the reason otherwise.
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

impl From<&crate::store::LedgerRow> for LedgerDoc {
    fn from(r: &crate::store::LedgerRow) -> LedgerDoc {
        LedgerDoc {
            seq: r.seq,
            at: rfc3339(r.at),
            event: r.event.clone(),
            program: r.program.clone(),
            bundle: r.bundle.clone(),
            sha256: r.sha256.clone(),
            size: r.size,
            detail: r.detail.clone(),
            prev_hash: r.prev_hash.clone(),
            hash: r.hash.clone(),
        }
    }
}

/// `POST /api/v1/export`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// Only this program's bundles (default: every program whose consent allows sending).
    pub program: Option<String>,
}

/// What an export wrote (the result of its job).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExportDoc {
    pub export_id: String,
    /// The export's file name; download it at `href`.
    pub file: String,
    pub href: String,
    pub bundles: usize,
    pub bytes: u64,
}

/// What importing a manual receipt did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportDoc {
    pub receipt_id: String,
    pub export_id: String,
    pub acknowledged: Vec<String>,
    pub already: Vec<String>,
    /// Bundles the receiver refused (name and reason); still pending.
    #[schema(value_type = Object)]
    pub rejected: serde_json::Value,
}

/// `POST /api/v1/support-bundle`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SupportRequest {
    pub case: String,
    pub severity: Option<u8>,
    pub impact: Option<String>,
    pub summary: Option<String>,
    pub contact: Option<String>,
    /// Also send it to the endpoint as upload type `support`.
    #[serde(default)]
    pub upload: bool,
}

/// One step of a connection test.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StepDoc {
    /// `dns`, `tcp`, `proxy`, `tls`, `probe`.
    pub step: String,
    pub ok: bool,
    pub ms: u64,
    pub detail: String,
    /// On failure: what to do next.
    pub hint: Option<String>,
}

impl From<&crate::upload::diagnose::Step> for StepDoc {
    fn from(s: &crate::upload::diagnose::Step) -> StepDoc {
        StepDoc { step: s.name.into(), ok: s.ok, ms: s.ms, detail: s.detail.clone(), hint: s.hint.clone() }
    }
}

/// The proxy uploads go through, and where the secrets come from (never their values).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProxyDoc {
    pub url: Option<String>,
    pub username: Option<String>,
    pub no_proxy: Option<String>,
    /// `settings` (chosen with `callhome proxy set` or PUT /api/v1/proxy) or `config`.
    pub origin: String,
    pub password_set: bool,
    /// `environment`, `systemd-credential` or `keyring`.
    pub password_source: Option<String>,
    pub token_set: bool,
    pub token_source: Option<String>,
}

impl From<&crate::upload::Access> for ProxyDoc {
    fn from(a: &crate::upload::Access) -> ProxyDoc {
        ProxyDoc {
            url: a.url.clone(),
            username: a.user.clone(),
            no_proxy: a.no_proxy.clone(),
            origin: a.origin.to_string(),
            password_set: a.password.is_some(),
            password_source: a.password.as_ref().map(|(_, s)| s.name().to_string()),
            token_set: a.token.is_some(),
            token_source: a.token.as_ref().map(|(_, s)| s.name().to_string()),
        }
    }
}

/// `PUT /api/v1/proxy`: the password is write-only (omit it to keep the stored one).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyRequest {
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// `PUT /api/v1/registration`: the endpoint token, write-only.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub token: String,
}

/// `DELETE /api/v1/bundles/{id}`: the bundle withdrawn (the ledger records it).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WithdrawnDoc {
    pub bundle: String,
    pub program: String,
    pub size: u64,
}

/// `GET /api/v1/ledger/verify`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LedgerCheckDoc {
    /// The chain is intact and every receipt matches its bundle (and verifies, with a key).
    pub ok: bool,
    /// One line for a person, as `callhome ledger verify` prints it.
    pub summary: String,
    pub rows: usize,
    pub receipts: usize,
    /// Whether receipt signatures were checked (`upload.receipt_public_key` is set).
    pub signatures_checked: bool,
    /// Bundles reported by hand without a receipt.
    pub unverified: usize,
    /// What is wrong, when `ok` is false.
    pub problem: Option<String>,
}

/// `POST /api/v1/dashboard/link`: a one-time sign-in link to the dashboard.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DashboardLinkDoc {
    /// `http://127.0.0.1:PORT/login?code=…`: open it once, within `expires_in_seconds`.
    pub url: String,
    pub expires_at: String,
    pub expires_in_seconds: u64,
}
