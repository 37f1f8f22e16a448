//! The page-frame allocator: a bitmap over the pfns Xen gave us beyond
//! the boot mapping.
//!
//! Pure bookkeeping (no mapping, no hypercalls), so it runs on the host.
//! Allocation is first-fit from the lowest pfn. Boot relies on that:
//! while the direct map is being extended, the lowest free frames are the
//! ones already mapped by Xen's bootstrap (see `mm::init`).

use crate::types::Pfn;

/// A frame-allocator failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// No free frame (or no free run of the requested length).
    OutOfFrames,
    /// The pfn is outside the managed range.
    OutOfRange(Pfn),
    /// The pfn was already free.
    DoubleFree(Pfn),
}

/// A bitmap frame allocator; a set bit means "free".
#[derive(Debug)]
pub struct FrameAllocator<'a> {
    bits: &'a mut [u64],
    base: u64,
    count: u64,
    free: u64,
    /// Index of the lowest word that may hold a free bit.
    hint: usize,
}

impl<'a> FrameAllocator<'a> {
    /// Words of bitmap needed to manage `count` frames.
    pub const fn words_for(count: u64) -> usize {
        count.div_ceil(64) as usize
    }

    /// Manages `count` frames starting at `base`, all free. `bits` must
    /// hold at least [`words_for`](Self::words_for)`(count)` words.
    pub fn new(bits: &'a mut [u64], base: Pfn, count: u64) -> Option<Self> {
        if bits.len() < Self::words_for(count) {
            return None;
        }
        bits.fill(0);
        for i in 0..count {
            bits[(i / 64) as usize] |= 1 << (i % 64);
        }
        Some(FrameAllocator {
            bits,
            base: base.0,
            count,
            free: count,
            hint: 0,
        })
    }

    /// Number of free frames.
    pub fn free_count(&self) -> u64 {
        self.free
    }

    /// Number of managed frames.
    pub fn total(&self) -> u64 {
        self.count
    }

    fn index(&self, pfn: Pfn) -> Result<u64, FrameError> {
        match pfn.0.checked_sub(self.base) {
            Some(i) if i < self.count => Ok(i),
            _ => Err(FrameError::OutOfRange(pfn)),
        }
    }

    fn is_free(&self, i: u64) -> bool {
        self.bits[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, i: u64, free: bool) {
        let w = &mut self.bits[(i / 64) as usize];
        if free {
            *w |= 1 << (i % 64);
        } else {
            *w &= !(1 << (i % 64));
        }
    }

    /// Allocates the lowest free frame.
    pub fn alloc(&mut self) -> Result<Pfn, FrameError> {
        for w in self.hint..self.bits.len() {
            if self.bits[w] != 0 {
                self.hint = w;
                let i = w as u64 * 64 + self.bits[w].trailing_zeros() as u64;
                self.set(i, false);
                self.free -= 1;
                return Ok(Pfn(self.base + i));
            }
        }
        self.hint = self.bits.len();
        Err(FrameError::OutOfFrames)
    }

    /// Allocates `n` consecutive frames (first fit) and returns the first.
    pub fn alloc_contiguous(&mut self, n: u64) -> Result<Pfn, FrameError> {
        if n == 0 || n > self.free {
            return Err(FrameError::OutOfFrames);
        }
        let mut run = 0;
        let mut i = self.hint as u64 * 64;
        while i < self.count {
            if self.is_free(i) {
                run += 1;
                if run == n {
                    let first = i + 1 - n;
                    for j in first..=i {
                        self.set(j, false);
                    }
                    self.free -= n;
                    return Ok(Pfn(self.base + first));
                }
            } else {
                run = 0;
            }
            i += 1;
        }
        Err(FrameError::OutOfFrames)
    }

    /// Marks one specific frame as used (a frame the boot layout owns).
    pub fn reserve(&mut self, pfn: Pfn) -> Result<(), FrameError> {
        let i = self.index(pfn)?;
        if !self.is_free(i) {
            return Err(FrameError::OutOfFrames);
        }
        self.set(i, false);
        self.free -= 1;
        Ok(())
    }

    /// Returns a frame. Freeing a free frame is an error, not a no-op:
    /// it means two owners believed they held the page.
    pub fn free(&mut self, pfn: Pfn) -> Result<(), FrameError> {
        let i = self.index(pfn)?;
        if self.is_free(i) {
            return Err(FrameError::DoubleFree(pfn));
        }
        self.set(i, true);
        self.free += 1;
        self.hint = self.hint.min((i / 64) as usize);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_alloc(count: u64, f: impl FnOnce(&mut FrameAllocator<'_>)) {
        let mut bits = vec![0u64; FrameAllocator::words_for(count)];
        let mut a = FrameAllocator::new(&mut bits, Pfn(1000), count).unwrap();
        f(&mut a)
    }

    #[test]
    fn allocates_lowest_first_and_reuses_freed_frames() {
        with_alloc(130, |a| {
            assert_eq!(a.alloc(), Ok(Pfn(1000)));
            assert_eq!(a.alloc(), Ok(Pfn(1001)));
            assert_eq!(a.alloc(), Ok(Pfn(1002)));
            a.free(Pfn(1001)).unwrap();
            assert_eq!(a.alloc(), Ok(Pfn(1001)));
            assert_eq!(a.free_count(), 127);
        });
    }

    #[test]
    fn exhaustion_is_an_error_and_every_frame_is_handed_out_once() {
        with_alloc(130, |a| {
            let mut seen = std::collections::HashSet::new();
            for _ in 0..130 {
                let p = a.alloc().unwrap();
                assert!(p.0 >= 1000 && p.0 < 1130);
                assert!(seen.insert(p), "{p:?} handed out twice");
            }
            assert_eq!(a.alloc(), Err(FrameError::OutOfFrames));
            assert_eq!(a.free_count(), 0);
        });
    }

    #[test]
    fn double_free_and_foreign_frames_are_detected() {
        with_alloc(10, |a| {
            let p = a.alloc().unwrap();
            a.free(p).unwrap();
            assert_eq!(a.free(p), Err(FrameError::DoubleFree(p)));
            assert_eq!(a.free(Pfn(999)), Err(FrameError::OutOfRange(Pfn(999))));
            assert_eq!(a.free(Pfn(1010)), Err(FrameError::OutOfRange(Pfn(1010))));
            assert_eq!(a.free_count(), 10);
        });
    }

    #[test]
    fn contiguous_runs_skip_holes() {
        with_alloc(200, |a| {
            a.reserve(Pfn(1003)).unwrap();
            a.reserve(Pfn(1070)).unwrap();
            assert_eq!(a.alloc_contiguous(3), Ok(Pfn(1000)));
            assert_eq!(a.alloc_contiguous(66), Ok(Pfn(1004)));
            assert_eq!(a.alloc_contiguous(100), Ok(Pfn(1071)));
            assert_eq!(a.alloc_contiguous(30), Err(FrameError::OutOfFrames));
            assert_eq!(a.alloc_contiguous(29), Ok(Pfn(1171)));
            assert_eq!(a.free_count(), 0);
            assert_eq!(a.alloc_contiguous(0), Err(FrameError::OutOfFrames));
        });
    }

    #[test]
    fn too_small_a_bitmap_is_refused() {
        let mut bits = [0u64; 1];
        assert!(FrameAllocator::new(&mut bits, Pfn(0), 65).is_none());
    }
}
