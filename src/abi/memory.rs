//! `public/memory.h`: the domain's memory reservation (`XENMEM_*`).

#![allow(non_upper_case_globals)]

use super::{domid_t, xen_pfn_t};

/// `XENMEM_increase_reservation`: "Increase or decrease the specified
/// domain's memory reservation." Not used: xenpv refills a pfn with
/// [`XENMEM_populate_physmap`].
pub const XENMEM_increase_reservation: u64 = 0;
/// `XENMEM_decrease_reservation`: gives frames back to Xen; for a PV
/// guest `extent_start` lists machine frames ("GMFN bases of extents to
/// free").
pub const XENMEM_decrease_reservation: u64 = 1;
/// `XENMEM_populate_physmap`: new frames for the listed pfns; for a PV
/// guest Xen enters them in the M2P and "writes back the MFN" in place
/// of each pfn.
pub const XENMEM_populate_physmap: u64 = 6;

/// `struct xen_memory_reservation`.
#[repr(C)]
#[derive(Debug)]
pub struct xen_memory_reservation {
    /// IN/OUT: `XEN_GUEST_HANDLE(xen_pfn_t) extent_start`, the list.
    pub extent_start: *mut xen_pfn_t,
    /// IN: entries in the list.
    pub nr_extents: u64,
    /// IN: each extent is `2^extent_order` pages (xenpv: 0).
    pub extent_order: u32,
    /// IN: `XENMEMF_*` (xenpv: 0).
    pub mem_flags: u32,
    /// IN: the domain (`DOMID_SELF`).
    pub domid: domid_t,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<xen_memory_reservation>() == 32);
    assert!(offset_of!(xen_memory_reservation, nr_extents) == 8);
    assert!(offset_of!(xen_memory_reservation, extent_order) == 16);
    assert!(offset_of!(xen_memory_reservation, mem_flags) == 20);
    assert!(offset_of!(xen_memory_reservation, domid) == 24);
};
