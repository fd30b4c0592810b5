//! Every schema change, in order. Migration N (1-based) turns `PRAGMA user_version` N-1 into N;
//! `Store::migrate` applies the missing ones inside IMMEDIATE transactions. A shipped migration
//! is never edited: a change is a new one at the end.

/// The migrations; their count is the schema version this agent writes.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE schedule (task TEXT PRIMARY KEY, due_at INTEGER NOT NULL, last_run INTEGER, failures INTEGER NOT NULL DEFAULT 0);
     CREATE TABLE attempts (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, program TEXT NOT NULL, bundle TEXT,
        sha256 TEXT, code TEXT NOT NULL, message TEXT NOT NULL, http_status INTEGER, duration_ms INTEGER NOT NULL);
     CREATE INDEX attempts_program ON attempts (program, id);
     CREATE TABLE ledger (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, event TEXT NOT NULL, program TEXT NOT NULL,
        bundle TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL, detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
     CREATE UNIQUE INDEX ledger_sent_once ON ledger (sha256) WHERE event = 'sent';
     CREATE INDEX ledger_bundle ON ledger (bundle);
     CREATE INDEX ledger_program_sent ON ledger (program, event, at);
     CREATE TABLE samples (id INTEGER PRIMARY KEY, program TEXT NOT NULL, at INTEGER NOT NULL, data TEXT NOT NULL);",
    // 2: license data.
    "CREATE TABLE log_cursors (path TEXT PRIMARY KEY, cursor TEXT NOT NULL);
     CREATE TABLE usage_hourly (feature TEXT NOT NULL, hour INTEGER NOT NULL, peak INTEGER NOT NULL,
        checkouts INTEGER NOT NULL, denials INTEGER NOT NULL, queued INTEGER NOT NULL, unsupported INTEGER NOT NULL,
        users TEXT NOT NULL, devices TEXT NOT NULL, PRIMARY KEY (feature, hour));
     CREATE INDEX usage_hour ON usage_hourly (hour);
     CREATE TABLE license_events (key TEXT PRIMARY KEY, kind TEXT NOT NULL, feature TEXT NOT NULL, message TEXT NOT NULL,
        days INTEGER, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, active INTEGER NOT NULL,
        uploaded INTEGER NOT NULL DEFAULT 0);
     CREATE TABLE license_seen (id TEXT PRIMARY KEY, feature TEXT NOT NULL, version TEXT NOT NULL, vendor TEXT NOT NULL,
        quantity INTEGER, expiry TEXT NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL);",
    // 3: manual reporting.
    "CREATE TABLE exports (export_id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, bundles TEXT NOT NULL);",
    // 4: the errors collector.
    "CREATE TABLE error_counts (id INTEGER PRIMARY KEY, pattern TEXT NOT NULL, hour INTEGER NOT NULL, count INTEGER NOT NULL);
     CREATE TABLE error_samples (id INTEGER PRIMARY KEY, pattern TEXT NOT NULL, at INTEGER NOT NULL, text TEXT NOT NULL);",
    // 5: the alert channels' deliveries: one row per channel, the outcome of its last attempts.
    "CREATE TABLE alert_deliveries (channel TEXT PRIMARY KEY, last_attempt INTEGER NOT NULL, last_key TEXT NOT NULL,
        last_success INTEGER, last_error TEXT, last_error_at INTEGER, delivered INTEGER NOT NULL DEFAULT 0,
        failed_attempts INTEGER NOT NULL DEFAULT 0, given_up INTEGER NOT NULL DEFAULT 0);",
    // 6: alerts as objects: each open condition (and each that was open once), its times and its
    // acknowledgement.
    "CREATE TABLE alerts (id TEXT PRIMARY KEY, key TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, severity TEXT NOT NULL,
        title TEXT NOT NULL, text TEXT NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,
        open INTEGER NOT NULL, acked_at INTEGER, acked_until INTEGER, acked_severity TEXT, ack_reason TEXT);
     CREATE INDEX alerts_open ON alerts (open);",
    // 7: a copy of every receipt a `sent` ledger row holds, with the row that first held it and
    // its bundle, so `ledger verify` finds a receipt whose rows were cut from the ledger's end.
    "CREATE TABLE ledger_receipts (detail TEXT PRIMARY KEY, seq INTEGER NOT NULL, bundle TEXT NOT NULL);
     INSERT OR IGNORE INTO ledger_receipts (detail, seq, bundle)
        SELECT detail, seq, bundle FROM ledger WHERE event = 'sent' ORDER BY seq;",
];

/// The migration that brought `ledger_receipts` and with it `ledger.head`: a database migrated
/// from before it gets its head file written at once.
pub(super) const ANCHORS: i64 = 7;
