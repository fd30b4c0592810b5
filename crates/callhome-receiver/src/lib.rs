//! The reference receiver: the vendor side of protocol v1, for tests, demos and self-hosting.
//!
//! `POST /v1/bundles` (any path ending in `/bundles`) takes a zip body, checks its SHA-256
//! against `Idempotency-Key`, checks the zip (entry names, sizes, manifest), stores it as
//! `DIR/<sha256>.zip`, and answers a receipt signed with its Ed25519 key; the same bundle again
//! gets the same receipt. Faults can be injected on purpose ([`faults`]). It shares only the
//! receipt and bundle formats with the agent.

pub mod faults;
pub mod ingest;
pub mod tls;

use std::collections::VecDeque;
use std::io::{Cursor, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::{info, warn};

pub use faults::{Fault, FaultKind};
pub use tls::TlsSource;

use callhome_protocol::fs::{self as fsutil, sha256_hex};
use callhome_protocol::manifest::{MAX_ENTRIES, Manifest};
use callhome_protocol::receipt::{self, Receipt};
use callhome_protocol::time::{now, rfc3339};

/// Largest body accepted by default (413 beyond).
pub const DEFAULT_MAX_BODY: u64 = 256 << 20;
/// Most bytes all entries of one bundle may decompress to.
const MAX_UNPACKED: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Key(#[from] receipt::ReceiptError),
}

/// How to run the receiver.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub store: PathBuf,
    pub tls: TlsSource,
    /// Where to copy the self-signed CA (PEM), for agents to trust.
    pub ca_out: Option<PathBuf>,
    pub signing_key: PathBuf,
    pub public_key_out: Option<PathBuf>,
    pub faults: Vec<Fault>,
    pub max_body: u64,
    /// The newest agent release to advertise in receipts.
    pub latest_agent: Option<receipt::LatestAgent>,
}

/// Why a bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: String,
}

/// The receiver's storage: bundles by SHA-256, and the receipt given for each.
pub struct BundleStore {
    dir: PathBuf,
    key: SigningKey,
    /// Serialises acceptance so one bundle gets one receipt.
    lock: Mutex<()>,
    /// The newest agent release to advertise in receipts.
    latest: Option<receipt::LatestAgent>,
}

impl BundleStore {
    pub fn open(dir: &Path, key: SigningKey) -> Result<BundleStore, ReceiverError> {
        let io = |e: std::io::Error| ReceiverError::Io(format!("store {}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(io)?;
        // The store holds customers' bundles: closed to everyone but the receiver's user.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        Ok(BundleStore { dir: dir.to_path_buf(), key, lock: Mutex::new(()), latest: None })
    }

    /// Checks and stores a bundle; returns its receipt and whether it was new.
    pub fn accept(&self, body: &[u8], claimed_sha256: Option<&str>) -> Result<(Receipt, bool), Refusal> {
        let sha = sha256_hex(body);
        if let Some(claimed) = claimed_sha256
            && !claimed.eq_ignore_ascii_case(&sha)
        {
            return Err(Refusal {
                status: 422,
                reason: format!("the body's SHA-256 is {sha}, not the Idempotency-Key {claimed}"),
            });
        }
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let receipt_path = self.dir.join(format!("{sha}.receipt.json"));
        if let Ok(bytes) = std::fs::read(&receipt_path)
            && let Ok(r) = serde_json::from_slice::<Receipt>(&bytes)
        {
            return Ok((r, false));
        }
        check_zip(body).map_err(|reason| Refusal { status: 422, reason })?;
        let internal = |e: std::io::Error| Refusal { status: 500, reason: format!("cannot store the bundle: {e}") };
        fsutil::write_atomic_with_mode(&self.dir.join(format!("{sha}.zip")), body, 0o600).map_err(internal)?;
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| internal(std::io::Error::other(e.to_string())))?;
        let receipt = Receipt::sign(&self.key, hex::encode(id), sha.clone(), rfc3339(now()), self.latest.clone());
        let json = serde_json::to_vec(&receipt).expect("receipts serialize");
        fsutil::write_atomic_with_mode(&receipt_path, &json, 0o600).map_err(internal)?;
        Ok((receipt, true))
    }

    /// Advertise this agent release in new receipts.
    pub fn advertise(mut self, latest: Option<receipt::LatestAgent>) -> BundleStore {
        self.latest = latest;
        self
    }

    /// The receipt-signing key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    fn sign_with(&self, r: &Receipt, key: &SigningKey) -> Receipt {
        Receipt::sign(key, r.receipt_id.clone(), r.bundle_sha256.clone(), r.received_at.clone(), r.latest_agent.clone())
    }
}

/// How much larger than the bundle its unpacked content may be. Telemetry JSON compresses
/// about 10–30×; a zip bomb, thousands of times.
const MAX_RATIO: u64 = 200;

/// Checks a bundle's zip: readable, safe names, bounded sizes, a manifest that parses. Entries
/// are streamed, never held (but the manifest), and a bundle that would unpack to more than
/// [`MAX_RATIO`] times its size (or [`MAX_UNPACKED`]) is refused as soon as that is clear.
pub fn check_zip(body: &[u8]) -> Result<Manifest, String> {
    let mut zip = zip::ZipArchive::new(Cursor::new(body)).map_err(|e| format!("not a zip archive: {e}"))?;
    if zip.len() > MAX_ENTRIES {
        return Err(format!("{} entries is more than {}", zip.len(), MAX_ENTRIES));
    }
    let limit = (body.len() as u64).saturating_mul(MAX_RATIO).saturating_add(1 << 20).min(MAX_UNPACKED);
    let too_big = || format!("the bundle unpacks to more than {limit} bytes (a zip bomb?)");
    // The sizes the archive declares first: a bomb usually says what it is.
    let declared = (0..zip.len()).try_fold(0u64, |sum, i| {
        zip.by_index_raw(i).map(|f| sum.saturating_add(f.size())).map_err(|e| format!("entry {i}: {e}"))
    })?;
    if declared > limit {
        return Err(too_big());
    }
    let mut total = 0u64;
    let mut manifest = None;
    for i in 0..zip.len() {
        let f = zip.by_index(i).map_err(|e| format!("entry {i}: {e}"))?;
        let name = f.enclosed_name().ok_or_else(|| format!("entry {i} has an unsafe name (absolute or ..)"))?;
        let name = name.to_string_lossy().into_owned();
        let mut capped = f.take(limit - total + 1);
        let n = if name == "manifest.json" {
            let mut buf = Vec::new();
            let n = capped.read_to_end(&mut buf).map_err(|e| format!("{name}: {e}"))?;
            if total + n as u64 <= limit {
                manifest = Some(serde_json::from_slice::<Manifest>(&buf).map_err(|e| format!("manifest.json: {e}"))?);
            }
            n as u64
        } else {
            std::io::copy(&mut capped, &mut std::io::sink()).map_err(|e| format!("{name}: {e}"))?
        };
        total += n;
        if total > limit {
            return Err(too_big());
        }
    }
    manifest.ok_or_else(|| "the bundle has no manifest.json".to_string())
}

struct Shared {
    store: BundleStore,
    faults: Mutex<VecDeque<Fault>>,
    max_body: u64,
}

/// The connection was dropped on purpose (a `drop` fault).
#[derive(Debug)]
struct Dropped;
impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}
impl std::error::Error for Dropped {}

impl Shared {
    fn next_fault(&self) -> Option<FaultKind> {
        let mut q = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        let front = q.front_mut()?;
        let kind = front.kind.clone();
        if let Some(t) = &mut front.times {
            *t -= 1;
            if *t == 0 {
                q.pop_front();
            }
        }
        Some(kind)
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Dropped> {
        let path = req.uri().path().to_string();
        match (req.method(), path.as_str()) {
            (&Method::GET, "/healthz") => Ok(text(StatusCode::OK, "ok\n")),
            (&Method::GET, "/manual") => Ok(manual_page()),
            (&Method::GET, "/v1/probe") => Ok(probe(&req)),
            (&Method::POST, "/v1/exports") => self.take_export(req).await,
            (&Method::POST, p) if p.ends_with("/bundles") => self.upload(req).await,
            (_, p) if p.ends_with("/bundles") => Ok(problem(StatusCode::METHOD_NOT_ALLOWED, "use POST")),
            _ => Ok(problem(StatusCode::NOT_FOUND, "no such endpoint; bundles go to POST /v1/bundles")),
        }
    }

    async fn upload(self: Arc<Self>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Dropped> {
        let ctype =
            req.headers().get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let claimed = req.headers().get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string);
        let program = req.headers().get("x-callhome-program").and_then(|v| v.to_str().ok()).unwrap_or("?").to_string();
        let body = match Limited::new(req.into_body(), self.max_body as usize).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Ok(problem(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("bundles are limited to {} bytes", self.max_body),
                ));
            }
            Err(e) => return Ok(problem(StatusCode::BAD_REQUEST, &format!("reading the body: {e}"))),
        };
        let fault = self.next_fault();
        match &fault {
            Some(FaultKind::Drop) => {
                warn!("fault: dropping the connection");
                return Err(Dropped);
            }
            Some(FaultKind::Status { code, retry_after }) => {
                warn!(code, "fault: answering a status");
                let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                let mut resp = problem(status, "fault injected by callhome-receiver --fault");
                if let Some(s) = retry_after {
                    resp.headers_mut()
                        .insert(hyper::header::RETRY_AFTER, s.to_string().parse().expect("digits are a header value"));
                }
                return Ok(resp);
            }
            _ => {}
        }
        if !ctype.starts_with("application/zip") {
            return Ok(problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send the bundle as Content-Type: application/zip"));
        }
        let Some(claimed) = claimed else {
            return Ok(problem(
                StatusCode::BAD_REQUEST,
                "the Idempotency-Key header (the bundle's SHA-256) is missing",
            ));
        };
        let shared = self.clone();
        let accepted = tokio::task::spawn_blocking(move || shared.store.accept(&body, Some(&claimed)))
            .await
            .unwrap_or_else(|e| Err(Refusal { status: 500, reason: e.to_string() }));
        let (receipt, new) = match accepted {
            Ok(r) => r,
            Err(r) => {
                warn!(status = r.status, "refused a bundle: {}", r.reason);
                return Ok(problem(StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST), &r.reason));
            }
        };
        info!(program, sha256 = %receipt.bundle_sha256, new, "bundle received");
        let receipt = match &fault {
            Some(FaultKind::Delay(d)) => {
                warn!(?d, "fault: delaying the answer");
                tokio::time::sleep(*d).await;
                receipt
            }
            Some(FaultKind::Garbage) => return Ok(text(StatusCode::OK, "<html>surprise</html>")),
            Some(FaultKind::BadSignature) => self.store.sign_with(&receipt, &SigningKey::from_bytes(&[1u8; 32])),
            _ => receipt,
        };
        let status = if new { StatusCode::CREATED } else { StatusCode::OK };
        let mut resp = Response::new(Full::new(Bytes::from(serde_json::to_vec(&receipt).expect("receipts serialize"))));
        *resp.status_mut() = status;
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, "application/json".parse().expect("static"));
        Ok(resp)
    }
}

impl Shared {
    /// An export carried from an isolated network, posted by a person through the manual page.
    async fn take_export(self: Arc<Self>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Dropped> {
        let body = match Limited::new(req.into_body(), self.max_body as usize).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return Ok(problem(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("exports are limited to {} bytes", self.max_body),
                ));
            }
        };
        let shared = self.clone();
        let done = tokio::task::spawn_blocking(move || {
            let dir = shared.store.dir.join(".incoming");
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let path = dir.join(format!("export-{}-{:08x}.zip", std::process::id(), fastrand::u32(..)));
            std::fs::write(&path, &body).map_err(|e| e.to_string())?;
            let r = ingest::ingest(&path, &shared.store, shared.max_body).map_err(|e| e.to_string());
            let _ = std::fs::remove_file(&path);
            r
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        match done {
            Ok(receipt) => {
                info!(export = %receipt.export_id, accepted = receipt.accepted.len(), rejected = receipt.rejected.len(), "export ingested");
                let mut r = Response::new(Full::new(Bytes::from(
                    serde_json::to_vec_pretty(&receipt).expect("receipts serialize"),
                )));
                r.headers_mut().insert(hyper::header::CONTENT_TYPE, "application/json".parse().expect("static"));
                r.headers_mut().insert(
                    hyper::header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"receipt-{}.json\"", receipt.export_id)
                        .parse()
                        .expect("hex is a header value"),
                );
                Ok(r)
            }
            Err(e) => Ok(problem(StatusCode::UNPROCESSABLE_ENTITY, &e)),
        }
    }
}

/// The cheap authenticated probe `callhome test-connection` ends with: an agent names itself.
fn probe(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    match req.headers().get("x-callhome-install-id").and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty()) {
        Some(id) => {
            let body = serde_json::json!({ "ok": true, "install_id": id, "receiver": env!("CARGO_PKG_VERSION") });
            let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, "application/json".parse().expect("static"));
            r
        }
        None => problem(StatusCode::UNAUTHORIZED, "name the agent with X-Callhome-Install-Id"),
    }
}

/// The page where a person hands in an export and takes the receipt home.
fn manual_page() -> Response<Full<Bytes>> {
    const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>callhome: manual upload</title>
<style>body{font-family:sans-serif;max-width:40em;margin:3em auto}pre{background:#f4f4f4;padding:1em}</style></head>
<body><h1>Manual upload</h1>
<p>Choose the export made on the isolated machine with <code>callhome export --out FILE.zip</code>.
You get a signed receipt back; carry it to that machine and run <code>callhome import-receipt RECEIPT.json</code>.</p>
<form id="f"><input type="file" id="file" accept=".zip" required> <button>Upload</button></form>
<pre id="out"></pre>
<script>
document.getElementById('f').addEventListener('submit', async (e) => {
  e.preventDefault();
  const file = document.getElementById('file').files[0];
  const out = document.getElementById('out');
  out.textContent = 'uploading…';
  const r = await fetch('/v1/exports', {method: 'POST', headers: {'Content-Type': 'application/zip'}, body: file});
  const text = await r.text();
  if (!r.ok) { out.textContent = 'refused: ' + text; return; }
  const receipt = JSON.parse(text);
  out.textContent = receipt.accepted.length + ' accepted, ' + receipt.rejected.length + ' rejected.';
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([text], {type: 'application/json'}));
  a.download = 'receipt-' + receipt.export_id + '.json';
  a.textContent = 'Download the receipt';
  out.appendChild(document.createElement('br'));
  out.appendChild(a);
});
</script></body></html>
"#;
    let mut r = Response::new(Full::new(Bytes::from_static(PAGE.as_bytes())));
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, "text/html; charset=utf-8".parse().expect("static"));
    r
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r
}

fn problem(status: StatusCode, detail: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "title": status.canonical_reason().unwrap_or(""), "status": status.as_u16(), "detail": detail });
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, "application/problem+json".parse().expect("static"));
    r
}

/// Prepares keys, TLS and the listener; `ready` gets the bound address before serving starts.
pub async fn serve(
    opts: ServeOptions,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ReceiverError> {
    let key = receipt::load_or_create_signing_key(&opts.signing_key)?;
    if let Some(out) = &opts.public_key_out {
        fsutil::write_atomic(out, receipt::public_key_pem(&key).as_bytes())
            .map_err(|e| ReceiverError::Io(format!("--public-key-out {}: {e}", out.display())))?;
    }
    let store = BundleStore::open(&opts.store, key)?.advertise(opts.latest_agent.clone());
    let (tls, ca) = tls::server_config(&opts.tls, &opts.store)?;
    if let (Some(out), Some(ca)) = (&opts.ca_out, ca) {
        fsutil::write_atomic(out, ca.as_bytes())
            .map_err(|e| ReceiverError::Io(format!("--ca-out {}: {e}", out.display())))?;
    }
    let listener = TcpListener::bind(opts.listen)
        .await
        .map_err(|e| ReceiverError::Io(format!("cannot listen on {}: {e}", opts.listen)))?;
    let addr = listener.local_addr().map_err(|e| ReceiverError::Io(e.to_string()))?;
    let shared = Arc::new(Shared { store, faults: Mutex::new(opts.faults.into()), max_body: opts.max_body });
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    ready(addr);
    tokio::pin!(shutdown);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => { warn!("accept: {e}"); continue; }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        conns.spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    warn!(%peer, "TLS handshake failed: {e}");
                    return;
                }
            };
            let svc = hyper::service::service_fn(move |req| shared.clone().handle(req));
            if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc).await {
                info!(%peer, "connection ended: {e}");
            }
        });
        while conns.try_join_next().is_some() {}
    }
    conns.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use callhome_protocol::manifest::{ManifestFile, SCHEMA_VERSION};

    /// A bundle as the agent makes one: a data file, then the manifest that lists it.
    fn bundle_bytes() -> Vec<u8> {
        let data = br#"{"x": 1}"#;
        let manifest = Manifest {
            schema_version: SCHEMA_VERSION,
            agent_version: "0.1.0".into(),
            program: "telemetry".into(),
            upload_type: "compliance".into(),
            install_id: "i".into(),
            created_at: rfc3339(1),
            files: vec![ManifestFile {
                name: "a.json".into(),
                holds: "test data".into(),
                size: data.len() as u64,
                sha256: sha256_hex(data),
            }],
            errors: vec![],
        };
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        zip.start_file("a.json", opts).unwrap();
        zip.write_all(data).unwrap();
        zip.start_file("manifest.json", opts).unwrap();
        zip.write_all(&serde_json::to_vec(&manifest).unwrap()).unwrap();
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn accept_is_idempotent_and_checks_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = BundleStore::open(&dir.path().join("s"), SigningKey::from_bytes(&[3u8; 32])).unwrap();
        let body = bundle_bytes();
        let sha = sha256_hex(&body);
        let (r1, new1) = store.accept(&body, Some(&sha)).unwrap();
        let (r2, new2) = store.accept(&body, Some(&sha)).unwrap();
        assert!(new1 && !new2);
        assert_eq!(r1, r2);
        r1.check(&sha, Some(&SigningKey::from_bytes(&[3u8; 32]).verifying_key())).unwrap();
        assert_eq!(store.accept(&body, Some(&"0".repeat(64))).unwrap_err().status, 422);
        assert_eq!(store.accept(b"junk", None).unwrap_err().status, 422);
        assert!(dir.path().join("s").join(format!("{sha}.zip")).exists());
    }
}
