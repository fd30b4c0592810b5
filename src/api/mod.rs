//! The localhost REST API (`/api/v1`), its wire documents, and the CLI's client for it.
//!
//! Only this module knows the HTTP server and the JSON shapes the outside world reads. The
//! server runs in the agent's runtime, bound to loopback only, and serves `GET status` from an
//! in-memory snapshot refreshed whenever the agent reports a change (and every 30 seconds), so
//! monitoring load never turns into database queries. Long work (`collect`, `upload`) runs as a
//! job the caller follows at `/api/v1/jobs/{id}`. The same server serves the web dashboard
//! (`dashboard`: `/`, `/login`, `/ui/…`), which works through this API like any other client.

mod alerts;
pub mod client;
mod contract;
pub mod dashboard;
pub mod dto;
mod extract;
mod routes;
pub mod security;
mod server;

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::agent::Agent;
use crate::clock::{Clock, SystemClock, rfc3339};
use crate::config::ApiConfig;
use crate::fsutil;
use dto::{JobDoc, StatusDoc};
use security::Tokens;

/// `api.json` in the data directory: where a running agent's API listens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiLocation {
    pub url: String,
    pub port: u16,
    pub pid: u32,
    pub started_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("API: cannot listen on {addr}: {source}; set api.listen to a free port or 0")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("API: {0}")]
    Io(#[from] std::io::Error),
}

/// Shared by every request.
pub struct ApiState {
    pub(crate) agent: Arc<Agent>,
    /// What the routes call: the agent behind the control interface.
    pub(crate) control: crate::control::Local,
    pub(crate) tokens: Tokens,
    pub(crate) port: u16,
    pub(crate) allowed_hosts: Vec<String>,
    pub(crate) allowed_origins: Vec<String>,
    /// The dashboard's sign-in codes and sessions (memory only).
    pub(crate) sessions: dashboard::Sessions,
    /// The status document, serialized.
    snapshot: RwLock<Bytes>,
    jobs: Mutex<HashMap<u64, JobDoc>>,
    /// The jobs' tasks: owned here, awaited when the API stops (never detached).
    job_tasks: Mutex<tokio::task::JoinSet<()>>,
    next_job: AtomicU64,
    pub(crate) shutdown: tokio::sync::watch::Receiver<bool>,
}

impl ApiState {
    /// Recomputes the status snapshot now.
    pub(crate) fn refresh(&self) {
        match self.agent.status() {
            Ok(s) => {
                let json = serde_json::to_vec(&StatusDoc::from(&s)).expect("status serializes");
                *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Bytes::from(json);
            }
            Err(e) => warn!("status snapshot: {e}"),
        }
    }

    /// The snapshot's programs (a GET of the programs needs no fresh status).
    pub(crate) fn programs(&self) -> Vec<dto::ProgramDoc> {
        serde_json::from_slice::<StatusDoc>(&self.snapshot()).map(|d| d.programs).unwrap_or_default()
    }

    pub(crate) fn snapshot(&self) -> Bytes {
        self.snapshot.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Starts `work` as a job and returns its document.
    pub(crate) fn start_job<F>(self: &Arc<Self>, kind: &str, work: F) -> JobDoc
    where
        F: std::future::Future<Output = (bool, serde_json::Value)> + Send + 'static,
    {
        let id = self.next_job.fetch_add(1, Ordering::SeqCst) + 1;
        let doc = JobDoc {
            id,
            kind: kind.into(),
            state: "running".into(),
            started_at: rfc3339(SystemClock.now()),
            finished_at: None,
            ok: None,
            result: None,
            href: format!("/api/v1/jobs/{id}"),
        };
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).insert(id, doc.clone());
        let st = self.clone();
        let mut tasks = self.job_tasks.lock().unwrap_or_else(|e| e.into_inner());
        // Reap the finished ones so the set holds only what runs.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            let (ok, result) = work.await;
            st.refresh();
            let mut jobs = st.jobs.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(j) = jobs.get_mut(&id) {
                j.state = if ok { "succeeded" } else { "failed" }.into();
                j.ok = Some(ok);
                j.result = Some(result);
                j.finished_at = Some(rfc3339(SystemClock.now()));
            }
            // Keep the last 200 jobs.
            if jobs.len() > 200 {
                let oldest = *jobs.keys().min().expect("not empty");
                jobs.remove(&oldest);
            }
        });
        doc
    }

    pub(crate) fn job(&self, id: u64) -> Option<JobDoc> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).get(&id).cloned()
    }
}

/// Runs the API until `shutdown` turns true.
pub async fn serve(
    agent: Arc<Agent>,
    cfg: ApiConfig,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ApiError> {
    let dir = agent.data_dir().clone();
    let tokens = Tokens::load_or_create(&dir.root().join("api-token"), &dir.root().join("api-token-read"))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, cfg.port));
    let listener = TcpListener::bind(addr).await.map_err(|source| ApiError::Bind { addr, source })?;
    let port = listener.local_addr()?.port();
    let listener6 = if cfg.ipv6 {
        let a6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
        Some(TcpListener::bind(a6).await.map_err(|source| ApiError::Bind { addr: a6, source })?)
    } else {
        None
    };
    let hosts = [format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("[::1]:{port}")];
    let st = Arc::new(ApiState {
        agent: agent.clone(),
        control: crate::control::Local::new(agent.clone()),
        tokens,
        port,
        allowed_origins: hosts.iter().map(|h| format!("http://{h}")).collect(),
        allowed_hosts: hosts.to_vec(),
        sessions: dashboard::Sessions::new(),
        snapshot: RwLock::new(Bytes::new()),
        jobs: Mutex::new(HashMap::new()),
        job_tasks: Mutex::new(tokio::task::JoinSet::new()),
        next_job: AtomicU64::new(0),
        shutdown: shutdown.clone(),
    });
    st.refresh();
    let router = routes::router(st.clone());
    let location = ApiLocation {
        url: format!("http://127.0.0.1:{port}"),
        port,
        pid: std::process::id(),
        started_at: rfc3339(SystemClock.now()),
    };
    let api_json = dir.root().join("api.json");
    fsutil::write_atomic(&api_json, &serde_json::to_vec_pretty(&location).expect("serializes"))?;
    info!(url = %location.url, "API listening");

    let refresher = tokio::spawn(refresh_loop(st.clone(), shutdown.clone()));
    let limits = server::Limits::from_config(&cfg);
    let v4 = server::serve(listener, router.clone(), limits, shutdown.clone());
    let served = match listener6 {
        Some(l6) => {
            let v6 = server::serve(l6, router, limits, shutdown.clone());
            tokio::try_join!(v4, v6).map(|_| ())
        }
        None => v4.await,
    };
    let _ = shutdown.wait_for(|v| *v).await;
    let _ = refresher.await;
    // Jobs already started finish (a collect or upload half done is finished, not cut).
    let mut jobs = std::mem::take(&mut *st.job_tasks.lock().unwrap_or_else(|e| e.into_inner()));
    while jobs.join_next().await.is_some() {}
    let _ = std::fs::remove_file(&api_json);
    served.map_err(ApiError::Io)
}

/// Refreshes the snapshot on every change the agent reports, and every 30 seconds.
async fn refresh_loop(st: Arc<ApiState>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut notices = st.agent.subscribe();
    // The first refresh is serve()'s, before the API listens: the tick starts 30 s later (an
    // immediate first tick would recompute the status and page out start-up's code at once).
    let every = Duration::from_secs(30);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            n = notices.recv() => {
                if matches!(n, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    break;
                }
                // Let a burst of changes settle into one refresh.
                while notices.try_recv().is_ok() {}
                st.refresh();
            }
            _ = tick.tick() => {
                st.refresh();
                // The periodic refresh is the idle agent's only burst of work: hand back the pages
                // it touched (the scheduler does the same when it goes idle).
                tokio::task::spawn_blocking(crate::memory::release_idle).await.ok();
            }
            _ = shutdown.changed() => break,
        }
    }
}
