//! Fuzzes xenpv's own grant paths that `grant_ops` does not: mapping a
//! peer's grants (`Grants::map`, batched, all or nothing, with EAGAIN
//! retries and unmap notifications), `GNTTABOP_copy` batches, page
//! transfers both ways (`accept_transfer`, `TransferSlot::poll`/
//! `cancel`/drop, `Grants::transfer`) and `ReservedRefs`, against a peer
//! B that grants us pages honestly or writes any flags, domid and frame
//! into its own table, commits transfers into our slots and completes
//! them (or not), guesses references, and maps what we grant through a
//! reserved batch while we end or restrict it. Checks:
//! - a map succeeds only when every reference is a live grant of B's to
//!   us (writable ones for a writable map), and then always; a failed
//!   map leaves no mapping behind and names its first bad op; read-only
//!   mappings refuse writes; unmap signals the notify port;
//! - a copy batch gives each op the status it gets alone, whatever the
//!   batching, and refuses a short status slice; a copy moves the bytes;
//! - a transfer slot is Waiting until Xen completes, refuses to cancel
//!   while committed, and hands over the sender's frame and bytes; a page
//!   we give away is the receiver's, or comes back (Kept), or is gone;
//! - a reserved batch accounts for every reference (free + granted ==
//!   held, shrinking only for a grant dropped while mapped), ends access
//!   only when unmapped, never restricts a page mapped writable;
//! - after every step the table's counters add up and the fake saw no
//!   frame freed while mapped or granted.
#![no_main]

use core::sync::atomic::Ordering;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use xenpv::abi::grant_table::*;
use xenpv::event::Port;
use xenpv::grant::fake::{FakePage, FakeWorld, FakeXen};
use xenpv::grant::refs::NR_RESERVED;
use xenpv::grant::{
    Access, Cancelled, CopyOp, CopyPtr, GntStatus, GrantError, Granted, Grants, LocalFrame,
    MappedPages, ReservedGrant, SharePage, TransferError, TransferPoll, TransferSlot, UnmapNotify,
};
use xenpv::shared_mem::SharedMem;
use xenpv::{DomId, GrantRef, Mfn};
use xenpv_fuzz::{Events, Input};

const A: DomId = DomId(1);
const B: DomId = DomId(2);

fn pick<T>(v: &[T], i: u8) -> Option<usize> {
    (!v.is_empty()).then(|| i as usize % v.len())
}

/// B's entry `r` as Xen reads it: (flags, domid, frame).
fn entry(table: &SharedMem<'static>, r: GrantRef) -> Option<(u16, u16, u32)> {
    let o = (r.0 as usize).checked_mul(GNTENT_SIZE)?;
    Some((
        table.load_u16(o, Ordering::Relaxed).ok()?,
        table.load_u16(o + GNTENT_DOMID, Ordering::Relaxed).ok()?,
        table.load_u32(o + GNTENT_FRAME, Ordering::Relaxed).ok()?,
    ))
}

/// Whether Xen lets A map (or copy through) B's `r` (`write`: writably).
fn grants_a(w: &FakeWorld, table: &SharedMem<'static>, r: GrantRef, write: bool) -> bool {
    let Some((flags, domid, frame)) = entry(table, r) else {
        return false;
    };
    r.0 < GNTENT_PER_FRAME as u32
        && flags & GTF_type_mask == GTF_permit_access
        && domid == A.0
        && !(write && flags & GTF_readonly != 0)
        && w.owner(Mfn(frame as u64)) == Some(B)
        && !w.is_freed(Mfn(frame as u64))
}

fn check(w: &FakeWorld, a: &Grants<FakeXen>) {
    let s = a.stats();
    assert_eq!(
        s.refs_used + s.refs_free,
        s.nr_frames * GNTENT_PER_FRAME as u32 - NR_RESERVED,
        "{s:?}"
    );
    assert!(s.nr_frames <= s.max_frames);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let w = FakeWorld::new();
    let a = Grants::new(w.add_domain(A, 1, 2), 1).unwrap();
    let b = Grants::new(w.add_domain(B, 1, 1), 1).unwrap();
    let b_table = w.table(B);
    // A frame of B's that nothing frees, for the entries B forges.
    let (scratch, _) = w.peer_frame(B);
    let events = Events::new();
    let port = Arc::new(Port::alloc_unbound(&events, B).unwrap());

    let n = input.u8() % 6;
    let rr = match a.reserve_refs(n as u32) {
        Ok(rr) => {
            assert!(n > 0);
            assert_eq!((rr.len(), rr.available()), (n as u32, n as u32));
            Some(rr)
        }
        Err(e) => {
            assert_eq!((n, e), (0, GrantError::InvalidArgument));
            None
        }
    };

    // B's honest grants to us; our mappings; our pages; transfer slots
    // (ours, with the frame B committed, if any); B's slots; reserved
    // grants and B's mappings of them (ref, handle, writable).
    let mut b_grants: Vec<Granted<'_, FakeXen>> = Vec::new();
    let mut maps: Vec<MappedPages<'_, FakeXen>> = Vec::new();
    let mut pages: Vec<FakePage> = Vec::new();
    let mut slots: Vec<(TransferSlot<'_, FakeXen>, bool)> = Vec::new();
    let mut b_slots: Vec<TransferSlot<'_, FakeXen>> = Vec::new();
    let mut reserved: Vec<ReservedGrant<'_, FakeXen>> = Vec::new();
    let mut b_maps: Vec<(GrantRef, u32, bool)> = Vec::new();
    let mut rr_len = rr.as_ref().map_or(0, |r| r.len());
    let mut xen_faults = false;

    while !input.is_empty() {
        let op = input.u8();
        let x = input.u8();
        if op % 16 == 14 && x % 4 < 3 {
            // Xen failing (not the peer): from here, pages may be lost.
            xen_faults = true;
        }
        match op % 16 {
            0 => {
                // B grants us a page.
                let p = b.alloc_page().unwrap();
                let _ = p.mem().write(0, &[x; 16]);
                let acc = if x & 1 == 0 {
                    Access::ReadWrite
                } else {
                    Access::ReadOnly
                };
                if let Ok(g) = b.grant(A, p, acc) {
                    b_grants.push(g);
                }
            }
            1 => {
                // B ends a grant (refused while we map it) or drops it.
                if let Some(i) = pick(&b_grants, x) {
                    let g = b_grants.swap_remove(i);
                    if op & 0x80 == 0 {
                        if let Err((g, e)) = g.end_access() {
                            assert_eq!(e, GrantError::InUse(g.gref()));
                            b_grants.push(g);
                        }
                    }
                }
            }
            2 => {
                // B writes its own table: any entry, any value.
                let r = input.u8() as usize % 64;
                let off = r * GNTENT_SIZE;
                match x % 3 {
                    0 => b_table
                        .store_u16(off, input.u16(), Ordering::Relaxed)
                        .unwrap(),
                    1 => b_table
                        .store_u16(off + GNTENT_DOMID, input.u16(), Ordering::Relaxed)
                        .unwrap(),
                    _ => {
                        // A frame of ours, one of B's (set aside for this:
                        // aliasing the page of one of B's own grants would
                        // be B's bug, not ours), or a number.
                        let mut f = match input.u8() % 3 {
                            0 => pages.first().map_or(0, |p| p.mfn().0 as u32),
                            1 => scratch.0 as u32,
                            _ => input.u32(),
                        };
                        if b_grants
                            .iter()
                            .any(|g| entry(&b_table, g.gref()).is_some_and(|e| e.2 == f))
                        {
                            f = scratch.0 as u32;
                        }
                        b_table
                            .store_u32(off + GNTENT_FRAME, f, Ordering::Relaxed)
                            .unwrap()
                    }
                }
            }
            3 | 4 => {
                // We map 1-3 of B's references (granted ones or guesses).
                let k = 1 + x as usize % 3;
                let refs: Vec<GrantRef> = (0..k)
                    .map(|_| {
                        let c = input.u8();
                        match pick(&b_grants, c) {
                            Some(i) if c & 0x80 == 0 => b_grants[i].gref(),
                            _ => GrantRef(c as u32 % 72),
                        }
                    })
                    .collect();
                let write = op & 0x80 == 0;
                let acc = if write {
                    Access::ReadWrite
                } else {
                    Access::ReadOnly
                };
                let eagain = input.u8() % 16;
                if eagain > 12 {
                    w.eagain_map_ops((eagain - 12) as u64 * 4);
                }
                let fail = input.u8();
                if fail > 0xf0 {
                    w.fail_map_op((fail & 3) as u64, GNTST_bad_page);
                }
                let valid: Vec<bool> = refs
                    .iter()
                    .map(|&r| grants_a(&w, &b_table, r, write))
                    .collect();
                let before = w.mapping_count();
                match a.map(B, &refs, acc) {
                    Ok(m) => {
                        assert!(valid.iter().all(|&v| v), "mapped {refs:?} ({valid:?})");
                        assert_eq!(w.mapping_count(), before + k);
                        assert_eq!((m.len(), m.refs()), (k, &refs[..]));
                        let mut buf = [0u8; 8];
                        m.read_at(k * 4096 - 8, &mut buf).unwrap();
                        assert!(m.read_at(k * 4096 - 7, &mut buf).is_err());
                        assert_eq!(m.write_at(0, b"from A").is_ok(), write);
                        maps.push(m);
                    }
                    Err(e) => {
                        assert_eq!(w.mapping_count(), before, "a failed map left mappings");
                        let forced = eagain > 12 || fail > 0xf0;
                        match e {
                            GrantError::BatchOp { index, .. } if !forced => {
                                assert_eq!(Some(index), valid.iter().position(|&v| !v), "{e:?}")
                            }
                            GrantError::BatchOp { .. } => {}
                            e => panic!("{e:?}"),
                        }
                        if !forced {
                            assert!(!valid.iter().all(|&v| v), "refused {refs:?}: {e:?}");
                        }
                    }
                }
                w.eagain_map_ops(0);
                w.fail_map_op(u64::MAX / 2, 0);
            }
            5 => {
                // Unmap, with a notification now and then.
                if let Some(i) = pick(&maps, x) {
                    let mut m = maps.swap_remove(i);
                    let before = w.mapping_count();
                    let sends = events.sends();
                    let at = input.u16() as usize % (m.len() * 4096 + 8);
                    let notify = UnmapNotify {
                        clear_byte: (op & 0x80 != 0).then_some(at),
                        send_event: (op & 0x40 != 0).then(|| port.clone() as _),
                    };
                    let bad = notify
                        .clear_byte
                        .is_some_and(|o| o >= m.len() * 4096 || m.access() == Access::ReadOnly);
                    let set = m.set_unmap_notify(notify);
                    assert_eq!(set.is_err(), bad, "{set:?}");
                    let len = m.len();
                    assert_eq!(m.unmap(), Ok(()));
                    assert_eq!(w.mapping_count(), before - len);
                    if !bad && op & 0x40 != 0 {
                        assert_eq!(events.sends(), sends + 1, "no unmap event");
                    }
                }
            }
            6 => {
                // A copy batch: each op gets the status it gets alone.
                let nops = 1 + x as usize % 20;
                if pages.is_empty() {
                    pages.push(a.alloc_page().unwrap());
                }
                let mut ops = Vec::new();
                for _ in 0..nops {
                    let end = |input: &mut Input<'_>| {
                        let c = input.u8();
                        let offset = input.u16() % 4200;
                        match c % 3 {
                            0 => CopyPtr::Frame {
                                frame: LocalFrame::of(&pages[c as usize % pages.len()]),
                                offset,
                            },
                            1 => CopyPtr::Gref {
                                domid: B,
                                gref: pick(&b_grants, c)
                                    .map_or(GrantRef(c as u32), |i| b_grants[i].gref()),
                                offset,
                            },
                            _ => CopyPtr::Gref {
                                domid: if c & 0x80 == 0 { B } else { DomId(9) },
                                gref: GrantRef(input.u8() as u32 % 80),
                                offset,
                            },
                        }
                    };
                    let source = end(&mut input);
                    let dest = end(&mut input);
                    ops.push(CopyOp {
                        source,
                        dest,
                        len: input.u16() % 4200,
                    });
                }
                let mut alone = Vec::new();
                for op in &ops {
                    let mut st = [Ok(())];
                    a.copy(core::slice::from_ref(op), &mut st).unwrap();
                    let crosses = |p: CopyPtr<'_>| {
                        let o = match p {
                            CopyPtr::Gref { offset, .. } | CopyPtr::Frame { offset, .. } => offset,
                        };
                        o as usize + op.len as usize > 4096
                    };
                    if crosses(op.source) || crosses(op.dest) {
                        assert_eq!(st[0], Err(GntStatus::BadCopyArg));
                    }
                    if let (Ok(()), CopyPtr::Frame { frame, offset }, CopyPtr::Gref { gref, .. }) =
                        (st[0], op.source, op.dest)
                    {
                        assert!(grants_a(&w, &b_table, gref, true), "copied into {gref:?}");
                        let _ = (frame, offset);
                    }
                    alone.push(st[0]);
                }
                let mut st = vec![Ok(()); nops];
                a.copy(&ops, &mut st).unwrap();
                assert_eq!(st, alone, "batched statuses");
                if nops > 1 {
                    assert_eq!(
                        a.copy(&ops, &mut st[..nops - 1]),
                        Err(GrantError::InvalidArgument)
                    );
                }
                // One copy, checked byte for byte: B's page into ours.
                if let Some(i) = pick(&b_grants, x) {
                    let g = &b_grants[i];
                    let (so, dof, len) = (x as u16 % 64, input.u8() as u16, 64u16);
                    let dst = &pages[0];
                    let mut st = [Ok(())];
                    let one = CopyOp {
                        source: CopyPtr::Gref {
                            domid: B,
                            gref: g.gref(),
                            offset: so,
                        },
                        dest: CopyPtr::Frame {
                            frame: LocalFrame::of(dst),
                            offset: dof,
                        },
                        len,
                    };
                    a.copy(&[one], &mut st).unwrap();
                    if st[0].is_ok() {
                        let (mut want, mut got) = ([0u8; 64], [0u8; 64]);
                        g.page().read(so as usize, &mut want).unwrap();
                        dst.mem().read(dof as usize, &mut got).unwrap();
                        assert_eq!(want, got, "copied bytes");
                    }
                }
            }
            7 => {
                // We offer to receive a page from B.
                let landing = pages.pop().unwrap_or_else(|| a.alloc_page().unwrap());
                let mfn = landing.mfn();
                match a.accept_transfer(B, landing) {
                    Ok(s) => {
                        assert_eq!(a.entry_flags(s.gref()).unwrap(), GTF_accept_transfer);
                        assert!(w.is_freed(mfn), "the landing frame went back to Xen");
                        slots.push((s, false));
                    }
                    Err(e) => assert!(e == GrantError::TableFull || xen_faults, "{e:?}"),
                }
            }
            8 => {
                // B (Xen on B's behalf) commits a transfer to one of our
                // slots, or to a guessed entry; and completes it, or not.
                let r = match pick(&slots, x) {
                    Some(i) if op & 0x80 == 0 => slots[i].0.gref(),
                    _ => GrantRef(input.u8() as u32 % 64),
                };
                if w.transfer_commit(B, A, r).is_ok() {
                    let i = slots.iter().position(|s| s.0.gref() == r);
                    assert!(i.is_some(), "committed into {r:?}, no slot of ours");
                    let i = i.unwrap();
                    slots[i].1 = true;
                    if op & 0x40 == 0 {
                        let (frame, mem) = w.peer_frame(B);
                        mem.write(0, b"from B").unwrap();
                        w.transfer_complete(A, r, frame);
                        let (s, _) = slots.swap_remove(i);
                        match s.poll().unwrap() {
                            TransferPoll::Received(p) => {
                                assert_eq!(p.mfn(), frame);
                                let mut buf = [0u8; 6];
                                p.mem().read(0, &mut buf).unwrap();
                                assert_eq!(&buf, b"from B");
                                assert_eq!(a.entry_flags(r).unwrap(), 0);
                                pages.push(p);
                            }
                            TransferPoll::Waiting(_) => panic!("completed, yet waiting"),
                        }
                    }
                }
            }
            9 => {
                if let Some(i) = pick(&slots, x) {
                    let (s, committed) = slots.swap_remove(i);
                    let r = s.gref();
                    if op & 0x80 == 0 {
                        match s.poll().unwrap() {
                            TransferPoll::Waiting(s) => slots.push((s, committed)),
                            TransferPoll::Received(_) => panic!("nothing completed"),
                        }
                    } else {
                        match s.cancel() {
                            Ok(Cancelled::Withdrawn(p)) => {
                                assert!(!committed);
                                let mut buf = [0xaau8; 16];
                                p.mem().read(0, &mut buf).unwrap();
                                assert_eq!(buf, [0; 16], "a fresh frame");
                                assert_eq!(a.entry_flags(r).unwrap(), 0);
                                pages.push(p);
                            }
                            Ok(Cancelled::Received(_)) => panic!("nothing completed"),
                            Err((s, e)) => {
                                if e == GrantError::InUse(r) {
                                    assert!(committed, "{e:?}");
                                } else {
                                    // A refill Xen refused: the slot comes back.
                                    assert!(xen_faults, "{e:?}");
                                }
                                slots.push((s, committed));
                            }
                        }
                    }
                }
            }
            10 => {
                // We give a page to B: into B's slot, or a guess.
                if op & 0x80 == 0 && b_slots.len() < 4 {
                    if let Ok(s) = b.accept_transfer(A, b.alloc_page().unwrap()) {
                        b_slots.push(s);
                    }
                }
                let p = pages.pop().unwrap_or_else(|| a.alloc_page().unwrap());
                p.mem().write(0, &[x; 8]).unwrap();
                let mfn = p.mfn();
                let (r, real) = match pick(&b_slots, x) {
                    Some(i) if op & 0x40 == 0 => (b_slots[i].gref(), true),
                    _ => (GrantRef(input.u8() as u32 % 64), false),
                };
                let to = if input.u8() == 0xff { DomId(9) } else { B };
                // An entry B wrote itself may offer a transfer too.
                let offered = entry(&b_table, r).is_some_and(|(f, d, _)| {
                    f & GTF_type_mask == GTF_accept_transfer
                        && f & GTF_transfer_committed == 0
                        && d == A.0
                });
                match a.transfer(p, to, r) {
                    Ok(()) => {
                        assert_eq!(w.owner(mfn), Some(B), "given away, not B's");
                        if let Some(i) = b_slots.iter().position(|s| s.gref() == r) {
                            let s = b_slots.swap_remove(i);
                            match s.poll().unwrap() {
                                TransferPoll::Received(q) => {
                                    assert_eq!(q.mfn(), mfn);
                                    let mut buf = [0u8; 8];
                                    q.mem().read(0, &mut buf).unwrap();
                                    assert_eq!(buf, [x; 8]);
                                }
                                TransferPoll::Waiting(_) => panic!("transferred, B waits"),
                            }
                        } else {
                            assert!(offered, "transferred into {r:?}, which B did not offer");
                        }
                    }
                    Err(TransferError::Kept(p, _)) => {
                        assert_eq!(p.mfn(), mfn);
                        pages.push(p);
                    }
                    Err(TransferError::Lost(_)) => {
                        assert!(!(real && to == B) || xen_faults, "lost a page B asked for");
                        assert!(w.is_freed(mfn) || w.owner(mfn) != Some(A));
                    }
                }
            }
            11 => {
                // A grant through the reserved batch.
                if let Some(rr) = &rr {
                    let p = pages.pop().unwrap_or_else(|| a.alloc_page().unwrap());
                    let acc = if x & 1 == 0 {
                        Access::ReadWrite
                    } else {
                        Access::ReadOnly
                    };
                    let free = rr.available();
                    match rr.grant(B, p, acc) {
                        Ok(g) => {
                            assert!(free > 0);
                            assert_eq!(rr.available(), free - 1);
                            let f = a.entry_flags(g.gref()).unwrap();
                            assert_eq!(f & GTF_type_mask, GTF_permit_access);
                            assert_eq!(f & GTF_readonly != 0, acc == Access::ReadOnly);
                            reserved.push(g);
                        }
                        Err((p, e)) => {
                            assert_eq!(free, 0, "{e:?}");
                            assert_eq!(e, GrantError::NoReservedRef { reserved: rr.len() });
                            pages.push(p);
                        }
                    }
                }
            }
            12 => {
                // B maps (or unmaps) one of them.
                if op & 0x80 == 0 {
                    if let Some(i) = pick(&reserved, x) {
                        let g = &reserved[i];
                        let writable = op & 0x40 != 0;
                        let r = w.peer_map(B, A, g.gref(), writable);
                        assert_eq!(
                            r.is_ok(),
                            !(writable && g.access() == Access::ReadOnly),
                            "{r:?}"
                        );
                        if let Ok((h, _)) = r {
                            b_maps.push((g.gref(), h, writable));
                        }
                    }
                } else if let Some(i) = pick(&b_maps, x) {
                    let (_, h, _) = b_maps.swap_remove(i);
                    w.peer_unmap(B, h).unwrap();
                }
            }
            13 => {
                if let Some(i) = pick(&reserved, x) {
                    let g = reserved.swap_remove(i);
                    let r = g.gref();
                    let mapped = b_maps.iter().any(|m| m.0 == r);
                    let rr = rr.as_ref().unwrap();
                    let free = rr.available();
                    match (op >> 4) % 4 {
                        0 => match g.end_access() {
                            Ok(p) => {
                                assert!(!mapped, "ended access to a mapped page");
                                assert_eq!(rr.available(), free + 1);
                                assert_eq!(a.entry_flags(r).unwrap(), 0);
                                pages.push(p);
                            }
                            Err((g, e)) => {
                                assert!(mapped);
                                assert_eq!(e, GrantError::InUse(r));
                                reserved.push(g);
                            }
                        },
                        1 => {
                            drop(g);
                            if mapped {
                                // Pending with its reference: the batch shrinks.
                                rr_len -= 1;
                                assert_eq!(rr.available(), free);
                            } else {
                                assert_eq!(rr.available(), free + 1);
                            }
                        }
                        2 => {
                            let mut g = g;
                            let writer = b_maps.iter().any(|m| m.0 == r && m.2);
                            let res = g.make_readonly();
                            assert_eq!(res.is_ok(), !writer, "{res:?}");
                            if res.is_ok() {
                                assert_eq!(g.access(), Access::ReadOnly);
                            }
                            reserved.push(g);
                        }
                        _ => {
                            let mut g = g;
                            g.make_writable().unwrap();
                            assert_eq!(g.access(), Access::ReadWrite);
                            reserved.push(g);
                        }
                    }
                }
            }
            14 => match x % 4 {
                0 => w.fail_vacate(op & 0x80 != 0),
                1 => w.fail_populate(op & 0x80 != 0),
                2 => w.fail_transfer_hypercall(xenpv::Errno::EINVAL, op & 0x80 != 0),
                _ => {
                    let _ = a.reclaim();
                }
            },
            _ => {
                if let Some(i) = pick(&maps, x) {
                    drop(maps.swap_remove(i));
                }
            }
        }
        // No reference is ours twice (a slot keeps its own until it ends).
        let mut ours: Vec<GrantRef> = slots.iter().map(|s| s.0.gref()).collect();
        ours.extend(reserved.iter().map(|g| g.gref()));
        let n = ours.len();
        ours.sort_unstable_by_key(|r| r.0);
        ours.dedup();
        assert_eq!(ours.len(), n, "a reference held twice");
        if let Some(rr) = &rr {
            assert_eq!(rr.len(), rr_len, "the batch lost a reference");
            assert_eq!(rr.available() + reserved.len() as u32, rr.len());
        }
        check(&w, &a);
    }
    // Tear down: Xen completes what was committed; B unmaps.
    w.fail_vacate(false);
    w.fail_populate(false);
    for (s, committed) in slots.drain(..) {
        if committed {
            let (frame, _) = w.peer_frame(B);
            w.transfer_complete(A, s.gref(), frame);
        }
        drop(s);
    }
    for (_, h, _) in b_maps.drain(..) {
        w.peer_unmap(B, h).unwrap();
    }
    drop(reserved);
    drop(rr);
    drop(maps);
    drop(b_slots);
    drop(b_grants);
    let _ = a.reclaim();
    let s = a.stats();
    assert_eq!((s.refs_used, s.pending), (0, 0), "{s:?}");
    assert!(w.violations().is_empty(), "{:?}", w.violations());
});
