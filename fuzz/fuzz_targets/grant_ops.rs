//! Fuzzes the grant free list and the share/release API: random
//! sequences of grant, end-access, share, partial release, drop, limit
//! changes, and a peer (B) that maps any reference it likes, keeps
//! mappings across our release and unmaps late, plus a third domain (C)
//! guessing references, all against the fake hypervisor. After every
//! step:
//! - no reference is held twice, none is reserved (< 8), each held one is
//!   a valid entry; the grant stats add up;
//! - a reference the peer still maps from an earlier owner is never
//!   handed out again (pending pages are never reused);
//! - a frame the peer maps is never freed, C never maps anything, B
//!   never maps a free reference or a read-only one writable;
//! - the fake saw no violation (frame freed while mapped or granted).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::{HashMap, HashSet};
use xenpv::abi::grant_table::{GTF_permit_access, GTF_type_mask, GNTENT_PER_FRAME};
use xenpv::grant::fake::{FakePage, FakeWorld, FakeXen};
use xenpv::grant::refs::NR_RESERVED;
use xenpv::grant::{Access, GrantError, Granted, Grants, SharedPages};
use xenpv::{DomId, GrantRef, Mfn};
use xenpv_fuzz::Input;

const A: DomId = DomId(1);
const B: DomId = DomId(2);
const C: DomId = DomId(3);

/// A mapping B holds.
struct PeerMap {
    handle: u32,
    gref: GrantRef,
    /// The frame, when the owner exposes it (share API).
    mfn: Mfn,
    /// The owner has let go of the reference since (it is pending).
    stale: bool,
}

fn page(g: &Grants<FakeXen>) -> FakePage {
    g.alloc_page().expect("fake pages never run out")
}

fn pick<T>(v: &[T], i: u8) -> Option<usize> {
    (!v.is_empty()).then(|| i as usize % v.len())
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let w = FakeWorld::new();
    let max_frames = 1 + (input.u8() % 3) as u32;
    let a = Grants::new(w.add_domain(A, 1, max_frames), 1).unwrap();
    let _b = Grants::new(w.add_domain(B, 1, 1), 1).unwrap();
    let _c = Grants::new(w.add_domain(C, 1, 1), 1).unwrap();
    a.set_share_limit(input.u8() as u32 * 4);

    let mut granted: Vec<Granted<'_, FakeXen>> = Vec::new();
    let mut shared: Vec<SharedPages<'_, FakeXen>> = Vec::new();
    let mut spare: Vec<FakePage> = Vec::new();
    let mut maps: Vec<PeerMap> = Vec::new();

    while !input.is_empty() {
        let op = input.u8();
        let x = input.u8();
        match op % 12 {
            0 => {
                let p = spare.pop().unwrap_or_else(|| page(&a));
                let acc = if x & 1 == 0 {
                    Access::ReadWrite
                } else {
                    Access::ReadOnly
                };
                match a.grant(B, p, acc) {
                    Ok(g) => granted.push(g),
                    Err((p, e)) => {
                        match e {
                            GrantError::TableFull => {}
                            GrantError::PendingLimitReached { limit, pending } => {
                                assert!(pending >= limit)
                            }
                            e => panic!("{e:?}"),
                        }
                        spare.push(p);
                    }
                }
            }
            1 => {
                if let Some(i) = pick(&granted, x) {
                    let g = granted.swap_remove(i);
                    match g.end_access() {
                        Ok(p) => spare.push(p),
                        Err((g, e)) => {
                            assert_eq!(e, GrantError::InUse(g.gref()));
                            assert!(
                                maps.iter().any(|m| m.gref == g.gref()),
                                "InUse with no mapping"
                            );
                            granted.push(g);
                        }
                    }
                }
            }
            2 => {
                // Dropping an owner: ends access or parks the page.
                if let Some(i) = pick(&granted, x) {
                    drop(granted.swap_remove(i));
                }
            }
            3 => {
                let n = 1 + (x % 8) as u32;
                let acc = if x & 0x80 == 0 {
                    Access::ReadWrite
                } else {
                    Access::ReadOnly
                };
                match a.share(B, n, acc) {
                    Ok(s) => shared.push(s),
                    Err(GrantError::LimitReached {
                        limit,
                        in_use,
                        requested,
                    }) => {
                        assert_eq!(requested, n);
                        assert!(in_use + n > limit);
                    }
                    Err(GrantError::DomainLimitReached {
                        domid,
                        limit,
                        in_use,
                        requested,
                    }) => {
                        assert_eq!((domid, requested), (B, n));
                        assert!(in_use + n > limit);
                    }
                    Err(e) => assert_eq!(e, GrantError::TableFull),
                }
            }
            4 => {
                if let Some(i) = pick(&shared, x) {
                    let s = &mut shared[i];
                    let first = input.u8() as u64 % (s.len() as u64 + 1);
                    let count = (input.u8() % 4) as u32;
                    let skew = if input.u8() & 7 == 0 { 1 } else { 0 };
                    let index = s.index() + first * 4096 + skew;
                    let held_before = s.refs().count();
                    match s.release(index, count) {
                        Ok(r) => assert_eq!(
                            (r.freed + r.pending) as usize,
                            held_before - s.refs().count()
                        ),
                        Err(e) => {
                            assert_eq!(e, GrantError::NotHeld { index, count });
                            assert_eq!(
                                held_before,
                                s.refs().count(),
                                "a refused release changed nothing"
                            );
                        }
                    }
                }
            }
            5 => {
                if let Some(i) = pick(&shared, x) {
                    drop(shared.swap_remove(i));
                }
            }
            6 | 7 => {
                // B maps a reference of A's: a held one, or a guess.
                let held: Vec<GrantRef> = granted
                    .iter()
                    .map(|g| g.gref())
                    .chain(shared.iter().flat_map(|s| s.refs()))
                    .collect();
                let r = match pick(&held, x) {
                    Some(i) if op & 0x80 == 0 => held[i],
                    _ => GrantRef(input.u16() as u32 % (max_frames * GNTENT_PER_FRAME as u32 + 8)),
                };
                let writable = op & 0x40 != 0;
                let flags_before = a.entry_flags(r).unwrap_or(0);
                if let Ok((h, mem)) = w.peer_map(B, A, r, writable) {
                    let valid = flags_before & GTF_type_mask == GTF_permit_access;
                    assert!(valid, "B mapped ref {r:?} with flags {flags_before:#x}");
                    assert!(r.0 >= NR_RESERVED, "B mapped a reserved ref");
                    let owned_ro = granted
                        .iter()
                        .any(|g| g.gref() == r && g.access() == Access::ReadOnly)
                        || shared
                            .iter()
                            .any(|s| s.access() == Access::ReadOnly && s.refs().any(|x| x == r));
                    assert!(!(writable && owned_ro), "writable map of a read-only grant");
                    let _ = mem.write(0, b"B");
                    let mfn = held_mfn(&granted, &shared, r)
                        .or_else(|| maps.iter().find(|m| m.gref == r).map(|m| m.mfn));
                    maps.push(PeerMap {
                        handle: h,
                        gref: r,
                        mfn: mfn.unwrap_or(Mfn(0)),
                        stale: false,
                    });
                }
            }
            8 => {
                if let Some(i) = pick(&maps, x) {
                    let m = maps.swap_remove(i);
                    w.peer_unmap(B, m.handle).expect("our own mapping");
                }
            }
            9 => {
                // C guesses: it was granted nothing.
                let r = GrantRef(input.u16() as u32 % (max_frames * GNTENT_PER_FRAME as u32 + 8));
                assert!(w.peer_map(C, A, r, x & 1 == 0).is_err(), "C mapped {r:?}");
            }
            10 => {
                let _ = a.reclaim();
            }
            _ => a.set_share_limit(x as u32 * 4),
        }
        check(&w, &a, &granted, &shared, &mut maps);
    }
    // Tear down: B unmaps everything, we drop everything; all reclaimed.
    for m in maps.drain(..) {
        w.peer_unmap(B, m.handle).unwrap();
    }
    drop(granted);
    drop(shared);
    assert_eq!(a.reclaim(), 0);
    let s = a.stats();
    assert_eq!((s.refs_used, s.pending, s.shared_pages), (0, 0, 0), "{s:?}");
    assert!(w.violations().is_empty(), "{:?}", w.violations());
});

fn held_mfn(
    granted: &[Granted<'_, FakeXen>],
    shared: &[SharedPages<'_, FakeXen>],
    r: GrantRef,
) -> Option<Mfn> {
    if let Some(g) = granted.iter().find(|g| g.gref() == r) {
        let _ = g;
        return None; // Granted does not expose its frame; B's view stands in.
    }
    shared.iter().find_map(|s| {
        (0..s.len())
            .find(|&i| s.gref(i) == Some(r))
            .and_then(|i| s.mfn(i))
    })
}

fn check(
    w: &FakeWorld,
    a: &Grants<FakeXen>,
    granted: &[Granted<'_, FakeXen>],
    shared: &[SharedPages<'_, FakeXen>],
    maps: &mut [PeerMap],
) {
    let mut held = HashSet::new();
    for r in granted
        .iter()
        .map(|g| g.gref())
        .chain(shared.iter().flat_map(|s| s.refs()))
    {
        assert!(r.0 >= NR_RESERVED, "reserved ref {r:?} handed out");
        assert!(held.insert(r), "ref {r:?} handed out twice");
        let f = a.entry_flags(r).unwrap();
        assert_eq!(
            f & GTF_type_mask,
            GTF_permit_access,
            "held ref {r:?} not valid: {f:#x}"
        );
    }
    // A reference B maps is either held by the owner that granted it or
    // pending: its entry stays valid, and its frame is not freed.
    let mut mapped_refs: HashMap<GrantRef, u32> = HashMap::new();
    for m in maps.iter_mut() {
        let (r, mfn) = (m.gref, m.mfn);
        *mapped_refs.entry(r).or_default() += 1;
        // Pending pages are never reused: once its owner let go, a
        // reference B still maps must not be handed out again.
        if !held.contains(&r) {
            m.stale = true;
        }
        assert!(
            !(m.stale && held.contains(&r)),
            "ref {r:?} reused while B still maps it"
        );
        let f = a.entry_flags(r).unwrap();
        assert_eq!(
            f & GTF_type_mask,
            GTF_permit_access,
            "mapped ref {r:?} was invalidated"
        );
        if mfn.0 != 0 {
            assert!(!w.is_freed(mfn), "frame {mfn:?} freed while B maps it");
        }
    }
    let s = a.stats();
    let held_pages = shared.iter().map(|s| s.refs().count() as u32).sum::<u32>();
    assert_eq!(s.refs_used, held.len() as u32 + s.pending, "{s:?}");
    assert_eq!(
        s.refs_used + s.refs_free,
        s.nr_frames * GNTENT_PER_FRAME as u32 - NR_RESERVED,
        "{s:?}"
    );
    assert!(
        s.shared_pages >= held_pages && s.shared_pages <= held_pages + s.pending,
        "{s:?}"
    );
    // Every pending page is one B still maps (or one that a grant
    // operation has not reclaimed yet).
    let pending_mapped = mapped_refs.keys().filter(|r| !held.contains(r)).count() as u32;
    assert!(
        pending_mapped <= s.pending,
        "a mapped page was freed: {s:?}"
    );
    assert!(w.violations().is_empty(), "{:?}", w.violations());
    // The table never grew past its maximum.
    assert!(s.nr_frames <= s.max_frames);
}
