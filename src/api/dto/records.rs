//! Documents of what the agent recorded and made: upload attempts, the ledger, exports and their
//! receipts, support bundles, connection tests.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::rfc3339;
use crate::store::Attempt;

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
    /// The largest part, in bytes (zip headers and `export.json` counted); more parts are written
    /// when the bundles need them. Default: the configuration's `spool.export_max_size` (0: one
    /// file).
    pub max_size: Option<u64>,
}

/// What an export wrote (the result of its job): its first part, and every part.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExportDoc {
    pub export_id: String,
    /// The export's file name; download it at `href`.
    pub file: String,
    pub href: String,
    pub bundles: usize,
    pub bytes: u64,
    /// Every part, in order (one when the export was not split).
    pub parts: Vec<ExportPartDoc>,
}

/// One part of an export: a whole export of its own, with its own id and receipt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExportPartDoc {
    pub export_id: String,
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
