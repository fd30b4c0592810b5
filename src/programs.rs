//! The four data programs, their rules, and how consent is decided.
//!
//! License Telemetry is mandatory: it can only be switched between automatic and manual
//! reporting. Call Home, CEIP and Event data are optional: their state is the administrator's
//! persisted choice, else the configured default, and `DO_NOT_TRACK=1` turns the defaults off.
//! This module holds the rules only; where choices are persisted is `store`'s business.

use std::fmt;
use std::str::FromStr;

use crate::config::ProgramDefaults;

/// A data program. Each has its own spool folder, bundle prefix and result file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Program {
    /// License Telemetry: mandatory; the compliance bundle.
    Telemetry,
    /// Call Home: optional, identifiable configuration and performance data.
    CallHome,
    /// Customer Experience Improvement Program: optional, counts only, nothing identifiable.
    Ceip,
    /// Event data: optional, needs registration; license expiry and renewal alerts.
    Events,
}

impl Program {
    pub const ALL: [Program; 4] = [Program::Telemetry, Program::CallHome, Program::Ceip, Program::Events];

    /// The name used in the CLI, config, headers and status documents.
    pub fn name(self) -> &'static str {
        match self {
            Program::Telemetry => "telemetry",
            Program::CallHome => "call_home",
            Program::Ceip => "ceip",
            Program::Events => "events",
        }
    }

    /// The upload type: names the bundle prefix (`upload_<type>_…`) and the result file. Call
    /// Home and CEIP share the `usage` type, as in the License Server's uploader.
    pub fn upload_kind(self) -> &'static str {
        match self {
            Program::Telemetry => "compliance",
            Program::CallHome | Program::Ceip => "usage",
            Program::Events => "events",
        }
    }

    /// The program's own spool folder, so consent (withdrawal) stays per program even where
    /// two programs share an upload type.
    pub fn spool_folder(self) -> &'static str {
        match self {
            Program::Telemetry => "compliance",
            Program::CallHome => "callhome",
            Program::Ceip => "usage",
            Program::Events => "events",
        }
    }

    /// The `<UploadType>` of the result file.
    pub fn result_type(self) -> &'static str {
        match self {
            Program::Telemetry => "CTX_UPLOAD_TYPE_COMPLIANCE",
            Program::CallHome | Program::Ceip => "CTX_UPLOAD_TYPE_USAGE",
            Program::Events => "CTX_UPLOAD_TYPE_EVENTS",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Program::Telemetry => "License Telemetry",
            Program::CallHome => "Call Home",
            Program::Ceip => "CEIP",
            Program::Events => "Event data",
        }
    }

    pub fn mandatory(self) -> bool {
        self == Program::Telemetry
    }

    /// Whether the program's data may identify the machine or its users.
    pub fn identifiable(self) -> bool {
        self != Program::Ceip
    }
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Program {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase().replace('-', "_");
        match s.as_str() {
            "telemetry" | "compliance" | "license_telemetry" => Ok(Program::Telemetry),
            "call_home" | "callhome" => Ok(Program::CallHome),
            "ceip" | "usage" => Ok(Program::Ceip),
            "events" | "event" => Ok(Program::Events),
            _ => Err(format!("unknown program {s:?}; the programs are telemetry, call_home, ceip, events")),
        }
    }
}

/// How License Telemetry reaches the vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TelemetryMode {
    Automatic,
    /// Isolated networks: bundles accumulate for export; nothing is uploaded automatically.
    Manual,
}

impl TelemetryMode {
    pub fn name(self) -> &'static str {
        match self {
            TelemetryMode::Automatic => "automatic",
            TelemetryMode::Manual => "manual",
        }
    }
}

impl FromStr for TelemetryMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "automatic" => Ok(TelemetryMode::Automatic),
            "manual" => Ok(TelemetryMode::Manual),
            _ => Err(format!("{s:?} is not a telemetry mode; use \"automatic\" or \"manual\"")),
        }
    }
}

/// The persisted choices, as read from storage (None: never chosen).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Choices {
    pub call_home: Option<bool>,
    pub ceip: Option<bool>,
    pub events: Option<bool>,
    pub telemetry_mode: Option<TelemetryMode>,
}

/// The effective state of every program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consent {
    pub call_home: bool,
    pub ceip: bool,
    pub events: bool,
    pub telemetry_mode: TelemetryMode,
}

impl Consent {
    /// Choice beats default; `do_not_track` turns the optional programs' defaults off; a program
    /// in `locked` (by the administrator's config or a vendor policy rule) is on, whatever else.
    pub fn resolve(defaults: &ProgramDefaults, choices: Choices, do_not_track: bool, locked: &[Program]) -> Consent {
        let default = |d: bool| d && !do_not_track;
        let lock = |p: Program, v: bool| v || locked.contains(&p);
        Consent {
            call_home: lock(Program::CallHome, choices.call_home.unwrap_or(default(defaults.call_home))),
            ceip: lock(Program::Ceip, choices.ceip.unwrap_or(default(defaults.ceip))),
            events: lock(Program::Events, choices.events.unwrap_or(default(defaults.events))),
            telemetry_mode: choices.telemetry_mode.unwrap_or(defaults.telemetry_mode),
        }
    }

    /// Whether the program collects at all (telemetry always does).
    pub fn enabled(&self, p: Program) -> bool {
        match p {
            Program::Telemetry => true,
            Program::CallHome => self.call_home,
            Program::Ceip => self.ceip,
            Program::Events => self.events,
        }
    }

    /// Whether the program's bundles may be uploaded automatically right now.
    pub fn may_upload(&self, p: Program) -> bool {
        match p {
            Program::Telemetry => self.telemetry_mode == TelemetryMode::Automatic,
            other => self.enabled(other),
        }
    }
}

/// `DO_NOT_TRACK` as the console-do-not-track convention reads it: set and not "0"/empty.
pub fn do_not_track_from_env() -> bool {
    std::env::var("DO_NOT_TRACK").map(|v| !v.is_empty() && v != "0").unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn do_not_track_turns_defaults_off_but_not_choices() {
        let d = Config::embedded().programs;
        let c = Consent::resolve(&d, Choices { ceip: Some(true), ..Default::default() }, true, &[]);
        assert!(!c.call_home);
        assert!(c.ceip);
        assert!(c.enabled(Program::Telemetry));
    }

    #[test]
    fn manual_mode_stops_telemetry_uploads_only() {
        let d = Config::embedded().programs;
        let c = Consent::resolve(
            &d,
            Choices { telemetry_mode: Some(TelemetryMode::Manual), ..Default::default() },
            false,
            &[],
        );
        assert!(!c.may_upload(Program::Telemetry));
        assert!(c.enabled(Program::Telemetry));
        assert!(c.may_upload(Program::CallHome));
    }

    #[test]
    fn names_round_trip() {
        for p in Program::ALL {
            assert_eq!(p.name().parse::<Program>().unwrap(), p);
            assert!(p.result_type().ends_with(&p.upload_kind().to_ascii_uppercase()));
        }
    }
}
