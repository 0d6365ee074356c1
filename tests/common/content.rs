//! What tests push: deterministic bytes for blobs, one generator for all.

/// `len` deterministic pseudo-random bytes; different seeds give different
/// bytes (xorshift64 seeded with FNV-1a of `seed`).
pub fn bytes(seed: impl AsRef<[u8]>, len: usize) -> Vec<u8> {
    let mut x: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in seed.as_ref() {
        x = (x ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    x |= 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
