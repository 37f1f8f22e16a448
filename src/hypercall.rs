//! Typed hypercalls over the page Xen filled in at boot.
//!
//! Each wrapper names the Xen operation it issues; buffers that Xen
//! reads or writes are passed as slices or exclusive references, so the
//! borrow checker proves them valid for the call. The instruction
//! sequence itself is in `arch::x86_64::hypercall`.

// The typed hypercall layer: each wrapper's unsafe call is justified in place.
#![allow(unsafe_code)]

use crate::abi::{self, mmu_update, trap_info};
use crate::arch::x86_64::hypercall::call5;
use crate::errno::Errno;
use crate::types::EvtchnPort;
use crate::types::ShutdownReason;

extern "C" {
    /// The hypercall page (boot/entry.S), filled in by Xen before entry.
    static xenpv_hypercall_page: u8;
}

/// Issues hypercall `nr` with raw arguments. Private: every hypercall
/// goes through a typed wrapper below.
///
/// # Safety
/// The arguments must satisfy hypercall `nr`'s contract: every pointer
/// valid for the access Xen makes, for the duration of the call.
unsafe fn raw(nr: u32, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    // SAFETY: Xen wrote the hypercall page before jumping to _start (the
    // HYPERCALL_PAGE ELF note); the caller vouches for the arguments.
    unsafe {
        call5(
            core::ptr::addr_of!(xenpv_hypercall_page),
            nr as usize,
            a1,
            a2,
            a3,
            a4,
            a5,
        )
    }
}

/// `SCHEDOP_shutdown`. Returns only if Xen refused.
#[doc(alias = "SCHEDOP_shutdown")]
pub fn sched_shutdown(reason: ShutdownReason) -> Errno {
    let mut arg = abi::sched_shutdown {
        reason: reason as u32,
    };
    // SAFETY: `arg` is a valid sched_shutdown for the call's duration.
    let r = unsafe {
        raw(
            abi::__HYPERVISOR_sched_op,
            abi::SCHEDOP_shutdown as u64,
            &mut arg as *mut _ as u64,
            0,
            0,
            0,
        )
    };
    Errno::check(r).err().unwrap_or(Errno::EINVAL)
}

/// `SCHEDOP_yield`: gives the physical CPU to another vCPU.
#[doc(alias = "SCHEDOP_yield")]
pub fn sched_yield() {
    // SAFETY: SCHEDOP_yield takes no pointer.
    unsafe {
        raw(
            abi::__HYPERVISOR_sched_op,
            abi::SCHEDOP_yield as u64,
            0,
            0,
            0,
            0,
        )
    };
}

/// `SCHEDOP_poll`: sleeps until one of `ports` is pending or system time
/// reaches `timeout_abs_ns` (0: no timeout).
#[doc(alias = "SCHEDOP_poll")]
pub fn sched_poll(ports: &[EvtchnPort], timeout_abs_ns: u64) -> Result<(), Errno> {
    let mut arg = abi::event::sched_poll {
        ports: ports.as_ptr() as *mut u32,
        nr_ports: u32::try_from(ports.len()).map_err(|_| Errno::E2BIG)?,
        timeout: timeout_abs_ns,
    };
    // SAFETY: `ports` is a live slice of u32 ports (EvtchnPort is
    // repr(transparent)) that Xen only reads, and `arg` is a sched_poll.
    let r = unsafe {
        raw(
            abi::__HYPERVISOR_sched_op,
            abi::event::SCHEDOP_poll as u64,
            &mut arg as *mut _ as u64,
            0,
            0,
            0,
        )
    };
    Errno::check(r).map(drop)
}

/// `HYPERVISOR_set_callbacks`: the event and failsafe callback addresses
/// (no syscall callback: xenpv never runs user mode).
///
/// # Safety
/// Both addresses must be entry stubs written for the frames Xen builds
/// for these callbacks.
#[doc(alias = "HYPERVISOR_set_callbacks")]
pub unsafe fn set_callbacks(event: u64, failsafe: u64) -> Result<(), Errno> {
    // SAFETY: forwarded to the caller.
    let r = unsafe { raw(abi::__HYPERVISOR_set_callbacks, event, failsafe, 0, 0, 0) };
    Errno::check(r).map(drop)
}

/// `SCHEDOP_block`: sleeps until an event is pending for this vCPU, and
/// clears `evtchn_upcall_mask` (so callers check for work first).
#[doc(alias = "SCHEDOP_block")]
pub fn sched_block() {
    // SAFETY: SCHEDOP_block takes no pointer.
    unsafe {
        raw(
            abi::__HYPERVISOR_sched_op,
            abi::SCHEDOP_block as u64,
            0,
            0,
            0,
            0,
        )
    };
}

/// `CONSOLEIO_write`: Xen's own console. Refused for a domU on a
/// non-debug hypervisor; the dom0 and early-panic path.
#[doc(alias = "CONSOLEIO_write")]
pub fn console_io_write(bytes: &[u8]) -> Result<(), Errno> {
    // SAFETY: Xen reads `len` bytes from `bytes`, which the slice guarantees.
    let r = unsafe {
        raw(
            abi::__HYPERVISOR_console_io,
            abi::CONSOLEIO_write as u64,
            bytes.len() as u64,
            bytes.as_ptr() as u64,
            0,
            0,
        )
    };
    Errno::check(r).map(drop)
}

/// `set_trap_table`: installs exception handlers; `table` ends with a
/// zero `address` entry.
///
/// # Safety
/// Every address in `table` must be a trap entry stub that follows Xen's
/// PV exception frame layout.
#[doc(alias = "HYPERVISOR_set_trap_table")]
pub unsafe fn set_trap_table(table: &[trap_info]) -> Result<(), Errno> {
    // SAFETY: Xen reads the table up to its terminator, inside the slice
    // (the caller's contract covers the handlers).
    let r = unsafe {
        raw(
            abi::__HYPERVISOR_set_trap_table,
            table.as_ptr() as u64,
            0,
            0,
            0,
            0,
        )
    };
    Errno::check(r).map(drop)
}

/// `mmu_update`: applies page-table writes (`MMU_NORMAL_PT_UPDATE`).
///
/// # Safety
/// The updates must not unmap or remap memory Rust code still uses.
#[doc(alias = "HYPERVISOR_mmu_update")]
pub unsafe fn mmu_update(reqs: &[mmu_update]) -> Result<(), Errno> {
    let mut done: u32 = 0;
    // SAFETY: Xen reads `reqs` and writes `done`; DOMID_SELF (0x7FF0).
    let r = unsafe {
        raw(
            abi::__HYPERVISOR_mmu_update,
            reqs.as_ptr() as u64,
            reqs.len() as u64,
            &mut done as *mut u32 as u64,
            0x7FF0,
            0,
        )
    };
    Errno::check(r).map(drop)
}

/// `update_va_mapping`: sets the PTE that maps `va` (whose L1 table must exist).
///
/// # Safety
/// As for [`mmu_update()`].
#[doc(alias = "HYPERVISOR_update_va_mapping")]
pub unsafe fn update_va_mapping(va: u64, pte: u64, flags: u64) -> Result<(), Errno> {
    // SAFETY: no pointer argument; the caller vouches for the mapping change.
    let r = unsafe { raw(abi::__HYPERVISOR_update_va_mapping, va, pte, flags, 0, 0) };
    Errno::check(r).map(drop)
}

/// `memory_op(XENMEM_decrease_reservation | XENMEM_populate_physmap)`
/// for `DOMID_SELF`, one page per entry of `frames`: returns how many
/// entries Xen processed (it stops at the first failure).
///
/// # Safety
/// Decreasing: no mapping of the listed machine frames may be left in use
/// (Xen frees each frame once its last reference goes). Populating: the
/// listed pfns must have no frame behind them.
#[doc(alias = "XENMEM_populate_physmap")]
#[doc(alias = "XENMEM_decrease_reservation")]
pub unsafe fn memory_reservation(cmd: u64, frames: &mut [u64]) -> Result<usize, Errno> {
    let mut r = abi::memory::xen_memory_reservation {
        extent_start: frames.as_mut_ptr(),
        nr_extents: frames.len() as u64,
        extent_order: 0,
        mem_flags: 0,
        domid: 0x7FF0,
    };
    // SAFETY: `r` and the list it points at are exclusive borrows, valid
    // for Xen's reads and writes for the call; the caller vouches for
    // the frames.
    let n = unsafe {
        raw(
            abi::__HYPERVISOR_memory_op,
            cmd,
            &mut r as *mut _ as u64,
            0,
            0,
            0,
        )
    };
    Errno::check(n).map(|n| n as usize)
}

/// `grant_table_op(cmd, ops, count)`. The hypercall's result only says
/// whether Xen could process the batch; each op's own `status` field
/// says whether it succeeded.
///
/// # Safety
/// `ops` must point at `count` op structs of the layout `cmd` expects,
/// valid for reads and writes for the duration of the call.
#[doc(alias = "HYPERVISOR_grant_table_op")]
pub unsafe fn grant_table_op(cmd: u32, ops: *mut u8, count: u32) -> Result<(), Errno> {
    // SAFETY: forwarded to the caller.
    let r = unsafe {
        raw(
            abi::__HYPERVISOR_grant_table_op,
            cmd as u64,
            ops as u64,
            count as u64,
            0,
            0,
        )
    };
    Errno::check(r).map(drop)
}

/// `event_channel_op(cmd, arg)`.
///
/// # Safety
/// `arg` must point at the struct `cmd` expects, valid for reads and
/// writes for the duration of the call.
#[doc(alias = "HYPERVISOR_event_channel_op")]
pub unsafe fn event_channel_op(cmd: u32, arg: *mut u8) -> Result<(), Errno> {
    // SAFETY: forwarded to the caller.
    let r = unsafe {
        raw(
            abi::__HYPERVISOR_event_channel_op,
            cmd as u64,
            arg as u64,
            0,
            0,
            0,
        )
    };
    Errno::check(r).map(drop)
}

/// `EVTCHNOP_send`: raises the event on the far end of `port`.
#[doc(alias = "EVTCHNOP_send")]
pub fn evtchn_send(port: EvtchnPort) -> Result<(), Errno> {
    let mut arg: u32 = port.0;
    // SAFETY: evtchn_send is a single u32 port, valid for the call.
    unsafe { event_channel_op(xen_sys::EVTCHNOP_send, &mut arg as *mut u32 as *mut u8) }
}

/// `VCPUOP_stop_periodic_timer` for vCPU 0: stops the periodic tick Xen
/// starts PV vCPUs with.
#[doc(alias = "VCPUOP_stop_periodic_timer")]
pub fn vcpu_stop_periodic_timer() -> Result<(), Errno> {
    // SAFETY: VCPUOP_stop_periodic_timer takes no argument; vCPU 0 is ours.
    let r = unsafe {
        raw(
            abi::__HYPERVISOR_vcpu_op,
            abi::event::VCPUOP_stop_periodic_timer as u64,
            0,
            0,
            0,
            0,
        )
    };
    Errno::check(r).map(drop)
}

/// `VCPUOP_set_singleshot_timer` for vCPU 0: one timer event at system
/// time `timeout_abs_ns` (at once if that is past).
#[doc(alias = "VCPUOP_set_singleshot_timer")]
pub fn vcpu_set_singleshot_timer(timeout_abs_ns: u64) -> Result<(), Errno> {
    let mut arg = abi::event::vcpu_set_singleshot_timer {
        timeout_abs_ns,
        flags: 0,
    };
    // SAFETY: `arg` is a vcpu_set_singleshot_timer valid for the call;
    // vCPU 0 is ours.
    let r = unsafe {
        raw(
            abi::__HYPERVISOR_vcpu_op,
            abi::event::VCPUOP_set_singleshot_timer as u64,
            0,
            &mut arg as *mut _ as u64,
            0,
            0,
        )
    };
    Errno::check(r).map(drop)
}

/// `HYPERVISOR_set_timer_op`: the older one-shot timer interface.
#[doc(alias = "HYPERVISOR_set_timer_op")]
pub fn set_timer_op(timeout_abs_ns: u64) -> Result<(), Errno> {
    // SAFETY: set_timer_op takes the deadline by value.
    let r = unsafe {
        raw(
            abi::event::__HYPERVISOR_set_timer_op,
            timeout_abs_ns,
            0,
            0,
            0,
            0,
        )
    };
    Errno::check(r).map(drop)
}

/// `XENVER_version`: the hypervisor's (major, minor) version.
pub fn xen_version() -> (u16, u16) {
    // SAFETY: XENVER_version takes no pointer.
    let v = unsafe {
        raw(
            abi::__HYPERVISOR_xen_version,
            abi::XENVER_VERSION,
            0,
            0,
            0,
            0,
        )
    } as u32;
    ((v >> 16) as u16, v as u16)
}
