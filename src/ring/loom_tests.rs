//! Model checks (loom, `cargo xtask loom`) of the request/response ring
//! through the library's own [`FrontRing`]/[`BackRing`]: one end
//! publishes while the other, having drained the ring, makes its final
//! check before sleeping. The property `ring.h`'s event indices exist
//! for: an end that decides to sleep is always sent an event (no lost
//! wake-up), and what it reads is what was written.

extern crate std;

use super::*;
use crate::shared_mem::loom_model;
use loom::thread;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Word(u32);

impl Message for Word {
    const SIZE: usize = 4;
    fn encode(&self, out: &mut [u8]) {
        out.copy_from_slice(&self.0.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        Word(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// A ring where one request went round already (request and response
/// consumed, both event indices stale at 1), every header field and the
/// bytes of the next two slots primed on this thread.
fn rings() -> (
    FrontRing<SharedMem<'static>, Word, Word>,
    BackRing<SharedMem<'static>, Word, Word>,
) {
    let m = SharedMem::leak_zeroed(4096);
    for off in [REQ_PROD, REQ_EVENT, RSP_PROD, RSP_EVENT] {
        m.loom_prime(off, 4);
    }
    for i in 0..8 {
        m.loom_prime(ENTRIES + i, 1);
    }
    let mut f = FrontRing::init(m).unwrap();
    let mut b = BackRing::attach(m).unwrap();
    f.push_request(&Word(7)).unwrap();
    f.push_requests_and_check_notify();
    b.poll_request().unwrap().unwrap();
    b.push_response(&Word(7)).unwrap();
    b.push_responses_and_check_notify();
    f.poll_response().unwrap().unwrap();
    (f, b)
}

#[test]
fn loom_ring_a_back_end_about_to_sleep_is_woken_by_the_request() {
    loom_model(|| {
        let (mut f, mut b) = rings();
        let front = thread::spawn(move || {
            f.push_request(&Word(0xa1b2c3d4)).unwrap();
            f.push_requests_and_check_notify()
        });
        let more = b.final_check_for_requests().unwrap();
        let notified = front.join().unwrap();
        if more {
            assert_eq!(
                b.poll_request().unwrap(),
                Some(Word(0xa1b2c3d4)),
                "read a request before it was written"
            );
        } else {
            assert!(
                notified,
                "lost wake-up: the back end sleeps on a request nobody signals"
            );
        }
    });
}

#[test]
fn loom_ring_a_front_end_about_to_sleep_is_woken_by_the_response() {
    loom_model(|| {
        let (mut f, mut b) = rings();
        f.push_request(&Word(1)).unwrap();
        f.push_requests_and_check_notify();
        b.poll_request().unwrap().unwrap();
        let back = thread::spawn(move || {
            b.push_response(&Word(0x01020304)).unwrap();
            b.push_responses_and_check_notify()
        });
        let more = f.final_check_for_responses().unwrap();
        let notified = back.join().unwrap();
        if more {
            assert_eq!(
                f.poll_response().unwrap(),
                Some(Word(0x01020304)),
                "read a response before it was written"
            );
        } else {
            assert!(
                notified,
                "lost wake-up: the front end sleeps on a response nobody signals"
            );
        }
    });
}

/// A one-byte message: the smallest slot, so loom spends its budget on
/// the indices and event indices rather than on slot bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Byte(u8);

impl Message for Byte {
    const SIZE: usize = 1;
    fn encode(&self, out: &mut [u8]) {
        out[0] = self.0;
    }
    fn decode(b: &[u8]) -> Self {
        Byte(b[0])
    }
}

/// How many requests the exchange below sends.
const N: u8 = 2;

/// The whole protocol with event channels: the front end sends `N`
/// requests (each published with its notify decision), then waits for
/// the answers; the back end serves until it has answered `N`. Each end
/// sleeps only after its final check said "nothing", on a
/// [`loom::sync::Notify`] standing for its event channel (a pending bit:
/// an event sent before the sleep is not lost, as with Xen's). A lost
/// wake-up leaves a thread asleep for ever, which loom reports as a
/// deadlock; what each end receives must be every message exactly once,
/// in order.
#[test]
fn loom_ring_an_exchange_with_event_channels_loses_no_wake_up_and_no_message() {
    use loom::sync::{Arc, Notify};
    loom_model(|| {
        let m = SharedMem::leak_zeroed(4096);
        for off in [REQ_PROD, REQ_EVENT, RSP_PROD, RSP_EVENT] {
            m.loom_prime(off, 4);
        }
        for i in 0..usize::from(N) {
            m.loom_prime(ENTRIES + i, 1);
        }
        let mut f = FrontRing::<_, Byte, Byte>::init(m).unwrap();
        let mut b = BackRing::<_, Byte, Byte>::attach(m).unwrap();
        let (to_back, to_front) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let (back_port, front_port) = (to_back.clone(), to_front.clone());
        let back = thread::spawn(move || {
            let mut seen = std::vec::Vec::new();
            loop {
                while let Some(req) = b.poll_request().unwrap() {
                    seen.push(req.0);
                    b.push_response(&Byte(req.0 | 0x80)).unwrap();
                    if b.push_responses_and_check_notify() {
                        front_port.notify();
                    }
                }
                if seen.len() == usize::from(N) {
                    return seen;
                }
                if !b.final_check_for_requests().unwrap() {
                    back_port.wait();
                }
            }
        });
        for i in 0..N {
            f.push_request(&Byte(i)).unwrap();
            if f.push_requests_and_check_notify() {
                to_back.notify();
            }
        }
        let mut answers = std::vec::Vec::new();
        loop {
            while let Some(rsp) = f.poll_response().unwrap() {
                answers.push(rsp.0);
            }
            if answers.len() == usize::from(N) {
                break;
            }
            if !f.final_check_for_responses().unwrap() {
                to_front.wait();
            }
        }
        let seen = back.join().unwrap();
        assert_eq!(
            seen,
            (0..N).collect::<std::vec::Vec<_>>(),
            "each request seen once, in order"
        );
        assert_eq!(
            answers,
            (0..N).map(|i| i | 0x80).collect::<std::vec::Vec<_>>(),
            "each response seen once, in order"
        );
        assert_eq!(f.in_flight(), 0);
    });
}
