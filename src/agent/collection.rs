//! Collection: which collectors feed a program (with the license state they need), its bundle
//! built and committed to the spool, samples taken between bundles, and the license and product-log
//! state refreshed from the files.

use super::*;

impl Agent {
    /// Collects bundles now: one program, or every enabled one.
    pub async fn collect(&self, only: Option<Program>) -> Result<Vec<Collected>> {
        let _w = self.work_lock().await?;
        let consent = self.consent()?;
        let mut out = Vec::new();
        for p in Program::ALL.into_iter().filter(|p| only.is_none_or(|o| o == *p)) {
            out.push(self.collect_program(p, consent).await?);
        }
        Ok(out)
    }

    pub(super) async fn collect_program(&self, p: Program, consent: Consent) -> Result<Collected> {
        let skipped = |reason: &str| Ok(Collected::Skipped { program: p, reason: reason.into() });
        if p == Program::Events && !self.registered() {
            return skipped("Event data needs registration: no endpoint token");
        }
        if !consent.enabled(p) {
            return skipped("the program is off");
        }
        let (samples, max_sample) = self.store().samples(p)?;
        let now = self.clock.now();
        // License usage goes up to the last full hour; the window's start is remembered.
        let window = (self.usage_window_start(p)?, now - now.rem_euclid(3600));
        if matches!(p, Program::CallHome | Program::Ceip) {
            self.scan_errors().await?;
        }
        if p == Program::Ceip
            && samples.is_empty()
            && self.store().usage(None, window.0, window.1)?.is_empty()
            && !self.has_unsent_errors(p)?
        {
            return skipped("no usage samples yet");
        }
        let pending_events = if p == Program::Events {
            self.refresh_licenses().await?;
            self.store().events_to_upload()?
        } else {
            Vec::new()
        };
        if p == Program::Events && pending_events.is_empty() {
            return skipped("no new license events");
        }
        let ctx = Context {
            config: &self.cfg,
            consent,
            install_id: &self.install.install_id,
            install_created_at: self.install.created_at,
            now,
        };
        let mut contents = collect::gather(p, &ctx, &samples).await;
        let after_commit = self.add_license_files(p, &mut contents, window, &pending_events).await?;
        if contents.is_empty() {
            return skipped("nothing to collect");
        }
        let errors = contents.errors().len();
        let name = bundle::bundle_name(p, now);
        let tmp = self.dir.tmp_dir();
        // CEIP bundles carry CEIP's own rotating id and only the day they were made: neither the
        // install id nor a time that would match an identifiable bundle of the same cycle.
        let ceip_id = if p == Program::Ceip { Some(self.ceip_identity(now)?.id) } else { None };
        let install_id = self.install.install_id.clone();
        let name2 = name.clone();
        let path = tokio::task::spawn_blocking(move || {
            let stamp = match &ceip_id {
                Some(id) => Stamp::ceip(id, now),
                None => Stamp::of(p, &install_id, now),
            };
            bundle::write(&tmp, &name2, &stamp, contents)
        })
        .await
        .expect("bundle writer does not panic")?;
        let pending = self.spool.commit(p, &path)?;
        let mut store = self.store();
        if max_sample > 0 {
            store.drop_samples(p, max_sample)?;
        }
        if p == Program::Telemetry {
            store.set_task(TELEMETRY_COLLECT_TASK, TaskState { due_at: now, last_run: Some(now), failures: 0 })?;
        }
        if matches!(p, Program::Telemetry | Program::Ceip) {
            store.set_setting(Key::Window(p), &window.1.to_string())?;
        }
        if !pending_events.is_empty() {
            store.mark_events_uploaded(&pending_events.iter().map(|e| e.key.clone()).collect::<Vec<_>>())?;
        }
        for (k, v) in after_commit {
            store.set_setting(k, &v)?;
        }
        let expired = self.spool.expire_exports(self.cfg.spool.exports_max_age, now)?;
        if !expired.is_empty() {
            info!(removed = ?expired, "exports/ files older than spool.exports_max_age removed");
        }
        let quota = self.spool.enforce_quota(&mut store, self.cfg.spool.max_bytes, now)?;
        if !quota.exports_removed.is_empty() {
            warn!(removed = ?quota.exports_removed, "spool over spool.max_bytes: removed the oldest files in exports/");
        }
        if !quota.evicted.is_empty() {
            warn!(evicted = ?quota.evicted, "spool over spool.max_bytes: evicted the oldest optional-program bundles");
        }
        if quota.over_quota_bytes > 0 {
            warn!(
                over_bytes = quota.over_quota_bytes,
                "compliance bundles alone exceed spool.max_bytes; they are kept: raise spool.max_bytes or let uploads catch up"
            );
        }
        drop(store);
        self.notify(Notice::StateChanged { what: format!("collected {name}") });
        info!(program = %p, bundle = %name, size = pending.size, errors, "bundle collected");
        Ok(Collected::Bundle { program: p, name, size: pending.size, errors })
    }

    /// Takes one performance (Call Home) or usage (CEIP) sample when the program is on.
    pub async fn sample(&self, p: Program) -> Result<bool> {
        if !self.consent()?.enabled(p) {
            return Ok(false);
        }
        let names = self.cfg.product.processes.clone();
        let sample = tokio::task::spawn_blocking(move || collect::performance::sample(&names))
            .await
            .expect("sampler does not panic");
        let data = match sample {
            Ok(v) => v.to_string(),
            Err(e) => serde_json::json!({ "error": e }).to_string(),
        };
        self.store().add_sample(p, self.clock.now(), &data)?;
        Ok(true)
    }

    /// Reads the configured license files now (changes no state).
    pub fn scan_licenses(&self) -> Inventory {
        licenses::scan(&self.cfg.licenses, &self.config_base(), self.today())
    }

    /// The events a scan calls for, with the last day's peaks of use.
    pub fn license_events(&self, inv: &Inventory) -> Result<Vec<LicenseEvent>> {
        let peaks = self.store().peaks_since(self.clock.now() - 86_400)?;
        Ok(licenses::events(inv, &peaks, &self.cfg.licenses.expiry_warn_days, self.today()))
    }

    /// Reads what is new in the debug logs, records the inventory, and updates the events.
    /// Returns the inventory, the time of the scan and the keys of events that are new.
    pub async fn refresh_licenses(&self) -> Result<(Inventory, Timestamp, Vec<String>)> {
        for log in &self.cfg.licenses.debug_logs {
            let path = self.config_base().join(log);
            let key = path.display().to_string();
            let cursor = self.store().log_cursor(LogKey::DebugLog(&path))?;
            let p2 = path.clone();
            match tokio::task::spawn_blocking(move || licenses::debuglog::read_new(&p2, cursor))
                .await
                .expect("reader does not panic")
            {
                Ok(parser) => {
                    let cursor = serde_json::to_string(&parser.cursor).expect("cursors serialize");
                    self.store().apply_usage(&path, &cursor, &parser.hours, &parser.names)?;
                    if parser.stats.restarted {
                        info!(log = %key, "debug log rotated or truncated: read from its start");
                    }
                }
                Err(e) => warn!("cannot read the debug log {key}: {e}; check licenses.debug_logs"),
            }
        }
        let (cfg, base, today) = (self.cfg.licenses.clone(), self.config_base(), self.today());
        let inv =
            tokio::task::spawn_blocking(move || licenses::scan(&cfg, &base, today)).await.expect("scan does not panic");
        let now = self.clock.now();
        self.store().record_seen(&inv.licenses.iter().map(seen).collect::<Vec<_>>(), now)?;
        let events = self.license_events(&inv)?;
        let new = self.store().sync_events(&events, now)?;
        for e in events.iter().filter(|e| new.contains(&e.key)) {
            info!(kind = e.kind.name(), feature = %e.feature, "license event: {}", e.message);
            self.notify(Notice::LicenseEvent {
                kind: e.kind.name(),
                feature: e.feature.clone(),
                message: e.message.clone(),
            });
        }
        Ok((inv, now, new))
    }

    /// [`Agent::refresh_licenses`] and [`Agent::scan_errors`] under the work lock, so two
    /// processes never read the same new log bytes at once (and count them twice).
    pub async fn refresh_licenses_locked(&self) -> Result<()> {
        let _w = self.work_lock().await?;
        self.refresh_licenses().await?;
        self.scan_errors().await
    }

    /// Reads what is new in the product logs (`collect.error_logs`) and counts error lines —
    /// only while Call Home or CEIP may collect.
    pub async fn scan_errors(&self) -> Result<()> {
        let consent = self.consent()?;
        if !consent.enabled(Program::CallHome) && !consent.enabled(Program::Ceip) {
            return Ok(());
        }
        let (paths, problems) = licenses::license_paths(&self.cfg.collect.error_logs, &self.config_base());
        for p in problems {
            warn!("collect.error_logs: {}: {}", p.file.display(), p.message);
        }
        for path in paths {
            let mut cursor: crate::tail::TailCursor = self.store().log_cursor(LogKey::ErrorLog(&path))?;
            let patterns = self.cfg.collect.error_patterns.clone();
            let p2 = path.clone();
            let scanned = tokio::task::spawn_blocking(move || {
                collect::errors::scan(&p2, &mut cursor, &patterns).map(|f| (f, cursor))
            })
            .await
            .expect("the scanner does not panic");
            match scanned {
                Ok((found, cursor)) => {
                    let now = self.clock.now();
                    let json = serde_json::to_string(&cursor).expect("cursors serialize");
                    self.store().add_errors(&path, &json, now - now.rem_euclid(3600), &found, now)?;
                }
                Err(e) => warn!("cannot read the product log {}: {e}; check collect.error_logs", path.display()),
            }
        }
        Ok(())
    }

    pub(super) fn has_unsent_errors(&self, p: Program) -> Result<bool> {
        let store = self.store();
        let after: i64 = store.setting_as(Key::ErrorsSent(p, ErrorsPart::Counts))?.unwrap_or(0);
        Ok(!store.errors_after(after, i64::MAX)?.0.is_empty())
    }

    /// `errors.json`: error counts (and, when `samples`, redacted sample lines) recorded since the
    /// program's last bundle. Returns the settings that mark them sent, to apply once the bundle
    /// is in the spool (a failed write loses nothing).
    pub(super) fn add_errors_file(
        &self,
        p: Program,
        c: &mut bundle::Contents,
        samples: bool,
    ) -> Result<Vec<(Key, String)>> {
        let store = self.store();
        let key = |part| Key::ErrorsSent(p, part);
        let after: i64 = store.setting_as(key(ErrorsPart::Counts))?.unwrap_or(0);
        let after_sample: i64 = store.setting_as(key(ErrorsPart::Samples))?.unwrap_or(0);
        let (counts, sample_rows, max, max_sample) = store.errors_after(after, after_sample)?;
        if counts.is_empty() {
            return Ok(Vec::new());
        }
        let (doc, holds) = if samples {
            let doc = serde_json::json!({
                "patterns": self.cfg.collect.error_patterns,
                "counts": counts.iter().map(|(pat, hour, n)| serde_json::json!({ "pattern": pat, "hour": crate::clock::rfc3339(*hour), "count": n })).collect::<Vec<_>>(),
                "samples": sample_rows
                    .iter()
                    .map(|(pat, at, text)| serde_json::json!({ "pattern": pat, "at": crate::clock::rfc3339(*at), "line": text }))
                    .collect::<Vec<_>>(),
            });
            (
                doc,
                "error lines in the product's logs: counts per pattern and hour, and a few samples with numbers, addresses and e-mail addresses blanked",
            )
        } else {
            (
                ceip_error_counts(&self.cfg.collect.error_patterns, &counts),
                "error lines in the product's logs: counts per pattern (its place in the configured list), no hours, no text",
            )
        };
        c.add_json("errors.json", holds, &doc);
        Ok(vec![(key(ErrorsPart::Counts), max.to_string()), (key(ErrorsPart::Samples), max_sample.to_string())])
    }

    pub(super) fn usage_window_start(&self, p: Program) -> Result<Timestamp> {
        Ok(self.store().setting_as(Key::Window(p))?.unwrap_or(0))
    }

    /// Adds the license files a program's bundle carries.
    pub(super) async fn add_license_files(
        &self,
        p: Program,
        c: &mut bundle::Contents,
        window: (Timestamp, Timestamp),
        events: &[crate::store::EventRow],
    ) -> Result<Vec<(Key, String)>> {
        let mut after_commit = Vec::new();
        match p {
            Program::Telemetry => {
                let (inv, scanned_at, _) = self.refresh_licenses().await?;
                let history = self.store().license_history(scanned_at)?;
                let events = self.license_events(&inv)?;
                let rows = self.store().usage(None, window.0, window.1)?;
                c.add_json(
                    "licenses.json",
                    "the license inventory: every FEATURE/INCREMENT/UPGRADE line with expiry, quantity, type and days to expiry; lines only in history; problems found; license events",
                    &inventory_json(&inv, &history, &events, scanned_at),
                );
                c.add_json(
                    "usage.json",
                    "license usage in the window: per feature the most in use at once, installed count, checkouts, denials, users and devices, by hour",
                    &usage_json(&rows, &inv, window, Identity::Names),
                );
            }
            Program::CallHome => after_commit = self.add_errors_file(p, c, true)?,
            Program::Ceip => {
                after_commit = self.add_errors_file(p, c, false)?;
                let rows = self.store().usage(None, window.0, window.1)?;
                if !rows.is_empty() {
                    let inv = self.scan_licenses();
                    let usage = usage_json(&rows, &inv, window, Identity::CountsOnly);
                    c.add_json(
                        "license_usage.json",
                        "license usage counts per feature over the window: no user, device or feature names, no times; each feature under a pseudonym of this CEIP period",
                        &unlinkable_usage(usage, &self.ceip_identity(self.clock.now())?),
                    );
                }
            }
            Program::Events if !events.is_empty() => {
                let list: Vec<serde_json::Value> = events
                    .iter()
                    .map(|e| {
                        serde_json::json!({
                            "kind": e.kind, "feature": e.feature, "message": e.message, "days": e.days,
                            "first_seen": crate::clock::rfc3339(e.first_seen),
                        })
                    })
                    .collect();
                c.add_json(
                    "events.json",
                    "license events: expiry, renewal, use above quantity",
                    &serde_json::json!({ "events": list }),
                );
            }
            _ => {}
        }
        Ok(after_commit)
    }
}

/// How long CEIP's own identifier lives before a new one replaces it. Bundles of one period can
/// be told apart from other agents' (so the vendor can count machines), never joined to this
/// machine's identifiable bundles, nor to its CEIP bundles of another period.
pub const CEIP_ID_ROTATION: i64 = 30 * 86_400;

/// CEIP's identity for one period: the id its bundles carry, and the key its feature pseudonyms
/// are made with (never sent, so the vendor cannot recover a feature's name by trying names).
pub(super) struct CeipIdentity {
    pub id: String,
    key: [u8; 32],
}

impl Agent {
    /// CEIP's own random identity, made anew every [`CEIP_ID_ROTATION`] (and when the clock went
    /// back more than a day before its making); never derived from the install id. Kept in the state as
    /// `ceip.id` = `<id> <made, UTC seconds> <key, hex>`.
    pub(super) fn ceip_identity(&self, now: Timestamp) -> Result<CeipIdentity> {
        let store = self.store();
        if let Some(v) = store.setting(Key::CeipId)?
            && let [id, made, key] = v.split(' ').collect::<Vec<_>>()[..]
            && let Ok(made) = made.parse::<i64>()
            && made <= now + 86_400
            && now - made < CEIP_ID_ROTATION
            && let Ok(Ok(key)) = hex::decode(key).map(<[u8; 32]>::try_from)
        {
            return Ok(CeipIdentity { id: id.to_string(), key });
        }
        let mut raw = [0u8; 16];
        let mut key = [0u8; 32];
        getrandom::fill(&mut raw)
            .and_then(|()| getrandom::fill(&mut key))
            .map_err(|e| AgentError::Refused(format!("no randomness for CEIP's id: {e}")))?;
        let id = format!("ceip-{}", hex::encode(raw));
        store.set_setting(Key::CeipId, &format!("{id} {now} {}", hex::encode(key)))?;
        Ok(CeipIdentity { id, key })
    }
}

/// CEIP's error counts: one total per pattern over the whole period, the pattern named by its
/// place in `collect.error_patterns` (not its text, not its hours: those would match the Call Home
/// bundle of the same machine).
fn ceip_error_counts(patterns: &[String], counts: &[(String, Timestamp, u64)]) -> serde_json::Value {
    let mut totals: std::collections::BTreeMap<usize, u64> = std::collections::BTreeMap::new();
    for (pat, _, n) in counts {
        let at = patterns.iter().position(|p| p == pat).unwrap_or(patterns.len());
        *totals.entry(at).or_default() += n;
    }
    serde_json::json!({
        "patterns": patterns.len(),
        "counts": totals.iter().map(|(i, n)| serde_json::json!({ "pattern": i, "count": n })).collect::<Vec<_>>(),
    })
}

/// CEIP's license usage with nothing that joins it to the license-telemetry bundle of the same
/// machine: no window times, no hours, and each feature named by an HMAC of its name keyed with
/// CEIP's secret key of the period (stable within one id's period, different in the next, and
/// not recoverable by the vendor, who never sees the key); counts stay.
fn unlinkable_usage(mut usage: serde_json::Value, ceip: &CeipIdentity) -> serde_json::Value {
    use hmac::{KeyInit, Mac};
    let window = match (usage.get("window_start"), usage.get("window_end")) {
        (Some(a), Some(b)) => {
            let t = |v: &serde_json::Value| v.as_str().and_then(crate::clock::parse_rfc3339);
            t(b).zip(t(a)).map(|(b, a)| (b - a) / 3600)
        }
        _ => None,
    };
    let o = usage.as_object_mut().expect("usage is an object");
    o.remove("window_start");
    o.remove("window_end");
    o.insert("window_hours".into(), serde_json::json!(window));
    for f in usage["features"].as_array_mut().into_iter().flatten() {
        let hours = f["hours"].as_array().map_or(0, Vec::len);
        let name = f["feature"].as_str().unwrap_or_default().to_string();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&ceip.key).expect("any key length");
        mac.update(name.as_bytes());
        let tag = hex::encode(&mac.finalize().into_bytes()[..8]);
        let o = f.as_object_mut().expect("a feature is an object");
        o.remove("hours");
        o.insert("hours_in_use".into(), serde_json::json!(hours));
        o.insert("feature".into(), serde_json::json!(format!("f-{tag}")));
    }
    usage
}
