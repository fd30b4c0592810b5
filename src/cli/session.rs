//! The CLI's side of the control layer: a command opens a [`Control`] — the running agent's API
//! when there is one (so the CLI never works on the spool behind the agent's back), else the data
//! directory itself — blocks on its answer, and maps its errors to exit codes. Nothing here
//! decides where an answer comes from twice: [`Control`] does.

use callhome::api::dto::{
    AckRequest, AlertDoc, AttemptDoc, CollectedDoc, ProgramDoc, ProxyDoc, QuarantineActionDoc, QuarantinedDoc,
    StatusDoc, TestAlertDoc, UploadReportDoc,
};
use callhome::config::Config;
use callhome::control::{Control, ControlError, OpenError, ProgramChange};
use callhome::datadir::DataDir;
use callhome::programs::{Program, TelemetryMode};
use callhome::secrets::Value as Secret;
use serde_json::Value;

use super::{CliError, Result, fail, runtime};
use crate::{Cli, exit};

impl From<ControlError> for CliError {
    fn from(e: ControlError) -> CliError {
        match e {
            ControlError::Refused(m) => fail(exit::REFUSED, m),
            ControlError::Agent(a) => CliError::from(a),
            other => fail(exit::FAILURE, other.to_string()),
        }
    }
}

impl From<OpenError> for CliError {
    fn from(e: OpenError) -> CliError {
        match e {
            OpenError::Config(c) => CliError::from(c),
            OpenError::Agent(a) => CliError::from(a),
        }
    }
}

/// One command's access to the agent.
pub struct Session {
    control: Control,
    rt: tokio::runtime::Runtime,
}

impl Session {
    pub fn open(cli: &Cli) -> Result<Session> {
        let rt = runtime()?;
        let control = Control::open(DataDir::locate(cli.data_dir.clone()), || match &cli.config {
            Some(path) => Config::load(path),
            None => Ok(Config::embedded()),
        })?;
        Ok(Session { control, rt })
    }

    fn run<T>(&self, f: impl std::future::Future<Output = callhome::control::Result<T>>) -> Result<T> {
        Ok(self.rt.block_on(f)?)
    }

    /// Says, for a command that changes things, that no agent runs and how to start one.
    pub fn note_direct(&self, cli: &Cli) {
        if let Some(local) = self.control.local() {
            let dir = local.agent().data_dir().root().display();
            let cfg = cli.config.as_ref().map(|c| format!(" --config {}", c.display())).unwrap_or_default();
            eprintln!(
                "note: no agent runs on {dir}; this was done on the data directory directly. Start the agent with `callhome run{cfg} --data-dir {dir}` to upload on schedule."
            );
        }
    }

    /// Whether the command works on the data directory itself (no agent runs).
    pub fn is_direct(&self) -> bool {
        self.control.local().is_some()
    }

    pub fn status(&self) -> Result<StatusDoc> {
        self.run(self.control.status())
    }

    pub fn programs(&self) -> Result<Vec<ProgramDoc>> {
        self.run(self.control.programs())
    }

    pub fn collect(&self, p: Option<Program>) -> Result<Vec<CollectedDoc>> {
        self.run(self.control.collect(p))
    }

    pub fn upload(&self, p: Option<Program>) -> Result<UploadReportDoc> {
        self.run(self.control.upload(p))
    }

    pub fn quarantine(&self) -> Result<Vec<QuarantinedDoc>> {
        self.run(self.control.quarantine())
    }

    pub fn quarantine_retry(&self, id: &str) -> Result<QuarantineActionDoc> {
        self.run(self.control.quarantine_retry(id))
    }

    pub fn quarantine_purge(&self, id: &str) -> Result<QuarantineActionDoc> {
        self.run(self.control.quarantine_purge(id))
    }

    pub fn history(&self, limit: u32) -> Result<Vec<AttemptDoc>> {
        Ok(self.run(self.control.history(limit, 0))?.items)
    }

    pub fn licenses(&self) -> Result<Value> {
        self.run(self.control.licenses())
    }

    pub fn usage(&self, feature: Option<&str>, since: i64) -> Result<Vec<Value>> {
        self.run(self.control.usage(feature, since))
    }

    /// Turns an optional program on or off; returns the bundles withdrawn.
    pub fn set_enabled(&self, p: Program, on: bool) -> Result<Vec<String>> {
        Ok(self.run(self.control.set_program(p, ProgramChange::Enabled(on)))?.withdrawn)
    }

    pub fn set_mode(&self, mode: TelemetryMode) -> Result<()> {
        self.run(self.control.set_program(Program::Telemetry, ProgramChange::Mode(mode))).map(drop)
    }

    pub fn proxy(&self) -> Result<ProxyDoc> {
        self.run(self.control.proxy())
    }

    pub fn set_proxy(&self, url: &str, user: Option<&str>, password: Option<&Secret>) -> Result<ProxyDoc> {
        self.run(self.control.set_proxy(url, user, password))
    }

    pub fn clear_proxy(&self) -> Result<ProxyDoc> {
        self.run(self.control.clear_proxy())
    }

    /// Stores (`Some`) or removes (`None`) the endpoint token.
    pub fn register(&self, token: Option<&Secret>) -> Result<ProxyDoc> {
        self.run(self.control.register(token))
    }

    pub fn alerts(&self) -> Result<Vec<AlertDoc>> {
        self.run(self.control.alerts())
    }

    pub fn ack_alert(&self, id: &str, until: Option<&str>, reason: Option<&str>) -> Result<AlertDoc> {
        let req = AckRequest { until: until.map(str::to_string), reason: reason.map(str::to_string) };
        self.run(self.control.ack_alert(id, &req))
    }

    pub fn unack_alert(&self, id: &str) -> Result<AlertDoc> {
        self.run(self.control.unack_alert(id))
    }

    pub fn test_alert(&self, channel: &str) -> Result<Vec<TestAlertDoc>> {
        self.run(self.control.test_alert(Some(channel)))
    }

    /// The pending bundles' (program, name).
    pub fn bundle_names(&self) -> Result<Vec<(String, String)>> {
        Ok(self.run(self.control.bundles())?.into_iter().map(|b| (b.program, b.id)).collect())
    }

    /// The exact bytes of a pending bundle.
    pub fn bundle_bytes(&self, name: &str) -> Result<Vec<u8>> {
        self.run(self.control.bundle_bytes(name))
    }
}

impl From<callhome::api::client::ClientError> for CliError {
    fn from(e: callhome::api::client::ClientError) -> CliError {
        CliError::from(ControlError::from(e))
    }
}
