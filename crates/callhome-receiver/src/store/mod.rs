//! The receiver's bundle storage, through the `object_store` crate: a local folder (the embedded
//! default) or a bucket of any S3-compatible service.
//!
//! The layout, the same in a folder and under a bucket's prefix:
//!
//! ```text
//! bundles/YYYY/MM/DD/<install>/<sha256>.zip   the bundle, by the UTC day it was received
//! ceip/YYYY/MM/DD/<sha256>.zip                an anonymous CEIP bundle: under no install
//! receipts/<sha256>.json                      the receipt it got, by SHA-256 alone (in a bucket,
//!                                             not for an upload the index had no row for: below)
//! ```
//!
//! `<install>` is the sending install's id, or the manifest's when the sender was not
//! authenticated (open enrolment, operator exports); `_` when that is no plain id.
//!
//! A body is written into an [`Incoming`] file in the local spool (created exclusively, 0600;
//! `DIR/.incoming/` for a local store, `--spool DIR` or a private temporary folder for S3) and
//! its zip is checked there, so nothing unchecked ever reaches the store and no body larger than
//! the HTTP side's 64 KiB is held in memory; a body held in memory is checked there (and sent
//! to a bucket, or written into a local store that uses `syncfs`, from there, with no spool
//! file). What the fleet view learns from a bundle ([`crate::fleet::report`]) is read from that
//! checked copy ([`Accepted::report`]), so a bucket is never read back.
//!
//! **The order of a write, and why** ([`BundleStore::accept_file`]): (1) the receipt, written
//! create-only to `receipts/<sha256>.json` — or the one found there taken —; (2) the bundle,
//! under the key that receipt fixes (its day, the install, the SHA-256: [`bundle_key_of`]),
//! unless it is there already — renamed into place for a local store, sent to the bucket for S3
//! (one PUT up to [`MULTIPART_OVER`] bytes, else a multipart upload of [`PART_SIZE`] parts, at
//! most two in flight) — a local store's receipt and bundle made durable together by one shared
//! `syncfs` on Linux (see [`local`]: a name a crash left without its bytes was never answered,
//! and is replaced or removed) —; (3) the index row ([`crate::record`]), and only then the
//! answer. So:
//! - an agent holds a receipt only for a bundle that is stored and indexed;
//! - a crash (a replica SIGKILLed, the index lost) after (1) leaves a receipt and maybe a bundle
//!   without a row. The agent got no answer and sends the bundle again; the retry, on any
//!   replica and on any day, takes the receipt kept in (1), finds or stores the bundle under the
//!   same key, and records the row: one object, one row, one receipt;
//! - a bundle whose agent never comes back is recorded by [`crate::reconcile`] (at `serve`'s
//!   start, or `callhome-receiver reconcile`).
//!
//! **In a bucket, an upload the index has no row for skips (1)**: the index was asked first
//! (`unindexed`), so no agent held a receipt for the bundle, and the row written in (3) keeps
//! the new one — the receipt of record on every replica, the one a retry is answered (a
//! replica that recorded the bundle meanwhile wins, and both answer its receipt).
//! The upload is then one PUT, not two (a request each is what a bucket bills and what its
//! latency adds up from). A crash between (2) and (3) leaves a bundle without a row, as above;
//! the retry stores it again under its own receipt's key — the same key on the same UTC day,
//! a second copy on another, which reconciling removes (the copy the index's receipt does not
//! name; `serve` reconciles the last `--reconcile-days` at start, `callhome-receiver reconcile`
//! any span). Anonymous CEIP bundles, whose index lookup is not used before they are checked,
//! keep the order above; so do bundles the index has a row without a receipt for (rows older
//! than receipts in the index). `receipts/` in a bucket then holds those, the index's receipts a
//! replica that lost a race to record a bundle puts there, reconciling's, and ones left by
//! attempts that crashed (never answered).
//!
//! Two replicas taking the same bundle at the same moment may both sign a receipt: in a bucket
//! when the index had no row for it yet (both skip (1)), or when it does not honour create-only
//! writes — the local store and AWS S3 do, Garage 2.5 does not (found out at start:
//! [`BundleStore::open`] probes it; a bucket that honours them is not read before the write,
//! which finds a kept receipt; one that does not is read first). The shared index decides which
//! stands (`ON CONFLICT` on the SHA-256), both answer that one, and
//! [`BundleStore::keep_receipt`] puts it in `receipts/`; were the two on either side of a UTC
//! midnight, the bundle is under two keys, and reconciling removes the copy the standing receipt
//! does not name. Within one process a bundle is taken in by one thread at a time; different
//! bundles go side by side.
//!
//! Local files are 0600 and folders 0700. It knows nothing of HTTP or of who sent a bundle.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig};

use super::{ReceiverError, Refusal, zipcheck};

mod layout;
mod listing;
mod local;
mod receipts;
mod s3;
mod spool;

use crate::fleet::report::{self, Report};
use callhome_protocol::fs::sha256_hex;
use callhome_protocol::receipt::{self, Receipt};
use callhome_protocol::time::{Timestamp, rfc3339};
pub use layout::{StoreSpec, bundle_key, bundle_key_of, ceip_key, receipt_key};
use s3::upload_file;
use spool::{Busy, create_private};
pub use spool::{Incoming, create_private_dir};

/// Where bodies are received before they are checked, in a local store.
const INCOMING: &str = ".incoming";
/// Bodies up to this size go to S3 in one PUT; larger ones as a multipart upload.
pub const MULTIPART_OVER: u64 = 8 << 20;
/// The part size of a multipart upload (S3's smallest is 5 MiB).
pub const PART_SIZE: usize = 5 << 20;

/// Checks the received zip and reads its manifest (422 when it is no acceptable bundle).
fn check(incoming: &Incoming) -> Result<callhome_protocol::manifest::Manifest, Refusal> {
    let opened = incoming.open().map_err(|e| internal("reopening the received body", e))?;
    zipcheck::check_zip(opened).map_err(|reason| Refusal { status: 422, reason })
}

/// Checks the received bundle `incoming` ([`check`]); with `install_id`, its manifest must name
/// that install (403 when it names another).
pub fn check_sent_by(
    incoming: &Incoming,
    install_id: Option<&str>,
) -> Result<callhome_protocol::manifest::Manifest, Refusal> {
    let manifest = check(incoming)?;
    if let Some(id) = install_id
        && manifest.install_id != id
    {
        let named = if manifest.install_id.is_empty() {
            "no install (an anonymous CEIP bundle: send it without a token)".to_string()
        } else {
            format!("install {:?}", manifest.install_id)
        };
        return Err(Refusal {
            status: 403,
            reason: format!("the bundle's manifest names {named}, not the sending install {id:?}"),
        });
    }
    Ok(manifest)
}

/// [`check`], with the archive held to its manifest's listing (for a sender nothing vouches for).
fn check_as_listed(incoming: &Incoming) -> Result<callhome_protocol::manifest::Manifest, Refusal> {
    let opened = incoming.open().map_err(|e| internal("reopening the received body", e))?;
    zipcheck::check_zip_as_listed(opened).map_err(|reason| Refusal { status: 422, reason })
}

/// How the store's async client is driven from the blocking code that checks bundles.
enum Driver {
    /// The runtime the store was opened in (its calls come from blocking threads).
    Shared(tokio::runtime::Handle),
    /// A runtime of its own, when opened outside one (the CLI's ingest).
    Own(tokio::runtime::Runtime),
}

/// The receiver's storage: bundles, and the receipt given for each.
pub struct BundleStore {
    spec: StoreSpec,
    objects: Arc<dyn ObjectStore>,
    /// The prefix every key is under (a bucket's PREFIX; empty for a folder).
    root: String,
    /// Where bodies are received and checked.
    spool: PathBuf,
    /// The private temporary spool, removed with the store.
    _spool_dir: Option<tempfile::TempDir>,
    driver: Driver,
    key: SigningKey,
    /// The bundles being taken in by this process: one at a time per SHA-256, so one bundle
    /// gets one receipt (across replicas the index decides).
    busy: Busy,
    /// Whether a bucket honours create-only writes (found out at open), so a receipt kept there
    /// need not be looked for before one is written (unused for a local store, whose kept
    /// receipt is always looked for first: a failed open, cheap).
    create_only: bool,
    /// A local store's syncs: one `syncfs` (Linux) or folder fsyncs, shared by the uploads
    /// waiting at the same time.
    dirs: local::DirSync,
    /// The newest agent release to advertise in receipts.
    latest: Option<receipt::LatestAgent>,
    /// The newest product release to advertise in receipts (to agents that send their ledger
    /// head: older agents cannot check a receipt with fields they do not know).
    latest_product: Option<receipt::LatestRelease>,
}

/// A bundle taken into the store (or found there already).
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The receipt given for it (the one given before, for a bundle stored already).
    pub receipt: Receipt,
    /// Whether this call stored it.
    pub new: bool,
    /// Its size in bytes.
    pub size: u64,
    /// What it tells the fleet view, read from the checked copy (in the spool or in memory)
    /// before it was stored (so the store is never read back).
    pub report: Report,
}

/// A stored object, as listed.
#[derive(Debug, Clone)]
pub struct StoredObject {
    /// Its key (under the store's prefix).
    pub key: String,
    pub size: u64,
    /// When it was written (Unix seconds).
    pub modified: Timestamp,
}

pub(super) fn internal(what: &str, e: impl std::fmt::Display) -> Refusal {
    Refusal { status: 500, reason: format!("cannot store the bundle ({what}): {e}") }
}

/// A store error at start, said with where and what to do.
fn s3_error(spec: &StoreSpec, what: &str, e: impl std::fmt::Display) -> ReceiverError {
    ReceiverError::Io(format!(
        "--store {spec}: {what}: {e}. Check the bucket exists and that AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, \
         AWS_SECRET_ACCESS_KEY and AWS_REGION (and AWS_ALLOW_HTTP=true for a plain-HTTP endpoint) name a key \
         allowed to read and write it"
    ))
}

impl BundleStore {
    /// Opens a local store in `dir` (the embedded default).
    pub fn open_local(dir: &Path, key: SigningKey) -> Result<BundleStore, ReceiverError> {
        BundleStore::open(&StoreSpec::Local(dir.to_path_buf()), None, key)
    }

    /// Opens the store `spec`, receiving bodies in `spool` (a local store's `.incoming/` by
    /// default; a private temporary folder for S3). An S3 store is tried at once — listed, and
    /// a probe object written and removed — so wrong credentials or a missing bucket stop the
    /// start with a message instead of failing the first upload.
    pub fn open(spec: &StoreSpec, spool: Option<&Path>, key: SigningKey) -> Result<BundleStore, ReceiverError> {
        let driver = match tokio::runtime::Handle::try_current() {
            Ok(h) => Driver::Shared(h),
            Err(_) => Driver::Own(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .map_err(|e| ReceiverError::Io(format!("cannot start the store's runtime: {e}")))?,
            ),
        };
        let mut dirs = local::DirSync::default();
        let spool_err = |dir: &Path, e: io::Error| ReceiverError::Io(format!("--spool {}: {e}", dir.display()));
        let (objects, root, spool, spool_dir): (Arc<dyn ObjectStore>, _, _, _) = match spec {
            StoreSpec::Local(dir) => {
                let err = |e: io::Error| ReceiverError::Io(format!("store {}: {e}", dir.display()));
                create_private_dir(dir).map_err(err)?;
                dirs = local::DirSync::for_store(dir).map_err(err)?;
                let fs = LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| ReceiverError::Io(format!("store {}: {e}", dir.display())))?
                    .with_fsync(true);
                let spool = spool.map(Path::to_path_buf).unwrap_or_else(|| dir.join(INCOMING));
                create_private_dir(&spool).map_err(|e| spool_err(&spool, e))?;
                // Receipts are written through a temporary name on the store's file system.
                create_private_dir(&dir.join(INCOMING)).map_err(err)?;
                (Arc::new(fs), String::new(), spool, None)
            }
            StoreSpec::S3 { bucket, prefix } => {
                let s3 = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(RetryConfig {
                        max_retries: 3,
                        retry_timeout: std::time::Duration::from_secs(30),
                        ..Default::default()
                    })
                    .build()
                    .map_err(|e| s3_error(spec, "cannot configure the S3 client", e))?;
                let (spool, dir) = match spool {
                    Some(p) => {
                        create_private_dir(p).map_err(|e| spool_err(p, e))?;
                        (p.to_path_buf(), None)
                    }
                    None => {
                        let t = tempfile::Builder::new().prefix("callhome-receiver-spool-").tempdir().map_err(|e| {
                            ReceiverError::Io(format!("cannot make a spool folder (give --spool DIR): {e}"))
                        })?;
                        create_private_dir(t.path()).map_err(|e| spool_err(t.path(), e))?;
                        (t.path().to_path_buf(), Some(t))
                    }
                };
                (Arc::new(s3), prefix.clone(), spool, dir)
            }
        };
        let mut store = BundleStore {
            spec: spec.clone(),
            objects,
            root,
            spool,
            _spool_dir: spool_dir,
            driver,
            key,
            busy: Busy::default(),
            dirs,
            create_only: false,
            latest: None,
            latest_product: None,
        };
        if matches!(spec, StoreSpec::S3 { .. }) {
            store.create_only = store.probe()?;
        }
        Ok(store)
    }

    /// Lists the prefix and writes, then removes, a probe object; answers whether the service
    /// honours create-only writes.
    fn probe(&self) -> Result<bool, ReceiverError> {
        let root = (!self.root.is_empty()).then(|| ObjectPath::from(self.root.as_str()));
        self.block_on(self.objects.list_with_delimiter(root.as_ref()))
            .map_err(|e| s3_error(&self.spec, "cannot list the bucket", e))?;
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).map_err(|e| ReceiverError::Io(format!("no randomness: {e}")))?;
        let probe = self.path(&format!("probe/{}", hex::encode(id)));
        let create = || PutOptions { mode: PutMode::Create, ..Default::default() };
        let body = || PutPayload::from_static(b"callhome-receiver probe");
        self.block_on(self.objects.put_opts(&probe, body(), create()))
            .map_err(|e| s3_error(&self.spec, "cannot write to the bucket", e))?;
        // Whether the service honours create-only writes (If-None-Match: *): AWS S3 does; some
        // S3-compatible services (Garage 2.5) overwrite anyway.
        let second = self.block_on(self.objects.put_opts(&probe, body(), create()));
        self.block_on(self.objects.delete(&probe))
            .map_err(|e| s3_error(&self.spec, "cannot delete from the bucket", e))?;
        if second.is_ok() {
            tracing::warn!(
                "--store {}: the service does not honour create-only writes (If-None-Match); one receiver \
                 still gives one receipt per bundle, but replicas sharing this bucket rely on their shared index for it",
                self.spec
            );
        }
        Ok(matches!(second, Err(object_store::Error::AlreadyExists { .. })))
    }

    fn block_on<F: Future>(&self, f: F) -> F::Output {
        match &self.driver {
            Driver::Shared(h) => h.block_on(f),
            Driver::Own(rt) => rt.block_on(f),
        }
    }

    /// The object path of `key` under the store's prefix.
    fn path(&self, key: &str) -> ObjectPath {
        if self.root.is_empty() { ObjectPath::from(key) } else { ObjectPath::from(format!("{}/{key}", self.root)) }
    }

    /// Advertise this agent release in new receipts.
    pub fn advertise(mut self, latest: Option<receipt::LatestAgent>) -> BundleStore {
        self.latest = latest;
        self
    }

    /// Advertise this product release in new receipts (to agents that send their ledger head).
    pub fn advertise_product(mut self, latest: Option<receipt::LatestRelease>) -> BundleStore {
        self.latest_product = latest;
        self
    }

    /// What the store is (`--store`).
    pub fn spec(&self) -> &StoreSpec {
        &self.spec
    }

    /// A local folder for what the receiver keeps beside the bundles (the self-signed TLS
    /// identity, the default index): the store's folder, or the spool for S3.
    pub fn local_dir(&self) -> &Path {
        self.spec.local_dir().unwrap_or(&self.spool)
    }

    /// The receipt-signing key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// A new, empty file to receive a body into, and its open handle.
    pub fn incoming(&self) -> io::Result<(Incoming, File)> {
        let path = part_name(&self.spool)?;
        let file = create_private(&path)?;
        Ok((Incoming { path: Some(path), held: None }, file))
    }

    /// A body received into memory, as an [`Incoming`]: written to the spool (and fsynced) only
    /// when [`BundleStore::spool_copy_is_stored`].
    pub fn incoming_holding(&self, bytes: Vec<u8>) -> Result<Incoming, Refusal> {
        if !self.spool_copy_is_stored() {
            return Ok(Incoming { path: None, held: Some(bytes) });
        }
        let (mut incoming, mut file) = self.incoming().map_err(|e| internal("the spool", e))?;
        file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(|e| internal("the spool", e))?;
        incoming.held = Some(bytes);
        Ok(incoming)
    }

    /// Whether the spool copy of a body is the one that ends up stored: renamed into a local
    /// store that makes each file durable on its own. Then a body is written to the spool and
    /// fsynced before it is taken in. Otherwise nothing is fsynced there, and a body held in
    /// memory gets no spool file at all: a bucket keeps its own copy (sent from memory), and a
    /// local store made durable by one `syncfs` per upload has it written in place.
    pub fn spool_copy_is_stored(&self) -> bool {
        matches!(self.spec, StoreSpec::Local(_)) && !self.dirs.whole_fs()
    }

    /// Takes the received file `incoming` (fsynced when [`BundleStore::spool_copy_is_stored`])
    /// whose SHA-256 is `sha256` into the store as received at `received_at`. The zip is checked (and, with `install_id`, its manifest must
    /// name that install: 403 when it names another); then, under this bundle's lock:
    ///
    /// 1. the receipt already in `receipts/` is taken when there is one (a replica gave it, or
    ///    crashed before it stored the bundle or recorded it); otherwise a new one is signed,
    ///    with the sender's ledger `head` when it gave one, and written create-only (a receipt
    ///    found there instead is taken);
    /// 2. the bundle is stored under the key the receipt fixes ([`bundle_key_of`]: its day,
    ///    the install, the SHA-256) unless it is there already — so a retry after a crash, on
    ///    any replica and on any day, stores the bundle once, in one place (in a bucket, see
    ///    `unindexed` below).
    ///
    /// The caller then records it in the index ([`crate::record`]); only after that is a receipt
    /// answered, so an agent never holds a receipt whose bundle is not stored and indexed. A
    /// crash between 2 and the index leaves a bundle without an index row:
    /// [`crate::reconcile`] indexes it. What the bundle tells the fleet view is read from the
    /// spool copy.
    ///
    /// `unindexed`: the shared index was asked before (an upload: with its token, before the
    /// body was received) and held no row for this bundle, so no receipt for it had been
    /// answered. In a bucket the index alone then keeps the new receipt (its row, written by
    /// the caller): `receipts/` is neither read nor written, and the upload is one PUT. A
    /// receipt an attempt that crashed left there was never answered and stays unused; a retry
    /// on another UTC day stores the bundle under that day, and [`crate::reconcile`] removes
    /// the copy the index's receipt does not name.
    pub fn accept_file(
        &self,
        incoming: Incoming,
        sha256: &str,
        install_id: Option<&str>,
        received_at: Timestamp,
        head: Option<receipt::LedgerHead>,
        unindexed: bool,
    ) -> Result<Accepted, Refusal> {
        // The check runs outside the lock: uploads of different bundles are checked side by side.
        let manifest = check_sent_by(&incoming, install_id)?;
        let install = (!manifest.is_anonymous_ceip()).then(|| install_id.unwrap_or(&manifest.install_id));
        self.store_new(incoming, sha256, install, received_at, head, unindexed)
    }

    /// Takes an anonymous upload (no token, no install): only an anonymous CEIP bundle
    /// ([`Manifest::is_anonymous_ceip`](callhome_protocol::manifest::Manifest::is_anonymous_ceip)),
    /// checked before anything else (so an anonymous sender learns nothing of other bundles), is
    /// stored, under [`ceip_key`], and receipted without a ledger head; anything else is 401.
    pub fn accept_anonymous_ceip(
        &self,
        incoming: Incoming,
        sha256: &str,
        received_at: Timestamp,
    ) -> Result<Accepted, Refusal> {
        let manifest = check(&incoming)?;
        if !manifest.is_anonymous_ceip() {
            return Err(Refusal {
                status: 401,
                reason: "only an anonymous CEIP bundle (program ceip, a CEIP id, no install id) may be sent without a token; enrol the install with a token from the vendor (`callhome register --token-stdin`)".into(),
            });
        }
        // Then the archive must be what its manifest lists: a CEIP label on any other zip stores nothing.
        check_as_listed(&incoming)?;
        self.store_new(incoming, sha256, None, received_at, None, false)
    }

    /// Receipts a checked bundle and stores it under the key the receipt fixes for `install`
    /// (`None`: anonymous CEIP), in the order [`BundleStore::accept_file`] gives.
    fn store_new(
        &self,
        incoming: Incoming,
        sha256: &str,
        install: Option<&str>,
        received_at: Timestamp,
        head: Option<receipt::LedgerHead>,
        unindexed: bool,
    ) -> Result<Accepted, Refusal> {
        let size = incoming.size().map_err(|e| internal("reading the received body", e))?;
        let report = read_report(&incoming);
        let _g = self.busy.lock(sha256);
        // In a bucket, the index said it held no row for this bundle (`unindexed`): the index
        // alone keeps the receipt, and `receipts/` is left alone. Had a replica recorded it
        // since, the index answers that one's receipt when this one is recorded.
        let index_only = matches!(self.spec, StoreSpec::S3 { .. }) && unindexed;
        // Otherwise a bucket that honours create-only writes is not asked first: the write below
        // finds the receipt kept there. One that does not (Garage) is, or the write would replace
        // a receipt an agent may hold.
        let look_first = match self.spec {
            StoreSpec::Local(_) => true,
            StoreSpec::S3 { .. } => !self.create_only && !index_only,
        };
        let kept = if look_first { self.receipt_for(sha256)? } else { None };
        let (receipt, new) = match kept {
            Some(r) => {
                // Kept by an attempt that may have failed before its folder's fsync.
                self.settle(&receipt_key(sha256))?;
                (r, false)
            }
            None => {
                let mut id = [0u8; 16];
                getrandom::fill(&mut id).map_err(|e| internal("randomness", e))?;
                // The fields added after v1's first receipts go only to agents that send their head.
                let latest_product = head.as_ref().and(self.latest_product.clone());
                let extras = receipt::Extras { latest_agent: self.latest.clone(), ledger_head: head, latest_product };
                let receipt =
                    Receipt::sign(&self.key, hex::encode(id), sha256.to_string(), rfc3339(received_at), extras);
                let theirs = if index_only { None } else { self.put_receipt(sha256, &receipt)? };
                match theirs {
                    // Another replica receipted this bundle first: its receipt stands.
                    Some(theirs) => (theirs, false),
                    None => (receipt, true),
                }
            }
        };
        let key = bundle_key_of(&receipt, install)?;
        if new || !self.holds(&key, sha256)? {
            self.put_bundle(incoming, &key)?;
        } else {
            self.settle(&key)?;
        }
        // Answered only once all of it is on disk (one shared `syncfs` for a local store on Linux).
        self.dirs.sync_fs().map_err(|e| internal("syncfs", e))?;
        Ok(Accepted { receipt, new, size, report })
    }

    /// Makes a name found in a local store durable (see [`local::settle`]); an S3 store's
    /// objects are durable once written.
    fn settle(&self, key: &str) -> Result<(), Refusal> {
        match &self.spec {
            StoreSpec::Local(dir) => local::settle(&self.dirs, dir, key).map_err(|e| internal("fsync", e)),
            StoreSpec::S3 { .. } => Ok(()),
        }
    }

    /// Whether the bundle `sha256` is stored at `key`: in a local store, read back and hashed (a
    /// crash before its `syncfs` may have left the name without the bytes); in a bucket, whose
    /// objects appear whole or not at all, there.
    fn holds(&self, key: &str, sha256: &str) -> Result<bool, Refusal> {
        if let StoreSpec::Local(dir) = &self.spec {
            return local::holds(dir, key, sha256).map_err(|e| internal("looking for the stored bundle", e));
        }
        match self.block_on(self.objects.head(&self.path(key))) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(internal("looking for the stored bundle", e)),
        }
    }

    /// Moves the checked file into the store at `key`.
    fn put_bundle(&self, mut incoming: Incoming, key: &str) -> Result<(), Refusal> {
        let to = self.path(key);
        match &self.spec {
            StoreSpec::Local(dir) => match incoming.held.take() {
                // Never written to the spool (see `incoming_holding`): written in place.
                Some(bytes) if !self.spool_copy_is_stored() => {
                    local::write_in_place(dir, key, &bytes).map_err(|e| internal("writing it into the store", e))
                }
                _ => {
                    let tmp = part_name(&dir.join(INCOMING)).map_err(|e| internal("randomness", e))?;
                    local::move_into(&self.dirs, dir, incoming.path(), key, &tmp)
                        .map_err(|e| internal("moving it into the store", e))
                }
            },
            StoreSpec::S3 { .. } => match incoming.held.take() {
                Some(bytes) => {
                    self.block_on(self.objects.put(&to, PutPayload::from(bytes))).map_err(|e| internal("upload", e))?;
                    Ok(())
                }
                None => self.block_on(upload_file(self.objects.as_ref(), incoming.path(), &to)),
            },
        }
    }

    /// Checks and stores a bundle held in memory (tests and small tools); the same rules as
    /// [`BundleStore::accept_file`].
    pub fn accept(
        &self,
        body: &[u8],
        claimed_sha256: Option<&str>,
        received_at: Timestamp,
    ) -> Result<(Receipt, bool), Refusal> {
        let sha = sha256_hex(body);
        if let Some(claimed) = claimed_sha256
            && !claimed.eq_ignore_ascii_case(&sha)
        {
            return Err(Refusal {
                status: 422,
                reason: format!("the body's SHA-256 is {sha}, not the Idempotency-Key {claimed}"),
            });
        }
        let incoming = self.incoming_holding(body.to_vec())?;
        self.accept_file(incoming, &sha, None, received_at, None, false).map(|a| (a.receipt, a.new))
    }
}

/// A new file name in the spool folder `dir`, for a body or a temporary copy.
fn part_name(dir: &Path) -> io::Result<PathBuf> {
    let mut id = [0u8; 12];
    getrandom::fill(&mut id).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(dir.join(format!("{}.part", hex::encode(id))))
}

/// What the checked bundle in the spool tells the fleet view; nothing when it cannot be read (it
/// was accepted: the view just learns less from it).
fn read_report(incoming: &Incoming) -> Report {
    let opened = incoming.open().map_err(|e| format!("{}: {e}", incoming.path().display()));
    opened.and_then(report::read_zip).unwrap_or_else(|e| {
        tracing::warn!("the fleet view learns nothing from a received bundle: {e}");
        Report::default()
    })
}
