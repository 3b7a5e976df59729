//! Storage settings that only PostgreSQL has: TLS to the database (rustls, `sslmode`).

use otpd_core::testing::TestDatabase;
use otpd_core::*;
use sqlx::Connection;

#[tokio::test]
#[ignore = "needs PostgreSQL: set OTPD_TEST_DATABASE_URL and pass --include-ignored (.ci/run does)"]
async fn tls_to_postgresql_follows_sslmode() {
    assert!(TestDatabase::postgres_run(), "set OTPD_TEST_DATABASE_URL");
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::create(dir.path()).await.unwrap();
    sqlx::any::install_default_drivers();
    let mut probe = sqlx::AnyConnection::connect(db.url()).await.unwrap();
    let ssl: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&mut probe)
        .await
        .unwrap();
    assert_eq!(
        ssl, "on",
        "this test needs a PostgreSQL server with ssl = on (Debian's default)"
    );
    let with = |mode: &str| {
        let sep = if db.url().contains('?') { '&' } else { '?' };
        format!("{}{sep}sslmode={mode}", db.url())
    };
    // Encrypted when asked for ...
    let encrypted = Db::connect(&with("require"), &DbOptions::default())
        .await
        .unwrap();
    encrypted.ping().await.unwrap();
    encrypted.close().await;
    // ... and the certificate is checked when asked for (the test server's is self-signed).
    let verified = Db::connect(&with("verify-full"), &DbOptions::default()).await;
    assert!(
        matches!(verified, Err(CoreError::Storage(_))),
        "{verified:?}"
    );
}
