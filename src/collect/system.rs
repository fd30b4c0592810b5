//! The system collector: OS, kernel, host, hardware id, CPU, memory, disks, uptime.
//!
//! With `identifiable = false` (CEIP) the host name, hardware id and disks are left out, and so is
//! every value that could join the bundle to an identifiable one of the same machine: the CPU
//! model, the uptime, the free memory; the total memory is rounded to whole GiB.

use serde_json::{Value, json};
use sysinfo::{Disks, System};

use crate::fsutil::sha256_hex;

pub fn collect(identifiable: bool) -> Result<Value, String> {
    let mut sys = System::new().map_err(|e| format!("cannot read system information: {e}"))?;
    sys.refresh_memory();
    sys.refresh_cpu_all();
    let cpus = sys.cpus();
    let mut v = json!({
        "os": System::name().ok(),
        "os_version": System::os_version().ok(),
        "os_long_version": System::long_os_version().ok(),
        "kernel": System::kernel_version().ok(),
        "arch": System::cpu_arch(),
        "cpu": {
            "brand": cpus.first().map(|c| c.brand().trim().to_string()),
            "logical": cpus.len(),
            "physical": System::physical_core_count().ok(),
        },
        "memory": { "total_bytes": sys.total_memory(), "available_bytes": sys.available_memory() },
        "uptime_s": System::uptime().ok(),
    });
    if !identifiable {
        let gib = (sys.total_memory() as f64 / (1u64 << 30) as f64).round() as u64;
        v["cpu"].as_object_mut().expect("an object").remove("brand");
        v["memory"] = json!({ "total_gib": gib });
        v.as_object_mut().expect("an object").remove("uptime_s");
    }
    if identifiable {
        v["hostname"] = json!(System::host_name().ok());
        v["hardware_id"] = json!(hardware_id());
        v["boot_time"] = json!(System::boot_time().ok().map(|t| crate::clock::rfc3339(t as i64)));
        let disks = Disks::new_with_refreshed_list().map_err(|e| format!("cannot list disks: {e}"))?;
        v["disks"] = disks
            .iter()
            .map(|d| {
                json!({
                    "mount_point": d.mount_point().display().to_string(),
                    "file_system": d.file_system().to_string_lossy(),
                    "total_bytes": d.total_space(),
                    "available_bytes": d.available_space(),
                })
            })
            .collect();
    }
    Ok(v)
}

/// A stable machine identifier: the SHA-256 of the OS machine id (the raw id never leaves).
pub fn hardware_id() -> Option<String> {
    ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|id| id.trim().to_string())
        .filter(|id| !id.is_empty())
        .map(|id| sha256_hex(format!("callhome-hardware-id\n{id}").as_bytes()))
}
