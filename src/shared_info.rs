//! The `shared_info` page (public/xen.h): per-vCPU event state, time and
//! the fault address of the last page fault.
//!
//! Xen writes it at any time, so it is reached only through [`SharedMem`].
//! It is mapped over a page of our own `.bss` at boot.

// Xen backend: the shared_info page Xen maps for us.
#![allow(unsafe_code)]

use crate::shared_mem::SharedMem;
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;

/// Offset of `vcpu_info[0].arch.cr2` (x86_64 `arch_vcpu_info`).
pub const VCPU0_CR2: usize = 16;

#[repr(C, align(4096))]
struct PageSlot(UnsafeCell<[u8; 4096]>);

// SAFETY: the slot is only ever accessed through SharedMem (volatile/atomic).
unsafe impl Sync for PageSlot {}

static SLOT: PageSlot = PageSlot(UnsafeCell::new([0; 4096]));

/// The shared_info page, once mapped. Crate-private: Xen's event masks,
/// pending bits and time records are the runtime's, and a writable view
/// would let safe code corrupt them.
pub(crate) fn page() -> Option<SharedMem<'static>> {
    MAPPED.load(Ordering::Acquire).then(|| {
        // SAFETY: SLOT is a page-aligned static, mapped to shared_info for
        // the rest of the domain's life once MAPPED is set.
        unsafe { SharedMem::new(NonNull::new_unchecked(SLOT.0.get().cast()), 4096) }
    })
}

static MAPPED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Maps Xen's shared_info frame over `SLOT`.
#[cfg(target_os = "none")]
pub(crate) fn init(maddr: u64) {
    // SAFETY: SLOT is never accessed as ordinary memory (only through
    // SharedMem's volatile and atomic accesses); replacing its mapping
    // only changes what those accesses see.
    if unsafe { crate::mm::paging::remap_page(SLOT.0.get() as u64, maddr) }.is_ok() {
        MAPPED.store(true, Ordering::Release);
    }
}

/// The faulting address of the last page fault (Xen stores CR2 in
/// `vcpu_info[0].arch.cr2` for PV guests).
pub fn fault_address() -> u64 {
    page()
        .and_then(|p| {
            let mut b = [0u8; 8];
            p.read(VCPU0_CR2, &mut b).ok()?;
            Some(u64::from_le_bytes(b))
        })
        .unwrap_or(0)
}
