//! A bundle's `manifest.json`: what the zip holds, each file with its size and SHA-256, and every
//! collector that failed. The agent writes it last into each bundle; the receiver and the preview
//! read it back. Limits both sides apply when reading a bundle are here too.

use serde::{Deserialize, Serialize};

/// The manifest format version.
pub const SCHEMA_VERSION: u32 = 1;
/// The manifest's name inside a bundle.
pub const MANIFEST_NAME: &str = "manifest.json";
/// Largest file read back out of a bundle (preview, verification).
pub const MAX_ENTRY_BYTES: u64 = 256 << 20;
/// Most entries a bundle may hold.
pub const MAX_ENTRIES: usize = 10_000;

/// `manifest.json`: what the bundle holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub agent_version: String,
    pub program: String,
    pub upload_type: String,
    pub install_id: String,
    pub created_at: String,
    pub files: Vec<ManifestFile>,
    pub errors: Vec<CollectorError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub name: String,
    /// What the file holds, in words.
    pub holds: String,
    pub size: u64,
    pub sha256: String,
}

/// A collector that failed; the bundle carries the failure instead of the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectorError {
    pub collector: String,
    pub message: String,
}
