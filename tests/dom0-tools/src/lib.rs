//! Test tools for the lab's Linux dom0: xenpv's peers that no one on the
//! xenpv side wrote, reached through Linux's Xen drivers
//! (`/dev/xen/gntdev`, `/dev/xen/gntalloc`; ABI in Linux's
//! `include/uapi/xen/gntdev.h` and `gntalloc.h`).
//!
//! Layers: [`abi`] holds the ioctl structs and numbers and nothing else;
//! [`dev`] holds every `unsafe` (ioctl, mmap, volatile access to the
//! mapped pages); [`pattern`] and the binaries are safe code.

pub mod abi;
pub mod dev;
pub use xenpv_test_support::{pattern, rounds, stream};
pub mod xenvchan;

use std::fmt;

/// Everything the tools can fail with.
#[derive(Debug)]
pub enum Error {
    /// A bad command line; the text says what was wrong.
    Usage(String),
    /// Opening a device failed.
    Open {
        path: &'static str,
        err: std::io::Error,
    },
    /// An ioctl failed.
    Ioctl {
        what: &'static str,
        err: std::io::Error,
    },
    /// `mmap` of the device failed (for gntdev this is where the grants
    /// are really mapped, so a refused grant shows up here).
    Mmap { err: std::io::Error },
    /// An offset or length outside the mapping.
    OutOfRange {
        offset: usize,
        len: usize,
        size: usize,
    },
    /// The pages do not hold what the peer should have written.
    Mismatch {
        page: usize,
        offset: usize,
        expected: u8,
        found: u8,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(s) => write!(f, "{s}"),
            Error::Open { path, err } => write!(f, "cannot open {path}: {err}"),
            Error::Ioctl { what, err } => write!(f, "{what} failed: {err}"),
            Error::Mmap { err } => write!(f, "mmap failed: {err}"),
            Error::OutOfRange { offset, len, size } => {
                write!(
                    f,
                    "{len} bytes at offset {offset} do not fit a {size}-byte mapping"
                )
            }
            Error::Mismatch {
                page,
                offset,
                expected,
                found,
            } => write!(
                f,
                "page {page} offset {offset}: expected {expected:#04x}, found {found:#04x}"
            ),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
