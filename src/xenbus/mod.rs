//! The xenbus handshake of split drivers, front end ([`Frontend`]) and
//! back end ([`Backend`]), and the plumbing every front end shares
//! ([`Opening`], [`Link`]) (`xen/include/public/io/xenbus.h`; the
//! conventions of Linux's `xenbus_probe_frontend.c`/`xenbus_client.c` and
//! Mini-OS's `xenbus.c`/`blkfront.c`/`netfront.c`).
//!
//! The toolstack creates the device in xenstore: ours under
//! `device/<class>/<devid>` (`backend`, `backend-id`, `state`), the
//! backend's under `/local/domain/<backend-id>/backend/<class>/<our
//! domid>/<devid>`. Each end publishes its [`XenbusState`] in its `state`
//! node and watches the other's:
//!
//! 1. [`Frontend::devices`] lists a class's devices; [`Frontend::open`]
//!    reads `backend` and `backend-id` (checked: the path must be the one
//!    the toolstack builds for this device);
//! 2. [`initialise`](Frontend::initialise): we say `Initialising` (a
//!    backend left `Closed` by an earlier connection reopens on seeing
//!    it, as Linux's netback/blkback do) and wait for the backend's
//!    `InitWait`: it has probed and published its features
//!    ([`backend_flag`](Frontend::backend_flag),
//!    [`backend_u64`](Frontend::backend_u64),
//!    [`read_backend`](Frontend::read_backend));
//! 3. [`connect`](Frontend::connect): the driver's keys (ring references,
//!    event channel, features) and our new state, `Initialised`
//!    (blkfront) or `Connected` (netfront), in one transaction retried
//!    while it conflicts; then wait for the backend's `Connected`. From
//!    here a watch on the backend's `state` is kept, which
//!    [`poll_backend`](Frontend::poll_backend) reads without blocking; a
//!    driver that announced `Initialised` reads what the backend
//!    published on connecting and [`switch`](Frontend::switch)es to
//!    `Connected`;
//! 4. a backend that starts closing (the toolstack detaching the device)
//!    or whose node disappears shows in `poll_backend` or
//!    [`check_backend`](Frontend::check_backend) as
//!    [`XenbusError::BackendClosing`] or [`XenbusError::BackendGone`];
//! 5. [`close`](Frontend::close): `Closing`, wait for the backend to close
//!    (or be gone), `Closed`. The watch goes with `close`, or on drop.
//!
//! Every wait is a watch with a deadline: a backend that never answers
//! gives [`XenbusError::Timeout`], garbage in a node a typed error.
//!
//! ```ignore
//! let bus = Frontend::open(xen.store(), "vbd", 51712)?;
//! bus.initialise(Duration::from_secs(10))?;
//! let persistent = bus.backend_flag("feature-persistent")?;
//! bus.connect(Announce::Initialised, &[("ring-ref", "8"), ("event-channel", "5"), ("protocol", "x86_64-abi")], Duration::from_secs(10))?;
//! let sectors = bus.backend_u64("sectors")?;
//! bus.switch(XenbusState::Connected)?;
//! // ... on every wake-up:
//! bus.poll_backend()?; // Err(BackendClosing(_) | BackendGone): tear down
//! // ... and at the end:
//! bus.close(Duration::from_secs(5))?;
//! ```
//!
//! # Writing a front end
//!
//! A split-driver front end (console, 9pfs, vTPM, ...) is three pieces
//! of its own over the plumbing here, as [`block`](crate::block) and
//! [`net`](crate::net) are:
//!
//! 1. **Its ABI** in `src/abi/<dev>.rs`: the C structs of
//!    `io/<dev>.h` as `repr(C)` structs or named offsets, with
//!    compile-time size assertions (see [`abi::blkif`](crate::abi::blkif),
//!    [`abi::netif`](crate::abi::netif)).
//! 2. **Its messages**: request and response types implementing
//!    [`ring::Message`](crate::ring::Message) over those offsets, so that
//!    [`FrontRing`](crate::ring::FrontRing) carries them.
//! 3. **Its engine** over a [`Link`]: the rings and pages it shares, the
//!    event channel, and what it does with the responses. Its error type
//!    implements [`LinkError`] (how it says "link down", "broken", "a
//!    xenbus error") and `From<XenbusError>` by [`link_error`].
//!
//! The connect sequence, with every error after `Initialising` closing
//! the device (Linux's `xenbus_dev_fatal`), is:
//!
//! ```ignore
//! // Refuse what needs refusing before anything is written:
//! let bus = Opening::initialise(store, "vfoo", devid, timeout, |bus| {
//!     // read our own nodes, check the backend is not being detached...
//!     Ok::<_, FooError>(())
//! })?; // Initialising written, the backend in InitWait
//! let mut dev = FooFront::new(grants, events, bus.backend_id(), ...)?;
//! // A `?` from here drops `bus`: Closing, the backend closes, Closed.
//! dev.link = bus.complete(CHECK_EVERY, |bus| {
//!     bus.connect(Announce::Connected, &dev.keys().pairs(), timeout)?;
//!     dev.bar = bus.backend_flag("feature-bar")?;
//!     Ok(())
//! })?; // committed: the device stays open, closed by the Link
//! ```
//!
//! [`Opening::complete`] closes the device before its error reaches the
//! caller, so before the driver's shared pages are released; declare the
//! `Link` as the driver's first field, so that on drop too it closes the
//! device before the pages go. In the engine: [`Link::check`] before
//! each operation (latched failure, then at most every period the
//! backend's `state`), [`Link::check_bus`] and [`Link::check_peer`] when a
//! wait times out (a detach is told from a backend domain's death), and
//! [`Link::fail`] for any error that breaks the device.
//!
//! A back end uses [`Backend`]: the same handshake seen from the other
//! side, on the same core (state switch, watch, typed readers).

use crate::errno::Errno;
use crate::types::DomId;
use crate::xenstore::{Client, Transport, XsError};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

mod backend;
mod link;
#[cfg(all(test, not(loom)))]
mod tests;

pub use backend::{Backend, FrontendEvent};
pub use link::{link_error, Down, Keys, Link, LinkError, Opening};

/// `enum xenbus_state`: what an end publishes in its `state` node, as a
/// decimal number.
#[doc(alias = "xenbus_state")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum XenbusState {
    /// `XenbusStateUnknown`.
    Unknown = 0,
    /// `XenbusStateInitialising`.
    Initialising = 1,
    /// `XenbusStateInitWait`: "Finished early initialisation, but waiting
    /// for information from the peer or hotplug scripts."
    InitWait = 2,
    /// `XenbusStateInitialised`: "Initialised and waiting for a connection
    /// from the peer."
    Initialised = 3,
    /// `XenbusStateConnected`.
    Connected = 4,
    /// `XenbusStateClosing`: "The device is being closed due to an error
    /// or an unplug event."
    Closing = 5,
    /// `XenbusStateClosed`.
    Closed = 6,
    /// `XenbusStateReconfiguring`: "Reconfiguring: The device is being
    /// reconfigured."
    Reconfiguring = 7,
    /// `XenbusStateReconfigured`.
    Reconfigured = 8,
}

impl XenbusState {
    /// The state numbered `n`, if any.
    pub const fn from_number(n: u32) -> Option<Self> {
        Some(match n {
            0 => Self::Unknown,
            1 => Self::Initialising,
            2 => Self::InitWait,
            3 => Self::Initialised,
            4 => Self::Connected,
            5 => Self::Closing,
            6 => Self::Closed,
            7 => Self::Reconfiguring,
            8 => Self::Reconfigured,
            _ => return None,
        })
    }

    /// Parses a `state` node's value: decimal digits (a trailing NUL, as
    /// some writers leave, is ignored). Anything else, a number outside
    /// the enum included, is [`XenbusError::BadState`] with the value.
    pub fn parse(v: &[u8]) -> Result<Self, XenbusError> {
        let digits = v.strip_suffix(b"\0").unwrap_or(v);
        // At most 3 digits: no overflow, and "0004" is nobody's state.
        let n = match digits {
            [] => None,
            d if d.len() <= 3 && d.iter().all(u8::is_ascii_digit) => {
                Some(d.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
            }
            _ => None,
        };
        n.and_then(Self::from_number)
            .ok_or(XenbusError::BadState(Snippet::new(v)))
    }

    /// The value written to a `state` node.
    fn digit(self) -> [u8; 1] {
        [b'0' + self as u8]
    }
}

/// The first [`Snippet::CAP`] bytes of a value or path, kept inside an
/// error without allocating, so that [`XenbusError`] is `Copy`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Snippet {
    bytes: [u8; Snippet::CAP],
    len: u8,
    cut: bool,
}

impl Snippet {
    /// How many bytes are kept.
    pub const CAP: usize = 64;

    /// Keeps the first [`CAP`](Self::CAP) bytes of `v`.
    pub fn new(v: &[u8]) -> Self {
        let len = v.len().min(Self::CAP);
        let mut bytes = [0; Self::CAP];
        bytes[..len].copy_from_slice(&v[..len]);
        Snippet {
            bytes,
            len: len as u8,
            cut: v.len() > Self::CAP,
        }
    }

    /// The bytes kept.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Whether the original was longer.
    pub fn is_cut(&self) -> bool {
        self.cut
    }
}

impl fmt::Debug for Snippet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for &b in self.as_bytes() {
            match b {
                b'"' | b'\\' => write!(f, "\\{}", b as char)?,
                0x20..=0x7e => write!(f, "{}", b as char)?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        f.write_str(if self.cut { "...\"" } else { "\"" })
    }
}

/// Why a xenbus step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XenbusError {
    /// The store refused or broke.
    Store(XsError),
    /// A `state` node that is not a state (its value).
    BadState(Snippet),
    /// A node that must exist does not (its path): our device's
    /// `backend`/`backend-id` (no such device), or a backend key the
    /// driver requires.
    Missing(Snippet),
    /// `backend-id` is not a domid, or `backend` is not the path the
    /// toolstack builds for this device (the offending value).
    BadBackend(Snippet),
    /// A node whose value does not parse (its path).
    BadNode(Snippet),
    /// The backend did not reach `waiting_for` in time; `backend` is the
    /// state it was last seen in (`None`: no `state` node).
    Timeout {
        /// The state waited for.
        waiting_for: XenbusState,
        /// The backend's state at the deadline.
        backend: Option<XenbusState>,
    },
    /// The backend is closing or closed (the device is being detached).
    BackendClosing(XenbusState),
    /// The backend's `state` node is gone (the toolstack removed the
    /// device, or the backend domain died).
    BackendGone,
    /// Our own device directory is gone: [`Frontend::connect`] does not
    /// recreate a device the toolstack removed.
    DeviceGone,
    /// A back end's `frontend`/`frontend-id` is not the front end's
    /// device directory the toolstack builds (the offending value).
    BadFrontend(Snippet),
    /// The front end closed while a [`Backend`] waited for it to connect.
    FrontendClosing(XenbusState),
    /// The front end's `state` node is gone (its domain died, or the
    /// toolstack removed the device).
    FrontendGone,
}

impl From<XsError> for XenbusError {
    fn from(e: XsError) -> Self {
        XenbusError::Store(e)
    }
}

impl fmt::Display for XenbusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XenbusError::Store(e) => write!(f, "the store failed: {e}"),
            XenbusError::BadState(v) => write!(f, "a state node holds {v:?}, not a state"),
            XenbusError::Missing(p) => write!(f, "node {p:?} does not exist"),
            XenbusError::BadBackend(v) => {
                write!(
                    f,
                    "the backend named ({v:?}) is not the one the toolstack builds"
                )
            }
            XenbusError::BadNode(p) => write!(f, "node {p:?} holds a value that does not parse"),
            XenbusError::Timeout {
                waiting_for,
                backend,
            } => match backend {
                Some(s) => write!(
                    f,
                    "the backend stayed {s:?}, never {waiting_for:?}, until the deadline"
                ),
                None => write!(
                    f,
                    "the backend has no state node; waited for {waiting_for:?}"
                ),
            },
            XenbusError::BackendClosing(s) => write!(
                f,
                "the backend is closing ({s:?}): the device is being detached"
            ),
            XenbusError::BackendGone => f.write_str("the backend's state node is gone"),
            XenbusError::DeviceGone => f.write_str("our device directory is gone"),
            XenbusError::BadFrontend(v) => {
                write!(
                    f,
                    "the front end named ({v:?}) is not the one the toolstack builds"
                )
            }
            XenbusError::FrontendClosing(s) => {
                write!(f, "the front end closed ({s:?}) before connecting")
            }
            XenbusError::FrontendGone => f.write_str("the front end's state node is gone"),
        }
    }
}

/// The state [`Frontend::connect`] announces with the driver's keys:
/// the driver's choice, as Linux's front ends differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announce {
    /// blkfront: `Initialised`; switch to `Connected` after reading what
    /// the backend publishes on connecting.
    Initialised,
    /// netfront: `Connected` at once.
    Connected,
}

impl From<Announce> for XenbusState {
    fn from(a: Announce) -> Self {
        match a {
            Announce::Initialised => XenbusState::Initialised,
            Announce::Connected => XenbusState::Connected,
        }
    }
}

/// One front-end device's xenbus connection. (Its core, one end of a
/// device watching the other, also carries [`Backend`]; there `backend`
/// is the front end's directory.)
#[derive(Debug)]
pub struct Frontend<'s, T: Transport> {
    store: &'s spin::Mutex<Client<T>>,
    /// Our directory, `/local/domain/<us>/device/<class>/<devid>`.
    path: String,
    backend: String,
    backend_id: DomId,
    devid: u32,
    /// Whether our watch on the backend's `state` is set (from `connect`
    /// or `watch_backend` until `close` or drop).
    watching: AtomicBool,
    /// The node of our directory that names the other end (`backend`;
    /// `frontend` for the [`Backend`] built on this type): its absence
    /// means the toolstack removed the device.
    peer_key: &'static str,
}

/// Reads a node as text: `None` when absent, [`XenbusError::BadNode`]
/// when not UTF-8.
fn read_text<T: Transport>(c: &mut Client<T>, path: &str) -> Result<Option<String>, XenbusError> {
    match c.read(path) {
        Ok(v) => String::from_utf8(v)
            .map(Some)
            .map_err(|_| XenbusError::BadNode(Snippet::new(path.as_bytes()))),
        Err(XsError::Errno(e)) if e == Errno::ENOENT => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A domid as the toolstack writes it: decimal digits, below 2^16.
fn parse_domid(v: &str) -> Option<DomId> {
    if v.is_empty() || v.len() > 5 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().map(DomId)
}

/// What a wait makes of the backend's `state` now.
enum Verdict {
    Done(XenbusState),
    Wait(Option<XenbusState>),
    Fail(XenbusError),
}

/// When a wait for `want` is over, given the backend's `state` value
/// (`None`: no node).
fn verdict(want: XenbusState, value: Option<&[u8]>) -> Verdict {
    use XenbusState::*;
    let now = match value.map(XenbusState::parse).transpose() {
        Ok(s) => s,
        Err(e) => return Verdict::Fail(e),
    };
    match (want, now) {
        // A backend closed by an earlier connection reopens when it sees
        // our Initialising (Linux netback/blkback `frontend_changed`), and
        // one that is not there yet may still be being created: neither
        // is final while we wait for InitWait; the timeout says where it
        // stood.
        (InitWait, Some(s @ (InitWait | Initialised | Connected))) => Verdict::Done(s),
        (Connected, Some(Connected)) => Verdict::Done(Connected),
        (Connected, Some(s @ (Closing | Closed))) => Verdict::Fail(XenbusError::BackendClosing(s)),
        (Connected, None) => Verdict::Fail(XenbusError::BackendGone),
        (Closing | Closed, _) => verdict_closing(want, now),
        (w, Some(s)) if !matches!(w, InitWait | Connected | Closing | Closed) && s == w => {
            Verdict::Done(s)
        }
        (_, s) => Verdict::Wait(s),
    }
}

/// When a wait for the other end to close (`want`: Closing or Closed) is
/// over, given its state `now` (`None`: no node).
fn verdict_closing(want: XenbusState, now: Option<XenbusState>) -> Verdict {
    use XenbusState::*;
    match (want, now) {
        // Closing: anything from Closing on, or gone, ends the wait.
        // Unknown is what Linux reads for an end it cannot see.
        (Closing, Some(s @ (Closing | Closed | Unknown))) => Verdict::Done(s),
        (Closing | Closed, None) => Verdict::Done(Closed),
        (Closed, Some(s @ (Closed | Unknown))) => Verdict::Done(s),
        (_, s) => Verdict::Wait(s),
    }
}

/// The most watch events [`Frontend::poll_backend`] takes per call: a
/// backend rewriting its `state` as fast as we read must not hold us.
const MAX_EVENTS_PER_POLL: usize = 64;

impl<'s, T: Transport> Frontend<'s, T> {
    /// The devices of `class` (`vbd`, `vif`) the toolstack gave us: their
    /// ids under `device/<class>`, ascending. Entries that are not
    /// numbers are left out.
    pub fn devices(
        store: &'s spin::Mutex<Client<T>>,
        class: &str,
    ) -> Result<Vec<u32>, XenbusError> {
        let mut c = store.lock();
        let home = c.own_domain_path()?;
        let names = match c.directory(&format!("{home}/device/{class}")) {
            Ok(n) => n,
            Err(XsError::Errno(e)) if e == Errno::ENOENT => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let mut ids: Vec<u32> = names
            .iter()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            .filter_map(|n| n.parse().ok())
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Opens device `class`/`devid`: reads and checks its backend.
    pub fn open(
        store: &'s spin::Mutex<Client<T>>,
        class: &str,
        devid: u32,
    ) -> Result<Self, XenbusError> {
        let mut c = store.lock();
        let me = c.own_domid()?;
        let path = format!("{}/device/{class}/{devid}", c.own_domain_path()?);
        let mut read = |key: &str| -> Result<String, XenbusError> {
            let node = format!("{path}/{key}");
            read_text(&mut c, &node)?.ok_or(XenbusError::Missing(Snippet::new(node.as_bytes())))
        };
        let backend = read("backend")?;
        let id = read("backend-id")?;
        let backend_id =
            parse_domid(&id).ok_or(XenbusError::BadBackend(Snippet::new(id.as_bytes())))?;
        // The backend directory is where the backend's keys are read and
        // its state watched: a `backend` node pointing elsewhere (another
        // guest's device, another domain than backend-id) is refused.
        let expected = format!(
            "/local/domain/{}/backend/{class}/{}/{devid}",
            backend_id.0, me.0
        );
        if backend != expected {
            return Err(XenbusError::BadBackend(Snippet::new(backend.as_bytes())));
        }
        drop(c);
        Ok(Frontend::end(
            store, path, backend, backend_id, devid, "backend",
        ))
    }

    /// One end of a device: our directory `path`, the other end's `peer`
    /// (domain `peer_id`), named in our directory by `peer_key`.
    fn end(
        store: &'s spin::Mutex<Client<T>>,
        path: String,
        peer: String,
        peer_id: DomId,
        devid: u32,
        peer_key: &'static str,
    ) -> Self {
        Frontend {
            store,
            path,
            backend: peer,
            backend_id: peer_id,
            devid,
            watching: AtomicBool::new(false),
            peer_key,
        }
    }

    /// Our device directory.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The backend's directory.
    pub fn backend_path(&self) -> &str {
        &self.backend
    }

    /// The backend's domain.
    pub fn backend_id(&self) -> DomId {
        self.backend_id
    }

    /// The device id (`devid`, the vbd's virtual device number).
    pub fn devid(&self) -> u32 {
        self.devid
    }

    /// A backend node, as text; `None` when absent.
    pub fn read_backend(&self, key: &str) -> Result<Option<String>, XenbusError> {
        read_text(&mut self.store.lock(), &format!("{}/{key}", self.backend))
    }

    /// A backend number (`sectors`, `multi-queue-max-queues`, ...):
    /// [`Missing`](XenbusError::Missing) when absent,
    /// [`BadNode`](XenbusError::BadNode) when not a decimal number.
    pub fn backend_u64(&self, key: &str) -> Result<u64, XenbusError> {
        let node = || Snippet::new(format!("{}/{key}", self.backend).as_bytes());
        let v = self
            .read_backend(key)?
            .ok_or_else(|| XenbusError::Missing(node()))?;
        let v = v.trim();
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(XenbusError::BadNode(node()));
        }
        v.parse().map_err(|_| XenbusError::BadNode(node()))
    }

    /// A backend number that may be absent (`default` then), checked as
    /// [`backend_u64`](Self::backend_u64) checks it when present.
    pub fn backend_u64_or(&self, key: &str, default: u64) -> Result<u64, XenbusError> {
        match self.backend_u64(key) {
            Err(XenbusError::Missing(_)) => Ok(default),
            r => r,
        }
    }

    /// [`XenbusError::BadNode`] for backend node `key` (a value the driver
    /// read and cannot use).
    pub fn bad_backend_node(&self, key: &str) -> XenbusError {
        XenbusError::BadNode(Snippet::new(format!("{}/{key}", self.backend).as_bytes()))
    }

    /// A backend `feature-*` flag: absent or `0` is off, `1` on, anything
    /// else [`BadNode`](XenbusError::BadNode).
    pub fn backend_flag(&self, key: &str) -> Result<bool, XenbusError> {
        match self.read_backend(key)?.as_deref().map(str::trim) {
            None | Some("0") => Ok(false),
            Some("1") => Ok(true),
            Some(_) => Err(XenbusError::BadNode(Snippet::new(
                format!("{}/{key}", self.backend).as_bytes(),
            ))),
        }
    }

    /// Writes our keys (`(key, value)` under our directory) in one
    /// transaction, retried while it conflicts.
    pub fn publish(&self, keys: &[(&str, &str)]) -> Result<(), XenbusError> {
        let path = &self.path;
        self.store.lock().transaction(|tx| {
            for (k, v) in keys {
                tx.write(&format!("{path}/{k}"), v.as_bytes())?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Publishes our state, as Linux's `xenbus_switch_state` does: in a
    /// transaction that writes only when the value changes (no needless
    /// watch firing) and never recreates the directory of a device the
    /// toolstack removed (its `backend` node gone).
    pub fn switch(&self, state: XenbusState) -> Result<(), XenbusError> {
        self.switch_with(state, &[]).map(drop)
    }

    /// `keys`, then `state`, in one transaction unless our directory is
    /// gone; returns whether it was there.
    fn switch_with(&self, state: XenbusState, keys: &[(&str, &str)]) -> Result<bool, XenbusError> {
        let path = &self.path;
        let node = format!("{path}/state");
        let value = state.digit();
        let backend_node = format!("{path}/{}", self.peer_key);
        let there = self.store.lock().transaction(|tx| {
            let old = match tx.read(&node) {
                Ok(v) => Some(v),
                Err(XsError::Errno(e)) if e == Errno::ENOENT => None,
                Err(e) => return Err(e),
            };
            // Linux checks `state` alone; a toolstack (or a lab script)
            // that never wrote our initial state is not a removed device:
            // the directory is gone when its `backend` is.
            if old.is_none() {
                match tx.read(&backend_node) {
                    Ok(_) => {}
                    Err(XsError::Errno(e)) if e == Errno::ENOENT => return Ok(false),
                    Err(e) => return Err(e),
                }
            }
            for (k, v) in keys {
                tx.write(&format!("{path}/{k}"), v.as_bytes())?;
            }
            if old.as_deref() != Some(&value[..]) {
                tx.write(&node, &value)?;
            }
            Ok(true)
        })?;
        Ok(there)
    }

    /// Handshake step 2: switches to `Initialising` and waits for the
    /// backend's `InitWait` (or a later state of the handshake); then the
    /// backend's features can be read. A backend left `Closed` by an
    /// earlier connection reopens on our `Initialising`; one that does not
    /// reach InitWait in `timeout` is [`XenbusError::Timeout`].
    pub fn initialise(&self, timeout: Duration) -> Result<XenbusState, XenbusError> {
        self.switch(XenbusState::Initialising)?;
        self.wait_backend(XenbusState::InitWait, timeout)
    }

    /// Handshake step 3: writes the driver's `keys` and our state
    /// `announce` in one transaction (retried on `EAGAIN`), waits for the
    /// backend's `Connected`, and watches the backend's `state` from then
    /// on ([`poll_backend`](Self::poll_backend)). A backend that closes or
    /// disappears instead is [`BackendClosing`](XenbusError::BackendClosing)
    /// or [`BackendGone`](XenbusError::BackendGone).
    pub fn connect(
        &self,
        announce: Announce,
        keys: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<(), XenbusError> {
        if !self.switch_with(announce.into(), keys)? {
            return Err(XenbusError::DeviceGone);
        }
        self.wait_backend(XenbusState::Connected, timeout)?;
        self.watch_backend()
    }

    /// The token of our watch on the backend's `state`: one per device.
    fn token(&self) -> String {
        format!("xenpv-xenbus:{}", self.path)
    }

    fn state_node(&self) -> String {
        format!("{}/state", self.backend)
    }

    /// Sets the watch [`poll_backend`](Self::poll_backend) reads (done by
    /// [`connect`](Self::connect); for drivers doing the steps by hand).
    /// Its events are bounded by the client's per-token queue limit.
    pub fn watch_backend(&self) -> Result<(), XenbusError> {
        if self.watching.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.store.lock().watch(&self.state_node(), &self.token())?;
        self.watching.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Removes the watch and whatever of its events wait.
    fn unwatch_backend(&self, c: &mut Client<T>) -> Result<(), XenbusError> {
        if !self.watching.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let token = self.token();
        let r = c.unwatch(&self.state_node(), &token);
        c.discard_watch_events(&token);
        c.take_dropped_watch_events(&token);
        r.map_err(Into::into)
    }

    /// Without blocking: `Ok(None)` when the backend's `state` has not
    /// changed since the last call (no watch event); otherwise its state
    /// now, or [`BackendClosing`](XenbusError::BackendClosing) /
    /// [`BackendGone`](XenbusError::BackendGone) when the device is going
    /// away. Without a watch (before `connect`) it reads the state.
    pub fn poll_backend(&self) -> Result<Option<XenbusState>, XenbusError> {
        if !self.watching.load(Ordering::Relaxed) {
            return self.checked_state().map(Some);
        }
        if !self.drain_watch()? {
            return Ok(None);
        }
        self.checked_state().map(Some)
    }

    /// Takes the events of our watch on the other end's `state` (at most
    /// [`MAX_EVENTS_PER_POLL`]): whether it fired.
    fn drain_watch(&self) -> Result<bool, XenbusError> {
        let token = self.token();
        let mut c = self.store.lock();
        // Dropped events were changes too.
        let mut fired = c.take_dropped_watch_events(&token) > 0;
        for _ in 0..MAX_EVENTS_PER_POLL {
            if c.poll_watch_event_for(&token)?.is_none() {
                break;
            }
            fired = true;
        }
        Ok(fired)
    }

    /// The other end's state now; `None` when its `state` node is missing.
    fn peer_state(&self) -> Result<Option<XenbusState>, XenbusError> {
        match self.store.lock().read(&self.state_node()) {
            Ok(v) => XenbusState::parse(&v).map(Some),
            Err(XsError::Errno(e)) if e == Errno::ENOENT => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The backend's state now; [`BackendGone`](XenbusError::BackendGone)
    /// when its `state` node is missing.
    pub fn backend_state(&self) -> Result<XenbusState, XenbusError> {
        self.peer_state()?.ok_or(XenbusError::BackendGone)
    }

    fn checked_state(&self) -> Result<XenbusState, XenbusError> {
        match self.backend_state()? {
            s @ (XenbusState::Closing | XenbusState::Closed) => Err(XenbusError::BackendClosing(s)),
            s => Ok(s),
        }
    }

    /// Whether the backend is still with us (reads its `state`):
    /// [`BackendClosing`](XenbusError::BackendClosing) once it is closing
    /// or closed, [`BackendGone`](XenbusError::BackendGone) once its node
    /// is gone.
    pub fn check_backend(&self) -> Result<(), XenbusError> {
        self.checked_state().map(drop)
    }

    /// Waits (on a watch of the backend's `state`, up to `timeout`) until
    /// the backend reaches `want`:
    /// - `InitWait`: InitWait, Initialised or Connected; a closed or
    ///   missing backend is waited for (it may be reopening);
    /// - `Connected`: Connected; closing, closed or gone is an error;
    /// - `Closing`/`Closed`: that state or later, or gone (returned as
    ///   `Closed`);
    /// - any other state: exactly it.
    ///
    /// A `state` that is not a state fails at once.
    pub fn wait_backend(
        &self,
        want: XenbusState,
        timeout: Duration,
    ) -> Result<XenbusState, XenbusError> {
        self.wait_peer(want, timeout, verdict)
    }

    /// Waits (on a watch of the other end's `state`, up to `timeout`)
    /// until `judge(want, value)` is not [`Verdict::Wait`].
    fn wait_peer(
        &self,
        want: XenbusState,
        timeout: Duration,
        judge: fn(XenbusState, Option<&[u8]>) -> Verdict,
    ) -> Result<XenbusState, XenbusError> {
        let node = self.state_node();
        let mut last = Verdict::Wait(None);
        let ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        let r = self.store.lock().wait_node_until(&node, ns, |v| {
            last = judge(want, v);
            !matches!(last, Verdict::Wait(_))
        });
        match (r, last) {
            (Ok(_), Verdict::Done(s)) => Ok(s),
            (Ok(_), Verdict::Fail(e)) => Err(e),
            (Err(XsError::Timeout), Verdict::Wait(backend)) => Err(XenbusError::Timeout {
                waiting_for: want,
                backend,
            }),
            (Err(e), _) => Err(e.into()),
            // wait_node_until returns Ok only once `done` held.
            (Ok(_), Verdict::Wait(backend)) => Err(XenbusError::Timeout {
                waiting_for: want,
                backend,
            }),
        }
    }

    /// Closes our end: removes the backend watch, switches to `Closing`,
    /// waits (up to `timeout`) for the backend to close or disappear,
    /// switches to `Closed`. A backend that never answers still leaves us
    /// `Closed`; the timeout is then reported.
    pub fn close(&self, timeout: Duration) -> Result<(), XenbusError> {
        let unwatched = self.unwatch_backend(&mut self.store.lock());
        self.switch(XenbusState::Closing)?;
        let waited = self.wait_backend(XenbusState::Closing, timeout);
        self.switch(XenbusState::Closed)?;
        unwatched?;
        waited.map(drop)
    }
}

impl<T: Transport> Drop for Frontend<'_, T> {
    /// Removes the backend watch. The store is only tried: a drop while
    /// the caller holds the store's lock leaves the watch (its events then
    /// count against the client's queue of unwatched tokens) rather than
    /// spinning forever.
    fn drop(&mut self) {
        if self.watching.load(Ordering::Relaxed) {
            if let Some(mut c) = self.store.try_lock() {
                let _ = self.unwatch_backend(&mut c);
            }
        }
    }
}

/// How long a driver's close waits for its backend to close too (libxl
/// gives a detach 10 s).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A connected device's xenbus side, as its driver keeps it after the
/// handshake: without the store's transport in its type, so drivers are
/// not generic over it (`Box<dyn Connection>`).
pub trait Connection {
    /// `Err(BackendClosing | BackendGone)` once the backend is closing or
    /// gone ([`Frontend::poll_backend`]).
    fn check(&self) -> Result<(), XenbusError>;
    /// [`Frontend::close`].
    fn close(&self, timeout: Duration) -> Result<(), XenbusError>;
}

impl<T: Transport> Connection for Frontend<'_, T> {
    fn check(&self) -> Result<(), XenbusError> {
        self.poll_backend().map(drop)
    }
    fn close(&self, timeout: Duration) -> Result<(), XenbusError> {
        Frontend::close(self, timeout)
    }
}
