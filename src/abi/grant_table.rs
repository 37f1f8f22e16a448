//! Grant table ABI (xen/include/public/grant_table.h, v1 entries): the
//! entry layout, `GTF_*` flags, `GNTTABOP_*` numbers and op structs,
//! `GNTMAP_*` flags and `GNTST_*` status codes. No logic.
//!
//! Layouts are those of x86_64 (`unsigned long` and `xen_pfn_t` are 64
//! bits); the assertions at the end pin every offset xenpv relies on.

// C names, so a reader can grep the header for them.
#![allow(non_upper_case_globals)]

use crate::abi::domid_t;

/// `grant_ref_t`: an index into a domain's grant table.
pub type grant_ref_t = u32;
/// `grant_handle_t`: Xen's tracking number for one mapping.
pub type grant_handle_t = u32;

/// `struct grant_entry_v1`: one entry of a v1 grant table, 8 bytes,
/// packed 512 to a page. Xen reads it concurrently with us, so xenpv
/// never forms a reference to one: entries are accessed field by field
/// through `SharedMem` at the offsets below.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct grant_entry_v1 {
    /// `GTF_*` type and flags. \[XEN,GST\]
    pub flags: u16,
    /// The domain being granted foreign privileges. \[GST\]
    pub domid: domid_t,
    /// `GTF_permit_access`: the frame `domid` may map. \[GST\]
    /// `GTF_accept_transfer`: the frame transferred to us. \[XEN\]
    pub frame: u32,
}

/// Byte offset of `flags` in a [`grant_entry_v1`].
pub const GNTENT_FLAGS: usize = 0;
/// Byte offset of `domid` in a [`grant_entry_v1`].
pub const GNTENT_DOMID: usize = 2;
/// Byte offset of `frame` in a [`grant_entry_v1`].
pub const GNTENT_FRAME: usize = 4;
/// Size of a v1 entry.
pub const GNTENT_SIZE: usize = 8;
/// v1 entries per grant-table frame.
pub const GNTENT_PER_FRAME: usize = crate::abi::PAGE_SIZE / GNTENT_SIZE;

/// The entry grants no privileges.
pub const GTF_invalid: u16 = 0;
/// Allow `domid` to map/access `frame`.
pub const GTF_permit_access: u16 = 1;
/// Allow `domid` to transfer ownership of one page frame to us.
pub const GTF_accept_transfer: u16 = 2;
/// Mask of the entry type.
pub const GTF_type_mask: u16 = 3;
/// Restrict `domid` to read-only mappings and accesses. \[GST\]
pub const GTF_readonly: u16 = 1 << 2;
/// The entry is mapped for reading by `domid`. \[XEN\]
pub const GTF_reading: u16 = 1 << 3;
/// The entry is mapped for writing by `domid`. \[XEN\]
pub const GTF_writing: u16 = 1 << 4;
/// Xen is committed to transferring a frame into this entry. \[XEN\]
pub const GTF_transfer_committed: u16 = 1 << 2;
/// Xen has written the transferred frame's number. \[XEN\]
pub const GTF_transfer_completed: u16 = 1 << 3;

/// `GNTTABOP_*` command numbers.
pub const GNTTABOP_map_grant_ref: u32 = 0;
/// See [`gnttab_unmap_grant_ref`].
pub const GNTTABOP_unmap_grant_ref: u32 = 1;
/// See [`gnttab_setup_table`].
pub const GNTTABOP_setup_table: u32 = 2;
/// See [`gnttab_dump_table`].
pub const GNTTABOP_dump_table: u32 = 3;
/// See [`gnttab_transfer`].
pub const GNTTABOP_transfer: u32 = 4;
/// See [`gnttab_copy`].
pub const GNTTABOP_copy: u32 = 5;
/// See [`gnttab_query_size`].
pub const GNTTABOP_query_size: u32 = 6;

/// Map for access by I/O devices.
pub const GNTMAP_device_map: u32 = 1 << 0;
/// Map for access by host CPUs.
pub const GNTMAP_host_map: u32 = 1 << 1;
/// Restrict accesses to the granted frame to read-only.
pub const GNTMAP_readonly: u32 = 1 << 2;
/// Host mapping usable by the guest OS and the current application.
pub const GNTMAP_application_map: u32 = 1 << 3;
/// `host_addr` is the machine address of a PTE, not a virtual address.
pub const GNTMAP_contains_pte: u32 = 1 << 4;

/// Copy source is a grant reference (else a frame number).
pub const GNTCOPY_source_gref: u16 = 1 << 0;
/// Copy destination is a grant reference (else a frame number).
pub const GNTCOPY_dest_gref: u16 = 1 << 1;

/// `GNTST_*`: status of one grant operation. All errors are negative.
pub const GNTST_okay: i16 = 0;
/// General undefined error.
pub const GNTST_general_error: i16 = -1;
/// Unrecognised domain id.
pub const GNTST_bad_domain: i16 = -2;
/// Unrecognised or inappropriate gntref.
pub const GNTST_bad_gntref: i16 = -3;
/// Unrecognised or inappropriate handle.
pub const GNTST_bad_handle: i16 = -4;
/// Inappropriate virtual address to map.
pub const GNTST_bad_virt_addr: i16 = -5;
/// Inappropriate device address to unmap.
pub const GNTST_bad_dev_addr: i16 = -6;
/// Out of space in I/O MMU.
pub const GNTST_no_device_space: i16 = -7;
/// Not enough privilege for operation.
pub const GNTST_permission_denied: i16 = -8;
/// Specified page was invalid for op.
pub const GNTST_bad_page: i16 = -9;
/// Copy arguments cross page boundary.
pub const GNTST_bad_copy_arg: i16 = -10;
/// Transfer page address too large.
pub const GNTST_address_too_big: i16 = -11;
/// Operation not done; try again.
pub const GNTST_eagain: i16 = -12;
/// Out of space (handles etc).
pub const GNTST_no_space: i16 = -13;

/// `GNTTABOP_error_msgs`, indexed by `-status`.
pub const GNTTABOP_error_msgs: [&str; 14] = [
    "okay",
    "undefined error",
    "unrecognised domain id",
    "invalid grant reference",
    "invalid mapping handle",
    "invalid virtual address",
    "invalid device address",
    "no spare translation slot in the I/O MMU",
    "permission denied",
    "bad page",
    "copy arguments cross page boundary",
    "page address size too large",
    "operation not done; try again",
    "out of space",
];

/// `struct gnttab_map_grant_ref` (`GNTTABOP_map_grant_ref`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct gnttab_map_grant_ref {
    /// IN: where to map (a virtual address, with `GNTMAP_host_map`).
    pub host_addr: u64,
    /// IN: `GNTMAP_*`.
    pub flags: u32,
    /// IN: the reference in `dom`'s table.
    pub ref_: grant_ref_t,
    /// IN: the granting domain.
    pub dom: domid_t,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// OUT: the handle to unmap with.
    pub handle: grant_handle_t,
    /// OUT: bus address, with `GNTMAP_device_map`.
    pub dev_bus_addr: u64,
}

/// `struct gnttab_unmap_grant_ref` (`GNTTABOP_unmap_grant_ref`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct gnttab_unmap_grant_ref {
    /// IN: the host mapping to remove, or 0.
    pub host_addr: u64,
    /// IN: the device mapping to remove, or 0.
    pub dev_bus_addr: u64,
    /// IN: the handle `map_grant_ref` returned.
    pub handle: grant_handle_t,
    /// OUT: `GNTST_*`.
    pub status: i16,
}

/// `struct gnttab_setup_table` (`GNTTABOP_setup_table`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct gnttab_setup_table {
    /// IN: the domain (`DOMID_SELF`).
    pub dom: domid_t,
    /// IN: number of frames wanted (and written to `frame_list`).
    pub nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// IN: guest handle of a `xen_pfn_t[nr_frames]` Xen fills in.
    pub frame_list: *mut u64,
}

/// `struct gnttab_dump_table` (`GNTTABOP_dump_table`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct gnttab_dump_table {
    /// IN: the domain (`DOMID_SELF`).
    pub dom: domid_t,
    /// OUT: `GNTST_*`.
    pub status: i16,
}

/// `struct gnttab_transfer` (`GNTTABOP_transfer`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct gnttab_transfer {
    /// IN: the frame to give away.
    pub mfn: u64,
    /// IN: the receiving domain.
    pub domid: domid_t,
    /// IN: the receiver's accept-transfer reference.
    pub ref_: grant_ref_t,
    /// OUT: `GNTST_*`.
    pub status: i16,
}

/// One side of a [`gnttab_copy`] (the anonymous struct of the header).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct gnttab_copy_ptr {
    /// `union { grant_ref_t ref; xen_pfn_t gmfn; }`: a reference when the
    /// matching `GNTCOPY_*_gref` flag is set, else a frame number.
    pub u: u64,
    /// The domain owning the reference or frame.
    pub domid: domid_t,
    /// Byte offset in the frame.
    pub offset: u16,
}

/// `struct gnttab_copy` (`GNTTABOP_copy`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct gnttab_copy {
    /// IN: where to copy from.
    pub source: gnttab_copy_ptr,
    /// IN: where to copy to.
    pub dest: gnttab_copy_ptr,
    /// IN: bytes to copy.
    pub len: u16,
    /// IN: `GNTCOPY_*`.
    pub flags: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
}

/// `struct gnttab_query_size` (`GNTTABOP_query_size`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct gnttab_query_size {
    /// IN: the domain (`DOMID_SELF`).
    pub dom: domid_t,
    /// OUT: current size in frames.
    pub nr_frames: u32,
    /// OUT: the most frames the table may grow to.
    pub max_nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<grant_entry_v1>() == GNTENT_SIZE);
    assert!(offset_of!(grant_entry_v1, flags) == GNTENT_FLAGS);
    assert!(offset_of!(grant_entry_v1, domid) == GNTENT_DOMID);
    assert!(offset_of!(grant_entry_v1, frame) == GNTENT_FRAME);

    assert!(size_of::<gnttab_map_grant_ref>() == 32);
    assert!(offset_of!(gnttab_map_grant_ref, flags) == 8);
    assert!(offset_of!(gnttab_map_grant_ref, ref_) == 12);
    assert!(offset_of!(gnttab_map_grant_ref, dom) == 16);
    assert!(offset_of!(gnttab_map_grant_ref, status) == 18);
    assert!(offset_of!(gnttab_map_grant_ref, handle) == 20);
    assert!(offset_of!(gnttab_map_grant_ref, dev_bus_addr) == 24);

    assert!(size_of::<gnttab_unmap_grant_ref>() == 24);
    assert!(offset_of!(gnttab_unmap_grant_ref, dev_bus_addr) == 8);
    assert!(offset_of!(gnttab_unmap_grant_ref, handle) == 16);
    assert!(offset_of!(gnttab_unmap_grant_ref, status) == 20);

    assert!(size_of::<gnttab_setup_table>() == 24);
    assert!(offset_of!(gnttab_setup_table, nr_frames) == 4);
    assert!(offset_of!(gnttab_setup_table, status) == 8);
    assert!(offset_of!(gnttab_setup_table, frame_list) == 16);

    assert!(size_of::<gnttab_dump_table>() == 4);
    assert!(offset_of!(gnttab_dump_table, status) == 2);

    assert!(size_of::<gnttab_transfer>() == 24);
    assert!(offset_of!(gnttab_transfer, domid) == 8);
    assert!(offset_of!(gnttab_transfer, ref_) == 12);
    assert!(offset_of!(gnttab_transfer, status) == 16);

    assert!(size_of::<gnttab_copy_ptr>() == 16);
    assert!(offset_of!(gnttab_copy_ptr, domid) == 8);
    assert!(offset_of!(gnttab_copy_ptr, offset) == 10);
    assert!(size_of::<gnttab_copy>() == 40);
    assert!(offset_of!(gnttab_copy, dest) == 16);
    assert!(offset_of!(gnttab_copy, len) == 32);
    assert!(offset_of!(gnttab_copy, flags) == 34);
    assert!(offset_of!(gnttab_copy, status) == 36);

    assert!(size_of::<gnttab_query_size>() == 16);
    assert!(offset_of!(gnttab_query_size, nr_frames) == 4);
    assert!(offset_of!(gnttab_query_size, max_nr_frames) == 8);
    assert!(offset_of!(gnttab_query_size, status) == 12);
};
