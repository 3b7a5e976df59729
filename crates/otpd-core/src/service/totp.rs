//! The TOTP authenticator lifecycle — enroll/confirm, provision, renew, update, remove,
//! verify, resync, status — and the verification rule every front door inherits
//! (DESIGN.md, "Verification", "Drift", "Lockout", "Step-up").

use super::admin::PolicyMemo;
use super::commit::{self, AuditRow, AuthRef, FailureCount, VerifyWrite, Written};
use super::recovery::{RecoveryCodeSet, format_recovery_code, recovery_shape};
use super::sessions::Revoke;
use super::{Audit, Need, Outcome, Service, Shown, new_id};
use crate::metrics::EnrollmentStage;
use crate::store::{Backend, Columns};
use crate::{
    Caller, CoreError, CoreResult, FactorMethod, Policy, Principal, Purpose, RequestMeta,
    SessionKind, VerifyOutcome, VerifyReason,
};
use otp::{
    Algorithm, Check, Digits, Interval, KeyUri, OtpCode, OtpKind, Secret, Totp, Verification,
    Window,
};
use serde::Serialize;
use sqlx::{AnyConnection, Row};
use std::sync::Arc;

/// Options for a new or renewed authenticator; `None` takes the policy default (new) or
/// keeps the stored value (renew, as TrueNAS does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TotpOptions {
    /// 6, 7 or 8.
    pub digits: Option<u64>,
    /// Seconds, 5 to 3600.
    pub interval: Option<u64>,
    /// SHA1, SHA256 or SHA512.
    pub algorithm: Option<String>,
    /// A free-text comment (ONTAP's `comment`): at most 256 characters, no control or
    /// bidirectional-override characters.
    pub comment: Option<String>,
}

/// A pending enrollment: scan the URI, then confirm with a code before `expires_at`.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Enrollment {
    /// The secret, base32.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub secret: Shown,
    /// The `otpauth://` key URI (what the QR code holds).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub provisioning_uri: Shown,
    /// When the pending enrollment lapses (Unix seconds).
    pub expires_at: i64,
    /// Code length.
    pub digits: u8,
    /// Interval in seconds.
    pub interval: u64,
    /// Algorithm.
    pub algorithm: String,
}

/// An authenticator created active at once (admin/CLI provisioning, ONTAP's POST).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Provisioned {
    /// The secret, base32.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub secret: Shown,
    /// The key URI.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub provisioning_uri: Shown,
    /// The code the device should show now, when the caller asked for it (ONTAP's
    /// `verification_code`): its step is then claimed — already used, it cannot log in.
    /// `None` when not disclosed: the device's current code then works at once.
    pub verification_code: Option<String>,
    /// The recovery codes.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub recovery_codes: Vec<Shown>,
    /// SHA-256 fingerprint of the secret.
    pub fingerprint: String,
    /// Code length.
    pub digits: u8,
    /// Interval in seconds.
    pub interval: u64,
    /// Algorithm.
    pub algorithm: String,
}

/// A renewed secret, active at once.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Renewal {
    /// The new secret, base32.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub secret: Shown,
    /// The new key URI.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub provisioning_uri: Shown,
    /// SHA-256 fingerprint of the new secret.
    pub fingerprint: String,
    /// Code length.
    pub digits: u8,
    /// Interval in seconds.
    pub interval: u64,
    /// Algorithm.
    pub algorithm: String,
}

/// An authenticator's state, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TotpStatus {
    /// `pending` or `active`.
    pub state: String,
    /// Whether it is asked for and accepted (admins may switch it off).
    pub enabled: bool,
    /// Code length.
    pub digits: u8,
    /// Interval in seconds.
    pub interval: u64,
    /// Algorithm.
    pub algorithm: String,
    /// SHA-256 fingerprint of the secret (64 hex characters).
    pub fingerprint: String,
    /// Free-text comment.
    pub comment: String,
    /// Unused recovery codes.
    pub recovery_codes_remaining: i64,
    /// When the current set of recovery codes was issued (Unix seconds), if there is one.
    pub recovery_codes_issued_at: Option<i64>,
    /// Locked after too many failures until this time (Unix seconds), if locked.
    pub locked_until: Option<i64>,
    /// Failed verifications since the last success.
    pub failed_attempts: i64,
    /// The device's learned clock offset, in steps.
    pub drift: i64,
    /// Created (Unix seconds).
    pub created_at: i64,
    /// Last renewed (Unix seconds).
    pub renewed_at: Option<i64>,
    /// Last accepted code (Unix seconds).
    pub last_used_at: Option<i64>,
    /// For a pending enrollment, when it lapses.
    pub expires_at: Option<i64>,
}

/// When a full session made (or completed) at `now` ends under `policy`.
fn session_expiry(now: i64, policy: &Policy) -> i64 {
    now.saturating_add(i64::try_from(policy.session_secs).unwrap_or(i64::MAX))
}

impl TotpStatus {
    /// Whether this is a pending enrollment whose time to be confirmed ran out at `now`: it
    /// is as good as none (it blocks nothing, and no code confirms it).
    pub fn lapsed(&self, now: i64) -> bool {
        self.state != "active" && self.expires_at.is_none_or(|e| e <= now)
    }
}

/// An authenticator row.
pub(super) struct Authenticator {
    id: String,
    /// SQLite's rowid, where the hot path's read found the row ([`AuthRef`]).
    row: Option<i64>,
    state: String,
    secret: Vec<u8>,
    algorithm: Algorithm,
    digits: Digits,
    interval: Interval,
    enabled: bool,
    comment: String,
    fingerprint: String,
    last_used_step: Option<i64>,
    drift: i64,
    failed_attempts: i64,
    locked_until: Option<i64>,
    expires_at: Option<i64>,
    created_at: i64,
    renewed_at: Option<i64>,
    last_used_at: Option<i64>,
}

/// A new secret sealed for its row.
struct SealedSecret {
    id: String,
    secret: Secret,
    sealed: Vec<u8>,
    key_id: i64,
    fingerprint: String,
}

/// A new authenticator row: what differs between enrollment, provisioning and bulk
/// provisioning (every other column starts the same).
pub(super) struct AuthenticatorRow<'a> {
    pub id: &'a str,
    pub account_id: &'a str,
    /// `pending` or `active`.
    pub state: &'static str,
    /// The secret sealed for `id` under the data key `key_id`.
    pub sealed: Vec<u8>,
    pub key_id: i64,
    pub fingerprint: &'a str,
    pub params: &'a Params,
    pub last_used_step: Option<i64>,
    /// Pending enrollments only.
    pub expires_at: Option<i64>,
    pub now: i64,
}

/// Inserts a new TOTP authenticator.
pub(super) async fn insert_authenticator(
    conn: &mut AnyConnection,
    row: AuthenticatorRow<'_>,
) -> CoreResult<()> {
    sqlx::query(
        "INSERT INTO authenticators (id, account_id, kind, state, secret, key_id, algorithm, digits, interval_secs, enabled, comment, \
         fingerprint, last_used_step, drift, failed_attempts, expires_at, created_at) \
         VALUES ($1, $2, 'totp', $3, $4, $5, $6, $7, $8, 1, $13, $9, $10, 0, 0, $11, $12)",
    )
    .bind(row.id.to_owned())
    .bind(row.account_id.to_owned())
    .bind(row.state)
    .bind(row.sealed)
    .bind(row.key_id)
    .bind(row.params.algorithm.as_str())
    .bind(i64::from(row.params.digits.get()))
    .bind(to_i64(row.params.interval.seconds()))
    .bind(row.fingerprint.to_owned())
    .bind(row.last_used_step)
    .bind(row.expires_at)
    .bind(row.now)
    .bind(row.params.comment.clone())
    .execute(conn)
    .await?;
    Ok(())
}

/// An account setting up its own authenticator while policy lets only admins do it.
fn refuse_self_enrollment(principal: &Principal, subject: &Subject) -> CoreResult<()> {
    match principal {
        Principal::Account(caller)
            if caller.account_id == subject.account_id && !subject.policy.self_enrollment =>
        {
            Err(CoreError::forbidden(
                "accounts may not set up their own authenticator (policy self_enrollment is off)",
            ))
        }
        _ => Ok(()),
    }
}

/// Everything one verification needs, read in one query.
pub(super) struct Subject {
    pub(super) account_id: String,
    pub(super) username: String,
    authenticator: Option<Authenticator>,
    pub(super) policy: Arc<Policy>,
}

/// What [`Service::step_up`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StepUp {
    /// Someone else (an admin, the CLI) acts on the account: no step-up of its factor.
    NotSelf,
    /// The account acts on itself and has no active, enabled authenticator to prove.
    NoFactor,
    /// The account acts on itself and proved its second factor.
    Proven,
}

/// The [`Subject`] of `username_key` `$1`, from `$accounts` (the accounts table, aliased
/// `acc`), with `$row` as the authenticator's `auth_row` ([`AuthRef`]).
macro_rules! subject_sql {
    ($row:literal, $accounts:literal) => {
        concat!(
            "SELECT acc.id AS account_id, acc.username, p.document, t.id, t.state, t.secret, t.algorithm, t.digits, \
             t.interval_secs, t.enabled, t.comment, t.fingerprint, t.last_used_step, t.drift, t.failed_attempts, t.locked_until, \
             t.expires_at, t.created_at, t.renewed_at, t.last_used_at, ",
            $row,
            " AS auth_row FROM ",
            $accounts,
            " JOIN policy p ON p.id = 1 LEFT JOIN authenticators t ON t.account_id = acc.id AND t.kind = 'totp' \
             WHERE acc.username_key = $1"
        )
    };
}

const SUBJECT_BY_NAME: &str = subject_sql!("CAST(NULL AS BIGINT)", "accounts acc");

/// [`SUBJECT_BY_NAME`] on SQLite's hot path: the account from its covering index alone
/// (migration 0004), which SQLite's planner would pass over for the unique index, and the
/// authenticator's rowid for the writer ([`AuthRef`]).
const SUBJECT_BY_NAME_LITE: &str =
    subject_sql!("t.rowid", "accounts acc INDEXED BY accounts_login");

fn authenticator_from_row(row: &dyn Columns) -> CoreResult<Option<Authenticator>> {
    let Some(id) = row.opt_text("id")? else {
        return Ok(None);
    };
    let stored =
        |what: &str| CoreError::Internal(format!("stored authenticator has a bad {what}").into());
    Ok(Some(Authenticator {
        id,
        row: row.opt_int("auth_row")?,
        state: row.text("state")?,
        secret: row.blob("secret")?,
        algorithm: row
            .text("algorithm")?
            .parse()
            .map_err(|_| stored("algorithm"))?,
        digits: Digits::new(u64::try_from(row.int("digits")?).unwrap_or(0))
            .map_err(|_| stored("digits"))?,
        interval: Interval::new(u64::try_from(row.int("interval_secs")?).unwrap_or(0))
            .map_err(|_| stored("interval"))?,
        enabled: row.int("enabled")? != 0,
        comment: row.text("comment")?,
        fingerprint: row.text("fingerprint")?,
        last_used_step: row.opt_int("last_used_step")?,
        drift: row.int("drift")?,
        failed_attempts: row.int("failed_attempts")?,
        locked_until: row.opt_int("locked_until")?,
        expires_at: row.opt_int("expires_at")?,
        created_at: row.int("created_at")?,
        renewed_at: row.opt_int("renewed_at")?,
        last_used_at: row.opt_int("last_used_at")?,
    }))
}

/// The lookup key of `username`; a name that cannot exist is an unknown account.
fn subject_key(username: &str) -> CoreResult<String> {
    crate::Username::parse(username)
        .map(|name| name.key())
        .map_err(|_| CoreError::NotFound("account"))
}

fn subject_from_row(row: &dyn Columns, policies: &PolicyMemo) -> CoreResult<Subject> {
    Ok(Subject {
        account_id: row.text("account_id")?,
        username: row.text("username")?,
        policy: policies.parse(&row.text("document")?)?,
        authenticator: authenticator_from_row(row)?,
    })
}

impl Authenticator {
    fn totp(&self) -> Totp {
        Totp::new(self.algorithm, self.digits, self.interval)
    }

    /// What the verification path's writes need to find the row.
    fn reference(&self) -> AuthRef {
        AuthRef {
            id: self.id.clone(),
            row: self.row,
        }
    }

    fn is_active(&self) -> bool {
        self.state == "active"
    }

    fn locked_at(&self, now: i64) -> bool {
        self.locked_until.is_some_and(|t| t > now)
    }
}

/// Parsed options, defaults applied.
pub(super) struct Params {
    pub(super) algorithm: Algorithm,
    pub(super) digits: Digits,
    pub(super) interval: Interval,
    pub(super) comment: String,
}

pub(super) fn params(options: &TotpOptions, base: Params) -> CoreResult<Params> {
    let digits = match options.digits {
        Some(d) => Digits::new(d).map_err(|_| CoreError::invalid("digits", "must be 6, 7 or 8"))?,
        None => base.digits,
    };
    let interval = match options.interval {
        Some(i) if (5..=3600).contains(&i) => Interval::new(i)
            .map_err(|_| CoreError::invalid("interval", "must be between 5 and 3600"))?,
        Some(_) => return Err(CoreError::invalid("interval", "must be between 5 and 3600")),
        None => base.interval,
    };
    let algorithm = match &options.algorithm {
        Some(a) => a
            .parse()
            .map_err(|_| CoreError::invalid("algorithm", "must be SHA1, SHA256 or SHA512"))?,
        None => base.algorithm,
    };
    let comment = match &options.comment {
        Some(c) => checked_comment(c)?,
        None => base.comment,
    };
    Ok(Params {
        algorithm,
        digits,
        interval,
        comment,
    })
}

/// A comment as stored (free text: [`super::accounts::check_free_text`]).
fn checked_comment(comment: &str) -> CoreResult<String> {
    super::accounts::check_free_text("comment", comment)?;
    Ok(comment.to_owned())
}

pub(super) fn policy_params(policy: &Policy) -> CoreResult<Params> {
    let bad = || CoreError::Internal("stored policy has a bad TOTP default".into());
    Ok(Params {
        algorithm: policy.algorithm.parse().map_err(|_| bad())?,
        digits: Digits::new(u64::from(policy.digits)).map_err(|_| bad())?,
        interval: Interval::new(policy.interval).map_err(|_| bad())?,
        comment: String::new(),
    })
}

fn key_uri(policy: &Policy, username: &str, secret: &Secret, p: &Params) -> CoreResult<Shown> {
    let uri = KeyUri::new(
        OtpKind::Totp { period: p.interval },
        secret.clone(),
        username,
        Some(&policy.issuer),
        p.algorithm,
        p.digits,
    )
    .map_err(|e| CoreError::Internal(format!("cannot build key URI: {e}").into()))?;
    Ok(Shown::new(uri.to_uri().as_str()))
}

pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn parse_code(code: &str, digits: Digits) -> CoreResult<OtpCode> {
    OtpCode::parse(code, digits).map_err(|_| {
        CoreError::invalid(
            "code",
            format!("must be {} digits or a recovery code", digits.get()),
        )
    })
}

impl Service {
    pub(super) async fn subject(
        &self,
        conn: &mut AnyConnection,
        username: &str,
    ) -> CoreResult<Subject> {
        let row = sqlx::query(SUBJECT_BY_NAME)
            .bind(subject_key(username)?)
            .fetch_optional(conn)
            .await?
            .ok_or(CoreError::NotFound("account"))?;
        subject_from_row(&row, &self.inner.policies)
    }

    /// [`Self::subject`] outside a transaction, by the hot path's point read.
    async fn subject_now(&self, username: &str) -> CoreResult<Subject> {
        let sql = match self.db().backend() {
            Backend::Sqlite => SUBJECT_BY_NAME_LITE,
            Backend::Postgres => SUBJECT_BY_NAME,
        };
        self.db()
            .row_by_key(sql, &subject_key(username)?, |row| {
                subject_from_row(row, &self.inner.policies)
            })
            .await?
            .ok_or(CoreError::NotFound("account"))
    }

    /// The subject of a change that `principal` makes to the account `username`, once
    /// [`Service::may_manage`] allowed it.
    pub(super) async fn managed_subject(
        &self,
        principal: &Principal,
        username: &str,
    ) -> CoreResult<Subject> {
        let mut conn = self.db().read.acquire().await?;
        let subject = self.subject(&mut conn, username).await?;
        self.may_manage(&mut conn, principal, &subject.account_id)
            .await?;
        Ok(subject)
    }

    async fn open_secret(&self, auth: &Authenticator) -> CoreResult<Secret> {
        let bytes = self.opening_ring(&auth.secret).await?.open(
            Purpose::TotpSecret,
            &auth.id,
            &auth.secret,
        )?;
        Secret::from_bytes(bytes.to_vec()).map_err(|_| CoreError::Sealing)
    }

    /// A fresh secret for a new authenticator row, sealed inside `conn`'s transaction.
    async fn new_sealed_secret(&self, conn: &mut AnyConnection) -> CoreResult<SealedSecret> {
        let secret = Secret::generate(Secret::DEFAULT_LEN)
            .map_err(|_| CoreError::Internal("system RNG failed".into()))?;
        self.seal_secret(conn, new_id(), secret).await
    }

    /// Seals `secret` for the row `id` under the database's active key (read in `conn`'s
    /// transaction, so never under a key another instance has retired).
    async fn seal_secret(
        &self,
        conn: &mut AnyConnection,
        id: String,
        secret: Secret,
    ) -> CoreResult<SealedSecret> {
        let ring = self.sealing_ring(conn).await?;
        Ok(SealedSecret {
            sealed: ring.seal(Purpose::TotpSecret, &id, secret.as_bytes())?,
            key_id: i64::from(ring.active().id()),
            fingerprint: secret.fingerprint(),
            id,
            secret,
        })
    }

    /// Begins an enrollment: a pending secret that becomes active when confirmed with a
    /// code. Replaces an earlier pending one; refused while an active one exists.
    pub async fn begin_enrollment(
        &self,
        principal: &Principal,
        username: &str,
        options: &TotpOptions,
        meta: &RequestMeta,
    ) -> CoreResult<Enrollment> {
        self.authorize(principal, Some(username), Need::SelfOr2faAdmin, true)?;
        let mut tx = self.db().begin().await?;
        let subject = self.subject(&mut tx, username).await?;
        self.may_manage(&mut tx, principal, &subject.account_id)
            .await?;
        refuse_self_enrollment(principal, &subject)?;
        refuse_if_active(&subject)?;
        let p = params(options, policy_params(&subject.policy)?)?;
        let SealedSecret {
            id,
            secret,
            sealed,
            key_id,
            fingerprint,
        } = self.new_sealed_secret(&mut tx).await?;
        let now = self.now();
        let expires_at = now.saturating_add(to_i64(subject.policy.enrollment_secs));
        commit::delete_authenticators(&mut tx, &subject.account_id, "totp", true).await?;
        insert_authenticator(
            &mut tx,
            AuthenticatorRow {
                id: &id,
                account_id: &subject.account_id,
                state: "pending",
                sealed,
                key_id,
                fingerprint: &fingerprint,
                params: &p,
                last_used_step: None,
                expires_at: Some(expires_at),
                now,
            },
        )
        .await?;
        let actor = principal.actor();
        self.write_audit(
            &mut tx,
            Audit::success(&actor, Some(&subject.username), "totp.enroll", meta),
        )
        .await?;
        tx.commit().await?;
        self.inner.metrics.enrollment(EnrollmentStage::Started, 1);
        Ok(Enrollment {
            provisioning_uri: key_uri(&subject.policy, &subject.username, &secret, &p)?,
            secret: Shown::new(secret.to_base32().as_str()),
            expires_at,
            digits: p.digits.get(),
            interval: p.interval.seconds(),
            algorithm: p.algorithm.as_str().into(),
        })
    }

    /// Confirms a pending enrollment with a code from the device: the authenticator becomes
    /// active, the confirming step is claimed (so the same code cannot log in), and the
    /// recovery codes are returned. A session limited to enrolling becomes a full session
    /// with its second factor proven.
    pub async fn confirm_enrollment(
        &self,
        principal: &Principal,
        username: &str,
        code: &str,
        set: RecoveryCodeSet,
        meta: &RequestMeta,
    ) -> CoreResult<Vec<Shown>> {
        let confirmed = self.confirm_code(principal, username, code, set, meta);
        self.counting_code(code, meta.door, confirmed).await
    }

    /// [`Service::confirm_enrollment`], before its code is counted.
    async fn confirm_code(
        &self,
        principal: &Principal,
        username: &str,
        code: &str,
        set: RecoveryCodeSet,
        meta: &RequestMeta,
    ) -> CoreResult<Vec<Shown>> {
        self.authorize(principal, Some(username), Need::SelfOr2faAdmin, true)?;
        let mut conn = self.db().read.acquire().await?;
        let subject = self.subject(&mut conn, username).await?;
        self.may_manage(&mut conn, principal, &subject.account_id)
            .await?;
        drop(conn);
        let now = self.now();
        let auth = match &subject.authenticator {
            Some(a) if !a.is_active() && a.expires_at.is_some_and(|e| e > now) => a,
            Some(a) if a.is_active() => {
                return Err(CoreError::Conflict(
                    "the authenticator is already active".into(),
                ));
            }
            _ => return Err(CoreError::NotFound("pending enrollment")),
        };
        let code = parse_code(code, auth.digits)?;
        let actor = principal.actor();
        if auth.locked_at(now) {
            self.audit_alone(Audit {
                actor: &actor,
                account: Some(&subject.username),
                action: "totp.confirm",
                outcome: Outcome::Failure,
                reason: Some("locked"),
                meta,
            })
            .await?;
            return Err(CoreError::SecondFactorFailed {
                reason: VerifyReason::Locked,
            });
        }
        let secret = self.open_secret(auth).await?;
        let check = Check {
            now: u64::try_from(now).unwrap_or(0),
            window: window(&subject.policy),
            drift: 0,
            last_used_step: None,
        };
        let Verification::Valid { step, drift } = auth.totp().verify(&secret, &code, &check) else {
            return Err(self
                .wrong_code(&subject, auth, &actor, "totp.confirm", meta)
                .await?);
        };
        let mut tx = self.db().begin().await?;
        let done = sqlx::query(
            "UPDATE authenticators SET state = 'active', last_used_step = $1, drift = $2, failed_attempts = 0, locked_until = NULL, \
             expires_at = NULL, last_used_at = $3 WHERE id = $4 AND state = 'pending'",
        )
        .bind(to_i64(step))
        .bind(if subject.policy.drift_tracking { drift } else { 0 })
        .bind(now)
        .bind(auth.id.clone())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(CoreError::Conflict(
                "the enrollment changed meanwhile; begin again".into(),
            ));
        }
        let codes = self
            .replace_recovery_codes(
                &mut tx,
                &subject.account_id,
                set.shape(subject.policy.recovery_code_count)?,
            )
            .await?;
        // The confirming code proves the new factor on the account's own session: it counts
        // as that session's second factor (step-up), and a session limited to enrolling
        // becomes a full one.
        if let Principal::Account(caller) = principal
            && caller.account_id == subject.account_id
            && let Some(session) = &caller.session_id
        {
            // A session limited to enrolling also gets a full session's lifetime from here.
            sqlx::query(
                "UPDATE sessions SET second_factor_at = $1, \
                 method = CASE WHEN kind = 'enrollment' THEN 'password+totp' ELSE method END, \
                 expires_at = CASE WHEN kind = 'enrollment' THEN $3 ELSE expires_at END, \
                 kind = 'session' WHERE id = $2",
            )
            .bind(now)
            .bind(session.clone())
            .bind(session_expiry(now, &subject.policy))
            .execute(&mut *tx)
            .await?;
        }
        // Sessions opened before the second factor existed must not outlive it.
        self.revoke_credentials_tx(&mut tx, &subject.account_id, principal, Revoke::Sessions)
            .await?;
        self.write_audit(
            &mut tx,
            Audit::success(&actor, Some(&subject.username), "totp.confirm", meta),
        )
        .await?;
        tx.commit().await?;
        self.inner.metrics.enrollment(EnrollmentStage::Confirmed, 1);
        Ok(codes)
    }

    /// Creates an active authenticator at once (admin or CLI provisioning, TrueNAS's
    /// renewal of an account without one, ONTAP's POST), returning the secret, key URI and
    /// recovery codes — and, with `disclose_code`, the current code, whose step is then
    /// claimed so that whoever saw it cannot log in with it (DESIGN.md, "Shown once": a
    /// step is claimed only when its code was disclosed). A session limited to enrolling
    /// may provision its own account, and becomes a full session (its second factor not yet
    /// proven). An active, enabled authenticator is a [`CoreError::Conflict`]; one an admin
    /// has switched off is replaced, as is a pending enrollment.
    pub async fn provision_totp(
        &self,
        principal: &Principal,
        username: &str,
        options: &TotpOptions,
        disclose_code: bool,
        meta: &RequestMeta,
    ) -> CoreResult<Provisioned> {
        self.authorize(principal, Some(username), Need::SelfOr2faAdmin, true)?;
        let mut tx = self.db().begin().await?;
        let subject = self.subject(&mut tx, username).await?;
        self.may_manage(&mut tx, principal, &subject.account_id)
            .await?;
        refuse_self_enrollment(principal, &subject)?;
        // One an admin has switched off is no second factor (ONTAP's lost-key procedure:
        // the admin disables it, the owner creates a new one): it is replaced.
        if subject
            .authenticator
            .as_ref()
            .is_some_and(|a| a.is_active() && a.enabled)
        {
            return Err(CoreError::Conflict(
                "an authenticator is already active; renew or remove it".into(),
            ));
        }
        let p = params(options, policy_params(&subject.policy)?)?;
        let SealedSecret {
            id,
            secret,
            sealed,
            key_id,
            fingerprint,
        } = self.new_sealed_secret(&mut tx).await?;
        let now = self.now();
        let totp = Totp::new(p.algorithm, p.digits, p.interval);
        let now_u = u64::try_from(now).unwrap_or(0);
        let verification_code = disclose_code.then(|| totp.generate(&secret, now_u).to_string());
        commit::delete_authenticators(&mut tx, &subject.account_id, "totp", false).await?;
        insert_authenticator(
            &mut tx,
            AuthenticatorRow {
                id: &id,
                account_id: &subject.account_id,
                state: "active",
                sealed,
                key_id,
                fingerprint: &fingerprint,
                params: &p,
                // The step whose code is returned is claimed: it cannot log in.
                last_used_step: verification_code.as_ref().map(|_| to_i64(totp.step(now_u))),
                expires_at: None,
                now,
            },
        )
        .await?;
        let recovery_codes = self
            .replace_recovery_codes(
                &mut tx,
                &subject.account_id,
                RecoveryCodeSet::Policy.shape(subject.policy.recovery_code_count)?,
            )
            .await?;
        self.revoke_credentials_tx(&mut tx, &subject.account_id, principal, Revoke::Sessions)
            .await?;
        if let Principal::Account(caller) = principal
            && caller.kind == SessionKind::Enrollment
            && caller.account_id == subject.account_id
        {
            // A full session now, with a full session's lifetime from here.
            sqlx::query("UPDATE sessions SET kind = 'session', expires_at = $1 WHERE id = $2")
                .bind(session_expiry(self.now(), &subject.policy))
                .bind(caller.session_id.clone())
                .execute(&mut *tx)
                .await?;
        }
        let actor = principal.actor();
        self.write_audit(
            &mut tx,
            Audit::success(&actor, Some(&subject.username), "totp.provision", meta),
        )
        .await?;
        tx.commit().await?;
        self.inner
            .metrics
            .enrollment(EnrollmentStage::Provisioned, 1);
        Ok(Provisioned {
            provisioning_uri: key_uri(&subject.policy, &subject.username, &secret, &p)?,
            secret: Shown::new(secret.to_base32().as_str()),
            verification_code,
            recovery_codes,
            fingerprint,
            digits: p.digits.get(),
            interval: p.interval.seconds(),
            algorithm: p.algorithm.as_str().into(),
        })
    }

    /// Replaces the secret of the active authenticator; the new one is active at once.
    /// Options not given keep their stored values (TrueNAS semantics). The account's own
    /// change needs step-up; its other sessions are revoked (all of them when someone
    /// else renews).
    pub async fn renew_totp(
        &self,
        principal: &Principal,
        username: &str,
        options: &TotpOptions,
        step_up_code: Option<&str>,
        meta: &RequestMeta,
    ) -> CoreResult<Renewal> {
        self.authorize(principal, Some(username), Need::SelfOr2faAdmin, false)?;
        let subject = self.managed_subject(principal, username).await?;
        let auth = subject
            .authenticator
            .as_ref()
            .filter(|a| a.is_active())
            .ok_or(CoreError::NotFound("authenticator"))?;
        let p = params(
            options,
            Params {
                algorithm: auth.algorithm,
                digits: auth.digits,
                interval: auth.interval,
                comment: auth.comment.clone(),
            },
        )?;
        self.step_up(principal, &subject, step_up_code, meta)
            .await?;
        let secret = Secret::generate(Secret::DEFAULT_LEN)
            .map_err(|_| CoreError::Internal("system RNG failed".into()))?;
        let mut tx = self.db().begin().await?;
        let SealedSecret {
            secret,
            sealed,
            key_id,
            fingerprint,
            ..
        } = self.seal_secret(&mut tx, auth.id.clone(), secret).await?;
        sqlx::query(
            "UPDATE authenticators SET secret = $1, key_id = $8, algorithm = $2, digits = $3, interval_secs = $4, fingerprint = $5, last_used_step = NULL, \
             drift = 0, failed_attempts = 0, locked_until = NULL, renewed_at = $6, comment = $9 WHERE id = $7",
        )
        .bind(sealed)
        .bind(p.algorithm.as_str())
        .bind(i64::from(p.digits.get()))
        .bind(to_i64(p.interval.seconds()))
        .bind(fingerprint.clone())
        .bind(self.now())
        .bind(auth.id.clone())
        .bind(key_id)
        .bind(p.comment.clone())
        .execute(&mut *tx)
        .await?;
        self.revoke_credentials_tx(&mut tx, &subject.account_id, principal, Revoke::Recovery)
            .await?;
        let actor = principal.actor();
        self.write_audit(
            &mut tx,
            Audit::success(&actor, Some(&subject.username), "totp.renew", meta),
        )
        .await?;
        tx.commit().await?;
        self.inner.metrics.enrollment(EnrollmentStage::Renewed, 1);
        Ok(Renewal {
            provisioning_uri: key_uri(&subject.policy, &subject.username, &secret, &p)?,
            secret: Shown::new(secret.to_base32().as_str()),
            fingerprint,
            digits: p.digits.get(),
            interval: p.interval.seconds(),
            algorithm: p.algorithm.as_str().into(),
        })
    }

    /// Switches the active authenticator on or off (2FA admins only: ONTAP "Only users with
    /// the admin role are allowed to modify the TOTP status") and/or sets its comment (the
    /// account itself or a 2FA admin). Switching one's own off weakens it: step-up.
    pub async fn update_totp(
        &self,
        principal: &Principal,
        username: &str,
        enabled: Option<bool>,
        comment: Option<String>,
        step_up_code: Option<&str>,
        meta: &RequestMeta,
    ) -> CoreResult<TotpStatus> {
        let need = if enabled.is_some() {
            Need::TwofactorAdmin
        } else {
            Need::SelfOr2faAdmin
        };
        self.authorize(principal, Some(username), need, false)?;
        let comment = comment.as_deref().map(checked_comment).transpose()?;
        let subject = self.managed_subject(principal, username).await?;
        if enabled == Some(false) {
            self.step_up(principal, &subject, step_up_code, meta)
                .await?;
        }
        let mut tx = self.db().begin().await?;
        let subject = self.subject(&mut tx, username).await?;
        let auth = subject
            .authenticator
            .as_ref()
            .filter(|a| a.is_active())
            .ok_or(CoreError::NotFound("authenticator"))?;
        sqlx::query("UPDATE authenticators SET enabled = $1, comment = $2 WHERE id = $3")
            .bind(crate::store::flag(enabled.unwrap_or(auth.enabled)))
            .bind(comment.unwrap_or_else(|| auth.comment.clone()))
            .bind(auth.id.clone())
            .execute(&mut *tx)
            .await?;
        let actor = principal.actor();
        let reason = match enabled {
            Some(true) => Some("enabled"),
            Some(false) => Some("disabled"),
            None => None,
        };
        self.write_audit(
            &mut tx,
            Audit {
                actor: &actor,
                account: Some(&subject.username),
                action: "totp.update",
                outcome: Outcome::Success,
                reason,
                meta,
            },
        )
        .await?;
        let status = self.status_of(&mut tx, username).await?;
        tx.commit().await?;
        Ok(status)
    }

    /// Removes (resets) the authenticator and the recovery codes, and revokes the account's
    /// sessions: all of them when someone else acts, all but the caller's own otherwise.
    /// The account's own removal of an active authenticator needs step-up.
    pub async fn remove_totp(
        &self,
        principal: &Principal,
        username: &str,
        step_up_code: Option<&str>,
        meta: &RequestMeta,
    ) -> CoreResult<()> {
        self.authorize(principal, Some(username), Need::SelfOr2faAdmin, false)?;
        let subject = self.managed_subject(principal, username).await?;
        if subject.authenticator.is_none() {
            return Err(CoreError::NotFound("authenticator"));
        }
        // Under an enforced policy an account may not drop its own second factor (it would
        // only be led to enroll again); an admin still resets a lost one.
        let by_self =
            matches!(principal, Principal::Account(c) if c.account_id == subject.account_id);
        if by_self && subject.policy.enforced {
            return Err(CoreError::forbidden(
                "the policy requires two-factor authentication: an administrator can reset a lost authenticator",
            ));
        }
        self.step_up(principal, &subject, step_up_code, meta)
            .await?;
        let mut tx = self.db().begin().await?;
        commit::delete_authenticators(&mut tx, &subject.account_id, "totp", false).await?;
        sqlx::query("DELETE FROM recovery_codes WHERE account_id = $1")
            .bind(subject.account_id.clone())
            .execute(&mut *tx)
            .await?;
        self.revoke_credentials_tx(&mut tx, &subject.account_id, principal, Revoke::Recovery)
            .await?;
        let actor = principal.actor();
        self.write_audit(
            &mut tx,
            Audit::success(&actor, Some(&subject.username), "totp.remove", meta),
        )
        .await?;
        tx.commit().await?;
        self.inner.metrics.enrollment(EnrollmentStage::Removed, 1);
        Ok(())
    }

    /// Verifies a code for an account (what services call): the account itself, a 2FA
    /// admin or a verifier. Always answers with an outcome; only malformed input is an error.
    pub async fn verify_totp(
        &self,
        principal: &Principal,
        username: &str,
        code: &str,
        meta: &RequestMeta,
    ) -> CoreResult<VerifyOutcome> {
        self.authorize(principal, Some(username), Need::Verify, false)?;
        let actor = principal.actor();
        self.retrying(|| self.check_code(username, code, &actor, "totp.verify", meta))
            .await
    }

    /// The verification rule (DESIGN.md): a TOTP code must match a step within
    /// `±window` of `now/interval + drift` that is after `last_used_step`, and that step is
    /// claimed by one conditional UPDATE (zero rows: replayed — also across instances). A
    /// code of recovery-code shape is consumed from the recovery codes instead. Failures
    /// count towards the lockout; success resets the count. The outcome is audited in the
    /// same transaction as the claim or the count.
    pub(crate) async fn check_code(
        &self,
        username: &str,
        code: &str,
        actor: &str,
        action: &'static str,
        meta: &RequestMeta,
    ) -> CoreResult<VerifyOutcome> {
        // The decision runs to its end in a task of its own. Once its write is handed to the
        // database, the count, the lockout and the audit row happen whether or not the
        // caller still waits; counted here in the caller's future, a request cut off by its
        // client (an attacker locking accounts without reading the answers) would change the
        // database and leave no trace in the metrics.
        let service = self.clone();
        let (username, code, actor, meta) = (
            username.to_owned(),
            zeroize::Zeroizing::new(code.to_owned()),
            actor.to_owned(),
            meta.clone(),
        );
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let outcome = service
                .decide_code(&username, &code, &actor, action, &meta)
                .await?;
            service
                .inner
                .metrics
                .verification(&outcome, &code, meta.door, started.elapsed());
            Ok(outcome)
        })
        .await
        .map_err(|e| CoreError::Internal(format!("a verification stopped: {e}").into()))?
    }

    /// [`Service::check_code`]'s decision, before it is counted.
    async fn decide_code(
        &self,
        username: &str,
        code: &str,
        actor: &str,
        action: &'static str,
        meta: &RequestMeta,
    ) -> CoreResult<VerifyOutcome> {
        let subject = self.subject_now(username).await?;
        let now = self.now();
        let name = subject.username.as_str();
        let refuse = |reason: VerifyReason| async move {
            self.write_verification(VerifyWrite::Audit(AuditRow::new(
                now,
                actor,
                name,
                action,
                Outcome::Failure,
                reason.as_str(),
                meta,
            )))
            .await?;
            Ok::<_, CoreError>(VerifyOutcome::refused(reason))
        };
        let Some(auth) = subject.authenticator.as_ref().filter(|a| a.is_active()) else {
            return refuse(VerifyReason::NotEnrolled).await;
        };
        if !auth.enabled {
            return refuse(VerifyReason::Disabled).await;
        }
        if auth.locked_at(now) {
            return refuse(VerifyReason::Locked).await;
        }

        if let Some(recovery) = recovery_shape(code) {
            let mut tx = self.db().begin().await?;
            // The reset comes first and only while the authenticator is unlocked, so that a
            // recovery code arriving after a burst locked it is answered `locked` like any
            // other attempt, whether it is right or not (rolled back below if it is wrong).
            let unlocked = sqlx::query(
                "UPDATE authenticators SET failed_attempts = 0, locked_until = NULL, last_used_at = $1 WHERE id = $2 \
                 AND (locked_until IS NULL OR locked_until <= $1)",
            )
            .bind(now)
            .bind(auth.id.clone())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if !unlocked {
                drop(tx);
                return refuse(VerifyReason::Locked).await;
            }
            if self
                .consume_recovery_code(&mut tx, &subject.account_id, &recovery)
                .await?
            {
                self.write_audit(
                    &mut tx,
                    Audit {
                        actor,
                        account: Some(&subject.username),
                        action,
                        outcome: Outcome::Success,
                        reason: Some("recovery_code"),
                        meta,
                    },
                )
                .await?;
                tx.commit().await?;
                return Ok(VerifyOutcome::accepted(FactorMethod::RecoveryCode));
            }
            drop(tx);
            let reason = self
                .record_failure(&subject, auth, VerifyReason::Invalid, actor, action, meta)
                .await?;
            return Ok(VerifyOutcome::refused(reason));
        }

        let code = parse_code(code, auth.digits)?;
        let secret = self.open_secret(auth).await?;
        let check = Check {
            now: u64::try_from(now).unwrap_or(0),
            window: window(&subject.policy),
            drift: auth.drift,
            last_used_step: auth.last_used_step.and_then(|s| u64::try_from(s).ok()),
        };
        let refused = match auth.totp().verify(&secret, &code, &check) {
            Verification::Valid { step, drift } => Ok((step, drift)),
            Verification::Replayed { .. } => Err(VerifyReason::Replayed),
            Verification::Invalid => Err(VerifyReason::Invalid),
        };
        let (step, drift) = match refused {
            Ok(found) => found,
            Err(reason) => {
                // The answer is what the count found: `locked` when a concurrent burst
                // locked the authenticator first, whatever this code was.
                let reason = self
                    .record_failure(&subject, auth, reason, actor, action, meta)
                    .await?;
                return Ok(VerifyOutcome::refused(reason));
            }
        };
        let drift = if subject.policy.drift_tracking {
            drift
        } else {
            auth.drift
        };
        let written = self
            .write_verification(VerifyWrite::Claim {
                auth: auth.reference(),
                step: to_i64(step),
                drift,
                now,
                failure: failure_count(&subject, now),
                audit: AuditRow::new(
                    now,
                    actor,
                    &subject.username,
                    action,
                    Outcome::Success,
                    "totp",
                    meta,
                ),
            })
            .await?;
        Ok(match written {
            Written::Claimed => VerifyOutcome::accepted(FactorMethod::Totp),
            // A burst locked the authenticator before this right code was written: it must
            // not be told apart from the wrong codes refused after the lock.
            Written::Locked => VerifyOutcome::refused(VerifyReason::Locked),
            // Another request claimed this step (or a later one) first.
            Written::Replayed { .. } | Written::Counted { .. } | Written::Done => {
                VerifyOutcome::refused(VerifyReason::Replayed)
            }
        })
    }

    /// Runs `call`, which checks `code` and answers a refused code with an error (confirm,
    /// resync), and counts the code in `otpd_verifications_total`: accepted, or refused for
    /// the reason [`CoreError::SecondFactorFailed`] gives. Any other error checked no code
    /// (bad input, nothing pending, not allowed).
    async fn counting_code<T>(
        &self,
        code: &str,
        door: crate::Door,
        call: impl std::future::Future<Output = CoreResult<T>>,
    ) -> CoreResult<T> {
        let started = std::time::Instant::now();
        let answer = call.await;
        let outcome = match &answer {
            Ok(_) => VerifyOutcome::accepted(FactorMethod::Totp),
            Err(CoreError::SecondFactorFailed { reason }) => VerifyOutcome::refused(*reason),
            Err(_) => return answer,
        };
        self.inner
            .metrics
            .verification(&outcome, code, door, started.elapsed());
        answer
    }

    /// Counts a failed verification atomically; the one that reaches `max_failures` locks
    /// the authenticator for `lockout_secs` (and starts the count afresh for afterwards).
    /// Returns the reason to answer: `reason`, or `locked` when the authenticator was locked
    /// by the time the attempt came to be counted (then nothing was counted).
    async fn record_failure(
        &self,
        subject: &Subject,
        auth: &Authenticator,
        reason: VerifyReason,
        actor: &str,
        action: &'static str,
        meta: &RequestMeta,
    ) -> CoreResult<VerifyReason> {
        let now = self.now();
        let written = self
            .write_verification(VerifyWrite::Failure {
                auth: auth.reference(),
                count: failure_count(subject, now),
                audit: AuditRow::new(
                    now,
                    actor,
                    &subject.username,
                    action,
                    Outcome::Failure,
                    reason.as_str(),
                    meta,
                ),
            })
            .await?;
        Ok(if written == Written::Locked {
            VerifyReason::Locked
        } else {
            reason
        })
    }

    /// Counts the wrong code of a call that answers with an error (confirm, resync), and
    /// returns that error: `invalid`, or `locked` when a burst locked the authenticator first.
    async fn wrong_code(
        &self,
        subject: &Subject,
        auth: &Authenticator,
        actor: &str,
        action: &'static str,
        meta: &RequestMeta,
    ) -> CoreResult<CoreError> {
        let reason = self
            .record_failure(subject, auth, VerifyReason::Invalid, actor, action, meta)
            .await?;
        Ok(CoreError::SecondFactorFailed { reason })
    }

    /// Recovers a device whose clock drifted outside the window: two consecutive codes
    /// found within `±resync_range` steps set the drift and claim the second step.
    pub async fn resync_totp(
        &self,
        principal: &Principal,
        username: &str,
        first: &str,
        second: &str,
        meta: &RequestMeta,
    ) -> CoreResult<i64> {
        let resynced = self.resync_codes(principal, username, first, second, meta);
        self.counting_code(first, meta.door, resynced).await
    }

    /// [`Service::resync_totp`], before its codes are counted.
    async fn resync_codes(
        &self,
        principal: &Principal,
        username: &str,
        first: &str,
        second: &str,
        meta: &RequestMeta,
    ) -> CoreResult<i64> {
        self.authorize(principal, Some(username), Need::SelfOr2faAdmin, false)?;
        let subject = self.managed_subject(principal, username).await?;
        let actor = principal.actor();
        let auth = subject
            .authenticator
            .as_ref()
            .filter(|a| a.is_active())
            .ok_or(CoreError::NotFound("authenticator"))?;
        let (a, b) = (
            parse_code(first, auth.digits)?,
            parse_code(second, auth.digits)?,
        );
        let now = self.now();
        if !auth.enabled {
            return Err(CoreError::SecondFactorFailed {
                reason: VerifyReason::Disabled,
            });
        }
        if auth.locked_at(now) {
            return Err(CoreError::SecondFactorFailed {
                reason: VerifyReason::Locked,
            });
        }
        let secret = self.open_secret(auth).await?;
        let range = Window::new(u64::from(subject.policy.resync_range))
            .map_err(|_| CoreError::Internal("bad resync range".into()))?;
        let last = auth.last_used_step.and_then(|s| u64::try_from(s).ok());
        let Some(found) = auth.totp().resync(
            &secret,
            &a,
            &b,
            u64::try_from(now).unwrap_or(0),
            range,
            last,
        ) else {
            return Err(self
                .wrong_code(&subject, auth, &actor, "totp.resync", meta)
                .await?);
        };
        let mut tx = self.db().begin().await?;
        // Claimed only while unlocked, like every other code: a lockout that a concurrent
        // burst set after this request's read holds.
        let claimed = sqlx::query(
            "UPDATE authenticators SET last_used_step = $1, drift = $2, failed_attempts = 0, locked_until = NULL, last_used_at = $3 \
             WHERE id = $4 AND (last_used_step IS NULL OR last_used_step < $1) AND (locked_until IS NULL OR locked_until <= $3)",
        )
        .bind(to_i64(found.step))
        .bind(found.drift)
        .bind(now)
        .bind(auth.id.clone())
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            let locked: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM authenticators WHERE id = $1 AND locked_until > $2",
            )
            .bind(auth.id.clone())
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let reason = if locked > 0 {
                VerifyReason::Locked
            } else {
                VerifyReason::Replayed
            };
            return Err(CoreError::SecondFactorFailed { reason });
        }
        self.write_audit(
            &mut tx,
            Audit::success(&actor, Some(&subject.username), "totp.resync", meta),
        )
        .await?;
        tx.commit().await?;
        Ok(found.drift)
    }

    /// The authenticator's state (the account itself or any admin).
    pub async fn totp_status(
        &self,
        principal: &Principal,
        username: &str,
    ) -> CoreResult<TotpStatus> {
        self.authorize(principal, Some(username), Need::SelfOrReader, true)?;
        let mut conn = self.db().read.acquire().await?;
        self.status_of(&mut conn, username).await
    }

    /// The key URI of a *pending* enrollment, for showing it again while it waits for its
    /// confirming code (its QR code): the account itself or a full admin. An active secret
    /// is shown only in the answer that created it, never again, to anyone (DESIGN.md,
    /// "Shown once"): for an active authenticator this is `NotFound("pending enrollment")`.
    pub async fn pending_key_uri(
        &self,
        principal: &Principal,
        username: &str,
    ) -> CoreResult<Shown> {
        self.authorize(principal, Some(username), Need::OnlySelf, true)
            .or_else(|_| self.authorize(principal, Some(username), Need::FullAdmin, false))?;
        let mut conn = self.db().read.acquire().await?;
        let subject = self.subject(&mut conn, username).await?;
        let now = self.now();
        let auth = subject
            .authenticator
            .as_ref()
            .filter(|a| !a.is_active() && a.expires_at.is_some_and(|e| e > now))
            .ok_or(CoreError::NotFound("pending enrollment"))?;
        let secret = self.open_secret(auth).await?;
        let p = Params {
            algorithm: auth.algorithm,
            digits: auth.digits,
            interval: auth.interval,
            comment: String::new(),
        };
        key_uri(&subject.policy, &subject.username, &secret, &p)
    }

    async fn status_of(&self, conn: &mut AnyConnection, username: &str) -> CoreResult<TotpStatus> {
        let subject = self.subject(conn, username).await?;
        let auth = subject
            .authenticator
            .ok_or(CoreError::NotFound("authenticator"))?;
        let (remaining, issued_at) = self.recovery_code_set(conn, &subject.account_id).await?;
        let now = self.now();
        Ok(TotpStatus {
            state: auth.state.clone(),
            enabled: auth.enabled,
            digits: auth.digits.get(),
            interval: auth.interval.seconds(),
            algorithm: auth.algorithm.as_str().into(),
            fingerprint: auth.fingerprint.clone(),
            comment: auth.comment.clone(),
            recovery_codes_remaining: remaining,
            recovery_codes_issued_at: issued_at,
            locked_until: auth.locked_until.filter(|t| *t > now),
            failed_attempts: auth.failed_attempts,
            drift: auth.drift,
            created_at: auth.created_at,
            renewed_at: auth.renewed_at,
            last_used_at: auth.last_used_at,
            expires_at: auth.expires_at,
        })
    }

    /// Step-up (DESIGN.md): an account that reads or weakens its own second factor (renew,
    /// remove, disable, list or regenerate recovery codes, change its password) while it has
    /// an active, enabled authenticator must have proven that factor within `step_up_secs`
    /// on this session (or on this request: [`Service::reauthenticate`]), or send a code
    /// along (checked, claimed and counted like any other). An API key never proves a
    /// second factor by itself. Others acting on it (admins, the CLI) need
    /// no step-up of the target's factor.
    ///
    /// Returns [`StepUp::Proven`] when a second factor was required and proven,
    /// [`StepUp::NoFactor`] when the account has none to prove, [`StepUp::NotSelf`] when
    /// someone else acts.
    pub(super) async fn step_up(
        &self,
        principal: &Principal,
        subject: &Subject,
        code: Option<&str>,
        meta: &RequestMeta,
    ) -> CoreResult<StepUp> {
        let Principal::Account(caller) = principal else {
            return Ok(StepUp::NotSelf);
        };
        if caller.account_id != subject.account_id {
            return Ok(StepUp::NotSelf);
        }
        if !subject
            .authenticator
            .as_ref()
            .is_some_and(|a| a.is_active() && a.enabled)
        {
            return Ok(StepUp::NoFactor);
        }
        let now = self.now();
        // A principal carries the second factor its session proved, or one proved on this
        // request (`reauthenticate`); an API key or a Basic password never carries one.
        if caller
            .second_factor_at
            .is_some_and(|t| now.saturating_sub(t) <= to_i64(subject.policy.step_up_secs))
        {
            return Ok(StepUp::Proven);
        }
        let Some(code) = code else {
            return Err(CoreError::StepUpRequired);
        };
        let outcome = self
            .check_code(
                &subject.username,
                code,
                &caller.username,
                "auth.step_up",
                meta,
            )
            .await?;
        if !outcome.valid {
            return Err(CoreError::SecondFactorFailed {
                reason: outcome.reason.unwrap_or(VerifyReason::Invalid),
            });
        }
        self.record_second_factor(caller, now).await?;
        Ok(StepUp::Proven)
    }

    /// Records on the caller's session (if it has one) that it proved its second factor at
    /// `now`, for the step-up window.
    pub(super) async fn record_second_factor(&self, caller: &Caller, now: i64) -> CoreResult<()> {
        if let Some(session) = &caller.session_id {
            sqlx::query("UPDATE sessions SET second_factor_at = $1 WHERE id = $2")
                .bind(now)
                .bind(session.clone())
                .execute(&self.db().write)
                .await?;
        }
        Ok(())
    }

    /// Replaces the recovery codes: the account itself (with step-up) or the CLI.
    pub async fn regenerate_recovery_codes(
        &self,
        principal: &Principal,
        username: &str,
        step_up_code: Option<&str>,
        set: RecoveryCodeSet,
        meta: &RequestMeta,
    ) -> CoreResult<Vec<Shown>> {
        self.authorize(principal, Some(username), Need::OnlySelf, false)?;
        let subject = {
            let mut conn = self.db().read.acquire().await?;
            self.subject(&mut conn, username).await?
        };
        if !subject
            .authenticator
            .as_ref()
            .is_some_and(Authenticator::is_active)
        {
            return Err(CoreError::NotFound("authenticator"));
        }
        self.step_up(principal, &subject, step_up_code, meta)
            .await?;
        let mut tx = self.db().begin().await?;
        let codes = self
            .replace_recovery_codes(
                &mut tx,
                &subject.account_id,
                set.shape(subject.policy.recovery_code_count)?,
            )
            .await?;
        let actor = principal.actor();
        self.write_audit(
            &mut tx,
            Audit::success(
                &actor,
                Some(&subject.username),
                "recovery_codes.regenerate",
                meta,
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(codes)
    }

    /// The account's remaining recovery codes, in plaintext: only the account itself (with
    /// step-up, as for regenerating them: reading a second factor is as guarded as changing
    /// it) or the CLI.
    pub async fn list_recovery_codes(
        &self,
        principal: &Principal,
        username: &str,
        step_up_code: Option<&str>,
        meta: &RequestMeta,
    ) -> CoreResult<Vec<Shown>> {
        self.authorize(principal, Some(username), Need::OnlySelf, false)?;
        let subject = {
            let mut conn = self.db().read.acquire().await?;
            self.subject(&mut conn, username).await?
        };
        self.step_up(principal, &subject, step_up_code, meta)
            .await?;
        let mut conn = self.db().read.acquire().await?;
        let rows = sqlx::query(
            "SELECT id, sealed FROM recovery_codes WHERE account_id = $1 ORDER BY created_at, id",
        )
        .bind(subject.account_id)
        .fetch_all(&mut *conn)
        .await?;
        let mut codes = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get("id")?;
            let sealed: Vec<u8> = row.try_get("sealed")?;
            let plain =
                self.opening_ring(&sealed)
                    .await?
                    .open(Purpose::RecoveryCode, &id, &sealed)?;
            let text = std::str::from_utf8(&plain).map_err(|_| CoreError::Sealing)?;
            codes.push(Shown::new(format_recovery_code(text)));
        }
        Ok(codes)
    }
}

/// Enrolling or provisioning anew is refused while an authenticator is active: renewing or
/// removing it are the ways to replace it (each with its own rules).
fn refuse_if_active(subject: &Subject) -> CoreResult<()> {
    if subject
        .authenticator
        .as_ref()
        .is_some_and(Authenticator::is_active)
    {
        return Err(CoreError::Conflict(
            "an authenticator is already active; renew or remove it".into(),
        ));
    }
    Ok(())
}

/// The failure count of a refused code under the subject's policy.
fn failure_count(subject: &Subject, now: i64) -> FailureCount {
    FailureCount {
        max_failures: i64::from(subject.policy.max_failures),
        lock_until: now.saturating_add(to_i64(subject.policy.lockout_secs)),
        now,
    }
}

fn window(policy: &Policy) -> Window {
    Window::new(u64::from(policy.window)).unwrap_or(Window::ONE)
}
