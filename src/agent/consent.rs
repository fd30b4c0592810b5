//! Changing consent: an optional program on or off (off withdraws its pending bundles and samples,
//! each retirement in the ledger), one bundle withdrawn, telemetry automatic or manual.

use super::*;

/// Why Event data cannot be turned on yet, and what to do.
pub const NEEDS_REGISTRATION: &str = "Event data needs registration: this agent has no endpoint token. Register it first (`callhome register --token-stdin`, `PUT /api/v1/registration`, or CALLHOME_ENDPOINT_TOKEN / the systemd credential endpoint-token), then turn Event data on";

impl Agent {
    /// Turns an optional program on or off; off withdraws its pending bundles and samples.
    pub async fn set_enabled(&self, p: Program, on: bool) -> Result<Vec<String>> {
        if p.mandatory() {
            return Err(AgentError::Refused(
                "license telemetry is mandatory and cannot be turned off; switch it to manual reporting instead".into(),
            ));
        }
        if on && p == Program::Events && !self.registered() {
            return Err(AgentError::Refused(NEEDS_REGISTRATION.into()));
        }
        if !on && let Some((_, reason)) = self.locks().into_iter().find(|(l, _)| *l == p) {
            return Err(AgentError::Refused(format!("{} is locked on: {reason}", p.title())));
        }
        let _w = self.work_lock().await?;
        let mut store = self.store();
        store.set_choice(p, on)?;
        if on {
            drop(store);
            self.notify(Notice::StateChanged { what: format!("program {} on", p.name()) });
            return Ok(Vec::new());
        }
        let withdrawn = self.spool.withdraw(&mut store, p, self.clock.now())?;
        let (_, max) = store.samples(p)?;
        store.drop_samples(p, max)?;
        drop(store);
        self.notify(Notice::StateChanged { what: format!("program {} off", p.name()) });
        Ok(withdrawn)
    }

    /// Withdraws one pending bundle of an optional program (the administrator read it and does
    /// not want it sent): the ledger records it, then the file goes. License-telemetry bundles
    /// are refused (mandatory); `Ok(None)` when no such bundle is pending.
    pub async fn withdraw_bundle(&self, name: &str) -> Result<Option<Pending>> {
        let _w = self.work_lock().await?;
        let Some(p) = self.spool.find(name)?.filter(|p| p.name == name) else { return Ok(None) };
        if p.program.mandatory() {
            return Err(AgentError::Refused(format!(
                "{name} is a license-telemetry bundle: it is mandatory and cannot be withdrawn"
            )));
        }
        let mut store = self.store();
        self.spool.discard(
            &mut store,
            &p,
            LedgerEvent::Withdrawn,
            "the administrator withdrew this bundle",
            self.clock.now(),
        )?;
        drop(store);
        self.notify(Notice::StateChanged { what: format!("bundle {name} withdrawn") });
        Ok(Some(p))
    }

    pub fn set_telemetry_mode(&self, mode: TelemetryMode) -> Result<()> {
        self.store().set_telemetry_mode(mode)?;
        self.notify(Notice::StateChanged { what: format!("telemetry {}", mode.name()) });
        Ok(())
    }
}
