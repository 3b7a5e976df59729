//! Enabling a second factor in two steps without a session (Zimbra's
//! `EnableTwoFactorAuthRequest`, dialects.md §4): the password starts it and gets a pending
//! secret and a single-use enablement token; a code of that secret, with the token or the
//! password again, completes it and gets the recovery codes and a new session.

use super::recovery::RecoveryCodeSet;
use super::sessions::{LoginName, Token};
use super::{Audit, Outcome, Service, Shown};
use crate::{
    Caller, CoreError, CoreResult, PasswordProof, Principal, RequestMeta, SessionKind, TotpOptions,
};

/// What the first step gives.
#[derive(Debug, Clone)]
pub enum EnablementStart {
    /// A pending secret, and the token that completes it.
    Started {
        /// The pending secret (base32), shown once.
        secret: Shown,
        /// Its `otpauth://` key URI.
        provisioning_uri: Shown,
        /// The enablement token: single use, valid for `enrollment_secs`, good for nothing
        /// but enrolling (a session limited to enrolling).
        token: Token,
    },
    /// The account already has an active, enabled authenticator: nothing was changed.
    AlreadyEnabled,
}

/// How the second step proves the account.
pub enum EnablementProof<'a> {
    /// The first step's enablement token.
    Token(&'a str),
    /// The account's name and password again.
    Password {
        /// The account.
        username: &'a str,
        /// Its password.
        password: PasswordProof,
    },
}

/// What the second step gives.
#[derive(Debug, Clone)]
pub struct Enabled {
    /// The account's new recovery codes, shown once.
    pub recovery_codes: Vec<Shown>,
    /// A new session, its second factor proven now. The account's other sessions (the
    /// enablement token among them) have ended.
    pub session: Token,
}

impl Service {
    /// Step 1: checks `password` (a refusal is audited, `totp.enable`, and answers
    /// [`CoreError::Unauthenticated`], whether the account exists, is locked or the password
    /// is wrong), then — unless the account already has an enabled authenticator — begins
    /// an enrollment with `options` (replacing a pending one; refused as
    /// [`CoreError::Forbidden`] when policy lets only admins set up authenticators) and makes
    /// the enablement token.
    pub async fn start_enablement(
        &self,
        username: &str,
        password: PasswordProof,
        options: &TotpOptions,
        meta: &RequestMeta,
    ) -> CoreResult<EnablementStart> {
        let caller = self.password_caller(username, password, meta).await?;
        if self.active_factor(&caller.account_id).await? == Some(true) {
            return Ok(EnablementStart::AlreadyEnabled);
        }
        let principal = Principal::Account(caller.clone());
        let enrollment = self
            .begin_enrollment(&principal, &caller.username, options, meta)
            .await?;
        let policy = self.policy_now().await?;
        let mut tx = self.db().begin().await?;
        let token = self
            .insert_session(
                &mut tx,
                &caller.account_id,
                SessionKind::Enrollment,
                "password",
                None,
                policy.enrollment_secs,
                meta,
            )
            .await?;
        tx.commit().await?;
        Ok(EnablementStart::Started {
            secret: enrollment.secret,
            provisioning_uri: enrollment.provisioning_uri,
            token,
        })
    }

    /// Step 2: confirms the pending enrollment with `code` (as
    /// [`Service::confirm_enrollment`]: the code's step is claimed, a wrong code counts)
    /// and issues `set` recovery codes; the account's sessions end, the enablement token's
    /// too, and a new session begins with its second factor proven. A token that is not a
    /// live enablement token (used, expired, or a full session) is
    /// [`CoreError::Unauthenticated`].
    pub async fn complete_enablement(
        &self,
        proof: EnablementProof<'_>,
        code: &str,
        set: RecoveryCodeSet,
        meta: &RequestMeta,
    ) -> CoreResult<Enabled> {
        let caller = match proof {
            EnablementProof::Token(token) => match self.authenticate(token).await? {
                Principal::Account(caller)
                    if caller.kind == SessionKind::Enrollment && caller.session_id.is_some() =>
                {
                    caller
                }
                _ => return Err(CoreError::Unauthenticated),
            },
            EnablementProof::Password { username, password } => {
                self.password_caller(username, password, meta).await?
            }
        };
        let principal = Principal::Account(caller.clone());
        let recovery_codes = self
            .confirm_enrollment(&principal, &caller.username, code, set, meta)
            .await?;
        let policy = self.policy_now().await?;
        let now = self.now();
        let mut tx = self.db().begin().await?;
        if let Some(id) = &caller.session_id {
            sqlx::query("DELETE FROM sessions WHERE id = $1")
                .bind(id.clone())
                .execute(&mut *tx)
                .await?;
        }
        let session = self
            .insert_session(
                &mut tx,
                &caller.account_id,
                SessionKind::Session,
                "password+totp",
                Some(now),
                policy.session_secs,
                meta,
            )
            .await?;
        tx.commit().await?;
        Ok(Enabled {
            recovery_codes,
            session,
        })
    }

    /// The account `username` names if `password` is its password and it is not locked;
    /// else the refusal is audited (`totp.enable`) and answered
    /// [`CoreError::Unauthenticated`].
    async fn password_caller(
        &self,
        username: &str,
        password: PasswordProof,
        meta: &RequestMeta,
    ) -> CoreResult<Caller> {
        let found = self
            .account_with_proof(LoginName::Username(username), password)
            .await?;
        match found {
            Some(account) if !account.locked => Ok(super::sessions::password_caller(account)),
            Some(account) => {
                self.audit_alone(Audit {
                    actor: &account.username,
                    account: Some(&account.username),
                    action: "totp.enable",
                    outcome: Outcome::Failure,
                    reason: Some("account locked"),
                    meta,
                })
                .await?;
                Err(CoreError::Unauthenticated)
            }
            None => {
                self.audit_bad_password(username, "totp.enable", meta)
                    .await?;
                Err(CoreError::Unauthenticated)
            }
        }
    }
}
