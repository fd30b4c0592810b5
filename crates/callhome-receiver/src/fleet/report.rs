//! What one stored bundle tells the fleet view, read back from the stored copy after it was
//! checked: the agent version (manifest), the product version (`deployment.json`), the license
//! usage summary (`usage.json`, per feature the most in use against what is installed), and
//! whether it is license telemetry (the only program that moves the compliance clock).
//!
//! Each file is read through a size cap; a file that is absent or unreadable leaves its field
//! empty (the bundle was already accepted: the view just learns less from it).

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use callhome_protocol::manifest::{MANIFEST_NAME, Manifest};

/// The program whose uploads the compliance clock counts.
pub const TELEMETRY: &str = "telemetry";
/// Largest `manifest.json` or `deployment.json` read.
const MAX_SMALL: u64 = 1 << 20;
/// Largest `usage.json` read.
const MAX_USAGE: u64 = 64 << 20;
/// Most features kept in a summary.
const MAX_FEATURES: usize = 500;

/// What the fleet view learns from one bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub install_id: Option<String>,
    /// The manifest's program (`telemetry`, `call_home`, …).
    pub program: Option<String>,
    pub agent_version: Option<String>,
    pub product_version: Option<String>,
    /// The license usage summary as JSON ([`UsageSummary`]).
    pub usage: Option<String>,
}

impl Report {
    /// Whether the bundle is license telemetry: its receipt is a successful upload for the
    /// compliance clock.
    pub fn counts_for_compliance(&self) -> bool {
        self.program.as_deref() == Some(TELEMETRY)
    }
}

/// The last license usage summary of an install: the window and, per feature, the most in use
/// at once against what is installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageSummary {
    pub window_start: Option<String>,
    pub window_end: Option<String>,
    pub features: Vec<FeatureUsage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureUsage {
    pub feature: String,
    pub count_used_max: Option<u64>,
    pub count_installed: Option<u64>,
}

#[derive(Deserialize)]
struct Deployment {
    #[serde(default)]
    product: Option<Versioned>,
}

#[derive(Deserialize)]
struct Versioned {
    #[serde(default)]
    version: Option<String>,
}

/// Reads the report of the stored, checked bundle at `path`.
pub fn read(path: &Path) -> Result<Report, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    read_zip(std::io::BufReader::new(file)).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads the report of a checked bundle from `r`.
pub fn read_zip<R: Read + std::io::Seek>(r: R) -> Result<Report, String> {
    let mut zip = zip::ZipArchive::new(r).map_err(|e| e.to_string())?;
    let mut report = Report::default();
    if let Some(bytes) = entry(&mut zip, MANIFEST_NAME, MAX_SMALL)
        && let Ok(m) = serde_json::from_slice::<Manifest>(&bytes)
    {
        // An anonymous CEIP bundle names no install: it tells the fleet view nothing.
        if m.is_anonymous_ceip() {
            report.program = Some(m.program);
            return Ok(report);
        }
        report.install_id = Some(m.install_id).filter(|i| !i.is_empty());
        report.program = Some(m.program);
        report.agent_version = Some(m.agent_version).filter(|v| !v.is_empty());
    }
    if let Some(bytes) = entry(&mut zip, "deployment.json", MAX_SMALL)
        && let Ok(d) = serde_json::from_slice::<Deployment>(&bytes)
    {
        report.product_version = d.product.and_then(|p| p.version).filter(|v| !v.is_empty());
    }
    if let Some(bytes) = entry(&mut zip, "usage.json", MAX_USAGE)
        && let Ok(mut u) = serde_json::from_slice::<UsageSummary>(&bytes)
    {
        u.features.truncate(MAX_FEATURES);
        report.usage = serde_json::to_string(&u).ok();
    }
    Ok(report)
}

/// The entry `name`, when present and no larger than `max`.
fn entry<R: Read + std::io::Seek>(zip: &mut zip::ZipArchive<R>, name: &str, max: u64) -> Option<Vec<u8>> {
    let f = zip.by_name(name).ok()?;
    let mut buf = Vec::new();
    f.take(max + 1).read_to_end(&mut buf).ok()?;
    (buf.len() as u64 <= max).then_some(buf)
}
