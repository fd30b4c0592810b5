//! Upload receipts (protocol v1): the canonical signed form, key files, signing and checking.
//!
//! A receipt says "the receiver holds the bundle with this SHA-256". Its signature is Ed25519
//! over [`Receipt::canonical`], checked against the receiver's public key from the config. The
//! JSON shape is the wire format shared by the agent and the reference receiver; nothing here
//! does I/O beyond reading and writing key files.

use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

/// The receipt as it travels (JSON) and as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub receipt_id: String,
    pub bundle_sha256: String,
    /// RFC 3339, UTC.
    pub received_at: String,
    /// The newest agent release the vendor offers, when the receiver says (signed too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_agent: Option<LatestAgent>,
    /// Ed25519 signature over [`Receipt::canonical`], lowercase hex.
    pub signature: String,
}

/// The newest agent release, as a receiver advertises it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatestAgent {
    pub version: String,
    /// `YYYY-MM-DD`.
    pub released: String,
}

/// Why a receipt or key was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// The receipt is for another bundle than the one sent.
    #[error("the receipt acknowledges bundle {got}, not the {expected} that was sent")]
    WrongBundle { expected: String, got: String },
    /// The signature is malformed or does not verify with the configured key.
    #[error("the receipt's signature does not verify with the configured upload.receipt_public_key")]
    BadSignature,
    /// A key file could not be read or parsed.
    #[error("{path}: {message}")]
    KeyFile { path: PathBuf, message: String },
}

impl Receipt {
    /// The exact bytes that are signed: a domain tag and the fields, one per line.
    pub fn canonical(&self) -> String {
        let mut s = format!("callhome-receipt-v1\n{}\n{}\n{}\n", self.receipt_id, self.bundle_sha256, self.received_at);
        if let Some(l) = &self.latest_agent {
            s.push_str(&format!("latest-agent {} {}\n", l.version, l.released));
        }
        s
    }

    /// Makes and signs a receipt.
    pub fn sign(
        key: &SigningKey,
        receipt_id: String,
        bundle_sha256: String,
        received_at: String,
        latest_agent: Option<LatestAgent>,
    ) -> Receipt {
        let mut r = Receipt { receipt_id, bundle_sha256, received_at, latest_agent, signature: String::new() };
        r.signature = hex::encode(key.sign(r.canonical().as_bytes()).to_bytes());
        r
    }

    /// Checks that the receipt is for `sha256` and, when a key is given, that its signature holds.
    pub fn check(&self, sha256: &str, key: Option<&VerifyingKey>) -> Result<(), ReceiptError> {
        if !self.bundle_sha256.eq_ignore_ascii_case(sha256) {
            return Err(ReceiptError::WrongBundle { expected: sha256.into(), got: self.bundle_sha256.clone() });
        }
        let Some(key) = key else { return Ok(()) };
        let bytes = hex::decode(&self.signature).map_err(|_| ReceiptError::BadSignature)?;
        let sig = Signature::from_slice(&bytes).map_err(|_| ReceiptError::BadSignature)?;
        key.verify(self.canonical().as_bytes(), &sig).map_err(|_| ReceiptError::BadSignature)
    }
}

fn key_err(path: &Path, message: impl Into<String>) -> ReceiptError {
    ReceiptError::KeyFile { path: path.to_path_buf(), message: message.into() }
}

/// Reads a receiver public key (PEM, SubjectPublicKeyInfo).
pub fn load_public_key(path: &Path) -> Result<VerifyingKey, ReceiptError> {
    let text = std::fs::read_to_string(path).map_err(|e| key_err(path, format!("cannot read the public key: {e}")))?;
    VerifyingKey::from_public_key_pem(&text)
        .map_err(|e| key_err(path, format!("not an Ed25519 public key in PEM form ({e}); use the file written by callhome-receiver --public-key-out")))
}

/// Reads the signing key at `path`, or creates one there (mode 0600) when the file is absent.
pub fn load_or_create_signing_key(path: &Path) -> Result<SigningKey, ReceiptError> {
    match std::fs::read_to_string(path) {
        Ok(text) => SigningKey::from_pkcs8_pem(&text)
            .map_err(|e| key_err(path, format!("not an Ed25519 private key in PKCS#8 PEM form ({e})"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| key_err(path, format!("no randomness for a new key: {e}")))?;
            let key = SigningKey::from_bytes(&seed);
            let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| key_err(path, e.to_string()))?;
            crate::fs::write_new_private(path, pem.as_bytes())
                .map_err(|e| key_err(path, format!("cannot create the key: {e}")))?;
            Ok(key)
        }
        Err(e) => Err(key_err(path, format!("cannot read the signing key: {e}"))),
    }
}

/// The public half of a signing key, as PEM.
pub fn public_key_pem(key: &SigningKey) -> String {
    key.verifying_key().to_public_key_pem(LineEnding::LF).expect("an Ed25519 public key always encodes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_receipt_verifies_and_a_changed_one_does_not() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let r = Receipt::sign(&key, "r1".into(), "ab".repeat(32), "2026-11-23T12:00:00Z".into(), None);
        let vk = key.verifying_key();
        r.check(&"ab".repeat(32), Some(&vk)).unwrap();
        let mut forged = r.clone();
        forged.received_at = "2026-11-24T12:00:00Z".into();
        assert!(matches!(forged.check(&"ab".repeat(32), Some(&vk)), Err(ReceiptError::BadSignature)));
        assert!(matches!(r.check(&"cd".repeat(32), Some(&vk)), Err(ReceiptError::WrongBundle { .. })));
    }

    #[test]
    fn keys_round_trip_through_pem_files() {
        let dir = tempfile::tempdir().unwrap();
        let k = load_or_create_signing_key(&dir.path().join("k")).unwrap();
        let again = load_or_create_signing_key(&dir.path().join("k")).unwrap();
        assert_eq!(k.to_bytes(), again.to_bytes());
        std::fs::write(dir.path().join("pub"), public_key_pem(&k)).unwrap();
        assert_eq!(load_public_key(&dir.path().join("pub")).unwrap(), k.verifying_key());
    }
}
