//! Synchronous SQLite connections for the verification hot path (issue 6).
//!
//! sqlx runs every SQLite connection on a worker thread of its own and hands each
//! statement, and each row, across threads. On the verification path those hand-offs cost
//! more than SQLite itself: profiled at 7k verifications/s, about 30 % of the server's CPU
//! went to futex wake-ups between the async tasks and the sqlx workers, and the group-commit
//! writer waited on one such round trip per statement of its batch. The hot path therefore
//! talks to the same database file through rusqlite — the same linked SQLite library, so
//! locking between the two sets of connections is SQLite's own:
//!
//! - the point reads of a verification (the API key, the subject) run on the calling thread,
//!   on one of a few read connections kept here: they are index lookups of a few
//!   microseconds, and in WAL mode a reader never waits for a writer;
//! - the group-commit writer (`service::commit`) owns a write connection on a thread of its
//!   own, so that a whole batch runs without one hand-off per statement.
//!
//! Every connection gets the settings of the sqlx ones: `synchronous=FULL` (an acknowledged
//! code must never be replayable after a power loss), `foreign_keys=ON`, the same
//! `busy_timeout` for other processes' write locks.

use super::Columns;
use crate::{CoreError, CoreResult};
use rusqlite::{Connection, OpenFlags, Params};
use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

/// A file's device and inode.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The hot path's connections to one SQLite file.
pub(crate) struct Lite {
    path: PathBuf,
    /// The file's device and inode when it was opened: the open connections keep using that
    /// file even after it is moved or removed, so the path alone says nothing.
    file_id: Option<(u64, u64)>,
    busy: Duration,
    readers: Box<[Mutex<Connection>]>,
    next: AtomicUsize,
}

impl fmt::Debug for Lite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lite")
            .field("path", &self.path)
            .field("readers", &self.readers.len())
            .finish()
    }
}

impl Lite {
    /// Opens `readers` read connections to the (existing, migrated) database at `path`.
    pub(crate) fn open(path: &Path, readers: usize, busy: Duration) -> CoreResult<Self> {
        let readers = (0..readers.max(1))
            .map(|_| open(path, busy).map(Mutex::new))
            .collect::<CoreResult<Vec<_>>>()?;
        Ok(Lite {
            path: path.to_owned(),
            file_id: file_id(path),
            busy,
            readers: readers.into_boxed_slice(),
            next: AtomicUsize::new(0),
        })
    }

    /// Whether the path still names the file the connections have open (readiness: a
    /// database moved, replaced or removed under a running server is not served from).
    pub(crate) fn still_in_place(&self) -> bool {
        self.file_id.is_none() || file_id(&self.path) == self.file_id
    }

    /// A connection of its own for the group-commit writer.
    pub(crate) fn writer(&self) -> CoreResult<Connection> {
        open(&self.path, self.busy)
    }

    /// The one row `sql` (one `$1` parameter) selects for `key`, decoded by `decode`.
    ///
    /// Runs on the calling thread: a point read of microseconds, cheaper than any hand-off.
    pub(crate) fn row_by_key<T>(
        &self,
        sql: &str,
        key: &str,
        decode: impl FnOnce(&dyn Columns) -> CoreResult<T>,
    ) -> CoreResult<Option<T>> {
        let conn = self.reader();
        let mut statement = conn.prepare_cached(sql)?;
        // Taken once per read: rusqlite finds a column by name by asking SQLite for each
        // column's name in turn, which for the twenty columns of a verification's read was
        // a few percent of the server's CPU.
        let names: Vec<String> = statement
            .column_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut rows = statement.query([key])?;
        match rows.next()? {
            Some(row) => Ok(Some(decode(&NamedRow { row, names: &names })?)),
            None => Ok(None),
        }
    }

    /// The one integer the parameterless `sql` selects.
    pub(crate) fn scalar(&self, sql: &str) -> CoreResult<i64> {
        Ok(self
            .reader()
            .prepare_cached(sql)?
            .query_row([], |row| row.get(0))?)
    }

    /// A free read connection, or the next one in turn when all are busy.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        let n = self.readers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            match self.readers[(start + i) % n].try_lock() {
                Ok(conn) => return conn,
                // A panic while a statement ran leaves nothing behind: rusqlite resets
                // statements on drop, and reads hold no transaction.
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.readers[start % n]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn open(path: &Path, busy: Duration) -> CoreResult<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // More statements than the writer and the readers use, so none is ever re-prepared.
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Runs `sql` with `params` and returns how many rows it changed.
pub(crate) fn execute(conn: &Connection, sql: &str, params: impl Params) -> CoreResult<usize> {
    Ok(conn.prepare_cached(sql)?.execute(params)?)
}

/// Runs `sql` with `params` and returns the first column of its first row, if any.
pub(crate) fn query_row<T: rusqlite::types::FromSql>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
) -> CoreResult<Option<T>> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    Ok(match rows.next()? {
        Some(row) => Some(row.get(0)?),
        None => None,
    })
}

/// A rusqlite row with its statement's column names, read by name.
struct NamedRow<'a, 'r> {
    row: &'a rusqlite::Row<'r>,
    names: &'a [String],
}

impl NamedRow<'_, '_> {
    fn get<T: rusqlite::types::FromSql>(&self, name: &str) -> CoreResult<T> {
        let index = self
            .names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| rusqlite::Error::InvalidColumnName(name.to_owned()))?;
        Ok(self.row.get(index)?)
    }
}

impl Columns for NamedRow<'_, '_> {
    fn text(&self, name: &str) -> CoreResult<String> {
        self.get(name)
    }
    fn opt_text(&self, name: &str) -> CoreResult<Option<String>> {
        self.get(name)
    }
    fn int(&self, name: &str) -> CoreResult<i64> {
        self.get(name)
    }
    fn opt_int(&self, name: &str) -> CoreResult<Option<i64>> {
        self.get(name)
    }
    fn blob(&self, name: &str) -> CoreResult<Vec<u8>> {
        self.get(name)
    }
}

/// A rusqlite error in the shape of an sqlx database error, so that one place
/// ([`super::is_retryable`], the front doors' 503) judges storage errors of both drivers.
#[derive(Debug)]
struct LiteError {
    code: Option<i32>,
    message: String,
    source: rusqlite::Error,
}

impl fmt::Display for LiteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LiteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl sqlx::error::DatabaseError for LiteError {
    fn message(&self) -> &str {
        &self.message
    }

    /// The extended result code, as the sqlx SQLite driver reports it.
    fn code(&self) -> Option<Cow<'_, str>> {
        self.code.map(|c| Cow::Owned(c.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use rusqlite::ffi;
        match self.code {
            Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
                sqlx::error::ErrorKind::UniqueViolation
            }
            Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => sqlx::error::ErrorKind::ForeignKeyViolation,
            Some(ffi::SQLITE_CONSTRAINT_NOTNULL) => sqlx::error::ErrorKind::NotNullViolation,
            Some(ffi::SQLITE_CONSTRAINT_CHECK) => sqlx::error::ErrorKind::CheckViolation,
            _ => sqlx::error::ErrorKind::Other,
        }
    }
}

impl From<rusqlite::Error> for CoreError {
    fn from(e: rusqlite::Error) -> Self {
        let code = match &e {
            rusqlite::Error::SqliteFailure(f, _) => Some(f.extended_code),
            _ => None,
        };
        CoreError::Storage(sqlx::Error::Database(Box::new(LiteError {
            code,
            message: e.to_string(),
            source: e,
        })))
    }
}
