//! A local attacker's view of the agent, against the real binaries: what a child process
//! inherits, who can read the data directory, what another process can see of the dashboard's
//! sign-in, and the API under a flood of idle connections.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;

/// A vendor command that prints its whole environment as JSON.
const DUMP_ENV: &str = "[[collect.commands]]\nname = \"env\"\nenv = [\"VENDOR_HOME\", \"https_proxy\", \"http_proxy\"]\nargv = [\"python3\", \"-c\", \"import json, os; print(json.dumps(dict(os.environ)))\"]\n";

#[test]
fn a_vendor_command_that_dumps_its_environment_finds_no_secret() {
    let s = Setup::new();
    s.configure_offline(DUMP_ENV);
    let creds = s.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    let out = s.cli_env(
        &["collect", "--program", "telemetry"],
        &[
            ("CALLHOME_PROXY_PASSWORD", "proxy-secret-1"),
            ("CALLHOME_ENDPOINT_TOKEN", "endpoint-secret-2"),
            ("CREDENTIALS_DIRECTORY", creds.to_str().unwrap()),
            ("https_proxy", "http://bob:proxy-secret-3@proxy.example:3128"),
            ("http_proxy", "http://proxy.example:3128"),
            ("SOME_OTHER_SECRET", "other-secret-4"),
            ("VENDOR_HOME", "/opt/vendor"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = s.cli(&["preview", "--latest", "--file", "commands/env.json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let env: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let text = serde_json::to_string(&env).unwrap();
    for secret in ["proxy-secret-1", "endpoint-secret-2", "proxy-secret-3", "other-secret-4"] {
        assert!(!text.contains(secret), "{secret} reached the command: {text}");
    }
    assert!(!env.keys().any(|k| k.starts_with("CALLHOME_") || k == "CREDENTIALS_DIRECTORY"), "{text}");
    assert_eq!(env["VENDOR_HOME"], "/opt/vendor", "what the configuration names passes");
    assert_eq!(env["http_proxy"], "http://proxy.example:3128", "a proxy without credentials passes");
    assert!(env.contains_key("PATH"));
}

#[test]
fn a_command_may_not_ask_for_the_agents_own_variables() {
    let s = Setup::new();
    s.configure_offline("[[collect.commands]]\nname = \"x\"\nenv = [\"CALLHOME_PROXY_PASSWORD\"]\nargv = [\"true\"]\n");
    let out = s.cli(&["config", "check"]);
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out) + &stdout(&out);
    assert!(err.contains("collect.commands[0].env") && err.contains("CALLHOME_PROXY_PASSWORD"), "{err}");
}

/// Runs `cmd` under umask 022 (the common default that made the data directory world-readable).
fn with_umask_022(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: umask is async-signal-safe and touches nothing but the child's own mask.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        })
    }
}

/// A one-shot `callhome collect --program PROGRAM` on the setup's data directory, under umask 022.
fn collect_under_umask_022(s: &Setup, program: &str) -> std::process::Output {
    with_umask_022(Command::new(&*AGENT).args(["collect", "--program", program, "--config"]))
        .arg(&s.config)
        .arg("--data-dir")
        .arg(&s.data)
        .output()
        .unwrap()
}

/// Every file and folder under `root` with any permission bit for others (and, when `group` is
/// false, for the group), as "path mode".
fn too_open(root: &std::path::Path, group: bool) -> Vec<String> {
    let mask = if group { 0o007 } else { 0o077 };
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.permissions().mode() & mask != 0 {
            out.push(format!("{} {:o}", p.display(), m.permissions().mode() & 0o777));
        }
        if m.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out
}

#[test]
fn under_umask_022_nothing_in_the_data_directory_is_readable_by_others() {
    let s = Setup::new();
    s.configure_offline("[[collect.commands]]\nname = \"s\"\nargv = [\"echo\", \"{}\"]\n");
    let mut cmd = Command::new(&*AGENT);
    cmd.args(["run", "--headless", "--config"]).arg(&s.config).arg("--data-dir").arg(&s.data);
    let log = std::fs::File::create(s.path().join("agent.log")).unwrap();
    let child = Killed(
        with_umask_022(&mut cmd)
            .env_remove("DO_NOT_TRACK")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let api = AgentApi::wait_for(&s);
    for (path, body) in [
        ("/api/v1/collect", r#"{"program":"telemetry"}"#),
        ("/api/v1/export", "{}"),
        ("/api/v1/support-bundle", r#"{"case":"42"}"#),
    ] {
        let doc = api.job(&api.call("POST", path, Some(body)));
        assert_eq!(doc["ok"], true, "{path}: {doc}");
    }
    // The one-shot CLI under the same umask writes into the directory too.
    let out = collect_under_umask_022(&s, "call_home");
    assert!(out.status.success(), "{}", stderr(&out));
    for must in ["state.sqlite", "logs/agent.log", "exports", "api-token", "install.json"] {
        assert!(s.data.join(must).exists(), "{must} was written");
    }
    assert!(!list(&s.data.join("exports"), ".zip").is_empty(), "an export and a support bundle were written");
    assert_eq!(std::fs::metadata(&s.data).unwrap().permissions().mode() & 0o777, 0o700);
    let open = too_open(&s.data, false);
    drop(child);
    assert!(open.is_empty(), "readable by others: {open:#?}");
}

#[test]
fn a_data_directory_open_to_its_group_keeps_group_modes_and_nothing_for_others() {
    let s = Setup::new();
    s.configure_offline("");
    std::fs::create_dir(&s.data).unwrap();
    std::fs::set_permissions(&s.data, std::fs::Permissions::from_mode(0o750)).unwrap();
    let out = collect_under_umask_022(&s, "telemetry");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(&s.data).unwrap().permissions().mode() & 0o777, 0o750);
    let db = std::fs::metadata(s.data.join("state.sqlite")).unwrap().permissions().mode() & 0o777;
    assert_eq!(db, 0o640, "the group reads, as the token files let it");
    let open = too_open(&s.data, true);
    assert!(open.is_empty(), "readable by others: {open:#?}");
}

#[test]
fn an_old_world_readable_data_directory_is_closed_at_start() {
    let s = Setup::new();
    s.configure_offline("");
    std::fs::create_dir(&s.data).unwrap();
    std::fs::set_permissions(&s.data, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(s.cli(&["collect", "--program", "telemetry"]).status.success());
    assert_eq!(std::fs::metadata(&s.data).unwrap().permissions().mode() & 0o777, 0o700);
}

#[test]
fn the_receivers_store_is_closed_to_others_under_umask_022() {
    let s = Setup::new();
    // The receiver started by the harness inherits this test's umask: make it the loose one.
    // SAFETY: umask only sets this process's file-creation mask.
    let old = unsafe { libc::umask(0o022) };
    let r = Receiver::start(s.path(), &[]);
    unsafe { libc::umask(old) };
    s.configure_for(&r, "");
    let out = s.cli(&["upload", "--program", "telemetry"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(r.bundles().len(), 1);
    assert_eq!(std::fs::metadata(&r.store).unwrap().permissions().mode() & 0o777, 0o700);
    // Every file at any depth (bundles/YYYY/MM/DD/<install>/, receipts/), and every folder.
    let open: Vec<String> = files_under(&r.store)
        .into_iter()
        .filter(|p| std::fs::metadata(p).unwrap().permissions().mode() & 0o077 != 0)
        .map(|p| p.display().to_string())
        .collect();
    assert!(open.is_empty(), "readable by others: {open:?}");
    let bundle = files_under(&r.store.join("bundles")).pop().unwrap();
    for dir in bundle.ancestors().skip(1).take_while(|d| d.starts_with(&r.store)) {
        assert_eq!(std::fs::metadata(dir).unwrap().permissions().mode() & 0o777, 0o700, "{}", dir.display());
    }
}

/// Every command line and environment of every process readable in /proc, read over and over
/// on a thread until `stop` is set.
fn scan_proc(stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<(usize, Vec<Vec<u8>>)> {
    std::thread::spawn(move || {
        let mut seen = std::collections::HashSet::new();
        let mut rounds = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            rounds += 1;
            for e in std::fs::read_dir("/proc").unwrap().flatten() {
                if e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                    for what in ["cmdline", "environ"] {
                        if let Ok(b) = std::fs::read(e.path().join(what)) {
                            seen.insert(b);
                        }
                    }
                }
            }
        }
        (rounds, seen.into_iter().collect())
    })
}

#[test]
fn a_process_scanning_proc_during_callhome_dashboard_never_sees_the_code() {
    let s = Setup::new();
    s.configure_offline("");
    let agent = s.start_agent();
    let api = AgentApi::wait_for(&s);
    let runtime = s.path().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    // The browser: alive long enough to be scanned, and it records what it was given.
    let opened = s.path().join("opened.txt");
    let browser = s.path().join("browser.sh");
    std::fs::write(
        &browser,
        format!("#!/bin/sh\nprintf '%s' \"$1\" > {0}.tmp && mv {0}.tmp {0}\nsleep 1\n", opened.display()),
    )
    .unwrap();
    std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scanner = scan_proc(stop.clone());
    let out = s.cli_env(
        &["dashboard"],
        &[("BROWSER", browser.to_str().unwrap()), ("XDG_RUNTIME_DIR", runtime.to_str().unwrap())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    wait_until(std::time::Duration::from_secs(10), "the browser to be started", || opened.exists());
    // Let the browser run out its life under the scanner's eyes.
    let page_url = std::fs::read_to_string(&opened).unwrap();
    wait_until(std::time::Duration::from_secs(10), "the browser to exit", || {
        !std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(&page_url))
        })
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (rounds, seen) = scanner.join().unwrap();
    let page = page_url.strip_prefix("file://").expect("a file is opened");
    let html = std::fs::read_to_string(page).unwrap();
    let needle = "name=\"code\" value=\"";
    let at = html.find(needle).expect("the page holds the code") + needle.len();
    let code = &html[at..at + 64];
    assert!(
        rounds > 1 && seen.iter().any(|b| String::from_utf8_lossy(b).contains(&page_url)),
        "the scanner saw the browser"
    );
    let leaks = seen.iter().filter(|b| String::from_utf8_lossy(b).contains(code)).count();
    assert_eq!(leaks, 0, "the code was in a command line or environment");
    // And the code is still unused: nobody redeemed it before the browser.
    let host = api.host();
    let form = format!("code={code}");
    let h = [("Host", host.as_str()), ("Origin", "null"), ("Content-Type", "application/x-www-form-urlencoded")];
    assert_eq!(api.raw("POST", "/login", &h, form.as_bytes()).status, 200);
    drop(agent);
}

/// A child process killed (and reaped) when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Raises this test process's soft open-file limit to its hard limit; returns the new limit.
fn raise_own_descriptor_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain get/set of this process's limits.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    lim.rlim_cur
}

#[test]
fn three_thousand_idle_connections_at_1024_descriptors_starve_nothing_and_are_closed_in_time() {
    use std::io::Read;
    use std::net::TcpStream;
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};

    const HEADER_TIMEOUT: Duration = Duration::from_secs(3);
    const FLOOD: usize = 3000;
    assert!(raise_own_descriptor_limit() > FLOOD as u64 + 100, "this test needs more than {FLOOD} descriptors");
    let s = Setup::new();
    // The first upload cycle (collect, then a failed upload to port 9) falls in the flood.
    s.configure_offline("first_upload_delay = \"4s\"\nretry_base = \"1h\"\n[api]\nheader_timeout = \"3s\"\n");
    let log_path = s.path().join("agent-stderr.log");
    let mut cmd = Command::new(&*AGENT);
    cmd.args(["run", "--headless", "--config"]).arg(&s.config).arg("--data-dir").arg(&s.data);
    cmd.env_remove("DO_NOT_TRACK").env("CALLHOME_LOG", "info").stderr(std::fs::File::create(&log_path).unwrap());
    // The service's default: 1,024 descriptors, soft and hard (so the agent cannot raise it).
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: 1024, rlim_max: 1024 };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = Killed(cmd.stdout(std::process::Stdio::null()).spawn().unwrap());
    let api = AgentApi::wait_for(&s);
    assert_eq!(api.get("/api/v1/status").status, 200);

    // 3,000 connections at once, from a few threads, then left idle.
    let started = Instant::now();
    let port = api.port;
    let openers: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                (0..FLOOD / 8)
                    .map(|_| {
                        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(10))
                            .expect("the kernel takes the connection")
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut conns: Vec<TcpStream> = openers.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert_eq!(conns.len(), FLOOD);
    let opened = started.elapsed();

    // The scheduler works meanwhile: its first upload cycle collects a bundle and records the
    // failed attempt in the result file.
    let result = s.data.join("cache").join("upload_compliance_result.xml");
    wait_until(Duration::from_secs(20), "the scheduler's upload cycle during the flood", || result.exists());
    assert_eq!(s.spool("compliance").len(), 1, "the cycle collected a bundle");

    // Every idle connection is closed within the header timeout (from when the last opened).
    let deadline = started + opened + HEADER_TIMEOUT + Duration::from_secs(1);
    let mut open_late = 0;
    for c in &mut conns {
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        c.set_read_timeout(Some(left)).unwrap();
        let mut b = [0u8; 64];
        match c.read(&mut b) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(_) => open_late += 1,
        }
    }
    assert_eq!(open_late, 0, "connections still open after the header timeout");
    drop(conns);

    // And the API answers within a second once they are gone, with the snapshot refreshed.
    let t = Instant::now();
    let status = api.get("/api/v1/status");
    assert_eq!(status.status, 200);
    assert!(t.elapsed() < Duration::from_secs(1), "GET /status took {:?}", t.elapsed());
    let doc = status.json();
    assert_eq!(doc["spool"]["pending"], s.all_pending(), "the snapshot followed the scheduler: {doc}");
    assert!(!doc["last_result"]["compliance"].is_null(), "the snapshot has the attempt: {doc}");

    drop(child);
    let log = std::fs::read_to_string(&log_path).unwrap()
        + &std::fs::read_to_string(s.data.join("logs/agent.log")).unwrap_or_default();
    assert!(!log.contains("Too many open files") && !log.contains("os error 24"), "{log}");
}
