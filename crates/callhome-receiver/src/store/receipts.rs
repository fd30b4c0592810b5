//! The receipts kept beside the bundles (`receipts/<sha256>.json`): found by SHA-256 alone,
//! written create-only (the first receiver to write one for a bundle fixes it), replaced by the
//! one the index settled on, or by reconciling when it names no stored copy. In a bucket, an upload the index had no row for keeps its
//! receipt in the index alone (see [`super`]).

use ed25519_dalek::SigningKey;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::{BundleStore, INCOMING, StoreSpec, internal, local, part_name, receipt_key};
use crate::Refusal;
use callhome_protocol::receipt::Receipt;

impl BundleStore {
    /// A receipt with the same fields, signed with another key (the `bad-signature` fault).
    pub fn sign_with(&self, r: &Receipt, key: &SigningKey) -> Receipt {
        Receipt::sign(key, r.receipt_id.clone(), r.bundle_sha256.clone(), r.received_at.clone(), r.extras())
    }

    /// The receipt already given for `sha256`, if any.
    ///
    /// In a local store, a receipt that does not read back as this bundle's — a crash before
    /// the `syncfs` that would have made it durable, so never answered — is removed and counts
    /// as none: the caller gives a new one.
    pub fn receipt_for(&self, sha256: &str) -> Result<Option<Receipt>, Refusal> {
        let got = match &self.spec {
            StoreSpec::Local(dir) => {
                let key = receipt_key(sha256);
                let bytes = local::read(dir, &key).map_err(|e| internal("reading the receipts", e))?;
                let Some(bytes) = bytes else { return Ok(None) };
                return match serde_json::from_slice::<Receipt>(&bytes) {
                    Ok(r) if r.bundle_sha256 == sha256 => Ok(Some(r)),
                    _ => {
                        tracing::warn!(%key, "a receipt left unwritten by a crash is replaced");
                        local::remove(dir, &key).map_err(|e| internal("removing an unwritten receipt", e))?;
                        Ok(None)
                    }
                };
            }
            StoreSpec::S3 { .. } => self.receipt_object(sha256)?.map(Vec::from),
        };
        match got {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| internal(&format!("the stored receipt {}", receipt_key(sha256)), e)),
            None => Ok(None),
        }
    }

    /// The receipt object for `sha256` in the bucket, if any.
    fn receipt_object(&self, sha256: &str) -> Result<Option<bytes::Bytes>, Refusal> {
        let got = self.block_on(async {
            match self.objects.get(&self.path(&receipt_key(sha256))).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        got.map_err(|e| internal("reading the receipts", e))
    }

    /// Replaces the receipt kept for a stored bundle with `r`: the receipt the index holds,
    /// when another replica sharing this store recorded the bundle first. Async: it is called
    /// from the index's side, on the runtime.
    pub async fn keep_receipt(&self, r: &Receipt) -> Result<(), Refusal> {
        let json = serde_json::to_vec(r).map_err(|e| internal("receipt", e))?;
        let key = receipt_key(&r.bundle_sha256);
        self.objects.put(&self.path(&key), PutPayload::from(json)).await.map_err(|e| internal("receipt", e))?;
        #[cfg(unix)]
        if let StoreSpec::Local(dir) = &self.spec {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.join(&key), std::fs::Permissions::from_mode(0o600))
                .map_err(|e| internal("permissions", e))?;
        }
        Ok(())
    }

    /// Writes the receipt for `sha256` unless one is there; returns the one there.
    pub(super) fn put_receipt(&self, sha256: &str, receipt: &Receipt) -> Result<Option<Receipt>, Refusal> {
        let json = serde_json::to_vec(receipt).map_err(|e| internal("receipt", e))?;
        if let StoreSpec::Local(dir) = &self.spec {
            // Twice at most: a receipt found there that does not read back (a crash's) is
            // removed by `receipt_for`, and this one put in its place.
            for _ in 0..2 {
                let tmp = part_name(&dir.join(INCOMING)).map_err(|e| internal("randomness", e))?;
                match local::put_new(&self.dirs, dir, &receipt_key(sha256), &tmp, &json)
                    .map_err(|e| internal("receipt", e))?
                {
                    local::PutNew::Created => return Ok(None),
                    local::PutNew::Exists => {
                        if let Some(kept) = self.receipt_for(sha256)? {
                            return Ok(Some(kept));
                        }
                    }
                }
            }
            return Err(internal("receipt", "a receipt that does not read back keeps reappearing"));
        }
        let path = self.path(&receipt_key(sha256));
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.block_on(self.objects.put_opts(&path, PutPayload::from(json), opts)) {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. }) => return self.receipt_for(sha256),
            Err(e) => return Err(internal("receipt", e)),
        }
        Ok(None)
    }
}
