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
///
/// Fields added after v1's first receipts (`ledger_head`, `latest_product`) are optional, and
/// their lines in [`Receipt::canonical`] appear only when they are set, so a receipt without
/// them signs exactly what it signed before. A receiver signs them only for an agent that sent
/// [`LEDGER_HEAD`](crate::headers::LEDGER_HEAD) (an agent that sends it understands them; an
/// older agent would drop the unknown fields and find the signature broken). An agent accepts a
/// receipt without a head (from an older receiver): it anchors nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub receipt_id: String,
    pub bundle_sha256: String,
    /// RFC 3339, UTC.
    pub received_at: String,
    /// The newest agent release the vendor offers, when the receiver says (signed too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_agent: Option<LatestAgent>,
    /// The agent's ledger head as the upload declared it: the receiver's signature says the
    /// agent's ledger had reached it, so a ledger cut below it is found (`callhome ledger verify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger_head: Option<LedgerHead>,
    /// The newest release of the product the agent reports on (the license server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_product: Option<LatestAgent>,
    /// Ed25519 signature over [`Receipt::canonical`], lowercase hex.
    pub signature: String,
}

/// A newest release (of the agent, or of the product), as a receiver advertises it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatestAgent {
    pub version: String,
    /// `YYYY-MM-DD`.
    pub released: String,
}

/// The newest product release, as a receiver advertises it (the same shape as the agent's).
pub type LatestRelease = LatestAgent;

/// The head of an agent's hash-chained ledger: how many rows it holds and the newest row's
/// hash (the genesis hash, 64 zeros, for an empty ledger).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerHead {
    pub rows: u64,
    /// Lowercase hex SHA-256.
    pub hash: String,
}

impl LedgerHead {
    /// The header's form: `<rows> <hash>`.
    pub fn to_header(&self) -> String {
        format!("{} {}", self.rows, self.hash)
    }

    /// Reads the header's form; `None` unless it is a count and 64 hex digits.
    pub fn parse(s: &str) -> Option<LedgerHead> {
        let (rows, hash) = s.trim().split_once(' ')?;
        let rows = rows.parse().ok()?;
        let hash = hash.trim();
        (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| LedgerHead { rows, hash: hash.to_ascii_lowercase() })
    }

    /// The line the signed texts carry.
    pub(crate) fn canonical_line(&self) -> String {
        format!("ledger-head {} {}\n", self.rows, self.hash)
    }
}

/// The fields a receiver adds to a receipt beside the bundle's: all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extras {
    pub latest_agent: Option<LatestAgent>,
    pub ledger_head: Option<LedgerHead>,
    pub latest_product: Option<LatestRelease>,
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
        if let Some(h) = &self.ledger_head {
            s.push_str(&h.canonical_line());
        }
        if let Some(l) = &self.latest_product {
            s.push_str(&format!("latest-product {} {}\n", l.version, l.released));
        }
        s
    }

    /// Makes and signs a receipt.
    pub fn sign(
        key: &SigningKey,
        receipt_id: String,
        bundle_sha256: String,
        received_at: String,
        extras: Extras,
    ) -> Receipt {
        let Extras { latest_agent, ledger_head, latest_product } = extras;
        let mut r = Receipt {
            receipt_id,
            bundle_sha256,
            received_at,
            latest_agent,
            ledger_head,
            latest_product,
            signature: String::new(),
        };
        r.signature = hex::encode(key.sign(r.canonical().as_bytes()).to_bytes());
        r
    }

    /// The optional fields, to sign the same receipt again (the receiver's `bad-signature` fault).
    pub fn extras(&self) -> Extras {
        Extras {
            latest_agent: self.latest_agent.clone(),
            ledger_head: self.ledger_head.clone(),
            latest_product: self.latest_product.clone(),
        }
    }

    /// Whether the signature holds with `key` (whatever bundle the receipt is for). A field
    /// holding a line break is refused first: it could pass one field's text off as another's
    /// line of the signed text.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), ReceiptError> {
        let mut fields = vec![&self.receipt_id, &self.bundle_sha256, &self.received_at];
        for l in [&self.latest_agent, &self.latest_product].into_iter().flatten() {
            fields.extend([&l.version, &l.released]);
        }
        if fields.iter().any(|f| f.chars().any(char::is_control))
            || self.ledger_head.as_ref().is_some_and(|h| LedgerHead::parse(&h.to_header()).as_ref() != Some(h))
        {
            return Err(ReceiptError::BadSignature);
        }
        let bytes = hex::decode(&self.signature).map_err(|_| ReceiptError::BadSignature)?;
        let sig = Signature::from_slice(&bytes).map_err(|_| ReceiptError::BadSignature)?;
        key.verify(self.canonical().as_bytes(), &sig).map_err(|_| ReceiptError::BadSignature)
    }

    /// Checks that the receipt is for `sha256` and, when a key is given, that its signature holds.
    pub fn check(&self, sha256: &str, key: Option<&VerifyingKey>) -> Result<(), ReceiptError> {
        if !self.bundle_sha256.eq_ignore_ascii_case(sha256) {
            return Err(ReceiptError::WrongBundle { expected: sha256.into(), got: self.bundle_sha256.clone() });
        }
        match key {
            Some(key) => self.verify(key),
            None => Ok(()),
        }
    }
}

/// What a receiver answers to an upload: the receipt, and beside it (outside the receipt's
/// signed text, since it carries its own signature) an exemption granted to the install.
/// An agent that knows nothing of exemptions reads the receipt and ignores the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadAnswer {
    #[serde(flatten)]
    pub receipt: Receipt,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exemption: Option<crate::exemption::Exemption>,
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
        let r = Receipt::sign(&key, "r1".into(), "ab".repeat(32), "2026-11-23T12:00:00Z".into(), Extras::default());
        let vk = key.verifying_key();
        r.check(&"ab".repeat(32), Some(&vk)).unwrap();
        let mut forged = r.clone();
        forged.received_at = "2026-11-24T12:00:00Z".into();
        assert!(matches!(forged.check(&"ab".repeat(32), Some(&vk)), Err(ReceiptError::BadSignature)));
        assert!(matches!(r.check(&"cd".repeat(32), Some(&vk)), Err(ReceiptError::WrongBundle { .. })));
    }

    #[test]
    fn a_receipt_without_the_new_fields_signs_what_it_signed_before() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let r = Receipt::sign(&key, "r1".into(), "ab".repeat(32), "2026-11-23T12:00:00Z".into(), Extras::default());
        assert_eq!(r.canonical(), format!("callhome-receipt-v1\nr1\n{}\n2026-11-23T12:00:00Z\n", "ab".repeat(32)));
        let json = serde_json::to_value(&r).unwrap();
        assert!(json.get("ledger_head").is_none() && json.get("latest_product").is_none(), "{json}");
    }

    #[test]
    fn the_ledger_head_and_the_product_release_are_signed() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let head = LedgerHead::parse(&format!("12 {}", "AB".repeat(32))).unwrap();
        assert_eq!(head.to_header(), format!("12 {}", "ab".repeat(32)));
        let extras = Extras {
            ledger_head: Some(head),
            latest_product: Some(LatestRelease { version: "2.0".into(), released: "2026-01-01".into() }),
            ..Extras::default()
        };
        let r = Receipt::sign(&key, "r1".into(), "ab".repeat(32), "2026-11-23T12:00:00Z".into(), extras);
        r.verify(&key.verifying_key()).unwrap();
        let mut cut = r.clone();
        cut.ledger_head.as_mut().unwrap().rows = 11;
        assert!(cut.verify(&key.verifying_key()).is_err(), "the head is signed");
        let mut older = r.clone();
        older.latest_product = None;
        assert!(older.verify(&key.verifying_key()).is_err(), "the product release is signed");
        for bad in ["12", "x abc", &format!("-1 {}", "ab".repeat(32)), &format!("3 {}", "ab".repeat(31))] {
            assert_eq!(LedgerHead::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn text_moved_between_fields_does_not_verify() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let head = LedgerHead { rows: 3, hash: "ab".repeat(32) };
        let extras = Extras {
            latest_agent: Some(LatestAgent { version: "1.0".into(), released: "2026-01-01".into() }),
            ledger_head: Some(head.clone()),
            ..Extras::default()
        };
        let r = Receipt::sign(&key, "r1".into(), "ab".repeat(32), "2026-11-23T12:00:00Z".into(), extras);
        // The same signed text with the head's line moved into the release date.
        let mut moved = r.clone();
        moved.ledger_head = None;
        moved.latest_agent.as_mut().unwrap().released = format!("2026-01-01\nledger-head 3 {}", head.hash);
        assert_eq!(moved.canonical(), r.canonical());
        assert!(moved.verify(&key.verifying_key()).is_err(), "a field with a line break is refused");
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
