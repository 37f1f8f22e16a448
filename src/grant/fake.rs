//! A simulated Xen for host tests: domains with grant tables, frames,
//! mappings, copies, transfers and events, checked the way Xen checks
//! them. Each [`FakeXen`] is one domain's [`GrantOps`] backend; tests
//! keep a [`FakeWorld`] handle to play a peer, including a hostile one
//! (keeping mappings across our release, racing on entry flags).
//!
//! The world also watches for the bugs grant code must never have: a
//! frame freed while a peer maps it or while a valid entry grants it.

// GNTST_* keep their C names, also in match patterns.
#![allow(non_upper_case_globals)]

extern crate std;

use super::error::{GntStatus, GrantError, TableSize};
use super::ops::{GrantOps, SharePage};
use crate::abi::grant_table::*;
use crate::abi::PAGE_SIZE;
use crate::errno::Errno;
use crate::mm::MemError;
use crate::shared_mem::SharedMem;
use crate::types::{DomId, GrantRef, Mfn};
use core::sync::atomic::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::vec::Vec;

/// Where the fake's foreign-mapping address space starts.
const VA_BASE: u64 = 0x7000_0000_0000;

#[derive(Debug)]
struct Frame {
    owner: u16,
    mem: SharedMem<'static>,
    freed: bool,
    /// Out of its owner's memory map (vacated): the only state in which
    /// Xen steals a frame for a transfer.
    unmapped: bool,
}

#[derive(Debug)]
struct Dom {
    table: SharedMem<'static>,
    table_mfns: Vec<u64>,
    nr_frames: u32,
    max_frames: u32,
    next_va: u64,
    reserved: HashMap<u64, u64>,
    mapped: HashMap<u64, u32>,
    /// What query_size reports instead of the real size (a bogus Xen).
    reported: Option<TableSize>,
}

#[derive(Debug, Clone, Copy)]
struct Mapping {
    mapper: u16,
    granter: u16,
    gref: u32,
    va: u64,
    mfn: u64,
    writable: bool,
}

/// Everything the fake hypervisor knows.
#[derive(Debug, Default)]
struct World {
    doms: HashMap<u16, Dom>,
    frames: HashMap<u64, Frame>,
    next_mfn: u64,
    maps: HashMap<u32, Mapping>,
    next_handle: u32,
    /// Pins per (granter, ref): (readers, writers).
    pins: HashMap<(u16, u32), (u32, u32)>,
    /// Each frame's bytes when a mapping of it went away, last first
    /// (what the page held at unmap: unmap notify must clear its byte
    /// before, not after).
    unmapped: Vec<(u64, Vec<u8>)>,
    violations: Vec<std::string::String>,
    /// Make the next transfer hypercall fail with this errno, before (false)
    /// or after (true) processing its op.
    transfer_error: Option<(Errno, bool)>,
    /// Make every vacate fail (Xen refusing to unmap or take a frame).
    fail_vacate: bool,
    /// Make every refill that needs a new frame fail (no room left).
    fail_populate: bool,
    /// Fail map op number N (counted from 0 over all map ops) with status.
    fail_map: Option<(u64, i16)>,
    /// The next this-many map ops answer GNTST_eagain (paged-out frame).
    eagain_maps: u64,
    map_ops: u64,
    hypercalls: u64,
    next_slot: u64,
    /// Frames handed to a domain's pages by refill (Xen's populate).
    populated: u64,
}

/// A handle on the simulated hypervisor, shared by every domain in it.
#[derive(Debug, Clone, Default)]
pub struct FakeWorld(Arc<Mutex<World>>);

/// The fake's page: a leaked zeroed buffer with a frame number. Dropping
/// it frees the frame, which the world checks is not still in use.
#[derive(Debug)]
pub struct FakePage {
    world: FakeWorld,
    mfn: Mfn,
    mem: SharedMem<'static>,
}

// SAFETY: the fake's frames are leaked buffers that no Rust reference
// points into (the fake reaches them through SharedMem only), and `mfn`
// names the one this page owns in the fake world.
#[allow(unsafe_code)]
unsafe impl SharePage for FakePage {
    fn mfn(&self) -> Mfn {
        self.mfn
    }
    fn mem(&self) -> SharedMem<'_> {
        self.mem
    }
}

impl Drop for FakePage {
    fn drop(&mut self) {
        self.world.free_frame(self.mfn.0);
    }
}

/// The fake's vacated page: a numbered place with the frame it kept.
#[derive(Debug)]
pub struct FakeVacancy {
    slot: u64,
    frame: Option<Mfn>,
}

impl super::ops::Vacant for FakeVacancy {
    fn pfn(&self) -> u64 {
        self.slot
    }
    fn frame(&self) -> Option<Mfn> {
        self.frame
    }
    fn frame_gone(&mut self) {
        self.frame = None;
    }
}

/// One domain's backend in a [`FakeWorld`].
#[derive(Debug, Clone)]
pub struct FakeXen {
    world: FakeWorld,
    dom: DomId,
}

fn gnt_flags(table: &SharedMem<'static>, r: u32) -> u16 {
    table
        .load_u16(r as usize * GNTENT_SIZE, Ordering::Acquire)
        .unwrap_or(0)
}

impl World {
    fn new_frame(&mut self, owner: u16) -> (u64, SharedMem<'static>) {
        self.next_mfn += 1;
        let mfn = 0x1000 + self.next_mfn;
        let mem = SharedMem::leak_zeroed(PAGE_SIZE);
        self.frames.insert(
            mfn,
            Frame {
                owner,
                mem,
                freed: false,
                unmapped: false,
            },
        );
        (mfn, mem)
    }

    /// Reads (flags, domid, frame) of `dom`'s entry `r`, if in range.
    fn entry(&self, dom: u16, r: u32) -> Option<(u16, u16, u32)> {
        let d = self.doms.get(&dom)?;
        if r >= d.nr_frames * GNTENT_PER_FRAME as u32 {
            return None;
        }
        let o = r as usize * GNTENT_SIZE;
        Some((
            d.table.load_u16(o, Ordering::Acquire).ok()?,
            d.table.load_u16(o + GNTENT_DOMID, Ordering::Relaxed).ok()?,
            d.table.load_u32(o + GNTENT_FRAME, Ordering::Relaxed).ok()?,
        ))
    }

    /// Xen's pin: validates the entry and sets GTF_reading (and
    /// GTF_writing) with a CAS loop, as `_set_status_v1` does.
    fn pin(&mut self, mapper: u16, granter: u16, r: u32, writable: bool) -> Result<u64, i16> {
        let d = self.doms.get(&granter).ok_or(GNTST_bad_domain)?;
        if r >= d.nr_frames * GNTENT_PER_FRAME as u32 {
            return Err(GNTST_bad_gntref);
        }
        let table = d.table;
        let off = r as usize * GNTENT_SIZE;
        let mut seen = gnt_flags(&table, r);
        loop {
            let domid = table
                .load_u16(off + GNTENT_DOMID, Ordering::Relaxed)
                .unwrap_or(0);
            if seen & GTF_type_mask != GTF_permit_access || domid != mapper {
                return Err(GNTST_general_error);
            }
            if writable && seen & GTF_readonly != 0 {
                return Err(GNTST_general_error);
            }
            let new = seen | GTF_reading | if writable { GTF_writing } else { 0 };
            match table.cas_u16(off, seen, new).unwrap_or(Err(0)) {
                Ok(_) => break,
                Err(now) => seen = now,
            }
        }
        let frame = table
            .load_u32(off + GNTENT_FRAME, Ordering::Relaxed)
            .unwrap_or(0) as u64;
        let p = self.pins.entry((granter, r)).or_default();
        p.0 += 1;
        if writable {
            p.1 += 1;
        }
        Ok(frame)
    }

    fn unpin(&mut self, granter: u16, r: u32, writable: bool) {
        let Some(p) = self.pins.get_mut(&(granter, r)) else {
            return;
        };
        p.0 -= 1;
        if writable {
            p.1 -= 1;
        }
        let mut clear = 0;
        if p.1 == 0 {
            clear |= GTF_writing;
        }
        if p.0 == 0 {
            clear |= GTF_reading;
            self.pins.remove(&(granter, r));
        }
        let table = self.doms[&granter].table;
        let off = r as usize * GNTENT_SIZE;
        let mut seen = gnt_flags(&table, r);
        while let Err(now) = table.cas_u16(off, seen, seen & !clear).unwrap_or(Ok(0)) {
            seen = now;
        }
    }

    fn map_one(&mut self, mapper: u16, m: &mut gnttab_map_grant_ref, own_va: bool) -> i16 {
        let n = self.map_ops;
        self.map_ops += 1;
        if let Some((at, st)) = self.fail_map {
            if at == n {
                return st;
            }
        }
        if self.eagain_maps > 0 {
            self.eagain_maps -= 1;
            return GNTST_eagain;
        }
        if m.flags & GNTMAP_host_map == 0 {
            return GNTST_general_error;
        }
        if own_va {
            let d = &self.doms[&mapper];
            let inside = d
                .reserved
                .iter()
                .any(|(&va, &n)| m.host_addr >= va && m.host_addr < va + n * PAGE_SIZE as u64);
            if !inside || d.mapped.contains_key(&m.host_addr) {
                return GNTST_bad_virt_addr;
            }
        }
        let writable = m.flags & GNTMAP_readonly == 0;
        let frame = match self.pin(mapper, m.dom, m.ref_, writable) {
            Ok(f) => f,
            Err(st) => return st,
        };
        if self
            .frames
            .get(&frame)
            .is_none_or(|f| f.freed || f.owner != m.dom)
        {
            self.unpin(m.dom, m.ref_, writable);
            return GNTST_bad_page;
        }
        self.next_handle += 1;
        let h = self.next_handle;
        self.maps.insert(
            h,
            Mapping {
                mapper,
                granter: m.dom,
                gref: m.ref_,
                va: m.host_addr,
                mfn: frame,
                writable,
            },
        );
        if own_va {
            self.doms
                .get_mut(&mapper)
                .map(|d| d.mapped.insert(m.host_addr, h));
        }
        m.handle = h;
        GNTST_okay
    }

    fn unmap_one(&mut self, mapper: u16, u: &gnttab_unmap_grant_ref) -> i16 {
        let Some(map) = self.maps.get(&u.handle).copied() else {
            return GNTST_bad_handle;
        };
        if map.mapper != mapper {
            return GNTST_bad_handle;
        }
        if u.host_addr != 0 && u.host_addr != map.va {
            return GNTST_general_error;
        }
        self.maps.remove(&u.handle);
        if let Some(f) = self.frames.get(&map.mfn) {
            let mut bytes = std::vec![0u8; PAGE_SIZE];
            let _ = f.mem.read(0, &mut bytes);
            self.unmapped.insert(0, (map.mfn, bytes));
        }
        self.doms.get_mut(&mapper).map(|d| d.mapped.remove(&map.va));
        self.unpin(map.granter, map.gref, map.writable);
        GNTST_okay
    }

    /// Resolves one end of a copy to a page, as Xen's `gnttab_copy` would.
    fn copy_end(
        &self,
        me: u16,
        p: &gnttab_copy_ptr,
        gref: bool,
        write: bool,
    ) -> Result<SharedMem<'static>, i16> {
        if gref {
            let (flags, domid, frame) =
                self.entry(p.domid, p.u as u32)
                    .ok_or(if self.doms.contains_key(&p.domid) {
                        GNTST_bad_gntref
                    } else {
                        GNTST_bad_domain
                    })?;
            if flags & GTF_type_mask != GTF_permit_access
                || domid != me
                || (write && flags & GTF_readonly != 0)
            {
                return Err(GNTST_general_error);
            }
            self.frames
                .get(&(frame as u64))
                .filter(|f| !f.freed)
                .map(|f| f.mem)
                .ok_or(GNTST_bad_page)
        } else {
            if p.domid != DomId::SELF.0 && p.domid != me {
                return Err(GNTST_permission_denied);
            }
            self.frames
                .get(&p.u)
                .filter(|f| !f.freed && f.owner == me)
                .map(|f| f.mem)
                .ok_or(GNTST_bad_page)
        }
    }
}

impl FakeWorld {
    /// An empty world.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, World> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds domain `dom` whose table starts with `nr_frames` and may grow
    /// to `max_frames`; returns its backend.
    pub fn add_domain(&self, dom: DomId, nr_frames: u32, max_frames: u32) -> FakeXen {
        let mut w = self.lock();
        let table = SharedMem::leak_zeroed(max_frames as usize * PAGE_SIZE);
        let mut d = Dom {
            table,
            table_mfns: Vec::new(),
            nr_frames,
            max_frames,
            next_va: VA_BASE,
            reserved: HashMap::new(),
            mapped: HashMap::new(),
            reported: None,
        };
        for _ in 0..max_frames {
            w.next_mfn += 1;
            d.table_mfns.push(0x10_0000 + w.next_mfn);
        }
        w.doms.insert(dom.0, d);
        FakeXen {
            world: self.clone(),
            dom,
        }
    }

    /// Makes `dom`'s query_size report `size` (`None`: the real one),
    /// without allocating frames for it.
    pub fn report_size(&self, dom: DomId, size: Option<TableSize>) {
        if let Some(d) = self.lock().doms.get_mut(&dom.0) {
            d.reported = size;
        }
    }

    fn free_frame(&self, mfn: u64) {
        let mut w = self.lock();
        let mapped = w.maps.values().any(|m| m.mfn == mfn);
        let Some(f) = w.frames.get(&mfn) else { return };
        let owner = f.owner;
        let granted = w.doms.get(&owner).is_some_and(|d| {
            (0..d.nr_frames * GNTENT_PER_FRAME as u32).any(|r| {
                let o = r as usize * GNTENT_SIZE;
                let fl = d.table.load_u16(o, Ordering::Relaxed).unwrap_or(0);
                fl & GTF_type_mask == GTF_permit_access
                    && d.table
                        .load_u32(o + GNTENT_FRAME, Ordering::Relaxed)
                        .unwrap_or(0) as u64
                        == mfn
            })
        });
        let freed = f.freed;
        if freed {
            w.violations
                .push(std::format!("frame {mfn:#x} freed twice"));
        }
        if mapped {
            w.violations
                .push(std::format!("frame {mfn:#x} freed while a peer maps it"));
        }
        if granted {
            w.violations.push(std::format!(
                "frame {mfn:#x} freed while a valid entry grants it"
            ));
        }
        if let Some(f) = w.frames.get_mut(&mfn) {
            f.freed = true;
        }
    }

    /// Bugs the world saw (must stay empty).
    pub fn violations(&self) -> Vec<std::string::String> {
        self.lock().violations.clone()
    }

    /// The bytes frame `mfn` held when its latest mapping was unmapped.
    pub fn at_last_unmap(&self, mfn: Mfn) -> Option<Vec<u8>> {
        self.lock()
            .unmapped
            .iter()
            .find(|(m, _)| *m == mfn.0)
            .map(|(_, b)| b.clone())
    }

    /// Makes the next frame handed out `mfn` (and the ones after it
    /// follow): e.g. one too large for a v1 entry's 32-bit `frame`.
    pub fn set_next_mfn(&self, mfn: u64) {
        self.lock().next_mfn = mfn - 0x1001;
    }

    /// Makes the next transfer hypercall return `-errno`, having processed
    /// its ops first or not.
    pub fn fail_transfer_hypercall(&self, errno: Errno, processed: bool) {
        self.lock().transfer_error = Some((errno, processed));
    }

    /// Makes every later vacate fail.
    pub fn fail_vacate(&self, fail: bool) {
        self.lock().fail_vacate = fail;
    }

    /// Makes every later refill that needs a new frame fail.
    pub fn fail_populate(&self, fail: bool) {
        self.lock().fail_populate = fail;
    }

    /// New frames refills took from the world (Xen's populate_physmap).
    pub fn populated(&self) -> u64 {
        self.lock().populated
    }

    /// The domain that owns frame `mfn` now.
    pub fn owner(&self, mfn: Mfn) -> Option<DomId> {
        self.lock().frames.get(&mfn.0).map(|f| DomId(f.owner))
    }

    /// Whether frame `mfn` has been freed.
    pub fn is_freed(&self, mfn: Mfn) -> bool {
        self.lock().frames.get(&mfn.0).is_some_and(|f| f.freed)
    }

    /// Live mappings.
    pub fn mapping_count(&self) -> usize {
        self.lock().maps.len()
    }

    /// Hypercalls issued by all domains.
    pub fn hypercalls(&self) -> u64 {
        self.lock().hypercalls
    }

    /// Makes map op number `n` (counted over all map ops from now) fail
    /// with `status`.
    pub fn fail_map_op(&self, n: u64, status: i16) {
        let mut w = self.lock();
        let base = w.map_ops;
        w.fail_map = Some((base + n, status));
    }

    /// Makes the next `n` map ops answer `GNTST_eagain`, as Xen does while
    /// it pages the granter's frame in.
    pub fn eagain_map_ops(&self, n: u64) {
        self.lock().eagain_maps = n;
    }

    /// `dom`'s table memory (the peer's or Xen's view of it: tests race
    /// on its flags directly).
    pub fn table(&self, dom: DomId) -> SharedMem<'static> {
        self.lock().doms[&dom.0].table
    }

    /// Peer `mapper` maps `granter`'s `gref` the way Xen would (without an
    /// address); returns the handle and a view of the page, or the status.
    pub fn peer_map(
        &self,
        mapper: DomId,
        granter: DomId,
        gref: GrantRef,
        writable: bool,
    ) -> Result<(u32, SharedMem<'static>), i16> {
        let mut w = self.lock();
        let mut m = gnttab_map_grant_ref {
            host_addr: 0,
            flags: GNTMAP_host_map | if writable { 0 } else { GNTMAP_readonly },
            ref_: gref.0,
            dom: granter.0,
            ..Default::default()
        };
        match w.map_one(mapper.0, &mut m, false) {
            GNTST_okay => {
                let mfn = w.maps[&m.handle].mfn;
                Ok((m.handle, w.frames[&mfn].mem))
            }
            st => Err(st),
        }
    }

    /// Undoes [`peer_map`](Self::peer_map).
    pub fn peer_unmap(&self, mapper: DomId, handle: u32) -> Result<(), i16> {
        let mut w = self.lock();
        let u = gnttab_unmap_grant_ref {
            host_addr: 0,
            dev_bus_addr: 0,
            handle,
            status: 0,
        };
        match w.unmap_one(mapper.0, &u) {
            GNTST_okay => Ok(()),
            st => Err(st),
        }
    }

    /// A frame owned by `owner` (a peer's page, for copies and transfers).
    pub fn peer_frame(&self, owner: DomId) -> (Mfn, SharedMem<'static>) {
        let (m, mem) = self.lock().new_frame(owner.0);
        (Mfn(m), mem)
    }

    /// First half of Xen's transfer into `to`'s entry `gref` from `from`:
    /// validates and sets `GTF_transfer_committed`.
    pub fn transfer_commit(&self, from: DomId, to: DomId, gref: GrantRef) -> Result<(), i16> {
        let w = self.lock();
        let (flags, domid, _) = w.entry(to.0, gref.0).ok_or(GNTST_bad_gntref)?;
        if flags & GTF_type_mask != GTF_accept_transfer
            || domid != from.0
            || flags & GTF_transfer_committed != 0
        {
            return Err(GNTST_general_error);
        }
        let table = w.doms[&to.0].table;
        let off = gref.0 as usize * GNTENT_SIZE;
        table
            .cas_u16(off, flags, flags | GTF_transfer_committed)
            .unwrap_or(Err(0))
            .map_err(|_| GNTST_general_error)?;
        Ok(())
    }

    /// Second half: writes the frame, then ORs `GTF_transfer_completed`.
    pub fn transfer_complete(&self, to: DomId, gref: GrantRef, mfn: Mfn) {
        let mut w = self.lock();
        let table = w.doms[&to.0].table;
        let off = gref.0 as usize * GNTENT_SIZE;
        let _ = table.store_u32(off + GNTENT_FRAME, mfn.0 as u32, Ordering::Relaxed);
        let mut seen = gnt_flags(&table, gref.0);
        while let Err(now) = table
            .cas_u16(off, seen, seen | GTF_transfer_completed)
            .unwrap_or(Ok(0))
        {
            seen = now;
        }
        if let Some(f) = w.frames.get_mut(&mfn.0) {
            f.owner = to.0;
        }
    }
}

impl FakeXen {
    /// The domain this backend belongs to.
    pub fn domid(&self) -> DomId {
        self.dom
    }

    /// The world it lives in.
    pub fn world(&self) -> &FakeWorld {
        &self.world
    }
}

// SAFETY: every view the fake hands out is of a leaked buffer, valid for
// the rest of the program; its pages own their (simulated) frames.
#[allow(unsafe_code)]
unsafe impl GrantOps for FakeXen {
    type Page = FakePage;
    type Vacancy = FakeVacancy;

    fn query_size(&mut self) -> Result<TableSize, GrantError> {
        let mut w = self.world.lock();
        w.hypercalls += 1;
        let d = &w.doms[&self.dom.0];
        Ok(d.reported.unwrap_or(TableSize {
            nr_frames: d.nr_frames,
            max_nr_frames: d.max_frames,
        }))
    }

    fn setup_table(&mut self, frames: &mut [Mfn]) -> Result<(), GrantError> {
        let mut w = self.world.lock();
        w.hypercalls += 1;
        let d = w
            .doms
            .get_mut(&self.dom.0)
            .ok_or(GrantError::Hypercall(Errno::ESRCH))?;
        let n = frames.len() as u32;
        if n > d.max_frames {
            return Err(GrantError::Status(GntStatus::GeneralError));
        }
        d.nr_frames = d.nr_frames.max(n);
        for (f, &m) in frames.iter_mut().zip(&d.table_mfns) {
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
        let w = self.world.lock();
        let d = &w.doms[&self.dom.0];
        let end = first as usize + frames.len();
        let reported_max = d.reported.map_or(d.max_frames, |r| r.max_nr_frames);
        assert!(max_frames == reported_max && end <= d.nr_frames as usize);
        assert_eq!(
            frames.iter().map(|m| m.0).collect::<Vec<_>>(),
            d.table_mfns[first as usize..end]
        );
        d.table
            .slice(0, end * PAGE_SIZE)
            .map_err(|_| GrantError::InvalidArgument)
    }

    fn map_grant_ref(&mut self, ops: &mut [gnttab_map_grant_ref]) -> Result<(), Errno> {
        let mut w = self.world.lock();
        w.hypercalls += 1;
        for m in ops.iter_mut() {
            m.status = w.map_one(self.dom.0, m, true);
        }
        Ok(())
    }

    fn unmap_grant_ref(&mut self, ops: &mut [gnttab_unmap_grant_ref]) -> Result<(), Errno> {
        let mut w = self.world.lock();
        w.hypercalls += 1;
        for u in ops.iter_mut() {
            u.status = w.unmap_one(self.dom.0, u);
        }
        Ok(())
    }

    fn copy(&mut self, ops: &mut [gnttab_copy]) -> Result<(), Errno> {
        let mut w = self.world.lock();
        w.hypercalls += 1;
        for c in ops.iter_mut() {
            c.status = (|| {
                if c.source.offset as usize + c.len as usize > PAGE_SIZE
                    || c.dest.offset as usize + c.len as usize > PAGE_SIZE
                {
                    return Err(GNTST_bad_copy_arg);
                }
                let src = w.copy_end(
                    self.dom.0,
                    &c.source,
                    c.flags & GNTCOPY_source_gref != 0,
                    false,
                )?;
                let dst =
                    w.copy_end(self.dom.0, &c.dest, c.flags & GNTCOPY_dest_gref != 0, true)?;
                let mut buf = std::vec![0u8; c.len as usize];
                let _ = src.read(c.source.offset as usize, &mut buf);
                let _ = dst.write(c.dest.offset as usize, &buf);
                Ok(())
            })()
            .err()
            .unwrap_or(GNTST_okay);
        }
        Ok(())
    }

    fn transfer(&mut self, ops: &mut [gnttab_transfer]) -> Result<(), Errno> {
        let me = self.dom;
        let fail = self.world.lock().transfer_error.take();
        if let Some((e, false)) = fail {
            return Err(e);
        }
        for t in ops.iter_mut() {
            let stealable = {
                let mut w = self.world.lock();
                w.hypercalls += 1;
                // steal_page: ours, and no mapping of it left.
                w.frames
                    .get(&t.mfn)
                    .is_some_and(|f| f.owner == me.0 && !f.freed && f.unmapped)
            };
            if !stealable {
                t.status = GNTST_bad_page;
                continue;
            }
            let to = DomId(t.domid);
            let found = self.world.lock().doms.contains_key(&to.0);
            let commit = if found {
                self.world.transfer_commit(me, to, GrantRef(t.ref_))
            } else {
                Err(GNTST_bad_domain)
            };
            t.status = match commit {
                Ok(()) => {
                    self.world
                        .transfer_complete(to, GrantRef(t.ref_), Mfn(t.mfn));
                    GNTST_okay
                }
                Err(st) => {
                    // Xen stole the frame before looking at the receiver;
                    // on failure it frees it.
                    if let Some(f) = self.world.lock().frames.get_mut(&t.mfn) {
                        f.freed = true;
                    }
                    st
                }
            };
        }
        match fail {
            Some((e, _)) => Err(e),
            None => Ok(()),
        }
    }

    fn dump_table(&mut self) -> Result<i16, Errno> {
        self.world.lock().hypercalls += 1;
        Ok(GNTST_okay)
    }

    fn alloc_page(&mut self) -> Result<FakePage, GrantError> {
        let (mfn, mem) = self.world.lock().new_frame(self.dom.0);
        Ok(FakePage {
            world: self.world.clone(),
            mfn: Mfn(mfn),
            mem,
        })
    }

    fn forget_page(&mut self, page: FakePage) {
        core::mem::forget(page);
    }

    fn vacate(
        &mut self,
        page: FakePage,
        give_back: bool,
    ) -> Result<FakeVacancy, (FakePage, GrantError)> {
        let mfn = page.mfn;
        if self.world.lock().fail_vacate {
            return Err((page, GrantError::Hypercall(Errno::ENOMEM)));
        }
        // The page's place survives it; its frame is not freed by it.
        core::mem::forget(page);
        let slot = {
            let mut w = self.world.lock();
            w.next_slot += 1;
            if let Some(f) = w.frames.get_mut(&mfn.0) {
                f.unmapped = true;
            }
            w.next_slot
        };
        if give_back {
            // XENMEM_decrease_reservation: the world checks that nothing
            // maps or grants the frame.
            self.world.free_frame(mfn.0);
        }
        Ok(FakeVacancy {
            slot,
            frame: (!give_back).then_some(mfn),
        })
    }

    fn refill(
        &mut self,
        vacancy: FakeVacancy,
        arrived: Option<Mfn>,
    ) -> Result<FakePage, (FakeVacancy, GrantError)> {
        let mut w = self.world.lock();
        let mfn = match (arrived, vacancy.frame) {
            (Some(m), None) => {
                // A frame transferred to us: ours now, and live.
                if !w
                    .frames
                    .get(&m.0)
                    .is_some_and(|f| f.owner == self.dom.0 && !f.freed)
                {
                    return Err((vacancy, GrantError::Memory(MemError::BadAddress(m.0))));
                }
                m
            }
            (Some(m), Some(_)) => {
                return Err((vacancy, GrantError::Memory(MemError::BadAddress(m.0))))
            }
            (None, Some(m)) => m,
            (None, None) => {
                if w.fail_populate {
                    return Err((vacancy, GrantError::Memory(MemError::OutOfFrames)));
                }
                w.populated += 1;
                Mfn(w.new_frame(self.dom.0).0)
            }
        };
        let f = w
            .frames
            .get_mut(&mfn.0)
            .ok_or(GrantError::Memory(MemError::BadAddress(mfn.0)));
        let f = match f {
            Ok(f) => f,
            Err(e) => return Err((vacancy, e)),
        };
        f.unmapped = false;
        let mem = f.mem;
        Ok(FakePage {
            world: self.world.clone(),
            mfn,
            mem,
        })
    }

    fn reserve_va(&mut self, pages: u64) -> Result<u64, GrantError> {
        let mut w = self.world.lock();
        let d = w
            .doms
            .get_mut(&self.dom.0)
            .ok_or(GrantError::InvalidArgument)?;
        let va = d.next_va;
        d.next_va += (pages + 1) * PAGE_SIZE as u64;
        d.reserved.insert(va, pages);
        Ok(va)
    }

    fn release_va(&mut self, va: u64, pages: u64) -> Result<(), GrantError> {
        let mut w = self.world.lock();
        let d = w
            .doms
            .get_mut(&self.dom.0)
            .ok_or(GrantError::InvalidArgument)?;
        if d.reserved.get(&va) != Some(&pages) {
            return Err(GrantError::InvalidArgument);
        }
        if (0..pages).any(|i| d.mapped.contains_key(&(va + i * PAGE_SIZE as u64))) {
            drop(w);
            self.world
                .lock()
                .violations
                .push(std::format!("address space {va:#x} released while mapped"));
            return Err(GrantError::InvalidArgument);
        }
        d.reserved.remove(&va);
        Ok(())
    }

    fn mapped_view(&mut self, va: u64) -> Option<SharedMem<'static>> {
        let w = self.world.lock();
        let h = w.doms.get(&self.dom.0)?.mapped.get(&va)?;
        let mfn = w.maps.get(h)?.mfn;
        w.frames.get(&mfn).map(|f| f.mem)
    }
}
