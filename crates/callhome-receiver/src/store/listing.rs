//! What the store holds, read back: listing, kept receipts, copies into the spool and removal
//! (for [`crate::reconcile`], checks and tests; the upload path never reads the store back).

use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;

use super::{BundleStore, Incoming, StoreSpec, StoredObject, internal, local, receipt_key};
use crate::Refusal;
use callhome_protocol::receipt::{self, Receipt};
use callhome_protocol::time::{Timestamp, rfc3339};

impl BundleStore {
    /// The key (under the store's prefix) of a listed object.
    fn key_of(&self, location: &ObjectPath) -> String {
        let skip = if self.root.is_empty() { 0 } else { self.root.len() + 1 };
        location.as_ref()[skip..].to_string()
    }

    /// The keys of every stored bundle (for checks and tests; lists the whole store).
    pub fn bundle_keys(&self) -> Result<Vec<String>, Refusal> {
        use futures_util::TryStreamExt;
        let prefix = self.path("bundles");
        let metas: Vec<_> = self
            .block_on(self.objects.list(Some(&prefix)).try_collect::<Vec<_>>())
            .map_err(|e| internal("listing", e))?;
        Ok(metas.iter().map(|m| self.key_of(&m.location)).collect())
    }

    /// The bundles stored under `bundles/<under>` (`YYYY/MM/DD` for a day, empty for all): key,
    /// size and when it was written. Async, for [`crate::reconcile`].
    pub async fn list_bundles(&self, under: &str) -> Result<Vec<StoredObject>, Refusal> {
        use futures_util::TryStreamExt;
        let prefix = if under.is_empty() { "bundles".to_string() } else { format!("bundles/{under}") };
        let metas: Vec<_> = match self.objects.list(Some(&self.path(&prefix))).try_collect::<Vec<_>>().await {
            Ok(m) => m,
            // A local store without that folder has nothing under it.
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(internal("listing the bundles", e)),
        };
        Ok(metas
            .into_iter()
            .map(|m| StoredObject {
                key: self.key_of(&m.location),
                size: m.size,
                modified: m.last_modified.timestamp(),
            })
            .collect())
    }

    /// The receipt kept in `receipts/` for `sha256`, if any (async); in a local store, none when
    /// it does not read back as this bundle's (see [`BundleStore::receipt_for`]).
    pub async fn stored_receipt(&self, sha256: &str) -> Result<Option<Receipt>, Refusal> {
        let key = receipt_key(sha256);
        let bytes = match self.objects.get(&self.path(&key)).await {
            Ok(r) => r.bytes().await.map_err(|e| internal("reading a receipt", e))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(internal("reading a receipt", e)),
        };
        match serde_json::from_slice::<Receipt>(&bytes) {
            Ok(r) if r.bundle_sha256 == sha256 => Ok(Some(r)),
            // Left unwritten by a crash before its `syncfs` (never answered): a new one replaces it.
            _ if matches!(self.spec, StoreSpec::Local(_)) => Ok(None),
            Ok(_) => Err(internal(&format!("the stored receipt {key}"), "it names another bundle")),
            Err(e) => Err(internal(&format!("the stored receipt {key}"), e)),
        }
    }

    /// Signs a receipt for a stored bundle that has none naming it (in a bucket, an upload the
    /// index had no row for, which keeps no receipt before its row; a receiver that wrote the
    /// receipt after the bundle; a receipt kept by an attempt on another day), as received at
    /// `received_at`, and keeps it in `receipts/` (replacing one there).
    pub async fn receipt_orphan(&self, sha256: &str, received_at: Timestamp) -> Result<Receipt, Refusal> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| internal("randomness", e))?;
        let extras = receipt::Extras { latest_agent: self.latest.clone(), ledger_head: None, latest_product: None };
        let r = Receipt::sign(&self.key, hex::encode(id), sha256.to_string(), rfc3339(received_at), extras);
        self.keep_receipt(&r).await?;
        Ok(r)
    }

    /// Copies the stored bundle at `key` into a new spool file (to read what it tells the fleet
    /// view), streaming.
    pub async fn fetch(&self, key: &str) -> Result<Incoming, Refusal> {
        use futures_util::StreamExt;
        use std::io::Write as _;
        let (incoming, file) = self.incoming().map_err(|e| internal("spool", e))?;
        let got = self.objects.get(&self.path(key)).await.map_err(|e| internal("reading a stored bundle", e))?;
        let mut out = std::io::BufWriter::new(file);
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| internal("reading a stored bundle", e))?;
            out.write_all(&chunk).map_err(|e| internal("spool", e))?;
        }
        out.flush().map_err(|e| internal("spool", e))?;
        Ok(incoming)
    }

    /// Whether the bundle stored at `key` holds the bytes of its SHA-256 `sha256`: in a local
    /// store, a crash before the `syncfs` that would have made it durable (so before any
    /// answer) can leave the name without them. A bucket's objects appear whole or not at all.
    pub async fn holds_bundle(&self, key: &str, sha256: &str) -> Result<bool, Refusal> {
        let StoreSpec::Local(dir) = &self.spec else { return Ok(true) };
        let (dir, key, sha256) = (dir.clone(), key.to_string(), sha256.to_string());
        tokio::task::spawn_blocking(move || local::holds(&dir, &key, &sha256))
            .await
            .map_err(|e| internal("checking a stored bundle", e))?
            .map_err(|e| internal("checking a stored bundle", e))
    }

    /// Removes the stored object at `key` (a second copy of a bundle stored elsewhere).
    pub async fn remove(&self, key: &str) -> Result<(), Refusal> {
        match self.objects.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(internal("removing a second copy", e)),
        }
    }
}
