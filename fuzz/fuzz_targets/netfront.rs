//! Fuzzes the network front end (`net::NetFront`, through its public
//! API and its smoltcp device) against a back end played by the fuzz
//! input over the grant fake, as the host tests' netback does: it maps
//! the rings, takes tx frames and delivers rx frames honestly, or
//! answers with any id, offset, flags and status, repeats responses,
//! and rewrites `rsp_prod` on either ring. Checks:
//! - nothing panics, every failure is a typed `NetError`; after a ring
//!   error the device says `Broken` from then on;
//! - frames the device takes are at most `MAX_FRAME` (or the buffer) and
//!   lie inside their page; the tx pages are granted read-only;
//! - the pools do not grow or leak: the pages shared stay the rings and
//!   the pools, granted once; the counters add up;
//! - with an honest back end every frame arrives once, in order, intact,
//!   in both directions, each request naming a distinct pool page.
#![no_main]

use core::sync::atomic::Ordering;
use libfuzzer_sys::fuzz_target;
use std::collections::{HashSet, VecDeque};
use std::time::Duration;
use xenpv::grant::fake::{FakeWorld, FakeXen};
use xenpv::grant::{Access, Grants, MappedPages};
use xenpv::net::smoltcp::phy::{Device, RxToken as _, TxToken as _};
use xenpv::net::smoltcp::time::Instant;
use xenpv::net::{
    NetError, NetFront, Options, RxRequest, RxResponse, TxRequest, TxResponse, MAX_FRAME,
    NETIF_RSP_OKAY,
};
use xenpv::ring::{BackRing, RingMemory, RSP_PROD};
use xenpv::DomId;
use xenpv_fuzz::{Events, Input};

const FRONT: DomId = DomId(1);
const BACK: DomId = DomId(0);
const MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0, 0, 0x10];

type Map<'g> = MappedPages<'g, FakeXen>;

fn frame(n: usize, seed: &mut u8) -> Vec<u8> {
    (0..n)
        .map(|_| {
            *seed = seed.wrapping_add(1);
            *seed
        })
        .collect()
}

/// The result of one device call, checked against the broken latch
/// (`broken.1`: a smoltcp call, which cannot report, may have broken it).
fn check<T: core::fmt::Debug>(r: &Result<T, NetError>, broken: &mut (bool, bool)) {
    let (broken, silent) = broken;
    match r {
        Err(NetError::Broken) => {
            assert!(*broken || *silent, "Broken before any error");
            *broken = true;
        }
        Err(e) => {
            assert!(!*broken, "{e:?} after the device broke (want Broken)");
            if matches!(e, NetError::Ring(_) | NetError::Event(_)) {
                *broken = true;
            }
        }
        Ok(_) => assert!(!*broken, "a broken device answered {r:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let w = FakeWorld::new();
    let front_grants = Grants::new(w.add_domain(FRONT, 1, 1), 1).unwrap();
    let back_grants = Grants::new(w.add_domain(BACK, 1, 1), 1).unwrap();
    let events = Events::new();
    let (n_rx, n_tx) = (1 + input.u8() as usize % 4, 1 + input.u8() as usize % 4);
    let opts = Options {
        rx_buffers: n_rx,
        tx_buffers: n_tx,
        timeout: Duration::from_secs(1),
    };
    let mut nf = NetFront::new(&front_grants, &events, BACK, MAC, opts).unwrap();
    let shared = front_grants.stats().shared_pages;
    assert_eq!(shared as usize, 2 + n_rx + n_tx);
    let keys = nf.keys();
    let map = |r| back_grants.map(FRONT, &[r], Access::ReadWrite).unwrap();
    let mut tx: BackRing<Map<'_>, TxRequest, TxResponse> =
        BackRing::attach(map(keys.tx_ring_ref)).unwrap();
    let mut rx: BackRing<Map<'_>, RxRequest, RxResponse> =
        BackRing::attach(map(keys.rx_ring_ref)).unwrap();

    let mut honest = true;
    let mut broken = (false, false);
    let mut seed = 0u8;
    // tx: frames the device accepted, not yet taken by the back end.
    let mut tx_queue: VecDeque<Vec<u8>> = VecDeque::new();
    // tx requests the back end took and has not answered (ids).
    let mut tx_held: VecDeque<u16> = VecDeque::new();
    // rx: frames delivered and not yet received; rx ids posted to us.
    let mut rx_queue: VecDeque<Vec<u8>> = VecDeque::new();
    let mut rx_held: HashSet<u16> = HashSet::new();
    let (mut sent, mut received) = (0u64, 0u64);
    let mut last_tx: Option<TxResponse> = None;
    let mut last_rx: Option<RxResponse> = None;

    while !input.is_empty() {
        let op = input.u8();
        match op % 14 {
            0 | 1 => {
                let n = match input.u8() % 8 {
                    0 => 0,
                    1 => MAX_FRAME + 1 + input.u8() as usize,
                    2 => MAX_FRAME,
                    _ => 1 + input.u16() as usize % MAX_FRAME,
                };
                let f = frame(n, &mut seed);
                let r = nf.send(&f);
                check(&r, &mut broken);
                match r {
                    Ok(true) => {
                        sent += 1;
                        tx_queue.push_back(f);
                    }
                    Ok(false) => {}
                    Err(NetError::BadFrame(m)) => assert!(m == n && (n == 0 || n > MAX_FRAME)),
                    Err(_) => {}
                }
                if let Ok(true | false) = r {
                    assert!(n >= 1 && n <= MAX_FRAME, "took a frame of {n}");
                }
            }
            2 | 3 => {
                // A buffer shorter than MAX_FRAME (against the documented
                // rule) drops longer frames: no exact accounting then.
                let len = if op & 0x80 == 0 {
                    MAX_FRAME
                } else {
                    honest = false;
                    64 + input.u8() as usize
                };
                let mut buf = vec![0u8; len];
                let r = nf.recv(&mut buf);
                check(&r, &mut broken);
                if let Ok(Some(n)) = r {
                    received += 1;
                    assert!(n >= 1 && n <= len);
                    if honest {
                        let want = rx_queue.pop_front().expect("a frame nobody sent");
                        assert_eq!(buf[..n], want[..], "rx frame");
                    }
                }
                if let Ok(None) = r {
                    if honest {
                        assert!(rx_queue.is_empty(), "a delivered frame was not received");
                    }
                }
            }
            4 => {
                // The back end takes the tx frames and answers them.
                while let Ok(Some(req)) = tx.poll_request() {
                    assert!((req.id as usize) < n_tx, "tx id {} of {n_tx}", req.id);
                    assert_eq!((req.offset, req.flags), (0, 0));
                    assert!(req.size as usize >= 1 && req.size as usize <= MAX_FRAME);
                    // The tx pages are the back end's to read only.
                    assert!(back_grants
                        .map(FRONT, &[req.gref], Access::ReadWrite)
                        .is_err());
                    let page = back_grants
                        .map(FRONT, &[req.gref], Access::ReadOnly)
                        .expect("a tx page the back end cannot map");
                    let mut f = vec![0u8; req.size as usize];
                    page.read_at(0, &mut f).unwrap();
                    drop(page);
                    if honest {
                        assert!(!tx_held.contains(&req.id), "tx id {} reused", req.id);
                        assert_eq!(Some(f), tx_queue.pop_front(), "tx frame");
                    }
                    tx_held.push_back(req.id);
                }
                if input.u8() & 1 == 0 {
                    while let Some(id) = tx_held.pop_front() {
                        let rsp = TxResponse {
                            id,
                            status: NETIF_RSP_OKAY,
                        };
                        if tx.push_response(&rsp).is_err() {
                            break;
                        }
                        last_tx = Some(rsp);
                    }
                    tx.push_responses_and_check_notify();
                }
            }
            5 | 6 => {
                // The back end delivers a frame, honestly.
                let n = 1 + input.u16() as usize % MAX_FRAME;
                let off = (input.u8() as usize * 16).min(4096 - n) as u16;
                if let Ok(Some(req)) = rx.poll_request() {
                    assert!((req.id as usize) < n_rx, "rx id {} of {n_rx}", req.id);
                    if honest {
                        assert!(rx_held.insert(req.id), "rx id {} posted twice", req.id);
                    }
                    let page = back_grants
                        .map(FRONT, &[req.gref], Access::ReadWrite)
                        .expect("an rx page the back end cannot map");
                    let f = frame(n, &mut seed);
                    page.write_at(off as usize, &f).unwrap();
                    drop(page);
                    let rsp = RxResponse {
                        id: req.id,
                        offset: off,
                        flags: 0,
                        status: n as i16,
                    };
                    rx.push_response(&rsp).unwrap();
                    rx.push_responses_and_check_notify();
                    rx_held.remove(&req.id);
                    rx_queue.push_back(f);
                    last_rx = Some(rsp);
                }
            }
            7 => {
                // A lying tx response (for a request taken, or not).
                honest = false;
                let _ = tx.poll_request();
                let rsp = TxResponse {
                    id: input.u16() % 8,
                    status: input.u16() as i16,
                };
                if tx.push_response(&rsp).is_ok() {
                    tx.push_responses_and_check_notify();
                    last_tx = Some(rsp);
                }
            }
            8 => {
                honest = false;
                let _ = rx.poll_request();
                let rsp = RxResponse {
                    id: input.u16() % 8,
                    offset: input.u16() % 4200,
                    flags: input.u16() & 0xf,
                    status: input.u16() as i16,
                };
                if rx.push_response(&rsp).is_ok() {
                    rx.push_responses_and_check_notify();
                    last_rx = Some(rsp);
                }
            }
            9 => {
                // The same response again, in a slot of its own.
                honest = false;
                if op & 0x80 == 0 {
                    if let Some(r) = last_tx {
                        let _ = tx.poll_request();
                        if tx.push_response(&r).is_ok() {
                            tx.push_responses_and_check_notify();
                        }
                    }
                } else if let Some(r) = last_rx {
                    let _ = rx.poll_request();
                    if rx.push_response(&r).is_ok() {
                        rx.push_responses_and_check_notify();
                    }
                }
            }
            10 => {
                honest = false;
                let v = match input.u8() % 3 {
                    0 => input.u32(),
                    1 => input.u8() as u32,
                    _ => 0u32.wrapping_sub(input.u8() as u32),
                };
                let mem = if op & 0x80 == 0 {
                    tx.memory().ring_mem()
                } else {
                    rx.memory().ring_mem()
                };
                mem.store_u32(RSP_PROD, v, Ordering::Release).unwrap();
            }
            11 => {
                let r = nf.wait(Duration::from_millis(input.u8() as u64));
                check(&r, &mut broken);
            }
            12 => {
                // smoltcp's side of the device.
                let t = Instant::from_millis(0);
                if op & 0x80 == 0 {
                    let got = nf.receive(t);
                    if got.is_none() {
                        broken.1 = true;
                    }
                    if let Some((rxt, _txt)) = got {
                        assert!(!broken.0);
                        let f = rxt.consume(|f| f.to_vec());
                        received += 1;
                        assert!(!f.is_empty() && f.len() <= MAX_FRAME);
                        if honest {
                            assert_eq!(Some(f), rx_queue.pop_front(), "rx frame (smoltcp)");
                        }
                    }
                } else {
                    let before = nf.stats().tx_frames;
                    let n = 60 + input.u8() as usize;
                    let f = frame(n, &mut seed);
                    let offer = nf.transmit(t);
                    if offer.is_none() {
                        broken.1 = true;
                    }
                    if let Some(txt) = offer {
                        assert!(!broken.0, "a broken device offered to transmit");
                        txt.consume(n, |buf| buf.copy_from_slice(&f));
                    }
                    if nf.stats().tx_frames > before {
                        sent += 1;
                        tx_queue.push_back(f);
                    }
                }
                let caps = nf.capabilities();
                assert_eq!(caps.max_transmission_unit, MAX_FRAME);
            }
            _ => events.advance(input.u32() as u64 * 1000),
        }
        // Nothing granted per frame, nothing leaked.
        assert_eq!(front_grants.stats().shared_pages, shared);
        let s = nf.stats();
        assert_eq!((s.tx_frames, s.rx_frames), (sent, received));
        if honest {
            assert_eq!((s.tx_errors, s.rx_dropped), (0, 0), "{s:?}");
        }
        assert!(w.violations().is_empty(), "{:?}", w.violations());
    }
    drop((tx, rx));
    drop(nf);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
    assert_eq!(
        events.open_ports(),
        0,
        "the event channel outlived the device"
    );
});
