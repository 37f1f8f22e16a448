//! `struct xencons_interface` of public/io/console.h: the PV console ring page.

/// Size of the guest→backend ring (`out`).
pub const OUT_RING_SIZE: usize = 2048;
/// Size of the backend→guest ring (`in`).
pub const IN_RING_SIZE: usize = 1024;

/// Offsets into the console page. The page is shared with the console
/// backend (xenconsoled), so xenpv never forms a reference to it: it
/// reads and writes these offsets with volatile and atomic accesses.
pub mod offsets {
    /// `char in[1024]` — \[BACKEND\] input to the guest.
    pub const IN: usize = 0;
    /// `char out[2048]` — \[GST\] output from the guest.
    pub const OUT: usize = 1024;
    /// `XENCONS_RING_IDX in_cons` — \[GST\].
    pub const IN_CONS: usize = 3072;
    /// `XENCONS_RING_IDX in_prod` — \[BACKEND\].
    pub const IN_PROD: usize = 3076;
    /// `XENCONS_RING_IDX out_cons` — \[BACKEND\].
    pub const OUT_CONS: usize = 3080;
    /// `XENCONS_RING_IDX out_prod` — \[GST\].
    pub const OUT_PROD: usize = 3084;
}

/// A layout twin of the C struct, used only for the offset checks below.
#[repr(C)]
#[allow(dead_code)]
struct xencons_interface {
    in_: [u8; IN_RING_SIZE],
    out: [u8; OUT_RING_SIZE],
    in_cons: u32,
    in_prod: u32,
    out_cons: u32,
    out_prod: u32,
}

const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(xencons_interface, in_) == offsets::IN);
    assert!(offset_of!(xencons_interface, out) == offsets::OUT);
    assert!(offset_of!(xencons_interface, in_cons) == offsets::IN_CONS);
    assert!(offset_of!(xencons_interface, in_prod) == offsets::IN_PROD);
    assert!(offset_of!(xencons_interface, out_cons) == offsets::OUT_CONS);
    assert!(offset_of!(xencons_interface, out_prod) == offsets::OUT_PROD);
    assert!(core::mem::size_of::<xencons_interface>() == 3088);
};
