//! In-guest grant-table benchmark (run by `cargo xtask bench`): every
//! figure next to a floor measured in the same run, each as
//! min / median / max over `ROUNDS` rounds (the subjects and their floors
//! take turns within each round). Prints `BENCH <key> <min> / <median> /
//! <max> <unit>` lines. Works as a domU (its domid from xenstore) and as
//! dom0. Figures under QEMU-TCG are not hardware figures.
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

const ROUNDS: usize = 5;

fn now() -> u64 {
    xenpv::time::now_ns()
}

fn per_s(n: u64, ns: u64) -> u64 {
    n * 1_000_000_000 / ns.max(1)
}

/// Prints one figure as min / median / max over the rounds.
fn report(key: &str, mut v: Vec<u64>, unit: &str) {
    v.sort_unstable();
    println!("BENCH {key} {} / {} / {} {unit}", v[0], v[v.len() / 2], v[v.len() - 1]);
}

fn main(xen: xenpv::Xen) -> Result<(), Error> {
    let me = if xenpv::runtime::boot_info().is_initial_domain() {
        DomId(0)
    } else {
        xen.domid()?
    };
    let g = xen.grants()?;
    let pairs: u64 = xenpv::runtime::boot_info().arg("pairs").and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let rw = Access::ReadWrite;

    // Grant + end access, next to their floor: the same number of
    // compare-and-swaps on a u16 in a page (ending access is one CAS).
    // Neither path makes a hypercall or allocates (after the first pair,
    // which sizes the table's pending reservation once).
    let scratch = Page::alloc()?;
    let mem = scratch.shared();
    let mut page = Page::alloc()?;
    page = g.grant(me, page, rw).map_err(|e| e.1)?.end_access().map_err(|e| e.1)?;
    // A batch of one reference, taken once: grants through it take no lock.
    let refs = g.reserve_refs(1)?;
    let v = || Vec::with_capacity(ROUNDS);
    let (mut cas, mut table, mut reserved) = (v(), v(), v());
    let (mut table_pct, mut reserved_pct) = (v(), v());
    let heap = mm::stats().heap_free;
    // The lock-free loops run ten times as many pairs: a round of them
    // then lasts tens of milliseconds, not a few, and a timer tick or a
    // translation of QEMU's no longer weighs in it.
    let fast = pairs * 10;
    for _ in 0..ROUNDS {
        let t0 = now();
        for i in 0..fast {
            let v = (i & 1) as u16;
            let _ = mem.cas_u16(0, v, v ^ 1);
        }
        let cas_ns = now() - t0;
        assert_eq!(mem.load_u16(0, Ordering::Relaxed).ok(), Some(0));

        let t0 = now();
        for _ in 0..pairs {
            let granted = g.grant(me, page, rw).map_err(|e| e.1)?;
            page = granted.end_access().map_err(|e| e.1)?;
        }
        let table_ns = now() - t0;

        let t0 = now();
        for _ in 0..fast {
            let granted = refs.grant(me, page, rw).map_err(|e| e.1)?;
            page = granted.end_access().map_err(|e| e.1)?;
        }
        let reserved_ns = now() - t0;

        let (c, t, r) = (per_s(fast, cas_ns), per_s(pairs, table_ns), per_s(fast, reserved_ns));
        cas.push(c);
        table.push(t);
        reserved.push(r);
        table_pct.push(t * 100 / c.max(1));
        reserved_pct.push(r * 100 / c.max(1));
    }
    assert_eq!(heap, mm::stats().heap_free, "grant/end-access pairs use no heap");
    drop(refs);
    report("cas_loop", cas, "ops/s");
    report("grant_end_access", table, "pairs/s");
    report("grant_vs_cas_percent", table_pct, "%");
    report("grant_end_reserved", reserved, "pairs/s");
    report("reserved_vs_cas_percent", reserved_pct, "%");

    // Map + unmap of one self-granted page, and a batch of 64.
    let maps = pairs / 100;
    let batches = (maps / 64).max(5);
    let shared = g.share(me, 64, rw)?;
    let grefs: Vec<GrantRef> = shared.refs().collect();
    let (mut one, mut batch) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t0 = now();
        for _ in 0..maps {
            g.map(me, &grefs[..1], rw)?.unmap()?;
        }
        one.push(per_s(maps, now() - t0));
        let t0 = now();
        for _ in 0..batches {
            g.map(me, &grefs, rw)?.unmap()?;
        }
        batch.push(per_s(batches * 64, now() - t0));
    }
    drop(shared);
    report("map_unmap_1", one, "pairs/s");
    report("map_unmap_64_batch_per_page", batch, "pages/s");

    // share(count) + release, like gntalloc's alloc/dealloc ioctls, per
    // page, next to its parts measured in the same round: a frame's
    // allocation and free (zeroing included), the zeroing alone, and a
    // grant + end access through the table. The rest is the share's own
    // bookkeeping (limits, its vectors, the pending room).
    let mut split: [Vec<u64>; 4] = Default::default();
    let mut shares: [Vec<u64>; 3] = Default::default();
    let n = maps;
    for _ in 0..ROUNDS {
        let t0 = now();
        for _ in 0..n {
            drop(Page::alloc()?);
        }
        split[0].push((now() - t0) / n);
        let t0 = now();
        for _ in 0..n {
            let _ = mem.fill(0, 4096, 0);
        }
        split[1].push((now() - t0) / n);
        let t0 = now();
        for _ in 0..n {
            page = g.grant(me, page, rw).map_err(|e| e.1)?.end_access().map_err(|e| e.1)?;
        }
        split[2].push((now() - t0) / n);
        for (k, count) in [1u64, 16, 256].into_iter().enumerate() {
            let rounds = (n / count).max(5);
            let t0 = now();
            for _ in 0..rounds {
                let mut s = g.share(me, count as u32, rw)?;
                let idx = s.index();
                s.release(idx, count as u32)?;
            }
            shares[k].push((now() - t0) / (rounds * count));
        }
        let whole = *shares[0].last().unwrap_or(&0);
        let parts = split[0].last().unwrap_or(&0) + split[2].last().unwrap_or(&0);
        split[3].push(whole.saturating_sub(parts));
    }
    let [s1, s16, s256] = shares;
    report("share_release_1_per_page", s1, "ns");
    report("share_release_16_per_page", s16, "ns");
    report("share_release_256_per_page", s256, "ns");
    let [alloc_free, zero, grant_end, rest] = split;
    report("split_frame_alloc_free_per_page", alloc_free, "ns");
    report("split_of_which_zeroing_per_page", zero, "ns");
    report("split_grant_end_per_page", grant_end, "ns");
    report("split_share_bookkeeping_1_page", rest, "ns");

    let stats = g.stats();
    println!("bench_grant: final {stats:?}, {:?}", mm::stats());
    println!("bench_grant: PASS");
    Ok(())
}
