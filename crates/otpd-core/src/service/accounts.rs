//! Accounts: create, read, list, update, delete, passwords, lock/unlock, and the bootstrap
//! administrator.

use super::sessions::Revoke;
use super::totp::StepUp;
use super::{Audit, Need, Outcome, Service, Shown, commit, new_id};
use crate::model::{roles_from_db, roles_to_db};
use crate::store::{flag, is_unique_violation};
use crate::{
    Account, CoreError, CoreResult, Passwords, Principal, Profile, RequestMeta, Role, Roles,
    Username,
};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use zeroize::Zeroizing;

/// A new account. Without a password, password login is disabled (API keys or admin-driven
/// flows only).
#[derive(Debug, Clone, Default)]
pub struct NewAccount {
    /// The name; see [`Username`].
    pub username: String,
    /// The initial password, if any.
    pub password: Option<Zeroizing<String>>,
    /// Roles; none for a plain account.
    pub roles: Roles,
    /// Display name.
    pub full_name: String,
    /// E-mail address.
    pub email: Option<String>,
    /// Profile attributes to set (a JSON object of [`Profile`](crate::Profile) fields);
    /// the others take their TrueNAS defaults.
    pub profile: Option<serde_json::Value>,
}

/// A change to an account; `None` leaves a field as it is. Every field is validated and
/// authorized before anything is written, then all of it is applied in one transaction.
#[derive(Debug, Clone, Default)]
pub struct AccountPatch {
    /// New display name.
    pub full_name: Option<String>,
    /// New e-mail (`Some(None)` removes it).
    pub email: Option<Option<String>>,
    /// New roles (full admins only).
    pub roles: Option<Roles>,
    /// Profile attributes to change (a JSON object of [`Profile`](crate::Profile) fields);
    /// the others keep their values.
    pub profile: Option<serde_json::Value>,
    /// New password (`Some(None)` disables password login): the account itself, with proof
    /// ([`AccountPatch::current_password`] or step-up), or a full admin.
    pub password: Option<Option<Zeroizing<String>>>,
    /// Lock or unlock (full admins). Unlocking also clears the authenticator's lockout.
    pub locked: Option<bool>,
    /// The account's current password, when it changes its own password without a second
    /// factor to prove.
    pub current_password: Option<Zeroizing<String>>,
    /// A second-factor code sent along for step-up (the account changing its own password
    /// while it has an active authenticator).
    pub step_up_code: Option<String>,
}

/// An account row with what only the core may see.
pub(crate) struct AccountRow {
    pub account: Account,
    pub password_hash: Option<String>,
}

/// The columns [`account_from_row`] reads; `totp_active` says whether an active
/// authenticator exists (TrueNAS `twofactor_auth_configured`), in the same query.
macro_rules! account_columns {
    () => {
        "id, uid, username, full_name, email, roles, password_hash, locked, profile, created_at, updated_at, \
         (SELECT COUNT(*) FROM authenticators t WHERE t.account_id = accounts.id AND t.state = 'active') AS totp_active"
    };
}

pub(crate) fn account_from_row(row: &AnyRow) -> CoreResult<AccountRow> {
    let password_hash: Option<String> = row.try_get("password_hash")?;
    let profile: String = row.try_get("profile")?;
    Ok(AccountRow {
        account: Account {
            id: row.try_get("id")?,
            uid: row.try_get("uid")?,
            username: row.try_get("username")?,
            full_name: row.try_get("full_name")?,
            email: row.try_get("email")?,
            roles: roles_from_db(&row.try_get::<String, _>("roles")?),
            password_disabled: password_hash.is_none(),
            locked: row.try_get::<i64, _>("locked")? != 0,
            profile: Profile::from_stored(&profile)?,
            twofactor_configured: row.try_get::<i64, _>("totp_active")? > 0,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        },
        password_hash,
    })
}

/// The `LIKE … ESCAPE '\'` pattern of the lower-cased names that start with `prefix` (at
/// most 64 characters): its wildcards are escaped, so `_` matches only `_`.
pub(super) fn prefix_pattern(prefix: Option<&str>) -> CoreResult<String> {
    let prefix = prefix.unwrap_or("").to_ascii_lowercase();
    if prefix.chars().count() > 64 {
        return Err(CoreError::invalid(
            "prefix",
            "must be at most 64 characters",
        ));
    }
    Ok(format!(
        "{}%",
        prefix
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    ))
}

fn validate_full_name(name: &str) -> CoreResult<()> {
    check_free_text("full_name", name)
}

/// Free text shown to people (a full name, an authenticator's comment): at most 256
/// characters, none of them control characters or ones that reorder or hide text.
pub(super) fn check_free_text(field: &'static str, text: &str) -> CoreResult<()> {
    if text.chars().count() > 256
        || text
            .chars()
            .any(|c| c.is_control() || is_invisible_format(c))
    {
        return Err(CoreError::invalid(
            field,
            "must be at most 256 characters, without control or bidirectional-override characters",
        ));
    }
    Ok(())
}

/// Characters that reorder, break or hide text (bidirectional overrides and isolates,
/// zero-width marks, line and paragraph separators, tag characters): a name or address
/// holding one can read as another's.
pub(crate) fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}' | '\u{e0000}'..='\u{e007f}')
}

fn validate_email(email: &str) -> CoreResult<()> {
    let ok = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email.chars().any(|c| {
            c.is_whitespace() || c.is_control() || is_invisible_format(c) || c == '/' || c == '\\'
        });
    if ok {
        Ok(())
    } else {
        Err(CoreError::invalid(
            "email",
            "must be an e-mail address, without spaces, '/', '\\', control or bidirectional-override characters",
        ))
    }
}

pub(super) fn to_json(profile: &Profile) -> CoreResult<String> {
    serde_json::to_string(profile).map_err(|e| CoreError::Internal(e.to_string().into()))
}

impl Service {
    /// Looks an account up by name (case-insensitively).
    pub(crate) async fn find_account(
        &self,
        conn: &mut AnyConnection,
        username: &str,
    ) -> CoreResult<Option<AccountRow>> {
        let Ok(name) = Username::parse(username) else {
            return Ok(None);
        };
        let row = sqlx::query(ACCOUNT_BY_NAME)
            .bind(name.key())
            .fetch_optional(conn)
            .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    /// Looks an account up by e-mail address (case-insensitively): `None` unless exactly one
    /// account has it.
    pub(crate) async fn find_account_by_email(
        &self,
        conn: &mut AnyConnection,
        email: &str,
    ) -> CoreResult<Option<AccountRow>> {
        if validate_email(email).is_err() {
            return Ok(None);
        }
        let rows = sqlx::query(ACCOUNT_BY_EMAIL)
            .bind(email.to_owned())
            .fetch_all(conn)
            .await?;
        match rows.as_slice() {
            [row] => Ok(Some(account_from_row(row)?)),
            _ => Ok(None),
        }
    }

    /// An account may not give itself an address another account has: with log-in by
    /// address (Rocket.Chat), an address two accounts share logs in to neither, so taking
    /// someone's would lock them out of it. (Admins may: TrueNAS lets accounts share one.)
    async fn refuse_taken_email(
        &self,
        conn: &mut AnyConnection,
        email: &str,
        account_id: &str,
    ) -> CoreResult<()> {
        let taken: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM accounts WHERE lower(email) = lower($1) AND id <> $2",
        )
        .bind(email.to_owned())
        .bind(account_id.to_owned())
        .fetch_one(conn)
        .await?;
        if taken > 0 {
            return Err(CoreError::Conflict(
                "this e-mail address belongs to another account".into(),
            ));
        }
        Ok(())
    }

    pub(crate) async fn require_account(
        &self,
        conn: &mut AnyConnection,
        username: &str,
    ) -> CoreResult<AccountRow> {
        self.find_account(conn, username)
            .await?
            .ok_or(CoreError::NotFound("account"))
    }

    /// Creates an account (full admins).
    pub async fn create_account(
        &self,
        principal: &Principal,
        new: NewAccount,
        meta: &RequestMeta,
    ) -> CoreResult<Account> {
        self.authorize(principal, None, Need::FullAdmin, false)?;
        let username = Username::parse(&new.username)?;
        validate_full_name(&new.full_name)?;
        if let Some(email) = &new.email {
            validate_email(email)?;
        }
        let profile = match &new.profile {
            Some(patch) => Profile::default().merged(patch)?,
            None => Profile::default(),
        };
        let profile = to_json(&profile)?;
        let hash = match new.password {
            Some(password) => {
                Passwords::validate(&password)?;
                Some(self.passwords().hash(password).await?)
            }
            None => None,
        };
        let id = new_id();
        let now = self.now();
        let mut tx = self.db().begin().await?;
        if self
            .find_account(&mut tx, username.as_str())
            .await?
            .is_some()
        {
            return Err(CoreError::Conflict(
                "an account with this username already exists".into(),
            ));
        }
        let inserted = sqlx::query(
            "INSERT INTO accounts (id, uid, username, username_key, full_name, email, roles, password_hash, locked, profile, created_at, updated_at) \
             VALUES ($1, (SELECT COALESCE(MAX(uid), 2999) + 1 FROM accounts), $2, $3, $4, $5, $6, $7, 0, $8, $9, $9)",
        )
        .bind(id.clone())
        .bind(username.as_str().to_owned())
        .bind(username.key())
        .bind(new.full_name)
        .bind(new.email)
        .bind(roles_to_db(&new.roles))
        .bind(hash)
        .bind(profile)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            // Two instances creating the same name (or taking the same uid) at once.
            Err(e) if is_unique_violation(&e) => {
                return Err(CoreError::Conflict(
                    "an account with this username already exists".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        let actor = principal.actor();
        self.write_audit(
            &mut tx,
            Audit::success(&actor, Some(username.as_str()), "account.create", meta),
        )
        .await?;
        let account = self
            .require_account(&mut tx, username.as_str())
            .await?
            .account;
        tx.commit().await?;
        Ok(account)
    }

    /// Reads an account (itself or any admin).
    pub async fn get_account(&self, principal: &Principal, username: &str) -> CoreResult<Account> {
        self.authorize(principal, Some(username), Need::SelfOrReader, true)?;
        let mut conn = self.db().read.acquire().await?;
        Ok(self.require_account(&mut conn, username).await?.account)
    }

    /// Lists accounts by name, optionally those whose name starts with `prefix` (admins).
    pub async fn list_accounts(
        &self,
        principal: &Principal,
        prefix: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> CoreResult<Vec<Account>> {
        self.authorize(principal, None, Need::AnyAdmin, false)?;
        let pattern = prefix_pattern(prefix)?;
        let rows = sqlx::query(LIST_ACCOUNTS)
            .bind(pattern)
            .bind(i64::from(limit.clamp(1, 1000)))
            .bind(i64::try_from(offset).unwrap_or(i64::MAX))
            .fetch_all(&self.db().read)
            .await?;
        rows.iter()
            .map(|r| account_from_row(r).map(|a| a.account))
            .collect()
    }

    /// The account with the numeric id `uid` (TrueNAS addresses users by number): any
    /// account for admins; a plain account only itself, refused without looking others up.
    pub async fn account_by_uid(&self, principal: &Principal, uid: i64) -> CoreResult<Account> {
        if let Err(refused) = self.authorize(principal, None, Need::AnyAdmin, false) {
            let Principal::Account(caller) = principal else {
                return Err(refused);
            };
            let own = self.get_account(principal, &caller.username).await?;
            return if own.uid == uid {
                Ok(own)
            } else {
                Err(refused)
            };
        }
        let row = sqlx::query(ACCOUNT_BY_UID)
            .bind(uid)
            .fetch_optional(&self.db().read)
            .await?
            .ok_or(CoreError::NotFound("account"))?;
        Ok(account_from_row(&row)?.account)
    }

    /// The account whose stable id is `id` (Rocket.Chat's `userId`): the account itself or
    /// any admin; anyone else is refused whether the id exists or not.
    pub async fn account_by_id(&self, principal: &Principal, id: &str) -> CoreResult<Account> {
        if let Err(refused) = self.authorize(principal, None, Need::AnyAdmin, false) {
            return match principal {
                Principal::Account(caller) if caller.account_id == id => {
                    self.get_account(principal, &caller.username).await
                }
                _ => Err(refused),
            };
        }
        let row = sqlx::query(ACCOUNT_BY_ID)
            .bind(id.to_owned())
            .fetch_optional(&self.db().read)
            .await?
            .ok_or(CoreError::NotFound("account"))?;
        Ok(account_from_row(&row)?.account)
    }

    /// Changes an account's display name, e-mail, profile, password (itself or a full
    /// admin), roles or lock (full admins only), all in one transaction: a refused field
    /// changes nothing. A password change revokes the account's other sessions (and, made by
    /// someone else, its API keys); changing one's own needs the current password or, with
    /// an active authenticator, step-up. Locking revokes every session; unlocking clears the
    /// authenticator's lockout too.
    pub async fn update_account(
        &self,
        principal: &Principal,
        username: &str,
        mut patch: AccountPatch,
        meta: &RequestMeta,
    ) -> CoreResult<Account> {
        // 2FA admins manage factors, not other people's names and addresses.
        let need = if patch.roles.is_some() || patch.locked.is_some() {
            Need::FullAdmin
        } else {
            Need::SelfOrFullAdmin
        };
        self.authorize(principal, Some(username), need, false)?;
        if let Some(name) = &patch.full_name {
            validate_full_name(name)?;
        }
        if let Some(Some(email)) = &patch.email {
            validate_email(email)?;
        }
        if let Some(Some(password)) = &patch.password {
            Passwords::validate(password)?;
        }
        let (before, subject) = {
            let mut conn = self.db().read.acquire().await?;
            let before = self.require_account(&mut conn, username).await?;
            self.may_manage(&mut conn, principal, &before.account.id)
                .await?;
            let subject = self.subject(&mut conn, username).await?;
            (before, subject)
        };
        if let Some(changes) = &patch.profile {
            before.account.profile.merged(changes)?;
        }
        let hash = match patch.password.take() {
            Some(password) => {
                self.prove_own_password_change(principal, &before, &subject, &patch, meta)
                    .await?;
                Some(match password {
                    Some(p) => Some(self.passwords().hash(p).await?),
                    None => None,
                })
            }
            None => None,
        };
        // An update of nothing but the password or the lock is audited as that alone.
        let fields_changed = patch.full_name.is_some()
            || patch.email.is_some()
            || patch.roles.is_some()
            || patch.profile.is_some()
            || (hash.is_none() && patch.locked.is_none());
        let mut tx = self.db().begin().await?;
        let current = self.require_account(&mut tx, username).await?.account;
        if let (Some(Some(email)), Principal::Account(caller)) = (&patch.email, principal)
            && caller.account_id == current.id
        {
            self.refuse_taken_email(&mut tx, email, &current.id).await?;
        }
        let profile = match &patch.profile {
            Some(changes) => current.profile.merged(changes)?,
            None => current.profile.clone(),
        };
        let roles = patch.roles.unwrap_or_else(|| current.roles.clone());
        let locked = patch.locked.unwrap_or(current.locked);
        if current.roles.contains(&Role::FullAdmin)
            && (!roles.contains(&Role::FullAdmin) || (locked && !current.locked))
        {
            self.ensure_other_full_admin(&mut tx, &current.id).await?;
        }
        sqlx::query(
            "UPDATE accounts SET full_name = $1, email = $2, roles = $3, profile = $4, locked = $5, updated_at = $6 WHERE id = $7",
        )
        .bind(patch.full_name.unwrap_or(current.full_name))
        .bind(patch.email.unwrap_or(current.email))
        .bind(roles_to_db(&roles))
        .bind(to_json(&profile)?)
        .bind(flag(locked))
        .bind(self.now())
        .bind(current.id.clone())
        .execute(&mut *tx)
        .await?;
        let actor = principal.actor();
        let audit = |action| Audit::success(&actor, Some(&current.username), action, meta);
        if fields_changed {
            self.write_audit(&mut tx, audit("account.update")).await?;
        }
        if let Some(hash) = hash {
            sqlx::query("UPDATE accounts SET password_hash = $1 WHERE id = $2")
                .bind(hash)
                .bind(current.id.clone())
                .execute(&mut *tx)
                .await?;
            self.revoke_credentials_tx(&mut tx, &current.id, principal, Revoke::Recovery)
                .await?;
            self.write_audit(&mut tx, audit("account.password")).await?;
        }
        match patch.locked {
            Some(true) => {
                sqlx::query("DELETE FROM sessions WHERE account_id = $1")
                    .bind(current.id.clone())
                    .execute(&mut *tx)
                    .await?;
                self.write_audit(&mut tx, audit("account.lock")).await?;
            }
            Some(false) => {
                // An admin's unlock ends every lockout of the account, the authenticator's
                // after too many wrong codes included.
                sqlx::query(
                    "UPDATE authenticators SET failed_attempts = 0, locked_until = NULL WHERE account_id = $1",
                )
                .bind(current.id.clone())
                .execute(&mut *tx)
                .await?;
                self.write_audit(&mut tx, audit("account.unlock")).await?;
            }
            None => {}
        }
        let account = self.require_account(&mut tx, username).await?.account;
        tx.commit().await?;
        Ok(account)
    }

    /// The proof an account needs to change its own password: step-up when it has an
    /// active, enabled authenticator (a recent second factor on this session, or a code sent
    /// along), else its current password. Someone else's change (a full admin, the CLI)
    /// needs none.
    async fn prove_own_password_change(
        &self,
        principal: &Principal,
        account: &AccountRow,
        subject: &super::totp::Subject,
        patch: &AccountPatch,
        meta: &RequestMeta,
    ) -> CoreResult<()> {
        match self
            .step_up(principal, subject, patch.step_up_code.as_deref(), meta)
            .await?
        {
            StepUp::NotSelf | StepUp::Proven => Ok(()),
            StepUp::NoFactor => {
                let Some(current) = patch.current_password.clone() else {
                    return Err(CoreError::invalid(
                        "current_password",
                        "changing your own password needs your current password",
                    ));
                };
                if self
                    .passwords()
                    .verify(current, account.password_hash.clone())
                    .await?
                {
                    return Ok(());
                }
                // A guess at the password by whoever holds the session or key: audited, and
                // refused as forbidden, so that front doors count it against the address.
                let actor = principal.actor();
                self.audit_alone(Audit {
                    actor: &actor,
                    account: Some(&account.account.username),
                    action: "account.password",
                    outcome: Outcome::Failure,
                    reason: Some("wrong current password"),
                    meta,
                })
                .await?;
                Err(CoreError::forbidden("the current password is wrong"))
            }
        }
    }

    /// Deletes an account with its authenticator, recovery codes, sessions and API keys
    /// (full admins). The last unlocked full admin cannot be deleted.
    pub async fn delete_account(
        &self,
        principal: &Principal,
        username: &str,
        meta: &RequestMeta,
    ) -> CoreResult<()> {
        self.authorize(principal, Some(username), Need::FullAdmin, false)?;
        let mut tx = self.db().begin().await?;
        let account = self.require_account(&mut tx, username).await?.account;
        if account.roles.contains(&Role::FullAdmin) {
            self.ensure_other_full_admin(&mut tx, &account.id).await?;
        }
        commit::delete_authenticators(&mut tx, &account.id, "", false).await?;
        for sql in [
            "DELETE FROM sessions WHERE account_id = $1",
            "DELETE FROM api_keys WHERE account_id = $1",
            "DELETE FROM recovery_codes WHERE account_id = $1",
            "DELETE FROM accounts WHERE id = $1",
        ] {
            sqlx::query(sql)
                .bind(account.id.clone())
                .execute(&mut *tx)
                .await?;
        }
        let actor = principal.actor();
        self.write_audit(
            &mut tx,
            Audit::success(&actor, Some(&account.username), "account.delete", meta),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets (or, with `None`, disables) an account's password: [`Service::update_account`]
    /// with only the password (and its proof) changed.
    pub async fn set_password(
        &self,
        principal: &Principal,
        username: &str,
        password: Option<Zeroizing<String>>,
        current_password: Option<Zeroizing<String>>,
        step_up_code: Option<&str>,
        meta: &RequestMeta,
    ) -> CoreResult<()> {
        let patch = AccountPatch {
            password: Some(password),
            current_password,
            step_up_code: step_up_code.map(str::to_owned),
            ..AccountPatch::default()
        };
        self.update_account(principal, username, patch, meta)
            .await?;
        Ok(())
    }

    /// Locks or unlocks an account (full admins): [`Service::update_account`] with only the
    /// lock changed. Locking revokes all its sessions (a locked account cannot log in, and
    /// its API keys stop working); unlocking also clears its authenticator's lockout.
    pub async fn set_account_locked(
        &self,
        principal: &Principal,
        username: &str,
        locked: bool,
        meta: &RequestMeta,
    ) -> CoreResult<Account> {
        let patch = AccountPatch {
            locked: Some(locked),
            ..AccountPatch::default()
        };
        self.update_account(principal, username, patch, meta).await
    }

    /// On a database with no accounts, creates `admin` (full admin) with a random password
    /// and returns the password, to be shown once. Otherwise returns `None`. Safe to call
    /// from several instances at once: only one insert can succeed.
    pub async fn bootstrap_admin(&self, meta: &RequestMeta) -> CoreResult<Option<Shown>> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
            .fetch_one(&self.db().read)
            .await?;
        if count > 0 {
            return Ok(None);
        }
        let mut bytes = Zeroizing::new([0u8; 18]);
        getrandom::fill(bytes.as_mut_slice())
            .map_err(|_| CoreError::Internal("system RNG failed".into()))?;
        let password = Zeroizing::new(data_encoding::BASE64URL_NOPAD.encode(bytes.as_slice()));
        let new = NewAccount {
            username: "admin".into(),
            password: Some(password.clone()),
            roles: [Role::FullAdmin].into_iter().collect(),
            full_name: "Administrator".into(),
            ..NewAccount::default()
        };
        match self.create_account(&Principal::Cli, new, meta).await {
            Ok(_) => Ok(Some(Shown::new(password.as_str()))),
            Err(CoreError::Conflict(_)) => Ok(None), // another instance won the race
            Err(e) => Err(e),
        }
    }

    async fn ensure_other_full_admin(
        &self,
        conn: &mut AnyConnection,
        except_id: &str,
    ) -> CoreResult<()> {
        let others: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM accounts WHERE (' ' || roles || ' ') LIKE '% full_admin %' AND locked = 0 AND id <> $1",
        )
        .bind(except_id.to_owned())
        .fetch_one(conn)
        .await?;
        if others == 0 {
            return Err(CoreError::Conflict(
                "this is the last unlocked full_admin; create another first".into(),
            ));
        }
        Ok(())
    }
}

const ACCOUNT_BY_NAME: &str = concat!(
    "SELECT ",
    account_columns!(),
    " FROM accounts WHERE username_key = $1"
);

const ACCOUNT_BY_EMAIL: &str = concat!(
    "SELECT ",
    account_columns!(),
    " FROM accounts WHERE lower(email) = lower($1) LIMIT 2"
);

const ACCOUNT_BY_ID: &str = concat!(
    "SELECT ",
    account_columns!(),
    " FROM accounts WHERE id = $1"
);

const ACCOUNT_BY_UID: &str = concat!(
    "SELECT ",
    account_columns!(),
    " FROM accounts WHERE uid = $1"
);

const LIST_ACCOUNTS: &str = concat!(
    "SELECT ",
    account_columns!(),
    " FROM accounts WHERE username_key LIKE $1 ESCAPE '\\' ORDER BY username_key LIMIT $2 OFFSET $3"
);
