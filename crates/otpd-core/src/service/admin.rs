//! Policy and the audit trail.

use super::{Audit, Need, Service};
use crate::{CoreError, CoreResult, Policy, Principal, RequestMeta};
use serde::Serialize;
use sqlx::Row;
use std::sync::{Arc, Mutex, PoisonError};

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEvent {
    /// Sequence number (increasing).
    pub id: i64,
    /// When (Unix seconds).
    pub at: i64,
    /// Who acted (`cli`, a username, or `anonymous`).
    pub actor: String,
    /// The account acted on.
    pub account: Option<String>,
    /// What was done, e.g. `totp.verify`.
    pub action: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// Why, for failures and notable successes.
    pub reason: Option<String>,
    /// The front door.
    pub door: String,
    /// The peer address.
    pub remote_addr: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
}

/// Filters for [`Service::audit_events`]; every field narrows the result.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Events about this account.
    pub account: Option<String>,
    /// Events with this action.
    pub action: Option<String>,
    /// Events with this outcome.
    pub outcome: Option<String>,
    /// Events at or after this time.
    pub since: Option<i64>,
    /// Events before this time.
    pub until: Option<i64>,
    /// Events with a sequence number above this (for following the trail).
    pub after_id: Option<i64>,
    /// At most this many (1–1000; default 100).
    pub limit: Option<u32>,
    /// Skip this many.
    pub offset: Option<u64>,
}

/// The audit query's filters after the account: action (`$2`), outcome (`$3`), time range
/// (`$4`, `$5`), cursor (`$6`).
macro_rules! audit_filters {
    () => {
        "($2 = '' OR action = $2) AND ($3 = '' OR outcome = $3) AND at >= $4 AND at < $5 AND id > $6"
    };
}

/// The whole trail (`$1` unused), in `$order`; `$7` and `$8` are limit and offset.
macro_rules! audit_all_sql {
    ($order:literal) => {
        concat!(
            "SELECT id, at, actor, account, action, outcome, reason, door, remote_addr, request_id FROM audit_events \
             WHERE $1 = '' AND ",
            audit_filters!(),
            " ORDER BY id ",
            $order,
            " LIMIT $7 OFFSET $8"
        )
    };
}

/// One account's (`$1`) history: its ordinary rows, a range of the partial index
/// `audit_events_account`, and the rows its authenticators chained (migration 0003), walked
/// from each head back to the cursor. Ids fall along a chain, so the walk stops at `$6`;
/// UNION rather than UNION ALL ends even a damaged chain with a cycle. A chain walk costs a
/// primary-key lookup per event of the account's verification history newer than the
/// cursor, and the linked side reads each of them once more for the filters (measured on
/// SQLite: a first page of an account with 21,000 linked events in 85 ms, a follow-up page
/// after a recent cursor in under 1 ms): one person's logins, not the trail's size.
/// Each side is cut to the page's end (`$9`: limit + offset) before the two are merged, so
/// that the index side reads a page, not the account's whole history.
macro_rules! audit_account_sql {
    ($order:literal) => {
        concat!(
            "WITH RECURSIVE chain(id) AS (\
             SELECT t.audit_head FROM authenticators t JOIN accounts a ON a.id = t.account_id \
             WHERE a.username_key = lower($1) AND t.audit_head > $6 \
             UNION SELECT e.chain_prev FROM chain c JOIN audit_events e ON e.id = c.id WHERE e.chain_prev > $6) \
             SELECT * FROM (SELECT id, at, actor, account, action, outcome, reason, door, remote_addr, request_id \
             FROM audit_events WHERE id IN (SELECT id FROM chain) AND account = $1 AND ",
            audit_filters!(),
            " ORDER BY id ",
            $order,
            " LIMIT $9) by_chain UNION ALL \
             SELECT * FROM (SELECT id, at, actor, account, action, outcome, reason, door, remote_addr, request_id \
             FROM audit_events WHERE account = $1 AND chain_prev IS NULL AND ",
            audit_filters!(),
            " ORDER BY id ",
            $order,
            " LIMIT $9) by_index ORDER BY id ",
            $order,
            " LIMIT $7 OFFSET $8"
        )
    };
}

impl Service {
    /// The policy in force now (read on every use, so a change on any instance applies at
    /// the next request on all).
    pub(crate) async fn policy_now(&self) -> CoreResult<Policy> {
        let (document,): (String,) = sqlx::query_as("SELECT document FROM policy WHERE id = 1")
            .fetch_one(&self.db().read)
            .await?;
        parse_policy(&document)
    }

    /// Reads the policy (any admin).
    pub async fn get_policy(&self, principal: &Principal) -> CoreResult<Policy> {
        self.authorize(principal, None, Need::AnyAdmin, false)?;
        self.policy_now().await
    }

    /// Replaces the policy after validating every field (full admins).
    pub async fn set_policy(
        &self,
        principal: &Principal,
        policy: Policy,
        meta: &RequestMeta,
    ) -> CoreResult<Policy> {
        self.authorize(principal, None, Need::FullAdmin, false)?;
        policy.validate()?;
        let document = serde_json::to_string(&policy)
            .map_err(|e| CoreError::Internal(e.to_string().into()))?;
        let mut tx = self.db().begin().await?;
        sqlx::query("UPDATE policy SET document = $1, updated_at = $2 WHERE id = 1")
            .bind(document)
            .bind(self.now())
            .execute(&mut *tx)
            .await?;
        let actor = principal.actor();
        self.write_audit(&mut tx, Audit::success(&actor, None, "policy.update", meta))
            .await?;
        tx.commit().await?;
        Ok(policy)
    }

    /// Queries the audit trail, newest first (or oldest first when following with
    /// `after_id`). Admins see everything; a plain account sees events about itself.
    pub async fn audit_events(
        &self,
        principal: &Principal,
        query: &AuditQuery,
    ) -> CoreResult<Vec<AuditEvent>> {
        let mut query = query.clone();
        if !principal.is_any_admin() {
            let Principal::Account(caller) = principal else {
                return Err(CoreError::forbidden("not allowed"));
            };
            self.authorize(principal, Some(&caller.username), Need::SelfOrReader, false)?;
            query.account = Some(caller.username.clone());
        }
        let ascending = query.after_id.is_some();
        // One account's history (a plain account's own, on every request for it) has a
        // query of its own rather than `($1 = '' OR account = $1)`, which no planner can
        // serve from an index: it reads that account's rows only, never the whole trail.
        let by_account = query.account.as_deref().is_some_and(|a| !a.is_empty());
        let sql = match (by_account, ascending) {
            (true, true) => audit_account_sql!("ASC"),
            (true, false) => audit_account_sql!("DESC"),
            (false, true) => audit_all_sql!("ASC"),
            (false, false) => audit_all_sql!("DESC"),
        };
        let limit = i64::from(query.limit.unwrap_or(100).clamp(1, 1000));
        let offset = i64::try_from(query.offset.unwrap_or(0)).unwrap_or(i64::MAX);
        let rows = sqlx::query(sql)
            .bind(query.account.unwrap_or_default())
            .bind(query.action.unwrap_or_default())
            .bind(query.outcome.unwrap_or_default())
            .bind(query.since.unwrap_or(i64::MIN))
            .bind(query.until.unwrap_or(i64::MAX))
            .bind(query.after_id.unwrap_or(0))
            .bind(limit)
            .bind(offset);
        let rows = if by_account {
            rows.bind(limit.saturating_add(offset))
        } else {
            rows
        }
        .fetch_all(&self.db().read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEvent {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    account: r.try_get("account")?,
                    action: r.try_get("action")?,
                    outcome: r.try_get("outcome")?,
                    reason: r.try_get("reason")?,
                    door: r.try_get("door")?,
                    remote_addr: r.try_get("remote_addr")?,
                    request_id: r.try_get("request_id")?,
                })
            })
            .collect()
    }
}

/// The policy document last parsed, and its value. Every verification reads the document
/// with the account, in one query; parsing its JSON each time was ~3 % of a verification's
/// instructions. Parsing is a function of the text alone, so a document equal to the last
/// one yields the same policy, and a changed document (from any process) is parsed anew.
#[derive(Debug, Default)]
pub(crate) struct PolicyMemo(Mutex<Option<(String, Arc<Policy>)>>);

impl PolicyMemo {
    /// [`parse_policy`], or the policy of the same document parsed before.
    pub(crate) fn parse(&self, document: &str) -> CoreResult<Arc<Policy>> {
        let mut last = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((text, policy)) = last.as_ref()
            && text == document
        {
            return Ok(Arc::clone(policy));
        }
        let policy = Arc::new(parse_policy(document)?);
        *last = Some((document.to_owned(), Arc::clone(&policy)));
        Ok(policy)
    }
}

pub(crate) fn parse_policy(document: &str) -> CoreResult<Policy> {
    serde_json::from_str(document)
        .map_err(|e| CoreError::Internal(format!("stored policy is unreadable: {e}").into()))
}
