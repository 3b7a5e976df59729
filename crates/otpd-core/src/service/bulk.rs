//! Bulk provisioning: many password-less accounts, each with an active TOTP authenticator
//! whose secret the caller supplies, in one transaction per call. For load tests (the
//! `otpd-bench` load generator derives the secrets so that it can compute codes) and for
//! importing tokens from another system. The same rows and sealing as one-by-one
//! provisioning; one audit event per call.

use super::accounts::to_json;
use super::totp::{AuthenticatorRow, insert_authenticator, params, policy_params};
use super::{Audit, Need, Outcome, Service, new_id};
use crate::store::is_unique_violation;
use crate::{
    CoreError, CoreResult, Principal, Profile, Purpose, RequestMeta, TotpOptions, Username,
};
use otp::Secret;

/// One account to create.
pub struct BulkAccount {
    /// Its name (see [`Username`]).
    pub username: String,
    /// Its TOTP secret (sealed before it is stored).
    pub secret: Secret,
}

impl Service {
    /// Creates `accounts` (full admins and the CLI) with authenticators of the given options
    /// (unset options take the policy's), all or none. Returns how many were created.
    pub async fn provision_bulk(
        &self,
        principal: &Principal,
        accounts: &[BulkAccount],
        options: &TotpOptions,
        meta: &RequestMeta,
    ) -> CoreResult<u64> {
        self.authorize(principal, None, Need::FullAdmin, false)?;
        let names = accounts
            .iter()
            .map(|a| Username::parse(&a.username))
            .collect::<CoreResult<Vec<_>>>()?;
        let policy = self.policy_now().await?;
        let p = params(options, policy_params(&policy)?)?;
        let profile = to_json(&Profile::default())?;
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let ring = self.sealing_ring(&mut tx).await?;
        let mut uid: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(uid), 2999) FROM accounts")
            .fetch_one(&mut *tx)
            .await?;
        for (account, name) in accounts.iter().zip(&names) {
            uid += 1;
            let account_id = new_id();
            let inserted = sqlx::query(
                "INSERT INTO accounts (id, uid, username, username_key, full_name, email, roles, password_hash, locked, profile, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, '', NULL, '', NULL, 0, $5, $6, $6)",
            )
            .bind(account_id.clone())
            .bind(uid)
            .bind(name.as_str().to_owned())
            .bind(name.key())
            .bind(profile.clone())
            .bind(now)
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => {
                    return Err(CoreError::Conflict(
                        format!("an account named {} already exists", name.as_str()).into(),
                    ));
                }
                Err(e) => return Err(e.into()),
            }
            let id = new_id();
            insert_authenticator(
                &mut tx,
                AuthenticatorRow {
                    id: &id,
                    account_id: &account_id,
                    state: "active",
                    sealed: ring.seal(Purpose::TotpSecret, &id, account.secret.as_bytes())?,
                    key_id: i64::from(ring.active().id()),
                    fingerprint: &account.secret.fingerprint(),
                    params: &p,
                    last_used_step: None,
                    expires_at: None,
                    now,
                },
            )
            .await?;
        }
        let actor = principal.actor();
        let count = format!("{} accounts", accounts.len());
        self.write_audit(
            &mut tx,
            Audit {
                actor: &actor,
                account: None,
                action: "account.bulk_provision",
                outcome: Outcome::Success,
                reason: Some(&count),
                meta,
            },
        )
        .await?;
        tx.commit().await?;
        let provisioned = u64::try_from(accounts.len()).unwrap_or(u64::MAX);
        self.inner
            .metrics
            .enrollment(crate::metrics::EnrollmentStage::Provisioned, provisioned);
        Ok(provisioned)
    }
}
