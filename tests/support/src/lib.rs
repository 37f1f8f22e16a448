//! Helpers shared by xenpv's under-Xen test guests (`tests/xen/`) and the
//! dom0 test tools (`tests/dom0-tools`), so that both ends of a test use
//! one copy:
//! - [`stream`]: the deterministic byte stream of the ring tests and its
//!   checksum;
//! - [`rounds`]: how the ring benchmark's receiver paces its sender
//!   round by round, and the min/median/max of the rounds' figures;
//! - [`pattern`]: the page pattern of the Linux grant interop test;
//! - `guest` (feature `guest`): command-line options, xenstore waits and
//!   the test error type, for the guests.

#![cfg_attr(not(test), no_std)]

#[cfg(all(feature = "guest", target_os = "none"))]
extern crate alloc;

pub mod pattern;
pub mod rounds;
pub mod stream;

// Guest builds only: the helpers use the running domain.
#[cfg(all(feature = "guest", target_os = "none"))]
pub mod guest;
