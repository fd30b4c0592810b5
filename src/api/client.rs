//! The client side of the API: finding a running agent's API and calling it (for
//! [`crate::control::Remote`] and `callhome dashboard`).

use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::ApiLocation;
use crate::datadir::DataDir;
use crate::programs::Program;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the agent's API at {url}: {message}")]
    Http { url: String, message: String },
    #[error("the agent's API answered {status}: {detail}")]
    Status { status: u16, detail: String },
}

/// A client for the API of the agent running on a data directory.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// The running agent's API, if an agent holds the directory and published its address.
    pub fn discover(dir: &DataDir) -> Option<Client> {
        dir.agent_running()?;
        Client::published(dir)
    }

    /// The API an agent published in `dir` (`api.json` and a token: the full one, else the
    /// read-only one), without asking whether the agent still runs — for a reader that may not
    /// open the run lock, such as a group member's tray. A stale address fails at the first call.
    pub fn published(dir: &DataDir) -> Option<Client> {
        let loc: ApiLocation = serde_json::from_slice(&std::fs::read(dir.root().join("api.json")).ok()?).ok()?;
        let token = ["api-token", "api-token-read"]
            .iter()
            .find_map(|f| std::fs::read_to_string(dir.root().join(f)).ok())?
            .trim()
            .to_string();
        Client::new(&loc.url, token)
    }

    /// `GET path` as a response to read as it arrives (the event stream).
    pub async fn stream(&self, path: &str) -> Result<reqwest::Response, ClientError> {
        self.send(self.http.get(self.url(path)).timeout(Duration::from_secs(24 * 3600))).await
    }

    pub fn new(base: &str, token: String) -> Option<Client> {
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(120)).build().ok()?;
        Some(Client { http, base: base.trim_end_matches('/').to_string(), token })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let resp = self.send(self.http.get(self.url(path))).await?;
        self.json(resp).await
    }

    pub async fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let resp = self.send(self.http.get(self.url(path))).await?;
        resp.bytes().await.map(|b| b.to_vec()).map_err(|e| self.http_err(e))
    }

    pub async fn send_json<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, ClientError> {
        let req =
            self.http.request(method, self.url(path)).header("content-type", "application/json").body(body.to_string());
        let resp = self.send(req).await?;
        self.json(resp).await
    }

    /// Starts a job (`POST`) and follows it until it ends.
    pub async fn run_job(&self, path: &str, program: Option<Program>) -> Result<super::dto::JobDoc, ClientError> {
        self.run_job_with(path, serde_json::json!({ "program": program.map(|p| p.name()) })).await
    }

    /// Starts the job at `path` with `body` and follows it to its end.
    pub async fn run_job_with(&self, path: &str, body: serde_json::Value) -> Result<super::dto::JobDoc, ClientError> {
        let mut job: super::dto::JobDoc = self.send_json(reqwest::Method::POST, path, &body).await?;
        let mut wait = Duration::from_millis(20);
        while job.state == "running" {
            tokio::time::sleep(wait).await; // polling a job the agent runs: no event to wait on here
            wait = (wait * 2).min(Duration::from_millis(500));
            job = self.get(&job.href).await?;
        }
        Ok(job)
    }

    /// Asks the agent for a one-time sign-in link to its dashboard (`POST /api/v1/dashboard/link`);
    /// open it with [`super::dashboard::open_in_browser`]. Used by `callhome dashboard` and the tray.
    pub async fn dashboard_link(&self) -> Result<super::dto::DashboardLinkDoc, ClientError> {
        self.send_json(reqwest::Method::POST, "/api/v1/dashboard/link", &serde_json::json!({})).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let resp = req.bearer_auth(&self.token).send().await.map_err(|e| self.http_err(e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap_or_default();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        Err(ClientError::Status { status, detail: body["detail"].as_str().unwrap_or("").to_string() })
    }

    async fn json<T: DeserializeOwned>(&self, resp: reqwest::Response) -> Result<T, ClientError> {
        let bytes = resp.bytes().await.map_err(|e| self.http_err(e))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Http {
            url: self.base.clone(),
            message: format!("an answer that is not the expected JSON: {e}"),
        })
    }

    fn http_err(&self, e: reqwest::Error) -> ClientError {
        ClientError::Http { url: self.base.clone(), message: e.to_string() }
    }
}

/// Whether a path is a bundle file name the API can serve.
pub fn bundle_id(path_or_name: &str) -> String {
    Path::new(path_or_name).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
