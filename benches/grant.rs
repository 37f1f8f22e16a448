//! Host benchmark: the grant fast path's own code, natively, next to its
//! floor in the same run: `ReservedRefs::grant` + `ReservedGrant::end_access`
//! and `Grants::grant` + `Granted::end_access` over the fake grant table
//! (the same entry protocol the guest runs on Xen's table: three stores and
//! a barrier to introduce, one compare-and-swap to end), against a loop of
//! the same number of compare-and-swaps on a u16 in a page. The guest
//! figures (`tests/xen/bench/bench_grant.rs`) run under QEMU-TCG, which
//! charges every instruction alike; these show the ratio on this host's
//! CPU. Prints one line per figure; `cargo xtask bench` collects them.
//!
//! Run: `cargo bench --bench grant --features host-fakes` (add `-- --quick`).

use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::Instant;
use xenpv::grant::fake::FakeWorld;
use xenpv::grant::{Access, GrantOps, Grants, SharePage};
use xenpv::DomId;

const ROUNDS: usize = 5;

/// min/median/max of `v`.
fn spread(v: &mut [f64]) -> String {
    v.sort_by(f64::total_cmp);
    format!("{:.1}/{:.1}/{:.1}", v[0], v[v.len() / 2], v[v.len() - 1])
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let pairs: u64 = if quick { 200_000 } else { 2_000_000 };
    let (me, peer) = (DomId(1), DomId(2));
    let w = FakeWorld::new();
    let mut ops = w.add_domain(me, 1, 4);
    let _peer = w.add_domain(peer, 1, 4);
    let scratch = ops.alloc_page().unwrap();
    let mut page = ops.alloc_page().unwrap();
    let g = Grants::new(ops, 1).unwrap();
    let mem = scratch.mem();
    // The first pair sizes the table's pending room once, as in the guest.
    page = g
        .grant(peer, page, Access::ReadWrite)
        .map_err(|e| e.1)
        .unwrap()
        .end_access()
        .map_err(|e| e.1)
        .unwrap();
    let refs = g.reserve_refs(1).unwrap();
    let (mut cas, mut table, mut reserved) = (Vec::new(), Vec::new(), Vec::new());
    let (mut table_pct, mut reserved_pct) = (Vec::new(), Vec::new());
    let per_s = |ns: f64| pairs as f64 * 1e9 / ns / 1e6;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for i in 0..pairs {
            let v = (i & 1) as u16;
            let _ = black_box(mem.cas_u16(0, v, v ^ 1));
        }
        let cas_ns = t.elapsed().as_nanos() as f64;
        assert_eq!(mem.load_u16(0, Ordering::Relaxed).ok(), Some(0));

        let t = Instant::now();
        for _ in 0..pairs {
            let granted = g
                .grant(peer, page, Access::ReadWrite)
                .map_err(|e| e.1)
                .unwrap();
            page = black_box(granted.end_access().map_err(|e| e.1).unwrap());
        }
        let table_ns = t.elapsed().as_nanos() as f64;

        let t = Instant::now();
        for _ in 0..pairs {
            let granted = refs
                .grant(peer, page, Access::ReadWrite)
                .map_err(|e| e.1)
                .unwrap();
            page = black_box(granted.end_access().map_err(|e| e.1).unwrap());
        }
        let reserved_ns = t.elapsed().as_nanos() as f64;

        cas.push(per_s(cas_ns));
        table.push(per_s(table_ns));
        reserved.push(per_s(reserved_ns));
        table_pct.push(cas_ns * 100.0 / table_ns);
        reserved_pct.push(cas_ns * 100.0 / reserved_ns);
    }
    // Outside the timed loops: every pair ended its grant (none pending).
    assert_eq!(g.stats().refs_used, 1, "only the batch's reference is out");
    println!("# host grant benchmark: {pairs} pairs per run, {ROUNDS} runs (min/median/max), the fake table, native code");
    println!("host grant cas_loop_Mops/s={}", spread(&mut cas));
    println!(
        "host grant grant_end_access_Mpairs/s={} vs_cas_percent={}",
        spread(&mut table),
        spread(&mut table_pct)
    );
    println!(
        "host grant grant_end_reserved_Mpairs/s={} vs_cas_percent={}",
        spread(&mut reserved),
        spread(&mut reserved_pct)
    );
}
