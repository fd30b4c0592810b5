//! The desktop against the real desktop services: the tray's StatusNotifierItem and its menu read
//! and clicked over D-Bus, notifications received by a notification server on the bus, the proxy
//! password in a real gnome-keyring-daemon, uploads through a real authenticating tinyproxy.
//!
//! Each test runs its own D-Bus session daemon (so tests never see each other's tray items,
//! notifications or keyrings); the tray needs an X display, which `scripts/test` provides by
//! running the tests under `xvfb-run -a dbus-run-session`. The D-Bus side is driven by
//! tests/dbus_tool.py (python3-dbus, from scripts/deps).

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const TOOL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dbus_tool.py");
const PYTHON: &str = "/usr/bin/python3";
const SECRET: &str = "s3cret-proxy-pass";

/// A private D-Bus session daemon (killed on drop).
struct Bus {
    child: Child,
    address: String,
}

impl Bus {
    fn start() -> Bus {
        let mut child = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon runs (scripts/deps installs dbus)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with("unix:"), "dbus-daemon printed {line:?}");
        Bus { child, address: line.trim().to_string() }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![("DBUS_SESSION_BUS_ADDRESS", self.address.clone())]
    }

    fn tool(&self, args: &[&str]) -> Output {
        Command::new(PYTHON)
            .arg(TOOL)
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .expect("python3 runs (scripts/deps installs python3-dbus)")
    }

    fn names(&self) -> Vec<String> {
        stdout(&self.tool(&["names"])).lines().map(str::to_string).collect()
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn display_present() {
    assert!(
        std::env::var_os("DISPLAY").is_some(),
        "the desktop tests need an X display: run them under `xvfb-run -a dbus-run-session` (scripts/test does)"
    );
}

#[derive(Debug, Clone, serde::Deserialize)]
struct Item {
    id: i64,
    label: String,
    enabled: bool,
    toggle: String,
    checked: bool,
}

fn menu(bus: &Bus, name: &str) -> Vec<Item> {
    let out = bus.tool(&["menu", name]);
    assert!(out.status.success(), "reading the menu: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn find<'a>(items: &'a [Item], label: &str) -> &'a Item {
    items.iter().find(|i| i.label == label).unwrap_or_else(|| panic!("no menu item {label:?} in {items:#?}"))
}

/// Clicks the item labelled `label`, by the id the menu has now.
fn click(bus: &Bus, name: &str, label: &str) {
    let id = find(&menu(bus, name), label).id.to_string();
    let out = bus.tool(&["click", name, &id, if label == "Quit" { "--may-exit" } else { "" }]);
    assert!(out.status.success(), "clicking {label}: {}", stderr(&out));
}

fn ceip_via_cli(s: &Setup) -> bool {
    let out = s.cli(&["programs", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().unwrap().iter().find(|p| p["name"] == "ceip").unwrap()["enabled"].as_bool().unwrap()
}

#[test]
fn the_tray_menu_and_the_api_show_one_state() {
    display_present();
    let s = Setup::new();
    let r = Receiver::start(s.path(), &[]);
    s.configure_for(&r, "");
    let bus = Bus::start();
    let env = bus.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let agent = s.start_program(&TRAY, &[], &env);
    let name = format!("org.kde.StatusNotifierItem-{}-1", agent.pid());
    wait_until(Duration::from_secs(20), "the tray item on the session bus", || bus.names().contains(&name));
    AgentApi::wait_for(&s);
    wait_until(Duration::from_secs(10), "the menu to show the status", || {
        menu(&bus, &name).first().is_some_and(|i| i.label.contains("days left"))
    });

    let items = menu(&bus, &name);
    let status = &items[0];
    assert!(!status.enabled, "the status line is not clickable");
    assert!(status.label.starts_with("Never uploaded · ") && status.label.ends_with(" days left"), "{}", status.label);
    let telemetry = find(&items, "License Telemetry (mandatory)");
    assert!(!telemetry.enabled);
    let manual = find(&items, "Manual reporting");
    assert_eq!((manual.toggle.as_str(), manual.checked, manual.enabled), ("checkmark", false, true));
    let programs: serde_json::Value = serde_json::from_slice(&s.cli(&["programs", "list", "--json"]).stdout).unwrap();
    for (label, name) in [("Call Home", "call_home"), ("CEIP", "ceip"), ("Event data", "events")] {
        let item = find(&items, label);
        let api = programs.as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()["enabled"].as_bool();
        assert_eq!(item.toggle, "checkmark", "{label}");
        assert_eq!(Some(item.checked), api, "{label}: the menu and the API agree");
    }
    for action in ["Upload now", "Collect now", "Open dashboard", "Quit"] {
        assert!(find(&items, action).enabled, "{action}");
    }
    // Nothing is pending on a fresh agent but the first optional bundles; either way the item
    // is there, and when it cannot apply its text says why.
    for action in ["Preview data…", "Export for manual upload…"] {
        let i = items.iter().find(|i| i.label.starts_with(action)).unwrap_or_else(|| panic!("{action}"));
        assert!(i.enabled || i.label.contains("(nothing pending)"), "{i:?}");
    }

    // The item's icon and tooltip.
    let out = bus.tool(&["item", &name]);
    assert!(out.status.success(), "reading the item: {}", stderr(&out));
    let item: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(item["icon_sizes"], serde_json::json!([[32, 32]]));
    assert!(item["tooltip"].as_str().unwrap().starts_with("callhome: all is well."), "{item}");

    // CEIP clicked in the menu: the API reports it.
    let before = ceip_via_cli(&s);
    click(&bus, &name, "CEIP");
    wait_until(Duration::from_secs(10), "the API to report the click", || ceip_via_cli(&s) != before);

    // CEIP changed through the API: the menu shows it.
    let out = s.cli(&["programs", if before { "enable" } else { "disable" }, "ceip"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let t = Instant::now();
    wait_until(Duration::from_secs(10), "the menu to follow the API", || {
        find(&menu(&bus, &name), "CEIP").checked == before
    });
    eprintln!("the menu followed the API in {:?}", t.elapsed());

    // Quit from the menu: a clean exit, the API's address file removed.
    click(&bus, &name, "Quit");
    let mut agent = agent;
    let status = agent.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!s.data.join("api.json").exists(), "api.json is removed at exit");
    let log = std::fs::read_to_string(s.data.join("logs").join("agent.log")).unwrap();
    assert!(log.contains("tray icon ready"), "{log}");
}

#[test]
fn the_notifications_item_toggles_desktop_notifications_and_the_menu_counts_open_alerts() {
    display_present();
    let s = Setup::new();
    std::fs::write(s.path().join("old.lic"), "FEATURE old_tool acme 1.0 1-jan-2020 2 SIGN=\"AB12\"\n").unwrap();
    s.configure_offline("first_upload_delay = \"1h\"\n[licenses]\nfiles = [\"old.lic\"]\n");
    let bus = Bus::start();
    let env = bus.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let agent = s.start_program(&TRAY, &[], &env);
    let name = format!("org.kde.StatusNotifierItem-{}-1", agent.pid());
    wait_until(Duration::from_secs(20), "the tray item on the session bus", || bus.names().contains(&name));
    let api = AgentApi::wait_for(&s);
    wait_until(Duration::from_secs(10), "the menu to count the expired license's alert", || {
        menu(&bus, &name).iter().any(|i| i.label == "1 open alert" && i.enabled)
    });
    let item = find(&menu(&bus, &name), "Notifications").clone();
    assert_eq!((item.toggle.as_str(), item.checked, item.enabled), ("checkmark", true, true));
    let enabled = || api.get("/api/v1/notifications").json()["enabled"].as_bool().unwrap();
    assert!(enabled());

    // Clicked in the menu: the API says notifications are off, and the item is unchecked.
    click(&bus, &name, "Notifications");
    wait_until(Duration::from_secs(10), "the API to report the click", || !enabled());
    wait_until(Duration::from_secs(10), "the item to follow", || !find(&menu(&bus, &name), "Notifications").checked);
    click(&bus, &name, "Notifications");
    wait_until(Duration::from_secs(10), "notifications on again", enabled);

    // Changed through the API (the dashboard's switch): the menu follows.
    let r = api.call("PUT", "/api/v1/notifications", Some("{\"enabled\": false}"));
    assert_eq!(r.status, 200, "{}", r.text());
    wait_until(Duration::from_secs(10), "the item to follow the API", || {
        !find(&menu(&bus, &name), "Notifications").checked
    });

    // Acknowledged with the CLI: the count says so.
    let id = api.get("/api/v1/alerts").json()[0]["id"].as_str().unwrap().to_string();
    assert!(s.cli(&["alerts", "ack", &id]).status.success());
    wait_until(Duration::from_secs(10), "the count to follow the acknowledgement", || {
        menu(&bus, &name).iter().any(|i| i.label == "0 open alerts (1 acknowledged)")
    });
    assert!(agent.terminate().success());
}

#[test]
fn the_agent_never_shows_a_tray_and_the_tray_needs_a_display() {
    display_present();
    let s = Setup::new();
    let r = Receiver::start(s.path(), &[]);
    s.configure_for(&r, "");
    let bus = Bus::start();
    let addr = bus.address.clone();
    // `callhome run` in a desktop session: a display is there, and still no tray (the server
    // binary links no GUI library).
    let agent = s.start_agent_with(&[], &[("DBUS_SESSION_BUS_ADDRESS", &addr)]);
    AgentApi::wait_for(&s);
    assert!(!bus.names().iter().any(|n| n.starts_with("org.kde.StatusNotifierItem")), "{:?}", bus.names());
    assert!(agent.terminate().success());
    // The tray without a display refuses, saying what to run instead, and takes nothing.
    let out = Command::new(&*TRAY)
        .args(["--data-dir"])
        .arg(s.path().join("tray-data"))
        .env("DISPLAY", "")
        .env("WAYLAND_DISPLAY", "")
        .env("DBUS_SESSION_BUS_ADDRESS", &addr)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no desktop session (neither DISPLAY nor WAYLAND_DISPLAY is set)"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("`callhome run`"), "{}", stderr(&out));
    assert!(!s.path().join("tray-data").exists(), "nothing created");
}

/// A stand-in notification server on `bus` that records each call (killed on drop).
struct Notifyd {
    child: Child,
    log: PathBuf,
}

impl Notifyd {
    fn start(bus: &Bus, dir: &Path) -> Notifyd {
        let log = dir.join("notifications.jsonl");
        let mut child = Command::new(PYTHON)
            .arg(TOOL)
            .arg("notifyd")
            .arg(&log)
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        Notifyd { child, log }
    }

    fn calls(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Notifyd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_failed_upload_notifies_once_inside_the_quiet_period_and_recovery_is_told() {
    display_present();
    let s = Setup::new();
    // The receiver answers 503 twice, then accepts.
    let r = Receiver::start(s.path(), &["status=503,times=2"]);
    s.configure_for(&r, "first_upload_delay = \"1h\"\n[notifications]\nquiet_period = \"1h\"\n");
    let bus = Bus::start();
    let notifyd = Notifyd::start(&bus, s.path());
    let addr = bus.address.clone();
    let agent = s.start_program(&TRAY, &[], &[("DBUS_SESSION_BUS_ADDRESS", &addr)]);
    AgentApi::wait_for(&s);

    for _ in 0..2 {
        let out = s.cli(&["upload", "--program", "telemetry"]);
        assert_eq!(out.status.code(), Some(4), "{}{}", stdout(&out), stderr(&out));
    }
    let out = s.cli(&["upload", "--program", "telemetry"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    // The notifier handles the agent's notices in order: once "uploads work again" is in, both
    // failures were decided on.
    wait_until(Duration::from_secs(10), "the recovery notification", || {
        notifyd.calls().iter().any(|c| c["summary"] == "Uploads work again")
    });
    let calls = notifyd.calls();
    let summaries: Vec<&str> = calls.iter().map(|c| c["summary"].as_str().unwrap()).collect();
    assert_eq!(
        summaries,
        ["Upload failed: the receiver answered with an error", "Uploads work again"],
        "one failure notification, not two: {calls:#?}"
    );
    let failed = &calls[0];
    assert_eq!(failed["app"], "callhome");
    let body = failed["body"].as_str().unwrap();
    assert!(body.starts_with("License Telemetry could not be sent: "), "{body}");
    assert!(body.contains("503") && body.contains("Nothing is lost"), "{body}");
    assert!(failed["actions"].as_array().unwrap().iter().any(|a| a == "default"), "a click opens the dashboard");
    assert!(agent.terminate().success());
}

#[test]
fn notifications_off_means_none_are_sent() {
    display_present();
    let s = Setup::new();
    let r = Receiver::start(s.path(), &["status=503"]);
    s.configure_for(&r, "first_upload_delay = \"1h\"\n[notifications]\nenabled = false\n");
    let bus = Bus::start();
    let notifyd = Notifyd::start(&bus, s.path());
    let addr = bus.address.clone();
    let agent = s.start_program(&TRAY, &[], &[("DBUS_SESSION_BUS_ADDRESS", &addr)]);
    AgentApi::wait_for(&s);
    let out = s.cli(&["upload", "--program", "telemetry"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(agent.terminate().success());
    // The agent has exited: anything it would have sent was sent by now.
    assert!(notifyd.calls().is_empty(), "{:?}", notifyd.calls());
    let log = std::fs::read_to_string(s.data.join("logs").join("agent.log")).unwrap();
    assert!(log.contains("notifications are off (notifications.enabled = false)"), "{log}");
}

#[test]
fn the_headless_agent_writes_its_alerts_to_the_log_and_sends_no_desktop_notification() {
    let s = Setup::new();
    let r = Receiver::start(s.path(), &["status=503"]);
    s.configure_for(&r, "first_upload_delay = \"1h\"\n");
    let bus = Bus::start();
    let notifyd = Notifyd::start(&bus, s.path());
    let addr = bus.address.clone();
    let agent = s.start_agent_with(&[], &[("DBUS_SESSION_BUS_ADDRESS", &addr)]);
    AgentApi::wait_for(&s);
    let out = s.cli(&["upload", "--program", "telemetry"]);
    assert_eq!(out.status.code(), Some(4), "{}{}", stdout(&out), stderr(&out));
    let log_path = s.data.join("logs").join("agent.log");
    wait_until(Duration::from_secs(10), "the alert in the agent's log", || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .contains("Upload failed: the receiver answered with an error")
    });
    assert!(agent.terminate().success());
    assert!(notifyd.calls().is_empty(), "the server binary shows no desktop notification: {:?}", notifyd.calls());
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("License Telemetry could not be sent: ") && log.contains("Nothing is lost"), "{log}");
}

/// A gnome-keyring-daemon on `bus`, unlocked, with its files under `home`.
fn start_keyring(bus: &Bus, home: &Path) {
    std::fs::create_dir_all(home).unwrap();
    let mut child = Command::new("gnome-keyring-daemon")
        .args(["--components=secrets", "--daemonize", "--unlock"])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("gnome-keyring-daemon runs (scripts/deps installs gnome-keyring)");
    child.stdin.take().unwrap().write_all(b"keyring-test-unlock").unwrap();
    assert!(child.wait().unwrap().success());
    wait_until(Duration::from_secs(10), "the Secret Service on the bus", || {
        bus.names().iter().any(|n| n == "org.freedesktop.secrets")
    });
}

fn secret_tool_lookup(bus: &Bus, home: &Path) -> Option<String> {
    let out = Command::new("secret-tool")
        .args(["lookup", "service", "callhome", "username", "proxy-password"])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .env("HOME", home)
        .output()
        .expect("secret-tool runs (scripts/deps installs libsecret-tools)");
    out.status.success().then(|| stdout(&out))
}

fn cli_in(s: &Setup, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(&*AGENT);
    cmd.args(args).arg("--config").arg(&s.config).arg("--data-dir").arg(&s.data).envs(env.iter().copied());
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

#[test]
fn the_proxy_password_lives_in_the_keyring_and_uploads_go_through_the_proxy() {
    let s = Setup::new();
    let r = Receiver::start(s.path(), &[]);
    let proxy = Proxy::start(s.path(), "agent", SECRET);
    s.configure_for(&r, "first_upload_delay = \"1h\"\n");
    let bus = Bus::start();
    let home = s.path().join("home");
    start_keyring(&bus, &home);
    let home_s = home.display().to_string();
    let env = [("DBUS_SESSION_BUS_ADDRESS", bus.address.as_str()), ("HOME", home_s.as_str())];
    let url = format!("http://127.0.0.1:{}", proxy.port);

    // With no agent running: the CLI stores it itself.
    let out = cli_in(
        &s,
        &["proxy", "set", "--url", &url, "--username", "agent", "--password-stdin"],
        &env,
        Some(&format!("{SECRET}\n")),
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("the password is in the OS keyring"), "{}", stdout(&out));
    assert_eq!(secret_tool_lookup(&bus, &home).as_deref(), Some(SECRET), "the Secret Service holds it");

    // The upload goes through the authenticating proxy with it.
    let out = cli_in(&s, &["upload", "--program", "telemetry"], &env, None);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(r.bundles().len(), 1);
    assert!(proxy.log().contains("CONNECT"), "{}", proxy.log());

    // Through the running agent's API: the agent's process stores it; GET never returns it.
    let agent = s.start_agent_with(&["--headless"], &env);
    AgentApi::wait_for(&s);
    let out = cli_in(
        &s,
        &["proxy", "set", "--url", &url, "--username", "agent", "--password-stdin"],
        &env,
        Some("wrong-pass\n"),
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(!stderr(&out).contains("no agent runs"), "the CLI went through the agent: {}", stderr(&out));
    assert_eq!(secret_tool_lookup(&bus, &home).as_deref(), Some("wrong-pass"));
    let out = cli_in(&s, &["proxy", "show", "--json"], &env, None);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["password_source"], "keyring");
    assert_eq!(shown["url"], url.as_str());
    assert!(!stdout(&out).contains("wrong-pass"));

    // A refused proxy login has its own result code.
    let out = cli_in(&s, &["upload", "--program", "telemetry"], &env, None);
    assert_eq!(out.status.code(), Some(4), "{}{}", stdout(&out), stderr(&out));
    let history = s.history();
    assert_eq!(history[0]["code"], "CTX_UPLOADER_ERROR_PROXY_AUTH", "{:#?}", history[0]);
    assert!(s.result_file("compliance").contains("CTX_UPLOADER_ERROR_PROXY_AUTH"));
    assert!(agent.terminate().success());

    // Neither password is anywhere under the data directory, logs included.
    for secret in [SECRET, "wrong-pass"] {
        let found = files_containing(&s.data, secret);
        assert!(found.is_empty(), "{secret} found in {found:?}");
    }

    // Cleared: gone from the keyring.
    let out = cli_in(&s, &["proxy", "clear"], &env, None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(secret_tool_lookup(&bus, &home), None);
}

#[test]
fn without_a_keyring_the_error_names_the_alternatives_and_they_work() {
    let s = Setup::new();
    let r = Receiver::start(s.path(), &[]);
    let proxy = Proxy::start(s.path(), "agent", SECRET);
    s.configure_for(&r, "first_upload_delay = \"1h\"\n");
    let url = format!("http://127.0.0.1:{}", proxy.port);
    let nobus = [("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")];
    let out = cli_in(
        &s,
        &["proxy", "set", "--url", &url, "--username", "agent", "--password-stdin"],
        &nobus,
        Some(&format!("{SECRET}\n")),
    );
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("no keyring service is available"), "{err}");
    assert!(err.contains("CALLHOME_PROXY_PASSWORD") && err.contains("$CREDENTIALS_DIRECTORY"), "{err}");
    assert!(files_containing(&s.data, SECRET).is_empty(), "nothing was written in its place");

    // The proxy itself can still be chosen without a password, and the systemd credential gives it.
    let out = cli_in(&s, &["proxy", "set", "--url", &url, "--username", "agent"], &nobus, None);
    assert_eq!(out.status.code(), Some(2), "no terminal to ask on: {}", stderr(&out));
    assert!(stderr(&out).contains("--password-stdin"), "{}", stderr(&out));
    let creds = s.path().join("credentials");
    std::fs::create_dir_all(&creds).unwrap();
    std::fs::write(creds.join("proxy-password"), format!("{SECRET}\n")).unwrap();
    let creds_s = creds.display().to_string();
    s.configure_for(&r, &format!("first_upload_delay = \"1h\"\nproxy = \"{url}\"\nproxy_user = \"agent\"\n"));
    let env = [nobus[0], ("CREDENTIALS_DIRECTORY", creds_s.as_str())];
    let out = cli_in(&s, &["proxy", "show", "--json"], &env, None);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (shown["password_source"].as_str(), shown["origin"].as_str()),
        (Some("systemd-credential"), Some("config"))
    );
    let out = cli_in(&s, &["upload", "--program", "telemetry"], &env, None);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(r.bundles().len(), 1);
    assert!(files_containing(&s.data, SECRET).is_empty());
}

#[test]
fn callhome_tray_attach_is_a_view_of_an_agent_running_elsewhere() {
    display_present();
    let s = Setup::new();
    let r = Receiver::start(s.path(), &[]);
    s.configure_for(&r, "first_upload_delay = \"1h\"\n");
    let bus = Bus::start();
    let addr = bus.address.clone();
    // The tray first: no agent answers yet, and the menu says so.
    let mut tray = Command::new(&*TRAY)
        .args(["--attach", "--data-dir"])
        .arg(&s.data)
        .env("DBUS_SESSION_BUS_ADDRESS", &addr)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let name = format!("org.kde.StatusNotifierItem-{}-1", tray.id());
    wait_until(Duration::from_secs(20), "the tray item on the session bus", || bus.names().contains(&name));
    wait_until(Duration::from_secs(10), "the menu to say no agent runs", || {
        menu(&bus, &name).first().is_some_and(|i| i.label == "The agent is not running: start the callhome service")
    });
    assert!(!find(&menu(&bus, &name), "Upload now (the agent is not running)").enabled);

    // The agent starts (headless, as a service would, on a data directory open to its group
    // as systemd's StateDirectoryMode=0750 makes it): the tray finds it.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&s.data).unwrap();
        std::fs::set_permissions(&s.data, std::fs::Permissions::from_mode(0o750)).unwrap();
    }
    let agent = s.start_agent_with(&["--headless"], &[("DBUS_SESSION_BUS_ADDRESS", &addr)]);
    wait_until(Duration::from_secs(30), "the tray to reach the agent", || {
        menu(&bus, &name).first().is_some_and(|i| i.label.starts_with("Never uploaded · "))
    });
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["api-token", "api-token-read"] {
            let mode = std::fs::metadata(s.data.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o640, "{f}: readable by the group that may use the tray");
        }
    }
    let before = ceip_via_cli(&s);
    click(&bus, &name, "CEIP");
    wait_until(Duration::from_secs(10), "the agent to take the click", || ceip_via_cli(&s) != before);
    let out = s.cli(&["programs", if before { "enable" } else { "disable" }, "ceip"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_until(Duration::from_secs(10), "the menu to follow the agent", || {
        find(&menu(&bus, &name), "CEIP").checked == before
    });

    // Quitting the tray leaves the agent running.
    click(&bus, &name, "Quit");
    assert!(tray.wait().unwrap().success());
    assert!(s.data.join("api.json").exists());
    assert!(agent.terminate().success());
}
