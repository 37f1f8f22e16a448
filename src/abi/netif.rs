//! The network device protocol's wire format (`xen/include/public/io/netif.h`):
//! tx and rx request and response layouts, their flags and status codes.
//! The structs are never placed over ring memory: `net` encodes and
//! decodes messages at these offsets (checked against the C layout by
//! size).

/// `NETTXF_csum_blank`: the protocol checksum field is blank.
pub const NETTXF_CSUM_BLANK: u16 = 1 << 0;
/// `NETTXF_data_validated`: the packet data has been validated.
pub const NETTXF_DATA_VALIDATED: u16 = 1 << 1;
/// `NETTXF_more_data`: the frame continues in the next request.
pub const NETTXF_MORE_DATA: u16 = 1 << 2;
/// `NETTXF_extra_info`: an extra-info slot follows.
pub const NETTXF_EXTRA_INFO: u16 = 1 << 3;

/// `NETRXF_data_validated`.
pub const NETRXF_DATA_VALIDATED: u16 = 1 << 0;
/// `NETRXF_csum_blank`.
pub const NETRXF_CSUM_BLANK: u16 = 1 << 1;
/// `NETRXF_more_data`: the frame continues in the next response.
pub const NETRXF_MORE_DATA: u16 = 1 << 2;
/// `NETRXF_extra_info`: an extra-info slot follows.
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;

/// `NETIF_RSP_OKAY`.
pub const NETIF_RSP_OKAY: i16 = 0;
/// `NETIF_RSP_ERROR`.
pub const NETIF_RSP_ERROR: i16 = -1;
/// `NETIF_RSP_DROPPED`.
pub const NETIF_RSP_DROPPED: i16 = -2;
/// `NETIF_RSP_NULL`: an extra-info or padding slot.
pub const NETIF_RSP_NULL: i16 = 1;

/// `struct netif_tx_request` \[GST\] (12 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct netif_tx_request {
    /// `gref`: the granted page holding the data.
    pub gref: u32,
    /// `offset`: the data's offset in the page.
    pub offset: u16,
    /// `flags`: `NETTXF_*`.
    pub flags: u16,
    /// `id`: echoed in the response.
    pub id: u16,
    /// `size`: the packet's size in bytes (of the first request of a
    /// frame: the whole frame's).
    pub size: u16,
}

/// `struct netif_tx_response` \[backend\] (4 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct netif_tx_response {
    /// `id`.
    pub id: u16,
    /// `status`: `NETIF_RSP_*`.
    pub status: i16,
}

/// `struct netif_rx_request` \[GST\] (8 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct netif_rx_request {
    /// `id`: echoed in the response.
    pub id: u16,
    /// (padding)
    pub pad: u16,
    /// `gref`: the granted page the backend copies into.
    pub gref: u32,
}

/// `struct netif_rx_response` \[backend\] (8 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct netif_rx_response {
    /// `id`.
    pub id: u16,
    /// `offset`: the frame's offset in the page.
    pub offset: u16,
    /// `flags`: `NETRXF_*`.
    pub flags: u16,
    /// `status`: the frame's length when positive, else `NETIF_RSP_*`.
    pub status: i16,
}

macro_rules! offsets {
    ($($(#[$m:meta])* $name:ident = $ty:ident.$field:ident;)*) => {
        $($(#[$m])* pub const $name: usize = core::mem::offset_of!($ty, $field);)*
    };
}

offsets! {
    /// Offset of `netif_tx_request.gref`.
    TX_REQ_GREF = netif_tx_request.gref;
    /// Offset of `netif_tx_request.offset`.
    TX_REQ_OFFSET = netif_tx_request.offset;
    /// Offset of `netif_tx_request.flags`.
    TX_REQ_FLAGS = netif_tx_request.flags;
    /// Offset of `netif_tx_request.id`.
    TX_REQ_ID = netif_tx_request.id;
    /// Offset of `netif_tx_request.size`.
    TX_REQ_SIZE = netif_tx_request.size;
    /// Offset of `netif_tx_response.id`.
    TX_RSP_ID = netif_tx_response.id;
    /// Offset of `netif_tx_response.status`.
    TX_RSP_STATUS = netif_tx_response.status;
    /// Offset of `netif_rx_request.id`.
    RX_REQ_ID = netif_rx_request.id;
    /// Offset of `netif_rx_request.gref`.
    RX_REQ_GREF = netif_rx_request.gref;
    /// Offset of `netif_rx_response.id`.
    RX_RSP_ID = netif_rx_response.id;
    /// Offset of `netif_rx_response.offset`.
    RX_RSP_OFFSET = netif_rx_response.offset;
    /// Offset of `netif_rx_response.flags`.
    RX_RSP_FLAGS = netif_rx_response.flags;
    /// Offset of `netif_rx_response.status`.
    RX_RSP_STATUS = netif_rx_response.status;
}

/// `sizeof(struct netif_tx_request)`.
pub const NETIF_TX_REQUEST_SIZE: usize = core::mem::size_of::<netif_tx_request>();
/// `sizeof(struct netif_tx_response)`.
pub const NETIF_TX_RESPONSE_SIZE: usize = core::mem::size_of::<netif_tx_response>();
/// `sizeof(struct netif_rx_request)`.
pub const NETIF_RX_REQUEST_SIZE: usize = core::mem::size_of::<netif_rx_request>();
/// `sizeof(struct netif_rx_response)`.
pub const NETIF_RX_RESPONSE_SIZE: usize = core::mem::size_of::<netif_rx_response>();

const _: () = {
    // io/netif.h's layouts.
    assert!(NETIF_TX_REQUEST_SIZE == 12);
    assert!(NETIF_TX_RESPONSE_SIZE == 4);
    assert!(NETIF_RX_REQUEST_SIZE == 8);
    assert!(NETIF_RX_RESPONSE_SIZE == 8);
    assert!(TX_REQ_OFFSET == 4 && TX_REQ_FLAGS == 6 && TX_REQ_ID == 8 && TX_REQ_SIZE == 10);
    assert!(RX_REQ_GREF == 4);
    assert!(RX_RSP_OFFSET == 2 && RX_RSP_FLAGS == 4 && RX_RSP_STATUS == 6);
    assert!(TX_REQ_GREF == 0 && TX_RSP_ID == 0 && TX_RSP_STATUS == 2);
    assert!(RX_REQ_ID == 0 && RX_RSP_ID == 0);
};
