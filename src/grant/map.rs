//! Mapping another domain's grants into our address space
//! (`GNTTABOP_map_grant_ref` with `GNTMAP_host_map`), batched, with the
//! successful part of a failed batch undone; the mapping is an owner
//! object whose drop unmaps, honouring gntdev-style unmap notification.

use super::error::{GntStatus, GrantError};
use super::ops::GrantOps;
use super::table::Grants;
use super::view::{Access, PageView, UnmapNotify};
use crate::abi::grant_table::{
    gnttab_map_grant_ref, gnttab_unmap_grant_ref, grant_handle_t, GNTMAP_host_map, GNTMAP_readonly,
    GNTST_eagain,
};
use crate::abi::PAGE_SIZE;
use crate::shared_mem::SharedMem;
use crate::types::{DomId, GrantRef};
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

/// Not a `GNTST_*` value: marks an op Xen has not processed (Xen writes
/// `status` for each op it handles, and every status it writes is <= 0).
const NOT_DONE: i16 = 1;

/// Retries of map ops answered `GNTST_eagain` before `map` gives up with
/// that status (with `XenGrantOps`'s doubling backoff, about half a second).
pub const MAP_EAGAIN_RETRIES: u32 = 10;

/// Pages of another domain mapped at consecutive addresses.
#[derive(Debug)]
pub struct MappedPages<'g, B: GrantOps> {
    grants: &'g Grants<B>,
    domid: DomId,
    access: Access,
    va: u64,
    refs: Vec<GrantRef>,
    handles: Vec<grant_handle_t>,
    /// Views of the mapped pages. Private and `'static` only in type:
    /// they are valid while the mapping lasts, i.e. while `self` does,
    /// and are handed out only as [`PageView`]s borrowing `self`.
    views: Vec<SharedMem<'static>>,
    notify: UnmapNotify<'g>,
}

/// Unmaps the given (address, handle) pairs; returns whether all went.
fn unmap_batch<B: GrantOps>(
    ops: &mut B,
    maps: impl Iterator<Item = (u64, grant_handle_t)>,
) -> Result<(), GrantError> {
    let mut req: Vec<gnttab_unmap_grant_ref> = maps
        .map(|(host_addr, handle)| gnttab_unmap_grant_ref {
            host_addr,
            dev_bus_addr: 0,
            handle,
            status: NOT_DONE,
        })
        .collect();
    if req.is_empty() {
        return Ok(());
    }
    ops.unmap_grant_ref(&mut req)?;
    for (index, u) in req.iter().enumerate() {
        GntStatus::check(u.status).map_err(|status| GrantError::BatchOp { index, status })?;
    }
    Ok(())
}

impl<B: GrantOps> Grants<B> {
    /// Maps `refs` of `domid`'s table at consecutive pages. All or
    /// nothing: if any op fails, the ones that worked are unmapped and
    /// the error names the first failure.
    pub fn map(
        &self,
        domid: DomId,
        refs: &[GrantRef],
        access: Access,
    ) -> Result<MappedPages<'_, B>, GrantError> {
        if !domid.is_real() {
            return Err(GrantError::BadDomain(domid));
        }
        if refs.is_empty() {
            return Err(GrantError::InvalidArgument);
        }
        let n = refs.len() as u64;
        let mut g = self.inner.lock();
        g.reclaim();
        let ops = &mut g.table.ops;
        let va = ops.reserve_va(n)?;
        let flags = GNTMAP_host_map
            | if access.readonly() {
                GNTMAP_readonly
            } else {
                0
            };
        let mut req: Vec<gnttab_map_grant_ref> = refs
            .iter()
            .enumerate()
            .map(|(i, r)| gnttab_map_grant_ref {
                host_addr: va + (i * PAGE_SIZE) as u64,
                flags,
                ref_: r.0,
                dom: domid.0,
                status: NOT_DONE,
                handle: 0,
                dev_bus_addr: 0,
            })
            .collect();
        let mut call = ops.map_grant_ref(&mut req);
        // GNTST_eagain: the granter's frame is being paged in. Retry just
        // those ops, after a backoff, a bounded number of times.
        let mut attempt = 0;
        while call.is_ok() && attempt < MAP_EAGAIN_RETRIES {
            let again: Vec<usize> = (0..req.len())
                .filter(|&i| req[i].status == GNTST_eagain)
                .collect();
            if again.is_empty() {
                break;
            }
            attempt += 1;
            ops.backoff(attempt);
            let mut retry: Vec<gnttab_map_grant_ref> = again
                .iter()
                .map(|&i| gnttab_map_grant_ref {
                    status: NOT_DONE,
                    ..req[i]
                })
                .collect();
            call = ops.map_grant_ref(&mut retry);
            for (&i, done) in again.iter().zip(retry) {
                req[i] = done;
            }
        }
        let failed = match call {
            Err(e) => Some(GrantError::Hypercall(e)),
            Ok(()) => req.iter().enumerate().find_map(|(index, m)| {
                GntStatus::check(m.status)
                    .err()
                    .map(|status| GrantError::BatchOp { index, status })
            }),
        };
        let views: Option<Vec<SharedMem<'static>>> = match failed {
            Some(_) => None,
            None => req.iter().map(|m| ops.mapped_view(m.host_addr)).collect(),
        };
        match (failed, views) {
            (None, Some(views)) => {
                drop(g);
                Ok(MappedPages {
                    grants: self,
                    domid,
                    access,
                    va,
                    refs: refs.to_vec(),
                    handles: req.iter().map(|m| m.handle).collect(),
                    views,
                    notify: UnmapNotify::default(),
                })
            }
            (failed, _) => {
                // Roll back what did map. Only if that works is the
                // address space safe to hand out again.
                let done = req
                    .iter()
                    .filter(|m| m.status == 0)
                    .map(|m| (m.host_addr, m.handle));
                if unmap_batch(ops, done).is_ok() {
                    let _ = ops.release_va(va, n);
                }
                Err(failed.unwrap_or(GrantError::InvalidArgument))
            }
        }
    }
}

impl<'g, B: GrantOps> MappedPages<'g, B> {
    /// The granting domain.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// The references mapped, in page order.
    pub fn refs(&self) -> &[GrantRef] {
        &self.refs
    }

    /// How the pages are mapped.
    pub fn access(&self) -> Access {
        self.access
    }

    /// Number of pages.
    pub fn len(&self) -> usize {
        self.views.len()
    }

    /// Always false: a mapping has at least one page.
    pub fn is_empty(&self) -> bool {
        self.views.is_empty()
    }

    /// The address of page 0.
    pub fn va(&self) -> u64 {
        self.va
    }

    /// Page `i`'s bytes (writes refused on a read-only mapping).
    pub fn page(&self, i: usize) -> Option<PageView<'_>> {
        self.views
            .get(i)
            .map(|m| PageView::new(*m, self.access == Access::ReadWrite))
    }

    /// Reads `dst.len()` bytes at byte `offset` of the mapping seen as one
    /// buffer (the pages are mapped at consecutive addresses).
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> Result<(), GrantError> {
        super::view::read_span(self.len(), |i| self.page(i), offset, dst)
    }

    /// Writes `src` at byte `offset` of the mapping seen as one buffer.
    pub fn write_at(&self, offset: usize, src: &[u8]) -> Result<(), GrantError> {
        super::view::write_span(self.len(), |i| self.page(i), offset, src)
    }

    /// Sets what happens at unmap (gntdev's `IOCTL_GNTDEV_SET_UNMAP_NOTIFY`):
    /// `clear_byte` is an offset into the whole mapping and needs it
    /// writable.
    pub fn set_unmap_notify(&mut self, notify: UnmapNotify<'g>) -> Result<(), GrantError> {
        if let Some(off) = notify.clear_byte {
            if off >= self.views.len() * PAGE_SIZE || self.access == Access::ReadOnly {
                return Err(GrantError::InvalidArgument);
            }
        }
        self.notify = notify;
        Ok(())
    }

    /// Unmaps now, reporting failure (dropping does the same silently).
    pub fn unmap(mut self) -> Result<(), GrantError> {
        let r = self.do_unmap();
        self.views.clear();
        r
    }

    fn do_unmap(&mut self) -> Result<(), GrantError> {
        if self.views.is_empty() {
            return Ok(());
        }
        if let Some(off) = self.notify.clear_byte.take() {
            let (page, byte) = (off / PAGE_SIZE, off % PAGE_SIZE);
            let _ = self.views[page].store_u8(byte, 0, Ordering::Release);
        }
        let mut g = self.grants.inner.lock();
        let ops = &mut g.table.ops;
        let n = self.views.len() as u64;
        let va = self.va;
        let res = unmap_batch(
            ops,
            self.handles
                .iter()
                .enumerate()
                .map(|(i, &h)| (va + (i * PAGE_SIZE) as u64, h)),
        );
        // A page we could not unmap keeps its address space: reusing it
        // would map a second frame over a live grant mapping.
        let released = res.and_then(|()| ops.release_va(va, n));
        drop(g);
        // The event goes after the unmap, so a peer that reacts to it by
        // ending access finds our mapping gone. Dropping the handle lets
        // the port close if we were its last holder.
        let ev = self.notify.send_event.take().map(|p| p.notify());
        released?;
        ev.transpose().map_err(GrantError::Notify)?;
        Ok(())
    }
}

impl<B: GrantOps> Drop for MappedPages<'_, B> {
    fn drop(&mut self) {
        let _ = self.do_unmap();
    }
}

impl<B: GrantOps> super::view::PageSpan for MappedPages<'_, B> {
    fn page_count(&self) -> usize {
        self.len()
    }
    fn page_view(&self, i: usize) -> Option<PageView<'_>> {
        self.page(i)
    }
}
