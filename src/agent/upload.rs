//! Upload: a cycle over the programs that are due, each pending bundle verified, sent, and
//! retired once acknowledged (or quarantined, or kept for a retry), every attempt recorded and the
//! result file written.

use super::*;

/// What an upload cycle did for one program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramUpload {
    pub program: Program,
    pub sent: Vec<String>,
    pub quarantined: Vec<String>,
    /// Why nothing was uploaded at all (consent, manual mode), if so.
    pub skipped: Option<String>,
    /// The failure that stopped the queue, if any.
    pub failure: Option<Failure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UploadReport {
    pub programs: Vec<ProgramUpload>,
}

impl UploadReport {
    /// True when nothing failed (skips and quarantines are not failures of the cycle).
    pub fn ok(&self) -> bool {
        self.programs.iter().all(|p| p.failure.is_none() && p.quarantined.is_empty())
    }
    /// The first failure's Retry-After, for the scheduler.
    pub(super) fn retry_after(&self) -> Option<Duration> {
        self.programs.iter().filter_map(|p| p.failure.as_ref()?.retry_after).max()
    }
    pub(super) fn must_retry(&self) -> bool {
        self.programs.iter().any(|p| p.failure.as_ref().is_some_and(|f| f.disposition == Disposition::Retry))
    }
}

impl Agent {
    /// One upload cycle: collect license telemetry when due, pack CEIP samples, then upload
    /// every program's pending bundles that consent and mode allow.
    /// An upload cycle asked for now (CLI, API, tray): every program, whatever its cadence. When
    /// it fails for a reason worth retrying, the schedule's next upload is brought forward to the
    /// same backoff a failed scheduled cycle gets, so "sent again later" means minutes, not the
    /// next daily slot.
    pub async fn upload_cycle(&self, only: Option<Program>) -> Result<UploadReport> {
        let report = self.cycle(only, true).await?;
        if report.must_retry() {
            self.schedule_retry(report.retry_after())?;
        }
        Ok(report)
    }

    /// Counts a failed on-demand cycle as a failure of the upload task: its next run comes after
    /// the backoff for one more failure, unless it was already due sooner.
    fn schedule_retry(&self, retry_after: Option<Duration>) -> Result<()> {
        let now = self.clock.now();
        let store = self.store();
        let name = Task::Upload.name();
        let prev = store.task(name)?.unwrap_or_else(|| self.plan.at_start(Task::Upload, None, now));
        let next = self.plan.after_failure(prev, now, retry_after, fastrand::f64());
        if next.due_at < prev.due_at || prev.due_at <= now {
            store.set_task(name, TaskState { last_run: prev.last_run, ..next })?;
        } else {
            store.set_task(name, TaskState { failures: next.failures, ..prev })?;
        }
        drop(store);
        self.rescheduled.notify_one();
        self.notify(Notice::StateChanged { what: "schedule".into() });
        Ok(())
    }

    /// One upload cycle. A scheduled one (`forced` false) uploads only the programs whose own
    /// cadence (`[upload.intervals]`) is due, or that have a failed upload to retry.
    pub(super) async fn cycle(&self, only: Option<Program>, forced: bool) -> Result<UploadReport> {
        let _w = self.work_lock().await?;
        let consent = self.consent()?;
        let now = self.clock.now();
        let mut due = Vec::new();
        for p in Program::ALL {
            if only.is_none_or(|o| o == p) && (forced || self.program_due(p, now)?) {
                due.push(p);
            }
        }
        let wanted = |p: Program| due.contains(&p);
        if wanted(Program::Telemetry) && self.telemetry_collection_due(now)? {
            self.collect_program(Program::Telemetry, consent).await?;
        }
        if wanted(Program::Ceip) && consent.enabled(Program::Ceip) {
            self.collect_program(Program::Ceip, consent).await?;
        }
        if wanted(Program::Events) && consent.enabled(Program::Events) {
            self.collect_program(Program::Events, consent).await?;
        }
        let mut report = UploadReport::default();
        for p in Program::ALL.into_iter().filter(|p| wanted(*p)) {
            let r = self.upload_program(p).await?;
            // The cadence counts from uploads that happened, not from empty cycles.
            if r.failure.is_none() && !r.sent.is_empty() {
                self.store().set_setting(Key::Cadence(p), &now.to_string())?;
            }
            report.programs.push(r);
        }
        Ok(report)
    }

    /// Whether the schedule should upload `p` now: its cadence has come round (a little early is
    /// fine: the schedule only wakes on the hour's side), or its last attempt failed.
    pub(super) fn program_due(&self, p: Program, now: Timestamp) -> Result<bool> {
        let store = self.store();
        let last: Option<Timestamp> = store.setting_as(Key::Cadence(p))?;
        let failed = store.last_attempt(p)?.is_some_and(|a| a.code != Code::Success.as_str());
        drop(store);
        let interval = self.upload_interval(p).as_secs() as i64;
        Ok(failed || last.is_none_or(|l| l > now || now - l >= interval - interval / 10))
    }

    pub(super) fn telemetry_collection_due(&self, now: Timestamp) -> Result<bool> {
        if self.spool.pending(Program::Telemetry)?.is_empty() {
            return Ok(true);
        }
        let last = self.store().task(TELEMETRY_COLLECT_TASK)?.and_then(|t| t.last_run);
        let interval = self.cfg.upload.interval.as_secs() as i64;
        Ok(last.is_none_or(|l| now - l >= interval || l > now))
    }

    pub(super) async fn upload_program(&self, p: Program) -> Result<ProgramUpload> {
        let mut out =
            ProgramUpload { program: p, sent: Vec::new(), quarantined: Vec::new(), skipped: None, failure: None };
        for bundle in self.spool.pending(p)? {
            // Consent is checked again just before each upload.
            let consent = self.consent()?;
            if !consent.may_upload(p) {
                out.skipped = Some(if p.mandatory() {
                    "manual reporting: export the bundles with `callhome export`".into()
                } else {
                    "the program is off".into()
                });
                break;
            }
            match self.upload_one(&bundle).await? {
                One::Sent => out.sent.push(bundle.name),
                One::Quarantined(f) => {
                    out.quarantined.push(bundle.name);
                    out.failure.get_or_insert(f);
                }
                One::Failed(f) => {
                    out.failure = Some(f);
                    break;
                }
            }
        }
        Ok(out)
    }

    pub(super) async fn upload_one(&self, b: &Pending) -> Result<One> {
        let now = self.clock.now();
        let started = Instant::now();
        let path = b.path.clone();
        let checked = tokio::task::spawn_blocking(move || -> std::result::Result<(String, u64), (Code, String)> {
            let (sha, size) = crate::fsutil::sha256_file(&path)
                .map_err(|e| (Code::Disk, format!("cannot read {}: {e}", path.display())))?;
            bundle::Reader::open(&path)
                .and_then(|mut r| r.verify())
                .map_err(|e| (Code::Bundle, format!("{e}; the bundle was moved to quarantine/")))?;
            Ok((sha, size))
        })
        .await
        .expect("verification does not panic");
        let (sha, size) = match checked {
            Ok(v) => v,
            Err((code, message)) => {
                let f = Failure {
                    code,
                    message,
                    arg: None,
                    http_status: None,
                    retry_after: None,
                    disposition: Disposition::Retry,
                };
                self.record_failure(b, None, &f, now, started)?;
                if code == Code::Bundle {
                    let mut store = self.store();
                    self.spool.quarantine_bundle(&mut store, b, "", &f.message, now)?;
                    return Ok(One::Quarantined(f));
                }
                return Ok(One::Failed(f));
            }
        };
        if self.store().is_sent_sha(&sha)?.is_some() {
            // Acknowledged before a crash interrupted its deletion.
            self.spool.retire(&mut self.store(), b, Fate::AlreadyRecorded)?;
            return Ok(One::Sent);
        }
        let uploader = match self.uploader() {
            Ok(u) => u,
            Err(f) => {
                self.record_failure(b, Some(&sha), &f, now, started)?;
                return Ok(One::Failed(f));
            }
        };
        // CEIP goes anonymously (no token, no install id, no ledger head) and keeps nothing of
        // its receipt that could join it to the install; every other program's upload carries
        // the ledger's head, which the receiver signs into the receipt.
        let anonymous = b.program == Program::Ceip;
        let sent = if anonymous {
            uploader
                .send_anonymous(Outgoing { path: &b.path, sha256: &sha, size, program: b.program.name() })
                .await
                .map(|receipt| crate::receipt::UploadAnswer { receipt, exemption: None })
        } else {
            let head = self.store().ledger_head()?;
            uploader
                .send_anchored(Outgoing { path: &b.path, sha256: &sha, size, program: b.program.name() }, Some(&head))
                .await
        };
        let now = self.clock.now();
        match sent {
            Ok(answer) => {
                let receipt = answer.receipt;
                let attempt = Attempt {
                    at: now,
                    program: b.program,
                    bundle: Some(b.name.clone()),
                    sha256: (!anonymous).then(|| sha.clone()),
                    code: Code::Success.as_str().into(),
                    message: if anonymous {
                        "sent anonymously (CEIP): receipt checked, not kept".into()
                    } else {
                        format!("receipt {}", receipt.receipt_id)
                    },
                    http_status: None,
                    duration_ms: started.elapsed().as_millis() as u64,
                };
                let detail = if anonymous {
                    crate::ledger::anonymous_detail().map_err(AgentError::Refused)?
                } else {
                    serde_json::to_string(&receipt).expect("receipts serialize")
                };
                let entry = LedgerEntry {
                    at: now,
                    event: LedgerEvent::Sent,
                    program: b.program,
                    bundle: b.name.clone(),
                    sha256: sha,
                    size,
                    detail,
                };
                // Ledger first, then the file (invariant 3).
                self.spool.retire(&mut self.store(), b, Fate::Sent { entry: &entry, attempt: &attempt })?;
                if let Some(l) = receipt.latest_agent.as_ref().filter(|_| !anonymous) {
                    let store = self.store();
                    store.set_setting(Key::VersionLatest, &l.version)?;
                    store.set_setting(Key::VersionReleased, &l.released)?;
                }
                if let Some(l) = &receipt.latest_product {
                    let store = self.store();
                    store.set_setting(Key::ProductLatest, &l.version)?;
                    store.set_setting(Key::ProductReleased, &l.released)?;
                }
                if let Some(e) = &answer.exemption {
                    self.exemption_from_receiver(e);
                }
                self.write_result(b.program, Code::Success, "", None, now);
                if anonymous {
                    // The receipt id and the bundle's name would join it to this install in a
                    // support bundle's log.
                    info!(program = %b.program, "anonymous bundle acknowledged");
                } else {
                    info!(program = %b.program, bundle = %b.name, receipt = %receipt.receipt_id, "bundle acknowledged");
                }
                Ok(One::Sent)
            }
            Err(f) => {
                self.record_failure(b, (!anonymous).then_some(sha.as_str()), &f, now, started)?;
                if f.disposition == Disposition::Quarantine {
                    let mut store = self.store();
                    self.spool.quarantine_bundle(&mut store, b, &sha, &f.message, now)?;
                    return Ok(One::Quarantined(f));
                }
                Ok(One::Failed(f))
            }
        }
    }

    pub(super) fn record_failure(
        &self,
        b: &Pending,
        sha: Option<&str>,
        f: &Failure,
        now: Timestamp,
        started: Instant,
    ) -> Result<()> {
        warn!(program = %b.program, bundle = %b.name, code = f.code.as_str(), "{}", f.message);
        self.store().record_attempt(&Attempt {
            at: now,
            program: b.program,
            bundle: Some(b.name.clone()),
            sha256: sha.map(str::to_string),
            code: f.code.as_str().into(),
            message: f.message.clone(),
            http_status: f.http_status,
            duration_ms: started.elapsed().as_millis() as u64,
        })?;
        self.write_result(b.program, f.code, &f.message, f.arg.as_deref(), now);
        Ok(())
    }
}

pub(super) enum One {
    Sent,
    Quarantined(Failure),
    Failed(Failure),
}
