//! Criterion benchmarks of sealing and opening a TOTP secret (XChaCha20-Poly1305 under a
//! data key, row id and purpose as associated data), as every enrollment seals one and every
//! verification opens one. Figures are in docs/performance.md.

use criterion::{Criterion, criterion_group, criterion_main};
use otpd_core::{DataKey, KeyRing, Purpose};
use std::hint::black_box;

fn seal_open(c: &mut Criterion) {
    let ring = KeyRing::new(
        DataKey::generate().unwrap_or_else(|e| panic!("{e}")),
        vec![],
    );
    let secret = [0x5a_u8; 20];
    let row = "0194f0a1-7b7e-7c3e-9a51-3f1e2d4c5b6a";
    let sealed = ring
        .seal(Purpose::TotpSecret, row, &secret)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("secret");
    group.bench_function("seal", |b| {
        b.iter(|| ring.seal(Purpose::TotpSecret, black_box(row), black_box(&secret)))
    });
    group.bench_function("open", |b| {
        b.iter(|| ring.open(Purpose::TotpSecret, black_box(row), black_box(&sealed)))
    });
    group.finish();
}

criterion_group!(benches, seal_open);
criterion_main!(benches);
