//! The real receiver binary for tests: started on a free port with a self-signed CA in a
//! temporary folder, its log kept in a file, killed when dropped; tokens made through its CLI;
//! bundles and exports built as the agent builds them; an HTTPS client that trusts its CA, and
//! a raw TLS connection for requests no well-behaved client sends.

#![allow(dead_code)]

pub mod fleet;
pub mod garage;
pub mod postgres;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callhome_protocol::export::{EXPORT_FORMAT, ExportManifest, ExportedBundle};
use callhome_protocol::fs::sha256_hex;
use callhome_protocol::manifest::{Manifest, ManifestFile, SCHEMA_VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const BIN: &str = env!("CARGO_BIN_EXE_callhome-receiver");

/// What a replica shares with the receiver it replicates.
pub struct Shared {
    pub store: PathBuf,
    pub key: PathBuf,
}

/// A running receiver.
pub struct Server {
    child: Child,
    pub dir: tempfile::TempDir,
    pub url: String,
    pub base: String,
    pub store: PathBuf,
    pub ca: PathBuf,
    pub log: PathBuf,
    /// What `cli` appends: `--store …` (and `--index …` for an S3 store).
    store_args: Vec<String>,
    /// The environment of the process and of `cli` (the S3 credentials).
    env: Vec<(String, String)>,
}

/// How to start a receiver beyond the defaults.
#[derive(Default)]
pub struct Start<'a> {
    /// `sh -c` prefix such as `ulimit -n 64;`.
    pub shell_prefix: Option<&'a str>,
    /// `--store` and `--index` in place of the local store in the temporary folder.
    pub store_args: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
    /// The store folder and signing key of the receiver this one replicates.
    pub shared: Option<Shared>,
}

impl Server {
    /// Starts `serve` with `extra` options.
    pub fn start(extra: &[&str]) -> Server {
        Self::start_in(tempfile::tempdir().unwrap(), extra, None)
    }

    /// Starts a replica of `of`: the same store and signing key, its own log and address.
    pub fn start_replica(of: &Server, extra: &[&str]) -> Server {
        let shared = Shared { store: of.store.clone(), key: of.dir.path().join("key.pem") };
        let how = Start {
            store_args: Some(of.store_args.clone()),
            env: of.env.clone(),
            shared: Some(shared),
            ..Default::default()
        };
        Self::start_with(tempfile::tempdir().unwrap(), extra, how)
    }

    /// Starts it in `dir`, through `sh -c` with `shell_prefix` (such as `ulimit -n 64;`) when given.
    pub fn start_in(dir: tempfile::TempDir, extra: &[&str], shell_prefix: Option<&str>) -> Server {
        Self::start_with(dir, extra, Start { shell_prefix, ..Default::default() })
    }

    /// Starts it on the bucket of `garage` under `prefix`, its index in the temporary folder.
    pub fn start_s3(garage: &garage::Garage, prefix: &str, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store_args = vec![
            "--store".to_string(),
            format!("s3://{}/{prefix}", garage.bucket),
            "--index".to_string(),
            format!("sqlite:{}", dir.path().join("index.sqlite").display()),
        ];
        Self::start_with(dir, extra, Start { store_args: Some(store_args), env: garage.env(), ..Default::default() })
    }

    /// Starts it in `dir` as `how` says.
    pub fn start_with(dir: tempfile::TempDir, extra: &[&str], how: Start<'_>) -> Server {
        let (store, key) = match how.shared {
            Some(s) => (s.store, s.key),
            None => (dir.path().join("store"), dir.path().join("key.pem")),
        };
        let ca = dir.path().join("ca.pem");
        let log = dir.path().join("receiver.log");
        let store_args = how.store_args.unwrap_or_else(|| vec!["--store".into(), store.display().to_string()]);
        let shell_prefix = how.shell_prefix;
        let mut args: Vec<String> = ["serve", "--listen", "127.0.0.1:0"].map(String::from).to_vec();
        args.extend(store_args.iter().cloned());
        args.extend(["--tls-self-signed".into(), "--ca-out".into(), ca.display().to_string()]);
        args.extend(["--signing-key".into(), key.display().to_string()]);
        args.extend(["--public-key-out".into(), dir.path().join("public.pem").display().to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut cmd = match shell_prefix {
            Some(prefix) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(format!("{prefix} exec \"$0\" \"$@\"")).arg(BIN).args(&args);
                c
            }
            None => {
                let mut c = Command::new(BIN);
                c.args(&args);
                c
            }
        };
        cmd.env("CALLHOME_LOG", "info").envs(how.env.iter().map(|(k, v)| (k, v)));
        cmd.stdout(Stdio::piped()).stderr(std::fs::File::create(&log).unwrap());
        let mut child = cmd.spawn().expect("the receiver starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("https://"))
            .unwrap_or_else(|| {
                panic!("no address in {line:?}; log: {}", std::fs::read_to_string(&log).unwrap_or_default())
            })
            .to_string();
        let base = url.trim_end_matches("/v1/bundles").to_string();
        Server { child, dir, url, base, store, ca, log, store_args, env: how.env }
    }

    /// Kills the process with SIGKILL (no shutdown of any kind) and reaps it.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> String {
        self.base.trim_start_matches("https://").to_string()
    }

    /// Makes a token for `customer` through the CLI (`extra`: `--multi-install`, `--expires …`).
    pub fn token(&self, customer: &str, extra: &[&str]) -> String {
        let out = self.cli(&[&["tokens", "create", "--customer", customer], extra].concat());
        assert!(out.status.success(), "tokens create: {}", String::from_utf8_lossy(&out.stderr));
        let token = String::from_utf8(out.stdout).unwrap();
        assert_eq!(token.lines().count(), 1, "the token alone on stdout: {token:?}");
        token.trim().to_string()
    }

    /// Runs a `callhome-receiver` command against this store, `--store` (and `--index`) appended.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN).args(args).args(&self.store_args).envs(self.env.iter().map(|(k, v)| (k, v))).output().unwrap()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process still runs, and never panicked.
    pub fn assert_alive_and_unpanicked(&mut self) {
        assert!(self.child.try_wait().unwrap().is_none(), "the receiver exited; log:\n{}", self.log_text());
        assert!(!self.log_text().contains("panicked"), "the receiver panicked:\n{}", self.log_text());
    }

    /// A line of /proc/PID/status, in kB (VmHWM, VmRSS).
    pub fn status_kb(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = text.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field} in {text}"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// The stored copies of the bundle `sha` (`bundles/YYYY/MM/DD/<install>/<sha>.zip`).
    pub fn stored(&self, sha: &str) -> Vec<PathBuf> {
        let name = format!("{sha}.zip");
        files_under(&self.store.join("bundles")).into_iter().filter(|p| p.ends_with(&name)).collect()
    }

    /// Open file descriptors of the process.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map(|d| d.count()).unwrap_or(0)
    }

    /// An HTTPS client that trusts this receiver's CA.
    pub fn client(&self) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&self.ca).unwrap()).unwrap();
        reqwest::Client::builder().tls_certs_only([ca]).no_proxy().build().unwrap()
    }

    /// A raw TLS connection to the receiver.
    pub async fn tls(&self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(&self.ca).unwrap();
        use rustls::pki_types::pem::PemObject;
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(self.addr()).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await.unwrap()
    }

    /// Sends `head` (request line and headers, no body) and reads the answer's head and what
    /// of its body comes with it.
    pub async fn raw_head_only(&self, head: &str) -> String {
        let mut tls = self.tls().await;
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.flush().await.unwrap();
        let mut buf = vec![0u8; 16 * 1024];
        let mut got = Vec::new();
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            match tokio::time::timeout(Duration::from_secs(20), tls.read(&mut buf)).await {
                Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                Ok(Ok(n)) => {
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got);
                    if let Some(i) = text.find("\r\n\r\n")
                        && text[i + 4..].contains('}')
                    {
                        break;
                    }
                }
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bundle as the agent makes one for `install_id`: a data file, then the manifest.
pub fn bundle(install_id: &str, data: &[u8]) -> Vec<u8> {
    bundle_with(install_id, &[("usage.json", data)])
}

/// A bundle with these entries (names as given), then the manifest.
pub fn bundle_with(install_id: &str, entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for (name, data) in entries {
        zip.start_file(*name, opts).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.start_file("manifest.json", opts).unwrap();
    zip.write_all(&serde_json::to_vec(&manifest(install_id, entries)).unwrap()).unwrap();
    zip.finish().unwrap().into_inner()
}

fn manifest(install_id: &str, entries: &[(&str, &[u8])]) -> Manifest {
    manifest_as(install_id, "0.1.0", "telemetry", entries)
}

fn manifest_as(install_id: &str, agent_version: &str, program: &str, entries: &[(&str, &[u8])]) -> Manifest {
    Manifest {
        schema_version: SCHEMA_VERSION,
        agent_version: agent_version.into(),
        program: program.into(),
        upload_type: "compliance".into(),
        install_id: install_id.into(),
        ceip_id: None,
        nonce: None,
        created_at: "2026-11-30T00:00:00Z".into(),
        files: entries
            .iter()
            .map(|(n, d)| ManifestFile {
                name: n.to_string(),
                holds: "test data".into(),
                size: d.len() as u64,
                sha256: sha256_hex(d),
            })
            .collect(),
        errors: vec![],
    }
}

/// A Call Home bundle (no license telemetry) from `install_id`.
pub fn call_home_bundle(install_id: &str) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    zip.start_file("system.json", opts).unwrap();
    zip.write_all(b"{}").unwrap();
    zip.start_file("manifest.json", opts).unwrap();
    let m = manifest_as(install_id, "0.1.0", "call_home", &[("system.json", b"{}")]);
    zip.write_all(&serde_json::to_vec(&m).unwrap()).unwrap();
    zip.finish().unwrap().into_inner()
}

/// An anonymous CEIP bundle as the agent makes one: no install id, CEIP's own id `ceip_id`.
pub fn ceip_bundle(ceip_id: &str) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    let data = br#"{"os":"Linux","cpu":{"count":2}}"#;
    zip.start_file("environment.json", opts).unwrap();
    zip.write_all(data).unwrap();
    zip.start_file("manifest.json", opts).unwrap();
    let mut m = manifest_as("", "0.1.0", "ceip", &[("environment.json", data)]);
    m.upload_type = "usage".into();
    m.ceip_id = Some(ceip_id.into());
    zip.write_all(&serde_json::to_vec(&m).unwrap()).unwrap();
    zip.finish().unwrap().into_inner()
}

/// A license-telemetry bundle as the agent makes one: `deployment.json` naming the product
/// version, `usage.json` with one feature at `used_max` of 10, and the manifest naming the
/// agent version.
pub fn telemetry_bundle(install_id: &str, agent_version: &str, product_version: &str, used_max: u32) -> Vec<u8> {
    let deployment = serde_json::json!({
        "install_id": install_id,
        "agent": { "name": "callhome", "version": agent_version },
        "product": { "name": "License Server", "version": product_version },
    });
    let usage = serde_json::json!({
        "window_start": "2026-11-29T00:00:00Z",
        "window_end": "2026-11-30T00:00:00Z",
        "features": [{ "feature": "CAD_PRO", "count_used_max": used_max, "count_installed": 10, "hours": [] }],
    });
    let entries: [(&str, Vec<u8>); 2] =
        [("deployment.json", deployment.to_string().into_bytes()), ("usage.json", usage.to_string().into_bytes())];
    let entries: Vec<(&str, &[u8])> = entries.iter().map(|(n, d)| (*n, d.as_slice())).collect();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for (name, data) in &entries {
        zip.start_file(*name, opts).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.start_file("manifest.json", opts).unwrap();
    zip.write_all(&serde_json::to_vec(&manifest_as(install_id, agent_version, "telemetry", &entries)).unwrap())
        .unwrap();
    zip.finish().unwrap().into_inner()
}

/// A large bundle written to `path`: one stored entry of `size` bytes (distinct per `seed`),
/// then the manifest. Returns its SHA-256.
pub fn big_bundle(path: &Path, install_id: &str, size: u64, seed: u8) -> String {
    let f = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(f));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("perf.bin", opts).unwrap();
    let mut block = vec![0u8; 1 << 20];
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    for b in block.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        zip.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    zip.start_file("manifest.json", zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(&serde_json::to_vec(&manifest(install_id, &[])).unwrap()).unwrap();
    zip.finish().unwrap().into_inner().unwrap().sync_all().unwrap();
    callhome_protocol::fs::sha256_file(path).unwrap().0
}

/// An export whose `export.json` says `manifest` (its bundles' names under `bundles/`), holding
/// `entries` as (name under bundles/, bytes, compress).
pub fn export_zip(manifest: &ExportManifest, entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    zip.start_file("export.json", opts).unwrap();
    zip.write_all(&serde_json::to_vec(manifest).unwrap()).unwrap();
    for (name, bytes) in entries {
        zip.start_file(format!("bundles/{name}"), opts).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// An export of `bundles` (name, bytes) from `install_id`.
pub fn export_of(export_id: &str, install_id: &str, bundles: &[(&str, &[u8])]) -> Vec<u8> {
    let m = ExportManifest {
        format: EXPORT_FORMAT.into(),
        export_id: export_id.into(),
        install_id: install_id.into(),
        created_at: "2026-11-30T00:00:00Z".into(),
        agent_version: "0.1.0".into(),
        bundles: bundles
            .iter()
            .map(|(n, b)| ExportedBundle {
                name: n.to_string(),
                program: "telemetry".into(),
                sha256: sha256_hex(b),
                size: b.len() as u64,
            })
            .collect(),
        ledger_head: None,
    };
    export_zip(&m, bundles)
}

/// A bundle upload of `body` as program `program`, with nobody named yet.
pub fn bundle_request(s: &Server, client: &reqwest::Client, program: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
    client
        .post(&s.url)
        .header("content-type", "application/zip")
        .header("idempotency-key", sha256_hex(&body))
        .header("x-callhome-program", program)
        .body(body)
}

/// POSTs `body` as a bundle from `install_id` with `token` (either may be absent).
pub async fn upload(
    s: &Server,
    client: &reqwest::Client,
    token: Option<&str>,
    install_id: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = bundle_request(s, client, "telemetry", body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(i) = install_id {
        req = req.header("x-callhome-install-id", i);
    }
    req.send().await.unwrap()
}

/// POSTs an export with `token`, if any.
pub async fn post_export(
    s: &Server,
    client: &reqwest::Client,
    token: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = client.post(format!("{}/v1/exports", s.base)).header("content-type", "application/zip");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.body(body).send().await.unwrap()
}

/// The answer's body as JSON.
pub async fn json<T: serde::de::DeserializeOwned>(resp: reqwest::Response) -> T {
    serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
}

/// Asserts the answer is problem+json with `status`; returns its detail.
pub async fn expect_problem(resp: reqwest::Response, status: u16) -> String {
    assert_eq!(resp.status().as_u16(), status, "{:?}", resp.headers());
    let ctype = resp.headers().get("content-type").unwrap().to_str().unwrap().to_string();
    assert_eq!(ctype, "application/problem+json");
    let v: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(v["status"], status);
    let detail = v["detail"].as_str().unwrap().to_string();
    assert!(!detail.is_empty());
    detail
}

/// Every file under `dir`, at any depth (none when it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() { todo.push(p) } else { out.push(p) }
        }
    }
    out.sort();
    out
}

/// Polls `cond` until it holds or `within` passes.
pub fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < end, "timed out after {within:?} waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// GETs `path` (under the receiver's base) with `token`, if any.
pub async fn get(s: &Server, client: &reqwest::Client, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = client.get(format!("{}{path}", s.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

/// Binds `install_id` to `token`'s customer, as `callhome test-connection` does (the probe).
pub async fn enrol(s: &Server, client: &reqwest::Client, token: &str, install_id: &str) {
    let r = client
        .get(format!("{}/v1/probe", s.base))
        .bearer_auth(token)
        .header("x-callhome-install-id", install_id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// The operator's `ingest` of `export` into this receiver's store and `index` (its own when
/// `None`), as received at `received_at`.
pub fn operator_ingest(s: &Server, export: &[u8], index: Option<&str>, received_at: &str) {
    let path = s.dir.path().join(format!("export-{}.zip", sha256_hex(export)));
    std::fs::write(&path, export).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("ingest").arg(&path).arg("--store").arg(&s.store);
    cmd.arg("--signing-key").arg(s.dir.path().join("key.pem"));
    cmd.arg("--receipt-out").arg(s.dir.path().join("manual-receipt.json"));
    cmd.args(["--received-at", received_at]);
    if let Some(i) = index {
        cmd.args(["--index", i]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "ingest: {}", String::from_utf8_lossy(&out.stderr));
}

/// `callhome-receiver fleet ARGS --json` against `index` (this store's when `None`).
pub fn fleet_json(s: &Server, index: Option<&str>, args: &[&str]) -> serde_json::Value {
    let mut cmd = Command::new(BIN);
    cmd.arg("fleet").args(args).arg("--json").arg("--store").arg(&s.store);
    if let Some(i) = index {
        cmd.args(["--index", i]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "fleet: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// An RFC 3339 time `days` days before now.
pub fn days_ago(days: i64) -> String {
    callhome_protocol::time::rfc3339(callhome_protocol::time::now() - days * 86_400)
}
