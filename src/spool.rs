//! The on-disk queue of bundles: commit, list, quarantine, quota, and start-up recovery.
//!
//! Invariants kept here: a bundle enters the spool only by an atomic rename of a complete,
//! fsynced file ([`Spool::commit`]); it leaves only through [`Spool::retire`], which commits its
//! ledger row (sent, withdrawn, evicted, reported, quarantined) and only then unlinks the file or
//! moves it to quarantine — the only caller of the unlink. Start-up tolerates a missing file, an
//! orphan, a half-written temporary and a stranger's file. No network, no HTTP.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::bundle;
use crate::clock::Timestamp;
use crate::datadir::DataDir;
use crate::fsutil::{self, sync_dir};
use crate::programs::Program;
use crate::store::{Attempt, LedgerEntry, LedgerEvent, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T> = std::result::Result<T, SpoolError>;

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io { path: path.to_path_buf(), source }
}

/// A pending bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub program: Program,
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
}

/// What start-up recovery did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub tmp_removed: usize,
    /// Bundles already acknowledged whose deletion a crash interrupted.
    pub sent_removed: usize,
    pub quarantined: Vec<String>,
    pub pending: usize,
}

/// What the quota did to make room.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct QuotaOutcome {
    /// Files removed from `exports/` (oldest first) to make room.
    pub exports_removed: Vec<String>,
    pub evicted: Vec<String>,
    /// Still over the quota with compliance bundles alone: they are kept, and this is reported.
    pub over_quota_bytes: u64,
}

/// A file in quarantine/: a bundle the receiver refused for good or that failed verification, or
/// a stranger found in the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// Its file name in quarantine/.
    pub id: String,
    pub path: PathBuf,
    pub size: u64,
    /// The `.reason` note beside it.
    pub reason: String,
    /// When it was moved there (the file's modification time).
    pub at: Timestamp,
}

/// Why a bundle leaves the spool: what [`Spool::retire`] writes to the ledger first.
#[derive(Debug, Clone, Copy)]
pub enum Fate<'a> {
    /// Acknowledged (by the receiver, or by a manual receipt): the `sent` row and the attempt that
    /// got the receipt, in one transaction. A bundle whose SHA-256 the ledger already holds as
    /// sent gets no second row.
    Sent { entry: &'a LedgerEntry, attempt: &'a Attempt },
    /// Withdrawn, evicted, reported by hand, or quarantined (the file is then moved to
    /// quarantine/ with `entry.detail` as the reason, not deleted).
    Recorded(&'a LedgerEntry),
    /// The ledger already records its fate: a crash came between the row and the unlink.
    AlreadyRecorded,
}

/// A fault point for the crash tests: `CALLHOME_FAULT_POINT=retire` aborts the process right
/// after a retirement's ledger row is committed and before its file is touched.
fn fault_point(name: &str) {
    static POINT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if POINT.get_or_init(|| std::env::var("CALLHOME_FAULT_POINT").ok()).as_deref() == Some(name) {
        eprintln!("callhome: CALLHOME_FAULT_POINT={name}: aborting between the ledger row and the unlink");
        std::process::abort();
    }
}

#[derive(Debug, Clone)]
pub struct Spool {
    dir: DataDir,
}

impl Spool {
    pub fn new(dir: DataDir) -> Spool {
        Spool { dir }
    }

    /// Moves a finished bundle from `.tmp` into its program's folder, durably.
    pub fn commit(&self, program: Program, tmp_path: &Path) -> Result<Pending> {
        let name = tmp_path.file_name().expect("bundle paths have names").to_string_lossy().into_owned();
        let dest_dir = self.dir.spool_dir(program);
        let dest = dest_dir.join(&name);
        fs::rename(tmp_path, &dest).map_err(io_at(&dest))?;
        sync_dir(&dest_dir).map_err(io_at(&dest_dir))?;
        let size = fs::metadata(&dest).map_err(io_at(&dest))?.len();
        Ok(Pending { program, name, path: dest, size })
    }

    /// The program's pending bundles, oldest first (names sort by their UTC stamp).
    pub fn pending(&self, program: Program) -> Result<Vec<Pending>> {
        let dir = self.dir.spool_dir(program);
        let mut out = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_at(&dir)(e)),
        };
        for e in entries {
            let e = e.map_err(io_at(&dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !bundle::is_bundle_name(program, &name) {
                continue;
            }
            let Ok(meta) = e.metadata() else { continue }; // vanished meanwhile
            if meta.is_file() {
                out.push(Pending { program, name, path: e.path(), size: meta.len() });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn all_pending(&self) -> Result<Vec<Pending>> {
        let mut out = Vec::new();
        for p in Program::ALL {
            out.extend(self.pending(p)?);
        }
        Ok(out)
    }

    /// Finds a pending bundle by file name or path.
    pub fn find(&self, name_or_path: &str) -> Result<Option<Pending>> {
        let name = Path::new(name_or_path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(self.all_pending()?.into_iter().find(|p| p.name == name))
    }

    /// The one way a bundle leaves the spool: its fate goes to the ledger (committed), then the
    /// file is unlinked, or moved to quarantine/ for a quarantined one. Returns whether the ledger
    /// got a new row (false for a bundle already recorded as sent). A crash between the two steps
    /// leaves a file whose fate the ledger knows: the next upload or start-up retires it with
    /// [`Fate::AlreadyRecorded`], and it is never sent twice.
    pub fn retire(&self, store: &mut Store, p: &Pending, fate: Fate<'_>) -> Result<bool> {
        let new = match fate {
            Fate::Sent { entry, attempt } => store.record_sent(attempt, entry)?,
            Fate::Recorded(entry) => {
                store.append_ledger(entry)?;
                true
            }
            Fate::AlreadyRecorded => false,
        };
        fault_point("retire");
        match fate {
            Fate::Recorded(entry) if entry.event == LedgerEvent::Quarantined => {
                self.quarantine(&p.path, &entry.detail)?;
            }
            _ => unlink(&p.path)?,
        }
        Ok(new)
    }

    /// The files in quarantine/, oldest first (their `.reason` notes are not listed).
    pub fn quarantined(&self) -> Result<Vec<Quarantined>> {
        let dir = self.dir.quarantine_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_at(&dir)(e)),
        };
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(io_at(&dir))?;
            let id = e.file_name().to_string_lossy().into_owned();
            let Ok(meta) = e.metadata() else { continue };
            if id.ends_with(".reason") || !meta.is_file() {
                continue;
            }
            let reason = fs::read_to_string(reason_path(&e.path())).unwrap_or_default().trim_end().to_string();
            let at = meta
                .modified()
                .ok()
                .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs() as i64);
            out.push(Quarantined { id, path: e.path(), size: meta.len(), reason, at });
        }
        out.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        Ok(out)
    }

    /// A quarantined file by its id (its plain file name).
    pub fn find_quarantined(&self, id: &str) -> Result<Option<Quarantined>> {
        Ok(self.quarantined()?.into_iter().find(|q| q.id == id))
    }

    /// Puts a quarantined bundle back into its program's folder under `name` (rename, both
    /// folders fsynced) and drops its `.reason` note. The caller has re-checked it.
    pub fn requeue(&self, q: &Quarantined, program: Program, name: &str) -> Result<Pending> {
        let dest_dir = self.dir.spool_dir(program);
        fs::create_dir_all(&dest_dir).map_err(io_at(&dest_dir))?;
        let dest = dest_dir.join(name);
        if dest.exists() {
            return Err(io_at(&dest)(io::Error::new(io::ErrorKind::AlreadyExists, "a pending bundle has this name")));
        }
        fs::rename(&q.path, &dest).map_err(io_at(&q.path))?;
        sync_dir(&dest_dir).map_err(io_at(&dest_dir))?;
        unlink(&reason_path(&q.path))?;
        Ok(Pending { program, name: name.into(), path: dest, size: q.size })
    }

    /// Deletes a quarantined file for good: its `purged` ledger row through [`Spool::retire`],
    /// then the file and its note.
    pub fn purge(&self, store: &mut Store, q: &Quarantined, program: Program, now: Timestamp) -> Result<()> {
        let sha = fsutil::sha256_file(&q.path).map(|(s, _)| s).unwrap_or_default();
        let entry = LedgerEntry {
            at: now,
            event: LedgerEvent::Purged,
            program,
            bundle: q.id.clone(),
            sha256: sha,
            size: q.size,
            detail: format!("purged from quarantine/ by the administrator; it was quarantined because: {}", q.reason),
        };
        let as_pending = Pending { program, name: q.id.clone(), path: q.path.clone(), size: q.size };
        self.retire(store, &as_pending, Fate::Recorded(&entry))?;
        unlink(&reason_path(&q.path))
    }

    /// Moves a file into quarantine/ with a `.reason` note beside it.
    pub fn quarantine(&self, path: &Path, reason: &str) -> Result<PathBuf> {
        let qdir = self.dir.quarantine_dir();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "unnamed".into());
        let mut dest = qdir.join(&name);
        let mut i = 1;
        while dest.exists() {
            dest = qdir.join(format!("{name}.{i}"));
            i += 1;
        }
        let note = dest.with_file_name(format!("{}.reason", dest.file_name().unwrap().to_string_lossy()));
        fsutil::write_atomic(&note, format!("{reason}\n").as_bytes()).map_err(io_at(&note))?;
        fs::rename(path, &dest).map_err(io_at(path))?;
        sync_dir(&qdir).map_err(io_at(&qdir))?;
        {
            let src_dir = fsutil::parent_dir(path);
            sync_dir(src_dir).map_err(io_at(src_dir))?;
        }
        Ok(dest)
    }

    /// Quarantines a pending bundle and records it in the ledger.
    pub fn quarantine_bundle(
        &self,
        store: &mut Store,
        p: &Pending,
        sha256: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<()> {
        let entry = LedgerEntry {
            at: now,
            event: LedgerEvent::Quarantined,
            program: p.program,
            bundle: p.name.clone(),
            sha256: sha256.into(),
            size: p.size,
            detail: reason.into(),
        };
        self.retire(store, p, Fate::Recorded(&entry)).map(drop)
    }

    /// Deletes a bundle unsent (withdrawn or evicted), ledger first.
    pub fn discard(
        &self,
        store: &mut Store,
        p: &Pending,
        event: LedgerEvent,
        reason: &str,
        now: Timestamp,
    ) -> Result<()> {
        let sha = fsutil::sha256_file(&p.path).map(|(s, _)| s).unwrap_or_default();
        let entry = LedgerEntry {
            at: now,
            event,
            program: p.program,
            bundle: p.name.clone(),
            sha256: sha,
            size: p.size,
            detail: reason.into(),
        };
        self.retire(store, p, Fate::Recorded(&entry)).map(drop)
    }

    /// Withdraws every pending bundle of an optional program that was turned off.
    pub fn withdraw(&self, store: &mut Store, program: Program, now: Timestamp) -> Result<Vec<String>> {
        assert!(!program.mandatory(), "mandatory telemetry is never withdrawn");
        let mut out = Vec::new();
        for p in self.pending(program)? {
            self.discard(store, &p, LedgerEvent::Withdrawn, "the administrator turned the program off", now)?;
            out.push(p.name);
        }
        Ok(out)
    }

    /// Keeps the spool under `max_bytes`: optional programs' oldest bundles go first (recorded);
    /// compliance bundles are never evicted, and what is still over is reported.
    ///
    /// The files in `exports/` count too, and go before any bundle: an export is a copy of
    /// bundles that are still pending (or already reported), a support bundle can be made again.
    pub fn enforce_quota(&self, store: &mut Store, max_bytes: u64, now: Timestamp) -> Result<QuotaOutcome> {
        let all = self.all_pending()?;
        let mut outcome = QuotaOutcome::default();
        let mut exports = self.exports();
        let mut total: u64 = all.iter().map(|p| p.size).sum::<u64>() + exports.iter().map(|e| e.2).sum::<u64>();
        exports.sort();
        for (_, path, size) in exports {
            if total <= max_bytes {
                break;
            }
            fs::remove_file(&path).map_err(io_at(&path))?;
            total -= size;
            outcome.exports_removed.push(path.file_name().unwrap_or_default().to_string_lossy().into_owned());
        }
        let mut optional: Vec<&Pending> = all.iter().filter(|p| !p.program.mandatory()).collect();
        // Oldest first across programs: the stamp follows the `upload_<type>_` prefix.
        optional.sort_by(|a, b| stamp_part(&a.name).cmp(stamp_part(&b.name)));
        for p in optional {
            if total <= max_bytes {
                break;
            }
            self.discard(
                store,
                p,
                LedgerEvent::Evicted,
                &format!("spool over spool.max_bytes ({max_bytes} bytes)"),
                now,
            )?;
            total -= p.size;
            outcome.evicted.push(p.name.clone());
        }
        outcome.over_quota_bytes = total.saturating_sub(max_bytes);
        Ok(outcome)
    }

    /// The files in `exports/`: (modified, path, bytes), in no order.
    fn exports(&self) -> Vec<(i64, PathBuf, u64)> {
        crate::manual::export_files(&self.dir.exports_dir())
            .into_iter()
            .filter_map(|path| {
                let m = fs::metadata(&path).ok()?;
                let modified = m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64;
                Some((modified, path, m.len()))
            })
            .collect()
    }

    /// The bytes the files in `exports/` take.
    pub fn exports_bytes(&self) -> u64 {
        self.exports().iter().map(|e| e.2).sum()
    }

    /// Removes the files in `exports/` older than `max_age`; returns their names.
    pub fn expire_exports(&self, max_age: std::time::Duration, now: Timestamp) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for (modified, path, _) in self.exports() {
            if now - modified >= max_age.as_secs() as i64 {
                fs::remove_file(&path).map_err(io_at(&path))?;
                removed.push(path.file_name().unwrap_or_default().to_string_lossy().into_owned());
            }
        }
        Ok(removed)
    }

    /// Start-up: clean `.tmp`, finish interrupted deletions, quarantine strangers.
    pub fn recover(&self, store: &mut Store) -> Result<Recovery> {
        let mut r = Recovery::default();
        let tmp = self.dir.tmp_dir();
        r.tmp_removed = bundle::clean_tmp(&tmp).map_err(io_at(&tmp))?;
        let sent = store.sent_bundles()?;
        for program in Program::ALL {
            let dir = self.dir.spool_dir(program);
            for e in fs::read_dir(&dir).map_err(io_at(&dir))? {
                let e = e.map_err(io_at(&dir))?;
                let name = e.file_name().to_string_lossy().into_owned();
                let path = e.path();
                if name.starts_with('.') && name.ends_with(".tmp") {
                    fs::remove_file(&path).map_err(io_at(&path))?;
                    r.tmp_removed += 1;
                } else if !e.file_type().map(|t| t.is_file()).unwrap_or(false)
                    || !bundle::is_bundle_name(program, &name)
                {
                    self.quarantine(
                        &path,
                        &format!(
                            "found in spool/{} at start-up: not a bundle name the agent writes",
                            program.spool_folder()
                        ),
                    )?;
                    r.quarantined.push(name);
                } else if sent.contains(&name) {
                    let p = Pending { program, name, path, size: 0 };
                    self.retire(store, &p, Fate::AlreadyRecorded)?;
                    r.sent_removed += 1;
                } else if let Err(why) = bundle::looks_whole(&path) {
                    self.quarantine(&path, &format!("found damaged at start-up: {why}"))?;
                    r.quarantined.push(name);
                } else {
                    r.pending += 1;
                }
            }
            sync_dir(&dir).map_err(io_at(&dir))?;
        }
        Ok(r)
    }
}

/// Deletes a retired bundle's file (a missing one is fine: a crash may have come after the
/// unlink) and fsyncs its folder. Only [`Spool::retire`] calls it.
fn unlink(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_at(path)(e)),
    }
    let dir = fsutil::parent_dir(path);
    sync_dir(dir).map_err(io_at(dir))
}

/// The `.reason` note beside a quarantined file.
fn reason_path(path: &Path) -> PathBuf {
    path.with_file_name(format!("{}.reason", path.file_name().unwrap_or_default().to_string_lossy()))
}

fn stamp_part(name: &str) -> &str {
    // upload_<kind>_<stamp>_<rand>.zip → <stamp>_<rand>.zip
    name.splitn(3, '_').nth(2).unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{Contents, Stamp};

    fn setup() -> (tempfile::TempDir, Spool, Store, DataDir) {
        let dir = tempfile::tempdir().unwrap();
        let d = DataDir::at(dir.path());
        d.create().unwrap();
        let store = Store::open(&d.db_path()).unwrap();
        (dir, Spool::new(d.clone()), store, d)
    }

    fn add(spool: &Spool, d: &DataDir, p: Program, now: Timestamp, bytes: usize) -> Pending {
        let mut c = Contents::default();
        c.add_file("data.bin", "test data", (0..bytes).map(|i| (i * 7919 % 251) as u8).collect());
        let name = bundle::bundle_name(p, now);
        let tmp = bundle::write(&d.tmp_dir(), &name, &Stamp::of(p, "i", now), c).unwrap();
        spool.commit(p, &tmp).unwrap()
    }

    #[test]
    fn quota_evicts_optional_oldest_first_and_never_compliance() {
        let (_g, spool, mut store, d) = setup();
        let c1 = add(&spool, &d, Program::Telemetry, 1, 20_000);
        let u1 = add(&spool, &d, Program::Ceip, 2, 20_000);
        let h1 = add(&spool, &d, Program::CallHome, 3, 20_000);
        let out = spool.enforce_quota(&mut store, c1.size + h1.size, 10).unwrap();
        assert_eq!(out.evicted, vec![u1.name.clone()]);
        assert_eq!(out.over_quota_bytes, 0);
        let out = spool.enforce_quota(&mut store, 10, 10).unwrap();
        assert_eq!(out.evicted, vec![h1.name.clone()]);
        assert_eq!(out.over_quota_bytes, c1.size - 10);
        assert_eq!(spool.pending(Program::Telemetry).unwrap(), vec![c1]);
        let events: Vec<_> = store.ledger().unwrap().into_iter().map(|r| r.event).collect();
        assert_eq!(events, vec!["evicted", "evicted"]);
    }

    #[test]
    fn recovery_cleans_tmp_quarantines_strangers_and_finishes_deletes() {
        let (_g, spool, mut store, d) = setup();
        let sent = add(&spool, &d, Program::Telemetry, 1, 10);
        let keep = add(&spool, &d, Program::Telemetry, 2, 10);
        fs::write(d.tmp_dir().join("half.zip"), b"half").unwrap();
        fs::write(d.spool_dir(Program::Telemetry).join("notes.txt"), b"?").unwrap();
        // A bundle cut short (a disk that lied about a sync, say) is quarantined, not uploaded.
        let torn = add(&spool, &d, Program::Telemetry, 3, 10);
        let bytes = fs::read(&torn.path).unwrap();
        fs::write(&torn.path, &bytes[..bytes.len() / 2]).unwrap();
        store
            .append_ledger(&LedgerEntry {
                at: 5,
                event: LedgerEvent::Sent,
                program: Program::Telemetry,
                bundle: sent.name.clone(),
                sha256: "x".into(),
                size: sent.size,
                detail: "{}".into(),
            })
            .unwrap();
        let r = spool.recover(&mut store).unwrap();
        assert_eq!((r.tmp_removed, r.sent_removed, r.pending), (1, 1, 1));
        let mut q = r.quarantined.clone();
        q.sort();
        assert_eq!(q, vec!["notes.txt".to_string(), torn.name.clone()]);
        let reason = fs::read_to_string(d.quarantine_dir().join(format!("{}.reason", torn.name))).unwrap();
        assert!(reason.contains("damaged"), "{reason}");
        assert_eq!(spool.pending(Program::Telemetry).unwrap(), vec![keep]);
        assert!(d.quarantine_dir().join("notes.txt.reason").exists());
    }
}
