//! Host tests of the grant code against the fake hypervisor.

use super::entry::EntryTable;
use super::fake::{FakeWorld, FakeXen};
use super::ops::SharePage as _;
use super::*;
use crate::abi::grant_table::*;
use crate::abi::PAGE_SIZE;
use crate::errno::Errno;
use crate::mm::MemError;
use crate::types::{DomId, EvtchnPort, GrantRef, Mfn};
use core::sync::atomic::Ordering;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::vec::Vec;

const A: DomId = DomId(1);
const B: DomId = DomId(2);
const C: DomId = DomId(3);

fn world() -> (FakeWorld, Grants<FakeXen>, Grants<FakeXen>, Grants<FakeXen>) {
    let w = FakeWorld::new();
    let a = Grants::new(w.add_domain(A, 1, 4), 1).unwrap();
    let b = Grants::new(w.add_domain(B, 1, 4), 1).unwrap();
    let c = Grants::new(w.add_domain(C, 1, 4), 1).unwrap();
    (w, a, b, c)
}

fn page(g: &Grants<FakeXen>) -> fake::FakePage {
    g.with_ops(|o| o.alloc_page()).unwrap()
}

#[test]
fn status_codes_carry_the_header_text() {
    assert_eq!(GntStatus::check(0), Ok(()));
    assert_eq!(GntStatus::check(-8), Err(GntStatus::PermissionDenied));
    assert_eq!(GntStatus::PermissionDenied.message(), "permission denied");
    assert_eq!(
        GntStatus::BadCopyArg.message(),
        "copy arguments cross page boundary"
    );
    assert_eq!(GntStatus::NoSpace.message(), "out of space");
    for raw in -13..=-1 {
        let s = GntStatus::check(raw).unwrap_err();
        assert_eq!(s.raw(), raw);
        assert_eq!(s.message(), GNTTABOP_error_msgs[(-raw) as usize]);
    }
    assert_eq!(GntStatus::check(-99), Err(GntStatus::Unknown(-99)));
    assert_eq!(GntStatus::Unknown(-99).message(), "unknown grant status");
    assert_eq!(
        std::format!("{}", GntStatus::BadGntref),
        "invalid grant reference (GNTST -3)"
    );
}

#[test]
fn entry_is_introduced_with_domid_frame_then_flags() {
    let (_w, a, _b, _c) = world();
    let p = page(&a);
    let mfn = p.mfn();
    let g = a.grant(B, p, Access::ReadOnly).map_err(|e| e.1).unwrap();
    assert!(g.gref().0 >= refs::NR_RESERVED);
    let t = a.inner.lock().table.entries;
    assert_eq!(
        t.read(g.gref()).unwrap(),
        (GTF_permit_access | GTF_readonly, B, mfn.0 as u32)
    );
    let r = g.gref();
    let page = g.end_access().map_err(|e| e.1).unwrap();
    assert_eq!(t.read(r).unwrap().0, 0);
    assert_eq!(page.mfn(), mfn);
}

#[test]
fn peer_reads_and_writes_through_its_mapping() {
    let (w, a, b, _c) = world();
    let mut shared = a.share(B, 2, Access::ReadWrite).unwrap();
    shared.page(1).unwrap().write(10, b"from A").unwrap();
    let refs: Vec<_> = shared.refs().collect();
    let m = b.map(A, &refs, Access::ReadWrite).unwrap();
    let mut buf = [0u8; 6];
    m.page(1).unwrap().read(10, &mut buf).unwrap();
    assert_eq!(&buf, b"from A");
    m.page(0).unwrap().write(0, b"from B").unwrap();
    shared.page(0).unwrap().read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"from B");
    // While B maps them, A's release keeps both pages pending.
    let r = shared.release(shared.index(), 2).unwrap();
    assert_eq!((r.freed, r.pending), (0, 2));
    m.unmap().unwrap();
    assert_eq!(w.mapping_count(), 0);
    assert_eq!(a.reclaim(), 0);
    assert_eq!(a.stats().shared_pages, 0);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn end_access_is_refused_while_mapped_and_works_after() {
    let (w, a, _b, _c) = world();
    let g = a
        .grant(B, page(&a), Access::ReadWrite)
        .map_err(|e| e.1)
        .unwrap();
    let r = g.gref();
    let (h, _view) = w.peer_map(B, A, r, true).unwrap();
    assert_eq!(
        a.entry_flags(r).unwrap(),
        GTF_permit_access | GTF_reading | GTF_writing
    );
    let (g, e) = g.end_access().unwrap_err();
    assert_eq!(e, GrantError::InUse(r));
    assert_eq!(
        a.entry_flags(r).unwrap() & GTF_permit_access,
        GTF_permit_access,
        "entry left valid"
    );
    w.peer_unmap(B, h).unwrap();
    let p = g.end_access().map_err(|e| e.1).unwrap();
    assert_eq!(a.entry_flags(r).unwrap(), 0);
    assert_eq!(a.stats().refs_used, 0);
    drop(p);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn read_only_grants_refuse_writable_maps_and_other_domains() {
    let (w, a, b, c) = world();
    let shared = a.share(B, 1, Access::ReadOnly).unwrap();
    let r = shared.gref(0).unwrap();
    let e = b.map(A, &[r], Access::ReadWrite).unwrap_err();
    assert_eq!(
        e,
        GrantError::BatchOp {
            index: 0,
            status: GntStatus::GeneralError
        }
    );
    let ro = b.map(A, &[r], Access::ReadOnly).unwrap();
    assert_eq!(
        ro.page(0).unwrap().write(0, b"x"),
        Err(GrantError::InvalidArgument)
    );
    assert_eq!(ro.page(0).unwrap().load_u8(0), Ok(0));
    // C was not granted anything.
    let e = c.map(A, &[r], Access::ReadOnly).unwrap_err();
    assert_eq!(
        e,
        GrantError::BatchOp {
            index: 0,
            status: GntStatus::GeneralError
        }
    );
    let e = c.map(A, &[GrantRef(4000)], Access::ReadOnly).unwrap_err();
    assert_eq!(
        e,
        GrantError::BatchOp {
            index: 0,
            status: GntStatus::BadGntref
        }
    );
    let e = c.map(DomId(77), &[r], Access::ReadOnly).unwrap_err();
    assert_eq!(
        e,
        GrantError::BatchOp {
            index: 0,
            status: GntStatus::BadDomain
        }
    );
    drop(ro);
    drop(shared);
    assert_eq!(a.stats().pending, 0);
    assert_eq!(w.mapping_count(), 0);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
#[cfg_attr(
    miri,
    ignore = "2040 pages: the fake's per-free scan of the table makes it hours under Miri"
)]
fn table_grows_on_demand_to_the_maximum_then_reports_full() {
    let (w, a, _b, _c) = world();
    a.set_share_limit(10_000);
    a.set_share_limit_per_domain(10_000);
    assert_eq!(a.stats().nr_frames, 1);
    let calls = w.hypercalls();
    let mut held = Vec::new();
    // 504 usable references in frame 0; one more grows the table.
    held.push(a.share(B, 504, Access::ReadWrite).unwrap());
    assert_eq!(a.stats().nr_frames, 1);
    held.push(a.share(B, 1, Access::ReadWrite).unwrap());
    assert_eq!(a.stats().nr_frames, 2);
    let r = held[1].gref(0).unwrap();
    assert_eq!(r, GrantRef(512), "the first entry of the new frame");
    assert_eq!(a.entry_flags(r).unwrap(), GTF_permit_access);
    held.push(a.share(B, 4 * 512 - 8 - 505, Access::ReadWrite).unwrap());
    assert_eq!(a.stats().nr_frames, 4);
    assert!(
        w.hypercalls() - calls <= 4,
        "growth doubles: few setup_table calls"
    );
    assert_eq!(
        a.share(B, 1, Access::ReadWrite).unwrap_err(),
        GrantError::TableFull
    );
    let p = page(&a);
    let (p, e) = a.grant(B, p, Access::ReadWrite).unwrap_err();
    assert_eq!(e, GrantError::TableFull);
    drop(p);
    assert_eq!(a.stats().shared_pages, 4 * 512 - 8);
    held.clear();
    assert_eq!(a.stats().refs_used, 0);
    assert_eq!(a.stats().shared_pages, 0);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
#[cfg_attr(
    miri,
    ignore = "2000 pages: the fake's per-free scan of the table makes it hours under Miri"
)]
fn n_page_share_is_all_or_nothing() {
    let (w, a, _b, _c) = world();
    a.set_share_limit(10_000);
    a.set_share_limit_per_domain(10_000);
    let _held = a.share(B, 2000, Access::ReadWrite).unwrap();
    let before = a.stats();
    // 4 frames hold 2040 usable refs: 41 more cannot fit.
    assert_eq!(
        a.share(B, 41, Access::ReadWrite).unwrap_err(),
        GrantError::TableFull
    );
    let after = a.stats();
    assert_eq!(before.refs_used, after.refs_used);
    assert_eq!(before.shared_pages, after.shared_pages);
    assert!(a.share(B, 40, Access::ReadWrite).is_ok());
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn a_page_mapped_at_release_stays_pinned_until_the_peer_unmaps() {
    let (w, a, _b, _c) = world();
    a.set_share_limit(3);
    let shared = a.share(B, 1, Access::ReadWrite).unwrap();
    let r = shared.gref(0).unwrap();
    let mfn = shared.mfn(0).unwrap();
    let (h, peer_view) = w.peer_map(B, A, r, true).unwrap();
    drop(shared);
    let s = a.stats();
    assert_eq!(
        (s.pending, s.shared_pages),
        (1, 1),
        "pending pages count toward the limit"
    );
    assert!(!w.is_freed(mfn));
    // The peer keeps writing; the page is still there and still granted.
    peer_view.write(0, b"still mine").unwrap();
    assert_eq!(
        a.entry_flags(r).unwrap() & GTF_permit_access,
        GTF_permit_access
    );
    // The limit counts the pending page: 1 + 3 > 3.
    assert!(matches!(
        a.share(B, 3, Access::ReadWrite),
        Err(GrantError::LimitReached {
            limit: 3,
            in_use: 1,
            requested: 3
        })
    ));
    // Grant operations meanwhile never reuse the pending reference.
    let other = a.share(B, 2, Access::ReadWrite).unwrap();
    assert!(other.refs().all(|x| x != r));
    assert!(!w.is_freed(mfn));
    w.peer_unmap(B, h).unwrap();
    assert!(
        !w.is_freed(mfn),
        "reclaimed only by a later grant operation"
    );
    drop(other);
    // The drop above was a grant operation: everything is reclaimed.
    assert!(w.is_freed(mfn));
    let s = a.stats();
    assert_eq!((s.pending, s.shared_pages, s.refs_used), (0, 0, 0));
    assert!(a.share(B, 3, Access::ReadWrite).is_ok());
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

/// The conveniences users expect from gntalloc and ocaml-gnt: pages as one
/// buffer, release by page number.
#[test]
fn shared_and_mapped_pages_read_as_one_buffer() {
    let (w, a, b, _c) = world();
    let mut s = a.share(B, 3, Access::ReadWrite).unwrap();
    let data: Vec<u8> = (0..PAGE_SIZE + 100).map(|i| (i % 251) as u8).collect();
    // Across the boundary of pages 0 and 1 and into page 2.
    s.write_at(PAGE_SIZE - 50, &data).unwrap();
    let mut head = [0u8; 50];
    s.page(0).unwrap().read(PAGE_SIZE - 50, &mut head).unwrap();
    assert_eq!(&head[..], &data[..50]);
    let mut tail = [0u8; 50];
    s.page(2).unwrap().read(0, &mut tail).unwrap();
    assert_eq!(&tail[..], &data[data.len() - 50..]);
    let refs: Vec<_> = s.refs().collect();
    let m = b.map(A, &refs, Access::ReadOnly).unwrap();
    let mut back = std::vec![0u8; data.len()];
    m.read_at(PAGE_SIZE - 50, &mut back).unwrap();
    assert_eq!(back, data);
    assert_eq!(
        m.write_at(0, b"x"),
        Err(GrantError::InvalidArgument),
        "read-only mapping"
    );
    // The end is checked, overflow included; nothing is written partly.
    assert_eq!(
        s.write_at(3 * PAGE_SIZE - 1, b"ab"),
        Err(GrantError::InvalidArgument)
    );
    assert_eq!(
        s.read_at(usize::MAX, &mut [0u8; 2]),
        Err(GrantError::InvalidArgument)
    );
    let mut last = [0u8; 1];
    s.read_at(3 * PAGE_SIZE - 1, &mut last).unwrap();
    assert_eq!(last[0], 0, "the refused write left the last byte alone");
    assert!(s.write_at(3 * PAGE_SIZE, b"").is_ok());
    drop(m);
    // Release page 1 by number; reading across it fails, around it works.
    let r = s.release_pages(1, 1).unwrap();
    assert_eq!((r.freed, r.pending), (1, 0));
    assert_eq!(
        s.read_at(PAGE_SIZE - 1, &mut [0u8; 2]),
        Err(GrantError::InvalidArgument)
    );
    assert!(s.read_at(2 * PAGE_SIZE, &mut [0u8; 8]).is_ok());
    assert!(matches!(
        s.release_pages(1, 1),
        Err(GrantError::NotHeld { .. })
    ));
    assert!(matches!(
        s.release_pages(2, 2),
        Err(GrantError::NotHeld { .. })
    ));
    assert!(matches!(
        s.release_pages(usize::MAX, 1),
        Err(GrantError::NotHeld { .. })
    ));
    assert_eq!(s.release_pages(0, 1).unwrap().freed, 1);
    assert_eq!(s.release_pages(2, 1).unwrap().freed, 1);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

/// Waiting for a peer to unmap: before release (nothing goes pending) and
/// after it (the pending list drains without another grant operation).
#[test]
fn waits_for_peers_to_unmap() {
    use crate::event::ops::fake::FakeEventWorld;
    use core::time::Duration;
    let (w, a, _b, _c) = world();
    let events = FakeEventWorld::new().domain(A);
    let s = a.share(B, 2, Access::ReadWrite).unwrap();
    assert_eq!(s.mapped_count(), 0);
    assert!(s.wait_unmapped(&events, Duration::ZERO).is_ok());
    let (h, _view) = w.peer_map(B, A, s.gref(1).unwrap(), true).unwrap();
    assert_eq!(s.mapped_count(), 1);
    let start = std::time::Instant::now();
    assert_eq!(
        s.wait_unmapped(&events, Duration::from_millis(30)),
        Err(GrantError::StillMapped { pages: 1 })
    );
    assert!(
        start.elapsed() >= Duration::from_millis(30),
        "waited the whole timeout"
    );
    // The peer unmaps while we wait.
    let unmapper = {
        let w = w.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            w.peer_unmap(B, h).unwrap();
        })
    };
    s.wait_unmapped(&events, Duration::from_secs(10)).unwrap();
    unmapper.join().unwrap();
    assert_eq!(s.mapped_count(), 0);
    // After release: pending until the peer unmaps; the wait reclaims it.
    let (h, _view) = w.peer_map(B, A, s.gref(0).unwrap(), true).unwrap();
    let mfn = s.mfn(0).unwrap();
    drop(s);
    assert_eq!(a.stats().pending, 1);
    assert_eq!(
        a.wait_reclaimed(&events, Duration::from_millis(5)),
        Err(GrantError::StillMapped { pages: 1 })
    );
    assert_eq!(a.try_reclaim(), Some(1));
    w.peer_unmap(B, h).unwrap();
    // The background reclaim frees it (no other grant operation ran).
    assert_eq!(a.try_reclaim(), Some(0));
    assert!(w.is_freed(mfn));
    a.wait_reclaimed(&events, Duration::from_secs(10)).unwrap();
    assert_eq!(a.stats().pending, 0);
    // Busy table: background reclaim does not wait.
    let guard = a.inner.lock();
    assert_eq!(a.try_reclaim(), None);
    drop(guard);
    assert_eq!(a.try_reclaim(), Some(0));
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn bogus_table_sizes_from_xen_are_refused_before_allocating() {
    let w = FakeWorld::new();
    let x = w.add_domain(A, 1, 4);
    let _b = w.add_domain(B, 1, 4);
    // As many frames as would overflow a u32 count of references.
    let bogus = TableSize {
        nr_frames: (1 << 23) + 1,
        max_nr_frames: u32::MAX,
    };
    w.report_size(A, Some(bogus));
    let calls = w.hypercalls();
    assert_eq!(
        Grants::new(x.clone(), 1).unwrap_err(),
        GrantError::BadTableSize(bogus)
    );
    assert_eq!(
        w.hypercalls() - calls,
        1,
        "only query_size: no setup_table for a bogus count"
    );
    let huge_max = TableSize {
        nr_frames: 1,
        max_nr_frames: u32::MAX,
    };
    w.report_size(A, Some(huge_max));
    assert_eq!(
        Grants::new(x.clone(), 1).unwrap_err(),
        GrantError::BadTableSize(huge_max)
    );
    // The largest maximum whose references fit is accepted, and growth
    // within it works.
    let max_ok = TableSize {
        nr_frames: 1,
        max_nr_frames: u32::MAX / GNTENT_PER_FRAME as u32,
    };
    w.report_size(A, Some(max_ok));
    let a = Grants::new(x, 1).unwrap();
    assert_eq!(a.stats().max_frames, max_ok.max_nr_frames);
    let held = a.share(B, 505, Access::ReadWrite).unwrap();
    assert_eq!(a.stats().nr_frames, 2);
    drop(held);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn one_peer_cannot_take_the_whole_share_limit() {
    let (w, a, _b, _c) = world();
    a.set_share_limit(8);
    a.set_share_limit_per_domain(5);
    let rw = Access::ReadWrite;
    let to_b = a.share(B, 5, rw).unwrap();
    assert_eq!(
        a.share(B, 1, rw).unwrap_err(),
        GrantError::DomainLimitReached {
            domid: B,
            limit: 5,
            in_use: 5,
            requested: 1
        }
    );
    // Another peer still gets pages, up to the global limit.
    let to_c = a.share(C, 3, rw).unwrap();
    assert_eq!(
        a.share(C, 1, rw).unwrap_err(),
        GrantError::LimitReached {
            limit: 8,
            in_use: 8,
            requested: 1
        }
    );
    // A page B keeps mapped stays charged to B, not to C.
    let (h, _) = w.peer_map(B, A, to_b.gref(0).unwrap(), true).unwrap();
    drop(to_b);
    drop(to_c);
    assert_eq!(
        a.share(B, 5, rw).unwrap_err(),
        GrantError::DomainLimitReached {
            domid: B,
            limit: 5,
            in_use: 1,
            requested: 5
        }
    );
    drop(a.share(C, 5, rw).unwrap());
    w.peer_unmap(B, h).unwrap();
    let again = a.share(B, 5, rw).unwrap();
    drop(again);
    assert!(
        a.inner.lock().shared_per_domain.is_empty(),
        "no peer holds pages"
    );
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn a_peer_that_never_unmaps_cannot_grow_the_pending_list() {
    let (w, a, _b, _c) = world();
    a.set_pending_limit(2);
    let rw = Access::ReadWrite;
    let mut handles = Vec::new();
    for _ in 0..2 {
        let g = a.grant(B, page(&a), rw).map_err(|e| e.1).unwrap();
        handles.push(w.peer_map(B, A, g.gref(), true).unwrap().0);
        // The drop parks the page in room reserved at grant time.
        let cap = a.inner.lock().pending.capacity();
        drop(g);
        assert_eq!(
            a.inner.lock().pending.capacity(),
            cap,
            "a drop must not allocate"
        );
    }
    assert_eq!(a.stats().pending, 2);
    let (p, e) = a.grant(B, page(&a), rw).unwrap_err();
    assert_eq!(
        e,
        GrantError::PendingLimitReached {
            limit: 2,
            pending: 2
        }
    );
    assert_eq!(
        a.stats().refs_used,
        2,
        "the refused grant took no reference"
    );
    // Shared pages have their room too.
    let shared = a.share(B, 1, rw).unwrap();
    let (hs, _) = w.peer_map(B, A, shared.gref(0).unwrap(), true).unwrap();
    let cap = a.inner.lock().pending.capacity();
    drop(shared);
    assert_eq!(
        a.inner.lock().pending.capacity(),
        cap,
        "a drop must not allocate"
    );
    // Once the peer unmaps one, the next grant reclaims it and succeeds.
    w.peer_unmap(B, handles.pop().unwrap()).unwrap();
    let g = a.grant(B, p, rw).map_err(|e| e.1).unwrap();
    assert_eq!(a.stats().pending, 2, "one granted and one shared page");
    let page = g.end_access().map_err(|e| e.1).unwrap();
    drop(page);
    for h in handles {
        w.peer_unmap(B, h).unwrap();
    }
    w.peer_unmap(B, hs).unwrap();
    assert_eq!(a.reclaim(), 0);
    let g = a.inner.lock();
    assert_eq!((g.granted_pending, g.reserved, g.shared_pages), (0, 0, 0));
    drop(g);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn dropping_grants_frees_no_page_a_peer_still_maps() {
    let (w, a, _b, _c) = world();
    let rw = Access::ReadWrite;
    let kept = a.grant(B, page(&a), rw).map_err(|e| e.1).unwrap();
    let (kept_mfn, kept_ref) = (
        a.inner.lock().table.entries.read(kept.gref()).unwrap().2,
        kept.gref(),
    );
    let (h_kept, peer_view) = w.peer_map(B, A, kept_ref, true).unwrap();
    let shared = a.share(B, 1, rw).unwrap();
    let unmapped_mfn = shared.mfn(0).unwrap();
    let (h_unmapped, _) = w.peer_map(B, A, shared.gref(0).unwrap(), true).unwrap();
    drop(kept);
    drop(shared);
    assert_eq!(a.stats().pending, 2);
    // One peer unmaps before the table goes away, the other never does.
    w.peer_unmap(B, h_unmapped).unwrap();
    drop(a);
    assert!(w.is_freed(unmapped_mfn), "access ended: freed");
    assert!(
        !w.is_freed(Mfn(kept_mfn as u64)),
        "still mapped: given up, not freed"
    );
    peer_view.write(0, b"still there").unwrap();
    w.peer_unmap(B, h_kept).unwrap();
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn release_by_index_and_count_checks_what_the_owner_holds() {
    let (w, a, _b, _c) = world();
    let first = a.share(B, 1, Access::ReadWrite).unwrap();
    let mut s = a.share(B, 4, Access::ReadWrite).unwrap();
    assert_eq!(s.index(), first.index() + 4096);
    let i = s.index();
    let r1 = s.gref(1).unwrap();
    let nh = |index, count| GrantError::NotHeld { index, count };
    assert_eq!(
        s.release(first.index(), 1).unwrap_err(),
        nh(first.index(), 1)
    );
    assert_eq!(s.release(i + 1, 1).unwrap_err(), nh(i + 1, 1));
    assert_eq!(s.release(i, 5).unwrap_err(), nh(i, 5));
    assert_eq!(s.release(i, 0).unwrap_err(), nh(i, 0));
    assert_eq!(s.release(u64::MAX, 2).unwrap_err(), nh(u64::MAX, 2));
    assert_eq!(s.len(), 4);
    let r = s.release(i + 4096, 2).unwrap();
    assert_eq!((r.freed, r.pending), (2, 0));
    assert_eq!(s.gref(1), None);
    assert_eq!(a.entry_flags(r1).unwrap(), 0);
    // Releasing again: a double release is an error, nothing changes.
    assert_eq!(s.release(i + 4096, 1).unwrap_err(), nh(i + 4096, 1));
    assert_eq!(s.release(i, 2).unwrap_err(), nh(i, 2));
    assert_eq!(a.stats().shared_pages, 3);
    assert!(s.release(i, 1).is_ok());
    assert!(s.release(i + 3 * 4096, 1).is_ok());
    assert!(s.is_empty());
    drop(s);
    assert_eq!(a.stats().shared_pages, 1);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

/// A held port for the notify tests: each signal records how many
/// mappings the fake world has and the watched byte's value at that
/// moment, so the tests see the order of the notify steps.
struct Recorder {
    world: FakeWorld,
    port: EvtchnPort,
    fail: bool,
    watch: Option<(crate::shared_mem::SharedMem<'static>, usize)>,
    log: std::sync::Mutex<Vec<(usize, Option<u8>)>>,
}

impl Recorder {
    fn new(
        world: &FakeWorld,
        port: u32,
        watch: Option<(crate::shared_mem::SharedMem<'static>, usize)>,
    ) -> Arc<Recorder> {
        Arc::new(Recorder {
            world: world.clone(),
            port: EvtchnPort(port),
            fail: false,
            watch,
            log: Default::default(),
        })
    }
    fn log(&self) -> Vec<(usize, Option<u8>)> {
        self.log.lock().unwrap().clone()
    }
}

impl crate::event::NotifyPort for Recorder {
    fn port(&self) -> EvtchnPort {
        self.port
    }
    fn notify(&self) -> Result<(), crate::event::EventError> {
        if self.fail {
            return Err(crate::event::EventError::Hypercall(Errno::EINVAL));
        }
        let byte = self
            .watch
            .map(|(m, o)| m.load_u8(o, core::sync::atomic::Ordering::Relaxed).unwrap());
        self.log
            .lock()
            .unwrap()
            .push((self.world.mapping_count(), byte));
        Ok(())
    }
}

#[test]
fn share_release_runs_both_unmap_notify_actions() {
    let (w, a, _b, _c) = world();
    let mut s = a.share(B, 2, Access::ReadWrite).unwrap();
    let (h, peer) = w.peer_map(B, A, s.gref(1).unwrap(), true).unwrap();
    peer.fill(0, 4096, 0xff).unwrap();
    assert_eq!(
        s.set_unmap_notify(
            1,
            UnmapNotify {
                clear_byte: Some(4096),
                send_event: None
            }
        ),
        Err(GrantError::InvalidArgument)
    );
    assert_eq!(
        s.set_unmap_notify(2, UnmapNotify::default()),
        Err(GrantError::InvalidArgument)
    );
    // The event goes after the byte is cleared (gntalloc's __del_gref).
    let ev = Recorder::new(&w, 9, Some((peer, 100)));
    s.set_unmap_notify(
        1,
        UnmapNotify {
            clear_byte: Some(100),
            send_event: Some(ev.clone()),
        },
    )
    .unwrap();
    let failing = Arc::new(Recorder {
        fail: true,
        ..Arc::into_inner(Recorder::new(&w, 4, None)).unwrap()
    });
    s.set_unmap_notify(
        0,
        UnmapNotify {
            clear_byte: None,
            send_event: Some(failing.clone()),
        },
    )
    .unwrap();
    let r = s.release_all();
    assert_eq!(
        r.notify_failed,
        Some(crate::event::EventError::Hypercall(Errno::EINVAL)),
        "a failed event is reported"
    );
    assert_eq!((r.freed, r.pending), (1, 1));
    assert_eq!(
        peer.load_u8(100, core::sync::atomic::Ordering::Relaxed)
            .unwrap(),
        0
    );
    assert_eq!(
        peer.load_u8(99, core::sync::atomic::Ordering::Relaxed)
            .unwrap(),
        0xff
    );
    assert_eq!(
        ev.log(),
        std::vec![(1, Some(0))],
        "one event, sent after the byte was cleared"
    );
    // The released pages let go of the port handles: only ours remain.
    assert_eq!(
        (Arc::strong_count(&ev), Arc::strong_count(&failing)),
        (1, 1)
    );
    w.peer_unmap(B, h).unwrap();
    assert_eq!(a.reclaim(), 0);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn mapped_pages_notify_clears_then_unmaps_then_signals() {
    let (w, a, b, _c) = world();
    let s = a.share(B, 2, Access::ReadWrite).unwrap();
    s.page(1).unwrap().fill(0, 4096, 7).unwrap();
    let refs: Vec<_> = s.refs().collect();
    let mut m = b.map(A, &refs, Access::ReadWrite).unwrap();
    assert_eq!(
        m.set_unmap_notify(UnmapNotify {
            clear_byte: Some(8192),
            send_event: None
        }),
        Err(GrantError::InvalidArgument)
    );
    let ev = Recorder::new(&w, 3, None);
    m.set_unmap_notify(UnmapNotify {
        clear_byte: Some(4096 + 5),
        send_event: Some(ev.clone()),
    })
    .unwrap();
    drop(m);
    assert_eq!(s.page(1).unwrap().load_u8(5), Ok(0));
    assert_eq!(s.page(1).unwrap().load_u8(4), Ok(7));
    // The byte was already clear when the page was unmapped, and the
    // event went after both pages were unmapped.
    let at_unmap = w
        .at_last_unmap(s.mfn(1).unwrap())
        .expect("page 1 was unmapped");
    assert_eq!(
        (at_unmap[5], at_unmap[4]),
        (0, 7),
        "byte cleared after the unmap"
    );
    assert_eq!(
        ev.log(),
        std::vec![(0, None)],
        "event sent while still mapped"
    );
    assert_eq!(Arc::strong_count(&ev), 1);
    assert_eq!(w.mapping_count(), 0);
    let mut ro = b.map(A, &refs[..1], Access::ReadOnly).unwrap();
    assert_eq!(
        ro.set_unmap_notify(UnmapNotify {
            clear_byte: Some(0),
            send_event: None
        }),
        Err(GrantError::InvalidArgument)
    );
    drop(ro);
    drop(s);
    assert_eq!(a.stats().pending, 0);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn a_failed_map_batch_is_rolled_back() {
    let (w, a, b, _c) = world();
    let s = a.share(B, 3, Access::ReadWrite).unwrap();
    let mut refs: Vec<_> = s.refs().collect();
    refs[1] = GrantRef(3000);
    let va_before = b.with_ops(|o| o.reserve_va(1)).unwrap();
    let e = b.map(A, &refs, Access::ReadWrite).unwrap_err();
    assert_eq!(
        e,
        GrantError::BatchOp {
            index: 1,
            status: GntStatus::BadGntref
        }
    );
    assert_eq!(w.mapping_count(), 0, "ops 0 and 2 were undone");
    for r in s.refs() {
        assert_eq!(
            a.entry_flags(r).unwrap(),
            GTF_permit_access,
            "no pin left behind"
        );
    }
    // An injected failure of the last op of a good batch too.
    let refs: Vec<_> = s.refs().collect();
    w.fail_map_op(2, GNTST_general_error);
    let e = b.map(A, &refs, Access::ReadWrite).unwrap_err();
    assert_eq!(
        e,
        GrantError::BatchOp {
            index: 2,
            status: GntStatus::GeneralError
        }
    );
    assert_eq!(w.mapping_count(), 0);
    let m = b.map(A, &refs, Access::ReadWrite).unwrap();
    assert!(m.va() > va_before);
    assert_eq!(m.len(), 3);
    drop(m);
    drop(s);
    assert_eq!(a.stats().pending, 0);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

/// `GNTST_eagain` (the granter's frame is being paged in) is retried, op
/// by op, a bounded number of times; past that, the batch fails whole.
#[test]
fn map_retries_eagain_then_gives_up() {
    let (w, a, b, _c) = world();
    let s = a.share(B, 3, Access::ReadWrite).unwrap();
    let refs: Vec<_> = s.refs().collect();
    // The whole first batch, then the first retry of one op, say "again".
    w.eagain_map_ops(4);
    let calls = w.hypercalls();
    let m = b.map(A, &refs, Access::ReadWrite).unwrap();
    assert_eq!(m.len(), 3);
    assert_eq!(
        w.hypercalls() - calls,
        3,
        "one batch, then two retries of what said eagain"
    );
    m.page(2).unwrap().write(0, b"paged in").unwrap();
    let mut buf = [0u8; 8];
    s.page(2).unwrap().read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"paged in");
    drop(m);
    // A frame that never comes back.
    w.eagain_map_ops(u64::MAX);
    let e = b.map(A, &refs, Access::ReadWrite).unwrap_err();
    assert_eq!(
        e,
        GrantError::BatchOp {
            index: 0,
            status: GntStatus::Eagain
        }
    );
    assert_eq!(w.mapping_count(), 0);
    w.eagain_map_ops(0);
    let calls = w.hypercalls();
    let m = b.map(A, &refs, Access::ReadWrite).unwrap();
    assert_eq!(w.hypercalls() - calls, 1, "no retry without eagain");
    drop(m);
    drop(s);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn copy_reports_a_status_per_op() {
    let (w, a, b, _c) = world();
    let dst = a.share(B, 1, Access::ReadWrite).unwrap();
    let ro = a.share(B, 1, Access::ReadOnly).unwrap();
    ro.page(0).unwrap().write(0, b"readonly src").unwrap();
    let mine_page = b.alloc_page().unwrap();
    let mine = LocalFrame::of(&mine_page);
    let mine_mem = mine_page.mem();
    mine_mem.write(0, b"copied by Xen").unwrap();
    let (foreign_mfn, _) = w.peer_frame(C);
    // SAFETY: the fake refuses the foreign frame (what the test checks);
    // nothing is written to it.
    #[allow(unsafe_code)]
    let foreign = unsafe { LocalFrame::from_mfn(foreign_mfn) };
    let g = |gref, offset| CopyPtr::Gref {
        domid: A,
        gref,
        offset,
    };
    let f = |frame, offset| CopyPtr::Frame { frame, offset };
    let ops = [
        CopyOp {
            source: f(mine, 0),
            dest: g(dst.gref(0).unwrap(), 100),
            len: 13,
        },
        CopyOp {
            source: g(ro.gref(0).unwrap(), 0),
            dest: f(mine, 200),
            len: 12,
        },
        CopyOp {
            source: f(mine, 0),
            dest: g(ro.gref(0).unwrap(), 0),
            len: 4,
        },
        CopyOp {
            source: f(mine, 4000),
            dest: g(dst.gref(0).unwrap(), 0),
            len: 100,
        },
        CopyOp {
            source: f(mine, 0),
            dest: g(GrantRef(3333), 0),
            len: 1,
        },
        CopyOp {
            source: f(foreign, 0),
            dest: f(mine, 0),
            len: 1,
        },
    ];
    // More than one batch: repeat the ops.
    let many: Vec<CopyOp> = ops.iter().cycle().take(20).copied().collect();
    let mut st = std::vec![Ok(()); 20];
    b.copy(&many, &mut st).unwrap();
    let want = [
        Ok(()),
        Ok(()),
        Err(GntStatus::GeneralError),
        Err(GntStatus::BadCopyArg),
        Err(GntStatus::BadGntref),
        Err(GntStatus::BadPage),
    ];
    for (i, s) in st.iter().enumerate() {
        assert_eq!(*s, want[i % 6], "op {i}");
    }
    let mut buf = [0u8; 13];
    dst.page(0).unwrap().read(100, &mut buf).unwrap();
    assert_eq!(&buf, b"copied by Xen");
    mine_mem.read(200, &mut buf[..12]).unwrap();
    assert_eq!(&buf[..12], b"readonly src");
    assert_eq!(
        b.copy(&many, &mut st[..3]),
        Err(GrantError::InvalidArgument)
    );
    assert_eq!(b.dump_table(), Ok(()));
}

/// The page a transfer slot received (a test failure if nothing did).
fn received(slot: TransferSlot<'_, FakeXen>) -> fake::FakePage {
    match slot.poll().unwrap() {
        TransferPoll::Received(p) => p,
        TransferPoll::Waiting(_) => panic!("nothing arrived"),
    }
}

/// The landing place an accept-transfer entry names in its `frame`.
fn entry_frame(w: &FakeWorld, dom: DomId, r: GrantRef) -> u32 {
    w.table(dom)
        .load_u32(r.0 as usize * GNTENT_SIZE + GNTENT_FRAME, Ordering::Relaxed)
        .unwrap()
}

#[test]
fn transfer_state_machine() {
    let (w, a, b, _c) = world();
    // Cancel before anything is committed: the landing page's frame went
    // back to Xen, and the page comes back over a new, zeroed frame.
    let landing = page(&a);
    let landing_mfn = landing.mfn();
    landing.mem().write(0, b"old bytes").unwrap();
    let populated = w.populated();
    let slot = a.accept_transfer(B, landing).unwrap();
    let r = slot.gref();
    assert!(
        w.is_freed(landing_mfn),
        "the landing frame goes back to Xen at once"
    );
    assert_eq!(a.entry_flags(r).unwrap(), GTF_accept_transfer);
    assert_ne!(
        entry_frame(&w, A, r),
        0,
        "the entry names the landing place"
    );
    let back = match slot.cancel().map_err(|e| e.1).unwrap() {
        Cancelled::Withdrawn(p) => p,
        other => panic!("{other:?}"),
    };
    assert_ne!(back.mfn(), landing_mfn);
    assert_eq!(w.populated(), populated + 1);
    let mut buf = [0xAAu8; 9];
    back.mem().read(0, &mut buf).unwrap();
    assert_eq!(buf, [0; 9], "a new frame, zeroed");
    assert_eq!(a.entry_flags(r).unwrap(), 0);
    assert_eq!(a.stats().refs_used, 0);

    // Committed: the entry must be left alone until completed.
    let slot = a.accept_transfer(B, back).unwrap();
    let r = slot.gref();
    assert_eq!(
        w.transfer_commit(C, A, r),
        Err(GNTST_general_error),
        "only B may transfer"
    );
    let slot = match slot.poll().unwrap() {
        TransferPoll::Waiting(s) => s,
        TransferPoll::Received(_) => panic!("nothing sent yet"),
    };
    w.transfer_commit(B, A, r).unwrap();
    let (slot, e) = slot.cancel().unwrap_err();
    assert_eq!(e, GrantError::InUse(r));
    assert_eq!(
        a.entry_flags(r).unwrap(),
        GTF_accept_transfer | GTF_transfer_committed
    );
    let slot = match slot.poll().unwrap() {
        TransferPoll::Waiting(s) => s,
        TransferPoll::Received(_) => panic!("not completed yet"),
    };
    let (frame, mem) = w.peer_frame(B);
    mem.write(0, b"from B").unwrap();
    w.transfer_complete(A, r, frame);
    let got = received(slot);
    assert_eq!(got.mfn(), frame);
    let mut buf = [0u8; 6];
    got.mem().read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"from B", "the sender's bytes arrive with its frame");
    assert_eq!(a.stats().refs_used, 0);

    // GNTTABOP_transfer through the backend, B to A: B's page leaves its
    // map, its frame becomes A's, and B's pfn gets a new frame.
    let slot = a.accept_transfer(B, got).unwrap();
    let p = page(&b);
    p.mem().write(0, b"B's page").unwrap();
    let mfn = p.mfn();
    let populated = w.populated();
    b.transfer(p, A, slot.gref()).map_err(|_| ()).unwrap();
    assert_eq!(w.populated(), populated + 1, "B's pfn refilled");
    assert!(!w.is_freed(mfn));
    assert_eq!(w.owner(mfn), Some(A));
    let got = received(slot);
    assert_eq!(got.mfn(), mfn);
    let mut buf = [0u8; 8];
    got.mem().read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"B's page");
    drop(got);
    assert!(
        w.is_freed(mfn),
        "a received page is an ordinary page of A's"
    );

    // A transfer to an entry that does not accept it: Xen took the frame
    // and freed it (as the header says, lost); B's pfn is refilled.
    let p = page(&b);
    let mfn = p.mfn();
    let populated = w.populated();
    match b.transfer(p, A, GrantRef(20)) {
        Err(TransferError::Lost(GrantError::Status(GntStatus::GeneralError))) => {}
        other => panic!("{other:?}"),
    }
    assert!(w.is_freed(mfn));
    assert_eq!(w.populated(), populated + 1);
    // To a domain that does not exist: lost the same way.
    match b.transfer(page(&b), DomId(77), GrantRef(20)) {
        Err(TransferError::Lost(GrantError::Status(GntStatus::BadDomain))) => {}
        other => panic!("{other:?}"),
    }
    // A domain that is not real, or a page the backend cannot take out of
    // the map: the page comes back.
    match b.transfer(page(&b), DomId::SELF, GrantRef(20)) {
        Err(TransferError::Kept(_, GrantError::BadDomain(_))) => {}
        other => panic!("{other:?}"),
    }
    w.fail_vacate(true);
    let p = page(&b);
    let mfn = p.mfn();
    match b.transfer(p, A, GrantRef(20)) {
        Err(TransferError::Kept(p, GrantError::Hypercall(_))) => assert_eq!(p.mfn(), mfn),
        other => panic!("{other:?}"),
    }
    w.fail_vacate(false);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn a_received_page_can_be_given_away_again() {
    let (w, a, b, _c) = world();
    let slot = a.accept_transfer(B, page(&a)).unwrap();
    let p = page(&b);
    let mfn = p.mfn();
    b.transfer(p, A, slot.gref()).map_err(|_| ()).unwrap();
    let got = received(slot);
    got.mem().write(0, b"back to B").unwrap();
    let slot = b.accept_transfer(A, page(&b)).unwrap();
    a.transfer(got, B, slot.gref()).map_err(|_| ()).unwrap();
    let back = received(slot);
    assert_eq!(back.mfn(), mfn);
    assert_eq!(w.owner(mfn), Some(B));
    let mut buf = [0u8; 9];
    back.mem().read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"back to B");
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn a_dropped_transfer_slot_returns_a_completed_frame() {
    let (w, a, _b, _c) = world();
    let slot = a.accept_transfer(B, page(&a)).unwrap();
    let r = slot.gref();
    let (frame, _) = w.peer_frame(B);
    w.transfer_commit(B, A, r).unwrap();
    w.transfer_complete(A, r, frame);
    let populated = w.populated();
    drop(slot);
    assert!(w.is_freed(frame), "the frame went back to the allocator");
    assert_eq!(
        w.populated(),
        populated,
        "the frame that arrived filled the place"
    );
    assert_eq!(a.entry_flags(r).unwrap(), 0);
    assert_eq!(a.stats().refs_used, 0);
    // An offer nothing arrived in: its place is refilled and freed.
    let slot = a.accept_transfer(B, page(&a)).unwrap();
    drop(slot);
    assert_eq!(w.populated(), populated + 1);
    assert_eq!(a.stats().refs_used, 0);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

/// Found by `fuzz/fuzz_targets/grant_paths.rs`: a cancel whose refill
/// fails hands the slot back, but its reference must stay the slot's
/// until it ends: freed at once, it went to the next offer, and the first
/// slot's poll then took the page sent to the second one.
#[test]
fn a_slot_whose_cancel_failed_keeps_its_reference() {
    let (w, a, _b, _c) = world();
    let stale = a.accept_transfer(B, page(&a)).unwrap();
    let r = stale.gref();
    w.fail_populate(true);
    let (stale, e) = stale.cancel().unwrap_err();
    assert_eq!(e, GrantError::Memory(crate::mm::MemError::OutOfFrames));
    w.fail_populate(false);
    let next = a.accept_transfer(B, page(&a)).unwrap();
    assert_ne!(next.gref(), r, "the reference went to another offer");
    let (frame, _) = w.peer_frame(B);
    w.transfer_commit(B, A, next.gref()).unwrap();
    w.transfer_complete(A, next.gref(), frame);
    let stale = match stale.poll().unwrap() {
        TransferPoll::Waiting(s) => s,
        TransferPoll::Received(p) => panic!("took another slot's page {p:?}"),
    };
    assert_eq!(received(next).mfn(), frame);
    match stale.cancel().map_err(|e| e.1).unwrap() {
        Cancelled::Withdrawn(_) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(a.stats().refs_used, 0);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn a_dropped_slot_waits_for_a_committed_transfer_to_complete() {
    let (w, a, _b, _c) = world();
    let slot = a.accept_transfer(B, page(&a)).unwrap();
    let r = slot.gref();
    let (frame, _) = w.peer_frame(B);
    w.transfer_commit(B, A, r).unwrap();
    // Xen completes a little later, while the drop spins.
    let xen = {
        let w = w.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(2));
            w.transfer_complete(A, r, frame);
        })
    };
    drop(slot);
    xen.join().unwrap();
    assert!(
        w.is_freed(frame),
        "the page that arrived went back to the allocator"
    );
    assert_eq!(
        a.stats().refs_used,
        0,
        "the reference is free once Xen is done"
    );
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn a_dropped_slot_gives_up_on_a_transfer_xen_never_completes() {
    let (w, a, _b, _c) = world();
    let landing = page(&a);
    let slot = a.accept_transfer(B, landing).unwrap();
    let r = slot.gref();
    w.transfer_commit(B, A, r).unwrap();
    let populated = w.populated();
    drop(slot);
    // The reference and the landing place are leaked, not reused under
    // Xen's feet: nothing refilled, nothing freed.
    assert_eq!(a.stats().refs_used, 1);
    assert_eq!(w.populated(), populated);
    assert_eq!(
        a.entry_flags(r).unwrap(),
        GTF_accept_transfer | GTF_transfer_committed
    );
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn a_failed_transfer_hypercall_keeps_or_loses_the_page_as_xen_did() {
    let (w, a, b, _c) = world();
    let slot = a.accept_transfer(B, page(&a)).unwrap();
    // Refused before any op was processed: still ours, mapped again.
    w.fail_transfer_hypercall(Errno::EFAULT, false);
    let p = page(&b);
    let mfn = p.mfn();
    let p = match b.transfer(p, A, slot.gref()) {
        Err(TransferError::Kept(p, GrantError::Hypercall(Errno::EFAULT))) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!(p.mfn(), mfn);
    assert_eq!(w.owner(mfn), Some(B));
    // Failing after the op went through: the frame is gone.
    w.fail_transfer_hypercall(Errno::EFAULT, true);
    let populated = w.populated();
    match b.transfer(p, A, slot.gref()) {
        Err(TransferError::Lost(GrantError::Hypercall(Errno::EFAULT))) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(w.owner(mfn), Some(A));
    assert_eq!(w.populated(), populated + 1, "B's pfn refilled");
    match slot.poll().unwrap() {
        TransferPoll::Received(p) => assert_eq!(p.mfn(), mfn),
        TransferPoll::Waiting(_) => panic!("Xen completed it"),
    }
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn a_failed_refill_keeps_the_slot_and_its_place() {
    let (w, a, _b, _c) = world();
    let slot = a.accept_transfer(B, page(&a)).unwrap();
    let r = slot.gref();
    w.fail_populate(true);
    let (slot, e) = slot.cancel().unwrap_err();
    assert_eq!(e, GrantError::Memory(MemError::OutOfFrames));
    assert_eq!(
        a.entry_flags(r).unwrap(),
        0,
        "the offer itself was withdrawn"
    );
    // The reference stays the slot's until the slot ends (see
    // a_slot_whose_cancel_failed_keeps_its_reference).
    assert_eq!(a.stats().refs_used, 1);
    w.fail_populate(false);
    let populated = w.populated();
    drop(slot);
    assert_eq!(w.populated(), populated + 1, "the drop refilled the place");
    assert_eq!(a.stats().refs_used, 0);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn accept_transfer_failures_leave_no_reference_and_no_frame_behind() {
    let (w, a, _b, _c) = world();
    let landing = page(&a);
    let mfn = landing.mfn();
    w.fail_vacate(true);
    assert_eq!(
        a.accept_transfer(B, landing).map(|_| ()).unwrap_err(),
        GrantError::Hypercall(Errno::ENOMEM)
    );
    assert!(w.is_freed(mfn), "the landing page was freed");
    w.fail_vacate(false);
    assert_eq!(a.stats().refs_used, 0);
    // A table that cannot grow: no reference, and the landing page freed.
    let full = Grants::new(w.add_domain(DomId(9), 1, 1), 1).unwrap();
    let mut held = std::vec::Vec::new();
    while let Ok(s) = full.accept_transfer(B, page(&full)) {
        held.push(s);
    }
    let p = page(&full);
    let mfn = p.mfn();
    assert_eq!(
        full.accept_transfer(B, p).map(|_| ()).unwrap_err(),
        GrantError::TableFull
    );
    assert!(w.is_freed(mfn));
    drop(held);
    assert_eq!(full.stats().refs_used, 0);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn readonly_and_writable_transitions() {
    let (w, a, _b, _c) = world();
    let mut g = a
        .grant(B, page(&a), Access::ReadWrite)
        .map_err(|e| e.1)
        .unwrap();
    let r = g.gref();
    let (h, _) = w.peer_map(B, A, r, true).unwrap();
    assert_eq!(
        g.make_readonly(),
        Err(GrantError::InUse(r)),
        "refused while mapped writable"
    );
    w.peer_unmap(B, h).unwrap();
    let (h, _) = w.peer_map(B, A, r, false).unwrap();
    g.make_readonly().unwrap();
    assert_eq!(
        a.entry_flags(r).unwrap(),
        GTF_permit_access | GTF_readonly | GTF_reading
    );
    assert_eq!(w.peer_map(B, A, r, true).unwrap_err(), GNTST_general_error);
    g.make_writable().unwrap();
    assert_eq!(g.access(), Access::ReadWrite);
    let (h2, _) = w.peer_map(B, A, r, true).unwrap();
    w.peer_unmap(B, h).unwrap();
    w.peer_unmap(B, h2).unwrap();
    assert_eq!(a.entry_flags(r).unwrap(), GTF_permit_access);
    assert!(g.end_access().is_ok());
}

#[test]
fn bad_input_gives_typed_errors() {
    let (w, a, b, _c) = world();
    let (p, e) = a
        .grant(DomId::SELF, page(&a), Access::ReadWrite)
        .unwrap_err();
    assert_eq!(e, GrantError::BadDomain(DomId::SELF));
    drop(p);
    assert_eq!(
        a.share(DomId(0x7FF5), 1, Access::ReadWrite).unwrap_err(),
        GrantError::BadDomain(DomId(0x7FF5))
    );
    assert_eq!(
        a.share(B, 0, Access::ReadWrite).unwrap_err(),
        GrantError::InvalidArgument
    );
    assert_eq!(
        b.map(A, &[], Access::ReadWrite).unwrap_err(),
        GrantError::InvalidArgument
    );
    assert_eq!(
        b.map(DomId::SELF, &[GrantRef(8)], Access::ReadWrite)
            .unwrap_err(),
        GrantError::BadDomain(DomId::SELF)
    );
    {
        let mut g = a.inner.lock();
        assert_eq!(
            g.table.end_and_free(GrantRef(3)),
            Err(GrantError::ReservedRef(GrantRef(3)))
        );
        assert_eq!(
            g.table.end_and_free(GrantRef(1 << 20)),
            Err(GrantError::BadRef(GrantRef(1 << 20)))
        );
        assert_eq!(
            g.table.end_and_free(GrantRef(9)),
            Err(GrantError::DoubleFree(GrantRef(9)))
        );
        assert_eq!(
            g.table.entries.flags(GrantRef(1 << 20)),
            Err(GrantError::BadRef(GrantRef(1 << 20)))
        );
    }
    let t = EntryTable::new(crate::shared_mem::SharedMem::leak_zeroed(4096));
    assert_eq!(
        t.grant_access(GrantRef(8), B, Mfn(1 << 40), false),
        Err(GrantError::FrameTooLarge(Mfn(1 << 40)))
    );
    assert_eq!(
        t.grant_access(GrantRef(512), B, Mfn(1), false),
        Err(GrantError::BadRef(GrantRef(512)))
    );
    assert_eq!(a.stats().refs_used, 0);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

// The interleavings of end access with a peer's map, through every
// public path, are model-checked with loom in `loom_tests.rs`.

#[test]
fn end_access_vs_a_concurrent_peer_thread() {
    let w = FakeWorld::new();
    let a = Arc::new(Grants::new(w.add_domain(A, 1, 4), 1).unwrap());
    let table = w.table(A);
    let stop = Arc::new(AtomicBool::new(false));
    let peer_maps = Arc::new(AtomicU64::new(0));
    let violation = Arc::new(AtomicBool::new(false));
    let peer = {
        let (stop, peer_maps, violation) = (stop.clone(), peer_maps.clone(), violation.clone());
        std::thread::spawn(move || {
            use core::sync::atomic::Ordering::*;
            let off = 8 * GNTENT_SIZE;
            while !stop.load(Relaxed) {
                let seen = table.load_u16(off, Acquire).unwrap();
                if seen & GTF_permit_access == 0 || seen & GTF_reading != 0 {
                    continue;
                }
                if table
                    .cas_u16(off, seen, seen | GTF_reading | GTF_writing)
                    .unwrap()
                    .is_err()
                {
                    continue;
                }
                peer_maps.fetch_add(1, Relaxed);
                // While we hold the mapping the entry must stay valid.
                for _ in 0..50 {
                    let now = table.load_u16(off, Acquire).unwrap();
                    if now & GTF_permit_access == 0 {
                        violation.store(true, SeqCst);
                    }
                    core::hint::spin_loop();
                }
                let mut cur = table.load_u16(off, Acquire).unwrap();
                while let Err(now) = table
                    .cas_u16(off, cur, cur & !(GTF_reading | GTF_writing))
                    .unwrap()
                {
                    cur = now;
                }
            }
        })
    };
    let mut p = page(&a);
    let mut refused = 0u64;
    // At least 20,000 rounds, and on a loaded machine keep going (up to
    // 30 s) until the peer thread has really raced us a few times.
    let start = std::time::Instant::now();
    let mut round = 0u32;
    // Under Miri (which interleaves the threads itself) far fewer rounds.
    let (rounds, races) = if cfg!(miri) { (300, 1) } else { (20_000, 100) };
    while round < rounds
        || (peer_maps.load(core::sync::atomic::Ordering::Relaxed) < races
            && start.elapsed() < std::time::Duration::from_secs(30))
    {
        round += 1;
        let mut g = a.grant(B, p, Access::ReadWrite).map_err(|e| e.1).unwrap();
        assert_eq!(g.gref(), GrantRef(8));
        p = loop {
            match g.end_access() {
                Ok(p) => break p,
                Err((back, GrantError::InUse(_))) => {
                    refused += 1;
                    g = back;
                }
                Err((_, e)) => panic!("{e:?}"),
            }
        };
    }
    stop.store(true, core::sync::atomic::Ordering::Relaxed);
    peer.join().unwrap();
    assert!(
        !violation.load(core::sync::atomic::Ordering::SeqCst),
        "entry invalidated under a live mapping"
    );
    std::println!(
        "peer mapped {} times, end-access refused {refused} times",
        peer_maps.load(core::sync::atomic::Ordering::Relaxed)
    );
    assert!(
        peer_maps.load(core::sync::atomic::Ordering::Relaxed) > 0,
        "the race was exercised"
    );
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn access_changes_only_apply_to_permit_access_entries_and_are_idempotent() {
    let t = EntryTable::new(crate::shared_mem::SharedMem::leak_zeroed(2 * 4096));
    assert_eq!(t.capacity(), 2 * GNTENT_PER_FRAME as u32);
    assert_eq!(
        t.flags(GrantRef(1024)),
        Err(GrantError::BadRef(GrantRef(1024)))
    );
    let (free, transfer, ro) = (GrantRef(10), GrantRef(11), GrantRef(12));
    // A free entry and an accept-transfer entry are not access grants.
    for f in [EntryTable::make_readonly, EntryTable::make_writable] {
        assert_eq!(f(&t, free), Err(GrantError::InvalidArgument));
    }
    t.accept_transfer(transfer, B, 5).unwrap();
    for f in [EntryTable::make_readonly, EntryTable::make_writable] {
        assert_eq!(f(&t, transfer), Err(GrantError::InvalidArgument));
    }
    assert_eq!(t.flags(free).unwrap(), 0);
    assert_eq!(t.flags(transfer).unwrap(), GTF_accept_transfer);
    // Read-only twice stays read-only; writable twice stays writable.
    t.grant_access(ro, B, Mfn(77), true).unwrap();
    t.make_readonly(ro).unwrap();
    assert_eq!(t.flags(ro).unwrap(), GTF_permit_access | GTF_readonly);
    t.make_readonly(ro).unwrap();
    assert_eq!(t.flags(ro).unwrap(), GTF_permit_access | GTF_readonly);
    t.make_writable(ro).unwrap();
    t.make_writable(ro).unwrap();
    assert_eq!(t.flags(ro).unwrap(), GTF_permit_access);
}

#[test]
fn accept_transfer_refuses_a_domain_that_is_not_real() {
    let (w, a, _b, _c) = world();
    assert_eq!(
        a.accept_transfer(DomId::SELF, page(&a))
            .map(|_| ())
            .unwrap_err(),
        GrantError::BadDomain(DomId::SELF)
    );
    assert_eq!(a.stats().refs_used, 0, "no reference taken");
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn reclaim_reports_the_pages_still_pending() {
    let (w, a, _b, _c) = world();
    let g = a
        .grant(B, page(&a), Access::ReadWrite)
        .map_err(|e| e.1)
        .unwrap();
    let (h, _) = w.peer_map(B, A, g.gref(), true).unwrap();
    drop(g);
    assert_eq!(a.reclaim(), 1, "still mapped: kept");
    w.peer_unmap(B, h).unwrap();
    assert_eq!(a.reclaim(), 0);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn shared_pages_report_their_peer_access_and_what_they_still_hold() {
    let (w, a, _b, _c) = world();
    let mut s = a.share(C, 2, Access::ReadOnly).unwrap();
    assert_eq!((s.domid(), s.access()), (C, Access::ReadOnly));
    assert!(!s.is_empty());
    s.release(s.index(), 1).unwrap();
    assert!(!s.is_empty(), "page 1 is still held");
    s.release(s.index() + 4096, 1).unwrap();
    assert!(s.is_empty());
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
#[cfg_attr(
    miri,
    ignore = "1025 pages: the fake's per-free scan of the table makes it hours under Miri"
)]
fn by_default_one_peer_gets_three_quarters_of_the_share_limit() {
    let (w, a, _b, _c) = world();
    let rw = Access::ReadWrite;
    // 768 of 1024: enough for a vchan at the largest orders (513 pages).
    let to_b = a.share(B, 768, rw).unwrap();
    assert_eq!(
        a.share(B, 1, rw).unwrap_err(),
        GrantError::DomainLimitReached {
            domid: B,
            limit: 768,
            in_use: 768,
            requested: 1
        }
    );
    // The last quarter is left for the other peers.
    let to_c = a.share(C, 256, rw).unwrap();
    assert_eq!(
        a.share(C, 1, rw).unwrap_err(),
        GrantError::LimitReached {
            limit: 1024,
            in_use: 1024,
            requested: 1
        }
    );
    drop((to_b, to_c));
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn reserved_refs_grant_and_end_without_the_table() {
    let (w, a, b, _c) = world();
    let refs = a.reserve_refs(3).unwrap();
    assert_eq!((refs.len(), refs.available()), (3, 3));
    assert_eq!(a.stats().refs_used, 3, "taken from the table at once");
    let p = page(&a);
    let mfn = p.mfn();
    p.mem().write(0, b"batch").unwrap();
    let g = refs.grant(B, p, Access::ReadOnly).map_err(|e| e.1).unwrap();
    let r = g.gref();
    assert_eq!(refs.available(), 2);
    assert_eq!(g.access(), Access::ReadOnly);
    let t = a.inner.lock().table.entries;
    assert_eq!(
        t.read(r).unwrap(),
        (GTF_permit_access | GTF_readonly, B, mfn.0 as u32)
    );
    // The peer sees the page through the reference, read-only.
    assert_eq!(
        b.map(A, &[r], Access::ReadWrite).unwrap_err(),
        GrantError::BatchOp {
            index: 0,
            status: GntStatus::GeneralError
        }
    );
    let m = b.map(A, &[r], Access::ReadOnly).unwrap();
    let mut buf = [0u8; 5];
    m.page(0).unwrap().read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"batch");
    // Ending access is refused while mapped, and the owner comes back.
    let (g, e) = g.end_access().unwrap_err();
    assert_eq!(e, GrantError::InUse(r));
    assert_eq!(
        t.read(r).unwrap().0 & GTF_permit_access,
        GTF_permit_access,
        "entry left valid"
    );
    assert_eq!(refs.available(), 2);
    m.unmap().unwrap();
    let p = g.end_access().map_err(|e| e.1).unwrap();
    assert_eq!(p.mfn(), mfn);
    assert_eq!(t.read(r).unwrap().0, 0, "entry invalid again");
    assert_eq!(refs.available(), 3, "the reference is back in the batch");
    assert_eq!(a.stats().refs_used, 3, "and not in the table's free list");
    // Each reference is handed out once.
    let g1 = refs
        .grant(B, p, Access::ReadWrite)
        .map_err(|e| e.1)
        .unwrap();
    let g2 = refs
        .grant(B, page(&a), Access::ReadWrite)
        .map_err(|e| e.1)
        .unwrap();
    let g3 = refs
        .grant(B, page(&a), Access::ReadWrite)
        .map_err(|e| e.1)
        .unwrap();
    let mut seen = [g1.gref(), g2.gref(), g3.gref()];
    seen.sort();
    assert!(seen.windows(2).all(|w| w[0] != w[1]), "{seen:?}");
    let (_p, e) = refs.grant(B, page(&a), Access::ReadWrite).unwrap_err();
    assert_eq!(e, GrantError::NoReservedRef { reserved: 3 });
    drop((g1, g2, g3));
    assert_eq!(refs.available(), 3);
    drop(refs);
    assert_eq!(a.stats().refs_used, 0, "the batch gave its references back");
    assert_eq!(a.inner.lock().reserved, 0);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn a_reserved_grant_dropped_while_mapped_goes_pending_and_the_batch_shrinks() {
    let (w, a, _b, _c) = world();
    let refs = a.reserve_refs(2).unwrap();
    let g = refs
        .grant(B, page(&a), Access::ReadWrite)
        .map_err(|e| e.1)
        .unwrap();
    let r = g.gref();
    let (h, view) = w.peer_map(B, A, r, true).unwrap();
    let cap = a.inner.lock().pending.capacity();
    drop(g);
    assert_eq!(
        a.inner.lock().pending.capacity(),
        cap,
        "a drop must not allocate"
    );
    assert_eq!(a.stats().pending, 1, "kept while the peer maps it");
    assert_eq!(
        (refs.len(), refs.available()),
        (1, 1),
        "the reference went with the page"
    );
    view.write(0, b"peer still writes").unwrap();
    // The other reference still works.
    let g = refs
        .grant(B, page(&a), Access::ReadWrite)
        .map_err(|e| e.1)
        .unwrap();
    assert_ne!(g.gref(), r);
    let (_p, e) = refs.grant(B, page(&a), Access::ReadWrite).unwrap_err();
    assert_eq!(e, GrantError::NoReservedRef { reserved: 1 });
    drop(g);
    assert_eq!(refs.available(), 1);
    drop(refs);
    assert_eq!(a.stats().refs_used, 1, "only the pending page's reference");
    w.peer_unmap(B, h).unwrap();
    assert_eq!(a.reclaim(), 0);
    assert_eq!(a.stats().refs_used, 0);
    let g = a.inner.lock();
    assert_eq!((g.granted_pending, g.reserved), (0, 0));
    drop(g);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn reserved_refs_check_their_input_and_the_pending_limit() {
    let (w, a, _b, _c) = world();
    assert_eq!(a.reserve_refs(0).unwrap_err(), GrantError::InvalidArgument);
    let refs = a.reserve_refs(1).unwrap();
    let (_p, e) = refs
        .grant(DomId::SELF, page(&a), Access::ReadWrite)
        .unwrap_err();
    assert_eq!(e, GrantError::BadDomain(DomId::SELF));
    assert_eq!(refs.available(), 1, "a refused grant takes no reference");
    // A page whose frame does not fit an entry gives its reference back.
    w.set_next_mfn(1 << 40);
    let big = page(&a);
    assert_eq!(big.mfn(), Mfn(1 << 40));
    let (_p, e) = refs.grant(B, big, Access::ReadWrite).unwrap_err();
    assert_eq!(e, GrantError::FrameTooLarge(Mfn(1 << 40)));
    assert_eq!(refs.available(), 1);
    w.set_next_mfn(0x10_0000);
    assert!(!refs.is_empty());
    // Readonly <-> writable, as for Granted.
    let mut g = refs
        .grant(B, page(&a), Access::ReadWrite)
        .map_err(|e| e.1)
        .unwrap();
    let r = g.gref();
    let (h, _) = w.peer_map(B, A, r, true).unwrap();
    assert_eq!(
        g.make_readonly(),
        Err(GrantError::InUse(r)),
        "refused while mapped writable"
    );
    w.peer_unmap(B, h).unwrap();
    g.make_readonly().unwrap();
    assert_eq!(
        (a.entry_flags(r).unwrap(), g.access()),
        (GTF_permit_access | GTF_readonly, Access::ReadOnly)
    );
    assert_eq!(g.page().load_u8(0), Ok(0));
    g.make_writable().unwrap();
    assert_eq!(
        (a.entry_flags(r).unwrap(), g.access()),
        (GTF_permit_access, Access::ReadWrite)
    );
    drop(g);
    drop(refs);
    // At the pending limit no batch is handed out.
    a.set_pending_limit(1);
    let g = a
        .grant(B, page(&a), Access::ReadWrite)
        .map_err(|e| e.1)
        .unwrap();
    let (h, _) = w.peer_map(B, A, g.gref(), true).unwrap();
    drop(g);
    assert_eq!(
        a.reserve_refs(4).unwrap_err(),
        GrantError::PendingLimitReached {
            limit: 1,
            pending: 1
        }
    );
    assert_eq!(
        a.stats().refs_used,
        1,
        "the refused batch took no reference"
    );
    w.peer_unmap(B, h).unwrap();
    let refs = a.reserve_refs(4).unwrap();
    assert_eq!(a.stats().pending, 0, "reserving reclaims first");
    drop(refs);
    let g = a.inner.lock();
    assert_eq!((g.reserved, g.table.refs.used_count()), (0, 0));
}

#[test]
fn a_batch_larger_than_the_table_grows_it_or_is_refused_whole() {
    let (_w, a, _b, _c) = world();
    let per = GNTENT_PER_FRAME as u32;
    let before = a.stats();
    let refs = a.reserve_refs(per).unwrap();
    assert!(
        a.stats().nr_frames > before.nr_frames,
        "grown for the batch"
    );
    // A reference from the grown part works through the batch's view.
    let gs: Vec<_> = (0..per)
        .map(|_| {
            refs.grant(B, page(&a), Access::ReadWrite)
                .map_err(|e| e.1)
                .unwrap()
        })
        .collect();
    assert!(gs.iter().any(|g| g.gref().0 >= before.nr_frames * per));
    drop(gs);
    drop(refs);
    let max_refs = a.stats().max_frames * per;
    assert_eq!(a.reserve_refs(max_refs).unwrap_err(), GrantError::TableFull);
    let g = a.inner.lock();
    assert_eq!((g.reserved, g.table.refs.used_count()), (0, 0));
}

#[test]
fn a_share_that_fails_midway_gives_back_its_references_and_pages() {
    let (w, a, _b, _c) = world();
    let before = a.stats();
    // The first page's frame fits a v1 entry, the second's does not.
    w.set_next_mfn(u32::MAX as u64);
    assert_eq!(
        a.share(B, 3, Access::ReadWrite).unwrap_err(),
        GrantError::FrameTooLarge(Mfn(1 << 32))
    );
    assert!(w.is_freed(Mfn(u32::MAX as u64)), "the first page was freed");
    let after = a.stats();
    assert_eq!(
        (after.refs_used, after.shared_pages),
        (before.refs_used, before.shared_pages)
    );
    let g = a.inner.lock();
    assert_eq!(g.reserved, 0);
    assert!(g.shared_per_domain.is_empty());
    drop(g);
    w.set_next_mfn(0x10_0000);
    let s = a.share(B, 3, Access::ReadWrite).unwrap();
    assert_eq!(a.stats().refs_used, 3);
    drop(s);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn shared_and_mapped_pages_hold_a_ring_across_their_pages() {
    use crate::ring::RingMemory;
    let (_w, a, b, _c) = world();
    let shared = a.share(B, 2, Access::ReadWrite).unwrap();
    let refs: Vec<_> = shared.refs().collect();
    let mapped = b.map(A, &refs, Access::ReadWrite).unwrap();
    assert_eq!(
        (shared.ring_len(), mapped.ring_len()),
        (2 * PAGE_SIZE, 2 * PAGE_SIZE)
    );
    assert_eq!(shared.ring_mem().len(), PAGE_SIZE, "the header page");
    // A slot straddling the page end, written on one side, read on the other.
    shared.ring_write(PAGE_SIZE - 3, b"across");
    let mut got = [0u8; 6];
    mapped.ring_read(PAGE_SIZE - 3, &mut got);
    assert_eq!(&got, b"across");
    mapped.ring_write(2 * PAGE_SIZE - 4, b"back");
    let mut got = [0u8; 4];
    shared.ring_read(2 * PAGE_SIZE - 4, &mut got);
    assert_eq!(&got, b"back");
}

#[test]
fn a_batch_whose_references_all_went_pending_is_empty() {
    let (w, a, _b, _c) = world();
    let refs = a.reserve_refs(1).unwrap();
    let g = refs
        .grant(B, page(&a), Access::ReadWrite)
        .map_err(|e| e.1)
        .unwrap();
    let (h, _) = w.peer_map(B, A, g.gref(), true).unwrap();
    assert!(!refs.is_empty());
    drop(g);
    assert!(
        refs.is_empty(),
        "its one reference went pending with the page"
    );
    assert_eq!(refs.available(), 0);
    drop(refs);
    w.peer_unmap(B, h).unwrap();
    assert_eq!(a.reclaim(), 0);
}

/// A notify port that looks at its own grant table, as a safe
/// `NotifyPort` may: each signal and the handle's drop record whether the
/// table was free (and then what `stats()` says) or still locked by the
/// release that called it. `try_lock` rather than `stats()` alone, so
/// that a release holding the lock fails the test instead of hanging it.
struct TableInspector<'g> {
    grants: &'g Grants<fake::FakeXen>,
    log: &'g std::sync::Mutex<Vec<(&'static str, Option<u32>)>>,
}

impl TableInspector<'_> {
    fn look(&self, what: &'static str) {
        let seen = match self.grants.inner.try_lock() {
            None => None,
            Some(g) => {
                drop(g);
                Some(self.grants.stats().shared_pages)
            }
        };
        // Poison-tolerant: this runs in drops, also while a failed
        // assertion unwinds.
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((what, seen));
    }
}

impl crate::event::NotifyPort for TableInspector<'_> {
    fn port(&self) -> EvtchnPort {
        EvtchnPort(5)
    }
    fn notify(&self) -> Result<(), crate::event::EventError> {
        self.look("notify");
        Ok(())
    }
}

impl Drop for TableInspector<'_> {
    fn drop(&mut self) {
        self.look("drop");
    }
}

#[test]
fn unmap_notify_ports_run_with_the_table_unlocked() {
    let (w, a, b, _c) = world();
    let log = std::sync::Mutex::new(Vec::new());
    let took = || std::mem::take(&mut *log.lock().unwrap());
    let port = |g| {
        Arc::new(TableInspector {
            grants: g,
            log: &log,
        }) as Arc<dyn crate::event::NotifyPort + '_>
    };
    // A share released in part, then dropped: both paths call the port
    // and let go of its handle.
    let mut s = a.share(B, 3, Access::ReadWrite).unwrap();
    for i in 0..3 {
        s.set_unmap_notify(
            i,
            UnmapNotify {
                clear_byte: Some(0),
                send_event: Some(port(&a)),
            },
        )
        .unwrap();
    }
    let r = s.release_pages(1, 1).unwrap();
    assert_eq!((r.freed, r.pending, r.notify_failed), (1, 0, None));
    assert_eq!(
        took(),
        std::vec![("notify", Some(3)), ("drop", Some(3))],
        "the port ran and was dropped with the table free (page still counted)"
    );
    drop(s);
    assert_eq!(
        took(),
        std::vec![
            ("notify", Some(2)),
            ("drop", Some(2)),
            ("notify", Some(2)),
            ("drop", Some(2)),
        ]
    );
    assert_eq!(a.stats().shared_pages, 0);
    // A mapping's unmap (already after the unlock) stays that way.
    let s = a.share(B, 1, Access::ReadWrite).unwrap();
    let mut m = b.map(A, &[s.gref(0).unwrap()], Access::ReadWrite).unwrap();
    m.set_unmap_notify(UnmapNotify {
        clear_byte: None,
        send_event: Some(port(&b)),
    })
    .unwrap();
    m.unmap().unwrap();
    assert_eq!(took(), std::vec![("notify", Some(0)), ("drop", Some(0))]);
    drop(s);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}
