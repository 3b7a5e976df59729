//! Sealing secrets at rest (DESIGN.md, principle 3).
//!
//! A sealed value is `version (1) ‖ key id (4, big-endian) ‖ nonce (24) ‖ XChaCha20-Poly1305
//! ciphertext and tag`. The associated data binds it to its purpose and its row id, so a
//! ciphertext copied to another row or column does not open. The master key never reaches
//! the database; sealing and lookup keys are derived from it with HMAC-SHA256 under distinct
//! labels. Values carry the id of the key that sealed them, so a key ring with the new key
//! active and the old ones still listed opens everything while `keys rotate` re-seals.

use crate::{CoreError, CoreResult};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use data_encoding::{BASE64, HEXLOWER};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use zeroize::{Zeroize, Zeroizing};

const VERSION: u8 = 1;
const HEADER: usize = 1 + 4 + 24;

/// What a sealed value is; part of the associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A TOTP secret (`authenticators.secret`).
    TotpSecret,
    /// A recovery code (`recovery_codes.sealed`).
    RecoveryCode,
}

impl Purpose {
    fn label(self) -> &'static str {
        match self {
            Purpose::TotpSecret => "totp-secret",
            Purpose::RecoveryCode => "recovery-code",
        }
    }
}

/// A 32-byte master key. Zeroized on drop; `Debug` shows only its id.
#[derive(Clone)]
pub struct MasterKey {
    id: u32,
    seal_key: Zeroizing<[u8; 32]>,
    lookup_key: Zeroizing<[u8; 32]>,
    raw: Zeroizing<[u8; 32]>,
}

impl MasterKey {
    /// Parses the base64 of exactly 32 bytes (`openssl rand -base64 32`); surrounding
    /// whitespace (a trailing newline in a key file) is ignored.
    pub fn from_base64(text: &str) -> CoreResult<Self> {
        let bad = || CoreError::invalid("master key", "must be the base64 of exactly 32 bytes");
        let decoded = Zeroizing::new(BASE64.decode(text.trim().as_bytes()).map_err(|_| bad())?);
        let raw: [u8; 32] = decoded.as_slice().try_into().map_err(|_| bad())?;
        Ok(Self::from_bytes(raw))
    }

    /// A new random key from the OS CSPRNG.
    pub fn generate() -> CoreResult<Self> {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|_| CoreError::Internal("system RNG failed".into()))?;
        let key = Self::from_bytes(raw);
        raw.zeroize();
        Ok(key)
    }

    fn from_bytes(raw: [u8; 32]) -> Self {
        let derive = |label: &[u8]| -> Zeroizing<[u8; 32]> {
            let mut out = Zeroizing::new([0u8; 32]);
            // HMAC accepts any key length, so keying cannot fail; an all-zero key would only
            // ever be the result of a broken hmac crate.
            if let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&raw) {
                mac.update(label);
                out.copy_from_slice(&mac.finalize().into_bytes());
            }
            out
        };
        let id_bytes = derive(b"otpd key id v1");
        let id = u32::from_be_bytes([id_bytes[0], id_bytes[1], id_bytes[2], id_bytes[3]]);
        MasterKey {
            id,
            seal_key: derive(b"otpd seal v1"),
            lookup_key: derive(b"otpd recovery-code lookup v1"),
            raw: Zeroizing::new(raw),
        }
    }

    /// The key as base64, to write to a key file. Zeroized on drop.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE64.encode(self.raw.as_slice()))
    }

    /// The key's id (derived from the key; stored in every value it seals).
    pub fn id(&self) -> u32 {
        self.id
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({:08x})", self.id)
    }
}

/// The active master key plus older keys that may still be needed to open values.
#[derive(Debug, Clone)]
pub struct KeyRing {
    active: MasterKey,
    older: Vec<MasterKey>,
}

impl KeyRing {
    /// A ring sealing with `active` and opening with `active` or any of `older`.
    pub fn new(active: MasterKey, older: Vec<MasterKey>) -> Self {
        KeyRing { active, older }
    }

    /// The key new values are sealed with.
    pub fn active(&self) -> &MasterKey {
        &self.active
    }

    fn key(&self, id: u32) -> Option<&MasterKey> {
        std::iter::once(&self.active)
            .chain(&self.older)
            .find(|k| k.id == id)
    }

    fn aad(purpose: Purpose, row_id: &str) -> Vec<u8> {
        format!("otpd/v1/{}/{}", purpose.label(), row_id).into_bytes()
    }

    /// Seals `plaintext` for `row_id` under the active key.
    pub fn seal(&self, purpose: Purpose, row_id: &str, plaintext: &[u8]) -> CoreResult<Vec<u8>> {
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|_| CoreError::Internal("system RNG failed".into()))?;
        let cipher = XChaCha20Poly1305::new_from_slice(self.active.seal_key.as_slice())
            .map_err(|_| CoreError::Sealing)?;
        let aad = Self::aad(purpose, row_id);
        let ciphertext = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| CoreError::Sealing)?;
        let mut out = Vec::with_capacity(HEADER + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&self.active.id.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Opens a value sealed by [`KeyRing::seal`] for the same purpose and row. Fails with
    /// [`CoreError::Sealing`] if the key is not in the ring or the value was tampered with.
    pub fn open(
        &self,
        purpose: Purpose,
        row_id: &str,
        sealed: &[u8],
    ) -> CoreResult<Zeroizing<Vec<u8>>> {
        let (id, nonce, ciphertext) = split(sealed).ok_or(CoreError::Sealing)?;
        let key = self.key(id).ok_or(CoreError::Sealing)?;
        let cipher = XChaCha20Poly1305::new_from_slice(key.seal_key.as_slice())
            .map_err(|_| CoreError::Sealing)?;
        let aad = Self::aad(purpose, row_id);
        cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CoreError::Sealing)
    }

    /// Whether `sealed` is sealed under the active key (else `keys rotate` re-seals it).
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        split(sealed).is_some_and(|(id, _, _)| id == self.active.id)
    }

    /// The keyed hashes of a recovery code under each key of the ring, active key first:
    /// what `recovery_codes.lookup` holds, so a code is consumed by one `DELETE` without
    /// storing anything an offline attacker could brute-force without the master key.
    pub fn lookups(&self, account_id: &str, code: &str) -> Vec<String> {
        std::iter::once(&self.active)
            .chain(&self.older)
            .map(|key| lookup(key, account_id, code))
            .collect()
    }

    /// The lookup hash under the active key.
    pub fn lookup(&self, account_id: &str, code: &str) -> String {
        lookup(&self.active, account_id, code)
    }
}

fn lookup(key: &MasterKey, account_id: &str, code: &str) -> String {
    match <Hmac<Sha256> as KeyInit>::new_from_slice(key.lookup_key.as_slice()) {
        Ok(mut mac) => {
            mac.update(account_id.as_bytes());
            mac.update(b"\0");
            mac.update(code.as_bytes());
            HEXLOWER.encode(&mac.finalize().into_bytes())
        }
        Err(_) => String::new(), // unreachable: HMAC takes keys of any length
    }
}

fn split(sealed: &[u8]) -> Option<(u32, [u8; 24], &[u8])> {
    let (&version, rest) = sealed.split_first()?;
    if version != VERSION {
        return None;
    }
    let (id, rest) = rest.split_first_chunk::<4>()?;
    let (nonce, ciphertext) = rest.split_first_chunk::<24>()?;
    Some((u32::from_be_bytes(*id), *nonce, ciphertext))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let ring = KeyRing::new(MasterKey::generate().unwrap(), vec![]);
        let sealed = ring.seal(Purpose::TotpSecret, "row-1", b"secret").unwrap();
        assert_eq!(
            ring.open(Purpose::TotpSecret, "row-1", &sealed)
                .unwrap()
                .as_slice(),
            b"secret"
        );
        assert!(
            ring.open(Purpose::TotpSecret, "row-2", &sealed).is_err(),
            "bound to the row"
        );
        assert!(
            ring.open(Purpose::RecoveryCode, "row-1", &sealed).is_err(),
            "bound to the purpose"
        );
        let mut tampered = sealed.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert!(ring.open(Purpose::TotpSecret, "row-1", &tampered).is_err());
        assert!(ring.open(Purpose::TotpSecret, "row-1", &[]).is_err());
    }

    #[test]
    fn rotation_keeps_old_values_openable() {
        let old = MasterKey::generate().unwrap();
        let sealed = KeyRing::new(old.clone(), vec![])
            .seal(Purpose::TotpSecret, "r", b"x")
            .unwrap();
        let ring = KeyRing::new(MasterKey::generate().unwrap(), vec![old]);
        assert!(!ring.is_current(&sealed));
        assert_eq!(
            ring.open(Purpose::TotpSecret, "r", &sealed)
                .unwrap()
                .as_slice(),
            b"x"
        );
        let wrong = KeyRing::new(MasterKey::generate().unwrap(), vec![]);
        assert!(matches!(
            wrong.open(Purpose::TotpSecret, "r", &sealed),
            Err(CoreError::Sealing)
        ));
    }

    #[test]
    fn master_key_base64() {
        let key = MasterKey::generate().unwrap();
        let again = MasterKey::from_base64(&format!("{}\n", key.to_base64().as_str())).unwrap();
        assert_eq!(key.id(), again.id());
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert!(!format!("{key:?}").contains(key.to_base64().as_str()));
    }
}
