//! Checking the sent ledger end to end: its hash chain and every receipt it holds against its
//! bundle's SHA-256 and (when `upload.receipt_public_key` is set) the receiver's signature.
//!
//! Shared by `callhome ledger verify` and `GET /api/v1/ledger/verify`, so both say the same
//! thing. It reads and changes nothing; printing and exit codes are the callers' business.

use crate::config::Config;
use crate::manual::format::{ManualReceipt, RECEIPT_FORMAT};
use crate::receipt::{Receipt, ReceiptError, load_public_key};
use crate::store::{LedgerRow, verify_chain};

/// What a successful check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerCheck {
    /// Rows in the ledger (every event: sent, withdrawn, evicted, quarantined, reported).
    pub rows: usize,
    /// `sent` rows whose receipt acknowledges their bundle (and verifies, with a key).
    pub receipts: usize,
    /// Whether signatures were checked (a public key is configured).
    pub signatures_checked: bool,
    /// Bundles recorded as reported by hand without a receipt (`export confirm`).
    pub unverified: usize,
}

/// Why the ledger does not verify, or could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum LedgerCheckError {
    /// The hash chain is broken: a row was edited, removed or reordered.
    #[error("{0}; the state database was altered outside the agent")]
    Chain(crate::store::LedgerBreak),
    /// A stored receipt is unreadable, for another bundle, or its signature does not verify.
    #[error("ledger row {seq} ({bundle}): {why}")]
    Receipt { seq: i64, bundle: String, why: String },
    /// The configured public key cannot be used.
    #[error(transparent)]
    Key(ReceiptError),
}

impl LedgerCheckError {
    /// Whether the ledger itself is at fault (rather than the configuration).
    pub fn is_tampering(&self) -> bool {
        !matches!(self, LedgerCheckError::Key(_))
    }
}

/// Checks `rows` (the whole ledger, oldest first) with the key `cfg` names, if any.
pub fn verify(cfg: &Config, rows: &[LedgerRow]) -> Result<LedgerCheck, LedgerCheckError> {
    verify_chain(rows).map_err(LedgerCheckError::Chain)?;
    let key = match &cfg.upload.receipt_public_key {
        Some(k) => Some(load_public_key(&cfg.resolve(k)).map_err(LedgerCheckError::Key)?),
        None => None,
    };
    let mut receipts = 0;
    for r in rows.iter().filter(|r| r.event == "sent") {
        let bad = |why: String| LedgerCheckError::Receipt { seq: r.seq, bundle: r.bundle.clone(), why };
        if r.detail.contains(RECEIPT_FORMAT) {
            let m: ManualReceipt = serde_json::from_str(&r.detail)
                .map_err(|e| bad(format!("the stored manual receipt is unreadable ({e})")))?;
            if !m.accepted.contains(&r.sha256) {
                return Err(bad("the manual receipt does not acknowledge this bundle".into()));
            }
            if let Some(k) = &key {
                m.verify(k).map_err(|e| bad(e.to_string()))?;
            }
        } else {
            let receipt: Receipt =
                serde_json::from_str(&r.detail).map_err(|e| bad(format!("the stored receipt is unreadable ({e})")))?;
            receipt.check(&r.sha256, key.as_ref()).map_err(|e| bad(e.to_string()))?;
        }
        receipts += 1;
    }
    Ok(LedgerCheck {
        rows: rows.len(),
        receipts,
        signatures_checked: key.is_some(),
        unverified: rows.iter().filter(|r| r.event == "reported").count(),
    })
}

impl std::fmt::Display for LedgerCheck {
    /// The one line `callhome ledger verify` prints.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sig = if self.signatures_checked {
            "signatures verified"
        } else {
            "signatures not checked: no upload.receipt_public_key"
        };
        write!(
            f,
            "ledger ok: {} rows, chain intact; {} receipts match their bundles ({sig})",
            self.rows, self.receipts
        )?;
        if self.unverified > 0 {
            write!(f, "; {} reported by hand without a receipt (unverified)", self.unverified)?;
        }
        Ok(())
    }
}
