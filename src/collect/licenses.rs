//! The license documents of bundles (and of `callhome licenses`/`callhome usage --json`):
//! `licenses.json` (inventory, history, problems) and the usage summaries, identifiable
//! (compliance, Call Home) or counts only (CEIP).
//!
//! Identity rule: user and device names appear only in [`usage_json`] with
//! `Identity::Names`; with `Identity::CountsOnly` they are dropped, never hashed, so nothing in
//! a CEIP bundle can be traced back to a person or a machine.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};

use crate::clock::{Timestamp, rfc3339};
use crate::licenses::date::Date;
use crate::licenses::licfile::{Expiry, Quantity};
use crate::licenses::{Inventory, License, LicenseEvent};
use crate::store::{SeenLicense, UsageRow};

/// Whether user and device names may appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    Names,
    CountsOnly,
}

fn date(d: Option<Date>) -> Value {
    d.map(|d| json!(d.to_string())).unwrap_or(Value::Null)
}

/// The identity of a line across scans (for history).
pub fn line_id(l: &License) -> String {
    format!(
        "{}|{}|{}|{}",
        l.line.feature,
        l.line.version,
        l.line.vendor,
        l.line.signature_hash.as_deref().unwrap_or("")
    )
}

/// What the store remembers of a line.
pub fn seen(l: &License) -> SeenLicense {
    SeenLicense {
        id: line_id(l),
        feature: l.line.feature.clone(),
        version: l.line.version.clone(),
        vendor: l.line.vendor.clone(),
        quantity: l.counted(),
        expiry: match l.line.expiry {
            Expiry::Never => "permanent".into(),
            Expiry::On(d) => d.to_string(),
        },
        first_seen: 0,
        last_seen: 0,
    }
}

pub fn license_json(l: &License) -> Value {
    let f = &l.line;
    json!({
        "file": l.file.display().to_string(),
        "line": f.line,
        "kind": f.kind.name(),
        "feature": f.feature,
        "vendor": f.vendor,
        "version": f.version,
        "from_version": f.from_version,
        "expiry": match f.expiry { Expiry::Never => json!("permanent"), Expiry::On(d) => json!(d.to_string()) },
        "days_to_expiry": l.days_to_expiry,
        "expired": l.expired(),
        "quantity": match f.quantity { Quantity::Count(n) => json!(n), Quantity::Uncounted => Value::Null },
        "uncounted": f.quantity == Quantity::Uncounted,
        "license_type": l.license_type,
        "grace_period_days": l.grace_period_days,
        "subscription_end": date(l.subscription_end),
        "issued": date(f.issued),
        "start": date(f.start),
        "serial": f.serial,
        "notice": f.notice,
        "hostid": f.hostid,
        "vendor_string": f.vendor_string.iter().cloned().collect::<BTreeMap<String, String>>(),
        "supersede": f.supersede,
        "overdraft": f.overdraft,
        "attributes": f.attributes,
        "signature_sha256_16": f.signature_hash,
        "active": !l.expired(),
    })
}

pub fn event_json(e: &LicenseEvent) -> Value {
    json!({ "kind": e.kind.name(), "feature": e.feature, "message": e.message, "days": e.days })
}

/// `licenses.json`: every line, the lines only in history, the problems found.
pub fn inventory_json(
    inv: &Inventory,
    history: &[SeenLicense],
    events: &[LicenseEvent],
    scanned_at: Timestamp,
) -> Value {
    json!({
        "scanned_at": rfc3339(scanned_at),
        "files": inv.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
        "licenses": inv.licenses.iter().map(license_json).collect::<Vec<_>>(),
        "history": history.iter().map(|h| json!({
            "feature": h.feature, "version": h.version, "vendor": h.vendor, "quantity": h.quantity,
            "expiry": h.expiry, "first_seen": rfc3339(h.first_seen), "last_seen": rfc3339(h.last_seen), "active": false,
        })).collect::<Vec<_>>(),
        "problems": inv.problems.iter().map(|p| json!({
            "file": p.file.display().to_string(), "line": p.line, "message": p.message,
        })).collect::<Vec<_>>(),
        "events": events.iter().map(event_json).collect::<Vec<_>>(),
    })
}

/// One hourly row as JSON.
pub fn hour_json(r: &UsageRow, identity: Identity) -> Value {
    let mut v = json!({
        "feature": r.feature,
        "hour": rfc3339(r.hour),
        "peak": r.peak,
        "checkouts": r.checkouts,
        "denials": r.denials,
        "queued": r.queued,
        "unsupported": r.unsupported,
        "user_count": r.users.len(),
        "device_count": r.devices.len(),
    });
    if identity == Identity::Names {
        v["users"] = json!(r.users);
        v["devices"] = json!(r.devices);
    }
    v
}

/// The usage summary of a window: per feature, the most in use at once against what is
/// installed, the licensees, and the hours.
pub fn usage_json(rows: &[UsageRow], inv: &Inventory, window: (Timestamp, Timestamp), identity: Identity) -> Value {
    let installed = inv.installed();
    let mut by_feature: BTreeMap<&str, Vec<&UsageRow>> = BTreeMap::new();
    for r in rows {
        by_feature.entry(&r.feature).or_default().push(r);
    }
    for l in &inv.licenses {
        by_feature.entry(&l.line.feature).or_default();
    }
    let features: Vec<Value> = by_feature
        .into_iter()
        .map(|(feature, hours)| {
            let users: BTreeSet<&String> = hours.iter().flat_map(|h| &h.users).collect();
            let devices: BTreeSet<&String> = hours.iter().flat_map(|h| &h.devices).collect();
            let mut v = json!({
                "feature": feature,
                "count_used_max": hours.iter().map(|h| h.peak).max().unwrap_or(0),
                "count_installed": installed.get(feature).copied().flatten(),
                "uncounted": matches!(installed.get(feature), Some(None)),
                "active": installed.contains_key(feature),
                "checkouts": hours.iter().map(|h| h.checkouts).sum::<u32>(),
                "denials": hours.iter().map(|h| h.denials).sum::<u32>(),
                "licensees": { "users": users.len(), "devices": devices.len() },
                "hours": hours.iter().map(|h| hour_json(h, identity)).collect::<Vec<_>>(),
            });
            if identity == Identity::Names {
                v["users"] = json!(users);
                v["devices"] = json!(devices);
            }
            v
        })
        .collect();
    json!({
        "window_start": rfc3339(window.0),
        "window_end": rfc3339(window.1),
        "features": features,
    })
}

/// Peaks per feature from hourly rows.
pub fn peaks(rows: &[UsageRow]) -> HashMap<String, u32> {
    let mut out: HashMap<String, u32> = HashMap::new();
    for r in rows {
        let e = out.entry(r.feature.clone()).or_default();
        *e = (*e).max(r.peak);
    }
    out
}
