//! Views of shared and mapped pages, and what their release tells the
//! peer: [`PageView`] borrows its owner, so a view cannot outlive the page;
//! [`UnmapNotify`] is gntalloc's and gntdev's unmap notification.

use super::error::GrantError;
use crate::event::NotifyPort;
use crate::shared_mem::{OutOfBounds, SharedMem};
use alloc::sync::Arc;
use core::fmt;
use core::sync::atomic::Ordering;

/// What a peer may do with a granted or mapped page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read and write.
    ReadWrite,
    /// Read only (`GTF_readonly` / `GNTMAP_readonly`).
    ReadOnly,
}

impl Access {
    pub(super) fn readonly(self) -> bool {
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
    /// [`MappedPages`](crate::grant::MappedPages)) to set to zero.
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
    pub(super) fn new(mem: SharedMem<'a>, writable: bool) -> Self {
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

pub(super) fn oob(_: OutOfBounds) -> GrantError {
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
pub(super) fn read_span<'p>(
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
pub(super) fn write_span<'p>(
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
/// [`SharedPages`](super::SharedPages) and [`MappedPages`](super::MappedPages) only.
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
