//! `callhome-receiver`: the reference ingestion server (protocol v1), for tests, demos and
//! self-hosting.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use callhome_protocol::fs as fsutil;
use callhome_protocol::receipt;
use callhome_receiver::{self as receiver, Fault, ServeOptions, TlsSource};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "callhome-receiver", version, about = "Reference receiver for callhome bundles")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Take in an export carried from an isolated network and write one signed receipt for it.
    Ingest {
        /// The export zip (`callhome export --out …`).
        export: PathBuf,
        #[arg(long)]
        store: PathBuf,
        /// The Ed25519 receipt-signing key (PKCS#8 PEM); created when absent.
        #[arg(long, value_name = "FILE")]
        signing_key: PathBuf,
        /// Where to write the receipt (JSON) to carry back.
        #[arg(long, value_name = "FILE")]
        receipt_out: PathBuf,
        /// Write the public key (PEM), for agents' upload.receipt_public_key.
        #[arg(long, value_name = "FILE")]
        public_key_out: Option<PathBuf>,
        /// Largest bundle accepted, in bytes.
        #[arg(long, default_value_t = receiver::DEFAULT_MAX_BODY)]
        max_body: u64,
    },
    /// Serve POST /v1/bundles over HTTPS.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Where bundles (<sha256>.zip) and receipts are stored.
    #[arg(long)]
    store: PathBuf,
    /// Make (once, kept in STORE/tls) a CA and a certificate for localhost.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"], required_unless_present = "tls_cert")]
    tls_self_signed: bool,
    /// Write the self-signed CA certificate (PEM) here, for agents' upload.ca_file.
    #[arg(long, requires = "tls_self_signed", value_name = "FILE")]
    ca_out: Option<PathBuf>,
    #[arg(long, requires = "tls_key", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// The Ed25519 receipt-signing key (PKCS#8 PEM); created when absent.
    #[arg(long, value_name = "FILE")]
    signing_key: PathBuf,
    /// Write the public key (PEM), for agents' upload.receipt_public_key.
    #[arg(long, value_name = "FILE")]
    public_key_out: Option<PathBuf>,
    /// Inject a fault into uploads, in order: status=CODE[,retry-after=S], drop,
    /// delay=DURATION, garbage, bad-signature; each may end with ,times=N.
    #[arg(long = "fault", value_name = "SPEC")]
    faults: Vec<Fault>,
    /// Largest bundle accepted, in bytes.
    #[arg(long, default_value_t = receiver::DEFAULT_MAX_BODY)]
    max_body: u64,
    /// Advertise this agent version as the newest release in receipts.
    #[arg(long, requires = "latest_released", value_name = "VERSION")]
    latest_version: Option<String>,
    /// When that release came out (YYYY-MM-DD).
    #[arg(long, requires = "latest_version", value_name = "DATE")]
    latest_released: Option<String>,
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CALLHOME_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    let ServeArgs {
        listen,
        store,
        tls_self_signed,
        ca_out,
        tls_cert,
        tls_key,
        signing_key,
        public_key_out,
        faults,
        max_body,
        latest_version,
        latest_released,
    } = match Cli::parse().command {
        Command::Ingest { export, store, signing_key, receipt_out, public_key_out, max_body } => {
            return ingest(&export, &store, &signing_key, &receipt_out, public_key_out.as_deref(), max_body);
        }
        Command::Serve(args) => args,
    };
    let tls = match (tls_self_signed, tls_cert, tls_key) {
        (true, _, _) => TlsSource::SelfSigned,
        (false, Some(cert), Some(key)) => TlsSource::Files { cert, key },
        _ => unreachable!("clap requires --tls-self-signed or --tls-cert with --tls-key"),
    };
    let latest_agent =
        latest_version.zip(latest_released).map(|(version, released)| receipt::LatestAgent { version, released });
    let opts = ServeOptions { listen, store, tls, ca_out, signing_key, public_key_out, faults, max_body, latest_agent };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("callhome-receiver: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ready = |addr: SocketAddr| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "callhome-receiver listening on https://{addr}/v1/bundles");
        let _ = out.flush();
    };
    match rt.block_on(receiver::serve(opts, ready, shutdown())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("callhome-receiver: {e}");
            ExitCode::FAILURE
        }
    }
}

fn ingest(
    export: &std::path::Path,
    store: &std::path::Path,
    key: &std::path::Path,
    out: &std::path::Path,
    public_key_out: Option<&std::path::Path>,
    max_body: u64,
) -> ExitCode {
    let run = || -> Result<callhome_protocol::export::ManualReceipt, receiver::ReceiverError> {
        let key = receipt::load_or_create_signing_key(key)?;
        if let Some(p) = public_key_out {
            fsutil::write_atomic(p, receipt::public_key_pem(&key).as_bytes())
                .map_err(|e| receiver::ReceiverError::Io(format!("--public-key-out {}: {e}", p.display())))?;
        }
        let store = receiver::BundleStore::open(store, key)?;
        receiver::ingest::ingest(export, &store, max_body)
    };
    match run() {
        Ok(receipt) => {
            let json = serde_json::to_vec_pretty(&receipt).expect("receipts serialize");
            if let Err(e) = fsutil::write_atomic(out, &json) {
                eprintln!("callhome-receiver: {}: {e}", out.display());
                return ExitCode::FAILURE;
            }
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
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("callhome-receiver: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
