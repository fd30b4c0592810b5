//! `callhome-tray`: the desktop's callhome. A tray icon with the agent's state and menu, and
//! desktop notifications for failed uploads, the 90-day clock and license events.
//!
//! Two ways to run:
//! - `callhome-tray`: runs the agent in this process (as `callhome run` does) with the tray
//!   beside it — a workstation's agent;
//! - `callhome-tray --attach`: the view of an agent that runs elsewhere on the same data
//!   directory (the system service's, for members of its group), through its API; starts no
//!   agent of its own.
//!
//! Everything GUI (GTK through tao, tray-icon, notify-rust) lives in this crate: the `callhome`
//! binary that servers install links none of it.

mod icon;
mod notify;
mod tray;
mod view;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use callhome::config::Config;
use callhome::daemon::{self, DaemonError};
use callhome::datadir::DataDir;
use callhome::exit;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "callhome-tray", version, about = "The callhome agent's tray and desktop notifications")]
struct Args {
    /// Configuration file (TOML), read on top of the embedded default.
    #[arg(long, env = "CALLHOME_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (default: the platform's data folder).
    #[arg(long, env = "CALLHOME_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Show the agent that runs on the data directory (such as the system service's) through
    /// its API instead of running one here.
    #[arg(long)]
    attach: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("callhome-tray: {message}");
            ExitCode::from(code)
        }
    }
}

type Failure = (u8, String);

fn failure(e: DaemonError) -> Failure {
    use callhome::agent::AgentError;
    use callhome::datadir::DataDirError;
    match e {
        DaemonError::Agent(AgentError::DataDir(DataDirError::Busy { .. })) => (exit::BUSY, e.to_string()),
        other => (exit::FAILURE, other.to_string()),
    }
}

fn run(args: Args) -> Result<(), Failure> {
    if !view::session_present() {
        return Err((
            exit::FAILURE,
            "no desktop session (neither DISPLAY nor WAYLAND_DISPLAY is set): the tray needs one; `callhome run` runs the agent without it".into(),
        ));
    }
    // SAFETY: no other thread runs yet (the runtime is built below).
    unsafe { prepare_gtk() };
    let rt = daemon::runtime().map_err(failure)?;
    // Signal handlers first: a SIGTERM that arrives once the data directory is held must stop
    // the agent cleanly.
    let stop = rt.block_on(async { daemon::shutdown_signal() }).map_err(failure)?;
    let dir = DataDir::locate(args.data_dir);
    if args.attach {
        // `--attach` logs to stderr only: the data directory is the service's.
        daemon::init_stderr_logging("info");
        tray::run_client(dir, rt, stop);
    }
    let cfg = match &args.config {
        Some(path) => Config::load(path).map_err(|e| (exit::CONFIG, e.to_string()))?,
        None => Config::embedded(),
    };
    let api_cfg = cfg.api.clone();
    let opened = rt.block_on(daemon::open(cfg, dir)).map_err(failure)?;
    let agent = opened.agent.clone();
    let api_on = api_cfg.enabled;
    tray::run(callhome::control::Local::new(opened.agent), rt, api_on, move |quit| async move {
        let _lock = opened.lock;
        let stop = async move {
            tokio::select! {
                () = stop => {}
                () = quit => {}
            }
        };
        let on_click = api_on.then(|| open_dashboard_on_click(callhome::control::Local::new(agent.clone())));
        let sink = Arc::new(notify::Desktop { on_click });
        match daemon::serve(agent, api_cfg, sink, stop).await {
            Ok(()) => 0,
            Err(e) => {
                let (code, message) = failure(e);
                eprintln!("callhome-tray: {message}");
                i32::from(code)
            }
        }
    })
}

/// A click on a notification opens the dashboard through the agent's API.
fn open_dashboard_on_click(local: callhome::control::Local) -> notify::OnClick {
    Arc::new(move || {
        let control = callhome::control::Control::Local(local.clone());
        tokio::spawn(async move {
            if let Err(e) = view::open_dashboard(&control, "").await {
                tracing::warn!("{e}");
            }
        });
    })
}

/// Keeps GTK (which tao starts for the tray) small: it probes OpenGL and loads a software driver
/// for it (tens of MB) though the tray draws nothing with GL, and it joins the accessibility bus
/// though the panel, not this process, draws the menu.
///
/// # Safety
/// Sets environment variables: call it before any other thread exists.
unsafe fn prepare_gtk() {
    // SAFETY: the caller guarantees no other thread reads the environment meanwhile.
    unsafe {
        std::env::set_var("GDK_GL", "disable");
        std::env::set_var("NO_AT_BRIDGE", "1");
    }
}
