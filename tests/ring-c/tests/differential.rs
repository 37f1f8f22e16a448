//! xenpv's `ring` against Xen's own `io/ring.h` macros (compiled from
//! Debian's libxen-dev by build.rs): the same random sequence of
//! operations on both, from index positions including the u32 wrap;
//! after every step the shared bytes, the ring's answers (full or not,
//! notify or not, what was read), both ends' private indices and the
//! counts must agree.

use std::sync::atomic::Ordering;
use xenpv::ring::{
    ring_entries, BackRing, FrontRing, Message, REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD,
};
use xenpv::shared_mem::SharedMem;
use xenpv_ring_c::{CRing, Shim};

/// A message of `N` opaque bytes (the shim's C structs are plain data).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Raw<const N: usize>([u8; N]);

impl<const N: usize> Message for Raw<N> {
    const SIZE: usize = N;
    fn encode(&self, out: &mut [u8]) {
        out.copy_from_slice(&self.0);
    }
    fn decode(b: &[u8]) -> Self {
        Raw(b.try_into().expect("N bytes"))
    }
}

/// xorshift64*: deterministic, so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        for x in b.iter_mut() {
            *x = self.next() as u8;
        }
        b
    }
}

fn shared_bytes(m: &SharedMem<'_>) -> Vec<u8> {
    let mut v = vec![0u8; m.len()];
    m.read(0, &mut v).unwrap();
    v
}

fn run<const Q: usize, const P: usize>(
    shim: Shim,
    bytes: usize,
    start: u32,
    seed: u64,
    steps: usize,
) {
    let ctx = format!("req {Q} rsp {P}, {bytes} bytes, start {start:#x}, seed {seed}");
    let mut c = CRing::new(shim, bytes, start);
    let m = SharedMem::leak_zeroed(bytes);
    FrontRing::<_, Raw<Q>, Raw<P>>::init(m).unwrap();
    m.store_u32(REQ_PROD, start, Ordering::Relaxed).unwrap();
    m.store_u32(RSP_PROD, start, Ordering::Relaxed).unwrap();
    m.store_u32(REQ_EVENT, start.wrapping_add(1), Ordering::Relaxed)
        .unwrap();
    m.store_u32(RSP_EVENT, start.wrapping_add(1), Ordering::Relaxed)
        .unwrap();
    let mut f = FrontRing::<_, Raw<Q>, Raw<P>>::attach(m, start).unwrap();
    let mut b = BackRing::<_, Raw<Q>, Raw<P>>::attach_at(m, start).unwrap();
    assert_eq!(f.size(), c.size(), "RING_SIZE, {ctx}");
    assert_eq!(shared_bytes(&m), c.bytes(), "after init, {ctx}");
    let mut rng = Rng(seed | 1);
    for step in 0..steps {
        // Pushes are likelier than pops, so the ring also runs full.
        let op = rng.next() % 10;
        let what = match op {
            0..=2 => {
                let req = Raw(rng.bytes::<Q>());
                assert_eq!(
                    f.push_request(&req).is_ok(),
                    c.push_request(&req.0),
                    "push_request, step {step}, {ctx}"
                );
                "push_request"
            }
            3 => {
                assert_eq!(
                    f.push_requests_and_check_notify(),
                    c.push_requests_notify(),
                    "push requests notify, step {step}, {ctx}"
                );
                "push_requests_and_check_notify"
            }
            4 => {
                assert_eq!(
                    b.poll_request().unwrap().map(|r| r.0.to_vec()),
                    c.poll_request(),
                    "poll_request, step {step}, {ctx}"
                );
                "poll_request"
            }
            5 => {
                let rsp = Raw(rng.bytes::<P>());
                assert_eq!(
                    b.push_response(&rsp).is_ok(),
                    c.push_response(&rsp.0),
                    "push_response, step {step}, {ctx}"
                );
                "push_response"
            }
            6 => {
                assert_eq!(
                    b.push_responses_and_check_notify(),
                    c.push_responses_notify(),
                    "push responses notify, step {step}, {ctx}"
                );
                "push_responses_and_check_notify"
            }
            7 => {
                assert_eq!(
                    f.poll_response().unwrap().map(|r| r.0.to_vec()),
                    c.poll_response(),
                    "poll_response, step {step}, {ctx}"
                );
                "poll_response"
            }
            8 => {
                assert_eq!(
                    f.final_check_for_responses().unwrap(),
                    c.final_check_responses(),
                    "final check responses, step {step}, {ctx}"
                );
                "final_check_for_responses"
            }
            _ => {
                assert_eq!(
                    b.final_check_for_requests().unwrap(),
                    c.final_check_requests(),
                    "final check requests, step {step}, {ctx}"
                );
                "final_check_for_requests"
            }
        };
        assert_eq!(
            (f.req_prod_pvt(), f.rsp_cons()),
            c.front_indices(),
            "req_prod_pvt, rsp_cons after {what}, step {step}, {ctx}"
        );
        assert_eq!(
            (b.req_cons(), b.rsp_prod_pvt()),
            c.back_indices(),
            "req_cons, rsp_prod_pvt after {what}, step {step}, {ctx}"
        );
        assert_eq!(
            f.free_requests(),
            c.free(),
            "RING_FREE_REQUESTS after {what}, step {step}, {ctx}"
        );
        assert_eq!(
            f.unconsumed_responses().unwrap(),
            c.unconsumed_responses(),
            "unconsumed responses after {what}, step {step}, {ctx}"
        );
        assert_eq!(
            b.unconsumed_requests().unwrap(),
            c.unconsumed_requests(),
            "unconsumed requests after {what}, step {step}, {ctx}"
        );
        assert!(
            shared_bytes(&m) == c.bytes(),
            "shared bytes differ after {what}, step {step}, {ctx}"
        );
    }
}

const STARTS: [u32; 3] = [0, u32::MAX - 40, 0x8000_0000 - 3];

#[test]
fn ring_sizes_match_ring_h() {
    for (shim, req, rsp) in [
        (xenpv_ring_c::a(), 12, 16),
        (xenpv_ring_c::b(), 112, 16),
        (xenpv_ring_c::c(), 4, 4),
    ] {
        let entry = usize::max(req, rsp);
        for pages in 1..=8 {
            let bytes = pages * 4096;
            let mut c = CRing::new(shim, bytes, 0);
            assert_eq!(
                ring_entries(bytes, entry),
                c.size(),
                "{req}/{rsp}, {pages} pages"
            );
        }
    }
}

#[test]
fn type_a_matches_ring_h() {
    for (i, start) in STARTS.into_iter().enumerate() {
        for pages in [1, 2, 3] {
            run::<12, 16>(
                xenpv_ring_c::a(),
                pages * 4096,
                start,
                1000 + i as u64 * 7 + pages as u64,
                4000,
            );
        }
    }
}

#[test]
fn type_b_matches_ring_h() {
    for (i, start) in STARTS.into_iter().enumerate() {
        run::<112, 16>(xenpv_ring_c::b(), 4096, start, 2000 + i as u64, 4000);
    }
}

#[test]
fn type_c_matches_ring_h() {
    for (i, start) in STARTS.into_iter().enumerate() {
        run::<4, 4>(xenpv_ring_c::c(), 4096, start, 3000 + i as u64, 4000);
    }
}
