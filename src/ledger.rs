//! Checking the sent ledger end to end: its hash chain, every receipt it holds against its
//! bundle's SHA-256 and (when `upload.receipt_public_key` is set) the receiver's signature, and
//! that nothing was cut from its end — the chain must still reach every head a receipt signed,
//! every receipt kept beside the chain must still have its row, and `ledger.head` must not be
//! ahead of it.
//!
//! A CEIP bundle's `sent` row holds no receipt: CEIP is sent anonymously, and a receipt kept
//! here would join the anonymous bundle to this install. Its detail is an
//! [`ANONYMOUS_FORMAT`] note with a random nonce, so the ledger's head hash (sent with the next
//! identifiable upload) cannot be recomputed by guessing the row from what the receiver saw.
//!
//! Shared by `callhome ledger verify` and `GET /api/v1/ledger/verify`, so both say the same
//! thing. It reads and changes nothing; printing and exit codes are the callers' business.

use crate::config::Config;
use crate::manual::format::{ManualReceipt, RECEIPT_FORMAT};
use crate::receipt::{LedgerHead, Receipt, ReceiptError, load_public_key};
use crate::store::{GENESIS, LedgerRow, ReceiptCopy, verify_chain};

/// The `format` of an anonymous CEIP row's detail.
pub const ANONYMOUS_FORMAT: &str = "callhome-ceip-anonymous-1";

/// The detail of the `sent` row of an anonymous CEIP upload: that it was sent and its receipt
/// checked, and a random nonce; nothing the receiver knows. Fails only without randomness.
pub fn anonymous_detail() -> Result<String, String> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| format!("no randomness for the ledger row: {e}"))?;
    Ok(serde_json::json!({
        "format": ANONYMOUS_FORMAT,
        "note": "CEIP, sent anonymously: the receiver's receipt was checked and is not kept",
        "nonce": hex::encode(nonce),
    })
    .to_string())
}

/// Whether a `sent` row's detail is an anonymous CEIP note rather than a receipt.
pub fn is_anonymous(detail: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(detail).is_ok_and(|v| v["format"] == ANONYMOUS_FORMAT)
}

/// What the check reads: the rows, the receipts kept beside them, and the head file. Read the
/// head file first and the rows last, so a row appended meanwhile only makes the ledger longer.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// The whole ledger, oldest first.
    pub rows: Vec<LedgerRow>,
    /// Every receipt a `sent` row ever held (`ledger_receipts`).
    pub copies: Vec<ReceiptCopy>,
    /// `ledger.head`: `None` when the file is absent, the reason when it cannot be read.
    pub head_file: Option<Result<LedgerHead, String>>,
}

/// What a successful check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerCheck {
    /// Rows in the ledger (every event: sent, withdrawn, evicted, quarantined, reported).
    pub rows: usize,
    /// `sent` rows whose receipt acknowledges their bundle (and verifies, with a key).
    pub receipts: usize,
    /// Receipts (distinct) that signed a ledger head the chain still reaches.
    pub anchored: usize,
    /// Whether signatures were checked (a public key is configured).
    pub signatures_checked: bool,
    /// Bundles recorded as reported by hand without a receipt (`export confirm`).
    pub unverified: usize,
    /// CEIP bundles sent anonymously (their receipts were checked at upload and not kept).
    pub anonymous: usize,
}

/// Why the ledger does not verify, or could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum LedgerCheckError {
    /// The hash chain is broken: a row was edited, removed or reordered.
    #[error("{0}; the state database was altered outside the agent")]
    Chain(crate::store::LedgerBreak),
    /// A stored receipt is unreadable, for another bundle, or its signature does not verify.
    #[error("ledger row {seq} ({bundle}): {why}")]
    Receipt { seq: i64, bundle: String, why: String },
    /// Rows were cut from the ledger's end (or replaced): what proves it, one finding each.
    #[error("the ledger was cut: {}; rows were removed outside the agent", .0.join("; "))]
    Cut(Vec<String>),
    /// The configured public key cannot be used.
    #[error(transparent)]
    Key(ReceiptError),
}

impl LedgerCheckError {
    /// Whether the ledger itself is at fault (rather than the configuration).
    pub fn is_tampering(&self) -> bool {
        !matches!(self, LedgerCheckError::Key(_))
    }
}

/// A receipt that signed a ledger head, and where it was found.
struct Anchor {
    receipt_id: String,
    /// The receipt in words ([`Read::name`]).
    name: String,
    head: LedgerHead,
    /// The row that holds it.
    seq: i64,
}

/// A stored receipt text, read.
struct Read {
    receipt_id: String,
    /// The manual report's export id (none for an upload's receipt).
    export_id: Option<String>,
    received_at: String,
    head: Option<LedgerHead>,
    /// The SHA-256s it acknowledges.
    acknowledged: Vec<String>,
}

impl Read {
    /// The receipt in words, for a finding: `receipt ID (bundle NAME, received T)`.
    fn name(&self, bundle: &str) -> String {
        match &self.export_id {
            Some(e) => format!(
                "receipt {} (manual report of export {e}, {bundle}, received {})",
                self.receipt_id, self.received_at
            ),
            None => format!("receipt {} (bundle {bundle}, received {})", self.receipt_id, self.received_at),
        }
    }

    fn acknowledges(&self, sha256: &str) -> bool {
        self.acknowledged.iter().any(|a| a.eq_ignore_ascii_case(sha256))
    }
}

/// Reads the receipt text `detail` (an upload's or a manual one) and, with `key`, checks its
/// signature.
fn read_receipt(detail: &str, key: Option<&ed25519_dalek::VerifyingKey>) -> Result<Read, String> {
    if detail.contains(RECEIPT_FORMAT) {
        let m: ManualReceipt =
            serde_json::from_str(detail).map_err(|e| format!("the stored manual receipt is unreadable ({e})"))?;
        if let Some(k) = key {
            m.verify(k).map_err(|e| e.to_string())?;
        }
        Ok(Read {
            receipt_id: m.receipt_id,
            export_id: Some(m.export_id),
            received_at: m.received_at,
            head: m.ledger_head,
            acknowledged: m.accepted,
        })
    } else {
        let r: Receipt = serde_json::from_str(detail).map_err(|e| format!("the stored receipt is unreadable ({e})"))?;
        if let Some(k) = key {
            r.verify(k).map_err(|e| e.to_string())?;
        }
        Ok(Read {
            receipt_id: r.receipt_id,
            export_id: None,
            received_at: r.received_at,
            head: r.ledger_head,
            acknowledged: vec![r.bundle_sha256],
        })
    }
}

/// Checks the evidence with the key `cfg` names, if any.
pub fn verify(cfg: &Config, ev: &Evidence) -> Result<LedgerCheck, LedgerCheckError> {
    let rows = &ev.rows;
    verify_chain(rows).map_err(LedgerCheckError::Chain)?;
    let key = match &cfg.upload.receipt_public_key {
        Some(k) => Some(load_public_key(&cfg.resolve(k)).map_err(LedgerCheckError::Key)?),
        None => None,
    };
    let mut receipts = 0;
    let mut anchors: Vec<Anchor> = Vec::new();
    let mut anonymous = 0;
    for r in rows.iter().filter(|r| r.event == "sent") {
        // Only a CEIP row may stand without a receipt: the note on any other row is a forgery.
        if r.program == "ceip" && is_anonymous(&r.detail) {
            anonymous += 1;
            continue;
        }
        let bad = |why: String| LedgerCheckError::Receipt { seq: r.seq, bundle: r.bundle.clone(), why };
        let read = read_receipt(&r.detail, key.as_ref()).map_err(bad)?;
        if !read.acknowledges(&r.sha256) {
            let why = match read.export_id {
                Some(_) => "the manual receipt does not acknowledge this bundle".to_string(),
                None => ReceiptError::WrongBundle { expected: r.sha256.clone(), got: read.acknowledged.join(" ") }
                    .to_string(),
            };
            return Err(bad(why));
        }
        receipts += 1;
        if !anchors.iter().any(|a| a.receipt_id == read.receipt_id)
            && let Some(head) = read.head.clone()
        {
            anchors.push(Anchor { name: read.name(&r.bundle), receipt_id: read.receipt_id, head, seq: r.seq });
        }
    }
    let mut cut = Vec::new();
    // A receipt kept beside the chain whose rows are gone proves the ledger was longer.
    for c in &ev.copies {
        if rows.iter().any(|r| r.event == "sent" && r.detail == c.detail) {
            continue;
        }
        if is_anonymous(&c.detail) {
            cut.push(format!(
                "it ends at row {}, but row {} recorded the anonymous CEIP upload of {}, which is gone",
                rows.len(),
                c.seq,
                c.bundle
            ));
            continue;
        }
        match read_receipt(&c.detail, key.as_ref()) {
            Ok(read) => cut.push(format!(
                "it ends at row {}, but {} was in row {}, which is gone",
                rows.len(),
                read.name(&c.bundle),
                c.seq
            )),
            Err(why) => {
                cut.push(format!("the copy of the receipt of row {} ({}) is not genuine: {why}", c.seq, c.bundle))
            }
        }
    }
    // Every head a receipt signed must still be in the chain, before that receipt's own row.
    for a in &anchors {
        let n = usize::try_from(a.head.rows).unwrap_or(usize::MAX);
        let reached = match n {
            0 => a.head.hash == GENESIS,
            n if n <= rows.len() => rows[n - 1].hash == a.head.hash,
            _ => false,
        };
        if n > rows.len() {
            cut.push(format!("it has {}, but {} signed a head of {}", count(rows.len()), a.name, count(n)));
        } else if !reached || n as i64 >= a.seq {
            cut.push(format!("row {n} is not the head {} signed (hash {})", a.name, a.head.hash));
        }
    }
    match &ev.head_file {
        Some(Ok(h)) => {
            let n = usize::try_from(h.rows).unwrap_or(usize::MAX);
            if n > rows.len() {
                cut.push(format!("it has {}, but ledger.head says {} (hash {})", count(rows.len()), count(n), h.hash));
            } else if (n == 0 && h.hash != GENESIS) || (n > 0 && rows[n - 1].hash != h.hash) {
                cut.push(format!("row {n} is not the head ledger.head records (hash {})", h.hash));
            }
        }
        Some(Err(why)) => cut.push(format!("ledger.head cannot be read ({why})")),
        None if !rows.is_empty() => {
            cut.push("ledger.head is missing (the agent rewrites it with every row)".to_string())
        }
        None => {}
    }
    if !cut.is_empty() {
        return Err(LedgerCheckError::Cut(cut));
    }
    Ok(LedgerCheck {
        rows: rows.len(),
        receipts,
        anchored: anchors.len(),
        signatures_checked: key.is_some(),
        unverified: rows.iter().filter(|r| r.event == "reported").count(),
        anonymous,
    })
}

/// `1 row`, `3 rows`.
fn count(n: usize) -> String {
    if n == 1 { "1 row".into() } else { format!("{n} rows") }
}

impl std::fmt::Display for LedgerCheck {
    /// The one line `callhome ledger verify` prints.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sig = if self.signatures_checked {
            "signatures verified"
        } else {
            "signatures not checked: no upload.receipt_public_key"
        };
        write!(
            f,
            "ledger ok: {} rows, chain intact; {} receipts match their bundles ({sig}); {} receipt(s) anchor its head, ledger.head agrees",
            self.rows, self.receipts, self.anchored
        )?;
        if self.unverified > 0 {
            write!(f, "; {} reported by hand without a receipt (unverified)", self.unverified)?;
        }
        if self.anonymous > 0 {
            write!(f, "; {} CEIP bundle(s) sent anonymously (receipts checked at upload, not kept)", self.anonymous)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipt::Extras;
    use crate::store::row_hash;

    fn cfg_with_key(dir: &std::path::Path, key: &ed25519_dalek::SigningKey) -> Config {
        let pem = dir.join("pub.pem");
        std::fs::write(&pem, crate::receipt::public_key_pem(key)).unwrap();
        let mut cfg = Config::default();
        cfg.upload.receipt_public_key = Some(pem);
        cfg
    }

    /// A chain of `n` rows, each a `sent` row whose receipt signed the head before it.
    fn chain(key: &ed25519_dalek::SigningKey, n: usize) -> Vec<LedgerRow> {
        let mut rows: Vec<LedgerRow> = Vec::new();
        for i in 0..n {
            let (count, prev) = rows.last().map(|r| (r.seq as u64, r.hash.clone())).unwrap_or((0, GENESIS.into()));
            let sha = format!("{:064x}", i + 1);
            let receipt = Receipt::sign(
                key,
                format!("r{i}"),
                sha.clone(),
                "2026-11-30T09:00:00Z".into(),
                Extras { ledger_head: Some(LedgerHead { rows: count, hash: prev.clone() }), ..Extras::default() },
            );
            let mut row = LedgerRow {
                seq: i as i64 + 1,
                at: 10,
                event: "sent".into(),
                program: "telemetry".into(),
                bundle: format!("b{i}.zip"),
                sha256: sha,
                size: 1,
                detail: serde_json::to_string(&receipt).unwrap(),
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            row.hash = row_hash(&prev, &row);
            rows.push(row);
        }
        rows
    }

    fn evidence(rows: &[LedgerRow], copies_of: &[LedgerRow], head_of: &[LedgerRow]) -> Evidence {
        let head = head_of
            .last()
            .map(|r| LedgerHead { rows: r.seq as u64, hash: r.hash.clone() })
            .unwrap_or(LedgerHead { rows: 0, hash: GENESIS.into() });
        Evidence {
            rows: rows.to_vec(),
            copies: copies_of
                .iter()
                .map(|r| ReceiptCopy { seq: r.seq, bundle: r.bundle.clone(), detail: r.detail.clone() })
                .collect(),
            head_file: Some(Ok(head)),
        }
    }

    #[test]
    fn an_intact_ledger_is_anchored_by_its_receipts() {
        let dir = tempfile::tempdir().unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[4u8; 32]);
        let rows = chain(&key, 3);
        let check = verify(&cfg_with_key(dir.path(), &key), &evidence(&rows, &rows, &rows)).unwrap();
        assert_eq!((check.rows, check.receipts, check.anchored), (3, 3, 3));
    }

    #[test]
    fn a_cut_tail_is_found_by_the_kept_receipt_and_by_the_head_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[4u8; 32]);
        let cfg = cfg_with_key(dir.path(), &key);
        let rows = chain(&key, 3);
        let cut = &rows[..2];
        let mut ev = evidence(cut, &rows, &rows);
        let msg = verify(&cfg, &ev).unwrap_err().to_string();
        assert!(msg.contains("it ends at row 2, but receipt r2") && msg.contains("was in row 3"), "{msg}");
        assert!(msg.contains("ledger.head says 3 rows"), "{msg}");
        ev.head_file = None;
        let msg = verify(&cfg, &ev).unwrap_err().to_string();
        assert!(msg.contains("receipt r2") && msg.contains("ledger.head is missing"), "{msg}");
        // Without the copies, the head file alone still tells.
        let only_head = evidence(cut, cut, &rows);
        assert!(verify(&cfg, &only_head).unwrap_err().to_string().contains("ledger.head says 3 rows"));
        // A head file that lags (a crash between the commit and its write) is fine.
        verify(&cfg, &evidence(&rows, &rows, cut)).unwrap();
    }

    #[test]
    fn a_rewritten_ledger_no_longer_reaches_a_signed_head() {
        let dir = tempfile::tempdir().unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[4u8; 32]);
        let cfg = cfg_with_key(dir.path(), &key);
        // A receipt that signed a head of 5 rows, in a ledger of 3.
        let mut long = chain(&key, 3);
        let forged_head = Receipt::sign(
            &key,
            "far".into(),
            long[2].sha256.clone(),
            "2026-11-30T09:00:00Z".into(),
            Extras { ledger_head: Some(LedgerHead { rows: 5, hash: "ab".repeat(32) }), ..Extras::default() },
        );
        long[2].detail = serde_json::to_string(&forged_head).unwrap();
        long[2].hash = row_hash(&long[1].hash, &long[2]);
        let msg = verify(&cfg, &evidence(&long, &long, &long)).unwrap_err().to_string();
        assert!(msg.contains("it has 3 rows, but receipt far") && msg.contains("signed a head of 5 rows"), "{msg}");
    }

    /// Appends a `sent` row of `program` whose detail is the anonymous CEIP note.
    fn with_anonymous_row(rows: &[LedgerRow], program: &str) -> Vec<LedgerRow> {
        let mut rows = rows.to_vec();
        let last = rows.last().unwrap().clone();
        let mut row = LedgerRow {
            seq: last.seq + 1,
            program: program.into(),
            bundle: "extra.zip".into(),
            sha256: "cd".repeat(32),
            detail: anonymous_detail().unwrap(),
            prev_hash: last.hash.clone(),
            hash: String::new(),
            ..last
        };
        row.hash = row_hash(&row.prev_hash, &row);
        rows.push(row);
        rows
    }

    #[test]
    fn only_a_ceip_row_may_stand_without_a_receipt() {
        let dir = tempfile::tempdir().unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[4u8; 32]);
        let cfg = cfg_with_key(dir.path(), &key);
        let rows = chain(&key, 2);
        let ceip = with_anonymous_row(&rows, "ceip");
        let check = verify(&cfg, &evidence(&ceip, &ceip, &ceip)).unwrap();
        assert_eq!((check.receipts, check.anonymous), (2, 1));
        // The same note on a telemetry row is no receipt: a forged `sent` row fails the check.
        let forged = with_anonymous_row(&rows, "telemetry");
        let msg = verify(&cfg, &evidence(&forged, &forged, &forged)).unwrap_err().to_string();
        assert!(msg.contains("row 3") || msg.contains("extra.zip"), "{msg}");
    }
}
