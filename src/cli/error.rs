//! The CLI's errors: a message that says what to do, and the exit code ([`crate::exit`]); every
//! library error is mapped here, nowhere else.

use super::*;

/// An error for the user: the message to print and the exit code.
pub struct CliError {
    pub code: u8,
    pub message: String,
}

pub(crate) type Result<T> = std::result::Result<T, CliError>;

pub(crate) fn fail(code: u8, message: impl Into<String>) -> CliError {
    CliError { code, message: message.into() }
}

impl From<AgentError> for CliError {
    fn from(e: AgentError) -> CliError {
        match e {
            AgentError::DataDir(DataDirError::Busy { .. }) => fail(exit::BUSY, e.to_string()),
            AgentError::Refused(m) => fail(exit::REFUSED, m),
            other => fail(exit::FAILURE, with_hint(&other)),
        }
    }
}

pub(super) fn manual_err(e: callhome::manual::ManualError) -> CliError {
    use callhome::manual::ManualError;
    match e {
        ManualError::Receipt(_) => fail(exit::LEDGER, e.to_string()),
        ManualError::Agent(a) => CliError::from(a),
        other => fail(exit::FAILURE, with_hint(&other)),
    }
}

/// The error's message, with what to do when the cause is a full disk.
fn with_hint(e: &(dyn std::error::Error + 'static)) -> String {
    if callhome::fsutil::is_disk_full(e) {
        format!(
            "{e}\nThe disk holding the data directory is full: nothing was lost (pending bundles stay in the spool); free some space and run the command again."
        )
    } else {
        e.to_string()
    }
}

impl From<DaemonError> for CliError {
    fn from(e: DaemonError) -> CliError {
        match e {
            DaemonError::Agent(a) => CliError::from(a),
            other => fail(exit::FAILURE, other.to_string()),
        }
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> CliError {
        fail(exit::CONFIG, e.to_string())
    }
}
