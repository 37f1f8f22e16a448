//! In-guest grant-table benchmark (run by `cargo xtask bench`): every
//! figure next to a floor measured in the same run. Prints
//! `BENCH <key> <value> <unit>` lines. Works as a domU (its domid from
//! xenstore) and as dom0. Figures under QEMU-TCG are not hardware figures.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use xenpv::grant::Access;
use xenpv::mm::{self, Page};
use xenpv::{println, DomId, GrantRef};

use xenpv_test_support::guest::Error;

xenpv::main!(main);

fn now() -> u64 {
    xenpv::time::now_ns()
}

fn per_s(n: u64, ns: u64) -> u64 {
    n * 1_000_000_000 / ns.max(1)
}

fn main(xen: xenpv::Xen) -> Result<(), Error> {
    let me = if xenpv::runtime::boot_info().is_initial_domain() {
        DomId(0)
    } else {
        xen.domid()?
    };
    let g = xen.grants()?;
    let pairs: u64 = xenpv::runtime::boot_info().arg("pairs").and_then(|v| v.parse().ok()).unwrap_or(200_000);

    // Floor: a plain compare-and-swap on a u16 in a page.
    let scratch = Page::alloc()?;
    let mem = scratch.shared();
    let t0 = now();
    for i in 0..pairs {
        let v = (i & 1) as u16;
        let _ = mem.cas_u16(0, v, v ^ 1);
    }
    let cas_ns = now() - t0;
    assert_eq!(mem.load_u16(0, Ordering::Relaxed).ok(), Some(0));
    println!("BENCH cas_loop {} ops/s", per_s(pairs, cas_ns));

    // Grant + end access: no hypercall, no heap on this path (after the
    // first pair, which sizes the table's pending reservation once).
    let mut page = Page::alloc()?;
    page = g.grant(me, page, Access::ReadWrite).map_err(|e| e.1)?.end_access().map_err(|e| e.1)?;
    let heap = mm::stats().heap_free;
    let t0 = now();
    for _ in 0..pairs {
        let granted = g.grant(me, page, Access::ReadWrite).map_err(|e| e.1)?;
        page = granted.end_access().map_err(|e| e.1)?;
    }
    let grant_ns = now() - t0;
    assert_eq!(heap, mm::stats().heap_free, "grant/end-access pairs use no heap");
    println!("BENCH grant_end_access {} pairs/s", per_s(pairs, grant_ns));
    println!("BENCH grant_vs_cas_percent {} %", cas_ns * 100 / grant_ns.max(1));

    // Map + unmap of one self-granted page.
    let maps = pairs / 100;
    let shared = g.share(me, 64, Access::ReadWrite)?;
    let refs: Vec<GrantRef> = shared.refs().collect();
    let t0 = now();
    for _ in 0..maps {
        g.map(me, &refs[..1], Access::ReadWrite)?.unmap()?;
    }
    let map_ns = now() - t0;
    println!("BENCH map_unmap_1 {} pairs/s", per_s(maps, map_ns));

    // A batched map (and unmap) of 64 pages.
    let batches = (maps / 64).max(5);
    let t0 = now();
    for _ in 0..batches {
        g.map(me, &refs, Access::ReadWrite)?.unmap()?;
    }
    let batch_ns = now() - t0;
    println!("BENCH map_unmap_64_batch {} us/batch", batch_ns / batches / 1000);
    println!("BENCH map_unmap_64_batch_per_page {} pages/s", per_s(batches * 64, batch_ns));
    drop(shared);

    // share(count) + release, like gntalloc's alloc/dealloc ioctls.
    for (count, rounds) in [(1u32, maps), (16, maps / 8), (256, (maps / 64).max(5))] {
        let t0 = now();
        for _ in 0..rounds {
            let mut s = g.share(me, count, Access::ReadWrite)?;
            let idx = s.index();
            s.release(idx, count)?;
        }
        let ns = now() - t0;
        println!("BENCH share_release_{count} {} us/op", ns / rounds.max(1) / 1000);
    }
    let stats = g.stats();
    println!("bench_grant: final {stats:?}, {:?}", mm::stats());
    println!("bench_grant: PASS");
    Ok(())
}
