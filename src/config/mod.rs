//! The agent's configuration: the schema as plain data, and the public API to load it.
//!
//! A configuration is the embedded default (`default-config.toml`) with the administrator's file
//! read on top of it, key by key. Parsing never stops at the first problem: every unknown key,
//! wrong type and bad value is collected with its dotted key and line, so `callhome config check`
//! can show them all at once. This module does not read the network and touches the filesystem
//! only to read the file it is given and, in [`Config::check_files`], the files it names.
//!
//! Layout: this file holds the types and [`Config`]'s entry points; `parser` walks the TOML
//! document (`toml_edit`, for spans), `values` reads one value of a type, `alerts` the alert
//! channels and contacts, and `checks` holds the checks that need more than a value's type
//! (URLs, rules between keys, named files).

mod alerts;
mod checks;
mod parser;
#[cfg(test)]
mod tests;
mod values;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::licenses::LicenseConfig;
use crate::programs::{Program, TelemetryMode};

pub use alerts::{
    AlertsConfig, ContactsConfig, EmailConfig, JournalConfig, Security, WebhookConfig, WebhookFormat, check_address,
    is_loopback_host,
};
pub use checks::check_proxy;

/// The configuration that ships inside the binary; it works as is.
pub const DEFAULT_TOML: &str = include_str!("../default-config.toml");

/// The whole configuration, after defaults and the administrator's file are merged.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub upload: UploadConfig,
    pub schedule: ScheduleConfig,
    pub compliance: ComplianceConfig,
    pub spool: SpoolConfig,
    pub programs: ProgramDefaults,
    pub product: ProductConfig,
    pub collect: CollectConfig,
    pub licenses: LicenseConfig,
    pub api: ApiConfig,
    pub notifications: NotificationsConfig,
    /// The alert channels (e-mail, webhook, journal); each off unless configured.
    pub alerts: AlertsConfig,
    /// Who receives which alerts by e-mail.
    pub contacts: ContactsConfig,
    /// Vendor rules that lock programs on from license data.
    pub policy: Vec<PolicyRule>,
    /// The file read on top of the default, if any (relative paths in it resolve against its folder).
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct UploadConfig {
    pub endpoint: String,
    /// Extra trusted CA (PEM), added to the system roots.
    pub ca_file: Option<PathBuf>,
    /// The receiver's Ed25519 public key (PEM); when set, receipts must verify against it.
    pub receipt_public_key: Option<PathBuf>,
    pub proxy: Option<String>,
    /// Proxy user name; the password comes from the keyring, the environment or a systemd
    /// credential, never from this file.
    pub proxy_user: Option<String>,
    /// Hosts that bypass `proxy` (comma-separated, as NO_PROXY); unset: the NO_PROXY variable.
    pub no_proxy: Option<String>,
    pub first_upload_delay: Duration,
    pub interval: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub timeout: Duration,
    /// How long after a newer agent release the running one is still current.
    pub version_window: Duration,
    /// Each program's own upload cadence (`[upload.intervals]`); telemetry's is `interval`.
    pub intervals: ProgramIntervals,
}

/// How often each program's bundles are uploaded by the schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgramIntervals {
    pub call_home: Duration,
    pub ceip: Duration,
    pub events: Duration,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScheduleConfig {
    pub config_interval: Duration,
    pub performance_interval: Duration,
    pub usage_interval: Duration,
    /// The agent wakes at least this often, even with nothing due, to notice a wall-clock jump.
    pub clock_check: Duration,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ComplianceConfig {
    pub max_days: u32,
    /// Days-remaining thresholds, sorted from largest to smallest.
    pub warn_days: Vec<u32>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpoolConfig {
    /// The quota of pending bundles and of the files in `exports/` together.
    pub max_bytes: u64,
    /// The part size an export takes when none is asked for (the tray, the API without
    /// `max_size`); 0: one file whatever its size.
    pub export_max_size: u64,
    /// Files in `exports/` (exports never receipted or confirmed, support bundles) are removed
    /// once this old.
    pub exports_max_age: Duration,
}

/// The optional programs' defaults (until the administrator chooses) and the telemetry mode.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramDefaults {
    pub call_home: bool,
    pub ceip: bool,
    pub events: bool,
    pub telemetry_mode: TelemetryMode,
    /// Optional programs the administrator locked on (`[programs.NAME] locked = true`).
    pub locked: Vec<Program>,
}

/// A vendor rule: when a license line's `VENDOR_STRING` has `key=value`, `require` is locked on.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRule {
    /// `KEY=VALUE`, matched case-insensitively against a license line's VENDOR_STRING pairs.
    pub vendor_string: (String, String),
    pub require: Program,
    /// Shown wherever the lock is (API 409, CLI, status).
    pub reason: String,
    /// The program's upload cadence while the rule applies (such as "24h").
    pub upload_interval: Option<Duration>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProductConfig {
    pub name: String,
    pub version: String,
    pub processes: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CollectConfig {
    pub commands: Vec<CommandSpec>,
    /// Product log files (and globs) scanned for error lines.
    pub error_logs: Vec<String>,
    /// What makes a line an error line (plain substrings).
    pub error_patterns: Vec<String>,
}

/// A vendor command whose JSON output is stored in a bundle of `program`.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandSpec {
    pub name: String,
    pub argv: Vec<String>,
    pub program: Program,
    pub timeout: Duration,
    pub max_output: u64,
    /// Names of the agent's environment variables the command gets beside the allow-list
    /// (`childenv`); `CALLHOME_*` and `CREDENTIALS_DIRECTORY` are refused when the file is read.
    pub env: Vec<String>,
}

/// The localhost REST API.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    pub enabled: bool,
    /// Port on 127.0.0.1 (0: any free port; `api.json` in the data directory tells which).
    pub port: u16,
    /// Also listen on [::1].
    pub ipv6: bool,
    /// A connection must send a whole request head within this time (from its opening, and
    /// again between requests on a kept-alive connection), or it is closed.
    pub header_timeout: Duration,
    /// A connection on which nothing is read or written for this long is closed (a response
    /// nobody reads, a body that stopped coming).
    pub idle_timeout: Duration,
    /// Connections served at once; more are closed as they come. Never more than a quarter of
    /// the process's descriptor limit, so the scheduler and the store always have theirs.
    pub max_connections: u64,
}

/// Desktop notifications.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationsConfig {
    pub enabled: bool,
    /// The same news is not repeated inside this period.
    pub quiet_period: Duration,
}

/// One thing wrong with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, such as `upload.interval`.
    pub key: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    pub message: String,
}

/// Every problem found in one configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(f, "{}: {n} problem{}", self.file, if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            match p.line {
                Some(line) => writeln!(f, "  {}:{line}: {}: {}", self.file, p.key, p.message)?,
                None => writeln!(f, "  {}: {}: {}", self.file, p.key, p.message)?,
            }
        }
        write!(
            f,
            "Fix the lines above (see the configuration reference in README.md) and run `callhome config check` again."
        )
    }
}

impl std::error::Error for ConfigError {}

impl Default for ProgramDefaults {
    /// Every optional program off, telemetry automatic, nothing locked.
    fn default() -> Self {
        ProgramDefaults {
            call_home: false,
            ceip: false,
            events: false,
            telemetry_mode: TelemetryMode::Automatic,
            locked: Vec::new(),
        }
    }
}

impl Default for ApiConfig {
    /// On, on any free port, IPv4 only; 10 s for a request head, 60 s idle, 256 connections.
    fn default() -> Self {
        ApiConfig {
            enabled: true,
            port: 0,
            ipv6: false,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 256,
        }
    }
}

impl Default for NotificationsConfig {
    /// On, with no quiet period.
    fn default() -> Self {
        NotificationsConfig { enabled: true, quiet_period: Duration::ZERO }
    }
}

impl Default for Config {
    /// The embedded default: the configuration that works as is ([`Config::embedded`]).
    fn default() -> Self {
        Config::embedded()
    }
}

impl Config {
    /// How often the schedule uploads a program's bundles.
    pub fn upload_interval(&self, p: Program) -> Duration {
        match p {
            Program::Telemetry => self.upload.interval,
            Program::CallHome => self.upload.intervals.call_home,
            Program::Ceip => self.upload.intervals.ceip,
            Program::Events => self.upload.intervals.events,
        }
    }

    /// The embedded default alone.
    pub fn embedded() -> Config {
        let mut cfg = Config::blank();
        let errs = cfg.overlay(DEFAULT_TOML, "<embedded default>");
        assert!(errs.is_empty(), "the embedded default configuration is invalid: {errs:?}");
        cfg
    }

    /// The embedded default with `path` read on top; every problem is reported.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            problems: vec![Problem {
                key: "(file)".into(),
                line: None,
                message: format!("cannot read the file: {e}; pass an existing, readable file with --config"),
            }],
        })?;
        let mut cfg = Config::embedded();
        cfg.source = Some(path.to_path_buf());
        let mut problems = cfg.overlay(&text, &file);
        if problems.is_empty() {
            problems.extend(cfg.check_files());
        }
        if problems.is_empty() { Ok(cfg) } else { Err(ConfigError { file, problems }) }
    }

    /// Parses `text` on top of `self`, returning every problem found (values that parsed are kept).
    pub fn overlay(&mut self, text: &str, _file: &str) -> Vec<Problem> {
        parser::overlay(self, text)
    }

    /// Resolves a path from the config against the config file's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        match (&self.source, path.is_relative()) {
            (Some(src), true) => src.parent().unwrap_or(Path::new(".")).join(path),
            _ => path.to_path_buf(),
        }
    }

    /// What the embedded default is read on top of: zero and empty values (the default sets
    /// every key).
    fn blank() -> Config {
        Config {
            upload: UploadConfig::default(),
            schedule: ScheduleConfig::default(),
            compliance: ComplianceConfig::default(),
            spool: SpoolConfig::default(),
            programs: ProgramDefaults::default(),
            product: ProductConfig::default(),
            collect: CollectConfig::default(),
            licenses: LicenseConfig::default(),
            api: ApiConfig::default(),
            notifications: NotificationsConfig::default(),
            alerts: AlertsConfig::default(),
            contacts: ContactsConfig::default(),
            policy: Vec::new(),
            source: None,
        }
    }
}
