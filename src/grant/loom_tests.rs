//! Model checks (loom, `cargo xtask loom`) of the grant entry protocol:
//! the library's own functions on one thread, the peer (Xen acting for
//! another domain) on another, doing what grant_table.h lets it do. loom
//! explores every interleaving and the weak-memory outcomes the orderings
//! allow; each test asserts the property the header's rules protect.

extern crate std;

use super::entry::{EntryTable, TransferState};
use super::fake::{FakeWorld, FakeXen};
use super::{Access, GrantError, Grants};
use crate::abi::grant_table::*;
use crate::shared_mem::{loom_model, SharedMem};
use crate::types::{DomId, GrantRef, Mfn};
use core::sync::atomic::Ordering;
use loom::thread;

const A: DomId = DomId(1);
const B: DomId = DomId(2);

fn flags_off(r: GrantRef) -> usize {
    r.0 as usize * GNTENT_SIZE + GNTENT_FLAGS
}

/// Xen mapping `r` for `me`, as `_set_status_v1` does: pin the entry
/// with a compare-and-swap from a valid state (`GTF_permit_access`, not
/// read-only for a writable map), then read `domid` and `frame`, which
/// the pin's acquire makes current. Returns what it saw if it pinned.
fn xen_map(table: SharedMem<'static>, r: GrantRef, writable: bool) -> Option<(u16, u32)> {
    let off = flags_off(r);
    let mut seen = table.load_u16(off, Ordering::Acquire).unwrap();
    loop {
        if seen & GTF_type_mask != GTF_permit_access || (writable && seen & GTF_readonly != 0) {
            return None;
        }
        let pin = GTF_reading | if writable { GTF_writing } else { 0 };
        match table.cas_u16(off, seen, seen | pin).unwrap() {
            Ok(_) => break,
            Err(now) => seen = now,
        }
    }
    let base = r.0 as usize * GNTENT_SIZE;
    let domid = table
        .load_u16(base + GNTENT_DOMID, Ordering::Relaxed)
        .unwrap();
    let frame = table
        .load_u32(base + GNTENT_FRAME, Ordering::Relaxed)
        .unwrap();
    Some((domid, frame))
}

/// Xen unpinning after the peer unmapped: clears the bits it set.
fn xen_unmap(table: SharedMem<'static>, r: GrantRef) {
    let off = flags_off(r);
    let mut seen = table.load_u16(off, Ordering::Relaxed).unwrap();
    while let Err(now) = table
        .cas_u16(off, seen, seen & !(GTF_reading | GTF_writing))
        .unwrap()
    {
        seen = now;
    }
}

/// A one-frame table whose entry 9 (the one the tests use) has its
/// fields' loom atomics made on this thread.
fn table() -> (EntryTable, SharedMem<'static>) {
    let mem = SharedMem::leak_zeroed(4096);
    let base = 9 * GNTENT_SIZE;
    mem.loom_prime(base + GNTENT_FLAGS, 2);
    mem.loom_prime(base + GNTENT_DOMID, 2);
    mem.loom_prime(base + GNTENT_FRAME, 4);
    (EntryTable::new(mem), mem)
}

#[test]
fn loom_xen_never_sees_a_valid_entry_with_a_stale_domid_or_frame() {
    loom_model(|| {
        let (t, mem) = table();
        let r = GrantRef(9);
        let peer = thread::spawn(move || xen_map(mem, r, false));
        t.grant_access(r, B, Mfn(0x1234), false).unwrap();
        if let Some((domid, frame)) = peer.join().unwrap() {
            assert_eq!(
                (domid, frame),
                (B.0, 0x1234),
                "Xen saw the flags before the domid and frame"
            );
        }
    });
}

#[test]
fn loom_end_access_and_a_peer_map_never_both_win() {
    loom_model(|| {
        let (t, mem) = table();
        let r = GrantRef(9);
        t.grant_access(r, B, Mfn(0x1234), false).unwrap();
        let peer = thread::spawn(move || xen_map(mem, r, false).is_some());
        let ended = t.end_access(r);
        let mapped = peer.join().unwrap();
        assert!(
            !(ended.is_ok() && mapped),
            "access ended while the peer mapped the page (XSA-396)"
        );
        assert!(ended.is_ok() || mapped);
    });
}

#[test]
fn loom_make_readonly_never_leaves_a_writable_mapping() {
    loom_model(|| {
        let (t, mem) = table();
        let r = GrantRef(9);
        t.grant_access(r, B, Mfn(0x1234), false).unwrap();
        let peer = thread::spawn(move || xen_map(mem, r, true).is_some());
        let ro = t.make_readonly(r);
        let mapped_writable = peer.join().unwrap();
        assert!(
            !(ro.is_ok() && mapped_writable),
            "read-only while the peer maps the page writable"
        );
        // The change keeps Xen's bits.
        let f = t.flags(r).unwrap();
        assert_eq!(
            f & GTF_writing != 0,
            mapped_writable,
            "Xen's writing bit lost"
        );
    });
}

#[test]
fn loom_make_writable_keeps_the_peers_pin() {
    loom_model(|| {
        let (t, mem) = table();
        let r = GrantRef(9);
        t.grant_access(r, B, Mfn(0x1234), true).unwrap();
        let peer = thread::spawn(move || xen_map(mem, r, false).is_some());
        t.make_writable(r).unwrap();
        let mapped = peer.join().unwrap();
        let f = t.flags(r).unwrap();
        assert_eq!(f & GTF_readonly, 0);
        assert_eq!(f & GTF_reading != 0, mapped, "Xen's reading bit lost");
    });
}

#[test]
fn loom_transfer_cancel_and_xen_commit_never_both_win() {
    loom_model(|| {
        let (t, mem) = table();
        let r = GrantRef(9);
        t.accept_transfer(r, B, 0x1234).unwrap();
        // Xen's transfer: commit with a CAS from the bare accept-transfer
        // entry, write the frame, then OR in "completed" (wmb between).
        let xen = thread::spawn(move || {
            let off = flags_off(r);
            let committed = mem
                .cas_u16(
                    off,
                    GTF_accept_transfer,
                    GTF_accept_transfer | GTF_transfer_committed,
                )
                .unwrap();
            if committed.is_err() {
                return false;
            }
            mem.store_u32(
                r.0 as usize * GNTENT_SIZE + GNTENT_FRAME,
                0x5678,
                Ordering::Relaxed,
            )
            .unwrap();
            crate::shared_mem::wmb();
            let mut seen = mem.load_u16(off, Ordering::Relaxed).unwrap();
            while let Err(now) = mem
                .cas_u16(off, seen, seen | GTF_transfer_completed)
                .unwrap()
            {
                seen = now;
            }
            true
        });
        let outcome = loop {
            match t.end_transfer(r).unwrap() {
                TransferState::Committed => thread::yield_now(),
                done => break done,
            }
        };
        let committed = xen.join().unwrap();
        match outcome {
            TransferState::Cancelled => {
                assert!(!committed, "cancelled a transfer Xen had committed")
            }
            TransferState::Completed(mfn) => {
                assert!(committed);
                assert_eq!(mfn, Mfn(0x5678), "frame read before Xen wrote it");
            }
            TransferState::Committed => unreachable!(),
        }
    });
}

/// Domain A's grants over the fake, and A's table as Xen sees it.
fn grants() -> (FakeWorld, Grants<FakeXen>, SharedMem<'static>) {
    let w = FakeWorld::new();
    let g = Grants::new(w.add_domain(A, 1, 1), 1).unwrap();
    let table = w.table(A);
    (w, g, table)
}

#[test]
fn loom_granted_end_access_and_a_peer_map_never_both_win() {
    loom_model(|| {
        let (_w, g, table) = grants();
        let granted = g
            .grant(B, g.alloc_page().unwrap(), Access::ReadOnly)
            .map_err(|e| e.1)
            .unwrap();
        let r = granted.gref();
        let peer = thread::spawn(move || xen_map(table, r, false).is_some());
        let ended = granted.end_access();
        let mapped = peer.join().unwrap();
        match ended {
            Ok(_page) => assert!(!mapped, "page handed back while the peer maps it"),
            Err((_granted, e)) => {
                assert_eq!(e, GrantError::InUse(r));
                assert!(mapped);
                // The owner went back to us; dropping it leaves the page pending.
            }
        }
    });
}

#[test]
fn loom_a_dropped_grant_is_freed_only_if_the_peer_does_not_map_it() {
    loom_model(|| {
        let (_w, g, table) = grants();
        let granted = g
            .grant(B, g.alloc_page().unwrap(), Access::ReadWrite)
            .map_err(|e| e.1)
            .unwrap();
        let r = granted.gref();
        let peer = thread::spawn(move || xen_map(table, r, true).is_some());
        drop(granted);
        let mapped = peer.join().unwrap();
        assert_eq!(
            g.stats().pending == 1,
            mapped,
            "a page the peer maps was freed, or one it does not map kept"
        );
    });
}

#[test]
fn loom_reclaim_frees_a_pending_page_only_once_the_peer_is_gone() {
    loom_model(|| {
        let (_w, g, table) = grants();
        let granted = g
            .grant(B, g.alloc_page().unwrap(), Access::ReadWrite)
            .map_err(|e| e.1)
            .unwrap();
        let r = granted.gref();
        assert!(xen_map(table, r, false).is_some());
        drop(granted);
        assert_eq!(g.stats().pending, 1);
        // The peer unmaps, and then (the entry is still valid while
        // pending) maps it again while we reclaim.
        xen_unmap(table, r);
        let peer = thread::spawn(move || xen_map(table, r, false).is_some());
        let left = g.reclaim();
        let remapped = peer.join().unwrap();
        assert_eq!(
            left == 1,
            remapped,
            "reclaimed a page the peer mapped again, or kept one it did not"
        );
    });
}

#[test]
fn loom_share_release_frees_only_what_the_peer_does_not_map() {
    loom_model(|| {
        let (_w, g, table) = grants();
        let mut shared = g.share(B, 1, Access::ReadWrite).unwrap();
        let r = shared.gref(0).unwrap();
        let peer = thread::spawn(move || xen_map(table, r, true).is_some());
        let released = shared.release_all();
        let mapped = peer.join().unwrap();
        assert_eq!(
            (released.freed, released.pending),
            if mapped { (0, 1) } else { (1, 0) }
        );
        assert_eq!(g.stats().pending == 1, mapped);
    });
}

#[test]
fn loom_reserved_end_access_and_a_peer_map_never_both_win() {
    loom_model(|| {
        let (_w, g, table) = grants();
        let refs = g.reserve_refs(1).unwrap();
        let granted = refs
            .grant(B, g.alloc_page().unwrap(), Access::ReadOnly)
            .map_err(|e| e.1)
            .unwrap();
        let r = granted.gref();
        let peer = thread::spawn(move || xen_map(table, r, false).is_some());
        let ended = granted.end_access();
        let mapped = peer.join().unwrap();
        match ended {
            Ok(_page) => {
                assert!(!mapped, "page handed back while the peer maps it");
                assert_eq!(refs.available(), 1);
            }
            Err((_granted, e)) => {
                assert_eq!(e, GrantError::InUse(r));
                assert!(mapped);
            }
        }
    });
}

#[test]
fn loom_a_dropped_reserved_grant_is_freed_only_if_the_peer_does_not_map_it() {
    loom_model(|| {
        let (_w, g, table) = grants();
        let refs = g.reserve_refs(1).unwrap();
        let granted = refs
            .grant(B, g.alloc_page().unwrap(), Access::ReadWrite)
            .map_err(|e| e.1)
            .unwrap();
        let r = granted.gref();
        let peer = thread::spawn(move || xen_map(table, r, true).is_some());
        drop(granted);
        let mapped = peer.join().unwrap();
        assert_eq!(
            g.stats().pending == 1,
            mapped,
            "a page the peer maps was freed, or one it does not map kept"
        );
        assert_eq!(
            refs.len() == 0,
            mapped,
            "the reference went pending with the page"
        );
    });
}
