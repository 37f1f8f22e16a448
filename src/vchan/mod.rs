//! libxenvchan-compatible byte streams between domains
//! (public/io/libxenvchan.h, tools/libs/vchan).
//!
//! [`ring`] is the protocol over the shared control page and ring buffers:
//! index arithmetic, the notify-bit handshake, the live flags, and the
//! checks that turn anything a hostile peer writes into a typed error.
//! It performs no hypercall and runs on the host.

mod channel;
pub mod layout;
#[cfg(all(test, loom))]
mod loom_tests;
pub mod ring;

pub use channel::{qubes_path, Backends, ChannelError, Rendezvous, State, Vchan, Woken};
pub use layout::{ring_offset, validate_orders, LayoutError};
#[cfg(any(test, feature = "host-fakes"))]
pub use ring::HostChanMemory;
pub use ring::{ChanMemory, Progress, Ring, Side, VchanError, Which};

/// A vchan over this domain's grant table, event channels and xenstore.
#[cfg(target_os = "none")]
pub type XenVchan<'b> = Vchan<
    'b,
    crate::grant::XenGrantOps,
    crate::event::XenEvents,
    spin::Mutex<crate::xenstore::Client<crate::xenstore::RingTransport>>,
>;
