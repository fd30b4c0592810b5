//! What the tray shows: a [`TrayView`] computed from the agent's status wire document (so the
//! tray of an in-process agent and the tray attached to the system service's agent agree), the
//! menu's [`Action`]s, and opening the dashboard. No GUI toolkit here: [`crate::tray`] draws it.
//!
//! The tray is one more view of the agent's state, like the API and the CLI: it never keeps
//! its own copy of a choice. A change made anywhere reaches it through the agent's notices.

use callhome::alerts::{failure_words, short_code};
use callhome::api::dto::StatusDoc;
use callhome::programs::Program;

/// The state the icon shows at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    Ok,
    Warning,
    Failing,
    Overdue,
}

/// One menu entry's text and whether it can be used now (when not, the text says why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub text: String,
    pub enabled: bool,
}

impl Entry {
    fn on(text: &str) -> Entry {
        Entry { text: text.to_string(), enabled: true }
    }
    fn off(text: &str, why: &str) -> Entry {
        Entry { text: format!("{text} ({why})"), enabled: false }
    }
}

/// A check item for an optional program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramEntry {
    pub program: Program,
    pub entry: Entry,
    pub checked: bool,
}

/// Everything the tray shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayView {
    pub look: Look,
    pub tooltip: String,
    pub status_line: String,
    pub telemetry: Entry,
    pub manual: bool,
    pub programs: Vec<ProgramEntry>,
    pub upload: Entry,
    pub collect: Entry,
    pub preview: Entry,
    pub dashboard: Entry,
    pub export: Entry,
    /// `3 open alerts (1 acknowledged)`; opens the dashboard.
    pub alerts: Entry,
    /// Desktop notifications on: the "Notifications" check item.
    pub notifications: bool,
}

/// The optional programs, in menu order.
pub const OPTIONAL: [Program; 3] = [Program::CallHome, Program::Ceip, Program::Events];

fn days(n: i64) -> String {
    if n == 1 { "1 day".into() } else { format!("{n} days") }
}

impl TrayView {
    /// `api`: whether the API (and so the dashboard) is on. Built from the wire document, so
    /// the in-process tray and `callhome tray` (a client of a running agent) show the same.
    pub fn from_doc(s: &StatusDoc, api: bool) -> TrayView {
        let c = &s.compliance;
        let latest = s.last_result.values().flatten().max_by(|a, b| a.at.cmp(&b.at));
        let failure = latest.filter(|a| short_code(&a.code) != "SUCCESS");
        let clock = if let Some(e) = &c.exemption {
            format!("exempt until {}", e.until)
        } else if c.days_remaining < 0 {
            format!("overdue by {}", days(-c.days_remaining))
        } else {
            format!("{} left", days(c.days_remaining))
        };
        let status_line = match (failure, &c.last_success) {
            (Some(f), _) => {
                format!("Upload failed: {} · {clock}", failure_words(&f.code).to_lowercase())
            }
            (None, Some(_)) if c.days_since_last_upload == 0 => format!("Last upload today · {clock}"),
            (None, Some(_)) => format!("Last upload {} ago · {clock}", days(c.days_since_last_upload)),
            (None, None) => format!("Never uploaded · {clock}"),
        };
        let look = match c.state.as_str() {
            "overdue" => Look::Overdue,
            _ if failure.is_some() => Look::Failing,
            "warning" | "critical" => Look::Warning,
            _ => Look::Ok,
        };
        let open = s.alerts.iter().filter(|a| !a.acknowledged).count();
        let acked = s.alerts.len() - open;
        let count = match (open, acked) {
            (0, 0) => "No open alerts".to_string(),
            (1, 0) => "1 open alert".to_string(),
            (n, 0) => format!("{n} open alerts"),
            (n, a) => format!("{n} open alert{} ({a} acknowledged)", if n == 1 { "" } else { "s" }),
        };
        let tooltip = match (look, &c.exemption) {
            (Look::Ok, Some(e)) => {
                format!("callhome: exempt from license reporting until {} ({}). {status_line}", e.until, e.reason)
            }
            (look, _) => match look {
                Look::Ok => format!("callhome: all is well. {status_line}"),
                Look::Warning => format!("callhome: report license usage soon. {status_line}"),
                Look::Failing => format!("callhome: uploads are failing. {status_line}"),
                Look::Overdue => format!("callhome: license reporting is overdue. {status_line}"),
            },
        };
        let tooltip = if open > 0 { format!("{tooltip} · {count}") } else { tooltip };
        let alerts = match (api, s.alerts.is_empty()) {
            (true, false) => Entry::on(&count),
            (false, false) => Entry::off(&count, "the API is off: api.enabled"),
            (_, true) => Entry { text: count.clone(), enabled: false },
        };
        let doc = |p: Program| s.programs.iter().find(|d| d.name == p.name());
        let manual = doc(Program::Telemetry).is_some_and(|d| d.mode == "manual");
        let programs = OPTIONAL
            .iter()
            .map(|p| {
                let d = doc(*p);
                let checked = d.is_some_and(|d| d.enabled);
                let entry = match d.and_then(|d| d.locked_reason.as_deref()) {
                    Some(why) => Entry::off(p.title(), &format!("required: {why}")),
                    None => Entry::on(p.title()),
                };
                ProgramEntry { program: *p, entry, checked }
            })
            .collect::<Vec<_>>();
        let automatic = !manual || programs.iter().any(|p| p.checked);
        let pending = s.spool.pending > 0;
        let upload =
            if automatic { Entry::on("Upload now") } else { Entry::off("Upload now", "manual reporting: use Export") };
        let preview = match (api, pending) {
            (false, _) => Entry::off("Preview data…", "the API is off: api.enabled"),
            (true, false) => Entry::off("Preview data…", "nothing pending"),
            (true, true) => Entry::on("Preview data…"),
        };
        let dashboard =
            if api { Entry::on("Open dashboard") } else { Entry::off("Open dashboard", "the API is off: api.enabled") };
        let export = if pending {
            Entry::on("Export for manual upload…")
        } else {
            Entry::off("Export for manual upload…", "nothing pending")
        };
        TrayView {
            look,
            tooltip,
            status_line,
            telemetry: Entry::off("License Telemetry", "mandatory"),
            manual,
            programs,
            upload,
            collect: Entry::on("Collect now"),
            preview,
            dashboard,
            export,
            alerts,
            notifications: s.notifications_enabled,
        }
    }
}

impl TrayView {
    /// What `callhome tray` shows while no agent answers: the reason, and every action
    /// disabled with it.
    pub fn unreachable(dir: &callhome::datadir::DataDir, why: &str) -> TrayView {
        let off = |t: &str| Entry::off(t, "the agent is not running");
        TrayView {
            look: Look::Failing,
            tooltip: format!("callhome: the agent on {} does not answer ({why})", dir.root().display()),
            status_line: "The agent is not running: start the callhome service".into(),
            telemetry: Entry::off("License Telemetry", "mandatory"),
            manual: false,
            programs: OPTIONAL
                .iter()
                .map(|p| ProgramEntry { program: *p, entry: off(p.title()), checked: false })
                .collect(),
            upload: off("Upload now"),
            collect: off("Collect now"),
            preview: off("Preview data…"),
            dashboard: off("Open dashboard"),
            export: off("Export for manual upload…"),
            alerts: off("Open alerts"),
            notifications: false,
        }
    }
}

/// What a menu click asks the agent to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Toggle(Program),
    ToggleManual,
    Upload,
    Collect,
    Preview,
    Dashboard,
    Export,
    /// The open-alert count: opens the dashboard's overview.
    Alerts,
    /// Desktop notifications on or off.
    ToggleNotifications,
    Quit,
}

impl Action {
    /// The menu item id.
    pub fn id(self) -> &'static str {
        match self {
            Action::Toggle(Program::CallHome) => "program.call_home",
            Action::Toggle(Program::Ceip) => "program.ceip",
            Action::Toggle(Program::Events) => "program.events",
            Action::Toggle(Program::Telemetry) => "program.telemetry",
            Action::ToggleManual => "telemetry.manual",
            Action::Upload => "upload",
            Action::Collect => "collect",
            Action::Preview => "preview",
            Action::Dashboard => "dashboard",
            Action::Export => "export",
            Action::Alerts => "alerts",
            Action::ToggleNotifications => "notifications",
            Action::Quit => "quit",
        }
    }

    pub fn from_id(id: &str) -> Option<Action> {
        [
            Action::Toggle(Program::CallHome),
            Action::Toggle(Program::Ceip),
            Action::Toggle(Program::Events),
            Action::ToggleManual,
            Action::Upload,
            Action::Collect,
            Action::Preview,
            Action::Dashboard,
            Action::Export,
            Action::Alerts,
            Action::ToggleNotifications,
            Action::Quit,
        ]
        .into_iter()
        .find(|a| a.id() == id)
    }
}

/// Opens the dashboard in the default browser through a one-time sign-in link from the API
/// (`fragment`: the page, such as `#/preview`; the sign-in keeps it). The code goes into a
/// private sign-in page, never onto the browser's command line.
pub async fn open_dashboard(control: &callhome::control::Control, fragment: &str) -> Result<(), String> {
    let link = control.dashboard_link().await.map_err(|e| format!("cannot get a sign-in link: {e}"))?;
    callhome::api::dashboard::open_signin_page(&link, fragment).map_err(|e| format!("cannot start a browser: {e}"))
}

/// Whether this process runs in a desktop session where a tray can live.
pub fn session_present() -> bool {
    if cfg!(any(target_os = "macos", windows)) {
        return true;
    }
    ["DISPLAY", "WAYLAND_DISPLAY"].iter().any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use callhome::agent::{ProductStatus, Status, VersionStatus};
    use callhome::compliance;
    use callhome::config::ComplianceConfig;
    use callhome::datadir::Install;
    use callhome::programs::Consent;
    use callhome::programs::TelemetryMode;
    use callhome::store::Attempt;

    const DAY: i64 = 86_400;

    fn status(day: i64, last_success: Option<i64>, attempts: Vec<(Program, Option<Attempt>)>) -> StatusDoc {
        StatusDoc::from(&raw_status(day, last_success, attempts))
    }

    fn raw_status(day: i64, last_success: Option<i64>, attempts: Vec<(Program, Option<Attempt>)>) -> Status {
        let cfg = ComplianceConfig { max_days: 90, warn_days: vec![30, 14, 7] };
        Status {
            install: Install { install_id: "i".into(), created_at: 0 },
            now: day * DAY,
            compliance: compliance::evaluate(&cfg, last_success, 0, day * DAY),
            consent: Consent { call_home: false, ceip: true, events: false, telemetry_mode: TelemetryMode::Automatic },
            pending: Vec::new(),
            quarantined: 0,
            last_attempts: attempts,
            next_upload: None,
            agent: None,
            max_days: 90,
            spool_max_bytes: 0,
            exports_bytes: 0,
            license_events: Vec::new(),
            locks: vec![(Program::Events, "policy acme".into())],
            version: VersionStatus { running: "0", latest: None, released: None, outdated: false },
            product: ProductStatus {
                name: "License Server".into(),
                version: "0.0.0".into(),
                latest: None,
                released: None,
                outdated: false,
            },
            exemption: None,
            intervals: [std::time::Duration::ZERO; 4],
            alert_channels: Vec::new(),
            grace_periods: Vec::new(),
            alerts: Vec::new(),
            notifications_enabled: true,
        }
    }

    fn attempt(day: i64, code: &str) -> Attempt {
        Attempt {
            at: day * DAY,
            program: Program::Telemetry,
            bundle: None,
            sha256: None,
            code: code.into(),
            message: String::new(),
            http_status: None,
            duration_ms: 0,
        }
    }

    #[test]
    fn the_status_line_says_when_and_how_long_is_left() {
        let v = TrayView::from_doc(
            &status(3, Some(0), vec![(Program::Telemetry, Some(attempt(0, "CTX_UPLOADER_SUCCESS")))]),
            true,
        );
        assert_eq!(v.status_line, "Last upload 3 days ago · 87 days left");
        assert_eq!(v.look, Look::Ok);
        let v = TrayView::from_doc(&status(5, None, vec![]), true);
        assert_eq!(v.status_line, "Never uploaded · 85 days left");
        let v = TrayView::from_doc(
            &status(4, Some(0), vec![(Program::Telemetry, Some(attempt(4, "CTX_UPLOADER_ERROR_PROXY_AUTH")))]),
            true,
        );
        assert_eq!(v.status_line, "Upload failed: the proxy refused the login · 86 days left");
        assert_eq!(v.look, Look::Failing);
        assert!(v.tooltip.contains("uploads are failing"), "{}", v.tooltip);
        let v = TrayView::from_doc(&status(95, Some(0), vec![]), true);
        assert_eq!((v.look, v.status_line.as_str()), (Look::Overdue, "Last upload 95 days ago · overdue by 5 days"));
        assert_eq!(TrayView::from_doc(&status(65, Some(0), vec![]), true).look, Look::Warning);
    }

    #[test]
    fn an_exempt_install_shows_its_exemption_instead_of_the_overdue_clock() {
        let mut s = raw_status(95, Some(0), vec![]);
        s.compliance = s.compliance.exempt();
        // The view reads what the agent checked; the signature is not its business.
        s.exemption = Some(callhome::exemption::Exemption {
            format: callhome::exemption::EXEMPTION_FORMAT.into(),
            exemption_id: "e1".into(),
            install_id: "i".into(),
            until: "2027-03-31".into(),
            reason: "site audit pending".into(),
            granted_at: "2026-11-30T00:00:00Z".into(),
            signature: String::new(),
        });
        let v = TrayView::from_doc(&StatusDoc::from(&s), true);
        assert_eq!((v.look, v.status_line.as_str()), (Look::Ok, "Last upload 95 days ago · exempt until 2027-03-31"));
        assert!(
            v.tooltip.contains("exempt from license reporting until 2027-03-31 (site audit pending)"),
            "{}",
            v.tooltip
        );
    }

    #[test]
    fn items_that_cannot_apply_say_why() {
        let mut s = raw_status(1, None, vec![]);
        let v = TrayView::from_doc(&StatusDoc::from(&s), false);
        assert_eq!(v.dashboard, Entry { text: "Open dashboard (the API is off: api.enabled)".into(), enabled: false });
        assert_eq!(v.export.text, "Export for manual upload… (nothing pending)");
        assert_eq!(v.telemetry.text, "License Telemetry (mandatory)");
        let events = v.programs.iter().find(|p| p.program == Program::Events).unwrap();
        assert_eq!(events.entry.text, "Event data (required: policy acme)");
        assert!(!events.entry.enabled && !events.checked);
        let ceip = v.programs.iter().find(|p| p.program == Program::Ceip).unwrap();
        assert!(ceip.checked && ceip.entry.enabled);
        s.consent = Consent { call_home: false, ceip: false, events: false, telemetry_mode: TelemetryMode::Manual };
        s.locks.clear();
        let v = TrayView::from_doc(&StatusDoc::from(&s), true);
        assert!(v.manual);
        assert_eq!(v.upload.text, "Upload now (manual reporting: use Export)");
        assert!(!v.upload.enabled);
    }

    #[test]
    fn the_menu_counts_open_alerts_and_shows_the_notification_switch() {
        let mut s = status(95, Some(0), vec![]);
        assert_eq!(TrayView::from_doc(&s, true).alerts, Entry { text: "No open alerts".into(), enabled: false });
        let alert = |acknowledged| callhome::api::dto::AlertDoc {
            id: "a".into(),
            kind: "compliance-overdue".into(),
            severity: "critical".into(),
            title: "t".into(),
            text: "x".into(),
            first_seen: "f".into(),
            last_seen: "l".into(),
            acknowledged,
            acked_until: None,
            ack_reason: None,
        };
        s.alerts = vec![alert(false), alert(false), alert(true)];
        s.notifications_enabled = false;
        let v = TrayView::from_doc(&s, true);
        assert_eq!(v.alerts, Entry { text: "2 open alerts (1 acknowledged)".into(), enabled: true });
        assert!(v.tooltip.ends_with("· 2 open alerts (1 acknowledged)"), "{}", v.tooltip);
        assert!(!v.notifications);
    }

    #[test]
    fn every_action_round_trips_through_its_id() {
        for id in [
            "program.call_home",
            "program.ceip",
            "program.events",
            "telemetry.manual",
            "upload",
            "collect",
            "preview",
            "dashboard",
            "export",
            "alerts",
            "notifications",
            "quit",
        ] {
            assert_eq!(Action::from_id(id).map(|a| a.id()), Some(id));
        }
        assert_eq!(Action::from_id("nope"), None);
    }
}
