//! A running agent behind the control interface: each request made to its API, answered with the
//! same wire documents [`super::Local`] gives. Long work (collect, upload, export) runs as the
//! API's jobs, followed to their end.

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{ControlError, ProgramChange, Result};
use crate::api::client::Client;
use crate::api::dto::{
    AckRequest, AlertDoc, BundleDoc, CollectedDoc, ExportDoc, HistoryPage, LedgerCheckDoc, LedgerDoc, NotificationsDoc,
    NotificationsRequest, ProgramChanged, ProgramDoc, ProxyDoc, QuarantineActionDoc, QuarantinedDoc, StatusDoc,
    TestAlertDoc, UploadReportDoc, WithdrawnDoc,
};
use crate::clock::{Timestamp, rfc3339};
use crate::programs::Program;
use crate::secrets::Value as Secret;

/// Percent-encodes a path segment or query value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A job's result: its document, or the error it ended with.
fn job_result<T: DeserializeOwned>(result: Option<Value>) -> Result<T> {
    let v = result.unwrap_or_default();
    if let Some(err) = v.get("error").and_then(Value::as_str) {
        return Err(ControlError::Failed(err.to_string()));
    }
    serde_json::from_value(v)
        .map_err(|e| ControlError::Failed(format!("the agent's job answered something unexpected: {e}")))
}

/// The agent of another process, through its API.
pub struct Remote {
    client: Client,
}

impl Remote {
    pub fn new(client: Client) -> Remote {
        Remote { client }
    }

    /// The API client, for what only the API offers (the dashboard's sign-in link).
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        Ok(self.client.get(path).await?)
    }

    async fn send<T: DeserializeOwned>(&self, method: reqwest::Method, path: &str, body: Value) -> Result<T> {
        Ok(self.client.send_json(method, path, &body).await?)
    }

    async fn job<T: DeserializeOwned>(&self, path: &str, program: Option<Program>) -> Result<T> {
        job_result(self.client.run_job(path, program).await?.result)
    }

    pub async fn status(&self) -> Result<StatusDoc> {
        self.get("/api/v1/status").await
    }

    pub async fn programs(&self) -> Result<Vec<ProgramDoc>> {
        self.get("/api/v1/programs").await
    }

    pub async fn set_program(&self, p: Program, change: ProgramChange) -> Result<ProgramChanged> {
        let body = match change {
            ProgramChange::Enabled(on) => json!({ "enabled": on }),
            ProgramChange::Mode(mode) => json!({ "mode": mode.name() }),
        };
        self.send(reqwest::Method::PUT, &format!("/api/v1/programs/{}", p.name()), body).await
    }

    pub async fn collect(&self, p: Option<Program>) -> Result<Vec<CollectedDoc>> {
        self.job("/api/v1/collect", p).await
    }

    pub async fn upload(&self, p: Option<Program>) -> Result<UploadReportDoc> {
        self.job("/api/v1/upload", p).await
    }

    pub async fn bundles(&self) -> Result<Vec<BundleDoc>> {
        self.get("/api/v1/bundles").await
    }

    pub async fn bundle_bytes(&self, name: &str) -> Result<Vec<u8>> {
        Ok(self.client.get_bytes(&format!("/api/v1/bundles/{}/raw", encode(name))).await?)
    }

    pub async fn withdraw(&self, name: &str) -> Result<WithdrawnDoc> {
        self.send(reqwest::Method::DELETE, &format!("/api/v1/bundles/{}", encode(name)), json!({})).await
    }

    pub async fn quarantine(&self) -> Result<Vec<QuarantinedDoc>> {
        self.get("/api/v1/quarantine").await
    }

    pub async fn quarantine_retry(&self, id: &str) -> Result<QuarantineActionDoc> {
        self.send(reqwest::Method::POST, &format!("/api/v1/quarantine/{}/retry", encode(id)), json!({})).await
    }

    pub async fn quarantine_purge(&self, id: &str) -> Result<QuarantineActionDoc> {
        self.send(reqwest::Method::DELETE, &format!("/api/v1/quarantine/{}", encode(id)), json!({})).await
    }

    pub async fn history(&self, limit: u32, offset: u32) -> Result<HistoryPage> {
        self.get(&format!("/api/v1/history?limit={limit}&offset={offset}")).await
    }

    pub async fn ledger(&self) -> Result<Vec<LedgerDoc>> {
        self.get("/api/v1/ledger").await
    }

    pub async fn ledger_verify(&self) -> Result<LedgerCheckDoc> {
        self.get("/api/v1/ledger/verify").await
    }

    pub async fn licenses(&self) -> Result<Value> {
        self.get("/api/v1/licenses").await
    }

    pub async fn usage(&self, feature: Option<&str>, since: Timestamp) -> Result<Vec<Value>> {
        let mut q = format!("/api/v1/usage?since={}", encode(&rfc3339(since)));
        if let Some(f) = feature {
            q.push_str(&format!("&feature={}", encode(f)));
        }
        self.get(&q).await
    }

    pub async fn proxy(&self) -> Result<ProxyDoc> {
        self.get("/api/v1/proxy").await
    }

    pub async fn set_proxy(&self, url: &str, user: Option<&str>, password: Option<&Secret>) -> Result<ProxyDoc> {
        let body = json!({ "url": url, "username": user, "password": password.map(|p| p.expose()) });
        self.send(reqwest::Method::PUT, "/api/v1/proxy", body).await
    }

    pub async fn clear_proxy(&self) -> Result<ProxyDoc> {
        self.send(reqwest::Method::DELETE, "/api/v1/proxy", json!({})).await
    }

    pub async fn register(&self, token: Option<&Secret>) -> Result<ProxyDoc> {
        match token {
            Some(t) => self.send(reqwest::Method::PUT, "/api/v1/registration", json!({ "token": t.expose() })).await,
            None => self.send(reqwest::Method::DELETE, "/api/v1/registration", json!({})).await,
        }
    }

    pub async fn alerts(&self) -> Result<Vec<AlertDoc>> {
        self.get("/api/v1/alerts").await
    }

    pub async fn ack_alert(&self, id: &str, req: &AckRequest) -> Result<AlertDoc> {
        let body = serde_json::to_value(req).expect("wire documents serialize");
        self.send(reqwest::Method::POST, &format!("/api/v1/alerts/{}/ack", encode(id)), body).await
    }

    pub async fn unack_alert(&self, id: &str) -> Result<AlertDoc> {
        self.send(reqwest::Method::DELETE, &format!("/api/v1/alerts/{}/ack", encode(id)), json!({})).await
    }

    pub async fn test_alert(&self, channel: Option<&str>) -> Result<Vec<TestAlertDoc>> {
        self.send(reqwest::Method::POST, "/api/v1/alerts/test", json!({ "channel": channel })).await
    }

    pub async fn notifications(&self) -> Result<NotificationsDoc> {
        self.get("/api/v1/notifications").await
    }

    pub async fn set_notifications(&self, req: &NotificationsRequest) -> Result<NotificationsDoc> {
        let body = serde_json::to_value(req).expect("wire documents serialize");
        self.send(reqwest::Method::PUT, "/api/v1/notifications", body).await
    }

    pub async fn export(&self, program: Option<Program>, max_size: Option<u64>) -> Result<ExportDoc> {
        let body = json!({ "program": program.map(|p| p.name()), "max_size": max_size });
        job_result(self.client.run_job_with("/api/v1/export", body).await?.result)
    }
}
