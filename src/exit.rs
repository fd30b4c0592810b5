//! Exit codes (README.md lists them).
//! The `callhome` and `callhome-tray` binaries share them; only their `main`s map errors to them.

/// Something failed that is not one of the cases below.
pub const FAILURE: u8 = 1;
/// Bad command-line usage (clap's own).
pub const USAGE: u8 = 2;
/// The configuration is invalid.
pub const CONFIG: u8 = 3;
/// An upload did not go through (the bundle is kept or quarantined).
pub const UPLOAD_FAILED: u8 = 4;
/// Another agent already runs on the data directory.
pub const BUSY: u8 = 5;
/// The ledger chain or a receipt does not verify.
pub const LEDGER: u8 = 6;
/// The request was refused by the rules (such as turning telemetry off).
pub const REFUSED: u8 = 7;
/// `test-connection` found a step that fails.
pub const CONNECTION: u8 = 8;
