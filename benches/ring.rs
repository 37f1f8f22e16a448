//! Host benchmark: xenpv's vchan ring between two threads, next to the
//! `rtrb` crate's SPSC ring and a plain memcpy of the same bytes, all in
//! one run. Prints one line per figure; `cargo xtask bench` collects them.
//!
//! Run: `cargo bench --bench ring` (add `-- --quick` for a short run,
//! `-- --chunk=64` for one write size).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use xenpv::abi::vchan::*;
use xenpv::vchan::{HostChanMemory, Ring, Side};

/// A server/client pair whose client→server (left) ring has `order`; the
/// in-page orders use the control page like libxenvchan, larger ones
/// separate pages.
fn vchan_pair(order: u16) -> (Ring<HostChanMemory<'static>>, Ring<HostChanMemory<'static>>) {
    let right = if order == 10 { 11 } else { order };
    let mem = HostChanMemory::new(order, right);
    mem.ctrl.store_u8(SRV_LIVE, 1, Ordering::Relaxed).unwrap();
    mem.ctrl.store_u8(CLI_LIVE, 1, Ordering::Relaxed).unwrap();
    (
        Ring::new(mem.clone(), Side::Server).unwrap(),
        Ring::new(mem, Side::Client).unwrap(),
    )
}

fn gib_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / (1u64 << 30) as f64
}

/// `len` bytes of `fill` starting at `page_offset` into a page, in a
/// vector of their own. Every subject's buffers sit at the offset of the
/// ring they copy into and out of, so each copy's destination is a whole
/// number of pages from its source, plus the ring's running offset: on
/// this host a destination a few bytes ahead of its source modulo 4 KiB
/// makes `rep movsb` (glibc's memcpy) crawl at 1.5 GiB/s, and `rep
/// movsq` at half speed, against 20-28 GiB/s otherwise.
struct Buf {
    backing: Vec<u8>,
    at: usize,
    len: usize,
}

impl Buf {
    fn new(len: usize, page_offset: usize, fill: u8) -> Buf {
        let backing = vec![fill; len + 8192];
        let at = backing.as_ptr().align_offset(4096) + page_offset % 4096;
        Buf { backing, at, len }
    }
    fn get(&self) -> &[u8] {
        &self.backing[self.at..self.at + self.len]
    }
    fn get_mut(&mut self) -> &mut [u8] {
        &mut self.backing[self.at..self.at + self.len]
    }
}

/// Both threads spin and never sleep, so neither asks the other for a
/// notification (`request = false`), as `Vchan`'s blocking calls do while
/// they spin before sleeping; rtrb has no notifications at all.
fn bench_vchan(order: u16, total: usize, chunk: usize) -> Duration {
    let (mut srv, mut cli) = vchan_pair(order);
    // The ring's pages are page-aligned.
    let src = Buf::new(chunk, 0, 0x5a);
    let start = Instant::now();
    let producer = std::thread::spawn(move || {
        let mut sent = 0;
        while sent < total {
            let n = chunk.min(total - sent);
            match cli.write_with(&src.get()[..n], false).unwrap().bytes {
                // Full: pause as rtrb's loop below does.
                0 => std::hint::spin_loop(),
                k => sent += k,
            }
        }
    });
    let mut buf = Buf::new(chunk, 0, 0);
    let mut got = 0;
    while got < total {
        match srv.read_with(buf.get_mut(), false).unwrap().bytes {
            // Empty: pause as rtrb's loop does.
            0 => std::hint::spin_loop(),
            k => got += k,
        }
    }
    producer.join().unwrap();
    start.elapsed()
}

fn bench_rtrb(capacity: usize, total: usize, chunk: usize) -> Duration {
    let (mut tx, mut rx) = rtrb::RingBuffer::<u8>::new(capacity);
    // Where rtrb's buffer starts in its page (a chunk asked for and
    // dropped uncommitted writes nothing).
    let ring_offset = tx.write_chunk_uninit(1).unwrap().as_mut_slices().0.as_ptr() as usize % 4096;
    let src = Buf::new(chunk, ring_offset, 0x5a);
    let start = Instant::now();
    let producer = std::thread::spawn(move || {
        let mut sent = 0;
        while sent < total {
            let n = chunk.min(total - sent).min(tx.slots());
            if n == 0 {
                std::hint::spin_loop();
                continue;
            }
            let mut w = tx.write_chunk_uninit(n).unwrap();
            let (a, b) = w.as_mut_slices();
            let split = a.len();
            // Two bulk copies, as xenpv's ring makes (a loop of
            // `MaybeUninit::write` is a byte loop at this profile).
            // SAFETY: `a` and `b` are the chunk's n slots, split as `src`
            // is split here; u8 has no invalid values; the regions are
            // distinct allocations.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    src.get().as_ptr(),
                    a.as_mut_ptr().cast::<u8>(),
                    split,
                );
                std::ptr::copy_nonoverlapping(
                    src.get()[split..].as_ptr(),
                    b.as_mut_ptr().cast::<u8>(),
                    n - split,
                );
            }
            // SAFETY: every slot of the chunk was initialised above.
            unsafe { w.commit_all() };
            sent += n;
        }
    });
    let mut buf = Buf::new(chunk, ring_offset, 0);
    let buf = buf.get_mut();
    let mut got = 0;
    while got < total {
        let n = rx.slots().min(chunk);
        if n == 0 {
            std::hint::spin_loop();
            continue;
        }
        let r = rx.read_chunk(n).unwrap();
        let (a, b) = r.as_slices();
        buf[..a.len()].copy_from_slice(a);
        buf[a.len()..a.len() + b.len()].copy_from_slice(b);
        r.commit_all();
        got += n;
    }
    producer.join().unwrap();
    start.elapsed()
}

/// The reference: the two copies a ring makes, on one thread with no
/// synchronisation: each chunk from the producer's buffer into a
/// ring-sized buffer at the running offset, then out into the consumer's.
fn bench_memcpy(capacity: usize, total: usize, chunk: usize) -> Duration {
    // Placed as for the xenpv ring: page-aligned (see `Buf`).
    let src = Buf::new(chunk, 0, 0x5a);
    let src = src.get();
    let mut ring = Buf::new(capacity, 0, 0);
    let ring = ring.get_mut();
    let mut dst = Buf::new(chunk, 0, 0);
    let dst = dst.get_mut();
    let start = Instant::now();
    let mut done = 0;
    while done < total {
        let n = chunk.min(total - done);
        let at = done % capacity;
        let first = n.min(capacity - at);
        ring[at..at + first].copy_from_slice(&src[..first]);
        ring[..n - first].copy_from_slice(&src[first..n]);
        std::hint::black_box(&mut *ring);
        dst[..first].copy_from_slice(&ring[at..at + first]);
        dst[first..n].copy_from_slice(&ring[..n - first]);
        std::hint::black_box(&mut *dst);
        done += n;
    }
    start.elapsed()
}

/// min/median/max of GiB/s over the runs' durations.
fn stats(total: usize, runs: &[Duration]) -> (f64, f64, f64) {
    let mut rates: Vec<f64> = runs.iter().map(|d| gib_per_s(total, *d)).collect();
    rates.sort_by(|a, b| a.total_cmp(b));
    (rates[0], rates[rates.len() / 2], rates[rates.len() - 1])
}

fn fmt((min, med, max): (f64, f64, f64)) -> String {
    format!("{min:.3}/{med:.3}/{max:.3}")
}

/// Runs per figure; the three subjects take turns in each round, so a
/// noisy moment hits all of them alike.
const RUNS: usize = 5;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // `--chunk=N`: only that write size (for a quick look at one case).
    let only: Option<usize> =
        std::env::args().find_map(|a| a.strip_prefix("--chunk=").and_then(|n| n.parse().ok()));
    let total = if quick { 8 << 20 } else { 64 << 20 };
    println!(
        "# host ring benchmark: {} MiB per run, {RUNS} runs per figure (min/median/max GiB/s), two threads; \
         xenpv and rtrb (bulk chunk API) built with the same profile; memcpy: the same two copies through a ring-sized buffer, one thread",
        total >> 20
    );
    // Each (order, write size) once: a write size above the ring's is
    // capped at it, so 4 KiB and 64 KiB writes into a 1 KiB ring are
    // the same case.
    let mut cases: Vec<(u16, usize)> = Vec::new();
    for &chunk in [64usize, 4096, 65536]
        .iter()
        .filter(|&&c| only.is_none_or(|o| o == c))
    {
        for order in [10u16, 12, 16, 20] {
            let case = (order, chunk.min(1usize << order));
            if !cases.contains(&case) {
                cases.push(case);
            }
        }
    }
    for (order, c) in cases {
        let cap = 1usize << order;
        let (mut v, mut r, mut m) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..RUNS {
            v.push(bench_vchan(order, total, c));
            r.push(bench_rtrb(cap, total, c));
            m.push(bench_memcpy(cap, total, c));
        }
        let (vs, rs, ms) = (stats(total, &v), stats(total, &r), stats(total, &m));
        println!(
            "host ring order={order} chunk={c} xenpv_GiB/s={} rtrb_GiB/s={} memcpy_GiB/s={} xenpv/rtrb={:.2} xenpv/memcpy={:.3}",
            fmt(vs),
            fmt(rs),
            fmt(ms),
            vs.1 / rs.1,
            vs.1 / ms.1,
        );
    }
}
