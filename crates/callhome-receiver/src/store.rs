//! The receiver's bundle storage on the local filesystem: bundles as `DIR/<sha256>.zip` beside
//! the receipt given for each (`DIR/<sha256>.receipt.json`), and `DIR/.incoming/` for bodies
//! being received.
//!
//! A body is streamed into an [`Incoming`] file (created exclusively, 0600) and checked there;
//! only a checked bundle is renamed into place, and its receipt is written atomically, so the
//! store never holds half a bundle, and a failed or abandoned upload leaves nothing behind.
//! Files are 0600 and folders 0700. It knows nothing of HTTP or of who sent a bundle.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ed25519_dalek::SigningKey;

use super::{ReceiverError, Refusal, zipcheck};
use callhome_protocol::fs::{self as fsutil, sha256_hex};
use callhome_protocol::manifest::Manifest;
use callhome_protocol::receipt::{self, Receipt};
use callhome_protocol::time::{now, rfc3339};

/// Where bodies are received before they are checked.
const INCOMING: &str = ".incoming";

/// The receiver's storage: bundles by SHA-256, and the receipt given for each.
pub struct BundleStore {
    dir: PathBuf,
    key: SigningKey,
    /// Serialises acceptance so one bundle gets one receipt.
    lock: Mutex<()>,
    /// The newest agent release to advertise in receipts.
    latest: Option<receipt::LatestAgent>,
    /// The newest product release to advertise in receipts (to agents that send their ledger
    /// head: older agents cannot check a receipt with fields they do not know).
    latest_product: Option<receipt::LatestRelease>,
}

/// A file being received in `.incoming/`: removed when dropped unless it was taken into the
/// store.
pub struct Incoming {
    path: PathBuf,
}

impl Incoming {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Creates `dir` (and its parents) readable by the owner only.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Opens a new file exclusively, mode 0600.
fn create_private(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// Replaces `path` with `bytes` atomically, mode 0600.
fn write_private_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = fsutil::parent_dir(path);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.{:08x}.tmp", std::process::id(), fastrand::u32(..)));
    let result = (|| {
        let mut f = create_private(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fsutil::sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn internal(what: &str, e: impl std::fmt::Display) -> Refusal {
    Refusal { status: 500, reason: format!("cannot store the bundle ({what}): {e}") }
}

impl BundleStore {
    pub fn open(dir: &Path, key: SigningKey) -> Result<BundleStore, ReceiverError> {
        let err = |e: io::Error| ReceiverError::Io(format!("store {}: {e}", dir.display()));
        create_private_dir(dir).map_err(err)?;
        create_private_dir(&dir.join(INCOMING)).map_err(err)?;
        Ok(BundleStore { dir: dir.to_path_buf(), key, lock: Mutex::new(()), latest: None, latest_product: None })
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

    /// The store's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The receipt-signing key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// A new, empty file to receive a body into, and its open handle.
    pub fn incoming(&self) -> io::Result<(Incoming, File)> {
        let mut id = [0u8; 12];
        getrandom::fill(&mut id).map_err(|e| io::Error::other(e.to_string()))?;
        let path = self.dir.join(INCOMING).join(format!("{}.part", hex::encode(id)));
        let file = create_private(&path)?;
        Ok((Incoming { path }, file))
    }

    /// The receipt already given for `sha256`, if any.
    pub fn receipt_for(&self, sha256: &str) -> Option<Receipt> {
        let bytes = fs::read(self.dir.join(format!("{sha256}.receipt.json"))).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Replaces the receipt kept beside a stored bundle with `r`: the receipt the index holds,
    /// when another replica sharing this store recorded the bundle first.
    pub fn keep_receipt(&self, r: &Receipt) -> io::Result<()> {
        let json = serde_json::to_vec(r).map_err(io::Error::other)?;
        write_private_atomic(&self.dir.join(format!("{}.receipt.json", r.bundle_sha256)), &json)
    }

    /// Takes the received, fsynced file `incoming` whose SHA-256 is `sha256` into the store:
    /// the same bundle again gets the receipt it got before; otherwise the zip is checked (and,
    /// with `install_id`, its manifest must name that install: 403 when it names another), the
    /// file is renamed into place and a new receipt is signed, with the sender's ledger `head`
    /// when it gave one. Returns the receipt and whether the bundle was new.
    pub fn accept_file(
        &self,
        incoming: Incoming,
        sha256: &str,
        install_id: Option<&str>,
        head: Option<receipt::LedgerHead>,
    ) -> Result<(Receipt, bool, Option<Manifest>), Refusal> {
        if let Some(r) = self.receipt_for(sha256) {
            return Ok((r, false, None));
        }
        // The check runs outside the lock: uploads of different bundles are checked side by side.
        let file = File::open(incoming.path()).map_err(|e| internal("reopening the received body", e))?;
        let manifest = zipcheck::check_zip(io::BufReader::with_capacity(64 * 1024, file))
            .map_err(|reason| Refusal { status: 422, reason })?;
        if let Some(id) = install_id
            && manifest.install_id != id
        {
            return Err(Refusal {
                status: 403,
                reason: format!(
                    "the bundle's manifest names install {:?}, not the sending install {id:?}",
                    manifest.install_id
                ),
            });
        }
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = self.receipt_for(sha256) {
            return Ok((r, false, Some(manifest)));
        }
        fs::rename(incoming.path(), self.dir.join(format!("{sha256}.zip"))).map_err(|e| internal("rename", e))?;
        fsutil::sync_dir(&self.dir).map_err(|e| internal("fsync", e))?;
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| internal("randomness", e))?;
        // The fields added after v1's first receipts go only to agents that send their head.
        let latest_product = head.as_ref().and(self.latest_product.clone());
        let extras = receipt::Extras { latest_agent: self.latest.clone(), ledger_head: head, latest_product };
        let receipt = Receipt::sign(&self.key, hex::encode(id), sha256.to_string(), rfc3339(now()), extras);
        let json = serde_json::to_vec(&receipt).map_err(|e| internal("receipt", e))?;
        write_private_atomic(&self.dir.join(format!("{sha256}.receipt.json")), &json)
            .map_err(|e| internal("receipt", e))?;
        Ok((receipt, true, Some(manifest)))
    }

    /// Checks and stores a bundle held in memory (the CLI's ingest of small bundles and tests);
    /// the same rules as [`BundleStore::accept_file`].
    pub fn accept(&self, body: &[u8], claimed_sha256: Option<&str>) -> Result<(Receipt, bool), Refusal> {
        let sha = sha256_hex(body);
        if let Some(claimed) = claimed_sha256
            && !claimed.eq_ignore_ascii_case(&sha)
        {
            return Err(Refusal {
                status: 422,
                reason: format!("the body's SHA-256 is {sha}, not the Idempotency-Key {claimed}"),
            });
        }
        let (incoming, mut file) = self.incoming().map_err(|e| internal("incoming", e))?;
        file.write_all(body).and_then(|()| file.sync_all()).map_err(|e| internal("incoming", e))?;
        drop(file);
        self.accept_file(incoming, &sha, None, None).map(|(r, new, _)| (r, new))
    }

    /// A receipt with the same fields, signed with another key (the `bad-signature` fault).
    pub fn sign_with(&self, r: &Receipt, key: &SigningKey) -> Receipt {
        Receipt::sign(key, r.receipt_id.clone(), r.bundle_sha256.clone(), r.received_at.clone(), r.extras())
    }
}
