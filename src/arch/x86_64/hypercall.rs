//! The hypercall instruction sequence of Xen's x86_64 PV ABI.
//!
//! A hypercall is a `call` into the 32-byte stub that Xen wrote at
//! `page + nr * 32` (public/arch-x86/xen-x86_64.h). Arguments travel in
//! rdi, rsi, rdx, r10, r8, the result comes back in rax, and Xen may
//! clobber every argument register (a debug hypervisor deliberately
//! does) as well as rcx and r11 (the stub's `syscall`).
//!
//! Two defects of `xen-sys` 0.0.0-pre2 are avoided on purpose: its
//! `hypercall_5` passes the fifth argument in r9 (Xen reads r8), and it
//! declares `options(nostack)` around a `call`, which pushes a return
//! address below the stack pointer the compiler believes untouched.
//! The stubs here take the stub page as a parameter so the host tests
//! can run them against a fake page that records the registers.

use core::arch::asm;

/// Size of one hypercall stub in the hypercall page.
pub const STUB_SIZE: usize = 32;

/// Issues hypercall `nr` with five arguments.
///
/// # Safety
/// `page` must point at a hypercall page (Xen's, or a test double whose
/// stubs follow the same ABI), and the arguments must satisfy the
/// contract of hypercall `nr`: pointers valid for the access Xen makes.
#[inline]
pub unsafe fn call5(
    page: *const u8,
    nr: usize,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
) -> i64 {
    let ret: i64;
    let stub = page.wrapping_add(nr * STUB_SIZE);
    // SAFETY: the caller guarantees `stub` is a hypercall stub and the
    // arguments are valid for it. Every register Xen may write is
    // declared as clobbered; `call` uses the stack, so no `nostack`.
    unsafe {
        asm!(
            "call {stub}",
            stub = in(reg) stub,
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            inlateout("r10") a4 => _,
            inlateout("r8") a5 => _,
            lateout("rax") ret,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

/// Issues hypercall `nr` with up to three arguments (the rest are zero).
///
/// # Safety
/// As for [`call5`].
#[inline]
pub unsafe fn call3(page: *const u8, nr: usize, a1: u64, a2: u64, a3: u64) -> i64 {
    // SAFETY: forwarded contract; the unused registers carry zero.
    unsafe { call5(page, nr, a1, a2, a3, 0, 0) }
}

// Miri cannot run inline or global assembly.
#[cfg(all(test, not(miri)))]
mod tests {
    //! The stubs run against a fake hypercall page: each of its 32-byte
    //! stubs stores rdi, rsi, rdx, r10, r8 into `FAKE_SEEN`, returns its
    //! own stub number plus 1000 in rax (so the `nr * 32` offset is checked) and scribbles over every argument
    //! register, rcx and r11, as a debug Xen does.
    use super::*;
    use core::sync::atomic::{AtomicU64, Ordering};

    #[no_mangle]
    static FAKE_SEEN: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

    /// The fake page records into one global: tests take turns.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|e| e.into_inner())
    }

    core::arch::global_asm!(
        ".pushsection .text.fake_hypercall_page, \"ax\", @progbits",
        ".balign 4096",
        ".globl fake_hypercall_page",
        "fake_hypercall_page:",
        ".set n, 0",
        ".rept 16",
        ".balign 32",
        "mov %rdi, FAKE_SEEN+0(%rip)",
        "mov %rsi, FAKE_SEEN+8(%rip)",
        "mov $(1000 + n), %eax",
        "jmp 2f",
        ".balign 32",
        ".set n, n+1",
        ".endr",
        "2:",
        "mov %rdx, FAKE_SEEN+16(%rip)",
        "mov %r10, FAKE_SEEN+24(%rip)",
        "mov %r8,  FAKE_SEEN+32(%rip)",
        "mov $-1, %rdi",
        "mov $-1, %rsi",
        "mov $-1, %rdx",
        "mov $-1, %r10",
        "mov $-1, %r8",
        "mov $-1, %rcx",
        "mov $-1, %r11",
        "ret",
        ".popsection",
        options(att_syntax)
    );

    extern "C" {
        static fake_hypercall_page: u8;
    }

    #[test]
    fn five_arguments_reach_the_registers_xen_reads() {
        let _turn = serial();
        let page = core::ptr::addr_of!(fake_hypercall_page);
        let live: u64 = 0x5555;
        // SAFETY: the fake stubs touch no memory but FAKE_SEEN.
        let ret = unsafe { call5(page, 3, 11, 22, 33, 44, 55) };
        assert_eq!(ret, 1003);
        let seen: Vec<u64> = FAKE_SEEN
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect();
        assert_eq!(seen, [11, 22, 33, 44, 55], "rdi, rsi, rdx, r10, r8");
        // A value kept live across the call survives the stub's clobbers.
        assert_eq!(core::hint::black_box(live), 0x5555);
    }

    #[test]
    fn call3_zeroes_the_unused_arguments() {
        let _turn = serial();
        let page = core::ptr::addr_of!(fake_hypercall_page);
        // SAFETY: the fake stubs touch no memory but FAKE_SEEN.
        let ret = unsafe { call3(page, 7, 1, 2, 3) };
        assert_eq!(ret, 1007);
        let seen: Vec<u64> = FAKE_SEEN
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect();
        assert_eq!(seen, [1, 2, 3, 0, 0]);
    }

    #[test]
    fn registers_survive_a_clobbering_stub_in_a_loop() {
        let _turn = serial();
        // Many live values across many calls: if a clobber were missing
        // from the asm! block the optimiser would keep one in a scribbled
        // register and this sum would be wrong.
        let page = core::ptr::addr_of!(fake_hypercall_page);
        let mut acc = [0u64; 6];
        for i in 0..100u64 {
            // SAFETY: the fake stubs touch no memory but FAKE_SEEN.
            let r = unsafe { call5(page, (i % 16) as usize, i, i + 1, i + 2, i + 3, i + 4) };
            acc[0] += i;
            acc[1] += i * 2;
            acc[2] += r as u64;
            acc[3] ^= i << 3;
            acc[4] += 7;
            acc[5] += FAKE_SEEN[4].load(Ordering::Relaxed);
        }
        assert_eq!(acc[0], 4950);
        assert_eq!(acc[1], 9900);
        assert_eq!(acc[2], (0..100u64).map(|i| 1000 + i % 16).sum::<u64>());
        assert_eq!(acc[4], 700);
        assert_eq!(acc[5], (0..100u64).map(|i| i + 4).sum::<u64>());
    }
}
