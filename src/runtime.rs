//! The runtime: boot sequence, the application entry point, exit, panic
//! and fatal exceptions.

pub use crate::types::ShutdownReason;

/// Defines the application's entry point: a function that takes the
/// [`Xen`](crate::Xen) handle (or nothing) and returns `()` (the domain
/// powers off) or `Result<(), E: Debug>` (an `Err` is printed and the
/// domain crashes), such as `Result<(), xenpv::Error>`.
///
/// ```ignore
/// #![no_std]
/// #![no_main]
/// xenpv::main!(main);
/// fn main(xen: xenpv::Xen) -> Result<(), xenpv::Error> {
///     xenpv::println!("hi, I am dom{}", xen.domid()?);
///     Ok(())
/// }
/// ```
#[macro_export]
macro_rules! main {
    ($main:expr) => {
        #[no_mangle]
        pub extern "Rust" fn __xenpv_app_main() -> ! {
            $crate::runtime::Entry::enter($main)
        }
    };
}

/// What [`main!`](crate::main) accepts: `fn() -> R` or `fn(Xen) -> R`
/// with `R:` [`MainResult`]. `Args` tells the two apart.
#[cfg(target_os = "none")]
pub trait Entry<Args> {
    /// Runs the application and ends the domain with its result.
    fn enter(self) -> !;
}

#[cfg(target_os = "none")]
impl<F: FnOnce() -> R, R: MainResult> Entry<()> for F {
    fn enter(self) -> ! {
        self().finish()
    }
}

/// What an application's `main` may return.
pub trait MainResult {
    /// Ends the domain according to the result.
    fn finish(self) -> !;
}

impl MainResult for () {
    fn finish(self) -> ! {
        shutdown(ShutdownReason::Poweroff)
    }
}

impl<E: core::fmt::Debug> MainResult for Result<(), E> {
    fn finish(self) -> ! {
        match self {
            Ok(()) => shutdown(ShutdownReason::Poweroff),
            Err(e) => {
                crate::console::_print(format_args!("main returned an error: {e:?}\n"));
                shutdown(ShutdownReason::Crash)
            }
        }
    }
}

/// What runs after a panic or a fatal exception has been reported and
/// before the domain crashes: the in-guest test harness
/// ([`crate::testing`]) registers one to report the failed test and
/// where the next domain should go on. Set once; later calls are ignored.
#[cfg(target_os = "none")]
pub(crate) fn set_failure_hook(hook: fn()) {
    FAILURE_HOOK.call_once(|| hook);
}

#[cfg(target_os = "none")]
static FAILURE_HOOK: spin::Once<fn()> = spin::Once::new();

/// Ends the domain after a reported failure: the hook first (once: a
/// failure inside the hook goes straight to the crash), then
/// `SHUTDOWN_crash`. Nothing returns to the failed code's frames.
#[cfg(target_os = "none")]
fn crash_after_failure() -> ! {
    use core::sync::atomic::{AtomicBool, Ordering};
    static FAILING: AtomicBool = AtomicBool::new(false);
    if !FAILING.swap(true, Ordering::AcqRel) {
        if let Some(hook) = FAILURE_HOOK.get() {
            hook();
        }
    }
    shutdown(ShutdownReason::Crash)
}

/// Shuts the domain down cleanly (`SHUTDOWN_poweroff`).
pub fn poweroff() -> ! {
    shutdown(ShutdownReason::Poweroff)
}

/// Ends the application with an exit status, as `std::process::exit` does.
///
/// 0 powers the domain off. Any other code is first written to the
/// domain's xenstore node `data/xenpv-exit-code` (which the `xenpv-run`
/// runner turns into its own exit status), then the domain powers off.
/// Xen's shutdown reasons carry no number, hence the detour.
#[cfg(target_os = "none")]
pub fn exit(code: i32) -> ! {
    if code != 0 {
        if let Err(e) = crate::xenstore::guest::write_exit_code(code) {
            crate::console::emergency_print(format_args!(
                "xenpv: exit({code}): could not record the code in xenstore ({e:?})\n"
            ));
        }
    }
    shutdown(ShutdownReason::Poweroff)
}

/// Host builds cannot end a domain.
#[cfg(not(target_os = "none"))]
pub fn exit(code: i32) -> ! {
    panic!("xenpv::exit({code}) called outside a Xen guest")
}

/// Flushes the console and shuts the domain down with `reason`.
#[cfg(target_os = "none")]
pub fn shutdown(reason: ShutdownReason) -> ! {
    crate::console::flush();
    loop {
        let err = crate::hypercall::sched_shutdown(reason);
        crate::console::emergency_print(format_args!("xenpv: SCHEDOP_shutdown refused: {err}\n"));
        crate::hypercall::sched_block();
    }
}

/// Host builds cannot end a domain; this exists so the API type-checks
/// in host tests and tools.
#[cfg(not(target_os = "none"))]
pub fn shutdown(reason: ShutdownReason) -> ! {
    panic!("xenpv::shutdown({reason:?}) called outside a Xen guest")
}

// The boot glue: `_start` hands us Xen's raw start_info pointer, and the
// application's entry point is an extern symbol defined by `main!`.
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
mod guest {
    use super::*;
    use crate::abi::start_info;
    use crate::arch::x86_64::traps::{vector_name, TrapFrame};
    use crate::console::emergency_print;
    use crate::start_info::BootInfo;

    extern "Rust" {
        /// Defined by the application through [`main!`](crate::main).
        fn __xenpv_app_main() -> !;
    }

    /// Called by `_start` (boot/entry.S) on the boot stack.
    #[no_mangle]
    extern "C" fn xenpv_rust_start(si: *const start_info) -> ! {
        // SAFETY: Xen passes the start_info page in %rsi; it is mapped in
        // the bootstrap region and Xen does not write it after boot.
        let raw = unsafe { &*si };
        let info = match BootInfo::parse(raw, crate::mm::VIRT_BASE) {
            Ok(i) => i,
            Err(e) => boot_failure(format_args!("bad start_info: {e:?}")),
        };
        let traps = crate::arch::x86_64::traps::table();
        // SAFETY: every entry of the table is one of arch's trap stubs,
        // written for the frame Xen builds; it ends with a zeroed entry.
        if let Err(e) = unsafe { crate::hypercall::set_trap_table(&traps) } {
            boot_failure(format_args!("set_trap_table failed: {e}"));
        }
        let info = crate::start_info::set_boot_info(info);
        crate::shared_info::init(info.shared_info_maddr);
        crate::console::init(info);
        if let Err(e) = crate::mm::init(info) {
            boot_failure(format_args!("memory set-up failed: {e:?}"));
        }
        if let Err(e) = crate::event::init() {
            boot_failure(format_args!("event channel set-up failed: {e:?}"));
        }
        // SAFETY: the application defines this symbol with `main!`; it
        // takes no arguments and never returns.
        unsafe { __xenpv_app_main() }
    }

    fn boot_failure(args: core::fmt::Arguments<'_>) -> ! {
        emergency_print(format_args!("xenpv: boot failed: {args}\n"));
        shutdown(ShutdownReason::Crash)
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        match info.location() {
            Some(l) => emergency_print(format_args!(
                "panicked at {}:{}:{}: {}\n",
                l.file(),
                l.line(),
                l.column(),
                info.message()
            )),
            None => emergency_print(format_args!("panicked: {}\n", info.message())),
        }
        crash_after_failure()
    }

    /// Called by `arch`'s failsafe stub: a segment reload failed.
    #[no_mangle]
    fn __xenpv_failsafe(f: &[u64; 11]) -> ! {
        emergency_print(format_args!(
            "xenpv: failsafe callback: segment reload failed (ds {:#x} es {:#x} fs {:#x} gs {:#x}) at rip {:#x}\n",
            f[2], f[3], f[4], f[5], f[6]
        ));
        shutdown(ShutdownReason::Crash)
    }

    /// Reports an exception with its registers and crashes the domain
    /// (called by `arch`'s trap stubs through this symbol).
    #[no_mangle]
    fn __xenpv_fatal_exception(f: &TrapFrame) -> ! {
        let name = vector_name(f.vector);
        if f.vector == 14 {
            let cr2 = crate::shared_info::fault_address();
            let access = if f.error_code & 2 != 0 {
                "write"
            } else {
                "read"
            };
            let why = if f.error_code & 1 != 0 {
                "protection violation"
            } else {
                "page not present"
            };
            emergency_print(format_args!(
                "xenpv: fatal exception: page fault at address {cr2:#018x} ({access}, {why}, error code {:#x})\n",
                f.error_code
            ));
        } else {
            emergency_print(format_args!(
                "xenpv: fatal exception: {name} (vector {}, error code {:#x})\n",
                f.vector, f.error_code
            ));
        }
        emergency_print(format_args!(
            "  rip {:#018x}  rsp {:#018x}  rflags {:#x}  cs {:#x}  ss {:#x}\n\
             \x20 rax {:#018x}  rbx {:#018x}  rcx {:#018x}  rdx {:#018x}\n\
             \x20 rsi {:#018x}  rdi {:#018x}  rbp {:#018x}  r8  {:#018x}\n\
             \x20 r9  {:#018x}  r10 {:#018x}  r11 {:#018x}  r12 {:#018x}\n\
             \x20 r13 {:#018x}  r14 {:#018x}  r15 {:#018x}\n",
            f.rip,
            f.rsp,
            f.rflags,
            f.cs & 0xffff,
            f.ss & 0xffff,
            f.rax,
            f.rbx,
            f.rcx,
            f.rdx,
            f.rsi,
            f.rdi,
            f.rbp,
            f.r8,
            f.r9,
            f.r10,
            f.r11,
            f.r12,
            f.r13,
            f.r14,
            f.r15
        ));
        crash_after_failure()
    }
}

#[cfg(target_os = "none")]
pub use crate::start_info::boot_info;
