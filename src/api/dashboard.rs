//! The web dashboard's server side: its assets (the files of `ui/`, compiled into the binary),
//! the one-time sign-in link, the session cookie that link is traded for, and the opener of the
//! user's browser (for `callhome dashboard` and the tray).
//!
//! The page itself is plain HTML, CSS and JavaScript that reads and changes the agent only
//! through the REST API, so it holds no state of its own. This module does not decide what a
//! session may do: `security` accepts the cookie as write access only with its same-origin
//! checks. Codes and sessions live in memory only (never on disk, never in a log): an agent
//! restart signs everyone out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::ApiState;
use super::dto::DashboardLinkDoc;
use super::security::{Auth, problem};
use crate::clock::{Clock, SystemClock, rfc3339};

/// How long a sign-in link may wait before it is used.
pub const LINK_LIFETIME: Duration = Duration::from_secs(120);
/// How long a session lasts (an agent restart ends it sooner).
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// At most this many unused links and this many sessions are kept; the oldest go first.
const MAX_KEPT: usize = 32;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

macro_rules! assets {
    ($($name:literal => $ctype:expr),* $(,)?) => {
        &[$(($name, $ctype, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/ui/", $name)) as &[u8])),*]
    };
}

/// Every file of `ui/` the agent serves at `/ui/<name>`: name, content type, bytes.
pub const ASSETS: &[(&str, &str, &[u8])] = assets! {
    "index.html" => HTML,
    "signin.html" => HTML,
    "link-refused.html" => HTML,
    "style.css" => CSS,
    "favicon.svg" => SVG,
    "app.js" => JS,
    "api.js" => JS,
    "dom.js" => JS,
    "chart.js" => JS,
    "overview.js" => JS,
    "programs.js" => JS,
    "preview.js" => JS,
    "history.js" => JS,
    "licenses.js" => JS,
    "settings.js" => JS,
};

fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS.iter().find(|(n, _, _)| *n == name).map(|(_, t, b)| (*t, *b))
}

fn page(status: StatusCode, name: &str) -> Response {
    let (ctype, bytes) = asset(name).expect("the page is one of the assets");
    let mut r = (status, Body::from(bytes)).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

/// The one-time codes and the sessions, in memory only. Both are 256 random bits; only their
/// SHA-256 is kept as the map key, so looking one up leaks nothing through timing.
pub struct Sessions {
    cookie_name: String,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Unused sign-in codes and when each stops being valid.
    codes: HashMap<[u8; 32], Instant>,
    /// Sessions and when each ends.
    sessions: HashMap<[u8; 32], Instant>,
}

fn key(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    hex::encode(bytes)
}

/// Drops expired entries, then the soonest to expire while more than [`MAX_KEPT`] remain.
fn prune(map: &mut HashMap<[u8; 32], Instant>, now: Instant) {
    map.retain(|_, until| *until > now);
    while map.len() > MAX_KEPT {
        let oldest = *map.iter().min_by_key(|(_, until)| **until).map(|(k, _)| k).expect("not empty");
        map.remove(&oldest);
    }
}

impl Sessions {
    /// The cookie is named after the port: browsers share cookies between the ports of one host.
    pub fn new(port: u16) -> Sessions {
        Sessions { cookie_name: format!("callhome_session_{port}"), inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }

    /// A new single-use sign-in code, valid for [`LINK_LIFETIME`] from `now`.
    pub fn mint_code(&self, now: Instant) -> String {
        let code = random_secret();
        let mut inner = self.lock();
        inner.codes.insert(key(&code), now + LINK_LIFETIME);
        prune(&mut inner.codes, now);
        code
    }

    /// Trades a valid code (used up by this) for a new session's cookie value.
    pub fn redeem(&self, code: &str, now: Instant) -> Option<String> {
        let mut inner = self.lock();
        let until = inner.codes.remove(&key(code))?;
        if until <= now {
            return None;
        }
        let session = random_secret();
        inner.sessions.insert(key(&session), now + SESSION_LIFETIME);
        prune(&mut inner.sessions, now);
        Some(session)
    }

    /// Whether `value` is a live session.
    pub fn is_valid(&self, value: &str, now: Instant) -> bool {
        self.lock().sessions.get(&key(value)).is_some_and(|until| *until > now)
    }

    /// This agent's session cookie in a `Cookie` header, if any.
    pub fn cookie_in<'a>(&self, cookie_header: &'a str) -> Option<&'a str> {
        cookie_header
            .split(';')
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == self.cookie_name)
            .map(|(_, v)| v.trim())
    }
}

/// The dashboard: the app for a signed-in browser (or a valid token), else the sign-in page.
#[utoipa::path(get, path = "/", responses(
    (status = 200, description = "the dashboard (text/html)"),
    (status = 401, description = "the sign-in page: run `callhome dashboard`")))]
pub(super) async fn index(auth: Option<Extension<Auth>>) -> Response {
    match auth {
        Some(_) => page(StatusCode::OK, "index.html"),
        None => page(StatusCode::UNAUTHORIZED, "signin.html"),
    }
}

/// `/login`'s query (documentation only: the handler reads the raw query).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[allow(dead_code)]
pub(super) struct LoginQuery {
    /// The one-time code from `POST /api/v1/dashboard/link`.
    code: String,
}

/// Trades a one-time sign-in code for a session cookie and redirects to the clean URL `/`. A
/// used or expired code answers 403 with a page saying to run `callhome dashboard` again.
#[utoipa::path(get, path = "/login", params(LoginQuery), responses(
    (status = 303, description = "signed in: Set-Cookie, Location: /"),
    (status = 403, description = "the link was used already or expired (text/html)")))]
pub(super) async fn login(State(st): State<Arc<ApiState>>, RawQuery(query): RawQuery) -> Response {
    // Codes are hex: no decoding needed, and anything else simply does not match.
    let query = query.unwrap_or_default();
    let code = query.split('&').find_map(|kv| kv.strip_prefix("code=")).unwrap_or("");
    let Some(session) = st.sessions.redeem(code, Instant::now()) else {
        return page(StatusCode::FORBIDDEN, "link-refused.html");
    };
    let cookie = format!("{}={session}; HttpOnly; SameSite=Strict; Path=/", st.sessions.cookie_name());
    let mut r = StatusCode::SEE_OTHER.into_response();
    let h = r.headers_mut();
    h.insert(header::LOCATION, HeaderValue::from_static("/"));
    h.insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("hex is a header value"));
    r
}

/// The dashboard's static files (HTML, CSS, JavaScript, icon); they hold no data.
#[utoipa::path(get, path = "/ui/{file}", params(("file" = String, Path, description = "app.js, style.css, …")),
    responses((status = 200, description = "the file"), (status = 404)))]
pub(super) async fn ui_file(Path(file): Path<String>) -> Response {
    match asset(&file) {
        Some((ctype, bytes)) => {
            let mut r = Response::new(Body::from(bytes));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
            r
        }
        None => problem(StatusCode::NOT_FOUND, format!("the dashboard has no file {file:?}")),
    }
}

/// A one-time sign-in link to the dashboard, valid for two minutes (write token). `callhome
/// dashboard` and the tray open it in the browser; the body is `{}`.
#[utoipa::path(post, path = "/api/v1/dashboard/link", request_body(content = Object, description = "{}"),
    responses((status = 200, body = DashboardLinkDoc)))]
pub(super) async fn dashboard_link(State(st): State<Arc<ApiState>>) -> Json<DashboardLinkDoc> {
    let code = st.sessions.mint_code(Instant::now());
    Json(DashboardLinkDoc {
        url: format!("http://127.0.0.1:{}/login?code={code}", st.port),
        expires_at: rfc3339(SystemClock.now() + LINK_LIFETIME.as_secs() as i64),
        expires_in_seconds: LINK_LIFETIME.as_secs(),
    })
}

/// Opens `url` in the user's browser: each command of `$BROWSER` in turn (`:`-separated, `;` on
/// Windows; `%s` stands for the URL, else it is appended), else the platform's opener
/// (`xdg-open` on Linux and BSD, `open` on macOS, `cmd /c start` on Windows).
///
/// Returns once the opener has started (it is reaped in the background, so a long-lived caller
/// such as the tray leaves no zombie); an error means no opener could be started.
pub fn open_in_browser(url: &str) -> std::io::Result<()> {
    let sep = if cfg!(windows) { ';' } else { ':' };
    if let Some(list) = std::env::var_os("BROWSER").filter(|v| !v.is_empty()) {
        let list = list.to_string_lossy().into_owned();
        let mut last = None;
        for cmd in list.split(sep).map(str::trim).filter(|c| !c.is_empty()) {
            let mut argv: Vec<String> = cmd.split_whitespace().map(|a| a.replace("%s", url)).collect();
            if !cmd.contains("%s") {
                argv.push(url.to_string());
            }
            match spawn_reaped(&argv) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(std::io::Error::new(e.kind(), format!("$BROWSER command {:?}: {e}", argv[0]))),
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
    }
    let argv: Vec<String> = if cfg!(windows) {
        vec!["cmd".into(), "/c".into(), "start".into(), String::new(), url.into()]
    } else if cfg!(target_os = "macos") {
        vec!["open".into(), url.into()]
    } else {
        vec!["xdg-open".into(), url.into()]
    };
    spawn_reaped(&argv).map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot start {} ({e}); set $BROWSER to your browser's command", argv[0]))
    })
}

fn spawn_reaped(argv: &[String]) -> std::io::Result<()> {
    use std::process::{Command, Stdio};
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    std::thread::spawn(move || child.wait());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_works_once_and_only_in_time() {
        let s = Sessions::new(8080);
        let t0 = Instant::now();
        let code = s.mint_code(t0);
        let session = s.redeem(&code, t0 + Duration::from_secs(5)).expect("a fresh code signs in");
        assert!(s.is_valid(&session, t0 + Duration::from_secs(6)));
        assert_eq!(s.redeem(&code, t0 + Duration::from_secs(7)), None, "used once");
        let late = s.mint_code(t0);
        assert_eq!(s.redeem(&late, t0 + LINK_LIFETIME), None, "expired at its lifetime");
        assert!(!s.is_valid(&session, t0 + Duration::from_secs(5) + SESSION_LIFETIME), "sessions end");
        assert!(!s.is_valid(&code, t0), "a code is not a session");
        assert_eq!(s.redeem("", t0), None);
    }

    #[test]
    fn the_cookie_is_found_among_others_and_by_its_port() {
        let s = Sessions::new(4242);
        assert_eq!(s.cookie_in("a=1; callhome_session_4242=abc ; b=2"), Some("abc"));
        assert_eq!(s.cookie_in("callhome_session_4243=abc"), None);
        assert_eq!(s.cookie_in(""), None);
    }

    #[test]
    fn links_and_sessions_are_bounded() {
        let s = Sessions::new(1);
        let t0 = Instant::now();
        let codes: Vec<String> = (0..100).map(|i| s.mint_code(t0 + Duration::from_millis(i))).collect();
        assert!(s.lock().codes.len() <= MAX_KEPT);
        assert!(s.redeem(codes.last().unwrap(), t0).is_some(), "the newest survives");
    }

    #[test]
    fn every_file_of_ui_is_served() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
        for e in std::fs::read_dir(&dir).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            if name != "README.md" {
                assert!(asset(&name).is_some(), "ui/{name} is not in ASSETS");
            }
        }
    }
}
