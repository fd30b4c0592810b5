//! Collectors: each turns one part of the machine or product into JSON for a bundle.
//!
//! A collector that fails does not abort the bundle: its error becomes an entry in the manifest.
//! Which collectors feed which program is decided in [`gather`]; collectors know nothing of
//! bundles on disk, the spool or uploads.

pub mod command;
pub mod deployment;
pub mod errors;
pub mod licenses;
pub mod performance;
pub mod system;

use serde_json::{Value, json};

use crate::bundle::Contents;
use crate::clock::{Timestamp, rfc3339};
use crate::config::Config;
use crate::programs::{Consent, Program};

/// What the collectors may look at.
pub struct Context<'a> {
    pub config: &'a Config,
    pub consent: Consent,
    pub install_id: &'a str,
    pub install_created_at: Timestamp,
    pub now: Timestamp,
}

/// Samples taken between bundles (performance for Call Home, usage counts for CEIP).
pub type Samples = Vec<(Timestamp, String)>;

/// What the system collector's file holds.
const SYSTEM: &str = "the machine: OS, kernel, host name, hashed hardware id, CPU, memory, disks, uptime";
const DEPLOYMENT: &str = "the agent and product versions, configuration and program states, install id";

/// Gathers the collectors' files of one program's bundle. `samples` are the program's pending
/// samples. (License files are added by the agent, which owns the license state.)
pub async fn gather(program: Program, ctx: &Context<'_>, samples: &Samples) -> Contents {
    let mut c = Contents::default();
    match program {
        Program::Telemetry => {
            add(&mut c, "system.json", SYSTEM, "system", system::collect(true));
            c.add_json("deployment.json", DEPLOYMENT, &deployment::collect(ctx));
        }
        Program::CallHome => {
            add(&mut c, "system.json", SYSTEM, "system", system::collect(true));
            c.add_json("deployment.json", DEPLOYMENT, &deployment::collect(ctx));
            if !samples.is_empty() {
                c.add_json(
                    "performance.json",
                    "hourly samples of the machine's CPU, memory and load, and of the product's processes",
                    &samples_json(samples),
                );
            }
        }
        Program::Ceip => {
            // Counts only: nothing that names the machine, its users or its network.
            add(
                &mut c,
                "environment.json",
                "OS, CPU and memory, without host name or hardware id",
                "system",
                system::collect(false),
            );
            if !samples.is_empty() {
                c.add_json(
                    "samples.json",
                    "the hourly samples, coarsened: CPU and memory in whole percent, no times, processes by their place in product.processes",
                    &ceip_samples(samples, &ctx.config.product.processes),
                );
            }
        }
        Program::Events => {}
    }
    for cmd in ctx.config.collect.commands.iter().filter(|c| c.program == program) {
        let holds = format!("the JSON output of the vendor command {:?}", cmd.name);
        match command::run(cmd).await {
            Ok(v) => c.add_json(format!("commands/{}.json", cmd.name), holds, &v),
            Err(e) => c.add_error(format!("command:{}", cmd.name), e.to_string()),
        }
    }
    c
}

fn add(c: &mut Contents, file: &str, holds: &str, collector: &str, r: Result<Value, String>) {
    match r {
        Ok(v) => c.add_json(file, holds, &v),
        Err(e) => c.add_error(collector, e),
    }
}

/// CEIP's samples: nothing that would match the Call Home samples of the same hours (their times,
/// exact byte counts, fractional percentages, process names); CPU and memory in whole percent,
/// each process by its place in `product.processes`.
fn ceip_samples(samples: &Samples, processes: &[String]) -> Value {
    let pct = |v: &Value| v.as_f64().map(|f| f.round() as i64);
    let list: Vec<Value> = samples
        .iter()
        .filter_map(|(_, data)| serde_json::from_str::<Value>(data).ok())
        .map(|s| {
            let total = s["memory_total_bytes"].as_f64().filter(|t| *t > 0.0);
            let used = s["memory_used_bytes"].as_f64();
            let procs: Vec<Value> = s["processes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let at = processes.iter().position(|n| p["name"].as_str() == Some(n.as_str()));
                    json!({ "process": at, "running": p["running"], "cpu_percent": pct(&p["cpu_percent"]) })
                })
                .collect();
            json!({
                "cpu_percent": pct(&s["cpu_percent"]),
                "memory_used_percent": used.zip(total).map(|(u, t)| (u * 100.0 / t).round() as i64),
                "processes": procs,
            })
        })
        .collect();
    json!({ "samples": list })
}

fn samples_json(samples: &Samples) -> Value {
    let list: Vec<Value> = samples
        .iter()
        .map(|(at, data)| {
            let v: Value = serde_json::from_str(data).unwrap_or_else(|e| json!({ "unreadable_sample": e.to_string() }));
            json!({ "at": rfc3339(*at), "sample": v })
        })
        .collect();
    json!({ "samples": list })
}
