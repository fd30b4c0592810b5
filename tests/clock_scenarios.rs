//! Time scenarios: the real agent code and the real receiver over TLS, with the agent's clock in
//! the test's hands, so 90 days, a 100-day jump or a jump backwards run in moments.

mod common;
#[path = "common/alerts.rs"]
mod servers;

use std::sync::Arc;
use std::time::Duration;

use callhome::agent::Agent;
use callhome::clock::ManualClock;
use callhome::config::Config;
use callhome::datadir::DataDir;
use callhome::programs::Program;
use common::*;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);
const START: i64 = 1_800_000_000;

/// Only license telemetry runs (the optional programs' samplers take real time).
const SCENARIO: &str = "[programs]\ncall_home = false\nceip = false\n";

struct Scenario {
    /// Owns the temporary data directory for the scenario's lifetime.
    _setup: Setup,
    clock: ManualClock,
    agent: Agent,
    rt: tokio::runtime::Runtime,
}

impl Scenario {
    fn new(endpoint: Option<&Receiver>) -> Scenario {
        let s = Setup::new();
        match endpoint {
            Some(r) => s.configure_for(r, SCENARIO),
            None => s.configure_offline(SCENARIO),
        }
        let clock = ManualClock::at(START);
        let cfg = Config::load(&s.config).unwrap();
        let agent = Agent::open(cfg, DataDir::at(&s.data), Arc::new(clock.clone())).unwrap();
        agent.start_schedule().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Scenario { _setup: s, clock, agent, rt }
    }

    /// Moves the clock by `step` `n` times, running due tasks after each step.
    fn tick(&self, step: Duration, n: usize) {
        for _ in 0..n {
            self.clock.advance(step);
            self.rt.block_on(self.agent.run_due()).unwrap();
        }
    }

    fn attempts(&self) -> usize {
        self.agent.history(100_000, 0).unwrap().iter().filter(|a| a.program == Program::Telemetry).count()
    }

    fn compliance(&self) -> (i64, &'static str) {
        let c = self.agent.status().unwrap().compliance;
        (c.days_since_last_upload, c.state.name())
    }
}

#[test]
fn ninety_days_of_hourly_ticks_upload_once_a_day() {
    let tmp = tempfile::tempdir().unwrap();
    let r = Receiver::start(tmp.path(), &[]);
    let sc = Scenario::new(Some(&r));
    sc.tick(HOUR, 90 * 24);
    assert_eq!(sc.attempts(), 90);
    assert_eq!(r.bundles().len(), 90, "one compliance bundle a day reached the receiver");
    assert_eq!(sc.compliance(), (0, "ok"));
    assert_eq!(sc.agent.verify_ledger_chain().unwrap(), Ok(90));
}

#[test]
fn a_hundred_day_jump_causes_one_upload_not_a_storm() {
    let tmp = tempfile::tempdir().unwrap();
    let r = Receiver::start(tmp.path(), &[]);
    let sc = Scenario::new(Some(&r));
    sc.tick(Duration::from_secs(600), 1);
    assert_eq!(sc.attempts(), 1);
    sc.clock.advance(100 * DAY);
    assert_eq!(sc.compliance(), (100, "overdue"), "the jump counts against the clock until an upload");
    sc.tick(Duration::from_secs(60), 60);
    assert_eq!(sc.attempts(), 2, "one upload after the jump");
    assert_eq!(sc.compliance(), (0, "ok"));
}

#[test]
fn a_jump_backwards_causes_no_second_run() {
    let tmp = tempfile::tempdir().unwrap();
    let r = Receiver::start(tmp.path(), &[]);
    let sc = Scenario::new(Some(&r));
    sc.tick(Duration::from_secs(600), 1);
    assert_eq!(sc.attempts(), 1);
    sc.clock.set(START - 3 * 86_400);
    assert_eq!(sc.compliance(), (0, "ok"), "a clock behind the last success never counts negative");
    sc.tick(HOUR, 23);
    assert_eq!(sc.attempts(), 1, "nothing runs twice after the clock went back");
    sc.tick(HOUR, 2);
    assert_eq!(sc.attempts(), 2, "and the daily upload resumes a day later");
}

#[test]
fn a_receiver_down_for_a_day_gets_a_few_retries_and_the_clock_warns_then_overdue() {
    let sc = Scenario::new(None);
    sc.tick(Duration::from_secs(60), 24 * 60);
    let n = sc.attempts();
    assert!((2..=16).contains(&n), "{n} attempts in a day: backoff, not a storm");
    assert_eq!(sc.agent.pending(Program::Telemetry).unwrap().len(), 1, "retries reuse the kept bundle");
    sc.clock.set(START + 60 * 86_400);
    assert_eq!(sc.compliance(), (60, "warning"));
    sc.clock.set(START + 83 * 86_400);
    assert_eq!(sc.compliance(), (83, "critical"));
    sc.clock.set(START + 91 * 86_400);
    assert_eq!(sc.compliance(), (91, "overdue"));
}

#[test]
fn each_program_keeps_its_own_upload_cadence() {
    let tmp = tempfile::tempdir().unwrap();
    let r = Receiver::start(tmp.path(), &[]);
    let s = Setup::new();
    // Call Home collected daily but uploaded weekly; the samplers run once (they take real time).
    s.configure_for(
        &r,
        "intervals = { call_home = \"7d\" }\n[schedule]\nconfig_interval = \"1d\"\nperformance_interval = \"3650d\"\nusage_interval = \"3650d\"\n[programs]\nceip = false\n",
    );
    let clock = ManualClock::at(START);
    let agent = Agent::open(Config::load(&s.config).unwrap(), DataDir::at(&s.data), Arc::new(clock.clone())).unwrap();
    agent.start_schedule().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for _ in 0..14 * 24 {
        clock.advance(HOUR);
        rt.block_on(agent.run_due()).unwrap();
    }
    let attempts = agent.history(100_000, 0).unwrap();
    let cycles = |p: Program| {
        let mut at: Vec<i64> = attempts.iter().filter(|a| a.program == p).map(|a| a.at).collect();
        at.dedup();
        at.len()
    };
    assert_eq!(cycles(Program::Telemetry), 14, "telemetry daily");
    // The first bundle goes at the first cycle after it exists (day 1), the next a week later.
    assert_eq!(cycles(Program::CallHome), 2, "Call Home weekly");
    let sent = attempts.iter().filter(|a| a.program == Program::CallHome && a.code == "CTX_UPLOADER_SUCCESS").count();
    assert!(sent >= 7, "a week of daily Call Home bundles went at once: {sent}");
    assert!(!agent.pending(Program::CallHome).unwrap().is_empty(), "this week's wait for their turn");
    let st = callhome::api::dto::StatusDoc::from(&agent.status().unwrap());
    assert_eq!((st.programs[0].upload_interval.as_str(), st.programs[1].upload_interval.as_str()), ("1day", "7days"));
}

fn telemetry_attempts(s: &Setup) -> usize {
    s.history().iter().filter(|a| a["program"] == "telemetry").count()
}

/// (now, next upload, days since the last upload, state) as the running agent sees them.
fn schedule(s: &Setup) -> (i64, i64, i64, String) {
    let st = s.status();
    let t = |v: &serde_json::Value| callhome::clock::parse_rfc3339(v.as_str().unwrap()).unwrap();
    (
        t(&st["now"]),
        t(&st["next_upload"]),
        st["compliance"]["days_since_last_upload"].as_i64().unwrap(),
        st["compliance"]["state"].as_str().unwrap().to_string(),
    )
}

#[test]
fn the_running_binary_takes_a_hundred_day_jump_forward_and_back() {
    let s = Setup::new();
    let r = Receiver::start(s.path(), &[]);
    s.configure_for(&r, &format!("first_upload_delay = \"1s\"\n{SCENARIO}[schedule]\nclock_check = \"1s\"\n"));
    let offset = s.path().join("faketime");
    std::fs::write(&offset, "+0\n").unwrap();
    let lib = libfaketime();
    let env = [
        ("LD_PRELOAD", lib.to_str().unwrap()),
        ("FAKETIME_TIMESTAMP_FILE", offset.to_str().unwrap()),
        ("FAKETIME_NO_CACHE", "1"),
        // Timers keep real time: only the wall clock jumps, as on a machine whose clock is set.
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let agent = s.start_agent_with(&["--headless"], &env);
    let t0 = std::time::Instant::now();
    wait_until(Duration::from_secs(30), "the first upload", || telemetry_attempts(&s) == 1);
    eprintln!("first upload after {:?}", t0.elapsed());
    let (before, _, _, _) = schedule(&s);

    // +100 days: one upload, then the next a day away; the clock back to day 0.
    std::fs::write(&offset, "+100d\n").unwrap();
    wait_until(Duration::from_secs(30), "the upload after the jump", || telemetry_attempts(&s) == 2);
    wait_until(Duration::from_secs(30), "the next upload planned a day after the jump", || {
        let (now, next, _, _) = schedule(&s);
        now - before >= 100 * 86_400 && next - now > 23 * 3600
    });
    assert_eq!(telemetry_attempts(&s), 2, "one upload, not a storm");
    eprintln!("jump forward handled after {:?}", t0.elapsed());
    let (_, _, days, state) = schedule(&s);
    assert_eq!((days, state.as_str()), (0, "ok"));
    assert!(s.history().iter().all(|a| a["code"] == "CTX_UPLOADER_SUCCESS"));

    // Back to the real date: the due time 100 days ahead is pulled back, nothing runs twice,
    // and the clock (its last upload now in the future) never counts below zero.
    std::fs::write(&offset, "+0\n").unwrap();
    wait_until(Duration::from_secs(30), "the next upload pulled back within a day", || {
        let (now, next, _, _) = schedule(&s);
        now - before < 86_400 && next - now <= 24 * 3600
    });
    eprintln!("jump back handled after {:?}", t0.elapsed());
    let (_, _, days, state) = schedule(&s);
    assert_eq!((days, state.as_str()), (0, "ok"));
    assert_eq!(telemetry_attempts(&s), 2);
    assert!(agent.terminate().success());
}

#[test]
fn the_clock_moved_past_each_threshold_sends_one_alert_per_threshold_on_the_channels() {
    let hook = servers::WebhookServer::start("Clock-Secret-7781");
    let s = Setup::new();
    s.configure_offline(&format!("{SCENARIO}[alerts.webhook]\nurl = \"{}\"\nformat = \"json\"\n", hook.url));
    let clock = ManualClock::at(START);
    let agent =
        Arc::new(Agent::open(Config::load(&s.config).unwrap(), DataDir::at(&s.data), Arc::new(clock.clone())).unwrap());
    agent.start_schedule().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let notifier = rt.spawn(callhome::alerts::run(agent.clone(), Arc::new(callhome::alerts::LogOnly), stop));
    let kinds = |kind: &str| -> Vec<serde_json::Value> {
        hook.hits().into_iter().filter(|h| h.body["kind"] == kind).map(|h| h.body).collect()
    };
    let failed = || sc_attempts(&agent);
    wait_until(Duration::from_secs(10), "the notifier to listen", || agent.listeners() > 0);
    // Day by day to day 95, the receiver down: each day's failed upload wakes the notifier, which
    // looks at the clock. After each day, wait until that day's failure reached the webhook (so
    // what the day decided is out before the clock moves on).
    for day in 1..=95 {
        let (attempts, told) = (failed(), kinds("upload-failed").len());
        clock.set(START + day * 86_400);
        rt.block_on(agent.run_due()).unwrap();
        if failed() > attempts {
            // A day is longer than the quiet period (12h): each day's failure is told.
            wait_until(Duration::from_secs(30), &format!("day {day}'s failure on the webhook"), || {
                kinds("upload-failed").len() > told
            });
        }
    }
    let compliance: Vec<String> = hook
        .hits()
        .into_iter()
        .filter(|h| h.body["kind"].as_str().is_some_and(|k| k.starts_with("compliance")))
        .map(|h| h.body["summary"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(compliance.len(), 4, "30, 14 and 7 days left, then the limit, once each: {compliance:?}");
    for (i, days) in ["30 days left", "14 days left", "7 days left", "overdue"].iter().enumerate() {
        assert!(compliance[i].contains(days), "{days} in {compliance:?}");
    }
    assert_eq!(kinds("compliance-overdue")[0]["audience"], "technical,renewal");
    stop_tx.send(true).unwrap();
    rt.block_on(notifier).unwrap();
}

/// License-telemetry upload attempts so far.
fn sc_attempts(agent: &Agent) -> usize {
    agent.history(100_000, 0).unwrap().iter().filter(|a| a.program == Program::Telemetry).count()
}
