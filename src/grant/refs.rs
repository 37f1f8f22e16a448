//! The free list of grant references: never hands out the reserved
//! entries, allocates N references all or nothing, detects double frees.
//!
//! Allocation and free are O(1) and allocate no heap memory: the stack
//! of free references and the in-use bitmap are sized when the table
//! grows, the only time they change capacity.

use super::error::GrantError;
use crate::types::GrantRef;
use alloc::vec::Vec;

/// `GNTTAB_NR_RESERVED_ENTRIES` (public/grant_table.h, Xen's
/// docs): entries 0..8 belong to the toolstack (0 the console's ring, 1
/// xenstore's) and are never handed out.
#[doc(alias = "GNTTAB_NR_RESERVED_ENTRIES")]
pub const NR_RESERVED: u32 = 8;

/// The free list over references `NR_RESERVED..total`.
#[derive(Debug, Default)]
pub struct RefAllocator {
    /// Free references, most recently freed last (reused first: its
    /// entry is warm in the cache).
    free: Vec<u32>,
    /// One bit per reference, set while handed out.
    used: Vec<u64>,
    total: u32,
}

impl RefAllocator {
    /// An allocator over no references yet; call [`grow`](Self::grow).
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of references the table has (reserved ones included).
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Number of free references.
    pub fn free_count(&self) -> u32 {
        self.free.len() as u32
    }

    /// Number of references handed out.
    pub fn used_count(&self) -> u32 {
        self.total.saturating_sub(NR_RESERVED) - self.free_count()
    }

    /// Adds the references `total..new_total` (the table grew).
    pub fn grow(&mut self, new_total: u32) {
        if new_total <= self.total {
            return;
        }
        let first = self.total.max(NR_RESERVED);
        self.free.reserve_exact((new_total - first) as usize);
        // Push in reverse so that the lowest new reference pops first.
        self.free.extend((first..new_total).rev());
        self.used.resize((new_total as usize).div_ceil(64), 0);
        self.total = new_total;
    }

    fn bit(&self, r: u32) -> bool {
        self.used[(r / 64) as usize] & (1 << (r % 64)) != 0
    }

    fn set(&mut self, r: u32, v: bool) {
        let w = &mut self.used[(r / 64) as usize];
        if v {
            *w |= 1 << (r % 64);
        } else {
            *w &= !(1 << (r % 64));
        }
    }

    /// Takes one free reference.
    pub fn alloc(&mut self) -> Option<GrantRef> {
        let r = self.free.pop()?;
        self.set(r, true);
        Some(GrantRef(r))
    }

    /// Takes `n` references into `out`, or none if fewer are free.
    pub fn alloc_n(&mut self, n: u32, out: &mut Vec<GrantRef>) -> bool {
        if self.free_count() < n {
            return false;
        }
        out.reserve(n as usize);
        for _ in 0..n {
            // Cannot fail: counted above.
            if let Some(r) = self.alloc() {
                out.push(r);
            }
        }
        true
    }

    /// Checks that `r` is a reference this allocator hands out.
    pub fn check(&self, r: GrantRef) -> Result<(), GrantError> {
        if r.0 < NR_RESERVED {
            Err(GrantError::ReservedRef(r))
        } else if r.0 >= self.total {
            Err(GrantError::BadRef(r))
        } else {
            Ok(())
        }
    }

    /// Whether `r` is currently handed out.
    pub fn is_used(&self, r: GrantRef) -> bool {
        self.check(r).is_ok() && self.bit(r.0)
    }

    /// Returns `r` to the free list.
    pub fn free(&mut self, r: GrantRef) -> Result<(), GrantError> {
        self.check(r)?;
        if !self.bit(r.0) {
            return Err(GrantError::DoubleFree(r));
        }
        self.set(r.0, false);
        // Capacity was reserved for every reference in grow(): no
        // allocation here.
        self.free.push(r.0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_and_in_use_follow_allocation() {
        let mut a = RefAllocator::new();
        assert_eq!(a.total(), 0);
        a.grow(16);
        assert_eq!(a.total(), 16);
        let r = a.alloc().unwrap();
        assert!(a.is_used(r));
        assert!(
            !a.is_used(GrantRef(r.0 + 1)),
            "a free reference is not in use"
        );
        assert!(
            !a.is_used(GrantRef(3)),
            "a reserved reference is never in use"
        );
        assert!(!a.is_used(GrantRef(16)), "outside the table");
        a.free(r).unwrap();
        assert!(!a.is_used(r));
        a.grow(8);
        assert_eq!(a.total(), 16, "a table never shrinks");
    }

    #[test]
    fn reserved_refs_are_never_handed_out() {
        let mut a = RefAllocator::new();
        a.grow(512);
        let mut seen = std::collections::HashSet::new();
        while let Some(r) = a.alloc() {
            assert!(r.0 >= NR_RESERVED && r.0 < 512, "{r:?}");
            assert!(seen.insert(r.0), "handed out twice: {r:?}");
        }
        assert_eq!(seen.len(), 512 - 8);
        assert_eq!(
            a.free(GrantRef(0)),
            Err(GrantError::ReservedRef(GrantRef(0)))
        );
        assert_eq!(
            a.free(GrantRef(7)),
            Err(GrantError::ReservedRef(GrantRef(7)))
        );
        assert_eq!(
            a.free(GrantRef(512)),
            Err(GrantError::BadRef(GrantRef(512)))
        );
    }

    #[test]
    fn double_free_is_detected_and_harmless() {
        let mut a = RefAllocator::new();
        a.grow(16);
        let r = a.alloc().unwrap();
        assert_eq!(r, GrantRef(8));
        a.free(r).unwrap();
        assert_eq!(a.free(r), Err(GrantError::DoubleFree(r)));
        assert_eq!(
            a.free(GrantRef(9)),
            Err(GrantError::DoubleFree(GrantRef(9)))
        );
        assert_eq!(
            a.free_count(),
            8,
            "a rejected free does not add to the list"
        );
    }

    #[test]
    fn n_refs_all_or_nothing() {
        let mut a = RefAllocator::new();
        a.grow(16);
        let mut out = Vec::new();
        assert!(!a.alloc_n(9, &mut out));
        assert!(out.is_empty());
        assert_eq!(a.free_count(), 8);
        assert!(a.alloc_n(8, &mut out));
        assert_eq!(out.len(), 8);
        assert_eq!(a.alloc(), None);
        a.grow(32);
        assert_eq!(a.alloc(), Some(GrantRef(16)));
        assert_eq!(a.used_count(), 9);
    }
}
