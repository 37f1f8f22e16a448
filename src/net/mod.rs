//! A network front end (`xen/include/public/io/netif.h`, Linux's
//! `xen-netfront`) and its [`smoltcp`] device: Ethernet frames to and from
//! a backend in another domain (dom0's `xen-netback`, which bridges them).
//!
//! [`NetFront`] owns two rings (tx, rx), each in a page granted to the
//! backend, one event channel, and two pools of pages granted for the
//! device's life:
//! - **rx** (`feature-rx-copy`, the only mode modern backends offer: page
//!   flipping is obsolete): every pool page stays posted in an rx request;
//!   the backend copies a frame into it and answers with the frame's
//!   offset and length, we copy it out and post the page again;
//! - **tx**: a frame is copied into a free pool page (granted read-only)
//!   and sent; the page is reused after the backend's response, never
//!   regranted per frame.
//!
//! Everything the backend writes is checked: a response must name a
//! request in flight, an rx frame must lie inside its page, a status must
//! be a length or a known error. A bad response drops the frame and is
//! counted ([`NetStats`]), a broken ring index breaks the device
//! ([`NetError::Ring`]). Scatter-gather, GSO and checksum offload are not
//! negotiated, so every frame fits one page (MTU 1500).
//!
//! [`NetFront::connect`] does the xenbus handshake (mac from our device
//! node, `ip` from the backend's, which `xl`'s `vif = ['ip=...']` sets);
//! [`NetFront`] implements [`smoltcp::phy::Device`].

use crate::event::{EventError, EventOps, Port};
use crate::grant::{Access, GrantError, GrantOps, Grants, SharedPages};
use crate::ring::{FrontRing, Message, RingError};
use crate::types::{DomId, GrantRef};
use crate::xenbus::{
    link_error, Announce, Down, Frontend, Keys, Link, LinkError, Opening, XenbusError,
};
use crate::xenstore::{Client, Transport};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

mod stack;
#[cfg(all(test, not(loom)))]
mod tests;

/// The TCP/IP stack the device plugs into, re-exported so applications use
/// the same version.
pub use smoltcp;
pub use stack::{Stack, StackError};

use crate::abi::netif::*;
pub use crate::abi::netif::{
    NETIF_RSP_DROPPED, NETIF_RSP_ERROR, NETIF_RSP_OKAY, NETRXF_EXTRA_INFO, NETRXF_MORE_DATA,
    NETTXF_MORE_DATA,
};

/// The largest Ethernet frame we send or take (MTU 1500 + header).
pub const MAX_FRAME: usize = 1514;
const PAGE: usize = 4096;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn put(out: &mut [u8], at: usize, bytes: &[u8]) {
    out[at..at + bytes.len()].copy_from_slice(bytes);
}

/// `struct netif_tx_request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxRequest {
    pub gref: GrantRef,
    pub offset: u16,
    pub flags: u16,
    pub id: u16,
    pub size: u16,
}

impl Message for TxRequest {
    const SIZE: usize = NETIF_TX_REQUEST_SIZE;
    fn encode(&self, out: &mut [u8]) {
        put(out, TX_REQ_GREF, &self.gref.0.to_le_bytes());
        put(out, TX_REQ_OFFSET, &self.offset.to_le_bytes());
        put(out, TX_REQ_FLAGS, &self.flags.to_le_bytes());
        put(out, TX_REQ_ID, &self.id.to_le_bytes());
        put(out, TX_REQ_SIZE, &self.size.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        TxRequest {
            gref: GrantRef(u32_at(b, TX_REQ_GREF)),
            offset: u16_at(b, TX_REQ_OFFSET),
            flags: u16_at(b, TX_REQ_FLAGS),
            id: u16_at(b, TX_REQ_ID),
            size: u16_at(b, TX_REQ_SIZE),
        }
    }
}

/// `struct netif_tx_response`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxResponse {
    pub id: u16,
    pub status: i16,
}

impl Message for TxResponse {
    const SIZE: usize = NETIF_TX_RESPONSE_SIZE;
    fn encode(&self, out: &mut [u8]) {
        put(out, TX_RSP_ID, &self.id.to_le_bytes());
        put(out, TX_RSP_STATUS, &self.status.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        TxResponse {
            id: u16_at(b, TX_RSP_ID),
            status: u16_at(b, TX_RSP_STATUS) as i16,
        }
    }
}

/// `struct netif_rx_request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxRequest {
    pub id: u16,
    pub gref: GrantRef,
}

impl Message for RxRequest {
    const SIZE: usize = NETIF_RX_REQUEST_SIZE;
    fn encode(&self, out: &mut [u8]) {
        out.fill(0);
        put(out, RX_REQ_ID, &self.id.to_le_bytes());
        put(out, RX_REQ_GREF, &self.gref.0.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        RxRequest {
            id: u16_at(b, RX_REQ_ID),
            gref: GrantRef(u32_at(b, RX_REQ_GREF)),
        }
    }
}

/// `struct netif_rx_response`: `status` is the frame's length when
/// positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxResponse {
    pub id: u16,
    pub offset: u16,
    pub flags: u16,
    pub status: i16,
}

impl Message for RxResponse {
    const SIZE: usize = NETIF_RX_RESPONSE_SIZE;
    fn encode(&self, out: &mut [u8]) {
        put(out, RX_RSP_ID, &self.id.to_le_bytes());
        put(out, RX_RSP_OFFSET, &self.offset.to_le_bytes());
        put(out, RX_RSP_FLAGS, &self.flags.to_le_bytes());
        put(out, RX_RSP_STATUS, &self.status.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        RxResponse {
            id: u16_at(b, RX_RSP_ID),
            offset: u16_at(b, RX_RSP_OFFSET),
            flags: u16_at(b, RX_RSP_FLAGS),
            status: u16_at(b, RX_RSP_STATUS) as i16,
        }
    }
}

/// Why the device failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    /// A frame longer than [`MAX_FRAME`] or empty.
    BadFrame(usize),
    /// A ring index broke the protocol: the device is broken.
    Ring(RingError),
    /// The backend domain is gone.
    BackendGone,
    /// The backend is closing (the vif was detached): link down.
    BackendClosing,
    /// An earlier error broke the device.
    Broken,
    /// The `mac` node is not a MAC address.
    BadMac(String),
    /// The xenbus handshake.
    Xenbus(XenbusError),
    /// Sharing pages.
    Grant(GrantError),
    /// The event channel.
    Event(EventError),
}

impl core::fmt::Display for NetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NetError::BadFrame(n) => write!(f, "a {n}-byte frame (1 to {MAX_FRAME} bytes go)"),
            NetError::Ring(e) => write!(f, "a ring broke the protocol: {e}"),
            NetError::BackendGone => f.write_str("the backend domain is gone"),
            NetError::BackendClosing => f.write_str("the backend is closing: the vif was detached"),
            NetError::Broken => f.write_str("an earlier error broke the device"),
            NetError::BadMac(v) => write!(f, "the mac node holds {v:?}, not a MAC address"),
            NetError::Xenbus(e) => write!(f, "its xenbus handshake failed: {e}"),
            NetError::Grant(e) => write!(f, "sharing its pages failed: {e}"),
            NetError::Event(e) => write!(f, "its event channel failed: {e}"),
        }
    }
}

impl From<GrantError> for NetError {
    fn from(e: GrantError) -> Self {
        NetError::Grant(e)
    }
}

impl From<EventError> for NetError {
    fn from(e: EventError) -> Self {
        NetError::Event(e)
    }
}

impl From<RingError> for NetError {
    fn from(e: RingError) -> Self {
        NetError::Ring(e)
    }
}

impl From<XenbusError> for NetError {
    fn from(e: XenbusError) -> Self {
        link_error(e)
    }
}

impl LinkError for NetError {
    fn down(why: Down) -> Self {
        match why {
            Down::Closing => NetError::BackendClosing,
            Down::Gone => NetError::BackendGone,
        }
    }
    fn broken() -> Self {
        NetError::Broken
    }
    fn xenbus(e: XenbusError) -> Self {
        NetError::Xenbus(e)
    }
    fn is_down(&self) -> Option<Down> {
        match self {
            NetError::BackendClosing => Some(Down::Closing),
            NetError::BackendGone => Some(Down::Gone),
            _ => None,
        }
    }
}

/// Counters of what went through, and what the backend got wrong.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    pub tx_frames: u64,
    pub rx_frames: u64,
    /// tx responses with an error status (`NETIF_RSP_ERROR`/`DROPPED`).
    pub tx_errors: u64,
    /// rx responses dropped: error status, bad id, a frame outside its
    /// page, or flags we did not negotiate.
    pub rx_dropped: u64,
}

/// Sizes of the pools.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// rx pages posted to the backend (frames it can deliver before we
    /// take them).
    pub rx_buffers: usize,
    /// tx pages (frames in flight).
    pub tx_buffers: usize,
    /// How long the handshake waits for the backend.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rx_buffers: 64,
            tx_buffers: 32,
            timeout: Duration::from_secs(30),
        }
    }
}

/// How often the link (backend state, event channel) is checked.
const LINK_CHECK: Duration = Duration::from_millis(250);

/// The keys the frontend publishes (`tx-ring-ref`, `rx-ring-ref`,
/// `event-channel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrontKeys {
    pub tx_ring_ref: GrantRef,
    pub rx_ring_ref: GrantRef,
    pub event_channel: crate::types::EvtchnPort,
}

impl FrontKeys {
    /// The xenstore nodes: the rings, the event channel, and the features
    /// this front end asks for or refuses.
    pub fn nodes(&self) -> Keys {
        let mut k = Keys::new();
        k.set("tx-ring-ref", self.tx_ring_ref.0)
            .set("rx-ring-ref", self.rx_ring_ref.0)
            .set("event-channel", self.event_channel.0)
            .set("request-rx-copy", 1)
            .set("feature-rx-notify", 1)
            .set("feature-sg", 0)
            .set("feature-gso-tcpv4", 0)
            // Full checksums in every frame we get: smoltcp checks them
            // (without this netback passes dom0's partial ones, csum_blank).
            .set("feature-no-csum-offload", 1)
            .set("feature-ipv6-csum-offload", 0);
        k
    }
}

/// The front end of one virtual network interface.
pub struct NetFront<'g, G: GrantOps, E: EventOps> {
    /// The xenbus side (connected by `connect`): the failure latch, the
    /// link checks, closed at the end. First, so that it is dropped (the
    /// device closed) before the pages are.
    link: Link<'g>,
    tx: FrontRing<SharedPages<'g, G>, TxRequest, TxResponse>,
    rx: FrontRing<SharedPages<'g, G>, RxRequest, RxResponse>,
    tx_pages: SharedPages<'g, G>,
    rx_pages: SharedPages<'g, G>,
    /// tx pool ids free to use.
    tx_free: Vec<u16>,
    /// rx ids posted to the backend.
    rx_posted: Vec<bool>,
    port: Port<&'g E>,
    backend: DomId,
    mac: [u8; 6],
    stats: NetStats,
    /// The backend's `ip` node.
    ip: Option<String>,
    /// The buffer smoltcp writes a frame into before it is copied to a
    /// tx page: kept, not allocated per frame.
    tx_buf: Vec<u8>,
}

impl<G: GrantOps, E: EventOps> core::fmt::Debug for NetFront<'_, G, E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NetFront")
            .field("backend", &self.backend)
            .field("mac", &self.mac)
            .field("stats", &self.stats)
            .finish()
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`: six bytes of two hex digits each (no
/// sign, which `from_str_radix` would take).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in mac.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

impl<'g, G: GrantOps, E: EventOps> NetFront<'g, G, E> {
    /// Grants the rings and pools to `backend`, posts every rx page and
    /// allocates the event channel.
    pub fn new(
        grants: &'g Grants<G>,
        events: &'g E,
        backend: DomId,
        mac: [u8; 6],
        opts: Options,
    ) -> Result<Self, NetError> {
        let tx = FrontRing::init(grants.share(backend, 1, Access::ReadWrite)?)?;
        let rx = FrontRing::init(grants.share(backend, 1, Access::ReadWrite)?)?;
        let n_tx = opts.tx_buffers.clamp(1, tx.size() as usize);
        let n_rx = opts.rx_buffers.clamp(1, rx.size() as usize);
        let tx_pages = grants.share(backend, n_tx as u32, Access::ReadOnly)?;
        let rx_pages = grants.share(backend, n_rx as u32, Access::ReadWrite)?;
        let port = Port::alloc_unbound(events, backend)?;
        let mut nf = NetFront {
            link: Link::unconnected(LINK_CHECK),
            tx,
            rx,
            tx_pages,
            rx_pages,
            tx_free: (0..n_tx as u16).rev().collect(),
            rx_posted: alloc::vec![false; n_rx],
            port,
            backend,
            mac,
            stats: NetStats::default(),
            ip: None,
            tx_buf: Vec::new(),
        };
        for id in 0..n_rx as u16 {
            nf.post_rx(id)?;
        }
        // Published at connect; the backend reads req_prod once connected.
        nf.rx.push_requests_and_check_notify();
        Ok(nf)
    }

    fn post_rx(&mut self, id: u16) -> Result<(), NetError> {
        let gref = self
            .rx_pages
            .gref(id as usize)
            .ok_or(GrantError::InvalidArgument)?;
        // One request per pool page and as many slots as pages: room.
        if self.rx.push_request(&RxRequest { id, gref }).is_ok() {
            self.rx_posted[id as usize] = true;
        }
        Ok(())
    }

    /// Connects to virtual interface `devid` (`device/vif/<devid>`):
    /// waits for netback's InitWait, publishes the rings, the event
    /// channel and `request-rx-copy`/`feature-rx-notify`, switches to
    /// Connected and waits for the backend to connect.
    pub fn connect<T: Transport>(
        grants: &'g Grants<G>,
        events: &'g E,
        store: &'g spin::Mutex<Client<T>>,
        devid: u32,
        opts: Options,
    ) -> Result<Self, NetError> {
        let mut mac = [0; 6];
        let bus = Opening::initialise(store, "vif", devid, opts.timeout, |bus| {
            // A device the toolstack is detaching (libxl sets the
            // backend's `online` to 0 first) is not reconnected: writing
            // Initialising would make netback reopen a vif that is about
            // to be removed.
            if bus.read_backend("online")?.is_some_and(|v| v.trim() == "0") {
                return Err(NetError::BackendClosing);
            }
            let node = store
                .lock()
                .read_string(&format!("{}/mac", bus.path()))
                .map_err(XenbusError::from)?;
            mac = parse_mac(&node).ok_or(NetError::BadMac(node))?;
            Ok(())
        })?;
        let mut nf = NetFront::new(grants, events, bus.backend_id(), mac, opts)?;
        // On an error the device is closed (the backend unmaps) before
        // `nf`'s pages go back.
        nf.link = bus.complete(LINK_CHECK, |bus| nf.finish_connect(bus, opts.timeout))?;
        // Tell the backend about the posted rx requests.
        let _ = nf.port.send();
        Ok(nf)
    }

    /// Handshake step 3: netfront announces Connected with its keys; then
    /// the backend's `ip`.
    fn finish_connect<T: Transport>(
        &mut self,
        bus: &Frontend<'_, T>,
        timeout: Duration,
    ) -> Result<(), NetError> {
        bus.connect(Announce::Connected, &self.keys().nodes().pairs(), timeout)?;
        self.ip = bus.read_backend("ip")?;
        Ok(())
    }

    /// What to publish under `device/vif/<devid>/`.
    pub fn keys(&self) -> FrontKeys {
        FrontKeys {
            tx_ring_ref: self.tx.memory().gref(0).unwrap_or(GrantRef(0)),
            rx_ring_ref: self.rx.memory().gref(0).unwrap_or(GrantRef(0)),
            event_channel: self.port.port(),
        }
    }

    /// The event clock, in ns (smoltcp's timestamps).
    pub fn now_ns(&self) -> u64 {
        self.port.events().now_ns()
    }

    /// The address the toolstack gave the interface (`ip=` in the xl vif
    /// spec, the backend's `ip` node), if any.
    pub fn configured_ip(&self) -> Option<core::net::Ipv4Addr> {
        self.ip
            .as_deref()
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
    }

    /// Our MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The backend domain.
    pub fn backend(&self) -> DomId {
        self.backend
    }

    /// Counters.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    fn fail<T>(&mut self, e: NetError) -> Result<T, NetError> {
        self.link.fail(e)
    }

    /// At most every [`LINK_CHECK`]: the backend still there and open.
    pub(crate) fn check_link(&mut self) -> Result<(), NetError> {
        // A link that went down says so every time (smoltcp's device
        // calls, which may be the first to see it, cannot report).
        let events = self.port.events();
        self.link.check::<NetError>(events.now_ns())?;
        if self.link.is_connected() {
            self.link
                .check_peer::<NetError, _>(events, self.port.port())?;
        }
        Ok(())
    }

    /// Takes tx responses: their pages are free again.
    fn reap_tx(&mut self) -> Result<(), NetError> {
        loop {
            let rsp = match self.tx.poll_response() {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(()),
                Err(e) => return self.fail(e.into()),
            };
            let id = rsp.id as usize;
            // In flight: a pool id not on the free list.
            if id >= self.tx_pages.len() || self.tx_free.contains(&rsp.id) {
                self.stats.tx_errors += 1;
                continue;
            }
            if rsp.status != NETIF_RSP_OKAY {
                self.stats.tx_errors += 1;
            }
            self.tx_free.push(rsp.id);
        }
    }

    /// Sends one Ethernet frame. `Ok(false)`: no tx page is free (the
    /// backend has not answered earlier frames yet); try again later.
    pub fn send(&mut self, frame: &[u8]) -> Result<bool, NetError> {
        self.check_link()?;
        if frame.is_empty() || frame.len() > MAX_FRAME {
            return Err(NetError::BadFrame(frame.len()));
        }
        self.reap_tx()?;
        let Some(id) = self.tx_free.pop() else {
            return Ok(false);
        };
        self.tx_pages.write_at(id as usize * PAGE, frame)?;
        let gref = self
            .tx_pages
            .gref(id as usize)
            .ok_or(GrantError::InvalidArgument)?;
        let req = TxRequest {
            gref,
            offset: 0,
            flags: 0,
            id,
            size: frame.len() as u16,
        };
        if self.tx.push_request(&req).is_err() {
            // The ring has as many slots as the pool has pages at least.
            self.tx_free.push(id);
            return Ok(false);
        }
        if self.tx.push_requests_and_check_notify() {
            if let Err(e) = self.port.send() {
                return self.fail(e.into());
            }
        }
        self.stats.tx_frames += 1;
        Ok(true)
    }

    /// Copies the next received frame into `buf` (at least [`MAX_FRAME`]
    /// bytes) and returns its length; `None` when none has arrived.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, NetError> {
        self.take_rx(buf.len(), |pages, at, len| {
            pages.read_at(at, &mut buf[..len]).map(|()| len)
        })
    }

    /// The next received frame, in a buffer of its own length (one copy
    /// out of the granted page, nothing allocated when none arrived).
    fn recv_frame(&mut self) -> Result<Option<Vec<u8>>, NetError> {
        self.check_link()?;
        // The ring first: an idle poll allocates nothing.
        if !self.rx.response_published() {
            return Ok(None);
        }
        self.take_rx(MAX_FRAME, |pages, at, len| {
            let mut frame = alloc::vec![0u8; len];
            pages.read_at(at, &mut frame).map(|()| frame)
        })
    }

    /// Takes rx responses up to the first good frame (at most `max`
    /// bytes), which `copy` takes out of the pool (`copy(pages, byte
    /// offset, length)`); every page seen is posted again.
    fn take_rx<T>(
        &mut self,
        max: usize,
        mut copy: impl FnMut(&SharedPages<'g, G>, usize, usize) -> Result<T, GrantError>,
    ) -> Result<Option<T>, NetError> {
        self.check_link()?;
        let mut reposted = false;
        let got = loop {
            let rsp = match self.rx.poll_response() {
                Ok(Some(r)) => r,
                Ok(None) => break None,
                Err(e) => return self.fail(e.into()),
            };
            let id = rsp.id as usize;
            if id >= self.rx_posted.len() || !self.rx_posted[id] {
                // Names no posted page: nothing to copy or repost.
                self.stats.rx_dropped += 1;
                continue;
            }
            self.rx_posted[id] = false;
            let (off, len) = (rsp.offset as usize, rsp.status as isize);
            let ok = len > 0
                && rsp.flags & (NETRXF_MORE_DATA | NETRXF_EXTRA_INFO) == 0
                && off + len as usize <= PAGE
                && len as usize <= max;
            let result = if ok {
                Some(copy(&self.rx_pages, id * PAGE + off, len as usize)?)
            } else {
                self.stats.rx_dropped += 1;
                None
            };
            self.post_rx(rsp.id)?;
            reposted = true;
            if let Some(t) = result {
                self.stats.rx_frames += 1;
                break Some(t);
            }
        };
        if reposted && self.rx.push_requests_and_check_notify() {
            if let Err(e) = self.port.send() {
                return self.fail(e.into());
            }
        }
        Ok(got)
    }

    /// Sleeps until the backend signals (a frame arrived or tx pages came
    /// back) or `timeout` passes.
    pub fn wait(&mut self, timeout: Duration) -> Result<(), NetError> {
        self.check_link()?;
        let (rx_more, tx_more) = match (
            self.rx.final_check_for_responses(),
            self.tx.final_check_for_responses(),
        ) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return self.fail(e.into()),
        };
        if rx_more || tx_more {
            return Ok(());
        }
        let events = self.port.events();
        let deadline = events.deadline_after(timeout.min(LINK_CHECK));
        let (rx, tx) = (&self.rx, &self.tx);
        match events.wait_until(Some(deadline), &mut || {
            rx.response_published() || tx.response_published()
        }) {
            Ok(()) | Err(EventError::Timeout) => Ok(()),
            Err(e) => self.fail(e.into()),
        }
    }

    /// Closes the xenbus connection (also done on drop).
    pub fn close(mut self) -> Result<(), NetError> {
        self.link.close()
    }
}

/// A network interface of this domain over Xen's services:
/// `NetFront::connect(xen.grants()?, xen.events(), xen.store()?, 0, Default::default())`.
#[cfg(target_os = "none")]
pub type XenNetFront = NetFront<'static, crate::grant::XenGrantOps, crate::event::XenEvents>;

// ---- smoltcp ----

/// A received frame, handed to smoltcp.
#[derive(Debug)]
pub struct RxToken {
    frame: Vec<u8>,
}

impl smoltcp::phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.frame)
    }
}

/// Room to send one frame.
#[derive(Debug)]
pub struct TxToken<'d, 'g, G: GrantOps, E: EventOps> {
    dev: &'d mut NetFront<'g, G, E>,
}

impl<G: GrantOps, E: EventOps> smoltcp::phy::TxToken for TxToken<'_, '_, G, E> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        // Zeroed each time: bytes smoltcp leaves unwritten must not
        // carry an earlier frame's to the backend.
        let mut frame = core::mem::take(&mut self.dev.tx_buf);
        frame.clear();
        frame.resize(len, 0);
        let r = f(&mut frame);
        // smoltcp has no way to hear of a failure here: a frame that
        // cannot go (broken device) is dropped, as a full NIC would.
        let _ = self.dev.send(&frame);
        self.dev.tx_buf = frame;
        r
    }
}

impl<'g, G: GrantOps, E: EventOps> smoltcp::phy::Device for NetFront<'g, G, E> {
    type RxToken<'a>
        = RxToken
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, 'g, G, E>
    where
        Self: 'a;

    fn receive(
        &mut self,
        _: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        // smoltcp takes the frame as a slice: the one copy is out of the
        // granted page (which the backend may rewrite at any time, so it
        // is never lent out).
        let frame = self.recv_frame().ok()??;
        // With no tx page free, a frame smoltcp sends in answer is dropped
        // (`send` returns false), as a full NIC would drop it.
        Some((RxToken { frame }, TxToken { dev: self }))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        if self.link.is_broken() || self.reap_tx().is_err() || self.tx_free.is_empty() {
            return None;
        }
        Some(TxToken { dev: self })
    }

    fn capabilities(&self) -> smoltcp::phy::DeviceCapabilities {
        let mut caps = smoltcp::phy::DeviceCapabilities::default();
        caps.medium = smoltcp::phy::Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        caps.max_burst_size = Some(self.tx_pages.len().max(1));
        caps
    }
}
