//! Typed hypercalls over the page Xen filled in at boot.
//!
//! Each wrapper names the Xen operation it issues; buffers that Xen
//! reads or writes are passed as slices or exclusive references, so the
//! borrow checker proves them valid for the call. The instruction
//! sequence itself is in `arch::x86_64::hypercall`.

use crate::abi::{self, mmu_update, mmuext_op, trap_info};
use crate::arch::x86_64::hypercall::call5;
use crate::error::Errno;
use crate::runtime::ShutdownReason;
use crate::types::EvtchnPort;

extern "C" {
    /// The hypercall page (boot/entry.S), filled in by Xen before entry.
    static xenpv_hypercall_page: u8;
}

/// Issues hypercall `nr` with raw arguments.
///
/// # Safety
/// The arguments must satisfy hypercall `nr`'s contract: every pointer
/// valid for the access Xen makes, for the duration of the call.
pub unsafe fn raw(nr: u32, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    // SAFETY: Xen wrote the hypercall page before jumping to _start (the
    // HYPERCALL_PAGE ELF note); the caller vouches for the arguments.
    unsafe { call5(core::ptr::addr_of!(xenpv_hypercall_page), nr as usize, a1, a2, a3, a4, a5) }
}

/// `SCHEDOP_shutdown`. Returns only if Xen refused.
#[doc(alias = "SCHEDOP_shutdown")]
pub fn sched_shutdown(reason: ShutdownReason) -> Errno {
    let mut arg = abi::sched_shutdown { reason: reason as u32 };
    // SAFETY: `arg` is a valid sched_shutdown for the call's duration.
    let r = unsafe {
        raw(abi::__HYPERVISOR_sched_op, abi::SCHEDOP_shutdown as u64, &mut arg as *mut _ as u64, 0, 0, 0)
    };
    Errno::check(r).err().unwrap_or(Errno::EINVAL)
}

/// `SCHEDOP_yield`: gives the physical CPU to another vCPU.
#[doc(alias = "SCHEDOP_yield")]
pub fn sched_yield() {
    // SAFETY: SCHEDOP_yield takes no pointer.
    unsafe { raw(abi::__HYPERVISOR_sched_op, abi::SCHEDOP_yield as u64, 0, 0, 0, 0) };
}

/// `SCHEDOP_block`: sleeps until an event is pending for this vCPU, and
/// clears `evtchn_upcall_mask` (so callers check for work first).
#[doc(alias = "SCHEDOP_block")]
pub fn sched_block() {
    // SAFETY: SCHEDOP_block takes no pointer.
    unsafe { raw(abi::__HYPERVISOR_sched_op, abi::SCHEDOP_block as u64, 0, 0, 0, 0) };
}

/// `CONSOLEIO_write`: Xen's own console. Refused for a domU on a
/// non-debug hypervisor; the dom0 and early-panic path.
#[doc(alias = "CONSOLEIO_write")]
pub fn console_io_write(bytes: &[u8]) -> Result<(), Errno> {
    // SAFETY: Xen reads `len` bytes from `bytes`, which the slice guarantees.
    let r = unsafe {
        raw(abi::__HYPERVISOR_console_io, abi::CONSOLEIO_write as u64, bytes.len() as u64, bytes.as_ptr() as u64, 0, 0)
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
    let r = unsafe { raw(abi::__HYPERVISOR_set_trap_table, table.as_ptr() as u64, 0, 0, 0, 0) };
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
        raw(abi::__HYPERVISOR_mmu_update, reqs.as_ptr() as u64, reqs.len() as u64, &mut done as *mut u32 as u64, 0x7FF0, 0)
    };
    Errno::check(r).map(drop)
}

/// `mmuext_op`: extended MMU operations (pin, TLB flush, ...).
///
/// # Safety
/// As for [`mmu_update`].
#[doc(alias = "HYPERVISOR_mmuext_op")]
pub unsafe fn mmuext_op(ops: &[mmuext_op]) -> Result<(), Errno> {
    let mut done: u32 = 0;
    // SAFETY: Xen reads `ops` and writes `done`.
    let r = unsafe {
        raw(abi::__HYPERVISOR_mmuext_op, ops.as_ptr() as u64, ops.len() as u64, &mut done as *mut u32 as u64, 0x7FF0, 0)
    };
    Errno::check(r).map(drop)
}

/// `update_va_mapping`: sets the PTE that maps `va` (whose L1 table must exist).
///
/// # Safety
/// As for [`mmu_update`].
#[doc(alias = "HYPERVISOR_update_va_mapping")]
pub unsafe fn update_va_mapping(va: u64, pte: u64, flags: u64) -> Result<(), Errno> {
    // SAFETY: no pointer argument; the caller vouches for the mapping change.
    let r = unsafe { raw(abi::__HYPERVISOR_update_va_mapping, va, pte, flags, 0, 0) };
    Errno::check(r).map(drop)
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
    let r = unsafe { raw(abi::__HYPERVISOR_grant_table_op, cmd as u64, ops as u64, count as u64, 0, 0) };
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
    let r = unsafe { raw(abi::__HYPERVISOR_event_channel_op, cmd as u64, arg as u64, 0, 0, 0) };
    Errno::check(r).map(drop)
}

/// `EVTCHNOP_send`: raises the event on the far end of `port`.
#[doc(alias = "EVTCHNOP_send")]
pub fn evtchn_send(port: EvtchnPort) -> Result<(), Errno> {
    let mut arg: u32 = port.0;
    // SAFETY: evtchn_send is a single u32 port, valid for the call.
    unsafe { event_channel_op(xen_sys::EVTCHNOP_send, &mut arg as *mut u32 as *mut u8) }
}

/// `XENVER_version`: the hypervisor's (major, minor) version.
pub fn xen_version() -> (u16, u16) {
    // SAFETY: XENVER_version takes no pointer.
    let v = unsafe { raw(abi::__HYPERVISOR_xen_version, abi::XENVER_VERSION, 0, 0, 0, 0) } as u32;
    ((v >> 16) as u16, v as u16)
}
