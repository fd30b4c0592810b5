//! The PostgreSQL index's schema (see [`super::postgres`]).

/// The schema, one migration per entry, applied in order and recorded in `callhome_migrations`.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE customers (name TEXT PRIMARY KEY, created_at BIGINT NOT NULL);
CREATE TABLE tokens (
    seq BIGSERIAL UNIQUE,
    id TEXT PRIMARY KEY,
    customer TEXT NOT NULL REFERENCES customers(name),
    secret_sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    single_install BOOLEAN NOT NULL
);
CREATE TABLE installs (
    install_id TEXT PRIMARY KEY,
    customer TEXT NOT NULL REFERENCES customers(name),
    token_id TEXT NOT NULL REFERENCES tokens(id),
    first_seen BIGINT NOT NULL
);
CREATE INDEX installs_by_token ON installs(token_id);
CREATE TABLE bundles (
    sha256 TEXT PRIMARY KEY,
    install_id TEXT,
    program TEXT NOT NULL,
    size BIGINT NOT NULL,
    receipt_id TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
"#,
    r#"
ALTER TABLE bundles ADD COLUMN receipt TEXT;
CREATE TABLE exports (
    receipt_id TEXT PRIMARY KEY,
    export_id TEXT NOT NULL,
    install_id TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    accepted BIGINT NOT NULL,
    rejected BIGINT NOT NULL
);
CREATE TABLE install_reports (
    install_id TEXT PRIMARY KEY,
    customer TEXT,
    first_seen BIGINT NOT NULL,
    last_success BIGINT,
    clock_from BIGINT NOT NULL,
    agent_version TEXT,
    product_version TEXT,
    versions_at BIGINT,
    usage_summary TEXT,
    usage_at BIGINT
);
CREATE INDEX install_reports_by_clock ON install_reports(clock_from, install_id);
INSERT INTO install_reports (install_id, customer, first_seen, clock_from)
    SELECT install_id, customer, first_seen, first_seen FROM installs;
"#,
    r#"
CREATE TABLE exemptions (
    exemption_id TEXT PRIMARY KEY,
    install_id TEXT NOT NULL,
    until TEXT NOT NULL,
    ends_at BIGINT NOT NULL,
    reason TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    document TEXT NOT NULL
);
CREATE INDEX exemptions_by_install ON exemptions(install_id, granted_at);
"#,
    // An install's customer and token are checked by the code that binds it (the token was just
    // read, and tokens and customers are never deleted), not by foreign keys: each key check
    // locks the parent row, so every first upload of a customer's fleet took a lock on the same
    // customer row and the same token row, which under concurrent enrolments became a
    // MultiXact per lock and a WAL record per row lock (about 8 % of the PostgreSQL + Garage
    // bench's throughput on 2 cores).
    r#"
ALTER TABLE installs DROP CONSTRAINT IF EXISTS installs_customer_fkey;
ALTER TABLE installs DROP CONSTRAINT IF EXISTS installs_token_id_fkey;
"#,
];
