//! The writes of the verification path — a step claim, a failure count, an audit row — and
//! group commit on SQLite (issue 6).
//!
//! SQLite with `synchronous=FULL` syncs the disk at every commit, so one transaction per
//! verification caps throughput at the disk's sync rate. On SQLite every verification write
//! therefore goes to one writer task, which takes every write waiting at that moment, applies
//! them in one transaction and commits once; each request is answered only after that commit
//! returned, so an acknowledged code is never replayable after a power loss. While one batch
//! commits, the next one gathers. If a batch fails, its writes are applied again one by one,
//! so one bad write cannot fail the others.
//!
//! PostgreSQL needs none of this: each verification keeps its own short transaction, and the
//! server's own group commit (`commit_delay`) batches the flushes of concurrent commits.

use super::{INSERT_AUDIT, Outcome};
use crate::store::Db;
use crate::{CoreError, CoreResult, RequestMeta};
use sqlx::AnyConnection;
use tokio::sync::{mpsc, oneshot};

/// Writes gathered into one transaction at most.
const MAX_BATCH: usize = 512;
/// Writes waiting for the writer at most (senders wait beyond that).
const QUEUE: usize = 4096;

/// An audit row, owned so that it can travel to the writer.
pub(crate) struct AuditRow {
    at: i64,
    actor: String,
    account: Option<String>,
    action: &'static str,
    outcome: Outcome,
    reason: Option<String>,
    meta: RequestMeta,
}

impl AuditRow {
    /// The row of `event`, at `at`.
    pub(crate) fn of(at: i64, event: &super::Audit<'_>) -> Self {
        AuditRow {
            at,
            actor: event.actor.to_owned(),
            account: event.account.map(str::to_owned),
            action: event.action,
            outcome: event.outcome,
            reason: event.reason.map(str::to_owned),
            meta: event.meta.clone(),
        }
    }

    pub(crate) fn new(
        at: i64,
        actor: &str,
        account: &str,
        action: &'static str,
        outcome: Outcome,
        reason: &str,
        meta: &RequestMeta,
    ) -> Self {
        AuditRow {
            at,
            actor: actor.to_owned(),
            account: Some(account.to_owned()),
            action,
            outcome,
            reason: Some(reason.to_owned()),
            meta: meta.clone(),
        }
    }
}

/// A failed verification to count: the one that reaches `max_failures` locks the
/// authenticator until `lock_until` and starts the count afresh.
pub(crate) struct FailureCount {
    pub auth_id: String,
    pub max_failures: i64,
    pub lock_until: i64,
}

/// One write of the verification path.
// Moved once, into the writer's queue; boxing the large variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum VerifyWrite {
    /// Claim `step` (by one conditional UPDATE). If another request claimed it (or a later
    /// step) first, the attempt counts as a replay failure instead.
    Claim {
        auth_id: String,
        step: i64,
        drift: i64,
        now: i64,
        failure: FailureCount,
        success: AuditRow,
        replayed: AuditRow,
    },
    /// A refused code.
    Failure {
        count: FailureCount,
        audit: AuditRow,
    },
    /// An outcome that changes nothing but the audit trail.
    Audit(AuditRow),
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// The step is ours.
    Claimed,
    /// Someone claimed it first (counted as a failure).
    Replayed,
    /// Done.
    Done,
}

pub(crate) async fn insert_audit(
    conn: &mut AnyConnection,
    row: &AuditRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(INSERT_AUDIT)
        .bind(row.at)
        .bind(row.actor.clone())
        .bind(row.account.clone())
        .bind(row.action)
        .bind(row.outcome.as_str())
        .bind(row.reason.clone())
        .bind(row.meta.door.as_str())
        .bind(row.meta.remote_addr.clone())
        .bind(row.meta.request_id.clone())
        .execute(conn)
        .await?;
    Ok(())
}

async fn count_failure(conn: &mut AnyConnection, f: &FailureCount) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE authenticators SET \
         locked_until = CASE WHEN failed_attempts + 1 >= $1 THEN $2 ELSE locked_until END, \
         failed_attempts = CASE WHEN failed_attempts + 1 >= $1 THEN 0 ELSE failed_attempts + 1 END \
         WHERE id = $3",
    )
    .bind(f.max_failures)
    .bind(f.lock_until)
    .bind(f.auth_id.clone())
    .execute(conn)
    .await?;
    Ok(())
}

/// Applies one write inside the caller's transaction.
async fn apply(conn: &mut AnyConnection, write: &VerifyWrite) -> Result<Written, sqlx::Error> {
    match write {
        VerifyWrite::Claim {
            auth_id,
            step,
            drift,
            now,
            failure,
            success,
            replayed,
        } => {
            let claimed = sqlx::query(
                "UPDATE authenticators SET last_used_step = $1, drift = $2, failed_attempts = 0, locked_until = NULL, last_used_at = $3 \
                 WHERE id = $4 AND state = 'active' AND enabled = 1 AND (last_used_step IS NULL OR last_used_step < $1) \
                 AND (locked_until IS NULL OR locked_until <= $3)",
            )
            .bind(*step)
            .bind(*drift)
            .bind(*now)
            .bind(auth_id.clone())
            .execute(&mut *conn)
            .await?;
            if claimed.rows_affected() == 0 {
                count_failure(conn, failure).await?;
                insert_audit(conn, replayed).await?;
                Ok(Written::Replayed)
            } else {
                insert_audit(conn, success).await?;
                Ok(Written::Claimed)
            }
        }
        VerifyWrite::Failure { count, audit } => {
            count_failure(conn, count).await?;
            insert_audit(conn, audit).await?;
            Ok(Written::Done)
        }
        VerifyWrite::Audit(row) => {
            insert_audit(conn, row).await?;
            Ok(Written::Done)
        }
    }
}

/// Applies one write in a transaction of its own.
pub(crate) async fn apply_alone(db: &Db, write: &VerifyWrite) -> CoreResult<Written> {
    let mut tx = db.begin().await?;
    let written = apply(&mut tx, write).await?;
    tx.commit().await?;
    Ok(written)
}

type Job = (VerifyWrite, oneshot::Sender<CoreResult<Written>>);

/// The handle of the SQLite writer task. Dropping the last handle ends the task.
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the writer on `db`'s write pool.
    pub(crate) fn start(db: Db) -> Self {
        let (queue, jobs) = mpsc::channel(QUEUE);
        tokio::spawn(writer(db, jobs));
        GroupCommit { queue }
    }

    /// Hands `write` to the writer and waits until its batch is committed.
    pub(crate) async fn submit(&self, write: VerifyWrite) -> CoreResult<Written> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((write, reply))
            .await
            .map_err(|_| CoreError::Internal("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| CoreError::Internal("the writer dropped a write".into()))?
    }
}

async fn writer(db: Db, mut jobs: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match apply_batch(&db, &batch).await {
            Ok(results) => {
                for ((_, reply), written) in batch.drain(..).zip(results) {
                    let _ = reply.send(Ok(written));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, writes = batch.len(), "batch failed; applying its writes one by one");
                for (write, reply) in batch.drain(..) {
                    let _ = reply.send(apply_alone(&db, &write).await);
                }
            }
        }
    }
}

async fn apply_batch(db: &Db, batch: &[Job]) -> CoreResult<Vec<Written>> {
    let mut tx = db.begin().await?;
    let mut results = Vec::with_capacity(batch.len());
    for (write, _) in batch {
        results.push(apply(&mut tx, write).await?);
    }
    tx.commit().await?;
    Ok(results)
}
