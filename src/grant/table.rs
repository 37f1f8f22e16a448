//! Our own grant table: set up with `GNTTABOP_setup_table`, grown on
//! demand up to `GNTTABOP_query_size`'s maximum, its frames mapped into
//! one contiguous window; and [`Grants`], the lock-protected state every
//! grant owner object refers to.

use super::entry::EntryTable;
use super::error::{GrantError, TableSize};
use super::ops::{GrantOps, SharePage, Vacant};
use super::refs::RefAllocator;
use super::view::{Access, PageView};
use crate::abi::grant_table::GNTENT_PER_FRAME;
use crate::event::EventOps;
use crate::mm::MemError;
use crate::types::{DomId, GrantRef, Mfn};
use alloc::vec::Vec;
use core::time::Duration;
use spin::Mutex;

/// The default limit on pages from [`Grants::grant`] kept pending because
/// their peer still maps them (gntalloc's default share limit).
pub const DEFAULT_PENDING_LIMIT: u32 = 1024;

/// The driver's default `limit`: pages shared at once, pending included.
pub const DEFAULT_SHARE_LIMIT: u32 = 1024;

/// The default limit on pages shared with any one domain, pending
/// included: three quarters of the global default, so one peer (even
/// one holding a vchan at the largest orders, 513 pages) cannot starve
/// the others of the last quarter. Change it with
/// [`set_share_limit_per_domain`](Grants::set_share_limit_per_domain).
pub const DEFAULT_SHARE_LIMIT_PER_DOMAIN: u32 = DEFAULT_SHARE_LIMIT / 4 * 3;

/// The most frames whose references all fit a 32-bit `grant_ref_t`.
const MAX_TABLE_FRAMES: u32 = u32::MAX / GNTENT_PER_FRAME as u32;

/// The table's frames and references.
#[derive(Debug)]
pub(crate) struct GrantTable<B: GrantOps> {
    pub(crate) ops: B,
    pub(crate) entries: EntryTable,
    pub(crate) refs: RefAllocator,
    nr_frames: u32,
    max_frames: u32,
}

impl<B: GrantOps> GrantTable<B> {
    fn new(mut ops: B, initial_frames: u32) -> Result<Self, GrantError> {
        let size = ops.query_size()?;
        let max_frames = size.max_nr_frames;
        // Checked before anything is sized from it: with at most this many
        // frames, every frames-times-entries product below fits a u32.
        if max_frames > MAX_TABLE_FRAMES {
            return Err(GrantError::BadTableSize(size));
        }
        // Xen gives every domain at least one frame; take what it has now
        // (the toolstack may have grown it), at least `initial_frames`.
        let nr = initial_frames.max(size.nr_frames).max(1).min(max_frames);
        if nr == 0 {
            return Err(GrantError::TableFull);
        }
        let nr_refs = nr
            .checked_mul(GNTENT_PER_FRAME as u32)
            .ok_or(GrantError::BadTableSize(size))?;
        let mut frames = alloc::vec![Mfn(0); nr as usize];
        ops.setup_table(&mut frames)?;
        let mem = ops.map_table(0, &frames, max_frames)?;
        let mut refs = RefAllocator::new();
        refs.grow(nr_refs);
        Ok(GrantTable {
            ops,
            entries: EntryTable::new(mem),
            refs,
            nr_frames: nr,
            max_frames,
        })
    }

    /// Grows the table so that at least `want` references are free, or
    /// fails with [`GrantError::TableFull`] without growing if even the
    /// maximum size could not hold them.
    pub(crate) fn grow_for(&mut self, want: u32) -> Result<(), GrantError> {
        let free = self.refs.free_count();
        if free >= want {
            return Ok(());
        }
        let per = GNTENT_PER_FRAME as u32;
        let needed = (want - free).div_ceil(per);
        let at_least = self
            .nr_frames
            .checked_add(needed)
            .filter(|&n| n <= self.max_frames)
            .ok_or(GrantError::TableFull)?;
        // Grow at least by doubling, so a long run of single allocations
        // costs O(log n) setup_table calls, not one per 512 references.
        let new = at_least
            .max(self.nr_frames.saturating_mul(2))
            .min(self.max_frames);
        let bad = GrantError::BadTableSize(TableSize {
            nr_frames: new,
            max_nr_frames: self.max_frames,
        });
        let new_refs = new.checked_mul(per).ok_or(bad)?;
        let mut frames = alloc::vec![Mfn(0); new as usize];
        self.ops.setup_table(&mut frames)?;
        // Xen keeps the existing frames in place and appends new ones;
        // only the new ones need mapping.
        let old = self.nr_frames as usize;
        let mem = self
            .ops
            .map_table(self.nr_frames, &frames[old..], self.max_frames)?;
        self.entries = EntryTable::new(mem);
        self.nr_frames = new;
        self.refs.grow(new_refs);
        Ok(())
    }

    pub(crate) fn alloc_ref(&mut self) -> Result<GrantRef, GrantError> {
        if let Some(r) = self.refs.alloc() {
            return Ok(r);
        }
        self.grow_for(1)?;
        self.refs.alloc().ok_or(GrantError::TableFull)
    }

    pub(crate) fn alloc_refs(&mut self, n: u32, out: &mut Vec<GrantRef>) -> Result<(), GrantError> {
        self.grow_for(n)?;
        if self.refs.alloc_n(n, out) {
            Ok(())
        } else {
            Err(GrantError::TableFull)
        }
    }

    /// Ends access to `r` and frees it, or leaves both as they are.
    pub(crate) fn end_and_free(&mut self, r: GrantRef) -> Result<(), GrantError> {
        if !self.refs.is_used(r) {
            self.refs.check(r)?;
            return Err(GrantError::DoubleFree(r));
        }
        self.entries.end_access(r)?;
        self.refs.free(r)
    }
}

/// A page whose owner let go while the peer still had it mapped: kept
/// (never freed, never reused) until access can end.
#[derive(Debug)]
pub(crate) struct Pending<P> {
    pub(crate) gref: GrantRef,
    pub(crate) page: P,
    /// What it counts against until it is freed.
    pub(crate) charge: Charge,
}

/// The limit a page counts against while held or pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charge {
    /// A share-API page: the global and `domid`'s share limits.
    Shared(DomId),
    /// A page from [`Grants::grant`].
    Granted,
}

/// A count per peer domain, holding only the peers with a non-zero count.
/// A few peers at a time, so a vector scanned in order; it keeps its
/// capacity when a peer leaves, so sharing with the same peers again does
/// not allocate.
#[derive(Debug, Default)]
pub(crate) struct PerDomain(Vec<(DomId, u32)>);

impl PerDomain {
    /// `domid`'s count (0 when it has none).
    pub(crate) fn get(&self, domid: DomId) -> u32 {
        self.0.iter().find(|e| e.0 == domid).map_or(0, |e| e.1)
    }

    /// Adds `n` to `domid`'s count.
    pub(crate) fn add(&mut self, domid: DomId, n: u32) {
        match self.0.iter_mut().find(|e| e.0 == domid) {
            Some(e) => e.1 += n,
            None => self.0.push((domid, n)),
        }
    }

    /// Takes `n` off `domid`'s count, dropping the peer at 0.
    pub(crate) fn sub(&mut self, domid: DomId, n: u32) {
        if let Some(i) = self.0.iter().position(|e| e.0 == domid) {
            self.0[i].1 = self.0[i].1.saturating_sub(n);
            if self.0[i].1 == 0 {
                self.0.swap_remove(i);
            }
        }
    }

    /// Whether no peer has a non-zero count.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Debug)]
pub(crate) struct Inner<B: GrantOps> {
    pub(crate) table: GrantTable<B>,
    pub(crate) pending: Vec<Pending<B::Page>>,
    /// Pages of the share API, pending ones included.
    pub(crate) shared_pages: u32,
    pub(crate) share_limit: u32,
    /// Share-API pages per peer, pending ones included (no entry: 0).
    pub(crate) shared_per_domain: PerDomain,
    pub(crate) share_limit_per_domain: u32,
    /// Pages from `grant` on the pending list, and their limit.
    pub(crate) granted_pending: u32,
    pub(crate) pending_limit: u32,
    /// Pages owned by live `Granted`/`SharedPages` objects, each of which
    /// may go pending in a drop. `pending` keeps spare capacity for all of
    /// them, so a drop never allocates.
    pub(crate) reserved: u32,
    pub(crate) next_index: u64,
}

impl<B: GrantOps> Inner<B> {
    /// The driver's `do_cleanup`: frees every pending page whose peer has
    /// unmapped it since. Runs at the start of every grant operation.
    pub(crate) fn reclaim(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut i = 0;
        while i < self.pending.len() {
            let r = self.pending[i].gref;
            if self.table.end_and_free(r).is_ok() {
                let p = self.pending.swap_remove(i);
                self.uncharge_pending(p.charge);
                drop(p.page);
            } else {
                i += 1;
            }
        }
    }

    /// Makes room on the pending list for `count` more pages that may go
    /// pending later, when a drop cannot allocate or report.
    pub(crate) fn reserve_pending(&mut self, count: u32) -> Result<(), GrantError> {
        let reserved = self
            .reserved
            .checked_add(count)
            .ok_or(GrantError::InvalidArgument)?;
        // Vec::try_reserve counts from len: room for every reserved page.
        self.pending
            .try_reserve(reserved as usize)
            .map_err(|_| GrantError::Memory(MemError::OutOfFrames))?;
        self.reserved = reserved;
        Ok(())
    }

    /// Gives back reservations of pages that will not go pending (freed,
    /// or never handed out).
    pub(crate) fn unreserve(&mut self, count: u32) {
        self.reserved -= count;
    }

    /// Ends access to `r` and frees `page`, or parks both on the pending
    /// list (in the room reserved for the page: no allocation). Returns
    /// whether the page is pending.
    pub(crate) fn release(&mut self, r: GrantRef, page: B::Page, charge: Charge) -> bool {
        self.unreserve(1);
        match self.table.end_and_free(r) {
            Ok(()) => {
                self.uncharge(charge);
                drop(page);
                false
            }
            Err(_) => {
                if charge == Charge::Granted {
                    self.granted_pending += 1;
                }
                self.pending.push(Pending {
                    gref: r,
                    page,
                    charge,
                });
                true
            }
        }
    }

    /// Takes a freed page off the limits it counted against.
    fn uncharge(&mut self, charge: Charge) {
        match charge {
            Charge::Shared(domid) => {
                self.shared_pages -= 1;
                self.shared_per_domain.sub(domid, 1);
            }
            Charge::Granted => {}
        }
    }

    /// Takes a pending page that was freed off its limits.
    fn uncharge_pending(&mut self, charge: Charge) {
        match charge {
            Charge::Shared(_) => self.uncharge(charge),
            Charge::Granted => self.granted_pending -= 1,
        }
    }
}

impl<B: GrantOps> Drop for Inner<B> {
    fn drop(&mut self) {
        // Every owner object borrows the `Grants`, so none is alive: only
        // pending pages are left. A page the peer still maps must never
        // be freed (the peer could write into its next user), so it is
        // given up for good; the rest are freed.
        for p in core::mem::take(&mut self.pending) {
            if self.table.end_and_free(p.gref).is_ok() {
                drop(p.page);
            } else {
                self.table.ops.forget_page(p.page);
            }
        }
    }
}

/// A domain's grant table and everything granted or mapped through it.
/// Owner objects borrow it and lock it briefly for each operation.
#[derive(Debug)]
pub struct Grants<B: GrantOps> {
    pub(crate) inner: Mutex<Inner<B>>,
}

impl<B: GrantOps> Grants<B> {
    /// Sets the table up (`GNTTABOP_query_size`, `GNTTABOP_setup_table`
    /// with at least `initial_frames`, mapping the frames).
    pub fn new(ops: B, initial_frames: u32) -> Result<Self, GrantError> {
        let table = GrantTable::new(ops, initial_frames)?;
        Ok(Grants {
            inner: Mutex::new(Inner {
                table,
                pending: Vec::new(),
                shared_pages: 0,
                share_limit: DEFAULT_SHARE_LIMIT,
                shared_per_domain: PerDomain::default(),
                share_limit_per_domain: DEFAULT_SHARE_LIMIT_PER_DOMAIN,
                granted_pending: 0,
                pending_limit: DEFAULT_PENDING_LIMIT,
                reserved: 0,
                next_index: 0,
            }),
        })
    }

    /// Runs `f` with the backend. Crate tests only: the backend's raw
    /// operations (map at an address, view an address, release address
    /// space) are not for safe code, so the real one is never reachable
    /// from outside the grant module.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn with_ops<R>(&self, f: impl FnOnce(&mut B) -> R) -> R {
        f(&mut self.inner.lock().table.ops)
    }

    /// A zeroed page of ours, to grant or to copy into.
    pub fn alloc_page(&self) -> Result<B::Page, GrantError> {
        self.inner.lock().table.ops.alloc_page()
    }

    /// Xen's view of our table's size (`GNTTABOP_query_size`).
    #[doc(alias = "GNTTABOP_query_size")]
    pub fn query_size(&self) -> Result<TableSize, GrantError> {
        self.inner.lock().table.ops.query_size()
    }

    /// Table size in frames, and references handed out.
    pub fn stats(&self) -> GrantStats {
        let g = self.inner.lock();
        GrantStats {
            nr_frames: g.table.nr_frames,
            max_frames: g.table.max_frames,
            refs_used: g.table.refs.used_count(),
            refs_free: g.table.refs.free_count(),
            pending: g.pending.len() as u32,
            shared_pages: g.shared_pages,
            share_limit: g.share_limit,
        }
    }

    /// The raw `flags` of entry `r` (diagnostics and tests).
    pub fn entry_flags(&self, r: GrantRef) -> Result<u16, GrantError> {
        self.inner.lock().table.entries.flags(r)
    }

    /// Grants `domid` access to `page`. The fast path makes no hypercall
    /// and allocates nothing (unless the table must grow). On failure the
    /// page comes back.
    pub fn grant(
        &self,
        domid: DomId,
        page: B::Page,
        access: Access,
    ) -> Result<Granted<'_, B>, (B::Page, GrantError)> {
        if !domid.is_real() {
            return Err((page, GrantError::BadDomain(domid)));
        }
        let mut g = self.inner.lock();
        g.reclaim();
        // A peer that never unmaps would otherwise grow the pending list
        // (and every operation's reclaim scan) without bound.
        if g.granted_pending >= g.pending_limit {
            let e = GrantError::PendingLimitReached {
                limit: g.pending_limit,
                pending: g.granted_pending,
            };
            return Err((page, e));
        }
        if let Err(e) = g.reserve_pending(1) {
            return Err((page, e));
        }
        let r = match g.table.alloc_ref() {
            Ok(r) => r,
            Err(e) => {
                g.unreserve(1);
                return Err((page, e));
            }
        };
        if let Err(e) = g
            .table
            .entries
            .grant_access(r, domid, page.mfn(), access.readonly())
        {
            // The entry was never made valid: the reference is free again.
            let _ = g.table.refs.free(r);
            g.unreserve(1);
            return Err((page, e));
        }
        drop(g);
        Ok(Granted {
            grants: self,
            gref: r,
            page: Some(page),
            access,
        })
    }

    /// Lets `domid` give us a page with `GNTTABOP_transfer`; `landing`
    /// makes room for it. The landing page's frame goes back to Xen now
    /// (Xen refuses a transfer to a domain at its reservation), and its
    /// pfn is where the frame that arrives will be mapped. Should nothing
    /// arrive, cancelling the slot gives the landing page back over a new
    /// frame. On failure the landing page is freed.
    pub fn accept_transfer(
        &self,
        domid: DomId,
        landing: B::Page,
    ) -> Result<super::TransferSlot<'_, B>, GrantError> {
        if !domid.is_real() {
            return Err(GrantError::BadDomain(domid));
        }
        let mut g = self.inner.lock();
        g.reclaim();
        let r = g.table.alloc_ref()?;
        let v = match g.table.ops.vacate(landing, true) {
            Ok(v) => v,
            Err((_, e)) => {
                let _ = g.table.refs.free(r);
                return Err(e);
            }
        };
        if let Err(e) = g.table.entries.accept_transfer(r, domid, v.pfn()) {
            let _ = g.table.refs.free(r);
            // Back to a page, and freed; a vacancy that cannot be refilled
            // is dropped (a backend's drop refills or leaks it).
            let _ = g.table.ops.refill(v, None);
            return Err(e);
        }
        drop(g);
        Ok(super::TransferSlot::new(self, r, v))
    }

    /// Sets the limit on pages from [`grant`](Self::grant) kept pending
    /// because their peer still maps them; at the limit, `grant` refuses
    /// with [`GrantError::PendingLimitReached`].
    pub fn set_pending_limit(&self, limit: u32) {
        self.inner.lock().pending_limit = limit;
    }

    /// Frees pending pages whose peers have unmapped them (also done at
    /// the start of every grant operation); returns how many remain.
    pub fn reclaim(&self) -> u32 {
        let mut g = self.inner.lock();
        g.reclaim();
        g.pending.len() as u32
    }

    /// [`reclaim`](Self::reclaim) unless another caller holds the table:
    /// for background reclaim (a domain about to block), which must not
    /// wait. `None` when the table was busy.
    pub fn try_reclaim(&self) -> Option<u32> {
        let mut g = self.inner.try_lock()?;
        if !g.pending.is_empty() {
            g.reclaim();
        }
        Some(g.pending.len() as u32)
    }

    /// Waits until every released page a peer still mapped has been
    /// unmapped and freed, polling every millisecond on `events`' clock;
    /// `StillMapped` with the count left at the timeout.
    pub fn wait_reclaimed<E: EventOps + ?Sized>(
        &self,
        events: &E,
        timeout: Duration,
    ) -> Result<(), GrantError> {
        poll_until(events, timeout, || self.reclaim())
    }
}

/// Xen sends nothing when a peer unmaps: waits poll `left()` (pages still
/// mapped) every [`POLL_NS`] until it is 0 or the timeout passes.
pub(super) fn poll_until<E: EventOps + ?Sized>(
    events: &E,
    timeout: Duration,
    mut left: impl FnMut() -> u32,
) -> Result<(), GrantError> {
    let deadline = events.deadline_after(timeout);
    loop {
        let pages = left();
        if pages == 0 {
            return Ok(());
        }
        let now = events.now_ns();
        if now >= deadline {
            return Err(GrantError::StillMapped { pages });
        }
        let _ = events.wait_until(Some(now.saturating_add(POLL_NS).min(deadline)), &mut || {
            false
        });
    }
}

/// How often waits for unmaps look (1 ms).
pub const POLL_NS: u64 = 1_000_000;

/// Grant table figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantStats {
    /// Frames the table has.
    pub nr_frames: u32,
    /// Frames it may grow to.
    pub max_frames: u32,
    /// References handed out (pending ones included).
    pub refs_used: u32,
    /// References free without growing.
    pub refs_free: u32,
    /// Pages kept because the peer still maps them.
    pub pending: u32,
    /// Share-API pages, pending ones included.
    pub shared_pages: u32,
    /// The share limit.
    pub share_limit: u32,
}

/// One page granted to a peer. [`end_access`](Self::end_access) gives the
/// page back once the peer has no mapping; dropping the owner ends access
/// or, if the peer still maps the page, keeps it pending until it can.
#[derive(Debug)]
pub struct Granted<'g, B: GrantOps> {
    grants: &'g Grants<B>,
    gref: GrantRef,
    page: Option<B::Page>,
    access: Access,
}

impl<'g, B: GrantOps> Granted<'g, B> {
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
            .expect("Granted without page");
        PageView::new(mem, true)
    }

    /// What the peer may do.
    pub fn access(&self) -> Access {
        self.access
    }

    /// Ends the peer's access with one compare-and-swap and returns the
    /// page; while the peer maps it, fails with [`GrantError::InUse`] and
    /// hands the owner back.
    pub fn end_access(mut self) -> Result<B::Page, (Self, GrantError)> {
        let mut g = self.grants.inner.lock();
        let r = g.table.end_and_free(self.gref);
        if r.is_ok() {
            // The page can no longer go pending.
            g.unreserve(1);
        }
        drop(g);
        match r {
            Ok(()) => Ok(self.page.take().expect("Granted without page")),
            Err(e) => Err((self, e)),
        }
    }

    /// Restricts the peer to reading (refused while it maps the page
    /// writable).
    pub fn make_readonly(&mut self) -> Result<(), GrantError> {
        self.grants
            .inner
            .lock()
            .table
            .entries
            .make_readonly(self.gref)?;
        self.access = Access::ReadOnly;
        Ok(())
    }

    /// Lets the peer write again.
    pub fn make_writable(&mut self) -> Result<(), GrantError> {
        self.grants
            .inner
            .lock()
            .table
            .entries
            .make_writable(self.gref)?;
        self.access = Access::ReadWrite;
        Ok(())
    }
}

impl<B: GrantOps> Drop for Granted<'_, B> {
    fn drop(&mut self) {
        if let Some(page) = self.page.take() {
            self.grants
                .inner
                .lock()
                .release(self.gref, page, Charge::Granted);
        }
    }
}
