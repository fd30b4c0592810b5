//! The fleet simulator (`callhome-receiver simulate`): N installs, each uploading real bundles —
//! the agent's compliance bundle (`system.json`, `deployment.json`, `licenses.json`,
//! `usage.json`, then `manifest.json` with every file's size and SHA-256) — concurrently over
//! TLS to one or more receivers, as enrolled agents do (`Authorization: Bearer`,
//! `X-Callhome-Install-Id`, `Idempotency-Key`).
//!
//! Each simulated install keeps the receipts it got, checked against the receiver's public key
//! when one is given; [`Report`] holds them all (written as JSON for the fault test's check that
//! every receipt an agent holds has one stored object and one index row) with a summary:
//! uploads per second, p50/p99 latency, final errors by status.
//!
//! Backdating: a fraction of the installs upload as if their last upload were long ago. The
//! receiver honours the time they send in `X-Callhome-Simulated-Received-At` only when it runs
//! with `--allow-backdating`, and ingest records that time as the bundle's `received_at` (the
//! index's last success, the key's date, the receipt), so the fleet view shows them overdue.
//!
//! Like an agent, a simulated install retries a refused or failed attempt (429 and 503 after
//! their `Retry-After`, other 5xx and connection failures after a bounded backoff), each time on
//! the next receiver URL, so a replica that dies mid-run is failed over. It sends only to the
//! URLs it is given and stops after a bounded number of attempts.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;

use callhome_protocol::fs::sha256_hex;
use callhome_protocol::headers::{BUNDLE_CONTENT_TYPE, IDEMPOTENCY_KEY, INSTALL_ID, PROGRAM};
use callhome_protocol::manifest::{MANIFEST_NAME, Manifest, ManifestFile, SCHEMA_VERSION};
use callhome_protocol::receipt::Receipt;
use callhome_protocol::time::{Timestamp, rfc3339};

use crate::http::SIMULATED_RECEIVED_AT;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// The receivers' bundle URLs (`https://HOST:PORT/v1/bundles`), used in turn.
    pub urls: Vec<String>,
    /// Trust only these CAs (PEM) for the receivers (one per replica with an identity of its
    /// own); the system's roots when none.
    pub ca: Vec<PathBuf>,
    /// Check every receipt's signature with this key.
    pub public_key: Option<ed25519_dalek::VerifyingKey>,
    pub installs: usize,
    /// Bundles each install uploads, one after another.
    pub uploads_per_install: usize,
    /// Uploads in flight at once.
    pub concurrency: usize,
    /// Enrolment tokens, handed to the installs in turn; none under open enrolment.
    pub tokens: Vec<(String, String)>,
    /// The installs' ids start with this (`<prefix>-000001`…).
    pub id_prefix: String,
    /// The share of installs (0 to 1) whose uploads are backdated.
    pub backdate_fraction: f64,
    /// How many days back a backdated install's uploads are, at least and at most.
    pub backdate_days: (u32, u32),
    /// Attempts per bundle before it counts as failed.
    pub attempts: u32,
    pub agent_version: String,
    pub product_version: String,
}

/// One receipt a simulated install holds.
#[derive(Debug, Clone, Serialize)]
pub struct HeldReceipt {
    pub receipt_id: String,
    pub bundle_sha256: String,
    pub received_at: String,
    /// The receiver that answered.
    pub url: String,
}

/// One simulated install and what it holds.
#[derive(Debug, Clone, Serialize)]
pub struct SimInstall {
    pub install_id: String,
    /// The customer its token belongs to (none under open enrolment).
    pub customer: Option<String>,
    /// How many days back its uploads were dated, when backdated.
    pub backdated_days: Option<u32>,
    pub receipts: Vec<HeldReceipt>,
    /// Bundles that got no receipt, with the last answer.
    pub failures: Vec<String>,
}

/// The run's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub installs: usize,
    pub uploads: usize,
    pub receipts: usize,
    pub failed: usize,
    pub seconds: f64,
    pub uploads_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Answers that were not a receipt, by status (`connect` for no answer), retried or not.
    pub errors_by_status: BTreeMap<String, u64>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub summary: Summary,
    pub installs: Vec<SimInstall>,
}

/// Why the simulator could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("{0}")]
    Setup(String),
}

/// What one simulated upload came to.
struct Outcome {
    install: usize,
    receipt: Result<HeldReceipt, String>,
    latency: Option<Duration>,
    errors: Vec<String>,
}

/// A bundle as the agent writes one for `install_id` at `created_at`: the compliance upload's
/// files, then the manifest. `serial` makes every bundle distinct.
pub fn compliance_bundle(
    install_id: &str,
    created_at: Timestamp,
    serial: u64,
    agent_version: &str,
    product_version: &str,
) -> Vec<u8> {
    let at = rfc3339(created_at);
    let system = serde_json::json!({
        "arch": "x86_64", "boot_time": at, "cpu": {"brand": "Simulated CPU", "logical": 4, "physical": 2},
        "disks": [{"available_bytes": 35_439_013_888u64, "file_system": "ext4", "mount_point": "/", "total_bytes": 270_553_174_016u64}],
        "hardware_id": sha256_hex(install_id.as_bytes()), "hostname": format!("host-{install_id}"),
        "kernel": "6.1.0", "memory": {"available_bytes": 22_950_723_584u64, "total_bytes": 25_276_510_208u64},
        "os": "Debian GNU/Linux", "os_long_version": "Linux (Debian GNU/Linux 12)", "os_version": "12", "uptime_s": 3600 + serial,
    });
    let deployment = serde_json::json!({
        "agent": {"name": "callhome", "version": agent_version}, "collected_at": at,
        "configuration": {"commands": [], "custom_ca": true, "proxy_configured": false, "receipt_signatures_checked": true, "source": "file", "upload_interval_s": 86400},
        "install_id": install_id, "installed_at": at,
        "product": {"name": "License Server", "version": product_version},
        "programs": [
            {"enabled": true, "mode": "automatic", "name": "telemetry"},
            {"enabled": true, "mode": "automatic", "name": "call_home"},
            {"enabled": false, "mode": "off", "name": "ceip"},
            {"enabled": false, "mode": "off", "name": "events"}
        ],
    });
    let licenses =
        serde_json::json!({"events": [], "files": [], "history": [], "licenses": [], "problems": [], "scanned_at": at});
    let usage = serde_json::json!({
        "features": [{"feature": "solver", "max_in_use": 1 + serial % 7, "installed": 10, "checkouts": 3 + serial, "denials": 0}],
        "window_end": at, "window_start": rfc3339(created_at - 86_400),
    });
    let files: [(&str, &str, serde_json::Value); 4] = [
        ("system.json", "the machine: OS, kernel, host name, hashed hardware id, CPU, memory, disks, uptime", system),
        ("deployment.json", "the agent and product versions, configuration and program states, install id", deployment),
        ("licenses.json", "the license inventory, problems found and license events", licenses),
        ("usage.json", "license usage in the window, per feature", usage),
    ];
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let mut listed = Vec::new();
    for (name, holds, value) in &files {
        let bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
        listed.push(ManifestFile {
            name: name.to_string(),
            holds: holds.to_string(),
            size: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
        });
        // Writing into memory does not fail.
        let _ = zip.start_file(*name, opts).and_then(|()| zip.write_all(&bytes).map_err(Into::into));
    }
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        agent_version: agent_version.into(),
        program: "telemetry".into(),
        upload_type: "compliance".into(),
        install_id: install_id.into(),
        ceip_id: None,
        nonce: None,
        created_at: at,
        files: listed,
        errors: vec![],
    };
    let _ = zip
        .start_file(MANIFEST_NAME, opts)
        .and_then(|()| zip.write_all(&serde_json::to_vec_pretty(&manifest).unwrap_or_default()).map_err(Into::into));
    zip.finish().map(|c| c.into_inner()).unwrap_or_default()
}

/// The install id of install `n`.
pub fn install_id(prefix: &str, n: usize) -> String {
    format!("{prefix}-{n:06}")
}

/// Whether install `n` of `total` is backdated, and by how many days: the first
/// `round(total × fraction)` installs, spread over `days` evenly.
fn backdated(n: usize, total: usize, fraction: f64, days: (u32, u32)) -> Option<u32> {
    let count = (total as f64 * fraction.clamp(0.0, 1.0)).round() as usize;
    (n < count).then(|| {
        let span = days.1.saturating_sub(days.0);
        days.0 + if count > 1 { (span as usize * n / (count - 1)) as u32 } else { 0 }
    })
}

fn client(opts: &SimulateOptions) -> Result<reqwest::Client, SimulateError> {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(opts.concurrency.max(1));
    let mut certs = Vec::new();
    for ca in &opts.ca {
        let pem = std::fs::read(ca).map_err(|e| SimulateError::Setup(format!("--ca {}: {e}", ca.display())))?;
        certs.push(
            reqwest::Certificate::from_pem(&pem)
                .map_err(|e| SimulateError::Setup(format!("--ca {}: not a PEM certificate ({e})", ca.display())))?,
        );
    }
    if !certs.is_empty() {
        b = b.tls_certs_only(certs);
    }
    b.build().map_err(|e| SimulateError::Setup(format!("cannot make the HTTPS client: {e}")))
}

/// Runs the simulation; `progress` is told each finished upload.
pub async fn run(opts: SimulateOptions, progress: impl Fn(usize, usize)) -> Result<Report, SimulateError> {
    if opts.urls.is_empty() {
        return Err(SimulateError::Setup("give at least one --url".into()));
    }
    if !(0.0..=1.0).contains(&opts.backdate_fraction) {
        return Err(SimulateError::Setup("--backdate-fraction must be between 0 and 1".into()));
    }
    let client = client(&opts)?;
    let now = callhome_protocol::time::now();
    let mut installs: Vec<SimInstall> = (0..opts.installs)
        .map(|n| SimInstall {
            install_id: install_id(&opts.id_prefix, n + 1),
            customer: opts.tokens.get(n % opts.tokens.len().max(1)).map(|(c, _)| c.clone()),
            backdated_days: backdated(n, opts.installs, opts.backdate_fraction, opts.backdate_days),
            receipts: Vec::new(),
            failures: Vec::new(),
        })
        .collect();
    let opts = Arc::new(opts);
    let total = installs.len() * opts.uploads_per_install;
    // Upload k of every install before upload k+1 of any, so each install's uploads go in order.
    // The bundles (about 2 KB each) are made before the clock starts, so the simulator's own
    // zip and JSON work is not measured against the receiver it shares the machine with.
    let jobs: Vec<(usize, String, Option<Timestamp>, Vec<u8>)> = (0..opts.uploads_per_install)
        .flat_map(|k| installs.iter().enumerate().map(move |(n, i)| (n, k, i.install_id.clone(), i.backdated_days)))
        .map(|(n, k, id, back)| {
            // Backdated uploads are a minute apart, the newest `back` days ago.
            let at = match back {
                Some(days) => now - i64::from(days) * 86_400 - (opts.uploads_per_install - k) as i64 * 60,
                None => now,
            };
            let body = compliance_bundle(&id, at, k as u64, &opts.agent_version, &opts.product_version);
            (n, id, back.map(|_| at), body)
        })
        .collect();
    let started = Instant::now();
    let mut stream = futures_util::stream::iter(jobs.into_iter().map(|(n, id, backdate, body)| {
        let (client, opts) = (client.clone(), opts.clone());
        async move {
            let token = opts.tokens.get(n % opts.tokens.len().max(1)).map(|(_, t)| t.as_str());
            upload_one(&client, &opts, n, &id, token, backdate, body).await
        }
    }))
    .buffer_unordered(opts.concurrency.max(1));
    let mut latencies = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut done = 0;
    while let Some(o) = stream.next().await {
        done += 1;
        progress(done, total);
        for e in o.errors {
            *errors.entry(e).or_default() += 1;
        }
        latencies.extend(o.latency);
        match o.receipt {
            Ok(r) => installs[o.install].receipts.push(r),
            Err(why) => installs[o.install].failures.push(why),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };
    let receipts: usize = installs.iter().map(|i| i.receipts.len()).sum();
    let summary = Summary {
        installs: installs.len(),
        uploads: total,
        receipts,
        failed: total - receipts,
        seconds,
        uploads_per_s: if seconds > 0.0 { receipts as f64 / seconds } else { 0.0 },
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors_by_status: errors,
    };
    Ok(Report { summary, installs })
}

/// Sends one bundle until it gets a checked receipt or runs out of attempts.
async fn upload_one(
    client: &reqwest::Client,
    opts: &SimulateOptions,
    n: usize,
    install: &str,
    token: Option<&str>,
    backdate: Option<Timestamp>,
    body: Vec<u8>,
) -> Outcome {
    let sha = sha256_hex(&body);
    let body = bytes::Bytes::from(body);
    let mut errors = Vec::new();
    let mut last = String::new();
    for attempt in 0..opts.attempts.max(1) {
        let url = &opts.urls[(n + attempt as usize) % opts.urls.len()];
        let mut req = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, BUNDLE_CONTENT_TYPE)
            .header(IDEMPOTENCY_KEY, &sha)
            .header(INSTALL_ID, install)
            .header(PROGRAM, "telemetry")
            .body(body.clone());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(at) = backdate {
            req = req.header(SIMULATED_RECEIVED_AT, rfc3339(at));
        }
        let started = Instant::now();
        let wait = match req.send().await {
            Ok(resp) if resp.status().is_success() => {
                let status = resp.status();
                let parsed = resp
                    .bytes()
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|b| serde_json::from_slice::<Receipt>(&b).map_err(|e| e.to_string()));
                match parsed {
                    Ok(r) => match r.check(&sha, opts.public_key.as_ref()) {
                        Ok(()) => {
                            let held = HeldReceipt {
                                receipt_id: r.receipt_id,
                                bundle_sha256: r.bundle_sha256,
                                received_at: r.received_at,
                                url: url.clone(),
                            };
                            return Outcome { install: n, receipt: Ok(held), latency: Some(started.elapsed()), errors };
                        }
                        Err(e) => {
                            // A receipt that does not check is not retried: an agent quarantines it.
                            errors.push(format!("{} bad receipt", status.as_u16()));
                            return Outcome { install: n, receipt: Err(format!("{url}: {e}")), latency: None, errors };
                        }
                    },
                    Err(e) => {
                        errors.push(format!("{} unreadable", status.as_u16()));
                        last = format!("{url}: {status} with no receipt ({e})");
                        Some(Duration::from_millis(200))
                    }
                }
            }
            Ok(resp) => {
                let status = resp.status().as_u16();
                errors.push(status.to_string());
                let retry_after =
                    resp.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                let detail = resp.text().await.unwrap_or_default();
                last = format!("{url}: {status} {}", detail.chars().take(300).collect::<String>());
                match status {
                    429 | 503 => Some(Duration::from_secs(retry_after.unwrap_or(1).min(10))),
                    500..=599 => Some(Duration::from_millis(200)),
                    _ => None,
                }
            }
            Err(e) => {
                errors.push(if e.is_timeout() { "timeout".into() } else { "connect".into() });
                last = format!("{url}: {e}");
                Some(Duration::from_millis(100))
            }
        };
        let Some(wait) = wait else { break };
        // Backoff between attempts, as an agent waits before retrying.
        tokio::time::sleep(wait * (attempt + 1).min(4)).await;
    }
    Outcome { install: n, receipt: Err(last), latency: None, errors }
}

impl Summary {
    /// The summary in a few lines, for people and `scripts/bench`.
    pub fn text(&self) -> String {
        let mut s = format!(
            "{} installs, {} uploads: {} receipts, {} failed in {:.2} s — {:.0} uploads/s, p50 {:.1} ms, p99 {:.1} ms\n",
            self.installs,
            self.uploads,
            self.receipts,
            self.failed,
            self.seconds,
            self.uploads_per_s,
            self.p50_ms,
            self.p99_ms
        );
        for (status, n) in &self.errors_by_status {
            s.push_str(&format!("  {n} answer(s) {status}\n"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulated_bundle_passes_the_receivers_own_check() {
        let b = compliance_bundle("sim-1-000001", 1_764_460_800, 3, "0.1.0", "4.2.0");
        let m = crate::zipcheck::check_zip(std::io::Cursor::new(&b)).unwrap();
        assert_eq!((m.install_id.as_str(), m.files.len()), ("sim-1-000001", 4));
        assert_ne!(b, compliance_bundle("sim-1-000001", 1_764_460_800, 4, "0.1.0", "4.2.0"));
        assert!(b.len() < 4096, "a bundle of about 2 KB: {}", b.len());
    }

    #[test]
    fn the_backdated_share_is_exact_and_spread_over_the_days() {
        let picked: Vec<_> = (0..10).filter_map(|n| backdated(n, 10, 0.3, (91, 181))).collect();
        assert_eq!(picked, vec![91, 136, 181]);
        assert_eq!((0..7).filter_map(|n| backdated(n, 7, 0.0, (91, 181))).count(), 0);
        assert_eq!((0..7).filter_map(|n| backdated(n, 7, 1.0, (100, 100))).count(), 7);
    }
}
