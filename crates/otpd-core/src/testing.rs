//! Test support (feature `testing`): a throw-away database per test, so every suite runs
//! against SQLite always and against PostgreSQL whenever `OTPD_TEST_DATABASE_URL` is set.
//!
//! With `OTPD_TEST_DATABASE_URL=postgres://user@host/db`, each [`TestDatabase`] creates a new
//! database `otpd_t_<uuid>` on that server (connecting through `db`) and drops it when the
//! value is dropped; `.ci/run` also drops any `otpd_t_%` left by a killed run. Without it,
//! the database is the SQLite file `otpd.db` in the directory the test gives.

use crate::CoreResult;
use sqlx::{Connection, Executor};
use std::path::Path;

/// The environment variable naming the PostgreSQL server for test runs.
pub const TEST_DATABASE_URL: &str = "OTPD_TEST_DATABASE_URL";

/// One test's own database.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    /// A fresh database: on PostgreSQL if `OTPD_TEST_DATABASE_URL` is set, else a SQLite
    /// file in `dir`.
    pub async fn create(dir: &Path) -> CoreResult<Self> {
        let Ok(server) = std::env::var(TEST_DATABASE_URL) else {
            return Ok(TestDatabase {
                url: format!("sqlite://{}?mode=rwc", dir.join("otpd.db").display()),
                postgres: None,
            });
        };
        let name = format!("otpd_t_{}", uuid::Uuid::new_v4().simple());
        sqlx::any::install_default_drivers();
        let mut admin = sqlx::AnyConnection::connect(&server).await?;
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await?;
        admin.close().await?;
        Ok(TestDatabase {
            url: with_database(&server, &name),
            postgres: Some((server, name)),
        })
    }

    /// The URL to give `Db::connect` or `--database-url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether this is a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// Whether the test run targets PostgreSQL.
    pub fn postgres_run() -> bool {
        std::env::var_os(TEST_DATABASE_URL).is_some()
    }
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((server, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot block on async work: a thread
        // with its own runtime does the DROP and is waited for, so the database is gone
        // when the test ends.
        let dropper = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut admin) = sqlx::AnyConnection::connect(&server).await {
                    let _ = admin
                        .execute(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = dropper.join();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::with_database;

    #[test]
    fn database_names_are_replaced() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    }
}
