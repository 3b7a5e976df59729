//! Storage: sqlx `Any` over SQLite or PostgreSQL, one SQL text per operation (`$n`
//! placeholders), migrations per backend chosen at run time.
//!
//! On SQLite, writes go through a pool of exactly one connection: SQLite has one writer
//! anyway, and queueing in-process avoids `SQLITE_BUSY` from lock upgrades. Reads use their
//! own pool and never wait for the writer (WAL). `synchronous=FULL` is set on every
//! connection: an acknowledged code must never become replayable after a power loss.
//!
//! The verification hot path on SQLite bypasses sqlx's thread hand-offs with synchronous
//! connections to the same file ([`lite`]). The write pool's one connection stays the
//! process's write token: the group-commit writer holds it for each batch, so the two kinds
//! of writers in one process take turns in the pool's fair queue and never contend for
//! SQLite's lock.

pub(crate) mod lite;

pub(crate) use lite::Lite;

use crate::CoreResult;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, ConnectOptions, Executor, Row};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Which database is behind the pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite (one instance).
    Sqlite,
    /// PostgreSQL (several instances may share it).
    Postgres,
}

/// Connection pools of the database.
#[derive(Debug, Clone)]
pub struct Db {
    /// Reads; never blocked by the writer.
    pub(crate) read: AnyPool,
    /// Writes and every transaction.
    pub(crate) write: AnyPool,
    backend: Backend,
    /// SQLite only: the hot path's synchronous connections.
    lite: Option<Arc<Lite>>,
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Maximum connections of the read pool (and of the only pool on PostgreSQL).
    pub max_connections: u32,
    /// How long to wait for a free connection before failing (503).
    pub acquire_timeout: Duration,
    /// The longest a statement may run (PostgreSQL `statement_timeout`), and on SQLite how
    /// long a writer waits for another process's write lock (`busy_timeout`).
    pub statement_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

impl Db {
    /// Connects to `url` (`sqlite://path?mode=rwc` or `postgres://…`) and applies the
    /// migrations of its backend.
    pub async fn connect(url: &str, options: &DbOptions) -> CoreResult<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(crate::CoreError::invalid(
                "database url",
                "must start with sqlite: or postgres:",
            ));
        };
        let connect = AnyConnectOptions::from_str(url)?.disable_statement_logging();
        let timeout_ms = options.statement_timeout.as_millis().max(1);
        let db = match backend {
            Backend::Sqlite => {
                let busy = format!("PRAGMA busy_timeout = {timeout_ms}");
                let pool = |max: u32| {
                    let busy = busy.clone();
                    AnyPoolOptions::new()
                        .max_connections(max)
                        // A local file does not go stale; a ping per acquire would cost a
                        // hand-off to the connection's thread each time.
                        .test_before_acquire(false)
                        .acquire_timeout(options.acquire_timeout)
                        .after_connect(move |conn, _| {
                            let busy = busy.clone();
                            Box::pin(async move {
                                conn.execute("PRAGMA synchronous = FULL").await?;
                                conn.execute("PRAGMA foreign_keys = ON").await?;
                                conn.execute(sqlx::AssertSqlSafe(busy)).await?;
                                Ok(())
                            })
                        })
                };
                let write = pool(1).connect_with(connect.clone()).await?;
                // journal_mode is persistent and cannot change inside a transaction, so it is
                // set here once rather than in a migration.
                write.execute("PRAGMA journal_mode = WAL").await?;
                let read = pool(options.max_connections.max(1))
                    .connect_with(connect)
                    .await?;
                let path = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
                    .get_filename()
                    .to_owned();
                let db = Db {
                    read,
                    write,
                    backend,
                    lite: None,
                };
                // The synchronous connections open the file only once it is migrated.
                db.migrate().await?;
                let readers = std::thread::available_parallelism()
                    .map_or(2, |n| n.get())
                    .clamp(1, options.max_connections.max(1) as usize);
                let lite = Lite::open(&path, readers, options.statement_timeout)?;
                return Ok(Db {
                    lite: Some(Arc::new(lite)),
                    ..db
                });
            }
            Backend::Postgres => {
                let timeout = format!("SET statement_timeout = {timeout_ms}");
                let pool = AnyPoolOptions::new()
                    .max_connections(options.max_connections.max(2))
                    .acquire_timeout(options.acquire_timeout)
                    .after_connect(move |conn, _| {
                        let timeout = timeout.clone();
                        Box::pin(async move {
                            conn.execute(sqlx::AssertSqlSafe(timeout)).await?;
                            Ok(())
                        })
                    })
                    .connect_with(connect)
                    .await?;
                Db {
                    read: pool.clone(),
                    write: pool,
                    backend,
                    lite: None,
                }
            }
        };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> CoreResult<()> {
        // Both migrators take a lock (an advisory lock on PostgreSQL), so instances started
        // together migrate one at a time.
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.write).await?,
            Backend::Postgres => {
                sqlx::migrate!("migrations/postgres")
                    .run(&self.write)
                    .await?
            }
        }
        Ok(())
    }

    /// Begins a write transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): another process on the same file (the CLI beside `otpd serve`) then makes
    /// it wait out `busy_timeout` instead of failing with `SQLITE_BUSY_SNAPSHOT` when a
    /// transaction that has read tries to write.
    pub(crate) async fn begin(&self) -> CoreResult<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.write.begin().await?,
        })
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Each pool's name (`read`, `write`), open connections and idle ones (metrics).
    pub(crate) fn pool_sizes(&self) -> [(&'static str, u32, usize); 2] {
        [
            ("read", self.read.size(), self.read.num_idle()),
            ("write", self.write.size(), self.write.num_idle()),
        ]
    }

    /// SQLite's synchronous connections (none on PostgreSQL).
    pub(crate) fn lite(&self) -> Option<&Arc<Lite>> {
        self.lite.as_ref()
    }

    /// The one row `sql` (a SELECT with one `$1` parameter) selects for `key`, decoded by
    /// `decode`: the point reads of the hot path. On SQLite a synchronous read on the
    /// calling thread ([`Lite::row_by_key`]); on PostgreSQL a read from the pool.
    pub(crate) async fn row_by_key<T>(
        &self,
        sql: &'static str,
        key: &str,
        decode: impl FnOnce(&dyn Columns) -> CoreResult<T>,
    ) -> CoreResult<Option<T>> {
        if let Some(lite) = &self.lite {
            return lite.row_by_key(sql, key, decode);
        }
        let row = sqlx::query(sql)
            .bind(key.to_owned())
            .fetch_optional(&self.read)
            .await?;
        row.map(|row| decode(&row)).transpose()
    }

    /// The credential epoch (migration 0005): moved forward by every change to what an API
    /// key authenticates.
    pub(crate) async fn credential_epoch(&self) -> CoreResult<i64> {
        const SQL: &str = "SELECT epoch FROM credential_epoch WHERE id = 1";
        if let Some(lite) = &self.lite {
            return lite.scalar(SQL);
        }
        Ok(sqlx::query_scalar(SQL).fetch_one(&self.read).await?)
    }

    /// Whether the database already holds data keys — values sealed under some master key
    /// (so a master key must never be generated for it).
    pub async fn holds_sealed_data(&self) -> CoreResult<bool> {
        let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM data_keys")
            .fetch_one(&self.read)
            .await?;
        Ok(keys > 0)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> CoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    /// Closes the pools (graceful shutdown).
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

/// A result row read by column name, from either driver, so that each kind of row is
/// decoded by one function.
pub(crate) trait Columns {
    fn text(&self, name: &str) -> CoreResult<String>;
    fn opt_text(&self, name: &str) -> CoreResult<Option<String>>;
    fn int(&self, name: &str) -> CoreResult<i64>;
    fn opt_int(&self, name: &str) -> CoreResult<Option<i64>>;
    fn blob(&self, name: &str) -> CoreResult<Vec<u8>>;
}

impl Columns for AnyRow {
    fn text(&self, name: &str) -> CoreResult<String> {
        Ok(self.try_get(name)?)
    }
    fn opt_text(&self, name: &str) -> CoreResult<Option<String>> {
        Ok(self.try_get(name)?)
    }
    fn int(&self, name: &str) -> CoreResult<i64> {
        Ok(self.try_get(name)?)
    }
    fn opt_int(&self, name: &str) -> CoreResult<Option<i64>> {
        Ok(self.try_get(name)?)
    }
    fn blob(&self, name: &str) -> CoreResult<Vec<u8>> {
        Ok(self.try_get(name)?)
    }
}

/// `true`/`false` as the 0/1 BIGINT every boolean column holds (sqlx `Any` cannot decode
/// SQLite booleans).
pub(crate) fn flag(b: bool) -> i64 {
    i64::from(b)
}

/// Whether an operation that failed with `e` may simply be run again: the database rolled
/// the whole transaction back (PostgreSQL serialization failure or deadlock; SQLite still
/// busy after `busy_timeout`), so nothing of it happened. A lost connection is not
/// retryable: a COMMIT may have succeeded without its answer arriving, and a verification
/// run twice would then answer "replayed" for a code it had accepted.
pub(crate) fn is_retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            Some("40001" | "40P01" | "5" | "261" | "517" | "773")
        ),
        _ => false,
    }
}

/// Whether a database error is a unique-constraint violation (mapped to `Conflict`).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}
