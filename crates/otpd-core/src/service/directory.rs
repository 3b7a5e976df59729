//! The directory: accounts listed by name with their second factor, page by page (what the
//! dialects' collections show, ONTAP's `/api/security/login/totps` and
//! `/api/security/accounts`), the deployment's stable identity as dialects name it
//! (ONTAP's cluster and SVM), and the directory's counts that `/metrics` shows.

use super::{Need, Service};
use crate::model::roles_from_db;
use crate::{CoreError, CoreResult, Principal, Roles, Username};
use sqlx::Row;

/// The deployment's identity: made once (at the first start), the same on every instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentIdentity {
    /// The cluster's UUID (ONTAP `/api/cluster` `uuid`).
    pub cluster_uuid: String,
    /// The cluster's name.
    pub cluster_name: String,
    /// The one SVM's UUID (ONTAP's `owner.uuid` of every account and TOTP profile).
    pub svm_uuid: String,
    /// The SVM's name (`owner.name`).
    pub svm_name: String,
}

/// A page request: accounts by the bytes of their lower-cased name (on both backends),
/// strictly after (or, descending, strictly before) `after`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryQuery {
    /// The name of the last entry of the previous page.
    pub after: Option<String>,
    /// Names in descending order.
    pub descending: bool,
    /// Entries at most (1 to 1000).
    pub limit: u32,
    /// Only accounts with an active authenticator.
    pub with_factor_only: bool,
    /// Only accounts whose name starts with this (case-insensitively; at most 64
    /// characters). The name index serves it, so a search stays fast on a large directory.
    pub prefix: Option<String>,
}

/// One account as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    /// The account's name.
    pub username: String,
    /// Its roles.
    pub roles: Roles,
    /// Whether the account is locked.
    pub locked: bool,
    /// Its active authenticator (a pending enrollment is none).
    pub factor: Option<FactorSummary>,
    /// When its pending enrollment lapses, if one is waiting for its confirming code.
    pub pending_expires_at: Option<i64>,
    /// Its unused recovery codes.
    pub recovery_codes_remaining: i64,
}

/// An active authenticator, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactorSummary {
    /// Whether it is asked for (an admin may switch it off).
    pub enabled: bool,
    /// Free-text comment.
    pub comment: String,
    /// SHA-256 of the secret, 64 hex characters (ONTAP's `sha_fingerprint`).
    pub fingerprint: String,
    /// Locked after too many wrong codes until this time (Unix seconds), if that is still
    /// ahead.
    pub locked_until: Option<i64>,
    /// When a code of it was last accepted (Unix seconds).
    pub last_used_at: Option<i64>,
}

macro_rules! directory_sql {
    ($where:literal, $order:literal) => {
        concat!(
            "SELECT a.username, a.roles, a.locked, t.state, t.enabled, t.comment, t.fingerprint, \
             t.locked_until, t.last_used_at, t.expires_at, \
             (SELECT COUNT(*) FROM recovery_codes r WHERE r.account_id = a.id) AS recovery_left \
             FROM accounts a LEFT JOIN authenticators t ON t.account_id = a.id AND t.kind = 'totp' \
             WHERE ",
            $where,
            " AND ($2 = 0 OR t.state = 'active') ORDER BY a.username_key ",
            $order,
            " LIMIT $3"
        )
    };
}

/// The page queries — the keys in `[$1, $4)` ascending, the same descending, one key `$1` —
/// compared byte by byte so that the name index serves the one range (the cursor and the
/// searched prefix are folded into its bounds beforehand: SQLite uses a single lower and
/// upper bound of an index): SQLite compares text so by default; PostgreSQL is told to
/// (`COLLATE "C"`, served by the index of migration 0008), whatever the database's
/// collation.
macro_rules! directory_queries {
    ($range:literal) => {
        [
            directory_sql!($range, "ASC"),
            directory_sql!($range, "DESC"),
            directory_sql!("a.username_key = $1 AND $4 = $4", "ASC"),
        ]
    };
}

const LITE: [&str; 3] = directory_queries!("a.username_key >= $1 AND a.username_key < $4");
const POSTGRES: [&str; 3] =
    directory_queries!("a.username_key COLLATE \"C\" >= $1 AND a.username_key COLLATE \"C\" < $4");
const ASCENDING: usize = 0;
const DESCENDING: usize = 1;
const ONE: usize = 2;

/// The smallest key above `cursor`: keys hold no character below `-`, so none lies between
/// `cursor` and `cursor` followed by U+0001.
fn just_above(cursor: &str) -> String {
    format!("{cursor}\u{1}")
}

/// The keys of the names that start with `prefix` (case-insensitively), as the half-open
/// range `[from, to)`: a key holds only the characters a name may (ASCII letters, digits,
/// `.`, `_`, `-`, `@`), every one below `~`, so `to` is the prefix and `~`. `None` when no
/// name can start with it. At most 64 characters.
fn prefix_range(prefix: Option<&str>) -> CoreResult<Option<(String, String)>> {
    let prefix = prefix.unwrap_or("").to_ascii_lowercase();
    if prefix.chars().count() > 64 {
        return Err(CoreError::invalid(
            "prefix",
            "must be at most 64 characters",
        ));
    }
    let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
    if !prefix.chars().all(name_char) {
        return Ok(None);
    }
    let to = format!("{prefix}~");
    Ok(Some((prefix, to)))
}

/// Seconds between two reads of the directory's counts at least (issue 20: "at most every
/// 30 s").
const GAUGES_EVERY: i64 = 30;

/// The directory's counts, in one statement: accounts; accounts with an active
/// authenticator; authenticators (active or pending: wrong confirmation codes lock those too)
/// locked at `$1`; accounts with an active authenticator and two or fewer recovery codes left
/// (a used code is deleted).
const GAUGES: &str = "SELECT \
     (SELECT COUNT(*) FROM accounts) AS accounts, \
     (SELECT COUNT(DISTINCT account_id) FROM authenticators WHERE state = 'active') AS enrolled, \
     (SELECT COUNT(*) FROM authenticators WHERE locked_until > $1) AS locked, \
     (SELECT COUNT(DISTINCT a.account_id) FROM authenticators a WHERE a.state = 'active' \
        AND (SELECT COUNT(*) FROM recovery_codes r WHERE r.account_id = a.account_id) <= 2) AS low";

impl Service {
    /// Reads the directory's counts into the metrics' gauges (`otpd_accounts`,
    /// `otpd_accounts_enrolled`, `otpd_authenticators_locked`,
    /// `otpd_accounts_recovery_codes_low`) — unless they were read less than 30 s ago by the
    /// service's clock, or less than ten times as long ago as the last read took (counting
    /// takes a while over millions of accounts, and a scrape must not keep the database
    /// busy), or another read runs. The read runs in a task of its own: a scrape that is cut
    /// off (a client gone, a scraper's timeout) leaves it to finish, instead of starting it
    /// again at the next scrape — a read pool kept busy counting by anyone who can reach
    /// `/metrics`. The gauges keep their values when the read fails (the error is returned;
    /// a read is tried again 30 s later).
    pub async fn refresh_database_gauges(&self) -> CoreResult<()> {
        use crate::metrics::DatabaseGauges;
        use std::sync::atomic::Ordering;
        let now = self.now();
        let next_read = &self.inner.metrics.gauges.next_read;
        let due = next_read.load(Ordering::Acquire);
        if now < due
            || next_read
                .compare_exchange(
                    due,
                    DatabaseGauges::READING,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_err()
        {
            return Ok(());
        }
        /// Sets the time of the next read when the read ends, however it ends.
        struct ReadEnd<'a> {
            next_read: &'a std::sync::atomic::AtomicI64,
            at: i64,
        }
        impl Drop for ReadEnd<'_> {
            fn drop(&mut self) {
                self.next_read.store(self.at, Ordering::Release);
            }
        }
        let service = self.clone();
        tokio::spawn(async move {
            let mut end = ReadEnd {
                next_read: &service.inner.metrics.gauges.next_read,
                at: now.saturating_add(GAUGES_EVERY),
            };
            let started = std::time::Instant::now();
            let read = service.read_database_gauges(now).await;
            if read.is_ok() {
                let pause = started
                    .elapsed()
                    .checked_mul(10)
                    .and_then(|d| i64::try_from(d.as_secs()).ok())
                    .unwrap_or(i64::MAX);
                end.at = now.saturating_add(GAUGES_EVERY.max(pause));
            }
            read
        })
        .await
        .map_err(|e| {
            CoreError::Internal(format!("the count of the directory stopped: {e}").into())
        })?
    }

    /// [`Service::refresh_database_gauges`]'s read.
    async fn read_database_gauges(&self, now: i64) -> CoreResult<()> {
        let gauges = &self.inner.metrics.gauges;
        let row = sqlx::query(GAUGES)
            .bind(now)
            .fetch_one(&self.db().read)
            .await?;
        gauges.accounts.set(row.try_get("accounts")?);
        gauges.enrolled.set(row.try_get("enrolled")?);
        gauges.locked.set(row.try_get("locked")?);
        gauges.recovery_codes_low.set(row.try_get("low")?);
        Ok(())
    }

    /// The deployment's identity, made by the first [`Service::new`] on the database (read
    /// once: it never changes).
    pub async fn deployment_identity(&self) -> CoreResult<DeploymentIdentity> {
        if let Some(identity) = self.inner.identity.get() {
            return Ok(identity.clone());
        }
        let row = sqlx::query(
            "SELECT cluster_uuid, cluster_name, svm_uuid, svm_name FROM deployment_identity WHERE id = 1",
        )
        .fetch_one(&self.db().read)
        .await?;
        let identity = DeploymentIdentity {
            cluster_uuid: row.try_get("cluster_uuid")?,
            cluster_name: row.try_get("cluster_name")?,
            svm_uuid: row.try_get("svm_uuid")?,
            svm_name: row.try_get("svm_name")?,
        };
        Ok(self.inner.identity.get_or_init(|| identity).clone())
    }

    /// Makes the deployment's identity unless it exists (instances starting together agree:
    /// the first insert wins).
    pub(super) async fn ensure_deployment_identity(&self) -> CoreResult<()> {
        sqlx::query(
            "INSERT INTO deployment_identity (id, cluster_uuid, cluster_name, svm_uuid, svm_name, created_at) \
             VALUES (1, $1, 'otpd', $2, 'otpd', $3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(self.now())
        .execute(&self.db().write)
        .await?;
        Ok(())
    }

    /// A page of the directory, by name. Admins (read-only ones included) see every
    /// account; a plain account sees only itself; a verifier nothing.
    pub async fn list_directory(
        &self,
        principal: &Principal,
        query: &DirectoryQuery,
    ) -> CoreResult<Vec<DirectoryEntry>> {
        let only_factor = i64::from(query.with_factor_only);
        let limit = i64::from(query.limit.clamp(1, 1000));
        let Some((from, to)) = prefix_range(query.prefix.as_deref())? else {
            return Ok(Vec::new());
        };
        let sql = match self.db().backend() {
            crate::Backend::Sqlite => &LITE,
            crate::Backend::Postgres => &POSTGRES,
        };
        let rows = if self
            .authorize(principal, None, Need::AnyAdmin, false)
            .is_ok()
        {
            // The one range of keys to read: the prefix's, narrowed by the cursor.
            let (which, from, to) = match (&query.after, query.descending) {
                (None, false) => (ASCENDING, from, to),
                (Some(after), false) => (ASCENDING, from.max(just_above(&key(after))), to),
                (Some(after), true) => (DESCENDING, from, to.min(key(after))),
                (None, true) => (DESCENDING, from, to),
            };
            if from >= to {
                return Ok(Vec::new());
            }
            sqlx::query(sql[which])
                .bind(from)
                .bind(only_factor)
                .bind(limit)
                .bind(to)
                .fetch_all(&self.db().read)
                .await?
        } else {
            let Principal::Account(caller) = principal else {
                return Err(CoreError::forbidden("not allowed"));
            };
            self.authorize(principal, Some(&caller.username), Need::SelfOrReader, true)?;
            let own = key(&caller.username);
            let beyond = match (&query.after, query.descending) {
                (None, _) => true,
                (Some(after), false) => own > key(after),
                (Some(after), true) => own < key(after),
            };
            if !beyond || own < from || own >= to {
                return Ok(Vec::new());
            }
            sqlx::query(sql[ONE])
                .bind(own)
                .bind(only_factor)
                .bind(limit)
                .bind(to)
                .fetch_all(&self.db().read)
                .await?
        };
        let now = self.now();
        rows.iter()
            .map(|row| {
                let state: Option<String> = row.try_get("state")?;
                let factor = match state.as_deref() {
                    Some("active") => Some(FactorSummary {
                        enabled: row.try_get::<i64, _>("enabled")? != 0,
                        comment: row.try_get("comment")?,
                        fingerprint: row.try_get("fingerprint")?,
                        locked_until: row
                            .try_get::<Option<i64>, _>("locked_until")?
                            .filter(|until| *until > now),
                        last_used_at: row.try_get("last_used_at")?,
                    }),
                    _ => None,
                };
                // A lapsed enrollment is nothing: it never blocks anything.
                let pending_expires_at = match state.as_deref() {
                    Some("pending") => row
                        .try_get::<Option<i64>, _>("expires_at")?
                        .filter(|at| *at > now),
                    _ => None,
                };
                Ok(DirectoryEntry {
                    username: row.try_get("username")?,
                    roles: roles_from_db(&row.try_get::<String, _>("roles")?),
                    locked: row.try_get::<i64, _>("locked")? != 0,
                    factor,
                    pending_expires_at,
                    recovery_codes_remaining: row.try_get("recovery_left")?,
                })
            })
            .collect()
    }
}

/// The lookup key of a name (names compare case-insensitively); a cursor that is no valid
/// name still orders correctly in its lower-cased form.
fn key(name: &str) -> String {
    Username::parse(name).map_or_else(|_| name.to_ascii_lowercase(), |u| u.key())
}
