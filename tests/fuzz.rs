//! Mutation fuzzing of everything that reads outside input: the configuration, license files,
//! debug logs, upload receipts, manual-reporting receipts, bundle zips (the receiver), export
//! zips (the receiver's ingest) and the API's request bodies (a running agent).
//!
//! Each target starts from its committed corpus, `tests/fuzz/corpus/<target>/`, and proptest
//! mutates the seeds (bit flips, inserted, deleted and duplicated runs, truncation, splices of
//! two seeds). A target passes when no input makes it panic or hang and each answer keeps the
//! target's contract (a problem names its key; a receipt checks only if it is the original; a
//! 4xx is a problem document, never a 5xx). CI runs `CALLHOME_FUZZ_CASES` cases per target
//! (default 200); the long form is `CALLHOME_FUZZ_CASES=20000 cargo test --release --test fuzz`.
//! `CALLHOME_FUZZ_WRITE_SEEDS=1` rewrites the generated seeds (receipts, zips) from the code.

mod common;

use std::path::{Path, PathBuf};

use callhome::config::Config;
use callhome::licenses::{debuglog, licfile};
use callhome::manual::format::ManualReceipt;
use callhome::receipt::Receipt;
use common::*;
use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, TestRunner};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz/corpus");

fn cases() -> u32 {
    std::env::var("CALLHOME_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(200)
}

/// The fixed key the receipt seeds are signed with.
fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(CORPUS).join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(!seeds.is_empty(), "the corpus {} is empty", dir.display());
    seeds
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Duplicate(usize, usize),
    Truncate(usize),
    Splice(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0u8..8).prop_map(|(p, b)| Mutation::Flip(p, b)),
        2 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(p, v)| Mutation::Insert(p, v)),
        2 => (any::<usize>(), 1usize..64).prop_map(|(p, n)| Mutation::Delete(p, n)),
        1 => (any::<usize>(), 1usize..256).prop_map(|(p, n)| Mutation::Duplicate(p, n)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(s, p)| Mutation::Splice(s, p)),
    ]
}

fn apply(seeds: &[Vec<u8>], seed: usize, muts: &[Mutation]) -> Vec<u8> {
    let mut b = seeds[seed % seeds.len()].clone();
    for m in muts {
        let at = |p: usize, len: usize| if len == 0 { 0 } else { p % len };
        match m {
            Mutation::Flip(p, bit) if !b.is_empty() => {
                let i = at(*p, b.len());
                b[i] ^= 1 << bit;
            }
            Mutation::Insert(p, v) => {
                let i = at(*p, b.len() + 1);
                b.splice(i..i, v.iter().copied());
            }
            Mutation::Delete(p, n) if !b.is_empty() => {
                let i = at(*p, b.len());
                let end = (i + n).min(b.len());
                b.drain(i..end);
            }
            Mutation::Duplicate(p, n) if !b.is_empty() => {
                let i = at(*p, b.len());
                let run: Vec<u8> = b[i..(i + n).min(b.len())].to_vec();
                b.splice(i..i, run);
            }
            Mutation::Truncate(p) => {
                let i = at(*p, b.len() + 1);
                b.truncate(i);
            }
            Mutation::Splice(s, p) => {
                let other = &seeds[s % seeds.len()];
                let i = at(*p, b.len() + 1);
                let j = at(*p, other.len() + 1);
                b.truncate(i);
                b.extend_from_slice(&other[j..]);
            }
            _ => {}
        }
    }
    b
}

/// Runs `check` on every seed, then on `cases()` mutants; prints the count.
fn fuzz(target: &str, mut check: impl FnMut(&[u8], &[u8]) -> Result<(), TestCaseError>) {
    let seeds = corpus(target);
    for s in &seeds {
        check(s, s).unwrap_or_else(|e| panic!("{target}: a seed fails: {e}"));
    }
    let check = std::cell::RefCell::new(check);
    let mut runner = TestRunner::new(PtConfig { cases: cases(), failure_persistence: None, ..PtConfig::default() });
    let strategy = (any::<usize>(), proptest::collection::vec(mutation(), 1..6));
    runner
        .run(&strategy, |(seed, muts)| {
            let input = apply(&seeds, seed, &muts);
            (check.borrow_mut())(&seeds[seed % seeds.len()], &input)
        })
        .unwrap_or_else(|e| panic!("{target}: {e}"));
    println!("fuzz {target}: {} seeds, {} mutants, no panic, contract held", seeds.len(), cases());
}

#[test]
fn the_config_parser() {
    fuzz("config", |_, input| {
        let text = String::from_utf8_lossy(input);
        let mut cfg = Config::embedded();
        for p in cfg.overlay(&text, "fuzz.toml") {
            prop_assert!(!p.key.is_empty() && !p.message.is_empty(), "{p:?}");
            if let Some(line) = p.line {
                prop_assert!(line >= 1 && line <= text.lines().count().max(1), "{p:?}");
            }
        }
        Ok(())
    });
}

#[test]
fn the_license_file_parser() {
    fuzz("licfile", |_, input| {
        let f = licfile::parse(input);
        let lines = input.split(|b| *b == b'\n').count();
        for p in &f.problems {
            prop_assert!(p.line >= 1 && p.line <= lines);
        }
        Ok(())
    });
}

#[test]
fn the_debug_log_parser() {
    fuzz("debuglog", |_, input| {
        let mut p = debuglog::Parser::default();
        p.feed(input);
        prop_assert!(p.stats.lines as usize <= input.len() + 1);
        Ok(())
    });
}

#[test]
fn upload_receipts() {
    let vk = key().verifying_key();
    fuzz("receipt", |seed, input| {
        let original: Receipt = serde_json::from_slice(seed).unwrap();
        if let Ok(r) = serde_json::from_slice::<Receipt>(input)
            && r.check(&original.bundle_sha256, Some(&vk)).is_ok()
        {
            // Hex is read in either case: the same bytes, the same receipt.
            let norm = |r: &Receipt| {
                let mut r = r.clone();
                r.signature.make_ascii_lowercase();
                r.bundle_sha256.make_ascii_lowercase();
                r
            };
            prop_assert_eq!(norm(&r), norm(&original), "only the original receipt checks");
        }
        Ok(())
    });
}

#[test]
fn manual_reporting_receipts() {
    let vk = key().verifying_key();
    fuzz("manual_receipt", |seed, input| {
        let original: ManualReceipt = serde_json::from_slice(seed).unwrap();
        if let Ok(r) = serde_json::from_slice::<ManualReceipt>(input)
            && r.verify(&vk).is_ok()
        {
            prop_assert_eq!(r.canonical(), original.canonical(), "only the original receipt verifies");
        }
        Ok(())
    });
}

#[test]
fn bundle_zips_at_the_receiver() {
    fuzz("bundle", |_, input| {
        if let Err(e) = callhome_receiver::check_zip(std::io::Cursor::new(input)) {
            prop_assert!(!e.is_empty());
        }
        Ok(())
    });
}

#[test]
fn export_zips_at_the_receivers_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let store = callhome_receiver::BundleStore::open_local(&dir.path().join("store"), key()).unwrap();
    let file = dir.path().join("export.zip");
    let limits = callhome_receiver::ingest::ExportLimits { max_bundle: 64 << 20, max_unpacked: 256 << 20 };
    fuzz("export", |_, input| {
        std::fs::write(&file, input).unwrap();
        match callhome_receiver::ingest::ingest(
            &file,
            &store,
            &limits,
            &|_| Ok(None),
            &|_| Ok(None),
            callhome_protocol::time::now(),
        ) {
            Ok((receipt, taken)) => {
                prop_assert!(receipt.verify(&key().verifying_key()).is_ok());
                prop_assert_eq!(taken.len(), receipt.accepted.len());
                for r in &receipt.rejected {
                    prop_assert!(!r.reason.is_empty());
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        Ok(())
    });
    // Nothing was written outside the store.
    assert_eq!(list(dir.path(), ""), ["export.zip", "store"]);
}

#[test]
fn api_request_bodies_against_a_running_agent() {
    let s = Setup::new();
    s.configure_offline("first_upload_delay = \"1h\"\n");
    // No keyring here: setting a proxy password answers 503, fast, whatever the machine has.
    let agent = s.start_agent_with(&["--headless"], &[("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")]);
    let api = AgentApi::wait_for(&s);
    let (host, auth) = (api.host(), format!("Bearer {}", api.token));
    // Every request is JSON, whatever its bytes (and even when empty).
    let http = |method: &str, path: &str, body: &[u8]| {
        api.raw(method, path, &[("Host", &host), ("Authorization", &auth), ("Content-Type", "application/json")], body)
    };
    let routes = [
        ("PUT", "/api/v1/programs/ceip"),
        ("PUT", "/api/v1/programs/telemetry"),
        ("POST", "/api/v1/export"),
        ("POST", "/api/v1/import-receipt"),
        ("PUT", "/api/v1/proxy"),
        ("PUT", "/api/v1/registration"),
    ];
    let mut seen = std::collections::BTreeMap::<u16, u32>::new();
    fuzz("api", |_, input| {
        for (method, path) in routes {
            let answer = http(method, path, input);
            let (status, ctype) = (answer.status, answer.header("content-type").unwrap_or_default());
            *seen.entry(status).or_default() += 1;
            let keyring = path == "/api/v1/proxy" || path == "/api/v1/registration";
            prop_assert!(
                (200..500).contains(&status) || (keyring && status == 503),
                "{method} {path} with {:?} answered {status}",
                String::from_utf8_lossy(input)
            );
            if status >= 400 {
                prop_assert_eq!(ctype, "application/problem+json", "{} {}", method, path);
            }
        }
        Ok(())
    });
    println!("fuzz api: answers by status {seen:?}");
    assert_eq!(http("GET", "/healthz", b"").status, 200, "the agent still answers");
    assert!(agent.terminate().success());
}

/// Writes the seeds that are made by code (receipts, zips) into the corpus.
#[test]
fn generated_seeds_are_in_the_corpus() {
    let receipt =
        Receipt::sign(&key(), "r-1".into(), "ab".repeat(32), "2026-11-23T00:00:00Z".into(), Default::default());
    let manual = ManualReceipt {
        format: callhome::manual::format::RECEIPT_FORMAT.into(),
        receipt_id: "m-1".into(),
        export_id: "e-1".into(),
        install_id: "i-1".into(),
        received_at: "2026-11-23T00:00:00Z".into(),
        accepted: vec!["cd".repeat(32)],
        rejected: vec![callhome::manual::format::Rejected {
            sha256: "ef".repeat(32),
            name: "upload_usage_x.zip".into(),
            reason: "damaged".into(),
        }],
        ledger_head: None,
        signature: String::new(),
    }
    .sign(&key());
    let expected = [
        ("receipt/signed.json", serde_json::to_vec_pretty(&receipt).unwrap()),
        ("manual_receipt/signed.json", serde_json::to_vec_pretty(&manual).unwrap()),
    ];
    let write = std::env::var_os("CALLHOME_FUZZ_WRITE_SEEDS").is_some();
    for (rel, bytes) in expected {
        let path = Path::new(CORPUS).join(rel);
        if write {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        assert_eq!(std::fs::read(&path).ok().as_deref(), Some(bytes.as_slice()), "{rel} is the seed the code makes");
    }
    if write {
        // Real bundles and a real export, from the agent itself.
        let s = Setup::new();
        let r = Receiver::start(s.path(), &[]);
        s.configure_for(&r, "");
        assert!(s.cli(&["collect"]).status.success());
        for kind in ["compliance", "callhome"] {
            let name = &s.spool(kind)[0];
            std::fs::copy(
                s.data.join("spool").join(kind).join(name),
                Path::new(CORPUS).join("bundle").join(format!("{kind}.zip")),
            )
            .unwrap();
        }
        let out = s.path().join("export.zip");
        assert!(s.cli(&["export", "--out", out.to_str().unwrap()]).status.success());
        std::fs::copy(&out, Path::new(CORPUS).join("export").join("export.zip")).unwrap();
    }
}
