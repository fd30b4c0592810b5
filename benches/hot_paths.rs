//! The agent's hot paths (DESIGN §7): bundling, license-file parsing, status serialisation and
//! spool listing at 10,000 pending bundles. Run: `cargo bench --bench hot_paths`.
//! (Usage-log parsing has its own bench, `usage_log`.) scripts/bench sets these beside their
//! peers (`zip -6`, nginx, grep, curl) on the same machine in the same run.

use std::sync::Arc;

use callhome::agent::Agent;
use callhome::api::dto::StatusDoc;
use callhome::bundle::{self, Contents, Stamp};
use callhome::clock::SystemClock;
use callhome::config::Config;
use callhome::datadir::DataDir;
use callhome::licenses::licfile;
use callhome::programs::Program;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "data.rs"]
mod data;
use data::telemetry_ndjson;

fn bundling(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("telemetry.ndjson");
    let data = telemetry_ndjson(16 << 20);
    std::fs::write(&src, &data).unwrap();
    let mut g = c.benchmark_group("bundle");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("16MiB_ndjson", |b| {
        b.iter(|| {
            let mut contents = Contents::default();
            contents.add_path("telemetry.ndjson", "samples", &src);
            let stamp = Stamp::of(Program::Telemetry, "bench", 1_800_000_000);
            let p = bundle::write(dir.path(), "upload_compliance_bench.zip", &stamp, contents).unwrap();
            std::fs::remove_file(p).unwrap();
        })
    });
    g.finish();
}

fn license_files(c: &mut Criterion) {
    let one = [
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/licenses/acme.lic")).unwrap(),
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/licenses/globex.lic")).unwrap(),
    ]
    .concat();
    // A large site's license file: the fixtures many times over (about 1 MiB).
    let text: Vec<u8> = one.iter().copied().cycle().take(1 << 20).collect();
    let mut g = c.benchmark_group("license_file");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("parse_1MiB", |b| b.iter(|| licfile::parse(&text)));
    g.finish();
}

/// An agent on a fresh data directory with `n` pending compliance bundles.
fn agent_with_pending(n: usize) -> (tempfile::TempDir, Agent) {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::at(dir.path().join("data"));
    let mut cfg = Config::embedded();
    cfg.upload.endpoint = "https://127.0.0.1:9/v1/bundles".into();
    let agent = Agent::open(cfg, data.clone(), Arc::new(SystemClock)).unwrap();
    data::fill_spool(&data, &agent.install().install_id, n);
    (dir, agent)
}

fn spool_and_status(c: &mut Criterion) {
    let (_dir, agent) = agent_with_pending(10_000);
    let mut g = c.benchmark_group("pending_10000");
    g.sample_size(10);
    g.bench_function("spool_listing", |b| b.iter(|| assert_eq!(agent.all_pending().unwrap().len(), 10_000)));
    g.bench_function("status", |b| b.iter(|| agent.status().unwrap()));
    g.finish();

    let status = StatusDoc::from(&agent.status().unwrap());
    let mut g = c.benchmark_group("status");
    g.bench_function("serialise", |b| b.iter(|| serde_json::to_vec(&status).unwrap()));
    g.finish();
}

criterion_group!(benches, bundling, license_files, spool_and_status);
criterion_main!(benches);
