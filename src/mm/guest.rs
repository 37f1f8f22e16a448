//! The running guest's memory: boot-time set-up and the global state
//! behind the `mm` API (only built for the guest target).

// Xen backend: the guest's page tables, direct map and frame allocator.
#![allow(unsafe_code)]

use super::{FrameAllocator, MemError, MemStats, VaAllocator, MAP_AREA_SIZE, MAP_AREA_START};
use crate::abi::memory::{XENMEM_decrease_reservation, XENMEM_populate_physmap};
use crate::abi::{mmu_update, MMU_MACHPHYS_UPDATE, PAGE_SIZE};
use crate::hypercall;
use crate::mm::paging::{self, MapError, PageTables};
use crate::shared_mem::SharedMem;
use crate::start_info::BootInfo;
use crate::types::{Mfn, Pfn};
use core::ptr::NonNull;
use linked_list_allocator::LockedHeap;
use spin::Mutex;

use paging::{direct_va, VIRT_BASE};

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

struct Memory {
    frames: FrameAllocator<'static>,
    tables: PageTables,
    map_area: Option<VaAllocator>,
    nr_pages: u64,
    heap_size: usize,
}

static MEMORY: Mutex<Option<Memory>> = Mutex::new(None);

impl From<MapError> for MemError {
    fn from(e: MapError) -> Self {
        match e {
            MapError::OutOfFrames => MemError::OutOfFrames,
            MapError::Hypercall(e) => MemError::Hypercall(e),
            MapError::BadAddress(a) => MemError::BadAddress(a),
        }
    }
}

fn with<R>(f: impl FnOnce(&mut Memory) -> Result<R, MemError>) -> Result<R, MemError> {
    let mut guard = MEMORY.lock();
    f(guard.as_mut().ok_or(MemError::NotReady)?)
}

/// Sets up memory at boot: the frame allocator over every pfn past the
/// bootstrap page tables, the direct map over all of them, then the heap.
pub(crate) fn init(info: &BootInfo) -> Result<(), MemError> {
    let first = info.first_free_pfn(VIRT_BASE);
    let nr_pages = info.nr_pages;
    // The direct map reaches 2 GiB of pfns: those past it are not managed
    // (no frame, no table, no heap there), so every pfn handed out has an
    // address.
    let managed = nr_pages.min(super::DIRECT_MAP_PAGES);
    if first >= managed {
        return Err(MemError::OutOfFrames);
    }
    // Xen maps the p2m list (one u64 per pfn) writable inside the bootstrap
    // region and never touches it afterwards.
    let p2m: &'static mut [u64] =
        // SAFETY: as above; from here on only the page tables' owner
        // (behind MEMORY's lock) reads and writes it.
        unsafe { core::slice::from_raw_parts_mut(info.mfn_list as *mut u64, nr_pages as usize) };
    // SAFETY: pt_base is the active L4 (start_info contract) and the
    // bootstrap tables are inside the bootstrap direct map.
    let tables = unsafe { PageTables::new(info.pt_base, p2m) };

    // The bitmap takes the first free frames, which the bootstrap maps
    // (Xen leaves at least 512 KiB mapped past the page tables).
    let count = managed - first;
    let words = FrameAllocator::words_for(count);
    let bitmap_pages = (words * 8).div_ceil(PAGE_SIZE) as u64;
    let bitmap_va = direct_va(Pfn(first));
    // SAFETY: those frames are ours, free, mapped writable, and from now
    // on used only as the bitmap (they are reserved below).
    let bits = unsafe { core::slice::from_raw_parts_mut(bitmap_va as *mut u64, words) };
    let mut frames = FrameAllocator::new(bits, Pfn(first), count).ok_or(MemError::OutOfFrames)?;
    for i in 0..bitmap_pages {
        frames.reserve(Pfn(first + i))?;
    }
    // The xenstore and console pages normally precede the page tables;
    // should a builder place them later, keep them out of the allocator.
    for mfn in [info.store_mfn, info.console_mfn] {
        if mfn.0 != 0 {
            // SAFETY: both are frames of this domain (start_info contract).
            let pfn = unsafe { paging::mfn_to_pfn(mfn) };
            if tables.pfn_to_mfn(pfn) == Some(mfn) {
                let _ = frames.reserve(pfn);
            }
        }
    }

    // Extend the direct map. The lowest free frames (used for new page
    // tables, first-fit) are always below the part already mapped.
    let mut pfn = first;
    while pfn < managed && tables.lookup(direct_va(Pfn(pfn))).is_some() {
        pfn += 1;
    }
    let mut alloc = || frames.alloc().ok();
    let mut mfns = (pfn..managed).map(|p| tables.pfn_to_mfn(Pfn(p)).unwrap_or_default());
    // SAFETY: the range past the bootstrap mapping is unmapped, so no Rust
    // code uses it; the frames are our own.
    unsafe { tables.map(direct_va(Pfn(pfn)), &mut mfns, true, &mut alloc) }?;

    let heap_pages = frames.free_count() / 2;
    let heap_pfn = frames.alloc_contiguous(heap_pages.max(1))?;
    let heap_size = heap_pages.max(1) as usize * PAGE_SIZE;
    // SAFETY: the frames are ours, mapped writable, and given to the heap
    // for good.
    unsafe { HEAP.lock().init(direct_va(heap_pfn) as *mut u8, heap_size) };

    *MEMORY.lock() = Some(Memory {
        frames,
        tables,
        map_area: None,
        nr_pages,
        heap_size,
    });
    with(|m| {
        m.map_area = Some(VaAllocator::new(
            MAP_AREA_START,
            MAP_AREA_SIZE / PAGE_SIZE as u64,
        ));
        Ok(())
    })
}

/// Current memory figures.
pub fn stats() -> MemStats {
    let heap = HEAP.lock();
    let (heap_free, _) = (heap.free(), ());
    drop(heap);
    MEMORY
        .lock()
        .as_ref()
        .map(|m| MemStats {
            nr_pages: m.nr_pages,
            managed_frames: m.frames.total(),
            free_frames: m.frames.free_count(),
            heap_size: m.heap_size,
            heap_free,
            free_map_pages: m.map_area.as_ref().map_or(0, |v| v.free_pages()),
        })
        .unwrap_or_default()
}

/// The machine frame behind pfn `pfn`.
pub fn pfn_to_mfn(pfn: Pfn) -> Option<Mfn> {
    MEMORY.lock().as_ref()?.tables.pfn_to_mfn(pfn)
}

/// The machine frame behind a direct-map address.
pub fn virt_to_mfn(va: u64) -> Option<Mfn> {
    pfn_to_mfn(super::virt_to_pfn(va)?)
}

/// One page frame of this domain, zeroed at allocation, mapped writable in
/// the direct map, returned to the allocator on drop.
///
/// Once the page is shared with another domain, use [`Page::shared`] to
/// access it: the peer may write it at any time.
#[derive(Debug)]
pub struct Page {
    pfn: Pfn,
    mfn: Mfn,
}

impl Page {
    /// Allocates and zeroes a page.
    pub fn alloc() -> Result<Page, MemError> {
        let (pfn, mfn) = with(|m| {
            let pfn = m.frames.alloc()?;
            let mfn = m
                .tables
                .pfn_to_mfn(pfn)
                .ok_or(MemError::BadAddress(pfn.0))?;
            Ok((pfn, mfn))
        })?;
        let page = Page { pfn, mfn };
        page.shared()
            .fill(0, PAGE_SIZE, 0)
            .map_err(|_| MemError::BadAddress(pfn.0))?;
        Ok(page)
    }

    /// The page's pfn.
    pub fn pfn(&self) -> Pfn {
        self.pfn
    }

    /// The page's machine frame (what grants and Xen refer to).
    pub fn mfn(&self) -> Mfn {
        self.mfn
    }

    /// The page's direct-map address.
    pub fn virt(&self) -> u64 {
        direct_va(self.pfn)
    }

    /// A view for volatile/atomic access to the page's bytes.
    pub fn shared(&self) -> SharedMem<'_> {
        // SAFETY: the page is mapped writable in the direct map for as long
        // as this Page exists; SharedMem only makes volatile accesses.
        // The view borrows `self`, so it cannot outlive the Page.
        unsafe { SharedMem::new(NonNull::new_unchecked(self.virt() as *mut u8), PAGE_SIZE) }
    }

    /// Gives up ownership without freeing the frame (e.g. a page a peer
    /// may still map); returns its pfn so it can be freed later with
    /// [`free_frame`].
    pub fn leak(self) -> Pfn {
        let pfn = self.pfn;
        core::mem::forget(self);
        pfn
    }

    /// Takes back ownership of a frame given up with [`Page::leak`].
    ///
    /// # Safety
    /// `pfn` must come from `leak` and nothing else may own it.
    pub unsafe fn from_leaked(pfn: Pfn) -> Option<Page> {
        Some(Page {
            pfn,
            mfn: pfn_to_mfn(pfn)?,
        })
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        // A failure here means the frame was already freed: a bug that
        // must not be hidden, but a drop cannot report it; keep the frame.
        // SAFETY: this Page owned the frame, and is gone after this.
        let _ = unsafe { free_frame(self.pfn) };
    }
}

impl Page {
    /// Takes the page out of the direct map, so that no mapping of its
    /// frame is left: Xen steals a frame for `GNTTABOP_transfer` only
    /// then. With `give_back` the frame also goes back to Xen
    /// (`XENMEM_decrease_reservation`), which leaves room in our
    /// reservation for a frame another domain transfers to us. The pfn
    /// stays allocated to the [`Vacated`]. On failure the page is mapped
    /// as before and comes back.
    pub fn vacate(self, give_back: bool) -> Result<Vacated, (Page, MemError)> {
        let (pfn, mfn, va) = (self.pfn, self.mfn, self.virt());
        let r = with(|m| {
            // SAFETY: `self` is consumed on success, and every view of
            // the page borrows it, so nothing uses the address any more.
            unsafe { m.tables.unmap(va) }?;
            if !give_back {
                return Ok(());
            }
            let mut list = [mfn.0];
            // SAFETY: the frame's one mapping (the direct map's) is gone.
            let gone =
                unsafe { hypercall::memory_reservation(XENMEM_decrease_reservation, &mut list) };
            if gone != Ok(1) {
                // Still ours: map it back as it was.
                remap(m, pfn, mfn)?;
                return Err(gone
                    .err()
                    .map_or(MemError::BadAddress(mfn.0), MemError::Hypercall));
            }
            m.tables.set_p2m(pfn, None)?;
            Ok(())
        });
        match r {
            Ok(()) => {
                core::mem::forget(self);
                Ok(Vacated {
                    pfn,
                    frame: (!give_back).then_some(mfn),
                })
            }
            Err(e) => Err((self, e)),
        }
    }
}

/// A pfn of ours out of the direct map ([`Page::vacate`]), with the
/// frame it kept, or none. Refill it to get a [`Page`] back; dropped, it
/// refills itself and frees the page (or, should that fail, leaks the pfn).
#[derive(Debug)]
#[must_use = "a vacated pfn is lost unless refilled"]
pub struct Vacated {
    pfn: Pfn,
    frame: Option<Mfn>,
}

/// Maps pfn `pfn` (out of the direct map) to `mfn` again, writable.
fn remap(m: &mut Memory, pfn: Pfn, mfn: Mfn) -> Result<(), MemError> {
    let Memory { frames, tables, .. } = m;
    let mut alloc = || frames.alloc().ok();
    // SAFETY: the address is unmapped (vacated), so no Rust code uses
    // it; the frame is ours (callers check, or Xen did).
    unsafe { tables.map(direct_va(pfn), &mut core::iter::once(mfn), true, &mut alloc) }?;
    Ok(())
}

/// Puts frame `frame` (or, if `None`, a new one from Xen) behind `pfn`:
/// M2P, p2m and the direct map. Returns the frame, whether it is new.
///
/// # Safety
/// `pfn` must be vacated; `frame` ours, and used by nothing else.
unsafe fn fill(pfn: Pfn, frame: Option<Mfn>) -> Result<(Mfn, bool), MemError> {
    with(|m| {
        let mfn = match frame {
            Some(mfn) => {
                let req = mmu_update {
                    ptr: (mfn.0 << 12) | MMU_MACHPHYS_UPDATE as u64,
                    val: pfn.0,
                };
                // SAFETY: an M2P entry, no mapping: Xen refuses it for a
                // frame that is not ours.
                unsafe { hypercall::mmu_update(&[req]) }.map_err(MemError::Hypercall)?;
                mfn
            }
            None => {
                let mut list = [pfn.0];
                // SAFETY: the pfn has no frame (vacated and given back, or
                // its frame gone); Xen enters the new one in the M2P.
                match unsafe { hypercall::memory_reservation(XENMEM_populate_physmap, &mut list) } {
                    Ok(1) => Mfn(list[0]),
                    Ok(_) => return Err(MemError::OutOfFrames),
                    Err(e) => return Err(MemError::Hypercall(e)),
                }
            }
        };
        m.tables.set_p2m(pfn, Some(mfn))?;
        remap(m, pfn, mfn)?;
        Ok((mfn, frame.is_none()))
    })
}

impl Vacated {
    /// The pfn.
    pub fn pfn(&self) -> Pfn {
        self.pfn
    }

    /// The frame still ours behind the pfn, if any.
    pub fn frame(&self) -> Option<Mfn> {
        self.frame
    }

    /// Records that Xen took the frame (a transfer went through, or
    /// failed after Xen had taken the frame): the pfn has none now.
    pub fn frame_gone(&mut self) {
        if self.frame.take().is_some() {
            let _ = with(|m| Ok(m.tables.set_p2m(self.pfn, None)?));
        }
    }

    /// A page again at the pfn: over the frame kept, or else a new,
    /// zeroed frame from Xen (`XENMEM_populate_physmap`).
    pub fn refill(self) -> Result<Page, (Vacated, MemError)> {
        let (pfn, frame) = (self.pfn, self.frame);
        core::mem::forget(self);
        // SAFETY: the pfn is vacated, and a kept frame is ours and used by
        // nothing else (the Page it came from was consumed).
        match unsafe { fill(pfn, frame) } {
            Ok((mfn, new)) => {
                let page = Page { pfn, mfn };
                if new {
                    // A new frame holds whatever Xen left in it. (A fill of
                    // exactly the view's page cannot be out of bounds.)
                    let _ = page.shared().fill(0, PAGE_SIZE, 0);
                }
                Ok(page)
            }
            Err(e) => Err((Vacated { pfn, frame }, e)),
        }
    }

    /// A page again at the pfn, over `mfn`: a frame Xen made ours (a
    /// completed transfer), with the bytes it holds.
    ///
    /// # Safety
    /// `mfn` must be a frame of this domain that nothing else uses (no
    /// `Page`, no mapping). The vacancy must have no frame of its own.
    pub unsafe fn refill_with(self, mfn: Mfn) -> Result<Page, (Vacated, MemError)> {
        if self.frame.is_some() {
            return Err((self, MemError::BadAddress(mfn.0)));
        }
        let pfn = self.pfn;
        core::mem::forget(self);
        // SAFETY: forwarded to the caller; the pfn is vacated.
        match unsafe { fill(pfn, Some(mfn)) } {
            Ok(_) => Ok(Page { pfn, mfn }),
            Err(e) => Err((Vacated { pfn, frame: None }, e)),
        }
    }
}

impl Drop for Vacated {
    fn drop(&mut self) {
        // SAFETY: the pfn is vacated; a kept frame is ours alone.
        if let Ok((mfn, _)) = unsafe { fill(self.pfn, self.frame) } {
            drop(Page { pfn: self.pfn, mfn });
        }
    }
}

/// Returns a frame to the allocator.
///
/// # Safety
/// Nothing may use the frame afterwards: it must come from
/// [`Page::leak`] (or be otherwise unowned), and no peer may map it. The
/// allocator hands it out again, zeroing it.
pub unsafe fn free_frame(pfn: Pfn) -> Result<(), MemError> {
    with(|m| Ok(m.frames.free(pfn)?))
}

/// Reserves `pages` pages of address space for foreign mappings, with
/// page tables present (Xen's grant map needs the L1 table to exist).
pub fn reserve_map_area(pages: u64) -> Result<u64, MemError> {
    with(|m| {
        let va = m
            .map_area
            .as_mut()
            .ok_or(MemError::NotReady)?
            .alloc(pages)?;
        let Memory { frames, tables, .. } = m;
        let mut alloc = || frames.alloc().ok();
        for i in 0..pages {
            tables.ensure_l1(va + i * PAGE_SIZE as u64, &mut alloc)?;
        }
        Ok(va)
    })
}

/// Returns address space from [`reserve_map_area`].
///
/// # Safety
/// The pages must be unmapped and no view may use them: the range is
/// handed out again, and whatever is mapped there next replaces them.
pub unsafe fn release_map_area(va: u64, pages: u64) -> Result<(), MemError> {
    with(|m| {
        m.map_area
            .as_mut()
            .ok_or(MemError::NotReady)?
            .free(va, pages)
    })
}

/// Maps machine frames at `va` (inside a reserved map area).
///
/// # Safety
/// The frames must be safe to access (ours, or shared with us by Xen) and
/// nothing may use the old contents of `va..`.
pub unsafe fn map_frames(va: u64, mfns: &[Mfn], writable: bool) -> Result<(), MemError> {
    with(|m| {
        let Memory { frames, tables, .. } = m;
        let mut alloc = || frames.alloc().ok();
        let mut it = mfns.iter().copied();
        // SAFETY: forwarded to the caller.
        unsafe { tables.map(va, &mut it, writable, &mut alloc) }?;
        Ok(())
    })
}

/// Unmaps `pages` pages at `va`.
///
/// # Safety
/// No reference or view into the pages may be used afterwards.
pub unsafe fn unmap_pages(va: u64, pages: u64) -> Result<(), MemError> {
    with(|m| {
        for i in 0..pages {
            // SAFETY: forwarded to the caller.
            unsafe { m.tables.unmap(va + i * PAGE_SIZE as u64) }?;
        }
        Ok(())
    })
}

/// The PTE mapping `va`, if any (for tests and diagnostics). `None` for
/// an address in Xen's part of the address space or not canonical: those
/// are never walked.
pub fn lookup(va: u64) -> Option<u64> {
    MEMORY.lock().as_ref()?.tables.lookup(va)
}

/// The pfn of one of this domain's machine frames, through Xen's M2P
/// table, checked against our p2m list (`None` for a frame not ours).
/// The M2P is read only for a frame the p2m names (a scan of the p2m, so
/// for tests and diagnostics): other entries may be unmapped, past the
/// host's last frame or in a hole, and reading them would fault.
pub fn mfn_to_pfn(mfn: Mfn) -> Option<Pfn> {
    let guard = MEMORY.lock();
    let m = guard.as_ref()?;
    super::layout::mfn_to_pfn(m.tables.p2m(), mfn, |mfn| {
        // SAFETY: called only for a frame in our p2m, one of our own
        // frames, whose M2P entry Xen keeps mapped.
        unsafe { paging::mfn_to_pfn(mfn) }.0
    })
}
