//! The database going away mid-service (PostgreSQL runs only): requests are answered with a
//! 503 problem and Retry-After — never with a wrong verification answer — and service
//! resumes by itself when the database is back.

use crate::helpers::*;
use otpd_core::testing::{TEST_DATABASE_URL, TestDatabase};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::{Connection, Executor};

async fn admin_sql(sql: String) {
    let mut conn = sqlx::AnyConnection::connect(&std::env::var(TEST_DATABASE_URL).unwrap())
        .await
        .unwrap();
    conn.execute(sqlx::AssertSqlSafe(sql)).await.unwrap();
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set OTPD_TEST_DATABASE_URL and pass --include-ignored (.ci/run does)"]
async fn a_lost_database_is_a_503_and_service_resumes() {
    assert!(TestDatabase::postgres_run(), "set OTPD_TEST_DATABASE_URL");
    sqlx::any::install_default_drivers();
    let app = spawn_app().await;
    let token = app.account("olga", &[]).await;
    let (secret, _) = app.enroll("olga", &token).await;
    let name = app
        .database_url()
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();

    // Refuse new connections and cut the open ones.
    admin_sql(format!(
        "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"
    ))
    .await;
    admin_sql(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .await;
    let code = app.code(&secret);
    let r = app
        .request(
            Method::POST,
            "/api/v1/accounts/olga/totp/verify",
            Some(&app.admin),
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "1");
    let problem: serde_json::Value = r.json().await.unwrap();
    assert_eq!(problem["code"], "storage_unavailable", "{problem}");
    for probe in ["/readyz", "/healthz/ready"] {
        let ready = app.request(Method::GET, probe, None, None).await;
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE, "{probe}");
        let problem: serde_json::Value = ready.json().await.unwrap();
        assert_eq!(problem["code"], "not_ready", "{problem}");
        assert_eq!(
            problem["detail"], "the database does not answer",
            "{problem}"
        );
    }
    // Liveness never asks the database: the process is fine, only not ready.
    let live = app.request(Method::GET, "/healthz/live", None, None).await;
    assert_eq!(live.status(), StatusCode::OK);

    // Back: the same code is still unused, so it is accepted, once.
    admin_sql(format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")).await;
    let v = app
        .call(
            Method::POST,
            "/api/v1/accounts/olga/totp/verify",
            Some(&app.admin),
            Some(json!({"code": code})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(v["valid"], true, "{v}");
    let v = app
        .call(
            Method::POST,
            "/api/v1/accounts/olga/totp/verify",
            Some(&app.admin),
            Some(json!({"code": code})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(v["reason"], "replayed", "{v}");
}
