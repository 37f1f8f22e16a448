//! Fuzzes the vchan ring protocol: a server and a client `Ring` over one
//! control page whose orders, indices, live and notify bytes the fuzzer
//! sets, and between whose operations it plays a hostile peer (stores to
//! any header field, garbage in the ring buffers). Checked:
//! - never a panic or an access outside the ring (the buffers are exact
//!   size, so an overread would trip the bounds checks or ASan);
//! - a call moves at most what was asked and at most a ring's worth;
//! - while nobody misbehaved: no error, every byte arrives in order in
//!   both directions, and a reader (writer) that found the ring empty
//!   (full) is notified by the peer's next successful write (read): no
//!   lost wake-up.
#![no_main]

use core::sync::atomic::Ordering;
use libfuzzer_sys::fuzz_target;
use xenpv::abi::vchan::*;
use xenpv::shared_mem::SharedMem;
use xenpv::vchan::{ring_offset, HostChanMemory, Progress, Ring, Side, VchanError};
use xenpv_fuzz::{Input, Region};

fn order(input: &mut Input) -> u16 {
    match input.u8() {
        // Mostly valid, small orders (fast); sometimes anything.
        0..=199 => 10 + (input.u8() % 7) as u16,
        200..=249 => 9 + (input.u8() % 13) as u16,
        _ => input.u16(),
    }
}

/// One direction's bookkeeping for the honest-peer checks.
#[derive(Default)]
struct Stream {
    sent: Vec<u8>,
    got: Vec<u8>,
    next: u8,
    /// The reader found nothing and asked to be notified.
    reader_waits: bool,
    /// The writer found no space and asked to be notified.
    writer_waits: bool,
}

/// The rings' memory: views borrowed from regions that outlive the rings.
type Mem<'r> = HostChanMemory<'r>;

type FuzzRing<'r> = Ring<Mem<'r>>;

fn write(ring: &mut FuzzRing<'_>, s: &mut Stream, n: usize, honest: bool) {
    let msg: Vec<u8> = (0..n)
        .map(|_| {
            s.next = s.next.wrapping_add(1);
            s.next
        })
        .collect();
    match ring.write(&msg) {
        Ok(Progress { bytes, notify }) => {
            assert!(bytes <= n && bytes <= ring.write_capacity());
            if honest {
                s.sent.extend_from_slice(&msg[..bytes]);
                if bytes > 0 && s.reader_waits {
                    assert!(notify, "lost wake-up: the reader waits for data");
                    s.reader_waits = false;
                }
                if bytes == 0 && n > 0 {
                    s.writer_waits = true;
                }
            }
        }
        Err(e) => assert!(!honest, "honest peers, yet write failed: {e:?}"),
    }
}

fn read(ring: &mut FuzzRing<'_>, s: &mut Stream, n: usize, honest: bool) {
    let mut buf = vec![0u8; n];
    match ring.read(&mut buf) {
        Ok(Progress { bytes, notify }) => {
            assert!(bytes <= n && bytes <= ring.read_capacity());
            if honest {
                s.got.extend_from_slice(&buf[..bytes]);
                assert_eq!(s.got[..], s.sent[..s.got.len()], "stream corrupted");
                if bytes > 0 && s.writer_waits {
                    assert!(notify, "lost wake-up: the writer waits for space");
                    s.writer_waits = false;
                }
                if bytes == 0 && n > 0 {
                    s.reader_waits = true;
                }
            }
        }
        Err(VchanError::PeerCorrupt { prod, cons, size }) => {
            assert!(!honest, "honest peers, yet corrupt");
            assert!(prod.wrapping_sub(cons) > size);
        }
        Err(e) => assert!(!honest, "honest peers, yet read failed: {e:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let (lo, ro) = (order(&mut input), order(&mut input));
    let flags = input.u8();
    let mut honest = flags & 1 == 0;
    let ctrl_region = Region::new(4096);
    let ctrl = ctrl_region.mem(4096);
    ctrl.store_u16(LEFT_ORDER, lo, Ordering::Relaxed).unwrap();
    ctrl.store_u16(RIGHT_ORDER, ro, Ordering::Relaxed).unwrap();
    if honest {
        let start = input.u32();
        for off in [
            LEFT + RING_CONS,
            LEFT + RING_PROD,
            RIGHT + RING_CONS,
            RIGHT + RING_PROD,
        ] {
            ctrl.store_u32(off, start, Ordering::Relaxed).unwrap();
        }
        ctrl.store_u8(SRV_LIVE, 1, Ordering::Relaxed).unwrap();
        ctrl.store_u8(CLI_LIVE, 1, Ordering::Relaxed).unwrap();
    } else {
        for off in (0..16).step_by(4) {
            ctrl.store_u32(off, input.u32(), Ordering::Relaxed).unwrap();
        }
        for off in CLI_LIVE..GRANTS {
            ctrl.store_u8(off, input.u8(), Ordering::Relaxed).unwrap();
        }
    }
    // The ring pages (none for in-page orders 10/11): one region split
    // into pages or separate regions; now and then a wrong size or a
    // missing page, which must be refused.
    let (ls, rs) = (input.u8(), input.u8());
    let shape_len = |order: u16, shape: u8| {
        let len = if ring_offset(order).is_some() {
            0
        } else if order <= 20 {
            1usize << order.max(12)
        } else {
            4096
        };
        if shape & 0x10 != 0 {
            len / 2
        } else {
            len
        }
    };
    let (ll, rl) = (shape_len(lo, ls), shape_len(ro, rs));
    let regions = [Region::new(ll), Region::new(rl)];
    fn pages(region: &Region, len: usize, shape: u8) -> Vec<SharedMem<'_>> {
        let whole = region.mem(len);
        let page = if shape & 0x20 != 0 { 2048 } else { 4096 };
        (0..len / page)
            .map(|i| whole.slice(i * page, page).unwrap())
            .collect()
    }
    let mem = Mem {
        ctrl,
        left: pages(&regions[0], ll, ls),
        right: pages(&regions[1], rl, rs),
    };
    let srv = Ring::new(mem.clone(), Side::Server);
    let cli = Ring::new(mem.clone(), Side::Client);
    let (mut srv, mut cli) = match (srv, cli) {
        (Ok(s), Ok(c)) => (s, c),
        (s, c) => {
            // Refused: the layout really was bad.
            let e = s.err().or(c.err()).unwrap();
            assert!(
                matches!(e, VchanError::Layout(_) | VchanError::BufferSize { .. }),
                "{e:?}"
            );
            let pages_ok = |order: u16, p: &Vec<SharedMem<'_>>| {
                ring_offset(order).is_some()
                    || (p.iter().all(|m| m.len() == 4096) && p.len() * 4096 == 1 << order)
            };
            assert!(
                xenpv::vchan::validate_orders(lo, ro).is_err()
                    || !pages_ok(lo, &mem.left)
                    || !pages_ok(ro, &mem.right),
                "a valid layout was refused: {e:?}"
            );
            return;
        }
    };
    // up: client -> server (left ring); down: server -> client (right ring).
    let (mut up, mut down) = (Stream::default(), Stream::default());
    while !input.is_empty() {
        let op = input.u8();
        let n = input.u16() as usize % 5000;
        match op % 10 {
            0 | 1 => write(&mut cli, &mut up, n, honest),
            2 | 3 => read(&mut srv, &mut up, n, honest),
            4 => write(&mut srv, &mut down, n, honest),
            5 => read(&mut cli, &mut down, n, honest),
            6 => {
                let (a, b) = (srv.data_ready(), cli.buffer_space());
                if honest {
                    assert!(a.unwrap() <= srv.read_capacity());
                    assert!(b.unwrap() <= cli.write_capacity());
                }
            }
            7 => {
                // The peer rewrites an index (or a live/notify byte).
                honest = false;
                let off = (n % 24) & !3;
                ctrl.store_u32(off, input.u32(), Ordering::Relaxed).unwrap();
            }
            8 => {
                honest = false;
                ctrl.store_u8(CLI_LIVE + n % 4, input.u8(), Ordering::Relaxed)
                    .unwrap();
            }
            _ => {
                // Garbage in the ring data: breaks only the data check.
                honest = false;
                let b = input.bytes(16);
                let pages = if n & 1 == 0 { &mem.left } else { &mem.right };
                let in_ctrl = ring_offset(if n & 1 == 0 { lo } else { ro });
                match (pages.get(n % pages.len().max(1)), in_ctrl) {
                    (Some(m), _) => {
                        let _ = m.write(n % m.len(), b);
                    }
                    (None, Some(off)) => {
                        let _ = ctrl.write(off + n % 1024, b);
                    }
                    (None, None) => {}
                }
            }
        }
    }
    drop((srv, cli, mem));
    drop(regions);
    drop(ctrl_region);
});
