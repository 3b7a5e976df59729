//! The writes of the verification path — a step claim, a failure count, an audit row — and
//! group commit on SQLite (issue 6).
//!
//! SQLite with `synchronous=FULL` syncs the disk at every commit, so one transaction per
//! verification caps throughput at the disk's sync rate. On SQLite every verification write
//! therefore goes to one writer, which takes every write waiting at that moment, applies
//! them in one transaction and commits once; each request is answered only after that commit
//! returned, so an acknowledged code is never replayable after a power loss. While one batch
//! commits, the next one gathers. If a batch fails, its writes are applied again one by one,
//! so one bad write cannot fail the others.
//!
//! The writer is a thread with a synchronous connection of its own ([`crate::store::Lite`]):
//! a batch of hundreds of statements then costs no thread hand-off per statement. For each
//! batch it holds the sqlx write pool's only connection, the process's write token, so
//! that the service's other writes wait their turn in the pool's queue instead of spinning
//! on SQLite's lock.
//!
//! PostgreSQL needs none of this: each write is one statement in a transaction of its own
//! (the claim or the count and the audit row joined by a data-modifying `WITH`), so it
//! costs one round trip, and concurrent commits share the server's WAL flushes.

use super::{INSERT_AUDIT, Outcome};
use crate::metrics::Metrics;
use crate::store::{Db, lite};
use crate::{CoreError, CoreResult, RequestMeta, VerifyReason};
use rusqlite::{Connection, TransactionBehavior};
use sqlx::{AnyConnection, Row};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

/// The audit reason of a claim that lost to another request.
const REPLAYED: VerifyReason = VerifyReason::Replayed;
/// The audit reason of an attempt that found the authenticator locked when it was counted.
const LOCKED: VerifyReason = VerifyReason::Locked;

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

/// The authenticator a write changes: its id and, where the read that found it was
/// SQLite's, its rowid. The writer then reaches the row by the rowid, checked against the
/// id (a rowid can be reused after a delete), instead of descending the id's index three
/// times per write: a random index page less for the serial writer to keep or fetch.
pub(crate) struct AuthRef {
    pub id: String,
    /// SQLite only; `None`: found by the id.
    pub row: Option<i64>,
}

/// The failure count of an authenticator: the failure that reaches `max_failures` locks it
/// until `lock_until` and starts the count afresh. A failure is counted only while the
/// authenticator is not locked at `now`; one that finds it locked is answered `locked`.
pub(crate) struct FailureCount {
    pub max_failures: i64,
    pub lock_until: i64,
    pub now: i64,
}

/// One write of the verification path.
// Moved once, into the writer's queue; boxing the large variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum VerifyWrite {
    /// Claim `step` (by one conditional UPDATE) and record `audit`. If another request
    /// claimed it (or a later step) first, the attempt counts as a failure instead, and
    /// `audit` is recorded as a failure for the reason `replayed`; if the authenticator was
    /// locked meanwhile (by the failures of a concurrent burst), nothing is claimed or
    /// counted and `audit` is a failure for the reason `locked`.
    Claim {
        auth: AuthRef,
        step: i64,
        drift: i64,
        now: i64,
        failure: FailureCount,
        audit: AuditRow,
    },
    /// A refused code, counted unless the authenticator is locked by then.
    Failure {
        auth: AuthRef,
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
    /// Someone claimed it first (counted as a failure, which locked the authenticator when
    /// `locked_out`).
    Replayed { locked_out: bool },
    /// The failure was counted; `locked_out`: it was the one that reached `max_failures`
    /// and locked the authenticator.
    Counted { locked_out: bool },
    /// The authenticator was locked when the attempt came to be counted: nothing was
    /// claimed or counted, and the answer must be `locked` whatever the code was, so that
    /// no attempt past `max_failures` learns whether its code was right.
    Locked,
    /// Done.
    Done,
}

impl Written {
    /// Whether this write's failure locked the authenticator.
    pub(crate) fn locked_out(self) -> bool {
        matches!(
            self,
            Written::Counted { locked_out: true } | Written::Replayed { locked_out: true }
        )
    }
}

pub(crate) async fn insert_audit(
    conn: &mut AnyConnection,
    row: &AuditRow,
) -> Result<(), sqlx::Error> {
    bind_audit(sqlx::query(INSERT_AUDIT), row)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes an account's authenticators — all, those of `kind` (when not empty), only the
/// pending ones — and first hands their audit chains back to the account index
/// (`chain_prev = NULL`), so that the account's history keeps every event. The heads come
/// from the delete itself: it holds the rows' locks, so no verification can link a later
/// event to a deleted authenticator.
pub(crate) async fn delete_authenticators(
    conn: &mut AnyConnection,
    account_id: &str,
    kind: &str,
    pending_only: bool,
) -> Result<(), sqlx::Error> {
    let heads: Vec<Option<i64>> = sqlx::query_scalar(
        "DELETE FROM authenticators WHERE account_id = $1 AND ($2 = '' OR kind = $2) \
         AND ($3 = 0 OR state = 'pending') RETURNING audit_head",
    )
    .bind(account_id.to_owned())
    .bind(kind.to_owned())
    .bind(i64::from(pending_only))
    .fetch_all(&mut *conn)
    .await?;
    for head in heads.into_iter().flatten() {
        // UNION, not UNION ALL: even a damaged chain with a cycle ends.
        sqlx::query(
            "WITH RECURSIVE chain(id) AS (SELECT CAST($1 AS BIGINT) UNION \
             SELECT e.chain_prev FROM chain c JOIN audit_events e ON e.id = c.id WHERE e.chain_prev > 0) \
             UPDATE audit_events SET chain_prev = NULL WHERE id IN (SELECT id FROM chain)",
        )
        .bind(head)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Binds the columns of `row` in [`INSERT_AUDIT`]'s order, after `query`'s other parameters.
fn bind_audit<'q>(query: AnyQuery<'q>, row: &AuditRow) -> AnyQuery<'q> {
    query
        .bind(row.at)
        .bind(row.actor.clone())
        .bind(row.account.clone())
        .bind(row.action)
        .bind(row.outcome.as_str())
        .bind(row.reason.clone())
        .bind(row.meta.door.as_str())
        .bind(row.meta.remote_addr.clone())
        .bind(row.meta.request_id.clone())
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// The claim of a step: one conditional UPDATE, so that of two requests with the same code
/// (on any instance) exactly one changes the row. Parameters: step, drift, now, then the
/// authenticator as `$row` selects it; `$link` adds assignments (PostgreSQL's audit chain,
/// see `link_pg!`).
macro_rules! claim_sql {
    ($row:expr, $link:expr) => {
        concat!(
            "UPDATE authenticators SET last_used_step = $1, drift = $2, failed_attempts = 0, locked_until = NULL, last_used_at = $3",
            $link,
            " WHERE ",
            $row,
            " AND state = 'active' AND enabled = 1 AND (last_used_step IS NULL OR last_used_step < $1) \
             AND (locked_until IS NULL OR locked_until <= $3)"
        )
    };
}

/// The condition selecting the authenticator of id `$id` by its rowid `$row` on SQLite
/// ([`AuthRef`]); with `$row` NULL, the rowid is looked up by the id (`COALESCE` evaluates
/// that only then). SQLite numbers `$n` parameters in the order they first appear, so `$id`
/// comes first.
macro_rules! by_rowid {
    ($id:literal, $row:literal) => {
        concat!(
            "id = ",
            $id,
            " AND rowid = COALESCE(",
            $row,
            ", (SELECT rowid FROM authenticators WHERE id = ",
            $id,
            "))"
        )
    };
}

/// The count of a failure, atomic; the one that reaches the limit locks and restarts the
/// count. Nothing is counted while the authenticator is locked at `$now`, so of any burst
/// at most `max_failures` attempts are counted — and answered other than `locked` — per
/// lockout period. Its parameters (max failures, lock until, now) and the condition
/// selecting the authenticator are the caller's; `$link` as in [`claim_sql`].
macro_rules! count_failure_sql {
    ($max:literal, $until:literal, $now:literal, $row:expr, $link:expr) => {
        concat!(
            "UPDATE authenticators SET locked_until = CASE WHEN failed_attempts + 1 >= ",
            $max,
            " THEN ",
            $until,
            " ELSE locked_until END, failed_attempts = CASE WHEN failed_attempts + 1 >= ",
            $max,
            " THEN 0 ELSE failed_attempts + 1 END",
            $link,
            " WHERE (locked_until IS NULL OR locked_until <= ",
            $now,
            ") AND ",
            $row
        )
    };
}

/// The audit row of a write to an authenticator, to be linked into its chain (migration
/// 0003) by the update that follows it (`link_lite!`): `chain_prev` is the authenticator's
/// head, or NULL (an ordinary, indexed row) when there is no authenticator (`$10` NULL) or it
/// is gone. Parameters: those of [`INSERT_AUDIT`], then the authenticator's id and rowid
/// ([`AuthRef`]).
const INSERT_AUDIT_CHAINED: &str = concat!(
    "INSERT INTO audit_events (at, actor, account, action, outcome, reason, door, remote_addr, request_id, chain_prev) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, (SELECT COALESCE(audit_head, 0) FROM authenticators WHERE ",
    by_rowid!("$10", "$11"),
    "))"
);

/// SQLite's link into the audit chain, inside the update of the authenticator: the writer
/// inserts the audit row first ([`INSERT_AUDIT_CHAINED`]), so the row just inserted becomes
/// the head in the same statement as the claim or the count — one update of the
/// authenticator per verification, not two. The writer's transaction holds the write lock,
/// so nothing comes between the two statements.
macro_rules! link_lite {
    () => {
        ", audit_head = last_insert_rowid()"
    };
}

/// Claims a step and links the audit row just inserted (SQLite, inside the writer's
/// transaction); the authenticator is `$4`, `$5`.
const CLAIM: &str = claim_sql!(by_rowid!("$4", "$5"), link_lite!());

/// Counts a failure and links the audit row just inserted (SQLite, inside the writer's
/// transaction); `$3` is now, the authenticator is `$4`, `$5`. Returns a row when it counted
/// (whether the count restarted, which only the failure that locks does), none when the
/// authenticator was locked or is gone.
const COUNT_FAILURE: &str = concat!(
    count_failure_sql!("$1", "$2", "$3", by_rowid!("$4", "$5"), link_lite!()),
    " RETURNING failed_attempts = 0"
);

/// Turns the audit row just inserted into a failure for another reason: a claim that
/// changed nothing (replayed), or an attempt that found the authenticator locked (SQLite).
/// Parameters: outcome, reason.
const MARK_REFUSED: &str =
    "UPDATE audit_events SET outcome = $1, reason = $2 WHERE id = last_insert_rowid()";

/// Whether the authenticator `$2`, `$3` is locked at `$1` (SQLite): asked only when a claim
/// or a count changed nothing, to tell a lockout from a replay or a deleted authenticator.
const IS_LOCKED: &str = concat!(
    "SELECT locked_until > $1 FROM authenticators WHERE ",
    by_rowid!("$2", "$3"),
    " AND locked_until IS NOT NULL"
);

/// Links the audit row just inserted into the authenticator's chain without changing
/// anything else (SQLite): for an attempt refused because the authenticator was locked,
/// whose row [`INSERT_AUDIT_CHAINED`] already pointed at the chain's head.
const LINK_ONLY: &str = concat!(
    "UPDATE authenticators SET audit_head = last_insert_rowid() WHERE ",
    by_rowid!("$1", "$2")
);

/// PostgreSQL's link into the audit chain, inside the update of the authenticator: the new
/// event's id is drawn there, under the row lock (re-evaluated after a concurrent update), so
/// concurrent writes to one authenticator link in lock order with ids falling along the
/// chain; `audit_prev` keeps the head it replaced for the audit row.
macro_rules! link_pg {
    () => {
        ", audit_prev = audit_head, audit_head = nextval(pg_get_serial_sequence('audit_events', 'id'))"
    };
}

/// The audit row of a PostgreSQL write, with the id and link its update drew (from the
/// `linked` CTE: one row, or none if the authenticator is gone, and then an ordinary row).
/// Its arguments are the row's values in [`INSERT_AUDIT`]'s order.
macro_rules! insert_linked_pg {
    ($at:literal, $actor:literal, $account:literal, $action:literal, $outcome:literal, $reason:literal, $door:literal, $addr:literal, $req:literal) => {
        concat!(
            "INSERT INTO audit_events (id, chain_prev, at, actor, account, action, outcome, reason, door, remote_addr, request_id) \
             OVERRIDING SYSTEM VALUE SELECT \
             COALESCE((SELECT audit_head FROM linked), nextval(pg_get_serial_sequence('audit_events', 'id'))), \
             (SELECT COALESCE(audit_prev, 0) FROM linked), ",
            $at, ", ", $actor, ", ", $account, ", ", $action, ", ", $outcome, ", ", $reason, ", ",
            $door, ", ", $addr, ", ", $req
        )
    };
}

/// [`CLAIM`], then [`COUNT_FAILURE`] if nothing was claimed, and the audit row, in one
/// statement (PostgreSQL). `claimed` is read by the other parts, so it runs first and to
/// completion; the count changes the row only where the claim did not. When neither
/// changed the row, the authenticator was locked (or is gone): the audit row is an ordinary
/// one, a failure for the reason `locked`. Parameters: those of [`CLAIM`], max failures,
/// lock until, then the audit row with the outcome and reason of a claim and of a replay,
/// and the reason of a lockout (`$18`).
const CLAIM_PG: &str = concat!(
    "WITH claimed AS (",
    claim_sql!("id = $4", link_pg!()),
    " RETURNING audit_head, audit_prev), counted AS (",
    count_failure_sql!("$5", "$6", "$3", "id = $4", link_pg!()),
    " AND NOT EXISTS (SELECT 1 FROM claimed) RETURNING audit_head, audit_prev, failed_attempts = 0 AS locked_out), \
     linked AS (SELECT audit_head, audit_prev FROM claimed UNION ALL SELECT audit_head, audit_prev FROM counted), \
     audited AS (",
    insert_linked_pg!(
        "$7",
        "$8",
        "$9",
        "$10",
        "CASE WHEN EXISTS (SELECT 1 FROM claimed) THEN $11 ELSE $12 END",
        "CASE WHEN EXISTS (SELECT 1 FROM claimed) THEN $13 WHEN EXISTS (SELECT 1 FROM counted) THEN $14 ELSE $18 END",
        "$15",
        "$16",
        "$17"
    ),
    ") SELECT EXISTS (SELECT 1 FROM claimed) AS claimed, EXISTS (SELECT 1 FROM counted) AS counted, \
     COALESCE((SELECT locked_out FROM counted), FALSE) AS locked_out"
);

/// [`COUNT_FAILURE`] and the audit row in one statement (PostgreSQL); an attempt that found
/// the authenticator locked is recorded as an ordinary row with the reason `locked` (`$14`).
/// Answers whether the failure was counted, and whether it locked the authenticator.
/// Parameters: those of [`COUNT_FAILURE`], then the audit row's as in [`INSERT_AUDIT`].
const COUNT_FAILURE_PG: &str = concat!(
    "WITH linked AS (",
    count_failure_sql!("$1", "$2", "$3", "id = $4", link_pg!()),
    " RETURNING audit_head, audit_prev, failed_attempts = 0 AS locked_out), audited AS (",
    insert_linked_pg!(
        "$5",
        "$6",
        "$7",
        "$8",
        "$9",
        "CASE WHEN EXISTS (SELECT 1 FROM linked) THEN $10 ELSE $14 END",
        "$11",
        "$12",
        "$13"
    ),
    ") SELECT EXISTS (SELECT 1 FROM linked) AS counted, \
     COALESCE((SELECT locked_out FROM linked), FALSE) AS locked_out"
);

/// Applies one write in one statement, so one round trip (PostgreSQL).
pub(crate) async fn apply_alone(db: &Db, write: &VerifyWrite) -> CoreResult<Written> {
    match write {
        VerifyWrite::Claim {
            auth,
            step,
            drift,
            now,
            failure,
            audit,
        } => {
            let (claimed, counted, locked_out): (bool, bool, bool) = sqlx::query_as(CLAIM_PG)
                .bind(*step)
                .bind(*drift)
                .bind(*now)
                .bind(auth.id.clone())
                .bind(failure.max_failures)
                .bind(failure.lock_until)
                .bind(audit.at)
                .bind(audit.actor.clone())
                .bind(audit.account.clone())
                .bind(audit.action)
                .bind(audit.outcome.as_str())
                .bind(Outcome::Failure.as_str())
                .bind(audit.reason.clone())
                .bind(REPLAYED.as_str())
                .bind(audit.meta.door.as_str())
                .bind(audit.meta.remote_addr.clone())
                .bind(audit.meta.request_id.clone())
                .bind(LOCKED.as_str())
                .fetch_one(&db.write)
                .await?;
            Ok(match (claimed, counted) {
                (true, _) => Written::Claimed,
                (false, true) => Written::Replayed { locked_out },
                (false, false) => Written::Locked,
            })
        }
        VerifyWrite::Failure { auth, count, audit } => {
            let query = sqlx::query(COUNT_FAILURE_PG)
                .bind(count.max_failures)
                .bind(count.lock_until)
                .bind(count.now)
                .bind(auth.id.clone());
            let row = bind_audit(query, audit)
                .bind(LOCKED.as_str())
                .fetch_one(&db.write)
                .await?;
            Ok(if row.try_get("counted")? {
                Written::Counted {
                    locked_out: row.try_get("locked_out")?,
                }
            } else {
                Written::Locked
            })
        }
        VerifyWrite::Audit(row) => {
            let mut conn = db.write.acquire().await?;
            insert_audit(&mut conn, row).await?;
            Ok(Written::Done)
        }
    }
}

/// Applies one write on the writer's synchronous connection (SQLite), inside its transaction:
/// the audit row first, joined to the authenticator's chain, then the one update of the
/// authenticator that claims the step or counts the failure and makes that row the head.
fn apply_lite(conn: &Connection, write: &VerifyWrite) -> CoreResult<Written> {
    let insert_audit = |row: &AuditRow, authenticator: Option<&AuthRef>| {
        lite::execute(
            conn,
            INSERT_AUDIT_CHAINED,
            (
                row.at,
                row.actor.as_str(),
                row.account.as_deref(),
                row.action,
                row.outcome.as_str(),
                row.reason.as_deref(),
                row.meta.door.as_str(),
                row.meta.remote_addr.as_deref(),
                row.meta.request_id.as_deref(),
                authenticator.map(|a| a.id.as_str()),
                authenticator.and_then(|a| a.row),
            ),
        )
    };
    let mark_refused = |reason: VerifyReason| {
        lite::execute(
            conn,
            MARK_REFUSED,
            (Outcome::Failure.as_str(), reason.as_str()),
        )
    };
    // Counts the failure; if the authenticator was locked meanwhile, the row just inserted
    // becomes a `locked` refusal, still linked into the chain it points at.
    let count_failure = |auth: &AuthRef, f: &FailureCount| -> CoreResult<Written> {
        let counted: Option<bool> = lite::query_row(
            conn,
            COUNT_FAILURE,
            (
                f.max_failures,
                f.lock_until,
                f.now,
                auth.id.as_str(),
                auth.row,
            ),
        )?;
        if let Some(locked_out) = counted {
            return Ok(Written::Counted { locked_out });
        }
        let locked: Option<bool> =
            lite::query_row(conn, IS_LOCKED, (f.now, auth.id.as_str(), auth.row))?;
        if locked != Some(true) {
            return Ok(Written::Done); // the authenticator is gone: an ordinary row
        }
        lite::execute(conn, LINK_ONLY, (auth.id.as_str(), auth.row))?;
        mark_refused(LOCKED)?;
        Ok(Written::Locked)
    };
    match write {
        VerifyWrite::Claim {
            auth,
            step,
            drift,
            now,
            failure,
            audit,
        } => {
            insert_audit(audit, Some(auth))?;
            if lite::execute(conn, CLAIM, (step, drift, now, auth.id.as_str(), auth.row))? > 0 {
                return Ok(Written::Claimed);
            }
            mark_refused(REPLAYED)?;
            Ok(match count_failure(auth, failure)? {
                Written::Locked => Written::Locked,
                Written::Counted { locked_out } => Written::Replayed { locked_out },
                _ => Written::Replayed { locked_out: false },
            })
        }
        VerifyWrite::Failure { auth, count, audit } => {
            insert_audit(audit, Some(auth))?;
            count_failure(auth, count)
        }
        VerifyWrite::Audit(row) => {
            insert_audit(row, None)?;
            Ok(Written::Done)
        }
    }
}

type Job = (VerifyWrite, oneshot::Sender<CoreResult<Written>>);

/// Applies the writes of `batch` in one `BEGIN IMMEDIATE` transaction and commits once.
fn apply_batch(
    conn: &mut Connection,
    batch: &[Job],
    stats: &mut WriterStats,
    metrics: &Metrics,
) -> CoreResult<Vec<Written>> {
    let started = Instant::now();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let results = batch
        .iter()
        .map(|(write, _)| apply_lite(&tx, write))
        .collect::<CoreResult<Vec<_>>>()?;
    let applied = Instant::now();
    tx.commit()?;
    stats.batch(batch.len(), applied - started, applied.elapsed());
    metrics.commit_batch(batch.len());
    Ok(results)
}

/// Applies one write in a transaction of its own (SQLite).
fn apply_one(conn: &mut Connection, write: &VerifyWrite) -> CoreResult<Written> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let written = apply_lite(&tx, write)?;
    tx.commit()?;
    Ok(written)
}

/// The handle of the SQLite writer thread. Dropping the last handle ends the thread.
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Job>,
    metrics: Arc<Metrics>,
}

impl GroupCommit {
    /// Starts the writer on a connection of its own to `db`'s file; it borrows the tokio
    /// runtime it is started from to take the write token.
    pub(crate) fn start(db: Db, metrics: Arc<Metrics>) -> CoreResult<Self> {
        let lite = db
            .lite()
            .ok_or_else(|| CoreError::Internal("group commit needs SQLite".into()))?;
        let conn = lite.writer()?;
        let runtime = Handle::current();
        let (queue, jobs) = mpsc::channel(QUEUE);
        let writer_metrics = metrics.clone();
        std::thread::Builder::new()
            .name("otpd-commit".into())
            .spawn(move || writer(conn, db, runtime, jobs, &writer_metrics))
            .map_err(|e| CoreError::Internal(format!("cannot start the writer: {e}").into()))?;
        Ok(GroupCommit { queue, metrics })
    }

    /// Hands `write` to the writer and waits until its batch is committed.
    pub(crate) async fn submit(&self, write: VerifyWrite) -> CoreResult<Written> {
        let handed = Instant::now();
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((write, reply))
            .await
            .map_err(|_| CoreError::Internal("the writer has stopped".into()))?;
        let written = answer
            .await
            .map_err(|_| CoreError::Internal("the writer dropped a write".into()))?;
        self.metrics.commit_wait(handed.elapsed());
        written
    }
}

/// What the writer did since its last report: logged at `debug` every [`WriterStats::EVERY`],
/// so that an operator (and docs/performance.md) can see whether the writer is the
/// bottleneck — busy near 100 % — and whether statements or commits take its time.
struct WriterStats {
    since: Instant,
    batches: u64,
    writes: u64,
    statements: Duration,
    commits: Duration,
}

impl WriterStats {
    const EVERY: Duration = Duration::from_secs(5);

    fn new() -> Self {
        WriterStats {
            since: Instant::now(),
            batches: 0,
            writes: 0,
            statements: Duration::ZERO,
            commits: Duration::ZERO,
        }
    }

    fn batch(&mut self, writes: usize, statements: Duration, commit: Duration) {
        self.batches += 1;
        self.writes += writes as u64;
        self.statements += statements;
        self.commits += commit;
        let wall = self.since.elapsed();
        if wall >= Self::EVERY {
            let share = |d: Duration| 100.0 * d.as_secs_f64() / wall.as_secs_f64();
            tracing::debug!(
                batches = self.batches,
                writes = self.writes,
                per_batch = self.writes as f64 / self.batches as f64,
                statements_pct = share(self.statements),
                commits_pct = share(self.commits),
                "group-commit writer"
            );
            *self = WriterStats::new();
        }
    }
}

fn writer(
    mut conn: Connection,
    db: Db,
    runtime: Handle,
    mut jobs: mpsc::Receiver<Job>,
    metrics: &Metrics,
) {
    // sqlx hands a released connection back to its pool from a task.
    let _runtime = runtime.enter();
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut stats = WriterStats::new();
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let token = match runtime.block_on(db.write.acquire()) {
            Ok(token) => token,
            Err(e) => {
                tracing::warn!(error = %e, writes = batch.len(), "no write token; the batch fails");
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(CoreError::Storage(sqlx::Error::PoolTimedOut)));
                }
                continue;
            }
        };
        // Lockouts are counted here, where they are committed: the request that caused one
        // may have gone without waiting for the answer.
        match apply_batch(&mut conn, &batch, &mut stats, metrics) {
            Ok(results) => {
                drop(token);
                for ((_, reply), written) in batch.drain(..).zip(results) {
                    if written.locked_out() {
                        metrics.lockout();
                    }
                    let _ = reply.send(Ok(written));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, writes = batch.len(), "batch failed; applying its writes one by one");
                for (write, reply) in batch.drain(..) {
                    let written = apply_one(&mut conn, &write);
                    if written.as_ref().is_ok_and(|w| w.locked_out()) {
                        metrics.lockout();
                    }
                    let _ = reply.send(written);
                }
                drop(token);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::store::DbOptions;

    /// SQLite numbers `$n` parameters in the order they first appear in the text, not by
    /// their digits, and the writer binds them by position: a statement whose `$4` appears
    /// before its `$3` would silently swap two values.
    #[tokio::test]
    async fn the_writers_sqlite_parameters_are_numbered_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = Db::connect(&url, &DbOptions::default()).await.unwrap();
        let conn = db.lite().unwrap().writer().unwrap();
        for sql in [
            CLAIM,
            COUNT_FAILURE,
            INSERT_AUDIT_CHAINED,
            MARK_REFUSED,
            IS_LOCKED,
            LINK_ONLY,
        ] {
            let statement = conn.prepare(sql).unwrap();
            let count = statement.parameter_count();
            assert!(count > 0, "{sql}");
            for i in 1..=count {
                assert_eq!(
                    statement.parameter_name(i),
                    Some(format!("${i}").as_str()),
                    "{sql}"
                );
            }
        }
    }
}
