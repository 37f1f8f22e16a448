//! Fuzzes two-level event dispatch (`event::two_level::TwoLevel`) over a
//! `shared_info` page: Xen raising ports (its `evtchn_2l_set_pending`),
//! also from inside handlers, the guest masking, unmasking and clearing
//! ports (in range or not), masking upcalls, and now and then garbage in
//! the pending/mask bitmaps, `pending_sel` and `upcall_pending`. Checks:
//! - dispatch delivers only ports that are pending and unmasked, each
//!   with its pending bit cleared before its handler, at most 16 passes'
//!   worth, and clears exactly the bits it delivered (a model of the
//!   pending bitmap is kept alongside);
//! - ports outside the 4096 are `PortOutOfRange` and change nothing;
//! - `unmask` asks for a forced callback exactly when Xen would not
//!   notice by itself;
//! - with an honest Xen, a pending unmasked port always has its selector
//!   bit and `upcall_pending` set (no event is ever lost).
#![no_main]

use core::sync::atomic::Ordering;
use libfuzzer_sys::fuzz_target;
use xenpv::abi::event::{offsets, EVTCHN_2L_NR_CHANNELS};
use xenpv::event::two_level::word_bit;
use xenpv::event::{PortOutOfRange, TwoLevel};
use xenpv::shared_mem::SharedMem;
use xenpv::EvtchnPort;
use xenpv_fuzz::{Input, StaticPage};

static PAGE: StaticPage = StaticPage::new();

struct World {
    page: SharedMem<'static>,
    vcpu_info: usize,
    /// What the pending bitmap must hold.
    pending: [u64; 64],
}

impl World {
    fn word(&self, base: usize, w: usize) -> u64 {
        self.page.load_u64(base + w * 8, Ordering::SeqCst).unwrap()
    }
    fn sel(&self) -> u64 {
        self.page
            .load_u64(self.vcpu_info + offsets::PENDING_SEL, Ordering::SeqCst)
            .unwrap()
    }
    fn upcall_pending(&self) -> bool {
        self.page
            .load_u8(self.vcpu_info + offsets::UPCALL_PENDING, Ordering::SeqCst)
            .unwrap()
            != 0
    }
    fn upcall_masked(&self) -> bool {
        self.page
            .load_u8(self.vcpu_info + offsets::UPCALL_MASK, Ordering::SeqCst)
            .unwrap()
            != 0
    }

    /// Xen's `evtchn_2l_set_pending` for our vCPU.
    fn raise(&mut self, port: u32) {
        let (w, bit) = word_bit(EvtchnPort(port % EVTCHN_2L_NR_CHANNELS)).unwrap();
        self.pending[w] |= bit;
        let old = self
            .page
            .fetch_or_u64(offsets::EVTCHN_PENDING + w * 8, bit)
            .unwrap();
        if old & bit != 0 || self.word(offsets::EVTCHN_MASK, w) & bit != 0 {
            return;
        }
        let sel = self
            .page
            .fetch_or_u64(self.vcpu_info + offsets::PENDING_SEL, 1 << w)
            .unwrap();
        if sel & (1 << w) == 0 {
            self.page
                .store_u8(
                    self.vcpu_info + offsets::UPCALL_PENDING,
                    1,
                    Ordering::SeqCst,
                )
                .unwrap();
        }
    }

    fn check_model(&self) {
        for w in 0..64 {
            assert_eq!(
                self.word(offsets::EVTCHN_PENDING, w),
                self.pending[w],
                "pending word {w}"
            );
        }
    }
}

fn port(input: &mut Input<'_>) -> EvtchnPort {
    EvtchnPort(match input.u8() % 8 {
        0 => input.u32(),
        1 => EVTCHN_2L_NR_CHANNELS + input.u8() as u32,
        _ => input.u16() as u32 % EVTCHN_2L_NR_CHANNELS,
    })
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let page = PAGE.take();
    let vcpu = (input.u8() % 40) as usize;
    let Some(ev) = TwoLevel::new(page, vcpu) else {
        assert!(vcpu * offsets::VCPU_INFO_SIZE >= offsets::EVTCHN_PENDING);
        return;
    };
    assert!(vcpu * offsets::VCPU_INFO_SIZE < offsets::EVTCHN_PENDING);
    let mut world = World {
        page,
        vcpu_info: ev.vcpu_info_offset(),
        pending: [0; 64],
    };
    assert_eq!(world.vcpu_info, vcpu * offsets::VCPU_INFO_SIZE);
    let mut honest = true;
    if input.u8() & 1 == 0 {
        ev.mask_all();
    }
    while !input.is_empty() {
        match input.u8() % 12 {
            0..=2 => {
                let p = input.u16() as u32;
                world.raise(p);
            }
            3 => {
                let p = port(&mut input);
                match ev.mask(p) {
                    Ok(()) => assert!(ev.is_masked(p).unwrap()),
                    Err(PortOutOfRange(q)) => assert!(q == p && p.0 >= EVTCHN_2L_NR_CHANNELS),
                }
            }
            4 | 5 => {
                let p = port(&mut input);
                let before = world.sel();
                let masked = world.upcall_masked();
                match ev.unmask(p) {
                    Ok(force) => {
                        assert!(!ev.is_masked(p).unwrap());
                        let (w, bit) = word_bit(p).unwrap();
                        let pending = world.pending[w] & bit != 0;
                        let newly = before & (1 << w) == 0;
                        assert_eq!(force, pending && newly && !masked, "unmask({p:?})");
                        if pending {
                            assert!(world.sel() & (1 << w) != 0);
                        }
                    }
                    Err(PortOutOfRange(q)) => {
                        assert!(q == p && p.0 >= EVTCHN_2L_NR_CHANNELS);
                        assert_eq!(world.sel(), before);
                    }
                }
            }
            6 => {
                let p = port(&mut input);
                match ev.clear_pending(p) {
                    Ok(was) => {
                        let (w, bit) = word_bit(p).unwrap();
                        assert_eq!(was, world.pending[w] & bit != 0);
                        world.pending[w] &= !bit;
                    }
                    Err(_) => assert!(p.0 >= EVTCHN_2L_NR_CHANNELS),
                }
                assert!(ev.is_pending(p).is_err() || !ev.is_pending(p).unwrap());
            }
            7 => {
                let was = world.upcall_masked();
                match input.u8() % 3 {
                    0 => assert_eq!(ev.mask_upcalls(), was),
                    1 => {
                        let pending = ev.unmask_upcalls();
                        assert_eq!(pending, world.upcall_pending());
                        assert!(!ev.upcalls_masked());
                    }
                    _ => {
                        let m = input.u8() & 1 == 1;
                        ev.set_upcall_mask(m);
                        assert_eq!(ev.upcalls_masked(), m);
                    }
                }
            }
            8 | 9 => {
                // An upcall. Handlers may make Xen raise more ports.
                let raises: Vec<u16> = (0..input.u8() % 8).map(|_| input.u16()).collect();
                let mut raises = raises.into_iter();
                let mut got = Vec::new();
                let w = std::cell::RefCell::new(&mut world);
                let n = ev.dispatch(|p| {
                    let mut world = w.borrow_mut();
                    assert!(p.0 < EVTCHN_2L_NR_CHANNELS, "delivered {p:?}");
                    let (i, bit) = word_bit(p).unwrap();
                    assert!(
                        world.pending[i] & bit != 0,
                        "{p:?} delivered, never pending"
                    );
                    assert!(
                        world.word(offsets::EVTCHN_PENDING, i) & bit == 0,
                        "{p:?} still pending in its handler"
                    );
                    assert!(
                        world.word(offsets::EVTCHN_MASK, i) & bit == 0,
                        "masked {p:?} delivered"
                    );
                    world.pending[i] &= !bit;
                    got.push(p);
                    if let Some(r) = raises.next() {
                        world.raise(r as u32);
                    }
                });
                assert_eq!(n, got.len());
                assert!(n <= 16 * EVTCHN_2L_NR_CHANNELS as usize);
            }
            10 => {
                // Garbage in the bitmaps (a confused or hostile Xen).
                honest = false;
                let w = input.u8() as usize % 64;
                let v = u64::from(input.u32()) << (input.u8() % 33);
                match input.u8() % 4 {
                    0 => {
                        world.pending[w] = v;
                        page.store_u64(offsets::EVTCHN_PENDING + w * 8, v, Ordering::SeqCst)
                            .unwrap();
                    }
                    1 => page
                        .store_u64(offsets::EVTCHN_MASK + w * 8, v, Ordering::SeqCst)
                        .unwrap(),
                    2 => page
                        .store_u64(world.vcpu_info + offsets::PENDING_SEL, v, Ordering::SeqCst)
                        .unwrap(),
                    _ => page
                        .store_u8(
                            world.vcpu_info + offsets::UPCALL_PENDING,
                            v as u8,
                            Ordering::SeqCst,
                        )
                        .unwrap(),
                }
            }
            _ => {
                let p = port(&mut input);
                match (ev.is_pending(p), ev.is_masked(p)) {
                    (Ok(pend), Ok(_)) => {
                        let (w, bit) = word_bit(p).unwrap();
                        assert_eq!(pend, world.pending[w] & bit != 0);
                    }
                    (Err(_), Err(_)) => assert!(p.0 >= EVTCHN_2L_NR_CHANNELS),
                    other => panic!("{p:?}: {other:?}"),
                }
            }
        }
        world.check_model();
        if honest {
            // No event is lost: a pending, unmasked port is reachable
            // from the selector, and the selector from upcall_pending.
            let sel = world.sel();
            for w in 0..64 {
                let live = world.pending[w] & !world.word(offsets::EVTCHN_MASK, w);
                if live != 0 {
                    assert!(sel & (1 << w) != 0, "word {w} pending, selector clear");
                    assert!(world.upcall_pending(), "word {w} pending, no upcall");
                }
            }
        }
    }
});
