//! The hypervisor side of grant tables behind one narrow trait,
//! [`GrantOps`], so the protocol logic runs on the host against
//! `fake` and in a guest against `guest::XenGrantOps`.
//!
//! The trait passes the raw `GNTTABOP_*` structs through: the backend
//! issues them and returns the hypercall's `-errno`; the caller reads
//! each op's `GNTST_*` status. Memory the grant code needs (pages to
//! share, address space for foreign mappings) comes through it too.

// The backend layer: its traits carry contracts the grant code relies
// on (unsafe traits); the Xen backend that implements them is `guest`.
#![allow(unsafe_code)]

use super::error::{GrantError, TableSize};
use crate::abi::grant_table::{
    gnttab_copy, gnttab_map_grant_ref, gnttab_transfer, gnttab_unmap_grant_ref,
};
use crate::errno::Errno;
use crate::shared_mem::SharedMem;
use crate::types::Mfn;

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
/// real backend, `guest::XenGrantOps`, cannot be built outside this crate.
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
