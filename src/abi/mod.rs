//! The raw Xen ABI: `#[repr(C)]` structs and constants, no logic.
//!
//! Where `xen-sys` already carries a definition (generated from Xen's
//! public headers) it is re-exported; what it lacks is defined here,
//! each with compile-time size/offset checks against the C header.
//! Field tags follow the headers: `\[XEN\]` written by Xen, `\[GST\]` by the
//! guest.

#![allow(non_camel_case_types)]

pub mod blkif;
pub mod console;
pub mod event;
pub mod grant_table;
pub mod memory;
pub mod netif;
pub mod ring;
pub mod vchan;
pub mod xenstore;

pub use xen_sys::{
    __HYPERVISOR_console_io, __HYPERVISOR_event_channel_op, __HYPERVISOR_grant_table_op,
    __HYPERVISOR_memory_op, __HYPERVISOR_mmu_update, __HYPERVISOR_mmuext_op, __HYPERVISOR_sched_op,
    __HYPERVISOR_set_callbacks, __HYPERVISOR_set_trap_table, __HYPERVISOR_update_va_mapping,
    __HYPERVISOR_vcpu_op, __HYPERVISOR_xen_version, CONSOLEIO_write, SCHEDOP_block,
    SCHEDOP_shutdown, SCHEDOP_yield, SHUTDOWN_crash, SHUTDOWN_poweroff, SHUTDOWN_reboot,
    __MACH2PHYS_VIRT_END, __MACH2PHYS_VIRT_START, FLAT_KERNEL_CS, MMUEXT_PIN_L1_TABLE,
    MMU_MACHPHYS_UPDATE, MMU_NORMAL_PT_UPDATE, SIF_INITDOMAIN, SIF_PRIVILEGED,
};
pub use xen_sys::{
    domid_t, evtchn_port_t, mmu_update, mmuext_op, sched_shutdown, shared_info, start_info,
    trap_info, vcpu_info, vcpu_time_info, xen_pfn_t,
};

/// `UVMF_*` flags of `update_va_mapping` (public/xen.h).
pub const UVMF_NONE: u64 = 0;
/// Flush the whole TLB after the update.
pub const UVMF_TLB_FLUSH: u64 = 1;
/// Flush only the updated linear address.
pub const UVMF_INVLPG: u64 = 2;

/// Start of the read-only machine-to-physical table Xen maps into every
/// 64-bit PV guest (`MACH2PHYS_VIRT_START`, public/arch-x86/xen-x86_64.h).
pub const MACH2PHYS_VIRT_START: u64 = __MACH2PHYS_VIRT_START as u64;
/// End of the machine-to-physical table window.
pub const MACH2PHYS_VIRT_END: u64 = __MACH2PHYS_VIRT_END as u64;

/// `XENVER_version` (public/version.h).
pub const XENVER_VERSION: u64 = 0;

/// Size of a page, the unit of every frame number.
pub const PAGE_SIZE: usize = 4096;

const _: () = {
    use core::mem::{offset_of, size_of};
    // public/xen.h, x86_64: the offsets xenpv reads.
    assert!(size_of::<start_info>() == 1168);
    assert!(offset_of!(start_info, nr_pages) == 32);
    assert!(offset_of!(start_info, shared_info) == 40);
    assert!(offset_of!(start_info, flags) == 48);
    assert!(offset_of!(start_info, store_mfn) == 56);
    assert!(offset_of!(start_info, store_evtchn) == 64);
    assert!(offset_of!(start_info, console) == 72);
    assert!(offset_of!(start_info, pt_base) == 88);
    assert!(offset_of!(start_info, nr_pt_frames) == 96);
    assert!(offset_of!(start_info, mfn_list) == 104);
    assert!(offset_of!(start_info, mod_start) == 112);
    assert!(offset_of!(start_info, mod_len) == 120);
    assert!(offset_of!(start_info, cmd_line) == 128);
    assert!(offset_of!(start_info, first_p2m_pfn) == 1152);
    assert!(size_of::<trap_info>() == 16);
    assert!(offset_of!(trap_info, address) == 8);
    assert!(size_of::<mmu_update>() == 16);
    assert!(size_of::<mmuext_op>() == 24);
    assert!(size_of::<vcpu_time_info>() == 32);
    assert!(size_of::<vcpu_info>() == 64);
    assert!(offset_of!(vcpu_info, evtchn_pending_sel) == 8);
    assert!(offset_of!(vcpu_info, arch) == 16);
    assert!(offset_of!(vcpu_info, time) == 32);
    assert!(size_of::<shared_info>() == 3136);
    assert!(offset_of!(shared_info, evtchn_pending) == 2048);
    assert!(offset_of!(shared_info, evtchn_mask) == 2560);
    assert!(offset_of!(shared_info, wc_version) == 3072);
};
