//! The two documents of manual reporting, shared by the agent and the receiver: the export's
//! `export.json`, and the signed receipt that acknowledges an export as a whole.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::receipt::{LedgerHead, ReceiptError};

pub const EXPORT_FORMAT: &str = "callhome-export-v1";
pub const RECEIPT_FORMAT: &str = "callhome-manual-receipt-v1";
/// Where the inner bundles sit in an export.
pub const BUNDLES_DIR: &str = "bundles/";

/// `export.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportManifest {
    pub format: String,
    pub export_id: String,
    pub install_id: String,
    pub created_at: String,
    pub agent_version: String,
    pub bundles: Vec<ExportedBundle>,
    /// The agent's ledger head when it wrote the export; the receiver signs it into the
    /// manual receipt (absent from older agents' exports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger_head: Option<LedgerHead>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedBundle {
    pub name: String,
    pub program: String,
    pub sha256: String,
    pub size: u64,
}

/// A bundle the receiver refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    pub sha256: String,
    pub name: String,
    pub reason: String,
}

/// The receipt for a whole export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualReceipt {
    pub format: String,
    pub receipt_id: String,
    pub export_id: String,
    pub install_id: String,
    /// RFC 3339, UTC: when the receiver took the export in.
    pub received_at: String,
    pub accepted: Vec<String>,
    pub rejected: Vec<Rejected>,
    /// The export's ledger head, echoed and signed when the export carried one; its line in
    /// [`ManualReceipt::canonical`] appears only then, so older receipts verify as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger_head: Option<LedgerHead>,
    /// Ed25519 over [`ManualReceipt::canonical`], hex.
    pub signature: String,
}

impl ManualReceipt {
    /// The exact bytes that are signed.
    pub fn canonical(&self) -> String {
        let mut s = format!(
            "{RECEIPT_FORMAT}\n{}\n{}\n{}\n{}\naccepted\n",
            self.receipt_id, self.export_id, self.install_id, self.received_at
        );
        for a in &self.accepted {
            s.push_str(a);
            s.push('\n');
        }
        s.push_str("rejected\n");
        for r in &self.rejected {
            s.push_str(&format!("{} {} {}\n", r.sha256, r.name, r.reason.replace('\n', " ")));
        }
        if let Some(h) = &self.ledger_head {
            s.push_str(&h.canonical_line());
        }
        s
    }

    pub fn sign(mut self, key: &SigningKey) -> ManualReceipt {
        self.signature = hex::encode(key.sign(self.canonical().as_bytes()).to_bytes());
        self
    }

    pub fn verify(&self, key: &VerifyingKey) -> Result<(), ReceiptError> {
        if self.format != RECEIPT_FORMAT {
            return Err(ReceiptError::BadSignature);
        }
        // A line break in a field could pass its text off as other lines of the signed text.
        let broken = |s: &String| s.chars().any(char::is_control);
        let rejected = self.rejected.iter().flat_map(|r| [&r.sha256, &r.name]);
        if [&self.receipt_id, &self.export_id, &self.install_id, &self.received_at]
            .into_iter()
            .chain(&self.accepted)
            .chain(rejected)
            .any(broken)
            || self.ledger_head.as_ref().is_some_and(|h| LedgerHead::parse(&h.to_header()).as_ref() != Some(h))
        {
            return Err(ReceiptError::BadSignature);
        }
        let bytes = hex::decode(&self.signature).map_err(|_| ReceiptError::BadSignature)?;
        let sig = Signature::from_slice(&bytes).map_err(|_| ReceiptError::BadSignature)?;
        key.verify(self.canonical().as_bytes(), &sig).map_err(|_| ReceiptError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_receipt_no_longer_verifies() {
        let key = SigningKey::from_bytes(&[9u8; 32]);
        let r = ManualReceipt {
            format: RECEIPT_FORMAT.into(),
            receipt_id: "r".into(),
            export_id: "e".into(),
            install_id: "i".into(),
            received_at: "2026-11-23T12:00:00Z".into(),
            accepted: vec!["aa".into()],
            rejected: vec![Rejected { sha256: "bb".into(), name: "b.zip".into(), reason: "bad".into() }],
            ledger_head: None,
            signature: String::new(),
        }
        .sign(&key);
        r.verify(&key.verifying_key()).unwrap();
        assert!(!r.canonical().contains("ledger-head"), "a receipt without a head signs what it did before");
        let anchored =
            ManualReceipt { ledger_head: Some(LedgerHead { rows: 4, hash: "cd".repeat(32) }), ..r.clone() }.sign(&key);
        anchored.verify(&key.verifying_key()).unwrap();
        let mut cut = anchored.clone();
        cut.ledger_head.as_mut().unwrap().rows = 3;
        assert!(cut.verify(&key.verifying_key()).is_err(), "the head is signed");
        let mut moved = r.clone();
        moved.rejected.clear();
        moved.accepted.push("bb".into());
        assert!(moved.verify(&key.verifying_key()).is_err());
        assert!(r.verify(&SigningKey::from_bytes(&[8u8; 32]).verifying_key()).is_err());
    }
}
