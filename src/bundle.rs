//! Bundles: one immutable zip per collection, `manifest.json` plus the collectors' data files.
//!
//! A bundle is built under `spool/.tmp`, fsynced, and only then handed to the spool, which renames
//! it into place: a partial bundle never has a name the uploader would pick up. The manifest lists
//! every file with its size and SHA-256 and every collector error, so what a bundle holds, and
//! what failed to be collected, can be read without the vendor's tools. Reading is defensive:
//! names must stay inside the archive and decompressed sizes are capped. No network here.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use crate::clock::{Timestamp, file_stamp, rfc3339};
use crate::fsutil::sha256_hex;
use crate::programs::Program;

pub use callhome_protocol::manifest::{
    CollectorError, MANIFEST_NAME, MAX_ENTRIES, MAX_ENTRY_BYTES, Manifest, ManifestFile, SCHEMA_VERSION,
};

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a readable zip bundle ({message})")]
    Corrupt { path: PathBuf, message: String },
    #[error("{path}: the bundle has no file named {name:?}; `callhome preview {path}` lists its files")]
    NoSuchFile { path: PathBuf, name: String },
}

/// A file's data: in memory, or a file on disk streamed into the bundle (memory stays flat
/// whatever its size).
#[derive(Debug)]
enum Body {
    Bytes(Vec<u8>),
    Path(PathBuf),
}

/// The files of one bundle, gathered before it is written.
#[derive(Debug, Default)]
pub struct Contents {
    /// (name, what it holds, data)
    files: Vec<(String, String, Body)>,
    errors: Vec<CollectorError>,
}

impl Contents {
    pub fn add_file(&mut self, name: impl Into<String>, holds: impl Into<String>, bytes: Vec<u8>) {
        self.files.push((name.into(), holds.into(), Body::Bytes(bytes)));
    }
    /// A file on disk, read while the bundle is written (its size and SHA-256 as they were read).
    pub fn add_path(&mut self, name: impl Into<String>, holds: impl Into<String>, path: impl Into<PathBuf>) {
        self.files.push((name.into(), holds.into(), Body::Path(path.into())));
    }
    pub fn add_json(&mut self, name: impl Into<String>, holds: impl Into<String>, value: &serde_json::Value) {
        let bytes = serde_json::to_vec_pretty(value).expect("JSON values serialize");
        self.add_file(name, holds, bytes);
    }
    pub fn add_error(&mut self, collector: impl Into<String>, message: impl Into<String>) {
        self.errors.push(CollectorError { collector: collector.into(), message: message.into() });
    }
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.errors.is_empty()
    }
    pub fn errors(&self) -> &[CollectorError] {
        &self.errors
    }
}

/// Identity stamped into every manifest.
#[derive(Debug, Clone)]
pub struct Stamp<'a> {
    /// The program (`telemetry`…), or `support` for a support bundle.
    pub program: &'a str,
    /// The upload type (`compliance`, `usage`, `events`, `support`).
    pub upload_type: &'a str,
    /// The install id; empty in a CEIP bundle.
    pub install_id: &'a str,
    /// CEIP's own id, in a CEIP bundle only (see [`Stamp::ceip`]).
    pub ceip_id: Option<&'a str>,
    pub now: Timestamp,
}

impl<'a> Stamp<'a> {
    pub fn of(p: Program, install_id: &'a str, now: Timestamp) -> Stamp<'a> {
        Stamp { program: p.name(), upload_type: p.upload_kind(), install_id, ceip_id: None, now }
    }

    /// A CEIP bundle's stamp: CEIP's own id instead of the install id, and only the day of `now`.
    pub fn ceip(ceip_id: &'a str, now: Timestamp) -> Stamp<'a> {
        let p = Program::Ceip;
        let day = now - now.rem_euclid(86_400);
        Stamp { program: p.name(), upload_type: p.upload_kind(), install_id: "", ceip_id: Some(ceip_id), now: day }
    }
}

/// The file name of a new bundle: `upload_<type>_<UTC stamp>_<random>.zip`.
pub fn bundle_name(p: Program, now: Timestamp) -> String {
    format!("upload_{}_{}_{:08x}.zip", p.upload_kind(), file_stamp(now), fastrand::u32(..))
}

/// Whether a file name is one of ours for this program.
pub fn is_bundle_name(p: Program, name: &str) -> bool {
    let prefix = format!("upload_{}_", p.upload_kind());
    name.starts_with(&prefix)
        && name.ends_with(".zip")
        && name.len() > prefix.len() + 4
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// Writes the bundle to `tmp_dir/<name>` and fsyncs it; returns its path.
pub fn write(tmp_dir: &Path, name: &str, stamp: &Stamp<'_>, contents: Contents) -> Result<PathBuf, BundleError> {
    let path = tmp_dir.join(name);
    let written = write_at(&path, stamp, contents);
    if written.is_err() {
        // A partial bundle (disk full, I/O error) never stays behind looking whole.
        let _ = fs::remove_file(&path);
    }
    written.map(|()| path)
}

fn write_at(path: &Path, stamp: &Stamp<'_>, contents: Contents) -> Result<(), BundleError> {
    let path = path.to_path_buf();
    let io_err = |source| BundleError::Io { path: path.clone(), source };
    let zip_err = |e: zip::result::ZipError| BundleError::Io { path: path.clone(), source: io::Error::other(e) };
    let file = File::create(&path).map_err(io_err)?;
    let mut zip = ZipWriter::new(BufWriter::new(file));
    let opts = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(6))
        .unix_permissions(0o644);
    let mut files = Vec::with_capacity(contents.files.len());
    for (name, holds, body) in &contents.files {
        zip.start_file(name.as_str(), opts).map_err(zip_err)?;
        let (size, sha256) = match body {
            Body::Bytes(bytes) => {
                zip.write_all(bytes).map_err(io_err)?;
                (bytes.len() as u64, sha256_hex(bytes))
            }
            Body::Path(src) => {
                let src_err = |source| BundleError::Io { path: src.clone(), source };
                let mut f = File::open(src).map_err(src_err)?;
                let mut hasher = Sha256::new();
                let mut buf = vec![0u8; 256 << 10];
                let mut size = 0u64;
                loop {
                    let n = f.read(&mut buf).map_err(src_err)?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    zip.write_all(&buf[..n]).map_err(io_err)?;
                    size += n as u64;
                }
                (size, hex::encode(hasher.finalize()))
            }
        };
        files.push(ManifestFile { name: name.clone(), holds: holds.clone(), size, sha256 });
    }
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        agent_version: env!("CARGO_PKG_VERSION").into(),
        program: stamp.program.into(),
        upload_type: stamp.upload_type.into(),
        install_id: stamp.install_id.into(),
        ceip_id: stamp.ceip_id.map(str::to_string),
        nonce: match stamp.ceip_id {
            Some(_) => {
                let mut n = [0u8; 16];
                getrandom::fill(&mut n).map_err(|e| io_err(io::Error::other(format!("no randomness: {e}"))))?;
                Some(hex::encode(n))
            }
            None => None,
        },
        created_at: rfc3339(stamp.now),
        files,
        errors: contents.errors,
    };
    zip.start_file("manifest.json", opts).map_err(zip_err)?;
    zip.write_all(&serde_json::to_vec_pretty(&manifest).expect("manifest serializes")).map_err(io_err)?;
    let buf = zip.finish().map_err(zip_err)?;
    let file = buf.into_inner().map_err(|e| io_err(e.into_error()))?;
    file.sync_all().map_err(io_err)?;
    Ok(())
}

/// A cheap structural check (no decompression): the zip's central directory reads and it lists
/// a `manifest.json`. Used at start-up, where thousands of bundles must be checked quickly.
pub fn looks_whole(path: &Path) -> Result<(), String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let zip = ZipArchive::new(file).map_err(|e| format!("not a readable zip ({e})"))?;
    if zip.index_for_name("manifest.json").is_none() {
        return Err("the zip has no manifest.json".into());
    }
    Ok(())
}

/// An opened bundle, for preview and verification.
pub struct Reader {
    path: PathBuf,
    zip: ZipArchive<File>,
}

impl Reader {
    pub fn open(path: &Path) -> Result<Reader, BundleError> {
        let file = File::open(path).map_err(|source| BundleError::Io { path: path.to_path_buf(), source })?;
        let zip = ZipArchive::new(file).map_err(|e| corrupt(path, e.to_string()))?;
        if zip.len() > MAX_ENTRIES {
            return Err(corrupt(path, format!("{} entries, more than {MAX_ENTRIES}", zip.len())));
        }
        Ok(Reader { path: path.to_path_buf(), zip })
    }

    /// The names of the entries, in archive order.
    pub fn names(&mut self) -> Result<Vec<String>, BundleError> {
        let mut out = Vec::new();
        for i in 0..self.zip.len() {
            let f = self.zip.by_index(i).map_err(|e| corrupt(&self.path, e.to_string()))?;
            let name =
                f.enclosed_name().ok_or_else(|| corrupt(&self.path, "an entry name escapes the archive".into()))?;
            out.push(name.to_string_lossy().into_owned());
        }
        Ok(out)
    }

    /// One entry's bytes, capped at [`MAX_ENTRY_BYTES`].
    pub fn read(&mut self, name: &str) -> Result<Vec<u8>, BundleError> {
        let f = match self.zip.by_name(name) {
            Ok(f) => f,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(BundleError::NoSuchFile { path: self.path.clone(), name: name.into() });
            }
            Err(e) => return Err(corrupt(&self.path, e.to_string())),
        };
        if f.enclosed_name().is_none() {
            return Err(corrupt(&self.path, "an entry name escapes the archive".into()));
        }
        let mut out = Vec::new();
        f.take(MAX_ENTRY_BYTES + 1).read_to_end(&mut out).map_err(|e| corrupt(&self.path, e.to_string()))?;
        if out.len() as u64 > MAX_ENTRY_BYTES {
            return Err(corrupt(&self.path, format!("{name} decompresses past {MAX_ENTRY_BYTES} bytes")));
        }
        Ok(out)
    }

    pub fn manifest(&mut self) -> Result<Manifest, BundleError> {
        let bytes = self.read("manifest.json")?;
        serde_json::from_slice(&bytes).map_err(|e| corrupt(&self.path, format!("manifest.json: {e}")))
    }

    /// Reads every file the manifest lists and checks its size and SHA-256.
    pub fn verify(&mut self) -> Result<Manifest, BundleError> {
        let m = self.manifest()?;
        for f in &m.files {
            let bytes = self.read(&f.name)?;
            if bytes.len() as u64 != f.size || sha256_hex(&bytes) != f.sha256 {
                return Err(corrupt(&self.path, format!("{} does not match its manifest entry", f.name)));
            }
        }
        Ok(m)
    }
}

fn corrupt(path: &Path, message: String) -> BundleError {
    BundleError::Corrupt { path: path.to_path_buf(), message }
}

/// Removes leftovers of interrupted bundle writes.
pub fn clean_tmp(tmp_dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for e in fs::read_dir(tmp_dir)? {
        let e = e?;
        if e.file_type()?.is_file() {
            fs::remove_file(e.path())?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_bundle_reads_back_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Contents::default();
        c.add_json("system.json", "the machine", &serde_json::json!({"os": "linux"}));
        c.add_error("command:status", "exit status 2");
        let name = bundle_name(Program::Telemetry, 1_679_283_497);
        assert!(name.starts_with("upload_compliance_20230320T033817Z_"), "{name}");
        assert!(is_bundle_name(Program::Telemetry, &name));
        let stamp = Stamp::of(Program::Telemetry, "id-1", 1_679_283_497);
        let path = write(dir.path(), &name, &stamp, c).unwrap();
        let mut r = Reader::open(&path).unwrap();
        let m = r.verify().unwrap();
        assert_eq!(m.program, "telemetry");
        assert_eq!(m.files[0].name, "system.json");
        assert_eq!(m.errors[0].collector, "command:status");
        assert_eq!(r.names().unwrap(), vec!["system.json", "manifest.json"]);
        assert!(matches!(r.read("nope"), Err(BundleError::NoSuchFile { .. })));
    }

    #[test]
    fn a_file_on_disk_is_streamed_in_with_its_size_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("telemetry.ndjson");
        let data: Vec<u8> = (0..600_000u32).flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes()).collect();
        fs::write(&src, &data).unwrap();
        let mut c = Contents::default();
        c.add_path("telemetry.ndjson", "samples", &src);
        let stamp = Stamp::of(Program::Telemetry, "id-1", 1_679_283_497);
        let path = write(dir.path(), "upload_compliance_x.zip", &stamp, c).unwrap();
        let mut r = Reader::open(&path).unwrap();
        let m = r.verify().unwrap();
        assert_eq!((m.files[0].size, m.files[0].sha256.as_str()), (data.len() as u64, sha256_hex(&data).as_str()));
        assert_eq!(r.read("telemetry.ndjson").unwrap(), data);
        // A source that cannot be read fails the bundle, and leaves no file behind.
        let mut c = Contents::default();
        c.add_path("gone.ndjson", "samples", dir.path().join("gone"));
        assert!(write(dir.path(), "upload_compliance_y.zip", &stamp, c).is_err());
        assert!(!dir.path().join("upload_compliance_y.zip").exists());
    }

    #[test]
    fn garbage_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("upload_compliance_x.zip");
        fs::write(&p, b"not a zip").unwrap();
        assert!(matches!(Reader::open(&p), Err(BundleError::Corrupt { .. })));
    }
}
