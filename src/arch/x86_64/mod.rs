//! x86_64 PV: hypercall instructions, the boot entry and the trap entry stubs.

pub mod hypercall;
#[cfg(target_os = "none")]
pub mod paging;

#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
pub mod traps;
#[cfg(target_os = "none")]
pub mod upcall;
