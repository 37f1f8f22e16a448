//! The crate-wide error: every subsystem's error converts into
//! [`Error`], so `?` works across them in an application. It names every
//! subsystem, so it stands at the top of the crate; the `-errno` of the
//! hypercall channel that every layer returns is [`crate::errno`], at the
//! ground.

use core::fmt;

use crate::errno::Errno;

/// Any xenpv failure: every subsystem's error converts into it, so `?`
/// works across them in an application's `main`; its `Display` says what
/// went wrong in words.
///
/// ```no_run
/// use xenpv::grant::{Access, GrantOps, Grants};
/// use xenpv::xenstore::{Client, Transport};
/// use xenpv::{DomId, Error};
///
/// /// Shares a page with the domain named in our `data/peer` node.
/// fn share_with_peer<T: Transport, B: GrantOps>(
///     store: &mut Client<T>,
///     grants: &Grants<B>,
/// ) -> xenpv::Result<u32> {
///     let text = store.read_string("data/peer")?; // XsError
///     let peer: u16 = text
///         .trim()
///         .parse()
///         .map_err(|_| Error::msg(format_args!("data/peer holds {text:?}, not a domid")))?;
///     let pages = grants.share(DomId(peer), 1, Access::ReadWrite)?; // GrantError
///     let gref = pages.gref(0).ok_or(Error::App("a share of one page has no page"))?;
///     core::mem::forget(pages); // the peer maps it for the rest of our life
///     Ok(gref.0)
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
    /// A vchan channel (its ring's protocol included:
    /// [`ChannelError::Vchan`](crate::vchan::ChannelError::Vchan)).
    Channel(crate::vchan::ChannelError),
    /// A request/response ring of a split driver (`io/ring.h`).
    Ring(crate::ring::RingError),
    /// A block device.
    Block(crate::block::BlockError),
    /// A split driver's xenbus handshake.
    Xenbus(crate::xenbus::XenbusError),
    /// A network interface.
    Net(crate::net::NetError),
    /// The application's own failure: a check that did not hold, a value
    /// it could not parse (`Err(Error::App("peer id is not a number"))`).
    App(&'static str),
    /// The application's own failure, with a message it formatted
    /// ([`Error::msg`]).
    Message(alloc::string::String),
}

impl Error {
    /// The application's own failure with a formatted message:
    /// `Error::msg(format_args!("port {p} is taken"))`, or any `Display`.
    pub fn msg(message: impl fmt::Display) -> Error {
        Error::Message(alloc::format!("{message}"))
    }
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
    crate::ring::RingError => Ring,
    crate::block::BlockError => Block,
    crate::xenbus::XenbusError => Xenbus,
    crate::net::NetError => Net,
}

/// A vchan ring's error is the channel's.
impl From<crate::vchan::VchanError> for Error {
    fn from(e: crate::vchan::VchanError) -> Self {
        Error::Channel(crate::vchan::ChannelError::Vchan(e))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Hypercall(e) => write!(f, "hypercall failed: {e}"),
            Error::Memory(e) => write!(f, "memory: {e}"),
            Error::Event(e) => write!(f, "event channel: {e}"),
            Error::Xenstore(e) => write!(f, "xenstore: {e}"),
            Error::Grant(e) => write!(f, "grant table: {e}"),
            Error::Channel(e) => write!(f, "vchan: {e}"),
            Error::Ring(e) => write!(f, "ring: {e}"),
            Error::Block(e) => write!(f, "block device: {e}"),
            Error::Xenbus(e) => write!(f, "xenbus: {e}"),
            Error::Net(e) => write!(f, "network: {e}"),
            Error::App(what) => f.write_str(what),
            Error::Message(what) => f.write_str(what),
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

    /// Every subsystem's error reads as words, not as its `Debug`.
    #[test]
    fn display_says_what_went_wrong_in_words() {
        use crate::vchan::{ChannelError, LayoutError, VchanError};
        use crate::xenstore::{Malformed, XsError};
        let cases: alloc::vec::Vec<(Error, alloc::string::String, &str)> = alloc::vec![
            (
                crate::mm::MemError::OutOfFrames.into(),
                alloc::format!("{:?}", crate::mm::MemError::OutOfFrames),
                "memory: no free page frame",
            ),
            (
                crate::event::EventError::NotReady.into(),
                "NotReady".into(),
                "event channel: event channels are not set up",
            ),
            (
                XsError::Malformed(Malformed::MissingNul).into(),
                "MissingNul".into(),
                "xenstore: a reply broke the protocol: a string without its terminating NUL",
            ),
            (
                VchanError::Layout(LayoutError::BadOrder(64)).into(),
                "BadOrder".into(),
                "vchan: bad ring layout: ring order 64 is outside 10..=20",
            ),
            (
                ChannelError::PeerGone.into(),
                "PeerGone".into(),
                "vchan: the peer domain went away",
            ),
            (
                crate::ring::RingError::Broken.into(),
                "Broken".into(),
                "ring: the ring is broken",
            ),
            (
                crate::block::BlockError::ReadOnly.into(),
                "ReadOnly".into(),
                "block device: the disk is read-only",
            ),
            (
                crate::net::NetError::BackendClosing.into(),
                "BackendClosing".into(),
                "network: the backend is closing",
            ),
            (
                crate::xenbus::XenbusError::FrontendGone.into(),
                "FrontendGone".into(),
                "xenbus: the front end's state node is gone",
            ),
            (
                Error::msg(format_args!("port {} is taken", 7)),
                "Message".into(),
                "port 7 is taken",
            ),
        ];
        for (e, debug, words) in cases {
            let text = alloc::format!("{e}");
            assert!(text.starts_with(words), "{text:?} should start {words:?}");
            assert!(
                !text.contains(&debug),
                "{text:?} prints its Debug {debug:?}"
            );
        }
        let ring: Error = VchanError::Closed.into();
        assert_eq!(
            ring,
            Error::Channel(ChannelError::Vchan(VchanError::Closed))
        );
    }
}
