//! The crate-wide error: every subsystem's error converts into
//! [`Error`], so `?` works across them in an application. It names every
//! subsystem, so it stands at the top of the crate; the `-errno` of the
//! hypercall channel that every layer returns is [`crate::errno`], at the
//! ground.

use core::fmt;

use crate::errno::Errno;

/// Any xenpv failure: every subsystem's error converts into it, so `?`
/// works across them in an application's `main`.
///
/// ```ignore
/// fn main(xen: xenpv::Xen) -> Result<(), xenpv::Error> {
///     let domid = xen.store().lock().own_domid()?;      // XsError
///     let page = xen.grants().alloc_page()?;             // GrantError
///     let port = xenpv::event::alloc_unbound(domid)?;    // EventError
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A hypercall failed with this errno.
    Hypercall(Errno),
    /// Memory: frames, address space, page tables.
    Memory(crate::mm::MemError),
    /// Event channels.
    Event(crate::event::EventError),
    /// Xenstore.
    Xenstore(crate::xenstore::XsError),
    /// Grant tables: sharing, mapping, copying.
    Grant(crate::grant::GrantError),
    /// A vchan channel.
    Channel(crate::vchan::ChannelError),
    /// A vchan ring's protocol.
    Ring(crate::vchan::VchanError),
    /// A block device.
    Block(crate::block::BlockError),
    /// A split driver's xenbus handshake.
    Xenbus(crate::xenbus::XenbusError),
    /// A network interface.
    Net(crate::net::NetError),
    /// The application's own failure: a check that did not hold, a value
    /// it could not parse (`Err(Error::App("peer id is not a number"))`).
    App(&'static str),
}

macro_rules! into_error {
    ($($from:ty => $variant:ident,)*) => {$(
        impl From<$from> for Error {
            fn from(e: $from) -> Self {
                Error::$variant(e)
            }
        }
    )*};
}

into_error! {
    Errno => Hypercall,
    crate::mm::MemError => Memory,
    crate::event::EventError => Event,
    crate::xenstore::XsError => Xenstore,
    crate::grant::GrantError => Grant,
    crate::vchan::ChannelError => Channel,
    crate::vchan::VchanError => Ring,
    crate::block::BlockError => Block,
    crate::xenbus::XenbusError => Xenbus,
    crate::net::NetError => Net,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Hypercall(e) => write!(f, "hypercall failed: {e}"),
            Error::Memory(e) => write!(f, "memory: {e:?}"),
            Error::Event(e) => write!(f, "event channel: {e:?}"),
            Error::Xenstore(e) => write!(f, "xenstore: {e:?}"),
            Error::Grant(e) => write!(f, "grant table: {e}"),
            Error::Channel(e) => write!(f, "vchan: {e:?}"),
            Error::Ring(e) => write!(f, "vchan ring: {e:?}"),
            Error::Block(e) => write!(f, "block device: {e:?}"),
            Error::Xenbus(e) => write!(f, "xenbus: {e:?}"),
            Error::Net(e) => write!(f, "network: {e:?}"),
            Error::App(what) => f.write_str(what),
        }
    }
}

impl core::error::Error for Error {}

/// `Result<T, xenpv::Error>`.
pub type Result<T, E = Error> = core::result::Result<T, E>;

#[cfg(test)]
mod umbrella_tests {
    use super::*;

    fn xs() -> Result<()> {
        Err(crate::xenstore::XsError::Timeout)?
    }

    fn grant() -> Result<()> {
        Err(crate::grant::GrantError::Hypercall(Errno::EINVAL))?
    }

    #[test]
    fn question_mark_converts() {
        assert_eq!(
            xs(),
            Err(Error::Xenstore(crate::xenstore::XsError::Timeout))
        );
        let e = grant().unwrap_err();
        assert!(matches!(e, Error::Grant(_)));
        assert!(alloc::format!("{e}").starts_with("grant table: "), "{e}");
        assert_eq!(alloc::format!("{}", Error::App("no peer")), "no peer");
        let e: Error = Errno::EINVAL.into();
        assert_eq!(
            alloc::format!("{e}"),
            alloc::format!("hypercall failed: {}", Errno::EINVAL)
        );
    }
}
