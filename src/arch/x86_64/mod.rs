//! x86_64 PV: hypercall instructions, the boot entry and the trap entry
//! stubs (the page-table code is in `mm::paging`: no assembly there).

pub mod copy;
pub mod hypercall;

#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
pub mod traps;
#[cfg(target_os = "none")]
pub mod upcall;

/// The time-stamp counter (`rdtsc`).
#[cfg(target_os = "none")]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no memory effects and is allowed in ring 3 (Xen
    // PV guests use it: vcpu_time_info is calibrated against it).
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
}
