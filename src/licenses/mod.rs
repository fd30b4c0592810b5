//! License data: the inventory from FlexLM license files, usage from vendor-daemon debug logs,
//! and the license events (expiry, renewal, use above quantity) derived from both.
//!
//! This module parses and decides; it does not persist (the agent keeps cursors, hourly usage
//! and events in `store`) and it does not notify.

pub mod date;
pub mod debuglog;
pub mod licfile;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use date::Date;
use licfile::{Expiry, FeatureLine, Quantity};

/// What a `VENDOR_STRING` key means, as the vendor's mapping table says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapped {
    LicenseType,
    GracePeriodDays,
    SubscriptionEnd,
}

impl std::str::FromStr for Mapped {
    type Err = String;
    fn from_str(s: &str) -> Result<Mapped, String> {
        match s {
            "license_type" => Ok(Mapped::LicenseType),
            "grace_period_days" => Ok(Mapped::GracePeriodDays),
            "subscription_end" => Ok(Mapped::SubscriptionEnd),
            _ => Err(format!("{s:?} is not a license field; use license_type, grace_period_days or subscription_end")),
        }
    }
}

/// The `[licenses]` configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct LicenseConfig {
    /// License files and `*.lic` globs.
    pub files: Vec<String>,
    /// Vendor-daemon debug logs.
    pub debug_logs: Vec<String>,
    /// Days-before-expiry thresholds for events, largest first.
    pub expiry_warn_days: Vec<u32>,
    /// `VENDOR_STRING` key (case-insensitive) → meaning.
    pub vendor_string: Vec<(String, Mapped)>,
}

impl Default for LicenseConfig {
    fn default() -> Self {
        LicenseConfig {
            files: Vec::new(),
            debug_logs: Vec::new(),
            expiry_warn_days: vec![90, 30, 7],
            vendor_string: vec![
                ("TYPE".into(), Mapped::LicenseType),
                ("LICENSE_TYPE".into(), Mapped::LicenseType),
                ("GRACE".into(), Mapped::GracePeriodDays),
                ("SUBSCRIPTION".into(), Mapped::SubscriptionEnd),
                ("SA".into(), Mapped::SubscriptionEnd),
            ],
        }
    }
}

/// One license line, with what the mapping and the date make of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct License {
    pub file: PathBuf,
    pub line: FeatureLine,
    pub license_type: Option<String>,
    pub grace_period_days: Option<u32>,
    /// From the mapped `VENDOR_STRING` key, else a date-shaped version (`2026.0630`).
    pub subscription_end: Option<Date>,
    /// Negative once expired; None when it never expires.
    pub days_to_expiry: Option<i64>,
}

impl License {
    pub fn expired(&self) -> bool {
        self.days_to_expiry.is_some_and(|d| d < 0)
    }
    pub fn counted(&self) -> Option<u32> {
        match self.line.quantity {
            Quantity::Count(n) => Some(n),
            Quantity::Uncounted => None,
        }
    }
}

/// A line that could not be used, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    pub file: PathBuf,
    /// 1-based; 0 when the whole file is concerned.
    pub line: usize,
    pub message: String,
}

/// Every license line found, and every problem.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub files: Vec<PathBuf>,
    pub licenses: Vec<License>,
    pub problems: Vec<FileProblem>,
}

impl Inventory {
    /// Licenses installed per feature: counted quantities of unexpired lines (None: uncounted).
    pub fn installed(&self) -> HashMap<&str, Option<u32>> {
        let mut out: HashMap<&str, Option<u32>> = HashMap::new();
        for l in self.licenses.iter().filter(|l| !l.expired()) {
            let e = out.entry(l.line.feature.as_str()).or_insert(Some(0));
            *e = match (*e, l.counted()) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
        }
        out
    }
}

/// Expands the configured files and globs (relative ones against `base`).
pub fn license_paths(patterns: &[String], base: &Path) -> (Vec<PathBuf>, Vec<FileProblem>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for pat in patterns {
        let full = if Path::new(pat).is_absolute() { PathBuf::from(pat) } else { base.join(pat) };
        let text = full.to_string_lossy().into_owned();
        if !text.contains(['*', '?', '[']) {
            files.push(full);
            continue;
        }
        match glob::glob(&text) {
            Ok(paths) => {
                let before = files.len();
                files.extend(paths.filter_map(Result::ok));
                if files.len() == before {
                    problems.push(FileProblem { file: full, line: 0, message: "no file matches this pattern".into() });
                }
            }
            Err(e) => problems.push(FileProblem { file: full, line: 0, message: format!("not a valid pattern: {e}") }),
        }
    }
    files.sort();
    files.dedup();
    (files, problems)
}

/// Reads and parses every configured license file.
pub fn scan(cfg: &LicenseConfig, base: &Path, today: Date) -> Inventory {
    let (files, mut problems) = license_paths(&cfg.files, base);
    let mut licenses = Vec::new();
    for file in &files {
        let bytes = match read_capped(file) {
            Ok(b) => b,
            Err(e) => {
                problems.push(FileProblem { file: file.clone(), line: 0, message: e });
                continue;
            }
        };
        let parsed = licfile::parse(&bytes);
        problems.extend(parsed.problems.into_iter().map(|p| FileProblem {
            file: file.clone(),
            line: p.line,
            message: p.message,
        }));
        for line in parsed.features {
            licenses.push(interpret(cfg, file, line, today));
        }
    }
    Inventory { files, licenses, problems }
}

fn read_capped(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut out = Vec::new();
    f.take(licfile::MAX_FILE_BYTES as u64 + 1).read_to_end(&mut out).map_err(|e| format!("cannot read: {e}"))?;
    if out.len() > licfile::MAX_FILE_BYTES {
        return Err(format!("larger than {} bytes; not a license file?", licfile::MAX_FILE_BYTES));
    }
    Ok(out)
}

fn interpret(cfg: &LicenseConfig, file: &Path, line: FeatureLine, today: Date) -> License {
    let mut license_type = None;
    let mut grace_period_days = None;
    let mut subscription_end = None;
    for (k, v) in &line.vendor_string {
        match cfg.vendor_string.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)).map(|(_, m)| m) {
            Some(Mapped::LicenseType) => license_type = Some(v.clone()),
            Some(Mapped::GracePeriodDays) => grace_period_days = v.parse().ok(),
            Some(Mapped::SubscriptionEnd) => {
                subscription_end = Date::parse_iso_or_version(v).or_else(|| Date::parse_flexlm(v))
            }
            None => {}
        }
    }
    if subscription_end.is_none() {
        subscription_end = Date::parse_iso_or_version(&line.version);
    }
    let days_to_expiry = match line.expiry {
        Expiry::Never => None,
        Expiry::On(d) => Some(d.days() - today.days()),
    };
    License { file: file.to_path_buf(), line, license_type, grace_period_days, subscription_end, days_to_expiry }
}

/// A supplemental grace period: use of `feature` above its installed quantity and overdraft,
/// allowed for `days` days (the line's mapped `grace_period_days`, `GRACE=14` in its
/// `VENDOR_STRING`). It starts in the first hour the vendor-daemon debug log shows more in use
/// than that, and ends `days` days later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracePeriod {
    pub feature: String,
    pub days: u32,
    /// UTC seconds.
    pub start: i64,
    pub end: i64,
}

impl GracePeriod {
    /// Whole days left until the end at `now` (rounded up; 0 or less once ended).
    pub fn days_left(&self, now: i64) -> i64 {
        (self.end - now + 86_399).div_euclid(86_400)
    }
}

/// The features that have a grace period: (feature, its days, what may be in use before it
/// starts: the unexpired lines' counted quantities plus their overdraft).
pub fn grace_capacity(inv: &Inventory) -> Vec<(String, u32, u32)> {
    let mut out: Vec<(String, u32, u32)> = Vec::new();
    for (feature, installed) in inv.installed() {
        let Some(n) = installed else { continue };
        let lines: Vec<&License> = inv.licenses.iter().filter(|l| l.line.feature == feature && !l.expired()).collect();
        let Some(days) = lines.iter().find_map(|l| l.grace_period_days) else { continue };
        let overdraft: u32 = lines.iter().map(|l| l.line.overdraft).sum();
        out.push((feature.to_string(), days, n + overdraft));
    }
    out.sort();
    out
}

/// Whether a newer line for the same feature supersedes the expired line `l`: one that has not
/// expired, or expires later, or names it in its `SUPERSEDE` list.
fn superseded(inv: &Inventory, l: &License) -> bool {
    let f = &l.line.feature;
    let later = |o: &License| match (o.line.expiry, l.line.expiry) {
        (Expiry::Never, _) => true,
        (Expiry::On(a), Expiry::On(b)) => a > b,
        (Expiry::On(_), Expiry::Never) => false,
    };
    inv.licenses.iter().filter(|o| !std::ptr::eq(*o, l)).any(|o| {
        (o.line.feature == *f && (!o.expired() || later(o)))
            || o.line.supersede.as_ref().is_some_and(|names| names.iter().any(|n| n == f))
    })
}

/// What a license event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Expires within a threshold.
    Expiring,
    /// Has expired (and nothing newer covers the feature).
    Expired,
    /// The subscription/maintenance date is within a threshold.
    RenewalDue,
    /// More in use than installed: overdraft or grace period in use, or over quantity.
    OverQuantity,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Expiring => "expiring",
            EventKind::Expired => "expired",
            EventKind::RenewalDue => "renewal_due",
            EventKind::OverQuantity => "over_quantity",
        }
    }
}

/// A license event as decided now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenseEvent {
    /// Stable identity: the same condition keeps the same key across runs.
    pub key: String,
    pub kind: EventKind,
    pub feature: String,
    pub message: String,
    /// Days to the date concerned (expiry, subscription end), when there is one.
    pub days: Option<i64>,
}

/// The events the inventory and recent peaks call for. `peaks`: most licenses in use at once per
/// feature over the period of interest.
pub fn events(inv: &Inventory, peaks: &HashMap<String, u32>, thresholds: &[u32], today: Date) -> Vec<LicenseEvent> {
    let mut out = Vec::new();
    let largest = thresholds.iter().copied().max().unwrap_or(0) as i64;
    let crossed = |days: i64| thresholds.iter().copied().filter(|t| days <= *t as i64).min();
    let id = |l: &License| {
        format!("{}:{}:{}", l.line.feature, l.line.version, l.line.signature_hash.as_deref().unwrap_or(""))
    };
    for l in &inv.licenses {
        let f = &l.line.feature;
        let qty = l.counted().map(|n| format!("{n} licenses")).unwrap_or_else(|| "uncounted".into());
        if let (Some(days), Expiry::On(d)) = (l.days_to_expiry, l.line.expiry) {
            if days < 0 {
                if !superseded(inv, l) {
                    out.push(LicenseEvent {
                        key: format!("expired:{}", id(l)),
                        kind: EventKind::Expired,
                        feature: f.clone(),
                        message: format!("{f} {} expired on {d} ({qty}); renew it", l.line.version),
                        days: Some(days),
                    });
                }
            } else if days <= largest {
                let t = crossed(days).unwrap_or(largest as u32);
                out.push(LicenseEvent {
                    key: format!("expiring:{}:{t}", id(l)),
                    kind: EventKind::Expiring,
                    feature: f.clone(),
                    message: format!("{f} {} expires on {d}, in {days} days ({qty})", l.line.version),
                    days: Some(days),
                });
            }
        }
        if let Some(end) = l.subscription_end
            && !l.expired()
        {
            let days = end.days() - today.days();
            if (0..=largest).contains(&days) {
                let t = crossed(days).unwrap_or(largest as u32);
                out.push(LicenseEvent {
                    key: format!("renewal:{}:{t}", id(l)),
                    kind: EventKind::RenewalDue,
                    feature: f.clone(),
                    message: format!("the subscription for {f} ends on {end}, in {days} days; plan the renewal"),
                    days: Some(days),
                });
            }
        }
    }
    let installed = inv.installed();
    let mut features: Vec<_> = peaks.iter().collect();
    features.sort();
    for (feature, peak) in features {
        let Some(Some(n)) = installed.get(feature.as_str()) else { continue };
        if peak > n {
            let lines: Vec<&License> =
                inv.licenses.iter().filter(|l| l.line.feature == *feature && !l.expired()).collect();
            let overdraft: u32 = lines.iter().map(|l| l.line.overdraft).sum();
            let grace = lines.iter().find_map(|l| l.grace_period_days);
            let what = if *peak <= n + overdraft {
                "the overdraft is in use".to_string()
            } else if let Some(g) = grace {
                format!("the {g}-day grace period is in use")
            } else {
                "more than installed".to_string()
            };
            out.push(LicenseEvent {
                key: format!("over:{feature}"),
                kind: EventKind::OverQuantity,
                feature: feature.clone(),
                message: format!("{feature}: {peak} in use at peak, {n} installed: {what}"),
                days: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(text: &str, today: Date) -> Inventory {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.lic"), text).unwrap();
        let cfg = LicenseConfig { files: vec!["*.lic".into()], ..LicenseConfig::default() };
        scan(&cfg, dir.path(), today)
    }

    #[test]
    fn expiry_renewal_and_overuse_events() {
        let today = Date::new(2026, 11, 23).unwrap();
        let i = inv(
            "FEATURE soon acme 1.0 13-dec-2026 5 SIGN=A1\nFEATURE gone acme 1.0 1-nov-2026 5 SIGN=A2\nFEATURE sub acme 2026.1230 permanent 10 VENDOR_STRING=\"TYPE=SUB\" SIGN=A3\nFEATURE busy acme 1.0 permanent 4 OVERDRAFT=2 SIGN=A4\n",
            today,
        );
        assert!(i.problems.is_empty(), "{:?}", i.problems);
        assert_eq!(i.licenses[2].license_type.as_deref(), Some("SUB"));
        let peaks = HashMap::from([("busy".to_string(), 5u32)]);
        let ev = events(&i, &peaks, &[90, 30, 7], today);
        let got: Vec<(&str, &str, Option<i64>)> =
            ev.iter().map(|e| (e.kind.name(), e.feature.as_str(), e.days)).collect();
        assert_eq!(
            got,
            vec![
                ("expiring", "soon", Some(20)),
                ("expired", "gone", Some(-22)),
                ("renewal_due", "sub", Some(37)),
                ("over_quantity", "busy", None)
            ]
        );
        assert!(ev[0].key.ends_with(":30"), "20 days left crossed the 30-day threshold: {}", ev[0].key);
        assert!(ev[3].message.contains("overdraft"), "{}", ev[3].message);
    }

    #[test]
    fn an_expired_line_that_a_newer_line_supersedes_is_no_event() {
        let today = Date::new(2026, 11, 23).unwrap();
        let i = inv(
            "FEATURE cad acme 1.0 1-jan-2025 5 SIGN=B1\nFEATURE cad acme 2.0 1-jun-2025 5 SIGN=B2\nFEATURE old acme 1.0 1-jan-2025 2 SIGN=B3\nFEATURE new acme 1.0 1-jan-2027 2 SUPERSEDE=\"old\" SIGN=B4\nFEATURE gone acme 1.0 1-jan-2025 2 SIGN=B5\n",
            today,
        );
        let expired: Vec<(String, String)> = events(&i, &HashMap::new(), &[7], today)
            .into_iter()
            .filter(|e| e.kind == EventKind::Expired)
            .map(|e| (e.feature, e.message.split(' ').nth(1).unwrap().to_string()))
            .collect();
        assert_eq!(expired, vec![("cad".into(), "2.0".into()), ("gone".into(), "1.0".into())]);
    }

    #[test]
    fn a_grace_period_needs_a_grace_length_and_counts_the_overdraft() {
        let today = Date::new(2026, 11, 23).unwrap();
        let i = inv(
            "FEATURE planner globex 3.2 permanent 40 OVERDRAFT=2 VENDOR_STRING=\"GRACE=14\" SIGN=C1\nFEATURE other globex 1.0 permanent 4 SIGN=C2\n",
            today,
        );
        assert_eq!(grace_capacity(&i), vec![("planner".to_string(), 14, 42)]);
        let g = GracePeriod { feature: "planner".into(), days: 14, start: 0, end: 14 * 86_400 };
        assert_eq!((g.days_left(0), g.days_left(13 * 86_400 + 1), g.days_left(14 * 86_400)), (14, 1, 0));
    }

    #[test]
    fn missing_files_and_empty_globs_are_problems() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LicenseConfig { files: vec!["none/*.lic".into(), "absent.lic".into()], ..LicenseConfig::default() };
        let i = scan(&cfg, dir.path(), Date::new(2026, 1, 1).unwrap());
        assert_eq!(i.problems.len(), 2, "{:?}", i.problems);
        assert!(i.problems[0].message.contains("no file matches"));
        assert!(i.problems[1].message.contains("cannot read"));
    }
}
