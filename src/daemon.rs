//! The running agent's lifecycle, for every binary that runs one (`callhome run`, and
//! `callhome-tray` with the agent in-process): opening the data directory and holding its run
//! lock, logging to `logs/agent.log`, the scheduler, the API (with its status snapshot and jobs)
//! and the alerts, started in one place and stopped by one signal.
//!
//! Shutdown is ordered: when the stop future completes (SIGTERM, SIGINT, the tray's Quit, the
//! Windows service's Stop), the scheduler finishes the step it is in, then the API and the
//! alerts are told to stop and awaited. However the scheduler ends, the API ends with it: never a
//! process that serves with no schedule behind it. Nothing here knows a GUI toolkit.

use std::future::Future;
use std::sync::Arc;

use crate::agent::{Agent, AgentError};
use crate::alerts::{self, Deliver};
use crate::api::{self, ApiError};
use crate::clock::SystemClock;
use crate::config::{ApiConfig, Config};
use crate::datadir::{DataDir, RunLock};

/// Why the agent could not run, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The API could not start (its port taken, its token files unwritable) or failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The API's task ended without saying why.
    #[error("the API stopped: {0}")]
    ApiStopped(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot watch signals: {0}")]
    Signals(std::io::Error),
}

/// A future that completes when the agent must stop.
pub type Stop = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// The runtime the agent runs on: one thread (the agent mostly waits), a few blocking threads for
/// file and database work.
pub fn runtime() -> Result<tokio::runtime::Runtime, DaemonError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .build()
        .map_err(DaemonError::Runtime)
}

/// An agent that holds its data directory: opened, recovered, and locked against a second one.
pub struct Opened {
    pub agent: Arc<Agent>,
    /// Held for the life of the process.
    pub lock: RunLock,
}

/// Creates and locks the data directory, starts logging there, opens the agent and recovers what
/// a crash left (orphans, partial bundles). Call it inside `rt`'s context.
pub async fn open(cfg: Config, dir: DataDir) -> Result<Opened, DaemonError> {
    dir.create().map_err(AgentError::from)?;
    init_logging(&dir);
    let lock = dir.lock_run().map_err(AgentError::from)?;
    let agent = Arc::new(Agent::open(cfg, dir, Arc::new(SystemClock))?);
    tracing::info!(data_dir = %agent.data_dir().root().display(), install_id = %agent.install().install_id, "starting");
    agent.recover().await?;
    Ok(Opened { agent, lock })
}

/// The agent logs to stderr and to `logs/agent.log` in the data directory (`CALLHOME_LOG` sets
/// the filter, `info` by default).
pub fn init_logging(dir: &DataDir) {
    let file = crate::logfile::LogFile::open(&dir.root().join("logs"))
        .map_err(|e| {
            eprintln!("callhome: cannot write logs/agent.log in the data directory ({e}); logging to stderr only")
        })
        .ok();
    init_subscriber("info", file);
}

/// Logging for a command that is not the agent: stderr only, `CALLHOME_LOG` or `default` as the
/// filter.
pub fn init_stderr_logging(default: &str) {
    init_subscriber(default, None);
}

/// The one subscriber both set up: stderr (coloured on a terminal) and, when given, the log file.
fn init_subscriber(default: &str, file: Option<crate::logfile::LogFile>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("CALLHOME_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let file = file.map(|f| tracing_subscriber::fmt::layer().with_writer(f).with_ansi(false).with_target(false));
    let _ = tracing_subscriber::registry().with(filter).with(stderr).with(file).try_init();
}

/// Registers SIGTERM and SIGINT now (Ctrl-C elsewhere); the returned future completes when either
/// arrives. Register before taking the data directory: a SIGTERM that arrives once it is held
/// must stop the agent cleanly, never kill it by default action.
pub fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static, DaemonError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
        let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// Runs the agent — its scheduler, its API (when `api.enabled`) and its alerts through `sink` —
/// until `stop` completes, then stops them all and waits for each.
pub async fn serve(
    agent: Arc<Agent>,
    api_cfg: ApiConfig,
    sink: Arc<dyn Deliver>,
    stop: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut api = api_cfg.enabled.then(|| tokio::spawn(api::serve(agent.clone(), api_cfg.clone(), stop_rx.clone())));
    let alerts = tokio::spawn(alerts::run(agent.clone(), sink, stop_rx));
    let stop = async {
        stop.await;
        let _ = stop_tx.send(true);
    };
    let outcome = match &mut api {
        Some(handle) => tokio::select! {
            r = agent.run(stop) => r.map_err(DaemonError::from),
            r = handle => {
                // The API ended before the scheduler: it could not start.
                let _ = stop_tx.send(true);
                let _ = alerts.await;
                return Err(match r {
                    Ok(Err(e)) => DaemonError::Api(e),
                    Ok(Ok(())) => DaemonError::ApiStopped("it ended on its own".into()),
                    Err(e) => DaemonError::ApiStopped(e.to_string()),
                });
            }
        },
        None => agent.run(stop).await.map_err(DaemonError::from),
    };
    // However the scheduler ended, the API and the alerts end with it.
    let _ = stop_tx.send(true);
    if let Some(handle) = api {
        match handle.await {
            Ok(Err(e)) => tracing::warn!("{e}"),
            Err(e) => tracing::warn!("API task: {e}"),
            Ok(Ok(())) => {}
        }
    }
    if let Err(e) = alerts.await {
        tracing::warn!("alerts task: {e}");
    }
    outcome
}
