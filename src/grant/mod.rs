//! Grant tables (xen/include/public/grant_table.h): our own table, the
//! v1 entry protocol, foreign mappings, hypervisor copies and transfers,
//! and a page-sharing API with the semantics of Linux's gntalloc driver.
//!
//! Layers, bottom up:
//! - [`entry`]: the raw entry protocol over the table's [`SharedMem`]
//!   (introduce, end access with one compare-and-swap, transfers).
//! - [`refs`]: the free list of grant references.
//! - [`ops`]: the narrow [`GrantOps`] trait behind which the hypervisor
//!   sits, with the real Xen backend (guest only) and, for host tests,
//!   `fake`, a simulated Xen with peers that can misbehave.
//! - [`Grants`]: the table itself (growth on demand), owner objects for
//!   granted pages ([`Granted`], [`SharedPages`]), mapped foreign pages
//!   ([`MappedPages`]), copies and transfers.
//! - [`ReservedRefs`]: a caller's own batch of references, taken from the
//!   table once, through which granting and ending access take no lock
//!   (for drivers that grant per request).
//!
//! Everything but the real backend is free of `unsafe` and runs on the
//! host against the fake.
//!
//! [`SharedMem`]: crate::shared_mem::SharedMem

#[doc(hidden)]
pub mod entry;
#[cfg(any(test, feature = "host-fakes"))]
pub mod fake;
pub mod ops;
#[doc(hidden)]
pub mod refs;

mod copy;
mod map;
mod reserve;
mod share;
mod table;
mod transfer;

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod tests;

pub use copy::{CopyOp, CopyPtr};
pub use map::MappedPages;
pub use ops::{GrantOps, LocalFrame, SharePage, TableSize, Vacant};
pub use reserve::{ReservedGrant, ReservedRefs};
pub use share::{Released, SharedPages};
pub use table::{
    Granted, Grants, DEFAULT_PENDING_LIMIT, DEFAULT_SHARE_LIMIT, DEFAULT_SHARE_LIMIT_PER_DOMAIN,
};
pub use transfer::{Cancelled, TransferError, TransferPoll, TransferSlot};

#[cfg(target_os = "none")]
pub(crate) use ops::xen::grants;
#[cfg(target_os = "none")]
pub use ops::xen::XenGrantOps;

use crate::abi::grant_table as abi;
use crate::errno::Errno;
use crate::event::NotifyPort;
use crate::mm::MemError;
use crate::shared_mem::{OutOfBounds, SharedMem};
use crate::types::{DomId, GrantRef, Mfn};
use alloc::sync::Arc;
use core::fmt;
use core::sync::atomic::Ordering;

/// A failed grant operation's `GNTST_*` status (the op's own `status`
/// field, a different channel from the hypercall's `-errno`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GntStatus {
    /// `GNTST_general_error`
    #[doc(alias = "GNTST_general_error")]
    GeneralError,
    /// `GNTST_bad_domain`
    #[doc(alias = "GNTST_bad_domain")]
    BadDomain,
    /// `GNTST_bad_gntref`
    #[doc(alias = "GNTST_bad_gntref")]
    BadGntref,
    /// `GNTST_bad_handle`
    #[doc(alias = "GNTST_bad_handle")]
    BadHandle,
    /// `GNTST_bad_virt_addr`
    #[doc(alias = "GNTST_bad_virt_addr")]
    BadVirtAddr,
    /// `GNTST_bad_dev_addr`
    #[doc(alias = "GNTST_bad_dev_addr")]
    BadDevAddr,
    /// `GNTST_no_device_space`
    #[doc(alias = "GNTST_no_device_space")]
    NoDeviceSpace,
    /// `GNTST_permission_denied`
    #[doc(alias = "GNTST_permission_denied")]
    PermissionDenied,
    /// `GNTST_bad_page`
    #[doc(alias = "GNTST_bad_page")]
    BadPage,
    /// `GNTST_bad_copy_arg`
    #[doc(alias = "GNTST_bad_copy_arg")]
    BadCopyArg,
    /// `GNTST_address_too_big`
    #[doc(alias = "GNTST_address_too_big")]
    AddressTooBig,
    /// `GNTST_eagain`
    #[doc(alias = "GNTST_eagain")]
    Eagain,
    /// `GNTST_no_space`
    #[doc(alias = "GNTST_no_space")]
    NoSpace,
    /// A negative status this header version does not define, or a
    /// positive one (never written by Xen: the op was not processed).
    Unknown(i16),
}

impl GntStatus {
    /// Interprets an op's `status`: `Ok` for `GNTST_okay`.
    pub fn check(status: i16) -> Result<(), GntStatus> {
        use GntStatus::*;
        Err(match status {
            abi::GNTST_okay => return Ok(()),
            abi::GNTST_general_error => GeneralError,
            abi::GNTST_bad_domain => BadDomain,
            abi::GNTST_bad_gntref => BadGntref,
            abi::GNTST_bad_handle => BadHandle,
            abi::GNTST_bad_virt_addr => BadVirtAddr,
            abi::GNTST_bad_dev_addr => BadDevAddr,
            abi::GNTST_no_device_space => NoDeviceSpace,
            abi::GNTST_permission_denied => PermissionDenied,
            abi::GNTST_bad_page => BadPage,
            abi::GNTST_bad_copy_arg => BadCopyArg,
            abi::GNTST_address_too_big => AddressTooBig,
            abi::GNTST_eagain => Eagain,
            abi::GNTST_no_space => NoSpace,
            other => Unknown(other),
        })
    }

    /// The raw `GNTST_*` value.
    pub fn raw(self) -> i16 {
        use GntStatus::*;
        match self {
            GeneralError => abi::GNTST_general_error,
            BadDomain => abi::GNTST_bad_domain,
            BadGntref => abi::GNTST_bad_gntref,
            BadHandle => abi::GNTST_bad_handle,
            BadVirtAddr => abi::GNTST_bad_virt_addr,
            BadDevAddr => abi::GNTST_bad_dev_addr,
            NoDeviceSpace => abi::GNTST_no_device_space,
            PermissionDenied => abi::GNTST_permission_denied,
            BadPage => abi::GNTST_bad_page,
            BadCopyArg => abi::GNTST_bad_copy_arg,
            AddressTooBig => abi::GNTST_address_too_big,
            Eagain => abi::GNTST_eagain,
            NoSpace => abi::GNTST_no_space,
            Unknown(v) => v,
        }
    }

    /// The header's `GNTTABOP_error_msgs` text for this status.
    pub fn message(self) -> &'static str {
        let idx = -(self.raw() as i32);
        usize::try_from(idx)
            .ok()
            .and_then(|i| abi::GNTTABOP_error_msgs.get(i))
            .copied()
            .unwrap_or("unknown grant status")
    }
}

impl fmt::Display for GntStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (GNTST {})", self.message(), self.raw())
    }
}

/// Everything a grant operation can fail with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantError {
    /// The hypercall itself failed (`-errno`).
    Hypercall(Errno),
    /// Xen processed the op and refused it (`GNTST_*`).
    Status(GntStatus),
    /// Op `index` of a batch failed with `status`; the rest were undone.
    BatchOp {
        /// Position of the first failing op in the batch.
        index: usize,
        /// Its status.
        status: GntStatus,
    },
    /// No free reference and the table is at its maximum size.
    TableFull,
    /// The share limit would be exceeded (gntalloc's `-ENOSPC`).
    LimitReached {
        /// The configured limit.
        limit: u32,
        /// Pages counted now, pending ones included.
        in_use: u32,
        /// Pages asked for.
        requested: u32,
    },
    /// The per-domain share limit would be exceeded: one peer may not
    /// take the whole global limit.
    DomainLimitReached {
        /// The domain the pages would be shared with.
        domid: DomId,
        /// The configured per-domain limit.
        limit: u32,
        /// Pages counted for `domid` now, pending ones included.
        in_use: u32,
        /// Pages asked for.
        requested: u32,
    },
    /// Too many pages from [`Grants::grant`] are pending (dropped while
    /// the peer still maps them): no new grant until peers unmap some.
    PendingLimitReached {
        /// The configured limit.
        limit: u32,
        /// Granted pages pending now.
        pending: u32,
    },
    /// Xen reported a table size whose references would not fit a 32-bit
    /// `grant_ref_t` (or growth would pass that bound).
    BadTableSize(TableSize),
    /// A reference outside the table.
    BadRef(GrantRef),
    /// One of the 8 reserved references (console, xenstore, ...).
    ReservedRef(GrantRef),
    /// A reference freed twice.
    DoubleFree(GrantRef),
    /// The peer has the entry mapped (`GTF_reading`/`GTF_writing`): the
    /// access cannot end yet.
    InUse(GrantRef),
    /// A frame number that does not fit a v1 entry's 32-bit `frame`.
    FrameTooLarge(Mfn),
    /// A domain id that names no real domain (e.g. `DOMID_SELF` in an entry).
    BadDomain(DomId),
    /// Release of pages the owner does not hold (gntalloc's `-EINVAL`).
    NotHeld {
        /// The index asked for.
        index: u64,
        /// The count asked for.
        count: u32,
    },
    /// An offset or length outside a page, or an otherwise invalid argument.
    InvalidArgument,
    /// The memory manager failed.
    Memory(MemError),
    /// An unmap notification's event could not be sent (the unmap itself
    /// happened).
    Notify(crate::event::EventError),
    /// A wait for peers to unmap timed out with `pages` still mapped.
    StillMapped {
        /// Pages a peer still maps.
        pages: u32,
    },
    /// Every reference of a [`ReservedRefs`] batch is granted now.
    NoReservedRef {
        /// References the batch holds.
        reserved: u32,
    },
}

impl From<Errno> for GrantError {
    fn from(e: Errno) -> Self {
        GrantError::Hypercall(e)
    }
}

impl From<GntStatus> for GrantError {
    fn from(s: GntStatus) -> Self {
        GrantError::Status(s)
    }
}

impl From<MemError> for GrantError {
    fn from(e: MemError) -> Self {
        GrantError::Memory(e)
    }
}

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrantError::Hypercall(e) => write!(f, "grant hypercall failed: {e}"),
            GrantError::Status(s) => write!(f, "grant op failed: {s}"),
            GrantError::BatchOp { index, status } => {
                write!(f, "grant op {index} of a batch failed: {status}")
            }
            other => write!(f, "{other:?}"),
        }
    }
}

/// What a peer may do with a granted or mapped page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read and write.
    ReadWrite,
    /// Read only (`GTF_readonly` / `GNTMAP_readonly`).
    ReadOnly,
}

impl Access {
    fn readonly(self) -> bool {
        self == Access::ReadOnly
    }
}

/// What to do when a shared or mapped page is released: the gntalloc and
/// gntdev `UNMAP_NOTIFY_CLEAR_BYTE` / `UNMAP_NOTIFY_SEND_EVENT` actions,
/// which libxenvchan uses to tell its peer that one side went away.
///
/// The event names a held port ([`NotifyPort`], e.g. an
/// `Arc<event::Port>`), not a number: the owner keeps the handle, so the
/// port cannot be closed and reused by something else before the
/// notification fires.
#[derive(Clone, Default)]
#[doc(alias = "UNMAP_NOTIFY_CLEAR_BYTE")]
#[doc(alias = "UNMAP_NOTIFY_SEND_EVENT")]
pub struct UnmapNotify<'p> {
    /// Byte offset (in the page, or in the whole mapping for
    /// [`MappedPages`]) to set to zero.
    pub clear_byte: Option<usize>,
    /// Event channel to signal.
    pub send_event: Option<Arc<dyn NotifyPort + 'p>>,
}

impl fmt::Debug for UnmapNotify<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnmapNotify")
            .field("clear_byte", &self.clear_byte)
            .field("send_event", &self.send_event.as_ref().map(|p| p.port()))
            .finish()
    }
}

/// A borrowed view of one shared or mapped page. The borrow keeps the
/// owner (and so the page) alive; accesses are volatile or atomic, never
/// through a Rust reference, because the peer may write at any moment.
#[derive(Debug, Clone, Copy)]
pub struct PageView<'a> {
    mem: SharedMem<'a>,
    writable: bool,
}

impl<'a> PageView<'a> {
    fn new(mem: SharedMem<'a>, writable: bool) -> Self {
        PageView { mem, writable }
    }

    fn writable(&self) -> Result<&SharedMem<'a>, GrantError> {
        if self.writable {
            Ok(&self.mem)
        } else {
            Err(GrantError::InvalidArgument)
        }
    }

    /// The underlying view, borrowing the page's owner like `self` does.
    #[cfg_attr(not(target_os = "none"), allow(dead_code))] // used by the guest-only vchan channel
    pub(crate) fn shared_mem(&self) -> SharedMem<'a> {
        self.mem
    }

    /// Bytes in the page.
    pub fn len(&self) -> usize {
        self.mem.len()
    }

    /// Always false: a page is never empty.
    pub fn is_empty(&self) -> bool {
        self.mem.is_empty()
    }

    /// Copies bytes out of the page.
    pub fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), GrantError> {
        self.mem.read(offset, dst).map_err(oob)
    }

    /// Copies bytes into the page (refused on a read-only mapping).
    pub fn write(&self, offset: usize, src: &[u8]) -> Result<(), GrantError> {
        self.writable()?.write(offset, src).map_err(oob)
    }

    /// Atomically loads a byte.
    pub fn load_u8(&self, offset: usize) -> Result<u8, GrantError> {
        self.mem.load_u8(offset, Ordering::Acquire).map_err(oob)
    }

    /// Atomically stores a byte.
    pub fn store_u8(&self, offset: usize, v: u8) -> Result<(), GrantError> {
        self.writable()?
            .store_u8(offset, v, Ordering::Release)
            .map_err(oob)
    }

    /// Atomically loads an aligned `u32`.
    pub fn load_u32(&self, offset: usize) -> Result<u32, GrantError> {
        self.mem.load_u32(offset, Ordering::Acquire).map_err(oob)
    }

    /// Atomically stores an aligned `u32`.
    pub fn store_u32(&self, offset: usize, v: u32) -> Result<(), GrantError> {
        self.writable()?
            .store_u32(offset, v, Ordering::Release)
            .map_err(oob)
    }

    /// Sets `len` bytes at `offset` to `value`.
    pub fn fill(&self, offset: usize, len: usize, value: u8) -> Result<(), GrantError> {
        self.writable()?.fill(offset, len, value).map_err(oob)
    }
}

fn oob(_: OutOfBounds) -> GrantError {
    GrantError::InvalidArgument
}

/// Pages seen as one buffer: splits `len` bytes at byte `offset` into
/// (page, offset in page, range of the caller's buffer) pieces, or fails
/// if they reach past `pages` pages.
fn spans(
    pages: usize,
    offset: usize,
    len: usize,
) -> Result<impl Iterator<Item = (usize, usize, core::ops::Range<usize>)>, GrantError> {
    let end = offset.checked_add(len).ok_or(GrantError::InvalidArgument)?;
    use crate::abi::PAGE_SIZE;
    if end
        > pages
            .checked_mul(PAGE_SIZE)
            .ok_or(GrantError::InvalidArgument)?
    {
        return Err(GrantError::InvalidArgument);
    }
    let mut at = offset;
    Ok(core::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let (page, in_page) = (at / PAGE_SIZE, at % PAGE_SIZE);
        let n = (PAGE_SIZE - in_page).min(end - at);
        let piece = (page, in_page, at - offset..at - offset + n);
        at += n;
        Some(piece)
    }))
}

/// Reads `dst.len()` bytes at byte `offset` of pages `page(0..n)` seen as
/// one buffer.
fn read_span<'p>(
    n: usize,
    page: impl Fn(usize) -> Option<PageView<'p>>,
    offset: usize,
    dst: &mut [u8],
) -> Result<(), GrantError> {
    for (i, off, range) in spans(n, offset, dst.len())? {
        page(i)
            .ok_or(GrantError::InvalidArgument)?
            .read(off, &mut dst[range])?;
    }
    Ok(())
}

/// Writes `src` at byte `offset` of pages `page(0..n)` seen as one buffer.
fn write_span<'p>(
    n: usize,
    page: impl Fn(usize) -> Option<PageView<'p>>,
    offset: usize,
    src: &[u8],
) -> Result<(), GrantError> {
    for (i, off, range) in spans(n, offset, src.len())? {
        page(i)
            .ok_or(GrantError::InvalidArgument)?
            .write(off, &src[range])?;
    }
    Ok(())
}

/// Granted pages in ring order, a share or a mapping: what
/// [`crate::ring::RingMemory`] needs of them. Implemented by
/// [`SharedPages`] and [`MappedPages`] only.
pub trait PageSpan {
    /// Number of pages.
    fn page_count(&self) -> usize;
    /// Page `i`'s bytes.
    fn page_view(&self, i: usize) -> Option<PageView<'_>>;
}

/// Granted pages can hold a ring (`crate::ring`), of one page or several
/// (`ring-page-order`): the header in the first page, slots copied
/// across the pages, as the share or mapping sees them in order.
impl<P: PageSpan> crate::ring::RingMemory for P {
    fn ring_mem(&self) -> SharedMem<'_> {
        self.page_view(0)
            .map_or(SharedMem::empty(), |p| p.shared_mem())
    }
    fn ring_len(&self) -> usize {
        self.page_count() * crate::abi::PAGE_SIZE
    }
    fn ring_read(&self, offset: usize, dst: &mut [u8]) {
        let _ = read_span(self.page_count(), |i| self.page_view(i), offset, dst);
    }
    fn ring_write(&self, offset: usize, src: &[u8]) {
        let _ = write_span(self.page_count(), |i| self.page_view(i), offset, src);
    }
}
