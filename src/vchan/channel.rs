//! A vchan endpoint in a running guest: the pages come from the grant
//! module (shared by the server, mapped by the client), the notifications
//! from an interdomain event channel, and the rendezvous from xenstore,
//! all as libxenvchan does it (tools/libs/vchan/init.c), so either end
//! can be a Linux program using libxenvchan.

use super::layout::{choose_orders, ring_offset, ring_pages, validate_orders, LayoutError, MAX_GRANTS};
use super::ring::{Progress, Ring, RingMemory, Side, VchanError, Which};
use crate::abi::vchan::*;
use crate::event::{self, EventError};
use crate::grant::{self, Access, GrantError, MappedPages, SharedPages, UnmapNotify, XenGrantOps};
use crate::shared_mem::SharedMem;
use crate::types::{DomId, EvtchnPort, GrantRef};
use crate::xenstore::{self, Client, Transport, XsError};
use alloc::format;
use alloc::string::String;
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

/// Result of a vchan operation.
pub type Result<T> = core::result::Result<T, ChannelError>;

/// The pages a channel lives in, owned by the ring; dropping them
/// releases (server) or unmaps (client) them, with their unmap notify.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per channel, never moved in a hot path
enum ChanMem {
    /// The server's shared pages: the control page, then `left` pages of
    /// the left ring, then the right ring's.
    Server { pages: SharedPages<'static, XenGrantOps>, left: usize },
    /// The client's mappings: the control page, and the rings of order
    /// 12 and up.
    Client {
        ctrl: MappedPages<'static, XenGrantOps>,
        left: Option<MappedPages<'static, XenGrantOps>>,
        right: Option<MappedPages<'static, XenGrantOps>>,
    },
}

impl RingMemory for ChanMem {
    fn ctrl(&self) -> SharedMem<'_> {
        let page = match self {
            ChanMem::Server { pages, .. } => pages.page(0),
            ChanMem::Client { ctrl, .. } => ctrl.page(0),
        };
        page.map_or(SharedMem::empty(), |p| p.shared_mem())
    }

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

/// Our end of the event channel, closed on drop.
#[derive(Debug)]
struct OwnedPort(EvtchnPort);

impl Drop for OwnedPort {
    fn drop(&mut self) {
        let _ = event::close(self.0);
    }
}

/// One end of a vchan. Dropping it closes the channel: our live flag
/// drops to 0, the peer is notified, and pages the peer still maps stay
/// pinned (never freed or reused) until it unmaps them.
pub struct Vchan {
    // Field order is drop order: the ring's pages are released (their
    // unmap notify signals `port`) before the port is closed.
    ring: Ring<ChanMem>,
    port: OwnedPort,
    peer: DomId,
}

impl core::fmt::Debug for Vchan {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Vchan").field("ring", &self.ring).field("port", &self.port.0).field("peer", &self.peer).finish()
    }
}

fn deadline(timeout: Option<Duration>) -> Option<u64> {
    timeout.map(crate::time::deadline_after)
}

/// How often a blocked wait checks that the peer domain still exists.
/// Xen sends no event when it closes a dead domain's end of an
/// interdomain channel (evtchn_close turns ours back into "unbound"), so
/// nothing else would wake us.
const PEER_CHECK: Duration = Duration::from_millis(100);

fn read_number<T: Transport>(xs: &mut Client<T>, path: String) -> Result<u32> {
    let text = xs.read_string(&path)?;
    match text.trim().parse::<u32>() {
        Ok(v) if v != 0 => Ok(v),
        _ => Err(ChannelError::BadNode { path }),
    }
}

impl Vchan {
    /// Offers a channel to `peer`: shares the control page (and ring pages
    /// for rings over 2 KiB), allocates an unbound event channel and
    /// publishes `<path>/ring-ref` and `<path>/event-channel`, readable by
    /// `peer`, in one transaction. `left_min` is the client→server ring's
    /// minimum size, `right_min` the server→client one's (libxenvchan's
    /// `libxenvchan_server_init`).
    pub fn server<T: Transport>(xs: &mut Client<T>, peer: DomId, path: &str, left_min: usize, right_min: usize) -> Result<Vchan> {
        let (lo, ro) = choose_orders(left_min, right_min)?;
        let (nl, nr) = (ring_pages(lo), ring_pages(ro));
        let grants = grant::grants()?;
        let port = OwnedPort(event::alloc_unbound(peer)?);
        let built = (|| {
            let mut pages = grants.share(peer, (1 + nl + nr) as u32, Access::ReadWrite)?;
            // The driver-side half of close: if we vanish, the client sees
            // srv_live drop and an event (libxenvchan uses the same notify).
            pages.set_unmap_notify(0, UnmapNotify { clear_byte: Some(SRV_LIVE), send_event: Some(port.0) })?;
            let ctrl = pages.page(0).map(|p| p.shared_mem()).ok_or(GrantError::InvalidArgument)?;
            let set = |off, v: u32| ctrl.store_u32(off, v, Ordering::Relaxed).map_err(|_| GrantError::InvalidArgument);
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
            Ok::<_, ChannelError>((pages, ring_ref))
        })();
        // On failure the pages are released, then the port is closed.
        let (pages, ring_ref) = built?;
        let ring = Ring::new(ChanMem::Server { pages, left: nl }, Side::Server)?;
        let port_no = port.0;
        let chan = Vchan { ring, port, peer };
        let me = xs.own_domid()?;
        let perms = [
            xenstore::Perm { domid: me, access: xenstore::Access::None },
            xenstore::Perm { domid: peer, access: xenstore::Access::Read },
        ];
        let (ref_path, port_path) = (format!("{path}/ring-ref"), format!("{path}/event-channel"));
        let (ref_val, port_val) = (format!("{}", ring_ref.0), format!("{}", port_no.0));
        xs.transaction(|tx| {
            tx.write(&ref_path, ref_val.as_bytes())?;
            tx.set_perms(&ref_path, &perms)?;
            tx.write(&port_path, port_val.as_bytes())?;
            tx.set_perms(&port_path, &perms)
        })?;
        Ok(chan)
    }

    /// Connects to the channel `server` offers at `path`: reads the
    /// handshake nodes, binds the event channel, maps the control page
    /// and the rings (the read ring read-only), checks the layout the
    /// server announced, and says "connected" (libxenvchan_client_init).
    pub fn client<T: Transport>(xs: &mut Client<T>, server: DomId, path: &str) -> Result<Vchan> {
        let ring_ref = read_number(xs, format!("{path}/ring-ref"))?;
        let remote_port = read_number(xs, format!("{path}/event-channel"))?;
        let grants = grant::grants()?;
        let port = OwnedPort(event::bind_interdomain(server, EvtchnPort(remote_port))?);
        let built = (|| {
            let mut ctrl_map = grants.map(server, &[GrantRef(ring_ref)], Access::ReadWrite)?;
            ctrl_map.set_unmap_notify(UnmapNotify { clear_byte: Some(CLI_LIVE), send_event: Some(port.0) })?;
            let ctrl = ctrl_map.page(0).map(|p| p.shared_mem()).ok_or(GrantError::InvalidArgument)?;
            let lo = ctrl.load_u16(LEFT_ORDER, Ordering::Acquire).unwrap_or(0);
            let ro = ctrl.load_u16(RIGHT_ORDER, Ordering::Acquire).unwrap_or(0);
            validate_orders(lo, ro)?;
            let (nl, nr) = (ring_pages(lo), ring_pages(ro));
            // Orders <= 20 keep this within the page; checked anyway.
            if nl + nr > MAX_GRANTS {
                return Err(ChannelError::Vchan(VchanError::Layout(LayoutError::BadOrder(lo.max(ro)))));
            }
            // Copy the grant list out once: the server may rewrite it.
            let refs: Vec<GrantRef> =
                (0..nl + nr).map(|i| GrantRef(ctrl.load_u32(GRANTS + 4 * i, Ordering::Relaxed).unwrap_or(0))).collect();
            let map_ring = |order: u16, refs: &[GrantRef], access| -> Result<_> {
                Ok(match ring_offset(order) {
                    Some(_) => None,
                    None => Some(grants.map(server, refs, access)?),
                })
            };
            // We write the left ring and only read the right one.
            let left = map_ring(lo, &refs[..nl], Access::ReadWrite)?;
            let right = map_ring(ro, &refs[nl..], Access::ReadOnly)?;
            Ok(Ring::new(ChanMem::Client { ctrl: ctrl_map, left, right }, Side::Client)?)
        })();
        // On failure the mappings are undone, then the port is closed.
        let ring = built?;
        ring.set_live(1);
        let _ = ring.memory().ctrl().store_u8(SRV_NOTIFY, NOTIFY_WRITE, Ordering::Release);
        let _ = event::send(port.0);
        Ok(Vchan { ring, port, peer: server })
    }

    /// A snapshot of the control page's header, for diagnostics:
    /// `[left cons, left prod, right cons, right prod]` and
    /// `[cli_live, srv_live, cli_notify, srv_notify]`.
    pub fn header(&self) -> ([u32; 4], [u8; 4]) {
        let ctrl = self.ring.memory().ctrl();
        let w = |o| ctrl.load_u32(o, Ordering::Acquire).unwrap_or(0);
        let b = |o| ctrl.load_u8(o, Ordering::Acquire).unwrap_or(0);
        (
            [w(LEFT + RING_CONS), w(LEFT + RING_PROD), w(RIGHT + RING_CONS), w(RIGHT + RING_PROD)],
            [b(CLI_LIVE), b(SRV_LIVE), b(CLI_NOTIFY), b(SRV_NOTIFY)],
        )
    }

    /// The peer's domain.
    pub fn peer(&self) -> DomId {
        self.peer
    }

    /// Our end of the event channel.
    pub fn port(&self) -> EvtchnPort {
        self.port.0
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
        self.ring.peer_live()
    }

    /// Bytes of the ring we read from and of the one we write to.
    pub fn ring_sizes(&self) -> (usize, usize) {
        (self.ring.read_capacity(), self.ring.write_capacity())
    }

    /// Server side: waits until a client has connected (`cli_live == 1`).
    pub fn wait_connected(&self, timeout: Option<Duration>) -> Result<()> {
        let live = || self.ring.memory().ctrl().load_u8(CLI_LIVE, Ordering::Acquire).unwrap_or(0);
        self.wait_for(deadline(timeout), || live() != 2)?;
        if live() == 1 { Ok(()) } else { Err(VchanError::Closed.into()) }
    }

    /// Whether the peer domain is known to be gone ([`Ring::peer_vanished`]).
    fn peer_gone(&self) -> bool {
        let connected = matches!(event::status(self.port.0), Ok(event::Status::Interdomain { .. }));
        self.ring.peer_vanished(connected)
    }

    /// Sleeps until `cond()` holds, the deadline passes, or the peer
    /// domain is found gone (checked every [`PEER_CHECK`]).
    fn wait_for(&self, until: Option<u64>, mut cond: impl FnMut() -> bool) -> Result<()> {
        loop {
            let slice = crate::time::deadline_after(PEER_CHECK);
            let step = until.map_or(slice, |u| u.min(slice));
            match event::wait_until(Some(step), &mut cond) {
                Err(EventError::Timeout) if until.is_none_or(|u| crate::time::now_ns() < u) => {
                    if self.peer_gone() {
                        return Err(ChannelError::PeerGone);
                    }
                    // Nothing happened for a whole slice: nudge the peer.
                    // By the protocol we only notify when asked, but a
                    // peer can miss a notification: dom0's
                    // vchan-socket-proxy (server mode) consumes the
                    // client's first write event in its connect wait and
                    // then sleeps in select() without looking at the ring.
                    // An extra event only makes a correct peer re-check.
                    let _ = event::send(self.port.0);
                }
                r => return Ok(r?),
            }
        }
    }

    /// Blocks until there is something to read (`read`), room to write
    /// (`write`), or the peer has closed (the next read or write then
    /// says so); libxenvchan_wait with the condition made explicit.
    pub fn wait(&self, read: bool, write: bool, timeout: Option<Duration>) -> Result<()> {
        let ring = &self.ring;
        self.wait_for(deadline(timeout), || {
            (read && ring.data_ready().map_or(true, |n| n > 0))
                || (write && ring.buffer_space().map_or(true, |n| n > 0))
                || !ring.peer_live()
        })
    }

    fn kick(&self, p: Progress) -> Result<usize> {
        if p.notify {
            event::send(self.port.0)?;
        }
        Ok(p.bytes)
    }

    /// Reads what is available, up to `buf.len()`, without blocking.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        let p = self.ring.read(buf)?;
        self.kick(p)
    }

    /// Writes what fits, up to `data.len()`, without blocking.
    pub fn write(&mut self, data: &[u8]) -> Result<usize> {
        let p = self.ring.write(data)?;
        self.kick(p)
    }

    /// Blocks (the vCPU sleeps on the event channel) until at least one
    /// byte is read, the peer closes, or the timeout passes.
    pub fn read_blocking(&mut self, buf: &mut [u8], timeout: Option<Duration>) -> Result<usize> {
        let until = deadline(timeout);
        loop {
            let n = self.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // `read` requested a notification; sleep until data or close.
            let ring = &self.ring;
            self.wait_for(until, || ring.data_ready().map_or(true, |n| n > 0) || !ring.peer_live())?;
        }
    }

    /// Reads exactly `buf.len()` bytes.
    pub fn read_exact(&mut self, buf: &mut [u8], timeout: Option<Duration>) -> Result<()> {
        let until = deadline(timeout);
        let mut got = 0;
        while got < buf.len() {
            let left = until.map(|d| Duration::from_nanos(d.saturating_sub(crate::time::now_ns())));
            got += self.read_blocking(&mut buf[got..], left)?;
        }
        Ok(())
    }

    /// Writes all of `data`, sleeping while the ring is full.
    pub fn write_all(&mut self, data: &[u8], timeout: Option<Duration>) -> Result<()> {
        let until = deadline(timeout);
        let mut sent = 0;
        while sent < data.len() {
            let n = self.write(&data[sent..])?;
            sent += n;
            if n == 0 {
                let ring = &self.ring;
                self.wait_for(until, || ring.buffer_space().map_or(true, |n| n > 0) || !ring.peer_live())?;
            }
        }
        Ok(())
    }

    /// Server side: closes the channel and removes its xenstore nodes.
    pub fn close_and_remove<T: Transport>(self, xs: &mut Client<T>, path: &str) -> Result<()> {
        drop(self);
        xs.rm(path)?;
        Ok(())
    }
}

impl Drop for Vchan {
    fn drop(&mut self) {
        // Our live flag first, so a peer woken by the event sees it.
        self.ring.set_live(0);
        let _ = event::send(self.port.0);
        // Then the fields drop: the ring's pages are released, applying
        // their unmap notify (a page the peer still maps stays pinned in
        // the grant module's pending list), and the port is closed.
    }
}
