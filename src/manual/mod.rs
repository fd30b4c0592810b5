//! Manual reporting for isolated networks: export the pending bundles as one zip, carry it out,
//! bring back the receiver's signed receipt and import it.
//!
//! An export is written streaming (bundles stored as they are, SHA-256 taken on the way) and
//! never over an existing file; it is remembered in the state so a receipt can be matched to it.
//! Importing checks the receipt's signature, that it is for this installation and for one of its
//! exports, then records each acknowledged bundle in the ledger (at the receipt's time, which
//! moves the compliance clock) before deleting it. A receipt that fails any check changes nothing;
//! importing one twice is harmless. No network here.

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
use crate::receipt::load_public_key;
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
/// each a whole export with its own manifest (a bundle larger than the limit gets a part alone).
pub async fn export(
    agent: &Agent,
    out: &Path,
    only: Option<Program>,
    max_size: Option<u64>,
    progress: Progress,
) -> Result<Vec<Exported>> {
    let _w = agent.work_lock().await?;
    let consent = agent.consent()?;
    let mut pending = Vec::new();
    for p in Program::ALL.into_iter().filter(|p| only.is_none_or(|o| o == *p)) {
        if p.mandatory() || consent.enabled(p) {
            pending.extend(agent.pending(p)?);
        }
    }
    let parts = split(pending, max_size);
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
            created_at: rfc3339(agent.now()),
            agent_version: env!("CARGO_PKG_VERSION").into(),
            bundles: Vec::new(),
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
        let json = serde_json::to_string(&manifest.bundles).expect("bundle lists serialize");
        agent.record_export(&manifest.export_id, agent.now(), &json)?;
        out_list.push(Exported { export_id: manifest.export_id, path, bundles: manifest.bundles, bytes });
    }
    Ok(out_list)
}

/// Groups bundles into parts of at most `max` bytes each (in order; an oversized one alone).
fn split(pending: Vec<crate::spool::Pending>, max: Option<u64>) -> Vec<Vec<crate::spool::Pending>> {
    let Some(max) = max else { return vec![pending] };
    let mut parts: Vec<Vec<crate::spool::Pending>> = Vec::new();
    let mut size = 0u64;
    for p in pending {
        if parts.is_empty() || (size + p.size > max && size > 0) {
            parts.push(Vec::new());
            size = 0;
        }
        size += p.size;
        parts.last_mut().expect("a part exists").push(p);
    }
    if parts.is_empty() {
        parts.push(Vec::new());
    }
    parts
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
    zip.start_file("export.json", SimpleFileOptions::default()).map_err(zip_err)?;
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
    agent.notify(Notice::StateChanged { what: format!("export {export_id} confirmed") });
    Ok(done)
}
