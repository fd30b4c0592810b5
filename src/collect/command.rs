//! The command collector: runs a vendor command and keeps its JSON output.
//!
//! The command runs without a shell, with a timeout (it is killed when it passes it) and an
//! output cap; a command that fails, times out, prints too much or prints no JSON is an error in
//! the manifest, never an aborted bundle. Its environment is `childenv`'s allow-list, never the
//! agent's own (which may hold its secrets).

use std::process::Stdio;

use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::config::CommandSpec;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot start {argv0:?}: {source}")]
    Spawn { argv0: String, source: std::io::Error },
    #[error("did not finish within {0:?} and was stopped")]
    Timeout(std::time::Duration),
    #[error("printed more than the {0}-byte output cap")]
    TooMuch(u64),
    #[error("exited with {status}{stderr}")]
    Failed { status: String, stderr: String },
    #[error("did not print JSON: {0}")]
    NotJson(String),
    #[error("reading its output: {0}")]
    Io(std::io::Error),
}

pub async fn run(spec: &CommandSpec) -> Result<Value, CommandError> {
    let mut cmd = Command::new(&spec.argv[0]);
    crate::childenv::apply_tokio(&mut cmd, &spec.env);
    let mut child = cmd
        .args(&spec.argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| CommandError::Spawn { argv0: spec.argv[0].clone(), source })?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let cap = spec.max_output;
    let work = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut out_capped = (&mut stdout).take(cap + 1);
        let mut err_capped = (&mut stderr).take(4096);
        let (o, e) = tokio::join!(out_capped.read_to_end(&mut out), err_capped.read_to_end(&mut err));
        o.map_err(CommandError::Io)?;
        let _ = e;
        if out.len() as u64 > cap {
            return Err(CommandError::TooMuch(cap));
        }
        let status = child.wait().await.map_err(CommandError::Io)?;
        Ok((status, out, err))
    };
    let (status, out, err) = match tokio::time::timeout(spec.timeout, work).await {
        Ok(r) => r?,
        Err(_) => return Err(CommandError::Timeout(spec.timeout)),
    };
    if !status.success() {
        let first = String::from_utf8_lossy(&err).lines().next().unwrap_or("").chars().take(200).collect::<String>();
        let stderr = if first.is_empty() { String::new() } else { format!(": {first}") };
        return Err(CommandError::Failed { status: status.to_string(), stderr });
    }
    serde_json::from_slice(&out).map_err(|e| CommandError::NotJson(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::programs::Program;
    use std::time::Duration;

    fn spec(argv: &[&str], timeout_ms: u64, cap: u64) -> CommandSpec {
        CommandSpec {
            name: "t".into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            program: Program::Telemetry,
            timeout: Duration::from_millis(timeout_ms),
            max_output: cap,
            env: Vec::new(),
        }
    }

    #[tokio::test]
    async fn json_output_is_kept_and_failures_are_described() {
        assert_eq!(run(&spec(&["echo", "{\"a\":1}"], 5000, 100)).await.unwrap()["a"], 1);
        assert!(matches!(run(&spec(&["echo", "plain"], 5000, 100)).await, Err(CommandError::NotJson(_))));
        assert!(matches!(run(&spec(&["sh", "-c", "echo boom >&2; exit 3"], 5000, 100)).await,
            Err(CommandError::Failed { ref stderr, .. }) if stderr.contains("boom")));
        assert!(matches!(run(&spec(&["sleep", "5"], 100, 100)).await, Err(CommandError::Timeout(_))));
        assert!(matches!(
            run(&spec(&["head", "-c", "5000", "/dev/zero"], 5000, 100)).await,
            Err(CommandError::TooMuch(100))
        ));
        assert!(matches!(run(&spec(&["/no/such/cmd"], 5000, 100)).await, Err(CommandError::Spawn { .. })));
    }
}
