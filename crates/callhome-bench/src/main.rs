//! What scripts/bench needs from the library beside the binaries:
//!
//!   bench_tool ndjson BYTES OUT       telemetry NDJSON (seeded)
//!   bench_tool debuglog BYTES OUT     a vendor-daemon debug log (seeded)
//!   bench_tool bundle IN OUT_DIR      packs IN into a compliance bundle exactly as the agent
//!                                     does (streamed, SHA-256 in the manifest); prints its path
//!   bench_tool spool DATA_DIR N       fills DATA_DIR's compliance spool with N pending bundles

use std::path::Path;
use std::sync::Arc;

use callhome::bundle::{self, Contents, Stamp};
use callhome::programs::Program;

#[path = "../../../benches/data.rs"]
mod data;

fn size(s: &str) -> usize {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: usize = n.parse().expect("a size such as 100M");
    n * match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => panic!("size units: K, M, G"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["ndjson", n, out] => std::fs::write(out, data::telemetry_ndjson(size(n))).unwrap(),
        ["debuglog", n, out] => std::fs::write(out, data::synthetic_log(size(n))).unwrap(),
        ["bundle", input, out_dir] => {
            let mut c = Contents::default();
            c.add_path("telemetry.ndjson", "telemetry samples", *input);
            let stamp = Stamp::of(Program::Telemetry, "bench", 1_800_000_000);
            let name = bundle::bundle_name(Program::Telemetry, 1_800_000_000);
            let p = bundle::write(Path::new(out_dir), &name, &stamp, c).unwrap();
            println!("{}", p.display());
        }
        ["spool", dir, n] => {
            let n: usize = n.parse().unwrap();
            let data_dir = callhome::datadir::DataDir::at(*dir);
            let mut cfg = callhome::config::Config::embedded();
            cfg.upload.endpoint = "https://127.0.0.1:9/v1/bundles".into();
            let agent =
                callhome::agent::Agent::open(cfg, data_dir.clone(), Arc::new(callhome::clock::SystemClock)).unwrap();
            data::fill_spool(&data_dir, &agent.install().install_id, n);
        }
        _ => {
            eprintln!("usage: bench_tool ndjson|debuglog BYTES OUT | bundle IN OUT_DIR | spool DATA_DIR N");
            std::process::exit(2);
        }
    }
}
