//! The Prometheus text of `GET /metrics`: the compliance clock, the spool, the last successes,
//! upload attempts by result code, license events and open alerts (acknowledged ones left out),
//! grace periods, from the agent's status and state.

use crate::agent::{Agent, AgentError};
use crate::programs::Program;

/// The Prometheus text of `GET /metrics`.
pub(super) fn text(agent: &Agent) -> Result<String, AgentError> {
    use std::fmt::Write;
    let s = agent.status()?;
    let c = &s.compliance;
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, lines: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, v) in lines {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    gauge(
        "callhome_compliance_days_since_last_upload",
        "Days since the last acknowledged license-telemetry upload.",
        &[(String::new(), c.days_since_last_upload as f64)],
    );
    gauge(
        "callhome_compliance_days_remaining",
        "Days left before the compliance limit.",
        &[(String::new(), c.days_remaining as f64)],
    );
    let states = ["ok", "warning", "critical", "overdue", "exempt"];
    let state_lines: Vec<_> =
        states.iter().map(|st| (format!("{{state=\"{st}\"}}"), f64::from(u8::from(c.state.name() == *st)))).collect();
    gauge("callhome_compliance_state", "The compliance clock's state (1 for the current one).", &state_lines);
    let grace: Vec<_> =
        s.grace_periods.iter().map(|g| (format!("{{feature=\"{}\"}}", g.feature), g.days_left(s.now) as f64)).collect();
    gauge("callhome_grace_period_days_left", "Days left in a feature's supplemental grace period.", &grace);
    gauge(
        "callhome_spool_pending_bundles",
        "Bundles waiting to be uploaded.",
        &[(String::new(), s.pending.len() as f64)],
    );
    gauge(
        "callhome_spool_pending_bytes",
        "Bytes of bundles waiting to be uploaded.",
        &[(String::new(), s.pending.iter().map(|p| p.size).sum::<u64>() as f64)],
    );
    let store = agent.store();
    let mut success = Vec::new();
    for p in Program::ALL {
        if let Ok(Some(t)) = store.last_success(p) {
            success.push((format!("{{program=\"{}\"}}", p.name()), t as f64));
        }
    }
    gauge(
        "callhome_last_success_timestamp_seconds",
        "When a bundle of the program was last acknowledged (Unix time).",
        &success,
    );
    let counts = store.attempt_counts().map_err(AgentError::Store)?;
    drop(store);
    let _ = writeln!(
        out,
        "# HELP callhome_uploads_total Upload attempts by program and result code.\n# TYPE callhome_uploads_total counter"
    );
    for (program, code, n) in counts {
        let _ = writeln!(out, "callhome_uploads_total{{program=\"{program}\",code=\"{code}\"}} {n}");
    }
    // Acknowledged alerts are left out until their date passes or they get worse.
    let acked: std::collections::HashSet<&str> =
        s.alerts.iter().filter(|a| a.acknowledged()).map(|a| a.key.as_str()).collect();
    let _ = writeln!(
        out,
        "# HELP callhome_alerts Open alerts that are not acknowledged, by severity.\n# TYPE callhome_alerts gauge"
    );
    for sev in ["warning", "critical"] {
        let n = s.alerts.iter().filter(|a| !a.acknowledged() && a.severity.name() == sev).count();
        let _ = writeln!(out, "callhome_alerts{{severity=\"{sev}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP callhome_alerts_acknowledged Open alerts an administrator acknowledged.\n# TYPE callhome_alerts_acknowledged gauge\ncallhome_alerts_acknowledged {}",
        acked.len()
    );
    let mut kinds = std::collections::BTreeMap::new();
    for e in s.license_events.iter().filter(|e| !acked.contains(format!("license:{}", e.key).as_str())) {
        *kinds.entry(e.kind.name()).or_insert(0u32) += 1;
    }
    let _ = writeln!(
        out,
        "# HELP callhome_license_events License events as of now, by kind.\n# TYPE callhome_license_events gauge"
    );
    for k in ["expiring", "expired", "renewal_due", "over_quantity"] {
        let _ = writeln!(out, "callhome_license_events{{kind=\"{k}\"}} {}", kinds.get(k).copied().unwrap_or(0));
    }
    Ok(out)
}
