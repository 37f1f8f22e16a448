//! A vchan endpoint: the pages come from the grant module (shared by the
//! server, mapped by the client), the notifications from an interdomain
//! event channel, and the rendezvous from xenstore, all as libxenvchan
//! does it (tools/libs/vchan/init.c, io.c), so either end can be a Linux
//! program using libxenvchan.
//!
//! The channel borrows its three backends ([`Backends`]): a grant table,
//! [`EventOps`] and a [`Rendezvous`] store. In a guest they are Xen's;
//! on the host, the fakes, so the handshake, blocking waits, peer death
//! and close are tested there (`tests` below).

use super::layout::{
    choose_orders, ring_offset, ring_pages, validate_orders, LayoutError, MAX_GRANTS,
};
use super::ring::{ChanMemory, Progress, Ring, Side, VchanError, Which};
use crate::abi::vchan::*;
use crate::event::{EventError, EventOps, Port, Status};
use crate::grant::{Access, GrantError, GrantOps, Grants, MappedPages, SharedPages, UnmapNotify};
use crate::shared_mem::SharedMem;
use crate::types::{DomId, EvtchnPort, GrantRef};
use crate::xenstore::{self, Client, Transport, XsError};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use core::time::Duration;

/// A vchan failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelError {
    /// The ring protocol failed (corrupt peer, closed, bad layout).
    Vchan(VchanError),
    /// Sharing or mapping the pages failed.
    Grant(GrantError),
    /// The event channel failed.
    Event(EventError),
    /// A xenstore operation failed.
    Xenstore(XsError),
    /// A xenstore node of the handshake holds no valid number.
    BadNode {
        /// The node's path.
        path: String,
    },
    /// Nothing happened before the deadline.
    Timeout,
    /// The peer domain went away without closing: our event channel is
    /// no longer connected to it. A destroyed domain clears no live flag
    /// (unmap notify is the dying peer's own kernel's job, or ours), so
    /// this is how a survivor learns of an `xl destroy`.
    PeerGone,
    /// `bytes` were read or written (the ring moved them), but the event
    /// telling the peer failed: the peer may not look until its next wake.
    NotifyFailed {
        /// Bytes moved by the call.
        bytes: usize,
        /// Why the event could not be sent.
        error: EventError,
    },
}

impl From<VchanError> for ChannelError {
    fn from(e: VchanError) -> Self {
        ChannelError::Vchan(e)
    }
}
impl From<LayoutError> for ChannelError {
    fn from(e: LayoutError) -> Self {
        ChannelError::Vchan(VchanError::Layout(e))
    }
}
impl From<GrantError> for ChannelError {
    fn from(e: GrantError) -> Self {
        ChannelError::Grant(e)
    }
}
impl From<EventError> for ChannelError {
    fn from(e: EventError) -> Self {
        match e {
            EventError::Timeout => ChannelError::Timeout,
            e => ChannelError::Event(e),
        }
    }
}
impl From<XsError> for ChannelError {
    fn from(e: XsError) -> Self {
        ChannelError::Xenstore(e)
    }
}

impl core::fmt::Display for ChannelError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ChannelError::Vchan(e) => write!(f, "{e}"),
            ChannelError::Grant(e) => write!(f, "sharing or mapping its pages failed: {e}"),
            ChannelError::Event(e) => write!(f, "its event channel failed: {e}"),
            ChannelError::Xenstore(e) => write!(f, "its xenstore handshake failed: {e}"),
            ChannelError::BadNode { path } => {
                write!(f, "xenstore node {path} holds no valid number")
            }
            ChannelError::Timeout => f.write_str("nothing happened before the deadline"),
            ChannelError::PeerGone => f.write_str("the peer domain went away without closing"),
            ChannelError::NotifyFailed { bytes, error } => {
                write!(
                    f,
                    "{bytes} bytes moved, but telling the peer failed: {error}"
                )
            }
        }
    }
}

/// Result of a vchan operation.
pub type Result<T> = core::result::Result<T, ChannelError>;

/// The xenstore operations of the vchan rendezvous, taking `&self` so a
/// server can keep its store to remove its nodes when it closes.
pub trait Rendezvous {
    /// Our domain id.
    fn own_domid(&self) -> core::result::Result<DomId, XsError>;
    /// A node's value as text.
    fn read_string(&self, path: &str) -> core::result::Result<String, XsError>;
    /// Writes every `(path, value)`, owned by us and readable by
    /// `reader` only, in one transaction.
    fn publish(&self, nodes: &[(&str, &str)], reader: DomId) -> core::result::Result<(), XsError>;
    /// Removes a node and everything below it.
    fn remove(&self, path: &str) -> core::result::Result<(), XsError>;
    /// Waits up to `timeout_ns` for node `path` to exist.
    fn wait_for(&self, path: &str, timeout_ns: u64) -> core::result::Result<(), XsError>;
}

impl<T: Transport> Rendezvous for spin::Mutex<Client<T>> {
    fn own_domid(&self) -> core::result::Result<DomId, XsError> {
        self.lock().own_domid()
    }
    fn read_string(&self, path: &str) -> core::result::Result<String, XsError> {
        self.lock().read_string(path)
    }
    fn publish(&self, nodes: &[(&str, &str)], reader: DomId) -> core::result::Result<(), XsError> {
        let mut xs = self.lock();
        let me = xs.own_domid()?;
        let perms = [
            xenstore::Perm {
                domid: me,
                access: xenstore::Access::None,
            },
            xenstore::Perm {
                domid: reader,
                access: xenstore::Access::Read,
            },
        ];
        xs.transaction(|tx| {
            for (path, value) in nodes {
                tx.write(path, value.as_bytes())?;
                tx.set_perms(path, &perms)?;
            }
            Ok(())
        })
    }
    fn remove(&self, path: &str) -> core::result::Result<(), XsError> {
        self.lock().rm(path)
    }
    /// On a watch ([`Client::wait_for_node`]), holding the store for the
    /// wait.
    fn wait_for(&self, path: &str, timeout_ns: u64) -> core::result::Result<(), XsError> {
        self.lock().wait_for_node(path, timeout_ns).map(drop)
    }
}

/// What a channel borrows: a grant table, event channels and a store.
#[derive(Debug)]
pub struct Backends<'b, G: GrantOps, E: EventOps, S: Rendezvous + ?Sized> {
    /// Shares (server) or maps (client) the pages.
    pub grants: &'b Grants<G>,
    /// The event channel and the clock.
    pub events: &'b E,
    /// The xenstore rendezvous.
    pub store: &'b S,
}

impl<G: GrantOps, E: EventOps, S: Rendezvous + ?Sized> Clone for Backends<'_, G, E, S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<G: GrantOps, E: EventOps, S: Rendezvous + ?Sized> Copy for Backends<'_, G, E, S> {}

/// The pages a channel lives in, owned by the ring; dropping them
/// releases (server) or unmaps (client) them, with their unmap notify.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per channel, never moved in a hot path
enum ChanMem<'b, G: GrantOps> {
    /// The server's shared pages: the control page, then `left` pages of
    /// the left ring, then the right ring's.
    Server {
        pages: SharedPages<'b, G>,
        left: usize,
    },
    /// The client's mappings: the control page, and the rings of order
    /// 12 and up.
    Client {
        ctrl: MappedPages<'b, G>,
        left: Option<MappedPages<'b, G>>,
        right: Option<MappedPages<'b, G>>,
    },
}

impl<G: GrantOps> ChanMemory for ChanMem<'_, G> {
    #[inline]
    fn ctrl(&self) -> SharedMem<'_> {
        let page = match self {
            ChanMem::Server { pages, .. } => pages.page(0),
            ChanMem::Client { ctrl, .. } => ctrl.page(0),
        };
        page.map_or(SharedMem::empty(), |p| p.shared_mem())
    }

    #[inline]
    fn ring_page(&self, which: Which, i: usize) -> Option<SharedMem<'_>> {
        let page = match (self, which) {
            (ChanMem::Server { left, .. }, Which::Left) if i >= *left => None,
            (ChanMem::Server { pages, .. }, Which::Left) => pages.page(1 + i),
            (ChanMem::Server { pages, left }, Which::Right) => pages.page(1 + left + i),
            (ChanMem::Client { left, .. }, Which::Left) => left.as_ref()?.page(i),
            (ChanMem::Client { right, .. }, Which::Right) => right.as_ref()?.page(i),
        };
        page.map(|p| p.shared_mem())
    }
}

/// One end of a vchan. Dropping it closes the channel: our live flag
/// drops to 0, the peer is notified, a server removes its xenstore nodes,
/// and pages the peer still maps stay pinned (never freed or reused)
/// until it unmaps them.
pub struct Vchan<'b, G: GrantOps, E: EventOps, S: Rendezvous + ?Sized> {
    // The ring's pages hold clones of `port` for their unmap notify, so
    // the port stays open until the last of them has been released.
    ring: Ring<ChanMem<'b, G>>,
    port: Arc<Port<&'b E>>,
    peer: DomId,
    /// A server's store and the directory it published, removed at close.
    published: Option<(&'b S, String)>,
    /// libxenvchan's `blocking` switch: `read`, `write`, `send` and `recv`
    /// wait instead of returning 0 (see [`set_blocking`](Vchan::set_blocking)).
    blocking: bool,
    /// libxenvchan's `server_persist` (see [`set_persist`](Vchan::set_persist)).
    persist: bool,
    /// Whether the peer has woken one of our sleeps, i.e. it reads its
    /// events: from then on an idle wait no longer nudges it.
    peer_wakes_us: core::sync::atomic::AtomicBool,
}

/// Whether the peer has closed for good: never for a persistent server,
/// whose client may come back.
fn ring_closed<M: ChanMemory>(ring: &Ring<M>, persist: bool) -> bool {
    !persist && !ring.peer_live()
}

impl<G: GrantOps, E: EventOps, S: Rendezvous + ?Sized> core::fmt::Debug for Vchan<'_, G, E, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Vchan")
            .field("ring_sizes", &self.ring_sizes())
            .field("port", &self.port.port())
            .field("peer", &self.peer)
            .finish()
    }
}

/// Where a channel is (libxenvchan_is_open's three answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// A server whose client has not connected yet.
    Waiting,
    /// Both ends are there.
    Connected,
    /// The peer has closed (or never will connect).
    Closed,
}

/// What ended a [`Vchan::wait_any_or`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// The channel at this index of `chans` has data, or its peer closed.
    Channel(usize),
    /// The caller's own condition holds (another event port fired, ...).
    Other,
}

/// The xenstore directory where Qubes' qrexec (libvchan over
/// `vchan_server_init(domain, port)`) offers a channel: the server's
/// `/local/domain/<server>/data/vchan/<client>/<port>`.
pub fn qubes_path(server: DomId, client: DomId, port: u32) -> String {
    format!("/local/domain/{}/data/vchan/{}/{port}", server.0, client.0)
}

/// How often a blocked wait checks that the peer domain still exists.
/// Xen sends no event when it closes a dead domain's end of an
/// interdomain channel (evtchn_close turns ours back into "unbound"), so
/// nothing else would wake us.
const PEER_CHECK: Duration = Duration::from_millis(100);

/// The wake-up for the next peer check: the end of the next-but-one
/// 2^26 ns (67 ms) period, 67-134 ms ahead. Waits that follow each other
/// within one period share the deadline, so the guest's timer (armed
/// only when its deadline changes) costs no hypercall per wait.
fn peer_check_deadline(now_ns: u64) -> u64 {
    const GRID: u64 = 1 << 26;
    const _: () = assert!(GRID * 3 / 2 >= PEER_CHECK.as_nanos() as u64);
    (now_ns / GRID).saturating_add(2).saturating_mul(GRID)
}

/// How long a blocking read or write polls the ring before it asks the
/// peer for an event and sleeps. A sleep and its wake-up cost a round
/// trip through Xen (tens of microseconds, ~100 under QEMU-TCG); a peer
/// running on another CPU usually moves the ring sooner than that.
const SPIN_NS: u64 = 20_000;

/// Looks at `ready` this many times between two clock reads while
/// spinning (natively about a microsecond): reading the clock costs more
/// than a look at the ring. A PV clock read is an `rdtsc`, which Xen
/// emulates when the host's TSC is not invariant: about 10 µs each under
/// QEMU, measured. With a look per clock read, 64-byte writes through an
/// order-10 ring ran at 10.6 MiB/s guest to guest; with 32 looks, 20.5;
/// with 256, 52.5.
const SPIN_LOOKS: u32 = 256;

/// The most a streaming call ([`Vchan::read`], [`Vchan::read_blocking`],
/// [`Vchan::write`], [`Vchan::write_all`]) moves in one step: a quarter of
/// the ring, and at least a page. Each step publishes its index (and
/// wakes the peer if it asked), so the peer copies one part while we copy
/// the next. Moving a whole ring's worth at once left the two sides taking
/// turns: guest to guest through an order-16 ring (64 KiB) with 64 KiB
/// writes and reads, 113 MiB/s; with 16 KiB steps, 429 MiB/s (median of 5
/// rounds each, QEMU-TCG). `send`/`recv` are all-or-nothing and move
/// their message in one step.
fn step_len(ring_bytes: usize, len: usize) -> usize {
    (ring_bytes / 4).max(4096).min(len)
}

/// A timeout turned into a deadline on the first clock read that needs
/// it: a call that completes without waiting never reads the clock (see
/// [`SPIN_LOOKS`]). The timeout therefore counts from the first wait.
#[derive(Debug, Clone, Copy)]
struct Deadline {
    timeout: Option<Duration>,
    at: Option<u64>,
}

impl Deadline {
    fn new(timeout: Option<Duration>) -> Self {
        Deadline { timeout, at: None }
    }

    /// The deadline (`None`: none), fixed from `now` the first time.
    fn from(&mut self, now: u64) -> Option<u64> {
        let t = self.timeout?;
        Some(*self.at.get_or_insert_with(|| {
            now.saturating_add(u64::try_from(t.as_nanos()).unwrap_or(u64::MAX))
        }))
    }

    /// The deadline, reading the clock only if it is not fixed yet.
    fn until<E: EventOps>(&mut self, events: &E) -> Option<u64> {
        self.timeout?;
        match self.at {
            Some(at) => Some(at),
            None => self.from(events.now_ns()),
        }
    }
}

fn read_number<S: Rendezvous + ?Sized>(store: &S, path: String) -> Result<u32> {
    let text = store.read_string(&path)?;
    match text.trim().parse::<u32>() {
        Ok(v) if v != 0 => Ok(v),
        _ => Err(ChannelError::BadNode { path }),
    }
}

impl<'b, G: GrantOps, E: EventOps, S: Rendezvous + ?Sized> Vchan<'b, G, E, S> {
    /// Offers a channel to `peer`: shares the control page (and ring pages
    /// for rings over 2 KiB), allocates an unbound event channel and
    /// publishes `<path>/ring-ref` and `<path>/event-channel`, readable by
    /// `peer`, in one transaction. `left_min` is the client→server ring's
    /// minimum size, `right_min` the server→client one's (libxenvchan's
    /// `libxenvchan_server_init`). Closing removes `path`.
    pub fn server(
        b: Backends<'b, G, E, S>,
        peer: DomId,
        path: &str,
        left_min: usize,
        right_min: usize,
    ) -> Result<Self> {
        let (lo, ro) = choose_orders(left_min, right_min)?;
        let (nl, nr) = (ring_pages(lo), ring_pages(ro));
        let port = Arc::new(Port::alloc_unbound(b.events, peer)?);
        let mut pages = b
            .grants
            .share(peer, (1 + nl + nr) as u32, Access::ReadWrite)?;
        // The driver-side half of close: if we vanish, the client sees
        // srv_live drop and an event (libxenvchan uses the same notify).
        pages.set_unmap_notify(
            0,
            UnmapNotify {
                clear_byte: Some(SRV_LIVE),
                send_event: Some(port.clone()),
            },
        )?;
        let ctrl = pages
            .page(0)
            .map(|p| p.shared_mem())
            .ok_or(GrantError::InvalidArgument)?;
        let set = |off, v: u32| {
            ctrl.store_u32(off, v, Ordering::Relaxed)
                .map_err(|_| GrantError::InvalidArgument)
        };
        for i in 0..nl + nr {
            set(GRANTS + 4 * i, pages.gref(1 + i).map_or(0, |g| g.0))?;
        }
        let _ = ctrl.store_u16(LEFT_ORDER, lo, Ordering::Relaxed);
        let _ = ctrl.store_u16(RIGHT_ORDER, ro, Ordering::Relaxed);
        let _ = ctrl.store_u8(CLI_LIVE, 2, Ordering::Relaxed);
        let _ = ctrl.store_u8(CLI_NOTIFY, NOTIFY_WRITE, Ordering::Relaxed);
        // Release: everything above is visible before srv_live says "up".
        let _ = ctrl.store_u8(SRV_LIVE, 1, Ordering::Release);
        let ring_ref = pages.gref(0).ok_or(GrantError::InvalidArgument)?;
        // From here on a failure drops the ring (releasing the pages),
        // then the port.
        let ring = Ring::new(ChanMem::Server { pages, left: nl }, Side::Server)?;
        let mut chan = Vchan {
            ring,
            port,
            peer,
            published: None,
            blocking: false,
            persist: false,
            peer_wakes_us: Default::default(),
        };
        let (ref_path, port_path) = (format!("{path}/ring-ref"), format!("{path}/event-channel"));
        let (ref_val, port_val) = (format!("{}", ring_ref.0), format!("{}", chan.port.port().0));
        b.store
            .publish(&[(&ref_path, &ref_val), (&port_path, &port_val)], peer)?;
        chan.published = Some((b.store, String::from(path)));
        Ok(chan)
    }

    /// Connects to the channel `server` offers at `path`: reads the
    /// handshake nodes, binds the event channel, maps the control page
    /// and the rings (the read ring read-only), checks the layout the
    /// server announced, and says "connected" (libxenvchan_client_init).
    pub fn client(b: Backends<'b, G, E, S>, server: DomId, path: &str) -> Result<Self> {
        let ring_ref = read_number(b.store, format!("{path}/ring-ref"))?;
        let remote_port = read_number(b.store, format!("{path}/event-channel"))?;
        let port = Arc::new(Port::bind_interdomain(
            b.events,
            server,
            EvtchnPort(remote_port),
        )?);
        let mut ctrl_map = b
            .grants
            .map(server, &[GrantRef(ring_ref)], Access::ReadWrite)?;
        ctrl_map.set_unmap_notify(UnmapNotify {
            clear_byte: Some(CLI_LIVE),
            send_event: Some(port.clone()),
        })?;
        let ctrl = ctrl_map
            .page(0)
            .map(|p| p.shared_mem())
            .ok_or(GrantError::InvalidArgument)?;
        let lo = ctrl.load_u16(LEFT_ORDER, Ordering::Acquire).unwrap_or(0);
        let ro = ctrl.load_u16(RIGHT_ORDER, Ordering::Acquire).unwrap_or(0);
        validate_orders(lo, ro)?;
        let (nl, nr) = (ring_pages(lo), ring_pages(ro));
        // Orders <= 20 keep this within the page; checked anyway.
        if nl + nr > MAX_GRANTS {
            return Err(ChannelError::Vchan(VchanError::Layout(
                LayoutError::BadOrder(lo.max(ro)),
            )));
        }
        // Copy the grant list out once: the server may rewrite it.
        let refs: Vec<GrantRef> = (0..nl + nr)
            .map(|i| {
                GrantRef(
                    ctrl.load_u32(GRANTS + 4 * i, Ordering::Relaxed)
                        .unwrap_or(0),
                )
            })
            .collect();
        let map_ring = |order: u16, refs: &[GrantRef], access| -> Result<_> {
            Ok(match ring_offset(order) {
                Some(_) => None,
                None => Some(b.grants.map(server, refs, access)?),
            })
        };
        // We write the left ring and only read the right one.
        let left = map_ring(lo, &refs[..nl], Access::ReadWrite)?;
        let right = map_ring(ro, &refs[nl..], Access::ReadOnly)?;
        let ring = Ring::new(
            ChanMem::Client {
                ctrl: ctrl_map,
                left,
                right,
            },
            Side::Client,
        )?;
        ring.set_live(1);
        let _ = ring
            .memory()
            .ctrl()
            .store_u8(SRV_NOTIFY, NOTIFY_WRITE, Ordering::Release);
        let _ = port.send();
        Ok(Vchan {
            ring,
            port,
            peer: server,
            published: None,
            blocking: false,
            persist: false,
            peer_wakes_us: Default::default(),
        })
    }

    /// [`client`](Self::client) once the server has offered the channel:
    /// waits (on a xenstore watch, not by polling) up to `timeout` for
    /// `<path>/event-channel`, which the server publishes in the same
    /// transaction as `ring-ref`.
    pub fn client_wait(
        b: Backends<'b, G, E, S>,
        server: DomId,
        path: &str,
        timeout: Duration,
    ) -> Result<Self> {
        let ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        b.store.wait_for(&format!("{path}/event-channel"), ns)?;
        Self::client(b, server, path)
    }

    /// A snapshot of the control page's header, for diagnostics:
    /// `[left cons, left prod, right cons, right prod]` and
    /// `[cli_live, srv_live, cli_notify, srv_notify]`.
    pub fn header(&self) -> ([u32; 4], [u8; 4]) {
        let ctrl = self.ring.memory().ctrl();
        let w = |o| ctrl.load_u32(o, Ordering::Acquire).unwrap_or(0);
        let b = |o| ctrl.load_u8(o, Ordering::Acquire).unwrap_or(0);
        (
            [
                w(LEFT + RING_CONS),
                w(LEFT + RING_PROD),
                w(RIGHT + RING_CONS),
                w(RIGHT + RING_PROD),
            ],
            [b(CLI_LIVE), b(SRV_LIVE), b(CLI_NOTIFY), b(SRV_NOTIFY)],
        )
    }

    /// The peer's domain.
    pub fn peer(&self) -> DomId {
        self.peer
    }

    /// Our end of the event channel.
    pub fn port(&self) -> EvtchnPort {
        self.port.port()
    }

    fn events(&self) -> &'b E {
        self.port.events()
    }

    fn deadline(&self, timeout: Option<Duration>) -> Option<u64> {
        timeout.map(|t| self.events().deadline_after(t))
    }

    /// Bytes readable now.
    pub fn data_ready(&self) -> Result<usize> {
        Ok(self.ring.data_ready()?)
    }

    /// Bytes writable now.
    pub fn buffer_space(&self) -> Result<usize> {
        Ok(self.ring.buffer_space()?)
    }

    /// Whether the peer is still there (a server counts a client that has
    /// not connected yet).
    pub fn is_open(&self) -> bool {
        self.persist || self.ring.peer_live()
    }

    /// Where the channel is: a server `Waiting` for its client,
    /// `Connected`, or `Closed` by the peer.
    pub fn state(&self) -> State {
        let ctrl = self.ring.memory().ctrl();
        match self.published {
            // Server: the client's flag (2 until it connects).
            Some(_) => match ctrl.load_u8(CLI_LIVE, Ordering::Acquire).unwrap_or(0) {
                2 => State::Waiting,
                1 => State::Connected,
                _ if self.persist => State::Waiting,
                _ => State::Closed,
            },
            None if self.ring.peer_live() => State::Connected,
            None => State::Closed,
        }
    }

    /// libxenvchan's blocking switch. Blocking, [`read`](Self::read)
    /// waits for at least one byte, [`write`](Self::write) for room for
    /// all of its data, [`send`](Self::send) and [`recv`](Self::recv) for
    /// all of theirs; without a timeout, until the peer closes or vanishes.
    /// Non-blocking (the default), each moves what it can now.
    pub fn set_blocking(&mut self, blocking: bool) {
        self.blocking = blocking;
    }

    /// Whether the channel blocks (see [`set_blocking`](Self::set_blocking)).
    pub fn is_blocking(&self) -> bool {
        self.blocking
    }

    /// libxenvchan's `server_persist`: a server that outlives its client.
    /// When the client closes, reads and writes find nothing to do instead
    /// of `Closed`, the state goes back to `Waiting`, the offer stays in
    /// xenstore, and a client of the same domain may connect again and
    /// carry on where the stream stopped. Only a server can persist.
    pub fn set_persist(&mut self, persist: bool) -> Result<()> {
        if persist && self.published.is_none() {
            return Err(GrantError::InvalidArgument.into());
        }
        self.persist = persist;
        Ok(())
    }

    /// Writes all of `data` if it fits in the ring now, else nothing
    /// (`Ok(0)`; wait with [`wait`](Self::wait) and try again):
    /// libxenvchan_send. Blocking, it waits until it fits. `data` larger
    /// than the ring can never fit: `InvalidArgument`.
    pub fn send(&mut self, data: &[u8]) -> Result<usize> {
        if data.len() > self.ring.write_capacity() {
            return Err(GrantError::InvalidArgument.into());
        }
        if self.blocking {
            let (ring, want, persist) = (&self.ring, data.len(), self.persist);
            self.wait_for(None, &mut || {
                ring.buffer_space().map_or(true, |n| n >= want) || ring_closed(ring, persist)
            })?;
        }
        if self.buffer_space()? < data.len() {
            return Ok(0);
        }
        self.write_now(data)
    }

    /// Reads exactly `buf.len()` bytes if that many are there now, else
    /// nothing (`Ok(0)`): libxenvchan_recv. Blocking, it waits for them.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        if buf.len() > self.ring.read_capacity() {
            return Err(GrantError::InvalidArgument.into());
        }
        if self.blocking {
            let (ring, want, persist) = (&self.ring, buf.len(), self.persist);
            self.wait_for(None, &mut || {
                ring.data_ready().map_or(true, |n| n >= want) || ring_closed(ring, persist)
            })?;
        }
        if self.data_ready()? < buf.len() {
            return Ok(0);
        }
        self.read_now(buf)
    }

    /// Waits until one of `chans` has something to read or its peer has
    /// closed, and returns its index (the first such): waiting on several
    /// channels at once, as libxenvchan's `fd_for_select` allows. All of
    /// them must share one event backend (one domain's). To wait on other
    /// event ports too, see [`wait_any_or`](Self::wait_any_or).
    pub fn wait_any(chans: &[&Self], timeout: Option<Duration>) -> Result<usize> {
        match Self::wait_any_or(chans, &mut || false, timeout)? {
            Woken::Channel(i) => Ok(i),
            // `other` never holds.
            Woken::Other => Err(ChannelError::Timeout),
        }
    }

    /// [`wait_any`](Self::wait_any), also ending when `other()` holds:
    /// the caller's own condition, re-checked after every event the
    /// domain receives, e.g. another event port having fired
    /// (`|| xen.events().take_fired(port)`) or a device having work. A
    /// ready channel comes first; `other` is asked only when none is.
    pub fn wait_any_or(
        chans: &[&Self],
        other: &mut dyn FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<Woken> {
        let first = chans.first().ok_or(GrantError::InvalidArgument)?;
        let events = first.events();
        let found = core::cell::Cell::new(None);
        let mut ready = || {
            let chan = chans.iter().position(|c| {
                c.ring.data_ready().map_or(true, |n| n > 0) || ring_closed(&c.ring, c.persist)
            });
            found.set(
                chan.map(Woken::Channel)
                    .or_else(|| other().then_some(Woken::Other)),
            );
            found.get().is_some()
        };
        // Ready already: no clock read for the deadline.
        if ready() {
            return found.get().ok_or(ChannelError::Timeout);
        }
        let deadline = timeout.map(|t| events.deadline_after(t));
        loop {
            let slice = events.deadline_after(PEER_CHECK);
            let step = deadline.map_or(slice, |d| d.min(slice));
            match events.wait_until(Some(step), &mut ready) {
                Ok(()) => return found.get().ok_or(ChannelError::Timeout),
                Err(EventError::Timeout) if deadline.is_none_or(|d| events.now_ns() < d) => {
                    if let Some(i) = chans.iter().position(|c| !c.persist && c.peer_gone()) {
                        return Ok(Woken::Channel(i));
                    }
                }
                Err(EventError::Timeout) => return Err(ChannelError::Timeout),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Bytes of the ring we read from and of the one we write to.
    pub fn ring_sizes(&self) -> (usize, usize) {
        (self.ring.read_capacity(), self.ring.write_capacity())
    }

    /// Server side: waits until a client has connected (`cli_live == 1`).
    pub fn wait_connected(&self, timeout: Option<Duration>) -> Result<()> {
        let live = || {
            self.ring
                .memory()
                .ctrl()
                .load_u8(CLI_LIVE, Ordering::Acquire)
                .unwrap_or(0)
        };
        self.wait_for(self.deadline(timeout), &mut || live() != 2)?;
        if live() == 1 {
            Ok(())
        } else {
            Err(VchanError::Closed.into())
        }
    }

    /// Whether the peer domain is known to be gone ([`Ring::peer_vanished`]).
    fn peer_gone(&self) -> bool {
        let connected = matches!(
            self.events().status(self.port.port()),
            Ok(Status::Interdomain { .. })
        );
        self.ring.peer_vanished(connected)
    }

    /// Sleeps until `cond()` holds, the deadline passes, or the peer
    /// domain is found gone (checked every [`PEER_CHECK`]).
    fn wait_for(&self, until: Option<u64>, cond: &mut dyn FnMut() -> bool) -> Result<()> {
        let events = self.events();
        if cond() {
            return Ok(());
        }
        loop {
            let slice = peer_check_deadline(events.now_ns());
            let step = until.map_or(slice, |u| u.min(slice));
            match events.wait_until(Some(step), cond) {
                Err(EventError::Timeout) if until.is_none_or(|u| events.now_ns() < u) => {
                    // A persistent server waits for the next client instead.
                    if !self.persist && self.peer_gone() {
                        return Err(ChannelError::PeerGone);
                    }
                    // Nothing happened for a whole slice and the peer has
                    // never woken us: nudge it. By the protocol we only
                    // notify when asked, but dom0's vchan-socket-proxy
                    // (server mode) consumes the client's first write
                    // event in its connect wait and then sleeps in
                    // select() without looking at the ring. An extra
                    // event only makes a correct peer re-check.
                    if !self.peer_wakes_us.load(Ordering::Relaxed) {
                        let _ = events.send(self.port.port());
                    }
                }
                Ok(()) => {
                    // We slept and the peer's move ended the wait.
                    self.peer_wakes_us.store(true, Ordering::Relaxed);
                    return Ok(());
                }
                r => return Ok(r?),
            }
        }
    }

    /// Polls `ready` for up to [`SPIN_NS`] (until the deadline at most);
    /// whether it became true. The clock is read only after the first
    /// [`SPIN_LOOKS`] looks (most waits for a running peer end sooner),
    /// then once per as many looks; that first read fixes the deadline.
    fn spin(&self, deadline: &mut Deadline, ready: &mut dyn FnMut() -> bool) -> bool {
        let events = self.events();
        let mut end = None;
        loop {
            for _ in 0..SPIN_LOOKS {
                if ready() {
                    return true;
                }
                core::hint::spin_loop();
            }
            let now = events.now_ns();
            let end = *end.get_or_insert_with(|| {
                let spin_end = now.saturating_add(SPIN_NS);
                deadline.from(now).map_or(spin_end, |u| u.min(spin_end))
            });
            if now >= end {
                return false;
            }
        }
    }

    /// Blocks until there is something to read (`read`), room to write
    /// (`write`), or the peer has closed (the next read or write then
    /// says so); libxenvchan_wait with the condition made explicit.
    pub fn wait(&self, read: bool, write: bool, timeout: Option<Duration>) -> Result<()> {
        let (ring, persist) = (&self.ring, self.persist);
        let mut ready = || {
            (read && ring.data_ready().map_or(true, |n| n > 0))
                || (write && ring.buffer_space().map_or(true, |n| n > 0))
                || ring_closed(ring, persist)
        };
        // Ready already: no clock read for the deadline.
        if ready() {
            return Ok(());
        }
        self.wait_for(self.deadline(timeout), &mut ready)
    }

    /// Tells the peer if it asked; the bytes were moved either way, and a
    /// failed event says how many.
    fn kick(&self, p: Progress) -> Result<usize> {
        if p.notify {
            if let Err(error) = self.events().send(self.port.port()) {
                return Err(ChannelError::NotifyFailed {
                    bytes: p.bytes,
                    error,
                });
            }
        }
        Ok(p.bytes)
    }

    /// Reads what is available, up to `buf.len()` and a quarter of the
    /// ring (at least a page: the peer copies its next step meanwhile);
    /// blocking (see [`set_blocking`](Self::set_blocking)), waits for at
    /// least one byte.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.blocking {
            return self.read_until(buf, &mut Deadline::new(None));
        }
        let n = step_len(self.ring.read_capacity(), buf.len());
        self.read_now(&mut buf[..n])
    }

    /// Writes what fits, up to `data.len()` and a quarter of the ring (at
    /// least a page); blocking, all of it.
    pub fn write(&mut self, data: &[u8]) -> Result<usize> {
        if self.blocking {
            self.write_all(data, None)?;
            return Ok(data.len());
        }
        let n = step_len(self.ring.write_capacity(), data.len());
        self.write_now(&data[..n])
    }

    fn read_now(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.read_step(buf, true)
    }

    fn write_now(&mut self, data: &[u8]) -> Result<usize> {
        self.write_step(data, true)
    }

    /// One non-blocking read; `request`: see [`Ring::read_with`].
    fn read_step(&mut self, buf: &mut [u8], request: bool) -> Result<usize> {
        let p = match self.ring.read_with(buf, request) {
            Err(VchanError::Closed) if self.persist => return Ok(0),
            p => p?,
        };
        self.kick(p)
    }

    fn write_step(&mut self, data: &[u8], request: bool) -> Result<usize> {
        let p = match self.ring.write_with(data, request) {
            Err(VchanError::Closed) if self.persist => return Ok(0),
            p => p?,
        };
        self.kick(p)
    }

    /// Blocks (the vCPU sleeps on the event channel) until at least one
    /// byte is read, the peer closes, or the timeout passes; reads up to
    /// `buf.len()` and a quarter of the ring (at least a page).
    pub fn read_blocking(&mut self, buf: &mut [u8], timeout: Option<Duration>) -> Result<usize> {
        self.read_until(buf, &mut Deadline::new(timeout))
    }

    fn read_until(&mut self, buf: &mut [u8], deadline: &mut Deadline) -> Result<usize> {
        let n = step_len(self.ring.read_capacity(), buf.len());
        let buf = &mut buf[..n];
        loop {
            // Without a notification request: bytes picked up while
            // spinning need no event from the peer.
            let n = self.read_step(buf, false)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let (ring, persist) = (&self.ring, self.persist);
            if self.spin(deadline, &mut || {
                ring.peek_ready().map_or(true, |n| n > 0) || ring_closed(ring, persist)
            }) {
                continue;
            }
            // About to sleep: ask for an event (read_now requests, then
            // re-reads), and sleep until data or close.
            let n = self.read_now(buf)?;
            if n > 0 {
                return Ok(n);
            }
            let until = deadline.until(self.events());
            let (ring, persist) = (&self.ring, self.persist);
            self.wait_for(until, &mut || {
                ring.data_ready().map_or(true, |n| n > 0) || ring_closed(ring, persist)
            })?;
        }
    }

    /// Reads exactly `buf.len()` bytes. On an error, `NotifyFailed`
    /// included, the bytes already read are in `buf` but not counted.
    pub fn read_exact(&mut self, buf: &mut [u8], timeout: Option<Duration>) -> Result<()> {
        let mut deadline = Deadline::new(timeout);
        let mut got = 0;
        while got < buf.len() {
            got += self.read_until(&mut buf[got..], &mut deadline)?;
        }
        Ok(())
    }

    /// Writes all of `data`, sleeping while the ring is full, a quarter of
    /// the ring at a time (at least a page), each step published at once
    /// so that the peer copies it while we copy the next. As for every
    /// blocking call here, the timeout counts from the first wait: a call
    /// that need not wait reads no clock.
    pub fn write_all(&mut self, data: &[u8], timeout: Option<Duration>) -> Result<()> {
        let mut deadline = Deadline::new(timeout);
        let mut sent = 0;
        // Spun already since the last sleep or progress: the next full
        // ring asks for an event and sleeps.
        let mut spun = false;
        while sent < data.len() {
            let step = step_len(self.ring.write_capacity(), data.len() - sent);
            let n = match self.write_step(&data[sent..sent + step], spun) {
                Ok(n) => n,
                Err(ChannelError::NotifyFailed { bytes, error }) => {
                    return Err(ChannelError::NotifyFailed {
                        bytes: sent + bytes,
                        error,
                    })
                }
                Err(e) => return Err(e),
            };
            sent += n;
            if n > 0 {
                spun = false;
                continue;
            }
            let (ring, persist) = (&self.ring, self.persist);
            if !spun {
                spun = true;
                // Full after the spin or not: the next write_step asks for
                // an event (and re-reads) before we sleep.
                let _ = self.spin(&mut deadline, &mut || {
                    ring.peek_space().map_or(true, |n| n > 0) || ring_closed(ring, persist)
                });
                continue;
            }
            let until = deadline.until(self.events());
            self.wait_for(until, &mut || {
                ring.buffer_space().map_or(true, |n| n > 0) || ring_closed(ring, persist)
            })?;
            spun = false;
        }
        Ok(())
    }
}

impl<G: GrantOps, E: EventOps, S: Rendezvous + ?Sized> Drop for Vchan<'_, G, E, S> {
    fn drop(&mut self) {
        // Our live flag first, so a peer woken by the event sees it.
        self.ring.set_live(0);
        let _ = self.events().send(self.port.port());
        // A server's nodes go (libxenvchan_close): nobody can find the
        // released grant through them any more.
        if let Some((store, path)) = self.published.take() {
            let _ = store.remove(&path);
        }
        // Then the fields drop: the ring's pages are released, applying
        // their unmap notify (a page the peer still maps stays pinned in
        // the grant module's pending list), and the port is closed.
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
