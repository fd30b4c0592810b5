//! callhome: a call-home and license-telemetry agent.
//!
//! Layout (ARCHITECTURE.md has the full map and the invariants):
//! - `config`, `programs`: what the administrator configured and consented to;
//! - `collect`: the collectors, which produce a bundle's files;
//! - `licenses`: FlexLM license files, debug-log usage and license events;
//! - `bundle`, `spool`: immutable zip bundles and their on-disk queue;
//! - `store`: SQLite state (settings, schedule, attempts, the ledger);
//! - `upload`: protocol v1 to the receiver (the formats both sides share, receipts among them,
//!   are the `callhome-protocol` crate's; `receipt` and `exemption` re-export its modules);
//! - `schedule`, `compliance`, `clock`: when things run, and the 90-day clock;
//! - `agent`: the wiring that runs it all; `daemon`: the running agent's lifecycle (scheduler, API,
//!   alerts, orderly shutdown); `alerts`: what to tell people, and when;
//! - `api`: the REST API, its wire documents and the web dashboard; `ledger`: checking the sent
//!   ledger end to end.
//!
//! No GUI library is linked here: the tray is the `callhome-tray` crate, a client of this one.

pub mod agent;
pub mod alerts;
pub mod api;
pub mod bundle;
pub mod childenv;
pub mod clock;
pub mod collect;
pub mod compliance;
pub mod config;
pub mod config_edit;
pub mod control;
pub mod daemon;
pub mod datadir;
pub mod exit;
pub mod fsutil;
pub mod ledger;
pub mod licenses;
pub mod logfile;
pub mod manual;
pub mod memory;
pub mod programs;
pub use callhome_protocol::exemption;
pub use callhome_protocol::receipt;
pub mod schedule;
pub mod secrets;
pub mod spool;
pub mod store;
pub mod support;
pub mod tail;
pub mod upload;
#[cfg(windows)]
pub mod winservice;
