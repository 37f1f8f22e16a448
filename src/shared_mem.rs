//! Untyped access to memory another domain can write.
//!
//! A page shared with a peer (a grant, the console or xenstore ring) can
//! change under us at any moment, so it must never be behind a Rust
//! reference (`&T`/`&mut T` promise the compiler it cannot). [`SharedMem`]
//! is the one door to such memory: bounds-checked offsets, single
//! volatile or atomic accesses, and copies in and out. A racing peer may
//! give us garbage values, never undefined behaviour. This follows
//! vm-memory's `volatile_memory` and Asterinas' `ostd::mm::io`.

// The one door to memory a peer can write: raw pointers, bounds-checked.
#![allow(unsafe_code)]
// Under loom the memory paths below each hook are not reached.
#![cfg_attr(loom, allow(unreachable_code, unused_variables))]

use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// An offset or length outside the shared region, or a misaligned atomic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfBounds {
    /// The offset asked for.
    pub offset: usize,
    /// The length asked for.
    pub len: usize,
}

/// A view of `len` bytes of memory that a peer domain may write concurrently.
///
/// The view borrows what it views: `'a` is the lifetime of the owner of
/// the memory (a [`Page`](crate::mm), a grant owner, a mapping), so a view
/// cannot outlive the page it shows, as with Asterinas' `VmReader<'a>` and
/// vm-memory's `VolatileSlice<'a>`. Copying a view is like copying a
/// shared reference.
#[derive(Debug, Clone, Copy)]
pub struct SharedMem<'a> {
    base: NonNull<u8>,
    len: usize,
    _owner: PhantomData<&'a [u8]>,
}

// SAFETY: SharedMem only ever performs volatile/atomic accesses, which are
// sound under concurrent access from any thread (or domain).
unsafe impl Send for SharedMem<'_> {}
// SAFETY: as above.
unsafe impl Sync for SharedMem<'_> {}

impl<'a> SharedMem<'a> {
    /// Wraps `len` bytes at `base` for the lifetime `'a`.
    ///
    /// # Safety
    /// `base..base+len` must stay mapped, readable and writable (or only
    /// readable, if no write method is ever called) for all of `'a`, and
    /// must be accessed by this program only through `SharedMem` views
    /// (never through a Rust reference) during `'a`. No alignment is
    /// required: the atomic accessors check the absolute address.
    pub const unsafe fn new(base: NonNull<u8>, len: usize) -> Self {
        SharedMem {
            base,
            len,
            _owner: PhantomData,
        }
    }

    /// A view of no bytes: every access is out of bounds.
    pub const fn empty() -> SharedMem<'static> {
        SharedMem {
            base: NonNull::dangling(),
            len: 0,
            _owner: PhantomData,
        }
    }

    /// Allocates a zeroed, page-aligned region that lives for the rest of
    /// the program: the host tests' stand-in for a shared page.
    #[cfg(any(test, feature = "host-fakes"))]
    pub fn leak_zeroed(len: usize) -> SharedMem<'static> {
        extern crate std;
        let layout = std::alloc::Layout::from_size_align(len.max(1), 4096).expect("layout");
        // SAFETY: the layout has non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let base = NonNull::new(ptr).expect("allocation failed");
        // SAFETY: the allocation is leaked, so it stays valid forever.
        unsafe { SharedMem::new(base, len) }
    }

    /// Length of the region in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The base address (for hypercalls that take one).
    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// A sub-view of `len` bytes at `offset`, borrowing the same owner.
    pub fn slice(&self, offset: usize, len: usize) -> Result<SharedMem<'a>, OutOfBounds> {
        self.check(offset, len, 1)?;
        // Any byte offset is allowed: the atomic accessors check the
        // alignment of the absolute address themselves.
        // SAFETY: `offset + len <= self.len` (checked above): the new base
        // stays inside the region the constructor's contract covers for 'a.
        let base = unsafe { self.base.add(offset) };
        Ok(SharedMem {
            base,
            len,
            _owner: PhantomData,
        })
    }

    /// A sub-view of one record of `len` bytes at `offset` (`len` a power
    /// of two), whose absolute address is a multiple of `len`, as a C
    /// array of such records is (a grant entry, a ring slot). The atomic
    /// accessors still check alignment, but against this one check the
    /// compiler folds theirs away.
    #[inline(always)]
    pub fn record(&self, offset: usize, len: usize) -> Result<SharedMem<'a>, OutOfBounds> {
        let r = self.slice(offset, len)?;
        if !len.is_power_of_two() || !(r.base.as_ptr() as usize).is_multiple_of(len) {
            return Err(OutOfBounds { offset, len });
        }
        Ok(r)
    }

    fn check(&self, offset: usize, len: usize, align: usize) -> Result<(), OutOfBounds> {
        let end = offset.checked_add(len);
        if end.is_none_or(|e| e > self.len) || !offset.is_multiple_of(align) {
            return Err(OutOfBounds { offset, len });
        }
        Ok(())
    }

    fn atomic<T>(&self, offset: usize) -> Result<*const T, OutOfBounds> {
        self.check(
            offset,
            core::mem::size_of::<T>(),
            core::mem::align_of::<T>(),
        )?;
        // `base` has no alignment promise (a slice may start anywhere):
        // check the absolute address.
        if !(self.base.as_ptr() as usize)
            .wrapping_add(offset)
            .is_multiple_of(core::mem::align_of::<T>())
        {
            return Err(OutOfBounds {
                offset,
                len: core::mem::size_of::<T>(),
            });
        }
        // SAFETY: in bounds, checked above.
        Ok(unsafe { self.base.as_ptr().add(offset) }.cast::<T>())
    }

    /// Atomically loads the `u32` at `offset`.
    pub fn load_u32(&self, offset: usize, order: Ordering) -> Result<u32, OutOfBounds> {
        #[cfg(loom)]
        return self.loom(offset, 4).map(|c| c.u32().load(order));
        let p = self.atomic::<AtomicU32>(offset)?;
        // SAFETY: p is in bounds and aligned (checked); the memory is valid
        // (constructor contract) and only accessed atomically or volatilely.
        Ok(unsafe { (*p).load(order) })
    }

    /// Atomically stores `v` at `offset`.
    pub fn store_u32(&self, offset: usize, v: u32, order: Ordering) -> Result<(), OutOfBounds> {
        #[cfg(loom)]
        return self.loom(offset, 4).map(|c| c.u32().store(v, order));
        let p = self.atomic::<AtomicU32>(offset)?;
        // SAFETY: as in load_u32.
        unsafe { (*p).store(v, order) };
        Ok(())
    }

    /// Atomically loads the `u16` at `offset`.
    pub fn load_u16(&self, offset: usize, order: Ordering) -> Result<u16, OutOfBounds> {
        #[cfg(loom)]
        return self.loom(offset, 2).map(|c| c.u16().load(order));
        let p = self.atomic::<AtomicU16>(offset)?;
        // SAFETY: as in load_u32.
        Ok(unsafe { (*p).load(order) })
    }

    /// Atomically stores `v` at `offset`.
    pub fn store_u16(&self, offset: usize, v: u16, order: Ordering) -> Result<(), OutOfBounds> {
        #[cfg(loom)]
        return self.loom(offset, 2).map(|c| c.u16().store(v, order));
        let p = self.atomic::<AtomicU16>(offset)?;
        // SAFETY: as in load_u32.
        unsafe { (*p).store(v, order) };
        Ok(())
    }

    /// Compare-and-swap on the `u16` at `offset`; returns the value seen.
    pub fn cas_u16(
        &self,
        offset: usize,
        current: u16,
        new: u16,
    ) -> Result<Result<u16, u16>, OutOfBounds> {
        #[cfg(loom)]
        return self.loom(offset, 2).map(|c| {
            c.u16()
                .compare_exchange(current, new, Ordering::SeqCst, Ordering::SeqCst)
        });
        let p = self.atomic::<AtomicU16>(offset)?;
        // SAFETY: as in load_u32.
        Ok(unsafe { (*p).compare_exchange(current, new, Ordering::SeqCst, Ordering::SeqCst) })
    }

    /// Atomically loads the byte at `offset`.
    pub fn load_u8(&self, offset: usize, order: Ordering) -> Result<u8, OutOfBounds> {
        #[cfg(loom)]
        return self.loom(offset, 1).map(|c| c.u8().load(order));
        let p = self.atomic::<AtomicU8>(offset)?;
        // SAFETY: as in load_u32.
        Ok(unsafe { (*p).load(order) })
    }

    /// Atomically stores the byte `v` at `offset`.
    pub fn store_u8(&self, offset: usize, v: u8, order: Ordering) -> Result<(), OutOfBounds> {
        #[cfg(loom)]
        return self.loom(offset, 1).map(|c| c.u8().store(v, order));
        let p = self.atomic::<AtomicU8>(offset)?;
        // SAFETY: as in load_u32.
        unsafe { (*p).store(v, order) };
        Ok(())
    }

    /// Atomically loads the `u64` at `offset`.
    pub fn load_u64(&self, offset: usize, order: Ordering) -> Result<u64, OutOfBounds> {
        #[cfg(loom)]
        return self.loom(offset, 8).map(|c| c.u64().load(order));
        let p = self.atomic::<AtomicU64>(offset)?;
        // SAFETY: as in load_u32.
        Ok(unsafe { (*p).load(order) })
    }

    /// Atomically stores `v` at `offset`.
    pub fn store_u64(&self, offset: usize, v: u64, order: Ordering) -> Result<(), OutOfBounds> {
        #[cfg(loom)]
        return self.loom(offset, 8).map(|c| c.u64().store(v, order));
        let p = self.atomic::<AtomicU64>(offset)?;
        // SAFETY: as in load_u32.
        unsafe { (*p).store(v, order) };
        Ok(())
    }

    /// Atomically replaces the `u64` at `offset` (`xchg`); returns the old value.
    pub fn swap_u64(&self, offset: usize, v: u64) -> Result<u64, OutOfBounds> {
        #[cfg(loom)]
        return self
            .loom(offset, 8)
            .map(|c| c.u64().swap(v, Ordering::SeqCst));
        let p = self.atomic::<AtomicU64>(offset)?;
        // SAFETY: as in load_u32.
        Ok(unsafe { (*p).swap(v, Ordering::SeqCst) })
    }

    /// Atomic `lock and` on the `u64` at `offset`; returns the old value.
    pub fn fetch_and_u64(&self, offset: usize, v: u64) -> Result<u64, OutOfBounds> {
        #[cfg(loom)]
        return self
            .loom(offset, 8)
            .map(|c| c.u64().fetch_and(v, Ordering::SeqCst));
        let p = self.atomic::<AtomicU64>(offset)?;
        // SAFETY: as in load_u32.
        Ok(unsafe { (*p).fetch_and(v, Ordering::SeqCst) })
    }

    /// Atomic `lock or` on the `u64` at `offset`; returns the old value.
    pub fn fetch_or_u64(&self, offset: usize, v: u64) -> Result<u64, OutOfBounds> {
        #[cfg(loom)]
        return self
            .loom(offset, 8)
            .map(|c| c.u64().fetch_or(v, Ordering::SeqCst));
        let p = self.atomic::<AtomicU64>(offset)?;
        // SAFETY: as in load_u32.
        Ok(unsafe { (*p).fetch_or(v, Ordering::SeqCst) })
    }

    /// Atomically replaces the byte at `offset`; returns the old value.
    pub fn swap_u8(&self, offset: usize, v: u8) -> Result<u8, OutOfBounds> {
        #[cfg(loom)]
        return self
            .loom(offset, 1)
            .map(|c| c.u8().swap(v, Ordering::SeqCst));
        let p = self.atomic::<AtomicU8>(offset)?;
        // SAFETY: as in load_u32.
        Ok(unsafe { (*p).swap(v, Ordering::SeqCst) })
    }

    /// Atomically ORs `v` into the byte at `offset`; returns the old value.
    pub fn fetch_or_u8(&self, offset: usize, v: u8) -> Result<u8, OutOfBounds> {
        #[cfg(loom)]
        return self
            .loom(offset, 1)
            .map(|c| c.u8().fetch_or(v, Ordering::SeqCst));
        let p = self.atomic::<AtomicU8>(offset)?;
        // SAFETY: as in load_u32.
        Ok(unsafe { (*p).fetch_or(v, Ordering::SeqCst) })
    }

    /// Atomically ANDs `v` into the byte at `offset`; returns the old value.
    pub fn fetch_and_u8(&self, offset: usize, v: u8) -> Result<u8, OutOfBounds> {
        #[cfg(loom)]
        return self
            .loom(offset, 1)
            .map(|c| c.u8().fetch_and(v, Ordering::SeqCst));
        let p = self.atomic::<AtomicU8>(offset)?;
        // SAFETY: as in load_u32.
        Ok(unsafe { (*p).fetch_and(v, Ordering::SeqCst) })
    }

    /// Copies `dst.len()` bytes from `offset` out of the shared region.
    pub fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), OutOfBounds> {
        #[cfg(loom)]
        return self.loom_read(offset, dst);
        self.check(offset, dst.len(), 1)?;
        #[cfg(not(miri))]
        // SAFETY: in bounds (checked), mapped for 'a (constructor); `dst` is
        // our exclusive buffer, so no overlap; a racing peer leaves the bytes
        // unspecified, never UB (the asm is opaque: `arch::x86_64::copy`).
        unsafe {
            crate::arch::x86_64::copy::copy_bytes(
                dst.as_mut_ptr(),
                self.base.as_ptr().add(offset),
                dst.len(),
            )
        };
        #[cfg(miri)]
        self.read_volatile(offset, dst);
        Ok(())
    }

    /// Copies `src` into the shared region at `offset`.
    pub fn write(&self, offset: usize, src: &[u8]) -> Result<(), OutOfBounds> {
        #[cfg(loom)]
        return self.loom_write(offset, src);
        self.check(offset, src.len(), 1)?;
        #[cfg(not(miri))]
        // SAFETY: in bounds (checked), writable for 'a (constructor); `src`
        // is a Rust slice, never peer memory, so no overlap; a racing peer
        // leaves the bytes unspecified, never UB (`arch::x86_64::copy`).
        unsafe {
            crate::arch::x86_64::copy::copy_bytes(
                self.base.as_ptr().add(offset),
                src.as_ptr(),
                src.len(),
            )
        };
        #[cfg(miri)]
        self.write_volatile(offset, src);
        Ok(())
    }

    /// Sets `len` bytes at `offset` to `value`.
    pub fn fill(&self, offset: usize, len: usize, value: u8) -> Result<(), OutOfBounds> {
        #[cfg(loom)]
        return self.loom_fill(offset, len, value);
        self.check(offset, len, 1)?;
        #[cfg(not(miri))]
        // SAFETY: in bounds (checked), mapped for 'a (constructor); a racing
        // peer leaves the bytes unspecified, never UB (the asm is opaque:
        // `arch::x86_64::copy`).
        unsafe {
            crate::arch::x86_64::copy::fill_bytes(self.base.as_ptr().add(offset), value, len)
        };
        #[cfg(miri)]
        self.fill_volatile(offset, len, value);
        Ok(())
    }
}

#[cfg(not(loom))]
use core::sync::atomic::fence;
#[cfg(loom)]
use loom::sync::atomic::fence;

/// `wmb()`: orders earlier stores before later stores (xen/include/public/io/ring.h usage).
#[inline]
pub fn wmb() {
    fence(Ordering::Release);
}

/// `rmb()`: orders earlier loads before later loads.
#[inline]
pub fn rmb() {
    fence(Ordering::Acquire);
}

/// `mb()`: a full barrier; orders stores before later loads too.
#[inline]
pub fn mb() {
    fence(Ordering::SeqCst);
}

#[cfg(loom)]
mod under_loom;
#[cfg(miri)]
mod under_miri;
#[cfg(loom)]
pub use under_loom::loom_model;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        let m = SharedMem::leak_zeroed(64);
        assert!(m.load_u32(60, Ordering::Relaxed).is_ok());
        assert_eq!(
            m.load_u32(62, Ordering::Relaxed),
            Err(OutOfBounds { offset: 62, len: 4 })
        );
        assert_eq!(
            m.load_u32(64, Ordering::Relaxed),
            Err(OutOfBounds { offset: 64, len: 4 })
        );
        assert_eq!(
            m.load_u32(usize::MAX - 1, Ordering::Relaxed)
                .unwrap_err()
                .offset,
            usize::MAX - 1
        );
        let mut buf = [0u8; 8];
        assert!(m.read(57, &mut buf).is_err());
        assert!(m.read(56, &mut buf).is_ok());
        assert!(m.write(usize::MAX, &[1]).is_err());
        assert!(m.slice(32, 33).is_err());
    }

    #[test]
    fn a_record_is_in_bounds_and_aligned_to_its_size() {
        let m = SharedMem::leak_zeroed(64);
        let r = m.record(56, 8).unwrap();
        assert_eq!(
            (r.as_ptr() as usize - m.as_ptr() as usize, r.len()),
            (56, 8)
        );
        assert_eq!(
            m.record(60, 8).unwrap_err(),
            OutOfBounds { offset: 60, len: 8 },
            "out of bounds"
        );
        assert_eq!(
            m.record(4, 8).unwrap_err(),
            OutOfBounds { offset: 4, len: 8 },
            "misaligned"
        );
        assert_eq!(
            m.record(0, 12).unwrap_err(),
            OutOfBounds { offset: 0, len: 12 },
            "not a power of two"
        );
        // The alignment is the absolute address's, not the offset's.
        let shifted = m.slice(4, 60).unwrap();
        assert!(shifted.record(0, 8).is_err());
        assert!(shifted.record(4, 8).is_ok());
        assert!(m.record(0, 0).is_err(), "no empty record");
    }

    #[test]
    fn lengths_addresses_and_the_empty_view() {
        let m = SharedMem::leak_zeroed(64);
        assert_eq!(m.len(), 64);
        assert!(!m.is_empty());
        let s = m.slice(8, 0).unwrap();
        assert!(s.is_empty());
        assert_eq!(s.as_ptr() as usize, m.as_ptr() as usize + 8);
        assert_eq!(m.as_ptr() as usize % 4096, 0, "leak_zeroed is page-aligned");
        let e = SharedMem::empty();
        assert!(e.is_empty());
        assert_eq!(
            e.load_u8(0, Ordering::Relaxed),
            Err(OutOfBounds { offset: 0, len: 1 })
        );
        assert!(e.write(0, &[1]).is_err());
        assert!(e.read(0, &mut []).is_ok());
    }

    #[test]
    fn copies_at_every_alignment_and_length() {
        let m = SharedMem::leak_zeroed(256);
        // Miri runs the volatile loop (under_miri.rs), not the asm whose
        // split points the full ranges are for: a smaller grid suffices.
        // Lengths on both sides of the short-copy loop's limit
        // (arch::x86_64::copy::SMALL_COPY, 128) as well.
        let (offs, lens): (usize, Vec<usize>) = if cfg!(miri) {
            (9, (0..19).collect())
        } else {
            (17, (0..40).chain(120..137).chain(200..239).collect())
        };
        for off in 0..offs {
            for &len in &lens {
                let src: Vec<u8> = (0..len).map(|i| (i * 31 + off * 7 + 1) as u8).collect();
                m.fill(0, 256, 0).unwrap();
                m.write(off, &src).unwrap();
                let mut back = vec![0u8; len];
                m.read(off, &mut back).unwrap();
                assert_eq!(back, src, "offset {off} length {len}");
                // Nothing outside the range was touched.
                let mut all = [0u8; 256];
                m.read(0, &mut all).unwrap();
                assert!(all[..off].iter().all(|&b| b == 0));
                assert!(all[off + len..].iter().all(|&b| b == 0));
            }
        }
    }

    #[test]
    fn fills_at_every_alignment_and_length() {
        let m = SharedMem::leak_zeroed(256);
        let (offs, lens) = if cfg!(miri) { (9, 19) } else { (17, 40) };
        for off in 0..offs {
            for len in 0..lens {
                m.fill(0, 256, 0x55).unwrap();
                m.fill(off, len, 0xa7).unwrap();
                let mut all = [0u8; 256];
                m.read(0, &mut all).unwrap();
                assert!(
                    all[off..off + len].iter().all(|&b| b == 0xa7),
                    "offset {off} length {len}"
                );
                // Nothing outside the range was touched.
                assert!(
                    all[..off].iter().all(|&b| b == 0x55),
                    "offset {off} length {len}"
                );
                assert!(
                    all[off + len..].iter().all(|&b| b == 0x55),
                    "offset {off} length {len}"
                );
            }
        }
        assert!(m.fill(250, 7, 0).is_err(), "past the end");
    }

    #[test]
    fn every_accessor_touches_its_own_width_and_returns_the_old_value() {
        let m = SharedMem::leak_zeroed(4096);
        // Each width at its own offset, values with no byte 0 or 1, so a
        // constant answer or a write of the wrong width shows.
        m.store_u8(1, 0x5a, Ordering::Relaxed).unwrap();
        m.store_u16(2, 0xa55a, Ordering::Relaxed).unwrap();
        m.store_u32(4, 0x1234_5678, Ordering::Relaxed).unwrap();
        m.store_u64(8, 0x0123_4567_89ab_cdef, Ordering::Relaxed)
            .unwrap();
        assert_eq!(m.load_u8(1, Ordering::Relaxed), Ok(0x5a));
        assert_eq!(m.load_u16(2, Ordering::Relaxed), Ok(0xa55a));
        assert_eq!(m.load_u32(4, Ordering::Relaxed), Ok(0x1234_5678));
        assert_eq!(m.load_u64(8, Ordering::Relaxed), Ok(0x0123_4567_89ab_cdef));
        let mut bytes = [0u8; 16];
        m.read(0, &mut bytes).unwrap();
        assert_eq!(
            bytes[..4],
            [0, 0x5a, 0x5a, 0xa5],
            "little-endian, nothing spilled into byte 0"
        );
        // Read-modify-writes return what was there and leave the result.
        assert_eq!(m.swap_u8(1, 0x33), Ok(0x5a));
        assert_eq!(m.fetch_or_u8(1, 0x0c), Ok(0x33));
        assert_eq!(m.fetch_and_u8(1, 0xf0), Ok(0x3f));
        assert_eq!(m.load_u8(1, Ordering::Relaxed), Ok(0x30));
        assert_eq!(m.swap_u64(8, 0x2222), Ok(0x0123_4567_89ab_cdef));
        assert_eq!(m.fetch_or_u64(8, 0x4400), Ok(0x2222));
        assert_eq!(m.fetch_and_u64(8, 0x0f0f), Ok(0x6622));
        assert_eq!(m.load_u64(8, Ordering::Relaxed), Ok(0x0602));
        assert_eq!(m.cas_u16(2, 0xa55a, 0x7777), Ok(Ok(0xa55a)));
        assert_eq!(m.cas_u16(2, 0xa55a, 0x8888), Ok(Err(0x7777)));
        // Alignment is checked on the absolute address, not the offset: a
        // view starting at an odd byte has no aligned u16 at offset 0.
        let odd = m.slice(1, 16).unwrap();
        assert!(odd.load_u16(0, Ordering::Relaxed).is_err());
        assert_eq!(odd.load_u8(0, Ordering::Relaxed), Ok(0x30));
        assert_eq!(
            m.slice(2, 16).unwrap().load_u16(0, Ordering::Relaxed),
            Ok(0x7777)
        );
    }

    #[test]
    fn values_round_trip() {
        let m = SharedMem::leak_zeroed(4096);
        m.store_u32(8, 0xdead_beef, Ordering::Release).unwrap();
        assert_eq!(m.load_u32(8, Ordering::Acquire).unwrap(), 0xdead_beef);
        m.write(100, b"hello").unwrap();
        let mut out = [0u8; 5];
        m.read(100, &mut out).unwrap();
        assert_eq!(&out, b"hello");
        assert_eq!(m.cas_u16(200, 0, 7).unwrap(), Ok(0));
        assert_eq!(m.cas_u16(200, 0, 9).unwrap(), Err(7));
        m.store_u64(16, 0b1010, Ordering::Relaxed).unwrap();
        assert_eq!(m.fetch_or_u64(16, 1).unwrap(), 0b1010);
        assert_eq!(m.fetch_and_u64(16, !0b10).unwrap(), 0b1011);
        assert_eq!(m.swap_u64(16, 0).unwrap(), 0b1001);
        assert_eq!(m.load_u64(16, Ordering::Relaxed).unwrap(), 0);
        assert!(m.load_u64(12, Ordering::Relaxed).is_err(), "misaligned u64");
        assert_eq!(m.swap_u8(3, 1).unwrap(), 0);
        let s = m.slice(100, 5).unwrap();
        assert_eq!(s.load_u8(4, Ordering::Relaxed).unwrap(), b'o');
        m.fill(0, 4096, 0xaa).unwrap();
        assert_eq!(m.load_u8(4095, Ordering::Relaxed).unwrap(), 0xaa);
    }
}
