//! The agent's state as every front end shows it: compliance clock (and an exemption held),
//! programs, pending bundles, last results, license events, the agent's and the product's
//! versions against the newest ones advertised.

use super::*;

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
    /// The bytes of the files in `exports/`, which count against `spool_max_bytes` too.
    pub exports_bytes: u64,
    /// License events as of now (expiry, renewal, use above quantity).
    pub license_events: Vec<LicenseEvent>,
    /// Programs locked on, and why.
    pub locks: Vec<(Program, String)>,
    pub version: VersionStatus,
    /// The product's configured version against the newest product release advertised.
    pub product: ProductStatus,
    /// The exemption from the reporting rule that covers this install now, if any.
    pub exemption: Option<callhome_protocol::exemption::Exemption>,
    /// Each program's upload cadence, in `Program::ALL` order.
    pub intervals: [Duration; 4],
    /// The configured alert channels and their last deliveries.
    pub alert_channels: Vec<ChannelStatus>,
    /// Supplemental grace periods running (or ended with the feature still over capacity).
    pub grace_periods: Vec<crate::licenses::GracePeriod>,
    /// The open alerts, acknowledged or not (filled from the rest of the status).
    pub alerts: Vec<crate::store::AlertRow>,
    /// Desktop notifications on (the API's switch, else the configuration).
    pub notifications_enabled: bool,
}

/// One configured alert channel as status shows it.
#[derive(Debug, Clone)]
pub struct ChannelStatus {
    /// `email`, `webhook`, `journal`.
    pub name: &'static str,
    /// Where it delivers (no secret).
    pub target: String,
    /// Its record in the state database; `None` until it was first used.
    pub delivery: Option<crate::store::Delivery>,
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

/// The product's version (`product.version`) against the newest product release receivers
/// advertise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductStatus {
    pub name: String,
    /// `product.version`; `0.0.0` (the default) means not configured: nothing is compared.
    pub version: String,
    pub latest: Option<String>,
    pub released: Option<String>,
    /// A newer release came out more than `upload.version_window` (six months) ago.
    pub outdated: bool,
}

/// Numeric parts of a version (`1.10.2-rc1` → [1, 10, 2]).
pub(super) fn version_parts(v: &str) -> Vec<u64> {
    v.split(['.', '-', '+']).map_while(|p| p.parse().ok()).collect()
}

impl Agent {
    pub(super) fn version_status(&self, now: Timestamp) -> Result<VersionStatus> {
        let store = self.store();
        let latest = store.setting(Key::VersionLatest)?;
        let released = store.setting(Key::VersionReleased)?;
        drop(store);
        let running = env!("CARGO_PKG_VERSION");
        let outdated = self.outdated(running, latest.as_deref(), released.as_deref(), now);
        Ok(VersionStatus { running, latest, released, outdated })
    }

    /// Whether `latest`, released on `released`, is newer than `running` and came out more than
    /// `upload.version_window` before `now`.
    fn outdated(&self, running: &str, latest: Option<&str>, released: Option<&str>, now: Timestamp) -> bool {
        let newer = latest.is_some_and(|l| version_parts(l) > version_parts(running));
        let old_enough = released
            .and_then(Date::parse_iso_or_version)
            .is_some_and(|d| now - d.timestamp() > self.cfg.upload.version_window.as_secs() as i64);
        newer && old_enough
    }

    /// The agent's and the product's versions against the newest releases advertised, now.
    pub fn currency(&self) -> Result<(VersionStatus, ProductStatus)> {
        let now = self.clock.now();
        Ok((self.version_status(now)?, self.product_status(now)?))
    }

    pub(super) fn product_status(&self, now: Timestamp) -> Result<ProductStatus> {
        let store = self.store();
        let latest = store.setting(Key::ProductLatest)?;
        let released = store.setting(Key::ProductReleased)?;
        drop(store);
        let version = self.cfg.product.version.clone();
        let configured = !version.trim().is_empty() && version_parts(&version).iter().any(|p| *p != 0);
        let outdated = configured && self.outdated(&version, latest.as_deref(), released.as_deref(), now);
        Ok(ProductStatus { name: self.cfg.product.name.clone(), version, latest, released, outdated })
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
        let last_attempts =
            Program::ALL.iter().map(|p| Ok((*p, store.last_attempt(*p)?))).collect::<Result<Vec<_>>>()?;
        let next_upload = store.task(Task::Upload.name())?.map(|t| t.due_at);
        drop(store);
        let (compliance, exemption) = self.clock_at(last_success, now)?;
        let quarantined = std::fs::read_dir(self.dir.quarantine_dir())
            .map(|d| d.filter_map(|e| e.ok()).filter(|e| !e.file_name().to_string_lossy().ends_with(".reason")).count())
            .unwrap_or(0);
        let grace_periods = self.grace_periods(&inv)?;
        let mut status = Status {
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
            exports_bytes: self.spool.exports_bytes(),
            license_events: self.license_events(&inv)?,
            locks: self.locks_with(&rules),
            version: self.version_status(now)?,
            product: self.product_status(now)?,
            exemption,
            intervals: Program::ALL.map(|p| self.interval_with(p, &rules)),
            alert_channels: self.alert_channels()?,
            grace_periods,
            alerts: Vec::new(),
            notifications_enabled: self.notification_settings()?.enabled,
        };
        status.alerts = self.sync_alerts(&status)?;
        Ok(status)
    }

    /// The configured alert channels, each with its last deliveries.
    pub fn alert_channels(&self) -> Result<Vec<ChannelStatus>> {
        let cfg = &self.cfg;
        let mut out = Vec::new();
        if let Some(e) = &cfg.alerts.email {
            out.push(("email", e.target()));
        }
        if let Some(w) = &cfg.alerts.webhook {
            out.push(("webhook", w.target()));
        }
        if cfg.alerts.journal.enabled {
            out.push(("journal", cfg.alerts.journal.target()));
        }
        let store = self.store();
        out.into_iter()
            .map(|(name, target)| Ok(ChannelStatus { name, target, delivery: store.delivery(name)? }))
            .collect()
    }
}
