//! Usage-log parsing speed (budget: at least 100 MB/s) and the cost of a second run over an
//! unchanged log (it reads nothing). Run: `cargo bench --bench usage_log`.

use std::io::Write;

use callhome::licenses::debuglog::{Cursor, read_new};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A realistic debug log: a start line, TIMESTAMP lines, and mostly OUT/IN with some denials,
/// over 40 features, 300 users and several days.
fn synthetic_log(bytes: usize) -> Vec<u8> {
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

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("debug.log");
    let log = synthetic_log(64 << 20);
    std::fs::write(&path, &log).unwrap();

    let mut g = c.benchmark_group("usage_log");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(log.len() as u64));
    g.bench_function("first_read_64MiB", |b| {
        b.iter(|| {
            let p = read_new(&path, Cursor::default()).unwrap();
            assert_eq!(p.stats.bytes, log.len() as u64);
            p.hours.len()
        })
    });
    let done = read_new(&path, Cursor::default()).unwrap().cursor;
    g.throughput(Throughput::Bytes(0));
    g.bench_function("second_read_unchanged", |b| {
        b.iter(|| {
            let p = read_new(&path, done.clone()).unwrap();
            assert_eq!(p.stats.bytes, 0, "an unchanged log reads nothing");
            p.stats.lines
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
