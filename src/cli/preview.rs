//! `callhome preview`: a pending bundle's manifest and files exactly as they will be sent (or one
//! file, byte for byte, or the summary as JSON).

use super::*;

/// What `preview` prints.
#[derive(Clone, Copy)]
pub(super) enum Shown<'a> {
    /// Every file, as it is.
    All,
    /// One file, byte for byte.
    File(&'a str),
    /// The summary as JSON.
    Json,
}

pub(super) fn preview(
    src: &Session,
    bundle: Option<&str>,
    latest: bool,
    program: Option<Program>,
    file: Shown<'_>,
) -> Result<u8> {
    let name = if latest {
        let names = src.bundle_names()?;
        let newest = names
            .into_iter()
            .filter(|(p, _)| program.is_none_or(|pr| pr.name() == p))
            .max_by(|a, b| a.1.split('_').nth(2).cmp(&b.1.split('_').nth(2)));
        match newest {
            Some((_, n)) => n,
            None => return Err(fail(exit::FAILURE, "no pending bundle to preview; `callhome collect` makes one")),
        }
    } else {
        let wanted = bundle.expect("clap requires BUNDLE without --latest");
        let as_path = std::path::Path::new(wanted);
        if src.is_direct() && as_path.is_file() && !as_path.starts_with("upload_") {
            // A bundle file outside the spool (an export, a quarantined one): read it as is.
            return preview_bytes(
                &std::fs::read(as_path).map_err(|e| fail(exit::FAILURE, format!("{wanted}: {e}")))?,
                wanted,
                file,
            );
        }
        callhome::api::client::bundle_id(wanted)
    };
    let bytes = src.bundle_bytes(&name)?;
    preview_bytes(&bytes, &name, file)
}

/// Prints a bundle's files exactly as they are (or one of them, byte for byte).
fn preview_bytes(bytes: &[u8], name: &str, shown: Shown<'_>) -> Result<u8> {
    let tmp = tempfile_for(bytes)?;
    let mut reader =
        callhome::bundle::Reader::open(tmp.path()).map_err(|e| fail(exit::FAILURE, format!("{name}: {e}")))?;
    let mut out = std::io::stdout().lock();
    if let Shown::Json = shown {
        let manifest = reader.manifest().map_err(|e| fail(exit::FAILURE, e.to_string()))?;
        let mut files = Vec::new();
        for n in reader.names().map_err(|e| fail(exit::FAILURE, e.to_string()))? {
            let content = reader.read(&n).map_err(|e| fail(exit::FAILURE, e.to_string()))?;
            files.push(serde_json::json!({ "name": n, "size": content.len(), "sha256": callhome::fsutil::sha256_hex(&content) }));
        }
        print::json(&serde_json::json!({
            "bundle": name, "size": bytes.len(), "sha256": callhome::fsutil::sha256_hex(bytes), "manifest": manifest, "files": files,
        }));
        return Ok(0);
    }
    if let Shown::File(f) = shown {
        let content = reader
            .read(f)
            .map_err(|e| fail(exit::FAILURE, e.to_string().replace(&tmp.path().display().to_string(), name)))?;
        out.write_all(&content).map_err(|e| fail(exit::FAILURE, e.to_string()))?;
        return Ok(0);
    }
    let sha = callhome::fsutil::sha256_hex(bytes);
    let _ = writeln!(
        out,
        "bundle {name}\n  size {} bytes, sha256 {sha} (the Idempotency-Key and ledger entry)",
        bytes.len()
    );
    for n in reader.names().map_err(|e| fail(exit::FAILURE, e.to_string()))? {
        let content = reader.read(&n).map_err(|e| fail(exit::FAILURE, e.to_string()))?;
        let _ =
            writeln!(out, "\n=== {n} ({} bytes, sha256 {}) ===", content.len(), callhome::fsutil::sha256_hex(&content));
        let _ = out.write_all(&content);
        let _ = writeln!(out);
    }
    Ok(0)
}

/// A private temporary copy of a bundle, removed on drop.
struct TempBundle(std::path::PathBuf);

impl TempBundle {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempBundle {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn tempfile_for(bytes: &[u8]) -> Result<TempBundle> {
    let path =
        std::env::temp_dir().join(format!("callhome-preview-{}-{:08x}.zip", std::process::id(), fastrand::u32(..)));
    callhome::fsutil::write_new_private(&path, bytes)
        .map_err(|e| fail(exit::FAILURE, format!("{}: {e}", path.display())))?;
    Ok(TempBundle(path))
}
