//! The byte pattern both sides of the interop test write and check
//! (the guest `grant_linux` and dom0's `gnt-interop`): page
//! `p`, offset `o` holds `byte(seed, p * 4096 + o)`, so a swapped,
//! shifted or stale page shows up as a mismatch.

/// The pattern's byte at position `i` of a run of pages.
pub fn byte(seed: u8, i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 8)) as u8 ^ seed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_differ() {
        let page = |p: usize| {
            (0..4096)
                .map(|o| byte(0x5a, p * 4096 + o))
                .collect::<Vec<_>>()
        };
        assert_ne!(page(0), page(1));
        assert_ne!(page(1), page(2));
        assert_ne!(byte(0x5a, 7), byte(0xa5, 7));
    }
}
