//! Checks a bundle's zip where it is stored, reading it through a file handle: safe entry names,
//! no duplicates, a bounded entry count and a bounded unpacked size, and a manifest that parses.
//!
//! Entries are streamed through a counting sink, never held (but `manifest.json`), so checking
//! a 256 MiB bundle costs a buffer, not the bundle. It does not know where the file came from
//! or what is done with it after.

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};

use callhome_protocol::manifest::{MANIFEST_NAME, MAX_ENTRIES, Manifest};
use sha2::{Digest, Sha256};

/// Most bytes all entries of one bundle may decompress to.
pub const MAX_UNPACKED: u64 = 1 << 30;
/// How much larger than the bundle its unpacked content may be. Telemetry JSON compresses
/// about 10–30×; a zip bomb, thousands of times.
const MAX_RATIO: u64 = 200;
/// Largest `manifest.json` read.
const MAX_MANIFEST: u64 = 16 << 20;

/// Why an entry name is refused, or `None` when it is a plain relative path inside the archive.
pub fn unsafe_name(name: &str) -> Option<&'static str> {
    let bytes = name.as_bytes();
    if name.is_empty() {
        Some("an empty name")
    } else if name.starts_with('/') {
        Some("an absolute path")
    } else if name.contains('\\') {
        Some("a backslash")
    } else if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        Some("a drive letter")
    } else if name.split('/').any(|c| c == "..") {
        Some("a `..` component")
    } else if name.chars().any(char::is_control) {
        Some("control characters")
    } else {
        None
    }
}

/// Checks the zip `r` (a stored bundle); returns its manifest or why it is refused.
pub fn check_zip<R: Read + Seek>(r: R) -> Result<Manifest, String> {
    check(r, Listing::Trusted)
}

/// [`check_zip`], and the archive must hold exactly what its manifest lists — every entry but
/// `manifest.json` listed, with its size and SHA-256, and nothing listed missing. For a sender
/// nothing vouches for (anonymous CEIP), so the manifest's program is not a label on any zip.
pub fn check_zip_as_listed<R: Read + Seek>(r: R) -> Result<Manifest, String> {
    check(r, Listing::Verified)
}

/// Whether the entries are held to the manifest's listing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Listing {
    Trusted,
    Verified,
}

fn check<R: Read + Seek>(mut r: R, listing: Listing) -> Result<Manifest, String> {
    let size = r.seek(SeekFrom::End(0)).map_err(|e| format!("cannot read the bundle: {e}"))?;
    r.seek(SeekFrom::Start(0)).map_err(|e| format!("cannot read the bundle: {e}"))?;
    let mut zip = zip::ZipArchive::new(r).map_err(|e| format!("not a zip archive: {e}"))?;
    if zip.has_duplicate_names() {
        return Err("the archive names an entry twice (duplicate entries)".into());
    }
    if zip.len() > MAX_ENTRIES {
        return Err(format!("{} entries is more than {}", zip.len(), MAX_ENTRIES));
    }
    let limit = size.saturating_mul(MAX_RATIO).saturating_add(1 << 20).min(MAX_UNPACKED);
    let too_big = || format!("the bundle unpacks to more than {limit} bytes (a zip bomb?)");
    // Names and the sizes the archive declares first: a bomb usually says what it is.
    let mut names = HashSet::with_capacity(zip.len());
    let mut declared = 0u64;
    for i in 0..zip.len() {
        let f = zip.by_index_raw(i).map_err(|e| format!("entry {i}: {e}"))?;
        let name = f.name().map_err(|e| format!("entry {i}: {e}"))?;
        if let Some(why) = unsafe_name(&name) {
            return Err(format!("entry {i} ({name:?}) has an unsafe name: {why}"));
        }
        if !names.insert(name.to_string()) {
            return Err(format!("entry {name:?} appears twice"));
        }
        declared = declared.saturating_add(f.size());
    }
    if declared > limit {
        return Err(too_big());
    }
    let mut total = 0u64;
    let mut manifest = None;
    let mut entries = Vec::new();
    for i in 0..zip.len() {
        let f = zip.by_index(i).map_err(|e| format!("entry {i}: {e}"))?;
        if f.enclosed_name().is_none() {
            return Err(format!("entry {i} has an unsafe name"));
        }
        let name = f.name().map_err(|e| format!("entry {i}: {e}"))?.into_owned();
        let mut capped = f.take(limit - total + 1);
        let n = if name == MANIFEST_NAME {
            let mut buf = Vec::new();
            let n = (&mut capped).take(MAX_MANIFEST + 1).read_to_end(&mut buf).map_err(|e| format!("{name}: {e}"))?;
            if n as u64 > MAX_MANIFEST {
                return Err(format!("{name} is larger than {MAX_MANIFEST} bytes"));
            }
            if total + n as u64 <= limit {
                manifest = Some(serde_json::from_slice::<Manifest>(&buf).map_err(|e| format!("{name}: {e}"))?);
            }
            n as u64
        } else if listing == Listing::Verified {
            let mut hasher = HashingSink(Sha256::new());
            let n = std::io::copy(&mut capped, &mut hasher).map_err(|e| format!("{name}: {e}"))?;
            entries.push((name, n, hex::encode(hasher.0.finalize())));
            n
        } else {
            std::io::copy(&mut capped, &mut std::io::sink()).map_err(|e| format!("{name}: {e}"))?
        };
        total += n;
        if total > limit {
            return Err(too_big());
        }
    }
    let manifest = manifest.ok_or_else(|| format!("the bundle has no {MANIFEST_NAME}"))?;
    if listing == Listing::Verified {
        as_listed(&manifest, &entries)?;
    }
    Ok(manifest)
}

/// Each entry (name, size, SHA-256) is the file the manifest lists, and every listed file is there.
fn as_listed(manifest: &Manifest, entries: &[(String, u64, String)]) -> Result<(), String> {
    for (name, size, sha) in entries {
        match manifest.files.iter().find(|f| &f.name == name) {
            None => return Err(format!("entry {name:?} is not listed in {MANIFEST_NAME}")),
            Some(f) if f.size != *size || !f.sha256.eq_ignore_ascii_case(sha) => {
                return Err(format!("entry {name:?} is not the file {MANIFEST_NAME} lists (size or SHA-256 differs)"));
            }
            Some(_) => {}
        }
    }
    if let Some(f) = manifest.files.iter().find(|f| !entries.iter().any(|(n, ..)| n == &f.name)) {
        return Err(format!("{MANIFEST_NAME} lists {:?}, which the archive does not hold", f.name));
    }
    Ok(())
}

/// A writer that only hashes.
struct HashingSink(Sha256);

impl std::io::Write for HashingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_leave_the_archive_are_refused() {
        for (name, why) in [
            ("/abs/name", "an absolute path"),
            ("C:/x", "a drive letter"),
            ("a/../../b", "a `..` component"),
            ("a\\b", "a backslash"),
            ("a\u{1}b", "control characters"),
            ("", "an empty name"),
        ] {
            assert_eq!(unsafe_name(name), Some(why), "{name:?}");
        }
        assert_eq!(unsafe_name("data/usage.json"), None);
        assert_eq!(unsafe_name("a..b/c"), None);
    }
}
