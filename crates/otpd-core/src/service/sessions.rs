//! Login, second-factor challenges, sessions and API keys, and turning a bearer token back
//! into a [`Principal`].

use super::accounts::AccountRow;
use super::{Audit, Need, Outcome, Service, Shown, new_id, new_token, token_hash};
use crate::metrics::{LoginFactor, LoginResult};
use crate::model::roles_from_db;
use crate::{
    Caller, CoreError, CoreResult, FactorMethod, PasswordProof, Principal, RequestMeta,
    SessionKind, VerifyReason,
};
use serde::Serialize;
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard, PoisonError};
use zeroize::Zeroizing;

const SESSION_PREFIX: &str = "otpd_s_";
const API_KEY_PREFIX: &str = "otpd_k_";

/// Whether `bearer` has the shape of an API key (its prefix), without checking it.
pub fn is_api_key(bearer: &str) -> bool {
    bearer.starts_with(API_KEY_PREFIX)
}

/// A bearer token and when it expires.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Token {
    /// The token, shown once.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub token: Shown,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
}

/// What a password login gives.
#[derive(Debug, Clone)]
pub enum LoginOutcome {
    /// A full session.
    Session(Token),
    /// The account has an enabled authenticator: send a code with this challenge.
    SecondFactorRequired {
        /// The challenge token for [`Service::second_factor`].
        challenge: Token,
        /// The account's roles (an admin door refuses other accounts before the code).
        roles: crate::Roles,
    },
    /// Policy requires enrollment first: a session limited to enrolling.
    EnrollmentRequired(Token),
}

/// How a client names the account it logs in to.
#[derive(Debug, Clone, Copy)]
pub enum LoginName<'a> {
    /// The account name (case-insensitive).
    Username(&'a str),
    /// The account's e-mail address (case-insensitive); an address two accounts share
    /// logs in to neither.
    Email(&'a str),
    /// A name, or — when no account has that name and it has an `@` — an e-mail address
    /// (Rocket.Chat's `user`).
    UsernameOrEmail(&'a str),
}

impl LoginName<'_> {
    /// What a refused attempt is audited against.
    fn text(&self) -> &str {
        match self {
            LoginName::Username(s) | LoginName::Email(s) | LoginName::UsernameOrEmail(s) => s,
        }
    }
}

/// How an account proves itself again, for one request ([`Service::reauthenticate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProofMethod {
    /// A code of its active authenticator (TOTP or recovery code).
    Totp,
    /// Its password, as the lower-case hex SHA-256 of it (Rocket.Chat's fallback for
    /// accounts without a second factor).
    Password,
}

/// What [`Service::reauthenticate`] found.
#[derive(Debug, Clone)]
pub enum Reauthentication {
    /// Proven (or nothing to prove): act as this principal for the rest of the request —
    /// after a code, its second factor counts as proven now (the core's step-up is met).
    Proven(Principal),
    /// No proof was sent; this is what the account must send.
    Required(ProofMethod),
    /// The proof was wrong (counted and audited); why, for a code.
    Refused(ProofMethod, VerifyReason),
}

/// A session as listed to its owner (never the token).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    /// Session id.
    pub id: String,
    /// `session` or `enrollment`.
    pub kind: SessionKind,
    /// How it was authenticated.
    pub method: String,
    /// Created (Unix seconds).
    pub created_at: i64,
    /// Expires (Unix seconds).
    pub expires_at: i64,
    /// Last second-factor proof (Unix seconds).
    pub second_factor_at: Option<i64>,
    /// Front door it was made through.
    pub door: String,
    /// Peer address at login.
    pub remote_addr: Option<String>,
    /// Whether it is the session making this request.
    pub current: bool,
}

/// An API key as listed (never the key).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyInfo {
    /// Key id.
    pub id: String,
    /// The owner's name.
    pub account: String,
    /// A label.
    pub name: String,
    /// Created (Unix seconds).
    pub created_at: i64,
    /// Last used (Unix seconds, to the minute).
    pub last_used_at: Option<i64>,
}

/// A new API key: the key is shown once.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewApiKey {
    /// The key's listing.
    #[serde(flatten)]
    pub info: ApiKeyInfo,
    /// The key, shown once.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub key: Shown,
}

/// An API key and its owner, by the key's hash, with the credential epoch of the same
/// snapshot (migration 0005): the first read of a service request whose key this instance
/// does not remember ([`KeyMemo`]).
const API_KEY_BY_HASH: &str = "SELECT k.id, k.last_used_at, a.id AS account_id, a.username, a.roles, a.locked, \
     (SELECT epoch FROM credential_epoch WHERE id = 1) AS epoch \
     FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE k.key_hash = $1";

/// An API key found, with what it authenticates and when it was last recorded as used.
#[derive(Debug, Clone)]
struct KnownKey {
    /// The credential epoch of the snapshot the key was read in.
    epoch: i64,
    id: String,
    last_used_at: Option<i64>,
    caller: Caller,
}

/// The API keys this instance has found, by key hash (never the key itself).
///
/// A service sends the same key with every verification, and reading it (the key, then its
/// owner through the accounts table's two large B-trees) cost more than the one-row epoch
/// read that replaces it: 232k → 221k instructions per verification (callgrind, 1M
/// accounts), and a few page copies fewer that grow with the accounts. A remembered key is
/// trusted only while the credential epoch read at the request equals the one it was read
/// at: every revocation, deletion, owner lock, rename or role change moves the epoch
/// forward in the same transaction (triggers of migration 0005, so also when another
/// instance or the CLI makes the change), and the next request of every instance reads the
/// key afresh. Only keys that authenticated are
/// kept, so unknown or refused keys cannot fill it; it is emptied when it reaches
/// [`KeyMemo::CAPACITY`] keys.
#[derive(Debug, Default)]
pub(crate) struct KeyMemo(Mutex<HashMap<String, KnownKey>>);

impl KeyMemo {
    const CAPACITY: usize = 1024;

    fn keys(&self) -> MutexGuard<'_, HashMap<String, KnownKey>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key of `hash`, if it was read at `epoch`.
    fn get(&self, hash: &str, epoch: i64) -> Option<KnownKey> {
        self.keys().get(hash).filter(|k| k.epoch == epoch).cloned()
    }

    fn remember(&self, hash: String, key: KnownKey) {
        let mut keys = self.keys();
        if keys.len() >= Self::CAPACITY && !keys.contains_key(&hash) {
            keys.clear();
        }
        keys.insert(hash, key);
    }

    /// Records that the key of `hash` was marked used at `now`.
    fn used(&self, hash: &str, now: i64) {
        if let Some(key) = self.keys().get_mut(hash) {
            key.last_used_at = Some(now);
        }
    }
}

/// How long (seconds) a password that authenticated a request is remembered.
pub const PASSWORD_MEMO_SECS: i64 = 60;

/// Passwords checked on every request (HTTP Basic: ONTAP clients send the password with
/// each call) that this instance has seen succeed, so that fifty calls do not cost fifty
/// Argon2id hashes.
///
/// Entries are keyed by HMAC-SHA256 of the username and password under a random key made
/// at start and never stored — the password itself is never kept, and a memory dump yields
/// no offline-guessable hash. An entry is trusted only while the credential epoch read at
/// the request equals the one it was made at (a password change, rename, role change, lock
/// or deletion moves it, migrations 0005 and 0006, on any instance), and for at most
/// [`PASSWORD_MEMO_SECS`] seconds. Only successes are kept; the map is emptied when it
/// reaches [`PasswordMemo::CAPACITY`] entries.
pub(crate) struct PasswordMemo {
    key: Zeroizing<[u8; 32]>,
    known: Mutex<HashMap<[u8; 32], KnownPassword>>,
}

#[derive(Clone)]
struct KnownPassword {
    epoch: i64,
    /// When the password was last checked (trusted for [`PASSWORD_MEMO_SECS`] after).
    checked_at: i64,
    /// When it last authenticated a request (seen lately: no guess).
    used_at: i64,
    caller: Caller,
}

impl PasswordMemo {
    const CAPACITY: usize = 1024;

    pub(crate) fn new() -> CoreResult<Self> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut_slice())
            .map_err(|_| CoreError::Internal("system RNG failed".into()))?;
        Ok(PasswordMemo {
            key,
            known: Mutex::new(HashMap::new()),
        })
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<[u8; 32], KnownPassword>> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The keyed hash of a credential: the username's length first, so that no two
    /// (username, password) pairs hash the same input.
    fn id(&self, username: &str, password: &str) -> [u8; 32] {
        use hmac::{Hmac, KeyInit, Mac};
        let mut out = [0u8; 32];
        if let Ok(mut mac) = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(self.key.as_slice()) {
            // Names are one account whatever their case: one entry for all spellings.
            let username = username.to_ascii_lowercase();
            mac.update(&(username.len() as u64).to_be_bytes());
            mac.update(username.as_bytes());
            mac.update(password.as_bytes());
            out.copy_from_slice(&mac.finalize().into_bytes());
        }
        out
    }

    fn get(&self, id: &[u8; 32], epoch: i64, now: i64) -> Option<Caller> {
        let mut entries = self.entries();
        let known = entries.get_mut(id)?;
        if known.epoch == epoch && (0..PASSWORD_MEMO_SECS).contains(&(now - known.checked_at)) {
            known.used_at = now;
            return Some(known.caller.clone());
        }
        entries.remove(id);
        None
    }

    fn seen_lately(&self, id: &[u8; 32], now: i64) -> bool {
        self.entries()
            .get(id)
            .is_some_and(|known| (0..PASSWORD_MEMO_SECS).contains(&(now - known.used_at)))
    }

    fn remember(&self, id: [u8; 32], known: KnownPassword) {
        let mut entries = self.entries();
        if entries.len() >= Self::CAPACITY && !entries.contains_key(&id) {
            entries.clear();
        }
        entries.insert(id, known);
    }
}

impl Service {
    /// Authenticates a request that carries a username and password (HTTP Basic), with no
    /// session: the principal has proven no second factor, so anything that needs step-up
    /// still needs a code. A failure is audited like a failed login and answers
    /// [`CoreError::Unauthenticated`] — unknown user, wrong or disabled password and locked
    /// account alike, after the same Argon2id work. A success is remembered for a minute
    /// (`PasswordMemo`); it is no login, so it is not audited and makes no session. An
    /// account that policy requires to enroll and has not gets the principal of an
    /// enrollment session (itself only, enrolling only), decided afresh at every request.
    pub async fn authenticate_password(
        &self,
        username: &str,
        password: Zeroizing<String>,
        meta: &RequestMeta,
    ) -> CoreResult<Principal> {
        let memo = &self.inner.passwords_seen;
        let id = memo.id(username, &password);
        let (epoch, policy) = self.epoch_and_policy().await?;
        let now = self.now();
        let mut caller = match memo.get(&id, epoch, now) {
            Some(caller) => caller,
            None => {
                let Some(account) = self
                    .account_with_proof(LoginName::Username(username), password.into())
                    .await?
                    .filter(|a| !a.locked)
                else {
                    self.audit_bad_password(username, "auth.password", meta)
                        .await?;
                    return Err(CoreError::Unauthenticated);
                };
                let caller = password_caller(account);
                memo.remember(
                    id,
                    KnownPassword {
                        epoch,
                        checked_at: now,
                        used_at: now,
                        caller: caller.clone(),
                    },
                );
                caller
            }
        };
        // Whether the account must enroll first follows the policy and its authenticator as
        // they are now (neither moves the epoch), at every request.
        if policy.enforced && self.active_factor(&caller.account_id).await?.is_none() {
            caller.kind = SessionKind::Enrollment;
        }
        Ok(Principal::Account(caller))
    }

    /// The credential epoch and the policy, in one point read (on SQLite on the calling
    /// thread): what a remembered password needs at each request.
    async fn epoch_and_policy(&self) -> CoreResult<(i64, Arc<crate::Policy>)> {
        const SQL: &str = "SELECT (SELECT epoch FROM credential_epoch WHERE id = 1) AS epoch, document \
             FROM policy WHERE CAST(id AS TEXT) = $1";
        let (epoch, document) = self
            .db()
            .row_by_key(SQL, "1", |row| {
                Ok((row.int("epoch")?, row.text("document")?))
            })
            .await?
            .ok_or_else(|| CoreError::Internal("the policy row is missing".into()))?;
        Ok((epoch, self.inner.policies.parse(&document)?))
    }

    /// Whether this instance remembers `password` as the password of `username` (it
    /// authenticated a request within the last [`PASSWORD_MEMO_SECS`] seconds, counted from
    /// its last use): such a
    /// request is no password guess, so a door need not count it as a login attempt. No
    /// database read; [`Service::authenticate_password`] still checks the epoch.
    pub fn password_seen_lately(&self, username: &str, password: &str) -> bool {
        let memo = &self.inner.passwords_seen;
        memo.seen_lately(&memo.id(username, password), self.now())
    }

    /// Password login. Unknown users, wrong passwords and disabled passwords answer the same
    /// [`CoreError::Unauthenticated`] after the same Argon2 work.
    pub async fn login(
        &self,
        username: &str,
        password: Zeroizing<String>,
        meta: &RequestMeta,
    ) -> CoreResult<LoginOutcome> {
        self.login_as(LoginName::Username(username), password.into(), meta)
            .await
    }

    /// [`Service::login`] with the account named by its name or e-mail address, and the
    /// password or its digest (Meteor clients send either).
    pub async fn login_as(
        &self,
        name: LoginName<'_>,
        password: PasswordProof,
        meta: &RequestMeta,
    ) -> CoreResult<LoginOutcome> {
        let metrics = &self.inner.metrics;
        let Some(account) = self.account_with_proof(name, password).await? else {
            self.audit_bad_password(name.text(), "auth.login", meta)
                .await?;
            metrics.login(LoginFactor::Password, LoginResult::Rejected);
            return Err(CoreError::Unauthenticated);
        };
        if account.locked {
            self.audit_alone(Audit {
                actor: &account.username,
                account: Some(&account.username),
                action: "auth.login",
                outcome: Outcome::Failure,
                reason: Some("account locked"),
                meta,
            })
            .await?;
            metrics.login(LoginFactor::Password, LoginResult::Locked);
            return Err(CoreError::AccountLocked);
        }
        let policy = self.policy_now().await?;
        let factor = self.active_factor(&account.id).await?;
        let mut tx = self.db().begin().await?;
        let outcome = match factor {
            Some(true) if policy.second_factor_at_login => {
                let challenge = self
                    .insert_session(
                        &mut tx,
                        &account.id,
                        SessionKind::Challenge,
                        "password",
                        None,
                        policy.challenge_secs,
                        meta,
                    )
                    .await?;
                LoginOutcome::SecondFactorRequired {
                    challenge,
                    roles: account.roles.clone(),
                }
            }
            None if policy.enforced => {
                let token = self
                    .insert_session(
                        &mut tx,
                        &account.id,
                        SessionKind::Enrollment,
                        "password",
                        None,
                        policy.challenge_secs.max(policy.enrollment_secs),
                        meta,
                    )
                    .await?;
                LoginOutcome::EnrollmentRequired(token)
            }
            _ => LoginOutcome::Session(
                self.insert_session(
                    &mut tx,
                    &account.id,
                    SessionKind::Session,
                    "password",
                    None,
                    policy.session_secs,
                    meta,
                )
                .await?,
            ),
        };
        let (reason, result) = match &outcome {
            LoginOutcome::Session(_) => (None, LoginResult::Succeeded),
            LoginOutcome::SecondFactorRequired { .. } => (
                Some("second factor required"),
                LoginResult::SecondFactorRequired,
            ),
            LoginOutcome::EnrollmentRequired(_) => {
                (Some("enrollment required"), LoginResult::EnrollmentRequired)
            }
        };
        self.write_audit(
            &mut tx,
            Audit {
                actor: &account.username,
                account: Some(&account.username),
                action: "auth.login",
                outcome: Outcome::Success,
                reason,
                meta,
            },
        )
        .await?;
        tx.commit().await?;
        metrics.login(LoginFactor::Password, result);
        Ok(outcome)
    }

    /// Completes a login with a TOTP or recovery code. The code goes through the same
    /// verification as everything else (window, replay claim, failure counting, lockout);
    /// a refused code leaves the challenge usable until it expires or the authenticator locks.
    pub async fn second_factor(
        &self,
        challenge: &str,
        code: &str,
        meta: &RequestMeta,
    ) -> CoreResult<Token> {
        let answer = self.complete_login(challenge, code, meta).await;
        let result = match &answer {
            Ok(_) => LoginResult::Succeeded,
            Err(
                CoreError::AccountLocked
                | CoreError::SecondFactorFailed {
                    reason: crate::VerifyReason::Locked,
                },
            ) => LoginResult::Locked,
            Err(CoreError::Unauthenticated | CoreError::SecondFactorFailed { .. }) => {
                LoginResult::Rejected
            }
            // Not a decision about the factor (bad input, the database): not counted.
            Err(_) => return answer,
        };
        self.inner.metrics.login(LoginFactor::of_code(code), result);
        answer
    }

    /// [`Service::second_factor`], before it is counted.
    async fn complete_login(
        &self,
        challenge: &str,
        code: &str,
        meta: &RequestMeta,
    ) -> CoreResult<Token> {
        let now = self.now();
        let row = sqlx::query(
            "SELECT s.id, s.account_id, a.username, a.locked FROM sessions s JOIN accounts a ON a.id = s.account_id \
             WHERE s.token_hash = $1 AND s.kind = 'challenge' AND s.expires_at > $2",
        )
        .bind(token_hash(challenge))
        .bind(now)
        .fetch_optional(&self.db().read)
        .await?
        .ok_or(CoreError::Unauthenticated)?;
        let challenge_id: String = row.try_get("id")?;
        let account_id: String = row.try_get("account_id")?;
        let username: String = row.try_get("username")?;
        if row.try_get::<i64, _>("locked")? != 0 {
            return Err(CoreError::AccountLocked);
        }
        let outcome = self
            .check_code(&username, code, &username, "auth.second_factor", meta)
            .await?;
        let Some(method) = outcome.method.filter(|_| outcome.valid) else {
            return Err(CoreError::SecondFactorFailed {
                reason: outcome.reason.unwrap_or(crate::VerifyReason::Invalid),
            });
        };
        let policy = self.policy_now().await?;
        let mut tx = self.db().begin().await?;
        // The challenge is single use: whoever deletes it makes the session.
        let deleted = sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(challenge_id)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(CoreError::Unauthenticated);
        }
        let label = match method {
            FactorMethod::Totp => "password+totp",
            FactorMethod::RecoveryCode => "password+recovery_code",
        };
        let token = self
            .insert_session(
                &mut tx,
                &account_id,
                SessionKind::Session,
                label,
                Some(now),
                policy.session_secs,
                meta,
            )
            .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// The account `name` names, if `password` proves its password — after the same
    /// Argon2id work whether the account exists or not, so that timing tells nothing. A
    /// password hash of an older form is replaced on the way ([`crate::Checked::upgrade`]);
    /// that is no change of the credential, so it is not audited (the epoch still moves).
    pub(super) async fn account_with_proof(
        &self,
        name: LoginName<'_>,
        password: PasswordProof,
    ) -> CoreResult<Option<crate::Account>> {
        let found = {
            let mut conn = self.db().read.acquire().await?;
            match name {
                LoginName::Username(name) => self.find_account(&mut conn, name).await?,
                LoginName::Email(email) => self.find_account_by_email(&mut conn, email).await?,
                LoginName::UsernameOrEmail(text) => match self.find_account(&mut conn, text).await?
                {
                    Some(found) => Some(found),
                    None if text.contains('@') => {
                        self.find_account_by_email(&mut conn, text).await?
                    }
                    None => None,
                },
            }
        };
        let hash = found.as_ref().and_then(|a| a.password_hash.clone());
        let checked = self.passwords().check(password, hash.clone()).await?;
        if let (true, Some(upgrade), Some(found), Some(old)) =
            (checked.ok, checked.upgrade, &found, hash)
        {
            // Only if the hash is still the one checked: a concurrent change wins.
            sqlx::query(
                "UPDATE accounts SET password_hash = $1 WHERE id = $2 AND password_hash = $3",
            )
            .bind(upgrade)
            .bind(found.account.id.clone())
            .bind(old)
            .execute(&self.db().write)
            .await?;
        }
        Ok(found
            .filter(|_| checked.ok)
            .map(|AccountRow { account, .. }| account))
    }

    /// Makes the caller prove itself again for this request (Rocket.Chat's
    /// `twoFactorRequired` check): an account with an active, enabled authenticator by one
    /// of its codes — checked, claimed and counted like any other, whatever its session
    /// proved before — else an account with a password by the password's SHA-256 digest
    /// (a refused digest is audited as a bad password; the door counts it against the
    /// address). An account with neither, and the CLI, have nothing to prove. A proven
    /// code counts as this request's second factor for the core's step-up rule (and is
    /// recorded on the session, as step-up records it).
    pub async fn reauthenticate(
        &self,
        principal: &Principal,
        proof: Option<&str>,
        meta: &RequestMeta,
    ) -> CoreResult<Reauthentication> {
        let Principal::Account(caller) = principal else {
            return Ok(Reauthentication::Proven(principal.clone()));
        };
        if self.active_factor(&caller.account_id).await? == Some(true) {
            let Some(code) = proof else {
                return Ok(Reauthentication::Required(ProofMethod::Totp));
            };
            let outcome = self
                .check_code(
                    &caller.username,
                    code,
                    &caller.username,
                    "auth.reauthenticate",
                    meta,
                )
                .await?;
            if !outcome.valid {
                let reason = outcome.reason.unwrap_or(VerifyReason::Invalid);
                return Ok(Reauthentication::Refused(ProofMethod::Totp, reason));
            }
            let now = self.now();
            self.record_second_factor(caller, now).await?;
            let mut proven = caller.clone();
            proven.second_factor_at = Some(now);
            return Ok(Reauthentication::Proven(Principal::Account(proven)));
        }
        let account = {
            let mut conn = self.db().read.acquire().await?;
            self.find_account(&mut conn, &caller.username).await?
        };
        let Some(hash) = account.and_then(|a| a.password_hash) else {
            return Ok(Reauthentication::Proven(principal.clone()));
        };
        let Some(digest) = proof else {
            return Ok(Reauthentication::Required(ProofMethod::Password));
        };
        let digest = PasswordProof::Sha256Hex(Zeroizing::new(digest.to_owned()));
        if self.passwords().check(digest, Some(hash)).await?.ok {
            return Ok(Reauthentication::Proven(principal.clone()));
        }
        self.audit_bad_password(&caller.username, "auth.reauthenticate", meta)
            .await?;
        Ok(Reauthentication::Refused(
            ProofMethod::Password,
            VerifyReason::Invalid,
        ))
    }

    /// Audits a refused password against the name tried (when it is a valid name).
    pub(super) async fn audit_bad_password(
        &self,
        username: &str,
        action: &'static str,
        meta: &RequestMeta,
    ) -> CoreResult<()> {
        let subject = found_name(username);
        self.audit_alone(Audit {
            actor: subject.as_deref().unwrap_or("anonymous"),
            account: subject.as_deref(),
            action,
            outcome: Outcome::Failure,
            reason: Some("bad credentials"),
            meta,
        })
        .await
    }

    /// Whether the account has an active authenticator, and if so whether it is enabled.
    pub(super) async fn active_factor(&self, account_id: &str) -> CoreResult<Option<bool>> {
        let factor: Option<(i64,)> = sqlx::query_as(
            "SELECT enabled FROM authenticators WHERE account_id = $1 AND state = 'active'",
        )
        .bind(account_id.to_owned())
        .fetch_optional(&self.db().read)
        .await?;
        Ok(factor.map(|(enabled,)| enabled != 0))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn insert_session(
        &self,
        conn: &mut AnyConnection,
        account_id: &str,
        kind: SessionKind,
        method: &str,
        second_factor_at: Option<i64>,
        lifetime: u64,
        meta: &RequestMeta,
    ) -> CoreResult<Token> {
        let (token, hash) = new_token(SESSION_PREFIX)?;
        let now = self.now();
        let expires_at = now.saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX));
        sqlx::query(
            "INSERT INTO sessions (id, token_hash, account_id, kind, method, created_at, expires_at, second_factor_at, door, remote_addr) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(new_id())
        .bind(hash)
        .bind(account_id.to_owned())
        .bind(kind.as_str())
        .bind(method.to_owned())
        .bind(now)
        .bind(expires_at)
        .bind(second_factor_at)
        .bind(meta.door.as_str())
        .bind(meta.remote_addr.clone())
        .execute(conn)
        .await?;
        Ok(Token { token, expires_at })
    }

    /// Turns a bearer token (session or API key) into the principal it authenticates.
    /// One indexed read (for a remembered API key, of the credential epoch only); revocation
    /// and expiry are seen at the next request on every instance. Challenge tokens
    /// authenticate nothing.
    pub async fn authenticate(&self, bearer: &str) -> CoreResult<Principal> {
        let now = self.now();
        if bearer.starts_with(API_KEY_PREFIX) {
            let hash = token_hash(bearer);
            let memo = &self.inner.api_keys;
            let epoch = self.db().credential_epoch().await?;
            let key = match memo.get(&hash, epoch) {
                Some(key) => key,
                None => {
                    let key = self
                        .db()
                        .row_by_key(API_KEY_BY_HASH, &hash, |row| {
                            if row.int("locked")? != 0 {
                                return Ok(None);
                            }
                            let id = row.text("id")?;
                            Ok(Some(KnownKey {
                                epoch: row.int("epoch")?,
                                caller: Caller {
                                    account_id: row.text("account_id")?,
                                    username: row.text("username")?,
                                    roles: roles_from_db(&row.text("roles")?),
                                    session_id: None,
                                    kind: SessionKind::Session,
                                    second_factor_at: None,
                                    api_key_id: Some(id.clone()),
                                },
                                id,
                                last_used_at: row.opt_int("last_used_at")?,
                            }))
                        })
                        .await?
                        .flatten()
                        .ok_or(CoreError::Unauthenticated)?;
                    memo.remember(hash.clone(), key.clone());
                    key
                }
            };
            // Recorded to the minute, so a busy service key costs no write per request.
            if key.last_used_at.is_none_or(|t| t < now - 60) {
                sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(key.id)
                    .execute(&self.db().write)
                    .await?;
                memo.used(&hash, now);
            }
            return Ok(Principal::Account(key.caller));
        }
        if !bearer.starts_with(SESSION_PREFIX) {
            return Err(CoreError::Unauthenticated);
        }
        let row = sqlx::query(
            "SELECT s.id, s.kind, s.second_factor_at, a.id AS account_id, a.username, a.roles, a.locked FROM sessions s \
             JOIN accounts a ON a.id = s.account_id WHERE s.token_hash = $1 AND s.expires_at > $2 AND s.kind <> 'challenge'",
        )
        .bind(token_hash(bearer))
        .bind(now)
        .fetch_optional(&self.db().read)
        .await?
        .ok_or(CoreError::Unauthenticated)?;
        if row.try_get::<i64, _>("locked")? != 0 {
            return Err(CoreError::Unauthenticated);
        }
        Ok(Principal::Account(Caller {
            account_id: row.try_get("account_id")?,
            username: row.try_get("username")?,
            roles: roles_from_db(&row.try_get::<String, _>("roles")?),
            session_id: Some(row.try_get("id")?),
            kind: SessionKind::from_db(&row.try_get::<String, _>("kind")?),
            second_factor_at: row.try_get("second_factor_at")?,
            api_key_id: None,
        }))
    }

    /// Ends the caller's session.
    pub async fn logout(&self, principal: &Principal, meta: &RequestMeta) -> CoreResult<()> {
        let Principal::Account(Caller {
            session_id: Some(id),
            username,
            ..
        }) = principal
        else {
            return Err(CoreError::invalid(
                "session",
                "this request was not made with a session",
            ));
        };
        let mut tx = self.db().begin().await?;
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
        self.write_audit(
            &mut tx,
            Audit::success(username, Some(username), "auth.logout", meta),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The sessions of an account (itself or any admin).
    pub async fn list_sessions(
        &self,
        principal: &Principal,
        username: &str,
    ) -> CoreResult<Vec<SessionInfo>> {
        self.authorize(principal, Some(username), Need::SelfOrReader, false)?;
        let mut conn = self.db().read.acquire().await?;
        let account = self.require_account(&mut conn, username).await?.account;
        let current = match principal {
            Principal::Account(c) => c.session_id.clone(),
            Principal::Cli => None,
        };
        let rows = sqlx::query(
            "SELECT id, kind, method, created_at, expires_at, second_factor_at, door, remote_addr FROM sessions \
             WHERE account_id = $1 AND kind <> 'challenge' AND expires_at > $2 ORDER BY created_at",
        )
        .bind(account.id)
        .bind(self.now())
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                Ok(SessionInfo {
                    current: current.as_deref() == Some(id.as_str()),
                    id,
                    kind: SessionKind::from_db(&r.try_get::<String, _>("kind")?),
                    method: r.try_get("method")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    second_factor_at: r.try_get("second_factor_at")?,
                    door: r.try_get("door")?,
                    remote_addr: r.try_get("remote_addr")?,
                })
            })
            .collect()
    }

    /// Revokes one session of an account (itself or a 2FA admin).
    pub async fn revoke_session(
        &self,
        principal: &Principal,
        username: &str,
        session_id: &str,
        meta: &RequestMeta,
    ) -> CoreResult<()> {
        self.authorize(principal, Some(username), Need::SelfOr2faAdmin, false)?;
        let mut tx = self.db().begin().await?;
        let account = self.require_account(&mut tx, username).await?.account;
        self.may_manage(&mut tx, principal, &account.id).await?;
        let done = sqlx::query("DELETE FROM sessions WHERE id = $1 AND account_id = $2")
            .bind(session_id.to_owned())
            .bind(account.id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(CoreError::NotFound("session"));
        }
        let actor = principal.actor();
        self.write_audit(
            &mut tx,
            Audit::success(&actor, Some(&account.username), "session.revoke", meta),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends every session of an account, the caller's own included: the account's "sign out
    /// everywhere", or an admin's (2FA admins) revoking them after a lost device. API keys
    /// stay (they are revoked one by one). Audited `session.revoke_all`; answers how many
    /// sessions ended.
    pub async fn end_sessions(
        &self,
        principal: &Principal,
        username: &str,
        meta: &RequestMeta,
    ) -> CoreResult<u64> {
        self.authorize(principal, Some(username), Need::SelfOr2faAdmin, false)?;
        let mut tx = self.db().begin().await?;
        let account = self.require_account(&mut tx, username).await?.account;
        self.may_manage(&mut tx, principal, &account.id).await?;
        let ended = sqlx::query("DELETE FROM sessions WHERE account_id = $1")
            .bind(account.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let actor = principal.actor();
        self.write_audit(
            &mut tx,
            Audit::success(&actor, Some(&account.username), "session.revoke_all", meta),
        )
        .await?;
        tx.commit().await?;
        Ok(ended)
    }

    /// Revokes an account's credentials after a change to its second factor or password
    /// (DESIGN.md, "Sessions after a change"): its sessions — all but the caller's own when
    /// the account acts on itself, all of them when someone else acts — and, for
    /// [`Revoke::Recovery`] made by someone else (an admin or the CLI recovering the
    /// account), its API keys too, since whoever took the account over may hold one. Inside
    /// the change's transaction; the credential epoch's triggers make every instance see
    /// the revoked keys at their next request.
    pub(crate) async fn revoke_credentials_tx(
        &self,
        conn: &mut AnyConnection,
        account_id: &str,
        principal: &Principal,
        what: Revoke,
    ) -> CoreResult<()> {
        let by_self = matches!(principal, Principal::Account(c) if c.account_id == account_id);
        let keep = match principal {
            Principal::Account(c) if by_self => c.session_id.clone(),
            _ => None,
        };
        sqlx::query("DELETE FROM sessions WHERE account_id = $1 AND id <> $2")
            .bind(account_id.to_owned())
            .bind(keep.unwrap_or_default())
            .execute(&mut *conn)
            .await?;
        if what == Revoke::Recovery && !by_self {
            sqlx::query("DELETE FROM api_keys WHERE account_id = $1")
                .bind(account_id.to_owned())
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// Creates an API key for an account (itself or a full admin); the key is shown once.
    pub async fn create_api_key(
        &self,
        principal: &Principal,
        username: &str,
        name: &str,
        meta: &RequestMeta,
    ) -> CoreResult<NewApiKey> {
        self.authorize(principal, Some(username), Need::SelfOrFullAdmin, false)?;
        if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
            return Err(CoreError::invalid(
                "name",
                "must be 1 to 128 characters, without control characters",
            ));
        }
        let (key, hash) = new_token(API_KEY_PREFIX)?;
        let mut tx = self.db().begin().await?;
        let account = self.require_account(&mut tx, username).await?.account;
        let info = ApiKeyInfo {
            id: new_id(),
            account: account.username.clone(),
            name: name.to_owned(),
            created_at: self.now(),
            last_used_at: None,
        };
        sqlx::query("INSERT INTO api_keys (id, key_hash, account_id, name, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(info.id.clone())
            .bind(hash)
            .bind(account.id)
            .bind(info.name.clone())
            .bind(info.created_at)
            .execute(&mut *tx)
            .await?;
        let actor = principal.actor();
        self.write_audit(
            &mut tx,
            Audit::success(&actor, Some(&account.username), "apikey.create", meta),
        )
        .await?;
        tx.commit().await?;
        Ok(NewApiKey { info, key })
    }

    /// API keys of one account, or of all accounts for admins when `username` is `None`.
    pub async fn list_api_keys(
        &self,
        principal: &Principal,
        username: Option<&str>,
    ) -> CoreResult<Vec<ApiKeyInfo>> {
        let need = if username.is_some() {
            Need::SelfOrReader
        } else {
            Need::AnyAdmin
        };
        self.authorize(principal, username, need, false)?;
        let rows = sqlx::query(
            "SELECT k.id, a.username, k.name, k.created_at, k.last_used_at FROM api_keys k JOIN accounts a ON a.id = k.account_id \
             WHERE ($1 = '' OR a.username_key = $1) ORDER BY k.created_at",
        )
        .bind(username.unwrap_or("").to_ascii_lowercase())
        .fetch_all(&self.db().read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ApiKeyInfo {
                    id: r.try_get("id")?,
                    account: r.try_get("username")?,
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                    last_used_at: r.try_get("last_used_at")?,
                })
            })
            .collect()
    }

    /// Revokes an API key (its owner or a full admin).
    pub async fn revoke_api_key(
        &self,
        principal: &Principal,
        key_id: &str,
        meta: &RequestMeta,
    ) -> CoreResult<()> {
        let owner: Option<(String,)> = sqlx::query_as("SELECT a.username FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE k.id = $1")
            .bind(key_id.to_owned())
            .fetch_optional(&self.db().read)
            .await?;
        let Some((owner,)) = owner else {
            return Err(CoreError::NotFound("api key"));
        };
        self.authorize(principal, Some(&owner), Need::SelfOrFullAdmin, false)?;
        let mut tx = self.db().begin().await?;
        let done = sqlx::query("DELETE FROM api_keys WHERE id = $1")
            .bind(key_id.to_owned())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(CoreError::NotFound("api key"));
        }
        let actor = principal.actor();
        self.write_audit(
            &mut tx,
            Audit::success(&actor, Some(&owner), "apikey.revoke", meta),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Which of an account's credentials a change revokes ([`Service::revoke_credentials_tx`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Revoke {
    /// Its other sessions (a second factor activated).
    Sessions,
    /// Its other sessions, and its API keys when someone else acts: a recovery (renewing or
    /// removing the second factor, resetting the password).
    Recovery,
}

/// A syntactically valid username, for auditing a failed login against it.
/// The caller a password authenticates on its own: no session, no second factor.
pub(super) fn password_caller(account: crate::Account) -> Caller {
    Caller {
        account_id: account.id,
        username: account.username,
        roles: account.roles,
        session_id: None,
        kind: SessionKind::Session,
        second_factor_at: None,
        api_key_id: None,
    }
}

fn found_name(username: &str) -> Option<String> {
    crate::Username::parse(username)
        .ok()
        .map(|u| u.as_str().to_owned())
}
