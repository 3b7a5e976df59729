//! Argon2id password hashing, off the async workers and with bounded concurrency.
//!
//! What is hashed is the lower-case hex SHA-256 of the password, not the password itself:
//! Meteor clients (Rocket.Chat) prove a password by that digest alone — at login, and as
//! the `x-2fa-code` of Rocket.Chat's password check — so otpd must be able to check it.
//! The digest is as good as the password to whoever holds it (as in Rocket.Chat); it is
//! never stored, only its Argon2id hash. Hashes made before the digest (PHC strings without
//! the [`PREHASHED`] mark) still verify plain passwords, and are replaced at the next
//! successful login ([`Checked::upgrade`]).

use crate::{CoreError, CoreResult};
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use sha2::{Digest as _, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

/// The shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;
/// The longest password accepted (bytes): enough for any passphrase, bounded for the hash.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// The mark before the PHC string of a hash of the password's SHA-256 digest.
const PREHASHED: &str = "sha256:";

/// A password as a client proves it.
pub enum PasswordProof {
    /// The password itself.
    Plain(Zeroizing<String>),
    /// The lower-case hex SHA-256 of the password (Meteor's `{digest, algorithm:
    /// "sha-256"}`, Rocket.Chat's password check); upper-case hex is accepted.
    Sha256Hex(Zeroizing<String>),
}

impl From<Zeroizing<String>> for PasswordProof {
    fn from(password: Zeroizing<String>) -> Self {
        PasswordProof::Plain(password)
    }
}

impl PasswordProof {
    /// The digest that is hashed: 64 lower-case hex characters, or `None` for a
    /// [`PasswordProof::Sha256Hex`] that is no digest.
    fn digest(&self) -> Option<Zeroizing<String>> {
        match self {
            PasswordProof::Plain(password) => Some(sha256_hex(password)),
            PasswordProof::Sha256Hex(hex) => (hex.len() == 64
                && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Zeroizing::new(hex.to_ascii_lowercase())),
        }
    }
}

/// The lower-case hex SHA-256 of `password`.
pub fn sha256_hex(password: &str) -> Zeroizing<String> {
    let digest = Zeroizing::new(<[u8; 32]>::from(Sha256::digest(password.as_bytes())));
    Zeroizing::new(data_encoding::HEXLOWER.encode(digest.as_slice()))
}

/// What a password check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Whether the proof matches the hash.
    pub ok: bool,
    /// The hash to store instead, when the proof was a plain password that matched a hash
    /// of an older form (of the password itself, without the `sha256:` mark).
    pub upgrade: Option<String>,
}

/// The stored form of a password whose digest is `digest`.
fn prehashed(digest: &str) -> CoreResult<String> {
    Argon2::default()
        .hash_password(digest.as_bytes())
        .map(|h| format!("{PREHASHED}{h}"))
        .map_err(|_| CoreError::Internal("password hashing failed".into()))
}

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

    /// The stored form of `password`: `sha256:` and the Argon2id PHC string of its
    /// SHA-256 digest.
    pub async fn hash(&self, password: Zeroizing<String>) -> CoreResult<String> {
        let digest = sha256_hex(&password);
        drop(password);
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| CoreError::Internal("hasher closed".into()))?;
        tokio::task::spawn_blocking(move || prehashed(&digest))
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
        Ok(self.check(PasswordProof::Plain(password), hash).await?.ok)
    }

    /// Checks a password or its digest against `hash` (see [`Passwords::verify`]), at the
    /// same Argon2id cost whatever the proof, the hash or the answer. A digest cannot be
    /// checked against a hash of the password itself (without the `sha256:` mark): it is refused.
    pub async fn check(&self, proof: PasswordProof, hash: Option<String>) -> CoreResult<Checked> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| CoreError::Internal("hasher closed".into()))?;
        self.verified.fetch_add(1, Ordering::Relaxed);
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.to_string());
        tokio::task::spawn_blocking(move || {
            let verify =
                |input: &[u8], phc: &str| Argon2::default().verify_password(input, phc).is_ok();
            // Work that cannot succeed: a proof that cannot be checked costs the same.
            let refused = |phc: &str| {
                verify(b"-", phc);
                Checked {
                    ok: false,
                    upgrade: None,
                }
            };
            let checked = match (hash.strip_prefix(PREHASHED), &proof) {
                (Some(phc), _) => match proof.digest() {
                    Some(digest) => Checked {
                        ok: verify(digest.as_bytes(), phc),
                        upgrade: None,
                    },
                    None => refused(phc),
                },
                (None, PasswordProof::Plain(password)) => {
                    let ok = verify(password.as_bytes(), &hash);
                    let upgrade = if ok && known {
                        prehashed(&sha256_hex(password)).ok()
                    } else {
                        None
                    };
                    Checked { ok, upgrade }
                }
                // A digest cannot be checked against a hash of the password itself.
                (None, PasswordProof::Sha256Hex(_)) => refused(&hash),
            };
            Checked {
                ok: known && checked.ok,
                upgrade: checked.upgrade,
            }
        })
        .await
        .map_err(|_| CoreError::Internal("password hashing task failed".into()))
    }
}
