//! Sharing pages with a peer, with the semantics of Linux's gntalloc
//! driver (`IOCTL_GNTALLOC_ALLOC_GREF`, `..._DEALLOC_GREF`,
//! `..._SET_UNMAP_NOTIFY`, the module's `limit`), made safe: the owner
//! object holds the pages, a page the peer still maps at release is
//! never freed or reused but kept pending until a later grant operation
//! finds it unmapped, and the pages are reached only through
//! [`PageView`](super::PageView).

use super::error::GrantError;
use super::ops::{GrantOps, SharePage};
use super::table::{Charge, Grants};
use super::view::{Access, PageView, UnmapNotify};
use crate::abi::grant_table::{GTF_reading, GTF_writing};
use crate::abi::PAGE_SIZE;
use crate::event::{EventError, EventOps};
use crate::types::{DomId, GrantRef, Mfn};
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use core::time::Duration;

#[derive(Debug)]
struct Slot<'g, P> {
    gref: GrantRef,
    page: P,
    notify: UnmapNotify<'g>,
}

/// What a release did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Released {
    /// Pages whose access ended and which were freed.
    pub freed: u32,
    /// Pages the peer still maps, kept on the pending list.
    pub pending: u32,
    /// The first unmap-notify event that could not be sent.
    pub notify_failed: Option<EventError>,
}

/// `count` pages shared with one domain, at file-like `index`
/// (`index + i * PAGE_SIZE` is page `i`, as gntalloc numbers them).
/// Dropping it releases every page it still holds.
#[derive(Debug)]
pub struct SharedPages<'g, B: GrantOps> {
    grants: &'g Grants<B>,
    domid: DomId,
    access: Access,
    index: u64,
    slots: Vec<Option<Slot<'g, B::Page>>>,
}

impl<B: GrantOps> Grants<B> {
    /// Sets the limit on pages shared at once (pending ones count).
    pub fn set_share_limit(&self, limit: u32) {
        self.inner.lock().share_limit = limit;
    }

    /// Sets the limit on pages shared at once with any one domain
    /// (pending ones count), checked along with the global one.
    pub fn set_share_limit_per_domain(&self, limit: u32) {
        self.inner.lock().share_limit_per_domain = limit;
    }

    /// Shares `count` zeroed pages with `domid` (gntalloc's
    /// `IOCTL_GNTALLOC_ALLOC_GREF`): all of them or none.
    pub fn share(
        &self,
        domid: DomId,
        count: u32,
        access: Access,
    ) -> Result<SharedPages<'_, B>, GrantError> {
        if !domid.is_real() {
            return Err(GrantError::BadDomain(domid));
        }
        if count == 0 {
            return Err(GrantError::InvalidArgument);
        }
        let mut g = self.inner.lock();
        // As the driver does before enforcing its limit: pages the peer
        // has unmapped since their release should not count.
        g.reclaim();
        let in_use = g.shared_pages;
        if in_use.checked_add(count).is_none_or(|n| n > g.share_limit) {
            return Err(GrantError::LimitReached {
                limit: g.share_limit,
                in_use,
                requested: count,
            });
        }
        let dom_in_use = g.shared_per_domain.get(domid);
        let limit = g.share_limit_per_domain;
        if dom_in_use.checked_add(count).is_none_or(|n| n > limit) {
            return Err(GrantError::DomainLimitReached {
                domid,
                limit,
                in_use: dom_in_use,
                requested: count,
            });
        }
        // Room on the pending list for every page, so that releasing them
        // (also in a drop) never allocates.
        g.reserve_pending(count)?;
        // One vector for the whole share: page, reference and unmap
        // notification of each.
        let mut slots = Vec::with_capacity(count as usize);
        let got = (|| {
            // Room for every reference first (growing the table if it
            // must), all or nothing.
            g.table.grow_for(count)?;
            for _ in 0..count {
                let page = g.table.ops.alloc_page()?;
                if u32::try_from(page.mfn().0).is_err() {
                    return Err(GrantError::FrameTooLarge(page.mfn()));
                }
                let gref = g.table.alloc_ref()?;
                slots.push(Some(Slot {
                    gref,
                    page,
                    notify: UnmapNotify::default(),
                }));
            }
            Ok(())
        })();
        if let Err(e) = got {
            // Nothing is granted yet: the references go back, the pages
            // just drop.
            for slot in slots.iter().flatten() {
                let _ = g.table.refs.free(slot.gref);
            }
            g.unreserve(count);
            return Err(e);
        }
        for slot in slots.iter().flatten() {
            // Cannot fail: the reference is in range and the frame fits
            // (both checked above).
            let _ =
                g.table
                    .entries
                    .grant_access(slot.gref, domid, slot.page.mfn(), access.readonly());
        }
        g.shared_pages += count;
        g.shared_per_domain.add(domid, count);
        let index = g.next_index;
        g.next_index += count as u64 * PAGE_SIZE as u64;
        Ok(SharedPages {
            grants: self,
            domid,
            access,
            index,
            slots,
        })
    }
}

impl<'g, B: GrantOps> SharedPages<'g, B> {
    /// The index of page 0 (gntalloc's `op.index`).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The domain the pages are shared with.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// What the peer may do with them.
    pub fn access(&self) -> Access {
        self.access
    }

    /// Number of pages (held or already released).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether every page has been released.
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    /// The grant reference of page `i`, if still held.
    pub fn gref(&self, i: usize) -> Option<GrantRef> {
        self.slots.get(i)?.as_ref().map(|s| s.gref)
    }

    /// The references of the pages still held, in page order.
    pub fn refs(&self) -> impl Iterator<Item = GrantRef> + '_ {
        self.slots.iter().flatten().map(|s| s.gref)
    }

    /// The frame of page `i` (for `GNTTABOP_copy` to or from it).
    pub fn mfn(&self, i: usize) -> Option<Mfn> {
        self.slots.get(i)?.as_ref().map(|s| s.page.mfn())
    }

    /// Page `i`'s bytes, if still held.
    pub fn page(&self, i: usize) -> Option<PageView<'_>> {
        self.slots
            .get(i)?
            .as_ref()
            .map(|s| PageView::new(s.page.mem(), true))
    }

    /// Sets what happens when page `i` is released
    /// (`IOCTL_GNTALLOC_SET_UNMAP_NOTIFY`).
    pub fn set_unmap_notify(
        &mut self,
        i: usize,
        notify: UnmapNotify<'g>,
    ) -> Result<(), GrantError> {
        if notify.clear_byte.is_some_and(|o| o >= PAGE_SIZE) {
            return Err(GrantError::InvalidArgument);
        }
        let slot = self
            .slots
            .get_mut(i)
            .and_then(Option::as_mut)
            .ok_or(GrantError::InvalidArgument)?;
        slot.notify = notify;
        Ok(())
    }

    /// Releases `count` pages from `index` (gntalloc's
    /// `IOCTL_GNTALLOC_DEALLOC_GREF`); each must still be held, else
    /// nothing is released.
    pub fn release(&mut self, index: u64, count: u32) -> Result<Released, GrantError> {
        let not_held = GrantError::NotHeld { index, count };
        let off = index.checked_sub(self.index).ok_or(not_held)?;
        if off % PAGE_SIZE as u64 != 0 || count == 0 {
            return Err(not_held);
        }
        let first = usize::try_from(off / PAGE_SIZE as u64).map_err(|_| not_held)?;
        let end = first
            .checked_add(count as usize)
            .filter(|&e| e <= self.slots.len())
            .ok_or(not_held)?;
        if self.slots[first..end].iter().any(Option::is_none) {
            return Err(not_held);
        }
        Ok(self.release_slots(first, end))
    }

    /// Releases `count` pages from page number `first` (0 is the first
    /// page of this share): [`release`](Self::release) without gntalloc's
    /// byte offsets.
    pub fn release_pages(&mut self, first: usize, count: usize) -> Result<Released, GrantError> {
        let not_held = GrantError::NotHeld {
            index: u64::MAX,
            count: u32::try_from(count).unwrap_or(u32::MAX),
        };
        let offset = u64::try_from(first)
            .ok()
            .and_then(|f| f.checked_mul(PAGE_SIZE as u64))
            .ok_or(not_held)?;
        let index = self.index.checked_add(offset).ok_or(not_held)?;
        self.release(index, u32::try_from(count).map_err(|_| not_held)?)
    }

    /// Reads `dst.len()` bytes at byte `offset` of the pages seen as one
    /// buffer (as gntalloc's `mmap` of the whole allocation shows them).
    /// Fails with `InvalidArgument` past the end (before touching any page)
    /// or at a released page.
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> Result<(), GrantError> {
        super::view::read_span(self.len(), |i| self.page(i), offset, dst)
    }

    /// Writes `src` at byte `offset` of the pages seen as one buffer.
    pub fn write_at(&self, offset: usize, src: &[u8]) -> Result<(), GrantError> {
        super::view::write_span(self.len(), |i| self.page(i), offset, src)
    }

    /// Pages still held that a peer maps now (it may map or unmap at any
    /// moment after this looks).
    pub fn mapped_count(&self) -> u32 {
        let mapped = GTF_reading | GTF_writing;
        self.refs()
            .filter(|&r| self.grants.entry_flags(r).is_ok_and(|f| f & mapped != 0))
            .count() as u32
    }

    /// Waits until no peer maps any page still held (e.g. before
    /// releasing, so that no page goes pending), polling every
    /// millisecond on `events`' clock; `StillMapped` at the timeout.
    pub fn wait_unmapped<E: EventOps + ?Sized>(
        &self,
        events: &E,
        timeout: Duration,
    ) -> Result<(), GrantError> {
        super::table::poll_until(events, timeout, || self.mapped_count())
    }

    /// Releases every page still held.
    pub fn release_all(&mut self) -> Released {
        self.release_slots(0, self.slots.len())
    }

    fn release_slots(&mut self, first: usize, end: usize) -> Released {
        let mut out = Released::default();
        // The driver's __del_gref order: notify first, so a peer that
        // watches the byte or the event unmaps and we can reclaim. The
        // port is caller code (a safe `NotifyPort` may look at this very
        // table, and dropping the last handle may close the port through
        // an `EventOps`): it runs, and its handle is dropped, before the
        // table is locked, as `MappedPages` does after its unlock.
        for slot in self.slots[first..end].iter_mut().flatten() {
            if let Some(off) = slot.notify.clear_byte.take() {
                // In range: checked by set_unmap_notify.
                let _ = slot.page.mem().store_u8(off, 0, Ordering::Release);
            }
            if let Some(port) = slot.notify.send_event.take() {
                if let Err(e) = port.notify() {
                    out.notify_failed.get_or_insert(e);
                }
            }
        }
        // Under the lock only the table's own work: each slot now holds
        // nothing but its reference and its page.
        let charge = Charge::Shared(self.domid);
        let mut g = self.grants.inner.lock();
        for slot in self.slots[first..end].iter_mut().filter_map(Option::take) {
            if g.release(slot.gref, slot.page, charge) {
                out.pending += 1;
            } else {
                out.freed += 1;
            }
        }
        g.reclaim();
        out
    }
}

impl<B: GrantOps> Drop for SharedPages<'_, B> {
    fn drop(&mut self) {
        // A drop cannot report; pending pages stay accounted and a failed
        // notify event is the only loss (the peer still sees the byte).
        let _ = self.release_all();
    }
}

impl<B: GrantOps> super::view::PageSpan for SharedPages<'_, B> {
    fn page_count(&self) -> usize {
        self.len()
    }
    fn page_view(&self, i: usize) -> Option<PageView<'_>> {
        self.page(i)
    }
}
