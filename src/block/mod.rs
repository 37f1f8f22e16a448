//! A block device front end (`xen/include/public/io/blkif.h`, Linux's
//! `xen-blkfront`): read, write and flush the disk a backend in another
//! domain (dom0's `xen-blkback`) exports, through a request ring and data
//! pages granted to it.
//!
//! [`BlkFront`] is the protocol engine: it owns the ring page and a pool
//! of data pages, both granted to the backend for the life of the device
//! (the frontend's half of `feature-persistent`: the backend may keep
//! them mapped, and no page is regranted per request), and the event
//! channel. It is generic over the grant and event backends, so every
//! path runs on the host against a fake backend. [`connect`](BlkFront::connect)
//! adds the xenbus handshake. Applications use it through the small
//! [`BlockDevice`] trait.
//!
//! One request moves up to 11 pages (44 KiB); up to
//! [`Options::in_flight`] requests are outstanding at once. Data is
//! copied into the granted pages before a write and out of them after a
//! read: the caller's buffers are never shown to the backend.
//!
//! A hostile or broken backend cannot make it panic, overrun or hang:
//! ring indices are checked (`ring`), a response must name a request in
//! flight with the same operation, every wait has a deadline, and a
//! backend domain that dies is noticed (its end of the event channel
//! closes). After such an error the device refuses further I/O with
//! [`BlockError::Broken`]; its pages stay granted (and are never freed
//! while the backend may map them) until it is dropped.

use crate::abi::blkif::*;
use crate::event::{EventError, EventOps, Port};
use crate::grant::{Access, GrantError, GrantOps, Grants, SharedPages};
use crate::ring::{FrontRing, Message, RingError};
use crate::types::{DomId, EvtchnPort, GrantRef};
use crate::xenbus::{
    link_error, Announce, Down, Frontend, Keys, Link, LinkError, Opening, XenbusError, XenbusState,
};
use crate::xenstore::{Client, Transport};
use alloc::vec::Vec;
use core::time::Duration;

#[cfg(all(test, not(loom)))]
mod tests;

/// What a disk can do, in 512-byte sectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskInfo {
    /// Size of the disk in 512-byte sectors.
    pub sectors: u64,
    /// The backend's logical block size (`sector-size`: 512, or 4096 for
    /// a disk with 4 KiB sectors, as Linux's blkback publishes it).
    /// Transfers are whole blocks of it: offsets and lengths (still
    /// counted in 512-byte sectors) must be multiples of it.
    pub sector_size: u32,
    /// Writes are refused (`info` has `VDISK_READONLY`, or `mode` is `r`).
    pub read_only: bool,
    /// The backend does `BLKIF_OP_FLUSH_DISKCACHE` (`feature-flush-cache`).
    pub flush: bool,
    /// The backend does `BLKIF_OP_WRITE_BARRIER` (`feature-barrier`).
    pub barrier: bool,
}

/// A disk: what applications build on.
pub trait BlockDevice {
    /// Size and capabilities.
    fn info(&self) -> DiskInfo;
    /// Reads `buf.len()` bytes (a multiple of 512) from 512-byte sector
    /// `sector` on.
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError>;
    /// Writes `buf` (a multiple of 512 bytes) from sector `sector` on.
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError>;
    /// Makes every completed write durable (a no-op when the backend has
    /// no write cache to flush).
    fn flush(&mut self) -> Result<(), BlockError>;
}

/// Why a block operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockError {
    /// A length that is not a multiple of 512, or a range past the end.
    OutOfRange { sector: u64, bytes: usize },
    /// The disk is read-only.
    ReadOnly,
    /// The backend answered `BLKIF_RSP_EOPNOTSUPP`.
    Unsupported { operation: u8 },
    /// The backend answered `BLKIF_RSP_ERROR` (or another failure status).
    Io { operation: u8, status: i16 },
    /// A response for no request in flight, or for another operation.
    BadResponse { id: u64, operation: u8 },
    /// The ring's indices broke the protocol.
    Ring(RingError),
    /// No response came before the deadline.
    Timeout,
    /// The backend domain is gone (our event channel end was closed).
    BackendGone,
    /// An earlier error broke the device: nothing more is sent.
    Broken,
    /// The backend's `sector-size` (its disk's logical block size) is not
    /// a power of two from 512 to 4096.
    SectorSize(u32),
    /// The backend is closing or gone (the device was detached).
    BackendClosing,
    /// The xenbus handshake.
    Xenbus(XenbusError),
    /// Sharing the pages.
    Grant(GrantError),
    /// The event channel.
    Event(EventError),
}

impl core::fmt::Display for BlockError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BlockError::OutOfRange { sector, bytes } => write!(
                f,
                "{bytes} bytes at sector {sector}: not whole sectors, or past the end of the disk"
            ),
            BlockError::ReadOnly => f.write_str("the disk is read-only"),
            BlockError::Unsupported { operation } => {
                write!(f, "the backend does not support operation {operation}")
            }
            BlockError::Io { operation, status } => {
                write!(
                    f,
                    "operation {operation} failed in the backend (status {status})"
                )
            }
            BlockError::BadResponse { id, operation } => write!(
                f,
                "a response (id {id}, operation {operation}) for no request in flight"
            ),
            BlockError::Ring(e) => write!(f, "the ring broke the protocol: {e}"),
            BlockError::Timeout => f.write_str("no response before the deadline"),
            BlockError::BackendGone => f.write_str("the backend domain is gone"),
            BlockError::Broken => f.write_str("an earlier error broke the device"),
            BlockError::SectorSize(n) => {
                write!(
                    f,
                    "a sector size of {n} bytes (a power of two from 512 to 4096 works)"
                )
            }
            BlockError::BackendClosing => {
                f.write_str("the backend is closing: the disk was detached")
            }
            BlockError::Xenbus(e) => write!(f, "its xenbus handshake failed: {e}"),
            BlockError::Grant(e) => write!(f, "sharing its pages failed: {e}"),
            BlockError::Event(e) => write!(f, "its event channel failed: {e}"),
        }
    }
}

impl From<GrantError> for BlockError {
    fn from(e: GrantError) -> Self {
        BlockError::Grant(e)
    }
}

impl From<EventError> for BlockError {
    fn from(e: EventError) -> Self {
        BlockError::Event(e)
    }
}

impl From<XenbusError> for BlockError {
    fn from(e: XenbusError) -> Self {
        link_error(e)
    }
}

impl LinkError for BlockError {
    fn down(why: Down) -> Self {
        match why {
            Down::Closing => BlockError::BackendClosing,
            Down::Gone => BlockError::BackendGone,
        }
    }
    fn broken() -> Self {
        BlockError::Broken
    }
    fn xenbus(e: XenbusError) -> Self {
        BlockError::Xenbus(e)
    }
    fn is_down(&self) -> Option<Down> {
        match self {
            BlockError::BackendClosing => Some(Down::Closing),
            BlockError::BackendGone => Some(Down::Gone),
            _ => None,
        }
    }
}

impl From<RingError> for BlockError {
    fn from(e: RingError) -> Self {
        BlockError::Ring(e)
    }
}

/// One page of a request: `struct blkif_request_segment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Segment {
    /// The granted page.
    pub gref: GrantRef,
    /// First and last 512-byte sector of the page to transfer (inclusive).
    pub first_sect: u8,
    pub last_sect: u8,
}

/// `struct blkif_request` (direct requests only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlkRequest {
    pub operation: u8,
    pub nr_segments: u8,
    /// The virtual device (`blkif_vdev_t`).
    pub handle: u16,
    /// Ours, echoed in the response.
    pub id: u64,
    /// First 512-byte sector.
    pub sector_number: u64,
    pub seg: [Segment; BLKIF_MAX_SEGMENTS_PER_REQUEST],
}

impl Message for BlkRequest {
    const SIZE: usize = BLKIF_REQUEST_SIZE;
    fn encode(&self, out: &mut [u8]) {
        out.fill(0);
        out[0] = self.operation;
        out[1] = self.nr_segments;
        out[2..4].copy_from_slice(&self.handle.to_le_bytes());
        out[8..16].copy_from_slice(&self.id.to_le_bytes());
        out[16..24].copy_from_slice(&self.sector_number.to_le_bytes());
        for (i, s) in self.seg.iter().enumerate() {
            let at = BLKIF_REQUEST_SEG + i * BLKIF_SEGMENT_SIZE;
            out[at..at + 4].copy_from_slice(&s.gref.0.to_le_bytes());
            out[at + 4] = s.first_sect;
            out[at + 5] = s.last_sect;
        }
    }
    fn decode(b: &[u8]) -> Self {
        let u64_at = |at: usize| {
            u64::from_le_bytes([
                b[at],
                b[at + 1],
                b[at + 2],
                b[at + 3],
                b[at + 4],
                b[at + 5],
                b[at + 6],
                b[at + 7],
            ])
        };
        let mut seg = [Segment::default(); BLKIF_MAX_SEGMENTS_PER_REQUEST];
        for (i, s) in seg.iter_mut().enumerate() {
            let at = BLKIF_REQUEST_SEG + i * BLKIF_SEGMENT_SIZE;
            *s = Segment {
                gref: GrantRef(u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])),
                first_sect: b[at + 4],
                last_sect: b[at + 5],
            };
        }
        BlkRequest {
            operation: b[0],
            nr_segments: b[1],
            handle: u16::from_le_bytes([b[2], b[3]]),
            id: u64_at(8),
            sector_number: u64_at(16),
            seg,
        }
    }
}

/// `struct blkif_response`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlkResponse {
    pub id: u64,
    pub operation: u8,
    pub status: i16,
}

impl Message for BlkResponse {
    const SIZE: usize = BLKIF_RESPONSE_SIZE;
    fn encode(&self, out: &mut [u8]) {
        out.fill(0);
        out[..8].copy_from_slice(&self.id.to_le_bytes());
        out[8] = self.operation;
        out[10..12].copy_from_slice(&self.status.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        BlkResponse {
            id: u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            operation: b[8],
            status: i16::from_le_bytes([b[10], b[11]]),
        }
    }
}

/// Tuning knobs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Requests outstanding at once (each with 11 granted data pages; at
    /// most the ring's slots, 32 per ring page, and 128).
    pub in_flight: usize,
    /// How long one operation may wait for the backend.
    pub timeout: Duration,
    /// The ring is `2^ring_order` pages (`ring-page-order`); `connect`
    /// takes the smaller of this and the backend's `max-ring-page-order`
    /// (0 when it offers none: a one-page ring, `ring-ref`).
    pub ring_order: u8,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            in_flight: 4,
            timeout: Duration::from_secs(30),
            ring_order: 2,
        }
    }
}

/// The largest `ring-page-order` asked for (16 pages, 512 slots).
pub const MAX_RING_ORDER: u8 = 4;

const PAGE: usize = 4096;
const SECTORS_PER_PAGE: usize = PAGE / BLKIF_SECTOR;
/// Bytes one request moves at most.
const REQUEST_BYTES: usize = BLKIF_MAX_SEGMENTS_PER_REQUEST * PAGE;
/// How often a wait checks that the backend domain still exists.
const BACKEND_CHECK: Duration = Duration::from_millis(100);

/// A request in flight: what it is and which caller bytes it carries.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    operation: u8,
    /// Offset and length in the caller's buffer.
    offset: usize,
    len: usize,
}

/// The front end of one virtual block device.
pub struct BlkFront<'g, G: GrantOps, E: EventOps> {
    /// The xenbus side (connected by `connect`): the failure latch,
    /// checked while waiting, closed at the end. First, so that it is
    /// dropped (the device closed) before the pages are.
    link: Link<'g>,
    grants: &'g Grants<G>,
    ring: FrontRing<SharedPages<'g, G>, BlkRequest, BlkResponse>,
    /// `in_flight * 11` pages; slot `i` uses pages `11 i .. 11 i + 11`.
    data: SharedPages<'g, G>,
    port: Port<&'g E>,
    backend: DomId,
    handle: u16,
    slots: Vec<Option<InFlight>>,
    info: Option<DiskInfo>,
    timeout: Duration,
}

impl<G: GrantOps, E: EventOps> core::fmt::Debug for BlkFront<'_, G, E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BlkFront")
            .field("backend", &self.backend)
            .field("handle", &self.handle)
            .field("info", &self.info)
            .finish()
    }
}

/// The keys a frontend publishes for its backend (`ring-ref`, or
/// `ring-page-order` and `ring-ref0..`; `event-channel`, `protocol`,
/// `feature-persistent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontKeys {
    /// The ring's pages, in order.
    pub ring_refs: Vec<GrantRef>,
    /// `ring-page-order` (0: one page, published as `ring-ref`).
    pub ring_order: u8,
    pub event_channel: EvtchnPort,
}

impl FrontKeys {
    /// The xenstore nodes, event channel and protocol included.
    pub fn nodes(&self) -> Keys {
        let mut k = Keys::new();
        if self.ring_order == 0 {
            k.set("ring-ref", self.ring_refs.first().map_or(0, |r| r.0));
        } else {
            k.set("ring-page-order", self.ring_order);
            for (i, r) in self.ring_refs.iter().enumerate() {
                k.set(&alloc::format!("ring-ref{i}"), r.0);
            }
        }
        k.set("event-channel", self.event_channel.0)
            .set("protocol", "x86_64-abi")
            .set("feature-persistent", 1);
        k
    }
}

impl<'g, G: GrantOps, E: EventOps> BlkFront<'g, G, E> {
    /// Grants a ring page and the data pages to `backend`, initialises the
    /// ring and allocates the event channel the backend will bind.
    /// `handle` is the virtual device number (`device/vbd/<handle>`).
    pub fn new(
        grants: &'g Grants<G>,
        events: &'g E,
        backend: DomId,
        handle: u16,
        opts: Options,
    ) -> Result<Self, BlockError> {
        let in_flight = opts.in_flight.clamp(1, 128);
        let order = opts.ring_order.min(MAX_RING_ORDER);
        let ring_pages = grants.share(backend, 1 << order, Access::ReadWrite)?;
        let ring = FrontRing::init(ring_pages)?;
        let in_flight = in_flight.min(ring.size() as usize);
        let data = grants.share(
            backend,
            (in_flight * BLKIF_MAX_SEGMENTS_PER_REQUEST) as u32,
            Access::ReadWrite,
        )?;
        let port = Port::alloc_unbound(events, backend)?;
        Ok(BlkFront {
            grants,
            ring,
            data,
            port,
            backend,
            handle,
            slots: alloc::vec![None; in_flight],
            info: None,
            timeout: opts.timeout,
            link: Link::unconnected(BACKEND_CHECK),
        })
    }

    /// Connects to virtual block device `devid` (`device/vbd/<devid>`,
    /// e.g. 51712 for `xvda`) through the xenbus handshake: wait for the
    /// backend's InitWait, grant the ring and data pages, publish
    /// `ring-ref`, `event-channel`, `protocol` and `feature-persistent`,
    /// wait for Connected and read the disk (`sectors`, `sector-size`,
    /// `info`, `mode`, `feature-flush-cache`, `feature-barrier`).
    pub fn connect<T: Transport>(
        grants: &'g Grants<G>,
        events: &'g E,
        store: &'g spin::Mutex<Client<T>>,
        devid: u32,
        opts: Options,
    ) -> Result<Self, BlockError> {
        // Requests name the device by a 16-bit handle: an extended id is
        // refused before anything is written.
        let handle = u16::try_from(devid).map_err(|_| BlockError::OutOfRange {
            sector: u64::from(devid),
            bytes: 0,
        })?;
        let bus = Opening::initialise(store, "vbd", devid, opts.timeout, |_| {
            Ok::<_, BlockError>(())
        })?;
        // A multi-page ring only where the backend offers one.
        let offered = bus
            .read_backend("max-ring-page-order")?
            .and_then(|v| v.trim().parse::<u8>().ok())
            .unwrap_or(0);
        let opts = Options {
            ring_order: opts.ring_order.min(offered),
            ..opts
        };
        let mut front = BlkFront::new(grants, events, bus.backend_id(), handle, opts)?;
        // On an error the device is closed (the backend unmaps) before
        // `front`'s pages go back.
        front.link = bus.complete(BACKEND_CHECK, |bus| front.finish_connect(bus, opts.timeout))?;
        Ok(front)
    }

    /// Handshake step 3 and the disk: blkfront announces Initialised with
    /// its keys, and Connected once it has read the disk the backend
    /// published on connecting.
    fn finish_connect<T: Transport>(
        &mut self,
        bus: &Frontend<'_, T>,
        timeout: Duration,
    ) -> Result<(), BlockError> {
        bus.connect(Announce::Initialised, &self.keys().nodes().pairs(), timeout)?;
        let info = bus.backend_u64_or("info", 0)?;
        let info = u32::try_from(info).map_err(|_| bus.bad_backend_node("info"))?;
        let sector_size = bus.backend_u64_or("sector-size", BLKIF_SECTOR as u64)?;
        let mode_ro = bus.read_backend("mode")?.is_some_and(|m| m.trim() == "r");
        self.set_info(DiskInfo {
            sectors: bus.backend_u64("sectors")?,
            sector_size: u32::try_from(sector_size).unwrap_or(u32::MAX),
            read_only: info & VDISK_READONLY != 0 || mode_ro,
            flush: bus.backend_flag("feature-flush-cache")?,
            barrier: bus.backend_flag("feature-barrier")?,
        })?;
        bus.switch(XenbusState::Connected)?;
        Ok(())
    }

    /// Closes the xenbus connection (Closing, the backend closes, Closed).
    /// Also done when the device is dropped.
    pub fn close(mut self) -> Result<(), BlockError> {
        self.link.close()
    }

    /// Pages of the ring (`2^ring-page-order`) and requests in flight at most.
    pub fn ring_pages(&self) -> (usize, usize) {
        (self.ring.memory().len(), self.slots.len())
    }

    /// What to publish in `device/vbd/<handle>/`.
    pub fn keys(&self) -> FrontKeys {
        let pages = self.ring.memory();
        FrontKeys {
            ring_refs: pages.refs().collect(),
            ring_order: pages.len().trailing_zeros() as u8,
            event_channel: self.port.port(),
        }
    }

    /// Records the disk the backend described (from its xenstore nodes,
    /// once it is Connected).
    pub fn set_info(&mut self, info: DiskInfo) -> Result<(), BlockError> {
        let size = info.sector_size as usize;
        if !size.is_power_of_two() || !(BLKIF_SECTOR..=PAGE).contains(&size) {
            return Err(BlockError::SectorSize(info.sector_size));
        }
        self.info = Some(info);
        Ok(())
    }

    /// The backend domain.
    pub fn backend(&self) -> DomId {
        self.backend
    }

    /// The grant table the device's pages are shared through.
    pub fn grants(&self) -> &'g Grants<G> {
        self.grants
    }

    fn check_range(&self, sector: u64, bytes: usize) -> Result<(), BlockError> {
        let sectors = self.info.map_or(0, |i| i.sectors);
        // Whole logical blocks: 512-byte sectors per block.
        let block = self.info.map_or(BLKIF_SECTOR, |i| i.sector_size as usize);
        let per_block = (block / BLKIF_SECTOR) as u64;
        let n = (bytes / BLKIF_SECTOR) as u64;
        if !bytes.is_multiple_of(block)
            || !sector.is_multiple_of(per_block)
            || sector.checked_add(n).is_none_or(|end| end > sectors)
        {
            return Err(BlockError::OutOfRange { sector, bytes });
        }
        Ok(())
    }

    fn fail<T>(&mut self, e: BlockError) -> Result<T, BlockError> {
        self.link.fail(e)
    }

    /// Runs `operation` over `len` bytes (> 0) from `sector` on, split
    /// into requests of up to 11 pages, up to `slots.len()` in flight;
    /// `write` supplies the bytes of a write, `read` takes those of a read.
    fn transfer(
        &mut self,
        operation: u8,
        sector: u64,
        len: usize,
        write: Option<&[u8]>,
        mut read: Option<&mut [u8]>,
    ) -> Result<(), BlockError> {
        self.check_bus()?;
        let deadline = self.port.events().deadline_after(self.timeout);
        let (mut next, mut done) = (0, 0); // bytes submitted, completed
        while done < len {
            while next < len && self.ring.free_requests() > 0 {
                let Some(slot) = self.slots.iter().position(Option::is_none) else {
                    break;
                };
                let n = (len - next).min(REQUEST_BYTES);
                let mut req = self.request(operation, slot, sector + (next / BLKIF_SECTOR) as u64);
                let pages = n.div_ceil(PAGE);
                for p in 0..pages {
                    let page = slot * BLKIF_MAX_SEGMENTS_PER_REQUEST + p;
                    let at = next + p * PAGE;
                    let bytes = (n - p * PAGE).min(PAGE);
                    // Whole sectors (check_range): last_sect in 0..=7.
                    req.seg[p] = Segment {
                        gref: self.data.gref(page).ok_or(GrantError::InvalidArgument)?,
                        first_sect: 0,
                        last_sect: (bytes / BLKIF_SECTOR - 1) as u8,
                    };
                    if let Some(src) = write {
                        self.data.write_at(page * PAGE, &src[at..at + bytes])?;
                    }
                }
                req.nr_segments = pages as u8;
                self.submit(
                    slot,
                    req,
                    InFlight {
                        operation,
                        offset: next,
                        len: n,
                    },
                )?;
                next += n;
            }
            self.publish()?;
            done += self.collect(deadline, read.as_deref_mut())?;
        }
        Ok(())
    }

    fn request(&self, operation: u8, slot: usize, sector_number: u64) -> BlkRequest {
        BlkRequest {
            operation,
            handle: self.handle,
            id: slot as u64,
            sector_number,
            ..BlkRequest::default()
        }
    }

    fn submit(&mut self, slot: usize, req: BlkRequest, flight: InFlight) -> Result<(), BlockError> {
        // The caller saw a free slot and free ring space.
        if self.ring.push_request(&req).is_err() {
            return self.fail(BlockError::Broken);
        }
        self.slots[slot] = Some(flight);
        Ok(())
    }

    /// RING_PUSH_REQUESTS_AND_CHECK_NOTIFY, and the event if asked.
    fn publish(&mut self) -> Result<(), BlockError> {
        if self.ring.push_requests_and_check_notify() {
            if let Err(e) = self.port.send() {
                return self.fail(e.into());
            }
        }
        Ok(())
    }

    /// Waits for at least one response, takes every response there is,
    /// and returns the bytes they completed (copied into `read` for reads).
    fn collect(&mut self, deadline: u64, mut read: Option<&mut [u8]>) -> Result<usize, BlockError> {
        let mut done = 0;
        let mut got = false;
        loop {
            let rsp = match self.ring.poll_response() {
                Ok(Some(r)) => r,
                Ok(None) if got => return Ok(done),
                Ok(None) => {
                    self.wait_responses(deadline)?;
                    continue;
                }
                Err(e) => return self.fail(e.into()),
            };
            got = true;
            // The id must name a request in flight, for the same operation.
            let slot = usize::try_from(rsp.id)
                .ok()
                .filter(|&i| i < self.slots.len());
            let flight = match slot.and_then(|i| self.slots[i]) {
                Some(f) if f.operation == rsp.operation => f,
                _ => {
                    return self.fail(BlockError::BadResponse {
                        id: rsp.id,
                        operation: rsp.operation,
                    })
                }
            };
            let slot = slot.unwrap_or(0);
            self.slots[slot] = None;
            match rsp.status {
                BLKIF_RSP_OKAY => {}
                BLKIF_RSP_EOPNOTSUPP => {
                    return self.abandon(BlockError::Unsupported {
                        operation: flight.operation,
                    })
                }
                status => {
                    return self.abandon(BlockError::Io {
                        operation: flight.operation,
                        status,
                    })
                }
            }
            if let Some(dst) = read.as_deref_mut() {
                let page0 = slot * BLKIF_MAX_SEGMENTS_PER_REQUEST;
                self.data.read_at(
                    page0 * PAGE,
                    &mut dst[flight.offset..flight.offset + flight.len],
                )?;
            }
            done += flight.len;
        }
    }

    /// A request failed: wait for the others of this call to come back
    /// (their pages must not be reused while the backend works on them),
    /// then report `e`. The device stays usable.
    fn abandon<T>(&mut self, e: BlockError) -> Result<T, BlockError> {
        let deadline = self.port.events().deadline_after(self.timeout);
        while self.in_flight() > 0 {
            match self.ring.poll_response() {
                Ok(Some(rsp)) => {
                    let slot = usize::try_from(rsp.id)
                        .ok()
                        .filter(|&i| i < self.slots.len());
                    match slot.and_then(|i| self.slots[i]) {
                        Some(f) if f.operation == rsp.operation => {
                            self.slots[slot.unwrap_or(0)] = None
                        }
                        _ => {
                            return self.fail(BlockError::BadResponse {
                                id: rsp.id,
                                operation: rsp.operation,
                            })
                        }
                    }
                }
                Ok(None) => self.wait_responses(deadline)?,
                Err(r) => return self.fail(r.into()),
            }
        }
        Err(e)
    }

    /// A request without data (flush, barrier), and its answer.
    fn bare(&mut self, operation: u8) -> Result<(), BlockError> {
        self.check_bus()?;
        let deadline = self.port.events().deadline_after(self.timeout);
        // Every call completes its requests: slot 0 is free.
        let req = self.request(operation, 0, 0);
        self.submit(
            0,
            req,
            InFlight {
                operation,
                offset: 0,
                len: 0,
            },
        )?;
        self.publish()?;
        while self.in_flight() > 0 {
            self.collect(deadline, None)?;
        }
        Ok(())
    }

    /// Sleeps until a response is published (RING_FINAL_CHECK_FOR_RESPONSES
    /// then the event channel), the deadline, or the backend's death.
    fn wait_responses(&mut self, deadline: u64) -> Result<(), BlockError> {
        loop {
            match self.ring.final_check_for_responses() {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => return self.fail(e.into()),
            }
            let events: &'g E = self.port.events();
            let step = deadline.min(events.deadline_after(BACKEND_CHECK));
            let ring = &self.ring;
            let r = events.wait_until(Some(step), &mut || ring.response_published());
            match r {
                Ok(()) => return Ok(()),
                Err(EventError::Timeout) => {
                    // A detached device: the backend closes (and unbinds
                    // its end of the channel) and will not answer; close
                    // ours so the detach completes. Asked first, so that
                    // a detach is told from a backend domain's death.
                    self.link.check_bus::<BlockError>()?;
                    self.link
                        .check_peer::<BlockError, _>(events, self.port.port())?;
                    if events.now_ns() >= deadline {
                        return self.fail(BlockError::Timeout);
                    }
                }
                Err(e) => return self.fail(e.into()),
            }
        }
    }

    /// Before an operation: refuses when broken and, at most every
    /// [`BACKEND_CHECK`], asks xenbus whether the backend is closing. A
    /// detached backend (Linux's blkback) goes on serving requests while
    /// it waits for us to close, so only its `state` tells.
    fn check_bus(&mut self) -> Result<(), BlockError> {
        self.link.check(self.port.events().now_ns())
    }

    /// Requests in flight (answered or not); 0 after every completed call.
    pub fn in_flight(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }
}

/// A block device of this domain, over Xen's grant table, event channels
/// and xenstore: `BlkFront::connect(xen.grants()?, xen.events(), xen.store()?, 51712, Default::default())`.
#[cfg(target_os = "none")]
pub type XenBlkFront = BlkFront<'static, crate::grant::XenGrantOps, crate::event::XenEvents>;

impl<G: GrantOps, E: EventOps> BlockDevice for BlkFront<'_, G, E> {
    fn info(&self) -> DiskInfo {
        self.info.unwrap_or(DiskInfo {
            sectors: 0,
            sector_size: BLKIF_SECTOR as u32,
            read_only: true,
            flush: false,
            barrier: false,
        })
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.check_range(sector, buf.len())?;
        if buf.is_empty() {
            return Ok(());
        }
        let len = buf.len();
        self.transfer(BLKIF_OP_READ, sector, len, None, Some(buf))
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        if self.info().read_only {
            return Err(BlockError::ReadOnly);
        }
        self.check_range(sector, buf.len())?;
        if buf.is_empty() {
            return Ok(());
        }
        self.transfer(BLKIF_OP_WRITE, sector, buf.len(), Some(buf), None)
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        let info = self.info();
        let op = if info.flush {
            BLKIF_OP_FLUSH_DISKCACHE
        } else if info.barrier {
            BLKIF_OP_WRITE_BARRIER
        } else {
            // No write cache announced: completed writes are durable.
            return Ok(());
        };
        self.bare(op)
    }
}

// Sector-per-page arithmetic above assumes whole sectors per page.
const _: () = assert!(SECTORS_PER_PAGE * BLKIF_SECTOR == PAGE);
