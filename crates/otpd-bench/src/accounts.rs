//! The load generator's accounts: `b0000000`, `b0000001`, ... with secrets derived from a
//! seed, so that the process that provisions them and the one that drives load agree on
//! every code without any secret being written down. Bench accounts only: a deterministic
//! secret is exactly what a real account must never have.

use hmac::{Hmac, KeyInit, Mac};
use otp::{Secret, Totp};
use sha2::Sha256;

/// The name of bench account `i`.
pub fn username(i: u64) -> String {
    format!("b{i:07}")
}

/// The secret of bench account `i` under `seed`: the first 20 bytes of
/// HMAC-SHA256(seed, "otpd-bench/" ‖ i).
pub fn secret(seed: &str, i: u64) -> anyhow::Result<Secret> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(seed.as_bytes())
        .map_err(|_| anyhow::anyhow!("bad seed"))?;
    mac.update(b"otpd-bench/");
    mac.update(&i.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let bytes = digest
        .get(..20)
        .ok_or_else(|| anyhow::anyhow!("short digest"))?;
    Secret::from_bytes(bytes.to_vec()).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The code of account `i` at `now` (default parameters: SHA1, 6 digits, 30 s), and a wrong
/// one: the next number that is not the code of the previous, current or next step, so it
/// is refused whatever the server's window (±1 by default) and the account's drift.
pub fn codes(seed: &str, i: u64, now: u64) -> anyhow::Result<(String, String)> {
    let totp = Totp::default();
    let secret = secret(seed, i)?;
    let valid = totp.generate(&secret, now).to_string();
    let near: Vec<String> = [now.saturating_sub(30), now + 30]
        .iter()
        .map(|&t| totp.generate(&secret, t).to_string())
        .chain(std::iter::once(valid.clone()))
        .collect();
    let mut n: u32 = valid.parse()?;
    let wrong = loop {
        n = (n + 1) % 1_000_000;
        let candidate = format!("{n:06}");
        if !near.contains(&candidate) {
            break candidate;
        }
    };
    Ok((valid, wrong))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn secrets_are_deterministic_and_distinct() {
        assert_eq!(secret("s", 1).unwrap(), secret("s", 1).unwrap());
        assert_ne!(secret("s", 1).unwrap(), secret("s", 2).unwrap());
        assert_ne!(secret("s", 1).unwrap(), secret("t", 1).unwrap());
        let (valid, wrong) = codes("s", 1, 1_795_305_615).unwrap();
        assert_ne!(valid, wrong);
        assert_eq!(username(42), "b0000042");
    }
}
