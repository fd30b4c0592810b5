//! Recording what was stored in the index: a bundle with its receipt (once per SHA-256 across
//! every replica) and what its stored copy tells the fleet view about its install; an export
//! with each bundle it carried. Uploads, exports over HTTP and the operator's `ingest` all go
//! through here, so the index learns the same from each.
//!
//! What a bundle tells about its install ([`crate::fleet::report`]) was read by the store from
//! the checked copy in its spool, before the bundle was moved or uploaded (so a bucket is never
//! read back); this decides nothing about who may send what.

use callhome_protocol::export::ManualReceipt;
use callhome_protocol::receipt::Receipt;
use callhome_protocol::time::Timestamp;

use crate::fleet::report::Report;
use crate::index::{BundleRow, ExportRow, Index, IndexError, InstallFacts, Recorded};
use crate::store::{Accepted, BundleStore};

/// A bundle just stored.
#[derive(Debug, Clone)]
pub struct Stored {
    pub receipt: Receipt,
    /// The authenticated install that sent it, if any.
    pub install_id: Option<String>,
    /// The program the upload named (`X-Callhome-Program`); the manifest's wins when readable.
    pub program: String,
    pub size: u64,
    pub received_at: Timestamp,
    /// What the bundle tells the fleet view (see [`Accepted::report`]).
    pub report: Report,
}

/// Records the stored bundle `s` and what it tells about its install; answers the receipt the
/// index holds for it (another replica's when that one recorded it first).
///
/// The row and the install's facts take the receipt's time: when the receiver first received
/// the bundle. A retry that found a receipt kept from an attempt that failed before its row
/// (a crash, a 503 from the index) is not a later upload. (In a bucket, an upload the index
/// had no row for kept no receipt before its row: its retry counts from the retry.)
pub async fn bundle(index: &Index, store: &BundleStore, s: Stored) -> Result<(Receipt, bool), IndexError> {
    let report = s.report;
    let received_at = callhome_protocol::time::parse_rfc3339(&s.receipt.received_at).unwrap_or(s.received_at);
    let facts = report.install_id.clone().or_else(|| s.install_id.clone()).map(|install_id| InstallFacts {
        install_id,
        at: received_at,
        success: report.counts_for_compliance(),
        agent_version: report.agent_version.clone(),
        product_version: report.product_version.clone(),
        usage: report.usage.clone(),
    });
    let json = serde_json::to_string(&s.receipt).map_err(|e| IndexError::Invalid(format!("the receipt: {e}")))?;
    let row = BundleRow {
        sha256: s.receipt.bundle_sha256.clone(),
        install_id: s.install_id.or_else(|| report.install_id.clone()),
        program: report.program.unwrap_or(s.program),
        size: s.size,
        receipt_id: s.receipt.receipt_id.clone(),
        received_at,
        receipt: json,
    };
    let Recorded { receipt, inserted } = index.record_bundle(row, facts).await?;
    let kept: Receipt = serde_json::from_str(&receipt).map_err(|e| {
        IndexError::Invalid(format!("the index holds an unreadable receipt for {}: {e}", s.receipt.bundle_sha256))
    })?;
    if kept != s.receipt {
        // Another replica recorded this bundle first: its receipt is the receiver's answer.
        if let Err(e) = store.keep_receipt(&kept).await {
            tracing::warn!("cannot keep the receipt the index holds in the store: {e}");
        }
    }
    Ok((kept, inserted))
}

/// Records an export taken in and each bundle it carried (`bundles`: what the store answered
/// for each, all stored by then — or, for one the index kept a receipt for, that receipt).
pub async fn export(
    index: &Index,
    store: &BundleStore,
    r: &ManualReceipt,
    bundles: Vec<Accepted>,
    received_at: Timestamp,
) -> Result<(), IndexError> {
    for a in bundles {
        let stored = Stored {
            receipt: a.receipt,
            install_id: None,
            program: "?".into(),
            size: a.size,
            received_at,
            report: a.report,
        };
        bundle(index, store, stored).await?;
    }
    index
        .record_export(ExportRow {
            receipt_id: r.receipt_id.clone(),
            export_id: r.export_id.clone(),
            install_id: r.install_id.clone(),
            received_at,
            accepted: r.accepted.len() as u64,
            rejected: r.rejected.len() as u64,
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{keep_receipt_file, local_store};
    use callhome_protocol::time::{parse_rfc3339, rfc3339};

    #[test]
    fn a_retry_that_takes_a_kept_receipt_is_recorded_at_the_receipts_time() {
        let dir = tempfile::tempdir().unwrap();
        let (store, index, rt) = local_store(dir.path());
        let body = crate::testing::bundle("inst-1", 1);
        let sha = callhome_protocol::fs::sha256_hex(&body);
        // The first attempt was receipted on 2026-03-07, then the index could not be written.
        let first = parse_rfc3339("2026-03-07T10:00:00Z").unwrap();
        let kept = Receipt::sign(store.key(), "r1".into(), sha.clone(), rfc3339(first), Default::default());
        keep_receipt_file(dir.path(), &kept);
        // The agent's retry, two days later.
        let retry = first + 2 * 86_400;
        let incoming = store.incoming_holding(body.clone()).unwrap();
        let accepted = store.accept_file(incoming, &sha, Some("inst-1"), retry, None, false).unwrap();
        assert!(!accepted.new);
        let stored = Stored {
            receipt: accepted.receipt,
            install_id: Some("inst-1".into()),
            program: "telemetry".into(),
            size: accepted.size,
            received_at: retry,
            report: accepted.report,
        };
        let (receipt, inserted) = rt.block_on(bundle(&index, &store, stored)).unwrap();
        assert_eq!((receipt, inserted), (kept, true));
        let install = rt.block_on(index.install("inst-1")).unwrap().unwrap();
        assert_eq!(install.last_success, Some(first), "the compliance clock counts from the first receipt");
    }
}
