//! xenpv: a `no_std` library for Xen PV unikernels.
//!
//! An application links xenpv, defines its entry point with [`main!`],
//! and is built into a 64-bit PV ELF image that Xen boots with
//! `xl create`. See the README for the build set-up.
//!
//! Map of the crate:
//! - [`abi`]: raw Xen structs and constants, no logic.
//! - `arch::x86_64`: every `asm!` (hypercall instruction, boot entry,
//!   trap stubs) and the page-table code.
//! - `hypercall`: typed hypercalls (guest only).
//! - [`mm`], [`console`], [`runtime`], [`start_info`], [`shared_info`]:
//!   the boot foundation.
//! - [`shared_mem`]: the only door to memory a peer domain can write.
//! - [`grant`], [`event`], [`xenstore`], [`time`]: services between domains.

#![cfg_attr(not(test), no_std)]
#![warn(missing_debug_implementations)]
// Unsafe code lives only where it must: `arch`, the hypercall layer,
// `shared_mem` and the Xen backends (the `guest` modules, the real grant
// backend). Each of those opts in with `allow(unsafe_code)`.
#![deny(unsafe_code)]

extern crate alloc;

pub mod abi;
#[cfg(all(doctest, feature = "host-fakes"))]
mod compile_fail;
pub mod arch;
pub mod console;
pub mod error;
pub mod event;
pub mod grant;
#[cfg(target_os = "none")]
pub mod handle;
#[cfg(target_os = "none")]
pub mod hypercall;
pub mod mm;
pub mod runtime;
pub mod shared_info;
pub mod shared_mem;
pub mod start_info;
pub mod testing;
pub mod time;
pub mod types;
pub mod vchan;
pub mod xenstore;

pub use error::{Errno, Error, Result};
#[cfg(target_os = "none")]
pub use handle::Xen;
pub use runtime::{exit, poweroff, shutdown, ShutdownReason};
#[cfg(target_os = "none")]
pub use event::sleep;
pub use types::{DomId, EvtchnPort, GrantRef, Mfn, Pfn};

