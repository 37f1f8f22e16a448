//! Fuzzes the block front end (`block::BlkFront`, through its public
//! `BlockDevice` API) against a back end played by the fuzz input over
//! the grant fake, as the host tests' blkback does. The front end waits
//! for its back end in the event channel's `wait_until`; the fuzz
//! `Events` runs the back end there, one fuzz-chosen action per wait
//! step: serve every request honestly (the disk is in memory), hold
//! requests and answer them out of order, fail one with an I/O error or
//! EOPNOTSUPP, answer with any id/operation/status, repeat a response,
//! rewrite `rsp_prod`, idle (time passes), or die. Checks:
//! - nothing panics, every failure is a typed `BlockError`; after a
//!   protocol error (ring, bad response, timeout, back end gone) the
//!   device answers `Broken`, while an I/O error leaves it usable;
//! - what reaches the back end is well formed: an id naming a free slot,
//!   our handle, 1-11 segments of whole sectors inside the disk for
//!   reads and writes (none for flushes), pages that map;
//! - out-of-range and read-only requests are refused before any request;
//! - nothing leaks: pages shared stay the ring's and the slots'; no
//!   request is left in flight after a completed call;
//! - with an honest back end, reads return the disk and writes reach it.
#![no_main]

use core::cell::RefCell;
use core::sync::atomic::Ordering;
use libfuzzer_sys::fuzz_target;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;
use xenpv::abi::blkif::*;
use xenpv::block::{BlkFront, BlkRequest, BlkResponse, BlockDevice, BlockError, DiskInfo, Options};
use xenpv::grant::fake::{FakeWorld, FakeXen};
use xenpv::grant::{Access, Grants, MappedPages};
use xenpv::ring::{BackRing, RingMemory, RSP_PROD};
use xenpv::DomId;
use xenpv_fuzz::{Events, Input};

const FRONT: DomId = DomId(1);
const BACK: DomId = DomId(0);
const HANDLE: u16 = 51712;

/// What the back end has seen and done, shared with the harness.
struct Back<'g> {
    ring: BackRing<MappedPages<'g, FakeXen>, BlkRequest, BlkResponse>,
    grants: &'g Grants<FakeXen>,
    disk: Vec<u8>,
    /// Requests taken and not answered.
    held: VecDeque<BlkRequest>,
    /// Ids the front end has outstanding, as far as the back end knows.
    slots: usize,
    honest: bool,
    /// An I/O error was injected during the current call.
    io_error: bool,
    last: Option<BlkResponse>,
    requests: u64,
    dead: bool,
}

impl Back<'_> {
    fn sectors(&self) -> u64 {
        (self.disk.len() / BLKIF_SECTOR) as u64
    }

    /// Takes every published request, checking it.
    fn take(&mut self) {
        while let Ok(Some(req)) = self.ring.poll_request() {
            self.requests += 1;
            assert!(
                (req.id as usize) < self.slots,
                "id {} of {}",
                req.id,
                self.slots
            );
            assert_eq!(req.handle, HANDLE);
            if self.honest {
                assert!(
                    !self.held.iter().any(|h| h.id == req.id),
                    "id {} reused while in flight",
                    req.id
                );
            }
            match req.operation {
                BLKIF_OP_READ | BLKIF_OP_WRITE => {
                    let n = req.nr_segments as usize;
                    assert!(
                        (1..=BLKIF_MAX_SEGMENTS_PER_REQUEST).contains(&n),
                        "{n} segments"
                    );
                    let mut sectors = 0u64;
                    for s in &req.seg[..n] {
                        assert!(s.first_sect <= s.last_sect && s.last_sect < 8, "{s:?}");
                        sectors += (s.last_sect - s.first_sect + 1) as u64;
                    }
                    assert!(
                        req.sector_number + sectors <= self.sectors(),
                        "request past the disk: {} + {sectors}",
                        req.sector_number
                    );
                }
                BLKIF_OP_FLUSH_DISKCACHE | BLKIF_OP_WRITE_BARRIER => {
                    assert_eq!(req.nr_segments, 0)
                }
                op => panic!("operation {op}"),
            }
            self.held.push_back(req);
        }
    }

    /// Does what `req` asks, as blkback would; its response.
    fn serve(&mut self, req: &BlkRequest) -> BlkResponse {
        let mut sector = req.sector_number as usize;
        for s in &req.seg[..req.nr_segments as usize] {
            let access = if req.operation == BLKIF_OP_READ {
                Access::ReadWrite
            } else {
                Access::ReadOnly
            };
            let page = self
                .grants
                .map(FRONT, &[s.gref], access)
                .expect("a data page the back end cannot map");
            for sect in s.first_sect..=s.last_sect {
                let at = sector * BLKIF_SECTOR;
                let off = sect as usize * BLKIF_SECTOR;
                let d = &mut self.disk[at..at + BLKIF_SECTOR];
                if req.operation == BLKIF_OP_READ {
                    page.write_at(off, d).unwrap();
                } else {
                    page.read_at(off, d).unwrap();
                }
                sector += 1;
            }
        }
        BlkResponse {
            id: req.id,
            operation: req.operation,
            status: BLKIF_RSP_OKAY,
        }
    }

    fn respond(&mut self, rsp: BlkResponse) {
        if self.ring.push_response(&rsp).is_ok() {
            self.last = Some(rsp);
            self.ring.push_responses_and_check_notify();
        }
    }

    /// One wait step's worth of back end.
    fn step(&mut self, input: &mut Input<'_>, events: &Events<'_>) {
        if self.dead {
            return;
        }
        self.take();
        match input.u8() % 16 {
            // Serve everything, in order (also once the input is used up).
            0..=6 => {
                while let Some(req) = self.held.pop_front() {
                    let rsp = self.serve(&req);
                    self.respond(rsp);
                }
            }
            // Answer the newest first (blkif allows any order).
            7 => {
                if let Some(req) = self.held.pop_back() {
                    let rsp = self.serve(&req);
                    self.respond(rsp);
                }
            }
            8 => {
                if let Some(req) = self.held.pop_front() {
                    self.io_error = true;
                    let status = if input.u8() & 1 == 0 {
                        BLKIF_RSP_ERROR
                    } else {
                        BLKIF_RSP_EOPNOTSUPP
                    };
                    self.respond(BlkResponse {
                        id: req.id,
                        operation: req.operation,
                        status,
                    });
                }
            }
            9 => {
                // Any response, for a request taken or not.
                self.honest = false;
                self.held.pop_front();
                let rsp = BlkResponse {
                    id: input.u8() as u64 % 6,
                    operation: input.u8() % 5,
                    status: input.u16() as i16,
                };
                self.respond(rsp);
            }
            10 => {
                self.honest = false;
                if let Some(r) = self.last {
                    self.held.pop_front();
                    self.respond(r);
                }
            }
            11 => {
                self.honest = false;
                let v = match input.u8() % 3 {
                    0 => input.u32(),
                    1 => self.ring.rsp_prod_pvt().wrapping_add(input.u8() as u32 % 4),
                    _ => input.u8() as u32,
                };
                self.ring
                    .memory()
                    .ring_mem()
                    .store_u32(RSP_PROD, v, Ordering::Release)
                    .unwrap();
            }
            12 if input.u8() == 0xff => {
                // The back end's domain dies (its event channel closes).
                self.dead = true;
                events.kill();
            }
            // Idle: the clock moves on.
            _ => {}
        }
    }
}

fn protocol_error(e: &BlockError) -> bool {
    matches!(
        e,
        BlockError::Ring(_)
            | BlockError::BadResponse { .. }
            | BlockError::Timeout
            | BlockError::BackendGone
            | BlockError::Event(_)
    )
}

fuzz_target!(|data: &[u8]| {
    let input = Rc::new(RefCell::new(Input::new(data)));
    let byte = || input.borrow_mut().u8();
    let w = FakeWorld::new();
    let front_grants = Grants::new(w.add_domain(FRONT, 1, 1), 1).unwrap();
    let back_grants = Grants::new(w.add_domain(BACK, 1, 1), 1).unwrap();
    let events = Events::new();
    let opts = Options {
        in_flight: 1 + byte() as usize % 2,
        timeout: Duration::from_millis(20 + byte() as u64),
        ring_order: byte() % 2,
    };
    let mut blk = BlkFront::new(&front_grants, &events, BACK, HANDLE, opts).unwrap();
    let (ring_pages, slots) = blk.ring_pages();
    assert_eq!(ring_pages, 1 << opts.ring_order);
    assert_eq!(slots, opts.in_flight);
    let shared = front_grants.stats().shared_pages;
    assert_eq!(
        shared as usize,
        ring_pages + slots * BLKIF_MAX_SEGMENTS_PER_REQUEST
    );
    let keys = blk.keys();
    assert_eq!(keys.ring_refs.len(), ring_pages);

    let flags = byte();
    let sectors = 1 + byte() as u64 % 200;
    let info = DiskInfo {
        sectors,
        sector_size: match flags & 0xc0 {
            0x80 => 8192,
            0x40 => 4096,
            _ => 512,
        },
        read_only: flags & 1 != 0,
        flush: flags & 2 != 0,
        barrier: flags & 4 != 0,
    };
    // Linux's blkback publishes the disk's logical block size: powers of
    // two from 512 to 4096 are taken, others refused. The rest of this
    // target serves a disk of 512-byte sectors.
    match blk.set_info(info) {
        Ok(()) => assert!(matches!(info.sector_size, 512 | 4096)),
        Err(e) => assert_eq!(e, BlockError::SectorSize(info.sector_size)),
    }
    if info.sector_size != 512 {
        blk.set_info(DiskInfo {
            sector_size: 512,
            ..info
        })
        .unwrap();
    }
    assert_eq!(blk.info().sectors, sectors);

    let ring = BackRing::attach(
        back_grants
            .map(FRONT, &keys.ring_refs, Access::ReadWrite)
            .unwrap(),
    )
    .unwrap();
    let disk: Vec<u8> = (0..sectors as usize * BLKIF_SECTOR)
        .map(|i| (i * 7 + i / 512) as u8)
        .collect();
    let back = Rc::new(RefCell::new(Back {
        ring,
        grants: &back_grants,
        disk,
        held: VecDeque::new(),
        slots,
        honest: true,
        io_error: false,
        last: None,
        requests: 0,
        dead: false,
    }));
    {
        let (back, input) = (back.clone(), input.clone());
        events.set_peer(Box::new(move |ev| {
            back.borrow_mut().step(&mut input.borrow_mut(), ev)
        }));
    }

    let mut broken = false;
    // The link's reason for going down, which later calls repeat.
    let mut down: Option<BlockError> = None;
    let mut counter = 0u8;
    for _ in 0..48 {
        if input.borrow().is_empty() {
            break;
        }
        let op = byte();
        let sector = match byte() % 4 {
            0 => sectors.saturating_sub(byte() as u64 % 4),
            1 => u64::MAX - byte() as u64,
            _ => byte() as u64 % sectors,
        };
        let len = match byte() % 8 {
            0 => byte() as usize,
            1 => 0,
            _ => (1 + byte() as usize % 96) * BLKIF_SECTOR,
        };
        let in_range = len % BLKIF_SECTOR == 0
            && sector
                .checked_add((len / BLKIF_SECTOR) as u64)
                .is_some_and(|e| e <= sectors);
        let no_io = if op % 4 == 3 {
            !info.flush && !info.barrier
        } else {
            len == 0 && in_range
        };
        back.borrow_mut().io_error = false;
        let requests = back.borrow().requests;
        let r = match op % 4 {
            0 | 1 => {
                let mut buf = vec![0u8; len];
                let r = blk.read(sector, &mut buf);
                let b = back.borrow();
                if r.is_ok() && b.honest && len > 0 {
                    let at = sector as usize * BLKIF_SECTOR;
                    assert!(buf[..] == b.disk[at..at + len], "read {sector}+{len}");
                }
                r
            }
            2 => {
                let buf: Vec<u8> = (0..len)
                    .map(|_| {
                        counter = counter.wrapping_add(1);
                        counter
                    })
                    .collect();
                let r = blk.write(sector, &buf);
                if info.read_only {
                    assert_eq!(r, Err(BlockError::ReadOnly));
                }
                let b = back.borrow();
                if r.is_ok() && b.honest && len > 0 {
                    let at = sector as usize * BLKIF_SECTOR;
                    assert!(buf[..] == b.disk[at..at + len], "write {sector}+{len}");
                }
                r
            }
            _ => {
                let r = blk.flush();
                if !info.flush && !info.barrier {
                    assert_eq!(r, Ok(()), "nothing to flush");
                    assert_eq!(back.borrow().requests, requests);
                }
                r
            }
        };
        let b = back.borrow();
        match &r {
            // A call with nothing to do (no bytes, no cache to flush)
            // succeeds without the device, broken or not.
            Ok(()) => assert!(!broken || no_io, "a broken device answered"),
            Err(BlockError::OutOfRange { .. }) => {
                assert!(!in_range, "refused {sector}+{len}");
                assert_eq!(b.requests, requests, "a refused call reached the back end");
            }
            Err(BlockError::ReadOnly) => assert_eq!(b.requests, requests),
            Err(BlockError::Broken) => assert!(broken, "Broken before any error"),
            Err(BlockError::Io { .. } | BlockError::Unsupported { .. }) => {
                assert!(b.io_error || !b.honest, "{r:?} with no error injected");
                assert!(!broken);
            }
            // A device whose back end went away keeps saying so.
            Err(e) if broken && down.as_ref() == Some(e) => {}
            Err(e) => {
                assert!(protocol_error(e), "{e:?}");
                assert!(!broken, "{e:?} after the device broke (want Broken)");
                if matches!(e, BlockError::BackendGone | BlockError::BackendClosing) {
                    down = Some(e.clone());
                }
                assert!(
                    !b.honest || b.dead || matches!(e, BlockError::Timeout),
                    "{e:?} from an honest back end"
                );
                broken = true;
            }
        }
        if r.is_ok() && op % 4 < 3 && len > 0 && in_range {
            assert!(b.requests > requests, "a transfer without a request");
        }
        if !broken
            && matches!(
                r,
                Ok(()) | Err(BlockError::Io { .. } | BlockError::Unsupported { .. })
            )
        {
            assert_eq!(blk.in_flight(), 0, "requests left in flight by {r:?}");
        }
        assert!(blk.in_flight() <= slots);
        assert_eq!(front_grants.stats().shared_pages, shared);
        assert!(w.violations().is_empty(), "{:?}", w.violations());
    }
    events.clear_peer();
    drop(blk);
    drop(back);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
    assert_eq!(events.open_ports(), 0);
});
