//! Durable-file helpers: the ones shared with the receiver ([`callhome_protocol::fs`]: atomic
//! replace, exclusive private files, directory fsync, SHA-256), re-exported under the agent's
//! name for them.

pub use callhome_protocol::fs::*;
