//! The vchan stream protocol over a control page and two ring buffers.
//!
//! Mirrors libxenvchan's `io.c` semantics (read the peer's index, request
//! a notification, re-read; publish data before the index; notify only if
//! the peer asked) with two hardenings:
//! - our own index is kept privately and only ever *written* to the
//!   shared page, so a peer scribbling on it cannot make us re-read or
//!   skip data;
//! - an impossible peer index is [`VchanError::PeerCorrupt`] instead of
//!   libxenvchan's silent "0 bytes ready" (which hangs the stream).

use super::layout::{validate_orders, LayoutError};
use crate::abi::vchan::*;
use crate::shared_mem::{mb, SharedMem};
use core::sync::atomic::Ordering;

/// Which end of the channel this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Shares the pages (writes `right`, reads `left`).
    Server,
    /// Maps the pages (writes `left`, reads `right`).
    Client,
}

/// A vchan failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VchanError {
    /// The peer wrote an index that no correct peer can produce.
    PeerCorrupt {
        /// Producer index seen.
        prod: u32,
        /// Consumer index seen.
        cons: u32,
        /// Ring size in bytes.
        size: u32,
    },
    /// The peer closed the channel (its live flag is 0).
    Closed,
    /// The announced ring orders are invalid.
    Layout(LayoutError),
    /// A ring buffer's length does not match its order.
    BufferSize {
        /// The order announced.
        order: u16,
        /// The buffer length provided.
        len: usize,
    },
}

impl From<LayoutError> for VchanError {
    fn from(e: LayoutError) -> Self {
        VchanError::Layout(e)
    }
}

impl core::fmt::Display for VchanError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            VchanError::PeerCorrupt { prod, cons, size } => write!(
                f,
                "the peer wrote impossible indices (prod {prod}, cons {cons}, ring of {size} bytes)"
            ),
            VchanError::Closed => f.write_str("the peer closed the channel"),
            VchanError::Layout(e) => write!(f, "bad ring layout: {e}"),
            VchanError::BufferSize { order, len } => {
                write!(f, "a {len}-byte buffer for a ring of order {order}")
            }
        }
    }
}

/// What one read or write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "if `notify` is set, the caller must signal the event channel"]
pub struct Progress {
    /// Bytes moved.
    pub bytes: usize,
    /// The peer asked to be told: send an event on the channel's port.
    pub notify: bool,
}

/// One of the channel's two rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// Client → server (`left_order`, the first grants of the list).
    Left,
    /// Server → client (`right_order`, the grants after the left ones).
    Right,
}

/// The memory a channel lives in: the control page and, for rings of
/// order 12 and up, their separate 4 KiB pages in ring order.
///
/// It is implemented by whatever owns those pages: the server's shared
/// pages, the client's mappings, buffers in host tests. The ring asks
/// for views at each operation, so every view borrows its owner for that
/// operation only and none can outlive the pages.
pub trait ChanMemory {
    /// The control page (`struct vchan_interface`).
    fn ctrl(&self) -> SharedMem<'_>;
    /// Page `i` of ring `which`, for rings of order 12 and up; rings of
    /// order 10 and 11 live inside the control page and never ask.
    fn ring_page(&self, which: Which, i: usize) -> Option<SharedMem<'_>>;
}

impl<M: ChanMemory + ?Sized> ChanMemory for &M {
    fn ctrl(&self) -> SharedMem<'_> {
        (**self).ctrl()
    }
    fn ring_page(&self, which: Which, i: usize) -> Option<SharedMem<'_>> {
        (**self).ring_page(which, i)
    }
}

/// Ring memory as views the caller owns, for tests, fuzzers and
/// benchmarks: a control page and each ring's pages. [`new`](Self::new)
/// makes them zeroed and leaked.
#[cfg(any(test, feature = "host-fakes"))]
#[derive(Debug, Clone)]
pub struct HostChanMemory<'a> {
    /// The control page.
    pub ctrl: SharedMem<'a>,
    /// The left ring's pages (empty for orders 10 and 11).
    pub left: alloc::vec::Vec<SharedMem<'a>>,
    /// The right ring's pages.
    pub right: alloc::vec::Vec<SharedMem<'a>>,
}

#[cfg(any(test, feature = "host-fakes"))]
impl HostChanMemory<'static> {
    /// A zeroed control page announcing `left_order`/`right_order`, with
    /// pages for the rings that need them.
    pub fn new(left_order: u16, right_order: u16) -> Self {
        let ctrl = SharedMem::leak_zeroed(PAGE);
        let _ = ctrl.store_u16(LEFT_ORDER, left_order, Ordering::Relaxed);
        let _ = ctrl.store_u16(RIGHT_ORDER, right_order, Ordering::Relaxed);
        let pages = |order: u16| match super::layout::ring_offset(order) {
            Some(_) => alloc::vec::Vec::new(),
            None => (0..(1usize << order.min(24)) / PAGE)
                .map(|_| SharedMem::leak_zeroed(PAGE))
                .collect(),
        };
        HostChanMemory {
            ctrl,
            left: pages(left_order),
            right: pages(right_order),
        }
    }
}

#[cfg(any(test, feature = "host-fakes"))]
impl ChanMemory for HostChanMemory<'_> {
    fn ctrl(&self) -> SharedMem<'_> {
        self.ctrl
    }
    fn ring_page(&self, which: Which, i: usize) -> Option<SharedMem<'_>> {
        match which {
            Which::Left => self.left.get(i).copied(),
            Which::Right => self.right.get(i).copied(),
        }
    }
}

const PAGE: usize = crate::abi::PAGE_SIZE;

/// Where a ring's bytes are.
#[derive(Debug, Clone, Copy)]
enum Place {
    /// At this offset of the control page (orders 10 and 11).
    InCtrl(usize),
    /// In [`ChanMemory::ring_page`]s.
    Pages,
}

#[derive(Debug)]
struct Half {
    which: Which,
    /// Offset of this ring's `ring_shared` in the control page.
    shared: usize,
    size: u32,
    place: Place,
    /// Our own index (cons for the read half, prod for the write half).
    mine: u32,
}

/// One end of a vchan: the control page plus the two ring buffers, in
/// the memory `M` owns.
#[derive(Debug)]
pub struct Ring<M: ChanMemory> {
    mem: M,
    side: Side,
    read: Half,
    write: Half,
}

#[inline]
fn load(ctrl: &SharedMem<'_>, off: usize) -> u32 {
    // The control page is at least a page (checked in `new`): in bounds.
    ctrl.load_u32(off, Ordering::Acquire).unwrap_or(0)
}

impl<M: ChanMemory> Ring<M> {
    /// Wraps a channel whose control page holds valid orders, checking
    /// that `mem` has every page those orders need.
    pub fn new(mem: M, side: Side) -> Result<Ring<M>, VchanError> {
        let ctrl = mem.ctrl();
        if ctrl.len() < PAGE {
            return Err(VchanError::BufferSize {
                order: 12,
                len: ctrl.len(),
            });
        }
        let lo = ctrl.load_u16(LEFT_ORDER, Ordering::Acquire).unwrap_or(0);
        let ro = ctrl.load_u16(RIGHT_ORDER, Ordering::Acquire).unwrap_or(0);
        validate_orders(lo, ro)?;
        let place = |which, order: u16| -> Result<Place, VchanError> {
            let size = 1usize << order;
            if let Some(off) = super::layout::ring_offset(order) {
                return match ctrl.slice(off, size) {
                    Ok(_) => Ok(Place::InCtrl(off)),
                    Err(_) => Err(VchanError::BufferSize {
                        order,
                        len: ctrl.len(),
                    }),
                };
            }
            // Every page present and exactly a page long.
            let mut len = 0;
            for i in 0..size / PAGE {
                match mem.ring_page(which, i) {
                    Some(p) if p.len() == PAGE => len += PAGE,
                    Some(p) => {
                        return Err(VchanError::BufferSize {
                            order,
                            len: len + p.len(),
                        })
                    }
                    None => return Err(VchanError::BufferSize { order, len }),
                }
            }
            Ok(Place::Pages)
        };
        let (lp, rp) = (place(Which::Left, lo)?, place(Which::Right, ro)?);
        let half = |which, shared, order: u16, place, own_index| Half {
            which,
            shared,
            size: 1 << order,
            place,
            mine: load(&ctrl, shared + own_index),
        };
        let (read, write) = match side {
            Side::Server => (
                half(Which::Left, LEFT, lo, lp, RING_CONS),
                half(Which::Right, RIGHT, ro, rp, RING_PROD),
            ),
            Side::Client => (
                half(Which::Right, RIGHT, ro, rp, RING_CONS),
                half(Which::Left, LEFT, lo, lp, RING_PROD),
            ),
        };
        Ok(Ring {
            mem,
            side,
            read,
            write,
        })
    }

    /// The memory the ring lives in.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    #[inline]
    fn ctrl(&self) -> SharedMem<'_> {
        self.mem.ctrl()
    }

    /// Applies `f(view, offset_in_view, range_of_buffer)` to each piece of
    /// `len` bytes at ring offset `off` of `half`, split at page boundaries.
    #[inline]
    fn pieces(
        &self,
        half: &Half,
        off: usize,
        len: usize,
        mut f: impl FnMut(&SharedMem<'_>, usize, core::ops::Range<usize>),
    ) {
        match half.place {
            Place::InCtrl(base) => f(&self.ctrl(), base + off, 0..len),
            Place::Pages => {
                let mut done = 0;
                while done < len {
                    let at = off + done;
                    let n = (len - done).min(PAGE - at % PAGE);
                    // Present: checked in `new` for every page of the ring.
                    if let Some(p) = self.mem.ring_page(half.which, at / PAGE) {
                        f(&p, at % PAGE, done..done + n);
                    }
                    done += n;
                }
            }
        }
    }

    /// Bytes of the read ring.
    pub fn read_capacity(&self) -> usize {
        self.read.size as usize
    }

    /// Bytes of the write ring.
    pub fn write_capacity(&self) -> usize {
        self.write.size as usize
    }

    #[inline]
    fn peer_request_slot(&self) -> usize {
        // Requests *we* make for the peer to notify us (request_notify).
        match self.side {
            Side::Server => CLI_NOTIFY,
            Side::Client => SRV_NOTIFY,
        }
    }

    #[inline]
    fn our_request_slot(&self) -> usize {
        // Requests the peer made for *us* to notify it (send_notify).
        match self.side {
            Side::Server => SRV_NOTIFY,
            Side::Client => CLI_NOTIFY,
        }
    }

    #[inline]
    fn request_notify(&self, bit: u8) {
        let _ = self.ctrl().fetch_or_u8(self.peer_request_slot(), bit);
        // mb(): post the request before re-reading the peer's index, or a
        // write landing in between would be missed (the lost wake-up).
        mb();
    }

    #[inline]
    fn take_notify(&self, bit: u8) -> bool {
        // mb(): our index update is visible before we look at the request.
        mb();
        // Look before the locked clear: most calls find no request and
        // then cost no locked operation. A request set after this load
        // was set after our index was published (the mb above), and the
        // peer re-reads the index after setting it, so it sees our bytes.
        let slot = self.our_request_slot();
        if self.ctrl().load_u8(slot, Ordering::Relaxed).unwrap_or(0) & bit == 0 {
            return false;
        }
        let prev = self.ctrl().fetch_and_u8(slot, !bit).unwrap_or(0);
        prev & bit != 0
    }

    #[inline]
    fn raw_ready(&self) -> Result<u32, VchanError> {
        let prod = load(&self.ctrl(), self.read.shared + RING_PROD);
        let ready = prod.wrapping_sub(self.read.mine);
        if ready > self.read.size {
            return Err(VchanError::PeerCorrupt {
                prod,
                cons: self.read.mine,
                size: self.read.size,
            });
        }
        Ok(ready)
    }

    #[inline]
    fn raw_space(&self) -> Result<u32, VchanError> {
        let cons = load(&self.ctrl(), self.write.shared + RING_CONS);
        let used = self.write.mine.wrapping_sub(cons);
        if used > self.write.size {
            return Err(VchanError::PeerCorrupt {
                prod: self.write.mine,
                cons,
                size: self.write.size,
            });
        }
        Ok(self.write.size - used)
    }

    /// Bytes ready to read; asks the peer to notify us when it writes.
    pub fn data_ready(&self) -> Result<usize, VchanError> {
        self.request_notify(NOTIFY_WRITE);
        Ok(self.raw_ready()? as usize)
    }

    /// Bytes of free space to write; asks the peer to notify us when it reads.
    pub fn buffer_space(&self) -> Result<usize, VchanError> {
        self.request_notify(NOTIFY_READ);
        Ok(self.raw_space()? as usize)
    }

    /// Bytes ready to read, without asking for a notification (for a
    /// short spin before sleeping; [`data_ready`](Self::data_ready) asks).
    pub fn peek_ready(&self) -> Result<usize, VchanError> {
        Ok(self.raw_ready()? as usize)
    }

    /// Free space to write, without asking for a notification.
    pub fn peek_space(&self) -> Result<usize, VchanError> {
        Ok(self.raw_space()? as usize)
    }

    /// Whether the peer is still there (`cli_live`/`srv_live` != 0; a
    /// server counts a client that has not connected yet as live).
    #[inline]
    pub fn peer_live(&self) -> bool {
        let off = match self.side {
            Side::Server => CLI_LIVE,
            Side::Client => SRV_LIVE,
        };
        self.ctrl().load_u8(off, Ordering::Acquire).unwrap_or(0) != 0
    }

    /// Whether the peer domain is known to be gone, given whether our
    /// event channel is still connected to it (`EVTCHNSTAT_interdomain`).
    /// A dying domain runs no code, so nothing clears its live flag; Xen
    /// only turns our end of the channel back into "unbound", without an
    /// event. A server's channel is unbound until its client binds it,
    /// which a client does before moving `cli_live` off 2, so before that
    /// an unbound channel means "not connected yet", not "gone".
    pub fn peer_vanished(&self, channel_connected: bool) -> bool {
        let bound = match self.side {
            Side::Server => {
                self.ctrl()
                    .load_u8(CLI_LIVE, Ordering::Acquire)
                    .unwrap_or(0)
                    != 2
            }
            Side::Client => true,
        };
        bound && !channel_connected
    }

    /// Sets our own live flag.
    pub fn set_live(&self, live: u8) {
        let off = match self.side {
            Side::Server => SRV_LIVE,
            Side::Client => CLI_LIVE,
        };
        let _ = self.ctrl().store_u8(off, live, Ordering::Release);
    }

    /// Reads up to `dst.len()` bytes without blocking. `Ok` with 0 bytes
    /// means nothing is ready yet (a notification is then requested);
    /// `Closed` means nothing is ready and the peer is gone.
    pub fn read(&mut self, dst: &mut [u8]) -> Result<Progress, VchanError> {
        self.read_with(dst, true)
    }

    /// [`read`](Self::read), asking the peer for a notification when the
    /// ring holds less than `dst.len()` only if `request` (libxenvchan
    /// always asks). A caller that will wait through
    /// [`data_ready`](Self::data_ready) (which asks, then re-reads) may
    /// pass `false`: the peer then sends no event for bytes we pick up
    /// without sleeping.
    pub fn read_with(&mut self, dst: &mut [u8], request: bool) -> Result<Progress, VchanError> {
        if dst.is_empty() {
            return Ok(Progress {
                bytes: 0,
                notify: false,
            });
        }
        let mut ready = self.raw_ready()?;
        if request && (ready as usize) < dst.len() {
            // We plan to consume everything: ask to hear of more, re-read.
            self.request_notify(NOTIFY_WRITE);
            ready = self.raw_ready()?;
        }
        let n = (ready as usize).min(dst.len());
        if n == 0 {
            return if self.peer_live() {
                Ok(Progress {
                    bytes: 0,
                    notify: false,
                })
            } else {
                Err(VchanError::Closed)
            };
        }
        // The Acquire load of prod (raw_ready) orders these reads after it (rmb()).
        let mask = self.read.size - 1;
        let start = (self.read.mine & mask) as usize;
        let first = n.min(self.read.size as usize - start);
        // In bounds: start + first <= size == buf.len(), n - first <= size.
        let (head, tail) = dst[..n].split_at_mut(first);
        self.pieces(&self.read, start, head.len(), |m, o, r| {
            let _ = m.read(o, &mut head[r]);
        });
        self.pieces(&self.read, 0, tail.len(), |m, o, r| {
            let _ = m.read(o, &mut tail[r]);
        });
        self.read.mine = self.read.mine.wrapping_add(n as u32);
        // Release: the copy above completes before the peer sees the space.
        let _ = self.ctrl().store_u32(
            self.read.shared + RING_CONS,
            self.read.mine,
            Ordering::Release,
        );
        let notify = self.take_notify(NOTIFY_READ);
        Ok(Progress { bytes: n, notify })
    }

    /// Writes up to `src.len()` bytes without blocking; 0 bytes means the
    /// ring is full (a notification is then requested).
    pub fn write(&mut self, src: &[u8]) -> Result<Progress, VchanError> {
        self.write_with(src, true)
    }

    /// [`write`](Self::write), asking for a notification when the ring has
    /// less room than `src.len()` only if `request`; see
    /// [`read_with`](Self::read_with).
    pub fn write_with(&mut self, src: &[u8], request: bool) -> Result<Progress, VchanError> {
        if !self.peer_live() {
            return Err(VchanError::Closed);
        }
        if src.is_empty() {
            return Ok(Progress {
                bytes: 0,
                notify: false,
            });
        }
        let mut space = self.raw_space()?;
        if request && (space as usize) < src.len() {
            self.request_notify(NOTIFY_READ);
            space = self.raw_space()?;
        }
        let n = (space as usize).min(src.len());
        if n == 0 {
            return Ok(Progress {
                bytes: 0,
                notify: false,
            });
        }
        let mask = self.write.size - 1;
        let start = (self.write.mine & mask) as usize;
        let first = n.min(self.write.size as usize - start);
        let (head, tail) = src[..n].split_at(first);
        self.pieces(&self.write, start, head.len(), |m, o, r| {
            let _ = m.write(o, &head[r]);
        });
        self.pieces(&self.write, 0, tail.len(), |m, o, r| {
            let _ = m.write(o, &tail[r]);
        });
        self.write.mine = self.write.mine.wrapping_add(n as u32);
        // Release (wmb()): the data is visible before the new prod.
        let _ = self.ctrl().store_u32(
            self.write.shared + RING_PROD,
            self.write.mine,
            Ordering::Release,
        );
        let notify = self.take_notify(NOTIFY_WRITE);
        Ok(Progress { bytes: n, notify })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server and a client over one control page, rings of the given orders.
    fn pair(
        lo: u16,
        ro: u16,
        start: u32,
    ) -> (
        Ring<HostChanMemory<'static>>,
        Ring<HostChanMemory<'static>>,
        SharedMem<'static>,
    ) {
        let mem = HostChanMemory::new(lo, ro);
        let ctrl = mem.ctrl;
        for off in [
            LEFT + RING_CONS,
            LEFT + RING_PROD,
            RIGHT + RING_CONS,
            RIGHT + RING_PROD,
        ] {
            ctrl.store_u32(off, start, Ordering::Relaxed).unwrap();
        }
        ctrl.store_u8(SRV_LIVE, 1, Ordering::Relaxed).unwrap();
        ctrl.store_u8(CLI_LIVE, 1, Ordering::Relaxed).unwrap();
        let srv = Ring::new(mem.clone(), Side::Server).unwrap();
        let cli = Ring::new(mem, Side::Client).unwrap();
        (srv, cli, ctrl)
    }

    fn pattern(n: usize, seed: u32) -> Vec<u8> {
        (0..n as u32)
            .map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed) >> 13) as u8)
            .collect()
    }

    #[test]
    fn streams_wrap_around_at_every_order_and_index_overflow() {
        // Under Miri the orders up to 13 (in-page rings, one page, pages);
        // the larger ones run the same code over more bytes.
        let max_order = if cfg!(miri) { 13 } else { 20 };
        for order in 10..=max_order {
            let (lo, ro) = if order == 10 {
                (10, 11)
            } else if order == 11 {
                (11, 10)
            } else {
                (order, order)
            };
            let (mut srv, mut cli, _) = pair(lo, ro, u32::MAX - 1000);
            let size = 1usize << order;
            let msg = pattern(size * 3 + 777, order as u32);
            let mut got = Vec::new();
            let mut sent = 0;
            let chunk = size / 3 + 5;
            while got.len() < msg.len() {
                if sent < msg.len() {
                    let end = (sent + chunk).min(msg.len());
                    sent += cli.write(&msg[sent..end]).unwrap().bytes;
                }
                let mut buf = vec![0u8; chunk / 2 + 1];
                let p = srv.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..p.bytes]);
            }
            assert_eq!(got, msg, "order {order}");
            // Both directions: the server writes the right ring.
            let back = pattern(size + 3, 99);
            let mut echoed = Vec::new();
            let mut off = 0;
            while echoed.len() < back.len() {
                if off < back.len() {
                    off += srv.write(&back[off..]).unwrap().bytes;
                }
                let mut buf = vec![0u8; 4096];
                let p = cli.read(&mut buf).unwrap();
                echoed.extend_from_slice(&buf[..p.bytes]);
            }
            assert_eq!(echoed, back, "order {order} server->client");
        }
    }

    #[test]
    fn notifications_only_when_asked() {
        let (mut srv, mut cli, _) = pair(10, 11, 0);
        // Nobody waits: writing does not notify.
        assert_eq!(
            cli.write(b"abc").unwrap(),
            Progress {
                bytes: 3,
                notify: false
            }
        );
        // The server drains and finds nothing more: it asks to be told.
        let mut buf = [0u8; 10];
        assert_eq!(srv.read(&mut buf).unwrap().bytes, 3);
        assert_eq!(
            srv.read(&mut buf).unwrap(),
            Progress {
                bytes: 0,
                notify: false
            }
        );
        // The next write must notify, exactly once.
        assert!(cli.write(b"d").unwrap().notify);
        assert!(!cli.write(b"e").unwrap().notify);
        // A writer that found the ring full asks for READ notifications.
        let (mut srv, mut cli, _) = pair(10, 11, 0);
        assert_eq!(cli.write(&[7u8; 1024]).unwrap().bytes, 1024);
        assert_eq!(cli.write(b"x").unwrap().bytes, 0);
        let mut big = [0u8; 100];
        assert!(
            srv.read(&mut big).unwrap().notify,
            "reader must wake the blocked writer"
        );
    }

    #[test]
    fn polling_for_data_or_space_asks_to_be_woken() {
        // libxenvchan_data_ready / buffer_space request a notification:
        // a poller that then sleeps is woken by the peer's next move.
        let (mut srv, mut cli, _) = pair(10, 11, 0);
        assert_eq!(srv.data_ready(), Ok(0));
        let p = cli.write(b"wake").unwrap();
        assert_eq!(
            p,
            Progress {
                bytes: 4,
                notify: true
            },
            "data_ready must request a write notification"
        );
        assert_eq!(srv.data_ready(), Ok(4));
        // Fill the server->client ring; the server polls for space.
        assert_eq!(srv.write(&[1u8; 2048]).unwrap().bytes, 2048);
        assert_eq!(srv.buffer_space(), Ok(0));
        let mut b = [0u8; 10];
        let p = cli.read(&mut b).unwrap();
        assert_eq!(
            p,
            Progress {
                bytes: 10,
                notify: true
            },
            "buffer_space must request a read notification"
        );
        // A request is consumed by the notification it caused.
        assert!(!cli.read(&mut b).unwrap().notify);
        assert_eq!(srv.buffer_space(), Ok(20));
        assert_eq!((srv.read_capacity(), srv.write_capacity()), (1024, 2048));
        assert_eq!((cli.read_capacity(), cli.write_capacity()), (2048, 1024));
    }

    #[test]
    fn live_flags_are_ours_to_set_and_the_peers_to_read() {
        let (srv, cli, ctrl) = pair(10, 11, 0);
        srv.set_live(0);
        assert_eq!(ctrl.load_u8(SRV_LIVE, Ordering::Relaxed), Ok(0));
        assert!(!cli.peer_live());
        assert!(srv.peer_live());
        cli.set_live(0);
        assert_eq!(ctrl.load_u8(CLI_LIVE, Ordering::Relaxed), Ok(0));
        assert!(!srv.peer_live());
        srv.set_live(1);
        assert_eq!(ctrl.load_u8(SRV_LIVE, Ordering::Relaxed), Ok(1));
        assert_eq!(ctrl.load_u8(CLI_LIVE, Ordering::Relaxed), Ok(0));
    }

    #[test]
    fn hostile_indices_are_errors_not_overreads() {
        let (mut srv, mut cli, ctrl) = pair(12, 12, 0);
        // The client claims to have produced more than the ring holds.
        ctrl.store_u32(LEFT + RING_PROD, 4097, Ordering::Relaxed)
            .unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(
            srv.read(&mut buf),
            Err(VchanError::PeerCorrupt {
                prod: 4097,
                cons: 0,
                size: 4096
            })
        );
        // The server claims to have consumed data never written.
        ctrl.store_u32(LEFT + RING_CONS, 50, Ordering::Relaxed)
            .unwrap();
        assert!(matches!(
            cli.write(b"hi"),
            Err(VchanError::PeerCorrupt { .. })
        ));
        // A peer scribbling on *our* published index changes nothing: we
        // keep our private copy.
        let (mut srv, mut cli, ctrl) = pair(10, 11, 0);
        assert_eq!(cli.write(b"hello").unwrap().bytes, 5);
        ctrl.store_u32(LEFT + RING_CONS, 0xdead, Ordering::Relaxed)
            .unwrap();
        let mut b = [0u8; 5];
        assert_eq!(srv.read(&mut b).unwrap().bytes, 5);
        assert_eq!(&b, b"hello");
    }

    #[test]
    fn bad_layouts_are_refused() {
        let mem = HostChanMemory::new(10, 10);
        assert_eq!(
            Ring::new(&mem, Side::Client).unwrap_err(),
            VchanError::Layout(LayoutError::Overlap(10))
        );
        mem.ctrl
            .store_u16(RIGHT_ORDER, 30, Ordering::Relaxed)
            .unwrap();
        assert_eq!(
            Ring::new(&mem, Side::Client).unwrap_err(),
            VchanError::Layout(LayoutError::BadOrder(30))
        );
        // Announced orders that need more pages than the memory has.
        let mut mem = HostChanMemory::new(12, 12);
        mem.ctrl
            .store_u16(RIGHT_ORDER, 13, Ordering::Relaxed)
            .unwrap();
        assert_eq!(
            Ring::new(&mem, Side::Client).unwrap_err(),
            VchanError::BufferSize {
                order: 13,
                len: 4096
            }
        );
        // Pages of the wrong size are refused too.
        mem.ctrl
            .store_u16(RIGHT_ORDER, 12, Ordering::Relaxed)
            .unwrap();
        mem.right = vec![SharedMem::leak_zeroed(2048)];
        assert_eq!(
            Ring::new(&mem, Side::Client).unwrap_err(),
            VchanError::BufferSize {
                order: 12,
                len: 2048
            }
        );
        // A control page shorter than a page.
        let short = HostChanMemory {
            ctrl: SharedMem::leak_zeroed(2048),
            left: vec![],
            right: vec![],
        };
        assert!(matches!(
            Ring::new(&short, Side::Server),
            Err(VchanError::BufferSize { .. })
        ));
        // The well-formed layout is accepted.
        mem.right = HostChanMemory::new(12, 12).right;
        assert!(Ring::new(&mem, Side::Server).is_ok());
    }

    #[test]
    fn a_dead_peer_is_reported_once_the_data_is_drained() {
        let (mut srv, mut cli, ctrl) = pair(10, 11, 0);
        assert_eq!(cli.write(b"last words").unwrap().bytes, 10);
        ctrl.store_u8(CLI_LIVE, 0, Ordering::Relaxed).unwrap();
        let mut b = [0u8; 64];
        assert_eq!(
            srv.read(&mut b).unwrap().bytes,
            10,
            "data written before close is delivered"
        );
        assert_eq!(srv.read(&mut b), Err(VchanError::Closed));
        assert_eq!(srv.write(b"x"), Err(VchanError::Closed));
        let _ = &mut cli;
    }

    #[test]
    fn a_vanished_peer_is_told_from_one_not_yet_connected() {
        let (srv, cli, ctrl) = pair(10, 11, 0);
        // Server before the client binds: its channel is unbound, cli_live 2.
        ctrl.store_u8(CLI_LIVE, 2, Ordering::Relaxed).unwrap();
        assert!(!srv.peer_vanished(false));
        // Connected, then the client's domain is destroyed (live flag untouched).
        ctrl.store_u8(CLI_LIVE, 1, Ordering::Relaxed).unwrap();
        assert!(!srv.peer_vanished(true));
        assert!(srv.peer_vanished(false));
        // The client's channel is bound from the start.
        assert!(!cli.peer_vanished(true));
        assert!(cli.peer_vanished(false));
    }

    #[test]
    fn two_threads_stream_without_loss() {
        // Producer and consumer on separate threads, spinning instead of
        // blocking on events: 4 MiB through an order-12 ring.
        let (mut srv, mut cli, _) = pair(12, 12, 0);
        // Miri interprets every access: 64 KiB still wraps the ring 16 times.
        let total = if cfg!(miri) { 64 << 10 } else { 4 << 20 };
        let msg = std::sync::Arc::new(pattern(total, 5));
        let m2 = msg.clone();
        let producer = std::thread::spawn(move || {
            let mut off = 0;
            let mut step = 1;
            while off < total {
                step = (step * 7 + 3) % 9000 + 1;
                let end = (off + step).min(total);
                off += cli.write(&m2[off..end]).unwrap().bytes;
                std::hint::spin_loop();
            }
        });
        let mut got = Vec::with_capacity(total);
        let mut buf = vec![0u8; 5000];
        while got.len() < total {
            let p = srv.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..p.bytes]);
        }
        producer.join().unwrap();
        assert!(got == *msg, "stream corrupted");
    }
}
