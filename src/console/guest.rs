//! The guest's console backend and the `print!` plumbing.

// Xen backend: the console page Xen maps for us.
#![allow(unsafe_code)]

use super::ring::ConsoleRing;
use crate::abi::console::OUT_RING_SIZE;
use crate::hypercall;
use crate::mm::paging::mfn_to_pfn;
use crate::mm::pfn_to_virt;
use crate::shared_mem::SharedMem;
use crate::start_info::BootInfo;
use crate::types::EvtchnPort;
use core::fmt::{self, Write};
use core::ptr::NonNull;
use spin::Mutex;

/// How long a writer waits for ring space (or `flush` for the ring to
/// drain) before it drops output: a dead console backend must not hang
/// the guest.
const MAX_WAIT: core::time::Duration = core::time::Duration::from_secs(2);

/// Sleeps until `cond` holds, woken by the console port (xenconsoled
/// notifies it after consuming output), or `MAX_WAIT` passes. Before
/// events are set up, or inside an upcall handler, this polls with
/// `SCHEDOP_yield` instead (see `event::wait_until`).
fn wait_for_backend(cond: impl FnMut() -> bool) -> bool {
    crate::event::wait_until(Some(crate::time::deadline_after(MAX_WAIT)), cond).is_ok()
}

#[derive(Clone, Copy)]
enum Backend {
    /// Xen's console (`console_io`): dom0, and early boot.
    Hypervisor,
    /// The PV console ring and its event channel.
    Ring(ConsoleRing<'static>, EvtchnPort),
    /// The ring was found corrupt: output is dropped.
    Broken,
}

static CONSOLE: Mutex<Backend> = Mutex::new(Backend::Hypervisor);

/// Chooses the backend from start_info: the ring for a domU.
pub(crate) fn init(info: &BootInfo) {
    if info.is_initial_domain() || info.console_mfn.0 == 0 {
        return;
    }
    // SAFETY: the console page is one of our own frames, inside the
    // bootstrap direct map (libxc allocates it before the page tables).
    let pfn = unsafe { mfn_to_pfn(info.console_mfn) };
    let Some(va) = pfn_to_virt(pfn) else { return };
    // SAFETY: mapped writable for the domain's lifetime; shared with
    // xenconsoled, hence accessed only through SharedMem.
    let page =
        unsafe { SharedMem::new(NonNull::new_unchecked(va as *mut u8), crate::abi::PAGE_SIZE) };
    if let Some(ring) = ConsoleRing::new(page) {
        *CONSOLE.lock() = Backend::Ring(ring, info.console_evtchn);
    }
}

fn write_locked(backend: &mut Backend, mut bytes: &[u8]) {
    match *backend {
        Backend::Hypervisor => {
            let _ = hypercall::console_io_write(bytes);
        }
        Backend::Broken => {}
        Backend::Ring(ring, port) => {
            while !bytes.is_empty() {
                match ring.write(bytes) {
                    Ok(n) => {
                        bytes = &bytes[n..];
                        let _ = hypercall::evtchn_send(port);
                        if n == 0
                            && !wait_for_backend(|| {
                                ring.pending().map_or(true, |p| p < OUT_RING_SIZE)
                            })
                        {
                            return;
                        }
                    }
                    Err(_) => {
                        *backend = Backend::Broken;
                        return;
                    }
                }
            }
        }
    }
}

/// Writes raw bytes to the console.
pub fn write_bytes(bytes: &[u8]) {
    write_locked(&mut CONSOLE.lock(), bytes);
}

/// Waits (bounded) until the backend has consumed everything written, so
/// the last lines are not lost when the domain shuts down.
pub fn flush() {
    let backend = *CONSOLE.lock();
    if let Backend::Ring(ring, port) = backend {
        let _ = hypercall::evtchn_send(port);
        wait_for_backend(|| !matches!(ring.pending(), Ok(n) if n > 0));
    }
}

struct Writer<'a>(&'a mut Backend);

impl Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_locked(self.0, s.as_bytes());
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let _ = Writer(&mut CONSOLE.lock()).write_fmt(args);
}

/// Prints from a context that may have interrupted a console writer (a
/// panic or an exception): takes the lock if it can, and otherwise
/// writes anyway rather than deadlock.
pub(crate) fn emergency_print(args: fmt::Arguments<'_>) {
    for _ in 0..1000 {
        if let Some(mut guard) = CONSOLE.try_lock() {
            let _ = Writer(&mut guard).write_fmt(args);
            return;
        }
        core::hint::spin_loop();
    }
    // SAFETY: reached only when the lock holder was interrupted on this
    // (single) vCPU by the panic or exception being reported, and will
    // never resume: no one else is inside the critical section.
    unsafe { CONSOLE.force_unlock() };
    let _ = Writer(&mut CONSOLE.lock()).write_fmt(args);
}
