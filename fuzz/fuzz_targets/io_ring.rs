//! Fuzzes `io/ring.h` rings (`xenpv::ring`) from both ends at once: a
//! `FrontRing` and a `BackRing` over one page, each driven honestly by
//! fuzz-chosen pushes, polls and final checks, while the fuzz input now
//! and then plays a hostile peer that rewrites `req_prod`, `rsp_prod`,
//! the event indices or slot bytes. After every step:
//! - neither end consumes past what its peer published: a response is
//!   taken only below the `rsp_prod` in the page, and only below the
//!   `req_prod` the front published; a request only below the page's
//!   `req_prod`, and never more than a ring's worth past `rsp_prod_pvt`;
//! - an index error is reported exactly when the peer's index is
//!   impossible (no false alarm on a legal one), breaks the ring, and
//!   every later check answers `Broken`;
//! - `push_*` refuses exactly when full; the notify answer is ring.h's
//!   `RING_PUSH_*_AND_CHECK_NOTIFY` rule on the event index in the page;
//! - with honest peers, every request and response arrives once, in
//!   order, intact.
#![no_main]

use core::sync::atomic::Ordering;
use libfuzzer_sys::fuzz_target;
use std::collections::VecDeque;
use xenpv::ring::{
    ring_entries, BackRing, FrontRing, Message, RingError, RingFull, RingIdx, ENTRIES, REQ_EVENT,
    REQ_PROD, RSP_EVENT, RSP_PROD,
};
use xenpv::shared_mem::SharedMem;
use xenpv_fuzz::{Input, Region};

/// A message of `N` bytes: a sequence number and a checksum-like tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Msg<const N: usize>(u64);

impl<const N: usize> Message for Msg<N> {
    const SIZE: usize = N;
    fn encode(&self, out: &mut [u8]) {
        let b = self.0.to_le_bytes();
        for (i, o) in out.iter_mut().enumerate() {
            *o = b[i % 8] ^ (i / 8) as u8;
        }
    }
    fn decode(bytes: &[u8]) -> Self {
        let mut b = [0u8; 8];
        for (i, &x) in bytes.iter().enumerate().take(8) {
            b[i] = x;
        }
        Msg(u64::from_le_bytes(b))
    }
}

type Req = Msg<24>;
type Rsp = Msg<12>;

/// `(new - event) < (new - old)`: ring.h's notify rule.
fn wants_event(old: RingIdx, new: RingIdx, event: RingIdx) -> bool {
    new.wrapping_sub(event) < new.wrapping_sub(old)
}

fn load(m: &SharedMem<'_>, off: usize) -> u32 {
    m.load_u32(off, Ordering::Relaxed).unwrap()
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    // 1..4 pages, or a short odd-sized view (a ring of fewer slots).
    let shape = input.u8();
    let len = match shape % 4 {
        0 => ENTRIES + 24 * (1 + (input.u8() % 40) as usize),
        n => 4096 * n as usize,
    };
    let region = Region::new(len);
    let mem = region.mem(len);
    let start = input.u32();
    for off in [REQ_PROD, RSP_PROD] {
        mem.store_u32(off, start, Ordering::Relaxed).unwrap();
    }
    mem.store_u32(REQ_EVENT, start.wrapping_add(1), Ordering::Relaxed)
        .unwrap();
    mem.store_u32(RSP_EVENT, start.wrapping_add(1), Ordering::Relaxed)
        .unwrap();
    let mut front = FrontRing::<SharedMem<'_>, Req, Rsp>::attach(mem, start).unwrap();
    let mut back = BackRing::<SharedMem<'_>, Req, Rsp>::attach_at(mem, start).unwrap();
    let size = front.size();
    assert_eq!(size, ring_entries(len, 24));
    assert_eq!(back.size(), size);
    assert!(size.is_power_of_two() && ENTRIES + size as usize * 24 <= len);

    // What each end's honest peer did: the requests published, in order,
    // and the responses published.
    // Index honesty per direction, and slot contents untouched.
    let (mut req_honest, mut rsp_honest, mut data_ok) = (true, true, true);
    let mut next_req = 0u64;
    let mut next_rsp = 0u64;
    let mut reqs_sent: VecDeque<u64> = VecDeque::new();
    let mut reqs_got: VecDeque<u64> = VecDeque::new();
    let mut rsps_sent: VecDeque<u64> = VecDeque::new();
    // The req_prod the front last published (the page may say otherwise).
    let mut req_pub = start;
    // The rsp_prod the back end last published.
    let mut rsp_pub = start;

    while !input.is_empty() {
        let op = input.u8();
        match op % 12 {
            0 | 1 => {
                let free = front.free_requests();
                let r = front.push_request(&Msg(next_req));
                assert_eq!(r.is_err(), free == 0, "push_request: {r:?}, {free} free");
                if r.is_ok() {
                    reqs_sent.push_back(next_req);
                    next_req += 1;
                }
            }
            2 => {
                let old = req_pub;
                let new = front.req_prod_pvt();
                let event = load(&mem, REQ_EVENT);
                let notify = front.push_requests_and_check_notify();
                req_pub = new;
                if old != new {
                    assert_eq!(
                        load(&mem, REQ_PROD),
                        new,
                        "our req_prod, whatever was there"
                    );
                }
                assert_eq!(notify, old != new && wants_event(old, new, event));
            }
            3 | 4 => {
                // The back end takes a request.
                let (prod, cons, pvt) =
                    (load(&mem, REQ_PROD), back.req_cons(), back.rsp_prod_pvt());
                let was_broken = back.is_broken();
                let legal = prod.wrapping_sub(pvt) <= size
                    && prod.wrapping_sub(cons) <= prod.wrapping_sub(pvt);
                match back.poll_request() {
                    Ok(Some(m)) => {
                        assert!(legal && prod != cons, "took a request not published");
                        assert_eq!(back.req_cons(), cons.wrapping_add(1));
                        let sent = reqs_sent.pop_front();
                        // A lying rsp_prod frees slots the back end has not
                        // read yet: the front may reuse them, as it must.
                        if req_honest && rsp_honest && data_ok {
                            assert_eq!(Some(m.0), sent, "requests in order");
                        }
                        reqs_got.push_back(m.0);
                    }
                    Ok(None) => assert!(legal && prod == cons),
                    Err(RingError::Broken) => assert!(was_broken),
                    Err(e) => {
                        assert!(!was_broken && !legal, "false alarm: {e:?}");
                        // (A lying rsp_prod lets the front run ahead of
                        // what the back end answered: its error, rightly.)
                        assert!(!(req_honest && rsp_honest), "honest peers, yet {e:?}");
                        assert!(back.is_broken());
                    }
                }
                // Never more than a ring's worth unanswered.
                assert!(back.req_cons().wrapping_sub(back.rsp_prod_pvt()) <= size);
            }
            5 | 6 => {
                let r = back.push_response(&Msg(next_rsp));
                let idle = back.rsp_prod_pvt() == back.req_cons();
                match r {
                    Ok(()) => {
                        let m = reqs_got.pop_front();
                        assert!(m.is_some(), "answered a request never taken");
                        rsps_sent.push_back(next_rsp);
                        next_rsp += 1;
                    }
                    Err(RingFull) => assert!(idle, "refused with requests to answer"),
                }
            }
            7 => {
                let (prod, cons) = (load(&mem, RSP_PROD), front.rsp_cons());
                let was_broken = front.is_broken();
                let legal = prod.wrapping_sub(cons) <= req_pub.wrapping_sub(cons);
                match front.poll_response() {
                    Ok(Some(m)) => {
                        assert!(legal && prod != cons, "took a response not published");
                        assert_eq!(front.rsp_cons(), cons.wrapping_add(1));
                        assert!(
                            front.rsp_cons().wrapping_sub(start) <= req_pub.wrapping_sub(start)
                        );
                        let sent = rsps_sent.pop_front();
                        if rsp_honest && data_ok {
                            assert_eq!(Some(m.0), sent, "responses in order");
                        }
                    }
                    Ok(None) => assert!(legal && prod == cons),
                    Err(RingError::Broken) => assert!(was_broken),
                    Err(e) => {
                        assert!(!was_broken && !legal, "false alarm: {e:?}");
                        assert!(!rsp_honest, "honest back end, yet {e:?}");
                        assert!(matches!(e, RingError::TooManyResponses { .. }));
                        assert!(front.is_broken());
                    }
                }
                assert!(front.in_flight() <= size);
            }
            8 => {
                // Publish responses (back) or final checks (either end).
                match input.u8() % 3 {
                    0 => {
                        let old = rsp_pub;
                        let new = back.rsp_prod_pvt();
                        let event = load(&mem, RSP_EVENT);
                        let notify = back.push_responses_and_check_notify();
                        rsp_pub = new;
                        if old != new {
                            assert_eq!(
                                load(&mem, RSP_PROD),
                                new,
                                "our rsp_prod, whatever was there"
                            );
                        }
                        assert_eq!(notify, old != new && wants_event(old, new, event));
                    }
                    1 => {
                        let broken = front.is_broken();
                        match front.final_check_for_responses() {
                            Ok(more) => {
                                assert!(!broken);
                                if !more {
                                    assert_eq!(
                                        load(&mem, RSP_EVENT),
                                        front.rsp_cons().wrapping_add(1)
                                    );
                                }
                            }
                            Err(e) => {
                                assert!(broken || (!rsp_honest && front.is_broken()), "{e:?}")
                            }
                        }
                    }
                    _ => {
                        let broken = back.is_broken();
                        match back.final_check_for_requests() {
                            Ok(more) => {
                                assert!(!broken);
                                if !more {
                                    assert_eq!(
                                        load(&mem, REQ_EVENT),
                                        back.req_cons().wrapping_add(1)
                                    );
                                }
                            }
                            Err(e) => assert!(
                                broken || (!(req_honest && rsp_honest) && back.is_broken()),
                                "{e:?}"
                            ),
                        }
                    }
                }
            }
            9 => {
                // A hostile front end rewrites req_prod: the back end may
                // take (and answer) requests nobody sent.
                req_honest = false;
                rsp_honest = false;
                let v = match input.u8() % 3 {
                    0 => input.u32(),
                    1 => back.req_cons().wrapping_add(input.u8() as u32),
                    _ => back
                        .rsp_prod_pvt()
                        .wrapping_add(size)
                        .wrapping_add(input.u8() as u32 % 3),
                };
                mem.store_u32(REQ_PROD, v, Ordering::Relaxed).unwrap();
            }
            10 => {
                // A hostile back end rewrites rsp_prod.
                rsp_honest = false;
                let v = match input.u8() % 3 {
                    0 => input.u32(),
                    1 => front.rsp_cons().wrapping_add(input.u8() as u32 % 8),
                    _ => req_pub.wrapping_add(input.u8() as u32 % 3),
                };
                mem.store_u32(RSP_PROD, v, Ordering::Relaxed).unwrap();
            }
            _ => {
                // Event indices or slot bytes: notify answers and message
                // contents change, nothing else may.
                let what = input.u8();
                let v = input.u32();
                match what % 3 {
                    0 => mem.store_u32(REQ_EVENT, v, Ordering::Relaxed).unwrap(),
                    1 => mem.store_u32(RSP_EVENT, v, Ordering::Relaxed).unwrap(),
                    _ => {
                        data_ok = false;
                        let at = ENTRIES + v as usize % (size as usize * 24);
                        let _ = mem.write(at, input.bytes(8));
                    }
                }
            }
        }
        // Always: what each end holds is within a ring.
        assert!(front.free_requests() <= size);
        assert!(front.in_flight() + front.free_requests() == size);
    }
    drop((front, back));
    drop(region);
});
