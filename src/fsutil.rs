//! Durable-file helpers, and telling a full disk from an error's causes. The durable writes are
//! the ones shared with the receiver ([`callhome_protocol::fs`]: atomic replace, exclusive
//! private files, directory fsync, SHA-256), re-exported under the agent's name for them.

use std::error::Error;
use std::io;

pub use callhome_protocol::fs::*;

/// An error and its causes, outermost first. An I/O error that wraps another error
/// (`io::Error::other(e)`, tokio-rustls's TLS errors) is followed into that error: its own
/// `source()` would skip it.
pub fn causes<'a>(e: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(e), |&cur: &&'a (dyn Error + 'static)| {
        match cur.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn Error + 'static)),
            None => cur.source(),
        }
    })
}

/// Whether a full disk caused `e`: an I/O error of kind `StorageFull` (ENOSPC) or SQLite's
/// `SQLITE_FULL` anywhere among its causes.
pub fn is_disk_full(e: &(dyn Error + 'static)) -> bool {
    causes(e).any(|c| {
        c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::StorageFull)
            || c.downcast_ref::<rusqlite::Error>()
                .is_some_and(|s| s.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_found_among_the_causes_and_nothing_else_is_one() {
        let enospc = || io::Error::from(io::ErrorKind::StorageFull);
        assert!(is_disk_full(&enospc()));
        // Wrapped as zip and bundle writing wrap it: io::Error::other(ZipError::Io(ENOSPC)).
        assert!(is_disk_full(&io::Error::other(zip::result::ZipError::Io(enospc()))));
        let sqlite_full = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL), None);
        assert!(is_disk_full(&sqlite_full));
        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None);
        assert!(!is_disk_full(&busy));
        assert!(!is_disk_full(&io::Error::other("database or disk is full")), "text is not a cause");
    }
}
