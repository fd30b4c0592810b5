//! The scheduler loop: the due tasks run in turn until the stop signal; a failed task is logged and
//! retried, never the end of the loop; going idle hands memory back.

use super::*;

impl Agent {
    /// The scheduler loop: runs due tasks until `shutdown` completes.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        let mut released: Option<u64> = None;
        self.start_schedule()?;
        info!(
            endpoint = %self.cfg.upload.endpoint,
            first_upload_in = %humantime::format_duration(self.cfg.upload.first_upload_delay),
            "agent running"
        );
        loop {
            let next_due = tokio::select! {
                r = self.run_due() => match r {
                    Ok(next) => next,
                    // A full disk or a locked database must not end the schedule: say so and
                    // try again at the next clock check (the API keeps serving meanwhile).
                    Err(e) => {
                        warn!("the schedule could not run: {e}; trying again shortly");
                        self.clock.now() + self.cfg.schedule.clock_check.as_secs().max(1) as i64
                    }
                },
                () = &mut shutdown => break,
            };
            // Sleep until the next task, but wake at least every `schedule.clock_check` so a
            // wall-clock jump is noticed; the due times themselves are wall-clock UTC.
            let check = self.cfg.schedule.clock_check.as_secs().max(1) as i64;
            let wait = Duration::from_secs((next_due - self.clock.now()).clamp(0, check) as u64);
            // Going idle after a burst of work (start-up included): hand back what it left resident.
            let work = self.work.load(std::sync::atomic::Ordering::Relaxed);
            if wait >= IDLE && released != Some(work) {
                tokio::task::spawn_blocking(crate::memory::release_idle).await.ok();
                released = Some(work);
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.rescheduled.notified() => {}
                () = &mut shutdown => break,
            }
        }
        info!("agent stopped");
        Ok(())
    }

    /// Sets the due times for a fresh start (the first upload `first_upload_delay` from now).
    pub fn start_schedule(&self) -> Result<()> {
        let now = self.clock.now();
        let store = self.store();
        for t in Task::ALL {
            store.set_task(t.name(), self.plan.at_start(t, store.task(t.name())?, now))?;
        }
        Ok(())
    }

    /// Runs every task that is due; returns the earliest next due time.
    pub async fn run_due(&self) -> Result<Timestamp> {
        let mut next = i64::MAX;
        for t in Task::ALL {
            let now = self.clock.now();
            let persisted = self.store().task(t.name())?;
            let s = self.plan.sanitize(t, persisted.unwrap_or_else(|| self.plan.at_start(t, None, now)), now);
            let s = if now >= s.due_at { self.run_task(t, s).await? } else { s };
            if persisted != Some(s) {
                self.store().set_task(t.name(), s)?;
                if persisted.is_some_and(|p| p.due_at != s.due_at) && t == Task::Upload {
                    // Live views show the next upload: tell them it moved.
                    self.notify(Notice::StateChanged { what: "schedule".into() });
                }
            }
            next = next.min(s.due_at);
        }
        Ok(next)
    }

    pub(super) async fn run_task(&self, t: Task, s: TaskState) -> Result<TaskState> {
        self.work.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let outcome = match t {
            Task::Upload => self.cycle(None, false).await.map(|r| (!r.must_retry(), r.retry_after())),
            Task::CollectConfig => self.collect(Some(Program::CallHome)).await.map(|_| (true, None)),
            Task::SamplePerformance => self.sample(Program::CallHome).await.map(|_| (true, None)),
            Task::SampleUsage => match self.refresh_licenses_locked().await {
                Ok(()) => self.sample(Program::Ceip).await.map(|_| (true, None)),
                Err(e) => Err(e),
            },
        };
        let now = self.clock.now();
        Ok(match outcome {
            Ok((true, _)) => self.plan.after_success(t, now),
            Ok((false, retry_after)) => self.plan.after_failure(s, now, retry_after, fastrand::f64()),
            Err(e) => {
                warn!(task = t.name(), "task failed: {e}");
                self.plan.after_failure(s, now, None, fastrand::f64())
            }
        })
    }
}
