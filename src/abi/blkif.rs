//! The block device protocol's wire format (`xen/include/public/io/blkif.h`):
//! request and response layouts, operation and status codes, `info` bits.
//! The structs are never placed over ring memory: `block` encodes and
//! decodes them at these offsets (checked against the C layout by size).

/// `BLKIF_OP_READ`: read sectors into the segments' pages.
pub const BLKIF_OP_READ: u8 = 0;
/// `BLKIF_OP_WRITE`: write sectors from the segments' pages.
pub const BLKIF_OP_WRITE: u8 = 1;
/// `BLKIF_OP_WRITE_BARRIER`: a write ordered after all earlier ones
/// (backend feature `feature-barrier`).
pub const BLKIF_OP_WRITE_BARRIER: u8 = 2;
/// `BLKIF_OP_FLUSH_DISKCACHE`: flush the backend's write cache; may carry
/// no segment (backend feature `feature-flush-cache`).
pub const BLKIF_OP_FLUSH_DISKCACHE: u8 = 3;

/// `BLKIF_MAX_SEGMENTS_PER_REQUEST`: pages one direct request may name.
pub const BLKIF_MAX_SEGMENTS_PER_REQUEST: usize = 11;

/// `BLKIF_RSP_OKAY`.
pub const BLKIF_RSP_OKAY: i16 = 0;
/// `BLKIF_RSP_ERROR`.
pub const BLKIF_RSP_ERROR: i16 = -1;
/// `BLKIF_RSP_EOPNOTSUPP`: the backend does not do this operation.
pub const BLKIF_RSP_EOPNOTSUPP: i16 = -2;

/// `VDISK_CDROM` bit of the backend's `info` node.
pub const VDISK_CDROM: u32 = 0x1;
/// `VDISK_REMOVABLE`.
pub const VDISK_REMOVABLE: u32 = 0x2;
/// `VDISK_READONLY`: writes will fail.
pub const VDISK_READONLY: u32 = 0x4;

/// The unit of `sector_number`, `first_sect` and `last_sect` for a
/// frontend that does not advertise `feature-large-sector-size`.
pub const BLKIF_SECTOR: usize = 512;

/// `struct blkif_request` (x86_64 layout, 112 bytes) \[GST\]:
/// `operation` u8 @0, `nr_segments` u8 @1, `handle` u16 @2, (pad 4),
/// `id` u64 @8, `sector_number` u64 @16, `seg[11]` @24.
pub const BLKIF_REQUEST_SIZE: usize = 112;
/// Offset of `seg[0]` in a request.
pub const BLKIF_REQUEST_SEG: usize = 24;
/// `struct blkif_request_segment` \[GST\]: `gref` u32 @0, `first_sect`
/// u8 @4, `last_sect` u8 @5, (pad 2).
pub const BLKIF_SEGMENT_SIZE: usize = 8;
/// `struct blkif_response` (16 bytes) \[backend\]: `id` u64 @0,
/// `operation` u8 @8, (pad 1), `status` i16 @10, (pad 4).
pub const BLKIF_RESPONSE_SIZE: usize = 16;

const _: () = assert!(
    BLKIF_REQUEST_SEG + BLKIF_MAX_SEGMENTS_PER_REQUEST * BLKIF_SEGMENT_SIZE == BLKIF_REQUEST_SIZE
);
