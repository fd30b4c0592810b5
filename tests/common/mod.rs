//! Helpers for tests that drive the real binaries: the reference receiver over real TLS, the
//! agent, and the CLI. Every wait is a condition with a deadline, never a bare sleep.
//! `agent_api` talks to a running agent's API (port, tokens, calls, jobs), `http` is the raw
//! HTTP under it, `files` reads folders and zips back.

#![allow(dead_code)]

pub mod agent_api;
pub mod files;
pub mod http;

#[allow(unused_imports)] // not every test binary runs an agent with its API
pub use agent_api::{AgentApi, RunningAgent};
pub use files::*;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// The headless agent and CLI (`callhome`).
pub static AGENT: LazyLock<PathBuf> = LazyLock::new(|| workspace_bin("callhome"));
/// The reference receiver (`callhome-receiver`).
pub static RECEIVER: LazyLock<PathBuf> = LazyLock::new(|| workspace_bin("callhome-receiver"));
/// The tray (`callhome-tray`).
pub static TRAY: LazyLock<PathBuf> = LazyLock::new(|| workspace_bin("callhome-tray"));

/// A binary of this workspace, built beside the running test (`target/<profile>/`): the tests of
/// every package drive the real binaries of the others, which `cargo build --workspace --bins`
/// builds (scripts/test runs it before the tests).
pub fn workspace_bin(name: &str) -> PathBuf {
    let test = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test>-<hash>
    let dir = test.parent().and_then(Path::parent).expect("the test binary sits in target/<profile>/deps");
    let bin = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: build the workspace's binaries first (`cargo build --workspace --bins`, as scripts/test does)",
        bin.display()
    );
    bin
}

/// Polls `cond` until it holds or `within` passes; panics with `what` on timeout.
pub fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < end, "timed out after {within:?} waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running reference receiver (killed on drop).
pub struct Receiver {
    child: Child,
    pub url: String,
    pub store: PathBuf,
    pub ca: PathBuf,
    pub public_key: PathBuf,
}

impl Receiver {
    /// Starts a receiver with a self-signed CA in `dir`; `faults` are `--fault` specs.
    pub fn start(dir: &Path, faults: &[&str]) -> Receiver {
        Self::start_on(dir, "127.0.0.1:0", faults)
    }

    pub fn start_on(dir: &Path, listen: &str, faults: &[&str]) -> Receiver {
        Self::start_with(dir, listen, faults, &[])
    }

    /// Like [`Receiver::start_on`], with more `serve` options. The agent's tests run the
    /// receiver under open enrolment (no endpoint token needed; the receiver's own tests cover
    /// enrolment).
    pub fn start_with(dir: &Path, listen: &str, faults: &[&str], extra: &[&str]) -> Receiver {
        Self::spawn(dir, listen, faults, &[&["--open-enrolment"], extra].concat())
    }

    /// A receiver that takes bundles only from installs enrolled with its tokens
    /// ([`Receiver::token`]).
    pub fn start_enrolling(dir: &Path) -> Receiver {
        Self::spawn(dir, "127.0.0.1:0", &[], &[])
    }

    /// `callhome-receiver tokens create --customer CUSTOMER` against this receiver's store.
    pub fn token(&self, customer: &str) -> String {
        let out = Command::new(&*RECEIVER)
            .args(["tokens", "create", "--customer", customer, "--store"])
            .arg(&self.store)
            .output()
            .expect("the receiver's CLI runs");
        assert!(out.status.success(), "tokens create: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn spawn(dir: &Path, listen: &str, faults: &[&str], extra: &[&str]) -> Receiver {
        let store = dir.join("receiver-store");
        let ca = dir.join("ca.pem");
        let public_key = dir.join("receiver-public.pem");
        let mut cmd = Command::new(&*RECEIVER);
        cmd.args(["serve", "--listen", listen, "--store"])
            .arg(&store)
            .arg("--tls-self-signed")
            .arg("--ca-out")
            .arg(&ca)
            .arg("--signing-key")
            .arg(dir.join("receiver-signing.pem"))
            .arg("--public-key-out")
            .arg(&public_key)
            .env("CALLHOME_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for f in faults {
            cmd.args(["--fault", f]);
        }
        cmd.args(extra);
        let mut child = cmd.spawn().expect("the receiver starts");
        let url = read_url(&mut child);
        Receiver { child, url, store, ca, public_key }
    }

    /// The `host:port` the receiver listens on.
    pub fn addr(&self) -> String {
        self.url.trim_start_matches("https://").split('/').next().unwrap().to_string()
    }

    /// Bundles the receiver holds.
    pub fn bundles(&self) -> Vec<String> {
        stored_bundles(&self.store)
    }

    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `callhome-receiver ingest`: takes the export zip `export` into `store`, signing with the key
/// at `signing_key` (made when missing), and writes the receipt to `receipt_out`.
pub fn receiver_ingest(export: &Path, store: &Path, signing_key: &Path, receipt_out: &Path) {
    let out = Command::new(&*RECEIVER)
        .arg("ingest")
        .arg(export)
        .arg("--store")
        .arg(store)
        .arg("--signing-key")
        .arg(signing_key)
        .arg("--receipt-out")
        .arg(receipt_out)
        .output()
        .expect("the receiver runs");
    assert!(out.status.success(), "ingest {}: {}", export.display(), stderr(&out));
}

/// The address a receiver prints on its first line of output.
pub fn read_url(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout is piped"))
        .read_line(&mut line)
        .expect("the receiver prints its address");
    line.split_whitespace()
        .find(|w| w.starts_with("https://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string()
}

/// A test's folder: a data directory and a configuration file pointing at a receiver.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    pub config: PathBuf,
}

impl Setup {
    pub fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let config = dir.path().join("callhome.toml");
        Setup { dir, data, config }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the configuration: the receiver's endpoint, CA and key, plus `extra` TOML lines
    /// (which may add keys to the [upload] table when they come first).
    pub fn configure(&self, endpoint: &str, ca: &Path, key: &Path, extra: &str) {
        let text = format!(
            "[upload]\nendpoint = \"{endpoint}\"\nca_file = \"{}\"\nreceipt_public_key = \"{}\"\n{extra}\n",
            ca.display(),
            key.display()
        );
        std::fs::write(&self.config, text).unwrap();
    }

    pub fn configure_for(&self, r: &Receiver, extra: &str) {
        self.configure(&r.url, &r.ca, &r.public_key, extra);
    }

    /// Writes a configuration whose endpoint nothing listens on (port 9), plus `extra` TOML lines
    /// (which may add keys to the [upload] table when they come first).
    pub fn configure_offline(&self, extra: &str) {
        std::fs::write(&self.config, format!("[upload]\nendpoint = \"https://127.0.0.1:9/v1/bundles\"\n{extra}"))
            .unwrap();
    }

    /// Runs a CLI command against this setup.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_env(args, &[])
    }

    pub fn cli_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(&*AGENT);
        cmd.args(args).arg("--config").arg(&self.config).arg("--data-dir").arg(&self.data).env_remove("DO_NOT_TRACK");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("the CLI runs")
    }

    /// `callhome status --json`, parsed.
    pub fn status(&self) -> serde_json::Value {
        let out = self.cli(&["status", "--json"]);
        assert!(out.status.success(), "status failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("status --json is JSON")
    }

    /// Starts `callhome run --headless` (killed on drop).
    pub fn start_agent(&self) -> AgentProcess {
        self.start_agent_with(&["--headless"], &[])
    }

    /// Starts `callhome run` with extra arguments and environment (killed on drop).
    pub fn start_agent_with(&self, args: &[&str], env: &[(&str, &str)]) -> AgentProcess {
        let args: Vec<&str> = std::iter::once("run").chain(args.iter().copied()).collect();
        self.start_program(&AGENT, &args, env)
    }

    /// Starts `bin` (the agent or the tray) with `args`, this setup's configuration and data
    /// directory, and `env`; its stderr goes to a log file of its own.
    pub fn start_program(&self, bin: &Path, args: &[&str], env: &[(&str, &str)]) -> AgentProcess {
        let log_path = self.path().join(format!("agent-{}.log", fastrand::u32(..)));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(bin)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(&self.data)
            .env_remove("DO_NOT_TRACK")
            .env("CALLHOME_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the agent starts");
        AgentProcess { child, log: log_path, data: self.data.clone() }
    }

    pub fn spool(&self, kind: &str) -> Vec<String> {
        list(&self.data.join("spool").join(kind), ".zip")
    }

    pub fn all_pending(&self) -> usize {
        ["compliance", "callhome", "usage", "events"].iter().map(|k| self.spool(k).len()).sum()
    }

    pub fn result_file(&self, kind: &str) -> String {
        std::fs::read_to_string(self.data.join("cache").join(format!("upload_{kind}_result.xml"))).unwrap_or_default()
    }

    pub fn ledger(&self) -> Vec<serde_json::Value> {
        let out = self.cli(&["ledger", "list", "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
    }

    pub fn history(&self) -> Vec<serde_json::Value> {
        let out = self.cli(&["history", "--json", "--limit", "1000"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
    }
}

/// A running tinyproxy that demands basic authentication (killed on drop).
pub struct Proxy {
    child: Child,
    pub port: u16,
    log: std::path::PathBuf,
}

impl Proxy {
    pub fn start(dir: &std::path::Path, user: &str, password: &str) -> Proxy {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = dir.join("tinyproxy.log");
        let conf = dir.join("tinyproxy.conf");
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 10\nAllow 127.0.0.1\nBasicAuth {user} {password}\nLogFile \"{}\"\nLogLevel Connect\n",
                log.display()
            ),
        )
        .unwrap();
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy runs (scripts/deps installs it)");
        wait_until(Duration::from_secs(10), "tinyproxy to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Proxy { child, port, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct AgentProcess {
    pub child: Child,
    /// The agent's stderr, shown when a test fails while the agent runs.
    log: PathBuf,
    data: PathBuf,
}

impl AgentProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM once the agent holds its data directory (so its signal handlers are in place),
    /// then waits for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let holder = format!("pid {} ", self.child.id());
        let lock = self.data.join("run.lock");
        wait_until(Duration::from_secs(15), "the agent to hold its data directory", || {
            std::fs::read_to_string(&lock).is_ok_and(|t| t.starts_with(&holder))
        });
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        self.child.wait().unwrap()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let status = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- agent {status:?}, log {}:\n{}",
                self.log.display(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// libfaketime, which moves the wall clock of one process (scripts/deps installs faketime).
pub fn libfaketime() -> std::path::PathBuf {
    // std only: this module is also compiled into the tray crate's tests, which have no glob.
    std::fs::read_dir("/usr/lib")
        .expect("/usr/lib is readable")
        .flatten()
        .map(|arch| arch.path().join("faketime/libfaketime.so.1"))
        .find(|lib| lib.is_file())
        .expect("libfaketime is installed (scripts/deps installs the faketime package)")
}

/// `callhome check` with the wall clock `offset` away (`+0`, `+100d`): its exit code and line.
pub fn check_at(s: &Setup, offset: &str) -> (i32, String) {
    let lib = libfaketime().display().to_string();
    let out = s.cli_env(&["check"], &[("LD_PRELOAD", lib.as_str()), ("FAKETIME", offset), ("FAKETIME_NO_CACHE", "1")]);
    (out.status.code().unwrap(), stdout(&out))
}

/// An isolated agent in manual mode (telemetry only, reported by hand) whose receipts come from the receiver key
/// in its folder (`receiver-signing.pem`).
pub fn isolated_manual() -> Setup {
    let s = Setup::new();
    // Make the receiver's keys once (a receiver started and stopped); no network is used after.
    let r = Receiver::start(s.path(), &[]);
    let key = r.public_key.clone();
    r.stop();
    s.configure_offline(&format!(
        "receipt_public_key = \"{}\"\n[programs]\ntelemetry_mode = \"manual\"\ncall_home = false\nceip = false\n",
        key.display()
    ));
    s
}
