//! The real grant backend: [`GrantOps`] over hypercalls and the guest's
//! memory manager (guest builds only), and the domain's one table.

// A Xen backend: hypercalls, page mappings and frames handed to Xen.
#![allow(unsafe_code)]

use super::error::{GntStatus, GrantError, TableSize};
use super::ops::*;
use super::table::Grants;
use crate::abi::grant_table::{
    gnttab_copy, gnttab_map_grant_ref, gnttab_transfer, gnttab_unmap_grant_ref,
};
use crate::abi::grant_table::{
    gnttab_dump_table, gnttab_query_size, gnttab_setup_table, GNTTABOP_copy, GNTTABOP_dump_table,
    GNTTABOP_map_grant_ref, GNTTABOP_query_size, GNTTABOP_setup_table, GNTTABOP_transfer,
    GNTTABOP_unmap_grant_ref,
};
use crate::abi::PAGE_SIZE;
use crate::errno::Errno;
use crate::hypercall;
use crate::mm::{self, Page, Vacated};
use crate::shared_mem::SharedMem;
use crate::types::DomId;
use crate::types::Mfn;
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
