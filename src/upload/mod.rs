//! The uploader: protocol v1 over HTTPS, and the classification of everything that can go wrong.
//!
//! This is the only module that talks to the outside network. It streams a bundle's bytes from
//! disk, sends the protocol headers (DESIGN §5), reads and checks the receipt, and turns every
//! failure into a [`Failure`] with a result [`Code`], a message that says what to do, and a
//! [`Disposition`] that tells the caller whether to keep, retry or quarantine the bundle. It does
//! not touch the spool or the ledger; the agent does.

mod cause;
pub mod diagnose;
pub mod result;

use std::path::Path;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use reqwest::{StatusCode, Url, header};
use tokio_util::io::ReaderStream;

pub use result::Code;

use cause::Cause;

use crate::config::Config;
use crate::receipt::{LedgerHead, Receipt, UploadAnswer, load_public_key};
use crate::secrets::{self, Secret, Source, Value};

/// Largest receipt body read from a receiver.
const MAX_RECEIPT_BYTES: usize = 64 * 1024;

/// The environment variable that carries the proxy password (never the config file).
pub const PROXY_PASSWORD_ENV: &str = "CALLHOME_PROXY_PASSWORD";

/// Where the proxy password may come from, for messages.
const PASSWORD_HINT: &str =
    "the proxy password (`callhome proxy set`, CALLHOME_PROXY_PASSWORD or the systemd credential proxy-password)";

/// How uploads reach the endpoint: the proxy (`callhome proxy set`'s choice, kept in the state
/// database, or the config's `upload.proxy*` keys) with its password, and the endpoint token —
/// both secrets from [`crate::secrets`].
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub url: Option<String>,
    pub user: Option<String>,
    pub password: Option<(Value, Source)>,
    pub no_proxy: Option<String>,
    /// `settings` when `callhome proxy set` chose the proxy, `config` otherwise.
    pub origin: &'static str,
    pub token: Option<(Value, Source)>,
}

/// What the state database says about the proxy and the keyring.
#[derive(Debug, Clone, Default)]
pub struct StoredAccess {
    /// The URL and user `callhome proxy set` saved.
    pub proxy: Option<(String, Option<String>)>,
    /// The keyring holds a proxy password / an endpoint token (it is asked only then, so a
    /// machine that never stored one never wakes a keyring daemon).
    pub password_in_keyring: bool,
    pub token_in_keyring: bool,
}

impl Access {
    /// Looks each secret up (environment, systemd credential, then the keyring when it holds
    /// one). A keyring that cannot be read is logged and leaves the secret unset.
    pub fn resolve(cfg: &Config, stored: &StoredAccess) -> Access {
        let (url, user, origin) = match &stored.proxy {
            Some((url, user)) => (Some(url.clone()), user.clone(), "settings"),
            None => (cfg.upload.proxy.clone(), cfg.upload.proxy_user.clone(), "config"),
        };
        let find = |s: Secret, keyring: bool| {
            secrets::lookup(s, keyring).unwrap_or_else(|e| {
                tracing::warn!("{e}");
                None
            })
        };
        let password = if user.is_some() { find(Secret::ProxyPassword, stored.password_in_keyring) } else { None };
        let token = find(Secret::EndpointToken, stored.token_in_keyring);
        Access { url, user, password, no_proxy: cfg.upload.no_proxy.clone(), origin, token }
    }

    /// The password's text (empty when there is none).
    pub fn password_text(&self) -> &str {
        self.password.as_ref().map(|(v, _)| v.expose()).unwrap_or("")
    }
}

/// `b` with the uploads' proxy (its user and password, and the hosts that bypass it); the alert
/// webhook goes the same way out.
pub fn proxied(b: reqwest::ClientBuilder, proxy: &Access) -> Result<reqwest::ClientBuilder, String> {
    let Some(url) = &proxy.url else { return Ok(b) };
    let mut p = reqwest::Proxy::all(url.as_str()).map_err(|e| format!("upload.proxy: {e}"))?;
    if let Some(user) = &proxy.user {
        p = p.basic_auth(user, proxy.password_text());
    }
    p = p.no_proxy(match &proxy.no_proxy {
        Some(list) => reqwest::NoProxy::from_string(list),
        None => reqwest::NoProxy::from_env(),
    });
    Ok(b.proxy(p))
}

/// What the caller should do with a bundle after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Keep it and try again later (backoff).
    Retry,
    /// The receiver refused it for good: quarantine it, never retry it blindly.
    Quarantine,
}

/// A failed attempt, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: Code,
    /// What went wrong, in words, with what to do next.
    pub message: String,
    /// The `<Arg>` of the result file: `host:port`, or the HTTP status.
    pub arg: Option<String>,
    pub http_status: Option<u16>,
    pub retry_after: Option<Duration>,
    pub disposition: Disposition,
}

impl Failure {
    fn retry(code: Code, message: String, arg: Option<String>) -> Failure {
        Failure { code, message, arg, http_status: None, retry_after: None, disposition: Disposition::Retry }
    }
}

/// The upload client, built once from the configuration.
#[derive(Debug, Clone)]
pub struct Uploader {
    /// Sends the endpoint token (when there is one) as `Authorization: Bearer`.
    client: reqwest::Client,
    /// Never sends a token: anonymous CEIP uploads, on connections of their own.
    anonymous: reqwest::Client,
    /// The configured proxy and its credentials, to ask why it refused a tunnel.
    proxy: Option<(Url, Option<String>, Value)>,
    endpoint: Url,
    receipt_key: Option<VerifyingKey>,
    install_id: String,
}

/// An HTTPS client for uploads: system roots plus `upload.ca_file`, timeouts, proxy, and `token`
/// as `Authorization: Bearer` on every request when given.
fn build_client(cfg: &Config, proxy: &Access, token: Option<&Value>) -> Result<reqwest::Client, Failure> {
    let config_err = |m: String| Failure::retry(Code::Config, m, None);
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("callhome/", env!("CARGO_PKG_VERSION")))
        .https_only(true)
        .connect_timeout(cfg.upload.connect_timeout)
        .read_timeout(cfg.upload.read_timeout)
        .timeout(cfg.upload.timeout)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(ca) = &cfg.upload.ca_file {
        let path = cfg.resolve(ca);
        let pem = std::fs::read(&path).map_err(|e| config_err(format!("upload.ca_file {}: {e}", path.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| config_err(format!("upload.ca_file {}: not PEM certificates ({e})", path.display())))?;
        b = b.tls_certs_merge(certs);
    }
    b = proxied(b, proxy).map_err(config_err)?;
    if let Some(token) = token {
        let mut v = header::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| config_err("the endpoint token holds characters a header cannot carry".into()))?;
        v.set_sensitive(true);
        b = b.default_headers(header::HeaderMap::from_iter([(header::AUTHORIZATION, v)]));
    }
    b.build().map_err(|e| config_err(format!("cannot set up HTTPS: {}", chain(&e))))
}

/// A bundle to send.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub path: &'a Path,
    pub sha256: &'a str,
    pub size: u64,
    /// The `X-Callhome-Program` header: a program's name, or `support`.
    pub program: &'a str,
}

impl Uploader {
    /// Builds the clients: system roots plus `upload.ca_file`, timeouts, proxy; one that sends
    /// the endpoint token, and one for anonymous CEIP uploads that never does (and never shares a
    /// connection or TLS session with the first).
    pub fn new(cfg: &Config, install_id: &str, proxy: &Access) -> Result<Uploader, Failure> {
        let config_err = |m: String| Failure::retry(Code::Config, m, None);
        let endpoint = Url::parse(&cfg.upload.endpoint).map_err(|e| config_err(format!("upload.endpoint: {e}")))?;
        let mut probe = None;
        if let Some(url) = &proxy.url
            && let Ok(u) = Url::parse(url)
        {
            probe = Some((u, proxy.user.clone(), Value::new(proxy.password_text())));
        }
        let client = build_client(cfg, proxy, proxy.token.as_ref().map(|(t, _)| t))?;
        let anonymous = build_client(cfg, proxy, None)?;
        let receipt_key = match &cfg.upload.receipt_public_key {
            Some(k) => Some(load_public_key(&cfg.resolve(k)).map_err(|e| config_err(e.to_string()))?),
            None => None,
        };
        Ok(Uploader { client, anonymous, proxy: probe, endpoint, receipt_key, install_id: install_id.to_string() })
    }

    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    fn host_port(&self) -> String {
        format!("{}:{}", self.endpoint.host_str().unwrap_or("?"), self.endpoint.port_or_known_default().unwrap_or(443))
    }

    /// Sends one bundle; on success, the checked receipt.
    pub async fn send(&self, b: Outgoing<'_>) -> Result<Receipt, Failure> {
        self.send_anchored(b, None).await.map(|a| a.receipt)
    }

    /// Sends one anonymous CEIP bundle: no endpoint token, no install id, no ledger head, on a
    /// connection of its own; the receiver takes it only because its manifest says it is an
    /// anonymous CEIP bundle. On success, the checked receipt.
    pub async fn send_anonymous(&self, b: Outgoing<'_>) -> Result<Receipt, Failure> {
        self.post(&self.anonymous, b, None, false).await.map(|a| a.receipt)
    }

    /// Sends one bundle declaring the ledger's `head` (the receiver signs it into the receipt);
    /// on success, the checked receipt and what came beside it (an exemption, unchecked: the
    /// agent checks it against its install).
    pub async fn send_anchored(&self, b: Outgoing<'_>, head: Option<&LedgerHead>) -> Result<UploadAnswer, Failure> {
        self.post(&self.client, b, head, true).await
    }

    /// POSTs the bundle with `client`, naming the install when `named`.
    async fn post(
        &self,
        client: &reqwest::Client,
        b: Outgoing<'_>,
        head: Option<&LedgerHead>,
        named: bool,
    ) -> Result<UploadAnswer, Failure> {
        use callhome_protocol::headers;
        let file = tokio::fs::File::open(b.path)
            .await
            .map_err(|e| Failure::retry(Code::Disk, format!("cannot read {}: {e}", b.path.display()), None))?;
        let body = reqwest::Body::wrap_stream(ReaderStream::with_capacity(file, 64 * 1024));
        let mut req = client
            .post(self.endpoint.clone())
            .header(header::CONTENT_TYPE, headers::BUNDLE_CONTENT_TYPE)
            .header(header::CONTENT_LENGTH, b.size)
            .header(headers::IDEMPOTENCY_KEY, b.sha256)
            .header(headers::PROGRAM, b.program);
        if named {
            req = req.header(headers::INSTALL_ID, &self.install_id);
        }
        if let Some(h) = head {
            req = req.header(headers::LEDGER_HEAD, h.to_header());
        }
        let resp = req.body(body).send().await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                let cause = Cause::of(&e);
                let f = self.failure(cause, &e);
                return Err(if cause == Cause::TunnelRefused { self.refine(f).await } else { f });
            }
        };
        let status = resp.status();
        let retry_after =
            resp.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
        if status == StatusCode::OK || status == StatusCode::CREATED {
            let bytes = read_capped(resp).await.map_err(|e| self.classify(&e))?;
            let Some(bytes) = bytes else {
                return Err(receipt_failure(status, "the receipt is larger than 64 KiB".into()));
            };
            let receipt: Receipt = serde_json::from_slice(&bytes)
                .map_err(|e| receipt_failure(status, format!("the receiver's answer is not a receipt ({e})")))?;
            receipt.check(b.sha256, self.receipt_key.as_ref()).map_err(|e| receipt_failure(status, e.to_string()))?;
            return Ok(UploadAnswer { receipt, exemption: exemption_beside(&bytes) });
        }
        Err(classify_status(status, retry_after, &self.endpoint))
    }

    /// A refused tunnel ([`Cause::TunnelRefused`]): asks the proxy once more to learn whether
    /// it refused the login.
    async fn refine(&self, f: Failure) -> Failure {
        let Some((url, user, password)) = &self.proxy else { return f };
        match diagnose::connect_status(url, &self.host_port(), user.as_deref(), password.expose()).await {
            Some(status @ (401 | 403 | 407)) => Failure::retry(
                Code::ProxyAuth,
                format!(
                    "the proxy refused the login (it answered {status} to CONNECT {}); check the proxy user and {PASSWORD_HINT}",
                    self.host_port()
                ),
                f.arg,
            ),
            _ => f,
        }
    }

    fn classify(&self, e: &reqwest::Error) -> Failure {
        self.failure(Cause::of(e), e)
    }

    /// The failure a cause makes, with what to do about it.
    fn failure(&self, cause: Cause, e: &reqwest::Error) -> Failure {
        let detail = chain(e);
        let arg = Some(self.host_port());
        match cause {
            Cause::ProxyAuth => Failure::retry(
                Code::ProxyAuth,
                format!("the proxy refused the credentials ({detail}); check the proxy user and {PASSWORD_HINT}"),
                arg,
            ),
            Cause::ProxyDown => Failure::retry(
                Code::Proxy,
                format!(
                    "cannot reach the proxy ({detail}); check upload.proxy (or HTTPS_PROXY) and that the proxy runs"
                ),
                arg,
            ),
            Cause::TunnelRefused => Failure::retry(
                Code::Proxy,
                format!(
                    "the proxy refused to open a tunnel to {} ({detail}); check the proxy URL, user and {PASSWORD_HINT}, and that the proxy may reach the endpoint",
                    self.host_port()
                ),
                arg,
            ),
            Cause::Timeout => Failure::retry(
                Code::Timeout,
                format!("no answer from {} in time ({detail}); the bundle is kept and retried", self.host_port()),
                arg,
            ),
            Cause::Tls => Failure::retry(
                Code::Tls,
                format!(
                    "TLS with {} failed ({detail}); check upload.ca_file and the receiver's certificate",
                    self.host_port()
                ),
                arg,
            ),
            Cause::Network => Failure::retry(
                Code::NetworkOpen,
                format!(
                    "cannot reach {} ({detail}); check the network, DNS and proxy; the bundle is kept and retried",
                    self.host_port()
                ),
                arg,
            ),
        }
    }
}

fn receipt_failure(status: StatusCode, why: String) -> Failure {
    Failure {
        code: Code::Receipt,
        message: format!("{why}; the bundle is kept and retried"),
        arg: Some(status.as_u16().to_string()),
        http_status: Some(status.as_u16()),
        retry_after: None,
        disposition: Disposition::Retry,
    }
}

/// Classifies a non-success HTTP status (DESIGN §5).
pub fn classify_status(status: StatusCode, retry_after: Option<Duration>, endpoint: &Url) -> Failure {
    let n = status.as_u16();
    let (code, disposition, advice) = match n {
        400 | 413 | 415 | 422 => (
            Code::Rejected,
            Disposition::Quarantine,
            "the receiver refused this bundle for good; it was moved to quarantine/",
        ),
        401 | 403 => {
            (Code::Auth, Disposition::Retry, "check the agent's registration and credentials; the bundle is kept")
        }
        407 => (
            Code::ProxyAuth,
            Disposition::Retry,
            "the proxy wants credentials: run `callhome proxy set --url URL --username USER` (or set upload.proxy_user and CALLHOME_PROXY_PASSWORD)",
        ),
        404 => (Code::HttpStatus, Disposition::Retry, "check upload.endpoint; the bundle is kept"),
        _ => (Code::HttpStatus, Disposition::Retry, "the bundle is kept and retried later"),
    };
    Failure {
        code,
        message: format!("{endpoint} answered {status}: {advice}"),
        arg: Some(n.to_string()),
        http_status: Some(n),
        retry_after,
        disposition,
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v.trim()).ok()?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// The exemption beside a receipt, if the answer carries one that can be read: a malformed one
/// is logged and never costs the receipt.
fn exemption_beside(answer: &[u8]) -> Option<callhome_protocol::exemption::Exemption> {
    let value: serde_json::Value = serde_json::from_slice(answer).ok()?;
    let e = value.get("exemption").filter(|v| !v.is_null())?;
    serde_json::from_value(e.clone())
        .map_err(|err| tracing::warn!("the receiver sent an exemption that cannot be read ({err}); it is ignored"))
        .ok()
}

async fn read_capped(mut resp: reqwest::Response) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        out.extend_from_slice(&chunk);
        if out.len() > MAX_RECEIPT_BYTES {
            return Ok(None);
        }
    }
    Ok(Some(out))
}

/// An error and its causes on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let part = c.to_string();
        if !s.contains(&part) {
            s.push_str(": ");
            s.push_str(&part);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_per_the_protocol() {
        let url = Url::parse("https://r.example/v1/bundles").unwrap();
        let c = |n: u16| {
            let f = classify_status(StatusCode::from_u16(n).unwrap(), None, &url);
            (f.code, f.disposition)
        };
        for n in [408, 425, 429, 500, 502, 503, 504] {
            assert_eq!(c(n), (Code::HttpStatus, Disposition::Retry), "{n}");
        }
        for n in [400, 413, 415, 422] {
            assert_eq!(c(n), (Code::Rejected, Disposition::Quarantine), "{n}");
        }
        assert_eq!(c(401), (Code::Auth, Disposition::Retry));
        assert_eq!(c(403), (Code::Auth, Disposition::Retry));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
