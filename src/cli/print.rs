//! How the CLI prints things for people, and JSON for scripts.

use callhome::api::dto::{AttemptDoc, CollectedDoc, LedgerDoc, ProgramDoc, QuarantinedDoc, StatusDoc, UploadReportDoc};
use callhome::clock::rfc3339;
use callhome::store::LedgerRow;
use serde::Serialize;
use serde_json::Value;

pub fn json<T: Serialize + ?Sized>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).expect("documents serialize"));
}

pub fn status(d: &StatusDoc) {
    println!("callhome {} · install {}", d.agent_version, d.install_id);
    match &d.agent.holder {
        Some(h) => println!("agent: running ({h})"),
        None => println!("agent: not running"),
    }
    let c = &d.compliance;
    let last = c.last_success.as_deref().unwrap_or("never (counting from install)");
    println!(
        "compliance: {} · {} days since the last successful upload · {} · last success {last} · deadline {}",
        c.state,
        c.days_since_last_upload,
        days_left(c.days_remaining, c.max_days),
        c.deadline
    );
    if let Some(e) = &c.exemption {
        println!(
            "exemption: exempt from reporting until {} (inclusive, UTC): {} · granted {} · {}",
            e.until, e.reason, e.granted_at, e.id
        );
    }
    if manual(d) {
        println!(
            "manual reporting: manual report {} — `callhome export --out FILE.zip`, then `callhome import-receipt`",
            report_due(c.days_remaining)
        );
    }
    println!(
        "spool: {} pending ({} bytes of {} allowed) · {} quarantined",
        d.spool.pending, d.spool.pending_bytes, d.spool.max_bytes, d.spool.quarantined
    );
    if d.spool.over_quota_bytes > 0 {
        println!(
            "  warning: compliance bundles exceed spool.max_bytes by {} bytes; they are kept: let uploads catch up or raise spool.max_bytes",
            d.spool.over_quota_bytes
        );
    }
    programs(&d.programs);
    println!("last results:");
    for (kind, r) in &d.last_result {
        match r {
            Some(r) => println!(
                "  {kind:<11} {} at {}{}",
                r.code,
                r.at,
                if r.message.is_empty() { String::new() } else { format!(" — {}", r.message) }
            ),
            None => println!("  {kind:<11} no attempt yet"),
        }
    }
    if let Some(n) = &d.next_upload {
        println!("next upload: {n}");
    }
    if d.version.outdated {
        println!(
            "version: {} is out of date — install {} (released {})",
            d.version.running,
            d.version.latest.as_deref().unwrap_or("?"),
            d.version.latest_released.as_deref().unwrap_or("?")
        );
    }
    if d.product.outdated {
        println!(
            "product: {} {} is out of date — {} came out {}, more than six months ago",
            d.product.name,
            d.product.version,
            d.product.latest.as_deref().unwrap_or("?"),
            d.product.latest_released.as_deref().unwrap_or("?")
        );
    }
    if !d.license_events.is_empty() {
        println!("license events:");
        for e in &d.license_events {
            println!("  {:<13} {}", e.kind, e.message);
        }
    }
    for g in &d.grace_periods {
        println!("{}", grace_line(&g.feature, g.days, &g.start, &g.end, g.days_left));
    }
    if !d.alerts.is_empty() {
        println!("open alerts:");
        for a in &d.alerts {
            let ack = if a.acknowledged {
                format!(" [acknowledged until {}]", a.acked_until.as_deref().unwrap_or("it clears"))
            } else {
                String::new()
            };
            println!("  {} {:<8} {}{ack}", a.id, a.severity, a.title);
        }
    }
    if !d.alert_channels.is_empty() {
        println!("alert channels:");
        for c in &d.alert_channels {
            let last = match (&c.last_delivery, &c.last_attempt) {
                (Some(at), _) => format!("last delivered {at}"),
                (None, Some(_)) => "nothing delivered yet".into(),
                (None, None) => "not used yet".into(),
            };
            println!("  {:<8} {} · {last} · {} delivered", c.name, c.target, c.delivered);
            if let (Some(e), Some(at)) = (&c.last_error, &c.last_error_at) {
                println!("           last error at {at}: {e}");
            }
        }
    }
}

pub fn programs(list: &[ProgramDoc]) {
    println!("programs:");
    for p in list {
        let note = if p.mandatory {
            " (mandatory)"
        } else if p.identifiable {
            ""
        } else {
            " (non-identifiable)"
        };
        let lock = p.locked_reason.as_ref().map(|r| format!(" (locked: {r})")).unwrap_or_default();
        println!("  {:<10} {:<18} {:<9} every {:<4}{note}{lock}", p.name, p.title, p.mode, p.upload_interval);
    }
}

pub fn collected(out: &[CollectedDoc]) {
    for c in out {
        match (&c.bundle, &c.skipped) {
            (Some(name), _) => {
                let e = if c.errors > 0 {
                    format!(", {} collector error(s) in its manifest", c.errors)
                } else {
                    String::new()
                };
                println!("{}: collected {name} ({} bytes{e})", c.program, c.size.unwrap_or(0));
            }
            (None, reason) => {
                println!("{}: skipped ({})", c.program, reason.as_deref().unwrap_or("nothing to collect"))
            }
        }
    }
}

pub fn upload_report(r: &UploadReportDoc) {
    for p in &r.programs {
        let mut line = format!("{}: {} sent", p.program, p.sent.len());
        if !p.quarantined.is_empty() {
            line.push_str(&format!(", {} quarantined", p.quarantined.len()));
        }
        if let Some(s) = &p.skipped {
            line.push_str(&format!(", skipped ({s})"));
        }
        if let (Some(code), Some(msg)) = (&p.code, &p.message) {
            line.push_str(&format!(", {code}: {msg}"));
        }
        println!("{line}");
    }
}

pub fn quarantine(items: &[QuarantinedDoc], as_json: bool) {
    if as_json {
        return json(items);
    }
    if items.is_empty() {
        println!("nothing in quarantine");
    }
    for q in items {
        println!("{}  {}  {} bytes  {}", q.id, q.quarantined_at, q.size, q.reason);
    }
}

pub fn history(attempts: &[AttemptDoc], as_json: bool) {
    if as_json {
        return json(attempts);
    }
    if attempts.is_empty() {
        println!("no upload attempts yet");
    }
    for a in attempts {
        println!(
            "{} {:<10} {:<34} {:>6} ms  {}  {}",
            a.at,
            a.program,
            a.code,
            a.duration_ms,
            a.bundle.as_deref().unwrap_or("-"),
            a.message
        );
    }
}

pub fn ledger(rows: &[LedgerRow], as_json: bool) {
    if as_json {
        return json(&rows.iter().map(LedgerDoc::from).collect::<Vec<_>>());
    }
    for r in rows {
        println!("{:>5} {} {:<11} {:<10} {} {}", r.seq, rfc3339(r.at), r.event, r.program, r.bundle, r.sha256);
    }
}

pub fn licenses(doc: &Value) {
    let list = doc["licenses"].as_array().cloned().unwrap_or_default();
    if doc["files"].as_array().is_none_or(Vec::is_empty) {
        println!("no license files (set licenses.files in the configuration)");
    }
    println!(
        "{:<20} {:<10} {:<12} {:<10} {:>9} {:<11} {:>9}  type",
        "feature", "vendor", "version", "kind", "quantity", "expiry", "days left"
    );
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    for l in &list {
        let qty = if l["uncounted"] == true { "uncounted".to_string() } else { l["quantity"].to_string() };
        let left = l["days_to_expiry"].as_i64().map(|d| d.to_string()).unwrap_or_else(|| "-".into());
        println!(
            "{:<20} {:<10} {:<12} {:<10} {:>9} {:<11} {:>9}  {}",
            s(&l["feature"]),
            s(&l["vendor"]),
            s(&l["version"]),
            s(&l["kind"]),
            qty,
            s(&l["expiry"]),
            left,
            s(&l["license_type"])
        );
    }
    for e in doc["events"].as_array().into_iter().flatten() {
        println!("event: {:<13} {}", s(&e["kind"]), s(&e["message"]));
    }
    for g in doc["grace_periods"].as_array().into_iter().flatten() {
        let days = g["days"].as_u64().unwrap_or(0) as u32;
        println!(
            "{}",
            grace_line(&s(&g["feature"]), days, &s(&g["start"]), &s(&g["end"]), g["days_left"].as_i64().unwrap_or(0))
        );
    }
    for p in doc["problems"].as_array().into_iter().flatten() {
        println!("problem: {}:{}: {}", s(&p["file"]), p["line"], s(&p["message"]));
    }
}

/// One supplemental grace period in words.
fn grace_line(feature: &str, days: u32, start: &str, end: &str, left: i64) -> String {
    if left <= 0 {
        format!("grace period: {feature}: the {days}-day grace period ({start} to {end}) has ended")
    } else {
        format!("grace period: {feature}: {days}-day grace period from {start} to {end}, {left} day(s) left")
    }
}

pub fn usage(rows: &[Value]) {
    if rows.is_empty() {
        println!("no license usage recorded (set licenses.debug_logs in the configuration)");
        return;
    }
    println!(
        "{:<20} {:<20} {:>5} {:>9} {:>7} {:>6} {:>7}",
        "feature", "hour", "peak", "checkouts", "denials", "users", "devices"
    );
    for r in rows {
        println!(
            "{:<20} {:<20} {:>5} {:>9} {:>7} {:>6} {:>7}",
            r["feature"].as_str().unwrap_or(""),
            r["hour"].as_str().unwrap_or(""),
            r["peak"],
            r["checkouts"],
            r["denials"],
            r["user_count"],
            r["device_count"]
        );
    }
}

/// `callhome alerts list`: one line per open alert.
pub fn alerts(list: &[callhome::api::dto::AlertDoc]) {
    if list.is_empty() {
        println!("no open alerts");
        return;
    }
    println!("{:<12}  {:<8}  {:<22}  {:<20}  TITLE", "ID", "SEVERITY", "KIND", "FIRST SEEN");
    for a in list {
        let ack = match (a.acknowledged, &a.acked_until) {
            (false, _) => String::new(),
            (true, Some(u)) => format!(" [acknowledged until {u}]"),
            (true, None) => " [acknowledged]".into(),
        };
        println!("{:<12}  {:<8}  {:<22}  {:<20}  {}{ack}", a.id, a.severity, a.kind, a.first_seen, a.title);
    }
}

/// `callhome check`'s verdict: the exit code and its one line.
pub fn check_line(d: &StatusDoc) -> (u8, String) {
    let c = &d.compliance;
    let last = d.last_result.get("compliance").cloned().flatten();
    // The open alerts decide, less the acknowledged ones (an acknowledgement ends when its
    // date passes or the alert gets worse: the agent clears it then).
    let code = d
        .alerts
        .iter()
        .filter(|a| !a.acknowledged)
        .map(|a| if a.severity == "critical" { 2 } else { 1 })
        .max()
        .unwrap_or(0u8);
    let acked = d.alerts.iter().filter(|a| a.acknowledged).count();
    let version = match (&d.version.latest, d.version.outdated) {
        (Some(latest), true) => format!(
            "; agent {} is out of date: install {latest} (released {})",
            d.version.running,
            d.version.latest_released.as_deref().unwrap_or("?")
        ),
        _ => String::new(),
    };
    let version = match (&d.product.latest, d.product.outdated) {
        (Some(latest), true) => format!(
            "{version}; {} {} is out of date: {latest} came out {}",
            d.product.name,
            d.product.version,
            d.product.latest_released.as_deref().unwrap_or("?")
        ),
        _ => version,
    };
    let version = if acked > 0 { format!("{version}; {acked} alert(s) acknowledged") } else { version };
    let word = ["OK", "WARNING", "CRITICAL"][code as usize];
    let last_text = match &last {
        Some(r) => format!("last compliance upload {} at {}", r.code, r.at),
        None => "no compliance upload yet".to_string(),
    };
    let events = match d.license_events.len() {
        0 => "no license events".to_string(),
        n => format!("{n} license event(s): {}", d.license_events[0].message),
    };
    let left = if let Some(e) = &c.exemption {
        format!("exempt until {} ({})", e.until, e.reason)
    } else if manual(d) {
        format!("manual report {}", report_due(c.days_remaining))
    } else {
        days_left(c.days_remaining, c.max_days)
    };
    let line = format!(
        "CALLHOME {word} - compliance {}: {} days since the last upload, {left}; {last_text}; {events}{version} | days_since_last_upload={} days_remaining={} pending={}",
        c.state, c.days_since_last_upload, c.days_since_last_upload, c.days_remaining, d.spool.pending
    );
    (code, line)
}

/// Whether license telemetry is in manual reporting.
fn manual(d: &StatusDoc) -> bool {
    d.programs.iter().any(|p| p.name == "telemetry" && p.mode == "manual")
}

pub fn steps(steps: &[callhome::upload::diagnose::Step]) {
    for s in steps {
        let word = if s.ok { "PASS" } else { "FAIL" };
        println!("{word} {:<6} {:>5} ms  {}", s.name, s.ms, s.detail);
        if let Some(h) = &s.hint {
            println!("     → {h}");
        }
    }
}

/// The compliance clock in words: "12 of 90 days left", "0 of 90 days left (today is the
/// limit)", "5 days overdue".
fn days_left(remaining: i64, max_days: u32) -> String {
    match remaining {
        r if r < 0 => format!("{} {} overdue", -r, plural(-r)),
        0 => format!("0 of {max_days} days left (today is the limit)"),
        r => format!("{r} of {max_days} days left"),
    }
}

/// When the manual report is due: "due in 12 days", "due today", "5 days overdue".
fn report_due(remaining: i64) -> String {
    match remaining {
        r if r < 0 => format!("{} {} overdue", -r, plural(-r)),
        0 => "due today".to_string(),
        r => format!("due in {r} {}", plural(r)),
    }
}

fn plural(n: i64) -> &'static str {
    if n == 1 { "day" } else { "days" }
}
