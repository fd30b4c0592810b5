//! What stands between the browser and the agent: API tokens, the dashboard's session header
//! and its same-origin rule, the exact Host allowlist, the Origin check, the content-type rule
//! for mutations, time limits and security headers.
//!
//! DNS rebinding and cross-site requests have handed local control APIs to strangers; here a
//! request must name this very address in `Host`, carry no foreign `Origin`, and present a token
//! in `Authorization: Bearer` (never in a URL) or the dashboard's session in `X-Callhome-Session`
//! (set by the page's own script, so a browser never sends it anywhere else; cookies are not
//! used, because browsers send them to every port of a host). No CORS headers are ever sent.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::ApiState;
use crate::fsutil;

/// Longest a request may take (the event stream excepted).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The two tokens: full control, and read-only (monitoring).
#[derive(Clone)]
pub struct Tokens {
    write: String,
    read: String,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(..)")
    }
}

impl Tokens {
    /// Reads the token files, creating each (256 random bits, mode 0600, exclusively) when absent.
    pub fn load_or_create(write_path: &Path, read_path: &Path) -> io::Result<Tokens> {
        Ok(Tokens { write: one(write_path)?, read: one(read_path)? })
    }
}

fn one(path: &Path) -> io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => {
            let t = t.trim().to_string();
            if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(t)
            } else {
                Err(io::Error::other(format!(
                    "{} is damaged; delete it and restart the agent to make a new token",
                    path.display()
                )))
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
            let token = hex::encode(bytes);
            match fsutil::write_new_with_mode(path, token.as_bytes(), token_mode(path)) {
                Ok(()) => Ok(token),
                // Another process made it first: use theirs.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => one(path),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// 0600; 0640 when the data directory is open to its group and closed to others (0750, as the
/// system service's is),
/// so the group's members — the desktop tray, administrators' CLI — can reach the agent.
fn token_mode(path: &Path) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = path.parent().and_then(|d| std::fs::metadata(d).ok());
        // Open to its group and closed to others: the group is meant to reach the agent.
        if dir.is_some_and(|m| m.permissions().mode() & 0o057 == 0o050) {
            return 0o640;
        }
    }
    let _ = path;
    0o600
}

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Read,
    Write,
}

/// An `application/problem+json` response.
pub fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail.into(),
    });
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    r
}

/// Paths that need no token (and give no data). `/login` takes a one-time code instead.
fn public(path: &str) -> bool {
    matches!(path, "/healthz" | "/api/openapi.json" | "/" | "/login") || path.starts_with("/ui/")
}

/// How a request proved who it is; the guard adds it to the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Auth {
    pub scope: Scope,
    pub via: Via,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `Authorization: Bearer` with a token from the data directory.
    Bearer,
    /// The dashboard's session header (write scope, same-origin requests only).
    Session,
}

/// The CSP of the dashboard's pages: their own scripts, styles and API, nothing else, no inline
/// script, never framed.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
/// Everything else (JSON, zips, scripts themselves) needs no permission at all.
const DATA_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The middleware every request passes, routed or not: the exact Host, no foreign Origin, and
/// the security headers on every answer.
pub async fn guard(State(st): State<Arc<ApiState>>, req: Request, next: Next) -> Response {
    let mut resp = match check_address(&st, &req) {
        Some(refused) => refused,
        None => next.run(req).await,
    };
    let html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let h = resp.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(if html { PAGE_CSP } else { DATA_CSP }));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The Host and Origin rules; `Some(answer)` refuses the request.
fn check_address(st: &ApiState, req: &Request<Body>) -> Option<Response> {
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !st.allowed_hosts.iter().any(|h| h == host) {
        return Some(problem(
            StatusCode::FORBIDDEN,
            format!("Host {host:?} is not this agent's address; use http://127.0.0.1:{}/", st.port),
        ));
    }
    match req.headers().get(header::ORIGIN) {
        // The sign-in page `callhome dashboard` writes is a file: its form comes from the opaque
        // origin "null". The one-time code is the credential there, and /login changes nothing
        // else.
        Some(_) if req.uri().path() == "/login" => None,
        Some(origin) => {
            let origin = origin.to_str().unwrap_or("");
            (!st.allowed_origins.iter().any(|o| o == origin))
                .then(|| problem(StatusCode::FORBIDDEN, format!("requests from {origin:?} are not accepted")))
        }
        None => None,
    }
}

/// The middleware of every routed request (a method the route does not take is answered 405
/// before it): the credential and its scope, the content-type rule, the time limit.
pub async fn authorize(State(st): State<Arc<ApiState>>, req: Request, next: Next) -> Response {
    check_and_run(&st, req, next).await
}

/// The methods the OpenAPI document declares per route template: a method a route does not
/// take is answered 405 with `Allow` before any credential is asked for (the answer tells
/// nothing the public document does not).
#[derive(Clone, Default)]
pub struct DeclaredMethods(Arc<std::collections::HashMap<String, Vec<Method>>>);

impl DeclaredMethods {
    pub fn of(doc: &serde_json::Value) -> DeclaredMethods {
        let mut map = std::collections::HashMap::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            let methods = item
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(m, _)| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
                .collect();
            map.insert(path.clone(), methods);
        }
        DeclaredMethods(Arc::new(map))
    }

    /// The route `template` is declared and does not take `method` (HEAD goes with GET).
    fn refuses(&self, template: &str, method: &Method) -> bool {
        let Some(methods) = self.0.get(template) else { return false };
        let m = if method == Method::HEAD { &Method::GET } else { method };
        !methods.contains(m)
    }
}

/// Whether the request's method is one its route does not take (answered 405 without a
/// credential).
fn undeclared_method(req: &Request<Body>) -> bool {
    match (req.extensions().get::<axum::extract::MatchedPath>(), req.extensions().get::<DeclaredMethods>()) {
        (Some(template), Some(declared)) => declared.refuses(template.as_str(), req.method()),
        _ => false,
    }
}

/// Whether the request carries a body (a POST without one has no content type to check).
fn has_body(req: &Request<Body>) -> bool {
    let h = req.headers();
    h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() != "0")
}

async fn check_and_run(st: &ApiState, mut req: Request<Body>, next: Next) -> Response {
    if undeclared_method(&req) {
        return next.run(req).await;
    }
    let path = req.uri().path().to_string();
    // An Origin that is not this agent's was refused by `guard` (/login aside).
    let own_origin = path != "/login" && req.headers().contains_key(header::ORIGIN);
    let mutation = !matches!(*req.method(), Method::GET | Method::HEAD);
    if public(&path) {
        // The public pages are the same for everyone: no credential is looked at.
    } else {
        let query = req.uri().query().unwrap_or("");
        if query.split('&').any(|kv| {
            let k = kv.split('=').next().unwrap_or("").to_ascii_lowercase();
            k == "token" || k == "access_token" || k == "api_token"
        }) {
            return problem(
                StatusCode::BAD_REQUEST,
                "tokens are accepted only in the Authorization header, never in a URL",
            );
        }
        let auth = match bearer(&req).map(|t| st.scope_of(t)) {
            Some(Some(scope)) => Auth { scope, via: Via::Bearer },
            Some(None) => return problem(StatusCode::UNAUTHORIZED, "the token is not valid for this agent"),
            None => match session_header(st, &req) {
                Some(true) => {
                    if !same_origin(&req, mutation, own_origin) {
                        return problem(
                            StatusCode::FORBIDDEN,
                            "the dashboard's session is accepted only from the dashboard's own pages (same origin); scripts use Authorization: Bearer",
                        );
                    }
                    Auth { scope: Scope::Write, via: Via::Session }
                }
                Some(false) => {
                    return problem(
                        StatusCode::UNAUTHORIZED,
                        "the dashboard session has ended (it expired, or the agent restarted); run `callhome dashboard` to sign in again",
                    );
                }
                None => {
                    let mut r = problem(
                        StatusCode::UNAUTHORIZED,
                        "send Authorization: Bearer <token> (the token is in the file api-token in the agent's data directory), or sign in to the dashboard with `callhome dashboard`",
                    );
                    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                    return r;
                }
            },
        };
        if mutation && auth.scope == Scope::Read {
            return problem(StatusCode::FORBIDDEN, "the read-only token cannot change anything; use api-token");
        }
        if matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH) && has_body(&req) {
            let ctype = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let essence = ctype.split(';').next().unwrap_or("").trim();
            if !essence.eq_ignore_ascii_case("application/json") {
                return problem(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "send the request body as Content-Type: application/json",
                );
            }
        }
        req.extensions_mut().insert(auth);
    }
    if path == "/api/v1/events" {
        return next.run(req).await;
    }
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => problem(StatusCode::SERVICE_UNAVAILABLE, "the request took too long; try again"),
    }
}

/// `Some(valid)` when the request carries a dashboard session (`X-Callhome-Session`); with
/// several such headers, any live one counts.
fn session_header(st: &ApiState, req: &Request<Body>) -> Option<bool> {
    let mut values = req
        .headers()
        .get_all(super::dashboard::SESSION_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .peekable();
    values.peek()?;
    let now = std::time::Instant::now();
    Some(values.any(|v| st.sessions.is_valid(v, now)))
}

/// The rule for requests authenticated by the session: they must come from the
/// dashboard's own pages. A browser says where a request comes from in `Sec-Fetch-Site`; a
/// change must also name this agent in `Origin` (a foreign one was refused already) or be
/// `same-origin`. Reading is also allowed to the user typing an API address (`none`).
fn same_origin(req: &Request<Body>, mutation: bool, own_origin: bool) -> bool {
    match req.headers().get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some("same-origin") => true,
        Some("none") => !mutation,
        Some(_) => false,
        None => !mutation || own_origin,
    }
}

fn bearer(req: &Request<Body>) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl ApiState {
    /// Which token this is, compared in constant time.
    fn scope_of(&self, token: &str) -> Option<Scope> {
        let t = token.as_bytes();
        if bool::from(t.ct_eq(self.tokens.write.as_bytes())) {
            Some(Scope::Write)
        } else if bool::from(t.ct_eq(self.tokens.read.as_bytes())) {
            Some(Scope::Read)
        } else {
            None
        }
    }
}
