//! Memory: the frame allocator, the direct map, foreign-mapping address
//! space and the heap.
//!
//! Layout of a running guest (virtual):
//! - `VIRT_BASE` (-2 GiB): the direct map, pfn N at `VIRT_BASE + N pages`;
//!   the image occupies its first pfns. Xen's bootstrap maps only the
//!   image, start-of-day structures and 512 KiB more; `init` extends the
//!   map over every pfn of the domain.
//! - `MAP_AREA_START`: addresses for mapping other domains' pages (grants).
//!
//! The heap takes half of the free frames at boot (the rest stay for page
//! sharing and page tables), through `linked_list_allocator`.

pub mod frame;
pub(crate) mod layout;
#[cfg(target_os = "none")]
pub(crate) mod paging;

#[cfg(target_os = "none")]
pub mod guest;
#[cfg(target_os = "none")]
pub use guest::*;

pub use frame::{FrameAllocator, FrameError};
pub use layout::{pfn_to_virt, virt_to_pfn, DIRECT_MAP_PAGES, VIRT_BASE};

/// Start of the address range for foreign mappings.
pub const MAP_AREA_START: u64 = 0xFFFF_C000_0000_0000;
/// Size of the foreign-mapping range (64 GiB).
pub const MAP_AREA_SIZE: u64 = 64 << 30;

/// A memory failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemError {
    /// No free page frame.
    OutOfFrames,
    /// No free virtual address range of that size.
    OutOfAddressSpace,
    /// Xen refused a page-table update.
    Hypercall(crate::errno::Errno),
    /// A frame or address that this module does not manage.
    BadAddress(u64),
    /// A frame was freed twice.
    DoubleFree(u64),
    /// Memory management is not initialised (before boot finished).
    NotReady,
}

impl core::fmt::Display for MemError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MemError::OutOfFrames => f.write_str("no free page frame"),
            MemError::OutOfAddressSpace => f.write_str("no free virtual address range that large"),
            MemError::Hypercall(e) => write!(f, "Xen refused a page-table update: {e}"),
            MemError::BadAddress(a) => write!(f, "{a:#x} is not a frame or address managed here"),
            MemError::DoubleFree(a) => write!(f, "{a:#x} was freed twice"),
            MemError::NotReady => f.write_str("memory management is not set up yet"),
        }
    }
}

impl From<FrameError> for MemError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::OutOfFrames => MemError::OutOfFrames,
            FrameError::OutOfRange(p) => MemError::BadAddress(p.0),
            FrameError::DoubleFree(p) => MemError::DoubleFree(p.0),
        }
    }
}

/// A first-fit allocator of page-granular virtual address ranges.
#[derive(Debug)]
pub struct VaAllocator {
    start: u64,
    pages: u64,
    /// Free ranges as (first page index, page count), sorted, coalesced.
    free: alloc::vec::Vec<(u64, u64)>,
}

impl VaAllocator {
    /// Manages `pages` pages from `start`.
    pub fn new(start: u64, pages: u64) -> Self {
        VaAllocator {
            start,
            pages,
            free: alloc::vec![(0, pages)],
        }
    }

    /// Reserves `n` consecutive pages; returns their address.
    pub fn alloc(&mut self, n: u64) -> Result<u64, MemError> {
        if n == 0 {
            return Err(MemError::OutOfAddressSpace);
        }
        let slot = self
            .free
            .iter()
            .position(|&(_, len)| len >= n)
            .ok_or(MemError::OutOfAddressSpace)?;
        let (first, len) = self.free[slot];
        if len == n {
            self.free.remove(slot);
        } else {
            self.free[slot] = (first + n, len - n);
        }
        Ok(self.start + first * crate::abi::PAGE_SIZE as u64)
    }

    /// Returns `n` pages at `va`. Returning a range that overlaps a free
    /// one is an error.
    pub fn free(&mut self, va: u64, n: u64) -> Result<(), MemError> {
        let off = va.checked_sub(self.start).ok_or(MemError::BadAddress(va))?;
        if off % crate::abi::PAGE_SIZE as u64 != 0 || n == 0 {
            return Err(MemError::BadAddress(va));
        }
        let first = off / crate::abi::PAGE_SIZE as u64;
        if first.checked_add(n).is_none_or(|end| end > self.pages) {
            return Err(MemError::BadAddress(va));
        }
        let pos = self.free.partition_point(|&(f, _)| f < first);
        let overlaps_prev = pos > 0 && self.free[pos - 1].0 + self.free[pos - 1].1 > first;
        let overlaps_next = pos < self.free.len() && first + n > self.free[pos].0;
        if overlaps_prev || overlaps_next {
            return Err(MemError::DoubleFree(va));
        }
        self.free.insert(pos, (first, n));
        // Coalesce with the neighbours.
        if pos + 1 < self.free.len() && self.free[pos].0 + self.free[pos].1 == self.free[pos + 1].0
        {
            self.free[pos].1 += self.free[pos + 1].1;
            self.free.remove(pos + 1);
        }
        if pos > 0 && self.free[pos - 1].0 + self.free[pos - 1].1 == self.free[pos].0 {
            self.free[pos - 1].1 += self.free[pos].1;
            self.free.remove(pos);
        }
        Ok(())
    }

    /// Pages currently free.
    pub fn free_pages(&self) -> u64 {
        self.free.iter().map(|&(_, n)| n).sum()
    }
}

/// Memory figures, for tests and leak checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemStats {
    /// Pages of the domain (`start_info.nr_pages`).
    pub nr_pages: u64,
    /// Frames the frame allocator manages.
    pub managed_frames: u64,
    /// Frames currently free.
    pub free_frames: u64,
    /// Heap size in bytes.
    pub heap_size: usize,
    /// Heap bytes free.
    pub heap_free: usize,
    /// Free pages of the foreign-mapping address range.
    pub free_map_pages: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn va_ranges_are_reused_and_coalesced() {
        let mut v = VaAllocator::new(MAP_AREA_START, 16);
        let a = v.alloc(4).unwrap();
        let b = v.alloc(4).unwrap();
        let c = v.alloc(8).unwrap();
        assert_eq!(a, MAP_AREA_START);
        assert_eq!(b, MAP_AREA_START + 4 * 4096);
        assert_eq!(c, MAP_AREA_START + 8 * 4096);
        assert_eq!(v.alloc(1), Err(MemError::OutOfAddressSpace));
        v.free(b, 4).unwrap();
        v.free(a, 4).unwrap();
        assert_eq!(v.alloc(8).unwrap(), a, "two freed neighbours coalesce");
        v.free(c, 8).unwrap();
        assert_eq!(v.free(c, 8), Err(MemError::DoubleFree(c)));
        assert_eq!(v.free(c + 4096, 1), Err(MemError::DoubleFree(c + 4096)));
        assert_eq!(
            v.free(MAP_AREA_START - 4096, 1),
            Err(MemError::BadAddress(MAP_AREA_START - 4096))
        );
        assert_eq!(
            v.free(MAP_AREA_START + 16 * 4096, 1),
            Err(MemError::BadAddress(MAP_AREA_START + 16 * 4096))
        );
        assert_eq!(v.free_pages(), 8);
    }
}
