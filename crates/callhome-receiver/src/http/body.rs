//! Receiving a request body: hashed on the way and capped, held in memory when small, streamed
//! into the store's spool when not.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tracing::warn;

use super::problem;
use crate::Refusal;
use crate::store::{BundleStore, Incoming};

/// Bodies up to this size are held in memory (each upload slot holds at most this much) and
/// written to the spool by the blocking step that checks and stores them: one switch to a
/// blocking thread instead of one per write. Larger bodies stream to the spool as they come.
const HELD_IN_MEMORY: usize = 64 * 1024;

/// Where a received body is.
pub(super) enum Spooled {
    /// A small body, not yet written.
    Memory(Vec<u8>),
    /// A body written in the store's incoming folder (fsynced when the store needs it).
    File(Incoming),
}

/// A body received, its SHA-256 computed on the way.
pub(super) struct Received {
    body: Spooled,
    pub(super) sha256: String,
    pub(super) size: u64,
}

impl Received {
    /// The body as a file in the spool (blocking: call it where the bundle is checked).
    pub(super) fn into_incoming(self, store: &BundleStore) -> Result<(Incoming, String), Refusal> {
        let incoming = match self.body {
            Spooled::File(incoming) => incoming,
            Spooled::Memory(bytes) => store.incoming_holding(bytes)?,
        };
        Ok((incoming, self.sha256))
    }
}

/// Receives `body`, hashing it, refusing it past `max` bytes: held in memory up to
/// [`HELD_IN_MEMORY`], streamed into a new incoming file beyond.
pub(super) async fn receive(store: &BundleStore, body: Body, max: u64, what: &str) -> Result<Received, Response> {
    let internal = |e: std::io::Error| {
        warn!("cannot receive a body: {e}");
        problem(StatusCode::INTERNAL_SERVER_ERROR, &format!("cannot store the {what}: {e}"))
    };
    let mut hash = Sha256::new();
    let mut size = 0u64;
    let mut held = Vec::new();
    let mut spooled: Option<(Incoming, tokio::io::BufWriter<tokio::fs::File>)> = None;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| problem(StatusCode::BAD_REQUEST, &format!("reading the body: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        size += data.len() as u64;
        if size > max {
            return Err(problem(StatusCode::PAYLOAD_TOO_LARGE, &format!("{what}s are limited to {max} bytes")));
        }
        hash.update(&data);
        match &mut spooled {
            Some((_, out)) => out.write_all(&data).await.map_err(internal)?,
            None if held.len() + data.len() <= HELD_IN_MEMORY => held.extend_from_slice(&data),
            None => {
                let (incoming, file) = store.incoming().map_err(internal)?;
                let mut out = tokio::io::BufWriter::with_capacity(128 * 1024, tokio::fs::File::from_std(file));
                out.write_all(&std::mem::take(&mut held)).await.map_err(internal)?;
                out.write_all(&data).await.map_err(internal)?;
                spooled = Some((incoming, out));
            }
        }
    }
    let body = match spooled {
        Some((incoming, mut out)) => {
            out.flush().await.map_err(internal)?;
            if store.spool_copy_is_stored() {
                out.into_inner().sync_all().await.map_err(internal)?;
            }
            Spooled::File(incoming)
        }
        None => Spooled::Memory(held),
    };
    Ok(Received { body, sha256: hex::encode(hash.finalize()), size })
}
