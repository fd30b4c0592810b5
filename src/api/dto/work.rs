//! Documents of the work the API starts: program changes, collect and upload jobs and what they
//! did, pending bundles.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::*;

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

/// The body of a request that takes no parameters: `{}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptyRequest {}

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
    /// `collect`, `upload`, `export` or `support-bundle`.
    pub kind: String,
    /// `running`, `succeeded` or `failed`.
    pub state: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub ok: Option<bool>,
    /// Null while it runs; then `collect`: a list of CollectedDoc, `upload`: an UploadReportDoc,
    /// `export`: an ExportDoc, `support-bundle`: the file written; `{"error": …}` when it failed.
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
