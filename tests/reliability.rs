//! The crash loop: the real agent on a fast schedule against the real receiver, killed with
//! SIGKILL at random moments (collecting, writing bundles, uploading, committing) and restarted,
//! round after round; then everything is reconciled. Short form here (30 rounds); the long form:
//! `CALLHOME_CRASH_ROUNDS=500 cargo test --release --test reliability -- --nocapture`.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use common::*;

/// Every bundle name the agent's log says it collected.
fn collected_names(s: &Setup) -> BTreeSet<String> {
    let logs = s.data.join("logs");
    let text = [logs.join("agent.log.1"), logs.join("agent.log")]
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect::<String>();
    text.lines()
        .filter(|l| l.contains("bundle collected"))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("bundle=")))
        .map(str::to_string)
        .collect()
}

#[test]
fn killed_at_random_moments_the_agent_loses_corrupts_and_duplicates_nothing() {
    let rounds: usize = std::env::var("CALLHOME_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let s = Setup::new();
    let r = Receiver::start(s.path(), &[]);
    s.configure_for(
        &r,
        "first_upload_delay = \"1s\"\ninterval = \"1s\"\nintervals = { call_home = \"1s\", ceip = \"1s\", events = \"1s\" }\nretry_base = \"1s\"\nretry_max = \"2s\"\n[schedule]\nconfig_interval = \"1s\"\nperformance_interval = \"1s\"\nusage_interval = \"1s\"\n",
    );
    let mut rng =
        fastrand::Rng::with_seed(std::env::var("CALLHOME_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(42));
    for _ in 0..rounds {
        let agent = s.start_agent();
        // Not a synchronisation: the point is a kill at an arbitrary moment of the agent's work.
        std::thread::sleep(Duration::from_millis(rng.u64(50..2500)));
        agent.kill9();
    }
    // A last, clean run delivers what is left.
    let agent = s.start_agent();
    wait_until(Duration::from_secs(60), "the spool to drain after the crashes", || s.all_pending() == 0);
    assert!(agent.terminate().success());

    let created = collected_names(&s);
    let ledger = s.ledger();
    let sent: Vec<&serde_json::Value> = ledger.iter().filter(|r| r["event"] == "sent").collect();
    let sent_names: BTreeSet<String> = sent.iter().map(|r| r["bundle"].as_str().unwrap().to_string()).collect();
    let quarantined: BTreeSet<String> = list(&s.data.join("quarantine"), ".zip").into_iter().collect();
    let pending: BTreeSet<String> =
        ["compliance", "callhome", "usage", "events"].iter().flat_map(|k| s.spool(k)).collect();

    // Lost: collected, but neither acknowledged, pending, nor quarantined.
    let lost: Vec<&String> = created
        .iter()
        .filter(|n| !sent_names.contains(*n) && !pending.contains(*n) && !quarantined.contains(*n))
        .collect();
    // Duplicated: one bundle acknowledged twice.
    let mut by_sha: HashMap<&str, usize> = HashMap::new();
    for r in &sent {
        *by_sha.entry(r["sha256"].as_str().unwrap()).or_default() += 1;
    }
    let duplicated = by_sha.values().filter(|n| **n > 1).count();
    // Corrupt: an acknowledged bundle missing at the receiver, or whose bytes are not its SHA-256
    // or not a whole bundle.
    let mut corrupt = Vec::new();
    // Anonymous CEIP bundles are under ceip/, the others under bundles/.
    let stored: Vec<_> = ["bundles", "ceip"]
        .iter()
        .map(|d| r.store.join(d))
        .filter(|d| d.is_dir())
        .flat_map(|d| files_under(&d))
        .collect();
    for row in &sent {
        let sha = row["sha256"].as_str().unwrap();
        let name = format!("{sha}.zip");
        let copy = stored.iter().find(|p| p.file_name().is_some_and(|n| n == name.as_str()));
        match copy.map(std::fs::read).unwrap_or_else(|| Err(std::io::ErrorKind::NotFound.into())) {
            Ok(bytes)
                if callhome::fsutil::sha256_hex(&bytes) == sha
                    && callhome_receiver::check_zip(std::io::Cursor::new(&bytes)).is_ok() => {}
            _ => corrupt.push(sha.to_string()),
        }
    }
    let chain = s.cli(&["ledger", "verify"]);
    println!(
        "crash loop: {rounds} rounds, {} bundles collected, {} acknowledged, {} pending, {} quarantined; lost {}, corrupt {}, duplicated {}",
        created.len(),
        sent_names.len(),
        pending.len(),
        quarantined.len(),
        lost.len(),
        corrupt.len(),
        duplicated
    );
    assert!(created.len() >= rounds / 3, "the agent did work between the kills: {} bundles", created.len());
    assert!(lost.is_empty(), "lost: {lost:?}");
    assert!(corrupt.is_empty(), "corrupt: {corrupt:?}");
    assert_eq!(duplicated, 0);
    assert!(chain.status.success(), "{}", stderr(&chain));
    drop(r);
}

/// The retirement's fault point (`CALLHOME_FAULT_POINT=retire`): the process dies right after a
/// bundle's `sent` row is committed and before its file is unlinked. Once at an upload retried by
/// the next start-up, once at an upload retried by the next upload: each time the bundle is sent
/// once, kept in the ledger once, its file goes, and the chain verifies.
#[test]
fn killed_between_the_ledger_row_and_the_unlink_nothing_is_lost_or_sent_twice() {
    use std::os::unix::process::ExitStatusExt;
    let s = Setup::new();
    let r = Receiver::start(s.path(), &[]);
    s.configure_for(&r, "first_upload_delay = \"1h\"\n");
    let count = |rows: &[serde_json::Value], key: &str, bundle: &str, pred: &dyn Fn(&serde_json::Value) -> bool| {
        rows.iter().filter(|row| row[key] == bundle && pred(row)).count()
    };
    for finish_with_agent_start in [true, false] {
        let before = s.spool("compliance");
        let out = s.cli(&["collect", "--program", "telemetry"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let bundle = s.spool("compliance").into_iter().find(|b| !before.contains(b)).expect("a new bundle");
        let received = r.bundles().len();

        let out = s.cli_env(&["upload", "--program", "telemetry"], &[("CALLHOME_FAULT_POINT", "retire")]);
        // SIGABRT (6): the fault point aborts.
        assert_eq!(out.status.signal(), Some(6), "the upload dies at the fault point: {}", stderr(&out));
        assert!(s.spool("compliance").contains(&bundle), "the file outlives the crash");
        assert_eq!(r.bundles().len(), received + 1, "the receiver holds it");
        let sent = |s: &Setup| count(&s.ledger(), "bundle", &bundle, &|row| row["event"] == "sent");
        assert_eq!(sent(&s), 1, "the ledger committed its receipt before the crash");
        assert!(s.cli(&["ledger", "verify"]).status.success());

        if finish_with_agent_start {
            // Start-up recovery finishes the retirement.
            let agent = s.start_agent();
            wait_until(Duration::from_secs(10), "start-up to retire the bundle", || {
                !s.spool("compliance").contains(&bundle)
            });
            assert!(agent.terminate().success());
        } else {
            // The next upload finds its SHA-256 in the ledger and retires it without sending.
            let out = s.cli(&["upload", "--program", "telemetry"]);
            assert!(out.status.success(), "{}", stderr(&out));
            assert!(!s.spool("compliance").contains(&bundle));
        }
        assert_eq!(sent(&s), 1, "one ledger row, not two");
        let attempts = count(&s.history(), "bundle", &bundle, &|_| true);
        assert_eq!(attempts, 1, "one upload of {bundle}, not two");
        let verify = s.cli(&["ledger", "verify"]);
        assert!(verify.status.success(), "{}{}", stdout(&verify), stderr(&verify));
    }
}
