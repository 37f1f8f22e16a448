//! Fuzzes the xenstore shared page's byte rings (`xenstore::ring::
//! StoreRing`), the client's side, against a xenstored that consumes and
//! produces honestly or writes any value into `req_cons`, `rsp_prod`
//! (its indices), `req_prod`, `rsp_cons` (ours, which the page also
//! holds) or the ring bytes. Checks, on the page as it is at each call:
//! - a ring whose producer is more than 1024 bytes past its consumer is
//!   `CorruptIndex` (with those values), exactly then, and the call
//!   changes nothing;
//! - otherwise a write takes exactly the free space (or all of the
//!   request), puts the bytes at `req_prod` and moves it by that much; a
//!   read takes exactly what is published (or what fits), never moving
//!   `rsp_cons` past `rsp_prod`, and returns the bytes at `rsp_cons`;
//! - with an honest daemon both byte streams arrive intact, in order.
#![no_main]

use core::sync::atomic::Ordering;
use libfuzzer_sys::fuzz_target;
use xenpv::abi::xenstore::{ring, XENSTORE_RING_SIZE};
use xenpv::shared_mem::SharedMem;
use xenpv::xenstore::ring::{CorruptIndex, StoreRing};
use xenpv_fuzz::{Input, Region};

const SIZE: u32 = XENSTORE_RING_SIZE as u32;

fn load(m: &SharedMem<'_>, off: usize) -> u32 {
    m.load_u32(off, Ordering::Relaxed).unwrap()
}

fn store(m: &SharedMem<'_>, off: usize, v: u32) {
    m.store_u32(off, v, Ordering::Relaxed).unwrap()
}

fn ring_byte(m: &SharedMem<'_>, base: usize, idx: u32) -> u8 {
    let mut b = [0u8];
    m.read(base + (idx % SIZE) as usize, &mut b).unwrap();
    b[0]
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let region = Region::new(4096);
    let page = region.mem(4096);
    assert!(StoreRing::new(page.slice(0, ring::SIZE - 1).unwrap()).is_none());
    // Indices anywhere in their 32 bits (they are free-running).
    let (req, rsp) = (input.u32(), input.u32());
    for (off, v) in [
        (ring::REQ_CONS, req),
        (ring::REQ_PROD, req),
        (ring::RSP_CONS, rsp),
        (ring::RSP_PROD, rsp),
    ] {
        store(&page, off, v);
    }
    let r = StoreRing::new(page).unwrap();
    let mut honest = true;
    // The streams: what we wrote / what xenstored took; what xenstored
    // produced / what we read.
    let (mut sent, mut taken) = (Vec::new(), Vec::new());
    let (mut produced, mut got) = (Vec::new(), Vec::new());
    let mut counter = 0u8;
    while !input.is_empty() {
        match input.u8() % 9 {
            0 | 1 => {
                let n = input.u16() as usize % 1500;
                let bytes: Vec<u8> = (0..n)
                    .map(|_| {
                        counter = counter.wrapping_add(1);
                        counter
                    })
                    .collect();
                let (prod, cons) = (load(&page, ring::REQ_PROD), load(&page, ring::REQ_CONS));
                let space = r.request_space();
                match r.write_request(&bytes) {
                    Ok(k) => {
                        assert!(prod.wrapping_sub(cons) <= SIZE);
                        let free = (SIZE - prod.wrapping_sub(cons)) as usize;
                        assert_eq!(space, Ok(free));
                        assert_eq!(k, n.min(free));
                        assert_eq!(load(&page, ring::REQ_PROD), prod.wrapping_add(k as u32));
                        for (i, &b) in bytes[..k].iter().enumerate() {
                            assert_eq!(ring_byte(&page, ring::REQ, prod.wrapping_add(i as u32)), b);
                        }
                        sent.extend_from_slice(&bytes[..k]);
                    }
                    Err(e) => {
                        assert_eq!(e, CorruptIndex { prod, cons });
                        assert_eq!(space, Err(e));
                        assert!(prod.wrapping_sub(cons) > SIZE);
                        assert!(!honest, "honest daemon, yet {e:?}");
                        assert_eq!(
                            load(&page, ring::REQ_PROD),
                            prod,
                            "a refused write moved req_prod"
                        );
                    }
                }
            }
            2 | 3 => {
                let mut buf = vec![0xa5u8; input.u16() as usize % 1500];
                let (prod, cons) = (load(&page, ring::RSP_PROD), load(&page, ring::RSP_CONS));
                let avail = r.response_available();
                let expect: Vec<u8> = (0..buf.len().min(SIZE as usize))
                    .map(|i| ring_byte(&page, ring::RSP, cons.wrapping_add(i as u32)))
                    .collect();
                match r.read_response(&mut buf) {
                    Ok(k) => {
                        let ready = prod.wrapping_sub(cons);
                        assert!(ready <= SIZE);
                        assert_eq!(avail, Ok(ready as usize));
                        assert_eq!(k, buf.len().min(ready as usize));
                        let now = load(&page, ring::RSP_CONS);
                        assert_eq!(now, cons.wrapping_add(k as u32));
                        assert!(
                            now.wrapping_sub(cons) <= prod.wrapping_sub(cons),
                            "read past rsp_prod"
                        );
                        assert_eq!(buf[..k], expect[..k]);
                        assert!(buf[k..].iter().all(|&b| b == 0xa5), "wrote past the count");
                        got.extend_from_slice(&buf[..k]);
                    }
                    Err(e) => {
                        assert_eq!(e, CorruptIndex { prod, cons });
                        assert_eq!(avail, Err(e));
                        assert!(prod.wrapping_sub(cons) > SIZE);
                        assert!(!honest, "honest daemon, yet {e:?}");
                        assert_eq!(load(&page, ring::RSP_CONS), cons);
                    }
                }
            }
            4 => {
                // xenstored takes up to k request bytes, honestly.
                let k = input.u16() as u32;
                let (prod, cons) = (load(&page, ring::REQ_PROD), load(&page, ring::REQ_CONS));
                let k = k.min(prod.wrapping_sub(cons)).min(SIZE);
                for i in 0..k {
                    taken.push(ring_byte(&page, ring::REQ, cons.wrapping_add(i)));
                }
                store(&page, ring::REQ_CONS, cons.wrapping_add(k));
            }
            5 => {
                // xenstored produces up to k reply bytes, honestly.
                let k = input.u16() as u32;
                let (prod, cons) = (load(&page, ring::RSP_PROD), load(&page, ring::RSP_CONS));
                let k = k.min(SIZE.saturating_sub(prod.wrapping_sub(cons)));
                for i in 0..k {
                    let b = input.u8();
                    page.write(ring::RSP + (prod.wrapping_add(i) % SIZE) as usize, &[b])
                        .unwrap();
                    produced.push(b);
                }
                store(&page, ring::RSP_PROD, prod.wrapping_add(k));
            }
            6 | 7 => {
                honest = false;
                let off = [
                    ring::REQ_CONS,
                    ring::RSP_PROD,
                    ring::REQ_PROD,
                    ring::RSP_CONS,
                ][input.u8() as usize % 4];
                let v = match input.u8() % 3 {
                    0 => input.u32(),
                    1 => load(&page, off).wrapping_add(input.u16() as u32),
                    _ => load(&page, off).wrapping_sub(input.u16() as u32),
                };
                store(&page, off, v);
            }
            _ => {
                // Garbage in the ring bytes: only the streams change.
                honest = false;
                let at = input.u16() as usize % (2 * XENSTORE_RING_SIZE);
                let _ = page.write(at, input.bytes(16));
            }
        }
        if honest {
            assert_eq!(
                taken[..],
                sent[..taken.len()],
                "xenstored read what we wrote"
            );
            assert_eq!(
                got[..],
                produced[..got.len()],
                "we read what xenstored wrote"
            );
        }
    }
    let _ = r;
    drop(region);
});
