//! `callhome-receiver`: the vendor's ingestion server (protocol v1) and its operator commands —
//! `serve`, `tokens create|list|revoke`, and `ingest` of an export by the operator.

mod cli;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use callhome_protocol::fs as fsutil;
use callhome_protocol::receipt;
use callhome_protocol::time::{now, parse_rfc3339, rfc3339};
use callhome_receiver::{self as receiver, ServeOptions, TlsSource, conn::ConnLimits, index::Index, limits::Rate};
use clap::Parser;
use cli::{Cli, Command, IndexArgs, ServeArgs, SimulateArgs, TokensCommand};

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CALLHOME_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    // Everything the receiver writes (bundles, receipts, the index, keys) is the operator's alone.
    #[cfg(unix)]
    unsafe {
        libc::umask(0o077);
    }
    let result = match Cli::parse().command {
        Command::Ingest { export, store, signing_key, receipt_out, public_key_out, max_body } => {
            ingest(&export, &store, &signing_key, &receipt_out, public_key_out.as_deref(), max_body)
        }
        Command::Serve(args) => serve(*args),
        Command::Tokens { command } => tokens(command),
        Command::Simulate(args) => simulate(*args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("callhome-receiver: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, String>;

fn serve(args: ServeArgs) -> Result<()> {
    let tls = match (args.tls_self_signed, args.tls_cert, args.tls_key) {
        (true, _, _) => TlsSource::SelfSigned,
        (false, Some(cert), Some(key)) => TlsSource::Files { cert, key },
        _ => return Err("give --tls-self-signed, or --tls-cert with --tls-key".into()),
    };
    let admin_token = match &args.admin_token_file {
        Some(path) => Some(read_admin_token(path)?),
        None => None,
    };
    let latest_agent = args
        .latest_version
        .zip(args.latest_released)
        .map(|(version, released)| receipt::LatestAgent { version, released });
    let opts = ServeOptions {
        listen: args.listen,
        index: index_path_arg(&args.index.index)?,
        store: args.index.store,
        spool: args.spool,
        tls,
        ca_out: args.ca_out,
        signing_key: args.signing_key,
        public_key_out: args.public_key_out,
        faults: args.faults,
        max_body: args.max_body,
        latest_agent,
        open_enrolment: args.open_enrolment,
        admin_token,
        conn: ConnLimits {
            max_connections: args.max_connections,
            handshake_timeout: args.handshake_timeout.into(),
            header_timeout: args.header_timeout.into(),
            idle_timeout: args.idle_timeout.into(),
        },
        max_uploads: args.max_uploads,
        install_rate: Rate { per_second: args.install_rate, burst: args.install_burst },
        max_export_unpacked: args.max_export_unpacked,
        allow_backdating: args.allow_backdating,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let ready = |addr: SocketAddr| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "callhome-receiver listening on https://{addr}/v1/bundles");
        let _ = out.flush();
    };
    rt.block_on(receiver::serve(opts, ready, shutdown())).map_err(|e| e.to_string())
}

/// The operator's token: the file's first line, at least 16 characters.
fn read_admin_token(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--admin-token-file {}: {e}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.len() < 16 {
        return Err(format!(
            "--admin-token-file {}: the operator token must be at least 16 characters (for example `openssl rand -hex 32`)",
            path.display()
        ));
    }
    Ok(token)
}

/// `--index sqlite:PATH` (the only index kind so far).
fn index_path_arg(spec: &Option<String>) -> Result<Option<PathBuf>> {
    match spec.as_deref() {
        None => Ok(None),
        Some(s) => match s.strip_prefix("sqlite:") {
            Some(p) if !p.is_empty() => Ok(Some(PathBuf::from(p))),
            _ => Err(format!("--index {s}: give sqlite:PATH")),
        },
    }
}

fn open_index(args: &IndexArgs) -> Result<Index> {
    let path = receiver::index_path(&args.store, index_path_arg(&args.index)?.as_deref()).map_err(|e| e.to_string())?;
    Index::open(&path).map_err(|e| e.to_string())
}

/// `--expires`: a date (`YYYY-MM-DD`, the token stops working at its start, UTC) or an RFC 3339
/// time.
fn parse_expiry(s: &str) -> Result<i64> {
    let full = if s.len() == 10 { format!("{s}T00:00:00Z") } else { s.to_string() };
    parse_rfc3339(&full).ok_or_else(|| format!("--expires {s}: give a date such as 2027-06-30, or an RFC 3339 time"))
}

fn tokens(command: TokensCommand) -> Result<()> {
    match command {
        TokensCommand::Create { customer, expires, multi_install, index } => {
            let expires_at = expires.as_deref().map(parse_expiry).transpose()?;
            if expires_at.is_some_and(|e| e <= now()) {
                return Err(format!("--expires {}: that is in the past", expires.unwrap_or_default()));
            }
            let index = open_index(&index)?;
            let (id, token) =
                index.create_token(&customer, expires_at, !multi_install, now()).map_err(|e| e.to_string())?;
            println!("{token}");
            eprintln!("token {id} for {customer:?} created; it is shown only now");
            Ok(())
        }
        TokensCommand::List { json, index } => {
            let tokens = open_index(&index)?.tokens().map_err(|e| e.to_string())?;
            let opt = |t: Option<i64>| t.map(rfc3339);
            if json {
                let list: Vec<_> = tokens
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "id": t.id,
                            "customer": t.customer,
                            "created_at": rfc3339(t.created_at),
                            "expires_at": opt(t.expires_at),
                            "revoked_at": opt(t.revoked_at),
                            "single_install": t.single_install,
                            "installs": t.installs,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list).map_err(|e| e.to_string())?);
            } else if tokens.is_empty() {
                println!("no tokens; make one with `callhome-receiver tokens create --customer NAME`");
            } else {
                println!(
                    "{:<16}  {:<24}  {:<8}  {:<20}  {:<20}  installs",
                    "ID", "CUSTOMER", "KIND", "EXPIRES", "REVOKED"
                );
                for t in &tokens {
                    println!(
                        "{:<16}  {:<24}  {:<8}  {:<20}  {:<20}  {}",
                        t.id,
                        t.customer,
                        if t.single_install { "single" } else { "multi" },
                        opt(t.expires_at).unwrap_or_else(|| "never".into()),
                        opt(t.revoked_at).unwrap_or_else(|| "-".into()),
                        t.installs
                    );
                }
            }
            Ok(())
        }
        TokensCommand::Revoke { token_id, index } => {
            if open_index(&index)?.revoke(&token_id, now()).map_err(|e| e.to_string())? {
                println!("token {token_id} revoked");
                Ok(())
            } else {
                Err(format!("no token {token_id}; `callhome-receiver tokens list` shows the ids"))
            }
        }
    }
}

fn ingest(
    export: &Path,
    store: &receiver::StoreSpec,
    key: &Path,
    out: &Path,
    public_key_out: Option<&Path>,
    max_body: u64,
) -> Result<()> {
    let key = receipt::load_or_create_signing_key(key).map_err(|e| e.to_string())?;
    if let Some(p) = public_key_out {
        fsutil::write_atomic(p, receipt::public_key_pem(&key).as_bytes())
            .map_err(|e| format!("--public-key-out {}: {e}", p.display()))?;
    }
    let store = receiver::BundleStore::open(store, None, key).map_err(|e| e.to_string())?;
    let limits = receiver::ingest::ExportLimits { max_bundle: max_body, ..Default::default() };
    // The operator runs this command: no token is asked for.
    let receipt = receiver::ingest::ingest(export, &store, &limits, &|_| Ok(None), now())
        .map_err(|r| format!("{}: {r}", export.display()))?;
    let json = serde_json::to_vec_pretty(&receipt).map_err(|e| e.to_string())?;
    fsutil::write_atomic(out, &json).map_err(|e| format!("{}: {e}", out.display()))?;
    println!(
        "export {}: {} bundle(s) accepted, {} rejected; receipt {} written to {}",
        receipt.export_id,
        receipt.accepted.len(),
        receipt.rejected.len(),
        receipt.receipt_id,
        out.display()
    );
    for r in &receipt.rejected {
        println!("  rejected {}: {}", r.name, r.reason);
    }
    Ok(())
}

/// `--backdate-days MIN-MAX`.
fn parse_days(s: &str) -> Result<(u32, u32)> {
    let err = || format!("--backdate-days {s}: give MIN-MAX in days, such as 91-365");
    let (a, b) = s.split_once('-').ok_or_else(err)?;
    let (a, b) = (a.trim().parse::<u32>().map_err(|_| err())?, b.trim().parse::<u32>().map_err(|_| err())?);
    if a > b { Err(err()) } else { Ok((a, b)) }
}

fn simulate(args: SimulateArgs) -> Result<()> {
    let backdate_days = parse_days(&args.backdate_days)?;
    let public_key = match &args.public_key {
        Some(p) => Some(receipt::load_public_key(p).map_err(|e| e.to_string())?),
        None => None,
    };
    let tokens = match (&args.store, args.open_enrolment) {
        (_, true) | (None, _) => Vec::new(),
        (Some(store), false) => {
            let index = open_index(&IndexArgs { store: store.clone(), index: args.index.clone() })?;
            let tag = format!("{:06x}", fastrand::u32(..) & 0xff_ffff);
            (1..=args.customers.max(1))
                .map(|c| {
                    let customer = format!("Simulated customer {c:03} ({tag})");
                    index
                        .create_token(&customer, None, false, now())
                        .map(|(_, t)| (customer, t))
                        .map_err(|e| e.to_string())
                })
                .collect::<Result<Vec<_>>>()?
        }
    };
    let urls = args
        .urls
        .iter()
        .map(|u| {
            let u = u.trim_end_matches('/');
            if u.ends_with("/bundles") { u.to_string() } else { format!("{u}/v1/bundles") }
        })
        .collect();
    let opts = receiver::simulate::SimulateOptions {
        urls,
        ca: args.ca,
        public_key,
        installs: args.installs,
        uploads_per_install: args.uploads_per_install.max(1),
        concurrency: args.concurrency,
        tokens,
        id_prefix: args.id_prefix.unwrap_or_else(|| format!("sim-{:08x}", fastrand::u32(..))),
        backdate_fraction: args.backdate_fraction,
        backdate_days,
        attempts: args.attempts,
        agent_version: args.agent_version,
        product_version: args.product_version,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let report = rt.block_on(receiver::simulate::run(opts, |_, _| {})).map_err(|e| e.to_string())?;
    if let Some(out) = &args.receipts_out {
        let json = serde_json::to_vec_pretty(&report).map_err(|e| e.to_string())?;
        fsutil::write_atomic(out, &json).map_err(|e| format!("--receipts-out {}: {e}", out.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.summary).map_err(|e| e.to_string())?);
    } else {
        print!("{}", report.summary.text());
    }
    if report.summary.failed > 0 {
        let first = report.installs.iter().flat_map(|i| i.failures.iter()).next().cloned().unwrap_or_default();
        return Err(format!("{} upload(s) got no receipt; the first: {first}", report.summary.failed));
    }
    Ok(())
}

async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
