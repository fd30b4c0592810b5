//! Synthetic inputs shared by the benches and `bench_tool` (crates/callhome-bench, for scripts/bench): a
//! vendor-daemon debug log and telemetry NDJSON, both seeded, so every run measures the same bytes.

#![allow(dead_code)]

use std::io::Write;

/// A realistic debug log: a start line, TIMESTAMP lines, and mostly OUT/IN with some denials,
/// over 40 features, 300 users and several days.
pub fn synthetic_log(bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 256);
    writeln!(
        out,
        " 8:00:00 (lmgrd) FlexNet Licensing (v11.19.5.0 build 312345 x64_lsb) started on lic1 (linux) (11/20/2025)"
    )
    .unwrap();
    let mut rng = fastrand::Rng::with_seed(7);
    let mut secs = 8 * 3600u32;
    let mut day = 20;
    while out.len() < bytes {
        secs += rng.u32(1..20);
        if secs >= 86_400 {
            secs -= 86_400;
            day += 1;
            writeln!(
                out,
                "{:2}:{:02}:{:02} (acme) TIMESTAMP 11/{}/2025",
                secs / 3600,
                secs / 60 % 60,
                secs % 60,
                day % 28 + 1
            )
            .unwrap();
        }
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        let f = rng.u32(..40);
        let u = rng.u32(..300);
        let ev = match rng.u32(..20) {
            0 => "DENIED",
            1 => "QUEUED",
            2..=10 => "OUT",
            _ => "IN",
        };
        writeln!(out, "{h:2}:{m:02}:{s:02} (acme) {ev}: \"feature_{f:02}\" user{u:03}@ws-{u:03}.corp.example  ")
            .unwrap();
    }
    out
}

/// Telemetry as NDJSON: one JSON object a line, the shape of performance samples.
pub fn telemetry_ndjson(bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 512);
    let mut rng = fastrand::Rng::with_seed(11);
    let mut t = 1_800_000_000u64;
    while out.len() < bytes {
        t += 60;
        writeln!(
            out,
            "{{\"at\":{t},\"host\":\"lic-{:02}\",\"cpu_pct\":{:.1},\"mem_used\":{},\"procs\":{{\"lmgrd\":{{\"cpu_pct\":{:.2},\"rss\":{}}}}},\"feature\":\"feature_{:02}\",\"in_use\":{},\"denied\":{}}}",
            rng.u32(..8),
            rng.f32() * 100.0,
            rng.u64(1 << 30..16 << 30),
            rng.f32() * 5.0,
            rng.u64(10 << 20..90 << 20),
            rng.u32(..40),
            rng.u32(..200),
            rng.u32(..3),
        )
        .unwrap();
    }
    out
}

/// Fills `data`'s compliance spool with `n` pending bundles: copies of one real bundle under
/// distinct names, as after a long time offline.
pub fn fill_spool(data: &callhome::datadir::DataDir, install_id: &str, n: usize) {
    use callhome::bundle::{self, Contents, Stamp};
    use callhome::programs::Program;
    let mut c = Contents::default();
    c.add_json("licenses.json", "license inventory", &serde_json::json!({ "licenses": [] }));
    let stamp = Stamp::of(Program::Telemetry, install_id, 1_800_000_000);
    let seed = bundle::write(&data.tmp_dir(), "upload_compliance_seed.zip", &stamp, c).unwrap();
    let spool = data.spool_dir(Program::Telemetry);
    for i in 0..n {
        std::fs::copy(&seed, spool.join(format!("upload_compliance_20260101T000000Z_{i:08x}.zip"))).unwrap();
    }
    std::fs::remove_file(seed).unwrap();
}
