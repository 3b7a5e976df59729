//! Criterion benchmarks of the hot path: generating a code and verifying one with window ±1
//! (three HMACs), for each hash. Figures are recorded in the crate README.

use criterion::{Criterion, criterion_group, criterion_main};
use otp::{Algorithm, Check, Digits, Interval, OtpCode, Secret, Totp, Window};
use std::hint::black_box;

const NOW: u64 = 1_763_856_015;

fn algorithms() -> [(Algorithm, Secret); 3] {
    let secret = |n: usize| Secret::from_bytes(vec![0x5a; n]).unwrap_or_else(|e| panic!("{e}"));
    [
        (Algorithm::Sha1, secret(20)),
        (Algorithm::Sha256, secret(32)),
        (Algorithm::Sha512, secret(64)),
    ]
}

fn generate(c: &mut Criterion) {
    let mut group = c.benchmark_group("generate");
    for (algorithm, secret) in algorithms() {
        let totp = Totp::new(algorithm, Digits::SIX, Interval::THIRTY_SECONDS);
        group.bench_function(algorithm.as_str(), |b| {
            b.iter(|| totp.generate(black_box(&secret), black_box(NOW)))
        });
    }
    group.finish();
}

fn verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify_window_1");
    for (algorithm, secret) in algorithms() {
        let totp = Totp::new(algorithm, Digits::SIX, Interval::THIRTY_SECONDS);
        // The worst case for a valid code: it matches the last candidate tried (+1 step).
        let valid = totp.generate(&secret, NOW + 30);
        let invalid = OtpCode::from_value(valid.value().wrapping_add(1), Digits::SIX);
        let check = Check {
            now: NOW,
            window: Window::ONE,
            drift: 0,
            last_used_step: None,
        };
        group.bench_function(format!("{}/valid", algorithm.as_str()), |b| {
            b.iter(|| totp.verify(black_box(&secret), black_box(&valid), black_box(&check)))
        });
        group.bench_function(format!("{}/invalid", algorithm.as_str()), |b| {
            b.iter(|| totp.verify(black_box(&secret), black_box(&invalid), black_box(&check)))
        });
    }
    group.finish();
}

fn parse(c: &mut Criterion) {
    c.bench_function("parse_code", |b| {
        b.iter(|| OtpCode::parse(black_box("123 456"), Digits::SIX))
    });
}

criterion_group!(benches, generate, verify, parse);
criterion_main!(benches);
