//! The CLI's commands: each opens the agent's state, does one thing, and prints it for a person
//! (or as JSON with `--json`). Errors become a message and an exit code here, nowhere else.

mod dashboard;
mod print;
mod source;

use std::io::Write;
use std::sync::Arc;

use callhome::agent::{Agent, AgentError};
use callhome::clock::SystemClock;
use callhome::config::{Config, ConfigError};
use callhome::datadir::{DataDir, DataDirError};
use callhome::programs::{Program, TelemetryMode};

use crate::{Cli, Command, ConfigAction, ExportAction, LedgerAction, ProgramsAction, ProxyAction, exit};
use source::Source;

/// An error for the user: the message to print and the exit code.
pub struct CliError {
    pub code: u8,
    pub message: String,
}

pub(crate) type Result<T> = std::result::Result<T, CliError>;

pub(crate) fn fail(code: u8, message: impl Into<String>) -> CliError {
    CliError { code, message: message.into() }
}

impl From<AgentError> for CliError {
    fn from(e: AgentError) -> CliError {
        match e {
            AgentError::DataDir(DataDirError::Busy { .. }) => fail(exit::BUSY, e.to_string()),
            AgentError::Refused(m) => fail(exit::REFUSED, m),
            other => fail(exit::FAILURE, with_hint(&other)),
        }
    }
}

fn manual_err(e: callhome::manual::ManualError) -> CliError {
    use callhome::manual::ManualError;
    match e {
        ManualError::Receipt(_) => fail(exit::LEDGER, e.to_string()),
        ManualError::Agent(a) => CliError::from(a),
        other => fail(exit::FAILURE, with_hint(&other)),
    }
}

/// The error's message, with what to do when the cause is a full disk.
fn with_hint(e: &(dyn std::error::Error + 'static)) -> String {
    if callhome::fsutil::is_disk_full(e) {
        format!(
            "{e}\nThe disk holding the data directory is full: nothing was lost (pending bundles stay in the spool); free some space and run the command again."
        )
    } else {
        e.to_string()
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> CliError {
        fail(exit::CONFIG, e.to_string())
    }
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CALLHOME_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// The agent logs to stderr and to `logs/agent.log` in the data directory.
fn init_run_logging(dir: &DataDir) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("CALLHOME_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let file = callhome::logfile::LogFile::open(&dir.root().join("logs"))
        .map_err(|e| {
            eprintln!("callhome: cannot write logs/agent.log in the data directory ({e}); logging to stderr only")
        })
        .ok()
        .map(|f| tracing_subscriber::fmt::layer().with_writer(f).with_ansi(false).with_target(false));
    let _ = tracing_subscriber::registry().with(filter).with(stderr).with(file).try_init();
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .build()
        .map_err(|e| fail(exit::FAILURE, format!("cannot start the async runtime: {e}")))
}

pub(crate) fn load_config(cli: &Cli) -> Result<Config> {
    match &cli.config {
        Some(path) => Ok(Config::load(path)?),
        None => Ok(Config::embedded()),
    }
}

fn open_agent(cli: &Cli) -> Result<Agent> {
    let cfg = load_config(cli)?;
    let dir = DataDir::locate(cli.data_dir.clone());
    Ok(Agent::open(cfg, dir, Arc::new(SystemClock))?)
}

pub fn dispatch(cli: Cli) -> Result<u8> {
    if !matches!(cli.command, Command::Run { .. }) {
        init_logging("warn");
    }
    match &cli.command {
        Command::Run { headless } => run(&cli, *headless),
        Command::Status { json } => {
            let doc = Source::open(&cli)?.status()?;
            if *json {
                print::json(&doc);
            } else {
                print::status(&doc);
            }
            Ok(0)
        }
        Command::Check { json } => Ok(check(&cli, *json)),
        Command::TestConnection { json } => {
            let cfg = load_config(&cli)?;
            let dir = DataDir::locate(cli.data_dir.clone());
            dir.create().map_err(|e| fail(exit::FAILURE, e.to_string()))?;
            let agent = Agent::open(cfg, dir, Arc::new(SystemClock))?;
            let steps = runtime()?.block_on(callhome::upload::diagnose::test_connection(
                agent.config(),
                &agent.install().install_id,
                &agent.access(),
            ));
            if *json {
                print::json(&steps.iter().map(callhome::api::dto::StepDoc::from).collect::<Vec<_>>());
            } else {
                print::steps(&steps);
            }
            Ok(if steps.iter().all(|s| s.ok) { 0 } else { exit::CONNECTION })
        }
        Command::Collect { program } => {
            let src = Source::open(&cli)?;
            print::collected(&src.collect(*program)?);
            src.note_direct(&cli);
            Ok(0)
        }
        Command::Upload { program } => {
            let src = Source::open(&cli)?;
            let report = src.upload(*program)?;
            print::upload_report(&report);
            src.note_direct(&cli);
            Ok(if report.ok { 0 } else { exit::UPLOAD_FAILED })
        }
        Command::Preview { bundle, latest, program, file, json } => {
            let what = if *json { Shown::Json } else { file.as_deref().map_or(Shown::All, Shown::File) };
            preview(&Source::open(&cli)?, bundle.as_deref(), *latest, *program, what)
        }
        Command::History { limit, json } => {
            print::history(&Source::open(&cli)?.history(*limit)?, *json);
            Ok(0)
        }
        Command::Ledger { action } => {
            let agent = open_agent(&cli)?;
            match action {
                LedgerAction::Verify => ledger_verify(&agent),
                LedgerAction::List { json } => {
                    let rows = agent.store().ledger().map_err(|e| fail(exit::FAILURE, e.to_string()))?;
                    print::ledger(&rows, *json);
                    Ok(0)
                }
            }
        }
        Command::Config { action } => match action {
            ConfigAction::Default => {
                print!("{}", callhome::config::DEFAULT_TOML);
                Ok(0)
            }
            ConfigAction::Set { ignore_empty, pairs } => {
                let Some(path) = cli.config.as_ref() else {
                    return Err(fail(
                        exit::USAGE,
                        "say which file to change: callhome --config FILE config set KEY=VALUE…",
                    ));
                };
                let pairs: Vec<(String, String)> =
                    pairs.iter().filter(|(_, v)| !(*ignore_empty && v.is_empty())).cloned().collect();
                callhome::config_edit::set(path, &pairs)?;
                for (k, v) in &pairs {
                    println!("{}: {k} = {v}", path.display());
                }
                Ok(0)
            }
            ConfigAction::Check { file } => match file.as_ref().or(cli.config.as_ref()) {
                Some(path) => {
                    Config::load(path)?;
                    println!("{}: ok", path.display());
                    Ok(0)
                }
                None => {
                    let _ = Config::embedded();
                    println!("<embedded default>: ok (pass a file to check it: callhome config check FILE)");
                    Ok(0)
                }
            },
        },
        Command::Programs { action } => programs(&cli, action.as_ref()),
        Command::Proxy { action } => proxy(&cli, action),
        Command::Tray => tray(&cli),
        Command::Register { clear, .. } => {
            let token = if *clear { None } else { Some(read_secret_line("the endpoint token")?) };
            let src = Source::open(&cli)?;
            let doc = src.register(token.as_ref())?;
            match (token.is_some(), doc.token_source.as_deref()) {
                (true, _) => println!("endpoint token stored in the OS keyring; uploads present it from now on"),
                (false, Some(from)) => println!("token removed from the keyring; a token still comes from the {from}"),
                (false, None) => println!("endpoint token removed"),
            }
            Ok(0)
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "callhome", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd)
                .render(&mut std::io::stdout())
                .map_err(|e| fail(exit::FAILURE, format!("cannot write the man page: {e}")))?;
            Ok(0)
        }
        Command::Dashboard { no_open } => dashboard::dashboard(&cli, *no_open),
        Command::Export { action: Some(ExportAction::Confirm { export_id }), .. } => {
            let agent = open_agent(&cli)?;
            let done = runtime()?.block_on(callhome::manual::confirm_export(&agent, export_id)).map_err(manual_err)?;
            println!(
                "export {export_id}: {} bundle(s) recorded as reported by hand (unverified: no receipt) and removed from the spool",
                done.len()
            );
            Ok(0)
        }
        Command::Export { action: None, out, program, max_size } => {
            let Some(out) = out else {
                return Err(fail(exit::USAGE, "say where to write the export: callhome export --out FILE.zip"));
            };
            let agent = open_agent(&cli)?;
            let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let progress: callhome::manual::Progress = Box::new(move |done, total| {
                if tty && total > 0 {
                    eprint!("\rexporting {:>5.1}% ({done} of {total} bytes)", done as f64 * 100.0 / total as f64);
                }
            });
            let parts = runtime()?
                .block_on(callhome::manual::export(&agent, out, *program, *max_size, progress))
                .map_err(manual_err)?;
            if tty {
                eprintln!();
            }
            for e in &parts {
                println!(
                    "export {}: {} bundle(s), {} bytes, written to {}",
                    e.export_id,
                    e.bundles.len(),
                    e.bytes,
                    e.path.display()
                );
            }
            println!(
                "carry it to the vendor's receiver; bring back the receipt and run `callhome import-receipt RECEIPT.json`"
            );
            Ok(0)
        }
        Command::SupportBundle { case, severity, impact, summary, contact, out, upload } => {
            let agent = open_agent(&cli)?;
            let case = callhome::support::Case {
                number: case.clone(),
                severity: *severity,
                impact: impact.clone(),
                summary: summary.clone(),
                contact: contact.clone(),
            };
            let out = match out {
                Some(o) => o.clone(),
                None => {
                    let dir = agent.data_dir().exports_dir();
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| fail(exit::FAILURE, format!("{}: {e}", dir.display())))?;
                    let safe: String = case.number.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
                    dir.join(format!("support_{safe}_{}.zip", callhome::clock::file_stamp(agent.now())))
                }
            };
            let rt = runtime()?;
            let path = rt
                .block_on(callhome::support::build(&agent, &case, &out))
                .map_err(|e| fail(exit::FAILURE, e.to_string()))?;
            println!("support bundle for case {} written to {}", case.number, path.display());
            if *upload {
                let id =
                    rt.block_on(callhome::support::upload(&agent, &path)).map_err(|e| fail(exit::UPLOAD_FAILED, e))?;
                println!("sent; receipt {id}");
            }
            Ok(0)
        }
        Command::ImportReceipt { receipt } => {
            let agent = open_agent(&cli)?;
            let r = runtime()?.block_on(callhome::manual::import_receipt(&agent, receipt)).map_err(manual_err)?;
            println!(
                "receipt {} for export {}: {} bundle(s) acknowledged and removed from the spool",
                r.receipt_id,
                r.export_id,
                r.acknowledged.len()
            );
            if !r.already.is_empty() {
                println!(
                    "{} bundle(s) were acknowledged by an earlier import of this receipt: nothing to do",
                    r.already.len()
                );
            }
            for x in &r.rejected {
                println!("rejected by the receiver, still pending: {}: {}", x.name, x.reason);
            }
            Ok(0)
        }
        Command::Licenses { json } => {
            let doc = Source::open(&cli)?.licenses()?;
            if *json {
                print::json(&doc);
            } else {
                print::licenses(&doc);
            }
            Ok(0)
        }
        Command::Usage { feature, since, json } => {
            let since = match since {
                Some(s) => parse_since(s, callhome::clock::Clock::now(&SystemClock))?,
                None => 0,
            };
            let rows = Source::open(&cli)?.usage(feature.as_deref(), since)?;
            if *json {
                print::json(&rows);
            } else {
                print::usage(&rows);
            }
            Ok(0)
        }
    }
}

/// `callhome check`: one line (or JSON) and the Nagios/Icinga exit convention.
fn check(cli: &Cli, json: bool) -> u8 {
    let (code, line) = match Source::open(cli).and_then(|s| s.status()) {
        Ok(doc) => print::check_line(&doc),
        Err(e) => (3, format!("CALLHOME UNKNOWN - {}", e.message.lines().next().unwrap_or(""))),
    };
    if json {
        let state = ["ok", "warning", "critical", "unknown"][code as usize];
        print::json(&serde_json::json!({ "code": code, "state": state, "summary": line }));
    } else {
        println!("{line}");
    }
    code
}

/// `--since`: RFC 3339, a date, or a duration ago.
fn parse_since(s: &str, now: i64) -> Result<i64> {
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(now - d.as_secs() as i64);
    }
    if let Some(t) = callhome::clock::parse_rfc3339(s) {
        return Ok(t);
    }
    if let Some(d) = callhome::licenses::date::Date::parse_iso_or_version(s) {
        return Ok(d.timestamp());
    }
    Err(fail(
        exit::USAGE,
        format!("--since {s:?}: use a time (2026-11-01T00:00:00Z), a date (2026-11-01) or a duration ago (7d)"),
    ))
}

fn run(cli: &Cli, headless: bool) -> Result<u8> {
    // Under the Windows service control manager, its Stop ends the agent (elsewhere: SIGTERM).
    #[cfg(windows)]
    if headless {
        let owned = cli.clone();
        let body = Box::new(move |stop: tokio::sync::oneshot::Receiver<()>| {
            let stop: Stop = Box::pin(async move {
                let _ = stop.await;
            });
            match run_until(&owned, true, Some(stop)) {
                Ok(code) => u32::from(code),
                Err(e) => {
                    tracing::error!("{}", e.message);
                    u32::from(e.code)
                }
            }
        });
        if let Some(code) = callhome::winservice::run_as_service(body) {
            return Ok(u8::try_from(code).unwrap_or(exit::FAILURE));
        }
    }
    run_until(cli, headless, None)
}

/// A future that completes when the agent must stop.
type Stop = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The agent until `stop` (by default SIGTERM or SIGINT) completes.
fn run_until(cli: &Cli, headless: bool, stop: Option<Stop>) -> Result<u8> {
    let cfg = load_config(cli)?;
    let desktop = !headless && callhome::desktop::session_present();
    #[cfg(feature = "tray")]
    if desktop {
        // SAFETY: no other thread runs yet (the runtime is built below).
        unsafe { prepare_gtk() };
    }
    let rt = runtime()?;
    // Signal handlers first: a SIGTERM that arrives once the directory is locked must stop the
    // agent cleanly, never kill it by default action.
    let shutdown: Stop = match stop {
        Some(stop) => stop,
        None => Box::pin(
            rt.block_on(async { shutdown_signal() })
                .map_err(|e| fail(exit::FAILURE, format!("cannot watch signals: {e}")))?,
        ),
    };
    let dir = DataDir::locate(cli.data_dir.clone());
    dir.create().map_err(|e| fail(exit::FAILURE, e.to_string()))?;
    init_run_logging(&dir);
    let _lock = dir.lock_run().map_err(|e| match e {
        DataDirError::Busy { .. } => fail(exit::BUSY, e.to_string()),
        other => fail(exit::FAILURE, other.to_string()),
    })?;
    if !headless && !desktop {
        tracing::info!("no desktop session (neither DISPLAY nor WAYLAND_DISPLAY is set): running without the tray");
    }
    #[cfg(not(feature = "tray"))]
    if desktop {
        tracing::info!("this build has no tray (built without the `tray` feature): running without it");
    }
    let api_cfg = cfg.api.clone();
    let agent = Arc::new(Agent::open(cfg, dir, Arc::new(SystemClock))?);
    tracing::info!(data_dir = %agent.data_dir().root().display(), install_id = %agent.install().install_id, "starting");
    rt.block_on(agent.recover())?;
    #[cfg(feature = "tray")]
    if desktop {
        let a = agent.clone();
        let api_on = api_cfg.enabled;
        callhome::desktop::tray::run(agent, rt, api_on, move |quit| async move {
            let stop = async move {
                tokio::select! {
                    () = shutdown => {}
                    () = quit => {}
                }
            };
            match serve(a, api_cfg, stop).await {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("callhome: {}", e.message);
                    i32::from(e.code)
                }
            }
        });
    }
    rt.block_on(serve(agent, api_cfg, shutdown))?;
    Ok(0)
}

/// The agent, its API and its notifications, until `stop` completes.
async fn serve(
    agent: Arc<Agent>,
    api_cfg: callhome::config::ApiConfig,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut api =
        api_cfg.enabled.then(|| tokio::spawn(callhome::api::serve(agent.clone(), api_cfg.clone(), stop_rx.clone())));
    let on_click: Option<callhome::notify::OnClick> = api_cfg.enabled.then(|| {
        let dir = agent.data_dir().clone();
        Arc::new(move || {
            let dir = dir.clone();
            tokio::spawn(async move {
                let r = match callhome::api::client::Client::discover(&dir) {
                    Some(c) => callhome::desktop::open_dashboard(&c, "").await,
                    None => Err("the API is not running".into()),
                };
                if let Err(e) = r {
                    tracing::warn!("{e}");
                }
            });
        }) as callhome::notify::OnClick
    });
    let notifier = tokio::spawn(callhome::notify::run(agent.clone(), on_click, stop_rx));
    let stop = async {
        stop.await;
        let _ = stop_tx.send(true);
    };
    let outcome = match &mut api {
        Some(handle) => tokio::select! {
            r = agent.run(stop) => r.map_err(CliError::from),
            r = handle => {
                // The API ended before the agent: it could not start.
                let e = match r {
                    Ok(Err(e)) => e.to_string(),
                    Ok(Ok(())) => "the API stopped".into(),
                    Err(e) => e.to_string(),
                };
                return Err(fail(exit::FAILURE, e));
            }
        },
        None => agent.run(stop).await.map_err(CliError::from),
    };
    // However the agent ended, the API and notifications end with it: never a process that
    // serves on with no schedule behind it.
    let _ = stop_tx.send(true);
    if let Some(handle) = api {
        match handle.await {
            Ok(Err(e)) => tracing::warn!("{e}"),
            Err(e) => tracing::warn!("API task: {e}"),
            Ok(Ok(())) => {}
        }
    }
    let _ = notifier.await;
    outcome
}

/// Registers SIGTERM and SIGINT now; the returned future completes when either arrives.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// What `preview` prints.
#[derive(Clone, Copy)]
enum Shown<'a> {
    /// Every file, as it is.
    All,
    /// One file, byte for byte.
    File(&'a str),
    /// The summary as JSON.
    Json,
}

fn preview(src: &Source, bundle: Option<&str>, latest: bool, program: Option<Program>, file: Shown<'_>) -> Result<u8> {
    let name = if latest {
        let names = src.bundle_names()?;
        let newest = names
            .into_iter()
            .filter(|(p, _)| program.is_none_or(|pr| pr.name() == p))
            .max_by(|a, b| a.1.split('_').nth(2).cmp(&b.1.split('_').nth(2)));
        match newest {
            Some((_, n)) => n,
            None => return Err(fail(exit::FAILURE, "no pending bundle to preview; `callhome collect` makes one")),
        }
    } else {
        let wanted = bundle.expect("clap requires BUNDLE without --latest");
        let as_path = std::path::Path::new(wanted);
        if src.direct().is_some() && as_path.is_file() && !as_path.starts_with("upload_") {
            // A bundle file outside the spool (an export, a quarantined one): read it as is.
            return preview_bytes(
                &std::fs::read(as_path).map_err(|e| fail(exit::FAILURE, format!("{wanted}: {e}")))?,
                wanted,
                file,
            );
        }
        callhome::api::client::bundle_id(wanted)
    };
    let bytes = src.bundle_bytes(&name)?;
    preview_bytes(&bytes, &name, file)
}

/// Prints a bundle's files exactly as they are (or one of them, byte for byte).
fn preview_bytes(bytes: &[u8], name: &str, shown: Shown<'_>) -> Result<u8> {
    let tmp = tempfile_for(bytes)?;
    let mut reader =
        callhome::bundle::Reader::open(tmp.path()).map_err(|e| fail(exit::FAILURE, format!("{name}: {e}")))?;
    let mut out = std::io::stdout().lock();
    if let Shown::Json = shown {
        let manifest = reader.manifest().map_err(|e| fail(exit::FAILURE, e.to_string()))?;
        let mut files = Vec::new();
        for n in reader.names().map_err(|e| fail(exit::FAILURE, e.to_string()))? {
            let content = reader.read(&n).map_err(|e| fail(exit::FAILURE, e.to_string()))?;
            files.push(serde_json::json!({ "name": n, "size": content.len(), "sha256": callhome::fsutil::sha256_hex(&content) }));
        }
        print::json(&serde_json::json!({
            "bundle": name, "size": bytes.len(), "sha256": callhome::fsutil::sha256_hex(bytes), "manifest": manifest, "files": files,
        }));
        return Ok(0);
    }
    if let Shown::File(f) = shown {
        let content = reader
            .read(f)
            .map_err(|e| fail(exit::FAILURE, e.to_string().replace(&tmp.path().display().to_string(), name)))?;
        out.write_all(&content).map_err(|e| fail(exit::FAILURE, e.to_string()))?;
        return Ok(0);
    }
    let sha = callhome::fsutil::sha256_hex(bytes);
    let _ = writeln!(
        out,
        "bundle {name}\n  size {} bytes, sha256 {sha} (the Idempotency-Key and ledger entry)",
        bytes.len()
    );
    for n in reader.names().map_err(|e| fail(exit::FAILURE, e.to_string()))? {
        let content = reader.read(&n).map_err(|e| fail(exit::FAILURE, e.to_string()))?;
        let _ =
            writeln!(out, "\n=== {n} ({} bytes, sha256 {}) ===", content.len(), callhome::fsutil::sha256_hex(&content));
        let _ = out.write_all(&content);
        let _ = writeln!(out);
    }
    Ok(0)
}

/// A private temporary copy of a bundle, removed on drop.
struct TempBundle(std::path::PathBuf);

impl TempBundle {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempBundle {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn tempfile_for(bytes: &[u8]) -> Result<TempBundle> {
    let path =
        std::env::temp_dir().join(format!("callhome-preview-{}-{:08x}.zip", std::process::id(), fastrand::u32(..)));
    callhome::fsutil::write_new_private(&path, bytes)
        .map_err(|e| fail(exit::FAILURE, format!("{}: {e}", path.display())))?;
    Ok(TempBundle(path))
}

fn ledger_verify(agent: &Agent) -> Result<u8> {
    let rows = agent.store().ledger().map_err(|e| fail(exit::FAILURE, e.to_string()))?;
    match callhome::ledger::verify(agent.config(), &rows) {
        Ok(check) => {
            println!("{check}");
            Ok(0)
        }
        Err(e) if e.is_tampering() => Err(fail(exit::LEDGER, e.to_string())),
        Err(e) => Err(fail(exit::CONFIG, e.to_string())),
    }
}

fn programs(cli: &Cli, action: Option<&ProgramsAction>) -> Result<u8> {
    let src = Source::open(cli)?;
    let changes = !matches!(action, None | Some(ProgramsAction::List { .. }));
    let (program, value) = match action {
        None | Some(ProgramsAction::List { json: false }) => {
            print::programs(&src.programs()?);
            return Ok(0);
        }
        Some(ProgramsAction::List { json: true }) => {
            print::json(&src.programs()?);
            return Ok(0);
        }
        Some(ProgramsAction::Enable { program }) => (*program, "on"),
        Some(ProgramsAction::Disable { program }) => (*program, "off"),
        Some(ProgramsAction::Manual) => (Program::Telemetry, "manual"),
        Some(ProgramsAction::Automatic) => (Program::Telemetry, "automatic"),
        Some(ProgramsAction::Set { program, value }) => (*program, value.as_str()),
    };
    match (program, value) {
        (Program::Telemetry, "automatic" | "manual") => {
            let mode: TelemetryMode = value.parse().map_err(|e: String| fail(exit::USAGE, e))?;
            src.set_mode(mode)?;
            println!("telemetry: {}", mode.name());
        }
        (Program::Telemetry, _) => {
            return Err(fail(
                exit::REFUSED,
                "license telemetry is mandatory; it can be set to automatic or manual, not turned off",
            ));
        }
        (p, "on" | "off") => {
            let withdrawn = src.set_enabled(p, value == "on")?;
            println!("{}: {value}", p.name());
            if !withdrawn.is_empty() {
                println!("withdrew {} pending bundle(s); the ledger records each", withdrawn.len());
            }
        }
        (p, other) => return Err(fail(exit::USAGE, format!("{}: use on or off, not {other:?}", p.name()))),
    }
    if changes {
        src.note_direct(cli);
    }
    Ok(0)
}

/// One line from standard input: a secret passed without a terminal, never as an argument.
fn read_secret_line(what: &str) -> Result<callhome::secrets::Value> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| fail(exit::FAILURE, format!("cannot read {what} from standard input: {e}")))?;
    let v = line.trim_end_matches(['\n', '\r']);
    if v.is_empty() {
        return Err(fail(exit::USAGE, format!("{what} read from standard input is empty")));
    }
    Ok(callhome::secrets::Value::new(v))
}

fn proxy(cli: &Cli, action: &ProxyAction) -> Result<u8> {
    match action {
        ProxyAction::Set { url, username, password_stdin } => {
            let password = match (username, password_stdin) {
                (None, _) => None,
                (Some(_), true) => Some(read_secret_line("the proxy password")?),
                (Some(user), false) => {
                    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                        return Err(fail(
                            exit::USAGE,
                            "no terminal to ask for the proxy password on: pass it on standard input with --password-stdin",
                        ));
                    }
                    let p = rpassword::prompt_password(format!("Password for {user} at {url}: "))
                        .map_err(|e| fail(exit::FAILURE, format!("cannot read the password: {e}")))?;
                    Some(callhome::secrets::Value::new(p))
                }
            };
            let src = Source::open(cli)?;
            let doc = src.set_proxy(url, username.as_deref(), password.as_ref())?;
            src.note_direct(cli);
            println!("uploads go through {url}{}", username.as_ref().map(|u| format!(" as {u}")).unwrap_or_default());
            if password.is_some() {
                println!(
                    "the password is in the OS keyring (service \"callhome\", user \"proxy-password\"), nowhere else"
                );
            }
            if let Some(from) = doc.password_source.as_deref().filter(|f| *f != "keyring") {
                println!("note: the password in the {from} takes precedence over the keyring's");
            }
            Ok(0)
        }
        ProxyAction::Show { json } => {
            let doc = Source::open(cli)?.proxy()?;
            if *json {
                print::json(&doc);
            } else {
                match &doc.url {
                    Some(u) => println!("proxy: {u} (from the {})", doc.origin),
                    None => println!("proxy: none configured (the HTTPS_PROXY/NO_PROXY environment applies)"),
                }
                if let Some(u) = &doc.username {
                    println!("user: {u}");
                    match doc.password_source.as_deref() {
                        Some(s) => println!("password: set (from the {s})"),
                        None => println!("password: not set — run `callhome proxy set --url URL --username {u}`"),
                    }
                }
                if let Some(n) = &doc.no_proxy {
                    println!("no proxy for: {n}");
                }
                println!(
                    "endpoint token: {}",
                    doc.token_source.as_deref().map(|s| format!("set (from the {s})")).unwrap_or("not set".into())
                );
            }
            Ok(0)
        }
        ProxyAction::Clear => {
            let src = Source::open(cli)?;
            let doc = src.clear_proxy()?;
            match &doc.url {
                Some(u) => println!("stored proxy forgotten; the configuration's proxy {u} applies"),
                None => println!("stored proxy forgotten; uploads go direct (or through HTTPS_PROXY)"),
            }
            Ok(0)
        }
    }
}

/// `callhome tray`: the desktop's view of an agent that runs elsewhere (the system service).
fn tray(cli: &Cli) -> Result<u8> {
    init_logging("info");
    if !callhome::desktop::session_present() {
        return Err(fail(
            exit::FAILURE,
            "no desktop session (neither DISPLAY nor WAYLAND_DISPLAY is set): the tray needs one",
        ));
    }
    #[cfg(feature = "tray")]
    {
        // SAFETY: no other thread runs yet (the runtime is built below).
        unsafe { prepare_gtk() };
        let rt = runtime()?;
        let stop = rt
            .block_on(async { shutdown_signal() })
            .map_err(|e| fail(exit::FAILURE, format!("cannot watch signals: {e}")))?;
        callhome::desktop::tray::run_client(DataDir::locate(cli.data_dir.clone()), rt, stop);
    }
    #[cfg(not(feature = "tray"))]
    {
        let _ = cli;
        Err(fail(exit::FAILURE, "this build has no tray (built without the `tray` feature)"))
    }
}

/// Keeps GTK (which tao starts for the tray) small: it probes OpenGL and loads a software driver
/// for it (tens of MB) though the tray draws nothing with GL, and it joins the accessibility bus
/// though the panel, not this process, draws the menu.
///
/// # Safety
/// Sets environment variables: call it before any other thread exists.
#[cfg(feature = "tray")]
unsafe fn prepare_gtk() {
    // SAFETY: the caller guarantees no other thread reads the environment meanwhile.
    unsafe {
        std::env::set_var("GDK_GL", "disable");
        std::env::set_var("NO_AT_BRIDGE", "1");
    }
}
