//! Shared by the ring examples: the deterministic byte stream, its
//! checksum, command-line options and xenstore helpers.

use core::time::Duration;
use xenpv::xenstore::{Client, Transport, XsError};

/// Byte `i` of the test stream: a xorshift of the position, so a
/// dropped, duplicated or reordered chunk changes the bytes that follow.
pub fn fill(pos: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let mut x = (pos + i as u64) ^ 0x9E37_79B9_7F4A_7C15;
        x ^= x >> 29;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^= x >> 32;
        *b = x as u8;
    }
}

/// FNV-1a over the stream, updated chunk by chunk.
pub fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// FNV-1a's starting value.
pub const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

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
            Err(XsError::Errno(_)) if xenpv::time::now_ns() < deadline => xenpv::time::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e),
        }
    }
}

/// MiB/s for `bytes` moved in `ns` nanoseconds.
pub fn mib_per_s(bytes: u64, ns: u64) -> u64 {
    if ns == 0 { 0 } else { bytes * 1_000_000_000 / ns / (1 << 20) }
}
