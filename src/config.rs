//! The agent's configuration: the TOML schema, its validation, and the embedded default.
//!
//! A configuration is the embedded default (`default-config.toml`) with the administrator's file
//! read on top of it, key by key. Parsing never stops at the first problem: every unknown key,
//! wrong type and bad value is collected with its dotted key and line, so `callhome config check`
//! can show them all at once. This module does not read the network and touches the filesystem
//! only to read the file it is given and, in [`Config::check_files`], the files it names.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml_edit::{Document, Item, Table, Value};

use crate::licenses::{LicenseConfig, Mapped};
use crate::programs::{Program, TelemetryMode};

/// The configuration that ships inside the binary; it works as is.
pub const DEFAULT_TOML: &str = include_str!("default-config.toml");

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
    /// Vendor rules that lock programs on from license data.
    pub policy: Vec<PolicyRule>,
    /// The file read on top of the default, if any (relative paths in it resolve against its folder).
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramIntervals {
    pub call_home: Duration,
    pub ceip: Duration,
    pub events: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleConfig {
    pub config_interval: Duration,
    pub performance_interval: Duration,
    pub usage_interval: Duration,
    /// The agent wakes at least this often, even with nothing due, to notice a wall-clock jump.
    pub clock_check: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ComplianceConfig {
    pub max_days: u32,
    /// Days-remaining thresholds, sorted from largest to smallest.
    pub warn_days: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpoolConfig {
    pub max_bytes: u64,
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

#[derive(Debug, Clone, PartialEq)]
pub struct ProductConfig {
    pub name: String,
    pub version: String,
    pub processes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
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
}

/// The localhost REST API.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    pub enabled: bool,
    /// Port on 127.0.0.1 (0: any free port; `api.json` in the data directory tells which).
    pub port: u16,
    /// Also listen on [::1].
    pub ipv6: bool,
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
        let mut p = Parser { text, problems: Vec::new() };
        match Document::parse(text) {
            Ok(doc) => p.root(doc.as_table(), self),
            Err(e) => {
                let line = e.span().map(|s| line_of(text, s.start));
                p.problems.push(Problem {
                    key: "(syntax)".into(),
                    line,
                    message: format!("not valid TOML: {}", e.message().trim()),
                });
            }
        }
        p.problems
    }

    /// Resolves a path from the config against the config file's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        match (&self.source, path.is_relative()) {
            (Some(src), true) => src.parent().unwrap_or(Path::new(".")).join(path),
            _ => path.to_path_buf(),
        }
    }

    /// Checks that the files the configuration names exist and hold what they should.
    pub fn check_files(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if let Some(ca) = &self.upload.ca_file {
            let path = self.resolve(ca);
            match std::fs::read(&path) {
                Ok(bytes) if bytes.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") => {}
                Ok(_) => out.push(problem("upload.ca_file", format!("{} holds no PEM certificate", path.display()))),
                Err(e) => out.push(problem("upload.ca_file", format!("cannot read {}: {e}", path.display()))),
            }
        }
        if let Some(key) = &self.upload.receipt_public_key {
            let path = self.resolve(key);
            if let Err(e) = crate::receipt::load_public_key(&path) {
                out.push(problem("upload.receipt_public_key", e.to_string()));
            }
        }
        out
    }

    fn blank() -> Config {
        Config {
            upload: UploadConfig {
                endpoint: String::new(),
                ca_file: None,
                receipt_public_key: None,
                proxy: None,
                proxy_user: None,
                no_proxy: None,
                first_upload_delay: Duration::ZERO,
                interval: Duration::ZERO,
                retry_base: Duration::ZERO,
                retry_max: Duration::ZERO,
                connect_timeout: Duration::ZERO,
                read_timeout: Duration::ZERO,
                timeout: Duration::ZERO,
                version_window: Duration::ZERO,
                intervals: ProgramIntervals { call_home: Duration::ZERO, ceip: Duration::ZERO, events: Duration::ZERO },
            },
            schedule: ScheduleConfig {
                config_interval: Duration::ZERO,
                performance_interval: Duration::ZERO,
                usage_interval: Duration::ZERO,
                clock_check: Duration::ZERO,
            },
            compliance: ComplianceConfig { max_days: 0, warn_days: Vec::new() },
            spool: SpoolConfig { max_bytes: 0 },
            programs: ProgramDefaults {
                call_home: false,
                ceip: false,
                events: false,
                telemetry_mode: TelemetryMode::Automatic,
                locked: Vec::new(),
            },
            product: ProductConfig { name: String::new(), version: String::new(), processes: Vec::new() },
            collect: CollectConfig { commands: Vec::new(), error_logs: Vec::new(), error_patterns: Vec::new() },
            licenses: LicenseConfig::default(),
            api: ApiConfig { enabled: true, port: 0, ipv6: false },
            notifications: NotificationsConfig { enabled: true, quiet_period: Duration::ZERO },
            policy: Vec::new(),
            source: None,
        }
    }
}

fn problem(key: &str, message: String) -> Problem {
    Problem { key: key.into(), line: None, message }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}

/// Walks a parsed document, writing good values into the config and collecting problems.
struct Parser<'t> {
    text: &'t str,
    problems: Vec<Problem>,
}

impl Parser<'_> {
    fn line(&self, span: Option<Range<usize>>) -> Option<usize> {
        span.map(|s| line_of(self.text, s.start))
    }

    fn push(&mut self, key: &str, span: Option<Range<usize>>, message: impl Into<String>) {
        let line = self.line(span);
        self.problems.push(Problem { key: key.into(), line, message: message.into() });
    }

    fn root(&mut self, root: &Table, cfg: &mut Config) {
        for (name, item) in root.iter() {
            let span = root.key(name).and_then(|k| k.span()).or_else(|| item.span());
            let Some(table) = item.as_table() else {
                self.push(name, span, "expected a [section]; top-level keys are not allowed");
                continue;
            };
            match name {
                "upload" => self.section(name, table, |p, k, v, key| p.upload(k, v, key, &mut cfg.upload)),
                "schedule" => self.section(name, table, |p, k, v, key| p.schedule(k, v, key, &mut cfg.schedule)),
                "compliance" => self.section(name, table, |p, k, v, key| p.compliance(k, v, key, &mut cfg.compliance)),
                "spool" => self.section(name, table, |p, k, v, key| match k {
                    "max_bytes" => p.uint(v, key).map(|n| cfg.spool.max_bytes = n).is_some(),
                    _ => false,
                }),
                "programs" => self.section(name, table, |p, k, v, key| p.programs(k, v, key, &mut cfg.programs)),
                "product" => self.section(name, table, |p, k, v, key| p.product(k, v, key, &mut cfg.product)),
                "collect" => self.section(name, table, |p, k, v, key| match k {
                    "commands" => {
                        if let Some(c) = p.commands(v, key) {
                            cfg.collect.commands = c;
                        }
                        true
                    }
                    "error_logs" => {
                        if let Some(l) = p.strings(v, key) {
                            cfg.collect.error_logs = l;
                        }
                        true
                    }
                    "error_patterns" => {
                        match p.strings(v, key) {
                            Some(l) if l.iter().any(String::is_empty) => p.push(&key.key, key.span.clone(), "a pattern cannot be empty"),
                            Some(l) => cfg.collect.error_patterns = l,
                            None => {}
                        }
                        true
                    }
                    _ => false,
                }),
                "licenses" => self.section(name, table, |p, k, v, key| p.licenses(k, v, key, &mut cfg.licenses)),
                "policy" => self.section(name, table, |p, k, v, key| match k {
                    "rules" => {
                        if let Some(r) = p.rules(v, key) {
                            cfg.policy = r;
                        }
                        true
                    }
                    _ => false,
                }),
                "notifications" => self.section(name, table, |p, k, v, key| {
                    match k {
                        "enabled" => cfg.notifications.enabled = p.bool(v, key).unwrap_or(cfg.notifications.enabled),
                        "quiet_period" => p.duration_into(v, key, &mut cfg.notifications.quiet_period, true),
                        _ => return false,
                    }
                    true
                }),
                "api" => self.section(name, table, |p, k, v, key| {
                    match k {
                        "enabled" => cfg.api.enabled = p.bool(v, key).unwrap_or(cfg.api.enabled),
                        "ipv6" => cfg.api.ipv6 = p.bool(v, key).unwrap_or(cfg.api.ipv6),
                        "listen" => match p.uint(v, key) {
                            Some(n) if n <= 65_535 => cfg.api.port = n as u16,
                            Some(_) => p.push(&key.key, key.span.clone(), "a port is at most 65535 (0: any free port)"),
                            None => {}
                        },
                        _ => return false,
                    }
                    true
                }),
                _ => self.push(
                    name,
                    span,
                    "unknown section; known sections are upload, schedule, compliance, spool, programs, product, collect, licenses, policy, api",
                ),
            }
        }
        self.cross_checks(root, cfg);
    }

    /// Calls `f` for each key of a section; `f` returns false for an unknown key.
    fn section(&mut self, name: &str, table: &Table, mut f: impl FnMut(&mut Self, &str, &Item, &Loc) -> bool) {
        for (k, v) in table.iter() {
            let span = table.key(k).and_then(|key| key.span()).or_else(|| v.span());
            let loc = Loc { key: format!("{name}.{k}"), span };
            if !f(self, k, v, &loc) {
                self.push(
                    &loc.key,
                    loc.span.clone(),
                    "unknown key (a misspelling?); see the configuration reference in README.md",
                );
            }
        }
    }

    fn upload(&mut self, k: &str, v: &Item, loc: &Loc, u: &mut UploadConfig) -> bool {
        match k {
            "endpoint" => {
                if let Some(s) = self.string(v, loc) {
                    match check_endpoint(&s) {
                        Ok(()) => u.endpoint = s,
                        Err(m) => self.push(&loc.key, loc.span.clone(), m),
                    }
                }
            }
            "ca_file" => u.ca_file = self.string(v, loc).map(PathBuf::from).or(u.ca_file.take()),
            "receipt_public_key" => {
                u.receipt_public_key = self.string(v, loc).map(PathBuf::from).or(u.receipt_public_key.take())
            }
            "proxy" => {
                if let Some(s) = self.string(v, loc) {
                    match check_proxy(&s) {
                        Ok(()) => u.proxy = Some(s),
                        Err(m) => self.push(&loc.key, loc.span.clone(), m),
                    }
                }
            }
            "proxy_user" => u.proxy_user = self.string(v, loc).or(u.proxy_user.take()),
            "no_proxy" => u.no_proxy = self.string(v, loc).or(u.no_proxy.take()),
            "first_upload_delay" => self.duration_into(v, loc, &mut u.first_upload_delay, true),
            "interval" => self.duration_into(v, loc, &mut u.interval, false),
            "retry_base" => self.duration_into(v, loc, &mut u.retry_base, false),
            "retry_max" => self.duration_into(v, loc, &mut u.retry_max, false),
            "connect_timeout" => self.duration_into(v, loc, &mut u.connect_timeout, false),
            "read_timeout" => self.duration_into(v, loc, &mut u.read_timeout, false),
            "timeout" => self.duration_into(v, loc, &mut u.timeout, false),
            "version_window" => self.duration_into(v, loc, &mut u.version_window, false),
            "intervals" => {
                let Some(t) = v.as_table_like() else {
                    self.push(&loc.key, loc.span.clone(), "expected a table such as { call_home = \"7d\" }");
                    return true;
                };
                for (k, item) in t.iter() {
                    let l = Loc { key: format!("{}.{k}", loc.key), span: item.span().or(loc.span.clone()) };
                    match k {
                        "call_home" => self.duration_into(item, &l, &mut u.intervals.call_home, false),
                        "ceip" => self.duration_into(item, &l, &mut u.intervals.ceip, false),
                        "events" => self.duration_into(item, &l, &mut u.intervals.events, false),
                        "telemetry" => self.push(&l.key, l.span.clone(), "telemetry's cadence is upload.interval"),
                        _ => self.push(
                            &l.key,
                            l.span.clone(),
                            "unknown program; the optional programs are call_home, ceip, events",
                        ),
                    }
                }
            }
            _ => return false,
        }
        true
    }

    fn schedule(&mut self, k: &str, v: &Item, loc: &Loc, s: &mut ScheduleConfig) -> bool {
        match k {
            "config_interval" => self.duration_into(v, loc, &mut s.config_interval, false),
            "performance_interval" => self.duration_into(v, loc, &mut s.performance_interval, false),
            "usage_interval" => self.duration_into(v, loc, &mut s.usage_interval, false),
            "clock_check" => self.duration_into(v, loc, &mut s.clock_check, false),
            _ => return false,
        }
        true
    }

    fn compliance(&mut self, k: &str, v: &Item, loc: &Loc, c: &mut ComplianceConfig) -> bool {
        match k {
            "max_days" => match self.uint(v, loc) {
                Some(0) => self.push(&loc.key, loc.span.clone(), "must be at least 1 day"),
                Some(n) if n > 3650 => self.push(&loc.key, loc.span.clone(), "must be at most 3650 days"),
                Some(n) => c.max_days = n as u32,
                None => {}
            },
            "warn_days" => {
                if let Some(days) = self.day_list(v, loc) {
                    c.warn_days = days;
                }
            }
            _ => return false,
        }
        true
    }

    fn programs(&mut self, k: &str, v: &Item, loc: &Loc, p: &mut ProgramDefaults) -> bool {
        match k {
            "call_home" | "ceip" | "events" => {
                let program: Program = k.parse().expect("a known program name");
                let slot = match program {
                    Program::CallHome => &mut p.call_home,
                    Program::Ceip => &mut p.ceip,
                    _ => &mut p.events,
                };
                if let Some(t) = v.as_table_like() {
                    // [programs.NAME] enabled = bool, locked = bool
                    for (key, item) in t.iter() {
                        let l2 = Loc { key: format!("{}.{key}", loc.key), span: item.span().or(loc.span.clone()) };
                        match key {
                            "enabled" => *slot = self.bool(item, &l2).unwrap_or(*slot),
                            "locked" => {
                                if self.bool(item, &l2) == Some(true) {
                                    *slot = true;
                                    p.locked.push(program);
                                }
                            }
                            _ => self.push(&l2.key, l2.span.clone(), "unknown key; a program table has enabled and locked"),
                        }
                    }
                } else {
                    *slot = self.bool(v, loc).unwrap_or(*slot);
                }
            }
            "telemetry" => self.push(
                &loc.key,
                loc.span.clone(),
                "license telemetry is mandatory and cannot be turned off; set telemetry_mode = \"manual\" for isolated networks",
            ),
            "telemetry_mode" => {
                if let Some(s) = self.string(v, loc) {
                    match s.parse::<TelemetryMode>() {
                        Ok(m) => p.telemetry_mode = m,
                        Err(e) => self.push(&loc.key, loc.span.clone(), e),
                    }
                }
            }
            _ => return false,
        }
        true
    }

    fn product(&mut self, k: &str, v: &Item, loc: &Loc, p: &mut ProductConfig) -> bool {
        match k {
            "name" => p.name = self.string(v, loc).unwrap_or(std::mem::take(&mut p.name)),
            "version" => p.version = self.string(v, loc).unwrap_or(std::mem::take(&mut p.version)),
            "processes" => {
                if let Some(list) = self.strings(v, loc) {
                    p.processes = list;
                }
            }
            _ => return false,
        }
        true
    }

    fn licenses(&mut self, k: &str, v: &Item, loc: &Loc, l: &mut LicenseConfig) -> bool {
        match k {
            "files" => l.files = self.strings(v, loc).unwrap_or(std::mem::take(&mut l.files)),
            "debug_logs" => l.debug_logs = self.strings(v, loc).unwrap_or(std::mem::take(&mut l.debug_logs)),
            "expiry_warn_days" => {
                if let Some(days) = self.day_list(v, loc) {
                    l.expiry_warn_days = days;
                }
            }
            "vendor_string" => {
                let Some(t) = v.as_table_like() else {
                    self.push(&loc.key, loc.span.clone(), "expected a table such as { TYPE = \"license_type\" }");
                    return true;
                };
                let mut map = Vec::new();
                for (key, item) in t.iter() {
                    let l2 = Loc { key: format!("{}.{key}", loc.key), span: item.span().or(loc.span.clone()) };
                    if let Some(field) = self.string(item, &l2) {
                        match field.parse::<Mapped>() {
                            Ok(m) => map.push((key.to_string(), m)),
                            Err(e) => self.push(&l2.key, l2.span.clone(), e),
                        }
                    }
                }
                l.vendor_string = map;
            }
            _ => return false,
        }
        true
    }

    /// A non-empty list of whole days (1 to 3650), returned largest first.
    fn day_list(&mut self, v: &Item, loc: &Loc) -> Option<Vec<u32>> {
        let Some(arr) = v.as_array() else {
            self.push(&loc.key, loc.span.clone(), "expected a list of whole numbers of days, such as [30, 14, 7]");
            return None;
        };
        let mut days = Vec::new();
        for x in arr.iter() {
            match x.as_integer() {
                Some(n) if (1..=3650).contains(&n) => days.push(n as u32),
                _ => {
                    self.push(
                        &loc.key,
                        x.span().or(loc.span.clone()),
                        "each entry must be a whole number of days from 1 to 3650",
                    );
                    return None;
                }
            }
        }
        if days.is_empty() {
            self.push(&loc.key, loc.span.clone(), "needs at least one threshold, such as [30, 14, 7]");
            return None;
        }
        days.sort_unstable_by(|a, b| b.cmp(a));
        days.dedup();
        Some(days)
    }

    /// `[[policy.rules]]`: vendor_string = "KEY=VALUE", require = "call_home", reason = "…".
    fn rules(&mut self, v: &Item, loc: &Loc) -> Option<Vec<PolicyRule>> {
        let Item::ArrayOfTables(a) = v else {
            self.push(&loc.key, loc.span.clone(), "expected [[policy.rules]] tables");
            return None;
        };
        let before = self.problems.len();
        let mut out = Vec::new();
        for (i, t) in a.iter().enumerate() {
            let base = format!("{}[{i}]", loc.key);
            let (mut vs, mut require, mut reason, mut interval) = (None, None, None, None);
            for (k, item) in t.iter() {
                let l = Loc { key: format!("{base}.{k}"), span: item.span().or(t.span()) };
                match k {
                    "vendor_string" => match self.string(item, &l).as_deref().and_then(|s| s.split_once('=')) {
                        Some((a, b)) => vs = Some((a.trim().to_string(), b.trim().to_string())),
                        None => self.push(&l.key, l.span.clone(), "expected \"KEY=VALUE\", such as \"LT=CSP\""),
                    },
                    "require" => match self.string(item, &l).map(|s| s.parse::<Program>()) {
                        Some(Ok(p)) if !p.mandatory() => require = Some(p),
                        Some(Ok(_)) => {
                            self.push(&l.key, l.span.clone(), "telemetry is always required; name an optional program")
                        }
                        Some(Err(e)) => self.push(&l.key, l.span.clone(), e),
                        None => {}
                    },
                    "reason" => reason = self.string(item, &l),
                    "upload_interval" => {
                        let mut d = Duration::ZERO;
                        self.duration_into(item, &l, &mut d, false);
                        interval = (!d.is_zero()).then_some(d);
                    }
                    _ => self.push(
                        &l.key,
                        l.span.clone(),
                        "unknown key; a rule has vendor_string, require, reason and upload_interval",
                    ),
                }
            }
            match (vs, require) {
                (Some(vs), Some(require)) => {
                    let reason = reason.unwrap_or_else(|| format!("required by the license terms ({}={})", vs.0, vs.1));
                    out.push(PolicyRule { vendor_string: vs, require, reason, upload_interval: interval });
                }
                _ => self.push(&base, t.span(), "a rule needs vendor_string and require"),
            }
        }
        (self.problems.len() == before).then_some(out)
    }

    fn commands(&mut self, v: &Item, loc: &Loc) -> Option<Vec<CommandSpec>> {
        let tables: Vec<RawTable> = match v {
            Item::ArrayOfTables(a) => {
                a.iter().map(|t| (t.span(), t.iter().map(|(k, i)| (k.to_string(), i.clone())).collect())).collect()
            }
            Item::Value(Value::Array(a)) => {
                let mut out = Vec::new();
                for x in a.iter() {
                    let Some(t) = x.as_inline_table() else {
                        self.push(
                            &loc.key,
                            x.span().or(loc.span.clone()),
                            "each command must be a table with name and argv",
                        );
                        return None;
                    };
                    out.push((x.span(), t.iter().map(|(k, i)| (k.to_string(), Item::Value(i.clone()))).collect()));
                }
                out
            }
            _ => {
                self.push(&loc.key, loc.span.clone(), "expected [[collect.commands]] tables");
                return None;
            }
        };
        let mut out = Vec::new();
        let before = self.problems.len();
        for (i, (span, fields)) in tables.into_iter().enumerate() {
            let base = format!("{}[{i}]", loc.key);
            let mut cmd = CommandSpec {
                name: String::new(),
                argv: Vec::new(),
                program: Program::Telemetry,
                timeout: Duration::from_secs(30),
                max_output: 1 << 20,
            };
            for (k, item) in &fields {
                let l = Loc { key: format!("{base}.{k}"), span: item.span().or(span.clone()) };
                match k.as_str() {
                    "name" => cmd.name = self.string(item, &l).unwrap_or_default(),
                    "argv" => cmd.argv = self.strings(item, &l).unwrap_or_default(),
                    "program" => {
                        if let Some(s) = self.string(item, &l) {
                            match s.parse::<Program>() {
                                Ok(p) => cmd.program = p,
                                Err(e) => self.push(&l.key, l.span.clone(), e),
                            }
                        }
                    }
                    "timeout" => self.duration_into(item, &l, &mut cmd.timeout, false),
                    "max_output" => cmd.max_output = self.uint(item, &l).unwrap_or(cmd.max_output),
                    _ => self.push(
                        &l.key,
                        l.span.clone(),
                        "unknown key; a command has name, argv, program, timeout, max_output",
                    ),
                }
            }
            if cmd.name.is_empty() || !cmd.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                self.push(
                    &format!("{base}.name"),
                    span.clone(),
                    "needs a name of letters, digits, '-' and '_' (it names the file in the bundle)",
                );
            }
            if cmd.argv.is_empty() {
                self.push(
                    &format!("{base}.argv"),
                    span.clone(),
                    "needs the command line as a list, such as [\"/opt/vendor/bin/status\", \"--json\"]",
                );
            }
            if out.iter().any(|c: &CommandSpec| c.name == cmd.name) {
                self.push(&format!("{base}.name"), span.clone(), format!("the name {:?} is used twice", cmd.name));
            }
            out.push(cmd);
        }
        (self.problems.len() == before).then_some(out)
    }

    fn cross_checks(&mut self, root: &Table, cfg: &Config) {
        let span_of = |section: &str, key: &str| {
            root.get(section).and_then(|s| s.as_table()).and_then(|t| t.key(key)).and_then(|k| k.span())
        };
        if cfg.upload.retry_base > cfg.upload.retry_max {
            self.push("upload.retry_base", span_of("upload", "retry_base"), "must not be longer than upload.retry_max");
        }
        if let Some(&largest) = cfg.compliance.warn_days.first()
            && largest >= cfg.compliance.max_days
        {
            self.push(
                "compliance.warn_days",
                span_of("compliance", "warn_days"),
                format!("every threshold must be below compliance.max_days ({})", cfg.compliance.max_days),
            );
        }
        if cfg.upload.proxy_user.is_some() && cfg.upload.proxy.is_none() {
            self.push("upload.proxy_user", span_of("upload", "proxy_user"), "is set but upload.proxy is not");
        }
    }

    fn string(&mut self, v: &Item, loc: &Loc) -> Option<String> {
        match v.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.push(&loc.key, loc.span.clone(), format!("expected a string, found {}", v.type_name()));
                None
            }
        }
    }

    fn strings(&mut self, v: &Item, loc: &Loc) -> Option<Vec<String>> {
        let list =
            v.as_array().and_then(|a| a.iter().map(|x| x.as_str().map(str::to_string)).collect::<Option<Vec<_>>>());
        if list.is_none() {
            self.push(&loc.key, loc.span.clone(), "expected a list of strings, such as [\"a\", \"b\"]");
        }
        list
    }

    fn bool(&mut self, v: &Item, loc: &Loc) -> Option<bool> {
        let b = v.as_bool();
        if b.is_none() {
            self.push(&loc.key, loc.span.clone(), format!("expected true or false, found {}", v.type_name()));
        }
        b
    }

    fn uint(&mut self, v: &Item, loc: &Loc) -> Option<u64> {
        match v.as_integer() {
            Some(n) if n >= 0 => Some(n as u64),
            _ => {
                self.push(&loc.key, loc.span.clone(), "expected a whole number, 0 or more");
                None
            }
        }
    }

    fn duration_into(&mut self, v: &Item, loc: &Loc, slot: &mut Duration, zero_ok: bool) {
        let Some(s) = v.as_str() else {
            self.push(
                &loc.key,
                loc.span.clone(),
                "expected a duration string such as \"90s\", \"5m\", \"24h\" or \"7d\"",
            );
            return;
        };
        match humantime::parse_duration(s) {
            Ok(d) if d.is_zero() && !zero_ok => self.push(&loc.key, loc.span.clone(), "must be longer than zero"),
            Ok(d) => *slot = d,
            Err(e) => self.push(
                &loc.key,
                loc.span.clone(),
                format!("{s:?} is not a duration ({e}); write it like \"90s\", \"5m\", \"24h\" or \"7d\""),
            ),
        }
    }
}

/// One `[[collect.commands]]` table: its span and its key/value pairs.
type RawTable = (Option<Range<usize>>, Vec<(String, Item)>);

/// Where a value sits: its dotted key and its span in the file.
struct Loc {
    key: String,
    span: Option<Range<usize>>,
}

fn check_endpoint(s: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(s).map_err(|e| format!("{s:?} is not a URL ({e})"))?;
    if url.scheme() != "https" {
        return Err(format!("must be an https:// URL, found {}://", url.scheme()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; secrets never go into the configuration file".into());
    }
    Ok(())
}

pub fn check_proxy(s: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(s).map_err(|e| format!("{s:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https" | "socks5" | "socks5h") {
        return Err(format!("unsupported proxy scheme {}:// (use http://, https://)", url.scheme()));
    }
    if url.password().is_some() {
        return Err(
            "must not carry a password; set proxy_user here and CALLHOME_PROXY_PASSWORD in the environment".into()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlay(text: &str) -> (Config, Vec<Problem>) {
        let mut cfg = Config::embedded();
        let problems = cfg.overlay(text, "t.toml");
        (cfg, problems)
    }

    #[test]
    fn embedded_default_has_the_documented_values() {
        let c = Config::embedded();
        assert_eq!(c.upload.first_upload_delay, Duration::from_secs(300));
        assert_eq!(c.upload.interval, Duration::from_secs(86_400));
        assert_eq!(c.compliance.max_days, 90);
        assert_eq!(c.compliance.warn_days, vec![30, 14, 7]);
        assert_eq!(c.programs.telemetry_mode, TelemetryMode::Automatic);
    }

    #[test]
    fn every_problem_is_reported_with_key_and_line() {
        let (_, p) = overlay("[upload]\ninterval = \"soon\"\nendpont = \"x\"\n\n[programs]\nceip = \"yes\"\n[bogus]\n");
        let got: Vec<_> = p.iter().map(|p| (p.key.as_str(), p.line)).collect();
        assert_eq!(
            got,
            vec![
                ("upload.interval", Some(2)),
                ("upload.endpont", Some(3)),
                ("programs.ceip", Some(6)),
                ("bogus", Some(7))
            ]
        );
        assert!(p[0].message.contains("not a duration"), "{}", p[0].message);
    }

    #[test]
    fn values_override_the_default_key_by_key() {
        let (c, p) = overlay("[upload]\nfirst_upload_delay = \"2s\"\n[compliance]\nwarn_days = [7, 30]\n");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.upload.first_upload_delay, Duration::from_secs(2));
        assert_eq!(c.upload.interval, Duration::from_secs(86_400));
        assert_eq!(c.compliance.warn_days, vec![30, 7]);
    }

    #[test]
    fn secrets_and_plain_http_are_refused() {
        let (_, p) = overlay("[upload]\nendpoint = \"http://u:pw@x/\"\nproxy = \"http://u:pw@proxy:3128\"\n");
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[1].message.contains("password"));
    }

    #[test]
    fn commands_parse_from_array_of_tables() {
        let (c, p) = overlay(
            "[[collect.commands]]\nname = \"status\"\nargv = [\"echo\", \"{}\"]\nprogram = \"call_home\"\ntimeout = \"5s\"\n",
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.collect.commands[0].program, Program::CallHome);
        assert_eq!(c.collect.commands[0].timeout, Duration::from_secs(5));
    }

    #[test]
    fn policy_rules_and_program_locks_parse_and_complain() {
        let (c, p) = overlay(
            "[programs.ceip]\nlocked = true\n[[policy.rules]]\nvendor_string = \"LT=CSP\"\nrequire = \"call_home\"\n",
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.programs.locked, vec![Program::Ceip]);
        assert_eq!(c.policy[0].vendor_string, ("LT".to_string(), "CSP".to_string()));
        assert!(c.policy[0].reason.contains("LT=CSP"));
        let (_, p) = overlay("[[policy.rules]]\nvendor_string = \"LT\"\nrequire = \"telemetry\"\n");
        let keys: Vec<_> = p.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"policy.rules[0].vendor_string") && keys.contains(&"policy.rules[0].require"), "{p:?}");
    }

    #[test]
    fn syntax_errors_carry_their_line() {
        let (_, p) = overlay("[upload]\ninterval = \n");
        assert_eq!(p[0].key, "(syntax)");
        assert_eq!(p[0].line, Some(2));
    }
}
