//! The two documents of manual reporting, shared by the agent and the receiver: the export's
//! `export.json`, and the signed receipt that acknowledges an export as a whole.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::receipt::ReceiptError;

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
            signature: String::new(),
        }
        .sign(&key);
        r.verify(&key.verifying_key()).unwrap();
        let mut moved = r.clone();
        moved.rejected.clear();
        moved.accepted.push("bb".into());
        assert!(moved.verify(&key.verifying_key()).is_err());
        assert!(r.verify(&SigningKey::from_bytes(&[8u8; 32]).verifying_key()).is_err());
    }
}
