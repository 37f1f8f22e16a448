//! In-guest test of grant tables under real Xen, run as dom0 (it grants
//! pages to its own domid, 0, and maps them back, which Xen allows):
//! (a) self-grant: write through one mapping, read through the other;
//!     end-access refused while mapped, accepted after the unmap; a
//!     read-only grant refuses a writable map; a page released while
//!     mapped stays pending until the unmap;
//! (d) growth past one table frame (512 v1 entries), with Xen mapping an
//!     entry of the new frame;
//! and the figures: grant + end-access pairs/s next to a plain CAS loop,
//! map + unmap pairs/s. Prints `grant_selftest: PASS` and powers off.
#![no_std]
#![no_main]

extern crate alloc;

use core::sync::atomic::Ordering;
use core::time::Duration;
use xenpv::grant::{self, Access, GrantError, UnmapNotify};
use xenpv::mm::{self, Page};
use xenpv::shared_mem::SharedMem;
use xenpv::{println, DomId};

xenpv::main!(main);

fn main(xen: xenpv::Xen) -> Result<(), GrantError> {
    let info = xenpv::runtime::boot_info();
    if !info.is_initial_domain() {
        // A domU needs its own domid from xenstore to grant to itself.
        println!("grant_selftest: needs to run as dom0 (domid 0); SKIP");
        return Ok(());
    }
    let me = DomId(0);
    let g = xen.grants()?;
    let size = g.query_size()?;
    println!("grant_selftest: table {:?}, Xen says {size:?}", g.stats());

    self_grant(g, me)?;
    conveniences(&xen, g, me)?;
    let mem_before = mm::stats();
    growth(g, me)?;
    let mem_after = mm::stats();
    assert_eq!(mem_before.free_frames, mem_after.free_frames, "frames leaked by share/release");
    assert_eq!(mem_before.free_map_pages, mem_after.free_map_pages, "address space leaked");
    bench(g, me)?;
    // Some Xen builds refuse GNTTABOP_dump_table (-ENOSYS): report, not fail.
    println!("grant_selftest: dump_table: {:?}; final {:?}", g.dump_table(), g.stats());
    println!("grant_selftest: PASS");
    Ok(())
}

fn self_grant(g: &'static grant::Grants<grant::XenGrantOps>, me: DomId) -> Result<(), GrantError> {
    // Two mappings of one page: ours (the direct map) and Xen's grant map.
    let shared = g.share(me, 1, Access::ReadWrite)?;
    let r = shared.gref(0).expect("one page");
    let mapped = g.map(me, &[r], Access::ReadWrite)?;
    println!("grant_selftest: gref {} mapped at {:#x}, entry flags {:#x}", r.0, mapped.va(), g.entry_flags(r)?);
    mapped.page(0).expect("page").write(0, b"through the grant map")?;
    let mut buf = [0u8; 21];
    shared.page(0).expect("page").read(0, &mut buf)?;
    assert_eq!(&buf, b"through the grant map");
    shared.page(0).expect("page").write(100, b"through the direct map")?;
    let mut buf = [0u8; 22];
    mapped.page(0).expect("page").read(100, &mut buf)?;
    assert_eq!(&buf, b"through the direct map");
    println!("grant_selftest: (a) write via one mapping, read via the other: ok");

    // End access: refused while mapped, accepted after the unmap.
    let page = Page::alloc()?;
    let granted = g.grant(me, page, Access::ReadWrite).map_err(|e| e.1)?;
    let gr = granted.gref();
    let m2 = g.map(me, &[gr], Access::ReadWrite)?;
    let flags = g.entry_flags(gr)?;
    let (granted, e) = granted.end_access().expect_err("end access while mapped must fail");
    assert_eq!(e, GrantError::InUse(gr));
    println!("grant_selftest: (a) end_access while mapped (flags {flags:#x}): {e:?}");
    m2.unmap()?;
    let page = granted.end_access().map_err(|e| e.1)?;
    println!("grant_selftest: (a) end_access after unmap: ok, flags now {:#x}", g.entry_flags(gr)?);
    drop(page);

    // The same through a reserved batch (no table lock): refused while
    // Xen maps the page, accepted after the unmap; a grant dropped while
    // mapped goes pending with its reference, and is reclaimed after.
    let refs = g.reserve_refs(2)?;
    let rg = refs.grant(me, Page::alloc()?, Access::ReadWrite).map_err(|e| e.1)?;
    let rgr = rg.gref();
    rg.page().write(0, b"reserved")?;
    let m4 = g.map(me, &[rgr], Access::ReadWrite)?;
    let mut buf = [0u8; 8];
    m4.page(0).expect("page").read(0, &mut buf)?;
    assert_eq!(&buf, b"reserved");
    let (rg, e) = rg.end_access().expect_err("end access while mapped must fail");
    assert_eq!(e, GrantError::InUse(rgr));
    m4.unmap()?;
    let page = rg.end_access().map_err(|e| e.1)?;
    assert_eq!((g.entry_flags(rgr)?, refs.available()), (0, 2));
    let rg = refs.grant(me, page, Access::ReadWrite).map_err(|e| e.1)?;
    let m5 = g.map(me, &[rg.gref()], Access::ReadWrite)?;
    drop(rg);
    assert_eq!((g.stats().pending, refs.len()), (1, 1), "dropped while mapped: pending, the batch one smaller");
    drop(m5);
    drop(refs);
    assert_eq!(g.reclaim(), 0);
    println!("grant_selftest: (a) reserved batch: end_access refused while mapped, ok after; drop while mapped pending, then reclaimed");

    // A read-only grant: Xen refuses a writable map, allows a read-only one.
    let ro = g.share(me, 1, Access::ReadOnly)?;
    ro.page(0).expect("page").write(0, b"ro")?;
    let e = g.map(me, &[ro.gref(0).expect("page")], Access::ReadWrite).expect_err("writable map of a r/o grant");
    println!("grant_selftest: (a) writable map of a read-only grant: {e}");
    let rom = g.map(me, &[ro.gref(0).expect("page")], Access::ReadOnly)?;
    assert_eq!(rom.page(0).expect("page").load_u8(1)?, b'o');
    drop(rom);
    drop(ro);

    // Release while mapped: the page stays pending, and the unmap-notify
    // byte is cleared on release (seen through the peer's mapping).
    let mut s = g.share(me, 1, Access::ReadWrite)?;
    s.page(0).expect("page").fill(0, 16, 0xee)?;
    s.set_unmap_notify(0, UnmapNotify { clear_byte: Some(3), send_event: None })?;
    let rr = s.gref(0).expect("page");
    let m3 = g.map(me, &[rr], Access::ReadWrite)?;
    drop(s);
    let st = g.stats();
    assert_eq!(st.pending, 1);
    assert_eq!(m3.page(0).expect("page").load_u8(3)?, 0);
    assert_eq!(m3.page(0).expect("page").load_u8(4)?, 0xee);
    println!("grant_selftest: (a) released while mapped: pending {}, notify byte cleared", st.pending);
    drop(m3);
    assert_eq!(g.reclaim(), 0);
    println!("grant_selftest: (a) after the unmap: reclaimed, pending 0");
    drop(mapped);

    // A batch whose middle op fails: the others are unmapped again, so
    // access to them can end at once.
    let two = g.share(me, 2, Access::ReadWrite)?;
    let (r0, r1) = (two.gref(0).expect("page"), two.gref(1).expect("page"));
    let e = g.map(me, &[r0, xenpv::GrantRef(60_000), r1], Access::ReadWrite).expect_err("bad ref in batch");
    println!("grant_selftest: (a) batch [good, bad, good]: {e}");
    assert!(matches!(e, GrantError::BatchOp { index: 1, .. }));
    assert_eq!(g.entry_flags(r0)? & 0x18, 0, "rolled back: no GTF_reading/GTF_writing left");
    assert_eq!(g.entry_flags(r1)? & 0x18, 0);
    drop(two);
    assert_eq!(g.stats().pending, 0);

    // GNTTABOP_copy: from our frame into our own grant, and a bad op.
    let src = Page::alloc()?;
    src.shared().write(0, b"copied by Xen").map_err(|_| GrantError::InvalidArgument)?;
    let ops = [
        grant::CopyOp {
            source: grant::CopyPtr::Frame { frame: grant::LocalFrame::of(&src), offset: 0 },
            dest: grant::CopyPtr::Gref { domid: me, gref: r, offset: 200 },
            len: 13,
        },
        grant::CopyOp {
            source: grant::CopyPtr::Frame { frame: grant::LocalFrame::of(&src), offset: 0 },
            dest: grant::CopyPtr::Gref { domid: me, gref: xenpv::GrantRef(60_000), offset: 0 },
            len: 1,
        },
    ];
    let mut st = [Ok(()); 2];
    g.copy(&ops, &mut st)?;
    let mut buf = [0u8; 13];
    shared.page(0).expect("page").read(200, &mut buf)?;
    println!("grant_selftest: (a) copy statuses {st:?}, data {:?}", core::str::from_utf8(&buf));
    assert!(st[0].is_ok() && st[1].is_err());
    assert_eq!(&buf, b"copied by Xen");
    drop(shared);
    assert_eq!(g.stats().refs_used, 0);
    assert_eq!(g.stats().pending, 0);
    println!("grant_selftest: (a) PASS");
    Ok(())
}

/// (e) What users expect on top of gntalloc: pages as one buffer, release
/// by page number, waiting for unmaps, and pending pages freed in the
/// background (before the domain blocks) without calling `reclaim`.
fn conveniences(xen: &xenpv::Xen, g: &'static grant::Grants<grant::XenGrantOps>, me: DomId) -> Result<(), GrantError> {
    let events = xen.events();
    let mut s = g.share(me, 3, Access::ReadWrite)?;
    let text = b"one buffer across the page boundary";
    s.write_at(4096 - 10, text)?;
    let refs: alloc::vec::Vec<_> = s.refs().collect();
    let m = g.map(me, &refs, Access::ReadOnly)?;
    let mut back = [0u8; 35];
    m.read_at(4096 - 10, &mut back)?;
    assert_eq!(&back, text);
    println!("grant_selftest: (e) write_at/read_at across pages through Xen's mapping: ok");
    assert_eq!(s.mapped_count(), 3);
    assert_eq!(s.wait_unmapped(events, Duration::from_millis(20)), Err(GrantError::StillMapped { pages: 3 }));
    let r = s.release_pages(1, 1)?;
    assert_eq!((r.freed, r.pending), (0, 1), "page 1 is mapped: pending");
    assert_eq!(g.wait_reclaimed(events, Duration::from_millis(20)), Err(GrantError::StillMapped { pages: 1 }));
    m.unmap()?;
    assert_eq!(g.stats().pending, 1, "unmapping is no grant operation: still pending");
    // Blocking runs the background reclaim.
    xenpv::sleep(Duration::from_millis(5));
    assert_eq!(g.stats().pending, 0, "reclaimed in the background");
    s.wait_unmapped(events, Duration::from_secs(1))?;
    drop(s);
    println!("grant_selftest: (e) release_pages, wait_unmapped/wait_reclaimed, background reclaim: ok");
    Ok(())
}

fn growth(g: &'static grant::Grants<grant::XenGrantOps>, me: DomId) -> Result<(), GrantError> {
    let before = g.stats();
    let many = g.share(me, 600, Access::ReadWrite)?;
    let after = g.stats();
    let xen = g.query_size()?;
    println!("grant_selftest: (d) 600 pages shared: frames {} -> {} (Xen: {:?})", before.nr_frames, after.nr_frames, xen);
    assert!(after.nr_frames >= 2 && xen.nr_frames == after.nr_frames);
    let i = (0..600).rev().find(|&i| many.gref(i).is_some_and(|r| r.0 >= 512)).expect("a reference in the new frame");
    let last = many.gref(i).expect("page");
    many.page(i).expect("page").write(0, b"entry past 512")?;
    let m = g.map(me, &[last], Access::ReadOnly)?;
    let mut buf = [0u8; 14];
    m.page(0).expect("page").read(0, &mut buf)?;
    assert_eq!(&buf, b"entry past 512");
    println!("grant_selftest: (d) Xen mapped gref {} from the grown table: ok", last.0);
    drop(m);
    drop(many);
    assert_eq!(g.stats().refs_used, 0);
    println!("grant_selftest: (d) PASS");
    Ok(())
}

fn rate(n: u64, ns: u64) -> u64 {
    n * 1_000_000_000 / ns.max(1)
}

fn bench(g: &'static grant::Grants<grant::XenGrantOps>, me: DomId) -> Result<(), GrantError> {
    const PAIRS: u64 = 200_000;
    const MAPS: u64 = 2_000;
    // The floor: a plain compare-and-swap on a u16 in a page.
    let scratch = Page::alloc()?;
    let mem: SharedMem = scratch.shared();
    let t0 = xenpv::time::now_ns();
    for i in 0..PAIRS {
        let v = (i & 1) as u16;
        let _ = mem.cas_u16(0, v, v ^ 1);
    }
    let cas_ns = xenpv::time::now_ns() - t0;
    assert_eq!(mem.load_u16(0, Ordering::Relaxed).ok(), Some(0));

    let heap = mm::stats().heap_free;
    let mut page = Page::alloc()?;
    let t0 = xenpv::time::now_ns();
    for _ in 0..PAIRS {
        let granted = g.grant(me, page, Access::ReadWrite).map_err(|e| e.1)?;
        page = granted.end_access().map_err(|e| e.1)?;
    }
    let grant_ns = xenpv::time::now_ns() - t0;
    assert_eq!(heap, mm::stats().heap_free, "grant/end-access pairs use no heap");

    let shared = g.share(me, 1, Access::ReadWrite)?;
    let r = shared.gref(0).expect("page");
    let t0 = xenpv::time::now_ns();
    for _ in 0..MAPS {
        let m = g.map(me, &[r], Access::ReadWrite)?;
        m.unmap()?;
    }
    let map_ns = xenpv::time::now_ns() - t0;
    println!(
        "grant_selftest: bench (QEMU TCG): CAS {} ops/s; grant+end_access {} pairs/s ({} ns/pair); map+unmap {} pairs/s ({} ns/pair)",
        rate(PAIRS, cas_ns),
        rate(PAIRS, grant_ns),
        grant_ns / PAIRS,
        rate(MAPS, map_ns),
        map_ns / MAPS
    );
    Ok(())
}
