//! Protocol v1 (agent → receiver): the request's header names and the body's media type.
//!
//! `POST <endpoint>` with the bundle zip as the body; the receiver answers 200/201 with a JSON
//! [`Receipt`](crate::receipt::Receipt) (an [`UploadAnswer`](crate::receipt::UploadAnswer): the
//! receipt, and maybe an exemption granted to the install beside it). DESIGN.md §5 has the status codes and what the agent
//! does with each.

/// The bundle's SHA-256, lowercase hex: a retried upload answers the same receipt.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// The program the bundle belongs to (`telemetry`, `call_home`, `ceip`, `events`, `support`).
pub const PROGRAM: &str = "X-Callhome-Program";
/// The install's random id (from `install.json`).
pub const INSTALL_ID: &str = "X-Callhome-Install-Id";
/// The body's media type.
pub const BUNDLE_CONTENT_TYPE: &str = "application/zip";
/// The agent's ledger head when it sent the bundle: `<rows> <sha256 hex>`
/// ([`LedgerHead`](crate::receipt::LedgerHead)). The receiver signs it into the receipt; an
/// agent that sends it also understands the receipt's later optional fields.
pub const LEDGER_HEAD: &str = "X-Callhome-Ledger-Head";
