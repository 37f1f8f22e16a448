//! A xenstore client (docs/misc/xenstore.txt, public/io/xs_wire.h).
//!
//! - [`wire`]: `xsd_sockmsg` framing and strict reply parsing.
//! - [`ring`]: the store page's request/response byte rings.
//! - [`Client`]: requests matched to replies by `req_id`, watch events
//!   queued while a reply is awaited (at most [`DEFAULT_WATCH_QUEUE_LIMIT`]
//!   per token, drops counted), transactions with an EAGAIN retry
//!   helper, over a narrow [`Transport`] so the host tests drive it
//!   against an in-memory xenstored (`fake`), hostile ones included.
//! - the guest transport over the real store page and its event channel
//!   (`open`).

mod client;
#[cfg(any(test, feature = "host-fakes"))]
pub mod fake;
pub mod ring;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod wait_tests;
pub mod wire;

pub use client::{
    Client, Transaction, Transport, TxId, WatchEvent, DEFAULT_TIMEOUT_NS,
    DEFAULT_WATCH_QUEUE_LIMIT, MAX_TRANSACTION_ATTEMPTS,
};

use crate::errno::Errno;
use crate::types::DomId;

/// A reply that breaks the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// The header's `len` exceeds `XENSTORE_PAYLOAD_MAX` (4096).
    PayloadTooLong(u32),
    /// The header's type is not an `XS_*` message type.
    UnknownType(u32),
    /// A reply of a different type than the request (and not `XS_ERROR`).
    UnexpectedType {
        /// The request's type.
        expected: u32,
        /// The reply's type.
        got: u32,
    },
    /// A string in the payload lacks its terminating NUL.
    MissingNul,
    /// A string in the payload is not UTF-8.
    InvalidUtf8,
    /// An `XS_ERROR` reply names an error this client does not know.
    UnknownErrorName,
    /// A number (transaction id, domid) does not parse.
    BadNumber,
    /// A permission string does not parse.
    BadPermission,
    /// The byte stream lost its framing: a request timed out half-sent
    /// (whatever we sent next would be read as its remainder), or a
    /// message from xenstored stopped short and did not complete within a
    /// request timeout (whatever it sent next would be read as its
    /// remainder). The client refuses all further use.
    Desynchronized,
    /// xenstored's ring index is impossible (more than a ring apart).
    CorruptIndex {
        /// Producer index seen.
        prod: u32,
        /// Consumer index seen.
        cons: u32,
    },
}

/// Why a xenstore operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XsError {
    /// xenstored answered with an error (`ENOENT`, `EACCES`, `EAGAIN`, ...).
    Errno(Errno),
    /// No (complete) answer before the deadline.
    Timeout,
    /// The reply broke the protocol.
    Malformed(Malformed),
    /// The connection is unusable after an earlier framing failure (a
    /// reply too long to skip, a half-sent request, a reply cut short, a
    /// corrupt index). Every later call fails with the same error.
    Broken(Malformed),
    /// The request payload would exceed `XENSTORE_PAYLOAD_MAX` bytes.
    RequestTooLong(usize),
    /// A path or token is empty, too long or contains NUL.
    InvalidPath,
    /// No store page (a dom0 booted without xenstored), or the client is
    /// already open.
    Unavailable,
}

impl From<Malformed> for XsError {
    fn from(m: Malformed) -> Self {
        XsError::Malformed(m)
    }
}

impl core::fmt::Display for Malformed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Malformed::PayloadTooLong(n) => write!(f, "a {n}-byte payload (at most 4096)"),
            Malformed::UnknownType(t) => write!(f, "message type {t} is not an XS_* type"),
            Malformed::UnexpectedType { expected, got } => {
                write!(f, "a reply of type {got} to a request of type {expected}")
            }
            Malformed::MissingNul => f.write_str("a string without its terminating NUL"),
            Malformed::InvalidUtf8 => f.write_str("a string that is not UTF-8"),
            Malformed::UnknownErrorName => f.write_str("an XS_ERROR naming an unknown error"),
            Malformed::BadNumber => f.write_str("a number that does not parse"),
            Malformed::BadPermission => f.write_str("a permission that does not parse"),
            Malformed::Desynchronized => f.write_str("the byte stream lost its framing"),
            Malformed::CorruptIndex { prod, cons } => {
                write!(f, "impossible ring indices (prod {prod}, cons {cons})")
            }
        }
    }
}

impl core::fmt::Display for XsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            XsError::Errno(e) => write!(f, "xenstored answered {e}"),
            XsError::Timeout => f.write_str("no answer before the deadline"),
            XsError::Malformed(m) => write!(f, "a reply broke the protocol: {m}"),
            XsError::Broken(m) => write!(f, "the connection is unusable after {m}"),
            XsError::RequestTooLong(n) => {
                write!(f, "a {n}-byte request (the payload holds at most 4096)")
            }
            XsError::InvalidPath => {
                f.write_str("a path or token that is empty, too long or holds a NUL")
            }
            XsError::Unavailable => f.write_str("no xenstore (no store page, or already open)"),
        }
    }
}

impl From<ring::CorruptIndex> for XsError {
    fn from(c: ring::CorruptIndex) -> Self {
        XsError::Broken(Malformed::CorruptIndex {
            prod: c.prod,
            cons: c.cons,
        })
    }
}

/// What a domain may do to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `n`: nothing.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: both.
    ReadWrite,
}

/// One entry of a node's permission list. The first entry names the
/// owner, and its access is what every domain not listed gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perm {
    /// The domain.
    pub domid: DomId,
    /// Its access.
    pub access: Access,
}

#[cfg(target_os = "none")]
pub(crate) mod guest;
#[cfg(target_os = "none")]
pub(crate) use guest::open_shared;
#[cfg(target_os = "none")]
pub use guest::RingTransport;
