//! The agent: one object that wires configuration, consent, collectors, spool, store and uploader,
//! and the scheduler loop that drives them.
//!
//! Every front end (the `run` loop, one-shot CLI commands, later the API and the tray) calls the
//! same methods here, so they are views of one state: the state itself lives in the data
//! directory (SQLite and the spool), never in a front end. Changes to the spool and the upload
//! state happen under the data directory's work lock. This module knows no HTTP server and no
//! GUI toolkit.

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
use crate::spool::{Pending, Recovery, Spool, SpoolError};
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
    #[error(transparent)]
    Secret(#[from] secrets::SecretError),
}

type Result<T> = std::result::Result<T, AgentError>;

/// A wait at least this long counts as going idle.
const IDLE: Duration = Duration::from_secs(30);

/// A secret's settings key ([`Key::SecretInKeyring`]) holds this when the keyring has it.
const IN_KEYRING: &str = "keyring";

/// What the state database says about the proxy and the keyring.
fn stored_access(store: &Store) -> Result<StoredAccess> {
    Ok(StoredAccess {
        proxy: store
            .setting(Key::ProxyUrl)?
            .map(|u| Ok::<_, AgentError>((u, store.setting(Key::ProxyUser)?)))
            .transpose()?,
        password_in_keyring: store.setting(Key::SecretInKeyring(Secret::ProxyPassword))?.as_deref() == Some(IN_KEYRING),
        token_in_keyring: store.setting(Key::SecretInKeyring(Secret::EndpointToken))?.as_deref() == Some(IN_KEYRING),
    })
}

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

/// What an upload cycle did for one program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramUpload {
    pub program: Program,
    pub sent: Vec<String>,
    pub quarantined: Vec<String>,
    /// Why nothing was uploaded at all (consent, manual mode), if so.
    pub skipped: Option<String>,
    /// The failure that stopped the queue, if any.
    pub failure: Option<Failure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UploadReport {
    pub programs: Vec<ProgramUpload>,
}

impl UploadReport {
    /// True when nothing failed (skips and quarantines are not failures of the cycle).
    pub fn ok(&self) -> bool {
        self.programs.iter().all(|p| p.failure.is_none() && p.quarantined.is_empty())
    }
    /// The first failure's Retry-After, for the scheduler.
    fn retry_after(&self) -> Option<Duration> {
        self.programs.iter().filter_map(|p| p.failure.as_ref()?.retry_after).max()
    }
    fn must_retry(&self) -> bool {
        self.programs.iter().any(|p| p.failure.as_ref().is_some_and(|f| f.disposition == Disposition::Retry))
    }
}

/// The agent's state, as every front end shows it.
#[derive(Debug, Clone)]
pub struct Status {
    pub install: Install,
    pub now: Timestamp,
    pub compliance: compliance::Status,
    pub consent: Consent,
    pub pending: Vec<Pending>,
    pub quarantined: usize,
    pub last_attempts: Vec<(Program, Option<Attempt>)>,
    pub next_upload: Option<Timestamp>,
    pub agent: Option<String>,
    pub max_days: u32,
    pub spool_max_bytes: u64,
    /// License events as of now (expiry, renewal, use above quantity).
    pub license_events: Vec<LicenseEvent>,
    /// Programs locked on, and why.
    pub locks: Vec<(Program, String)>,
    pub version: VersionStatus,
    /// Each program's upload cadence, in `Program::ALL` order.
    pub intervals: [Duration; 4],
}

/// The running agent's version against the newest release receivers advertise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionStatus {
    pub running: &'static str,
    pub latest: Option<String>,
    pub released: Option<String>,
    /// A newer release came out more than `upload.version_window` ago.
    pub outdated: bool,
}

/// Numeric parts of a version (`1.10.2-rc1` → [1, 10, 2]).
fn version_parts(v: &str) -> Vec<u64> {
    v.split(['.', '-', '+']).map_while(|p| p.parse().ok()).collect()
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
    pub fn spool(&self) -> &Spool {
        &self.spool
    }
    /// The upload client, or why uploads cannot start.
    pub fn uploader(&self) -> std::result::Result<Uploader, Failure> {
        self.uploader.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The proxy and endpoint token uploads use now.
    pub fn access(&self) -> Access {
        self.access.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stores the proxy (URL and user in the state database, the password in the OS keyring)
    /// and rebuilds the uploader. `password: None` keeps the stored one.
    pub fn set_proxy(&self, url: &str, user: Option<&str>, password: Option<&Value>) -> Result<()> {
        crate::config::check_proxy(url).map_err(|m| AgentError::Refused(format!("proxy URL: {m}")))?;
        if let Some(pw) = password {
            secrets::store(Secret::ProxyPassword, pw)?;
        }
        {
            let store = self.store();
            store.set_setting(Key::ProxyUrl, url)?;
            match user {
                Some(u) => store.set_setting(Key::ProxyUser, u)?,
                None => store.delete_setting(Key::ProxyUser)?,
            }
            if password.is_some() {
                store.set_setting(Key::SecretInKeyring(Secret::ProxyPassword), IN_KEYRING)?;
            }
        }
        self.reload_access()
    }

    /// Forgets the stored proxy and removes its password from the keyring; the config's
    /// `upload.proxy*` keys apply again. Returns whether a password was removed.
    pub fn clear_proxy(&self) -> Result<bool> {
        let removed = self.clear_secret(Secret::ProxyPassword)?;
        {
            let store = self.store();
            store.delete_setting(Key::ProxyUrl)?;
            store.delete_setting(Key::ProxyUser)?;
        }
        self.reload_access()?;
        Ok(removed)
    }

    /// Stores the endpoint (registration) token in the OS keyring; uploads send it as a bearer
    /// token from now on.
    pub fn set_token(&self, token: &Value) -> Result<()> {
        secrets::store(Secret::EndpointToken, token)?;
        self.store().set_setting(Key::SecretInKeyring(Secret::EndpointToken), IN_KEYRING)?;
        self.reload_access()
    }

    /// Removes the endpoint token from the keyring.
    pub fn clear_token(&self) -> Result<bool> {
        let removed = self.clear_secret(Secret::EndpointToken)?;
        self.reload_access()?;
        Ok(removed)
    }

    fn clear_secret(&self, s: Secret) -> Result<bool> {
        // Only what callhome put in the keyring is asked for: a machine that never stored a
        // secret never wakes a keyring daemon.
        let in_keyring = self.store().setting(Key::SecretInKeyring(s))?.as_deref() == Some(IN_KEYRING);
        let removed = in_keyring && secrets::clear(s)?;
        self.store().delete_setting(Key::SecretInKeyring(s))?;
        Ok(removed)
    }

    /// Re-reads the proxy and the token and rebuilds the uploader.
    pub fn reload_access(&self) -> Result<()> {
        let access = Access::resolve(&self.cfg, &stored_access(&self.store())?);
        let uploader = Uploader::new(&self.cfg, &self.install.install_id, &access);
        if let Err(f) = &uploader {
            warn!("uploads cannot start: {}", f.message);
        }
        *self.uploader.write().unwrap_or_else(|e| e.into_inner()) = uploader;
        *self.access.write().unwrap_or_else(|e| e.into_inner()) = access;
        self.notify(Notice::StateChanged { what: "proxy".into() });
        Ok(())
    }

    pub fn install(&self) -> &Install {
        &self.install
    }

    /// Subscribes to state changes.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    pub(crate) fn notify(&self, n: Notice) {
        self.work.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // No subscriber is fine: nobody is watching.
        let _ = self.notices.send(n);
    }

    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for and takes the data directory's work lock.
    pub async fn work_lock(&self) -> Result<WorkLock> {
        let dir = self.dir.clone();
        Ok(tokio::task::spawn_blocking(move || dir.lock_work()).await.expect("lock task does not panic")?)
    }

    pub fn consent(&self) -> Result<Consent> {
        let choices = self.store().choices()?;
        let locked: Vec<Program> = self.locks().into_iter().map(|(p, _)| p).collect();
        Ok(Consent::resolve(&self.cfg.programs, choices, self.do_not_track, &locked))
    }

    fn version_status(&self, now: Timestamp) -> Result<VersionStatus> {
        let store = self.store();
        let latest = store.setting(Key::VersionLatest)?;
        let released = store.setting(Key::VersionReleased)?;
        let running = env!("CARGO_PKG_VERSION");
        let newer = latest.as_deref().is_some_and(|l| version_parts(l) > version_parts(running));
        let old_enough = released
            .as_deref()
            .and_then(Date::parse_iso_or_version)
            .is_some_and(|d| now - d.timestamp() > self.cfg.upload.version_window.as_secs() as i64);
        Ok(VersionStatus { running, latest, released, outdated: newer && old_enough })
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
        let r = self.spool.recover(&self.store())?;
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

    /// Turns an optional program on or off; off withdraws its pending bundles and samples.
    pub async fn set_enabled(&self, p: Program, on: bool) -> Result<Vec<String>> {
        if p.mandatory() {
            return Err(AgentError::Refused(
                "license telemetry is mandatory and cannot be turned off; switch it to manual reporting instead".into(),
            ));
        }
        if !on && let Some((_, reason)) = self.locks().into_iter().find(|(l, _)| *l == p) {
            return Err(AgentError::Refused(format!("{} is locked on: {reason}", p.title())));
        }
        let _w = self.work_lock().await?;
        let mut store = self.store();
        store.set_choice(p, on)?;
        if on {
            drop(store);
            self.notify(Notice::StateChanged { what: format!("program {} on", p.name()) });
            return Ok(Vec::new());
        }
        let withdrawn = self.spool.withdraw(&mut store, p, self.clock.now())?;
        let (_, max) = store.samples(p)?;
        store.drop_samples(p, max)?;
        drop(store);
        self.notify(Notice::StateChanged { what: format!("program {} off", p.name()) });
        Ok(withdrawn)
    }

    /// Withdraws one pending bundle of an optional program (the administrator read it and does
    /// not want it sent): the ledger records it, then the file goes. License-telemetry bundles
    /// are refused (mandatory); `Ok(None)` when no such bundle is pending.
    pub async fn withdraw_bundle(&self, name: &str) -> Result<Option<Pending>> {
        let _w = self.work_lock().await?;
        let Some(p) = self.spool.find(name)?.filter(|p| p.name == name) else { return Ok(None) };
        if p.program.mandatory() {
            return Err(AgentError::Refused(format!(
                "{name} is a license-telemetry bundle: it is mandatory and cannot be withdrawn"
            )));
        }
        let mut store = self.store();
        self.spool.discard(
            &mut store,
            &p,
            LedgerEvent::Withdrawn,
            "the administrator withdrew this bundle",
            self.clock.now(),
        )?;
        drop(store);
        self.notify(Notice::StateChanged { what: format!("bundle {name} withdrawn") });
        Ok(Some(p))
    }

    pub fn set_telemetry_mode(&self, mode: TelemetryMode) -> Result<()> {
        self.store().set_telemetry_mode(mode)?;
        self.notify(Notice::StateChanged { what: format!("telemetry {}", mode.name()) });
        Ok(())
    }

    /// Collects bundles now: one program, or every enabled one.
    pub async fn collect(&self, only: Option<Program>) -> Result<Vec<Collected>> {
        let _w = self.work_lock().await?;
        let consent = self.consent()?;
        let mut out = Vec::new();
        for p in Program::ALL.into_iter().filter(|p| only.is_none_or(|o| o == *p)) {
            out.push(self.collect_program(p, consent).await?);
        }
        Ok(out)
    }

    async fn collect_program(&self, p: Program, consent: Consent) -> Result<Collected> {
        let skipped = |reason: &str| Ok(Collected::Skipped { program: p, reason: reason.into() });
        if !consent.enabled(p) {
            return skipped("the program is off");
        }
        let (samples, max_sample) = self.store().samples(p)?;
        let now = self.clock.now();
        // License usage goes up to the last full hour; the window's start is remembered.
        let window = (self.usage_window_start(p)?, now - now.rem_euclid(3600));
        if matches!(p, Program::CallHome | Program::Ceip) {
            self.scan_errors().await?;
        }
        if p == Program::Ceip
            && samples.is_empty()
            && self.store().usage(None, window.0, window.1)?.is_empty()
            && !self.has_unsent_errors(p)?
        {
            return skipped("no usage samples yet");
        }
        let pending_events = if p == Program::Events {
            self.refresh_licenses().await?;
            self.store().events_to_upload()?
        } else {
            Vec::new()
        };
        if p == Program::Events && pending_events.is_empty() {
            return skipped("no new license events");
        }
        let ctx = Context {
            config: &self.cfg,
            consent,
            install_id: &self.install.install_id,
            install_created_at: self.install.created_at,
            now,
        };
        let mut contents = collect::gather(p, &ctx, &samples).await;
        let after_commit = self.add_license_files(p, &mut contents, window, &pending_events).await?;
        if contents.is_empty() {
            return skipped("nothing to collect");
        }
        let errors = contents.errors().len();
        let name = bundle::bundle_name(p, now);
        let tmp = self.dir.tmp_dir();
        let install_id = self.install.install_id.clone();
        let name2 = name.clone();
        let path =
            tokio::task::spawn_blocking(move || bundle::write(&tmp, &name2, &Stamp::of(p, &install_id, now), contents))
                .await
                .expect("bundle writer does not panic")?;
        let pending = self.spool.commit(p, &path)?;
        let mut store = self.store();
        if max_sample > 0 {
            store.drop_samples(p, max_sample)?;
        }
        if p == Program::Telemetry {
            store.set_task(TELEMETRY_COLLECT_TASK, TaskState { due_at: now, last_run: Some(now), failures: 0 })?;
        }
        if matches!(p, Program::Telemetry | Program::Ceip) {
            store.set_setting(Key::Window(p), &window.1.to_string())?;
        }
        if !pending_events.is_empty() {
            store.mark_events_uploaded(&pending_events.iter().map(|e| e.key.clone()).collect::<Vec<_>>())?;
        }
        for (k, v) in after_commit {
            store.set_setting(k, &v)?;
        }
        let quota = self.spool.enforce_quota(&mut store, self.cfg.spool.max_bytes, now)?;
        if !quota.evicted.is_empty() {
            warn!(evicted = ?quota.evicted, "spool over spool.max_bytes: evicted the oldest optional-program bundles");
        }
        if quota.over_quota_bytes > 0 {
            warn!(
                over_bytes = quota.over_quota_bytes,
                "compliance bundles alone exceed spool.max_bytes; they are kept: raise spool.max_bytes or let uploads catch up"
            );
        }
        drop(store);
        self.notify(Notice::StateChanged { what: format!("collected {name}") });
        info!(program = %p, bundle = %name, size = pending.size, errors, "bundle collected");
        Ok(Collected::Bundle { program: p, name, size: pending.size, errors })
    }

    /// Takes one performance (Call Home) or usage (CEIP) sample when the program is on.
    pub async fn sample(&self, p: Program) -> Result<bool> {
        if !self.consent()?.enabled(p) {
            return Ok(false);
        }
        let names = self.cfg.product.processes.clone();
        let sample = tokio::task::spawn_blocking(move || collect::performance::sample(&names))
            .await
            .expect("sampler does not panic");
        let data = match sample {
            Ok(v) => v.to_string(),
            Err(e) => serde_json::json!({ "error": e }).to_string(),
        };
        self.store().add_sample(p, self.clock.now(), &data)?;
        Ok(true)
    }

    /// One upload cycle: collect license telemetry when due, pack CEIP samples, then upload
    /// every program's pending bundles that consent and mode allow.
    /// An upload cycle asked for now (CLI, API): every program, whatever its cadence.
    pub async fn upload_cycle(&self, only: Option<Program>) -> Result<UploadReport> {
        self.cycle(only, true).await
    }

    /// One upload cycle. A scheduled one (`forced` false) uploads only the programs whose own
    /// cadence (`[upload.intervals]`) is due, or that have a failed upload to retry.
    async fn cycle(&self, only: Option<Program>, forced: bool) -> Result<UploadReport> {
        let _w = self.work_lock().await?;
        let consent = self.consent()?;
        let now = self.clock.now();
        let mut due = Vec::new();
        for p in Program::ALL {
            if only.is_none_or(|o| o == p) && (forced || self.program_due(p, now)?) {
                due.push(p);
            }
        }
        let wanted = |p: Program| due.contains(&p);
        if wanted(Program::Telemetry) && self.telemetry_collection_due(now)? {
            self.collect_program(Program::Telemetry, consent).await?;
        }
        if wanted(Program::Ceip) && consent.enabled(Program::Ceip) {
            self.collect_program(Program::Ceip, consent).await?;
        }
        if wanted(Program::Events) && consent.enabled(Program::Events) {
            self.collect_program(Program::Events, consent).await?;
        }
        let mut report = UploadReport::default();
        for p in Program::ALL.into_iter().filter(|p| wanted(*p)) {
            let r = self.upload_program(p).await?;
            // The cadence counts from uploads that happened, not from empty cycles.
            if r.failure.is_none() && !r.sent.is_empty() {
                self.store().set_setting(Key::Cadence(p), &now.to_string())?;
            }
            report.programs.push(r);
        }
        Ok(report)
    }

    /// Whether the schedule should upload `p` now: its cadence has come round (a little early is
    /// fine: the schedule only wakes on the hour's side), or its last attempt failed.
    fn program_due(&self, p: Program, now: Timestamp) -> Result<bool> {
        let store = self.store();
        let last: Option<Timestamp> = store.setting_as(Key::Cadence(p))?;
        let failed = store.last_attempt(p)?.is_some_and(|a| a.code != Code::Success.as_str());
        drop(store);
        let interval = self.upload_interval(p).as_secs() as i64;
        Ok(failed || last.is_none_or(|l| l > now || now - l >= interval - interval / 10))
    }

    fn telemetry_collection_due(&self, now: Timestamp) -> Result<bool> {
        if self.spool.pending(Program::Telemetry)?.is_empty() {
            return Ok(true);
        }
        let last = self.store().task(TELEMETRY_COLLECT_TASK)?.and_then(|t| t.last_run);
        let interval = self.cfg.upload.interval.as_secs() as i64;
        Ok(last.is_none_or(|l| now - l >= interval || l > now))
    }

    async fn upload_program(&self, p: Program) -> Result<ProgramUpload> {
        let mut out =
            ProgramUpload { program: p, sent: Vec::new(), quarantined: Vec::new(), skipped: None, failure: None };
        for bundle in self.spool.pending(p)? {
            // Consent is checked again just before each upload.
            let consent = self.consent()?;
            if !consent.may_upload(p) {
                out.skipped = Some(if p.mandatory() {
                    "manual reporting: export the bundles with `callhome export`".into()
                } else {
                    "the program is off".into()
                });
                break;
            }
            match self.upload_one(&bundle).await? {
                One::Sent => out.sent.push(bundle.name),
                One::Quarantined(f) => {
                    out.quarantined.push(bundle.name);
                    out.failure.get_or_insert(f);
                }
                One::Failed(f) => {
                    out.failure = Some(f);
                    break;
                }
            }
        }
        Ok(out)
    }

    async fn upload_one(&self, b: &Pending) -> Result<One> {
        let now = self.clock.now();
        let started = Instant::now();
        let path = b.path.clone();
        let checked = tokio::task::spawn_blocking(move || -> std::result::Result<(String, u64), (Code, String)> {
            let (sha, size) = crate::fsutil::sha256_file(&path)
                .map_err(|e| (Code::Disk, format!("cannot read {}: {e}", path.display())))?;
            bundle::Reader::open(&path)
                .and_then(|mut r| r.verify())
                .map_err(|e| (Code::Bundle, format!("{e}; the bundle was moved to quarantine/")))?;
            Ok((sha, size))
        })
        .await
        .expect("verification does not panic");
        let (sha, size) = match checked {
            Ok(v) => v,
            Err((code, message)) => {
                let f = Failure {
                    code,
                    message,
                    arg: None,
                    http_status: None,
                    retry_after: None,
                    disposition: Disposition::Retry,
                };
                self.record_failure(b, None, &f, now, started)?;
                if code == Code::Bundle {
                    let mut store = self.store();
                    self.spool.quarantine_bundle(&mut store, b, "", &f.message, now)?;
                    return Ok(One::Quarantined(f));
                }
                return Ok(One::Failed(f));
            }
        };
        if self.store().is_sent_sha(&sha)?.is_some() {
            // Acknowledged before a crash interrupted its deletion.
            self.spool.remove(b)?;
            return Ok(One::Sent);
        }
        let uploader = match self.uploader() {
            Ok(u) => u,
            Err(f) => {
                self.record_failure(b, Some(&sha), &f, now, started)?;
                return Ok(One::Failed(f));
            }
        };
        let sent = uploader.send(Outgoing { path: &b.path, sha256: &sha, size, program: b.program.name() }).await;
        let now = self.clock.now();
        match sent {
            Ok(receipt) => {
                let attempt = Attempt {
                    at: now,
                    program: b.program,
                    bundle: Some(b.name.clone()),
                    sha256: Some(sha.clone()),
                    code: Code::Success.as_str().into(),
                    message: format!("receipt {}", receipt.receipt_id),
                    http_status: None,
                    duration_ms: started.elapsed().as_millis() as u64,
                };
                let entry = LedgerEntry {
                    at: now,
                    event: LedgerEvent::Sent,
                    program: b.program,
                    bundle: b.name.clone(),
                    sha256: sha,
                    size,
                    detail: serde_json::to_string(&receipt).expect("receipts serialize"),
                };
                // Ledger first, then the file (invariant 3).
                self.store().record_sent(&attempt, &entry)?;
                if let Some(l) = &receipt.latest_agent {
                    let store = self.store();
                    store.set_setting(Key::VersionLatest, &l.version)?;
                    store.set_setting(Key::VersionReleased, &l.released)?;
                }
                self.spool.remove(b)?;
                self.write_result(b.program, Code::Success, "", None, now);
                info!(program = %b.program, bundle = %b.name, receipt = %receipt.receipt_id, "bundle acknowledged");
                Ok(One::Sent)
            }
            Err(f) => {
                self.record_failure(b, Some(&sha), &f, now, started)?;
                if f.disposition == Disposition::Quarantine {
                    let mut store = self.store();
                    self.spool.quarantine_bundle(&mut store, b, &sha, &f.message, now)?;
                    return Ok(One::Quarantined(f));
                }
                Ok(One::Failed(f))
            }
        }
    }

    fn record_failure(
        &self,
        b: &Pending,
        sha: Option<&str>,
        f: &Failure,
        now: Timestamp,
        started: Instant,
    ) -> Result<()> {
        warn!(program = %b.program, bundle = %b.name, code = f.code.as_str(), "{}", f.message);
        self.store().record_attempt(&Attempt {
            at: now,
            program: b.program,
            bundle: Some(b.name.clone()),
            sha256: sha.map(str::to_string),
            code: f.code.as_str().into(),
            message: f.message.clone(),
            http_status: f.http_status,
            duration_ms: started.elapsed().as_millis() as u64,
        })?;
        self.write_result(b.program, f.code, &f.message, f.arg.as_deref(), now);
        Ok(())
    }

    pub(crate) fn write_result(&self, p: Program, code: Code, message: &str, arg: Option<&str>, now: Timestamp) {
        self.notify(Notice::UploadResult { program: p, code: code.as_str().into(), message: message.into() });
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

    /// Reads the configured license files now (changes no state).
    pub fn scan_licenses(&self) -> Inventory {
        licenses::scan(&self.cfg.licenses, &self.config_base(), self.today())
    }

    /// The events a scan calls for, with the last day's peaks of use.
    pub fn license_events(&self, inv: &Inventory) -> Result<Vec<LicenseEvent>> {
        let peaks = self.store().peaks_since(self.clock.now() - 86_400)?;
        Ok(licenses::events(inv, &peaks, &self.cfg.licenses.expiry_warn_days, self.today()))
    }

    /// Reads what is new in the debug logs, records the inventory, and updates the events.
    /// Returns the inventory, the time of the scan and the keys of events that are new.
    pub async fn refresh_licenses(&self) -> Result<(Inventory, Timestamp, Vec<String>)> {
        for log in &self.cfg.licenses.debug_logs {
            let path = self.config_base().join(log);
            let key = path.display().to_string();
            let cursor = self.store().log_cursor(LogKey::DebugLog(&path))?;
            let p2 = path.clone();
            match tokio::task::spawn_blocking(move || licenses::debuglog::read_new(&p2, cursor))
                .await
                .expect("reader does not panic")
            {
                Ok(parser) => {
                    let cursor = serde_json::to_string(&parser.cursor).expect("cursors serialize");
                    self.store().apply_usage(&path, &cursor, &parser.hours, &parser.names)?;
                    if parser.stats.restarted {
                        info!(log = %key, "debug log rotated or truncated: read from its start");
                    }
                }
                Err(e) => warn!("cannot read the debug log {key}: {e}; check licenses.debug_logs"),
            }
        }
        let (cfg, base, today) = (self.cfg.licenses.clone(), self.config_base(), self.today());
        let inv =
            tokio::task::spawn_blocking(move || licenses::scan(&cfg, &base, today)).await.expect("scan does not panic");
        let now = self.clock.now();
        self.store().record_seen(&inv.licenses.iter().map(seen).collect::<Vec<_>>(), now)?;
        let events = self.license_events(&inv)?;
        let new = self.store().sync_events(&events, now)?;
        for e in events.iter().filter(|e| new.contains(&e.key)) {
            info!(kind = e.kind.name(), feature = %e.feature, "license event: {}", e.message);
            self.notify(Notice::LicenseEvent {
                kind: e.kind.name(),
                feature: e.feature.clone(),
                message: e.message.clone(),
            });
        }
        Ok((inv, now, new))
    }

    /// [`Agent::refresh_licenses`] and [`Agent::scan_errors`] under the work lock, so two
    /// processes never read the same new log bytes at once (and count them twice).
    pub async fn refresh_licenses_locked(&self) -> Result<()> {
        let _w = self.work_lock().await?;
        self.refresh_licenses().await?;
        self.scan_errors().await
    }

    /// Reads what is new in the product logs (`collect.error_logs`) and counts error lines —
    /// only while Call Home or CEIP may collect.
    pub async fn scan_errors(&self) -> Result<()> {
        let consent = self.consent()?;
        if !consent.enabled(Program::CallHome) && !consent.enabled(Program::Ceip) {
            return Ok(());
        }
        let (paths, problems) = licenses::license_paths(&self.cfg.collect.error_logs, &self.config_base());
        for p in problems {
            warn!("collect.error_logs: {}: {}", p.file.display(), p.message);
        }
        for path in paths {
            let mut cursor: crate::tail::TailCursor = self.store().log_cursor(LogKey::ErrorLog(&path))?;
            let patterns = self.cfg.collect.error_patterns.clone();
            let p2 = path.clone();
            let scanned = tokio::task::spawn_blocking(move || {
                collect::errors::scan(&p2, &mut cursor, &patterns).map(|f| (f, cursor))
            })
            .await
            .expect("the scanner does not panic");
            match scanned {
                Ok((found, cursor)) => {
                    let now = self.clock.now();
                    let json = serde_json::to_string(&cursor).expect("cursors serialize");
                    self.store().add_errors(&path, &json, now - now.rem_euclid(3600), &found, now)?;
                }
                Err(e) => warn!("cannot read the product log {}: {e}; check collect.error_logs", path.display()),
            }
        }
        Ok(())
    }

    fn has_unsent_errors(&self, p: Program) -> Result<bool> {
        let store = self.store();
        let after: i64 = store.setting_as(Key::ErrorsSent(p, ErrorsPart::Counts))?.unwrap_or(0);
        Ok(!store.errors_after(after, i64::MAX)?.0.is_empty())
    }

    /// `errors.json`: error counts (and, when `samples`, redacted sample lines) recorded since the
    /// program's last bundle. Returns the settings that mark them sent, to apply once the bundle
    /// is in the spool (a failed write loses nothing).
    fn add_errors_file(&self, p: Program, c: &mut bundle::Contents, samples: bool) -> Result<Vec<(Key, String)>> {
        let store = self.store();
        let key = |part| Key::ErrorsSent(p, part);
        let after: i64 = store.setting_as(key(ErrorsPart::Counts))?.unwrap_or(0);
        let after_sample: i64 = store.setting_as(key(ErrorsPart::Samples))?.unwrap_or(0);
        let (counts, sample_rows, max, max_sample) = store.errors_after(after, after_sample)?;
        if counts.is_empty() {
            return Ok(Vec::new());
        }
        let mut doc = serde_json::json!({
            "patterns": self.cfg.collect.error_patterns,
            "counts": counts.iter().map(|(pat, hour, n)| serde_json::json!({ "pattern": pat, "hour": crate::clock::rfc3339(*hour), "count": n })).collect::<Vec<_>>(),
        });
        let holds = if samples {
            doc["samples"] = sample_rows
                .iter()
                .map(|(pat, at, text)| serde_json::json!({ "pattern": pat, "at": crate::clock::rfc3339(*at), "line": text }))
                .collect();
            "error lines in the product's logs: counts per pattern and hour, and a few samples with numbers, addresses and e-mail addresses blanked"
        } else {
            "error lines in the product's logs: counts per pattern and hour only"
        };
        c.add_json("errors.json", holds, &doc);
        Ok(vec![(key(ErrorsPart::Counts), max.to_string()), (key(ErrorsPart::Samples), max_sample.to_string())])
    }

    fn usage_window_start(&self, p: Program) -> Result<Timestamp> {
        Ok(self.store().setting_as(Key::Window(p))?.unwrap_or(0))
    }

    /// Adds the license files a program's bundle carries.
    async fn add_license_files(
        &self,
        p: Program,
        c: &mut bundle::Contents,
        window: (Timestamp, Timestamp),
        events: &[crate::store::EventRow],
    ) -> Result<Vec<(Key, String)>> {
        let mut after_commit = Vec::new();
        match p {
            Program::Telemetry => {
                let (inv, scanned_at, _) = self.refresh_licenses().await?;
                let history = self.store().license_history(scanned_at)?;
                let events = self.license_events(&inv)?;
                let rows = self.store().usage(None, window.0, window.1)?;
                c.add_json(
                    "licenses.json",
                    "the license inventory: every FEATURE/INCREMENT/UPGRADE line with expiry, quantity, type and days to expiry; lines only in history; problems found; license events",
                    &inventory_json(&inv, &history, &events, scanned_at),
                );
                c.add_json(
                    "usage.json",
                    "license usage in the window: per feature the most in use at once, installed count, checkouts, denials, users and devices, by hour",
                    &usage_json(&rows, &inv, window, Identity::Names),
                );
            }
            Program::CallHome => after_commit = self.add_errors_file(p, c, true)?,
            Program::Ceip => {
                after_commit = self.add_errors_file(p, c, false)?;
                let rows = self.store().usage(None, window.0, window.1)?;
                if !rows.is_empty() {
                    let inv = self.scan_licenses();
                    c.add_json(
                        "license_usage.json",
                        "license usage counts by feature and hour: no user or device names",
                        &usage_json(&rows, &inv, window, Identity::CountsOnly),
                    );
                }
            }
            Program::Events if !events.is_empty() => {
                let list: Vec<serde_json::Value> = events
                    .iter()
                    .map(|e| {
                        serde_json::json!({
                            "kind": e.kind, "feature": e.feature, "message": e.message, "days": e.days,
                            "first_seen": crate::clock::rfc3339(e.first_seen),
                        })
                    })
                    .collect();
                c.add_json(
                    "events.json",
                    "license events: expiry, renewal, use above quantity",
                    &serde_json::json!({ "events": list }),
                );
            }
            _ => {}
        }
        Ok(after_commit)
    }

    /// The state every front end shows.
    pub fn status(&self) -> Result<Status> {
        let now = self.clock.now();
        // One scan of the license files serves the events, the locks and the cadences.
        let inv = self.scan_licenses();
        let rules = self.matched_rules(Some(&inv));
        let consent = self.consent()?;
        let store = self.store();
        let last_success = store.last_success(Program::Telemetry)?;
        let compliance = compliance::evaluate(&self.cfg.compliance, last_success, self.install.created_at, now);
        let last_attempts =
            Program::ALL.iter().map(|p| Ok((*p, store.last_attempt(*p)?))).collect::<Result<Vec<_>>>()?;
        let next_upload = store.task(Task::Upload.name())?.map(|t| t.due_at);
        drop(store);
        let quarantined = std::fs::read_dir(self.dir.quarantine_dir())
            .map(|d| d.filter_map(|e| e.ok()).filter(|e| !e.file_name().to_string_lossy().ends_with(".reason")).count())
            .unwrap_or(0);
        Ok(Status {
            install: self.install.clone(),
            now,
            compliance,
            consent,
            pending: self.spool.all_pending()?,
            quarantined,
            last_attempts,
            next_upload,
            agent: self.dir.agent_running(),
            max_days: self.cfg.compliance.max_days,
            spool_max_bytes: self.cfg.spool.max_bytes,
            license_events: self.license_events(&inv)?,
            locks: self.locks_with(&rules),
            version: self.version_status(now)?,
            intervals: Program::ALL.map(|p| self.interval_with(p, &rules)),
        })
    }

    /// The scheduler loop: runs due tasks until `shutdown` completes.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        let mut released: Option<u64> = None;
        self.start_schedule()?;
        info!(
            endpoint = %self.cfg.upload.endpoint,
            first_upload_in = %humantime::format_duration(self.cfg.upload.first_upload_delay),
            "agent running"
        );
        loop {
            let next_due = tokio::select! {
                r = self.run_due() => match r {
                    Ok(next) => next,
                    // A full disk or a locked database must not end the schedule: say so and
                    // try again at the next clock check (the API keeps serving meanwhile).
                    Err(e) => {
                        warn!("the schedule could not run: {e}; trying again shortly");
                        self.clock.now() + self.cfg.schedule.clock_check.as_secs().max(1) as i64
                    }
                },
                () = &mut shutdown => break,
            };
            // Sleep until the next task, but wake at least every `schedule.clock_check` so a
            // wall-clock jump is noticed; the due times themselves are wall-clock UTC.
            let check = self.cfg.schedule.clock_check.as_secs().max(1) as i64;
            let wait = Duration::from_secs((next_due - self.clock.now()).clamp(0, check) as u64);
            // Going idle after a burst of work (start-up included): hand back what it left resident.
            let work = self.work.load(std::sync::atomic::Ordering::Relaxed);
            if wait >= IDLE && released != Some(work) {
                tokio::task::spawn_blocking(crate::memory::release_idle).await.ok();
                released = Some(work);
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = &mut shutdown => break,
            }
        }
        info!("agent stopped");
        Ok(())
    }

    /// Sets the due times for a fresh start (the first upload `first_upload_delay` from now).
    pub fn start_schedule(&self) -> Result<()> {
        let now = self.clock.now();
        let store = self.store();
        for t in Task::ALL {
            store.set_task(t.name(), self.plan.at_start(t, store.task(t.name())?, now))?;
        }
        Ok(())
    }

    /// Runs every task that is due; returns the earliest next due time.
    pub async fn run_due(&self) -> Result<Timestamp> {
        let mut next = i64::MAX;
        for t in Task::ALL {
            let now = self.clock.now();
            let persisted = self.store().task(t.name())?;
            let s = self.plan.sanitize(t, persisted.unwrap_or_else(|| self.plan.at_start(t, None, now)), now);
            let s = if now >= s.due_at { self.run_task(t, s).await? } else { s };
            if persisted != Some(s) {
                self.store().set_task(t.name(), s)?;
                if persisted.is_some_and(|p| p.due_at != s.due_at) && t == Task::Upload {
                    // Live views show the next upload: tell them it moved.
                    self.notify(Notice::StateChanged { what: "schedule".into() });
                }
            }
            next = next.min(s.due_at);
        }
        Ok(next)
    }

    async fn run_task(&self, t: Task, s: TaskState) -> Result<TaskState> {
        self.work.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let outcome = match t {
            Task::Upload => self.cycle(None, false).await.map(|r| (!r.must_retry(), r.retry_after())),
            Task::CollectConfig => self.collect(Some(Program::CallHome)).await.map(|_| (true, None)),
            Task::SamplePerformance => self.sample(Program::CallHome).await.map(|_| (true, None)),
            Task::SampleUsage => match self.refresh_licenses_locked().await {
                Ok(()) => self.sample(Program::Ceip).await.map(|_| (true, None)),
                Err(e) => Err(e),
            },
        };
        let now = self.clock.now();
        Ok(match outcome {
            Ok((true, _)) => self.plan.after_success(t, now),
            Ok((false, retry_after)) => self.plan.after_failure(s, now, retry_after, fastrand::f64()),
            Err(e) => {
                warn!(task = t.name(), "task failed: {e}");
                self.plan.after_failure(s, now, None, fastrand::f64())
            }
        })
    }
}

enum One {
    Sent,
    Quarantined(Failure),
    Failed(Failure),
}
