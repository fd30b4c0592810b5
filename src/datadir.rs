//! The data directory: where it is, its layout (DESIGN §3), the install identity, and the locks.
//!
//! Two locks live here. `run.lock` is held by `callhome run` for its lifetime: a second agent on
//! the same directory refuses, naming the holder. `work.lock` is held around every change to the
//! spool and the upload state, by the agent and by one-shot CLI commands alike, so `callhome
//! upload` next to a running agent waits its turn instead of racing it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::clock::{Timestamp, rfc3339};
use crate::fsutil;
use crate::programs::Program;

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// The folder could not be created or written.
    #[error("data directory {path}: {source}; choose a writable folder with --data-dir or CALLHOME_DATA_DIR")]
    Unusable { path: PathBuf, source: io::Error },
    /// Another agent holds the directory.
    #[error("another agent already runs on {path} ({holder}); stop it first or use another --data-dir")]
    Busy { path: PathBuf, holder: String },
    /// install.json exists but cannot be read.
    #[error("{path} is damaged ({message}); move it aside to let the agent create a new install id")]
    BadInstall { path: PathBuf, message: String },
}

/// The data directory and the paths inside it.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

/// The identity of this installation, kept across upgrades.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Install {
    pub install_id: String,
    /// UTC seconds.
    pub created_at: Timestamp,
}

impl DataDir {
    /// `--data-dir`/`CALLHOME_DATA_DIR` if given, else systemd's `STATE_DIRECTORY`, else the
    /// platform's per-user data folder.
    pub fn locate(explicit: Option<PathBuf>) -> DataDir {
        let root = explicit
            .or_else(|| std::env::var_os("STATE_DIRECTORY").map(PathBuf::from))
            .or_else(|| directories::ProjectDirs::from("", "", "callhome").map(|d| d.data_dir().to_path_buf()))
            .unwrap_or_else(|| PathBuf::from("callhome-data"));
        DataDir { root }
    }

    pub fn at(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    /// Creates the layout (idempotent), private whatever the umask: see [`private`].
    pub fn create(&self) -> Result<(), DataDirError> {
        let unusable = |path: &Path| {
            let path = path.to_path_buf();
            move |source| DataDirError::Unusable { path, source }
        };
        let mode = private::prepare(&self.root).map_err(unusable(&self.root))?;
        let mut dirs = vec![self.tmp_dir(), self.quarantine_dir(), self.cache_dir(), self.exports_dir()];
        dirs.extend(Program::ALL.iter().map(|p| self.spool_dir(*p)));
        for d in dirs {
            private::create_dir(&d, mode).map_err(unusable(&d))?;
        }
        // Prove it is writable now rather than at the first bundle.
        // Named per process: two processes opening the directory at once must not race on it.
        let probe = self.root.join(format!(".write-probe-{}-{:08x}", std::process::id(), fastrand::u32(..)));
        File::create(&probe)
            .and_then(|_| fs::remove_file(&probe))
            .map_err(|source| DataDirError::Unusable { path: self.root.clone(), source })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn db_path(&self) -> PathBuf {
        self.root.join("state.sqlite")
    }
    /// The ledger's head, repeated beside the database (the store writes it).
    pub fn ledger_head_path(&self) -> PathBuf {
        self.root.join(crate::store::HEAD_FILE)
    }
    pub fn spool_root(&self) -> PathBuf {
        self.root.join("spool")
    }
    pub fn spool_dir(&self, p: Program) -> PathBuf {
        self.spool_root().join(p.spool_folder())
    }
    pub fn tmp_dir(&self) -> PathBuf {
        self.spool_root().join(".tmp")
    }
    pub fn quarantine_dir(&self) -> PathBuf {
        self.root.join("quarantine")
    }
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }
    /// Where exports and support bundles made through the API (or by default) go.
    pub fn exports_dir(&self) -> PathBuf {
        self.root.join("exports")
    }
    pub fn result_file(&self, p: Program) -> PathBuf {
        self.cache_dir().join(format!("upload_{}_result.xml", p.upload_kind()))
    }

    /// Reads install.json, creating it (random id, now) on first use.
    pub fn install(&self, now: Timestamp) -> Result<Install, DataDirError> {
        let path = self.root.join("install.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| DataDirError::BadInstall { path: path.clone(), message: e.to_string() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut id = [0u8; 16];
                getrandom::fill(&mut id).map_err(|e| DataDirError::Unusable {
                    path: path.clone(),
                    source: io::Error::other(e.to_string()),
                })?;
                let install = Install { install_id: uuid_like(&id), created_at: now };
                let json = serde_json::to_vec_pretty(&install).expect("install serializes");
                // Written aside, then linked into place: linking never replaces, so when two
                // processes race, both end up with the one install id that landed first.
                let aside = self.root.join(format!(".install-{}-{:08x}.json", std::process::id(), fastrand::u32(..)));
                let unusable = |source| DataDirError::Unusable { path: path.clone(), source };
                fsutil::write_atomic(&aside, &json).map_err(unusable)?;
                let linked = fs::hard_link(&aside, &path);
                let _ = fs::remove_file(&aside);
                match linked {
                    Ok(()) => {
                        fsutil::sync_dir(&self.root).map_err(unusable)?;
                        Ok(install)
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => self.install(now),
                    Err(e) => Err(unusable(e)),
                }
            }
            Err(source) => Err(DataDirError::Unusable { path, source }),
        }
    }

    /// Takes the agent lock or says who holds it.
    pub fn lock_run(&self) -> Result<RunLock, DataDirError> {
        let path = self.root.join("run.lock");
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| DataDirError::Unusable { path: path.clone(), source })?;
        match f.try_lock() {
            Ok(()) => {
                let info = format!(
                    "pid {} since {}",
                    std::process::id(),
                    rfc3339(crate::clock::Clock::now(&crate::clock::SystemClock))
                );
                let _ = f.set_len(0).and_then(|_| f.rewind()).and_then(|_| f.write_all(info.as_bytes()));
                Ok(RunLock { _file: f })
            }
            Err(_) => {
                let mut holder = String::new();
                let _ = f.read_to_string(&mut holder);
                let holder =
                    if holder.trim().is_empty() { "pid unknown".to_string() } else { holder.trim().to_string() };
                Err(DataDirError::Busy { path: self.root.clone(), holder })
            }
        }
    }

    /// Whether an agent currently holds the run lock, and its description.
    pub fn agent_running(&self) -> Option<String> {
        let path = self.root.join("run.lock");
        let mut f = OpenOptions::new().read(true).write(true).open(&path).ok()?;
        if f.try_lock().is_ok() {
            return None;
        }
        let mut holder = String::new();
        let _ = f.read_to_string(&mut holder);
        Some(holder.trim().to_string())
    }

    /// Waits for and takes the work lock (blocking; call from a blocking context).
    pub fn lock_work(&self) -> Result<WorkLock, DataDirError> {
        let path = self.root.join("work.lock");
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| DataDirError::Unusable { path: path.clone(), source })?;
        f.lock().map_err(|source| DataDirError::Unusable { path, source })?;
        Ok(WorkLock { _file: f })
    }
}

/// Held while an agent runs on the directory; released on drop or process death.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

/// Held around spool and upload changes; released on drop or process death.
#[derive(Debug)]
pub struct WorkLock {
    _file: File,
}

/// A random (version 4) UUID in its usual text form.
/// The data directory holds host names, hardware ids, the state database, logs and support
/// bundles: it is closed to others whatever the umask the agent was started with. A fresh one is
/// made 0700; one the system service's installer opened to the `callhome` group (0750, others
/// shut out) keeps that, and its files are 0640 so the group's members read them. An existing
/// directory open to others (an older agent under umask 022) is closed at once.
///
/// The process's umask is narrowed too (077, or 027 for a group directory), so every file the
/// agent, SQLite (its WAL and journal), the log or the exports create afterwards is private
/// without each writer having to remember it.
pub mod private {
    use std::io;
    use std::path::Path;

    /// The modes of the directory's folders and files.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Modes {
        pub dir: u32,
        pub file: u32,
    }

    pub const PRIVATE: Modes = Modes { dir: 0o700, file: 0o600 };
    pub const GROUP: Modes = Modes { dir: 0o750, file: 0o640 };

    /// Creates or closes `root`, narrows the umask, and returns the modes its contents take.
    pub fn prepare(root: &Path) -> io::Result<Modes> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let modes = match std::fs::metadata(root) {
                Ok(m) if m.permissions().mode() & 0o057 == 0o050 => GROUP,
                Ok(m) => {
                    if m.permissions().mode() & 0o777 != 0o700 && m.permissions().mode() & 0o007 != 0 {
                        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))?;
                    }
                    PRIVATE
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
                        std::fs::create_dir_all(parent)?;
                    }
                    create_dir(root, PRIVATE)?;
                    PRIVATE
                }
                Err(e) => return Err(e),
            };
            // SAFETY: umask only sets the process's file-creation mask; it cannot fail.
            unsafe { libc::umask(0o777 & !modes.dir) };
            Ok(modes)
        }
        #[cfg(not(unix))]
        {
            std::fs::create_dir_all(root)?;
            Ok(PRIVATE)
        }
    }

    /// Creates `dir` with `modes.dir` (whatever the umask), or narrows an existing one to it.
    pub fn create_dir(dir: &Path, modes: Modes) -> io::Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
            match std::fs::DirBuilder::new().mode(modes.dir).create(dir) {
                Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(modes.dir)),
                Err(e) if e.kind() == io::ErrorKind::NotFound && dir.parent().is_some_and(|p| p != dir) => {
                    create_dir(dir.parent().expect("checked"), modes)?;
                    create_dir(dir, modes)
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let m = std::fs::metadata(dir)?.permissions().mode() & 0o777;
                    if m & !modes.dir != 0 {
                        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(m & modes.dir))?;
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = modes;
            std::fs::create_dir_all(dir)
        }
    }
}

fn uuid_like(b: &[u8; 16]) -> String {
    let mut b = *b;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let d = DataDir::at(dir.path());
        d.create().unwrap();
        let _held = d.lock_run().unwrap();
        match d.lock_run() {
            Err(DataDirError::Busy { holder, .. }) => {
                assert!(holder.contains(&format!("pid {}", std::process::id())), "{holder}")
            }
            other => panic!("expected Busy, got {other:?}"),
        }
    }

    #[test]
    fn install_id_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = DataDir::at(dir.path());
        d.create().unwrap();
        let a = d.install(100).unwrap();
        let b = d.install(200).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.install_id.len(), 36);
    }
}
