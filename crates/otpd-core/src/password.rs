//! Argon2id password hashing, off the async workers and with bounded concurrency.

use crate::{CoreError, CoreResult};
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

/// The shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;
/// The longest password accepted (bytes): enough for any passphrase, bounded for the hash.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Hashes and verifies passwords with Argon2id at the OWASP parameters (19 MiB, t=2, p=1:
/// the `argon2` crate's defaults). Work runs on tokio's blocking pool, at most `permits` at
/// once, so a burst of logins cannot starve the async workers or exhaust memory.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// A hash of a random password: verified against when the account does not exist, so an
    /// unknown user costs the same time as a known one (no user enumeration by timing).
    dummy: Arc<str>,
    /// Passwords verified so far (what the remembered Basic credentials save).
    verified: Arc<AtomicU64>,
}

impl Passwords {
    /// A hasher allowing `permits` concurrent hashes (at least 1).
    pub async fn new(permits: usize) -> CoreResult<Self> {
        let mut random = Zeroizing::new([0u8; 24]);
        getrandom::fill(random.as_mut_slice())
            .map_err(|_| CoreError::Internal("system RNG failed".into()))?;
        let mut this = Passwords {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            dummy: Arc::from(""),
            verified: Arc::new(AtomicU64::new(0)),
        };
        let password = Zeroizing::new(data_encoding::HEXLOWER.encode(random.as_slice()));
        this.dummy = Arc::from(this.hash(password).await?.as_str());
        Ok(this)
    }

    /// Checks a new password's length (the only rule: NIST SP 800-63B discourages others).
    pub fn validate(password: &str) -> CoreResult<()> {
        let chars = password.chars().count();
        if chars < MIN_PASSWORD_LEN {
            return Err(CoreError::invalid(
                "password",
                format!("must be at least {MIN_PASSWORD_LEN} characters"),
            ));
        }
        if password.len() > MAX_PASSWORD_LEN {
            return Err(CoreError::invalid(
                "password",
                format!("must be at most {MAX_PASSWORD_LEN} bytes"),
            ));
        }
        Ok(())
    }

    /// An Argon2id PHC string for `password`.
    pub async fn hash(&self, password: Zeroizing<String>) -> CoreResult<String> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| CoreError::Internal("hasher closed".into()))?;
        tokio::task::spawn_blocking(move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|_| CoreError::Internal("password hashing failed".into()))
        })
        .await
        .map_err(|_| CoreError::Internal("password hashing task failed".into()))?
    }

    /// How many passwords this hasher has verified (each an Argon2id hash), since start.
    pub fn verified(&self) -> u64 {
        self.verified.load(Ordering::Relaxed)
    }

    /// Whether `password` matches `hash`; with no hash (unknown user, or password login
    /// disabled) the dummy hash is verified instead and the answer is `false`.
    pub async fn verify(
        &self,
        password: Zeroizing<String>,
        hash: Option<String>,
    ) -> CoreResult<bool> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| CoreError::Internal("hasher closed".into()))?;
        self.verified.fetch_add(1, Ordering::Relaxed);
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.to_string());
        let ok = tokio::task::spawn_blocking(move || {
            Argon2::default()
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok()
        })
        .await
        .map_err(|_| CoreError::Internal("password hashing task failed".into()))?;
        Ok(known && ok)
    }
}
