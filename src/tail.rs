//! Reading what is new in a growing log file, line by line, across runs.
//!
//! A [`TailCursor`] remembers the file's identity (device and inode on Unix), the byte after the
//! last complete line read, and a hash of the file's first bytes. A changed identity (rotation),
//! a shorter file (truncation) or a changed head (rewritten in place) starts the file over. A
//! final line without `\n` waits for the next run. Memory is bounded: a line longer than the cap
//! is skipped, not buffered.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// How much of a file's start identifies its content.
pub const HEAD_BYTES: usize = 1024;
const CHUNK: usize = 1 << 20;

/// Where reading stopped (persisted between runs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TailCursor {
    /// The file's identity when it was last read.
    pub identity: Option<String>,
    /// The byte after the last complete line read.
    pub offset: u64,
    /// SHA-256 of the file's first bytes (up to [`HEAD_BYTES`]) as last read.
    #[serde(default)]
    pub head: Option<String>,
}

/// What one read did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TailStats {
    pub bytes: u64,
    /// Lines longer than the cap, skipped.
    pub skipped: u64,
    /// The file was rotated, truncated or rewritten, and read from its start.
    pub restarted: bool,
}

/// Calls `on_line` for every complete line added since `cursor`, and moves the cursor on.
pub fn read_new(
    path: &Path,
    cursor: &mut TailCursor,
    max_line: usize,
    mut on_line: impl FnMut(&[u8]),
) -> io::Result<TailStats> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    let identity = identity(&meta);
    let mut stats = TailStats::default();
    let head_now = head_hash(&mut file, cursor.offset)?;
    let restart = cursor.identity.as_ref().is_some_and(|id| Some(id) != identity.as_ref())
        || meta.len() < cursor.offset
        || (cursor.offset > 0 && cursor.head.is_some() && cursor.head != head_now);
    if restart {
        cursor.offset = 0;
        stats.restarted = true;
    }
    cursor.identity = identity;
    file.seek(SeekFrom::Start(cursor.offset))?;
    let mut buf = vec![0u8; CHUNK];
    let mut filled = 0usize;
    let mut skipping = false; // inside a line longer than max_line
    loop {
        let n = file.read(&mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
        let mut start = 0;
        while let Some(i) = memchr::memchr(b'\n', &buf[start..filled]) {
            let end = start + i;
            if skipping {
                skipping = false;
            } else if end - start > max_line {
                stats.skipped += 1;
            } else {
                on_line(&buf[start..end]);
            }
            start = end + 1;
        }
        cursor.offset += start as u64;
        stats.bytes += start as u64;
        buf.copy_within(start..filled, 0);
        filled -= start;
        if filled > max_line {
            // Drop the head of an overlong line and remember to skip its rest.
            cursor.offset += filled as u64;
            stats.bytes += filled as u64;
            if !skipping {
                stats.skipped += 1;
            }
            filled = 0;
            skipping = true;
        }
    }
    cursor.head = head_hash(&mut file, cursor.offset)?;
    Ok(stats)
}

/// SHA-256 of the first `min(upto, HEAD_BYTES)` bytes.
fn head_hash(file: &mut File, upto: u64) -> io::Result<Option<String>> {
    let n = upto.min(HEAD_BYTES as u64) as usize;
    if n == 0 {
        return Ok(None);
    }
    let mut buf = vec![0u8; n];
    file.seek(SeekFrom::Start(0))?;
    let mut got = 0;
    while got < n {
        let k = file.read(&mut buf[got..])?;
        if k == 0 {
            break;
        }
        got += k;
    }
    Ok(Some(crate::fsutil::sha256_hex(&buf[..got])))
}

#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    Some(format!("{}:{}", meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn identity(meta: &std::fs::Metadata) -> Option<String> {
    meta.created().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_nanos().to_string())
}
