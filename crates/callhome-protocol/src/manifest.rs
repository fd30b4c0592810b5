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
    /// The install's random id; absent (empty) in a CEIP bundle, which carries
    /// [`Manifest::ceip_id`] instead.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub install_id: String,
    /// CEIP's own random id (`ceip-` and 32 hex digits): not derived from the install id and
    /// replaced on a schedule, so CEIP bundles cannot be joined to the install. Only in CEIP
    /// bundles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ceip_id: Option<String>,
    /// Random, in a CEIP bundle only: with only the day and counts in it, two CEIP bundles of
    /// one day could otherwise be the same bytes, and the second would count as already sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// When the bundle was made (RFC 3339; only the day, midnight UTC, in a CEIP bundle).
    pub created_at: String,
    pub files: Vec<ManifestFile>,
    pub errors: Vec<CollectorError>,
}

/// The program of the Customer Experience Improvement Program's bundles.
pub const CEIP_PROGRAM: &str = "ceip";

impl Manifest {
    /// Whether this is an anonymous CEIP bundle: program `ceip`, a CEIP id and no install id.
    /// Only such a bundle may be uploaded without credentials.
    pub fn is_anonymous_ceip(&self) -> bool {
        self.program == CEIP_PROGRAM && self.install_id.is_empty() && self.ceip_id.as_deref().is_some_and(is_ceip_id)
    }
}

/// Whether `s` has the shape of a CEIP id: `ceip-` and 32 lowercase hex digits.
pub fn is_ceip_id(s: &str) -> bool {
    s.strip_prefix("ceip-").is_some_and(|h| h.len() == 32 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
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
