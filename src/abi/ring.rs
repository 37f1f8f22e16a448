//! The shared ring header of `xen/include/public/io/ring.h`
//! (`DEFINE_RING_TYPES`' `struct name_sring`): the offsets of its
//! indices and of its first entry, which every split driver's ring uses.

/// `RING_IDX`: a free-running 32-bit index; slots are `idx & (size - 1)`.
pub type RingIdx = u32;

/// `struct name_sring` up to its entries \[both\]: `req_prod` @0 (front),
/// `req_event` @4 (back), `rsp_prod` @8 (back), `rsp_event` @12 (front),
/// `pvt` @16 (4 bytes, device specific), `__pad[44]` @20, `ring[]` @64.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sring_header {
    /// `req_prod`.
    pub req_prod: RingIdx,
    /// `req_event`: "notify me when `req_prod` passes this".
    pub req_event: RingIdx,
    /// `rsp_prod`.
    pub rsp_prod: RingIdx,
    /// `rsp_event`.
    pub rsp_event: RingIdx,
    /// `pvt`: device-specific bytes (netif's `evtchn_upcall_pending`...).
    pub pvt: [u8; 4],
    /// `__pad`.
    pub pad: [u8; 44],
}

/// Offset of `req_prod` in the shared ring.
pub const REQ_PROD: usize = core::mem::offset_of!(sring_header, req_prod);
/// Offset of `req_event`.
pub const REQ_EVENT: usize = core::mem::offset_of!(sring_header, req_event);
/// Offset of `rsp_prod`.
pub const RSP_PROD: usize = core::mem::offset_of!(sring_header, rsp_prod);
/// Offset of `rsp_event`.
pub const RSP_EVENT: usize = core::mem::offset_of!(sring_header, rsp_event);
/// Offset of the device-specific `pvt` bytes.
pub const PVT: usize = core::mem::offset_of!(sring_header, pvt);
/// Offset of `ring[0]`: after `pvt` (4 bytes) and `__pad[44]`.
pub const ENTRIES: usize = core::mem::size_of::<sring_header>();

const _: () = {
    assert!(REQ_PROD == 0);
    assert!(REQ_EVENT == 4);
    assert!(RSP_PROD == 8);
    assert!(RSP_EVENT == 12);
    assert!(PVT == 16);
    assert!(ENTRIES == 64);
};
