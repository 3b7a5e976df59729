//! Sealing secrets at rest (DESIGN.md, principle 3): envelope encryption.
//!
//! The operator's **master key** never seals a value itself and never reaches the database:
//! it wraps the **data keys**, random 32-byte keys stored wrapped in `data_keys`. Values (TOTP
//! secrets, recovery codes) are sealed under the one *active* data key. So `keys rotate`
//! needs no new master key and no restart: it adds a data key, re-seals the values and
//! deletes the old key, while every instance, meeting a key id it does not hold, reloads the
//! data keys from the database (`service::keys`).
//!
//! Every sealed value — a wrapped data key too — is `version (1) ‖ key id (4, big-endian) ‖
//! nonce (24) ‖ XChaCha20-Poly1305 ciphertext and tag`. The associated data binds it to its
//! purpose and its row id, so a ciphertext copied to another row or column does not open.
//! Recovery-code lookup hashes use a key derived from the data key, under its own label.

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
    /// A data key wrapped by the master key (`data_keys.wrapped`).
    DataKey,
}

impl Purpose {
    fn label(self) -> &'static str {
        match self {
            Purpose::TotpSecret => "totp-secret",
            Purpose::RecoveryCode => "recovery-code",
            Purpose::DataKey => "data-key",
        }
    }
}

fn random32() -> CoreResult<Zeroizing<[u8; 32]>> {
    let mut raw = Zeroizing::new([0u8; 32]);
    getrandom::fill(raw.as_mut_slice())
        .map_err(|_| CoreError::Internal("system RNG failed".into()))?;
    Ok(raw)
}

/// HMAC-SHA256(`key`, `label`): how the ids and sub-keys are derived.
fn derive(key: &[u8; 32], label: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    // HMAC accepts any key length, so keying cannot fail; an all-zero output would only ever
    // be the result of a broken hmac crate.
    if let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        mac.update(label);
        out.copy_from_slice(&mac.finalize().into_bytes());
    }
    out
}

fn derive_id(key: &[u8; 32]) -> u32 {
    let id = derive(key, b"otpd key id v1");
    u32::from_be_bytes([id[0], id[1], id[2], id[3]])
}

fn aad(purpose: Purpose, row_id: &str) -> Vec<u8> {
    format!("otpd/v1/{}/{}", purpose.label(), row_id).into_bytes()
}

/// AEAD-seals `plaintext` under `key`, naming `key_id` in the header.
fn seal_with(
    key: &[u8; 32],
    key_id: u32,
    purpose: Purpose,
    row_id: &str,
    plaintext: &[u8],
) -> CoreResult<Vec<u8>> {
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut nonce).map_err(|_| CoreError::Internal("system RNG failed".into()))?;
    let cipher = XChaCha20Poly1305::new_from_slice(key).map_err(|_| CoreError::Sealing)?;
    let aad = aad(purpose, row_id);
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
    out.extend_from_slice(&key_id.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Opens a value sealed by [`seal_with`] under `key` (the caller chose the key from the
/// header's id).
fn open_with(
    key: &[u8; 32],
    purpose: Purpose,
    row_id: &str,
    sealed: &[u8],
) -> CoreResult<Zeroizing<Vec<u8>>> {
    let (_, nonce, ciphertext) = split(sealed).ok_or(CoreError::Sealing)?;
    let cipher = XChaCha20Poly1305::new_from_slice(key).map_err(|_| CoreError::Sealing)?;
    let aad = aad(purpose, row_id);
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

fn split(sealed: &[u8]) -> Option<(u32, [u8; 24], &[u8])> {
    let (&version, rest) = sealed.split_first()?;
    if version != VERSION {
        return None;
    }
    let (id, rest) = rest.split_first_chunk::<4>()?;
    let (nonce, ciphertext) = rest.split_first_chunk::<24>()?;
    Some((u32::from_be_bytes(*id), *nonce, ciphertext))
}

/// The id of the key that sealed `sealed` (from its header), if it is well formed.
pub fn sealed_key_id(sealed: &[u8]) -> Option<u32> {
    split(sealed).map(|(id, _, _)| id)
}

/// The operator's 32-byte master key: it only wraps data keys. Zeroized on drop; `Debug`
/// shows only its id.
#[derive(Clone)]
pub struct MasterKey {
    id: u32,
    wrap_key: Zeroizing<[u8; 32]>,
    raw: Zeroizing<[u8; 32]>,
}

impl MasterKey {
    /// Parses the base64 of exactly 32 bytes (`openssl rand -base64 32`); surrounding
    /// whitespace (a trailing newline in a key file) is ignored.
    pub fn from_base64(text: &str) -> CoreResult<Self> {
        let bad = || CoreError::invalid("master key", "must be the base64 of exactly 32 bytes");
        let decoded = Zeroizing::new(BASE64.decode(text.trim().as_bytes()).map_err(|_| bad())?);
        let mut raw: [u8; 32] = decoded.as_slice().try_into().map_err(|_| bad())?;
        let key = Self::from_bytes(&raw);
        raw.zeroize();
        Ok(key)
    }

    /// A new random key from the OS CSPRNG.
    pub fn generate() -> CoreResult<Self> {
        let raw = random32()?;
        Ok(Self::from_bytes(&raw))
    }

    fn from_bytes(raw: &[u8; 32]) -> Self {
        MasterKey {
            id: derive_id(raw),
            wrap_key: derive(raw, b"otpd wrap v1"),
            raw: Zeroizing::new(*raw),
        }
    }

    /// The key as base64, to write to a key file. Zeroized on drop.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE64.encode(self.raw.as_slice()))
    }

    /// The key's id: derived from the key, so every instance given the same key agrees on
    /// it; stored in the header of every data key it wraps.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Wraps `key` for storage in `data_keys`.
    pub(crate) fn wrap(&self, key: &DataKey) -> CoreResult<Vec<u8>> {
        seal_with(
            &self.wrap_key,
            self.id,
            Purpose::DataKey,
            &key.id.to_string(),
            key.raw.as_slice(),
        )
    }

    /// Unwraps the data key `id`. [`CoreError::WrongMasterKey`] when it was wrapped under
    /// another master key, [`CoreError::Sealing`] when it was tampered with.
    pub(crate) fn unwrap(&self, id: u32, wrapped: &[u8]) -> CoreResult<DataKey> {
        let wrapped_by = sealed_key_id(wrapped).ok_or(CoreError::Sealing)?;
        if wrapped_by != self.id {
            return Err(CoreError::WrongMasterKey {
                configured: self.id,
                needed: wrapped_by,
            });
        }
        let raw = open_with(&self.wrap_key, Purpose::DataKey, &id.to_string(), wrapped)?;
        let raw: &[u8; 32] = raw.as_slice().try_into().map_err(|_| CoreError::Sealing)?;
        Ok(DataKey::from_parts(id, raw))
    }
}

/// A key's id as `otpd keys status` and the logs show it: eight hex digits.
pub(crate) fn hex_id(id: u32) -> String {
    format!("{id:08x}")
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({:08x})", self.id)
    }
}

/// A data key: seals values and keys recovery-code lookups. Zeroized on drop.
#[derive(Clone)]
pub struct DataKey {
    id: u32,
    raw: Zeroizing<[u8; 32]>,
    seal_key: Zeroizing<[u8; 32]>,
    lookup_key: Zeroizing<[u8; 32]>,
}

impl DataKey {
    /// A new random data key with a random id (ids need only be unique within one database;
    /// the `data_keys` primary key enforces it).
    pub fn generate() -> CoreResult<Self> {
        let raw = random32()?;
        let mut id = [0u8; 4];
        getrandom::fill(&mut id).map_err(|_| CoreError::Internal("system RNG failed".into()))?;
        Ok(Self::from_parts(u32::from_be_bytes(id), &raw))
    }

    fn from_parts(id: u32, raw: &[u8; 32]) -> Self {
        DataKey {
            id,
            raw: Zeroizing::new(*raw),
            seal_key: derive(raw, b"otpd seal v1"),
            lookup_key: derive(raw, b"otpd recovery-code lookup v1"),
        }
    }

    /// The key's id, stored in every value it seals and in `data_keys.id`.
    pub fn id(&self) -> u32 {
        self.id
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey({:08x})", self.id)
    }
}

/// A snapshot of the database's data keys: the active one seals, any of them opens.
#[derive(Debug, Clone)]
pub struct KeyRing {
    active: DataKey,
    older: Vec<DataKey>,
}

impl KeyRing {
    /// A ring sealing with `active` and opening with `active` or any of `older`.
    pub fn new(active: DataKey, older: Vec<DataKey>) -> Self {
        KeyRing { active, older }
    }

    /// The key new values are sealed with.
    pub fn active(&self) -> &DataKey {
        &self.active
    }

    /// Every key of the ring, the active one first.
    pub fn keys(&self) -> impl Iterator<Item = &DataKey> {
        std::iter::once(&self.active).chain(&self.older)
    }

    /// Whether the ring holds the key `id`.
    pub fn has(&self, id: u32) -> bool {
        self.keys().any(|k| k.id == id)
    }

    /// Seals `plaintext` for `row_id` under the active key.
    pub fn seal(&self, purpose: Purpose, row_id: &str, plaintext: &[u8]) -> CoreResult<Vec<u8>> {
        seal_with(
            &self.active.seal_key,
            self.active.id,
            purpose,
            row_id,
            plaintext,
        )
    }

    /// Opens a value sealed by [`KeyRing::seal`] for the same purpose and row. Fails with
    /// [`CoreError::Sealing`] if the key is not in the ring or the value was tampered with.
    pub fn open(
        &self,
        purpose: Purpose,
        row_id: &str,
        sealed: &[u8],
    ) -> CoreResult<Zeroizing<Vec<u8>>> {
        let id = sealed_key_id(sealed).ok_or(CoreError::Sealing)?;
        let key = self.keys().find(|k| k.id == id).ok_or(CoreError::Sealing)?;
        open_with(&key.seal_key, purpose, row_id, sealed)
    }

    /// The keyed hashes of a recovery code under each key of the ring, active key first:
    /// what `recovery_codes.lookup` holds, so a code is consumed by one `DELETE` without
    /// storing anything an offline attacker could brute-force without the keys.
    pub fn lookups(&self, account_id: &str, code: &str) -> Vec<String> {
        self.keys()
            .map(|key| lookup(key, account_id, code))
            .collect()
    }

    /// The lookup hash under the active key.
    pub fn lookup(&self, account_id: &str, code: &str) -> String {
        lookup(&self.active, account_id, code)
    }
}

fn lookup(key: &DataKey, account_id: &str, code: &str) -> String {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::new(DataKey::generate().unwrap(), vec![])
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let ring = ring();
        let sealed = ring.seal(Purpose::TotpSecret, "row-1", b"secret").unwrap();
        assert_eq!(sealed_key_id(&sealed), Some(ring.active().id()));
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
    fn older_keys_still_open_and_lookups_cover_every_key() {
        let old = DataKey::generate().unwrap();
        let before = KeyRing::new(old.clone(), vec![]);
        let sealed = before.seal(Purpose::TotpSecret, "r", b"x").unwrap();
        let ring = KeyRing::new(DataKey::generate().unwrap(), vec![old]);
        assert_eq!(
            ring.open(Purpose::TotpSecret, "r", &sealed)
                .unwrap()
                .as_slice(),
            b"x"
        );
        assert!(ring.lookups("a", "c").contains(&before.lookup("a", "c")));
        assert!(matches!(
            self::ring().open(Purpose::TotpSecret, "r", &sealed),
            Err(CoreError::Sealing)
        ));
    }

    #[test]
    fn data_keys_wrap_under_the_master_key_only() {
        let master = MasterKey::generate().unwrap();
        let key = DataKey::generate().unwrap();
        let wrapped = master.wrap(&key).unwrap();
        let back = master.unwrap(key.id(), &wrapped).unwrap();
        let sealed = KeyRing::new(key, vec![])
            .seal(Purpose::RecoveryCode, "r", b"c")
            .unwrap();
        assert_eq!(
            KeyRing::new(back.clone(), vec![])
                .open(Purpose::RecoveryCode, "r", &sealed)
                .unwrap()
                .as_slice(),
            b"c"
        );
        assert!(
            master.unwrap(back.id().wrapping_add(1), &wrapped).is_err(),
            "bound to its id"
        );
        let other = MasterKey::generate().unwrap();
        assert!(matches!(
            other.unwrap(back.id(), &wrapped),
            Err(CoreError::WrongMasterKey { configured, needed })
                if configured == other.id() && needed == master.id()
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
