//! The `Service`: every rule of DESIGN.md — authorization, replay protection, lockout,
//! step-up, session revocation, audit — written once. Front doors call these methods and
//! translate; none touches the database or the crypto.

mod accounts;
pub(crate) use accounts::is_invisible_format;
mod admin;
mod bulk;
mod commit;
mod directory;
mod enablement;
mod keys;
mod recovery;
mod sessions;
mod totp;

pub use accounts::{AccountPatch, NewAccount};
pub use admin::{AuditEvent, AuditQuery};
pub use bulk::BulkAccount;
pub use directory::{DeploymentIdentity, DirectoryEntry, DirectoryQuery, FactorSummary};
pub use enablement::{Enabled, EnablementProof, EnablementStart};
pub use keys::{DataKeyInfo, KeyStatus, Rotation};
pub use recovery::RecoveryCodeSet;
pub use sessions::{
    ApiKeyInfo, LoginName, LoginOutcome, NewApiKey, PASSWORD_MEMO_SECS, ProofMethod,
    Reauthentication, SessionInfo, Token, is_api_key,
};
pub use totp::{Enrollment, Provisioned, Renewal, TotpOptions, TotpStatus};

use crate::store::Db;
use crate::{
    Clock, CoreError, CoreResult, MasterKey, Passwords, Policy, Principal, RequestMeta, Role,
    SessionKind,
};
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;
use std::fmt;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The otpd service. Cheap to clone; every clone shares the pools, keys and clock.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    keys: keys::Keys,
    clock: Arc<dyn Clock>,
    passwords: Passwords,
    /// SQLite only: the writer that batches verification writes (see `commit`).
    group_commit: Option<commit::GroupCommit>,
    /// The policy document last read, parsed.
    policies: admin::PolicyMemo,
    /// The API keys found, with the credential epoch they were read at.
    api_keys: sessions::KeyMemo,
    /// The passwords checked on every request (HTTP Basic) that succeeded lately.
    passwords_seen: sessions::PasswordMemo,
    /// The deployment's identity, once read.
    identity: std::sync::OnceLock<DeploymentIdentity>,
    /// The metrics of the core's decisions.
    metrics: Arc<crate::metrics::Metrics>,
}

/// A secret shown to a person once (a TOTP secret, a key URI, a recovery code, a token).
/// Zeroized on drop; `Debug` never shows it; serializes as the plain string.
#[derive(Clone, PartialEq, Eq)]
pub struct Shown(Zeroizing<String>);

impl Shown {
    pub(crate) fn new(s: impl Into<String>) -> Self {
        Shown(Zeroizing::new(s.into()))
    }

    /// The value. Show it to its owner; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Shown([redacted])")
    }
}

impl Serialize for Shown {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// The outcome recorded with an audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// One audit event to write, in the same transaction as the change it records.
pub(crate) struct Audit<'a> {
    pub actor: &'a str,
    pub account: Option<&'a str>,
    pub action: &'static str,
    pub outcome: Outcome,
    pub reason: Option<&'a str>,
    pub meta: &'a RequestMeta,
}

impl<'a> Audit<'a> {
    /// A successful change by `actor` to `account`.
    pub fn success(
        actor: &'a str,
        account: Option<&'a str>,
        action: &'static str,
        meta: &'a RequestMeta,
    ) -> Self {
        Audit {
            actor,
            account,
            action,
            outcome: Outcome::Success,
            reason: None,
            meta,
        }
    }
}

const INSERT_AUDIT: &str = "INSERT INTO audit_events (at, actor, account, action, outcome, reason, door, remote_addr, request_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

impl Service {
    /// A service over `db`, its data keys wrapped by `master`, reading time from `clock`.
    ///
    /// Refuses (with [`CoreError::WrongMasterKey`]) when `master` did not wrap the
    /// database's data keys: an instance with the wrong master key must not serve answers.
    pub async fn new(
        db: Db,
        master: MasterKey,
        clock: Arc<dyn Clock>,
        passwords: Passwords,
    ) -> CoreResult<Self> {
        let keys = keys::Keys::open(master, &db, clock.now()).await?;
        let metrics = Arc::new(crate::metrics::Metrics::new(&db));
        let group_commit = (db.backend() == crate::Backend::Sqlite)
            .then(|| commit::GroupCommit::start(db.clone(), metrics.clone()))
            .transpose()?;
        let service = Service {
            inner: Arc::new(Inner {
                db,
                keys,
                clock,
                passwords,
                group_commit,
                policies: admin::PolicyMemo::default(),
                api_keys: sessions::KeyMemo::default(),
                passwords_seen: sessions::PasswordMemo::new()?,
                identity: std::sync::OnceLock::new(),
                metrics,
            }),
        };
        let now = service.now();
        let document = serde_json::to_string(&Policy::default())
            .map_err(|e| CoreError::Internal(e.to_string().into()))?;
        sqlx::query("INSERT INTO policy (id, document, updated_at) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING")
            .bind(document)
            .bind(now)
            .execute(&service.inner.db.write)
            .await?;
        service.ensure_deployment_identity().await?;
        Ok(service)
    }

    /// The database (for health checks and shutdown).
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Now, by the service's clock (Unix seconds): what tokens' expiry is measured against.
    pub fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// The metrics of the core's decisions (Prometheus), for the front door's `/metrics`.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.inner.metrics
    }

    /// The password hasher (its work counts are what operators watch).
    pub fn passwords(&self) -> &Passwords {
        &self.inner.passwords
    }

    pub(crate) async fn write_audit(
        &self,
        conn: &mut AnyConnection,
        event: Audit<'_>,
    ) -> CoreResult<()> {
        commit::insert_audit(conn, &commit::AuditRow::of(self.now(), &event)).await?;
        Ok(())
    }

    /// Runs `op` again (up to three times in all, after 10 then 40 ms) when the database
    /// rolled its transaction back for a reason that is not the request's fault
    /// ([`crate::store::is_retryable`]); any other error, and the last one, is returned (a
    /// storage error becomes a 503 at the front doors, never a wrong answer).
    pub(crate) async fn retrying<T, F, Fut>(&self, mut op: F) -> CoreResult<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = CoreResult<T>>,
    {
        let mut delay = std::time::Duration::from_millis(10);
        for _ in 0..2 {
            match op().await {
                Err(CoreError::Storage(e)) if crate::store::is_retryable(&e) => {
                    tracing::warn!(error = %e, "transaction rolled back by the database; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                }
                other => return other,
            }
        }
        op().await
    }

    /// Applies a write of the verification path: through the group-commit writer on SQLite,
    /// in a transaction of its own on PostgreSQL. Returns once it is durable. Either way the
    /// write, and the count of a lockout it causes, go on when the caller stops waiting.
    pub(crate) async fn write_verification(
        &self,
        write: commit::VerifyWrite,
    ) -> CoreResult<commit::Written> {
        match &self.inner.group_commit {
            Some(writer) => writer.submit(write).await,
            None => {
                let (db, metrics) = (self.inner.db.clone(), self.inner.metrics.clone());
                tokio::spawn(async move {
                    let written = commit::apply_alone(&db, &write).await;
                    if written.as_ref().is_ok_and(|w| w.locked_out()) {
                        metrics.lockout();
                    }
                    written
                })
                .await
                .map_err(|e| CoreError::Internal(format!("a write stopped: {e}").into()))?
            }
        }
    }

    /// Writes an audit event in a transaction of its own (for outcomes that change nothing
    /// else, such as a refused login).
    pub(crate) async fn audit_alone(&self, event: Audit<'_>) -> CoreResult<()> {
        let mut conn = self.inner.db.write.acquire().await?;
        self.write_audit(&mut conn, event).await
    }
}

/// A new random token with a recognisable prefix; only its hash is stored.
pub(crate) fn new_token(prefix: &str) -> CoreResult<(Shown, String)> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    getrandom::fill(bytes.as_mut_slice())
        .map_err(|_| CoreError::Internal("system RNG failed".into()))?;
    let token = format!(
        "{prefix}{}",
        data_encoding::BASE64URL_NOPAD.encode(bytes.as_slice())
    );
    let hash = token_hash(&token);
    Ok((Shown::new(token), hash))
}

/// SHA-256 of a token, hex: a fast hash is right here, since tokens carry 256 random bits
/// (nothing to brute-force), and it keeps Argon2 off the hot path.
pub(crate) fn token_hash(token: &str) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(token.as_bytes()))
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// What an operation needs of the principal, checked before anything is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// The account itself or any admin (reads).
    SelfOrReader,
    /// The account itself or a 2FA admin (2FA changes on one's own or others' accounts).
    SelfOr2faAdmin,
    /// A 2FA admin only (e.g. enabling/disabling an authenticator).
    TwofactorAdmin,
    /// The account itself or a full admin (passwords, names, API keys).
    SelfOrFullAdmin,
    /// A full admin only (accounts, policy).
    FullAdmin,
    /// Any admin (reading policy, audit, account lists).
    AnyAdmin,
    /// The account itself only (e.g. reading its recovery codes).
    OnlySelf,
    /// The account itself, a 2FA admin or a verifier (verifying a code).
    Verify,
}

impl Service {
    /// Checks that `principal` may act on the account named `target` (if any) as `need`
    /// says. Plain accounts are refused before any lookup, so they cannot probe names.
    /// A session limited to enrolling may act only on its own account, and only where
    /// `enrolling_ok` (enroll, confirm, read itself): it holds no role until it enrolled.
    pub(crate) fn authorize(
        &self,
        principal: &Principal,
        target: Option<&str>,
        need: Need,
        enrolling_ok: bool,
    ) -> CoreResult<()> {
        let Principal::Account(caller) = principal else {
            return Ok(()); // the CLI is the operator on the host
        };
        let is_self = target.is_some_and(|t| t.eq_ignore_ascii_case(&caller.username));
        // A verifier verifies codes and does nothing else, not even on itself: a leaked
        // service key must not mint more keys or enroll.
        if caller.roles.len() == 1 && caller.roles.contains(&Role::Verifier) && need != Need::Verify
        {
            return Err(CoreError::forbidden("a verifier may only verify codes"));
        }
        if caller.kind == SessionKind::Enrollment && !(enrolling_ok && is_self) {
            return Err(CoreError::forbidden(
                "this session may only enroll an authenticator for its own account",
            ));
        }
        let allowed = match need {
            Need::SelfOrReader => is_self || principal.is_any_admin(),
            Need::SelfOr2faAdmin => is_self || principal.has(Role::TwofactorAdmin),
            Need::TwofactorAdmin => principal.has(Role::TwofactorAdmin),
            Need::SelfOrFullAdmin => is_self || principal.has(Role::FullAdmin),
            Need::FullAdmin => principal.has(Role::FullAdmin),
            Need::AnyAdmin => principal.is_any_admin(),
            Need::OnlySelf => is_self,
            Need::Verify => {
                is_self || principal.has(Role::TwofactorAdmin) || principal.has(Role::Verifier)
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(CoreError::forbidden("not allowed"))
        }
    }

    /// Checks that `principal` may manage the account `account_id` (its 2FA, password,
    /// sessions): itself, the CLI, or an actor whose roles cover the account's
    /// ([`crate::roles_cover`]). Called once the account is found, after [`Self::authorize`].
    pub(crate) async fn may_manage(
        &self,
        conn: &mut AnyConnection,
        principal: &Principal,
        account_id: &str,
    ) -> CoreResult<()> {
        let Principal::Account(caller) = principal else {
            return Ok(());
        };
        if caller.account_id == account_id {
            return Ok(());
        }
        let roles: Option<String> = sqlx::query_scalar("SELECT roles FROM accounts WHERE id = $1")
            .bind(account_id.to_owned())
            .fetch_optional(conn)
            .await?;
        let subject = crate::model::roles_from_db(roles.as_deref().unwrap_or(""));
        if crate::roles_cover(&caller.roles, &subject) {
            Ok(())
        } else {
            Err(CoreError::forbidden(
                "not allowed to manage an account whose roles exceed your own",
            ))
        }
    }
}
