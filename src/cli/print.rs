//! How the CLI prints things for people, and JSON for scripts.

use callhome::agent::{Collected, UploadReport};
use callhome::api::dto::{ProgramDoc, StatusDoc};
use callhome::clock::rfc3339;
use callhome::licenses::licfile::{Expiry, Quantity};
use callhome::licenses::{Inventory, LicenseEvent};
use callhome::store::{Attempt, LedgerRow, UsageRow};
use serde::Serialize;

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
        "compliance: {} · {} days since the last successful upload · {} of {} days left · last success {last} · deadline {}",
        c.state, c.days_since_last_upload, c.days_remaining, c.max_days, c.deadline
    );
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
    if !d.license_events.is_empty() {
        println!("license events:");
        for e in &d.license_events {
            println!("  {:<13} {}", e.kind, e.message);
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
        println!("  {:<10} {:<18} {}{note}", p.name, p.title, p.mode);
    }
}

pub fn collected(out: &[Collected]) {
    for c in out {
        match c {
            Collected::Bundle { program, name, size, errors } => {
                let e =
                    if *errors > 0 { format!(", {errors} collector error(s) in its manifest") } else { String::new() };
                println!("{program}: collected {name} ({size} bytes{e})");
            }
            Collected::Skipped { program, reason } => println!("{program}: skipped ({reason})"),
        }
    }
}

pub fn upload_report(r: &UploadReport) {
    for p in &r.programs {
        let mut line = format!("{}: {} sent", p.program, p.sent.len());
        if !p.quarantined.is_empty() {
            line.push_str(&format!(", {} quarantined", p.quarantined.len()));
        }
        if let Some(s) = &p.skipped {
            line.push_str(&format!(", skipped ({s})"));
        }
        if let Some(f) = &p.failure {
            line.push_str(&format!(", {}: {}", f.code.as_str(), f.message));
        }
        println!("{line}");
    }
}

#[derive(Serialize)]
struct AttemptDoc<'a> {
    at: String,
    program: &'a str,
    bundle: Option<&'a str>,
    sha256: Option<&'a str>,
    code: &'a str,
    message: &'a str,
    http_status: Option<u16>,
    duration_ms: u64,
}

pub fn history(attempts: &[Attempt], as_json: bool) {
    if as_json {
        let docs: Vec<_> = attempts
            .iter()
            .map(|a| AttemptDoc {
                at: rfc3339(a.at),
                program: a.program.name(),
                bundle: a.bundle.as_deref(),
                sha256: a.sha256.as_deref(),
                code: &a.code,
                message: &a.message,
                http_status: a.http_status,
                duration_ms: a.duration_ms,
            })
            .collect();
        return json(&docs);
    }
    if attempts.is_empty() {
        println!("no upload attempts yet");
    }
    for a in attempts {
        println!(
            "{} {:<10} {:<34} {:>6} ms  {}  {}",
            rfc3339(a.at),
            a.program.name(),
            a.code,
            a.duration_ms,
            a.bundle.as_deref().unwrap_or("-"),
            a.message
        );
    }
}

#[derive(Serialize)]
struct LedgerDoc<'a> {
    seq: i64,
    at: String,
    event: &'a str,
    program: &'a str,
    bundle: &'a str,
    sha256: &'a str,
    size: u64,
    detail: &'a str,
    hash: &'a str,
}

pub fn ledger(rows: &[LedgerRow], as_json: bool) {
    if as_json {
        let docs: Vec<_> = rows
            .iter()
            .map(|r| LedgerDoc {
                seq: r.seq,
                at: rfc3339(r.at),
                event: &r.event,
                program: &r.program,
                bundle: &r.bundle,
                sha256: &r.sha256,
                size: r.size,
                detail: &r.detail,
                hash: &r.hash,
            })
            .collect();
        return json(&docs);
    }
    for r in rows {
        println!("{:>5} {} {:<11} {:<10} {} {}", r.seq, rfc3339(r.at), r.event, r.program, r.bundle, r.sha256);
    }
}

pub fn licenses(inv: &Inventory, events: &[LicenseEvent]) {
    if inv.files.is_empty() {
        println!("no license files (set licenses.files in the configuration)");
    }
    println!(
        "{:<20} {:<10} {:<12} {:<12} {:>9} {:<11} {:>9}  type",
        "feature", "vendor", "version", "kind", "quantity", "expiry", "days left"
    );
    for l in &inv.licenses {
        let f = &l.line;
        let qty = match f.quantity {
            Quantity::Count(n) => n.to_string(),
            Quantity::Uncounted => "uncounted".into(),
        };
        let exp = match f.expiry {
            Expiry::Never => "permanent".to_string(),
            Expiry::On(d) => d.to_string(),
        };
        let left = l.days_to_expiry.map(|d| d.to_string()).unwrap_or_else(|| "-".into());
        println!(
            "{:<20} {:<10} {:<12} {:<12} {:>9} {:<11} {:>9}  {}",
            f.feature,
            f.vendor,
            f.version,
            f.kind.name(),
            qty,
            exp,
            left,
            l.license_type.as_deref().unwrap_or("-")
        );
    }
    for e in events {
        println!("event: {:<13} {}", e.kind.name(), e.message);
    }
    for p in &inv.problems {
        println!("problem: {}:{}: {}", p.file.display(), p.line, p.message);
    }
}

pub fn usage(rows: &[UsageRow]) {
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
            r.feature,
            rfc3339(r.hour),
            r.peak,
            r.checkouts,
            r.denials,
            r.users.len(),
            r.devices.len()
        );
    }
}
