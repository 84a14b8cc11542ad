//! Which SQLite failures mean "try later" rather than "this write is wrong": a
//! full disk, a database another process holds past the busy timeout, an I/O
//! error (a failing or vanished disk), memory SQLite could not get. Callers see
//! them as `store::Unavailable` (503 with `Retry-After` on every route), since
//! the same request can succeed once the disk or the lock is free.

use rusqlite::ErrorCode;

use crate::store::Unavailable;

/// Whether `error` is a SQLite failure that may clear by itself.
pub fn is_try_later(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(
            ErrorCode::DiskFull
                | ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::OutOfMemory
        )
    )
}

/// Whether any cause in `error`'s chain is a try-later SQLite failure.
pub fn chain_is_try_later(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<rusqlite::Error>()
            .is_some_and(is_try_later)
    })
}

/// `error`, marked `Unavailable` when it means "try later".
pub fn mark(error: anyhow::Error) -> anyhow::Error {
    if chain_is_try_later(&error) {
        error.context(Unavailable)
    } else {
        error
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context;
    use rusqlite::ffi;

    use super::*;
    use crate::store::is_unavailable;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    #[test]
    fn full_busy_locked_and_io_errors_are_unavailable_under_later_contexts() {
        for code in [
            ffi::SQLITE_FULL,
            ffi::SQLITE_BUSY,
            ffi::SQLITE_LOCKED,
            ffi::SQLITE_IOERR,
            ffi::SQLITE_IOERR_FSYNC,
        ] {
            let error = mark(anyhow::Error::from(failure(code)).context("committing"));
            assert!(is_unavailable(&error), "{code}: {error:#}");
        }
    }

    #[test]
    fn a_failing_statement_stays_an_error_of_its_own() {
        for code in [
            ffi::SQLITE_CONSTRAINT,
            ffi::SQLITE_ERROR,
            ffi::SQLITE_CORRUPT,
        ] {
            let error = mark(anyhow::Error::from(failure(code)));
            assert!(!is_unavailable(&error), "{code}: {error:#}");
        }
        let plain = mark(
            Err::<(), _>(anyhow::anyhow!("no such column"))
                .context("x")
                .unwrap_err(),
        );
        assert!(!is_unavailable(&plain));
    }
}
