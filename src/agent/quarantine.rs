//! Quarantine: what the receiver refused for good or what failed verification, listed, retried
//! (re-checked, then re-queued) or purged (a `purged` ledger row through `Spool::retire`). It
//! never uploads by itself: a re-queued bundle goes with the next upload.

use super::*;
use crate::spool::Quarantined;

/// What a retry found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retried {
    /// Back in its program's folder, under this name.
    Requeued(Pending),
    /// No such file in quarantine/.
    NotFound,
}

impl Agent {
    /// The files in quarantine/, oldest first.
    pub fn quarantined(&self) -> Result<Vec<Quarantined>> {
        Ok(self.spool.quarantined()?)
    }

    /// Re-checks a quarantined bundle (a bundle's name, a readable manifest naming a program,
    /// every file matching it, not already acknowledged) and puts it back in the spool for the
    /// next upload. A bundle that fails a check stays where it is: [`AgentError::Refused`] says
    /// why.
    pub async fn retry_quarantined(&self, id: &str) -> Result<Retried> {
        let _w = self.work_lock().await?;
        let Some(q) = self.spool.find_quarantined(id)? else { return Ok(Retried::NotFound) };
        let path = q.path.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let manifest = bundle::Reader::open(&path).and_then(|mut r| r.verify());
            (manifest, crate::fsutil::sha256_file(&path))
        })
        .await
        .expect("verification does not panic");
        let refuse = |why: String| AgentError::Refused(format!("{id} stays in quarantine: {why}"));
        let manifest = checked.0.map_err(|e| refuse(e.to_string()))?;
        let program: Program = manifest.program.parse().map_err(|e: String| refuse(e))?;
        let name = original_name(id);
        if !bundle::is_bundle_name(program, name) {
            return Err(refuse(format!("{name} is not the name of a {} bundle", program.title())));
        }
        let (sha, _) = checked.1.map_err(|e| refuse(format!("cannot read it: {e}")))?;
        if self.store().is_sent_sha(&sha)?.is_some() {
            return Err(refuse("the receiver already acknowledged these bytes; purge it instead".into()));
        }
        if !self.consent()?.enabled(program) {
            return Err(refuse(format!("{} is off; turn it on first, or purge the bundle", program.title())));
        }
        let pending = self.spool.requeue(&q, program, name)?;
        info!(bundle = %pending.name, "quarantined bundle re-checked and queued again");
        self.notify(Notice::StateChanged { what: format!("bundle {id} requeued from quarantine") });
        Ok(Retried::Requeued(pending))
    }

    /// Deletes a quarantined file for good, its ledger row first. `Ok(None)` when there is none.
    pub async fn purge_quarantined(&self, id: &str) -> Result<Option<Quarantined>> {
        let _w = self.work_lock().await?;
        let Some(q) = self.spool.find_quarantined(id)? else { return Ok(None) };
        let path = q.path.clone();
        let program = tokio::task::spawn_blocking(move || bundle::Reader::open(&path).and_then(|mut r| r.manifest()))
            .await
            .expect("reading a manifest does not panic")
            .ok()
            .and_then(|m| m.program.parse::<Program>().ok())
            .or_else(|| program_by_name(&q.id))
            // A stranger's file with no program of its own is recorded under the mandatory one.
            .unwrap_or(Program::Telemetry);
        self.spool.purge(&mut self.store(), &q, program, self.clock.now())?;
        info!(file = %q.id, "quarantined file purged");
        self.notify(Notice::StateChanged { what: format!("quarantined {id} purged") });
        Ok(Some(q))
    }
}

/// The bundle's name before quarantine added `.1`, `.2`… to keep two files of one name apart.
fn original_name(id: &str) -> &str {
    match id.rsplit_once('.') {
        Some((stem, n)) if stem.ends_with(".zip") && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => stem,
        _ => id,
    }
}

/// The program a file's name says it belongs to (the shared `usage` type reads as Call Home).
fn program_by_name(name: &str) -> Option<Program> {
    Program::ALL.into_iter().find(|p| bundle::is_bundle_name(*p, original_name(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_numbered_duplicate_gets_its_bundle_name_back() {
        assert_eq!(
            original_name("upload_compliance_20261130T000000Z_ab.zip.2"),
            "upload_compliance_20261130T000000Z_ab.zip"
        );
        assert_eq!(
            original_name("upload_compliance_20261130T000000Z_ab.zip"),
            "upload_compliance_20261130T000000Z_ab.zip"
        );
        assert_eq!(original_name("notes.txt"), "notes.txt");
        assert_eq!(program_by_name("upload_events_20261130T000000Z_ab.zip.1"), Some(Program::Events));
        assert_eq!(program_by_name("notes.txt"), None);
    }
}
