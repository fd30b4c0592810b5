//! Settings (the key/value table), the administrator's program choices kept there, and the
//! scheduler's task table.

use rusqlite::{OptionalExtension, params};

use super::{Key, Result, Store};
use crate::clock::Timestamp;
use crate::programs::{Choices, Program, TelemetryMode};

/// A scheduled task's persisted state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskState {
    pub due_at: Timestamp,
    pub last_run: Option<Timestamp>,
    /// Consecutive failures (drives the backoff).
    pub failures: u32,
}

impl Store {
    /// A setting's stored text (None when unset).
    pub fn setting(&self, key: impl Into<Key>) -> Result<Option<String>> {
        let key = key.into();
        Ok(self.conn.query_row("SELECT value FROM settings WHERE key = ?1", [key.as_str()], |r| r.get(0)).optional()?)
    }

    /// A setting parsed as `T` (None when unset or unreadable).
    pub fn setting_as<T: std::str::FromStr>(&self, key: impl Into<Key>) -> Result<Option<T>> {
        Ok(self.setting(key)?.and_then(|v| v.parse().ok()))
    }

    pub fn set_setting(&self, key: impl Into<Key>, value: &str) -> Result<()> {
        let key = key.into();
        self.conn.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [key.as_str().as_ref(), value],
        )?;
        Ok(())
    }

    pub fn delete_setting(&self, key: impl Into<Key>) -> Result<()> {
        self.conn.execute("DELETE FROM settings WHERE key = ?1", [key.into().as_str()])?;
        Ok(())
    }

    /// The administrator's persisted program choices.
    pub fn choices(&self) -> Result<Choices> {
        let flag = |p: Program| -> Result<Option<bool>> { Ok(self.setting(Key::Choice(p))?.map(|v| v == "on")) };
        Ok(Choices {
            call_home: flag(Program::CallHome)?,
            ceip: flag(Program::Ceip)?,
            events: flag(Program::Events)?,
            telemetry_mode: self.setting_as(Key::TelemetryMode)?,
        })
    }

    pub fn set_choice(&self, p: Program, on: bool) -> Result<()> {
        self.set_setting(Key::Choice(p), if on { "on" } else { "off" })
    }

    pub fn set_telemetry_mode(&self, mode: TelemetryMode) -> Result<()> {
        self.set_setting(Key::TelemetryMode, mode.name())
    }

    pub fn task(&self, task: &str) -> Result<Option<TaskState>> {
        Ok(self
            .conn
            .query_row("SELECT due_at, last_run, failures FROM schedule WHERE task = ?1", [task], |r| {
                Ok(TaskState { due_at: r.get(0)?, last_run: r.get(1)?, failures: r.get(2)? })
            })
            .optional()?)
    }

    pub fn set_task(&self, task: &str, s: TaskState) -> Result<()> {
        self.conn.execute(
            "INSERT INTO schedule (task, due_at, last_run, failures) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(task) DO UPDATE SET due_at = excluded.due_at, last_run = excluded.last_run, failures = excluded.failures",
            params![task, s.due_at, s.last_run, s.failures],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        Store::open(&path).unwrap().set_choice(Program::Ceip, false).unwrap();
        let c = Store::open(&path).unwrap().choices().unwrap();
        assert_eq!(c.ceip, Some(false));
        assert_eq!(c.call_home, None);
    }
}
