//! A caller's own batch of grant references, taken from the table once
//! (Linux's `gnttab_alloc_grant_references`, `gnttab_claim_grant_reference`,
//! `gnttab_release_grant_reference`, `gnttab_free_grant_references`), so
//! that granting and ending access take no lock.
//!
//! [`Grants::grant`] and [`Granted::end_access`](super::Granted::end_access)
//! each lock the table (the free list, the pending list and the limits
//! live behind it). A driver that grants and ends access for every
//! request, as a block or network front end without persistent grants
//! does, takes its references once with [`Grants::reserve_refs`] and then
//! grants and ends through [`ReservedRefs`]: the entry protocol is the
//! same (`entry.rs`: introduce with a barrier, end with one compare-and-
//! swap), only the bookkeeping is the caller's own.
//!
//! The batch is the caller's, not shared: [`ReservedRefs`] may move to
//! another thread but not be used from two (`!Sync`), and its grants live
//! on its thread. Everything a drop may need is set aside when the batch
//! is taken: a grant dropped while the peer maps its page goes to the
//! table's pending list, in room reserved for it, and its reference goes
//! with it (the batch shrinks by one).

use super::entry::{Entry, EntryTable};
use super::error::GrantError;
use super::ops::{GrantOps, SharePage};
use super::table::{Charge, Grants};
use super::view::{Access, PageView};
use crate::types::{DomId, GrantRef};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::Cell;

/// `n` grant references of our table, reserved for one caller: grants
/// through it take no lock. Dropping it gives the free ones back.
#[derive(Debug)]
pub struct ReservedRefs<'g, B: GrantOps> {
    grants: &'g Grants<B>,
    /// The table as it was when the references were taken: it covers all
    /// of them, and the table's frames stay mapped at the same place for
    /// the domain's life (growth only appends).
    entries: EntryTable,
    /// A stack of the references not granted now (entries invalid):
    /// `free[..top]`. It has room for every reference of the batch, so
    /// giving one back never allocates.
    free: Box<[Cell<GrantRef>]>,
    top: Cell<usize>,
    /// References the batch answers for: the free ones and the ones its
    /// live grants hold (a grant that went pending took its own along).
    owned: Cell<u32>,
}

impl<B: GrantOps> Grants<B> {
    /// Takes `n` references for the caller's own use (one table lock, and
    /// growth if needed). The pending room for each is reserved too, as
    /// for [`grant`](Self::grant), and the same pending limit applies.
    pub fn reserve_refs(&self, n: u32) -> Result<ReservedRefs<'_, B>, GrantError> {
        if n == 0 {
            return Err(GrantError::InvalidArgument);
        }
        let mut free = Vec::new();
        free.try_reserve_exact(n as usize)
            .map_err(|_| GrantError::Memory(crate::mm::MemError::OutOfFrames))?;
        let mut g = self.inner.lock();
        g.reclaim();
        if g.granted_pending >= g.pending_limit {
            return Err(GrantError::PendingLimitReached {
                limit: g.pending_limit,
                pending: g.granted_pending,
            });
        }
        g.reserve_pending(n)?;
        if let Err(e) = g.table.alloc_refs(n, &mut free) {
            g.unreserve(n);
            return Err(e);
        }
        let entries = g.table.entries;
        drop(g);
        let free: Box<[Cell<GrantRef>]> = free.into_iter().map(Cell::new).collect();
        Ok(ReservedRefs {
            grants: self,
            entries,
            top: Cell::new(free.len()),
            free,
            owned: Cell::new(n),
        })
    }
}

impl<'g, B: GrantOps> ReservedRefs<'g, B> {
    /// References free in the batch now.
    pub fn available(&self) -> u32 {
        self.top.get() as u32
    }

    /// References the batch holds: free ones and those its live grants
    /// hold. It shrinks by one for each grant dropped while mapped.
    pub fn len(&self) -> u32 {
        self.owned.get()
    }

    /// Whether the batch holds no reference any more.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Grants `domid` access to `page` with one of the batch's references:
    /// no lock, no hypercall, no allocation. On failure the page comes
    /// back; with every reference in use, [`GrantError::NoReservedRef`].
    #[inline]
    pub fn grant(
        &self,
        domid: DomId,
        page: B::Page,
        access: Access,
    ) -> Result<ReservedGrant<'_, B>, (B::Page, GrantError)> {
        if !domid.is_real() {
            return Err((page, GrantError::BadDomain(domid)));
        }
        let Some(r) = self.take() else {
            return Err((
                page,
                GrantError::NoReservedRef {
                    reserved: self.owned.get(),
                },
            ));
        };
        let granted = self.entries.at(r).and_then(|entry| {
            entry
                .grant_access(domid, page.mfn(), access == Access::ReadOnly)
                .map(|()| entry)
        });
        match granted {
            Ok(entry) => Ok(ReservedGrant {
                refs: self,
                entry,
                gref: r,
                page: Some(page),
                access,
            }),
            Err(e) => {
                // The entry was never made valid: the reference is free again.
                self.give_back(r);
                Err((page, e))
            }
        }
    }

    /// Takes a free reference off the stack.
    #[inline]
    fn take(&self) -> Option<GrantRef> {
        let top = self.top.get().checked_sub(1)?;
        let r = self.free.get(top)?.get();
        self.top.set(top);
        Some(r)
    }

    /// Takes back a reference whose entry is invalid again.
    #[inline]
    fn give_back(&self, r: GrantRef) {
        // Every reference given back was taken, so there is room.
        if let Some(slot) = self.free.get(self.top.get()) {
            slot.set(r);
            self.top.set(self.top.get() + 1);
        }
    }
}

impl<B: GrantOps> Drop for ReservedRefs<'_, B> {
    fn drop(&mut self) {
        // Every grant borrows the batch, so none is alive: each reference
        // still owned is free, its entry invalid.
        let mut g = self.grants.inner.lock();
        for r in self.free.iter().take(self.top.get()) {
            let _ = g.table.refs.free(r.get());
        }
        g.unreserve(self.owned.get());
    }
}

/// One page granted through a [`ReservedRefs`] batch. As
/// [`Granted`](super::Granted): [`end_access`](Self::end_access) gives the
/// page back once the peer has no mapping, and a drop while the peer maps
/// it keeps the page pending; neither takes a lock unless it goes pending.
#[derive(Debug)]
pub struct ReservedGrant<'r, B: GrantOps> {
    refs: &'r ReservedRefs<'r, B>,
    /// The grant's entry, found (bounds and alignment checked) when it
    /// was granted: ending access goes straight to it.
    entry: Entry,
    gref: GrantRef,
    page: Option<B::Page>,
    access: Access,
}

impl<B: GrantOps> ReservedGrant<'_, B> {
    /// The reference to pass to the peer.
    pub fn gref(&self) -> GrantRef {
        self.gref
    }

    /// The granted page's bytes.
    pub fn page(&self) -> PageView<'_> {
        // `page` is Some until end_access or drop take it.
        let mem = self
            .page
            .as_ref()
            .map(|p| p.mem())
            .expect("ReservedGrant without page");
        PageView::new(mem, true)
    }

    /// What the peer may do.
    pub fn access(&self) -> Access {
        self.access
    }

    /// Ends the peer's access with one compare-and-swap and returns the
    /// page, its reference back in the batch; while the peer maps it,
    /// fails with [`GrantError::InUse`] and hands the owner back.
    #[inline]
    pub fn end_access(mut self) -> Result<B::Page, (Self, GrantError)> {
        match self.entry.end_access() {
            Ok(()) => {
                self.refs.give_back(self.gref);
                Ok(self.page.take().expect("ReservedGrant without page"))
            }
            Err(e) => Err((self, e)),
        }
    }

    /// Restricts the peer to reading (refused while it maps the page
    /// writable).
    pub fn make_readonly(&mut self) -> Result<(), GrantError> {
        self.refs.entries.make_readonly(self.gref)?;
        self.access = Access::ReadOnly;
        Ok(())
    }

    /// Lets the peer write again.
    pub fn make_writable(&mut self) -> Result<(), GrantError> {
        self.refs.entries.make_writable(self.gref)?;
        self.access = Access::ReadWrite;
        Ok(())
    }
}

impl<B: GrantOps> Drop for ReservedGrant<'_, B> {
    #[inline]
    fn drop(&mut self) {
        // After end_access there is nothing left to do.
        if let Some(page) = self.page.take() {
            self.end_or_park(page);
        }
    }
}

impl<B: GrantOps> ReservedGrant<'_, B> {
    #[cold]
    fn end_or_park(&self, page: B::Page) {
        if self.entry.end_access().is_ok() {
            self.refs.give_back(self.gref);
            return;
        }
        // The peer maps it: the table keeps the page (and the reference)
        // pending, in the room the batch reserved. `release` tries once
        // more, and frees both if the peer has unmapped since.
        self.refs
            .grants
            .inner
            .lock()
            .release(self.gref, page, Charge::Granted);
        self.refs.owned.set(self.refs.owned.get() - 1);
    }
}
