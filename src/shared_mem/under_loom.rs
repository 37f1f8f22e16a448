//! `SharedMem` under `cfg(loom)` (`cargo xtask loom`): every access goes
//! to a loom atomic instead of the memory. Only the loom runs compile this
//! file; `cargo xtask mutants` measures `shared_mem.rs` alone, whose host
//! tests cannot reach it.

#![allow(unsafe_code)]

use core::sync::atomic::Ordering;

use super::{OutOfBounds, SharedMem};

/// Under `cfg(loom)` (`cargo xtask loom`), every access goes to a loom
/// atomic instead of the memory, so loom explores the interleavings and
/// weak-memory outcomes of the library's own protocol code with a peer
/// thread. Each offset gets one atomic of the width first used there
/// (the protocols use one width per field); bulk copies go byte by byte
/// through relaxed `u8` atomics, like the volatile copies they stand for.
/// The atomics live in a per-thread registry keyed by address, cleared by
/// [`loom_model`] at the start of each execution.
pub(super) mod loom_cells {
    extern crate std;
    use loom::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8};
    use std::boxed::Box;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    #[derive(Debug)]
    pub(crate) enum Cell {
        U8(AtomicU8),
        U16(AtomicU16),
        U32(AtomicU32),
        U64(AtomicU64),
    }

    impl Cell {
        pub(crate) fn u8(&self) -> &AtomicU8 {
            match self {
                Cell::U8(a) => a,
                other => panic!("loom model: u8 access to {other:?}"),
            }
        }
        pub(crate) fn u16(&self) -> &AtomicU16 {
            match self {
                Cell::U16(a) => a,
                other => panic!("loom model: u16 access to {other:?}"),
            }
        }
        pub(crate) fn u32(&self) -> &AtomicU32 {
            match self {
                Cell::U32(a) => a,
                other => panic!("loom model: u32 access to {other:?}"),
            }
        }
        pub(crate) fn u64(&self) -> &AtomicU64 {
            match self {
                Cell::U64(a) => a,
                other => panic!("loom model: u64 access to {other:?}"),
            }
        }
    }

    std::thread_local! {
        static CELLS: RefCell<BTreeMap<usize, (usize, &'static Cell)>> = const { RefCell::new(BTreeMap::new()) };
    }

    /// The atomic of `width` bytes at address `addr`, made (zero) on
    /// first use. A different width, or an overlap with another field,
    /// is a model error.
    pub(super) fn cell(addr: usize, width: usize) -> &'static Cell {
        CELLS.with(|c| {
            let mut cells = c.borrow_mut();
            if let Some(&(w, cell)) = cells.get(&addr) {
                assert_eq!(w, width, "loom model: mixed-width access at {addr:#x}");
                return cell;
            }
            let overlaps = cells
                .range(addr.saturating_sub(7)..addr + width)
                .any(|(&a, &(w, _))| a + w > addr);
            assert!(!overlaps, "loom model: overlapping access at {addr:#x}");
            let cell: &'static Cell = Box::leak(Box::new(match width {
                1 => Cell::U8(AtomicU8::new(0)),
                2 => Cell::U16(AtomicU16::new(0)),
                4 => Cell::U32(AtomicU32::new(0)),
                _ => Cell::U64(AtomicU64::new(0)),
            }));
            cells.insert(addr, (width, cell));
            cell
        })
    }

    pub(super) fn clear() {
        CELLS.with(|c| c.borrow_mut().clear());
    }
}

/// `loom::model` with a fresh set of shared-memory atomics for each
/// execution. The fakes scan tables and zero pages, so an execution has
/// many more loads and stores than loom's default branch budget allows;
/// `LOOM_MAX_PREEMPTIONS` (default 3 here) bounds the exploration.
pub fn loom_model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut b = loom::model::Builder::new();
    b.max_branches = 200_000;
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(move || {
        loom_cells::clear();
        f()
    });
}

impl SharedMem<'_> {
    /// Makes the loom atomic of `width` bytes at `offset` now, in this
    /// thread. Cells are otherwise made on first use, and loom counts a
    /// cell made by one thread and used by another without ordering
    /// between them as a race: tests prime the fields both sides touch
    /// before starting the peer.
    pub fn loom_prime(&self, offset: usize, width: usize) {
        if let Ok(c) = self.loom(offset, width) {
            match width {
                1 => drop(c.u8().load(Ordering::Relaxed)),
                2 => drop(c.u16().load(Ordering::Relaxed)),
                4 => drop(c.u32().load(Ordering::Relaxed)),
                _ => drop(c.u64().load(Ordering::Relaxed)),
            }
        }
    }
}

impl SharedMem<'_> {
    pub(super) fn loom(
        &self,
        offset: usize,
        width: usize,
    ) -> Result<&'static loom_cells::Cell, OutOfBounds> {
        self.check(offset, width, width)?;
        let addr = self.base.as_ptr() as usize + offset;
        if !addr.is_multiple_of(width) {
            return Err(OutOfBounds { offset, len: width });
        }
        Ok(loom_cells::cell(addr, width))
    }

    pub(super) fn loom_read(&self, offset: usize, dst: &mut [u8]) -> Result<(), OutOfBounds> {
        self.check(offset, dst.len(), 1)?;
        for (i, d) in dst.iter_mut().enumerate() {
            *d = self.loom(offset + i, 1)?.u8().load(Ordering::Relaxed);
        }
        Ok(())
    }

    pub(super) fn loom_write(&self, offset: usize, src: &[u8]) -> Result<(), OutOfBounds> {
        self.check(offset, src.len(), 1)?;
        for (i, s) in src.iter().enumerate() {
            self.loom(offset + i, 1)?.u8().store(*s, Ordering::Relaxed);
        }
        Ok(())
    }

    pub(super) fn loom_fill(
        &self,
        offset: usize,
        len: usize,
        value: u8,
    ) -> Result<(), OutOfBounds> {
        self.check(offset, len, 1)?;
        for i in 0..len {
            self.loom(offset + i, 1)?
                .u8()
                .store(value, Ordering::Relaxed);
        }
        Ok(())
    }
}
