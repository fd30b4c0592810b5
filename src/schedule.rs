//! When things run: due times, backoff with full jitter, and tolerance of wall-clock jumps.
//!
//! Due times are UTC and persisted by the caller. The rules that keep a jumping clock harmless:
//! the next run is computed from *now*, never from the missed due time, so a clock that leaps
//! forward by 100 days causes one run, not a hundred; a due time further ahead than the task's
//! longest legitimate wait means the clock went backwards, and it is pulled back to now plus one
//! interval, so nothing runs twice and nothing waits for months. No HTTP here.

use std::time::Duration;

use crate::clock::Timestamp;
use crate::config::Config;
use crate::store::TaskState;

/// The scheduled tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// Collect license telemetry (when due) and upload every program's pending bundles.
    Upload,
    /// Collect the Call Home configuration bundle.
    CollectConfig,
    /// Sample performance for Call Home.
    SamplePerformance,
    /// Sample usage counts for CEIP.
    SampleUsage,
}

impl Task {
    pub const ALL: [Task; 4] = [Task::Upload, Task::CollectConfig, Task::SamplePerformance, Task::SampleUsage];

    pub fn name(self) -> &'static str {
        match self {
            Task::Upload => "upload",
            Task::CollectConfig => "collect_config",
            Task::SamplePerformance => "sample_performance",
            Task::SampleUsage => "sample_usage",
        }
    }
}

/// The intervals that drive the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub first_upload_delay: Duration,
    pub upload_interval: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub config_interval: Duration,
    pub performance_interval: Duration,
    pub usage_interval: Duration,
}

impl Plan {
    pub fn from_config(c: &Config) -> Plan {
        Plan {
            first_upload_delay: c.upload.first_upload_delay,
            // The schedule wakes for the most frequent program; each program keeps its own cadence.
            upload_interval: crate::programs::Program::ALL
                .iter()
                .map(|p| c.upload_interval(*p))
                .min()
                .unwrap_or(c.upload.interval),
            retry_base: c.upload.retry_base,
            retry_max: c.upload.retry_max,
            config_interval: c.schedule.config_interval,
            performance_interval: c.schedule.performance_interval,
            usage_interval: c.schedule.usage_interval,
        }
    }

    pub fn interval(&self, t: Task) -> Duration {
        match t {
            Task::Upload => self.upload_interval,
            Task::CollectConfig => self.config_interval,
            Task::SamplePerformance => self.performance_interval,
            Task::SampleUsage => self.usage_interval,
        }
    }

    /// The longest a task may legitimately wait; a due time beyond it means the clock went back.
    fn horizon(&self, t: Task) -> i64 {
        let mut h = self.interval(t);
        if t == Task::Upload {
            h = h.max(self.retry_max).max(self.first_upload_delay);
        }
        secs(h)
    }

    /// The state at agent start: the first upload `first_upload_delay` from now; other tasks
    /// keep their persisted due time (or run now if they never ran).
    pub fn at_start(&self, t: Task, persisted: Option<TaskState>, now: Timestamp) -> TaskState {
        match (t, persisted) {
            (Task::Upload, p) => TaskState {
                due_at: now + secs(self.first_upload_delay),
                last_run: p.and_then(|p| p.last_run),
                failures: p.map(|p| p.failures).unwrap_or(0),
            },
            (_, Some(p)) => self.sanitize(t, p, now),
            (_, None) => TaskState { due_at: now, last_run: None, failures: 0 },
        }
    }

    /// Pulls a due time that is impossibly far ahead (the clock went backwards) back to one
    /// interval from now.
    pub fn sanitize(&self, t: Task, s: TaskState, now: Timestamp) -> TaskState {
        let backwards = s.last_run.is_some_and(|l| l > now);
        if s.due_at - now > self.horizon(t) || backwards {
            // The last run is re-dated to now, so the jump is handled once, not at every tick.
            let last_run = if backwards { Some(now) } else { s.last_run };
            TaskState { due_at: now + secs(self.interval(t)).min(self.horizon(t)), last_run, ..s }
        } else {
            s
        }
    }

    pub fn after_success(&self, t: Task, now: Timestamp) -> TaskState {
        TaskState { due_at: now + secs(self.interval(t)), last_run: Some(now), failures: 0 }
    }

    /// Exponential backoff with full jitter, floored at `retry_base`, capped at `retry_max`; a
    /// receiver's `Retry-After` is honoured (within the cap). `unit` is a random number in [0, 1).
    pub fn after_failure(
        &self,
        prev: TaskState,
        now: Timestamp,
        retry_after: Option<Duration>,
        unit: f64,
    ) -> TaskState {
        let failures = prev.failures.saturating_add(1);
        let delay = self.backoff(failures, retry_after, unit);
        TaskState { due_at: now + secs(delay), last_run: Some(now), failures }
    }

    pub fn backoff(&self, failures: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        let exp = self.retry_base.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        let ceiling = exp.min(self.retry_max);
        let jittered = ceiling.mul_f64(unit.clamp(0.0, 1.0)).max(self.retry_base.min(self.retry_max));
        match retry_after {
            Some(ra) => jittered.max(ra).min(self.retry_max),
            None => jittered,
        }
    }
}

fn secs(d: Duration) -> i64 {
    d.as_secs().min(i64::MAX as u64 / 2) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn plan() -> Plan {
        Plan::from_config(&Config::embedded())
    }

    /// Runs the upload task against a clock that moves by `steps`; counts runs.
    fn simulate(steps: &[i64], fail: bool) -> (usize, TaskState) {
        let p = plan();
        let mut now = 1_000_000;
        let mut s = p.at_start(Task::Upload, None, now);
        let mut runs = 0;
        for step in steps {
            now += step;
            s = p.sanitize(Task::Upload, s, now);
            if now >= s.due_at {
                runs += 1;
                s = if fail { p.after_failure(s, now, None, 0.5) } else { p.after_success(Task::Upload, now) };
            }
        }
        (runs, s)
    }

    #[test]
    fn ninety_days_in_minute_steps_upload_once_a_day() {
        let (runs, _) = simulate(&vec![60; 90 * 24 * 60], false);
        assert_eq!(runs, 90);
    }

    #[test]
    fn a_hundred_day_jump_causes_one_run_not_a_storm() {
        let mut steps = vec![600]; // first upload at +5 min
        steps.push(100 * DAY);
        steps.extend(std::iter::repeat_n(60, 60)); // the hour after the jump
        let (runs, s) = simulate(&steps, false);
        assert_eq!(runs, 2);
        assert!(s.due_at > 1_000_000 + 100 * DAY);
    }

    #[test]
    fn a_jump_backwards_causes_no_second_run() {
        let mut steps = vec![600, -3 * DAY];
        steps.extend(std::iter::repeat_n(3600, 23)); // 23 hours later: not yet a day since the run
        let (runs, s) = simulate(&steps, false);
        assert_eq!(runs, 1);
        let last = s.last_run.unwrap();
        assert!(s.due_at - (1_000_000 + 600 - 3 * DAY) <= DAY, "pulled back to a day from the jump, {last}");
    }

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let p = plan();
        assert_eq!(p.backoff(1, None, 0.0), Duration::from_secs(60), "floored at retry_base");
        assert_eq!(p.backoff(3, None, 1.0), Duration::from_secs(240));
        assert!(p.backoff(3, None, 0.5) < p.backoff(3, None, 0.99));
        assert_eq!(p.backoff(40, None, 1.0), Duration::from_secs(86_400), "capped at retry_max");
        assert_eq!(
            p.backoff(1, Some(Duration::from_secs(3600)), 0.0),
            Duration::from_secs(3600),
            "Retry-After honoured"
        );
        // A failing receiver for a day: retries stay few.
        let (runs, _) = simulate(&vec![60; 24 * 60], true);
        assert!(runs <= 12, "{runs} attempts in a day is a storm");
    }
}
