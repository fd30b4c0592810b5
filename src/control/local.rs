//! The agent in this process, behind the control interface: each request carried out on the
//! agent and answered as the API's wire document. The API's routes map HTTP onto these; the CLI
//! and the tray use them when no agent runs elsewhere.

use std::path::PathBuf;
use std::sync::Arc;

use super::{ControlError, ProgramChange, Result};
use crate::agent::Agent;
use crate::api::dto::{
    AckRequest, AlertChannelDoc, AlertDoc, AttemptDoc, BundleDoc, CollectedDoc, ExportDoc, ExportPartDoc, HistoryPage,
    ImportDoc, LedgerCheckDoc, LedgerDoc, NotificationsDoc, NotificationsRequest, ProgramChanged, ProxyDoc,
    QuarantineActionDoc, QuarantinedDoc, StatusDoc, StepDoc, TestAlertDoc, UploadReportDoc, WithdrawnDoc,
};
use crate::bundle::{BundleError, Reader};
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::collect::licenses::{Identity, hour_json, inventory_json};
use crate::programs::Program;
use crate::secrets::Value as Secret;
use crate::spool::Pending;

/// Runs blocking work (file reads, hashing) off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ControlError::Failed(e.to_string()))?
}

fn bundle_err(e: BundleError) -> ControlError {
    match e {
        e @ BundleError::NoSuchFile { .. } => ControlError::NotFound(e.to_string()),
        other => ControlError::Agent(other.into()),
    }
}

/// The end of an acknowledgement through `date` (`YYYY-MM-DD`, UTC): the start of the next day.
fn ack_until(date: &str, now: Timestamp) -> Result<Timestamp> {
    let d = date.trim();
    let shaped = d.len() == 10 && d.as_bytes()[4] == b'-' && d.as_bytes()[7] == b'-';
    let day = shaped.then(|| crate::licenses::date::Date::parse_iso_or_version(d)).flatten().ok_or_else(|| {
        ControlError::Invalid(format!("until {date:?}: give a date as YYYY-MM-DD, such as 2026-12-31"))
    })?;
    let end = crate::licenses::date::Date::from_days(day.days() + 1).timestamp();
    if end <= now {
        return Err(ControlError::Invalid(format!("until {d}: that day is over; give today or a later date")));
    }
    Ok(end)
}

/// A pending bundle's file, for a front end that streams it (the API's raw download).
pub struct RawBundle {
    pub name: String,
    pub path: PathBuf,
    /// What the ledger will record and the `Idempotency-Key` will carry.
    pub sha256: String,
}

/// The in-process agent.
#[derive(Clone)]
pub struct Local {
    agent: Arc<Agent>,
}

impl Local {
    pub fn new(agent: Arc<Agent>) -> Local {
        Local { agent }
    }

    /// The agent itself, for the daemon and the commands that run its work directly.
    pub fn agent(&self) -> &Arc<Agent> {
        &self.agent
    }

    pub async fn status(&self) -> Result<StatusDoc> {
        Ok(StatusDoc::from(&self.agent.status()?))
    }

    pub async fn programs(&self) -> Result<Vec<crate::api::dto::ProgramDoc>> {
        Ok(self.status().await?.programs)
    }

    pub async fn set_program(&self, p: Program, change: ProgramChange) -> Result<ProgramChanged> {
        let mut withdrawn = Vec::new();
        match change {
            ProgramChange::Enabled(on) => withdrawn = self.agent.set_enabled(p, on).await?,
            ProgramChange::Mode(mode) => {
                if p != Program::Telemetry {
                    return Err(ControlError::Refused(format!(
                        "{} has no mode; turn it on or off with {{\"enabled\": bool}}",
                        p.name()
                    )));
                }
                self.agent.set_telemetry_mode(mode)?;
            }
        }
        let program = self
            .status()
            .await?
            .programs
            .into_iter()
            .find(|d| d.name == p.name())
            .ok_or_else(|| ControlError::NotFound(format!("no program {}", p.name())))?;
        Ok(ProgramChanged { program, withdrawn })
    }

    pub async fn collect(&self, p: Option<Program>) -> Result<Vec<CollectedDoc>> {
        Ok(self.agent.collect(p).await?.iter().map(CollectedDoc::from).collect())
    }

    pub async fn upload(&self, p: Option<Program>) -> Result<UploadReportDoc> {
        Ok(UploadReportDoc::from(&self.agent.upload_cycle(p).await?))
    }

    pub async fn bundles(&self) -> Result<Vec<BundleDoc>> {
        let list = self.agent.all_pending()?;
        Ok(list.iter().map(BundleDoc::from).collect())
    }

    fn pending(&self, name: &str) -> Result<Pending> {
        self.agent.spool().find(name).map_err(crate::agent::AgentError::from)?.filter(|p| p.name == name).ok_or_else(
            || {
                ControlError::NotFound(format!(
                    "no pending bundle {name:?}; `callhome status` (GET /api/v1/bundles) lists them"
                ))
            },
        )
    }

    pub async fn bundle_bytes(&self, name: &str) -> Result<Vec<u8>> {
        let p = self.pending(name)?;
        blocking(move || std::fs::read(&p.path).map_err(|e| bundle_err(BundleError::Io { path: p.path, source: e })))
            .await
    }

    /// One file of a pending bundle (`manifest.json` among them), byte for byte.
    pub async fn bundle_file(&self, name: &str, file: &str) -> Result<Vec<u8>> {
        let p = self.pending(name)?;
        let file = file.to_string();
        blocking(move || Reader::open(&p.path).and_then(|mut r| r.read(&file)).map_err(bundle_err)).await
    }

    /// A pending bundle's path and SHA-256, for streaming it as it is.
    pub async fn raw_bundle(&self, name: &str) -> Result<RawBundle> {
        let p = self.pending(name)?;
        blocking(move || {
            let (sha256, _) = crate::fsutil::sha256_file(&p.path)
                .map_err(|source| bundle_err(BundleError::Io { path: p.path.clone(), source }))?;
            Ok(RawBundle { name: p.name, path: p.path, sha256 })
        })
        .await
    }

    pub async fn withdraw(&self, name: &str) -> Result<WithdrawnDoc> {
        let p = self.agent.withdraw_bundle(name).await?.ok_or_else(|| {
            ControlError::NotFound(format!("no pending bundle {name:?}; GET /api/v1/bundles lists them"))
        })?;
        Ok(WithdrawnDoc { bundle: p.name, program: p.program.name().into(), size: p.size })
    }

    /// The files in quarantine/, oldest first.
    pub async fn quarantine(&self) -> Result<Vec<QuarantinedDoc>> {
        Ok(self
            .agent
            .quarantined()?
            .into_iter()
            .map(|q| QuarantinedDoc {
                id: q.id,
                size: q.size,
                reason: q.reason,
                quarantined_at: crate::clock::rfc3339(q.at),
            })
            .collect())
    }

    /// Re-checks a quarantined bundle and queues it again; one that fails a check stays
    /// ([`ControlError::Refused`] with the reason).
    pub async fn quarantine_retry(&self, id: &str) -> Result<QuarantineActionDoc> {
        match self.agent.retry_quarantined(id).await? {
            crate::agent::Retried::Requeued(p) => Ok(QuarantineActionDoc {
                id: id.into(),
                action: "requeued".into(),
                bundle: Some(p.name),
                program: Some(p.program.name().into()),
            }),
            crate::agent::Retried::NotFound => Err(not_quarantined(id)),
        }
    }

    /// Deletes a quarantined file for good (the ledger records it).
    pub async fn quarantine_purge(&self, id: &str) -> Result<QuarantineActionDoc> {
        let q = self.agent.purge_quarantined(id).await?.ok_or_else(|| not_quarantined(id))?;
        Ok(QuarantineActionDoc { id: q.id, action: "purged".into(), bundle: None, program: None })
    }

    pub async fn history(&self, limit: u32, offset: u32) -> Result<HistoryPage> {
        let rows = self.agent.history(limit, offset)?;
        let items: Vec<AttemptDoc> = rows.iter().map(AttemptDoc::from).collect();
        let next_offset = (items.len() as u32 == limit).then_some(offset + limit);
        Ok(HistoryPage { items, limit, offset, next_offset })
    }

    pub async fn ledger(&self) -> Result<Vec<LedgerDoc>> {
        Ok(self.ledger_rows()?.iter().map(LedgerDoc::from).collect())
    }

    /// The ledger's rows, oldest first.
    pub fn ledger_rows(&self) -> Result<Vec<crate::store::LedgerRow>> {
        Ok(self.agent.store().ledger().map_err(crate::agent::AgentError::from)?)
    }

    /// The ledger checked end to end, with the kind of problem when it does not verify
    /// (tampering, or a configuration that cannot check it).
    pub fn check_ledger(
        &self,
    ) -> Result<std::result::Result<crate::ledger::LedgerCheck, crate::ledger::LedgerCheckError>> {
        let ev = self.agent.ledger_evidence()?;
        Ok(crate::ledger::verify(self.agent.config(), &ev))
    }

    /// The ledger checked end to end: its chain, and each receipt against its bundle and the
    /// receiver's key. A ledger that does not verify is an answer (`ok: false`), not an error.
    pub async fn ledger_verify(&self) -> Result<LedgerCheckDoc> {
        let ev = self.agent.ledger_evidence()?;
        Ok(match crate::ledger::verify(self.agent.config(), &ev) {
            Ok(c) => LedgerCheckDoc {
                ok: true,
                summary: c.to_string(),
                rows: c.rows,
                receipts: c.receipts,
                anchored: c.anchored,
                signatures_checked: c.signatures_checked,
                unverified: c.unverified,
                problem: None,
            },
            Err(e) => LedgerCheckDoc {
                ok: false,
                summary: format!("the ledger does not verify: {e}"),
                rows: ev.rows.len(),
                receipts: 0,
                anchored: 0,
                signatures_checked: false,
                unverified: 0,
                problem: Some(e.to_string()),
            },
        })
    }

    pub async fn licenses(&self) -> Result<serde_json::Value> {
        let inv = self.agent.scan_licenses();
        let events = self.agent.license_events(&inv)?;
        let now = self.agent.now();
        let mut doc = inventory_json(&inv, &[], &events, SystemClock.now());
        let grace: Vec<crate::api::dto::GracePeriodDoc> =
            self.agent.grace_periods(&inv)?.iter().map(|g| crate::api::dto::GracePeriodDoc::new(g, now)).collect();
        doc["grace_periods"] = serde_json::to_value(grace).expect("wire documents serialize");
        Ok(doc)
    }

    /// Usage by feature and hour, after reading what is new in the debug logs.
    pub async fn usage(&self, feature: Option<&str>, since: Timestamp) -> Result<Vec<serde_json::Value>> {
        self.agent.refresh_licenses_locked().await?;
        let rows = self.agent.store().usage(feature, since, i64::MAX).map_err(crate::agent::AgentError::from)?;
        Ok(rows.iter().map(|r| hour_json(r, Identity::Names)).collect())
    }

    pub async fn proxy(&self) -> Result<ProxyDoc> {
        Ok(ProxyDoc::from(&self.agent.access()))
    }

    /// Sets the proxy; the keyring is asked off the async threads (its D-Bus calls block).
    pub async fn set_proxy(&self, url: &str, user: Option<&str>, password: Option<&Secret>) -> Result<ProxyDoc> {
        let (agent, url, user, password) =
            (self.agent.clone(), url.to_string(), user.map(str::to_string), password.cloned());
        blocking(move || Ok(agent.set_proxy(&url, user.as_deref(), password.as_ref())?)).await?;
        self.proxy().await
    }

    pub async fn clear_proxy(&self) -> Result<ProxyDoc> {
        let agent = self.agent.clone();
        blocking(move || Ok(agent.clear_proxy().map(drop)?)).await?;
        self.proxy().await
    }

    /// Stores (`Some`) or removes (`None`) the endpoint token.
    pub async fn register(&self, token: Option<&Secret>) -> Result<ProxyDoc> {
        let (agent, token) = (self.agent.clone(), token.cloned());
        blocking(move || match &token {
            Some(t) => Ok(agent.set_token(t)?),
            None => Ok(agent.clear_token().map(drop)?),
        })
        .await?;
        self.proxy().await
    }

    /// Exports the pending bundles (of `program`, or of every program whose consent allows
    /// sending) into the data directory's `exports/`: one zip, or parts of at most `max_size`
    /// bytes (default: `spool.export_max_size`; 0 means one file).
    pub async fn export(&self, program: Option<Program>, max_size: Option<u64>) -> Result<ExportDoc> {
        let dir = self.agent.data_dir().exports_dir();
        std::fs::create_dir_all(&dir).map_err(|source| {
            ControlError::Agent(crate::agent::AgentError::Bundle(BundleError::Io { path: dir.clone(), source }))
        })?;
        let file = format!("export_{}_{:04x}.zip", crate::clock::file_stamp(SystemClock.now()), fastrand::u16(..));
        let out = dir.join(&file);
        let max_size = max_size.or(Some(self.agent.config().spool.export_max_size)).filter(|m| *m > 0);
        let parts = crate::manual::export(&self.agent, &out, program, max_size, Box::new(|_, _| {})).await.map_err(
            |e| match e {
                e @ crate::manual::ManualError::TooLarge { .. } => ControlError::Invalid(e.to_string()),
                crate::manual::ManualError::Agent(crate::agent::AgentError::Refused(why)) => ControlError::Refused(why),
                e => ControlError::Failed(e.to_string()),
            },
        )?;
        let parts: Vec<ExportPartDoc> = parts
            .into_iter()
            .map(|e| {
                let file = e.path.file_name().unwrap_or_default().to_string_lossy().into_owned();
                ExportPartDoc {
                    export_id: e.export_id,
                    href: format!("/api/v1/exports/{file}"),
                    file,
                    bundles: e.bundles.len(),
                    bytes: e.bytes,
                }
            })
            .collect();
        let first = parts.first().cloned().expect("an export writes at least one part");
        Ok(ExportDoc {
            export_id: first.export_id,
            file: first.file,
            href: first.href,
            bundles: first.bundles,
            bytes: first.bytes,
            parts,
        })
    }

    /// Imports a receiver's signed manual receipt. One that fails a check is refused as
    /// [`ControlError::Invalid`] and changes nothing; importing twice is harmless.
    pub async fn import_receipt(&self, bytes: &[u8]) -> Result<ImportDoc> {
        match crate::manual::import_receipt_bytes(&self.agent, bytes, "the receipt").await {
            Ok(r) => Ok(ImportDoc {
                receipt_id: r.receipt_id,
                export_id: r.export_id,
                acknowledged: r.acknowledged,
                already: r.already,
                rejected: serde_json::to_value(&r.rejected).expect("wire documents serialize"),
            }),
            Err(e @ crate::manual::ManualError::Receipt(_)) => Err(ControlError::Invalid(e.to_string())),
            Err(e) => Err(ControlError::Failed(e.to_string())),
        }
    }

    /// Makes a support bundle in `exports/`, and sends it when `upload`; a failed send is told
    /// in the document's `error` (the bundle stays in `exports/`).
    pub async fn support_bundle(&self, case: crate::support::Case, upload: bool) -> Result<serde_json::Value> {
        let dir = self.agent.data_dir().exports_dir();
        std::fs::create_dir_all(&dir).map_err(|e| ControlError::Failed(format!("{}: {e}", dir.display())))?;
        let safe: String = case.number.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        let file =
            format!("support_{safe}_{}_{:04x}.zip", crate::clock::file_stamp(SystemClock.now()), fastrand::u16(..));
        let path = crate::support::build(&self.agent, &case, &dir.join(&file))
            .await
            .map_err(|e| ControlError::Failed(e.to_string()))?;
        let mut doc = serde_json::json!({ "file": file, "href": format!("/api/v1/exports/{file}") });
        if upload {
            match crate::support::upload(&self.agent, &path).await {
                Ok(id) => doc["receipt_id"] = serde_json::Value::from(id),
                Err(e) => doc["error"] = serde_json::Value::from(e),
            }
        }
        Ok(doc)
    }

    /// A file written in `exports/` (an export or a support bundle), by its plain name.
    pub fn export_path(&self, file: &str) -> Result<PathBuf> {
        let plain = file.ends_with(".zip")
            && !file.starts_with('.')
            && file.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        let path = self.agent.data_dir().exports_dir().join(file);
        if !plain || !path.is_file() {
            return Err(ControlError::NotFound(format!("no export {file:?}")));
        }
        Ok(path)
    }

    /// Each step of the path to the receiver (DNS, TCP, proxy, TLS, probe).
    pub async fn test_connection(&self) -> Vec<StepDoc> {
        let a = &self.agent;
        let steps = crate::upload::diagnose::test_connection(a.config(), &a.install().install_id, &a.access()).await;
        steps.iter().map(StepDoc::from).collect()
    }

    /// The Prometheus text.
    pub fn metrics(&self) -> Result<String> {
        Ok(super::metrics::text(&self.agent)?)
    }

    /// The open alerts, acknowledged or not, oldest first.
    pub async fn alerts(&self) -> Result<Vec<AlertDoc>> {
        Ok(self.agent.open_alerts()?.iter().map(AlertDoc::from).collect())
    }

    /// Acknowledges the open alert `id`: through `until` (a date, UTC) when given, else until it
    /// clears or gets worse.
    pub async fn ack_alert(&self, id: &str, req: &AckRequest) -> Result<AlertDoc> {
        let until = req.until.as_deref().map(|d| ack_until(d, self.agent.now())).transpose()?;
        let reason = req.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
        Ok(AlertDoc::from(&self.agent.ack_alert(id, until, reason)?))
    }

    /// Takes back the acknowledgement of the open alert `id`.
    pub async fn unack_alert(&self, id: &str) -> Result<AlertDoc> {
        Ok(AlertDoc::from(&self.agent.unack_alert(id)?))
    }

    /// Sends a test alert on `channel`, or on every configured channel, now; a channel that
    /// fails is an answer (`delivered: false`), not an error.
    pub async fn test_alert(&self, channel: Option<&str>) -> Result<Vec<TestAlertDoc>> {
        const NAMES: [&str; 3] = ["email", "webhook", "journal"];
        let names: Vec<&str> = match channel {
            Some(c) if NAMES.contains(&c) => vec![c],
            Some(c) => {
                return Err(ControlError::Invalid(format!(
                    "{c:?} is not an alert channel: use email, webhook or journal"
                )));
            }
            None => {
                let on: Vec<&str> = self.agent.alert_channels()?.iter().map(|c| c.name).collect();
                if on.is_empty() {
                    return Err(ControlError::Invalid(
                        "no alert channel is configured: add [alerts.email], [alerts.webhook] or [alerts.journal] to the configuration".into(),
                    ));
                }
                on
            }
        };
        let mut out = Vec::new();
        for name in names {
            out.push(match crate::alerts::send_test(&self.agent, name).await {
                Ok(target) => TestAlertDoc { channel: name.into(), target: Some(target), delivered: true, error: None },
                Err(e @ crate::alerts::TestError::NotConfigured(_)) => {
                    return Err(ControlError::Invalid(e.to_string()));
                }
                Err(e @ crate::alerts::TestError::Failed { .. }) => {
                    let target = match &e {
                        crate::alerts::TestError::Failed { target, .. } => Some(target.clone()),
                        _ => None,
                    };
                    TestAlertDoc { channel: name.into(), target, delivered: false, error: Some(e.to_string()) }
                }
            });
        }
        Ok(out)
    }

    /// Desktop notifications, the quiet period and the channels' state.
    pub async fn notifications(&self) -> Result<NotificationsDoc> {
        let n = self.agent.notification_settings()?;
        Ok(NotificationsDoc {
            enabled: n.enabled,
            quiet_period: humantime::format_duration(n.quiet_period).to_string(),
            quiet_period_seconds: n.quiet_period.as_secs(),
            channels: self.agent.alert_channels()?.iter().map(AlertChannelDoc::from).collect(),
        })
    }

    /// Changes desktop notifications and the quiet period (what the request omits stays).
    pub async fn set_notifications(&self, req: &NotificationsRequest) -> Result<NotificationsDoc> {
        let quiet = req
            .quiet_period
            .as_deref()
            .map(|q| {
                humantime::parse_duration(q.trim()).map_err(|e| {
                    ControlError::Invalid(format!("quiet_period {q:?}: {e}; use a duration such as 30m, 12h or 0s"))
                })
            })
            .transpose()?;
        self.agent.set_notification_settings(req.enabled, quiet)?;
        self.notifications().await
    }

    /// The agent's notices (state changes, upload results, license events), as they happen.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<crate::agent::Notice> {
        self.agent.subscribe()
    }
}

fn not_quarantined(id: &str) -> ControlError {
    ControlError::NotFound(format!("nothing in quarantine is called {id:?}; `callhome quarantine list` lists them"))
}
