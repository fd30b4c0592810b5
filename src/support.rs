//! Support bundles for a support case: what a vendor's engineer needs to see, with no secret.
//!
//! The bundle holds `case.json` (the case's fields), the status, recent attempts, the system
//! information, the configuration as written (secret-looking values redacted), the agent's recent
//! log, the tails of the product's logs (`collect.error_logs`) and of the license debug logs
//! (`licenses.debug_logs`) — bounded, each line redacted like the errors collector's samples —
//! and a timed dry run of every collector (nothing is spooled, no log cursor moves). Every
//! text is scrubbed of the secrets the agent knows (the proxy password, the endpoint token, the
//! alert channels' SMTP password and webhook secret, the API tokens) before it
//! is written. It is a bundle like the others (manifest, SHA-256s), of upload type `support`.
//! `case.json`'s contact is the technical contact (`[contacts] technical`) unless the case names
//! one.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Value, json};

use crate::agent::{Agent, AgentError};
use crate::api::dto::{AttemptDoc, StatusDoc};
use crate::bundle::{self, Contents, Stamp};
use crate::clock::{file_stamp, rfc3339};
use crate::collect;
use crate::licenses;
use crate::secrets::Secret;
use crate::upload::{Outgoing, PROXY_PASSWORD_ENV};

/// The case a support bundle is for.
#[derive(Debug, Clone, Default)]
pub struct Case {
    pub number: String,
    /// 1 (highest) to 4.
    pub severity: Option<u8>,
    pub impact: Option<String>,
    pub summary: Option<String>,
    pub contact: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SupportError {
    #[error("{0} exists; choose another --out")]
    Exists(PathBuf),
    #[error("{path}: {message}")]
    Write { path: PathBuf, message: String },
    #[error(transparent)]
    Agent(#[from] AgentError),
}

/// The values that must never appear in a support bundle.
fn secrets(agent: &Agent) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(p) = std::env::var(PROXY_PASSWORD_ENV)
        && !p.is_empty()
    {
        out.push(p);
    }
    // Whatever the uploader holds: the proxy password and the endpoint token, from wherever
    // they came (environment, systemd credential, keyring).
    let access = agent.access();
    for (v, _) in [access.password, access.token].into_iter().flatten() {
        if !v.expose().is_empty() {
            out.push(v.expose().to_string());
        }
    }
    // The alert channels' SMTP password and webhook signing secret.
    for s in [Secret::SmtpPassword, Secret::WebhookSecret] {
        if let Ok(Some(v)) = agent.channel_secret(s)
            && !v.expose().is_empty()
        {
            out.push(v.expose().to_string());
        }
    }
    for f in ["api-token", "api-token-read"] {
        if let Ok(t) = std::fs::read_to_string(agent.data_dir().root().join(f)) {
            let t = t.trim().to_string();
            if !t.is_empty() {
                out.push(t);
            }
        }
    }
    out
}

fn scrub(text: &str, secrets: &[String]) -> String {
    let mut t = text.to_string();
    for s in secrets {
        t = t.replace(s.as_str(), "[REDACTED]");
    }
    t
}

/// Redacts the values of keys that look secret, and credentials in URLs.
fn redact_config(text: &str) -> String {
    text.lines()
        .map(|line| {
            let key = line.split('=').next().unwrap_or("").trim().to_ascii_lowercase();
            if line.contains('=')
                && ["password", "secret", "token", "passphrase", "private"].iter().any(|w| key.contains(w))
            {
                format!("{} = \"[REDACTED]\"", line.split('=').next().unwrap_or("").trim_end())
            } else if let Some(at) = line.find('@')
                && let Some(scheme) = line[..at].find("://")
            {
                format!("{}://[REDACTED]{}", &line[..scheme], &line[at..])
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// How much of each product or debug log goes in: its last lines, at most this many bytes …
const LOG_TAIL_BYTES: u64 = 256 * 1024;
/// … and this many lines.
const LOG_TAIL_LINES: usize = 2000;

/// The last lines of `path` (bounded by [`LOG_TAIL_BYTES`] and [`LOG_TAIL_LINES`]), each
/// redacted as the errors collector redacts its samples (numbers, addresses, e-mail addresses).
fn redacted_tail(path: &Path) -> std::io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let start = len.saturating_sub(LOG_TAIL_BYTES);
    f.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    f.take(LOG_TAIL_BYTES).read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // cut mid-line
    }
    let skip = lines.len().saturating_sub(LOG_TAIL_LINES);
    let mut out = String::new();
    for l in &lines[skip..] {
        out.push_str(&collect::errors::redact(l));
        out.push('\n');
    }
    Ok(out)
}

/// The product logs and license debug logs the configuration names, as (what, path), and why a
/// configured name found no file (each goes in the manifest's errors).
fn product_logs(agent: &Agent) -> (Vec<(&'static str, PathBuf)>, Vec<licenses::FileProblem>) {
    let base = agent.config_base();
    let (errors, mut problems) = licenses::license_paths(&agent.config().collect.error_logs, &base);
    let (debug, more) = licenses::license_paths(&agent.config().licenses.debug_logs, &base);
    problems.extend(more);
    let logs = errors.into_iter().map(|p| ("product", p)).chain(debug.into_iter().map(|p| ("license-debug", p)));
    (logs.collect(), problems)
}

/// Runs every collector once, timed, without spooling anything.
async fn dry_run(agent: &Agent) -> Value {
    let mut results = Vec::new();
    let mut timed = |name: &str, started: Instant, outcome: Result<String, String>| {
        let ms = started.elapsed().as_millis() as u64;
        results.push(match outcome {
            Ok(detail) => json!({ "collector": name, "ok": true, "ms": ms, "detail": detail }),
            Err(e) => json!({ "collector": name, "ok": false, "ms": ms, "error": e }),
        });
    };
    let t = Instant::now();
    let r = tokio::task::spawn_blocking(|| collect::system::collect(true)).await.unwrap_or_else(|e| Err(e.to_string()));
    timed("system", t, r.map(|v| format!("{} keys", v.as_object().map_or(0, |o| o.len()))));
    let names = agent.config().product.processes.clone();
    let t = Instant::now();
    let r = tokio::task::spawn_blocking(move || collect::performance::sample(&names))
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    timed("performance", t, r.map(|v| format!("{} processes sampled", v["processes"].as_array().map_or(0, Vec::len))));
    for cmd in &agent.config().collect.commands {
        let t = Instant::now();
        let r = collect::command::run(cmd).await.map_err(|e| e.to_string());
        timed(&format!("command:{}", cmd.name), t, r.map(|_| "printed valid JSON".into()));
    }
    let t = Instant::now();
    let inv = agent.scan_licenses();
    timed(
        "licenses",
        t,
        Ok(format!(
            "{} license lines in {} files, {} problems",
            inv.licenses.len(),
            inv.files.len(),
            inv.problems.len()
        )),
    );
    // The errors collector: what the product logs hold beyond the saved cursors (not saved).
    let (paths, problems) = licenses::license_paths(&agent.config().collect.error_logs, &agent.config_base());
    for p in problems {
        timed(&format!("errors:{}", p.file.display()), Instant::now(), Err(p.message));
    }
    for path in paths {
        let key = path.display().to_string();
        let mut cursor = agent.error_log_cursor(&path);
        let patterns = agent.config().collect.error_patterns.clone();
        let t = Instant::now();
        let r = tokio::task::spawn_blocking(move || collect::errors::scan(&path, &mut cursor, &patterns))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        timed(
            &format!("errors:{key}"),
            t,
            r.map(|f| {
                let n: u64 = f.counts.iter().map(|(_, c)| c).sum();
                format!("{n} new error lines over {} patterns (not recorded: dry run)", f.counts.len())
            }),
        );
    }
    let base = agent.config_base();
    for log in &agent.config().licenses.debug_logs {
        let path = base.join(log);
        let key = path.display().to_string();
        let cursor = agent.debug_log_cursor(&path);
        let t = Instant::now();
        let r = tokio::task::spawn_blocking(move || licenses::debuglog::read_new(&path, cursor))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        timed(
            &format!("debug_log:{key}"),
            t,
            r.map(|p| format!("{} new bytes, {} lines (not recorded: dry run)", p.stats.bytes, p.stats.lines)),
        );
    }
    json!({ "collectors": results })
}

/// Builds the support bundle at `out` (never over an existing file).
pub async fn build(agent: &Agent, case: &Case, out: &Path) -> Result<PathBuf, SupportError> {
    if out.exists() {
        return Err(SupportError::Exists(out.to_path_buf()));
    }
    let secrets = secrets(agent);
    let now = agent.now();
    let mut c = Contents::default();
    let json_scrubbed =
        |v: &Value| -> Vec<u8> { scrub(&serde_json::to_string_pretty(v).expect("serializes"), &secrets).into_bytes() };
    // The technical contact (`[contacts] technical`) unless the case names one.
    let contact = case.contact.clone().or_else(|| agent.config().contacts.technical.clone());
    let case_doc = json!({
        "case": case.number, "severity": case.severity, "impact": case.impact, "summary": case.summary, "contact": contact,
        "created_at": rfc3339(now), "install_id": agent.install().install_id, "agent_version": env!("CARGO_PKG_VERSION"),
    });
    c.add_file("case.json", "the support case: number, severity, impact, summary, contact", json_scrubbed(&case_doc));
    let status = serde_json::to_value(StatusDoc::from(&agent.status()?)).expect("serializes");
    c.add_file("status.json", "the agent's status (as callhome status --json)", json_scrubbed(&status));
    // CEIP attempts are left out: their times would join the anonymous uploads to this install.
    let attempts: Vec<AttemptDoc> =
        agent.history(200, 0)?.iter().map(AttemptDoc::from).filter(|a| a.program != "ceip").collect();
    c.add_file(
        "history.json",
        "the last upload attempts, up to 200 (CEIP's left out: it is sent anonymously)",
        json_scrubbed(&serde_json::to_value(attempts).expect("serializes")),
    );
    match collect::system::collect(true) {
        Ok(v) => c.add_file(
            "system.json",
            "the machine: OS, kernel, host, hardware id, CPU, memory, disks",
            json_scrubbed(&v),
        ),
        Err(e) => c.add_error("system", e),
    }
    let config_text = match &agent.config().source {
        Some(p) => std::fs::read_to_string(p)
            .map(|t| format!("# {}\n{t}", p.display()))
            .unwrap_or_else(|e| format!("# {}: {e}\n", p.display())),
        None => "# the embedded default configuration is in use (callhome config default)\n".into(),
    };
    c.add_file(
        "config.toml",
        "the configuration file as written, secret-looking values redacted",
        scrub(&redact_config(&config_text), &secrets).into_bytes(),
    );
    let log = crate::logfile::tail(&agent.data_dir().root().join("logs"), 1 << 20);
    c.add_file(
        "logs/agent.log",
        "the agent's recent log (the last MiB)",
        scrub(&String::from_utf8_lossy(&log), &secrets).into_bytes(),
    );
    let (logs, problems) = product_logs(agent);
    for p in problems {
        c.add_error(format!("logs:{}", p.file.display()), p.message);
    }
    for (i, (what, path)) in logs.into_iter().enumerate() {
        let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "log".into());
        let safe: String =
            file.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
        let name = format!("logs/{what}/{}-{safe}", i + 1);
        match redacted_tail(&path) {
            Ok(text) => c.add_file(
                &name,
                format!(
                    "the last lines of {} (at most {LOG_TAIL_LINES} lines, {LOG_TAIL_BYTES} bytes), numbers, addresses and e-mail addresses blanked",
                    path.display()
                ),
                scrub(&text, &secrets).into_bytes(),
            ),
            Err(e) => c.add_error(&name, format!("cannot read {}: {e}", path.display())),
        }
    }
    c.add_file(
        "collectors.json",
        "a timed dry run of every collector (nothing spooled)",
        json_scrubbed(&dry_run(agent).await),
    );

    let dir = crate::fsutil::parent_dir(out).to_path_buf();
    let name = format!(".support-{}-{}.zip", std::process::id(), file_stamp(now));
    let install_id = agent.install().install_id.clone();
    let tmp = tokio::task::spawn_blocking(move || {
        bundle::write(
            &dir,
            &name,
            &Stamp { program: "support", upload_type: "support", install_id: &install_id, ceip_id: None, now },
            c,
        )
    })
    .await
    .expect("the bundle writer does not panic")
    .map_err(|e| SupportError::Write { path: out.to_path_buf(), message: e.to_string() })?;
    // Linking never replaces: a file that appeared meanwhile is not overwritten.
    let linked = std::fs::hard_link(&tmp, out);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(out.to_path_buf()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(SupportError::Exists(out.to_path_buf())),
        Err(e) => Err(SupportError::Write { path: out.to_path_buf(), message: e.to_string() }),
    }
}

/// Sends a support bundle to the endpoint as upload type `support`; returns the receipt id.
pub async fn upload(agent: &Agent, path: &Path) -> Result<String, String> {
    let uploader = agent.uploader().map_err(|f| f.message.clone())?;
    let (sha, size) = crate::fsutil::sha256_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let receipt = uploader
        .send(Outgoing { path, sha256: &sha, size, program: "support" })
        .await
        .map_err(|f| format!("{}: {}", f.code.as_str(), f.message))?;
    Ok(receipt.receipt_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_values_and_url_credentials_are_redacted() {
        let text = "[upload]\nproxy = \"http://u:pw@proxy:3128\"\napi_token = \"abc\"\nendpoint = \"https://x/v1\"\n";
        let r = redact_config(text);
        assert!(!r.contains("pw@") && !r.contains("abc"), "{r}");
        assert!(r.contains("https://x/v1"));
        assert_eq!(scrub("a s3cr3t b", &["s3cr3t".into()]), "a [REDACTED] b");
    }
}
