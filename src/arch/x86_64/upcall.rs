//! The event-channel upcall and the failsafe callback entry stubs,
//! registered with `HYPERVISOR_set_callbacks` (public/arch-x86/xen-x86_64.h).
//!
//! Xen enters the event callback like an exception without an error code
//! (xen/arch/x86/x86_64/entry.S, `create_bounce_frame` with TBF_INTERRUPT):
//! on the interrupted stack, 16-byte aligned, it pushes
//! `{ RCX, R11, RIP, CS, RFLAGS, RSP, SS }` (lowest address first), sets
//! `evtchn_upcall_mask`, and encodes the mask it found in the saved
//! RFLAGS.IF (IF set = events were enabled). rcx and r11 themselves hold
//! garbage at entry.
//!
//! The stub saves the caller-saved registers (the Rust handler preserves
//! the others; the target has no SSE state or red zone to worry about),
//! runs `xenpv_upcall`, and returns with `HYPERVISOR_iret`. That
//! hypercall restores `evtchn_upcall_mask` from the saved RFLAGS.IF in
//! the same step as it returns, so an event that arrived during the
//! handler is delivered right after it instead of being lost in a window
//! between "unmask" and "return": the race Mini-OS closes with its
//! critical-region fix-up, closed here by letting Xen do both.
//!
//! `HYPERVISOR_iret`'s stub in the hypercall page pushes rcx, r11 and
//! rax and issues the hypercall; it expects `{ flags, RIP, CS, RFLAGS,
//! RSP, SS }` above them (`struct iret_context`, xen-x86_64.h), so the
//! stub restores rcx/r11 from Xen's frame, drops those two slots and
//! pushes `flags = 0` (not returning from a syscall).

use crate::abi::event::__HYPERVISOR_iret;

core::arch::global_asm!(
    ".globl xenpv_hypervisor_callback",
    "xenpv_hypervisor_callback:",
    "push %rax", "push %rdx", "push %rsi", "push %rdi",
    "push %r8", "push %r9", "push %r10", "push %rbp",
    "mov %rsp, %rbp",
    "and $-16, %rsp",
    "cld",
    "call xenpv_upcall",
    "mov %rbp, %rsp",
    "pop %rbp", "pop %r10", "pop %r9", "pop %r8",
    "pop %rdi", "pop %rsi", "pop %rdx", "pop %rax",
    // Now at Xen's frame: restore the interrupted rcx/r11.
    "mov (%rsp), %rcx",
    "mov 8(%rsp), %r11",
    "add $16, %rsp",
    "push $0",
    "jmp xenpv_hypercall_page + {iret} * 32",

    // Failsafe: Xen could not load the guest's segment registers on a
    // return. Frame `{ RCX, R11, DS, ES, FS, GS, RIP, CS, RFLAGS, RSP, SS }`.
    // Nothing xenpv does changes segments, so this is a bug: report it.
    ".globl xenpv_failsafe_callback",
    "xenpv_failsafe_callback:",
    "mov %rsp, %rdi",
    "and $-16, %rsp",
    "cld",
    "call xenpv_failsafe",
    "ud2",
    iret = const __HYPERVISOR_iret,
    options(att_syntax)
);

extern "C" {
    fn xenpv_hypervisor_callback();
    fn xenpv_failsafe_callback();
}

/// The addresses to hand to `set_callbacks`: (event, failsafe).
pub fn callback_addresses() -> (u64, u64) {
    (
        xenpv_hypervisor_callback as *const () as u64,
        xenpv_failsafe_callback as *const () as u64,
    )
}

// The layers above define what an upcall does; arch reaches them through
// these symbols rather than by importing them, so it depends on nothing
// above it.
extern "Rust" {
    /// Dispatches pending events (defined by `event`).
    fn __xenpv_event_upcall();
    /// Reports a failed segment reload and ends the domain (defined by
    /// `runtime`).
    fn __xenpv_failsafe(frame: &[u64; 11]) -> !;
}

/// Called by the upcall stub with events masked.
#[no_mangle]
extern "C" fn xenpv_upcall() {
    // SAFETY: defined by the event layer with this signature; it takes no
    // argument and runs with events masked, as the stub guarantees.
    unsafe { __xenpv_event_upcall() }
}

/// Called by the failsafe stub; `frame` points at Xen's frame.
#[no_mangle]
extern "C" fn xenpv_failsafe(frame: *const [u64; 11]) -> ! {
    // SAFETY: the stub passes the stack pointer at entry, where Xen just
    // wrote the 11-word failsafe frame; the runtime defines the symbol.
    unsafe { __xenpv_failsafe(&*frame) }
}
