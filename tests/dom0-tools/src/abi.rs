//! The ioctl ABI of Linux's `/dev/xen/gntdev` and `/dev/xen/gntalloc`
//! (`include/uapi/xen/gntdev.h`, `include/uapi/xen/gntalloc.h`): structs,
//! numbers and flags, no logic.
#![allow(non_camel_case_types)]

use std::mem::{offset_of, size_of};

/// `_IOC(_IOC_NONE, 'G', nr, size)`: direction bits 0, size in bits 16..30.
const fn ioc_none_g(nr: u32, size: usize) -> u32 {
    ((size as u32) << 16) | ((b'G' as u32) << 8) | nr
}

pub const PAGE_SIZE: usize = 4096;

/// `struct ioctl_gntdev_grant_ref`: one grant to map.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ioctl_gntdev_grant_ref {
    pub domid: u32,
    pub ref_: u32,
}

/// `struct ioctl_gntdev_map_grant_ref`. `refs` is a variable-length array
/// that starts here with one element; the ioctl reads `count` of them.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ioctl_gntdev_map_grant_ref {
    /// In: number of grants.
    pub count: u32,
    pub pad: u32,
    /// Out: the `mmap` offset of the mapping.
    pub index: u64,
    pub refs: [ioctl_gntdev_grant_ref; 1],
}

/// `struct ioctl_gntdev_unmap_grant_ref`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ioctl_gntdev_unmap_grant_ref {
    pub index: u64,
    pub count: u32,
    pub pad: u32,
}

/// `struct ioctl_gntdev_unmap_notify`, also gntalloc's
/// `struct ioctl_gntalloc_unmap_notify` (same layout).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ioctl_unmap_notify {
    /// Mapping index plus the byte's offset in the mapping.
    pub index: u64,
    pub action: u32,
    pub event_channel_port: u32,
}

/// `struct ioctl_gntalloc_alloc_gref`; `gref_ids` is variable-length like
/// gntdev's `refs`, and the driver writes the whole struct back (24 bytes)
/// before the ids, so the buffer must hold at least that.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ioctl_gntalloc_alloc_gref {
    pub domid: u16,
    pub flags: u16,
    pub count: u32,
    /// Out: the `mmap` offset.
    pub index: u64,
    pub gref_ids: [u32; 1],
}

/// `struct ioctl_gntalloc_dealloc_gref`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ioctl_gntalloc_dealloc_gref {
    pub index: u64,
    pub count: u32,
}

pub const IOCTL_GNTDEV_MAP_GRANT_REF: u32 = ioc_none_g(0, size_of::<ioctl_gntdev_map_grant_ref>());
pub const IOCTL_GNTDEV_UNMAP_GRANT_REF: u32 =
    ioc_none_g(1, size_of::<ioctl_gntdev_unmap_grant_ref>());
pub const IOCTL_GNTDEV_SET_UNMAP_NOTIFY: u32 = ioc_none_g(7, size_of::<ioctl_unmap_notify>());
pub const IOCTL_GNTALLOC_ALLOC_GREF: u32 = ioc_none_g(5, size_of::<ioctl_gntalloc_alloc_gref>());
pub const IOCTL_GNTALLOC_DEALLOC_GREF: u32 =
    ioc_none_g(6, size_of::<ioctl_gntalloc_dealloc_gref>());
pub const IOCTL_GNTALLOC_SET_UNMAP_NOTIFY: u32 = ioc_none_g(7, size_of::<ioctl_unmap_notify>());

pub const GNTALLOC_FLAG_WRITABLE: u16 = 1;
pub const UNMAP_NOTIFY_CLEAR_BYTE: u32 = 0x1;
pub const UNMAP_NOTIFY_SEND_EVENT: u32 = 0x2;

/// `DOMID_FIRST_RESERVED` (xen/include/public/xen.h): ids from here on
/// name no real domain.
pub const DOMID_FIRST_RESERVED: u32 = 0x7ff0;

const _: () = {
    assert!(size_of::<ioctl_gntdev_grant_ref>() == 8);
    assert!(size_of::<ioctl_gntdev_map_grant_ref>() == 24);
    assert!(offset_of!(ioctl_gntdev_map_grant_ref, index) == 8);
    assert!(offset_of!(ioctl_gntdev_map_grant_ref, refs) == 16);
    assert!(size_of::<ioctl_gntdev_unmap_grant_ref>() == 16);
    assert!(size_of::<ioctl_unmap_notify>() == 16);
    assert!(size_of::<ioctl_gntalloc_alloc_gref>() == 24);
    assert!(offset_of!(ioctl_gntalloc_alloc_gref, count) == 4);
    assert!(offset_of!(ioctl_gntalloc_alloc_gref, index) == 8);
    assert!(offset_of!(ioctl_gntalloc_alloc_gref, gref_ids) == 16);
    assert!(size_of::<ioctl_gntalloc_dealloc_gref>() == 16);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers() {
        // The values Linux's _IOC() gives on x86 for these sizes.
        assert_eq!(IOCTL_GNTDEV_MAP_GRANT_REF, 0x0018_4700);
        assert_eq!(IOCTL_GNTDEV_UNMAP_GRANT_REF, 0x0010_4701);
        assert_eq!(IOCTL_GNTDEV_SET_UNMAP_NOTIFY, 0x0010_4707);
        assert_eq!(IOCTL_GNTALLOC_ALLOC_GREF, 0x0018_4705);
        assert_eq!(IOCTL_GNTALLOC_DEALLOC_GREF, 0x0010_4706);
        assert_eq!(IOCTL_GNTALLOC_SET_UNMAP_NOTIFY, 0x0010_4707);
    }
}
