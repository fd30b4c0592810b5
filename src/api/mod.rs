//! The agent's wire documents. Today: the status document shared by `callhome status --json`
//! and (later) `GET /api/v1/status`. The localhost HTTP server will live here too; domain types
//! stay free of `Serialize`, and this module maps them to the JSON the outside world reads.

pub mod dto;
