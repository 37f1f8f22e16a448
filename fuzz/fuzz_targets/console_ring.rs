//! Fuzzes the PV console output ring against a backend (xenconsoled)
//! that consumes honestly or writes garbage into `out_cons`/`out_prod`
//! between our writes. A corrupt backend gets an error, never an
//! out-of-bounds access or a panic; an honest one gets every byte in order.
#![no_main]

use core::sync::atomic::Ordering;
use libfuzzer_sys::fuzz_target;
use xenpv::abi::console::{offsets, OUT_RING_SIZE};
use xenpv::console::ring::{ConsoleRing, RingError};
use xenpv_fuzz::{Input, Region};

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let region = Region::new(4096);
    let page = region.mem(4096);
    let start = input.u32();
    let mut hostile = input.u8() & 1 == 1;
    if hostile {
        page.store_u32(offsets::OUT_PROD, start, Ordering::Relaxed)
            .unwrap();
        page.store_u32(offsets::OUT_CONS, input.u32(), Ordering::Relaxed)
            .unwrap();
    } else {
        page.store_u32(offsets::OUT_PROD, start, Ordering::Relaxed)
            .unwrap();
        page.store_u32(offsets::OUT_CONS, start, Ordering::Relaxed)
            .unwrap();
    }
    let ring = ConsoleRing::new(page).expect("a whole page");
    let (mut sent, mut got) = (Vec::new(), Vec::new());
    let mut counter = 0u8;
    while !input.is_empty() {
        match input.u8() % 5 {
            0 | 1 => {
                let n = input.u16() as usize % 3000;
                let msg: Vec<u8> = (0..n)
                    .map(|_| {
                        counter = counter.wrapping_add(1);
                        counter
                    })
                    .collect();
                match ring.write(&msg) {
                    Ok(k) => {
                        assert!(k <= n && k <= OUT_RING_SIZE);
                        sent.extend_from_slice(&msg[..k]);
                        // What we accepted is in the ring, within its size.
                        let p = ring.pending();
                        assert!(p.is_err() || p.unwrap() <= OUT_RING_SIZE);
                    }
                    Err(RingError::Corrupt { prod, cons }) => {
                        assert!(hostile, "honest backend reported corrupt: {prod} {cons}");
                        assert!(prod.wrapping_sub(cons) as usize > OUT_RING_SIZE);
                    }
                }
            }
            2 => {
                // The backend consumes up to k bytes, honestly.
                let k = input.u16() as usize;
                let cons = page.load_u32(offsets::OUT_CONS, Ordering::Relaxed).unwrap();
                let prod = page.load_u32(offsets::OUT_PROD, Ordering::Acquire).unwrap();
                let avail = (prod.wrapping_sub(cons) as usize).min(OUT_RING_SIZE);
                let k = k.min(avail);
                for i in 0..k {
                    let mut b = [0u8];
                    page.read(
                        offsets::OUT + (cons.wrapping_add(i as u32) as usize % OUT_RING_SIZE),
                        &mut b,
                    )
                    .unwrap();
                    got.push(b[0]);
                }
                page.store_u32(
                    offsets::OUT_CONS,
                    cons.wrapping_add(k as u32),
                    Ordering::Release,
                )
                .unwrap();
            }
            3 => {
                hostile = true;
                page.store_u32(offsets::OUT_CONS, input.u32(), Ordering::Relaxed)
                    .unwrap();
            }
            _ => {
                hostile = true;
                page.store_u32(offsets::OUT_PROD, input.u32(), Ordering::Relaxed)
                    .unwrap();
            }
        }
        if !hostile {
            assert_eq!(got[..], sent[..got.len()], "the backend read what we wrote");
        }
    }
    let _ = ring;
    drop(region);
});
