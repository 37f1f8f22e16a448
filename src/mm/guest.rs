//! The running guest's memory: boot-time set-up and the global state
//! behind the `mm` API (only built for the guest target).

// Xen backend: the guest's page tables, direct map and frame allocator.
#![allow(unsafe_code)]

use super::{FrameAllocator, MemError, MemStats, VaAllocator, MAP_AREA_SIZE, MAP_AREA_START};
use crate::abi::PAGE_SIZE;
use crate::mm::paging::{self, MapError, PageTables};
use crate::shared_mem::SharedMem;
use crate::start_info::BootInfo;
use crate::types::{Mfn, Pfn};
use core::ptr::NonNull;
use linked_list_allocator::LockedHeap;
use spin::Mutex;

pub use paging::{pfn_to_virt, virt_to_pfn, VIRT_BASE};

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
    if first >= nr_pages {
        return Err(MemError::OutOfFrames);
    }
    // SAFETY: Xen maps the p2m list (one u64 per pfn) inside the bootstrap
    // region and never writes it afterwards; xenpv never changes it either.
    let p2m: &'static [u64] = unsafe { core::slice::from_raw_parts(info.mfn_list as *const u64, nr_pages as usize) };
    // SAFETY: pt_base is the active L4 (start_info contract) and the
    // bootstrap tables are inside the bootstrap direct map.
    let tables = unsafe { PageTables::new(info.pt_base, p2m) };

    // The bitmap takes the first free frames, which the bootstrap maps
    // (Xen leaves at least 512 KiB mapped past the page tables).
    let count = nr_pages - first;
    let words = FrameAllocator::words_for(count);
    let bitmap_pages = (words * 8).div_ceil(PAGE_SIZE) as u64;
    let bitmap_va = pfn_to_virt(Pfn(first));
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
            if p2m.get(pfn.0 as usize) == Some(&mfn.0) {
                let _ = frames.reserve(pfn);
            }
        }
    }

    // Extend the direct map. The lowest free frames (used for new page
    // tables, first-fit) are always below the part already mapped.
    let mut pfn = first;
    while pfn < nr_pages && tables.lookup(pfn_to_virt(Pfn(pfn))).is_some() {
        pfn += 1;
    }
    let mut alloc = || frames.alloc().ok();
    let mut mfns = (pfn..nr_pages).map(|p| Mfn(p2m[p as usize]));
    // SAFETY: the range past the bootstrap mapping is unmapped, so no Rust
    // code uses it; the frames are our own.
    unsafe { tables.map(pfn_to_virt(Pfn(pfn)), &mut mfns, true, &mut alloc) }?;

    let heap_pages = frames.free_count() / 2;
    let heap_pfn = frames.alloc_contiguous(heap_pages.max(1))?;
    let heap_size = heap_pages.max(1) as usize * PAGE_SIZE;
    // SAFETY: the frames are ours, mapped writable, and given to the heap
    // for good.
    unsafe { HEAP.lock().init(pfn_to_virt(heap_pfn) as *mut u8, heap_size) };

    *MEMORY.lock() = Some(Memory { frames, tables, map_area: None, nr_pages, heap_size });
    with(|m| {
        m.map_area = Some(VaAllocator::new(MAP_AREA_START, MAP_AREA_SIZE / PAGE_SIZE as u64));
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
    if va < VIRT_BASE {
        return None;
    }
    pfn_to_mfn(virt_to_pfn(va))
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
            let mfn = m.tables.pfn_to_mfn(pfn).ok_or(MemError::BadAddress(pfn.0))?;
            Ok((pfn, mfn))
        })?;
        let page = Page { pfn, mfn };
        page.shared().fill(0, PAGE_SIZE, 0).map_err(|_| MemError::BadAddress(pfn.0))?;
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
        pfn_to_virt(self.pfn)
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
        Some(Page { pfn, mfn: pfn_to_mfn(pfn)? })
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
        let va = m.map_area.as_mut().ok_or(MemError::NotReady)?.alloc(pages)?;
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
    with(|m| m.map_area.as_mut().ok_or(MemError::NotReady)?.free(va, pages))
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

/// The PTE mapping `va`, if any (for tests and diagnostics).
pub fn lookup(va: u64) -> Option<u64> {
    MEMORY.lock().as_ref()?.tables.lookup(va)
}

/// The pfn of one of this domain's machine frames, through Xen's M2P
/// table, checked against our p2m list (`None` for a frame not ours).
pub fn mfn_to_pfn(mfn: Mfn) -> Option<Pfn> {
    let guard = MEMORY.lock();
    let m = guard.as_ref()?;
    // Xen's M2P covers every machine frame of the host; reading it past
    // the end would fault, so only frames below that bound are looked up.
    const M2P_ENTRIES: u64 = (crate::abi::MACH2PHYS_VIRT_END - crate::abi::MACH2PHYS_VIRT_START) / 8;
    if mfn.0 >= M2P_ENTRIES {
        return None;
    }
    // SAFETY: in range of the M2P window; a frame that is not ours yields a
    // meaningless pfn, which the p2m check below rejects.
    let pfn = unsafe { paging::mfn_to_pfn(mfn) };
    (m.tables.pfn_to_mfn(pfn) == Some(mfn)).then_some(pfn)
}
