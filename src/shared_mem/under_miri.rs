//! `SharedMem`'s copies under Miri, which cannot run the `asm!` of
//! `arch::x86_64::copy`: the same bytes through single volatile accesses.
//! Only Miri compiles this file (`cargo xtask miri` runs it); `cargo xtask
//! mutants` measures `shared_mem.rs` alone.

#![allow(unsafe_code)]

use super::SharedMem;

impl SharedMem<'_> {
    /// The copy loop Miri runs (it cannot run `asm!`): byte-wise up to an
    /// 8-byte boundary of the shared side, then whole aligned words, then
    /// the tail, each a single volatile access.
    pub(super) fn read_volatile(&self, offset: usize, dst: &mut [u8]) {
        let base = self.base.as_ptr() as usize + offset;
        let head = ((8 - base % 8) % 8).min(dst.len());
        let words = (dst.len() - head) / 8;
        for (i, d) in dst[..head].iter_mut().enumerate() {
            // SAFETY: offset+i is in bounds (checked); a volatile byte read
            // of memory a peer may write is sound (it only yields a value).
            *d = unsafe { self.base.as_ptr().add(offset + i).read_volatile() };
        }
        for w in 0..words {
            let at = head + w * 8;
            // SAFETY: in bounds (checked) and 8-aligned (base + at is a
            // multiple of 8 by construction of `head`); volatile read.
            let v = unsafe { (self.base.as_ptr().add(offset + at) as *const u64).read_volatile() };
            dst[at..at + 8].copy_from_slice(&v.to_ne_bytes());
        }
        for (i, d) in dst.iter_mut().enumerate().skip(head + words * 8) {
            // SAFETY: as for the head bytes.
            *d = unsafe { self.base.as_ptr().add(offset + i).read_volatile() };
        }
    }

    /// `write`'s loop under Miri: the same shape as `read_volatile`.
    pub(super) fn write_volatile(&self, offset: usize, src: &[u8]) {
        let base = self.base.as_ptr() as usize + offset;
        let head = ((8 - base % 8) % 8).min(src.len());
        let words = (src.len() - head) / 8;
        for (i, s) in src[..head].iter().enumerate() {
            // SAFETY: offset+i is in bounds (checked); volatile byte write.
            unsafe { self.base.as_ptr().add(offset + i).write_volatile(*s) };
        }
        for w in 0..words {
            let at = head + w * 8;
            let mut b = [0u8; 8];
            b.copy_from_slice(&src[at..at + 8]);
            // SAFETY: in bounds (checked) and 8-aligned by construction of
            // `head`; volatile write.
            unsafe {
                (self.base.as_ptr().add(offset + at) as *mut u64)
                    .write_volatile(u64::from_ne_bytes(b))
            };
        }
        for (i, s) in src.iter().enumerate().skip(head + words * 8) {
            // SAFETY: as for the head bytes.
            unsafe { self.base.as_ptr().add(offset + i).write_volatile(*s) };
        }
    }

    /// `fill`'s loop under Miri: one volatile byte write each.
    pub(super) fn fill_volatile(&self, offset: usize, len: usize, value: u8) {
        for i in 0..len {
            // SAFETY: offset+i is in bounds (checked by `fill`); volatile byte write.
            unsafe { self.base.as_ptr().add(offset + i).write_volatile(value) };
        }
    }
}
