//! Usage-log parsing speed (budget: at least 100 MB/s) and the cost of a second run over an
//! unchanged log (it reads nothing). Run: `cargo bench --bench usage_log`.

use callhome::licenses::debuglog::{Cursor, read_new};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "data.rs"]
mod data;
use data::synthetic_log;

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
