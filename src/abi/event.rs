//! Event channels, the scheduler and vCPU timer ABI: public/event_channel.h,
//! public/sched.h, public/vcpu.h, public/callback.h and the event and time
//! fields of public/xen.h's `shared_info`/`vcpu_info`.
//!
//! The structs `xen-sys` generates are re-exported; what it lacks is
//! defined here with the C header's layout and checked at compile time.

#![allow(non_upper_case_globals)]

pub use xen_sys::{
    __HYPERVISOR_iret, __HYPERVISOR_set_timer_op, evtchn_alloc_unbound, evtchn_bind_interdomain,
    evtchn_bind_virq, evtchn_close, evtchn_status, sched_poll, EVTCHNOP_alloc_unbound,
    EVTCHNOP_bind_interdomain, EVTCHNOP_bind_virq, EVTCHNOP_close, EVTCHNOP_send, EVTCHNOP_status,
    EVTCHNOP_unmask, EVTCHNSTAT_closed, EVTCHNSTAT_interdomain, EVTCHNSTAT_ipi, EVTCHNSTAT_pirq,
    EVTCHNSTAT_unbound, EVTCHNSTAT_virq, SCHEDOP_poll, VIRQ_TIMER,
};

/// Ports of the 2-level ABI on a 64-bit guest: 64 words of 64 bits
/// (`EVTCHN_2L_NR_CHANNELS`, public/event_channel.h).
pub const EVTCHN_2L_NR_CHANNELS: u32 = 64 * 64;

/// Bits in one `xen_ulong_t` word of the pending/mask bitmaps.
pub const BITS_PER_WORD: u32 = 64;

/// `VCPUOP_stop_periodic_timer` (public/vcpu.h): arg NULL.
pub const VCPUOP_stop_periodic_timer: u32 = 7;
/// `VCPUOP_set_singleshot_timer` (public/vcpu.h): arg `vcpu_set_singleshot_timer`.
pub const VCPUOP_set_singleshot_timer: u32 = 8;
/// `VCPUOP_stop_singleshot_timer` (public/vcpu.h): arg NULL.
pub const VCPUOP_stop_singleshot_timer: u32 = 9;

/// `struct vcpu_set_singleshot_timer` (public/vcpu.h). `\[GST\]` both fields.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vcpu_set_singleshot_timer {
    /// Absolute Xen system time of the deadline, in nanoseconds.
    pub timeout_abs_ns: u64,
    /// `VCPU_SSHOTTMR_*`.
    pub flags: u32,
}

/// `HYPERVISOR_iret`'s `flags` word: returning from a `syscall` entry
/// (public/arch-x86/xen-x86_64.h). xenpv never sets it.
pub const VGCF_in_syscall: u64 = 1 << 8;

/// Offsets inside `shared_info` and `vcpu_info` (public/xen.h, x86_64).
pub mod offsets {
    /// Size of one `vcpu_info`.
    pub const VCPU_INFO_SIZE: usize = 64;
    /// `vcpu_info.evtchn_upcall_pending` (u8) `\[XEN\]` sets, `\[GST\]` clears.
    pub const UPCALL_PENDING: usize = 0;
    /// `vcpu_info.evtchn_upcall_mask` (u8) `\[GST\]`.
    pub const UPCALL_MASK: usize = 1;
    /// `vcpu_info.evtchn_pending_sel` (xen_ulong_t) `\[XEN\]` sets, `\[GST\]` clears.
    pub const PENDING_SEL: usize = 8;
    /// `vcpu_info.time` (`vcpu_time_info`) `\[XEN\]`.
    pub const TIME: usize = 32;
    /// `vcpu_time_info.version`.
    pub const TIME_VERSION: usize = 0;
    /// `vcpu_time_info.tsc_timestamp`.
    pub const TIME_TSC_TIMESTAMP: usize = 8;
    /// `vcpu_time_info.system_time`.
    pub const TIME_SYSTEM_TIME: usize = 16;
    /// `vcpu_time_info.tsc_to_system_mul`.
    pub const TIME_TSC_MUL: usize = 24;
    /// `vcpu_time_info.tsc_shift` (i8).
    pub const TIME_TSC_SHIFT: usize = 28;
    /// `shared_info.evtchn_pending[64]` `\[XEN\]` sets, `\[GST\]` clears.
    pub const EVTCHN_PENDING: usize = 2048;
    /// `shared_info.evtchn_mask[64]` `\[GST\]`.
    pub const EVTCHN_MASK: usize = 2560;
    /// `shared_info.wc_version` `\[XEN\]`.
    pub const WC_VERSION: usize = 3072;
    /// `shared_info.wc_sec` `\[XEN\]`.
    pub const WC_SEC: usize = 3076;
    /// `shared_info.wc_nsec` `\[XEN\]`.
    pub const WC_NSEC: usize = 3080;
    /// `shared_info.wc_sec_hi` `\[XEN\]`.
    pub const WC_SEC_HI: usize = 3084;
}

const _: () = {
    use core::mem::{offset_of, size_of};
    use xen_sys::{shared_info, vcpu_info, vcpu_time_info};
    assert!(size_of::<vcpu_set_singleshot_timer>() == 16);
    assert!(size_of::<evtchn_alloc_unbound>() == 8);
    assert!(size_of::<evtchn_bind_interdomain>() == 12);
    assert!(size_of::<evtchn_bind_virq>() == 12);
    assert!(size_of::<evtchn_close>() == 4);
    assert!(size_of::<evtchn_status>() == 24);
    assert!(offset_of!(evtchn_status, status) == 8);
    assert!(offset_of!(evtchn_status, u) == 16);
    assert!(size_of::<sched_poll>() == 24);
    assert!(offset_of!(sched_poll, timeout) == 16);
    assert!(size_of::<vcpu_info>() == offsets::VCPU_INFO_SIZE);
    assert!(offset_of!(vcpu_info, evtchn_upcall_mask) == offsets::UPCALL_MASK);
    assert!(offset_of!(vcpu_info, evtchn_pending_sel) == offsets::PENDING_SEL);
    assert!(offset_of!(vcpu_info, time) == offsets::TIME);
    assert!(offset_of!(vcpu_time_info, tsc_timestamp) == offsets::TIME_TSC_TIMESTAMP);
    assert!(offset_of!(vcpu_time_info, system_time) == offsets::TIME_SYSTEM_TIME);
    assert!(offset_of!(vcpu_time_info, tsc_to_system_mul) == offsets::TIME_TSC_MUL);
    assert!(offset_of!(vcpu_time_info, tsc_shift) == offsets::TIME_TSC_SHIFT);
    assert!(offset_of!(shared_info, evtchn_pending) == offsets::EVTCHN_PENDING);
    assert!(offset_of!(shared_info, evtchn_mask) == offsets::EVTCHN_MASK);
    assert!(offset_of!(shared_info, wc_version) == offsets::WC_VERSION);
    assert!(offset_of!(shared_info, wc_sec) == offsets::WC_SEC);
    assert!(offset_of!(shared_info, wc_nsec) == offsets::WC_NSEC);
    assert!(offset_of!(shared_info, wc_sec_hi) == offsets::WC_SEC_HI);
};
