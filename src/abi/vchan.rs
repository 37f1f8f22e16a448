//! `struct vchan_interface` of public/io/libxenvchan.h: the control page
//! of a libxenvchan channel.
//!
//! The `left` ring carries client→server data, `right` server→client.
//! Rings of order 10 and 11 live inside the control page (at 1024 and
//! 2048); larger ones (orders 12..=20) are separate granted pages whose
//! references follow the header, the left ring's first.

/// `struct ring_shared` offsets: `cons`, then `prod`.
pub const RING_CONS: usize = 0;
/// Producer index within a `ring_shared`.
pub const RING_PROD: usize = 4;
/// Offset of `left` (client writes, server reads).
pub const LEFT: usize = 0;
/// Offset of `right` (server writes, client reads).
pub const RIGHT: usize = 8;
/// `uint16_t left_order`.
pub const LEFT_ORDER: usize = 16;
/// `uint16_t right_order`.
pub const RIGHT_ORDER: usize = 18;
/// `uint8_t cli_live`: 0 closed, 1 connected, 2 not yet connected.
pub const CLI_LIVE: usize = 20;
/// `uint8_t srv_live`: 0 closed, 1 live.
pub const SRV_LIVE: usize = 21;
/// `uint8_t cli_notify`: requests (set by the server) for the client to notify.
pub const CLI_NOTIFY: usize = 22;
/// `uint8_t srv_notify`: requests (set by the client) for the server to notify.
pub const SRV_NOTIFY: usize = 23;
/// `uint32_t grants[]`.
pub const GRANTS: usize = 24;

/// `VCHAN_NOTIFY_WRITE`: notify me when you write (I wait for data).
pub const NOTIFY_WRITE: u8 = 0x1;
/// `VCHAN_NOTIFY_READ`: notify me when you read (I wait for space).
pub const NOTIFY_READ: u8 = 0x2;

/// Order of the in-page ring at offset 1024 (`SMALL_RING_SHIFT`).
pub const SMALL_RING_ORDER: u16 = 10;
/// Offset of the order-10 in-page ring.
pub const SMALL_RING_OFFSET: usize = 1024;
/// Order of the in-page ring at offset 2048 (`LARGE_RING_SHIFT`).
pub const LARGE_RING_ORDER: u16 = 11;
/// Offset of the order-11 in-page ring.
pub const LARGE_RING_OFFSET: usize = 2048;
/// Largest ring order libxenvchan accepts (1 MiB).
pub const MAX_RING_ORDER: u16 = 20;

/// Layout twin of the C struct, for the offset checks.
#[repr(C)]
#[allow(dead_code, non_camel_case_types)]
struct vchan_interface {
    left: [u32; 2],
    right: [u32; 2],
    left_order: u16,
    right_order: u16,
    cli_live: u8,
    srv_live: u8,
    cli_notify: u8,
    srv_notify: u8,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(offset_of!(vchan_interface, left) == LEFT);
    assert!(offset_of!(vchan_interface, right) == RIGHT);
    assert!(offset_of!(vchan_interface, left_order) == LEFT_ORDER);
    assert!(offset_of!(vchan_interface, right_order) == RIGHT_ORDER);
    assert!(offset_of!(vchan_interface, cli_live) == CLI_LIVE);
    assert!(offset_of!(vchan_interface, srv_live) == SRV_LIVE);
    assert!(offset_of!(vchan_interface, cli_notify) == CLI_NOTIFY);
    assert!(offset_of!(vchan_interface, srv_notify) == SRV_NOTIFY);
    assert!(size_of::<vchan_interface>() == GRANTS);
};
