//! `callhome-receiver`: the vendor's ingestion server (protocol v1) and its operator commands —
//! `serve`, `tokens create|list|revoke`, `exemptions grant|list`, `fleet` (the fleet view),
//! `ingest` of an export by the operator and `simulate` (the fleet simulator).

mod cli;
mod fleet_cmd;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use callhome_protocol::fs as fsutil;
use callhome_protocol::receipt;
use callhome_protocol::time::{now, parse_rfc3339, rfc3339};
use callhome_receiver::fleet::{Currency, Release, Thresholds};
use callhome_receiver::index::{Index, IndexSpec};
use callhome_receiver::{self as receiver, ServeOptions, TlsSource, conn::ConnLimits, limits::Rate};
use clap::Parser;
use cli::{
    Cli, Command, ExemptionsCommand, IndexArgs, ReleaseArgs, ServeArgs, SimulateArgs, ThresholdArgs, TokensCommand,
};

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
        Command::Ingest { export, store, signing_key, receipt_out, public_key_out, max_body, index, received_at } => {
            let out = IngestOut { receipt: &receipt_out, public_key: public_key_out.as_deref() };
            ingest(&export, &store, index.as_deref(), received_at.as_deref(), &signing_key, out, max_body)
        }
        Command::Fleet { args, command } => fleet_cmd::run(*args, command),
        Command::Serve(args) => serve(*args),
        Command::Tokens { command } => tokens(command),
        Command::Exemptions { command } => exemptions(command),
        Command::Simulate(args) => simulate(*args),
        Command::Reconcile { index, signing_key, days, json } => reconcile(&index, &signing_key, days, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("callhome-receiver: {e}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) type Result<T> = std::result::Result<T, String>;

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
    let currency = currency(&args.releases)?;
    let thresholds = thresholds(&args.thresholds)?;
    let latest_agent = args
        .releases
        .latest_version
        .zip(args.releases.latest_released)
        .map(|(version, released)| release("--latest-version", version, "--latest-released", released))
        .transpose()?;
    let latest_product = args
        .releases
        .latest_product_version
        .zip(args.releases.latest_product_released)
        .map(|(version, released)| release("--latest-product-version", version, "--latest-product-released", released))
        .transpose()?;
    let opts = ServeOptions {
        listen: args.listen,
        index: args.index.index,
        store: args.index.store,
        spool: args.spool,
        tls,
        ca_out: args.ca_out,
        signing_key: args.signing_key,
        public_key_out: args.public_key_out,
        faults: args.faults,
        max_body: args.max_body,
        latest_agent,
        latest_product,
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
        ceip_rate: Rate { per_second: args.ceip_rate, burst: args.ceip_burst },
        max_export_unpacked: args.max_export_unpacked,
        thresholds,
        currency,
        allow_backdating: args.allow_backdating,
        reconcile_days: args.reconcile_days,
    };
    let rt = workers(2)?;
    let ready = |addr: SocketAddr| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "callhome-receiver listening on https://{addr}/v1/bundles");
        let _ = out.flush();
    };
    rt.block_on(receiver::serve(opts, ready, shutdown())).map_err(|e| e.to_string())
}

/// The releases of `--latest-version/--latest-released` and
/// `--latest-product-version/--latest-product-released`.
pub(crate) fn currency(r: &ReleaseArgs) -> Result<Currency> {
    let release = |v: &Option<String>, d: &Option<String>, what: &str| match (v, d) {
        (Some(v), Some(d)) => Release::parse(v, d).map(Some).map_err(|e| format!("{what}: {e}")),
        _ => Ok(None),
    };
    Ok(Currency {
        agent: release(&r.latest_version, &r.latest_released, "--latest-released")?,
        product: release(&r.latest_product_version, &r.latest_product_released, "--latest-product-released")?,
    })
}

/// `--max-days` and `--warn-days`, checked.
pub(crate) fn thresholds(t: &ThresholdArgs) -> Result<Thresholds> {
    if t.max_days == 0 || t.warn_days.iter().any(|w| *w >= t.max_days) {
        return Err(format!(
            "--max-days {} --warn-days {:?}: the limit must be at least a day and every warning below it",
            t.max_days, t.warn_days
        ));
    }
    Ok(Thresholds { max_days: t.max_days, warn_days: t.warn_days.clone() })
}

/// A release to advertise: a version without spaces (it is one word of the signed text) and a
/// date.
fn release(vflag: &str, version: String, dflag: &str, released: String) -> Result<receipt::LatestRelease> {
    if version.is_empty() || version.len() > 64 || version.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{vflag} {version:?}: give a version such as 2.4.1 (no spaces)"));
    }
    if callhome_protocol::exemption::end_of_day(&released).is_none() {
        return Err(format!("{dflag} {released:?}: give the release date as YYYY-MM-DD"));
    }
    Ok(receipt::LatestRelease { version, released })
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

/// A runtime of `n` worker threads (serving, simulating, or driving the index for a caller on
/// this thread: `Handle::block_on` drives nothing on a current-thread runtime).
fn workers(n: usize) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(n)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// A runtime for one operator command's index calls.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

pub(crate) fn open_index(rt: &tokio::runtime::Runtime, args: &IndexArgs) -> Result<Index> {
    let spec = IndexSpec::parse(args.index.as_deref(), &args.store).map_err(|e| e.to_string())?;
    rt.block_on(Index::open(&spec)).map_err(|e| e.to_string())
}

/// The index for a command that only reads or changes what is there (`tokens list`, `fleet`…):
/// a SQLite index that does not exist is an error naming it, not a new empty one that would
/// answer "nothing" for a mistyped `--store`.
pub(crate) fn open_existing_index(rt: &tokio::runtime::Runtime, args: &IndexArgs) -> Result<Index> {
    let spec = IndexSpec::parse(args.index.as_deref(), &args.store).map_err(|e| e.to_string())?;
    if let IndexSpec::Sqlite(path) = &spec
        && !path.exists()
    {
        return Err(format!(
            "no receiver index at {}: give the --store (or --index) that `callhome-receiver serve` uses",
            path.display()
        ));
    }
    rt.block_on(Index::open(&spec)).map_err(|e| e.to_string())
}

/// `--expires`: a date (`YYYY-MM-DD`, the token stops working at its start, UTC) or an RFC 3339
/// time.
pub(crate) fn parse_expiry(s: &str) -> Result<i64> {
    let full = if s.len() == 10 { format!("{s}T00:00:00Z") } else { s.to_string() };
    parse_rfc3339(&full).ok_or_else(|| format!("--expires {s}: give a date such as 2027-06-30, or an RFC 3339 time"))
}

fn tokens(command: TokensCommand) -> Result<()> {
    let rt = runtime()?;
    match command {
        TokensCommand::Create { customer, expires, multi_install, index } => {
            let expires_at = expires.as_deref().map(parse_expiry).transpose()?;
            if expires_at.is_some_and(|e| e <= now()) {
                return Err(format!("--expires {}: that is in the past", expires.unwrap_or_default()));
            }
            let index = open_index(&rt, &index)?;
            let (id, token) = rt
                .block_on(index.create_token(&customer, expires_at, !multi_install, now()))
                .map_err(|e| e.to_string())?;
            println!("{token}");
            eprintln!("token {id} for {customer:?} created; it is shown only now");
            Ok(())
        }
        TokensCommand::List { json, index } => {
            let tokens = rt.block_on(open_existing_index(&rt, &index)?.tokens()).map_err(|e| e.to_string())?;
            let opt = |t: Option<i64>| t.map(rfc3339);
            if json {
                let list: Vec<_> = tokens
                    .iter()
                    .map(|(t, installs)| {
                        serde_json::json!({
                            "id": t.id,
                            "customer": t.customer,
                            "created_at": rfc3339(t.created_at),
                            "expires_at": opt(t.expires_at),
                            "revoked_at": opt(t.revoked_at),
                            "single_install": t.single_install,
                            "installs": installs,
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
                for (t, installs) in &tokens {
                    println!(
                        "{:<16}  {:<24}  {:<8}  {:<20}  {:<20}  {}",
                        t.id,
                        t.customer,
                        if t.single_install { "single" } else { "multi" },
                        opt(t.expires_at).unwrap_or_else(|| "never".into()),
                        opt(t.revoked_at).unwrap_or_else(|| "-".into()),
                        installs
                    );
                }
            }
            Ok(())
        }
        TokensCommand::Revoke { token_id, index } => {
            if rt.block_on(open_existing_index(&rt, &index)?.revoke(&token_id, now())).map_err(|e| e.to_string())? {
                println!("token {token_id} revoked");
                Ok(())
            } else {
                Err(format!("no token {token_id}; `callhome-receiver tokens list` shows the ids"))
            }
        }
    }
}

/// Where `ingest` writes.
struct IngestOut<'a> {
    receipt: &'a Path,
    public_key: Option<&'a Path>,
}

fn exemptions(command: ExemptionsCommand) -> Result<()> {
    use callhome_protocol::exemption::{Exemption, end_of_day};
    match command {
        ExemptionsCommand::Grant { install, until, reason, out, signing_key, index } => {
            let ends =
                end_of_day(&until).ok_or_else(|| format!("--until {until:?}: give the last day as YYYY-MM-DD"))?;
            if ends <= now() {
                return Err(format!("--until {until}: that day is over; give a day from today on"));
            }
            let key = receipt::load_or_create_signing_key(&signing_key).map_err(|e| e.to_string())?;
            let rt = runtime()?;
            let index = open_index(&rt, &index)?;
            let mut id = [0u8; 16];
            getrandom::fill(&mut id).map_err(|e| format!("no randomness for an exemption id: {e}"))?;
            let exemption = Exemption::grant(&key, hex::encode(id), &install, &until, &reason, rfc3339(now()))
                .map_err(|e| e.to_string())?;
            let known = rt.block_on(index.install_known(&install)).map_err(|e| e.to_string())?;
            rt.block_on(index.record_exemption(&exemption)).map_err(|e| e.to_string())?;
            if let Some(out) = &out {
                let json = serde_json::to_vec_pretty(&exemption).map_err(|e| e.to_string())?;
                fsutil::write_atomic(out, &json).map_err(|e| format!("--out {}: {e}", out.display()))?;
            }
            println!("{}", exemption.exemption_id);
            eprintln!(
                "exemption {} for install {install} until {until} (inclusive, UTC) granted: it goes with the install's next receipt{}",
                exemption.exemption_id,
                match &out {
                    Some(p) =>
                        format!("; carry {} to the install and run `callhome exemption import FILE`", p.display()),
                    None => String::new(),
                }
            );
            if !known {
                eprintln!(
                    "note: install {install} has not enrolled with this receiver (check the id with `callhome status` on that machine; an install without a connection takes the --out file)"
                );
            }
            Ok(())
        }
        ExemptionsCommand::List { json, index } => {
            let rt = runtime()?;
            let list = rt.block_on(open_existing_index(&rt, &index)?.exemptions()).map_err(|e| e.to_string())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list).map_err(|e| e.to_string())?);
            } else if list.is_empty() {
                println!(
                    "no exemptions; grant one with `callhome-receiver exemptions grant --install ID --until YYYY-MM-DD --reason TEXT`"
                );
            } else {
                println!("{:<32}  {:<36}  {:<10}  {:<20}  reason", "ID", "INSTALL", "UNTIL", "GRANTED");
                for e in &list {
                    println!(
                        "{:<32}  {:<36}  {:<10}  {:<20}  {}",
                        e.exemption_id, e.install_id, e.until, e.granted_at, e.reason
                    );
                }
            }
            Ok(())
        }
    }
}

fn ingest(
    export: &Path,
    store: &receiver::StoreSpec,
    index: Option<&str>,
    received_at: Option<&str>,
    key: &Path,
    out: IngestOut<'_>,
    max_body: u64,
) -> Result<()> {
    let received_at = match received_at {
        Some(t) => parse_expiry(t)
            .map_err(|_| format!("--received-at {t}: give a date such as 2026-08-01, or an RFC 3339 time"))?,
        None => now(),
    };
    if received_at > now() + 300 {
        return Err("--received-at: that is in the future".into());
    }
    let key = receipt::load_or_create_signing_key(key).map_err(|e| e.to_string())?;
    if let Some(p) = out.public_key {
        fsutil::write_atomic(p, receipt::public_key_pem(&key).as_bytes())
            .map_err(|e| format!("--public-key-out {}: {e}", p.display()))?;
    }
    // A worker thread drives the index's connection: the ingest, on this thread, waits on it
    // for each bundle's lookup (`Handle::block_on` drives nothing on a current-thread runtime).
    let rt = workers(1)?;
    let index = open_index(&rt, &IndexArgs { store: store.clone(), index: index.map(str::to_string) })?;
    let store = receiver::BundleStore::open(store, None, key).map_err(|e| e.to_string())?;
    let limits = receiver::ingest::ExportLimits { max_bundle: max_body, ..Default::default() };
    // The operator runs this command: no token is asked for.
    let known = receiver::ingest::known_in(rt.handle(), &index);
    let (receipt, taken) = receiver::ingest::ingest(export, &store, &limits, &|_| Ok(None), &known, received_at)
        .map_err(|r| format!("{}: {r}", export.display()))?;
    rt.block_on(receiver::record::export(&index, &store, &receipt, taken, received_at)).map_err(|e| e.to_string())?;
    let json = serde_json::to_vec_pretty(&receipt).map_err(|e| e.to_string())?;
    fsutil::write_atomic(out.receipt, &json).map_err(|e| format!("{}: {e}", out.receipt.display()))?;
    println!(
        "export {}: {} bundle(s) accepted, {} rejected; receipt {} written to {}",
        receipt.export_id,
        receipt.accepted.len(),
        receipt.rejected.len(),
        receipt.receipt_id,
        out.receipt.display()
    );
    for r in &receipt.rejected {
        println!("  rejected {}: {}", r.name, r.reason);
    }
    Ok(())
}

/// `reconcile`: the store against the index (see [`receiver::reconcile`]).
fn reconcile(args: &IndexArgs, key: &Path, days: Option<u32>, json: bool) -> Result<()> {
    if !key.is_file() {
        return Err(format!("--signing-key {}: no such file; give the key the replicas sign with", key.display()));
    }
    let key = receipt::load_or_create_signing_key(key).map_err(|e| e.to_string())?;
    let rt = runtime()?;
    let index = open_index(&rt, args)?;
    let store = receiver::BundleStore::open(&args.store, None, key).map_err(|e| e.to_string())?;
    let span = match days {
        Some(days) => receiver::reconcile::Span::LastDays { days, now: now() },
        None => receiver::reconcile::Span::All,
    };
    let done = rt.block_on(receiver::reconcile::run(&store, &index, span)).map_err(|e| format!("reconcile: {e}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&done).map_err(|e| e.to_string())?);
    } else {
        println!(
            "{} stored bundle(s) looked at: {} recorded in the index ({} of them receipted now), {} second copies removed, {} left without their bytes by a crash (left to their agents' retries), {} stored in the last {} minutes with no row or receipt naming them (left to their uploads; run again later), {} foreign key(s) left alone",
            done.bundles,
            done.indexed,
            done.receipted,
            done.removed,
            done.torn,
            done.recent,
            receiver::reconcile::IN_FLIGHT / 60,
            done.foreign
        );
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
            let rt = runtime()?;
            let index = open_index(&rt, &IndexArgs { store: store.clone(), index: args.index.clone() })?;
            let tag = format!("{:06x}", fastrand::u32(..) & 0xff_ffff);
            (1..=args.customers.max(1))
                .map(|c| {
                    let customer = format!("Simulated customer {c:03} ({tag})");
                    rt.block_on(index.create_token(&customer, None, false, now()))
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
    let rt = workers(2)?;
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
