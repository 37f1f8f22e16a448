//! The dom0 tools' copy of the test stream (`xenpv_dom0_tools::stream`)
//! against the guests' own (`examples/common/stream.rs`), compiled here
//! as it is: same bytes at odd offsets and lengths, same checksum.
//!
//! The guest file names `xenpv::xenstore`, `xenpv::runtime` and
//! `xenpv::time` for its xenstore and command-line helpers, which these
//! tests do not use; `extern crate self as xenpv` lets it resolve them to
//! the inert stand-ins below instead of linking the guest library.

extern crate alloc;
extern crate self as xenpv;

use xenpv_dom0_tools::stream as tool;

#[allow(dead_code)]
#[path = "../../../examples/common/stream.rs"]
mod guest;

/// Stand-ins for the guest library items `examples/common/stream.rs` names.
#[allow(dead_code)]
pub mod xenstore {
    pub trait Transport {}
    pub enum XsError {
        Errno(i32),
    }
    pub struct Client<T>(pub T);
    impl<T: Transport> Client<T> {
        pub fn read_string(&mut self, _path: &str) -> Result<alloc::string::String, XsError> {
            Err(XsError::Errno(2))
        }
    }
}

#[allow(dead_code)]
pub mod runtime {
    pub struct BootInfo;
    impl BootInfo {
        pub fn arg(&self, _key: &str) -> Option<&str> {
            None
        }
    }
    pub fn boot_info() -> &'static BootInfo {
        &BootInfo
    }
}

#[allow(dead_code)]
pub mod time {
    pub fn now_ns() -> u64 {
        0
    }
}

#[allow(dead_code)]
pub fn sleep(_d: core::time::Duration) {}

#[test]
fn same_bytes_at_a_few_offsets() {
    for (pos, len) in [
        (0u64, 64usize),
        (1, 7),
        (7, 9),
        (4093, 4099),
        (65_531, 70_000),
        ((1 << 32) + 3, 61),
        (u64::MAX - 100, 40),
    ] {
        let (mut a, mut b) = (vec![0u8; len], vec![0u8; len]);
        tool::fill(pos, &mut a);
        guest::fill(pos, &mut b);
        assert_eq!(a, b, "stream differs at offset {pos}, length {len}");
    }
}

#[test]
fn same_checksum() {
    let mut data = vec![0u8; 100_003];
    tool::fill(0, &mut data);
    let (mut a, mut b) = (tool::Checksum::new(), guest::Checksum::new());
    for c in data.chunks(4097) {
        a.update(c);
        b.update(c);
    }
    assert_eq!(a.finish(), b.finish());
}
