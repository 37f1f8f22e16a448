//! PV page tables: walking them, adding tables, mapping and unmapping.
//!
//! A PV guest's page tables are read-only to it; every write goes through
//! Xen (`mmu_update`, `update_va_mapping`), which validates it. Tables are
//! found through the direct map: pfn N is mapped at `VIRT_BASE + N * 4 KiB`
//! and a table entry's mfn becomes a pfn through Xen's M2P table.

// A Xen backend: raw page-table reads and mmu_update hypercalls.
#![allow(unsafe_code)]

use crate::abi::{mmu_update, MACH2PHYS_VIRT_START, MMU_NORMAL_PT_UPDATE, PAGE_SIZE, UVMF_INVLPG};
use crate::errno::Errno;
use crate::hypercall;
use crate::types::{Mfn, Pfn};

pub use super::layout::VIRT_BASE;
use super::layout::{check_va, index, DIRECT_MAP_PAGES};

/// PTE bits (Intel SDM vol. 3, 4.5).
pub mod pte {
    pub const PRESENT: u64 = 1 << 0;
    pub const WRITABLE: u64 = 1 << 1;
    pub const USER: u64 = 1 << 2;
    pub const ACCESSED: u64 = 1 << 5;
    pub const DIRTY: u64 = 1 << 6;
    pub const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;
    /// Intermediate tables: a 64-bit PV kernel runs in ring 3, so every
    /// level carries USER (as Mini-OS's and Linux's PV tables do).
    pub const TABLE: u64 = PRESENT | WRITABLE | USER | ACCESSED | DIRTY;
}

/// A page-table operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// No frame for a new page table.
    OutOfFrames,
    /// Xen refused the update.
    Hypercall(Errno),
    /// The address is not canonical or lies in Xen's reserved hole.
    BadAddress(u64),
}

/// Direct-map address of a pfn memory management manages: all are below
/// [`DIRECT_MAP_PAGES`] (`init` manages none past it). The public,
/// checked form is [`crate::mm::pfn_to_virt`].
pub(crate) fn direct_va(pfn: Pfn) -> u64 {
    debug_assert!(
        pfn.0 < DIRECT_MAP_PAGES,
        "pfn {:#x} past the direct map",
        pfn.0
    );
    VIRT_BASE.wrapping_add(pfn.0.wrapping_mul(PAGE_SIZE as u64))
}

/// pfn of a direct-map address (`va >= VIRT_BASE`); the checked form is
/// [`crate::mm::virt_to_pfn`].
pub(crate) fn direct_pfn(va: u64) -> Pfn {
    debug_assert!(va >= VIRT_BASE, "{va:#x} is below the direct map");
    Pfn(va.wrapping_sub(VIRT_BASE) / PAGE_SIZE as u64)
}

/// Looks `mfn` up in Xen's read-only machine-to-phys table.
///
/// # Safety
/// `mfn` must be a frame of this domain (entries of other frames are
/// meaningless, and mfns past the table's end are not mapped).
pub unsafe fn mfn_to_pfn(mfn: Mfn) -> Pfn {
    let p = (MACH2PHYS_VIRT_START + mfn.0 * 8) as *const u64;
    // SAFETY: Xen maps the M2P read-only in every PV guest; the entry of
    // one of our own frames is inside it (caller's contract).
    Pfn(unsafe { p.read_volatile() })
}

/// The page tables of the running vCPU.
#[derive(Debug)]
pub struct PageTables {
    l4: u64,
    p2m: &'static mut [u64],
}

/// A p2m entry with no frame behind its pfn (`INVALID_P2M_ENTRY`).
const INVALID_P2M: u64 = !0;

impl PageTables {
    /// Wraps the tables Xen built.
    ///
    /// # Safety
    /// `l4` must be the virtual address of the active L4 table
    /// (`start_info.pt_base`) and `p2m` the guest's pfn→mfn list; every
    /// table reachable from `l4` must be mapped in the direct map.
    pub unsafe fn new(l4: u64, p2m: &'static mut [u64]) -> Self {
        PageTables { l4, p2m }
    }

    /// The machine frame of pfn `pfn` (`None` past the end, or for a pfn
    /// whose frame went back to Xen).
    pub fn pfn_to_mfn(&self, pfn: Pfn) -> Option<Mfn> {
        self.p2m
            .get(pfn.0 as usize)
            .filter(|&&m| m != INVALID_P2M)
            .map(|&m| Mfn(m))
    }

    /// The p2m list (pfn-to-mfn, `!0` for a pfn with no frame).
    pub fn p2m(&self) -> &[u64] {
        self.p2m
    }

    /// Records in the p2m list that pfn `pfn` is now frame `mfn`, or
    /// none. Xen never reads the list; what reads it is this module and
    /// the grant code's frame checks, which must see the truth.
    pub fn set_p2m(&mut self, pfn: Pfn, mfn: Option<Mfn>) -> Result<(), MapError> {
        let e = self
            .p2m
            .get_mut(pfn.0 as usize)
            .ok_or(MapError::BadAddress(pfn.0))?;
        *e = mfn.map_or(INVALID_P2M, |m| m.0);
        Ok(())
    }

    fn read_entry(table_va: u64, idx: u64) -> u64 {
        // SAFETY: table_va is a page table mapped (read-only) in the
        // direct map (constructor contract); idx < 512.
        unsafe { ((table_va + idx * 8) as *const u64).read_volatile() }
    }

    fn table_of(&self, entry: u64) -> (u64, Mfn) {
        let mfn = Mfn((entry & pte::ADDR_MASK) >> 12);
        // SAFETY: entries reachable from our L4 name our own tables.
        let pfn = unsafe { mfn_to_pfn(mfn) };
        (direct_va(pfn), mfn)
    }

    /// The L1 entry that maps `va`, if every level is present. Never
    /// walks Xen's L4 slots or a non-canonical address (see
    /// `layout::walk`), and follows only entries naming tables of ours
    /// (the M2P's answer checked against the p2m).
    pub fn lookup(&self, va: u64) -> Option<u64> {
        super::layout::walk(self.l4, va, Self::read_entry, |e| {
            let mfn = Mfn((e & pte::ADDR_MASK) >> 12);
            // The walk stays out of Xen's L4 slots, and Xen accepts only our
            // own frames as tables in the guest's part of the tree (foreign
            // frames appear only in L1 entries, which are not followed).
            // SAFETY: so the frame's M2P entry is mapped.
            let pfn = unsafe { mfn_to_pfn(mfn) };
            if self.pfn_to_mfn(pfn) != Some(mfn) {
                return None;
            }
            super::layout::pfn_to_virt(pfn)
        })
    }

    /// Makes sure the L3, L2 and L1 tables covering `va` exist, taking new
    /// table frames from `alloc` (frames that must be mapped writable in
    /// the direct map), and returns the L1 table's mfn.
    pub fn ensure_l1(
        &self,
        va: u64,
        alloc: &mut dyn FnMut() -> Option<Pfn>,
    ) -> Result<Mfn, MapError> {
        check_va(va).map_err(MapError::BadAddress)?;
        let mut table = self.l4;
        let mut table_mfn = self
            .pfn_to_mfn(direct_pfn(self.l4))
            .ok_or(MapError::BadAddress(self.l4))?;
        for level in (2..=4).rev() {
            let idx = index(va, level);
            let mut e = Self::read_entry(table, idx);
            if e & pte::PRESENT == 0 {
                let pfn = alloc().ok_or(MapError::OutOfFrames)?;
                let mfn = self.pfn_to_mfn(pfn).ok_or(MapError::OutOfFrames)?;
                let new_va = direct_va(pfn);
                // SAFETY: the frame was just allocated for us and is mapped
                // writable in the direct map (alloc's contract).
                unsafe { core::ptr::write_bytes(new_va as *mut u8, 0, PAGE_SIZE) };
                // Xen accepts a frame as a page table only if no writable
                // mapping of it exists: drop our direct-map write access.
                // SAFETY: nothing else uses the new frame yet.
                unsafe {
                    hypercall::update_va_mapping(
                        new_va,
                        (mfn.0 << 12) | pte::PRESENT | pte::USER | pte::ACCESSED,
                        UVMF_INVLPG,
                    )
                }
                .map_err(MapError::Hypercall)?;
                e = (mfn.0 << 12) | pte::TABLE;
                let req = mmu_update {
                    ptr: (table_mfn.0 << 12) + idx * 8 + MMU_NORMAL_PT_UPDATE as u64,
                    val: e,
                };
                // SAFETY: links an empty table into an empty slot: no
                // existing mapping changes.
                unsafe { hypercall::mmu_update(&[req]) }.map_err(MapError::Hypercall)?;
            }
            let (va_next, mfn_next) = self.table_of(e);
            table = va_next;
            table_mfn = mfn_next;
        }
        Ok(table_mfn)
    }

    /// Maps `count` consecutive pages at `va` to `mfns`, writable or not,
    /// with one `mmu_update` per L1 table touched.
    ///
    /// # Safety
    /// The pages at `va` must not be in use by Rust code (they are
    /// replaced), and the frames must be safe to expose at `va`.
    pub unsafe fn map(
        &self,
        va: u64,
        mfns: &mut dyn Iterator<Item = Mfn>,
        writable: bool,
        alloc: &mut dyn FnMut() -> Option<Pfn>,
    ) -> Result<u64, MapError> {
        let flags = pte::PRESENT
            | pte::USER
            | pte::ACCESSED
            | pte::DIRTY
            | if writable { pte::WRITABLE } else { 0 };
        let mut batch = [mmu_update { ptr: 0, val: 0 }; 64];
        let mut n = 0;
        let mut page = va;
        let mut l1 = None;
        let mut mapped = 0;
        for mfn in mfns {
            if l1.is_none() || index(page, 1) == 0 {
                if n > 0 {
                    // SAFETY: forwarded to the caller.
                    unsafe { hypercall::mmu_update(&batch[..n]) }.map_err(MapError::Hypercall)?;
                    n = 0;
                }
                l1 = Some(self.ensure_l1(page, alloc)?);
            }
            let l1_mfn = l1.unwrap_or_default();
            batch[n] = mmu_update {
                ptr: (l1_mfn.0 << 12) + index(page, 1) * 8,
                val: (mfn.0 << 12) | flags,
            };
            n += 1;
            if n == batch.len() {
                // SAFETY: forwarded to the caller.
                unsafe { hypercall::mmu_update(&batch[..n]) }.map_err(MapError::Hypercall)?;
                n = 0;
            }
            page += PAGE_SIZE as u64;
            mapped += 1;
        }
        if n > 0 {
            // SAFETY: forwarded to the caller.
            unsafe { hypercall::mmu_update(&batch[..n]) }.map_err(MapError::Hypercall)?;
        }
        Ok(mapped)
    }

    /// Removes the mapping of the page at `va`.
    ///
    /// # Safety
    /// No Rust reference into the page may outlive this call.
    pub unsafe fn unmap(&self, va: u64) -> Result<(), MapError> {
        // SAFETY: forwarded to the caller.
        unsafe { hypercall::update_va_mapping(va, 0, UVMF_INVLPG) }.map_err(MapError::Hypercall)
    }
}

/// Points the page at `va`, whose page tables exist, at the machine
/// frame at `maddr`, writable (`update_va_mapping` of its one PTE).
///
/// # Safety
/// No Rust reference into the page at `va` may exist or be formed later:
/// what it reads changes under it.
pub(crate) unsafe fn remap_page(va: u64, maddr: u64) -> Result<(), MapError> {
    check_va(va).map_err(MapError::BadAddress)?;
    let entry = (maddr & pte::ADDR_MASK)
        | pte::PRESENT
        | pte::WRITABLE
        | pte::USER
        | pte::ACCESSED
        | pte::DIRTY;
    // SAFETY: forwarded to the caller.
    unsafe { hypercall::update_va_mapping(va, entry, UVMF_INVLPG) }.map_err(MapError::Hypercall)
}
