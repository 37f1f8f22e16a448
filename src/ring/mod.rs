//! Xen's shared request/response rings (`xen/include/public/io/ring.h`),
//! the transport of every split driver (netif, blkif, ...): a front end
//! puts requests on a ring in pages it grants, the back end answers on
//! the same slots.
//!
//! Both ends are here ([`FrontRing`], [`BackRing`]), over a
//! [`SharedMem`] view of the ring's pages (one page, or several
//! contiguous in our view for multi-page rings). The shared page is laid
//! out as `ring.h`'s `DEFINE_RING_TYPES` lays out `struct name_sring`:
//!
//! | offset | field | written by |
//! |---|---|---|
//! | 0 | `req_prod` | front |
//! | 4 | `req_event` | back ("notify me when `req_prod` passes this") |
//! | 8 | `rsp_prod` | back |
//! | 12 | `rsp_event` | front |
//! | 16 | `pvt` (4 bytes, device specific) | |
//! | 20 | `__pad[44]` | |
//! | 64 | `ring[]`: entries, each `max(sizeof req, sizeof rsp)` bytes | both |
//!
//! The number of entries is the largest power of two that fits
//! (`__RING_SIZE`, see [`ring_entries`]).
//!
//! Everything read from the page is the peer's to change at any moment,
//! so: indices are read once per operation and checked (a peer claiming
//! more responses than we asked for, or more requests than fit, gives a
//! [`RingError`] and breaks the ring for good, never an out-of-bounds
//! slot or an endless loop); messages are copied out before they are
//! decoded (no double fetch); our own produced index is kept privately
//! and never read back from the page (ring.h's
//! `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY` reads `sring->req_prod` back; a
//! peer could have rewritten it). What a message *means* (unknown ids,
//! bad statuses) is the driver's to check.
//!
//! A message type says how it sits in a slot; the driver owns the rest
//! (here both ends run in one program over a host page, `host-fakes`):
//!
//! ```
//! # #[cfg(feature = "host-fakes")] {
//! use xenpv::ring::{BackRing, FrontRing, Message, RingError, RingFull};
//! use xenpv::shared_mem::SharedMem;
//!
//! /// `struct ping { uint64_t id; }`: 8 bytes, little-endian.
//! #[derive(Debug, PartialEq)]
//! struct Ping(u64);
//! impl Message for Ping {
//!     const SIZE: usize = 8;
//!     fn encode(&self, out: &mut [u8]) {
//!         out.copy_from_slice(&self.0.to_le_bytes());
//!     }
//!     fn decode(bytes: &[u8]) -> Self {
//!         Ping(u64::from_le_bytes(bytes.try_into().unwrap()))
//!     }
//! }
//!
//! # fn main() -> Result<(), RingError> {
//! // In a guest: the view of the page(s) you grant to the back end.
//! let page = SharedMem::leak_zeroed(4096);
//! let mut front = FrontRing::<_, Ping, Ping>::init(page)?;
//! let mut back = BackRing::<_, Ping, Ping>::attach(page)?; // the peer
//!
//! front.push_request(&Ping(1)).map_err(|RingFull| RingError::Broken)?;
//! if front.push_requests_and_check_notify() { /* notify the event channel */ }
//!
//! while let Some(Ping(id)) = back.poll_request()? {
//!     back.push_response(&Ping(id + 100)).unwrap();
//! }
//! assert!(back.push_responses_and_check_notify());
//!
//! assert_eq!(front.poll_response()?, Some(Ping(101)));
//! if !front.final_check_for_responses()? { /* nothing more: sleep on the port */ }
//! # Ok(()) }
//! # main().unwrap();
//! # }
//! ```

use crate::shared_mem::{mb, SharedMem};
use core::marker::PhantomData;
use core::sync::atomic::Ordering;

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, loom))]
mod loom_tests;

pub use crate::abi::ring::{RingIdx, ENTRIES, PVT, REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD};

/// A request or response as it sits in a ring slot: encoded into and
/// decoded from the slot's bytes, never referenced in place.
pub trait Message: Sized {
    /// `sizeof` the C struct (with its padding).
    const SIZE: usize;
    /// Writes the message into `out` (`SIZE` bytes).
    fn encode(&self, out: &mut [u8]);
    /// Reads a message from `bytes` (`SIZE` bytes the peer wrote: any
    /// value must decode, checking is the driver's).
    fn decode(bytes: &[u8]) -> Self;
}

/// What a ring refuses to do because the peer broke the protocol, or
/// because the memory cannot hold a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// The view cannot hold the header and one entry of this size.
    TooSmall { bytes: usize, entry: usize },
    /// The view does not start on a 4-byte boundary, so its `u32`
    /// indices cannot be accessed atomically (ring pages are
    /// page-aligned; this is a sub-view at an odd offset).
    Misaligned { addr: usize },
    /// An entry larger than the slot buffer this crate copies through.
    EntryTooLarge { entry: usize },
    /// The back end published `rsp_prod` beyond the requests we
    /// published (`rsp_cons` is ours; `req_prod` what we published).
    TooManyResponses {
        rsp_prod: RingIdx,
        rsp_cons: RingIdx,
        req_prod: RingIdx,
    },
    /// The front end published more requests than the ring holds
    /// (`RING_REQUEST_PROD_OVERFLOW`).
    TooManyRequests {
        req_prod: RingIdx,
        rsp_prod: RingIdx,
        size: u32,
    },
    /// An earlier error broke this ring: its peer is not trusted again
    /// (see `is_broken`).
    Broken,
}

impl core::fmt::Display for RingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RingError::TooSmall { bytes, entry } => {
                write!(f, "{bytes} bytes cannot hold a ring of {entry}-byte entries")
            }
            RingError::Misaligned { addr } => write!(f, "a ring at {addr:#x} is not 4-byte aligned"),
            RingError::EntryTooLarge { entry } => write!(f, "a {entry}-byte entry is too large"),
            RingError::TooManyResponses {
                rsp_prod,
                rsp_cons,
                req_prod,
            } => write!(
                f,
                "the back end published responses up to {rsp_prod} (consumed {rsp_cons}) for requests up to {req_prod}"
            ),
            RingError::TooManyRequests {
                req_prod,
                rsp_prod,
                size,
            } => write!(
                f,
                "the front end published requests up to {req_prod} with responses at {rsp_prod}, more than the {size} slots"
            ),
            RingError::Broken => f.write_str("the ring is broken by an earlier protocol error"),
        }
    }
}

/// `push_*` refused: the ring is full (or, for responses, no consumed
/// request is left to answer). Nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingFull;

/// The largest entry this module copies (through a stack buffer):
/// larger than any `ring.h` user (`blkif_request` with its segments is
/// 112 bytes; netif's are 12).
pub const MAX_ENTRY: usize = 256;

/// `__RING_SIZE`: how many `entry`-byte slots a ring in `bytes` bytes has
/// (the largest power of two that fits after the header; 0 if none).
pub fn ring_entries(bytes: usize, entry: usize) -> u32 {
    if entry == 0 || bytes <= ENTRIES {
        return 0;
    }
    let fit = ((bytes - ENTRIES) / entry).min(1 << 31) as u32;
    if fit == 0 {
        0
    } else {
        1 << (31 - fit.leading_zeros())
    }
}

/// `(new - event) < (new - old)` on free-running indices: whether `event`
/// (the peer's "wake me when you pass this") lies in `(old, new]`.
fn passed(old: RingIdx, new: RingIdx, event: RingIdx) -> bool {
    new.wrapping_sub(event) < new.wrapping_sub(old)
}

/// Memory a ring lives in: a [`SharedMem`] view, or an owner of the
/// ring's pages (a grant owner, a mapping) that hands out views of them,
/// so a driver can keep its ring and its pages in one struct.
///
/// A multi-page ring (`ring-page-order`) need not be contiguous in our
/// address space: its owner says how long the ring is and copies slots
/// across its page boundaries; the header is always in the first page.
pub trait RingMemory {
    /// The first page (the header, and the slots it holds): for a
    /// one-view ring, all of it.
    fn ring_mem(&self) -> SharedMem<'_>;
    /// The ring's length in bytes (all its pages).
    fn ring_len(&self) -> usize {
        self.ring_mem().len()
    }
    /// Copies `dst.len()` bytes at `offset` out of the ring.
    fn ring_read(&self, offset: usize, dst: &mut [u8]) {
        let _ = self.ring_mem().read(offset, dst);
    }
    /// Copies `src` into the ring at `offset`.
    fn ring_write(&self, offset: usize, src: &[u8]) {
        let _ = self.ring_mem().write(offset, src);
    }
}

impl RingMemory for SharedMem<'_> {
    fn ring_mem(&self) -> SharedMem<'_> {
        *self
    }
}

/// What both ends share: the memory, the slot count, the broken flag.
#[derive(Debug)]
struct Shared<M> {
    mem: M,
    size: u32,
    /// Bytes per slot: the larger of the two messages (the C union).
    entry: usize,
    broken: bool,
}

impl<M: RingMemory> Shared<M> {
    fn new(mem: M, entry: usize) -> Result<Self, RingError> {
        if entry > MAX_ENTRY {
            return Err(RingError::EntryTooLarge { entry });
        }
        let view = mem.ring_mem();
        let bytes = mem.ring_len();
        let size = ring_entries(bytes, entry);
        if view.len() < ENTRIES {
            return Err(RingError::TooSmall {
                bytes: view.len(),
                entry,
            });
        }
        if size == 0 {
            return Err(RingError::TooSmall { bytes, entry });
        }
        // From here on index accesses cannot fail (in bounds, aligned),
        // so `load`/`store` may ignore their Result.
        if !(view.as_ptr() as usize).is_multiple_of(4) {
            return Err(RingError::Misaligned {
                addr: view.as_ptr() as usize,
            });
        }
        Ok(Shared {
            mem,
            size,
            entry,
            broken: false,
        })
    }

    fn load(&self, off: usize) -> RingIdx {
        // Acquire: the partner Release store (or wmb()) published the
        // slots below this index; this is ring.h's rmb() after reading a
        // producer index. The header is in bounds and aligned
        // (checked in `new`).
        self.mem
            .ring_mem()
            .load_u32(off, Ordering::Acquire)
            .unwrap_or(0)
    }

    fn store(&self, off: usize, v: RingIdx) {
        // Release: ring.h's wmb() before publishing a producer index (the
        // slots written before it are visible first).
        let _ = self.mem.ring_mem().store_u32(off, v, Ordering::Release);
    }

    fn slot(&self, idx: RingIdx) -> usize {
        ENTRIES + (idx & (self.size - 1)) as usize * self.entry
    }

    fn get<T: Message>(&self, idx: RingIdx) -> T {
        let mut buf = [0u8; MAX_ENTRY];
        // In bounds: slot < size entries, each `entry` <= MAX_ENTRY bytes,
        // and size entries fit the ring (ring_entries of ring_len).
        self.mem.ring_read(self.slot(idx), &mut buf[..T::SIZE]);
        T::decode(&buf[..T::SIZE])
    }

    fn put<T: Message>(&self, idx: RingIdx, m: &T) {
        let mut buf = [0u8; MAX_ENTRY];
        m.encode(&mut buf[..T::SIZE]);
        self.mem.ring_write(self.slot(idx), &buf[..T::SIZE]);
    }

    /// `RING_PUSH_*_AND_CHECK_NOTIFY`: publish `new` at `prod_off` and say
    /// whether the peer's event index (at `event_off`) asks to hear of it.
    fn publish(&self, prod_off: usize, event_off: usize, old: RingIdx, new: RingIdx) -> bool {
        // "wmb(); /* back sees requests /before/ updated producer index */"
        self.store(prod_off, new);
        // "mb(); /* back sees new requests /before/ we check req_event */":
        // pairs with the peer's mb() between setting its event index and
        // re-checking our producer index (RING_FINAL_CHECK_FOR_*).
        mb();
        let event = self
            .mem
            .ring_mem()
            .load_u32(event_off, Ordering::Relaxed)
            .unwrap_or(0);
        passed(old, new, event)
    }
}

fn entry_size<Req: Message, Rsp: Message>() -> usize {
    Req::SIZE.max(Rsp::SIZE)
}

/// The front end of a ring: produces requests, consumes responses
/// (`FRONT_RING_INIT`/`FRONT_RING_ATTACH`, `struct name_front_ring`).
#[derive(Debug)]
pub struct FrontRing<M: RingMemory, Req: Message, Rsp: Message> {
    ring: Shared<M>,
    /// `req_prod_pvt`: requests queued, published or not.
    req_prod_pvt: RingIdx,
    /// The `req_prod` we last published (kept here, not read back).
    req_prod: RingIdx,
    /// `rsp_cons`: responses consumed.
    rsp_cons: RingIdx,
    _msgs: PhantomData<fn(Req) -> Rsp>,
}

impl<M: RingMemory, Req: Message, Rsp: Message> FrontRing<M, Req, Rsp> {
    /// `SHARED_RING_INIT` + `FRONT_RING_INIT`: a fresh ring in `mem`,
    /// before it is granted to the back end.
    pub fn init(mem: M) -> Result<Self, RingError> {
        let ring = Shared::new(mem, entry_size::<Req, Rsp>())?;
        let m = ring.mem.ring_mem();
        let _ = m.store_u32(REQ_PROD, 0, Ordering::Relaxed);
        let _ = m.store_u32(RSP_PROD, 0, Ordering::Relaxed);
        let _ = m.store_u32(REQ_EVENT, 1, Ordering::Relaxed);
        let _ = m.store_u32(RSP_EVENT, 1, Ordering::Relaxed);
        let _ = m.fill(PVT, ENTRIES - PVT, 0);
        Ok(Self::at(ring, 0))
    }

    /// `FRONT_RING_ATTACH`: take over a ring whose indices stand at `idx`
    /// (both ends agree on it, e.g. after a resume).
    pub fn attach(mem: M, idx: RingIdx) -> Result<Self, RingError> {
        Ok(Self::at(Shared::new(mem, entry_size::<Req, Rsp>())?, idx))
    }

    fn at(ring: Shared<M>, idx: RingIdx) -> Self {
        FrontRing {
            ring,
            req_prod_pvt: idx,
            req_prod: idx,
            rsp_cons: idx,
            _msgs: PhantomData,
        }
    }

    /// The memory the ring lives in.
    pub fn memory(&self) -> &M {
        &self.ring.mem
    }

    /// Whether a [`RingError`] broke the ring: every check of the peer's
    /// index answers [`RingError::Broken`] from then on. Pushing is not
    /// refused (it writes only our slots and our index), but a driver
    /// should stop using the ring and close the device.
    pub fn is_broken(&self) -> bool {
        self.ring.broken
    }

    /// `RING_SIZE`: the number of slots.
    pub fn size(&self) -> u32 {
        self.ring.size
    }

    /// `RING_FREE_REQUESTS`: slots neither holding a request nor an
    /// unconsumed response.
    pub fn free_requests(&self) -> u32 {
        self.ring.size - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Requests queued or published and not yet answered and consumed.
    pub fn in_flight(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// `req_prod_pvt`: the index the next request goes to.
    pub fn req_prod_pvt(&self) -> RingIdx {
        self.req_prod_pvt
    }

    /// `rsp_cons`: the index of the next response to consume.
    pub fn rsp_cons(&self) -> RingIdx {
        self.rsp_cons
    }

    /// `RING_GET_REQUEST` + `req_prod_pvt++`: queues `req` in the next
    /// free slot (published by the next `push_requests_and_check_notify`).
    pub fn push_request(&mut self, req: &Req) -> Result<(), RingFull> {
        if self.free_requests() == 0 {
            return Err(RingFull);
        }
        self.ring.put(self.req_prod_pvt, req);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`: publishes the queued
    /// requests; `true` when the back end asked for an event.
    pub fn push_requests_and_check_notify(&mut self) -> bool {
        let (old, new) = (self.req_prod, self.req_prod_pvt);
        if old == new {
            return false;
        }
        self.req_prod = new;
        self.ring.publish(REQ_PROD, REQ_EVENT, old, new)
    }

    /// Responses published and not consumed (`RING_HAS_UNCONSUMED_RESPONSES`),
    /// checked: never more than the requests we published.
    pub fn unconsumed_responses(&mut self) -> Result<u32, RingError> {
        if self.ring.broken {
            return Err(RingError::Broken);
        }
        let rsp_prod = self.ring.load(RSP_PROD);
        let ready = rsp_prod.wrapping_sub(self.rsp_cons);
        if ready > self.req_prod.wrapping_sub(self.rsp_cons) {
            self.ring.broken = true;
            return Err(RingError::TooManyResponses {
                rsp_prod,
                rsp_cons: self.rsp_cons,
                req_prod: self.req_prod,
            });
        }
        Ok(ready)
    }

    /// Whether `rsp_prod` has moved past what we consumed: an unchecked
    /// look for a wait's wake-up condition (the next `poll_response`
    /// checks the index).
    pub fn response_published(&self) -> bool {
        self.ring.load(RSP_PROD) != self.rsp_cons
    }

    /// `RING_GET_RESPONSE` + `rsp_cons++`: the next response, copied out
    /// of its slot; `None` when none is published.
    pub fn poll_response(&mut self) -> Result<Option<Rsp>, RingError> {
        if self.unconsumed_responses()? == 0 {
            return Ok(None);
        }
        // The Acquire load of rsp_prod ordered this copy after it (rmb()).
        let rsp = self.ring.get::<Rsp>(self.rsp_cons);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(rsp))
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES`: before sleeping, asks for an
    /// event at the next response and re-checks; `true` means responses
    /// are waiting (do not sleep).
    pub fn final_check_for_responses(&mut self) -> Result<bool, RingError> {
        if self.unconsumed_responses()? > 0 {
            return Ok(true);
        }
        let _ = self.ring.mem.ring_mem().store_u32(
            RSP_EVENT,
            self.rsp_cons.wrapping_add(1),
            Ordering::Relaxed,
        );
        // "mb()": the event index is visible before we re-read rsp_prod,
        // pairing with the back end's mb() between publishing rsp_prod
        // and reading rsp_event. Without it both may miss each other.
        mb();
        Ok(self.unconsumed_responses()? > 0)
    }
}

/// The back end of a ring: consumes requests, produces responses
/// (`BACK_RING_INIT`/`BACK_RING_ATTACH`, `struct name_back_ring`).
#[derive(Debug)]
pub struct BackRing<M: RingMemory, Req: Message, Rsp: Message> {
    ring: Shared<M>,
    /// `rsp_prod_pvt`: responses queued, published or not.
    rsp_prod_pvt: RingIdx,
    /// The `rsp_prod` we last published.
    rsp_prod: RingIdx,
    /// `req_cons`: requests consumed.
    req_cons: RingIdx,
    _msgs: PhantomData<fn(Req) -> Rsp>,
}

impl<M: RingMemory, Req: Message, Rsp: Message> BackRing<M, Req, Rsp> {
    /// `BACK_RING_INIT`: the back end of a ring the front end initialised.
    pub fn attach(mem: M) -> Result<Self, RingError> {
        Self::attach_at(mem, 0)
    }

    /// `BACK_RING_ATTACH` at index `idx`.
    pub fn attach_at(mem: M, idx: RingIdx) -> Result<Self, RingError> {
        let ring = Shared::new(mem, entry_size::<Req, Rsp>())?;
        Ok(BackRing {
            ring,
            rsp_prod_pvt: idx,
            rsp_prod: idx,
            req_cons: idx,
            _msgs: PhantomData,
        })
    }

    /// The memory the ring lives in.
    pub fn memory(&self) -> &M {
        &self.ring.mem
    }

    /// Whether a [`RingError`] broke the ring: every check of the peer's
    /// index answers [`RingError::Broken`] from then on. Pushing is not
    /// refused (it writes only our slots and our index), but a driver
    /// should stop using the ring and close the device.
    pub fn is_broken(&self) -> bool {
        self.ring.broken
    }

    /// `RING_SIZE`.
    pub fn size(&self) -> u32 {
        self.ring.size
    }

    /// `req_cons`: the index of the next request to consume.
    pub fn req_cons(&self) -> RingIdx {
        self.req_cons
    }

    /// `rsp_prod_pvt`: the index the next response goes to (the slot of
    /// the oldest unanswered request).
    pub fn rsp_prod_pvt(&self) -> RingIdx {
        self.rsp_prod_pvt
    }

    /// Requests published and not consumed (`RING_HAS_UNCONSUMED_REQUESTS`),
    /// checked: the front end may not have more than the ring's size
    /// outstanding (`RING_REQUEST_PROD_OVERFLOW`).
    pub fn unconsumed_requests(&mut self) -> Result<u32, RingError> {
        if self.ring.broken {
            return Err(RingError::Broken);
        }
        let req_prod = self.ring.load(REQ_PROD);
        if req_prod.wrapping_sub(self.rsp_prod_pvt) > self.ring.size
            || req_prod.wrapping_sub(self.req_cons) > req_prod.wrapping_sub(self.rsp_prod_pvt)
        {
            self.ring.broken = true;
            return Err(RingError::TooManyRequests {
                req_prod,
                rsp_prod: self.rsp_prod_pvt,
                size: self.ring.size,
            });
        }
        Ok(req_prod.wrapping_sub(self.req_cons))
    }

    /// Whether `req_prod` has moved past what we consumed (unchecked, for
    /// a wait's condition; `poll_request` checks it).
    pub fn request_published(&self) -> bool {
        self.ring.load(REQ_PROD) != self.req_cons
    }

    /// `RING_COPY_REQUEST` + `req_cons++`: the next request, copied out
    /// of its slot before anything looks at it.
    ///
    /// ring.h leaves `RING_REQUEST_CONS_OVERFLOW` (consuming a request
    /// while a ring's worth are unanswered) to the back end to check;
    /// here it cannot happen: a request is consumed only below a
    /// `req_prod` that [`unconsumed_requests`](Self::unconsumed_requests)
    /// checked to be at most `size` past `rsp_prod_pvt`.
    pub fn poll_request(&mut self) -> Result<Option<Req>, RingError> {
        if self.unconsumed_requests()? == 0 {
            return Ok(None);
        }
        let req = self.ring.get::<Req>(self.req_cons);
        self.req_cons = self.req_cons.wrapping_add(1);
        Ok(Some(req))
    }

    /// Queues `rsp` in the slot of the oldest unanswered request; refused
    /// when every consumed request has been answered.
    pub fn push_response(&mut self, rsp: &Rsp) -> Result<(), RingFull> {
        if self.rsp_prod_pvt == self.req_cons {
            return Err(RingFull);
        }
        self.ring.put(self.rsp_prod_pvt, rsp);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`: publishes the queued
    /// responses; `true` when the front end asked for an event.
    pub fn push_responses_and_check_notify(&mut self) -> bool {
        let (old, new) = (self.rsp_prod, self.rsp_prod_pvt);
        if old == new {
            return false;
        }
        self.rsp_prod = new;
        self.ring.publish(RSP_PROD, RSP_EVENT, old, new)
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`: before sleeping, asks for an
    /// event at the next request and re-checks; `true`: do not sleep.
    pub fn final_check_for_requests(&mut self) -> Result<bool, RingError> {
        if self.unconsumed_requests()? > 0 {
            return Ok(true);
        }
        let _ = self.ring.mem.ring_mem().store_u32(
            REQ_EVENT,
            self.req_cons.wrapping_add(1),
            Ordering::Relaxed,
        );
        // "mb()": pairs with the front end's mb() in
        // RING_PUSH_REQUESTS_AND_CHECK_NOTIFY.
        mb();
        Ok(self.unconsumed_requests()? > 0)
    }
}
