//! Taking in an export carried over from an isolated network: every inner bundle is checked and
//! stored as if it had been uploaded, and one signed receipt acknowledges the export, listing
//! the accepted SHA-256s and the rejected bundles with their reasons.

use std::io::Read;
use std::path::Path;

use super::{BundleStore, ReceiverError};
use callhome_protocol::export::{BUNDLES_DIR, EXPORT_FORMAT, ExportManifest, ManualReceipt, RECEIPT_FORMAT, Rejected};
use callhome_protocol::time::{now, rfc3339};

/// Largest `export.json` read.
const MAX_MANIFEST: u64 = 16 << 20;

/// Checks and stores every bundle of the export at `path`; returns the signed receipt.
pub fn ingest(path: &Path, store: &BundleStore, max_bundle: u64) -> Result<ManualReceipt, ReceiverError> {
    let bad = |m: String| ReceiverError::Io(format!("{}: {m}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(format!("not a readable export zip ({e})")))?;
    let manifest: ExportManifest = {
        let entry = zip.by_name("export.json").map_err(|_| bad("no export.json: not a callhome export".into()))?;
        let mut buf = Vec::new();
        entry.take(MAX_MANIFEST).read_to_end(&mut buf).map_err(|e| bad(e.to_string()))?;
        serde_json::from_slice(&buf).map_err(|e| bad(format!("export.json: {e}")))?
    };
    if manifest.format != EXPORT_FORMAT {
        return Err(bad(format!("export format {:?} is not {EXPORT_FORMAT}", manifest.format)));
    }
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    for b in &manifest.bundles {
        let reject = |reason: String| Rejected { sha256: b.sha256.clone(), name: b.name.clone(), reason };
        if b.name.contains(['/', '\\']) || b.name.starts_with('.') || !b.name.ends_with(".zip") {
            rejected.push(reject("an unsafe bundle name".into()));
            continue;
        }
        let bytes = match zip.by_name(&format!("{BUNDLES_DIR}{}", b.name)) {
            Ok(entry) => {
                if entry.enclosed_name().is_none() {
                    rejected.push(reject("the entry's path escapes the archive".into()));
                    continue;
                }
                let mut buf = Vec::new();
                match entry.take(max_bundle + 1).read_to_end(&mut buf) {
                    Ok(_) if buf.len() as u64 > max_bundle => {
                        rejected.push(reject(format!("larger than {max_bundle} bytes")));
                        continue;
                    }
                    Ok(_) => buf,
                    Err(e) => {
                        rejected.push(reject(format!("unreadable in the export ({e})")));
                        continue;
                    }
                }
            }
            Err(_) => {
                rejected.push(reject("listed in export.json but missing from the export".into()));
                continue;
            }
        };
        match store.accept(&bytes, Some(&b.sha256)) {
            Ok((r, _)) => accepted.push(r.bundle_sha256),
            Err(refusal) => rejected.push(reject(refusal.reason)),
        }
    }
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|e| ReceiverError::Io(e.to_string()))?;
    let receipt = ManualReceipt {
        format: RECEIPT_FORMAT.into(),
        receipt_id: hex::encode(id),
        export_id: manifest.export_id,
        install_id: manifest.install_id,
        received_at: rfc3339(now()),
        accepted,
        rejected,
        signature: String::new(),
    };
    Ok(receipt.sign(store.key()))
}
