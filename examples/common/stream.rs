//! Shared by the ring examples: the deterministic byte stream, its
//! checksum, command-line options and xenstore helpers.

use core::time::Duration;
use xenpv::xenstore::{Client, Transport, XsError};

/// Word `k` (bytes `8k..8k+8`, little-endian) of the test stream: a
/// mix of the position, so a dropped, duplicated or reordered chunk
/// changes what follows. Word-wise, so generating and checking it costs
/// little next to the transfer being measured.
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

/// FNV-1a over the stream's 8-byte words, fed in chunks of any size.
pub struct Checksum {
    h: u64,
    partial: [u8; 8],
    len: usize,
}

impl Checksum {
    /// An empty checksum.
    pub fn new() -> Self {
        Checksum { h: 0xcbf2_9ce4_8422_2325, partial: [0; 8], len: 0 }
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
            self.word(c.try_into().unwrap_or([0; 8]));
        }
        for &b in words.remainder() {
            self.partial[self.len] = b;
            self.len += 1;
        }
    }

    /// The checksum of everything added (a trailing partial word padded with zeros).
    pub fn finish(mut self) -> u64 {
        if self.len > 0 {
            let mut w = [0u8; 8];
            w[..self.len].copy_from_slice(&self.partial[..self.len]);
            self.word(w);
        }
        self.h
    }
}

/// `key=value` from the command line (xl `extra=`), parsed, or `default`.
pub fn arg<T: core::str::FromStr>(key: &str, default: T) -> T {
    xenpv::runtime::boot_info().arg(key).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Reads `path` once it exists (polling every 20 ms, up to `timeout`).
pub fn wait_key<T: Transport>(xs: &mut Client<T>, path: &str, timeout: Duration) -> Result<alloc::string::String, XsError> {
    let deadline = xenpv::time::now_ns() + timeout.as_nanos() as u64;
    loop {
        match xs.read_string(path) {
            Ok(v) => return Ok(v),
            Err(XsError::Errno(_)) if xenpv::time::now_ns() < deadline => xenpv::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e),
        }
    }
}

/// MiB/s for `bytes` moved in `ns` nanoseconds.
pub fn mib_per_s(bytes: u64, ns: u64) -> f64 {
    if ns == 0 { 0.0 } else { bytes as f64 * 1e9 / ns as f64 / (1u64 << 20) as f64 }
}
