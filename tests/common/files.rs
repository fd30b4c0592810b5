//! What tests read back from disk: the files under a folder (to sweep a data directory for a
//! secret) and the entries of a zip (a bundle, an export, a support bundle). Reading only: the
//! zips a test makes on purpose are made where they are used.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// File names in `dir` ending with `suffix`, sorted (none when `dir` is missing).
pub fn list(dir: &Path, suffix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(suffix))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The bundles a receiver's local store holds, by file name (`<sha256>.zip`), from
/// `STORE/bundles/YYYY/MM/DD/<install>/` and (anonymous CEIP bundles) `STORE/ceip/YYYY/MM/DD/`.
pub fn stored_bundles(store: &Path) -> Vec<String> {
    let mut v: Vec<String> = ["bundles", "ceip"]
        .iter()
        .map(|d| store.join(d))
        .filter(|d| d.is_dir())
        .flat_map(|d| files_under(&d))
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".zip"))
        .collect();
    v.sort();
    v
}

/// Every file under `dir`, at any depth.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())).flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                found.push(p);
            }
        }
    }
    found
}

/// Every file under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes())))
        .collect()
}

/// A zip's entries, read whole, in archive order.
pub struct ZipEntries {
    path: PathBuf,
    pub entries: Vec<(String, Vec<u8>)>,
}

impl ZipEntries {
    pub fn read(path: &Path) -> ZipEntries {
        let mut r = callhome::bundle::Reader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let names = r.names().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let entries = names
            .into_iter()
            .map(|n| {
                let bytes = r.read(&n).unwrap_or_else(|e| panic!("{} in {}: {e}", n, path.display()));
                (n, bytes)
            })
            .collect();
        ZipEntries { path: path.to_path_buf(), entries }
    }

    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The bytes of the entry `name`.
    pub fn get(&self, name: &str) -> &[u8] {
        let found = self.entries.iter().find(|(n, _)| n == name);
        &found.unwrap_or_else(|| panic!("no {name} in {}: {:?}", self.path.display(), self.names())).1
    }

    /// The entry `name`, parsed as JSON.
    pub fn json(&self, name: &str) -> Value {
        serde_json::from_slice(self.get(name)).unwrap_or_else(|e| panic!("{name} in {}: {e}", self.path.display()))
    }

    /// The zip file itself, then each entry, as text (lossy), each with its name: what a sweep
    /// for a secret reads.
    pub fn texts(&self) -> Vec<(String, String)> {
        let whole = std::fs::read(&self.path).unwrap();
        std::iter::once(("(the zip itself)".to_string(), String::from_utf8_lossy(&whole).into_owned()))
            .chain(self.entries.iter().map(|(n, b)| (n.clone(), String::from_utf8_lossy(b).into_owned())))
            .collect()
    }
}
