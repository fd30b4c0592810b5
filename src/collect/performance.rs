//! The performance collector: one sample of the machine and of the product's processes.
//!
//! CPU usage needs two readings apart, so a sample takes about a quarter of a second; call it
//! from a blocking context.

use serde_json::{Value, json};
use sysinfo::{ProcessesToUpdate, System};

pub fn sample(process_names: &[String]) -> Result<Value, String> {
    let mut sys = System::new().map_err(|e| format!("cannot read system information: {e}"))?;
    sys.refresh_cpu_usage();
    sys.refresh_processes(ProcessesToUpdate::All, true);
    std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL.max(std::time::Duration::from_millis(200)));
    sys.refresh_cpu_usage();
    sys.refresh_processes(ProcessesToUpdate::All, true);
    sys.refresh_memory();
    let load = System::load_average().ok();
    let processes: Vec<Value> = process_names
        .iter()
        .map(|name| {
            let matching: Vec<_> =
                sys.processes().values().filter(|p| p.name().to_string_lossy() == name.as_str()).collect();
            json!({
                "name": name,
                "running": matching.len(),
                "cpu_percent": matching.iter().map(|p| p.cpu_usage() as f64).sum::<f64>(),
                "memory_bytes": matching.iter().map(|p| p.memory()).sum::<u64>(),
            })
        })
        .collect();
    Ok(json!({
        "cpu_percent": sys.global_cpu_usage(),
        "memory_used_bytes": sys.used_memory(),
        "memory_total_bytes": sys.total_memory(),
        "load_average": load.map(|l| json!([l.one, l.five, l.fifteen])),
        "processes": processes,
    }))
}
