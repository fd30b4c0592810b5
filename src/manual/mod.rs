//! Manual reporting for isolated networks: export the pending bundles as one zip, carry it out,
//! bring back the receiver's signed receipt and import it.
//!
//! An export is written streaming (bundles stored as they are, SHA-256 taken on the way) and
//! never over an existing file; it is remembered in the state so a receipt can be matched to it.
//! Importing checks the receipt's signature, that it is for this installation and for one of its
//! exports, then records each acknowledged bundle in the ledger (at the receipt's time, which
//! moves the compliance clock) before deleting it. A receipt that fails any check changes nothing;
//! importing one twice is harmless. No network here.
//!
//! CEIP bundles are never exported ([`CEIP_NOT_EXPORTED`]): CEIP must not be joinable to the
//! install, and an export, its `export.json` and its receipt all name the install.

pub use callhome_protocol::export as format;

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use format::{BUNDLES_DIR, EXPORT_FORMAT, ExportManifest, ExportedBundle, ManualReceipt, Rejected};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::agent::{Agent, AgentError, Notice};
use crate::clock::{parse_rfc3339, rfc3339};
use crate::programs::Program;
use crate::receipt::{LedgerHead, load_public_key};
use crate::store::{Attempt, LedgerEntry, LedgerEvent};
use crate::upload::Code;

#[derive(Debug, thiserror::Error)]
pub enum ManualError {
    #[error("{path} exists; choose another --out (an export never overwrites a file)")]
    Exists { path: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The receipt cannot be used; nothing was changed.
    #[error("{0}; nothing was changed")]
    Receipt(String),
    /// One bundle does not fit in a part of the size asked for; nothing was written.
    #[error(
        "bundle {name} is {size} bytes: with the export's own {overhead} bytes (zip headers and export.json) it does not fit in a part of {max} bytes; nothing was written. Choose a --max-size of at least {needed} bytes"
    )]
    TooLarge { name: String, size: u64, overhead: u64, max: u64, needed: u64 },
}

impl From<crate::store::StoreError> for ManualError {
    fn from(e: crate::store::StoreError) -> Self {
        ManualError::Agent(AgentError::Store(e))
    }
}

impl From<crate::spool::SpoolError> for ManualError {
    fn from(e: crate::spool::SpoolError) -> Self {
        ManualError::Agent(AgentError::Spool(e))
    }
}

type Result<T> = std::result::Result<T, ManualError>;

/// Why CEIP bundles are never exported, and what to do on a network that never reaches the
/// receiver.
pub const CEIP_NOT_EXPORTED: &str = "CEIP bundles are not exported: an export is tied to this install (its export.json and its receipt name it), and CEIP must not be; they are sent only by an online upload, anonymously. On a network that never reaches the receiver, turn CEIP off with `callhome programs set ceip off` (its pending bundles are withdrawn)";

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    pub export_id: String,
    pub path: PathBuf,
    pub bundles: Vec<ExportedBundle>,
    pub bytes: u64,
}

/// Progress of a long export: (bytes done, bytes in all).
pub type Progress = Box<dyn Fn(u64, u64) + Send + Sync>;

/// Exports the pending bundles (of `only`, or of every program whose consent allows sending)
/// into a new zip at `out`; with `max_size`, into as many parts as needed (`NAME.part1.zip`, …),
/// each a whole export with its own manifest and no larger than `max_size` bytes, its zip
/// headers and `export.json` counted. A bundle that cannot fit in a part alone is an error
/// naming it, before anything is written.
pub async fn export(
    agent: &Agent,
    out: &Path,
    only: Option<Program>,
    max_size: Option<u64>,
    progress: Progress,
) -> Result<Vec<Exported>> {
    if only == Some(Program::Ceip) {
        return Err(ManualError::Agent(AgentError::Refused(CEIP_NOT_EXPORTED.into())));
    }
    let _w = agent.work_lock().await?;
    let consent = agent.consent()?;
    let mut pending = Vec::new();
    // CEIP stays out: an export is the install's (its export.json and receipt name the install).
    for p in Program::ALL.into_iter().filter(|p| *p != Program::Ceip && only.is_none_or(|o| o == *p)) {
        if p.mandatory() || consent.enabled(p) {
            pending.extend(agent.pending(p)?);
        }
    }
    let created_at = rfc3339(agent.now());
    // The ledger's head goes into every part: the receiver signs it into the manual receipt.
    let head = agent.ledger_head()?;
    let parts = split(pending, max_size, &agent.install().install_id, &created_at, &head)?;
    let paths: Vec<PathBuf> = if parts.len() <= 1 {
        vec![out.to_path_buf()]
    } else {
        let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "export".into());
        (1..=parts.len()).map(|i| out.with_file_name(format!("{stem}.part{i}.zip"))).collect()
    };
    if let Some(existing) = paths.iter().find(|p| p.exists()) {
        return Err(ManualError::Exists { path: existing.clone() });
    }
    let total: u64 = parts.iter().flatten().map(|p| p.size).sum();
    let progress = Arc::new(progress);
    let mut done_before = 0u64;
    let mut out_list = Vec::new();
    for (part, path) in parts.into_iter().zip(paths) {
        let mut id = [0u8; 8];
        getrandom::fill(&mut id)
            .map_err(|e| ManualError::Io { path: path.clone(), source: io::Error::other(e.to_string()) })?;
        let manifest = ExportManifest {
            format: EXPORT_FORMAT.into(),
            export_id: hex::encode(id),
            install_id: agent.install().install_id.clone(),
            created_at: created_at.clone(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
            bundles: Vec::new(),
            ledger_head: Some(head.clone()),
        };
        let part_bytes: u64 = part.iter().map(|p| p.size).sum();
        let (p2, prog, base) = (path.clone(), progress.clone(), done_before);
        let written = tokio::task::spawn_blocking(move || {
            write_export(&p2, manifest, &part, Box::new(move |d, _| prog(base + d, total)))
        })
        .await
        .expect("the export writer does not panic");
        let manifest = match written {
            Ok(m) => m,
            Err(e) => {
                if !matches!(e, ManualError::Exists { .. }) {
                    let _ = std::fs::remove_file(&path);
                }
                return Err(e);
            }
        };
        done_before += part_bytes;
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if let Some(max) = max_size.filter(|m| bytes > *m) {
            // The bound in `part_size` is an upper bound; this never happens unless it is wrong.
            let _ = std::fs::remove_file(&path);
            return Err(ManualError::Io {
                path,
                source: io::Error::other(format!("the part came out at {bytes} bytes, over --max-size {max}; removed")),
            });
        }
        let json = serde_json::to_string(&manifest.bundles).expect("bundle lists serialize");
        agent.record_export(&manifest.export_id, agent.now(), &json)?;
        out_list.push(Exported { export_id: manifest.export_id, path, bundles: manifest.bundles, bytes });
    }
    Ok(out_list)
}

/// Groups bundles, in order, into parts whose whole zip stays within `max` bytes (see
/// [`part_size`]).
fn split(
    pending: Vec<crate::spool::Pending>,
    max: Option<u64>,
    install_id: &str,
    created_at: &str,
    head: &LedgerHead,
) -> Result<Vec<Vec<crate::spool::Pending>>> {
    let Some(max) = max else { return Ok(vec![pending]) };
    let base = part_base(install_id, created_at, head);
    let mut parts: Vec<Vec<crate::spool::Pending>> = vec![Vec::new()];
    let mut size = base;
    for p in pending {
        let add = entry_size(&p.name, p.program, p.size);
        if base + add > max {
            return Err(ManualError::TooLarge {
                name: p.name.clone(),
                size: p.size,
                overhead: base + add - p.size,
                max,
                needed: base + add,
            });
        }
        if size + add > max {
            parts.push(Vec::new());
            size = base;
        }
        size += add;
        parts.last_mut().expect("a part exists").push(p);
    }
    Ok(parts)
}

/// Zip's fixed records (end of central directory, with its zip64 record and locator) plus the
/// `export.json` entry's headers (it is stored, not compressed, so its size is its length).
const ZIP_END: u64 = 22 + 56 + 20;
/// One stored entry's headers beyond its name: the local header (30), the central directory's
/// (46), room for a zip64 extra field in each (32 + 32) and a data descriptor (24).
const ENTRY_HEADERS: u64 = 30 + 46 + 64 + 24;

/// An upper bound of a part's bytes before any bundle: the zip's fixed records and an
/// `export.json` that lists nothing.
fn part_base(install_id: &str, created_at: &str, head: &LedgerHead) -> u64 {
    let empty = ExportManifest {
        format: EXPORT_FORMAT.into(),
        export_id: "0".repeat(16),
        install_id: install_id.into(),
        created_at: created_at.into(),
        agent_version: env!("CARGO_PKG_VERSION").into(),
        bundles: Vec::new(),
        ledger_head: Some(head.clone()),
    };
    let json = serde_json::to_vec_pretty(&empty).expect("serializes").len() as u64;
    ZIP_END + ENTRY_HEADERS + 2 * "export.json".len() as u64 + json
}

/// An upper bound of what one bundle adds to a part: its bytes, its entry's headers (its name
/// twice), and its line in `export.json` (indentation and separator included).
fn entry_size(name: &str, program: Program, size: u64) -> u64 {
    let listed = ExportedBundle { name: name.into(), program: program.name().into(), sha256: "0".repeat(64), size };
    let json = serde_json::to_vec_pretty(&listed).expect("serializes").len() as u64 + 6 * 4 + 2;
    size + ENTRY_HEADERS + 2 * (BUNDLES_DIR.len() + name.len()) as u64 + json
}

/// Streams the bundles into the zip, hashing on the way; `export.json` goes last.
fn write_export(
    out: &Path,
    mut manifest: ExportManifest,
    pending: &[crate::spool::Pending],
    progress: Progress,
) -> Result<ExportManifest> {
    let io_at = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ManualError::Io { path, source }
    };
    let file = OpenOptions::new().write(true).create_new(true).open(out).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists { ManualError::Exists { path: out.into() } } else { io_at(out)(e) }
    })?;
    let zip_err = |e: zip::result::ZipError| ManualError::Io { path: out.into(), source: io::Error::other(e) };
    let mut zip = ZipWriter::new(BufWriter::new(file));
    // Bundles are compressed already: store them as they are.
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored).large_file(true);
    let total: u64 = pending.iter().map(|p| p.size).sum();
    let mut done = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    for p in pending {
        let mut src = File::open(&p.path).map_err(io_at(&p.path))?;
        zip.start_file(format!("{BUNDLES_DIR}{}", p.name), stored).map_err(zip_err)?;
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        let mut size = 0u64;
        loop {
            let n = src.read(&mut buf).map_err(io_at(&p.path))?;
            if n == 0 {
                break;
            }
            sha2::Digest::update(&mut hasher, &buf[..n]);
            zip.write_all(&buf[..n]).map_err(io_at(out))?;
            size += n as u64;
            done += n as u64;
            progress(done, total);
        }
        manifest.bundles.push(ExportedBundle {
            name: p.name.clone(),
            program: p.program.name().into(),
            sha256: hex::encode(sha2::Digest::finalize(hasher)),
            size,
        });
    }
    // Stored, like the bundles, so a part's size is known before it is written.
    zip.start_file("export.json", stored).map_err(zip_err)?;
    zip.write_all(&serde_json::to_vec_pretty(&manifest).expect("serializes")).map_err(io_at(out))?;
    let file = zip.finish().map_err(zip_err)?.into_inner().map_err(|e| io_at(out)(e.into_error()))?;
    file.sync_all().map_err(io_at(out))?;
    Ok(manifest)
}

/// What importing a receipt did.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    pub receipt_id: String,
    pub export_id: String,
    /// Bundles now acknowledged and removed from the spool.
    pub acknowledged: Vec<String>,
    /// Bundles this receipt acknowledged before (an import repeated): nothing to do.
    pub already: Vec<String>,
    /// Bundles the receiver refused; still pending.
    pub rejected: Vec<Rejected>,
}

/// Imports a receiver's signed receipt file for one of this agent's exports.
pub async fn import_receipt(agent: &Agent, path: &Path) -> Result<Imported> {
    let mut text = Vec::new();
    File::open(path)
        .and_then(|f| f.take(16 << 20).read_to_end(&mut text))
        .map_err(|source| ManualError::Io { path: path.into(), source })?;
    import_receipt_bytes(agent, &text, &path.display().to_string()).await
}

/// Imports a receipt given as bytes; `label` names it in messages.
pub async fn import_receipt_bytes(agent: &Agent, text: &[u8], label: &str) -> Result<Imported> {
    let path = Path::new(label);
    let receipt: ManualReceipt = serde_json::from_slice(text)
        .map_err(|e| ManualError::Receipt(format!("{label} is not a callhome manual receipt ({e})")))?;
    let key_path = agent.config().upload.receipt_public_key.as_ref().ok_or_else(|| {
        ManualError::Receipt(
            "no upload.receipt_public_key is configured to check the receipt with; set it, or record the report as unverified with `callhome export confirm EXPORT_ID`".into(),
        )
    })?;
    let key = load_public_key(&agent.config().resolve(key_path)).map_err(|e| ManualError::Receipt(e.to_string()))?;
    receipt.verify(&key).map_err(|_| {
        ManualError::Receipt(format!(
            "the signature of {} does not verify with upload.receipt_public_key: the receipt was changed, or comes from another receiver",
            path.display()
        ))
    })?;
    if receipt.install_id != agent.install().install_id {
        return Err(ManualError::Receipt(format!(
            "the receipt is for installation {}, not this one ({})",
            receipt.install_id,
            agent.install().install_id
        )));
    }
    let _w = agent.work_lock().await?;
    let bundles: Vec<ExportedBundle> = match agent.export_bundles(&receipt.export_id)? {
        Some(json) => serde_json::from_str(&json).unwrap_or_default(),
        None => return Err(ManualError::Receipt(format!("export {} was not made by this agent", receipt.export_id))),
    };
    let now = agent.now();
    // The compliance clock moves to when the receiver took the export in (never into the future).
    let at = parse_rfc3339(&receipt.received_at).unwrap_or(now).min(now);
    let detail = serde_json::to_string(&receipt).expect("receipts serialize");
    let mut out = Imported {
        receipt_id: receipt.receipt_id.clone(),
        export_id: receipt.export_id.clone(),
        ..Imported::default()
    };
    for b in bundles.iter().filter(|b| receipt.accepted.contains(&b.sha256)) {
        let program: Program = b.program.parse().map_err(ManualError::Receipt)?;
        let entry = LedgerEntry {
            at,
            event: LedgerEvent::Sent,
            program,
            bundle: b.name.clone(),
            sha256: b.sha256.clone(),
            size: b.size,
            detail: detail.clone(),
        };
        let attempt = Attempt {
            at: now,
            program,
            bundle: Some(b.name.clone()),
            sha256: Some(b.sha256.clone()),
            code: Code::Success.as_str().into(),
            message: format!("manual report, receipt {}", receipt.receipt_id),
            http_status: None,
            duration_ms: 0,
        };
        // Ledger first, then the file.
        let new = agent.acknowledge(&b.name, program, &entry, &attempt)?;
        if new {
            agent.write_result(
                program,
                Code::Success,
                &format!("manual report, receipt {}", receipt.receipt_id),
                None,
                now,
            );
            out.acknowledged.push(b.name.clone());
        } else {
            out.already.push(b.name.clone());
        }
    }
    out.rejected = receipt.rejected.clone();
    remove_export_files(agent, &receipt.export_id);
    agent.notify(Notice::StateChanged { what: format!("manual receipt {} imported", receipt.receipt_id) });
    Ok(out)
}

/// Records an export as reported by hand without a receipt: unverified, shown as such.
pub async fn confirm_export(agent: &Agent, export_id: &str) -> Result<Vec<String>> {
    let _w = agent.work_lock().await?;
    let bundles: Vec<ExportedBundle> = match agent.export_bundles(export_id)? {
        Some(json) => serde_json::from_str(&json).unwrap_or_default(),
        None => {
            return Err(ManualError::Receipt(format!(
                "export {export_id} was not made by this agent; `callhome export` prints the id"
            )));
        }
    };
    let now = agent.now();
    let mut done = Vec::new();
    for b in &bundles {
        let program: Program = b.program.parse().map_err(ManualError::Receipt)?;
        let entry = LedgerEntry {
            at: now,
            event: LedgerEvent::Reported,
            program,
            bundle: b.name.clone(),
            sha256: b.sha256.clone(),
            size: b.size,
            detail: serde_json::json!({ "export_id": export_id, "unverified": true }).to_string(),
        };
        if agent.retire_pending(&b.name, program, &entry)? {
            done.push(b.name.clone());
        }
    }
    // The result file says what happened, with a code of its own: reported, not acknowledged.
    let mut programs: Vec<Program> = Vec::new();
    for b in &bundles {
        if let Ok(p) = b.program.parse::<Program>()
            && !programs.contains(&p)
        {
            programs.push(p);
        }
    }
    for p in programs {
        agent.write_result_file(
            p,
            Code::ManualUnverified,
            "reported by hand without a receipt (callhome export confirm): unverified",
            Some(export_id),
            now,
        );
    }
    remove_export_files(agent, export_id);
    agent.notify(Notice::StateChanged { what: format!("export {export_id} confirmed") });
    Ok(done)
}

/// Removes the files of export `export_id` from the data directory's `exports/` once it was
/// receipted or confirmed: they are copies of bundles that have now left the spool. Files the
/// administrator wrote elsewhere (`--out`) are theirs and stay. Best effort: a file that cannot be
/// read or removed is logged and left for the age limit.
fn remove_export_files(agent: &Agent, export_id: &str) {
    for path in export_files(&agent.data_dir().exports_dir()) {
        if read_export_id(&path).as_deref() == Some(export_id)
            && let Err(e) = std::fs::remove_file(&path)
        {
            tracing::warn!("cannot remove {}: {e}", path.display());
        }
    }
}

/// The `.zip` files directly in `dir` (none when it does not exist).
pub(crate) fn export_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "zip") && p.is_file()).collect()
}

/// The export id in an export zip's `export.json` (None for a support bundle or a damaged file).
fn read_export_id(path: &Path) -> Option<String> {
    let mut zip = zip::ZipArchive::new(File::open(path).ok()?).ok()?;
    let entry = zip.by_name("export.json").ok()?;
    let mut text = Vec::new();
    entry.take(1 << 20).read_to_end(&mut text).ok()?;
    Some(serde_json::from_slice::<ExportManifest>(&text).ok()?.export_id)
}
