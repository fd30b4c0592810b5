//! Taking in an export carried over from an isolated network: every inner bundle is checked and
//! stored as if it had been uploaded (one the index already keeps a receipt for is checked and
//! not stored again), and one signed receipt acknowledges the export, listing the accepted
//! SHA-256s and the rejected bundles with their reasons.
//!
//! The export is read from a file, never from memory: each inner bundle is decompressed into
//! the store's incoming folder while its SHA-256 is computed. An export is refused whole (422)
//! before anything is decompressed when its `export.json` is malformed, names a bundle twice,
//! carries an `export_id` or `install_id` that is no plain token, or declares more bytes than
//! [`ExportLimits::max_unpacked`]; the decompressed bytes are counted against that cap too.
//! Who may send an export is decided by the caller (`admit`).

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{BundleStore, Refusal, zipcheck};
use crate::index::Index;
use crate::store::Accepted;
use callhome_protocol::export::{BUNDLES_DIR, EXPORT_FORMAT, ExportManifest, ManualReceipt, RECEIPT_FORMAT, Rejected};
use callhome_protocol::manifest::MAX_ENTRIES;
use callhome_protocol::receipt::Receipt;
use callhome_protocol::time::{Timestamp, rfc3339};

/// Largest `export.json` read.
const MAX_MANIFEST: u64 = 16 << 20;

/// The bounds of one export.
#[derive(Debug, Clone, Copy)]
pub struct ExportLimits {
    /// Largest inner bundle.
    pub max_bundle: u64,
    /// Most bytes all inner bundles of one export may decompress to.
    pub max_unpacked: u64,
}

impl Default for ExportLimits {
    fn default() -> ExportLimits {
        ExportLimits { max_bundle: crate::DEFAULT_MAX_BODY, max_unpacked: 4 << 30 }
    }
}

/// Whether `s` is a plain identifier (1 to 128 of `A-Z a-z 0-9 . _ -`): export and install
/// ids end up in file names, headers and signed text.
pub fn plain_id(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn unprocessable(reason: String) -> Refusal {
    Refusal { status: 422, reason }
}

/// Reads and checks `export.json` and the archive's entry names.
fn read_manifest<R: Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    limits: &ExportLimits,
) -> Result<ExportManifest, Refusal> {
    if zip.has_duplicate_names() {
        return Err(unprocessable("the export names an entry twice (duplicate entries)".into()));
    }
    if zip.len() > MAX_ENTRIES + 1 {
        return Err(unprocessable(format!("{} entries is more than {}", zip.len(), MAX_ENTRIES + 1)));
    }
    for i in 0..zip.len() {
        let f = zip.by_index_raw(i).map_err(|e| unprocessable(format!("entry {i}: {e}")))?;
        let name = f.name().map_err(|e| unprocessable(format!("entry {i}: {e}")))?;
        if let Some(why) = zipcheck::unsafe_name(&name) {
            return Err(unprocessable(format!("entry {i} ({name:?}) has an unsafe name: {why}")));
        }
    }
    let manifest: ExportManifest = {
        let entry =
            zip.by_name("export.json").map_err(|_| unprocessable("no export.json: not a callhome export".into()))?;
        let mut buf = Vec::new();
        entry.take(MAX_MANIFEST + 1).read_to_end(&mut buf).map_err(|e| unprocessable(format!("export.json: {e}")))?;
        if buf.len() as u64 > MAX_MANIFEST {
            return Err(unprocessable(format!("export.json is larger than {MAX_MANIFEST} bytes")));
        }
        serde_json::from_slice(&buf).map_err(|e| unprocessable(format!("export.json: {e}")))?
    };
    if manifest.format != EXPORT_FORMAT {
        return Err(unprocessable(format!("export format {:?} is not {EXPORT_FORMAT}", manifest.format)));
    }
    if !plain_id(&manifest.export_id) {
        return Err(unprocessable("export.json: export_id must be 1 to 128 letters, digits, '.', '_' or '-'".into()));
    }
    if !plain_id(&manifest.install_id) {
        return Err(unprocessable("export.json: install_id must be 1 to 128 letters, digits, '.', '_' or '-'".into()));
    }
    let mut names = HashSet::new();
    let mut shas = HashSet::new();
    let mut declared = 0u64;
    for b in &manifest.bundles {
        if !names.insert(b.name.as_str()) {
            return Err(unprocessable(format!("export.json lists the bundle {:?} twice", b.name)));
        }
        if !shas.insert(b.sha256.to_ascii_lowercase()) {
            return Err(unprocessable(format!("export.json lists the SHA-256 {} twice", b.sha256)));
        }
        declared = declared.saturating_add(b.size);
    }
    if declared > limits.max_unpacked {
        return Err(unprocessable(format!(
            "export.json lists {declared} bytes of bundles; an export may carry at most {}",
            limits.max_unpacked
        )));
    }
    Ok(manifest)
}

/// What the index holds for a bundle, asked before it is stored: `None`, no row; `Some`, a row,
/// with the receipt it keeps when that reads as one (rows older than receipts in the index keep
/// none; an unreadable one is said in the log).
pub type Known = Option<Option<Receipt>>;

/// Asks `index` what it holds for a bundle, for [`ingest`]'s `known`. It waits on `rt`, so it
/// is called from a thread outside the runtime's workers (an export is taken in a blocking
/// thread) of a runtime whose workers drive the index's connections: a multi-thread one
/// (`Handle::block_on` drives nothing on a current-thread runtime).
pub fn known_in<'a>(rt: &'a tokio::runtime::Handle, index: &'a Index) -> impl Fn(&str) -> Result<Known, Refusal> + 'a {
    move |sha256| {
        let looked = rt.block_on(index.upload_lookup(sha256, None, callhome_protocol::time::now())).map_err(|e| {
            Refusal { status: 503, reason: format!("the receiver's index cannot be read right now: {e}") }
        })?;
        Ok(looked.recorded.then(|| looked.held_receipt(sha256)))
    }
}

/// Checks and stores every bundle of the export at `path` as received at `received_at`;
/// returns the signed receipt and what the store answered for each bundle it accepted.
///
/// `admit` sees the checked `export.json` first and may refuse the export (for an install of
/// another customer); when it returns an install id, every inner bundle's manifest must name it.
/// `known` is asked what the index holds for each bundle before it is stored, as an upload
/// asks: a bundle it keeps a receipt for is checked (and held to the install) and accepted with
/// that receipt, not stored again.
pub fn ingest(
    path: &Path,
    store: &BundleStore,
    limits: &ExportLimits,
    admit: &dyn Fn(&ExportManifest) -> Result<Option<String>, Refusal>,
    known: &dyn Fn(&str) -> Result<Known, Refusal>,
    received_at: Timestamp,
) -> Result<(ManualReceipt, Vec<Accepted>), Refusal> {
    let file =
        std::fs::File::open(path).map_err(|e| Refusal { status: 500, reason: format!("{}: {e}", path.display()) })?;
    ingest_from(std::io::BufReader::new(file), store, limits, admit, known, received_at)
}

/// [`ingest`], the export read from `export` (a received body, in memory or in the spool).
pub fn ingest_from<R: Read + std::io::Seek>(
    export: R,
    store: &BundleStore,
    limits: &ExportLimits,
    admit: &dyn Fn(&ExportManifest) -> Result<Option<String>, Refusal>,
    known: &dyn Fn(&str) -> Result<Known, Refusal>,
    received_at: Timestamp,
) -> Result<(ManualReceipt, Vec<Accepted>), Refusal> {
    let mut zip =
        zip::ZipArchive::new(export).map_err(|e| unprocessable(format!("not a readable export zip ({e})")))?;
    let manifest = read_manifest(&mut zip, limits)?;
    let expected_install = admit(&manifest)?;
    let mut budget = limits.max_unpacked;
    let mut accepted = Vec::new();
    let mut taken = Vec::new();
    let mut rejected = Vec::new();
    for b in &manifest.bundles {
        let reject = |reason: String| Rejected { sha256: b.sha256.clone(), name: b.name.clone(), reason };
        if b.name.contains(['/', '\\'])
            || b.name.starts_with('.')
            || !b.name.ends_with(".zip")
            || zipcheck::unsafe_name(&b.name).is_some()
        {
            rejected.push(reject("an unsafe bundle name".into()));
            continue;
        }
        let entry = match zip.by_name(&format!("{BUNDLES_DIR}{}", b.name)) {
            Ok(entry) => entry,
            Err(_) => {
                rejected.push(reject("listed in export.json but missing from the export".into()));
                continue;
            }
        };
        if entry.size() > limits.max_bundle {
            rejected.push(reject(format!("larger than {} bytes", limits.max_bundle)));
            continue;
        }
        let cap = limits.max_bundle.min(budget);
        let (incoming, file) =
            store.incoming().map_err(|e| Refusal { status: 500, reason: format!("cannot store the bundle: {e}") })?;
        let mut out = HashingWriter { file: std::io::BufWriter::with_capacity(64 * 1024, file), hash: Sha256::new() };
        let copied = std::io::copy(&mut entry.take(cap + 1), &mut out);
        let n = match copied.and_then(|n| out.finish().map(|()| n)) {
            Ok(n) => n,
            Err(e) => {
                rejected.push(reject(format!("unreadable in the export ({e})")));
                continue;
            }
        };
        if n > cap {
            if n > limits.max_bundle {
                rejected.push(reject(format!("larger than {} bytes", limits.max_bundle)));
                continue;
            }
            return Err(unprocessable(format!(
                "the export's bundles decompress to more than {} bytes",
                limits.max_unpacked
            )));
        }
        budget -= n;
        let sha = hex::encode(out.hash.finalize());
        if !sha.eq_ignore_ascii_case(&b.sha256) {
            rejected.push(reject(format!("its SHA-256 is {sha}, not the {} export.json lists", b.sha256)));
            continue;
        }
        let indexed = known(&sha)?;
        if let Some(Some(receipt)) = indexed {
            // Taken before (uploaded, or in another export): stored and indexed. Checked as any
            // bundle of the export is, and accepted with its receipt.
            match crate::store::check_sent_by(&incoming, expected_install.as_deref()) {
                Ok(_) => {
                    accepted.push(sha);
                    taken.push(Accepted { receipt, new: false, size: n, report: Default::default() });
                }
                Err(refusal) if refusal.status >= 500 => return Err(refusal),
                Err(refusal) => rejected.push(reject(refusal.reason)),
            }
            continue;
        }
        match store.accept_file(
            incoming,
            &sha,
            expected_install.as_deref(),
            received_at,
            manifest.ledger_head.clone(),
            indexed.is_none(),
        ) {
            Ok(a) => {
                accepted.push(a.receipt.bundle_sha256.clone());
                taken.push(a);
            }
            Err(refusal) if refusal.status >= 500 => return Err(refusal),
            Err(refusal) => rejected.push(reject(refusal.reason)),
        }
    }
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|e| Refusal { status: 500, reason: format!("no randomness: {e}") })?;
    let receipt = ManualReceipt {
        format: RECEIPT_FORMAT.into(),
        receipt_id: hex::encode(id),
        export_id: manifest.export_id,
        install_id: manifest.install_id,
        received_at: rfc3339(received_at),
        accepted,
        rejected,
        // The export's ledger head, signed back so the agent's ledger is anchored by it.
        ledger_head: manifest.ledger_head,
        signature: String::new(),
    };
    Ok((receipt.sign(store.key()), taken))
}

/// Writes to a file while hashing what passes.
struct HashingWriter {
    file: std::io::BufWriter<std::fs::File>,
    hash: Sha256,
}

impl HashingWriter {
    fn finish(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        self.file.get_ref().sync_all()
    }
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}
