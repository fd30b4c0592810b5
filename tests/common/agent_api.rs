//! A running agent's localhost API, as a client sees it: where it listens and its two tokens
//! (read from the data directory once `api.json` is complete), and requests over a real socket
//! through [`super::http`]. [`RunningAgent`] adds the agent process, its setup and receiver for
//! tests that want all of it in one value.
//!
//! It does not decide what a test checks: every request can be sent exactly as written
//! ([`AgentApi::raw`]), and the rest only fill in the Host, the token and the content type.

use std::ops::Deref;
use std::time::Duration;

use serde_json::Value;

use super::http::{Answer, raw_request};
use super::{AgentProcess, Receiver, Setup, wait_until};

/// How long an agent may take to publish its API, and a job to finish.
const API_DEADLINE: Duration = Duration::from_secs(15);
const JOB_DEADLINE: Duration = Duration::from_secs(60);

/// What a client needs to talk to a running agent's API.
pub struct AgentApi {
    /// The port in `api.json` (the API listens on 127.0.0.1).
    pub port: u16,
    /// The write token (`api-token`), trimmed.
    pub token: String,
    /// The read-only token (`api-token-read`), trimmed.
    pub read_token: String,
}

impl AgentApi {
    /// Waits until the agent running on `s` has published `api.json` as complete JSON, then
    /// reads its port and the two tokens.
    pub fn wait_for(s: &Setup) -> AgentApi {
        let api_json = s.data.join("api.json");
        let mut loc = Value::Null;
        wait_until(API_DEADLINE, "the agent to publish api.json", || {
            loc = std::fs::read(&api_json).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null);
            !loc.is_null()
        });
        let port =
            loc["port"].as_u64().and_then(|p| u16::try_from(p).ok()).unwrap_or_else(|| panic!("no port in {loc}"));
        let token = |name: &str| {
            let path = s.data.join(name);
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).trim().to_string()
        };
        AgentApi { port, token: token("api-token"), read_token: token("api-token-read") }
    }

    /// The Host the API accepts: `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The API's own origin, as a browser on the dashboard sends it.
    pub fn origin(&self) -> String {
        format!("http://{}", self.host())
    }

    /// Sends one request as written: `headers` as given (Host included).
    pub fn raw(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        raw_request(self.port, method, path, headers, body)
    }

    /// A request with the right Host, then `extra` (no token unless it is there), and a JSON
    /// content type when there is a body.
    pub fn send(&self, method: &str, path: &str, extra: &[(&str, &str)], body: Option<&str>) -> Answer {
        let host = self.host();
        let mut h = vec![("Host", host.as_str())];
        h.extend_from_slice(extra);
        if body.is_some() {
            h.push(("Content-Type", "application/json"));
        }
        self.raw(method, path, &h, body.unwrap_or("").as_bytes())
    }

    /// A request with the right Host and `token` as its bearer.
    pub fn call_with(&self, token: &str, method: &str, path: &str, body: Option<&str>) -> Answer {
        self.send(method, path, &[("Authorization", &format!("Bearer {token}"))], body)
    }

    /// A request with the right Host and the write token.
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> Answer {
        self.call_with(&self.token, method, path, body)
    }

    pub fn get(&self, path: &str) -> Answer {
        self.call("GET", path, None)
    }

    /// Follows a job from its `202 Accepted` (whose `Location` is its `href`) until it no longer
    /// runs; returns its last document.
    pub fn job(&self, started: &Answer) -> Value {
        assert_eq!(started.status, 202, "{}", started.text());
        let href = started.json()["href"].as_str().unwrap().to_string();
        assert_eq!(started.header("location"), Some(href.as_str()));
        let mut doc = Value::Null;
        wait_until(JOB_DEADLINE, "the job to finish", || {
            doc = self.get(&href).json();
            doc["state"] != "running"
        });
        doc
    }
}

/// A test's agent running with its API: the setup, the receiver it uploads to (if any), the
/// process (killed on drop, before the setup's folder goes) and the API, which it derefs to.
pub struct RunningAgent {
    agent: Option<AgentProcess>,
    api: AgentApi,
    pub receiver: Option<Receiver>,
    pub s: Setup,
}

impl RunningAgent {
    /// An agent whose endpoint nothing listens on (port 9), with `extra` configuration lines.
    pub fn offline(extra: &str) -> RunningAgent {
        let s = Setup::new();
        s.configure_offline(extra);
        Self::start(s, None)
    }

    /// An agent that uploads to a receiver of its own, with `extra` configuration lines.
    pub fn with_receiver(extra: &str) -> RunningAgent {
        let s = Setup::new();
        let r = Receiver::start(s.path(), &[]);
        s.configure_for(&r, extra);
        Self::start(s, Some(r))
    }

    /// Starts the agent on a configured setup and waits for its API.
    pub fn start(s: Setup, receiver: Option<Receiver>) -> RunningAgent {
        let agent = s.start_agent();
        let api = AgentApi::wait_for(&s);
        RunningAgent { agent: Some(agent), api, receiver, s }
    }

    /// SIGTERM, and a clean exit.
    pub fn stop(&mut self) {
        assert!(self.agent.take().expect("the agent runs").terminate().success());
    }

    /// Starts the agent again after [`RunningAgent::stop`] (its port and tokens read anew).
    pub fn restart(&mut self) {
        assert!(self.agent.is_none(), "stop the agent first");
        self.agent = Some(self.s.start_agent());
        self.api = AgentApi::wait_for(&self.s);
    }
}

impl Deref for RunningAgent {
    type Target = AgentApi;

    fn deref(&self) -> &AgentApi {
        &self.api
    }
}
