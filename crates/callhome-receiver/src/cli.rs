//! The command line of `callhome-receiver`, as clap types.

use std::net::SocketAddr;
use std::path::PathBuf;

use callhome_receiver::{self as receiver, Fault, StoreSpec};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "callhome-receiver", version, about = "The vendor's receiver for callhome bundles")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Take in an export carried from an isolated network and write one signed receipt for it
    /// (the operator's command: no token is asked for).
    Ingest {
        /// The export zip (`callhome export --out …`).
        export: PathBuf,
        /// The store: a folder, or s3://BUCKET/PREFIX (endpoint and credentials from AWS_*).
        #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
        store: StoreSpec,
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
        /// The index (default: STORE/index.sqlite; or postgres://…): the export and its bundles
        /// are recorded there, for the fleet view.
        #[arg(long, value_name = "sqlite:PATH|postgres://…")]
        index: Option<String>,
        /// When the export was received (YYYY-MM-DD or RFC 3339; default: now), for an export
        /// that reached the vendor earlier than it is taken in: the fleet view counts its
        /// license telemetry as uploaded then.
        #[arg(long, value_name = "TIME")]
        received_at: Option<String>,
    },
    /// Serve POST /v1/bundles and /v1/exports over HTTPS.
    Serve(Box<ServeArgs>),
    /// The fleet view: per install its customer, last successful license-telemetry upload, days
    /// since, compliance state and whether its agent or product is out of date.
    #[command(args_conflicts_with_subcommands = true)]
    Fleet {
        #[command(flatten)]
        args: Box<FleetArgs>,
        #[command(subcommand)]
        command: Option<FleetCommand>,
    },
    /// Record in the index every stored bundle it does not know (a replica killed between
    /// storing a bundle and indexing it), keep one copy of a bundle stored twice; safe beside
    /// running replicas. Prints what it did.
    Reconcile {
        #[command(flatten)]
        index: IndexArgs,
        /// The receipt-signing key (PKCS#8 PEM) the replicas use: a stored bundle without a
        /// receipt gets one signed with it.
        #[arg(long, value_name = "FILE")]
        signing_key: PathBuf,
        /// Only the bundles stored under the last DAYS days' keys (default: every one).
        #[arg(long, value_name = "DAYS")]
        days: Option<u32>,
        /// Print what it did as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Simulate a fleet: enrol installs and upload real bundles from them concurrently over TLS
    /// (benchmarks, fault tests). Prints a summary; --receipts-out keeps every receipt held.
    Simulate(Box<SimulateArgs>),
    /// Enrolment tokens: the vendor makes one per install (or per customer) and the customer's
    /// administrator stores it with `callhome register --token-stdin`.
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Exemptions from the reporting rule: signed like receipts, delivered with the install's
    /// next receipt, or carried as a file to an isolated network (`callhome exemption import`).
    Exemptions {
        #[command(subcommand)]
        command: ExemptionsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExemptionsCommand {
    /// Grant an install an exemption until a date (inclusive, UTC); it goes with the install's
    /// next receipt, and with --out into a file as well.
    Grant {
        /// The install's id (`callhome status` shows it).
        #[arg(long = "install", value_name = "ID")]
        install: String,
        /// The last day it covers: YYYY-MM-DD (UTC).
        #[arg(long, value_name = "YYYY-MM-DD")]
        until: String,
        /// Why, in words: the agent shows it in its status and `check`.
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// Also write the signed exemption (JSON) here, for an install without a connection.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The Ed25519 receipt-signing key (PKCS#8 PEM) `serve` signs with; created when absent.
        #[arg(long, value_name = "FILE")]
        signing_key: PathBuf,
        #[command(flatten)]
        index: IndexArgs,
    },
    /// List the exemptions granted, newest first.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        index: IndexArgs,
    },
}

/// Where the store and the index are.
#[derive(Debug, clap::Args)]
pub struct IndexArgs {
    /// The store: a folder (bundles, receipts; the index by default), or s3://BUCKET/PREFIX
    /// for any S3-compatible service (endpoint and credentials from AWS_ENDPOINT_URL,
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ALLOW_HTTP).
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub store: StoreSpec,
    /// The index: sqlite:PATH (default: STORE/index.sqlite; required with an S3 store) or
    /// postgres://USER@HOST:PORT/DATABASE.
    #[arg(long, value_name = "sqlite:PATH|postgres://…")]
    pub index: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct FleetArgs {
    /// Only the installs past the limit (more than 90 days by default).
    #[arg(long, conflicts_with = "state")]
    pub overdue: bool,
    /// Only the installs in this state: ok, warning, critical or overdue.
    #[arg(long, value_name = "STATE")]
    pub state: Option<String>,
    /// JSON: [{install_id, customer, last_success, days_since, state, agent_version,
    /// product_version, outdated}].
    #[arg(long)]
    pub json: bool,
    /// The store folder (its index.sqlite is the index unless --index says otherwise); an S3
    /// store needs --index.
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub store: Option<StoreSpec>,
    /// The index: sqlite:PATH or postgres://USER@HOST:PORT/DATABASE.
    #[arg(long, value_name = "sqlite:PATH|postgres://…")]
    pub index: Option<String>,
    #[command(flatten)]
    pub thresholds: ThresholdArgs,
    #[command(flatten)]
    pub releases: ReleaseArgs,
}

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Adds COUNT synthetic installs in bulk (for benchmarks and trials of the fleet view):
    /// ids seed-CUSTOMER-N, last successes spread evenly over the last --spread-days days.
    Seed {
        #[arg(long)]
        customer: String,
        #[arg(long, value_name = "COUNT")]
        installs: u64,
        #[arg(long, default_value_t = 120)]
        spread_days: u32,
        #[command(flatten)]
        index: IndexArgs,
    },
    /// Shows the index's plan for the list query of a state (default: overdue), to check that
    /// it scans the clock index.
    Explain {
        #[arg(long, default_value = "overdue")]
        state: String,
        #[command(flatten)]
        index: IndexArgs,
    },
}

/// The agent's compliance thresholds (set them as the agents' `[compliance]` section does).
#[derive(Debug, Clone, clap::Args)]
pub struct ThresholdArgs {
    /// Days without a successful license-telemetry upload before an install is overdue.
    #[arg(long, default_value_t = 90)]
    pub max_days: u32,
    /// Days left at which an install turns warning (the largest) and critical (the smallest).
    #[arg(long, value_delimiter = ',', default_value = "30,14,7")]
    pub warn_days: Vec<u32>,
}

/// The newest releases, for the six-month currency rule.
#[derive(Debug, Clone, clap::Args)]
pub struct ReleaseArgs {
    /// The newest agent release (advertised in receipts by `serve`).
    #[arg(long, requires = "latest_released", value_name = "VERSION")]
    pub latest_version: Option<String>,
    /// When that release came out (YYYY-MM-DD).
    #[arg(long, requires = "latest_version", value_name = "DATE")]
    pub latest_released: Option<String>,
    /// The newest product release.
    #[arg(long, requires = "latest_product_released", value_name = "VERSION")]
    pub latest_product_version: Option<String>,
    /// When that product release came out (YYYY-MM-DD).
    #[arg(long, requires = "latest_product_version", value_name = "DATE")]
    pub latest_product_released: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Make a token and print it (alone, on stdout); it is shown only this once.
    Create {
        /// The customer the installs enrolled with it belong to.
        #[arg(long)]
        customer: String,
        /// When it stops working: YYYY-MM-DD (UTC) or an RFC 3339 time.
        #[arg(long, value_name = "DATE")]
        expires: Option<String>,
        /// Let any number of the customer's installs enrol with it (default: the first only).
        #[arg(long)]
        multi_install: bool,
        #[command(flatten)]
        index: IndexArgs,
    },
    /// List the tokens (ids, customers, expiry, revocation, installs enrolled); never the secrets.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        index: IndexArgs,
    },
    /// Revoke a token: its installs get 401 from then on.
    Revoke {
        /// The token's id (`tokens list`).
        token_id: String,
        #[command(flatten)]
        index: IndexArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub index: IndexArgs,
    /// A local folder for bodies being received and checked before they are stored (default:
    /// STORE/.incoming; with an S3 store a private temporary folder). Needs room for
    /// --max-uploads bodies.
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// Let uploads set their received time with X-Callhome-Simulated-Received-At (the fleet
    /// simulator's backdating; logged loudly; never for a real fleet).
    #[arg(long)]
    pub allow_backdating: bool,
    /// At start, record in the index any bundle stored in the last DAYS days that it does not
    /// know (a replica killed between storing a bundle and indexing it); 0: do not. In the
    /// background, beside the uploads. `callhome-receiver reconcile` does it over any span.
    #[arg(long, default_value_t = 2, value_name = "DAYS")]
    pub reconcile_days: u32,
    /// Make (once, kept in STORE/tls) a CA and a certificate for localhost.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"], required_unless_present = "tls_cert")]
    pub tls_self_signed: bool,
    /// Write the self-signed CA certificate (PEM) here, for agents' upload.ca_file.
    #[arg(long, requires = "tls_self_signed", value_name = "FILE")]
    pub ca_out: Option<PathBuf>,
    #[arg(long, requires = "tls_key", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// The Ed25519 receipt-signing key (PKCS#8 PEM); created when absent.
    #[arg(long, value_name = "FILE")]
    pub signing_key: PathBuf,
    /// Write the public key (PEM), for agents' upload.receipt_public_key.
    #[arg(long, value_name = "FILE")]
    pub public_key_out: Option<PathBuf>,
    /// Take bundles and exports from anyone, without a token (demos and tests only; logged
    /// loudly).
    #[arg(long)]
    pub open_enrolment: bool,
    /// A file holding the operator's token (first line): exports through /manual or the API
    /// with `Authorization: Bearer` and that token.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Inject a fault into uploads, in order: status=CODE[,retry-after=S], drop,
    /// delay=DURATION, garbage, bad-signature; each may end with ,times=N.
    #[arg(long = "fault", value_name = "SPEC")]
    pub faults: Vec<Fault>,
    /// Largest bundle or export accepted, in bytes.
    #[arg(long, default_value_t = receiver::DEFAULT_MAX_BODY)]
    pub max_body: u64,
    /// Most bytes the bundles of one export may decompress to.
    #[arg(long, default_value_t = 4 << 30)]
    pub max_export_unpacked: u64,
    /// Most connections open at once (further clients wait).
    #[arg(long, default_value_t = 4096)]
    pub max_connections: usize,
    /// Most bodies received at once (further uploads get 503 with Retry-After).
    #[arg(long, default_value_t = 64)]
    pub max_uploads: usize,
    /// Uploads per second one install may keep up (more get 429 with Retry-After).
    #[arg(long, default_value_t = 10.0)]
    pub install_rate: f64,
    /// Uploads one install may send at once after a quiet spell.
    #[arg(long, default_value_t = 120)]
    pub install_burst: u32,
    /// Anonymous CEIP uploads per second the receiver takes from all senders together (they
    /// name no install to count them by; more get 429 with Retry-After).
    #[arg(long, default_value_t = 50.0)]
    pub ceip_rate: f64,
    /// Anonymous CEIP uploads taken at once after a quiet spell.
    #[arg(long, default_value_t = 500)]
    pub ceip_burst: u32,
    /// How long a client may take for its TLS handshake.
    #[arg(long, default_value = "10s")]
    pub handshake_timeout: humantime::Duration,
    /// How long a client may take to send a request's headers (and to start the next one).
    #[arg(long, default_value = "10s")]
    pub header_timeout: humantime::Duration,
    /// How long a connection may move no byte at all (a stalled body).
    #[arg(long, default_value = "120s")]
    pub idle_timeout: humantime::Duration,
    /// The newest releases: the agent's is advertised in receipts; both measure installs in
    /// the fleet view.
    #[command(flatten)]
    pub releases: ReleaseArgs,
    #[command(flatten)]
    pub thresholds: ThresholdArgs,
}

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// A receiver to upload to (https://HOST:PORT or its …/v1/bundles URL); repeat for replicas,
    /// used in turn and failed over.
    #[arg(long = "url", required = true, value_name = "URL")]
    pub urls: Vec<String>,
    /// Trust only this CA (PEM) for the receivers (the file --ca-out wrote); repeat for
    /// replicas with identities of their own.
    #[arg(long, value_name = "FILE")]
    pub ca: Vec<PathBuf>,
    /// Check every receipt's signature with this public key (the file --public-key-out wrote).
    #[arg(long, value_name = "FILE")]
    pub public_key: Option<PathBuf>,
    /// How many installs.
    #[arg(long, default_value_t = 100)]
    pub installs: usize,
    /// Bundles each install uploads.
    #[arg(long, default_value_t = 1)]
    pub uploads_per_install: usize,
    /// Uploads in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Send no token (the receivers run with --open-enrolment).
    #[arg(long, conflicts_with_all = ["store", "index", "customers"])]
    pub open_enrolment: bool,
    /// Enrol through this store's index: one multi-install token per customer is made there.
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX", required_unless_present = "open_enrolment")]
    pub store: Option<StoreSpec>,
    /// The index to make the tokens in: sqlite:PATH (default: STORE/index.sqlite) or postgres://….
    #[arg(long, value_name = "sqlite:PATH|postgres://…")]
    pub index: Option<String>,
    /// How many customers the installs are spread over (one token each).
    #[arg(long, default_value_t = 10)]
    pub customers: usize,
    /// Install ids are PREFIX-000001, PREFIX-000002, … (default: sim- and a random tag).
    #[arg(long, value_name = "PREFIX")]
    pub id_prefix: Option<String>,
    /// The share of installs (0 to 1) whose uploads are dated in the past, so the fleet view
    /// shows them overdue; the receivers must run with --allow-backdating.
    #[arg(long, default_value_t = 0.0)]
    pub backdate_fraction: f64,
    /// How many days back backdated uploads are: MIN-MAX.
    #[arg(long, default_value = "91-365", value_name = "MIN-MAX")]
    pub backdate_days: String,
    /// Attempts per bundle (retries after 429/503/5xx and connection failures).
    #[arg(long, default_value_t = 5)]
    pub attempts: u32,
    /// Write every install's receipts (and failures) here as JSON.
    #[arg(long, value_name = "FILE")]
    pub receipts_out: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// The agent version the bundles carry.
    #[arg(long, default_value = "0.1.0")]
    pub agent_version: String,
    /// The product version the bundles carry.
    #[arg(long, default_value = "4.2.0")]
    pub product_version: String,
}
