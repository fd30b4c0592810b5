//! Where a CLI command gets its answer: the running agent's API when there is one (so the CLI
//! never works on the spool behind the agent's back), else the data directory itself (under the
//! work lock, so an agent starting meanwhile takes turns with it). Both give the same wire
//! documents, so printing does not care which.

use std::sync::Arc;

use callhome::agent::Agent;
use callhome::api::client::{Client, ClientError};
use callhome::api::dto::{
    AttemptDoc, CollectedDoc, HistoryPage, ProgramChanged, ProgramDoc, ProxyDoc, StatusDoc, UploadReportDoc,
};
use callhome::clock::{Clock, SystemClock};
use callhome::collect::licenses::{Identity, hour_json, inventory_json};
use callhome::datadir::DataDir;
use callhome::programs::{Program, TelemetryMode};
use callhome::secrets::Value as Secret;
use serde_json::Value;

use super::{CliError, Result, fail, load_config, runtime};
use crate::{Cli, exit};

pub enum Source {
    Api { client: Client, rt: tokio::runtime::Runtime },
    Direct { agent: Box<Agent>, rt: tokio::runtime::Runtime },
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> CliError {
        match e {
            ClientError::Status { status: 409, detail } => fail(exit::REFUSED, detail),
            ClientError::Status { status: 503, detail } => fail(exit::FAILURE, detail),
            other => fail(exit::FAILURE, other.to_string()),
        }
    }
}

impl Source {
    pub fn open(cli: &Cli) -> Result<Source> {
        let rt = runtime()?;
        let dir = DataDir::locate(cli.data_dir.clone());
        if let Some(client) = Client::discover(&dir) {
            return Ok(Source::Api { client, rt });
        }
        let agent = Box::new(Agent::open(load_config(cli)?, dir, Arc::new(SystemClock))?);
        Ok(Source::Direct { agent, rt })
    }

    /// Says, for a command that changes things, that no agent runs and how to start one.
    pub fn note_direct(&self, cli: &Cli) {
        if let Source::Direct { agent, .. } = self {
            let cfg = cli.config.as_ref().map(|c| format!(" --config {}", c.display())).unwrap_or_default();
            eprintln!(
                "note: no agent runs on {}; this was done on the data directory directly. Start the agent with `callhome run{cfg} --data-dir {}` to upload on schedule.",
                agent.data_dir().root().display(),
                agent.data_dir().root().display()
            );
        }
    }

    /// The agent, when the command works on the data directory itself.
    pub fn direct(&self) -> Option<&Agent> {
        match self {
            Source::Direct { agent, .. } => Some(agent),
            Source::Api { .. } => None,
        }
    }

    pub fn status(&self) -> Result<StatusDoc> {
        match self {
            Source::Api { client, rt } => Ok(rt.block_on(client.get("/api/v1/status"))?),
            Source::Direct { agent, .. } => Ok(StatusDoc::from(&agent.status()?)),
        }
    }

    pub fn programs(&self) -> Result<Vec<ProgramDoc>> {
        Ok(self.status()?.programs)
    }

    pub fn collect(&self, p: Option<Program>) -> Result<Vec<CollectedDoc>> {
        match self {
            Source::Api { client, rt } => {
                let job = rt.block_on(client.run_job("/api/v1/collect", p))?;
                job_result(job.result)
            }
            Source::Direct { agent, rt } => Ok(rt.block_on(agent.collect(p))?.iter().map(CollectedDoc::from).collect()),
        }
    }

    pub fn upload(&self, p: Option<Program>) -> Result<UploadReportDoc> {
        match self {
            Source::Api { client, rt } => {
                let job = rt.block_on(client.run_job("/api/v1/upload", p))?;
                job_result(job.result)
            }
            Source::Direct { agent, rt } => Ok(UploadReportDoc::from(&rt.block_on(agent.upload_cycle(p))?)),
        }
    }

    pub fn history(&self, limit: u32) -> Result<Vec<AttemptDoc>> {
        match self {
            Source::Api { client, rt } => {
                let page: HistoryPage = rt.block_on(client.get(&format!("/api/v1/history?limit={limit}")))?;
                Ok(page.items)
            }
            Source::Direct { agent, .. } => {
                let rows = agent.store().attempts(limit, 0).map_err(|e| fail(exit::FAILURE, e.to_string()))?;
                Ok(rows.iter().map(AttemptDoc::from).collect())
            }
        }
    }

    pub fn licenses(&self) -> Result<Value> {
        match self {
            Source::Api { client, rt } => Ok(rt.block_on(client.get("/api/v1/licenses"))?),
            Source::Direct { agent, .. } => {
                let inv = agent.scan_licenses();
                let events = agent.license_events(&inv)?;
                Ok(inventory_json(&inv, &[], &events, SystemClock.now()))
            }
        }
    }

    pub fn usage(&self, feature: Option<&str>, since: i64) -> Result<Vec<Value>> {
        match self {
            Source::Api { client, rt } => {
                let mut q = format!("/api/v1/usage?since={}", callhome::clock::rfc3339(since));
                if let Some(f) = feature {
                    q.push_str(&format!("&feature={}", encode(f)));
                }
                Ok(rt.block_on(client.get(&q))?)
            }
            Source::Direct { agent, rt } => {
                rt.block_on(agent.refresh_licenses_locked())?;
                let rows =
                    agent.store().usage(feature, since, i64::MAX).map_err(|e| fail(exit::FAILURE, e.to_string()))?;
                Ok(rows.iter().map(|r| hour_json(r, Identity::Names)).collect())
            }
        }
    }

    /// Turns an optional program on or off; returns the bundles withdrawn.
    pub fn set_enabled(&self, p: Program, on: bool) -> Result<Vec<String>> {
        match self {
            Source::Api { client, rt } => {
                let body = serde_json::json!({ "enabled": on });
                let changed: ProgramChanged = rt.block_on(client.send_json(
                    reqwest::Method::PUT,
                    &format!("/api/v1/programs/{}", p.name()),
                    &body,
                ))?;
                Ok(changed.withdrawn)
            }
            Source::Direct { agent, rt } => Ok(rt.block_on(agent.set_enabled(p, on))?),
        }
    }

    pub fn set_mode(&self, mode: TelemetryMode) -> Result<()> {
        match self {
            Source::Api { client, rt } => {
                let body = serde_json::json!({ "mode": mode.name() });
                let _: ProgramChanged =
                    rt.block_on(client.send_json(reqwest::Method::PUT, "/api/v1/programs/telemetry", &body))?;
                Ok(())
            }
            Source::Direct { agent, .. } => Ok(agent.set_telemetry_mode(mode)?),
        }
    }

    pub fn proxy(&self) -> Result<ProxyDoc> {
        match self {
            Source::Api { client, rt } => Ok(rt.block_on(client.get("/api/v1/proxy"))?),
            Source::Direct { agent, .. } => Ok(ProxyDoc::from(&agent.access())),
        }
    }

    /// Sets the proxy; the password (when given) goes to the keyring of the process that holds
    /// the agent's state: the running agent's, else this one's.
    pub fn set_proxy(&self, url: &str, user: Option<&str>, password: Option<&Secret>) -> Result<ProxyDoc> {
        match self {
            Source::Api { client, rt } => {
                let body =
                    serde_json::json!({ "url": url, "username": user, "password": password.map(|p| p.expose()) });
                Ok(rt.block_on(client.send_json(reqwest::Method::PUT, "/api/v1/proxy", &body))?)
            }
            Source::Direct { agent, .. } => {
                agent.set_proxy(url, user, password)?;
                Ok(ProxyDoc::from(&agent.access()))
            }
        }
    }

    pub fn clear_proxy(&self) -> Result<ProxyDoc> {
        match self {
            Source::Api { client, rt } => {
                Ok(rt.block_on(client.send_json(reqwest::Method::DELETE, "/api/v1/proxy", &serde_json::json!({})))?)
            }
            Source::Direct { agent, .. } => {
                agent.clear_proxy()?;
                Ok(ProxyDoc::from(&agent.access()))
            }
        }
    }

    /// Stores (`Some`) or removes (`None`) the endpoint token.
    pub fn register(&self, token: Option<&Secret>) -> Result<ProxyDoc> {
        match (self, token) {
            (Source::Api { client, rt }, Some(t)) => {
                let body = serde_json::json!({ "token": t.expose() });
                Ok(rt.block_on(client.send_json(reqwest::Method::PUT, "/api/v1/registration", &body))?)
            }
            (Source::Api { client, rt }, None) => Ok(rt.block_on(client.send_json(
                reqwest::Method::DELETE,
                "/api/v1/registration",
                &serde_json::json!({}),
            ))?),
            (Source::Direct { agent, .. }, t) => {
                match t {
                    Some(t) => agent.set_token(t)?,
                    None => {
                        agent.clear_token()?;
                    }
                }
                Ok(ProxyDoc::from(&agent.access()))
            }
        }
    }

    /// The pending bundles' names, oldest first within each program.
    pub fn bundle_names(&self) -> Result<Vec<(String, String)>> {
        match self {
            Source::Api { client, rt } => {
                let list: Vec<callhome::api::dto::BundleDoc> = rt.block_on(client.get("/api/v1/bundles"))?;
                Ok(list.into_iter().map(|b| (b.program, b.id)).collect())
            }
            Source::Direct { agent, .. } => {
                let list = agent.spool().all_pending().map_err(|e| fail(exit::FAILURE, e.to_string()))?;
                Ok(list.into_iter().map(|p| (p.program.name().to_string(), p.name)).collect())
            }
        }
    }

    /// The exact bytes of a pending bundle.
    pub fn bundle_bytes(&self, name: &str) -> Result<Vec<u8>> {
        match self {
            Source::Api { client, rt } => {
                Ok(rt.block_on(client.get_bytes(&format!("/api/v1/bundles/{}/raw", encode(name))))?)
            }
            Source::Direct { agent, .. } => {
                let p = agent.spool().find(name).map_err(|e| fail(exit::FAILURE, e.to_string()))?.ok_or_else(|| {
                    fail(
                        exit::FAILURE,
                        format!("no pending bundle {name:?}; `callhome status` lists the pending bundles"),
                    )
                })?;
                std::fs::read(&p.path).map_err(|e| fail(exit::FAILURE, format!("{}: {e}", p.path.display())))
            }
        }
    }
}

fn job_result<T: serde::de::DeserializeOwned>(result: Option<Value>) -> Result<T> {
    let v = result.unwrap_or_default();
    if let Some(err) = v.get("error").and_then(Value::as_str) {
        return Err(fail(exit::FAILURE, err.to_string()));
    }
    serde_json::from_value(v)
        .map_err(|e| fail(exit::FAILURE, format!("the agent's job answered something unexpected: {e}")))
}

/// Percent-encodes a path segment or query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
