//! The hypervisor side of grant tables behind one narrow trait,
//! [`GrantOps`], so the protocol logic runs on the host against
//! `fake` and in a guest against `xen::XenGrantOps`.
//!
//! The trait passes the raw `GNTTABOP_*` structs through: the backend
//! issues them and returns the hypercall's `-errno`; the caller reads
//! each op's `GNTST_*` status. Memory the grant code needs (pages to
//! share, address space for foreign mappings) comes through it too.

// The backend layer: its traits carry contracts the grant code relies
// on (unsafe traits), and the Xen backend makes hypercalls and mappings.
#![allow(unsafe_code)]

use super::GrantError;
use crate::abi::grant_table::{
    gnttab_copy, gnttab_map_grant_ref, gnttab_transfer, gnttab_unmap_grant_ref,
};
use crate::errno::Errno;
use crate::shared_mem::SharedMem;
use crate::types::Mfn;

/// `GNTTABOP_query_size`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSize {
    /// Frames the table has now.
    pub nr_frames: u32,
    /// Frames it may grow to.
    pub max_nr_frames: u32,
}

/// A page of our own memory that can be granted. Dropping it frees it,
/// so grant code drops one only after access has ended.
///
/// # Safety
/// Xen reads and writes the frame [`mfn`](Self::mfn) names on behalf of
/// other domains (grants, `GNTTABOP_copy`): it must be the frame of the
/// memory this value owns, for as long as the value lives, and that
/// memory must be accessed only through [`SharedMem`] views. A wrong
/// frame would let a peer write over memory Rust code uses.
pub unsafe trait SharePage: core::fmt::Debug {
    /// Its machine frame (what a v1 entry's `frame` names in PV).
    fn mfn(&self) -> Mfn;
    /// A view of its bytes, borrowing the page.
    fn mem(&self) -> SharedMem<'_>;
}

/// One of our own frames, borrowed from the page that owns it for `'a`:
/// what a copy may name as a local end (Xen writes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalFrame<'a> {
    mfn: Mfn,
    _page: core::marker::PhantomData<&'a ()>,
}

impl<'a> LocalFrame<'a> {
    /// The frame of `page`, borrowed for as long as the frame is used.
    pub fn of<P: SharePage>(page: &'a P) -> Self {
        LocalFrame {
            mfn: page.mfn(),
            _page: core::marker::PhantomData,
        }
    }

    /// Any frame number.
    ///
    /// # Safety
    /// Xen will write the frame as a copy's destination: it must be
    /// memory of this domain that no Rust reference points into for `'a`
    /// (a frame another domain owns is refused by Xen with
    /// `GNTST_bad_page`).
    pub unsafe fn from_mfn(mfn: Mfn) -> Self {
        LocalFrame {
            mfn,
            _page: core::marker::PhantomData,
        }
    }

    /// The frame number.
    pub fn mfn(&self) -> Mfn {
        self.mfn
    }
}

/// A page of ours taken out of our memory map so that its frame can
/// change hands (`GNTTABOP_transfer`, `XENMEM_decrease_reservation`):
/// Xen takes a frame only when no mapping of it is left. The page's
/// place (its pfn) stays ours, for the frame that fills it again.
pub trait Vacant: core::fmt::Debug {
    /// The page's pfn: what an accept-transfer entry names as `frame`, so
    /// that Xen enters the frame it transfers there in the M2P.
    fn pfn(&self) -> u64;
    /// The frame still ours behind it (`None` once given back or gone).
    fn frame(&self) -> Option<Mfn>;
    /// Xen took the frame (`GNTTABOP_transfer` stole it).
    fn frame_gone(&mut self);
}

/// The hypervisor operations grant tables need.
///
/// These act on raw addresses and frames, so only the grant code calls
/// them: [`Grants`](super::Grants) never hands its backend out, and the
/// real backend, `xen::XenGrantOps`, cannot be built outside this crate.
/// Safe code therefore reaches the hypervisor only through the owner types
/// (`Granted`, `SharedPages`, `MappedPages`, ...), whose lifetimes keep
/// every view valid.
///
/// # Safety
/// The grant code trusts what a backend returns: the view from
/// [`map_table`](Self::map_table) must stay valid for the rest of the
/// program, a view from [`mapped_view`](Self::mapped_view) until that
/// address is unmapped with [`unmap_grant_ref`](Self::unmap_grant_ref),
/// and [`alloc_page`](Self::alloc_page)'s pages must own their frames
/// ([`SharePage`]'s contract).
pub unsafe trait GrantOps {
    /// The page type [`alloc_page`](Self::alloc_page) hands out.
    type Page: SharePage;
    /// A page taken out of the memory map ([`vacate`](Self::vacate)).
    type Vacancy: Vacant;

    /// `GNTTABOP_query_size` for `DOMID_SELF`.
    #[doc(alias = "GNTTABOP_query_size")]
    fn query_size(&mut self) -> Result<TableSize, GrantError>;

    /// `GNTTABOP_setup_table` for `DOMID_SELF` with `frames.len()`
    /// frames; fills `frames` with the table's frame numbers.
    #[doc(alias = "GNTTABOP_setup_table")]
    fn setup_table(&mut self, frames: &mut [Mfn]) -> Result<(), GrantError>;

    /// Makes table frames `first..first + frames.len()` visible after the
    /// ones already mapped, in one contiguous window of room for
    /// `max_frames`; returns a view of the whole table mapped so far.
    fn map_table(
        &mut self,
        first: u32,
        frames: &[Mfn],
        max_frames: u32,
    ) -> Result<SharedMem<'static>, GrantError>;

    /// `GNTTABOP_map_grant_ref` on a batch.
    #[doc(alias = "GNTTABOP_map_grant_ref")]
    fn map_grant_ref(&mut self, ops: &mut [gnttab_map_grant_ref]) -> Result<(), Errno>;

    /// `GNTTABOP_unmap_grant_ref` on a batch.
    #[doc(alias = "GNTTABOP_unmap_grant_ref")]
    fn unmap_grant_ref(&mut self, ops: &mut [gnttab_unmap_grant_ref]) -> Result<(), Errno>;

    /// `GNTTABOP_copy` on a batch.
    #[doc(alias = "GNTTABOP_copy")]
    fn copy(&mut self, ops: &mut [gnttab_copy]) -> Result<(), Errno>;

    /// `GNTTABOP_transfer` on a batch.
    #[doc(alias = "GNTTABOP_transfer")]
    fn transfer(&mut self, ops: &mut [gnttab_transfer]) -> Result<(), Errno>;

    /// `GNTTABOP_dump_table` for `DOMID_SELF`; returns the op's status.
    #[doc(alias = "GNTTABOP_dump_table")]
    fn dump_table(&mut self) -> Result<i16, Errno>;

    /// Waits before retry number `attempt` (1, 2, ...) of map ops that
    /// returned `GNTST_eagain` (the granter's frame is paged out and Xen is
    /// paging it in). The default does not wait.
    fn backoff(&mut self, attempt: u32) {
        let _ = attempt;
    }

    /// A zeroed page of our memory.
    fn alloc_page(&mut self) -> Result<Self::Page, GrantError>;

    /// Gives up a page without freeing it (it now belongs to another
    /// domain, after `GNTTABOP_transfer`).
    fn forget_page(&mut self, page: Self::Page);

    /// Takes `page` out of our memory map so that no mapping of its frame
    /// is left (Xen steals only such a frame); with `give_back` the frame
    /// also goes back to Xen, which leaves room in our reservation for a
    /// frame another domain transfers to us. On failure the page is
    /// still mapped and comes back.
    fn vacate(
        &mut self,
        page: Self::Page,
        give_back: bool,
    ) -> Result<Self::Vacancy, (Self::Page, GrantError)>;

    /// Puts a frame behind a vacancy and maps it again: `arrived`, a frame
    /// Xen transferred to us (from an accept-transfer entry of our own
    /// table, which only Xen writes), else the frame the vacancy kept,
    /// else a new zeroed frame from Xen. On failure the vacancy comes back.
    fn refill(
        &mut self,
        vacancy: Self::Vacancy,
        arrived: Option<Mfn>,
    ) -> Result<Self::Page, (Self::Vacancy, GrantError)>;

    /// Reserves `pages` pages of address space where Xen can map grants
    /// (`GNTMAP_host_map` needs the page tables down to L1 present).
    fn reserve_va(&mut self, pages: u64) -> Result<u64, GrantError>;

    /// Returns address space from [`reserve_va`](Self::reserve_va); its
    /// pages must be unmapped.
    fn release_va(&mut self, va: u64, pages: u64) -> Result<(), GrantError>;

    /// A view of the page Xen mapped at `va`, or `None` if nothing is
    /// mapped there.
    fn mapped_view(&mut self, va: u64) -> Option<SharedMem<'static>>;
}

/// The real backend: hypercalls and the guest's memory manager.
#[cfg(target_os = "none")]
pub mod xen {
    use super::*;
    use crate::abi::grant_table::{
        gnttab_dump_table, gnttab_query_size, gnttab_setup_table, GNTTABOP_copy,
        GNTTABOP_dump_table, GNTTABOP_map_grant_ref, GNTTABOP_query_size, GNTTABOP_setup_table,
        GNTTABOP_transfer, GNTTABOP_unmap_grant_ref,
    };
    use crate::abi::PAGE_SIZE;
    use crate::grant::{GntStatus, Grants};
    use crate::hypercall;
    use crate::mm::{self, Page, Vacated};
    use crate::types::DomId;
    use alloc::vec::Vec;
    use core::ptr::NonNull;

    /// Frames the table starts with; it grows on demand.
    const INITIAL_FRAMES: u32 = 1;

    static GRANTS: spin::Once<Grants<XenGrantOps>> = spin::Once::new();

    /// This domain's grant table, set up on first use.
    pub fn grants() -> Result<&'static Grants<XenGrantOps>, GrantError> {
        GRANTS.try_call_once(|| {
            let g = Grants::new(XenGrantOps { table_va: None }, INITIAL_FRAMES)?;
            crate::event::set_idle_hook(background_reclaim);
            Ok(g)
        })
    }

    /// Run before the domain blocks: frees pending pages whose peer has
    /// unmapped them, unless the table is busy (it must not wait).
    fn background_reclaim() {
        if let Some(g) = GRANTS.get() {
            let _ = g.try_reclaim();
        }
    }

    /// [`GrantOps`] over `HYPERVISOR_grant_table_op` and `mm`.
    #[derive(Debug)]
    pub struct XenGrantOps {
        /// The table's window: address and size in frames.
        table_va: Option<(u64, u32)>,
    }

    // SAFETY: a `Page` owns its frame from `Page::alloc` until it is
    // dropped (or leaked), and its bytes are reached only through
    // `Page::shared`, a `SharedMem` view.
    unsafe impl SharePage for Page {
        fn mfn(&self) -> Mfn {
            Page::mfn(self)
        }
        fn mem(&self) -> SharedMem<'_> {
            self.shared()
        }
    }

    impl Vacant for Vacated {
        fn pfn(&self) -> u64 {
            Vacated::pfn(self).0
        }
        fn frame(&self) -> Option<Mfn> {
            Vacated::frame(self)
        }
        fn frame_gone(&mut self) {
            Vacated::frame_gone(self)
        }
    }

    fn op<T>(cmd: u32, ops: &mut [T]) -> Result<(), Errno> {
        let count = u32::try_from(ops.len()).map_err(|_| Errno::E2BIG)?;
        // SAFETY: `ops` is an exclusive slice of `count` structs of the
        // layout `cmd` takes (each caller pairs cmd with its struct), valid
        // for Xen's reads and writes for the whole call.
        unsafe { hypercall::grant_table_op(cmd, ops.as_mut_ptr().cast(), count) }
    }

    // SAFETY: the table window is mapped once and never unmapped;
    // `mapped_view` checks that `va` is mapped and the grant code unmaps
    // before dropping views; `alloc_page` hands out `Page`s.
    unsafe impl GrantOps for XenGrantOps {
        type Page = Page;
        type Vacancy = Vacated;

        fn query_size(&mut self) -> Result<TableSize, GrantError> {
            let mut q = [gnttab_query_size {
                dom: DomId::SELF.0,
                ..Default::default()
            }];
            op(GNTTABOP_query_size, &mut q)?;
            GntStatus::check(q[0].status)?;
            Ok(TableSize {
                nr_frames: q[0].nr_frames,
                max_nr_frames: q[0].max_nr_frames,
            })
        }

        fn setup_table(&mut self, frames: &mut [Mfn]) -> Result<(), GrantError> {
            let mut list: Vec<u64> = alloc::vec![0; frames.len()];
            let mut s = [gnttab_setup_table {
                dom: DomId::SELF.0,
                nr_frames: frames.len() as u32,
                status: 0,
                frame_list: list.as_mut_ptr(),
            }];
            op(GNTTABOP_setup_table, &mut s)?;
            GntStatus::check(s[0].status)?;
            for (f, m) in frames.iter_mut().zip(list) {
                *f = Mfn(m);
            }
            Ok(())
        }

        fn map_table(
            &mut self,
            first: u32,
            frames: &[Mfn],
            max_frames: u32,
        ) -> Result<SharedMem<'static>, GrantError> {
            let (va, room) = match self.table_va {
                Some(w) => w,
                None => {
                    let va = mm::reserve_map_area(max_frames as u64)?;
                    self.table_va = Some((va, max_frames));
                    (va, max_frames)
                }
            };
            let end = first
                .checked_add(frames.len() as u32)
                .filter(|&e| e <= room)
                .ok_or(GrantError::TableFull)?;
            let at = va + first as u64 * PAGE_SIZE as u64;
            // SAFETY: the frames are our grant table, which Xen shares
            // with us writable; `at..` lies in our reserved window past the
            // frames mapped before, so nothing uses it yet.
            unsafe { mm::map_frames(at, frames, true) }?;
            // SAFETY: va..va+end pages are mapped from now on and for the
            // rest of the domain's life (the table never shrinks); va is
            // page-aligned. The table is accessed only through SharedMem.
            Ok(unsafe {
                SharedMem::new(
                    NonNull::new_unchecked(va as *mut u8),
                    end as usize * PAGE_SIZE,
                )
            })
        }

        fn map_grant_ref(&mut self, ops: &mut [gnttab_map_grant_ref]) -> Result<(), Errno> {
            op(GNTTABOP_map_grant_ref, ops)
        }

        fn unmap_grant_ref(&mut self, ops: &mut [gnttab_unmap_grant_ref]) -> Result<(), Errno> {
            op(GNTTABOP_unmap_grant_ref, ops)
        }

        fn copy(&mut self, ops: &mut [gnttab_copy]) -> Result<(), Errno> {
            op(GNTTABOP_copy, ops)
        }

        fn transfer(&mut self, ops: &mut [gnttab_transfer]) -> Result<(), Errno> {
            op(GNTTABOP_transfer, ops)
        }

        fn dump_table(&mut self) -> Result<i16, Errno> {
            let mut d = [gnttab_dump_table {
                dom: DomId::SELF.0,
                status: 0,
            }];
            op(GNTTABOP_dump_table, &mut d)?;
            Ok(d[0].status)
        }

        fn backoff(&mut self, attempt: u32) {
            // As Linux's gnttab_retry_eagain_gop: a delay that doubles,
            // 1 ms, 2 ms, ... (map gives up after MAP_EAGAIN_RETRIES).
            let ms = 1u64 << attempt.saturating_sub(1).min(8);
            crate::event::sleep(core::time::Duration::from_millis(ms));
        }

        fn alloc_page(&mut self) -> Result<Page, GrantError> {
            Ok(Page::alloc()?)
        }

        fn forget_page(&mut self, page: Page) {
            let _ = page.leak();
        }

        fn vacate(&mut self, page: Page, give_back: bool) -> Result<Vacated, (Page, GrantError)> {
            page.vacate(give_back).map_err(|(p, e)| (p, e.into()))
        }

        fn refill(
            &mut self,
            vacancy: Vacated,
            arrived: Option<Mfn>,
        ) -> Result<Page, (Vacated, GrantError)> {
            // Xen wrote an arrived frame into our own table's completed
            // accept-transfer entry, after making the frame ours; the grant
            // code takes each completed entry once, so no Page owns it.
            let r = match arrived {
                // SAFETY: as above; refill_with checks ownership again (the
                // M2P update fails for a frame not ours).
                Some(mfn) => unsafe { vacancy.refill_with(mfn) },
                None => vacancy.refill(),
            };
            r.map_err(|(v, e)| (v, e.into()))
        }

        fn reserve_va(&mut self, pages: u64) -> Result<u64, GrantError> {
            Ok(mm::reserve_map_area(pages)?)
        }

        fn release_va(&mut self, va: u64, pages: u64) -> Result<(), GrantError> {
            // SAFETY: the grant code releases only ranges it reserved and
            // has unmapped, and drops their views first (GrantOps contract).
            Ok(unsafe { mm::release_map_area(va, pages) }?)
        }

        fn mapped_view(&mut self, va: u64) -> Option<SharedMem<'static>> {
            // Only hand out a view of a page that is mapped now; the grant
            // code keeps it only while its mapping lasts.
            mm::lookup(va)?;
            // SAFETY: a present mapping at page-aligned `va`, which the
            // caller keeps until it unmaps; SharedMem makes only volatile
            // and atomic accesses (the peer may write the page).
            Some(unsafe { SharedMem::new(NonNull::new(va as *mut u8)?, PAGE_SIZE) })
        }
    }
}
