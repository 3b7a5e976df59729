//! Backups of the embedded SQLite database while servers run, and the checks a copy must
//! pass before it may replace a database (issue 20). PostgreSQL deployments use `pg_dump`
//! (docs/deployment.md).
//!
//! The copy is made with SQLite's online backup API (`sqlite3_backup_step`): page by page
//! from a consistent snapshot, restarting by itself when a writer changes a page it has
//! copied — never a file copy of a live WAL database, which can miss committed pages that
//! are still in the `-wal` file.

use crate::{CoreError, CoreResult};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// What a backup or a check found in a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// The copy's size, in bytes.
    pub bytes: u64,
    /// Accounts in it.
    pub accounts: i64,
    /// The ids of the data keys it holds (hex, as `otpd keys status` shows them).
    pub data_keys: Vec<String>,
}

/// Copies the live database `source` into the new file `target` (which must not exist),
/// then checks the copy ([`check_copy`]). The copy is one step of SQLite's online backup: a
/// read transaction on the source from start to end, which in WAL mode never blocks the
/// servers' writers — copied in smaller steps, every write in between would restart it, and
/// a busy database would never finish. `progress(bytes_done, bytes_total)` is called before
/// and after. The copy is owner-only (0600): it holds sealed secrets. On failure the target
/// is removed.
pub fn copy_sqlite(
    source: &Path,
    target: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> CoreResult<CopyReport> {
    create_owner_only(target)?;
    let copied = copy_into(source, target, progress).and_then(|()| check_copy(target));
    if copied.is_err() {
        let _ = std::fs::remove_file(target);
        let mut journal = target.as_os_str().to_owned();
        journal.push("-journal");
        let _ = std::fs::remove_file(journal);
    }
    copied
}

fn copy_into(source: &Path, target: &Path, progress: &mut dyn FnMut(u64, u64)) -> CoreResult<()> {
    use rusqlite::backup::{Backup, StepResult};
    let from = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(lite_error)?;
    from.busy_timeout(Duration::from_secs(10))
        .map_err(lite_error)?;
    let total = std::fs::metadata(source).map_or(0, |m| m.len());
    progress(0, total);
    let mut to = Connection::open(target).map_err(lite_error)?;
    {
        let backup = Backup::new(&from, &mut to).map_err(lite_error)?;
        loop {
            match backup.step(-1).map_err(lite_error)? {
                StepResult::Done => break,
                // Another connection holds a lock the first page needs: wait for it.
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
    // The copy is a database of its own: no WAL to carry beside it.
    to.pragma_update(None, "journal_mode", "DELETE")
        .map_err(lite_error)?;
    drop(to);
    let done = std::fs::metadata(target).map_or(total, |m| m.len());
    progress(done, done);
    Ok(())
}

/// Checks that `path` is a whole otpd database: SQLite's `integrity_check` passes, it has
/// data keys, and every sealed value names one of them. Whether the configured master key
/// opens those keys is for [`crate::Service::new`] and [`crate::Service::readiness`] to
/// tell.
pub fn check_copy(path: &Path) -> CoreResult<CopyReport> {
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(lite_error)?;
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .map_err(not_otpd)?;
    if integrity != "ok" {
        return Err(CoreError::invalid(
            "backup",
            format!("the copy is damaged (integrity_check: {integrity})"),
        ));
    }
    let keys: Vec<i64> = conn
        .prepare("SELECT id FROM data_keys ORDER BY id")
        .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
        .map_err(not_otpd)?;
    if keys.is_empty() {
        return Err(CoreError::invalid(
            "backup",
            "the copy holds no data key: it is not an otpd database that was ever started",
        ));
    }
    let orphans: i64 = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM authenticators WHERE key_id NOT IN (SELECT id FROM data_keys)) \
             + (SELECT COUNT(*) FROM recovery_codes WHERE key_id NOT IN (SELECT id FROM data_keys))",
            [],
            |row| row.get(0),
        )
        .map_err(not_otpd)?;
    if orphans > 0 {
        return Err(CoreError::invalid(
            "backup",
            format!("{orphans} sealed values name a data key the copy does not hold"),
        ));
    }
    let accounts: i64 = conn
        .query_row("SELECT COUNT(*) FROM accounts", [], |row| row.get(0))
        .map_err(not_otpd)?;
    let bytes = std::fs::metadata(path)
        .map_err(|e| CoreError::Internal(format!("reading {}: {e}", path.display()).into()))?
        .len();
    Ok(CopyReport {
        bytes,
        accounts,
        data_keys: keys
            .iter()
            .map(|id| crate::seal::hex_id(u32::try_from(*id).unwrap_or(0)))
            .collect(),
    })
}

/// Folds the WAL of the database at `path` into the file and leaves it in rollback-journal
/// mode, so that the file alone is the whole database (before it is moved or renamed). Waits
/// up to 5 s for other connections to it to close (a service's writer thread ends a moment
/// after the service is dropped).
pub fn settle(path: &Path) -> CoreResult<()> {
    let conn = Connection::open(path).map_err(lite_error)?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(lite_error)?;
    for _ in 0..100 {
        match conn.query_row("PRAGMA journal_mode=DELETE", [], |row| {
            row.get::<_, String>(0)
        }) {
            Ok(mode) if mode.eq_ignore_ascii_case("delete") => return Ok(()),
            // Still in WAL mode, or busy: another connection is open yet.
            Ok(_) | Err(rusqlite::Error::SqliteFailure(_, _)) => {}
            Err(e) => return Err(lite_error(e)),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(CoreError::Internal(
        format!("{} is still open elsewhere", path.display()).into(),
    ))
}

fn create_owner_only(path: &Path) -> CoreResult<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|e| CoreError::invalid("backup", format!("cannot create {}: {e}", path.display())))
}

fn lite_error(e: rusqlite::Error) -> CoreError {
    CoreError::Internal(format!("SQLite: {e}").into())
}

/// A copy whose tables are not otpd's (or not a database at all).
fn not_otpd(e: rusqlite::Error) -> CoreError {
    CoreError::invalid("backup", format!("not an otpd database ({e})"))
}
