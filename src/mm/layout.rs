//! The pure arithmetic and checks behind the guest's page-table walk,
//! direct map and M2P look-ups, on every target so the host tests them.
//! The guest code (`paging`, `guest`) supplies the memory reads.

// The walk and the M2P check are called by the guest-only code; on the
// host only their tests use them.
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

use crate::abi::PAGE_SIZE;
use crate::types::{Mfn, Pfn};

/// Where pfn 0 is mapped; the image starts here (linker.ld, boot/entry.S).
pub const VIRT_BASE: u64 = 0xFFFF_FFFF_8000_0000;

/// Pages the direct map can reach: from [`VIRT_BASE`] to the top of the
/// address space (2 GiB). Memory management only manages pfns below it.
pub const DIRECT_MAP_PAGES: u64 = (VIRT_BASE.wrapping_neg()) / PAGE_SIZE as u64;

/// Virtual address of pfn `pfn` in the direct map (`None` for a pfn past
/// [`DIRECT_MAP_PAGES`], which no address of the direct map names; below
/// it, only the domain's own pfns are mapped).
pub fn pfn_to_virt(pfn: Pfn) -> Option<u64> {
    (pfn.0 < DIRECT_MAP_PAGES).then(|| VIRT_BASE + pfn.0 * PAGE_SIZE as u64)
}

/// pfn of a direct-map virtual address (`None` below [`VIRT_BASE`]).
pub fn virt_to_pfn(va: u64) -> Option<Pfn> {
    va.checked_sub(VIRT_BASE)
        .map(|off| Pfn(off / PAGE_SIZE as u64))
}

/// Rejects non-canonical addresses and Xen's reserved range
/// (0xFFFF800000000000..0xFFFF880000000000, public/arch-x86/xen-x86_64.h).
pub(crate) fn check_va(va: u64) -> Result<(), u64> {
    let canonical = (va as i64) << 16 >> 16 == va as i64;
    let xen_hole = (0xFFFF_8000_0000_0000..0xFFFF_8800_0000_0000).contains(&va);
    if !canonical || xen_hole {
        return Err(va);
    }
    Ok(())
}

/// The table index of `va` at `level` (1 = L1 ... 4 = L4).
pub(crate) fn index(va: u64, level: u32) -> u64 {
    (va >> (12 + 9 * (level - 1))) & 511
}

/// Walks the tables from the L4 at `l4` to the L1 entry mapping `va`:
/// `read(table, i)` reads entry `i` of the table at address `table`, and
/// `table_of(entry)` is the address of the table a present entry names,
/// if it is one of ours. Addresses `check_va` refuses are never walked:
/// Xen's L4 slots are present in every PV L4 and name Xen's own tables,
/// whose frames are not ours (their M2P entries mean nothing). A large
/// page (`PS` at L3 or L2) has no L1 entry.
pub(crate) fn walk(
    l4: u64,
    va: u64,
    read: impl Fn(u64, u64) -> u64,
    table_of: impl Fn(u64) -> Option<u64>,
) -> Option<u64> {
    const PRESENT: u64 = 1;
    const PS: u64 = 1 << 7;
    check_va(va).ok()?;
    let mut table = l4;
    for level in (2..=4).rev() {
        let e = read(table, index(va, level));
        if e & PRESENT == 0 || (level < 4 && e & PS != 0) {
            return None;
        }
        table = table_of(e)?;
    }
    let e = read(table, index(va, 1));
    (e & PRESENT != 0).then_some(e)
}

/// The pfn of machine frame `mfn` if it is ours: `p2m` is our
/// pfn-to-mfn list, `read_m2p(mfn)` reads Xen's M2P entry of the frame.
///
/// Xen's M2P window is not all readable: it ends at the host's highest
/// frame (`max_mfn`), not at the window's end, and ranges without RAM are
/// unmapped, so reading the entry of an arbitrary frame can fault (Linux
/// reads it with a fault-safe access). The M2P is read only for a frame
/// our p2m names, whose entry Xen keeps: ownership comes from the p2m
/// (a scan, O(pages)), and the M2P must agree.
pub(crate) fn mfn_to_pfn(p2m: &[u64], mfn: Mfn, read_m2p: impl FnOnce(Mfn) -> u64) -> Option<Pfn> {
    /// A p2m entry with no frame behind its pfn (`INVALID_P2M_ENTRY`).
    const INVALID_P2M: u64 = !0;
    if mfn.0 == INVALID_P2M {
        return None;
    }
    let pfn = p2m.iter().position(|&m| m == mfn.0)? as u64;
    (read_m2p(mfn) == pfn).then_some(Pfn(pfn))
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    const XEN_SLOT: u64 = 0xFFFF_8000_0000_0000;

    #[test]
    fn addresses_in_xen_s_slots_or_not_canonical_are_refused() {
        for bad in [
            XEN_SLOT,
            XEN_SLOT + 0x1234_5000,
            0xFFFF_87FF_FFFF_F000,
            0x0000_8000_0000_0000,
            0x7FFF_8000_0000_0000,
            0xFFFF_7FFF_FFFF_F000,
        ] {
            assert_eq!(check_va(bad), Err(bad), "{bad:#x}");
        }
        for good in [
            0,
            0x0000_7FFF_FFFF_F000,
            0xFFFF_8800_0000_0000,
            crate::mm::MAP_AREA_START,
            VIRT_BASE,
            !0xfff,
        ] {
            assert_eq!(check_va(good), Ok(()), "{good:#x}");
        }
    }

    /// Page tables in a map from (table address, index) to entry; a
    /// present entry names the table at its address bits.
    struct Tables {
        entries: BTreeMap<(u64, u64), u64>,
        reads: RefCell<Vec<(u64, u64)>>,
    }

    impl Tables {
        fn read(&self, table: u64, i: u64) -> u64 {
            self.reads.borrow_mut().push((table, i));
            self.entries.get(&(table, i)).copied().unwrap_or(0)
        }
        fn lookup(&self, va: u64) -> Option<u64> {
            walk(
                0x1000,
                va,
                |t, i| self.read(t, i),
                |e| Some(e & 0x000F_FFFF_FFFF_F000),
            )
        }
    }

    #[test]
    fn the_walk_never_enters_xen_s_tables() {
        let mut entries = BTreeMap::new();
        // Ours: VIRT_BASE through L3 0x2000, L2 0x3000, L1 0x4000.
        entries.insert((0x1000, index(VIRT_BASE, 4)), 0x2000 | 1);
        entries.insert((0x2000, index(VIRT_BASE, 3)), 0x3000 | 1);
        entries.insert((0x3000, index(VIRT_BASE, 2)), 0x4000 | 1);
        entries.insert((0x4000, index(VIRT_BASE, 1)), 0xabc000 | 3);
        // Xen's: its L4 slot 256 is present in our L4 and names a table
        // that is not ours (it would be reached through the M2P).
        entries.insert((0x1000, 256), 0xdead000 | 1);
        let t = Tables {
            entries,
            reads: RefCell::new(Vec::new()),
        };
        assert_eq!(t.lookup(VIRT_BASE), Some(0xabc000 | 3));
        assert_eq!(t.lookup(VIRT_BASE + 4096), None);
        // A 2 MiB page at L2 has no L1 entry; its frame is not a table.
        let mut t = t;
        let big = VIRT_BASE + (2 << 20);
        t.entries.insert((0x3000, index(big, 2)), 0x20_0000 | 0x81);
        t.entries.insert((0x20_0000, index(big, 1)), 0x5000 | 1);
        assert_eq!(t.lookup(big), None);
        t.reads.borrow_mut().clear();
        for va in [XEN_SLOT, XEN_SLOT + (5 << 30), 0x0000_8000_0000_0000] {
            assert_eq!(t.lookup(va), None, "{va:#x}");
        }
        assert_eq!(
            t.reads.borrow().as_slice(),
            &[],
            "Xen's slots and non-canonical addresses are refused before any read"
        );
    }

    #[test]
    fn the_m2p_is_read_only_for_frames_in_our_p2m() {
        // pfn 0..4 are frames 100..104; pfn 2 has gone back to Xen.
        let p2m = [100, 101, !0, 103];
        let m2p = |mfn: Mfn| match mfn.0 {
            100 => 0,
            101 => 1,
            103 => 3,
            // A frame of another domain, or one past max_mfn or in an
            // unpopulated part of the M2P (a read there faults).
            other => panic!("read the M2P entry of frame {other}"),
        };
        assert_eq!(mfn_to_pfn(&p2m, Mfn(101), m2p), Some(Pfn(1)));
        assert_eq!(mfn_to_pfn(&p2m, Mfn(103), m2p), Some(Pfn(3)));
        for not_ours in [0, 102, 105, 1 << 30, !0] {
            assert_eq!(mfn_to_pfn(&p2m, Mfn(not_ours), m2p), None, "{not_ours}");
        }
        // A stale M2P entry (pointing elsewhere) is not believed.
        assert_eq!(mfn_to_pfn(&p2m, Mfn(101), |_| 3), None);
    }

    #[test]
    fn pfns_past_the_direct_map_have_no_address() {
        assert_eq!(DIRECT_MAP_PAGES, 1 << 19);
        assert_eq!(pfn_to_virt(Pfn(0)), Some(VIRT_BASE));
        assert_eq!(pfn_to_virt(Pfn(3)), Some(VIRT_BASE + 3 * 4096));
        assert_eq!(pfn_to_virt(Pfn((1 << 19) - 1)), Some(u64::MAX - 4095));
        for big in [1 << 19, 1 << 52, u64::MAX] {
            assert_eq!(pfn_to_virt(Pfn(big)), None, "{big:#x}");
        }
        assert_eq!(virt_to_pfn(VIRT_BASE + 4096 + 7), Some(Pfn(1)));
        assert_eq!(virt_to_pfn(u64::MAX), Some(Pfn((1 << 19) - 1)));
        assert_eq!(virt_to_pfn(VIRT_BASE - 1), None);
        assert_eq!(virt_to_pfn(0), None);
    }
}
