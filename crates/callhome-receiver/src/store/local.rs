//! A local store's writes, done in the blocking thread that checks the bundle instead of through
//! `object_store` (whose local calls each hop to another blocking thread: on a small bundle the
//! thread switches cost more than the work). The same layout and guarantees as the `object_store`
//! path: a receipt is written create-only through a temporary name, so it appears whole or not
//! at all; a bundle is renamed from the spool into place (or, held in memory under `syncfs`,
//! written in place); each folder that gained a name is fsynced.
//!
//! Nothing here deletes a file on the way of a normal upload (a temporary name renamed over with
//! `RENAME_NOREPLACE` instead of hard-linked and unlinked): on ext4 without a journal every
//! file created after many recent deletions searches past their inodes (`recently_deleted`),
//! which cost the receiver most of its CPU under load.
//!
//! A folder's fsync is shared ([`DirSync`]): uploads that put names in one folder at the same
//! time (every receipt goes to `receipts/`) wait for one fsync that started after their rename,
//! instead of one each — a group commit.
//!
//! On Linux (5.8 or later, not FUSE, the store on one file system) a whole upload is made
//! durable by one `syncfs` of the store's file system instead (files and folders alike), shared
//! the same way by every upload that waits at the same time ([`DirSync::whole_fs`]): the receipt
//! is renamed into place unsynced, a bundle held in memory written at its key unsynced, and the
//! upload answers only once a `syncfs` that started after its writes has finished. A crash
//! before that can leave a name whose content never reached the disk, but never one that was
//! answered: a receipt that does not read back is replaced and a bundle whose bytes are not its
//! SHA-256 is written again by the retry ([`crate::store::BundleStore::accept_file`]);
//! [`crate::reconcile`] records no such bundle. A failed `syncfs` fails every upload from then
//! on ([`DirSync::sync_fs`]).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use callhome_protocol::fs::{parent_dir, sync_dir};

use super::spool::{create_private, create_private_dirs_under};

/// What [`put_new`] did.
pub(super) enum PutNew {
    /// The file was written.
    Created,
    /// A file was there already: it stands.
    Exists,
}

/// The bytes of the file at `key` in the store `dir`, or `None` when there is none.
pub(super) fn read(dir: &Path, key: &str) -> io::Result<Option<Vec<u8>>> {
    match fs::read(dir.join(key)) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the file at `key` in the store `dir` holds the bytes whose SHA-256 is `sha256`
/// (false when there is none, or when a crash left it without them: see the module's doc).
pub(super) fn holds(dir: &Path, key: &str, sha256: &str) -> io::Result<bool> {
    match callhome_protocol::fs::sha256_file(&dir.join(key)) {
        Ok((sha, _)) => Ok(sha == sha256),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes the file at `key` in the store `dir`, if there.
pub(super) fn remove(dir: &Path, key: &str) -> io::Result<()> {
    match fs::remove_file(dir.join(key)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Writes `bytes` to `key` in the store `dir` unless a file is there: through `tmp` (a new name
/// in the store's `.incoming/`, on its file system), fsynced, then renamed into place without
/// replacing, so no reader ever sees it half written. Either way the name at `key` is durable
/// when it returns — with [`DirSync::whole_fs`], nothing is fsynced here and it is once the
/// caller's [`DirSync::sync_fs`] has returned.
pub(super) fn put_new(syncs: &DirSync, dir: &Path, key: &str, tmp: &Path, bytes: &[u8]) -> io::Result<PutNew> {
    let target = dir.join(key);
    let mut f = create_private(tmp)?;
    let written = f.write_all(bytes).and_then(|()| if syncs.whole_fs() { Ok(()) } else { f.sync_all() });
    drop(f);
    if let Err(e) = written {
        let _ = fs::remove_file(tmp);
        return Err(e);
    }
    let put = match with_folders(dir, &target, || rename_noreplace(tmp, &target)) {
        Ok(()) => PutNew::Created,
        Err(e) => {
            let _ = fs::remove_file(tmp);
            if e.kind() != io::ErrorKind::AlreadyExists {
                return Err(e);
            }
            // Put there by an attempt that may have failed before its folder's fsync.
            PutNew::Exists
        }
    };
    settle(syncs, dir, key)?;
    Ok(put)
}

/// Writes `bytes` to `key` in the store `dir`, replacing what is there (one a crash cut short),
/// unsynced: only with [`DirSync::whole_fs`], whose [`DirSync::sync_fs`] makes it durable.
pub(super) fn write_in_place(dir: &Path, key: &str, bytes: &[u8]) -> io::Result<()> {
    let target = dir.join(key);
    with_folders(dir, &target, || write_over(&target, bytes))
}

/// Writes `bytes` to the file `path` (made 0600 when new), truncating it; a file left half
/// written is removed.
fn write_over(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let written = opts.open(path).and_then(|mut f| f.write_all(bytes));
    if written.is_err() {
        let _ = fs::remove_file(path);
    }
    written
}

/// Renames the checked file `from` (fsynced, on the store's file system) to `key` in the store
/// `dir`, replacing what is there; the name is durable when it returns (with
/// [`DirSync::whole_fs`]: once the caller's [`DirSync::sync_fs`] has). Across file systems it is
/// copied in first.
pub(super) fn move_into(syncs: &DirSync, dir: &Path, from: &Path, key: &str, tmp: &Path) -> io::Result<()> {
    let target = dir.join(key);
    match with_folders(dir, &target, || fs::rename(from, &target)) {
        Err(e) if e.raw_os_error() == Some(libc_exdev()) => {
            // A spool on another file system: a fsynced copy beside the store, then renamed.
            copy_synced(from, tmp)?;
            let moved = fs::rename(tmp, &target);
            if moved.is_err() {
                let _ = fs::remove_file(tmp);
            }
            moved?;
        }
        other => other?,
    }
    settle(syncs, dir, key)
}

/// Makes the name at `key` durable: every folder from `dir` down to it known to be in its parent
/// on disk, then the name itself (its folder fsynced). Also for a name found already there: the
/// attempt that put it may have failed before its fsync. Nothing with [`DirSync::whole_fs`]:
/// the caller's [`DirSync::sync_fs`] covers it.
pub(super) fn settle(syncs: &DirSync, dir: &Path, key: &str) -> io::Result<()> {
    if syncs.whole_fs() {
        return Ok(());
    }
    let target = dir.join(key);
    let folder = parent_dir(&target);
    syncs.folders_durable(dir, folder)?;
    syncs.sync(folder)
}

/// Runs `op`, which puts a name at `target`; when its folder is missing, makes the folders down
/// to it (0700) and runs it again. The common case — the folder is there — costs one call.
fn with_folders(dir: &Path, target: &Path, op: impl Fn() -> io::Result<()>) -> io::Result<()> {
    match op() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create_private_dirs_under(dir, parent_dir(target))?;
            op()
        }
        other => other,
    }
}

/// Copies `from` to the new file `to` (0600) and fsyncs it.
fn copy_synced(from: &Path, to: &Path) -> io::Result<()> {
    let mut out = create_private(to)?;
    let copied = fs::File::open(from).and_then(|mut f| io::copy(&mut f, &mut out)).and_then(|_| out.sync_all());
    if copied.is_err() {
        let _ = fs::remove_file(to);
    }
    copied
}

#[cfg(unix)]
fn libc_exdev() -> i32 {
    libc::EXDEV
}

#[cfg(not(unix))]
fn libc_exdev() -> i32 {
    17 // ERROR_NOT_SAME_DEVICE
}

/// Folder fsyncs shared between threads (a group commit per folder), or `syncfs` calls shared
/// the same way (a group commit for the whole store).
#[derive(Default)]
pub(super) struct DirSync {
    folders: Mutex<HashMap<PathBuf, Arc<Group>>>,
    /// Folders whose names are known to be on disk in their parents (their parent was fsynced
    /// after they existed); at most [`DirSync::DURABLE_MAX`], forgotten all at once beyond.
    durable: Mutex<HashSet<PathBuf>>,
    /// The store's folder, open, when one `syncfs` of its file system makes an upload durable.
    whole_fs: Option<fs::File>,
    /// Whether a `syncfs` failed (see [`DirSync::sync_fs`]).
    fs_failed: std::sync::atomic::AtomicBool,
}

/// One folder's fsyncs: how many were started and finished, and whether one runs.
#[derive(Default)]
struct Group {
    state: Mutex<GroupState>,
    done: Condvar,
}

#[derive(Default)]
struct GroupState {
    started: u64,
    finished: u64,
    /// The last sync that failed, and why: it fails every caller it covered.
    failed: Option<(u64, String)>,
    running: bool,
    /// Threads waiting on this folder (the entry is dropped when none is left).
    users: usize,
}

impl DirSync {
    const DURABLE_MAX: usize = 100_000;

    /// The syncs of a local store in `dir`: by `syncfs` where it reports write errors (Linux
    /// 5.8 or later, not FUSE) and covers the whole store (no folder of it on another file
    /// system), by file and folder fsyncs otherwise.
    pub(super) fn for_store(dir: &Path) -> io::Result<DirSync> {
        let mut syncs = DirSync::default();
        #[cfg(target_os = "linux")]
        {
            let folder = fs::File::open(dir)?;
            if syncfs_covers(dir, &folder)? && syncfs(&folder).is_ok() {
                syncs.whole_fs = Some(folder);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = dir;
        Ok(syncs)
    }

    /// Whether writes skip their own fsyncs, made durable together by [`DirSync::sync_fs`].
    pub(super) fn whole_fs(&self) -> bool {
        self.whole_fs.is_some()
    }

    /// With [`DirSync::whole_fs`], returns once a `syncfs` of the store's file system that
    /// started after this call has finished: everything written to the store before the call
    /// is durable. Nothing otherwise (each write was made durable on its own).
    ///
    /// A failed `syncfs` fails every upload it covered, and every later one: the kernel reports a
    /// write-back error once, so a later `syncfs` would succeed over bytes that were lost. The
    /// receiver must be restarted once the disk is checked.
    pub(super) fn sync_fs(&self) -> io::Result<()> {
        match &self.whole_fs {
            #[cfg(target_os = "linux")]
            Some(folder) => self.shared(Path::new(""), &|| {
                use std::sync::atomic::Ordering::SeqCst;
                // Checked and set within the group's one running sync, so no sync that starts
                // after a failure succeeds.
                if self.fs_failed.load(SeqCst) {
                    return Err(io::Error::other(
                        "an earlier syncfs of the store failed: uploads are refused until the receiver is restarted (check the disk first)",
                    ));
                }
                syncfs(folder).inspect_err(|_| self.fs_failed.store(true, SeqCst))
            }),
            _ => Ok(()),
        }
    }

    /// Makes sure every folder from `dir` (excluded) down to `folder` is on disk in its parent:
    /// a folder not known to be is made so by fsyncing its parent. A folder another upload just
    /// made is not known until that upload (or this one) has fsynced its parent, so no upload
    /// answers while a folder above its bundle may still vanish in a crash.
    pub(super) fn folders_durable(&self, dir: &Path, folder: &Path) -> io::Result<()> {
        let Ok(below) = folder.strip_prefix(dir) else { return Ok(()) };
        let mut at = dir.to_path_buf();
        for part in below.components() {
            let parent = at.clone();
            at.push(part);
            if self.durable.lock().unwrap_or_else(|e| e.into_inner()).contains(&at) {
                continue;
            }
            self.sync(&parent)?;
            let mut known = self.durable.lock().unwrap_or_else(|e| e.into_inner());
            if known.len() >= Self::DURABLE_MAX {
                known.clear();
            }
            known.insert(at.clone());
        }
        Ok(())
    }

    /// Returns once an fsync of `folder` that started after this call has finished: everything
    /// put in it before the call is durable.
    pub(super) fn sync(&self, folder: &Path) -> io::Result<()> {
        self.shared(folder, &|| sync_dir(folder))
    }

    /// Runs `op` (a sync whose group is `name`), shared with the callers waiting at that time.
    fn shared(&self, folder: &Path, op: &dyn Fn() -> io::Result<()>) -> io::Result<()> {
        let group = {
            let mut all = self.folders.lock().unwrap_or_else(|e| e.into_inner());
            let g = all.entry(folder.to_path_buf()).or_default().clone();
            g.state.lock().unwrap_or_else(|e| e.into_inner()).users += 1;
            g
        };
        let result = group.wait_for(op);
        let mut all = self.folders.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = group.state.lock().unwrap_or_else(|e| e.into_inner());
        st.users -= 1;
        if st.users == 0 {
            all.remove(folder);
        }
        result
    }
}

impl Group {
    fn wait_for(&self, op: &dyn Fn() -> io::Result<()>) -> io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // The first fsync to start from now on covers this caller.
        let needed = st.started + 1;
        loop {
            if st.finished >= needed {
                return Ok(());
            }
            // A sync that covered this caller failed: so does this caller (another sync would
            // not see the lost write-back).
            if let Some((n, why)) = &st.failed
                && *n >= needed
            {
                return Err(io::Error::other(why.clone()));
            }
            if st.running {
                st = self.done.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            st.running = true;
            st.started += 1;
            let this = st.started;
            drop(st);
            let r = op();
            st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.running = false;
            match &r {
                Ok(()) => st.finished = this,
                Err(e) => st.failed = Some((this, e.to_string())),
            }
            self.done.notify_all();
            r?;
        }
    }
}

/// Whether one `syncfs` of the store `dir` (open as `folder`) makes all of it durable and
/// reports write errors: Linux 5.8 or later (earlier ones report none), not FUSE (which syncs
/// nothing before 5.14), and none of the store's folders on another file system.
#[cfg(target_os = "linux")]
fn syncfs_covers(dir: &Path, folder: &fs::File) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    // SAFETY: `uname` fills the struct it is given.
    let mut name: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut name) } != 0 {
        return Ok(false);
    }
    // SAFETY: `release` is NUL-terminated by `uname`.
    let release = unsafe { std::ffi::CStr::from_ptr(name.release.as_ptr()) }.to_string_lossy().into_owned();
    let mut parts = release.split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if version < (5, 8) {
        return Ok(false);
    }
    // SAFETY: an open file's descriptor and a struct for `fstatfs` to fill.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(folder.as_raw_fd(), &mut st) } != 0 || st.f_type == 0x6573_5546 {
        return Ok(false);
    }
    let dev = folder.metadata()?.dev();
    for sub in ["bundles", "receipts", "ceip", ".incoming"] {
        match fs::metadata(dir.join(sub)) {
            Ok(m) if m.dev() != dev => return Ok(false),
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(true)
}

/// `syncfs(2)`: writes out everything of the file system `file` is on, and waits.
#[cfg(target_os = "linux")]
fn syncfs(file: &fs::File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: an open file's descriptor.
    if unsafe { libc::syncfs(file.as_raw_fd()) } == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// `rename(from, to)` that fails with `AlreadyExists` instead of replacing `to`.
#[cfg(target_os = "linux")]
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other);
    let (f, t) = (c(from)?, c(to)?);
    // SAFETY: two valid NUL-terminated paths, relative to the working directory.
    let rc = unsafe { libc::renameat2(libc::AT_FDCWD, f.as_ptr(), libc::AT_FDCWD, t.as_ptr(), libc::RENAME_NOREPLACE) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        // A file system without RENAME_NOREPLACE: the portable way.
        Some(libc::EINVAL) | Some(libc::ENOSYS) => link_then_unlink(from, to),
        _ => Err(e),
    }
}

#[cfg(not(target_os = "linux"))]
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    link_then_unlink(from, to)
}

/// Create-only by a hard link (which never replaces), then the temporary name removed.
fn link_then_unlink(from: &Path, to: &Path) -> io::Result<()> {
    fs::hard_link(from, to)?;
    fs::remove_file(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_is_written_once_and_the_first_stands() {
        // Each file fsynced, and (Linux) the whole store by one syncfs.
        for whole_fs in [false, true] {
            let d = tempfile::tempdir().unwrap();
            let syncs = if whole_fs { DirSync::for_store(d.path()).unwrap() } else { DirSync::default() };
            assert_eq!(syncs.whole_fs(), whole_fs && cfg!(target_os = "linux"));
            written_once(d.path(), &syncs);
            syncs.sync_fs().unwrap();
        }
    }

    fn written_once(dir: &Path, syncs: &DirSync) {
        let spool = dir.join(".incoming");
        fs::create_dir(&spool).unwrap();
        let put =
            |bytes: &[u8], n: u32| put_new(syncs, dir, "receipts/a.json", &spool.join(format!("{n}.part")), bytes);
        assert!(matches!(put(b"first", 1).unwrap(), PutNew::Created));
        assert!(matches!(put(b"second", 2).unwrap(), PutNew::Exists));
        assert_eq!(read(dir, "receipts/a.json").unwrap().unwrap(), b"first");
        assert_eq!(fs::read_dir(&spool).unwrap().count(), 0, "no temporary file is left");
        assert!(read(dir, "receipts/b.json").unwrap().is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir.join("receipts/a.json")), 0o600);
            assert_eq!(mode(&dir.join("receipts")), 0o700);
        }
    }

    #[test]
    fn a_file_moves_into_folders_made_for_it() {
        let d = tempfile::tempdir().unwrap();
        let from = d.path().join("x.part");
        fs::write(&from, b"zip").unwrap();
        let syncs = DirSync::default();
        move_into(&syncs, d.path(), &from, "bundles/2026/11/30/i-1/x.zip", &d.path().join("t.part")).unwrap();
        let known = syncs.durable.lock().unwrap().clone();
        for f in ["bundles", "bundles/2026", "bundles/2026/11", "bundles/2026/11/30", "bundles/2026/11/30/i-1"] {
            assert!(known.contains(&d.path().join(f)), "{f} is known to be on disk");
        }
        let sha = callhome_protocol::fs::sha256_hex(b"zip");
        assert!(holds(d.path(), "bundles/2026/11/30/i-1/x.zip", &sha).unwrap());
        assert!(
            !holds(d.path(), "bundles/2026/11/30/i-1/x.zip", &callhome_protocol::fs::sha256_hex(b"other")).unwrap()
        );
        assert!(!from.exists());
        assert!(!holds(d.path(), "bundles/2026/11/30/i-2/x.zip", &sha).unwrap());
    }

    #[test]
    fn threads_syncing_one_folder_share_fsyncs_and_each_returns() {
        let d = tempfile::tempdir().unwrap();
        let syncs = DirSync::default();
        std::thread::scope(|s| {
            for _ in 0..16 {
                s.spawn(|| {
                    for _ in 0..20 {
                        syncs.sync(d.path()).unwrap();
                    }
                });
            }
        });
        assert!(syncs.folders.lock().unwrap().is_empty(), "no folder is kept once nobody waits on it");
        assert!(syncs.sync(&d.path().join("missing")).is_err(), "a folder that cannot be synced is an error");
    }

    #[test]
    fn a_failed_sync_fails_every_caller_it_covered_without_another_sync() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let syncs = DirSync::default();
        let runs = AtomicUsize::new(0);
        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = Mutex::new(held);
        let name = Path::new("group");
        std::thread::scope(|s| {
            // The first sync holds the group until two more callers wait behind it.
            let first = s.spawn(|| {
                syncs.shared(name, &|| {
                    runs.fetch_add(1, SeqCst);
                    held.lock().unwrap().recv().unwrap();
                    Ok(())
                })
            });
            let waiting =
                |n: usize| syncs.folders.lock().unwrap().get(name).is_some_and(|g| g.state.lock().unwrap().users == n);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !waiting(1) {
                assert!(std::time::Instant::now() < deadline, "the first sync did not start");
                std::thread::yield_now();
            }
            let failing = || {
                syncs.shared(name, &|| {
                    runs.fetch_add(1, SeqCst);
                    Err(io::Error::other("write-back failed"))
                })
            };
            let (b, c) = (s.spawn(failing), s.spawn(failing));
            while !waiting(3) {
                assert!(std::time::Instant::now() < deadline, "the callers did not queue");
                std::thread::yield_now();
            }
            release.send(()).unwrap();
            first.join().unwrap().unwrap();
            assert!(b.join().unwrap().is_err() && c.join().unwrap().is_err(), "both callers see the failure");
        });
        assert_eq!(runs.load(SeqCst), 2, "the caller the failed sync covered started no sync of its own");
    }
}
