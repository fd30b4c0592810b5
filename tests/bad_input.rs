//! Bad conditions get a clear error and lose nothing: a full disk, a spool over its quota, a
//! damaged bundle found at start.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// Runs `script` (sh) in a private mount namespace, where it may mount a small tmpfs on `$FS`;
/// `$OUT` is a folder for what it finds, `$AGENT` the binary, `$CFG` the configuration. Returns
/// its exit status and a reader of the files it left in `$OUT` (empty when absent).
fn on_a_small_disk(s: &Setup, script: &str) -> (std::process::ExitStatus, impl Fn(&str) -> String) {
    let fs = s.path().join("small-disk");
    let out_dir = s.path().join("out");
    std::fs::create_dir_all(&fs).unwrap();
    std::fs::create_dir_all(&out_dir).unwrap();
    let status = Command::new("unshare")
        .args(["-rm", "sh", "-c", script])
        .env("FS", &fs)
        .env("OUT", &out_dir)
        .env("AGENT", &*AGENT)
        .env("CFG", &s.config)
        .status()
        .expect("unshare runs (util-linux)");
    (status, move |n: &str| std::fs::read_to_string(out_dir.join(n)).unwrap_or_default())
}

#[test]
fn a_full_disk_fails_clearly_leaves_no_partial_bundle_and_recovers() {
    let s = Setup::new();
    // A Call Home command whose output (random, so incompressible) cannot fit on the small disk.
    s.configure_offline(
        "[[collect.commands]]\nname = \"big\"\nprogram = \"call_home\"\nmax_output = 4000000\nargv = [\"sh\", \"-c\", \"printf '\\\"'; head -c 1500000 /dev/urandom | base64 -w0; printf '\\\"'\"]\n",
    );
    // A 1 MiB tmpfs in a private mount namespace stands in for a full disk.
    let script = r#"
        set -u
        mount -t tmpfs -o size=1m tmpfs "$FS" || exit 90
        ch() { "$AGENT" "$@" --config "$CFG" --data-dir "$FS/data"; }
        ch collect --program telemetry >"$OUT/first.out" 2>&1 || exit 91
        ch collect --program call_home >"$OUT/big.out" 2>"$OUT/big.err"; echo $? >"$OUT/big.rc"
        ls -A "$FS/data/spool/callhome" >"$OUT/big.spool"; ls -A "$FS/data/spool/.tmp" >"$OUT/big.tmp"
        dd if=/dev/zero of="$FS/filler" bs=4k >/dev/null 2>&1
        ch collect --program telemetry >"$OUT/full.out" 2>"$OUT/full.err"; echo $? >"$OUT/full.rc"
        ls -A "$FS/data/spool/compliance" >"$OUT/full.spool"; ls -A "$FS/data/spool/.tmp" >"$OUT/full.tmp"
        rm "$FS/filler"
        ch collect --program telemetry >"$OUT/after.out" 2>&1; echo $? >"$OUT/after.rc"
        ls -A "$FS/data/spool/compliance" >"$OUT/after.spool"
        ch ledger verify >"$OUT/verify.out" 2>&1; echo $? >"$OUT/verify.rc"
    "#;
    let (status, read) = on_a_small_disk(&s, script);
    assert!(status.success(), "the full-disk script failed early: {status:?} (90: no tmpfs mount, 91: first collect)");
    // A bundle that does not fit: a clear error, no partial file, the earlier bundle intact.
    assert_eq!(read("big.rc").trim(), "1", "{}{}", read("big.out"), read("big.err"));
    assert!(
        read("big.err").contains("No space left on device") && read("big.err").contains("free some space"),
        "{}",
        read("big.err")
    );
    assert_eq!(read("big.spool").trim(), "");
    assert_eq!(read("big.tmp").trim(), "", "the partial bundle was removed");
    assert_eq!(read("full.rc").trim(), "1", "{}", read("full.err"));
    let err = read("full.err");
    assert!(["No space left on device", "disk is full", "disk I/O error"].iter().any(|m| err.contains(m)), "{err}");
    assert!(err.contains("free some space"), "the message says what to do: {err}");
    assert_eq!(read("full.spool").lines().count(), 1, "only the first, whole bundle is spooled");
    assert_eq!(read("full.tmp").trim(), "", "no partial bundle is left behind");
    assert_eq!(read("after.rc").trim(), "0", "{}", read("after.out"));
    assert_eq!(read("after.spool").lines().count(), 2);
    assert_eq!(read("verify.rc").trim(), "0", "{}", read("verify.out"));
}

#[test]
fn over_quota_evicts_optional_bundles_first_and_reports_what_compliance_keeps() {
    let s = Setup::new();
    s.configure_offline("[spool]\nmax_bytes = 2000\n");
    assert!(s.cli(&["collect", "--program", "call_home"]).status.success());
    assert!(s.cli(&["collect", "--program", "telemetry"]).status.success());
    assert!(s.cli(&["collect", "--program", "telemetry"]).status.success());
    assert!(s.spool("callhome").is_empty(), "the optional bundle made room");
    assert_eq!(s.spool("compliance").len(), 2, "compliance bundles are never evicted");
    let evicted: Vec<_> = s.ledger().into_iter().filter(|r| r["event"] == "evicted").collect();
    assert_eq!(evicted.len(), 1);
    assert_eq!(evicted[0]["program"], "call_home");
    let st = s.status();
    assert!(st["spool"]["over_quota_bytes"].as_u64().unwrap() > 0, "{}", st["spool"]);
    let human = stdout(&s.cli(&["status"]));
    assert!(human.contains("exceed spool.max_bytes"), "{human}");
}

#[test]
fn a_damaged_bundle_found_at_start_is_quarantined_not_uploaded() {
    let s = Setup::new();
    let r = Receiver::start(s.path(), &[]);
    s.configure_for(&r, "first_upload_delay = \"1s\"\n");
    assert!(s.cli(&["collect", "--program", "telemetry"]).status.success());
    let name = s.spool("compliance")[0].clone();
    let path = s.data.join("spool/compliance").join(&name);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    std::fs::write(s.data.join("spool/compliance/README.txt"), "not ours").unwrap();

    let _agent = s.start_agent();
    wait_until(Duration::from_secs(30), "the agent's first upload", || s.result_file("compliance").contains("SUCCESS"));
    let q = list(&s.data.join("quarantine"), "");
    assert!(q.contains(&name) && q.contains(&"README.txt".to_string()), "{q:?}");
    let reason = std::fs::read_to_string(s.data.join("quarantine").join(format!("{name}.reason"))).unwrap();
    assert!(reason.contains("damaged"), "{reason}");
    let sha_of_damaged = callhome::fsutil::sha256_hex(&bytes[..bytes.len() / 3]);
    assert!(!r.bundles().contains(&format!("{sha_of_damaged}.zip")), "the damaged bundle was never sent");
}

/// A zip whose `manifest.json` is the one of a real bundle, plus `extra` entries.
fn hostile_bundle(extra: &[(&str, &[u8])]) -> Vec<u8> {
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz/corpus/bundle/compliance.zip");
    let real = ZipEntries::read(std::path::Path::new(seed));
    let entries = std::iter::once(("manifest.json".to_string(), real.get("manifest.json")));
    zip_of(entries.chain(extra.iter().map(|(n, b)| (n.to_string(), *b))), zip::CompressionMethod::Deflated)
}

/// A zip of `entries`, in order, each packed with `method`.
fn zip_of<'a>(entries: impl IntoIterator<Item = (String, &'a [u8])>, method: zip::CompressionMethod) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, bytes) in entries {
        w.start_file(name, opts).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// Puts `bundles` into an export zip the way `callhome export` lays one out.
fn hostile_export(bundles: &[(&str, &[u8])]) -> Vec<u8> {
    let list: Vec<serde_json::Value> = bundles
        .iter()
        .map(|(name, b)| {
            serde_json::json!({ "name": name, "program": "telemetry", "sha256": callhome::fsutil::sha256_hex(b), "size": b.len() })
        })
        .collect();
    let manifest = serde_json::json!({
        "format": callhome::manual::format::EXPORT_FORMAT, "export_id": "e-hostile", "install_id": "i-hostile",
        "created_at": "2026-11-23T00:00:00Z", "agent_version": "0", "bundles": list,
    });
    let manifest = manifest.to_string();
    let entries = std::iter::once(("export.json".to_string(), manifest.as_bytes()));
    let bundles = bundles.iter().map(|(name, b)| (format!("{}{name}", callhome::manual::format::BUNDLES_DIR), *b));
    zip_of(entries.chain(bundles), zip::CompressionMethod::Stored)
}

#[test]
fn a_zip_bomb_and_a_path_traversal_are_refused_by_the_receiver_and_by_its_ingest() {
    let zeros = vec![0u8; 20 << 20];
    let bomb = hostile_bundle(&[("telemetry.json", &zeros)]);
    assert!(bomb.len() < 200 << 10, "20 MiB of zeros pack small ({} bytes)", bomb.len());
    let traversal = hostile_bundle(&[("../../escaped.json", b"{}")]);
    let fine = hostile_bundle(&[("telemetry.json", b"{\"ok\": true}")]);

    // Uploaded: refused for good (422: the agent quarantines it), with the reason.
    let s = Setup::new();
    let r = Receiver::start(s.path(), &[]);
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&r.ca).unwrap()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = reqwest::Client::builder().tls_certs_only([ca]).no_proxy().build().unwrap();
    let post = |body: &[u8]| {
        rt.block_on(async {
            let resp = client
                .post(&r.url)
                .header("content-type", "application/zip")
                .header("idempotency-key", callhome::fsutil::sha256_hex(body))
                .header("x-callhome-program", "telemetry")
                .body(body.to_vec())
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        })
    };
    let (status, body) = post(&bomb);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("unpacks to more than"), "{body}");
    let (status, body) = post(&traversal);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("unsafe name"), "{body}");
    assert_eq!(post(&fine).0, 201, "a plain bundle with the same manifest is taken");
    assert_eq!(r.bundles().len(), 1);

    // Carried in an export: each hostile bundle rejected with its reason, the good one taken.
    let export = hostile_export(&[
        ("upload_compliance_bomb.zip", &bomb),
        ("upload_compliance_dots.zip", &traversal),
        ("upload_compliance_fine.zip", &fine),
    ]);
    let path = s.path().join("hostile-export.zip");
    std::fs::write(&path, export).unwrap();
    let store = s.path().join("ingest-store");
    let receipt_out = s.path().join("receipt.json");
    receiver_ingest(&path, &store, &s.path().join("ingest.key"), &receipt_out);
    let receipt: serde_json::Value = serde_json::from_slice(&std::fs::read(&receipt_out).unwrap()).unwrap();
    assert_eq!(receipt["accepted"].as_array().unwrap().len(), 1, "{receipt:#}");
    let reasons: Vec<String> =
        receipt["rejected"].as_array().unwrap().iter().map(|r| format!("{}: {}", r["name"], r["reason"])).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("bomb") && r.contains("unpacks to more than")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("dots") && r.contains("unsafe name")), "{reasons:?}");
    // Nothing escaped the store.
    assert!(!s.path().join("escaped.json").exists() && !store.parent().unwrap().join("escaped.json").exists());
}

#[test]
fn a_running_agent_keeps_serving_its_api_on_a_full_disk_and_recovers() {
    let s = Setup::new();
    // Performance samples every second: scheduled work keeps hitting the full disk.
    s.configure_offline(
        "first_upload_delay = \"1h\"\n[schedule]\nperformance_interval = \"1s\"\nclock_check = \"1s\"\n",
    );
    // The agent and the CLI both live in the private mount namespace of the small disk; the CLI
    // reaches the agent through its API. Waits poll for a condition with a deadline.
    let script = r#"
        set -u
        mount -t tmpfs -o size=2m tmpfs "$FS" || exit 90
        ch() { "$AGENT" "$@" --config "$CFG" --data-dir "$FS/data"; }
        "$AGENT" run --headless --config "$CFG" --data-dir "$FS/data" 2>"$OUT/agent.err" &
        agent=$!
        i=0; until [ -f "$FS/data/api.json" ]; do i=$((i+1)); [ $i -gt 200 ] && exit 92; sleep 0.05; done
        dd if=/dev/zero of="$FS/filler" bs=4k >/dev/null 2>&1
        i=0; until grep -q "task failed\|schedule could not run" "$OUT/agent.err"; do i=$((i+1)); [ $i -gt 200 ] && exit 93; sleep 0.05; done
        ch collect --program telemetry >"$OUT/full.out" 2>"$OUT/full.err"; echo $? >"$OUT/full.rc"
        ch status --json >"$OUT/status.json" 2>"$OUT/status.err"; echo $? >"$OUT/status.rc"
        ls -A "$FS/data/spool/.tmp" >"$OUT/full.tmp"
        rm "$FS/filler"
        ch collect --program telemetry >"$OUT/after.out" 2>"$OUT/after.err"; echo $? >"$OUT/after.rc"
        ls -A "$FS/data/spool/compliance" >"$OUT/after.spool"
        kill -TERM $agent
        i=0; while kill -0 $agent 2>/dev/null; do
            i=$((i+1)); if [ $i -gt 400 ]; then kill -KILL $agent; echo "still running 20 s after SIGTERM" >"$OUT/agent.rc"; exit 0; fi
            sleep 0.05
        done
        wait $agent; echo $? >"$OUT/agent.rc"
    "#;
    let (status, read) = on_a_small_disk(&s, script);
    assert!(
        status.success(),
        "the script failed early: {status:?} (90: no tmpfs, 92: no API, 93: no scheduled work failed) {}",
        read("agent.err")
    );
    // Collecting fails, through the agent, with what to do.
    assert_eq!(read("full.rc").trim(), "1", "{}{}", read("full.out"), read("full.err"));
    let err = read("full.err");
    assert!(["No space left on device", "disk is full", "disk I/O error"].iter().any(|m| err.contains(m)), "{err}");
    assert!(!err.contains("no agent runs"), "the CLI went through the agent: {err}");
    assert_eq!(read("full.tmp").trim(), "", "no partial bundle is left behind");
    // Meanwhile the API answers.
    assert_eq!(read("status.rc").trim(), "0", "{}", read("status.err"));
    let st: serde_json::Value = serde_json::from_str(&read("status.json")).unwrap();
    assert_eq!(st["agent"]["running"], true, "{st}");
    // Room again: the same agent collects.
    assert_eq!(read("after.rc").trim(), "0", "{}{}", read("after.out"), read("after.err"));
    assert!(read("after.spool").lines().count() >= 1);
    assert_eq!(read("agent.rc").trim(), "0", "a clean stop: {}", read("agent.err"));
}
