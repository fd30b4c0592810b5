//! `callhome test-connection`: the path to the receiver, step by step, with the one thing to do
//! when a step fails.
//!
//! Steps, in order: name resolution of the endpoint (or of the proxy), the TCP connection, the
//! proxy's CONNECT and its authentication, the TLS handshake and certificate chain (naming the
//! issuer when it is not trusted — the usual sign of a TLS-inspecting firewall), and the
//! receiver's authenticated probe (`GET /v1/probe`). A step that fails ends the run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{Access, PROXY_PASSWORD_ENV};
use crate::config::Config;

const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// One step's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub name: &'static str,
    pub ok: bool,
    pub ms: u64,
    /// What was found (on success) or what went wrong.
    pub detail: String,
    /// On failure: the one thing to do next.
    pub hint: Option<String>,
}

/// The proxy in force: the config's, else the standard environment variables.
fn proxy_url(access: &Access) -> Option<reqwest::Url> {
    let from_env = || {
        ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    };
    access.url.clone().or_else(from_env).and_then(|u| reqwest::Url::parse(&u).ok())
}

/// Sends `CONNECT target` (with basic credentials when `user` is set) on a connection to a
/// proxy; returns the status the proxy answered.
pub async fn connect_reply(
    tcp: &mut TcpStream,
    target: &str,
    user: Option<&str>,
    password: &str,
) -> std::io::Result<u16> {
    let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(u) = user {
        req.push_str(&format!("Proxy-Authorization: Basic {}\r\n", b64(format!("{u}:{password}").as_bytes())));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).await?;
    let mut reader = BufReader::new(tcp);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let code: u16 = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).await? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    Ok(code)
}

/// Asks the proxy for a tunnel to `target` once more, to learn the status behind a refused
/// tunnel (the HTTP client reports only that it was refused).
pub async fn connect_status(proxy: &reqwest::Url, target: &str, user: Option<&str>, password: &str) -> Option<u16> {
    let host = proxy.host_str()?.trim_matches(['[', ']']).to_string();
    let port = proxy.port_or_known_default()?;
    let probe = async {
        let mut tcp = TcpStream::connect((host.as_str(), port)).await?;
        connect_reply(&mut tcp, target, user, password).await
    };
    tokio::time::timeout(STEP_TIMEOUT, probe).await.ok()?.ok()
}

/// Runs every step; stops at the first failure.
pub async fn test_connection(cfg: &Config, install_id: &str, access: &Access) -> Vec<Step> {
    let mut steps = Vec::new();
    let endpoint = match reqwest::Url::parse(&cfg.upload.endpoint) {
        Ok(u) => u,
        Err(e) => {
            steps.push(fail("configuration", Instant::now(), format!("upload.endpoint: {e}"), "fix upload.endpoint"));
            return steps;
        }
    };
    let host = endpoint.host_str().unwrap_or("").to_string();
    let port = endpoint.port_or_known_default().unwrap_or(443);
    let target = format!("{host}:{port}");
    let proxy = proxy_url(access);
    let (dial_host, dial_port) = match &proxy {
        Some(p) => (p.host_str().unwrap_or("").to_string(), p.port_or_known_default().unwrap_or(3128)),
        None => (host.clone(), port),
    };
    let via = if proxy.is_some() { "the proxy " } else { "" };

    // 1. Name resolution.
    let t = Instant::now();
    let addrs: Vec<_> =
        match tokio::time::timeout(STEP_TIMEOUT, tokio::net::lookup_host((dial_host.as_str(), dial_port))).await {
            Ok(Ok(a)) => a.collect(),
            Ok(Err(e)) => {
                steps.push(fail(
                    "dns",
                    t,
                    format!("cannot resolve {via}{dial_host}: {e}"),
                    "check the host name and the machine's DNS servers",
                ));
                return steps;
            }
            Err(_) => {
                steps.push(fail(
                    "dns",
                    t,
                    format!("resolving {via}{dial_host} timed out"),
                    "check the machine's DNS servers",
                ));
                return steps;
            }
        };
    steps.push(pass(
        "dns",
        t,
        format!("{via}{dial_host} is {}", addrs.iter().map(|a| a.ip().to_string()).collect::<Vec<_>>().join(", ")),
    ));

    // 2. TCP.
    let t = Instant::now();
    let mut tcp = match tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(&addrs[..])).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let hint = if proxy.is_some() {
                "check upload.proxy: the proxy does not accept connections".to_string()
            } else {
                format!("allow outbound HTTPS to {target} or configure a proxy (upload.proxy)")
            };
            steps.push(fail("tcp", t, format!("cannot connect to {via}{dial_host}:{dial_port}: {e}"), &hint));
            return steps;
        }
        Err(_) => {
            steps.push(fail(
                "tcp",
                t,
                format!("connecting to {via}{dial_host}:{dial_port} timed out"),
                &format!("allow outbound HTTPS to {target} or configure a proxy"),
            ));
            return steps;
        }
    };
    steps.push(pass("tcp", t, format!("connected to {via}{dial_host}:{dial_port}")));

    // 3. The proxy's CONNECT.
    if let Some(p) = &proxy {
        let t = Instant::now();
        let user = access.user.clone().or_else(|| (!p.username().is_empty()).then(|| p.username().to_string()));
        let password = match &access.password {
            Some((v, _)) => v.expose().to_string(),
            None => p.password().map(str::to_string).unwrap_or_default(),
        };
        let status = connect_reply(&mut tcp, &target, user.as_deref(), &password);
        match tokio::time::timeout(STEP_TIMEOUT, status).await {
            Ok(Ok(200)) => steps.push(pass("proxy", t, format!("the proxy opened a tunnel to {target}"))),
            Ok(Ok(code @ (401 | 403 | 407))) => {
                let hint = match &user {
                    Some(_) => {
                        format!(
                            "the proxy refused the credentials: check the proxy user and the password (`callhome proxy set`, or {PROXY_PASSWORD_ENV})"
                        )
                    }
                    None => "the proxy wants credentials: run `callhome proxy set --url URL --username USER`".into(),
                };
                steps.push(fail("proxy", t, format!("the proxy answered {code} to CONNECT {target}"), &hint));
                return steps;
            }
            Ok(Ok(code)) => {
                steps.push(fail(
                    "proxy",
                    t,
                    format!("the proxy answered {code} to CONNECT {target}"),
                    "ask the proxy's administrator to allow CONNECT to the endpoint",
                ));
                return steps;
            }
            Ok(Err(e)) => {
                steps.push(fail("proxy", t, format!("the proxy closed the connection: {e}"), "check upload.proxy"));
                return steps;
            }
            Err(_) => {
                steps.push(fail("proxy", t, "the proxy did not answer CONNECT in time".into(), "check upload.proxy"));
                return steps;
            }
        }
    }

    // 4. TLS.
    let t = Instant::now();
    let extra: Vec<CertificateDer<'static>> = match &cfg.upload.ca_file {
        Some(ca) => {
            use rustls::pki_types::pem::PemObject;
            match CertificateDer::pem_file_iter(cfg.resolve(ca)).and_then(|it| it.collect::<Result<Vec<_>, _>>()) {
                Ok(c) => c,
                Err(e) => {
                    steps.push(fail("tls", t, format!("upload.ca_file: {e}"), "fix upload.ca_file"));
                    return steps;
                }
            }
        }
        None => Vec::new(),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let inner = match rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone()) {
        Ok(v) => v,
        Err(e) => {
            steps.push(fail("tls", t, format!("cannot load the trusted roots: {e}"), "check upload.ca_file"));
            return steps;
        }
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let verifier = Arc::new(Capturing { inner, seen: seen.clone() });
    let config = match rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions() {
        Ok(b) => b.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth(),
        Err(e) => {
            steps.push(fail("tls", t, e.to_string(), "report this"));
            return steps;
        }
    };
    let name = match ServerName::try_from(host.clone()) {
        Ok(n) => n,
        Err(e) => {
            steps.push(fail("tls", t, format!("{host}: {e}"), "fix upload.endpoint"));
            return steps;
        }
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls = match tokio::time::timeout(STEP_TIMEOUT, connector.connect(name, tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let chain = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let issuer =
                chain.last().and_then(|c: &Vec<u8>| issuer_name(c)).unwrap_or_else(|| "an unknown issuer".into());
            steps.push(fail(
                "tls",
                t,
                format!("the certificate of {target} is not trusted ({e}); it was issued by {issuer}"),
                &format!("if {issuer} is your firewall's TLS inspection, exempt {host} from it or add its CA to upload.ca_file"),
            ));
            return steps;
        }
        Err(_) => {
            steps.push(fail("tls", t, "the TLS handshake timed out".into(), "check that the endpoint speaks HTTPS"));
            return steps;
        }
    };
    let chain = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let issuer = chain.first().and_then(|c| issuer_name(c)).unwrap_or_default();
    steps.push(pass("tls", t, format!("TLS with {host}; certificate issued by {issuer}, trusted")));

    // 5. The receiver's authenticated probe.
    let t = Instant::now();
    let path = {
        let mut u = endpoint.clone();
        u.set_path("/v1/probe");
        u.path().to_string()
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: callhome/{}\r\nX-Callhome-Install-Id: {install_id}\r\nConnection: close\r\n\r\n",
        if port == 443 { host.clone() } else { target.clone() },
        env!("CARGO_PKG_VERSION")
    );
    let probe = async {
        tls.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        let _ = tls.read_to_end(&mut buf).await; // a missing close_notify is no failure here
        Ok::<Vec<u8>, std::io::Error>(buf)
    };
    match tokio::time::timeout(STEP_TIMEOUT, probe).await {
        Ok(Ok(buf)) => {
            let head = String::from_utf8_lossy(&buf[..buf.len().min(200)]).into_owned();
            let code: u16 = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
            match code {
                200 => steps.push(pass("probe", t, format!("the receiver at {target} answered the probe"))),
                401 | 403 => steps.push(fail(
                    "probe",
                    t,
                    format!("the receiver answered {code}"),
                    "check the agent's registration and credentials",
                )),
                0 => steps.push(fail(
                    "probe",
                    t,
                    "no HTTP answer".into(),
                    "check that upload.endpoint is a callhome receiver",
                )),
                _ => steps.push(fail("probe", t, format!("the receiver answered {code}"), "check upload.endpoint")),
            }
        }
        Ok(Err(e)) => steps.push(fail("probe", t, e.to_string(), "check upload.endpoint")),
        Err(_) => steps.push(fail("probe", t, "the receiver did not answer in time".into(), "check upload.endpoint")),
    }
    steps
}

fn pass(name: &'static str, t: Instant, detail: String) -> Step {
    Step { name, ok: true, ms: t.elapsed().as_millis() as u64, detail, hint: None }
}

fn fail(name: &'static str, t: Instant, detail: String, hint: &str) -> Step {
    Step { name, ok: false, ms: t.elapsed().as_millis() as u64, detail, hint: Some(hint.to_string()) }
}

/// Records the chain the server sent, then lets the real verifier decide.
#[derive(Debug)]
struct Capturing {
    inner: rustls_platform_verifier::Verifier,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl ServerCertVerifier for Capturing {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.to_vec()];
        chain.extend(intermediates.iter().map(|c| c.to_vec()));
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = chain;
        self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A certificate's issuer as `CN=…, O=…, OU=…` (the attributes that name who inspects the
/// traffic), or None when the DER is not a certificate.
pub fn issuer_name(der: &[u8]) -> Option<String> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let parts: Vec<String> = cert
        .tbs_certificate()
        .issuer()
        .iter()
        .map(|attr| attr.to_string())
        .filter(|a| ["CN=", "O=", "OU="].iter().any(|k| a.starts_with(k)))
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Base64 (standard alphabet, padded) for proxy credentials.
fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_issuer_names() {
        assert_eq!(b64(b"agent:pw"), "YWdlbnQ6cHc=");
        assert_eq!(b64(b"ab"), "YWI=");
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["x.test".to_string()]).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, "Inspecting Firewall CA");
        p.distinguished_name.push(rcgen::DnType::OrganizationName, "Corp IT");
        let cert = p.self_signed(&key).unwrap();
        assert_eq!(issuer_name(cert.der()).as_deref(), Some("CN=Inspecting Firewall CA, O=Corp IT"));
        assert_eq!(issuer_name(b"\x30\x05junk"), None);
    }
}
