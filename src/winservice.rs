//! Running as the Windows service `callhome` (the MSI installs it with `run --headless`): the
//! service control manager's Stop and Shutdown end the agent as SIGTERM does elsewhere.
//!
//! `callhome run --headless` first offers itself to the service dispatcher; started from a
//! console (not by the SCM) the dispatcher refuses at once (error 1063) and the agent runs as a
//! console program. This module is compiled on Windows only; it is not built or run by this
//! repository's CI (which runs on Linux), so it is kept to the windows-service crate's
//! documented pattern.

use std::ffi::OsString;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use windows_service::service::{
    ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::{define_windows_service, service_dispatcher};

/// The service's name, as the MSI's ServiceInstall gives it.
pub const SERVICE_NAME: &str = "callhome";

/// ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: not started by the service control manager.
const NOT_A_SERVICE: i32 = 1063;

/// What the service runs: the agent until the receiver completes; its exit code.
type Body = Box<dyn Fn(tokio::sync::oneshot::Receiver<()>) -> u32 + Send + Sync>;

static BODY: OnceLock<Body> = OnceLock::new();
static EXIT: AtomicU32 = AtomicU32::new(0);

define_windows_service!(ffi_service_main, service_main);

/// Runs `body` as the service when the SCM started this process and returns its exit code;
/// `None` (without running `body`) when started from a console.
pub fn run_as_service(body: Body) -> Option<u32> {
    let _ = BODY.set(body);
    match service_dispatcher::start(SERVICE_NAME, ffi_service_main) {
        Ok(()) => Some(EXIT.load(Ordering::SeqCst)),
        Err(windows_service::Error::Winapi(e)) if e.raw_os_error() == Some(NOT_A_SERVICE) => None,
        Err(e) => {
            eprintln!("callhome: cannot run as the Windows service {SERVICE_NAME}: {e}");
            Some(1)
        }
    }
}

fn status(state: ServiceState, accept: ServiceControlAccept, code: u32) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: accept,
        exit_code: if code == 0 { ServiceExitCode::Win32(0) } else { ServiceExitCode::ServiceSpecific(code) },
        checkpoint: 0,
        wait_hint: Duration::from_secs(30),
        process_id: None,
    }
}

fn service_main(_arguments: Vec<OsString>) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let tx = Mutex::new(Some(tx));
    let handler = move |event| match event {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            if let Some(tx) = tx.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = tx.send(());
            }
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let Ok(handle) = service_control_handler::register(SERVICE_NAME, handler) else {
        EXIT.store(1, Ordering::SeqCst);
        return;
    };
    let accept = ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN;
    let _ = handle.set_service_status(status(ServiceState::Running, accept, 0));
    let code = BODY.get().map(|body| body(rx)).unwrap_or(1);
    EXIT.store(code, Ordering::SeqCst);
    let _ = handle.set_service_status(status(ServiceState::Stopped, ServiceControlAccept::empty(), code));
}
