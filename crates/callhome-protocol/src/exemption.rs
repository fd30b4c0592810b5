//! Exemptions from the reporting rule: the vendor's operator grants one install leave not to
//! report until a date (`callhome-receiver exemptions grant`), signed with the receipt key like
//! a receipt. It reaches the agent beside the next upload's receipt
//! ([`UploadAnswer`](crate::receipt::UploadAnswer)) or as a file carried to an isolated network
//! (`callhome exemption import`); the agent checks the signature against its
//! `upload.receipt_public_key` and the install id against its own before anything changes.
//!
//! An exemption covers its install through the end of its `until` day (UTC). Nothing here does
//! I/O.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::time::{Timestamp, parse_rfc3339};

pub const EXEMPTION_FORMAT: &str = "callhome-exemption-v1";

/// Longest reason, in characters.
pub const MAX_REASON: usize = 500;

/// A signed exemption, as it travels (JSON) and as the agent keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exemption {
    pub format: String,
    pub exemption_id: String,
    /// The one install it is for.
    pub install_id: String,
    /// `YYYY-MM-DD`: exempt through the end of this day, UTC.
    pub until: String,
    /// Why, in the operator's words (shown by `status` and `check`).
    pub reason: String,
    /// RFC 3339, UTC: when it was granted (the newer of two exemptions wins).
    pub granted_at: String,
    /// Ed25519 over [`Exemption::canonical`], lowercase hex.
    pub signature: String,
}

/// Why an exemption was not made or not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExemptionError {
    /// A field does not have the form it must have.
    #[error("{0}")]
    Malformed(String),
    /// The signature is malformed or does not verify with the receiver's key.
    #[error(
        "the exemption's signature does not verify with upload.receipt_public_key: it was changed, or comes from another receiver"
    )]
    BadSignature,
    /// The exemption is for another install.
    #[error("the exemption is for install {for_install}, not this one ({this_install})")]
    OtherInstall { for_install: String, this_install: String },
}

/// The moment a `YYYY-MM-DD` day ends (the next day's start, UTC), if it is a date.
pub fn end_of_day(date: &str) -> Option<Timestamp> {
    let b = date.as_bytes();
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() });
    if !shape {
        return None;
    }
    let start = parse_rfc3339(&format!("{date}T00:00:00Z"))?;
    // humantime accepts 2026-02-30 and rolls it over; a date must name itself.
    (crate::time::rfc3339(start)[..10] == *date).then_some(start + 86_400)
}

fn check_fields(install_id: &str, until: &str, reason: &str) -> Result<(), ExemptionError> {
    let plain = |s: &str| {
        (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    if !plain(install_id) {
        return Err(ExemptionError::Malformed(format!(
            "install id {install_id:?}: give the install's id (1 to 128 letters, digits, '.', '_' or '-'; `callhome status` shows it)"
        )));
    }
    if end_of_day(until).is_none() {
        return Err(ExemptionError::Malformed(format!("until {until:?}: give a date as YYYY-MM-DD")));
    }
    let r = reason.trim();
    if r.is_empty() || r.chars().count() > MAX_REASON || r.chars().any(char::is_control) {
        return Err(ExemptionError::Malformed(format!(
            "reason: give the reason in words, 1 to {MAX_REASON} characters on one line"
        )));
    }
    Ok(())
}

impl Exemption {
    /// The exact bytes that are signed: a domain tag and the fields, one per line (the reason,
    /// which may hold spaces, last).
    pub fn canonical(&self) -> String {
        format!(
            "{EXEMPTION_FORMAT}\n{}\n{}\n{}\n{}\n{}\n",
            self.exemption_id, self.install_id, self.until, self.granted_at, self.reason
        )
    }

    /// Makes and signs an exemption, checking its fields first.
    pub fn grant(
        key: &SigningKey,
        exemption_id: String,
        install_id: &str,
        until: &str,
        reason: &str,
        granted_at: String,
    ) -> Result<Exemption, ExemptionError> {
        check_fields(install_id, until, reason)?;
        let mut e = Exemption {
            format: EXEMPTION_FORMAT.into(),
            exemption_id,
            install_id: install_id.into(),
            until: until.into(),
            reason: reason.trim().into(),
            granted_at,
            signature: String::new(),
        };
        e.signature = hex::encode(key.sign(e.canonical().as_bytes()).to_bytes());
        Ok(e)
    }

    /// Checks the form, the signature with `key` and that it is for `install_id`.
    pub fn verify(&self, key: &VerifyingKey, install_id: &str) -> Result<(), ExemptionError> {
        if self.format != EXEMPTION_FORMAT {
            return Err(ExemptionError::Malformed(format!(
                "format {:?} is not {EXEMPTION_FORMAT}: not a callhome exemption",
                self.format
            )));
        }
        check_fields(&self.install_id, &self.until, &self.reason)?;
        if parse_rfc3339(&self.granted_at).is_none() {
            return Err(ExemptionError::Malformed(format!("granted_at {:?} is not an RFC 3339 time", self.granted_at)));
        }
        let bytes = hex::decode(&self.signature).map_err(|_| ExemptionError::BadSignature)?;
        let sig = Signature::from_slice(&bytes).map_err(|_| ExemptionError::BadSignature)?;
        key.verify(self.canonical().as_bytes(), &sig).map_err(|_| ExemptionError::BadSignature)?;
        if self.install_id != install_id {
            return Err(ExemptionError::OtherInstall {
                for_install: self.install_id.clone(),
                this_install: install_id.into(),
            });
        }
        Ok(())
    }

    /// When it stops covering the install: the end of its `until` day.
    pub fn ends_at(&self) -> Timestamp {
        end_of_day(&self.until).unwrap_or(0)
    }

    /// When it was granted (0 when unreadable; [`Exemption::verify`] refuses that).
    pub fn granted(&self) -> Timestamp {
        parse_rfc3339(&self.granted_at).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(key: &SigningKey) -> Exemption {
        Exemption::grant(key, "e1".into(), "inst-1", "2027-03-31", "site audit pending", "2026-11-30T09:00:00Z".into())
            .unwrap()
    }

    #[test]
    fn an_exemption_verifies_for_its_install_only_and_not_once_changed() {
        let key = SigningKey::from_bytes(&[5u8; 32]);
        let e = grant(&key);
        e.verify(&key.verifying_key(), "inst-1").unwrap();
        assert_eq!(e.ends_at(), parse_rfc3339("2027-04-01T00:00:00Z").unwrap());
        assert!(matches!(e.verify(&key.verifying_key(), "inst-2"), Err(ExemptionError::OtherInstall { .. })));
        let mut later = e.clone();
        later.until = "2028-03-31".into();
        assert_eq!(later.verify(&key.verifying_key(), "inst-1"), Err(ExemptionError::BadSignature));
        let other = SigningKey::from_bytes(&[6u8; 32]);
        assert_eq!(e.verify(&other.verifying_key(), "inst-1"), Err(ExemptionError::BadSignature));
        let mut moved = e.clone();
        moved.install_id = "inst-2".into();
        assert_eq!(moved.verify(&key.verifying_key(), "inst-2"), Err(ExemptionError::BadSignature));
    }

    #[test]
    fn fields_are_checked_when_granted() {
        let key = SigningKey::from_bytes(&[5u8; 32]);
        let g = |install: &str, until: &str, reason: &str| {
            Exemption::grant(&key, "e".into(), install, until, reason, "2026-11-30T09:00:00Z".into())
        };
        assert!(g("inst-1", "2027-02-30", "x").is_err(), "no such day");
        assert!(g("inst-1", "31.03.2027", "x").is_err());
        assert!(g("inst 1", "2027-03-31", "x").is_err());
        assert!(g("inst-1", "2027-03-31", " ").is_err());
        assert!(g("inst-1", "2027-03-31", "two\nlines").is_err());
        assert!(g("inst-1", "2027-03-31", &"x".repeat(MAX_REASON + 1)).is_err());
        assert_eq!(end_of_day("2027-12-31"), parse_rfc3339("2028-01-01T00:00:00Z"));
    }
}
