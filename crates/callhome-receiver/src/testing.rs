//! What the unit tests of the store, reconcile and record share: a local store with a SQLite
//! index in it, an agent's bundle, and a receipt kept as a crashed attempt leaves it.

use callhome_protocol::receipt::Receipt;

use crate::index::{Index, IndexSpec};
use crate::store::{BundleStore, receipt_key};

/// A bundle as an agent makes one for `install`, distinct per `serial`.
pub(crate) fn bundle(install: &str, serial: u64) -> Vec<u8> {
    crate::simulate::compliance_bundle(install, 1_764_460_800, serial, "0.1.0", "4.2.0")
}

/// A local store (opened outside any runtime: it drives its client itself), a SQLite index in
/// it, and a runtime for the async calls.
pub(crate) fn local_store(dir: &std::path::Path) -> (BundleStore, Index, tokio::runtime::Runtime) {
    let store = BundleStore::open_local(dir, ed25519_dalek::SigningKey::from_bytes(&[7u8; 32])).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let index = rt.block_on(Index::open(&IndexSpec::Sqlite(dir.join("index.sqlite")))).unwrap();
    (store, index, rt)
}

/// Writes `r` to the store in `dir` as the receipt of its bundle, as an attempt that crashed
/// after its receipt left it.
pub(crate) fn keep_receipt_file(dir: &std::path::Path, r: &Receipt) {
    std::fs::create_dir_all(dir.join("receipts")).unwrap();
    std::fs::write(dir.join(receipt_key(&r.bundle_sha256)), serde_json::to_vec(r).unwrap()).unwrap();
}
