//! What the callhome agent and its receiver share, and nothing else: the bundle manifest
//! ([`manifest`]), upload receipts and their Ed25519 signatures ([`receipt`]), manual reporting's
//! export and receipt documents ([`export`]), exemptions from the reporting rule
//! ([`exemption`]), protocol v1's header names ([`headers`]), UTC times as they travel
//! ([`time`]) and durable file writes for the key files both keep ([`fs`]).
//!
//! No async runtime, no HTTP client or server: both sides speak these formats over their own
//! transport, so neither links the other.

pub mod exemption;
pub mod export;
pub mod fs;
pub mod headers;
pub mod manifest;
pub mod receipt;
pub mod time;
