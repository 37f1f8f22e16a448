//! Xenstore wire ABI (public/io/xs_wire.h): the `xsd_sockmsg` header, the
//! message types, the error names and the shared ring page
//! (`xenstore_domain_interface`). No logic.

/// `struct xsd_sockmsg`: the header in front of every request and reply,
/// followed by `len` payload bytes. Sent little-endian, field by field.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct xsd_sockmsg {
    /// `XS_*` message type.
    pub type_: u32,
    /// Request id: echoed in the reply (0 in watch events).
    pub req_id: u32,
    /// Transaction id (0 outside a transaction).
    pub tx_id: u32,
    /// Payload length in bytes.
    pub len: u32,
}

/// Size of the header on the wire.
pub const HEADER_SIZE: usize = 16;

/// `XENSTORE_PAYLOAD_MAX`: the largest payload either side may send.
pub const XENSTORE_PAYLOAD_MAX: usize = 4096;
/// `XENSTORE_ABS_PATH_MAX`: longest absolute path.
pub const XENSTORE_ABS_PATH_MAX: usize = 3072;
/// `XENSTORE_REL_PATH_MAX`: longest relative path.
pub const XENSTORE_REL_PATH_MAX: usize = 2048;

/// `enum xsd_sockmsg_type`.
pub mod msg {
    /// `XS_CONTROL` (was `XS_DEBUG`).
    pub const XS_CONTROL: u32 = 0;
    /// `XS_DIRECTORY`: list the children of a node.
    pub const XS_DIRECTORY: u32 = 1;
    /// `XS_READ`: a node's value.
    pub const XS_READ: u32 = 2;
    /// `XS_GET_PERMS`: a node's permission list.
    pub const XS_GET_PERMS: u32 = 3;
    /// `XS_WATCH`: register a watch.
    pub const XS_WATCH: u32 = 4;
    /// `XS_UNWATCH`: remove a watch.
    pub const XS_UNWATCH: u32 = 5;
    /// `XS_TRANSACTION_START`.
    pub const XS_TRANSACTION_START: u32 = 6;
    /// `XS_TRANSACTION_END`.
    pub const XS_TRANSACTION_END: u32 = 7;
    /// `XS_INTRODUCE` (toolstack only).
    pub const XS_INTRODUCE: u32 = 8;
    /// `XS_RELEASE` (toolstack only).
    pub const XS_RELEASE: u32 = 9;
    /// `XS_GET_DOMAIN_PATH`.
    pub const XS_GET_DOMAIN_PATH: u32 = 10;
    /// `XS_WRITE`.
    pub const XS_WRITE: u32 = 11;
    /// `XS_MKDIR`.
    pub const XS_MKDIR: u32 = 12;
    /// `XS_RM`.
    pub const XS_RM: u32 = 13;
    /// `XS_SET_PERMS`.
    pub const XS_SET_PERMS: u32 = 14;
    /// `XS_WATCH_EVENT`: asynchronous, `path\0token\0`.
    pub const XS_WATCH_EVENT: u32 = 15;
    /// `XS_ERROR`: reply payload is an errno name, `"ENOENT\0"`.
    pub const XS_ERROR: u32 = 16;
    /// `XS_IS_DOMAIN_INTRODUCED`.
    pub const XS_IS_DOMAIN_INTRODUCED: u32 = 17;
    /// `XS_RESUME`.
    pub const XS_RESUME: u32 = 18;
    /// `XS_SET_TARGET`.
    pub const XS_SET_TARGET: u32 = 19;
    /// `XS_RESET_WATCHES` (20, `XS_RESTRICT`, was removed).
    pub const XS_RESET_WATCHES: u32 = 21;
    /// `XS_DIRECTORY_PART`.
    pub const XS_DIRECTORY_PART: u32 = 22;
    /// `XS_TYPE_COUNT`: one past the last valid type.
    pub const XS_TYPE_COUNT: u32 = 23;
}

/// `XENSTORE_RING_SIZE`: bytes in each of the two rings.
pub const XENSTORE_RING_SIZE: usize = 1024;

/// `struct xenstore_domain_interface`, the store page. Accessed through
/// `SharedMem` at these offsets: xenstored writes `req_cons`, `rsp_prod`
/// and `rsp[]`; the guest writes `req_prod`, `rsp_cons` and `req[]`.
pub mod ring {
    /// `char req[1024]` `\[GST\]`: requests to xenstored.
    pub const REQ: usize = 0;
    /// `char rsp[1024]` `\[XEN\]` (xenstored): replies and watch events.
    pub const RSP: usize = 1024;
    /// `req_cons` (xenstored).
    pub const REQ_CONS: usize = 2048;
    /// `req_prod` (guest).
    pub const REQ_PROD: usize = 2052;
    /// `rsp_cons` (guest).
    pub const RSP_CONS: usize = 2056;
    /// `rsp_prod` (xenstored).
    pub const RSP_PROD: usize = 2060;
    /// `server_features` (xenstored).
    pub const SERVER_FEATURES: usize = 2064;
    /// `connection` (`XENSTORE_CONNECTED` = 0).
    pub const CONNECTION: usize = 2068;
    /// `error` (`XENSTORE_ERROR_*`).
    pub const ERROR: usize = 2072;
    /// Bytes of the page the structure covers.
    pub const SIZE: usize = 2076;
}

const _: () = {
    assert!(core::mem::size_of::<xsd_sockmsg>() == HEADER_SIZE);
    assert!(ring::RSP == ring::REQ + super::xenstore::XENSTORE_RING_SIZE);
    assert!(ring::REQ_CONS == ring::RSP + XENSTORE_RING_SIZE);
    assert!(XENSTORE_RING_SIZE.is_power_of_two());
};
