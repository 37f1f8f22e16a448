//! Exception entry stubs and the trap table given to `set_trap_table`.
//!
//! Xen delivers a PV exception by building this frame on the guest
//! stack (xen/arch/x86/x86_64/entry.S, create_bounce_frame):
//! `{ RCX, R11, [ERRCODE,] RIP, CS, RFLAGS, RSP, SS }`, lowest address
//! first. The stubs restore rcx/r11, push a uniform vector/error code and
//! all general registers, and call `xenpv_trap`, which reports and
//! crashes the domain: every exception is fatal in xenpv.

use crate::abi::{trap_info, FLAT_KERNEL_CS};

macro_rules! stubs {
    ($($vec:literal $name:ident $kind:ident;)*) => {
        core::arch::global_asm!(
            $(
                concat!(".globl ", stringify!($name)),
                concat!(stringify!($name), ":"),
                "mov (%rsp), %rcx",
                "mov 8(%rsp), %r11",
                "add $16, %rsp",
                stubs!(@errcode $kind),
                concat!("push $", stringify!($vec)),
                "jmp xenpv_trap_common",
            )*
            "xenpv_trap_common:",
            "push %rax", "push %rbx", "push %rcx", "push %rdx",
            "push %rsi", "push %rdi", "push %rbp", "push %r8",
            "push %r9", "push %r10", "push %r11", "push %r12",
            "push %r13", "push %r14", "push %r15",
            "mov %rsp, %rdi",
            "and $-16, %rsp",
            "call xenpv_trap",
            "ud2",
            options(att_syntax)
        );
        extern "C" {
            $(fn $name();)*
        }
        /// How many exceptions xenpv handles.
        const HANDLERS: usize = 0 $(+ { let _ = $vec; 1 })*;
        /// (vector, handler) for every exception xenpv handles.
        fn handlers() -> [(u8, unsafe extern "C" fn()); HANDLERS] {
            [$(($vec, $name as unsafe extern "C" fn())),*]
        }
    };
    (@errcode noerr) => { "push $0" };
    (@errcode err) => { "" };
}

stubs! {
    0 xenpv_trap_divide_error noerr;
    1 xenpv_trap_debug noerr;
    3 xenpv_trap_int3 noerr;
    4 xenpv_trap_overflow noerr;
    5 xenpv_trap_bounds noerr;
    6 xenpv_trap_invalid_op noerr;
    7 xenpv_trap_device_not_available noerr;
    9 xenpv_trap_coprocessor_segment_overrun noerr;
    10 xenpv_trap_invalid_tss err;
    11 xenpv_trap_segment_not_present err;
    12 xenpv_trap_stack_segment err;
    13 xenpv_trap_general_protection err;
    14 xenpv_trap_page_fault err;
    16 xenpv_trap_coprocessor_error noerr;
    17 xenpv_trap_alignment_check err;
    19 xenpv_trap_simd_error noerr;
}

/// The registers saved by the entry stub, lowest address first.
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// The name of an exception vector.
pub fn vector_name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error",
        1 => "debug",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound range exceeded",
        6 => "invalid opcode",
        7 => "device not available",
        9 => "coprocessor segment overrun",
        10 => "invalid TSS",
        11 => "segment not present",
        12 => "stack-segment fault",
        13 => "general protection fault",
        14 => "page fault",
        16 => "x87 floating-point error",
        17 => "alignment check",
        19 => "SIMD floating-point error",
        _ => "unknown exception",
    }
}

/// Entries in [`table`]: one per handled exception and the zeroed
/// terminator `set_trap_table` stops at.
pub const TABLE_LEN: usize = HANDLERS + 1;

/// The trap table for `set_trap_table`: every stub above, then a zeroed
/// terminator. `arch` only builds it; the runtime installs it through
/// the hypercall layer.
pub fn table() -> [trap_info; TABLE_LEN] {
    let mut table = [trap_info {
        vector: 0,
        flags: 0,
        cs: 0,
        address: 0,
    }; TABLE_LEN];
    for (slot, (vector, handler)) in table.iter_mut().zip(handlers()) {
        // flags: DPL 0 for faults (3 for int3/into/bound so user code may
        // raise them, as Xen's own table does), bit 2 masks events on entry.
        let dpl = if matches!(vector, 3..=5) { 3 } else { 0 };
        *slot = trap_info {
            vector,
            flags: dpl | 4,
            cs: FLAT_KERNEL_CS as u16,
            address: handler as usize as u64,
        };
    }
    table
}

extern "Rust" {
    /// Reports the exception and ends the domain (defined by `runtime`;
    /// reached through a symbol so arch imports nothing above it).
    fn __xenpv_fatal_exception(frame: &TrapFrame) -> !;
}

/// Called by the entry stubs with the saved registers; never returns.
#[no_mangle]
extern "C" fn xenpv_trap(frame: &TrapFrame) -> ! {
    // SAFETY: the runtime defines the symbol with this signature.
    unsafe { __xenpv_fatal_exception(frame) }
}
