//! `callhome`: the agent (`callhome run`) and its command-line client.
//!
//! This is the edge: it parses arguments, loads the configuration, maps every error to a message
//! that says what to do, and to an exit code (documented in README.md and in [`exit`]).

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use callhome::exit;
use callhome::programs::Program;

#[derive(Debug, Clone, Parser)]
#[command(name = "callhome", version, about = "Call-home and license-telemetry agent", propagate_version = true)]
pub struct Cli {
    /// Configuration file (TOML), read on top of the embedded default.
    #[arg(long, global = true, env = "CALLHOME_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (default: the platform's data folder, or $STATE_DIRECTORY under systemd).
    #[arg(long, global = true, env = "CALLHOME_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Subcommand)]
enum Command {
    /// Run the agent: collect, bundle and upload on schedule until stopped.
    Run {
        /// Accepted for service definitions written for earlier versions: `callhome run` is
        /// always headless (the tray is the separate program `callhome-tray`).
        #[arg(long, hide = true)]
        headless: bool,
    },
    /// Show the compliance clock, pending bundles, programs and last results.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// One line and the Nagios/Icinga exit code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN) from the
    /// compliance clock, the last upload result and license events.
    Check {
        #[arg(long)]
        json: bool,
    },
    /// Check the path to the receiver step by step: DNS, TCP, the proxy's CONNECT and
    /// credentials, TLS and the certificate's issuer, the receiver's probe.
    TestConnection {
        #[arg(long)]
        json: bool,
    },
    /// Collect bundles now (every enabled program, or one).
    Collect {
        #[arg(long, value_name = "PROGRAM")]
        program: Option<Program>,
    },
    /// Upload pending bundles now (collecting license telemetry first when due).
    Upload {
        #[arg(long, value_name = "PROGRAM")]
        program: Option<Program>,
    },
    /// Show a pending bundle's manifest and files exactly as they will be sent.
    Preview {
        /// A bundle file name (from `callhome status`) or path.
        #[arg(required_unless_present = "latest", conflicts_with = "latest")]
        bundle: Option<String>,
        /// The newest pending bundle (of --program, if given).
        #[arg(long)]
        latest: bool,
        #[arg(long, value_name = "PROGRAM")]
        program: Option<Program>,
        /// Print only this file of the bundle, byte for byte.
        #[arg(long, value_name = "NAME", conflicts_with = "json")]
        file: Option<String>,
        /// The bundle's SHA-256, size, manifest and files (name, size, SHA-256) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List upload attempts, newest first.
    History {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// The sent ledger.
    Ledger {
        #[command(subcommand)]
        action: LedgerAction,
    },
    /// Bundles the receiver refused for good, or that failed verification: list, retry, purge.
    Quarantine {
        #[command(subcommand)]
        action: QuarantineAction,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// The license inventory: every feature line with days to expiry, events, problems found.
    Licenses {
        #[arg(long)]
        json: bool,
    },
    /// License usage by feature and hour, from the vendor-daemon debug logs (read up to now).
    Usage {
        /// Only this feature.
        #[arg(long, value_name = "FEATURE")]
        feature: Option<String>,
        /// From this time on: RFC 3339 (`2026-11-01T00:00:00Z`), a date (`2026-11-01`), or a
        /// duration ago (`7d`). Default: everything.
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Write the pending bundles into one zip to carry out of an isolated network
    /// (`export confirm EXPORT_ID` records it as reported without a receipt).
    #[command(args_conflicts_with_subcommands = true)]
    Export {
        #[command(subcommand)]
        action: Option<ExportAction>,
        /// The zip to write (never overwritten).
        #[arg(long, value_name = "FILE", required = false)]
        out: Option<PathBuf>,
        /// Only this program's bundles (default: every program whose consent allows sending).
        #[arg(long, value_name = "PROGRAM")]
        program: Option<Program>,
        /// Split into parts of at most this size (`100MB`, `50MiB`, bytes), each a whole export,
        /// for upload portals that cap file sizes.
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_size: Option<u64>,
    },
    /// Import the receiver's signed receipt for an export: acknowledged bundles leave the spool
    /// and the compliance clock moves to the receipt's time.
    ImportReceipt {
        /// The receipt (`callhome-receiver ingest --receipt-out …`).
        receipt: PathBuf,
    },
    /// Exemptions from the reporting rule the vendor granted this install (they also arrive
    /// with receipts).
    Exemption {
        #[command(subcommand)]
        action: ExemptionAction,
    },
    /// Make a support bundle for a support case (logs, redacted configuration, status, history,
    /// system information, a timed dry run of every collector, case.json); no secret goes in.
    SupportBundle {
        /// The support case number.
        #[arg(long)]
        case: String,
        /// 1 (highest) to 4.
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=4))]
        severity: Option<u8>,
        #[arg(long)]
        impact: Option<String>,
        #[arg(long)]
        summary: Option<String>,
        #[arg(long)]
        contact: Option<String>,
        /// Where to write it (default: exports/ in the data directory).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Also send it to the endpoint, as upload type `support`.
        #[arg(long)]
        upload: bool,
    },
    /// Show or change the data programs.
    Programs {
        #[command(subcommand)]
        action: Option<ProgramsAction>,
    },
    /// Open the web dashboard: asks the running agent for a one-time sign-in link, prints it
    /// and opens it in the browser ($BROWSER, else the system's default).
    Dashboard {
        /// Print the link only.
        #[arg(long)]
        no_open: bool,
    },
    /// The HTTP proxy uploads go through; its password is kept in the OS keyring.
    Proxy {
        #[command(subcommand)]
        action: ProxyAction,
    },
    /// Open alerts (list, acknowledge, take back), test alerts, the alert channels' secrets.
    Alerts {
        #[command(subcommand)]
        action: AlertsAction,
    },
    /// Store the endpoint (registration) token in the OS keyring; uploads present it.
    Register {
        /// Read the token from standard input (one line).
        #[arg(long, required_unless_present = "clear")]
        token_stdin: bool,
        /// Remove the stored token instead.
        #[arg(long, conflicts_with = "token_stdin")]
        clear: bool,
    },
    /// Print a shell completion script (for packaging).
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
    /// Print the man page in roff (for packaging).
    #[command(hide = true)]
    Man,
}

#[derive(Debug, Clone, Subcommand)]
enum ProxyAction {
    /// Use this proxy; with --username, the password is asked for without echo (or read from
    /// standard input with --password-stdin) and stored in the OS keyring, nowhere else.
    Set {
        /// The proxy's URL, such as http://proxy.example:3128 (no credentials in it).
        #[arg(long)]
        url: String,
        #[arg(long)]
        username: Option<String>,
        /// Read the password from standard input (one line) instead of asking.
        #[arg(long, requires = "username")]
        password_stdin: bool,
    },
    /// Show the proxy in use and where its password comes from (never the password).
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Forget the stored proxy and remove its password from the keyring.
    Clear,
}

#[derive(Debug, Clone, Subcommand)]
enum AlertsAction {
    /// The open alerts: id, kind, severity, title, first and last seen, acknowledged until.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge an open alert: `callhome check` and /metrics leave it out through --until
    /// (UTC), or without it until it clears, as long as it does not get worse.
    Ack {
        /// The alert's id (`callhome alerts list`).
        id: String,
        /// The last day it stays acknowledged, as YYYY-MM-DD.
        #[arg(long)]
        until: Option<String>,
        /// Why (shown with the alert).
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Take an acknowledgement back.
    Unack {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Send a test alert on a channel now.
    Test {
        #[arg(long, value_enum)]
        channel: AlertChannel,
        #[arg(long)]
        json: bool,
    },
    /// Store a channel's secret in the OS keyring, nowhere else: the SMTP password of
    /// `alerts.email.user` (--channel email) or the webhook's signing secret (--channel webhook).
    /// It is asked for without echo, or read from standard input with --password-stdin.
    SetPassword {
        #[arg(long, value_enum)]
        channel: SecretChannel,
        /// Read the secret from standard input (one line) instead of asking.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// An alert channel.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum AlertChannel {
    Email,
    Webhook,
    Journal,
}

impl AlertChannel {
    fn name(self) -> &'static str {
        match self {
            AlertChannel::Email => "email",
            AlertChannel::Webhook => "webhook",
            AlertChannel::Journal => "journal",
        }
    }
}

/// An alert channel that has a secret.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SecretChannel {
    Email,
    Webhook,
}

#[derive(Debug, Clone, Subcommand)]
enum ExportAction {
    /// Record an export as reported by hand, without a signed receipt (shown as unverified).
    Confirm { export_id: String },
}

#[derive(Debug, Clone, Subcommand)]
enum QuarantineAction {
    /// List the files in quarantine/ with why each is there.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Re-check a quarantined bundle and queue it again for the next upload.
    Retry {
        /// The file's name, as `quarantine list` shows it.
        id: String,
    },
    /// Delete a quarantined file for good (the ledger records it as purged).
    Purge {
        /// The file's name, as `quarantine list` shows it.
        id: String,
    },
}

#[derive(Debug, Clone, Subcommand)]
enum ExemptionAction {
    /// Import a signed exemption file (`callhome-receiver exemptions grant --out FILE`): checked
    /// against upload.receipt_public_key and this install's id; a forged or foreign one changes
    /// nothing (exit 6).
    Import {
        /// The exemption (JSON).
        file: PathBuf,
    },
}

#[derive(Debug, Clone, Subcommand)]
enum LedgerAction {
    /// Check the hash chain and every receipt's signature.
    Verify,
    /// List the ledger's rows.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Subcommand)]
enum ConfigAction {
    /// Check a configuration file (default: --config) and report every problem.
    Check { file: Option<PathBuf> },
    /// Print the embedded default configuration.
    Default,
    /// Set keys in the configuration file (--config), keeping its comments; the result must
    /// pass `config check`, else the file is not changed. For installers and scripts.
    Set {
        /// Skip `KEY=` pairs with an empty value (an installer's unset options).
        #[arg(long)]
        ignore_empty: bool,
        /// `section.key=value`, such as programs.ceip=false or upload.endpoint=https://…
        #[arg(required = true, value_name = "KEY=VALUE", value_parser = callhome::config_edit::parse_pair)]
        pairs: Vec<(String, String)>,
    },
}

#[derive(Debug, Clone, Subcommand)]
enum ProgramsAction {
    /// List the programs and their state.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Turn an optional program on.
    Enable { program: Program },
    /// Turn an optional program off (its pending bundles are withdrawn).
    Disable { program: Program },
    /// Switch license telemetry to manual reporting (isolated networks).
    Manual,
    /// Switch license telemetry back to automatic uploads.
    Automatic,
    /// Turn an optional program on or off, or switch telemetry between automatic and manual.
    Set {
        program: Program,
        /// on | off (optional programs), automatic | manual (telemetry)
        value: String,
    },
}

/// `100MB` (decimal), `50MiB` (binary), or bytes.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a size such as 100MB"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown size unit {other:?}; use B, KB, MB, GB, KiB, MiB or GiB")),
    };
    let v = (n * mult) as u64;
    if v == 0 { Err("the size must be more than 0".into()) } else { Ok(v) }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli::dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("callhome: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}
