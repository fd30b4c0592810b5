//! Small durable-file helpers: atomic replace, exclusive private files, directory fsync; and
//! telling a full disk from an error's causes.
//!
//! Every file the agent writes that someone else reads (result files, install.json, bundles)
//! goes through a temporary name, is fsynced, renamed into place, and its directory fsynced, so a
//! crash leaves either the old file or the new one, never half of one.

use std::error::Error;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// An error and its causes, outermost first. An I/O error that wraps another error
/// (`io::Error::other(e)`, tokio-rustls's TLS errors) is followed into that error: its own
/// `source()` would skip it.
pub fn causes<'a>(e: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(e), |&cur: &&'a (dyn Error + 'static)| {
        match cur.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn Error + 'static)),
            None => cur.source(),
        }
    })
}

/// Whether a full disk caused `e`: an I/O error of kind `StorageFull` (ENOSPC) or SQLite's
/// `SQLITE_FULL` anywhere among its causes.
pub fn is_disk_full(e: &(dyn Error + 'static)) -> bool {
    causes(e).any(|c| {
        c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::StorageFull)
            || c.downcast_ref::<rusqlite::Error>()
                .is_some_and(|s| s.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull))
    })
}

/// Fsyncs a directory so a rename or unlink in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// The folder a path is in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replaces `path` with `bytes` atomically (temporary file, fsync, rename, directory fsync).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent_dir(path);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `path` exclusively (it must not exist), readable by the owner only, with `bytes`.
pub fn write_new_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_new_with_mode(path, bytes, 0o600)
}

/// Creates `path` exclusively with `bytes` and (on Unix) permission bits `mode`.
pub fn write_new_with_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    sync_dir(parent_dir(path))
}

/// SHA-256 of a file, streamed, as lowercase hex, with its size.
pub fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

/// SHA-256 of bytes as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_found_among_the_causes_and_nothing_else_is_one() {
        let enospc = || io::Error::from(io::ErrorKind::StorageFull);
        assert!(is_disk_full(&enospc()));
        // Wrapped as zip and bundle writing wrap it: io::Error::other(ZipError::Io(ENOSPC)).
        assert!(is_disk_full(&io::Error::other(zip::result::ZipError::Io(enospc()))));
        let sqlite_full = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL), None);
        assert!(is_disk_full(&sqlite_full));
        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None);
        assert!(!is_disk_full(&busy));
        assert!(!is_disk_full(&io::Error::other("database or disk is full")), "text is not a cause");
    }
}
