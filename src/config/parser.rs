//! The walker over a parsed TOML document: each section's keys written into a [`Config`], and
//! every problem kept with its dotted key and line.
//!
//! It does not stop at the first problem and never fails: a value that does not parse leaves the
//! one before it (the embedded default's) in place. The checks of values that need more than
//! their own type (URLs, cross-key rules) live in `checks`; reading one value of a given type in
//! `values`.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml_edit::{Document, Item, Table, Value};

use super::checks::{check_endpoint, check_proxy};
use super::{
    CommandSpec, ComplianceConfig, Config, PolicyRule, Problem, ProductConfig, ProgramDefaults, ScheduleConfig,
    UploadConfig,
};
use crate::licenses::{LicenseConfig, Mapped};
use crate::programs::{Program, TelemetryMode};

/// Parses `text` on top of `cfg`, returning every problem found (values that parsed are kept).
pub(super) fn overlay(cfg: &mut Config, text: &str) -> Vec<Problem> {
    let mut p = Parser { text, problems: Vec::new() };
    match Document::parse(text) {
        Ok(doc) => p.root(doc.as_table(), cfg),
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

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}

/// Walks a parsed document, writing good values into the config and collecting problems.
pub(super) struct Parser<'t> {
    text: &'t str,
    problems: Vec<Problem>,
}

/// Where a value sits: its dotted key and its span in the file.
pub(super) struct Loc {
    pub(super) key: String,
    pub(super) span: Option<Range<usize>>,
}

/// One `[[collect.commands]]` table: its span and its key/value pairs.
type RawTable = (Option<Range<usize>>, Vec<(String, Item)>);

impl Parser<'_> {
    /// How many problems were found so far (a table's reader compares before and after).
    pub(super) fn problem_count(&self) -> usize {
        self.problems.len()
    }

    fn line(&self, span: Option<Range<usize>>) -> Option<usize> {
        span.map(|s| line_of(self.text, s.start))
    }

    pub(super) fn push(&mut self, key: &str, span: Option<Range<usize>>, message: impl Into<String>) {
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
                    "export_max_size" => {
                        if let Some(n) = p.uint(v, key) {
                            cfg.spool.export_max_size = n;
                        }
                        true
                    }
                    "exports_max_age" => {
                        p.duration_into(v, key, &mut cfg.spool.exports_max_age, false);
                        true
                    }
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
                "alerts" => self.section(name, table, |p, k, v, key| p.alerts(k, v, key, cfg)),
                "contacts" => self.section(name, table, |p, k, v, key| p.contacts(k, v, key, &mut cfg.contacts)),
                "api" => self.section(name, table, |p, k, v, key| {
                    match k {
                        "enabled" => cfg.api.enabled = p.bool(v, key).unwrap_or(cfg.api.enabled),
                        "ipv6" => cfg.api.ipv6 = p.bool(v, key).unwrap_or(cfg.api.ipv6),
                        "header_timeout" => p.duration_into(v, key, &mut cfg.api.header_timeout, false),
                        "idle_timeout" => p.duration_into(v, key, &mut cfg.api.idle_timeout, false),
                        "max_connections" => match p.uint(v, key) {
                            Some(n) if n >= 1 => cfg.api.max_connections = n,
                            Some(_) => p.push(&key.key, key.span.clone(), "at least 1 connection"),
                            None => {}
                        },
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
                    "unknown section; known sections are upload, schedule, compliance, spool, programs, product, collect, licenses, policy, api, notifications, alerts, contacts",
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
                env: Vec::new(),
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
                    "env" => {
                        cmd.env = self.strings(item, &l).unwrap_or_default();
                        for name in cmd.env.iter().filter(|n| crate::childenv::is_forbidden(n)) {
                            self.push(
                                &l.key,
                                l.span.clone(),
                                format!(
                                    "{name} is the agent's own (CALLHOME_* and CREDENTIALS_DIRECTORY hold its secrets) and is never passed to a command; remove it"
                                ),
                            );
                        }
                    }
                    _ => self.push(
                        &l.key,
                        l.span.clone(),
                        "unknown key; a command has name, argv, program, timeout, max_output, env",
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
}
