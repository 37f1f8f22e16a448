//! The ring tests' byte stream and its checksum, the same for the guests
//! (ring_producer/consumer, soak, hostile) and the dom0 tools (vchan-bench)
//! that talk to them: one copy, in this crate.

/// Word `k` (bytes `8k..8k+8`, little-endian) of the stream: a mix of the
/// position, so a dropped, duplicated or reordered chunk changes what follows.
fn word(k: u64) -> u64 {
    let mut x = k ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 32)
}

/// Fills `buf` with the stream bytes starting at stream offset `pos`.
pub fn fill(pos: u64, buf: &mut [u8]) {
    let mut i = 0;
    while i < buf.len() {
        let at = pos + i as u64;
        let bytes = word(at / 8).to_le_bytes();
        let from = (at % 8) as usize;
        let n = (8 - from).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&bytes[from..from + n]);
        i += n;
    }
}

/// FNV-1a over the stream's 8-byte little-endian words, fed in chunks of
/// any size; a trailing partial word is padded with zeros.
#[derive(Clone)]
pub struct Checksum {
    h: u64,
    partial: [u8; 8],
    len: usize,
}

impl Default for Checksum {
    fn default() -> Self {
        Self::new()
    }
}

impl Checksum {
    /// An empty checksum.
    pub fn new() -> Self {
        Checksum {
            h: 0xcbf2_9ce4_8422_2325,
            partial: [0; 8],
            len: 0,
        }
    }

    fn word(&mut self, w: [u8; 8]) {
        self.h ^= u64::from_le_bytes(w);
        self.h = self.h.wrapping_mul(0x100_0000_01b3);
    }

    /// Adds bytes.
    pub fn update(&mut self, mut bytes: &[u8]) {
        while self.len > 0 && !bytes.is_empty() {
            self.partial[self.len] = bytes[0];
            self.len += 1;
            bytes = &bytes[1..];
            if self.len == 8 {
                self.word(self.partial);
                self.len = 0;
            }
        }
        let mut words = bytes.chunks_exact(8);
        for c in &mut words {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.word(w);
        }
        for &b in words.remainder() {
            self.partial[self.len] = b;
            self.len += 1;
        }
    }

    /// The checksum of everything added.
    pub fn finish(mut self) -> u64 {
        if self.len > 0 {
            let mut w = [0u8; 8];
            w[..self.len].copy_from_slice(&self.partial[..self.len]);
            self.word(w);
        }
        self.h
    }
}

/// MiB/s for `bytes` moved in `ns` nanoseconds.
pub fn mib_per_s(bytes: u64, ns: u64) -> f64 {
    if ns == 0 {
        0.0
    } else {
        bytes as f64 * 1e9 / ns as f64 / (1u64 << 20) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_is_position_based() {
        let mut whole = vec![0u8; 100];
        fill(5, &mut whole);
        let mut parts = vec![0u8; 100];
        fill(5, &mut parts[..3]);
        fill(8, &mut parts[3..50]);
        fill(55, &mut parts[50..]);
        assert_eq!(whole, parts);
    }

    #[test]
    fn checksum_ignores_chunking() {
        let mut data = vec![0u8; 1001];
        fill(0, &mut data);
        let mut a = Checksum::new();
        a.update(&data);
        let mut b = Checksum::new();
        for c in data.chunks(7) {
            b.update(c);
        }
        assert_eq!(a.finish(), b.finish());
    }
}
