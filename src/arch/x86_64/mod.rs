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

/// Abandons the current stack and calls `f` at the top of the boot stack.
///
/// For the in-guest test harness only (`crate::testing`): after a test
/// panicked or faulted, the frames between the harness and the failure
/// are given up without running their destructors, as `mem::forget` would
/// give them up, and the harness goes on with the next test.
///
/// # Safety
///
/// Nothing may still point into the boot stack below its top: every value
/// on it is overwritten. The caller must be the only code running (one
/// vCPU, called from the panic or fatal-exception path, which never returns).
#[cfg(target_os = "none")]
pub unsafe fn restart_on_boot_stack(f: extern "C" fn() -> !) -> ! {
    extern "C" {
        static xenpv_boot_stack_top: u8;
    }
    // SAFETY: the caller guarantees no one uses the old frames again; the
    // stack top is 4096-aligned (boot/entry.S), so `call` leaves the
    // callee with the ABI's alignment; rbp is cleared to end backtraces.
    unsafe {
        core::arch::asm!(
            "lea rsp, [rip + {top}]",
            "xor ebp, ebp",
            "call {f}",
            "ud2",
            top = sym xenpv_boot_stack_top,
            f = in(reg) f,
            options(noreturn)
        )
    }
}
