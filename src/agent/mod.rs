//! The agent: one object that wires configuration, consent, collectors, spool, store and uploader.
//! This file opens it and holds what every stage shares (consent, policy locks, recovery, the
//! notices); the stages are beside it, in the order data flows: [`collection`] (collectors into a
//! bundle into the spool), [`upload`] (the cycle, retirement on acknowledgement), [`consent`]
//! (programs on and off, withdrawals), [`access`] (proxy and token), [`exemption`] (exemptions
//! from the reporting rule), [`status`], [`run`] (the scheduler loop), and [`bundles`]
//! (bookkeeping for manual reporting and the alerts).
//!
//! Front ends reach the agent through [`crate::control`]; the state itself lives in the data
//! directory (SQLite and the spool), never in a front end. Changes to the spool and the upload
//! state happen under the data directory's work lock. No HTTP server, no GUI toolkit.

mod access;
mod alerts;
mod bundles;
mod collection;
mod consent;
mod exemption;
mod quarantine;
mod run;
mod status;
mod upload;

use access::stored_access;
pub use exemption::ExemptionRefusal;
pub use quarantine::Retried;
pub use status::{ChannelStatus, ProductStatus, Status, VersionStatus};
pub use upload::{ProgramUpload, UploadReport};

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::bundle::{self, Stamp};
use crate::clock::{Clock, Timestamp};
use crate::collect::licenses::{Identity, inventory_json, seen, usage_json};
use crate::collect::{self, Context};
use crate::compliance;
use crate::config::Config;
use crate::datadir::{DataDir, DataDirError, Install, WorkLock};
use crate::licenses::date::Date;
use crate::licenses::{self, Inventory, LicenseEvent};
use crate::programs::{Consent, Program, TelemetryMode, do_not_track_from_env};
use crate::schedule::{Plan, Task};
use crate::secrets::{self, Secret, Value};
use crate::spool::{Fate, Pending, Recovery, Spool, SpoolError};
use crate::store::{Attempt, ErrorsPart, Key, LedgerEntry, LedgerEvent, LogKey, Store, StoreError, TaskState};
use crate::upload::{Access, Code, Disposition, Failure, Outgoing, StoredAccess, Uploader, result};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    Bundle(#[from] bundle::BundleError),
    /// A request the rules forbid (such as turning mandatory telemetry off).
    #[error("{0}")]
    Refused(String),
    /// What the request names does not exist (an alert that is not open).
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Secret(#[from] secrets::SecretError),
}

type Result<T> = std::result::Result<T, AgentError>;

/// A wait at least this long counts as going idle.
const IDLE: Duration = Duration::from_secs(30);

/// The task name under which the last license-telemetry collection is remembered.
const TELEMETRY_COLLECT_TASK: &str = "collect_telemetry";

pub struct Agent {
    cfg: Config,
    dir: DataDir,
    spool: Spool,
    store: Mutex<Store>,
    clock: Arc<dyn Clock>,
    install: Install,
    /// Built at start and again when the proxy or the token changes; a broken CA file or key is
    /// reported at every attempt, not fatal at start.
    uploader: std::sync::RwLock<std::result::Result<Uploader, Failure>>,
    /// The proxy and token the uploader was built with.
    access: std::sync::RwLock<Access>,
    plan: Plan,
    do_not_track: bool,
    /// State changes, for live views (the API's event stream) and notifications.
    notices: tokio::sync::broadcast::Sender<Notice>,
    /// Counts bursts of work (tasks run, changes reported), so the loop knows when to go idle.
    work: std::sync::atomic::AtomicU64,
    /// Wakes the scheduler loop when a front end moved a due time (a failed "Upload now").
    rescheduled: tokio::sync::Notify,
    /// The in-process queue for the work lock: waiters wait here, on no thread, so that waiting
    /// jobs never fill the runtime's few blocking threads while the holder needs one.
    work_gate: Arc<tokio::sync::Mutex<()>>,
}

/// The work lock as held: this process's gate, then the data directory's file lock (which other
/// processes on the directory, such as the CLI, take too).
#[derive(Debug)]
pub struct WorkGuard {
    _file: WorkLock,
    _gate: tokio::sync::OwnedMutexGuard<()>,
}

/// Something changed that a live view or a notification may care about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A bundle was collected, withdrawn, or a program's state changed.
    StateChanged { what: String },
    /// An upload attempt ended (`code` is a result code).
    UploadResult { program: Program, code: String, message: String },
    /// A license event appeared.
    LicenseEvent { kind: &'static str, feature: String, message: String },
}

/// What one collection produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Collected {
    Bundle { program: Program, name: String, size: u64, errors: usize },
    Skipped { program: Program, reason: String },
}

impl Agent {
    /// Opens (creating when needed) the data directory and state; does not take the run lock.
    pub fn open(cfg: Config, dir: DataDir, clock: Arc<dyn Clock>) -> Result<Agent> {
        dir.create()?;
        let install = dir.install(clock.now())?;
        let store = Store::open(&dir.db_path())?;
        let access = Access::resolve(&cfg, &stored_access(&store)?);
        let uploader = Uploader::new(&cfg, &install.install_id, &access);
        if let Err(f) = &uploader {
            warn!("uploads cannot start: {}", f.message);
        }
        Ok(Agent {
            plan: Plan::from_config(&cfg),
            spool: Spool::new(dir.clone()),
            store: Mutex::new(store),
            do_not_track: do_not_track_from_env(),
            notices: tokio::sync::broadcast::channel(256).0,
            work: std::sync::atomic::AtomicU64::new(0),
            rescheduled: tokio::sync::Notify::new(),
            work_gate: Arc::new(tokio::sync::Mutex::new(())),
            cfg,
            dir,
            clock,
            install,
            uploader: std::sync::RwLock::new(uploader),
            access: std::sync::RwLock::new(access),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn data_dir(&self) -> &DataDir {
        &self.dir
    }

    pub(crate) fn spool(&self) -> &Spool {
        &self.spool
    }

    pub fn install(&self) -> &Install {
        &self.install
    }

    /// Subscribes to state changes.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    /// How many subscribers listen to the notices now (the notifier, live views).
    pub fn listeners(&self) -> usize {
        self.notices.receiver_count()
    }

    pub(crate) fn notify(&self, n: Notice) {
        self.work.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // No subscriber is fine: nobody is watching.
        let _ = self.notices.send(n);
    }

    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for and takes the data directory's work lock.
    pub async fn work_lock(&self) -> Result<WorkGuard> {
        // In this process one job at a time goes on to the file lock: a wait for the file blocks
        // a thread, and the runtime has only a few (jobs queued behind the holder once took them
        // all, and the holder, needing one, waited for ever).
        let gate = self.work_gate.clone().lock_owned().await;
        let dir = self.dir.clone();
        let file = tokio::task::spawn_blocking(move || dir.lock_work()).await.expect("lock task does not panic")?;
        Ok(WorkGuard { _file: file, _gate: gate })
    }

    /// The programs' effective state. Event data exists only for registered agents: without an
    /// endpoint token it is off whatever the choice, the default or a lock says, so nothing is
    /// collected or sent for it.
    pub fn consent(&self) -> Result<Consent> {
        let choices = self.store().choices()?;
        let locked: Vec<Program> = self.locks().into_iter().map(|(p, _)| p).collect();
        let mut consent = Consent::resolve(&self.cfg.programs, choices, self.do_not_track, &locked);
        consent.events &= self.registered();
        Ok(consent)
    }

    /// Whether this agent holds an endpoint (registration) token.
    pub fn registered(&self) -> bool {
        self.access().token.is_some()
    }

    /// How often the schedule uploads a program: its configured cadence, or a matching vendor
    /// policy rule's when that is shorter.
    pub fn upload_interval(&self, p: Program) -> Duration {
        self.interval_with(p, &self.matched_rules(None))
    }

    fn interval_with(&self, p: Program, rules: &[&crate::config::PolicyRule]) -> Duration {
        let configured = self.cfg.upload_interval(p);
        rules.iter().filter(|r| r.require == p).filter_map(|r| r.upload_interval).fold(configured, Duration::min)
    }

    /// The vendor policy rules an installed, unexpired license line matches (in `inv`, or in a
    /// fresh scan).
    fn matched_rules(&self, inv: Option<&Inventory>) -> Vec<&crate::config::PolicyRule> {
        if self.cfg.policy.is_empty() {
            return Vec::new();
        }
        let scanned;
        let inv = match inv {
            Some(i) => i,
            None => {
                scanned = self.scan_licenses();
                &scanned
            }
        };
        self.cfg
            .policy
            .iter()
            .filter(|rule| {
                let (k, v) = &rule.vendor_string;
                inv.licenses.iter().filter(|l| !l.expired()).any(|l| {
                    l.line.vendor_string.iter().any(|(a, b)| a.eq_ignore_ascii_case(k) && b.eq_ignore_ascii_case(v))
                })
            })
            .collect()
    }

    /// Programs locked on, with the reason: by the administrator's configuration, or by a vendor
    /// policy rule that an installed license line matches.
    pub fn locks(&self) -> Vec<(Program, String)> {
        self.locks_with(&self.matched_rules(None))
    }

    fn locks_with(&self, rules: &[&crate::config::PolicyRule]) -> Vec<(Program, String)> {
        let mut out: Vec<(Program, String)> = self
            .cfg
            .programs
            .locked
            .iter()
            .map(|p| (*p, "locked on by the administrator's configuration".to_string()))
            .collect();
        for rule in rules {
            if !out.iter().any(|(p, _)| *p == rule.require) {
                out.push((rule.require, rule.reason.clone()));
            }
        }
        out
    }

    /// Start-up recovery of the spool (call once, under the run lock).
    pub async fn recover(&self) -> Result<Recovery> {
        let _w = self.work_lock().await?;
        let r = self.spool.recover(&mut self.store())?;
        if r.tmp_removed + r.sent_removed + r.quarantined.len() > 0 {
            info!(
                tmp_removed = r.tmp_removed,
                sent_removed = r.sent_removed,
                quarantined = r.quarantined.len(),
                "spool recovered after an interrupted run"
            );
        }
        Ok(r)
    }

    pub(crate) fn write_result(&self, p: Program, code: Code, message: &str, arg: Option<&str>, now: Timestamp) {
        self.notify(Notice::UploadResult { program: p, code: code.as_str().into(), message: message.into() });
        self.write_result_file(p, code, message, arg, now);
    }

    /// Writes the result file only: for outcomes that are not upload attempts (an export
    /// confirmed by hand), which the alerts must not take for a failed upload.
    pub(crate) fn write_result_file(&self, p: Program, code: Code, message: &str, arg: Option<&str>, now: Timestamp) {
        let path = self.dir.result_file(p);
        if let Err(e) = result::write(&path, p, code, message, arg, now) {
            warn!("cannot write {}: {e}", path.display());
        }
    }

    /// The folder that relative paths of the configuration resolve against.
    pub fn config_base(&self) -> std::path::PathBuf {
        match &self.cfg.source {
            Some(src) => crate::fsutil::parent_dir(src).to_path_buf(),
            None => std::path::PathBuf::from("."),
        }
    }

    /// The agent's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn today(&self) -> Date {
        Date::of_timestamp(self.clock.now())
    }
}
