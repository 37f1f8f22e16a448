//! Host tests of the request/response rings: both ends over one page,
//! index wrap-around, notify decisions, and a hostile peer's indices.

extern crate std;

use super::*;
use std::vec::Vec;

/// A request: an id and a value (12 bytes, like a small C struct).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Req {
    id: u64,
    val: u32,
}

impl Message for Req {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.id.to_le_bytes());
        out[8..12].copy_from_slice(&self.val.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        Req {
            id: u64::from_le_bytes(b[..8].try_into().unwrap()),
            val: u32::from_le_bytes(b[8..12].try_into().unwrap()),
        }
    }
}

/// A response: the id and a status (16 bytes: larger than `Req`, so the
/// slot size is the response's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rsp {
    id: u64,
    status: i16,
}

impl Message for Rsp {
    const SIZE: usize = 16;
    fn encode(&self, out: &mut [u8]) {
        out.fill(0);
        out[..8].copy_from_slice(&self.id.to_le_bytes());
        out[8..10].copy_from_slice(&self.status.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        Rsp {
            id: u64::from_le_bytes(b[..8].try_into().unwrap()),
            status: i16::from_le_bytes(b[8..10].try_into().unwrap()),
        }
    }
}

type Front = FrontRing<SharedMem<'static>, Req, Rsp>;
type Back = BackRing<SharedMem<'static>, Req, Rsp>;

fn page() -> SharedMem<'static> {
    SharedMem::leak_zeroed(4096)
}

fn u32_at(m: &SharedMem<'_>, off: usize) -> u32 {
    m.load_u32(off, Ordering::Relaxed).unwrap()
}

#[test]
fn ring_sizes_follow_ring_h() {
    // (4096 - 64) / 16 = 252 -> 128; / 12 = 336 -> 256; / 112 = 36 -> 32.
    assert_eq!(ring_entries(4096, 16), 128);
    assert_eq!(ring_entries(4096, 12), 256);
    assert_eq!(ring_entries(4096, 112), 32);
    assert_eq!(ring_entries(4096, 8), 256);
    assert_eq!(ring_entries(4096 * 4, 112), 128);
    assert_eq!(ring_entries(64 + 16, 16), 1);
    assert_eq!(ring_entries(64 + 15, 16), 0);
    assert_eq!(ring_entries(64, 16), 0);
    assert_eq!(ring_entries(4096, 0), 0);
    assert_eq!(Front::init(page()).unwrap().size(), 128);
    assert_eq!(
        Front::init(SharedMem::leak_zeroed(70)).unwrap_err(),
        RingError::TooSmall {
            bytes: 70,
            entry: 16
        }
    );
}

#[test]
fn init_writes_ring_h_s_header() {
    let m = page();
    m.fill(0, 4096, 0xff).unwrap();
    let _f = Front::init(m).unwrap();
    assert_eq!(
        [
            u32_at(&m, REQ_PROD),
            u32_at(&m, REQ_EVENT),
            u32_at(&m, RSP_PROD),
            u32_at(&m, RSP_EVENT)
        ],
        [0, 1, 0, 1]
    );
    let mut pad = [0xffu8; 48];
    m.read(PVT, &mut pad).unwrap();
    assert_eq!(pad, [0u8; 48]);
    // The slots are left alone.
    assert_eq!(m.load_u8(ENTRIES, Ordering::Relaxed).unwrap(), 0xff);
}

#[test]
fn requests_and_responses_travel_in_order_across_index_wrap() {
    for start in [0u32, u32::MAX - 5, 1 << 31] {
        let m = page();
        Front::init(m).unwrap();
        for off in [REQ_PROD, RSP_PROD] {
            m.store_u32(off, start, Ordering::Relaxed).unwrap();
        }
        m.store_u32(REQ_EVENT, start.wrapping_add(1), Ordering::Relaxed)
            .unwrap();
        m.store_u32(RSP_EVENT, start.wrapping_add(1), Ordering::Relaxed)
            .unwrap();
        let mut f = Front::attach(m, start).unwrap();
        let mut b = Back::attach_at(m, start).unwrap();
        let mut next = 0u64;
        for round in 0..40u64 {
            let n = 1 + round % 7;
            for _ in 0..n {
                f.push_request(&Req {
                    id: next,
                    val: next as u32 * 3,
                })
                .unwrap();
                next += 1;
            }
            f.push_requests_and_check_notify();
            assert_eq!(b.unconsumed_requests().unwrap(), n as u32);
            while let Some(r) = b.poll_request().unwrap() {
                assert_eq!(r.val, r.id as u32 * 3);
                b.push_response(&Rsp {
                    id: r.id,
                    status: -(r.id as i16),
                })
                .unwrap();
            }
            b.push_responses_and_check_notify();
            let mut got = Vec::new();
            while let Some(r) = f.poll_response().unwrap() {
                got.push(r);
            }
            let first = next - n;
            assert_eq!(
                got,
                (first..next)
                    .map(|id| Rsp {
                        id,
                        status: -(id as i16)
                    })
                    .collect::<Vec<_>>(),
                "start {start}"
            );
            assert_eq!(f.in_flight(), 0);
        }
        assert_eq!(u32_at(&m, REQ_PROD), start.wrapping_add(next as u32));
    }
}

#[test]
fn a_full_ring_refuses_requests_until_responses_are_consumed() {
    let m = page();
    let mut f = Front::init(m).unwrap();
    let mut b = Back::attach(m).unwrap();
    for i in 0..128 {
        f.push_request(&Req { id: i, val: 0 }).unwrap();
    }
    assert_eq!(f.free_requests(), 0);
    assert_eq!(f.push_request(&Req { id: 999, val: 0 }), Err(RingFull));
    f.push_requests_and_check_notify();
    // Consumed but unanswered requests still hold their slots.
    assert!(b.poll_request().unwrap().is_some());
    assert_eq!(f.free_requests(), 0);
    b.push_response(&Rsp { id: 0, status: 0 }).unwrap();
    // One response only per consumed request.
    assert_eq!(b.push_response(&Rsp { id: 1, status: 0 }), Err(RingFull));
    b.push_responses_and_check_notify();
    assert_eq!(
        f.free_requests(),
        0,
        "a slot frees when the response is consumed"
    );
    assert_eq!(f.poll_response().unwrap(), Some(Rsp { id: 0, status: 0 }));
    assert_eq!(f.free_requests(), 1);
    f.push_request(&Req { id: 128, val: 0 }).unwrap();
}

#[test]
fn notifications_are_sent_only_when_the_peer_asked() {
    let m = page();
    let mut f = Front::init(m).unwrap();
    let mut b = Back::attach(m).unwrap();
    // req_event = 1 after init: the first request is wanted.
    f.push_request(&Req { id: 0, val: 0 }).unwrap();
    assert!(f.push_requests_and_check_notify());
    // Nothing queued: nothing to publish, no event.
    assert!(!f.push_requests_and_check_notify());
    // The back end has not re-armed req_event: more requests, no event.
    f.push_request(&Req { id: 1, val: 0 }).unwrap();
    assert!(!f.push_requests_and_check_notify());
    // The back end drains and re-arms; the next request is wanted again.
    while b.poll_request().unwrap().is_some() {}
    assert!(!b.final_check_for_requests().unwrap());
    assert_eq!(u32_at(&m, REQ_EVENT), 3);
    f.push_request(&Req { id: 2, val: 0 }).unwrap();
    f.push_request(&Req { id: 3, val: 0 }).unwrap();
    assert!(
        f.push_requests_and_check_notify(),
        "req_event 3 lies in (2, 4]"
    );
    // final_check finds the new requests instead of sleeping.
    assert!(b.final_check_for_requests().unwrap());

    // Responses: rsp_event = 1, so the first answer is wanted...
    for _ in 0..4 {
        if b.poll_request().unwrap().is_none() {
            break;
        }
    }
    b.push_response(&Rsp { id: 0, status: 0 }).unwrap();
    assert!(b.push_responses_and_check_notify());
    b.push_response(&Rsp { id: 1, status: 0 }).unwrap();
    assert!(
        !b.push_responses_and_check_notify(),
        "rsp_event 1 already passed"
    );
    assert!(f.final_check_for_responses().unwrap(), "two responses wait");
    while f.poll_response().unwrap().is_some() {}
    assert!(!f.final_check_for_responses().unwrap());
    assert_eq!(u32_at(&m, RSP_EVENT), 3);
    b.push_response(&Rsp { id: 2, status: 0 }).unwrap();
    assert!(b.push_responses_and_check_notify());
}

#[test]
fn the_notify_test_is_ring_h_s_on_wrapping_indices() {
    assert!(passed(0, 1, 1));
    assert!(!passed(1, 2, 1));
    assert!(passed(u32::MAX - 1, 2, 0), "event inside a wrapped window");
    assert!(passed(u32::MAX - 1, 2, 2));
    assert!(!passed(u32::MAX - 1, 2, u32::MAX - 1));
    assert!(!passed(u32::MAX - 1, 2, 3));
    assert!(!passed(5, 5, 5));
}

#[test]
fn a_back_end_claiming_unrequested_responses_breaks_the_ring() {
    let m = page();
    let mut f = Front::init(m).unwrap();
    assert!(!f.is_broken());
    f.push_request(&Req { id: 0, val: 0 }).unwrap();
    // Queued, not published: the back end cannot have answered it.
    m.store_u32(RSP_PROD, 1, Ordering::Relaxed).unwrap();
    assert_eq!(
        f.poll_response(),
        Err(RingError::TooManyResponses {
            rsp_prod: 1,
            rsp_cons: 0,
            req_prod: 0
        })
    );
    // Broken for good, whatever the page says now.
    m.store_u32(RSP_PROD, 0, Ordering::Relaxed).unwrap();
    assert!(f.is_broken());
    assert_eq!(f.poll_response(), Err(RingError::Broken));
    assert_eq!(f.final_check_for_responses(), Err(RingError::Broken));

    for bad in [2u32, u32::MAX, 1 << 31] {
        let m = page();
        let mut f = Front::init(m).unwrap();
        f.push_request(&Req { id: 0, val: 0 }).unwrap();
        f.push_requests_and_check_notify();
        m.store_u32(RSP_PROD, bad, Ordering::Relaxed).unwrap();
        assert!(
            matches!(f.poll_response(), Err(RingError::TooManyResponses { .. })),
            "rsp_prod {bad}"
        );
    }
    // Exactly as many as requested is fine.
    let m = page();
    let mut f = Front::init(m).unwrap();
    f.push_request(&Req { id: 0, val: 0 }).unwrap();
    f.push_requests_and_check_notify();
    m.store_u32(RSP_PROD, 1, Ordering::Relaxed).unwrap();
    assert!(f.poll_response().unwrap().is_some());
}

#[test]
fn a_front_end_flooding_requests_breaks_the_ring() {
    for bad in [129u32, u32::MAX, 1 << 31] {
        let m = page();
        let mut b = Back::attach(m).unwrap();
        m.store_u32(REQ_PROD, bad, Ordering::Relaxed).unwrap();
        assert_eq!(
            b.poll_request(),
            Err(RingError::TooManyRequests {
                req_prod: bad,
                rsp_prod: 0,
                size: 128
            })
        );
        assert!(b.is_broken());
        assert_eq!(b.poll_request(), Err(RingError::Broken));
        assert_eq!(b.final_check_for_requests(), Err(RingError::Broken));
    }
    // A full ring's worth is fine, and so is moving on after answers.
    let m = page();
    let mut b = Back::attach(m).unwrap();
    m.store_u32(REQ_PROD, 128, Ordering::Relaxed).unwrap();
    assert_eq!(b.unconsumed_requests(), Ok(128));
    for _ in 0..10 {
        b.poll_request().unwrap().unwrap();
        b.push_response(&Rsp { id: 0, status: 0 }).unwrap();
    }
    m.store_u32(REQ_PROD, 138, Ordering::Relaxed).unwrap();
    assert_eq!(b.unconsumed_requests(), Ok(128));
    m.store_u32(REQ_PROD, 139, Ordering::Relaxed).unwrap();
    assert!(matches!(
        b.unconsumed_requests(),
        Err(RingError::TooManyRequests { .. })
    ));
    // req_prod moving back behind what we consumed.
    let m = page();
    let mut b = Back::attach(m).unwrap();
    m.store_u32(REQ_PROD, 5, Ordering::Relaxed).unwrap();
    for _ in 0..5 {
        b.poll_request().unwrap().unwrap();
    }
    b.push_response(&Rsp { id: 0, status: 0 }).unwrap();
    m.store_u32(REQ_PROD, 3, Ordering::Relaxed).unwrap();
    assert!(matches!(
        b.poll_request(),
        Err(RingError::TooManyRequests { .. })
    ));
}

#[test]
fn our_published_index_is_never_read_back_from_the_page() {
    let m = page();
    let mut f = Front::init(m).unwrap();
    f.push_request(&Req { id: 0, val: 0 }).unwrap();
    f.push_requests_and_check_notify();
    // The back end rewrites req_prod (ours) to make us skip or repeat.
    m.store_u32(REQ_PROD, 100, Ordering::Relaxed).unwrap();
    m.store_u32(REQ_EVENT, 2, Ordering::Relaxed).unwrap();
    f.push_request(&Req { id: 1, val: 0 }).unwrap();
    assert!(
        f.push_requests_and_check_notify(),
        "old = 1 (ours), new = 2: req_event 2 is passed"
    );
    assert_eq!(u32_at(&m, REQ_PROD), 2);
}

#[test]
fn multi_page_rings_use_every_page() {
    let m = SharedMem::leak_zeroed(4 * 4096);
    let mut f = Front::init(m).unwrap();
    let mut b = Back::attach(m).unwrap();
    assert_eq!(f.size(), 512); // (16384 - 64) / 16 = 1020 -> 512
    for i in 0..f.size() as u64 {
        f.push_request(&Req { id: i, val: 7 }).unwrap();
    }
    f.push_requests_and_check_notify();
    let last = ENTRIES + (f.size() as usize - 1) * 16;
    assert!(last > 4096, "slots run past the first page");
    assert_eq!(
        m.load_u32(last + 8, Ordering::Relaxed).unwrap(),
        7,
        "the last slot holds the last request"
    );
    let mut n = 0;
    while let Some(r) = b.poll_request().unwrap() {
        assert_eq!(r.id, n);
        n += 1;
    }
    assert_eq!(n, u64::from(f.size()));
}

#[test]
fn entries_larger_than_the_copy_buffer_are_refused() {
    #[derive(Debug)]
    struct Big;
    impl Message for Big {
        const SIZE: usize = MAX_ENTRY + 1;
        fn encode(&self, _: &mut [u8]) {}
        fn decode(_: &[u8]) -> Self {
            Big
        }
    }
    assert_eq!(
        FrontRing::<_, Big, Rsp>::init(page()).unwrap_err(),
        RingError::EntryTooLarge {
            entry: MAX_ENTRY + 1
        }
    );
    assert_eq!(
        BackRing::<_, Req, Big>::attach(page()).unwrap_err(),
        RingError::EntryTooLarge {
            entry: MAX_ENTRY + 1
        }
    );
}

#[test]
fn published_looks_see_index_moves_without_checking_them() {
    let m = page();
    let mut f = Front::init(m).unwrap();
    let mut b = Back::attach(m).unwrap();
    assert!(!b.request_published() && !f.response_published());
    f.push_request(&Req { id: 1, val: 0 }).unwrap();
    assert!(!b.request_published(), "queued is not published");
    f.push_requests_and_check_notify();
    assert!(b.request_published());
    b.poll_request().unwrap().unwrap();
    assert!(!b.request_published());
    b.push_response(&Rsp { id: 1, status: 0 }).unwrap();
    b.push_responses_and_check_notify();
    assert!(f.response_published());
    f.poll_response().unwrap().unwrap();
    assert!(!f.response_published());
    // A hostile index: seen as a move, refused by the checked poll.
    m.store_u32(RSP_PROD, 77, Ordering::Relaxed).unwrap();
    assert!(f.response_published());
    assert!(f.poll_response().is_err());
}

#[test]
fn a_view_whose_indices_cannot_be_atomic_is_refused() {
    let m = SharedMem::leak_zeroed(2 * 4096);
    let odd = m.slice(2, 4096).unwrap();
    assert_eq!(
        Front::init(odd).unwrap_err(),
        RingError::Misaligned {
            addr: odd.as_ptr() as usize
        }
    );
    assert_eq!(
        Back::attach(odd).unwrap_err(),
        RingError::Misaligned {
            addr: odd.as_ptr() as usize
        }
    );
    // A 4-aligned sub-view is a ring (the header's u32s are atomic there).
    assert_eq!(Front::init(m.slice(4, 4096).unwrap()).unwrap().size(), 128);
}

#[test]
fn private_indices_follow_ring_h_s_names() {
    let m = page();
    let start = u32::MAX - 1;
    Front::init(m).unwrap();
    for off in [REQ_PROD, RSP_PROD] {
        m.store_u32(off, start, Ordering::Relaxed).unwrap();
    }
    let mut f = Front::attach(m, start).unwrap();
    let mut b = Back::attach_at(m, start).unwrap();
    for i in 0..3 {
        f.push_request(&Req { id: i, val: 0 }).unwrap();
    }
    assert_eq!((f.req_prod_pvt(), f.rsp_cons()), (1, start));
    f.push_requests_and_check_notify();
    b.poll_request().unwrap().unwrap();
    b.poll_request().unwrap().unwrap();
    b.push_response(&Rsp { id: 0, status: 0 }).unwrap();
    assert_eq!((b.req_cons(), b.rsp_prod_pvt()), (0, u32::MAX));
    b.push_responses_and_check_notify();
    f.poll_response().unwrap().unwrap();
    assert_eq!(
        (f.req_prod_pvt(), f.rsp_cons(), f.in_flight()),
        (1, u32::MAX, 2)
    );
}

#[test]
fn messages_are_copied_through_their_encodings() {
    // What a peer wrote into a slot is decoded from a copy; what we
    // write is exactly the encoding (padding included).
    let m = page();
    let mut f = Front::init(m).unwrap();
    let mut b = Back::attach(m).unwrap();
    f.push_request(&Req {
        id: 0x0102_0304_0506_0708,
        val: 0xa0b0_c0d0,
    })
    .unwrap();
    let mut slot = [0u8; 12];
    m.read(ENTRIES, &mut slot).unwrap();
    assert_eq!(slot, [8, 7, 6, 5, 4, 3, 2, 1, 0xd0, 0xc0, 0xb0, 0xa0]);
    f.push_requests_and_check_notify();
    // The peer's bytes change after the copy: the copy is what we got.
    let got = b.poll_request().unwrap().unwrap();
    m.fill(ENTRIES, 16, 0xee).unwrap();
    assert_eq!(
        got,
        Req {
            id: 0x0102_0304_0506_0708,
            val: 0xa0b0_c0d0
        }
    );
    b.push_response(&Rsp { id: 9, status: -2 }).unwrap();
    let mut slot = [0u8; 16];
    m.read(ENTRIES, &mut slot).unwrap();
    assert_eq!(
        slot,
        [9, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0xff, 0, 0, 0, 0, 0, 0],
        "Rsp::encode zeroes its padding"
    );
}

#[test]
fn back_ring_getters_follow_its_private_indices() {
    let m = page();
    let mut f = Front::init(m).unwrap();
    let mut b = Back::attach(m).unwrap();
    assert_eq!(
        (b.size(), b.req_cons(), b.rsp_prod_pvt(), b.is_broken()),
        (128, 0, 0, false)
    );
    for i in 0..3 {
        f.push_request(&Req { id: i, val: 0 }).unwrap();
    }
    f.push_requests_and_check_notify();
    b.poll_request().unwrap().unwrap();
    b.poll_request().unwrap().unwrap();
    b.push_response(&Rsp { id: 0, status: 0 }).unwrap();
    assert_eq!((b.req_cons(), b.rsp_prod_pvt()), (2, 1));
    m.store_u32(REQ_PROD, 999, Ordering::Relaxed).unwrap();
    assert!(b.poll_request().is_err());
    assert!(b.is_broken());
}

#[test]
fn a_final_check_that_finds_work_leaves_the_event_index_alone() {
    // RING_FINAL_CHECK_FOR_*: "if (_work_to_do) break;" before touching
    // the event index.
    let m = page();
    let mut f = Front::init(m).unwrap();
    let mut b = Back::attach(m).unwrap();
    f.push_request(&Req { id: 0, val: 0 }).unwrap();
    f.push_requests_and_check_notify();
    m.store_u32(REQ_EVENT, 77, Ordering::Relaxed).unwrap();
    assert!(b.final_check_for_requests().unwrap());
    assert_eq!(u32_at(&m, REQ_EVENT), 77);
    b.poll_request().unwrap().unwrap();
    b.push_response(&Rsp { id: 0, status: 0 }).unwrap();
    b.push_responses_and_check_notify();
    m.store_u32(RSP_EVENT, 77, Ordering::Relaxed).unwrap();
    assert!(f.final_check_for_responses().unwrap());
    assert_eq!(u32_at(&m, RSP_EVENT), 77);
}
