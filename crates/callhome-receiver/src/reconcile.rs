//! Reconciling the store with the index after a crash: every stored bundle gets its index row,
//! and a bundle stored twice keeps one copy.
//!
//! The order of an upload ([`crate::store::BundleStore::accept_file`], then
//! [`crate::record::bundle`]) is: receipt into `receipts/` (create-only), bundle under the key
//! that receipt fixes, index row; the receipt is answered only once the row is committed. A
//! replica killed, or an index lost, between the bundle and its row leaves a bundle the index
//! does not know. Its agent got no receipt, so it sends the bundle again, and the retry (on any
//! replica) finds the receipt, the bundle in place, and records the row — in a bucket, where an
//! upload the index had no row for keeps its receipt in the row alone, the retry signs a new
//! one, and stores the bundle again only on another UTC day.
//!
//! Should the agent never come back, this module records it: it lists the stored bundles, and
//! for each SHA-256 the index has no row for, it takes the receipt kept in `receipts/` when a
//! whole copy is under the key that receipt fixes, or else signs one (a bucket upload that
//! wrote none, a bundle stored by a receiver that wrote receipts after bundles, a receipt kept
//! by an attempt on another day), reads what the bundle tells the fleet view, and records the
//! row as an upload would. Left alone:
//! - a copy that does not hold the bytes of its SHA-256: in a local store made durable by one
//!   `syncfs` per upload, a crash before it can leave a name without its bytes, never answered.
//!   It is not recorded and not removed (a replica sharing the folder may be writing it right
//!   now): the agent's retry writes it again, and once a whole copy is recorded it goes as a
//!   second copy;
//! - a bundle with no receipt naming it, stored less than [`IN_FLIGHT`] ago: it may be a bucket
//!   upload between its bundle and its row, whose own receipt (with the agent's ledger head) is
//!   about to be recorded and answered. The next run takes it if not.
//!
//! Recording is `ON CONFLICT DO NOTHING` on the SHA-256, so a replica taking the same bundle at
//! the same moment keeps the receipt the index settled on. Nothing that has a receipt is removed.
//!
//! A bundle found under two keys (two receipts for it raced across a UTC midnight, or a bucket
//! upload's retry on another day) keeps the copy under the key of the receipt the index holds;
//! the other copy is removed.
//!
//! Run at `serve`'s start over the last days' keys (in the background, beside the uploads), and
//! by `callhome-receiver reconcile` over any span. It does not read or check bundles beyond
//! what the fleet view learns from them: everything stored was checked before it was stored.

use std::collections::BTreeMap;

use callhome_protocol::receipt::Receipt;
use callhome_protocol::time::{Timestamp, parse_rfc3339, rfc3339};
use serde::Serialize;

use crate::index::{Index, IndexError};
use crate::record::{self, Stored};
use crate::store::{BundleStore, StoredObject, bundle_key_of};
use crate::{Refusal, fleet};

/// What reconciling found and did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Reconciled {
    /// Stored bundles looked at.
    pub bundles: u64,
    /// Bundles the index had no row for, now recorded.
    pub indexed: u64,
    /// Of those, bundles that had no receipt kept either, now receipted.
    pub receipted: u64,
    /// Second copies of a bundle removed.
    pub removed: u64,
    /// Copies without a row that do not hold the bytes of their SHA-256 (a local store's name put
    /// before its `syncfs`, and a crash; never answered): not recorded, left to the agent's
    /// retry, which writes them again (or removed as a second copy once a whole one is).
    pub torn: u64,
    /// Keys that are not `bundles/YYYY/MM/DD/<install>/<sha256>.zip`, left alone.
    pub foreign: u64,
    /// Bundles (SHA-256s) without a row or a receipt naming them, stored less than
    /// [`IN_FLIGHT`] ago: left alone, as an upload may be about to record them (the next run
    /// takes them otherwise).
    pub recent: u64,
}

/// How long (seconds) a stored bundle with neither an index row nor a receipt naming it is
/// left to its upload: in a bucket, an upload the index had no row for writes no receipt before
/// its bundle, and records its row (with its receipt, the one its agent is answered) after.
pub const IN_FLIGHT: i64 = 15 * 60;

/// Why reconciling stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The store could not be listed or read.
    #[error("the store: {0}")]
    Store(#[from] Refusal),
    /// The index could not be read or written.
    #[error(transparent)]
    Index(#[from] IndexError),
}

/// Which keys to look at.
#[derive(Debug, Clone, Copy)]
pub enum Span {
    /// Every stored bundle.
    All,
    /// Bundles under the days from `days - 1` days before `now` to `now` (UTC).
    LastDays { days: u32, now: Timestamp },
}

/// A stored bundle's key, taken apart.
struct Key {
    /// The start (UTC) of the day the key is under.
    day: Timestamp,
    install: Option<String>,
    sha256: String,
}

/// `bundles/YYYY/MM/DD/<install>/<sha256>.zip`, taken apart.
fn parse_key(key: &str) -> Option<Key> {
    let parts: Vec<&str> = key.split('/').collect();
    let [b, y, m, d, install, file] = parts.as_slice() else { return None };
    let sha = file.strip_suffix(".zip")?;
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|c| c.is_ascii_digit());
    let ok = *b == "bundles"
        && digits(y, 4)
        && digits(m, 2)
        && digits(d, 2)
        && sha.len() == 64
        && sha.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
    if !ok {
        return None;
    }
    Some(Key {
        day: parse_rfc3339(&format!("{y}-{m}-{d}T00:00:00Z"))?,
        install: (*install != "_").then(|| install.to_string()),
        sha256: sha.to_string(),
    })
}

/// Reconciles the bundles of `span` in `store` with `index` (see the module's doc).
pub async fn run(store: &BundleStore, index: &Index, span: Span) -> Result<Reconciled, ReconcileError> {
    let mut objects = Vec::new();
    match span {
        Span::All => objects = store.list_bundles("").await?,
        Span::LastDays { days, now } => {
            for back in 0..days.max(1) {
                let day = rfc3339(now - i64::from(back) * 86_400);
                let under = format!("{}/{}/{}", &day[..4], &day[5..7], &day[8..10]);
                objects.extend(store.list_bundles(&under).await?);
            }
        }
    }
    let mut done = Reconciled { bundles: objects.len() as u64, ..Default::default() };
    let mut by_sha: BTreeMap<String, Vec<(StoredObject, Option<String>)>> = BTreeMap::new();
    // SHA-256s with a copy written less than IN_FLIGHT ago.
    let mut fresh = std::collections::HashSet::new();
    let in_flight_since = callhome_protocol::time::now() - IN_FLIGHT;
    for mut o in objects {
        match parse_key(&o.key) {
            Some(k) => {
                if o.modified > in_flight_since {
                    fresh.insert(k.sha256.clone());
                }
                // When it was received, as far as the store can tell: written that day.
                o.modified = o.modified.clamp(k.day, k.day + 86_399);
                by_sha.entry(k.sha256).or_default().push((o, k.install));
            }
            None => done.foreign += 1,
        }
    }
    // Whether `r` names the copy `o` (of `install`): its key is the one `r` fixes.
    let names = |r: &Receipt, o: &StoredObject, install: &Option<String>| {
        bundle_key_of(r, Some(install.as_deref().unwrap_or("_"))).ok().as_deref() == Some(o.key.as_str())
    };
    for (sha, copies) in by_sha {
        let held = index.receipt(&sha).await?.and_then(|json| serde_json::from_str::<Receipt>(&json).ok());
        let receipt = match held {
            Some(_) if copies.len() == 1 => continue,
            Some(r) => r,
            None => {
                // A copy a crash left without its bytes was never answered: it is not recorded
                // (the agent's retry writes it again), and goes below only as a second copy.
                let mut whole = Vec::with_capacity(copies.len());
                for (o, install) in &copies {
                    if store.holds_bundle(&o.key, &sha).await? {
                        whole.push((o, install));
                    } else {
                        done.torn += 1;
                    }
                }
                let Some(&(first, install)) = whole.first() else { continue };
                // The receipt kept in `receipts/`, when a whole copy is under the key it fixes:
                // another one there (an attempt's that crashed before its bundle, under another
                // day) was never answered.
                let kept = store.stored_receipt(&sha).await?.filter(|r| whole.iter().any(|(o, i)| names(r, o, i)));
                let (receipt, new) = match kept {
                    Some(r) => (r, false),
                    None if fresh.contains(&sha) => {
                        done.recent += 1;
                        continue;
                    }
                    None => (store.receipt_orphan(&sha, first.modified).await?, true),
                };
                let keep = whole.iter().find(|(o, i)| names(&receipt, o, i)).unwrap_or(&whole[0]);
                index_one(store, index, &receipt, keep.0, keep.1.clone().or(install.clone())).await?;
                done.indexed += 1;
                done.receipted += u64::from(new);
                // The index may have settled on another replica's receipt meanwhile.
                match index.receipt(&sha).await?.and_then(|json| serde_json::from_str::<Receipt>(&json).ok()) {
                    Some(r) => r,
                    None => continue,
                }
            }
        };
        if copies.len() < 2 {
            continue;
        }
        // Two copies: keep the one under the key of the receipt the index holds.
        if !copies.iter().any(|(o, i)| names(&receipt, o, i)) {
            tracing::warn!("reconcile: no copy of {sha} is under its receipt's key; all {} kept", copies.len());
            continue;
        }
        for (o, i) in &copies {
            if !names(&receipt, o, i) {
                tracing::warn!(key = %o.key, "reconcile: removing a second copy of a stored bundle");
                store.remove(&o.key).await?;
                done.removed += 1;
            }
        }
    }
    Ok(done)
}

/// Records the stored bundle `o` with `receipt`, as its upload would have.
async fn index_one(
    store: &BundleStore,
    index: &Index,
    receipt: &Receipt,
    o: &StoredObject,
    install: Option<String>,
) -> Result<(), ReconcileError> {
    let received_at = parse_rfc3339(&receipt.received_at).unwrap_or(o.modified);
    let copy = store.fetch(&o.key).await?;
    // Its size as read (the listing may have seen a bundle still being written in place).
    let size = copy.size().unwrap_or(o.size);
    let path = copy.path().to_path_buf();
    let report = tokio::task::spawn_blocking(move || fleet::report::read(&path))
        .await
        .map_err(|e| IndexError::Invalid(format!("reading a stored bundle: {e}")))?
        .unwrap_or_else(|e| {
            tracing::warn!("reconcile: the fleet view learns nothing from {}: {e}", o.key);
            Default::default()
        });
    drop(copy);
    tracing::warn!(key = %o.key, "reconcile: recording a stored bundle the index did not know");
    let stored =
        Stored { receipt: receipt.clone(), install_id: install, program: "?".into(), size, received_at, report };
    record::bundle(index, store, stored).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{bundle_key, receipt_key};
    use crate::testing::{bundle, keep_receipt_file, local_store};

    #[test]
    fn a_receipt_kept_before_a_crash_fixes_where_the_retry_stores_the_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _index, _rt) = local_store(dir.path());
        let body = bundle("inst-1", 1);
        let sha = callhome_protocol::fs::sha256_hex(&body);
        // A replica wrote the receipt on 2026-03-07, then died before it stored the bundle.
        let day = parse_rfc3339("2026-03-07T23:59:59Z").unwrap();
        let kept = Receipt::sign(store.key(), "r1".into(), sha.clone(), rfc3339(day), Default::default());
        keep_receipt_file(dir.path(), &kept);
        // The agent sends it again days later: the kept receipt stands and fixes the key.
        let later = parse_rfc3339("2026-03-09T08:00:00Z").unwrap();
        let (r, _) = store.accept(&body, Some(&sha), later).unwrap();
        assert_eq!(r, kept);
        assert_eq!(store.bundle_keys().unwrap(), vec![bundle_key(day, Some("inst-1"), &sha)]);
        // Once more: nothing stored twice.
        let (again, _) = store.accept(&body, Some(&sha), later + 86_400).unwrap();
        assert_eq!(again, kept);
        assert_eq!(store.bundle_keys().unwrap().len(), 1);
    }

    #[test]
    fn a_stored_bundle_without_a_row_is_recorded_once_and_a_second_copy_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (store, index, rt) = local_store(dir.path());
        let now = parse_rfc3339("2026-11-30T12:00:00Z").unwrap();
        // Stored, never recorded: the replica died before its index row.
        let orphan = bundle("inst-2", 1);
        let (receipt, _) = store.accept(&orphan, None, now).unwrap();
        // Stored and recorded, and also found under another day (a second copy).
        let indexed = bundle("inst-3", 2);
        let (r3, _) = store.accept(&indexed, None, now).unwrap();
        let stored = Stored {
            receipt: r3.clone(),
            install_id: Some("inst-3".into()),
            program: "telemetry".into(),
            size: indexed.len() as u64,
            received_at: now,
            report: Default::default(),
        };
        rt.block_on(record::bundle(&index, &store, stored)).unwrap();
        let copy = bundle_key(now - 86_400, Some("inst-3"), &r3.bundle_sha256);
        put_file(dir.path(), &copy, &indexed);

        let done = rt.block_on(run(&store, &index, Span::LastDays { days: 2, now })).unwrap();
        assert_eq!(
            done,
            Reconciled { bundles: 3, indexed: 1, receipted: 0, removed: 1, torn: 0, foreign: 0, recent: 0 }
        );
        let row = rt.block_on(index.receipt(&receipt.bundle_sha256)).unwrap().unwrap();
        assert_eq!(serde_json::from_str::<Receipt>(&row).unwrap(), receipt, "recorded with the kept receipt");
        assert!(!dir.path().join(&copy).exists(), "the second copy is gone");
        let installs = rt.block_on(index.installs(crate::fleet::ClockRange::ALL)).unwrap();
        assert!(installs.iter().any(|i| i.install_id == "inst-2"), "the fleet view learnt the install");
        // Nothing left to do.
        let again = rt.block_on(run(&store, &index, Span::All)).unwrap();
        assert_eq!(again, Reconciled { bundles: 2, ..Default::default() });
    }

    /// Sets the modification time of the file at `key` in the store in `dir` to `at`.
    fn written_at(dir: &std::path::Path, key: &str, at: Timestamp) {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(at).unwrap());
        std::fs::File::options().write(true).open(dir.join(key)).unwrap().set_modified(t).unwrap();
    }

    #[test]
    fn a_stored_bundle_without_receipt_or_row_is_receipted_and_recorded_once_no_upload_can_be_recording_it() {
        let dir = tempfile::tempdir().unwrap();
        let (store, index, rt) = local_store(dir.path());
        let now = callhome_protocol::time::now();
        let body = bundle("inst-4", 1);
        let sha = callhome_protocol::fs::sha256_hex(&body);
        // Left by a receiver that wrote receipts after bundles (or, in a bucket, an upload the
        // index had no row for, which writes no receipt before its row).
        let key = bundle_key(now, Some("inst-4"), &sha);
        put_file(dir.path(), &key, &body);
        // Just written: its upload may be about to record it.
        let done = rt.block_on(run(&store, &index, Span::All)).unwrap();
        assert_eq!((done.indexed, done.receipted, done.recent), (0, 0, 1));
        assert!(rt.block_on(index.receipt(&sha)).unwrap().is_none());
        assert!(!dir.path().join(receipt_key(&sha)).exists());
        written_at(dir.path(), &key, now - IN_FLIGHT - 1);
        let done = rt.block_on(run(&store, &index, Span::All)).unwrap();
        assert_eq!((done.indexed, done.receipted, done.recent), (1, 1, 0));
        let kept: Receipt =
            serde_json::from_slice(&std::fs::read(dir.path().join(receipt_key(&sha))).unwrap()).unwrap();
        kept.check(&sha, Some(&store.key().verifying_key())).unwrap();
        let row = rt.block_on(index.receipt(&sha)).unwrap().unwrap();
        assert_eq!(serde_json::from_str::<Receipt>(&row).unwrap(), kept);
    }

    #[test]
    fn a_receipt_kept_for_another_day_than_the_stored_copy_is_not_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let (store, index, rt) = local_store(dir.path());
        let now = callhome_protocol::time::now();
        let body = bundle("inst-8", 1);
        let sha = callhome_protocol::fs::sha256_hex(&body);
        // An attempt three days ago kept its receipt and crashed before its bundle; in a bucket,
        // today's upload (the index had no row) stored the bundle under today's key, writing no
        // receipt, and crashed before its row.
        let old = Receipt::sign(store.key(), "r8".into(), sha.clone(), rfc3339(now - 3 * 86_400), Default::default());
        keep_receipt_file(dir.path(), &old);
        let key = bundle_key(now, Some("inst-8"), &sha);
        put_file(dir.path(), &key, &body);
        written_at(dir.path(), &key, now - IN_FLIGHT - 1);
        let done = rt.block_on(run(&store, &index, Span::All)).unwrap();
        assert_eq!((done.indexed, done.receipted, done.removed), (1, 1, 0), "{done:?}");
        let row: Receipt = serde_json::from_str(&rt.block_on(index.receipt(&sha)).unwrap().unwrap()).unwrap();
        assert_ne!(row.receipt_id, "r8", "the kept receipt names no stored copy");
        assert_eq!(bundle_key_of(&row, Some("inst-8")).unwrap(), key, "the row's receipt names the stored copy");
        let kept: Receipt =
            serde_json::from_slice(&std::fs::read(dir.path().join(receipt_key(&sha))).unwrap()).unwrap();
        assert_eq!(kept, row, "and replaces the one kept");
    }

    /// Writes `bytes` at `key` in the store in `dir`, as a crash before the `syncfs` that would
    /// have made the file durable can leave it (the name on disk, not the content).
    fn leave_unwritten(dir: &std::path::Path, key: &str, bytes: &[u8]) {
        put_file(dir, key, bytes);
    }

    /// Writes `bytes` at `key` in the store in `dir`, as a receiver that stored a bundle and
    /// recorded nothing leaves it.
    fn put_file(dir: &std::path::Path, key: &str, bytes: &[u8]) {
        std::fs::create_dir_all(dir.join(key).parent().unwrap()).unwrap();
        std::fs::write(dir.join(key), bytes).unwrap();
    }

    #[test]
    fn a_bundle_left_unwritten_under_a_kept_receipt_is_written_again_by_the_retry() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _index, _rt) = local_store(dir.path());
        let body = bundle("inst-5", 1);
        let sha = callhome_protocol::fs::sha256_hex(&body);
        let day = parse_rfc3339("2026-11-29T10:00:00Z").unwrap();
        let kept = Receipt::sign(store.key(), "r5".into(), sha.clone(), rfc3339(day), Default::default());
        keep_receipt_file(dir.path(), &kept);
        let key = bundle_key(day, Some("inst-5"), &sha);
        leave_unwritten(dir.path(), &key, &vec![0u8; body.len()]);
        let (r, new) = store.accept(&body, Some(&sha), day + 3600).unwrap();
        assert_eq!((r, new), (kept, false), "the kept receipt stands");
        assert_eq!(std::fs::read(dir.path().join(&key)).unwrap(), body, "the bundle's bytes are written again");
    }

    #[test]
    fn a_receipt_left_unwritten_is_replaced_and_reconcile_records_no_unwritten_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let (store, index, rt) = local_store(dir.path());
        let now = parse_rfc3339("2026-11-30T12:00:00Z").unwrap();
        let body = bundle("inst-6", 1);
        let sha = callhome_protocol::fs::sha256_hex(&body);
        // Yesterday's attempt renamed both into place and crashed before its syncfs.
        std::fs::create_dir_all(dir.path().join("receipts")).unwrap();
        std::fs::write(dir.path().join(receipt_key(&sha)), b"").unwrap();
        let torn = bundle_key(now - 86_400, Some("inst-6"), &sha);
        leave_unwritten(dir.path(), &torn, &body[..body.len() / 2]);
        // A bundle nobody sends again, left the same way.
        let other = bundle("inst-7", 1);
        let other_sha = callhome_protocol::fs::sha256_hex(&other);
        let lost = bundle_key(now, Some("inst-7"), &other_sha);
        leave_unwritten(dir.path(), &lost, &[]);

        let (r, new) = store.accept(&body, Some(&sha), now).unwrap();
        assert!(new, "a receipt that does not read back was never answered: a new one is given");
        r.check(&sha, Some(&store.key().verifying_key())).unwrap();
        let kept: Receipt =
            serde_json::from_slice(&std::fs::read(dir.path().join(receipt_key(&sha))).unwrap()).unwrap();
        assert_eq!(kept, r);
        let key = bundle_key(now, Some("inst-6"), &sha);
        assert_eq!(std::fs::read(dir.path().join(&key)).unwrap(), body);

        let done = rt.block_on(run(&store, &index, Span::All)).unwrap();
        assert_eq!((done.bundles, done.torn, done.indexed, done.removed), (3, 2, 1, 1), "{done:?}");
        assert!(!dir.path().join(&torn).exists(), "the unwritten copy beside the recorded one is gone");
        let mut left = store.bundle_keys().unwrap();
        left.sort();
        let mut expected = vec![key, lost.clone()];
        expected.sort();
        assert_eq!(left, expected, "an unwritten bundle nobody sent again is left to its agent's retry");
        assert!(rt.block_on(index.receipt(&other_sha)).unwrap().is_none(), "and gets no row");
        // Its agent sends it again: written whole, and recorded.
        store.accept(&other, Some(&other_sha), now).unwrap();
        assert_eq!(std::fs::read(dir.path().join(&lost)).unwrap(), other);
        let row = rt.block_on(index.receipt(&sha)).unwrap().unwrap();
        assert_eq!(serde_json::from_str::<Receipt>(&row).unwrap(), r);
    }

    #[test]
    fn only_the_documented_keys_are_taken_apart() {
        let sha = "ab".repeat(32);
        let k = parse_key(&format!("bundles/2026/11/30/inst-1/{sha}.zip")).unwrap();
        assert_eq!((k.install.as_deref(), k.sha256.as_str()), (Some("inst-1"), sha.as_str()));
        assert_eq!(parse_key(&format!("bundles/2026/11/30/_/{sha}.zip")).unwrap().install, None);
        assert!(parse_key(&format!("bundles/2026/11/inst-1/{sha}.zip")).is_none());
        assert!(parse_key("bundles/2026/11/30/inst-1/short.zip").is_none());
        assert!(parse_key(&format!("bundles/2026/11/30/inst-1/{}.zip", "AB".repeat(32))).is_none());
        assert!(parse_key(&format!("receipts/{sha}.json")).is_none());
    }
}
