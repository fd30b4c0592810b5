//! The CLI's commands: each opens the agent's state, does one thing, and prints it for a person
//! (or as JSON with `--json`). Errors become a message and an exit code here, nowhere else.

mod dashboard;
mod error;
mod preview;
mod print;
mod session;
mod settings;

use std::io::Write;
use std::sync::Arc;

use callhome::agent::{Agent, AgentError};
use callhome::clock::SystemClock;
use callhome::config::{Config, ConfigError};
use callhome::daemon::{self, DaemonError, Stop};
use callhome::datadir::{DataDir, DataDirError};
use callhome::programs::{Program, TelemetryMode};

use crate::{
    AlertsAction, Cli, Command, ConfigAction, ExemptionAction, ExportAction, LedgerAction, ProgramsAction, ProxyAction,
    QuarantineAction, SecretChannel, exit,
};
use error::manual_err;
pub(crate) use error::{CliError, Result, fail};
use preview::{Shown, preview};
use session::Session;
use settings::{alerts, programs, proxy, read_secret_line};

fn init_logging(default: &str) {
    daemon::init_stderr_logging(default);
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(daemon::runtime()?)
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
            let doc = Session::open(&cli)?.status()?;
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
            let src = Session::open(&cli)?;
            print::collected(&src.collect(*program)?);
            src.note_direct(&cli);
            Ok(0)
        }
        Command::Upload { program } => {
            let src = Session::open(&cli)?;
            let report = src.upload(*program)?;
            print::upload_report(&report);
            src.note_direct(&cli);
            Ok(if report.ok { 0 } else { exit::UPLOAD_FAILED })
        }
        Command::Preview { bundle, latest, program, file, json } => {
            let what = if *json { Shown::Json } else { file.as_deref().map_or(Shown::All, Shown::File) };
            preview(&Session::open(&cli)?, bundle.as_deref(), *latest, *program, what)
        }
        Command::History { limit, json } => {
            print::history(&Session::open(&cli)?.history(*limit)?, *json);
            Ok(0)
        }
        Command::Quarantine { action } => {
            let session = Session::open(&cli)?;
            match action {
                QuarantineAction::List { json } => print::quarantine(&session.quarantine()?, *json),
                QuarantineAction::Retry { id } => {
                    let d = session.quarantine_retry(id)?;
                    println!(
                        "{id}: re-checked and queued again as {} ({}); it goes with the next upload (`callhome upload`)",
                        d.bundle.as_deref().unwrap_or(id),
                        d.program.as_deref().unwrap_or("?")
                    );
                }
                QuarantineAction::Purge { id } => {
                    session.quarantine_purge(id)?;
                    println!("{id}: purged from quarantine (the ledger records it)");
                }
            }
            Ok(0)
        }
        Command::Ledger { action } => {
            // The ledger is read from the data directory even beside a running agent (SQLite
            // readers never wait on it).
            let local = callhome::control::Local::new(Arc::new(open_agent(&cli)?));
            match action {
                LedgerAction::Verify => ledger_verify(&local),
                LedgerAction::List { json } => {
                    print::ledger(&local.ledger_rows()?, *json);
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
        Command::Alerts { action } => alerts(&cli, action),
        Command::Register { clear, .. } => {
            let token = if *clear { None } else { Some(read_secret_line("the endpoint token")?) };
            let src = Session::open(&cli)?;
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
            let ceip = agent.pending(callhome::programs::Program::Ceip).map(|v| v.len()).unwrap_or(0);
            if ceip > 0 && program.is_none() {
                println!("{ceip} CEIP bundle(s) left out. {}", callhome::manual::CEIP_NOT_EXPORTED);
            }
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
        Command::Exemption { action: ExemptionAction::Import { file } } => import_exemption(&cli, file),
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
            let doc = Session::open(&cli)?.licenses()?;
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
            let rows = Session::open(&cli)?.usage(feature.as_deref(), since)?;
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
    let (code, line) = match Session::open(cli).and_then(|s| s.status()) {
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
            match run_until(&owned, Some(stop)) {
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
    let _ = headless;
    run_until(cli, None)
}

/// The agent until `stop` (by default SIGTERM or SIGINT) completes. Alerts go to the log: desktop
/// notifications are the tray's (`callhome-tray`).
fn run_until(cli: &Cli, stop: Option<Stop>) -> Result<u8> {
    let cfg = load_config(cli)?;
    let rt = runtime()?;
    // Signal handlers first: a SIGTERM that arrives once the directory is locked must stop the
    // agent cleanly, never kill it by default action.
    let shutdown: Stop = match stop {
        Some(stop) => stop,
        None => Box::pin(rt.block_on(async { daemon::shutdown_signal() })?),
    };
    let api_cfg = cfg.api.clone();
    let opened = rt.block_on(daemon::open(cfg, DataDir::locate(cli.data_dir.clone())))?;
    rt.block_on(daemon::serve(opened.agent, api_cfg, Arc::new(callhome::alerts::LogOnly), shutdown))?;
    Ok(0)
}

/// `callhome exemption import FILE`: the exemption checked and kept; exit 6 when it is forged or
/// for another install, 3 without a key to check it, 7 when it ended or a newer one is held.
fn import_exemption(cli: &Cli, file: &std::path::Path) -> Result<u8> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(1 << 20).read_to_end(&mut bytes))
        .map_err(|e| fail(exit::FAILURE, format!("{}: {e}", file.display())))?;
    let agent = open_agent(cli)?;
    match agent.import_exemption(&bytes, &file.display().to_string()) {
        Ok((e, new)) => {
            let what = if new { "imported" } else { "already held: nothing to do" };
            println!(
                "exemption {} {what}: this install is exempt from reporting until {} (inclusive, UTC): {}",
                e.exemption_id, e.until, e.reason
            );
            Ok(0)
        }
        Err(e) if e.is_forgery() => Err(fail(exit::LEDGER, e.to_string())),
        Err(callhome::agent::ExemptionRefusal::Agent(a)) => Err(a.into()),
        Err(e @ (callhome::agent::ExemptionRefusal::NoKey | callhome::agent::ExemptionRefusal::Key(_))) => {
            Err(fail(exit::CONFIG, e.to_string()))
        }
        Err(e) => Err(fail(exit::REFUSED, e.to_string())),
    }
}

fn ledger_verify(local: &callhome::control::Local) -> Result<u8> {
    match local.check_ledger()? {
        Ok(check) => {
            println!("{check}");
            Ok(0)
        }
        Err(e) if e.is_tampering() => Err(fail(exit::LEDGER, e.to_string())),
        Err(e) => Err(fail(exit::CONFIG, e.to_string())),
    }
}
