//! Recovery codes: single use, sealed (so their owner can list the remaining ones, as
//! Zimbra's `GetScratchCodes` needs) and found by a keyed hash (so one `DELETE` consumes a
//! code atomically, also across instances).

use super::{Service, Shown, new_id};
use crate::{CoreError, CoreResult, Purpose};
use sqlx::{AnyConnection, Row};

/// Digits and capitals without 0/O and 1/I/L, which people confuse: 31 symbols, each
/// drawn with equal probability ([`generate`]), so a code carries 10 × log2(31) ≈ 49.5 bits.
const ALPHABET: &[u8; 31] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// The length of otpd's own codes.
const LEN: usize = 10;
/// The lengths a code may have: 8 is what Rocket.Chat and Zimbra issue (a code of 8
/// symbols carries 8 × log2(31) ≈ 39.6 bits, ample against the lockout).
const LENGTHS: std::ops::RangeInclusive<usize> = 8..=16;

/// How many recovery codes to issue, and of what length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryCodeSet {
    /// The policy's `recovery_code_count` codes of 10 symbols, shown `ABCDE-FGHIJ`.
    Policy,
    /// What a product issues — Rocket.Chat 12 codes of 8 characters
    /// (`app/2fa/server/lib/totp.ts`), Zimbra 10 of 8 (`zimbraTwoFactorScratchCodeLength`)
    /// — shown ungrouped: `count` codes (1 to 50) of `length` symbols (8 to 16).
    Exactly {
        /// How many.
        count: u32,
        /// Symbols each.
        length: usize,
    },
}

impl RecoveryCodeSet {
    /// The count and length, with the policy's count.
    pub(crate) fn shape(self, policy_count: u32) -> CoreResult<(u32, usize)> {
        match self {
            RecoveryCodeSet::Policy => Ok((policy_count, LEN)),
            RecoveryCodeSet::Exactly { count, length } => {
                if !(1..=50).contains(&count) || !LENGTHS.contains(&length) {
                    return Err(CoreError::Internal(
                        "a recovery code set must be 1 to 50 codes of 8 to 16 symbols".into(),
                    ));
                }
                Ok((count, length))
            }
        }
    }
}

/// A recovery code as typed: ASCII spaces and hyphens dropped, upper-cased; `None` unless it
/// is 8 to 16 symbols of the alphabet with a letter among the first 8 — so a TOTP code (6
/// to 8 digits) never has this shape, and no generated code is all digits ([`generate`]).
pub(crate) fn recovery_shape(text: &str) -> Option<String> {
    let code: String = text
        .chars()
        .filter(|c| *c != ' ' && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (LENGTHS.contains(&code.len())
        && code.bytes().all(|b| ALPHABET.contains(&b))
        && !all_digits(&code))
    .then_some(code)
}

/// Whether a code could be taken for a TOTP code: its first 8 symbols are digits. (Older
/// codes of 10 symbols were drawn without this rule; one with 8 leading digits — about
/// one in 50,000 — is refused by [`recovery_shape`] and should be regenerated.)
fn all_digits(code: &str) -> bool {
    code.bytes().take(8).all(|b| b.is_ascii_digit())
}

/// `ABCDE-FGHIJ` for otpd's own codes, as shown to people; others as they are.
pub(crate) fn format_recovery_code(code: &str) -> String {
    match (code.len() == LEN, code.get(..5), code.get(5..)) {
        (true, Some(a), Some(b)) => format!("{a}-{b}"),
        _ => code.to_owned(),
    }
}

/// A code of `len` symbols, drawn again while its first 8 are all digits.
fn generate(len: usize) -> CoreResult<String> {
    loop {
        let code = draw(len)?;
        if !all_digits(&code) {
            return Ok(code);
        }
    }
}

fn draw(len: usize) -> CoreResult<String> {
    // Rejection sampling: bytes of 248 or more (248 = 8 × 31) are drawn again, so that the
    // remainder modulo 31 favours no symbol.
    const LIMIT: u8 = 248;
    let mut code = String::with_capacity(len);
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    while code.len() < len {
        getrandom::fill(bytes.as_mut_slice())
            .map_err(|_| CoreError::Internal("system RNG failed".into()))?;
        for b in bytes.iter().filter(|b| **b < LIMIT) {
            if code.len() == len {
                break;
            }
            let symbol = ALPHABET.get(usize::from(*b) % ALPHABET.len()).copied();
            code.push(char::from(symbol.unwrap_or(b'2')));
        }
    }
    Ok(code)
}

impl Service {
    /// Replaces an account's recovery codes with a new set of `count` codes of `length`.
    pub(crate) async fn replace_recovery_codes(
        &self,
        conn: &mut AnyConnection,
        account_id: &str,
        (count, length): (u32, usize),
    ) -> CoreResult<Vec<Shown>> {
        sqlx::query("DELETE FROM recovery_codes WHERE account_id = $1")
            .bind(account_id.to_owned())
            .execute(&mut *conn)
            .await?;
        let now = self.now();
        let ring = self.sealing_ring(&mut *conn).await?;
        let mut shown = Vec::new();
        for _ in 0..count {
            let code = generate(length)?;
            let id = new_id();
            sqlx::query("INSERT INTO recovery_codes (id, account_id, lookup, sealed, key_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(id.clone())
                .bind(account_id.to_owned())
                .bind(ring.lookup(account_id, &code))
                .bind(ring.seal(Purpose::RecoveryCode, &id, code.as_bytes())?)
                .bind(i64::from(ring.active().id()))
                .bind(now)
                .execute(&mut *conn)
                .await?;
            shown.push(Shown::new(format_recovery_code(&code)));
        }
        Ok(shown)
    }

    /// Consumes a recovery code: true if it existed (and now does not).
    pub(crate) async fn consume_recovery_code(
        &self,
        conn: &mut AnyConnection,
        account_id: &str,
        code: &str,
    ) -> CoreResult<bool> {
        let ring = self.lookup_ring(&mut *conn).await?;
        for lookup in ring.lookups(account_id, code) {
            let done =
                sqlx::query("DELETE FROM recovery_codes WHERE account_id = $1 AND lookup = $2")
                    .bind(account_id.to_owned())
                    .bind(lookup)
                    .execute(&mut *conn)
                    .await?;
            if done.rows_affected() > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// How many unused recovery codes the account has, and when its set was issued.
    pub(crate) async fn recovery_code_set(
        &self,
        conn: &mut AnyConnection,
        account_id: &str,
    ) -> CoreResult<(i64, Option<i64>)> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MAX(created_at) AS issued_at FROM recovery_codes WHERE account_id = $1",
        )
        .bind(account_id.to_owned())
        .fetch_one(conn)
        .await?;
        Ok((row.try_get("n")?, row.try_get("issued_at")?))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn shape_and_format() {
        let code = generate(LEN).unwrap();
        assert_eq!(code.len(), 10);
        let shown = format_recovery_code(&code);
        assert_eq!(recovery_shape(&shown).as_deref(), Some(code.as_str()));
        assert_eq!(
            recovery_shape(&shown.to_lowercase()).as_deref(),
            Some(code.as_str())
        );
        assert_eq!(recovery_shape("123456"), None);
        assert_eq!(recovery_shape("12345678"), None, "an 8-digit TOTP code");
        assert_eq!(recovery_shape("2345678A").as_deref(), Some("2345678A"));
        assert_eq!(recovery_shape("abcd-efgh").as_deref(), Some("ABCDEFGH"));
        assert_eq!(recovery_shape("ABCDEFG"), None, "7 symbols");
        assert_eq!(recovery_shape("ABCDEFGHJKMNPQRST"), None, "17 symbols");
        for _ in 0..2_000 {
            let short = generate(8).unwrap();
            assert_eq!(format_recovery_code(&short), short);
            assert_eq!(recovery_shape(&short).as_deref(), Some(short.as_str()));
        }
        assert_eq!(
            recovery_shape("ABCDE-FGHI0"),
            None,
            "0 is not in the alphabet"
        );
    }

    /// Every symbol equally likely: 20,000 codes (200,000 symbols, 6,452 expected of
    /// each, σ ≈ 79); a symbol listed twice would come twice as often. The bounds sit
    /// about 8σ out, so a correct generator fails this about never.
    #[test]
    fn every_symbol_is_equally_likely() {
        let distinct: std::collections::BTreeSet<u8> = ALPHABET.iter().copied().collect();
        assert_eq!(distinct.len(), ALPHABET.len(), "a symbol is listed twice");
        let mut counts = std::collections::HashMap::<char, u32>::new();
        for _ in 0..20_000 {
            for c in generate(LEN).unwrap().chars() {
                *counts.entry(c).or_default() += 1;
            }
        }
        assert_eq!(counts.len(), ALPHABET.len());
        let expected = 200_000.0 / ALPHABET.len() as f64;
        for (symbol, n) in counts {
            let off = (f64::from(n) - expected).abs();
            assert!(off < 650.0, "{symbol}: {n} times, {expected:.0} expected");
        }
    }
}
