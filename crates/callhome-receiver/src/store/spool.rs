//! The local side of the store: bodies received into the spool ([`Incoming`]), the per-bundle
//! lock ([`Busy`]), and owner-only folders and files.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

/// The SHA-256s being taken in, each by one thread at a time (uploads of different bundles go
/// side by side).
#[derive(Default)]
pub(super) struct Busy {
    taken: Mutex<HashSet<String>>,
    freed: Condvar,
}

/// Holds one SHA-256 of a [`Busy`] set until dropped.
pub(super) struct BusyGuard<'a> {
    busy: &'a Busy,
    sha256: String,
}

impl Busy {
    /// Waits until no other thread takes in `sha256`, then holds it.
    pub(super) fn lock(&self, sha256: &str) -> BusyGuard<'_> {
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        while taken.contains(sha256) {
            taken = self.freed.wait(taken).unwrap_or_else(|e| e.into_inner());
        }
        taken.insert(sha256.to_string());
        BusyGuard { busy: self, sha256: sha256.to_string() }
    }
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        let mut taken = self.busy.taken.lock().unwrap_or_else(|e| e.into_inner());
        taken.remove(&self.sha256);
        self.busy.freed.notify_all();
    }
}

/// A file being received in the spool: removed when dropped unless it was taken into the store.
pub struct Incoming {
    /// Its file in the spool; none for a body held in memory that needs none
    /// ([`super::BundleStore::incoming_holding`]).
    pub(super) path: Option<PathBuf>,
    /// Its bytes, when the body was received into memory: checked and read from there, not
    /// from the file.
    pub(super) held: Option<Vec<u8>>,
}

/// An [`Incoming`] body opened for reading: from memory when held there.
pub enum Opened<'a> {
    Held(std::io::Cursor<&'a [u8]>),
    File(std::io::BufReader<File>),
}

impl Incoming {
    /// Its file in the spool (an empty path for a body held in memory without one).
    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Its size in bytes.
    pub fn size(&self) -> io::Result<u64> {
        match &self.held {
            Some(bytes) => Ok(bytes.len() as u64),
            None => Ok(fs::metadata(self.path())?.len()),
        }
    }

    /// Opens it for reading.
    pub fn open(&self) -> io::Result<Opened<'_>> {
        Ok(match &self.held {
            Some(bytes) => Opened::Held(std::io::Cursor::new(bytes)),
            None => Opened::File(std::io::BufReader::with_capacity(64 * 1024, File::open(self.path())?)),
        })
    }
}

impl std::io::Read for Opened<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Opened::Held(c) => c.read(buf),
            Opened::File(f) => f.read(buf),
        }
    }
}

impl std::io::Seek for Opened<'_> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> io::Result<u64> {
        match self {
            Opened::Held(c) => c.seek(pos),
            Opened::File(f) => f.seek(pos),
        }
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = fs::remove_file(path);
        }
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

/// Creates the folders from `base` down to `dir`, each readable by the owner only. Tried from
/// the deepest up: a new install's folder under an existing day costs one call.
pub(super) fn create_private_dirs_under(base: &Path, dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound && dir != base && dir.starts_with(base) => {
            create_private_dirs_under(base, dir.parent().unwrap_or(base))?;
            match builder.create(dir) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
                _ => Ok(()),
            }
        }
        Err(e) => Err(e),
    }
}

/// Opens a new file exclusively, mode 0600.
pub(super) fn create_private(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}
