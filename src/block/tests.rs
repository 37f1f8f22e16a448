//! The block front end against a fake `blkback` on another thread: the
//! backend maps the ring and the data pages through the grant fake, as
//! dom0's would through Xen, and serves a disk held in memory. Some
//! backends misbehave on purpose.

extern crate std;

use super::*;
use crate::event::ops::fake::{FakeEventWorld, FakeEvents};
use crate::grant::fake::{FakeWorld, FakeXen};
use crate::ring::{BackRing, RingMemory};
use crate::xenstore::fake::FakeTransport;
use crate::xenstore::Client;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::vec;

const FRONT: DomId = DomId(1);
const BACK: DomId = DomId(0);
const SECTORS: u64 = 2048; // 1 MiB

/// What the fake backend does with each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Serve,
    /// Answers with an id no request has.
    WrongId,
    /// Answers the first request only after the front end's wait for it
    /// ran a bus-check period (the fake clock moved) and slept again.
    Late,
    /// Answers with this id (e.g. one past the last slot).
    Id(u64),
    /// Fails the first request, then answers the others with this id
    /// and operation (`None`: theirs).
    FailFirstThen(Option<u64>, Option<u8>),
    /// Answers a read as if it were a write.
    WrongOperation,
    /// `BLKIF_RSP_ERROR` for every write.
    FailWrites,
    /// `BLKIF_RSP_EOPNOTSUPP` for flushes.
    NoFlush,
    /// Never answers; moves the clock past the front end's deadline
    /// instead (so the timeout comes without a real sleep).
    Silent,
    /// Publishes `rsp_prod` far beyond the requests.
    Flood,
    /// Closes its event channel (the domain dies) at the first request.
    Die,
}

struct World {
    _gw: FakeWorld,
    ew: FakeEventWorld,
    front_grants: Grants<FakeXen>,
    back_grants: Grants<FakeXen>,
    front_events: FakeEvents,
    back_events: FakeEvents,
    disk: Arc<Mutex<std::vec::Vec<u8>>>,
    /// Requests the backend saw: (operation, sector, segments).
    log: Arc<Mutex<std::vec::Vec<(u8, u64, u8)>>>,
    stop: AtomicBool,
}

fn world() -> World {
    let (gw, ew) = (FakeWorld::new(), FakeEventWorld::new());
    let disk: std::vec::Vec<u8> = (0..SECTORS as usize * 512)
        .map(|i| (i * 7 + i / 512) as u8)
        .collect();
    World {
        front_grants: Grants::new(gw.add_domain(FRONT, 1, 8), 1).unwrap(),
        back_grants: Grants::new(gw.add_domain(BACK, 1, 8), 1).unwrap(),
        front_events: ew.domain(FRONT),
        back_events: ew.domain(BACK),
        _gw: gw,
        ew,
        disk: Arc::new(Mutex::new(disk)),
        log: Arc::new(Mutex::new(vec![])),
        stop: AtomicBool::new(false),
    }
}

const INFO: DiskInfo = DiskInfo {
    sectors: SECTORS,
    sector_size: 512,
    read_only: false,
    flush: true,
    barrier: false,
};

/// The backend: binds the channel, maps the ring, serves until `stop`.
fn blkback(w: &World, keys: FrontKeys, mode: Mode) {
    let port = Port::bind_interdomain(&w.back_events, FRONT, keys.event_channel).unwrap();
    let ring_map = w
        .back_grants
        .map(FRONT, &keys.ring_refs, Access::ReadWrite)
        .unwrap();
    let mut ring: BackRing<_, BlkRequest, BlkResponse> = BackRing::attach(ring_map).unwrap();
    let mut served = 0;
    while !w.stop.load(Ordering::Relaxed) {
        let req = match ring.poll_request() {
            Ok(Some(r)) => r,
            Ok(None) => {
                if !ring.final_check_for_requests().unwrap() {
                    let deadline = w.back_events.deadline_after(Duration::from_millis(20));
                    let _ = w
                        .back_events
                        .wait_until(Some(deadline), &mut || ring.request_published());
                }
                continue;
            }
            Err(e) => panic!("backend ring: {e:?}"),
        };
        // Every test's device is 51712 (xvda).
        assert_eq!(req.handle, 51712, "a request names its device");
        w.log
            .lock()
            .unwrap()
            .push((req.operation, req.sector_number, req.nr_segments));
        let mut status = BLKIF_RSP_OKAY;
        let mut sector = req.sector_number as usize;
        for s in &req.seg[..req.nr_segments as usize] {
            let writable = req.operation == BLKIF_OP_READ;
            let access = if writable {
                Access::ReadWrite
            } else {
                Access::ReadOnly
            };
            let page = w.back_grants.map(FRONT, &[s.gref], access).unwrap();
            let mut disk = w.disk.lock().unwrap();
            for sect in s.first_sect..=s.last_sect {
                let at = sector * 512;
                let off = sect as usize * 512;
                if at + 512 > disk.len() {
                    status = BLKIF_RSP_ERROR;
                    break;
                }
                if req.operation == BLKIF_OP_READ {
                    page.write_at(off, &disk[at..at + 512]).unwrap();
                } else {
                    page.read_at(off, &mut disk[at..at + 512]).unwrap();
                }
                sector += 1;
            }
            drop(disk);
            page.unmap().unwrap();
        }
        let mut rsp = BlkResponse {
            id: req.id,
            operation: req.operation,
            status,
        };
        match mode {
            Mode::Serve => {}
            Mode::WrongId => rsp.id += 100,
            Mode::Id(id) => rsp.id = id,
            Mode::Late if served == 0 => {
                let bound = Duration::from_secs(10);
                assert!(
                    w.ew.until_asleep(FRONT, bound),
                    "the front end never waited"
                );
                w.ew.advance(BACKEND_CHECK);
                let start = std::time::Instant::now();
                while w.ew.timeouts(FRONT) == 0 && start.elapsed() < bound {
                    std::thread::sleep(Duration::from_millis(1));
                }
                // Asleep again: the step's end was not the deadline's.
                let _ = w.ew.until_asleep(FRONT, bound);
            }
            Mode::Late => {}
            Mode::FailFirstThen(..) if served == 0 => rsp.status = BLKIF_RSP_ERROR,
            Mode::FailFirstThen(id, operation) => {
                rsp.id = id.unwrap_or(rsp.id);
                rsp.operation = operation.unwrap_or(rsp.operation);
            }
            Mode::WrongOperation => rsp.operation = BLKIF_OP_WRITE,
            Mode::FailWrites if req.operation == BLKIF_OP_WRITE => rsp.status = BLKIF_RSP_ERROR,
            Mode::NoFlush if req.operation == BLKIF_OP_FLUSH_DISKCACHE => {
                rsp.status = BLKIF_RSP_EOPNOTSUPP
            }
            Mode::FailWrites | Mode::NoFlush => {}
            Mode::Silent => {
                // Past any deadline of these tests (the front end took its
                // deadline before it published the request).
                w.ew.advance(Duration::from_secs(3600));
                continue;
            }
            Mode::Flood => {
                ring.memory()
                    .ring_mem()
                    .store_u32(
                        crate::ring::RSP_PROD,
                        1000,
                        core::sync::atomic::Ordering::Release,
                    )
                    .unwrap();
                let _ = port.send();
                continue;
            }
            Mode::Die => {
                w.ew.kill(BACK);
                // The front end's next peer check is due (no sleep).
                w.ew.advance(BACKEND_CHECK);
                return;
            }
        }
        served += 1;
        ring.push_response(&rsp).unwrap();
        if ring.push_responses_and_check_notify() {
            port.send().unwrap();
        }
    }
}

/// Runs `body` against a backend in `mode`.
fn with_backend(
    mode: Mode,
    opts: Options,
    body: impl FnOnce(&mut BlkFront<'_, FakeXen, FakeEvents>, &World),
) {
    let w = world();
    let mut front = BlkFront::new(&w.front_grants, &w.front_events, BACK, 51712, opts).unwrap();
    front.set_info(INFO).unwrap();
    let keys = front.keys();
    std::thread::scope(|s| {
        let back = s.spawn(|| blkback(&w, keys, mode));
        // Stops the backend even when the body panics, so that the
        // scope's join cannot hang a failing test.
        let _stop = StopOnDrop(&w.stop);
        body(&mut front, &w);
        drop(_stop);
        // Ends the backend's idle wait now.
        w.ew.advance(Duration::from_millis(20));
        back.join().unwrap();
    });
}

/// A bound on a hang, not a speed: a test that wants a timeout moves the
/// fake clock past it ([`Mode::Silent`]), so a loaded machine's slow
/// backend thread is not taken for a silent one.
const HANG: Duration = Duration::from_secs(20);

fn quick() -> Options {
    Options {
        in_flight: 4,
        timeout: HANG,
        ring_order: 0,
    }
}

#[test]
fn messages_have_blkif_h_s_layout() {
    let mut req = BlkRequest {
        operation: 1,
        nr_segments: 2,
        handle: 51712,
        id: 0x0102030405060708,
        sector_number: 99,
        ..Default::default()
    };
    req.seg[0] = Segment {
        gref: GrantRef(0xaabbccdd),
        first_sect: 1,
        last_sect: 7,
    };
    req.seg[10] = Segment {
        gref: GrantRef(5),
        first_sect: 0,
        last_sect: 3,
    };
    let mut b = [0xffu8; BLKIF_REQUEST_SIZE];
    req.encode(&mut b);
    assert_eq!(&b[..4], &[1, 2, 0x00, 0xca]);
    assert_eq!(&b[4..8], &[0; 4], "padding");
    assert_eq!(&b[8..16], &0x0102030405060708u64.to_le_bytes());
    assert_eq!(&b[16..24], &99u64.to_le_bytes());
    assert_eq!(&b[24..32], &[0xdd, 0xcc, 0xbb, 0xaa, 1, 7, 0, 0]);
    assert_eq!(&b[104..112], &[5, 0, 0, 0, 0, 3, 0, 0]);
    assert_eq!(BlkRequest::decode(&b), req);
    let rsp = BlkResponse {
        id: 7,
        operation: 3,
        status: -2,
    };
    let mut b = [0xffu8; BLKIF_RESPONSE_SIZE];
    rsp.encode(&mut b);
    assert_eq!(b, [7, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0xfe, 0xff, 0, 0, 0, 0]);
    assert_eq!(BlkResponse::decode(&b), rsp);
}

#[test]
fn reads_and_writes_of_every_shape_reach_the_disk() {
    with_backend(
        Mode::Serve,
        Options {
            in_flight: 3,
            timeout: HANG,
            ring_order: 0,
        },
        |f, w| {
            // One sector; a page; a request's worth (11 pages); more than the
            // slots hold at once (3 x 11 pages), at odd sectors.
            for (sector, bytes) in [
                (0u64, 512usize),
                (5, 4096),
                (17, 11 * 4096),
                (101, 40 * 4096 + 1536),
            ] {
                let mut got = vec![0u8; bytes];
                f.read(sector, &mut got).unwrap();
                let at = sector as usize * 512;
                assert!(
                    got == w.disk.lock().unwrap()[at..at + bytes],
                    "read {bytes} at {sector}"
                );
                let data: std::vec::Vec<u8> = (0..bytes)
                    // Each page its own bytes (a 256-byte pattern would
                    // hide a page written from the wrong place).
                    .map(|i| (i as u8) ^ ((i / 4096) as u8) ^ 0x5a ^ (sector as u8))
                    .collect();
                f.write(sector, &data).unwrap();
                assert!(
                    w.disk.lock().unwrap()[at..at + bytes] == data[..],
                    "write {bytes} at {sector}"
                );
                assert_eq!(f.in_flight(), 0);
            }
            // The big transfer went as 11-page requests, several in flight.
            let log = w.log.lock().unwrap();
            assert!(log
                .iter()
                .any(|&(op, _, segs)| op == BLKIF_OP_READ && segs == 11));
            let last_read: std::vec::Vec<_> = log
                .iter()
                .filter(|&&(op, s, _)| op == BLKIF_OP_READ && s >= 101)
                .collect();
            assert_eq!(
                last_read.len(),
                4,
                "41.5 pages in 4 requests: {last_read:?}"
            );
            assert_eq!(
                last_read.iter().map(|r| r.1).collect::<std::vec::Vec<_>>(),
                [101, 189, 277, 365]
            );
        },
    );
}

#[test]
fn flush_is_sent_only_when_the_backend_has_a_cache() {
    with_backend(Mode::Serve, quick(), |f, w| {
        f.flush().unwrap();
        assert_eq!(
            w.log.lock().unwrap().last(),
            Some(&(BLKIF_OP_FLUSH_DISKCACHE, 0, 0))
        );
        f.set_info(DiskInfo {
            flush: false,
            barrier: true,
            ..INFO
        })
        .unwrap();
        f.flush().unwrap();
        assert_eq!(
            w.log.lock().unwrap().last(),
            Some(&(BLKIF_OP_WRITE_BARRIER, 0, 0))
        );
        f.set_info(DiskInfo {
            flush: false,
            barrier: false,
            ..INFO
        })
        .unwrap();
        let before = w.log.lock().unwrap().len();
        f.flush().unwrap();
        assert_eq!(
            w.log.lock().unwrap().len(),
            before,
            "nothing to flush, nothing sent"
        );
    });
}

#[test]
fn bad_arguments_and_read_only_disks_are_refused_before_anything_is_sent() {
    with_backend(Mode::Serve, quick(), |f, w| {
        let mut buf = [0u8; 1024];
        assert_eq!(
            f.read(0, &mut buf[..100]),
            Err(BlockError::OutOfRange {
                sector: 0,
                bytes: 100
            })
        );
        assert_eq!(
            f.read(SECTORS - 1, &mut buf),
            Err(BlockError::OutOfRange {
                sector: SECTORS - 1,
                bytes: 1024
            })
        );
        assert_eq!(
            f.read(u64::MAX, &mut buf),
            Err(BlockError::OutOfRange {
                sector: u64::MAX,
                bytes: 1024
            })
        );
        f.read(SECTORS - 2, &mut buf).unwrap();
        f.set_info(DiskInfo {
            read_only: true,
            ..INFO
        })
        .unwrap();
        assert_eq!(f.write(0, &buf), Err(BlockError::ReadOnly));
        assert_eq!(
            f.set_info(DiskInfo {
                sector_size: 8192,
                ..INFO
            }),
            Err(BlockError::SectorSize(8192))
        );
        assert_eq!(
            w.log.lock().unwrap().len(),
            1,
            "only the good read went out"
        );
    });
}

#[test]
fn failed_requests_are_typed_errors_and_the_device_goes_on() {
    with_backend(Mode::FailWrites, quick(), |f, _| {
        let data = vec![1u8; 20 * 4096];
        assert_eq!(
            f.write(0, &data),
            Err(BlockError::Io {
                operation: BLKIF_OP_WRITE,
                status: BLKIF_RSP_ERROR
            })
        );
        assert_eq!(
            f.in_flight(),
            0,
            "the call's other requests were waited for"
        );
        let mut buf = [0u8; 512];
        f.read(0, &mut buf).unwrap();
    });
    with_backend(Mode::NoFlush, quick(), |f, _| {
        assert_eq!(
            f.flush(),
            Err(BlockError::Unsupported {
                operation: BLKIF_OP_FLUSH_DISKCACHE
            })
        );
        f.read(0, &mut [0u8; 512]).unwrap();
    });
}

#[test]
fn a_hostile_backend_breaks_the_device_without_a_panic_or_a_hang() {
    for (mode, want) in [
        (
            Mode::WrongId,
            BlockError::BadResponse {
                id: 100,
                operation: BLKIF_OP_READ,
            },
        ),
        (
            Mode::WrongOperation,
            BlockError::BadResponse {
                id: 0,
                operation: BLKIF_OP_WRITE,
            },
        ),
        // One past the last of quick()'s 4 slots.
        (
            Mode::Id(4),
            BlockError::BadResponse {
                id: 4,
                operation: BLKIF_OP_READ,
            },
        ),
        (Mode::Silent, BlockError::Timeout),
        (
            Mode::Flood,
            BlockError::Ring(RingError::TooManyResponses {
                rsp_prod: 1000,
                rsp_cons: 0,
                req_prod: 1,
            }),
        ),
        (Mode::Die, BlockError::BackendGone),
    ] {
        with_backend(mode, quick(), |f, _| {
            let start = std::time::Instant::now();
            let mut buf = [0u8; 512];
            assert_eq!(f.read(0, &mut buf), Err(want), "{mode:?}");
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "{mode:?} took {:?}",
                start.elapsed()
            );
            // Broken for good; a backend that died keeps saying so.
            let then = if mode == Mode::Die {
                BlockError::BackendGone
            } else {
                BlockError::Broken
            };
            assert_eq!(f.read(0, &mut buf), Err(then.clone()), "{mode:?}");
            assert_eq!(f.flush(), Err(then), "{mode:?}");
        });
    }
}

#[test]
fn pages_stay_granted_until_the_device_is_dropped_and_no_longer_mapped() {
    let w = world();
    {
        let mut f = BlkFront::new(
            &w.front_grants,
            &w.front_events,
            BACK,
            51712,
            Options {
                in_flight: 2,
                timeout: HANG,
                ring_order: 0,
            },
        )
        .unwrap();
        f.set_info(INFO).unwrap();
        // 1 ring page + 2 x 11 data pages.
        assert_eq!(w.front_grants.stats().shared_pages, 23);
        let keys = f.keys();
        // The backend keeps the ring mapped past the front's drop.
        let ring = w
            .back_grants
            .map(FRONT, &keys.ring_refs, Access::ReadWrite)
            .unwrap();
        drop(f);
        assert_eq!(
            w.front_grants.stats().pending,
            1,
            "the mapped ring page is parked, not freed"
        );
        ring.unmap().unwrap();
    }
    w.front_grants.reclaim();
    assert_eq!(w.front_grants.stats().pending, 0);
    assert_eq!(w.front_grants.stats().shared_pages, 0);
}

const VBD_FRONT: &str = "/local/domain/7/device/vbd/51712";
const VBD_BACK: &str = "/local/domain/0/backend/vbd/7/51712";

/// What the fake blkback publishes instead of its defaults: test-owned
/// nodes of the fake store (each test has its own store).
const CONTROL: &str = "/test/vbd";

/// blkback's xenbus side: InitWait with its features, then, once the
/// front is Initialised, reads its keys and connects with the disk; a
/// front that closes is followed to Closed (as Linux's
/// `frontend_changed` does). `CONTROL/<key>` overrides what it publishes
/// (`sector-size`, `info`, `feature-flush-cache`).
fn blkback_bus(x: &mut crate::xenstore::fake::FakeXenstored) {
    let get = |x: &crate::xenstore::fake::FakeXenstored, p: &str| {
        x.get(p).map(|v| std::string::String::from_utf8(v).unwrap())
    };
    let control = |x: &crate::xenstore::fake::FakeXenstored, k: &str, default: &str| {
        x.get(&format!("{CONTROL}/{k}"))
            .unwrap_or_else(|| default.as_bytes().to_vec())
    };
    let front = get(x, &format!("{VBD_FRONT}/state"));
    match (
        get(x, &format!("{VBD_BACK}/state")).as_deref(),
        front.as_deref(),
    ) {
        (Some("1"), _) => {
            let flush = control(x, "feature-flush-cache", "1");
            x.external_write(&format!("{VBD_BACK}/feature-flush-cache"), &flush);
            x.external_write(&format!("{VBD_BACK}/max-ring-page-order"), b"2");
            x.external_write(&format!("{VBD_BACK}/state"), b"2");
        }
        (Some("2"), Some("3")) => {
            let num = |k: &str| {
                get(x, &format!("{VBD_FRONT}/{k}"))
                    .unwrap()
                    .parse::<u32>()
                    .unwrap()
            };
            assert_eq!(
                get(x, &format!("{VBD_FRONT}/protocol")).as_deref(),
                Some("x86_64-abi")
            );
            assert_eq!(
                get(x, &format!("{VBD_FRONT}/feature-persistent")).as_deref(),
                Some("1")
            );
            // ring-ref, or ring-page-order and ring-ref0.. (blkif.h).
            let order = get(x, &format!("{VBD_FRONT}/ring-page-order"))
                .map_or(0, |o| o.parse::<u8>().unwrap());
            let ring_refs = if order == 0 {
                vec![GrantRef(num("ring-ref"))]
            } else {
                assert!(get(x, &format!("{VBD_FRONT}/ring-ref")).is_none());
                (0..1u32 << order)
                    .map(|i| GrantRef(num(&format!("ring-ref{i}"))))
                    .collect()
            };
            assert!(!ring_refs.is_empty());
            let _ = num("event-channel");
            x.external_write(
                &format!("{VBD_BACK}/sectors"),
                SECTORS.to_string().as_bytes(),
            );
            let info = control(x, "info", "0");
            x.external_write(&format!("{VBD_BACK}/info"), &info);
            let size = control(x, "sector-size", "512");
            x.external_write(&format!("{VBD_BACK}/sector-size"), &size);
            x.external_write(&format!("{VBD_BACK}/state"), b"4");
        }
        (Some("2" | "4"), Some("5")) => x.external_write(&format!("{VBD_BACK}/state"), b"5"),
        (Some("5"), Some("5" | "6")) => x.external_write(&format!("{VBD_BACK}/state"), b"6"),
        _ => {}
    }
}

/// The keys the front end published, as the fake blkback thread maps
/// them: read from our device directory in the fake store.
fn published(store: &spin::Mutex<Client<FakeTransport>>) -> FrontKeys {
    let mut c = store.lock();
    let x = &c.transport_mut().server;
    let num = |k: &str| -> u32 {
        let v = x.get(&format!("{VBD_FRONT}/{k}")).unwrap();
        std::str::from_utf8(&v).unwrap().parse().unwrap()
    };
    let ring_order = x
        .get(&format!("{VBD_FRONT}/ring-page-order"))
        .map_or(0, |o| std::str::from_utf8(&o).unwrap().parse().unwrap());
    let ring_refs = if ring_order == 0 {
        vec![GrantRef(num("ring-ref"))]
    } else {
        (0..1u32 << ring_order)
            .map(|i| GrantRef(num(&format!("ring-ref{i}"))))
            .collect()
    };
    FrontKeys {
        ring_refs,
        ring_order,
        event_channel: EvtchnPort(num("event-channel")),
    }
}

/// A store holding device vbd/`devid` of domain 7 and a blkback in
/// InitWait-to-come that publishes `control` (see [`blkback_bus`]).
fn vbd_store(devid: u32, control: &[(&str, &[u8])]) -> spin::Mutex<Client<FakeTransport>> {
    let front = format!("/local/domain/7/device/vbd/{devid}");
    let back = format!("/local/domain/0/backend/vbd/7/{devid}");
    let mut t = FakeTransport::new(7, "guest-seven");
    t.server
        .external_write(&format!("{front}/backend"), back.as_bytes());
    t.server
        .external_write(&format!("{front}/backend-id"), b"0");
    t.server.external_write(&format!("{back}/state"), b"1");
    for (k, v) in control {
        t.server.external_write(&format!("{CONTROL}/{k}"), v);
    }
    t.server.peer = Some(blkback_bus);
    spin::Mutex::new(Client::new(t))
}

fn node(store: &spin::Mutex<Client<FakeTransport>>, path: &str) -> Option<std::string::String> {
    store
        .lock()
        .transport_mut()
        .server
        .get(path)
        .map(|v| std::string::String::from_utf8(v).unwrap())
}

#[test]
fn a_connect_that_fails_after_initialising_closes_the_device() {
    // A sector size no disk has, a feature flag that is not 0 or 1, an
    // `info` that is not a number: each refused, and both ends Closed
    // (the backend is not left Connected on a ring no one serves).
    type Expect = fn(&BlockError) -> bool;
    let cases: [(&str, &[u8], Expect); 3] = [
        ("sector-size", b"1000", |e| {
            *e == BlockError::SectorSize(1000)
        }),
        ("feature-flush-cache", b"yes", |e| {
            matches!(
                e,
                BlockError::Xenbus(crate::xenbus::XenbusError::BadNode(_))
            )
        }),
        ("info", b"ro", |e| {
            matches!(
                e,
                BlockError::Xenbus(crate::xenbus::XenbusError::BadNode(_))
            )
        }),
    ];
    for (key, value, expected) in cases {
        let w = world();
        let store = vbd_store(51712, &[(key, value)]);
        let r = BlkFront::connect(&w.front_grants, &w.front_events, &store, 51712, quick());
        let e = r.err().unwrap_or_else(|| panic!("{key}: connected"));
        assert!(expected(&e), "{key}: {e:?}");
        assert_eq!(
            node(&store, &format!("{VBD_FRONT}/state")).as_deref(),
            Some("6"),
            "{key}: our end Closed"
        );
        assert_eq!(
            node(&store, &format!("{VBD_BACK}/state")).as_deref(),
            Some("6"),
            "{key}: the backend followed"
        );
        w.front_grants.reclaim();
        assert_eq!(w.front_grants.stats().shared_pages, 0, "{key}");
    }
}

#[test]
fn a_disk_with_4_kib_sectors_connects_and_takes_whole_sectors() {
    let w = world();
    let store = vbd_store(51712, &[("sector-size", b"4096")]);
    let mut f = BlkFront::connect(&w.front_grants, &w.front_events, &store, 51712, quick())
        .expect("Linux's blkback publishes a 4 KiB disk's logical block size");
    assert_eq!(f.info().sector_size, 4096);
    assert_eq!(
        node(&store, &format!("{VBD_FRONT}/state")).as_deref(),
        Some("4")
    );
    let keys = published(&store);
    // Not whole 4 KiB sectors: refused before anything is sent.
    let mut small = [0u8; 512];
    assert_eq!(
        f.read(8, &mut small),
        Err(BlockError::OutOfRange {
            sector: 8,
            bytes: 512
        })
    );
    let mut page = vec![0u8; 4096];
    assert_eq!(
        f.read(1, &mut page),
        Err(BlockError::OutOfRange {
            sector: 1,
            bytes: 4096
        })
    );
    std::thread::scope(|s| {
        let back = s.spawn(|| blkback(&w, keys, Mode::Serve));
        let stop = StopOnDrop(&w.stop);
        f.read(8, &mut page).unwrap();
        assert!(page[..] == w.disk.lock().unwrap()[8 * 512..8 * 512 + 4096]);
        drop(stop);
        back.join().unwrap();
    });
}

#[test]
fn a_vbd_id_above_u16_is_refused_before_anything_is_written() {
    let w = world();
    let store = vbd_store(70000, &[]);
    let r = BlkFront::connect(&w.front_grants, &w.front_events, &store, 70000, quick());
    assert_eq!(
        r.err(),
        Some(BlockError::OutOfRange {
            sector: 70000,
            bytes: 0
        })
    );
    let writes = store.lock().transport_mut().server.writes.len();
    assert_eq!(writes, 0, "no state written: the backend is not woken");
    assert_eq!(w.front_grants.stats().shared_pages, 0, "nothing granted");
}

#[test]
fn connect_handshakes_serves_and_closes_on_detach() {
    let w = world();
    let mut t = FakeTransport::new(7, "guest-seven");
    t.server
        .external_write(&format!("{VBD_FRONT}/backend"), VBD_BACK.as_bytes());
    t.server
        .external_write(&format!("{VBD_FRONT}/backend-id"), b"0");
    t.server.external_write(&format!("{VBD_BACK}/state"), b"1");
    t.server.peer = Some(blkback_bus);
    let store = spin::Mutex::new(Client::new(t));
    // We would take 16 ring pages; the backend offers 4 (order 2).
    let opts = Options {
        ring_order: 4,
        in_flight: 40,
        ..quick()
    };
    let mut f = BlkFront::connect(&w.front_grants, &w.front_events, &store, 51712, opts).unwrap();
    assert_eq!(f.info(), INFO);
    let keys = published(&store);
    assert_eq!(keys, f.keys());
    assert_eq!(
        (keys.ring_order, keys.ring_refs.len()),
        (2, 4),
        "a multi-page ring where offered"
    );
    assert_eq!(
        f.slots.len(),
        40,
        "more requests in flight than one ring page has slots for"
    );
    let front_state = |s: &spin::Mutex<Client<FakeTransport>>| {
        s.lock()
            .transport_mut()
            .server
            .get(&format!("{VBD_FRONT}/state"))
    };
    assert_eq!(front_state(&store).as_deref(), Some(&b"4"[..]));
    std::thread::scope(|s| {
        let back = s.spawn(|| blkback(&w, keys, Mode::Serve));
        let stop = StopOnDrop(&w.stop);
        let mut buf = vec![0u8; 8192];
        f.read(3, &mut buf).unwrap();
        assert!(buf[..] == w.disk.lock().unwrap()[3 * 512..3 * 512 + 8192]);
        // The whole disk, 24 requests at once, 8 times: the ring's slots
        // (128 over 4 pages, entries straddling page ends) all get used.
        let mut all = vec![0u8; SECTORS as usize * 512];
        for _ in 0..8 {
            f.read(0, &mut all).unwrap();
            assert!(all == *w.disk.lock().unwrap());
        }
        // The toolstack detaches the disk: the backend goes to Closing but
        // serves on (as blkback does) until we close. Reads notice within
        // a bus check period, and our end closes so the detach completes.
        store
            .lock()
            .transport_mut()
            .server
            .external_write(&format!("{VBD_BACK}/state"), b"5");
        // A bus check period passes (the fake clock moves, no sleep).
        w.ew.advance(BACKEND_CHECK);
        let start = std::time::Instant::now();
        let err = loop {
            if let Err(e) = f.read(3, &mut buf) {
                break e;
            }
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "reads go on against a closing backend"
            );
        };
        assert_eq!(err, BlockError::BackendClosing);
        assert_eq!(front_state(&store).as_deref(), Some(&b"6"[..]));
        // The link is down for good, and keeps saying why.
        assert_eq!(f.read(3, &mut buf), Err(BlockError::BackendClosing));
        drop(stop);
        back.join().unwrap();
    });

    // A backend that stops answering and then closes: the wait notices.
    let w2 = world();
    let mut t = FakeTransport::new(7, "guest-seven");
    t.server
        .external_write(&format!("{VBD_FRONT}/backend"), VBD_BACK.as_bytes());
    t.server
        .external_write(&format!("{VBD_FRONT}/backend-id"), b"0");
    t.server.external_write(&format!("{VBD_BACK}/state"), b"1");
    t.server.peer = Some(blkback_bus);
    let store = spin::Mutex::new(Client::new(t));
    let mut f =
        BlkFront::connect(&w2.front_grants, &w2.front_events, &store, 51712, quick()).unwrap();
    let keys = published(&store);
    let port = Port::bind_interdomain(&w2.back_events, FRONT, keys.event_channel).unwrap();
    let mut buf = [0u8; 512];
    std::thread::scope(|s| {
        // Closing arrives while the read waits for an answer that never
        // comes (its bus check before sending found the backend connected),
        // then the wait's bus check period passes.
        s.spawn(|| {
            assert!(
                w2.ew.until_asleep(FRONT, Duration::from_secs(10)),
                "the read never waited"
            );
            store
                .lock()
                .transport_mut()
                .server
                .external_write(&format!("{VBD_BACK}/state"), b"5");
            w2.ew.advance(BACKEND_CHECK);
        });
        let start = std::time::Instant::now();
        assert_eq!(f.read(0, &mut buf), Err(BlockError::BackendClosing));
        assert!(
            start.elapsed() < Duration::from_millis(400),
            "{:?}",
            start.elapsed()
        );
    });
    drop(port);
}

/// Sets the flag when dropped (also while unwinding).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn a_device_tells_its_backend_ring_and_slots() {
    let w = world();
    let f = BlkFront::new(&w.front_grants, &w.front_events, DomId(3), 768, quick()).unwrap();
    assert_eq!(f.backend(), DomId(3));
    assert_eq!(f.ring_pages(), (1, 4));
    assert_eq!(
        format!("{f:?}"),
        "BlkFront { backend: DomId(0x3), handle: 768, info: None }"
    );
    let f = BlkFront::new(
        &w.front_grants,
        &w.front_events,
        DomId(3),
        768,
        Options {
            ring_order: 1,
            in_flight: 50,
            ..quick()
        },
    )
    .unwrap();
    assert_eq!(f.ring_pages(), (2, 50));
}

#[test]
fn mode_r_or_the_info_bit_makes_the_disk_read_only() {
    for (control, ro) in [
        (&[("mode", &b"r"[..])][..], true),
        (&[("mode", &b"w"[..])][..], false),
        (&[("info", &b"4"[..])][..], true),
        (&[][..], false),
    ] {
        let w = world();
        let store = vbd_store(51712, control);
        // blkback_bus publishes only the CONTROL keys it knows: `mode` by hand.
        if let Some((_, m)) = control.iter().find(|(k, _)| *k == "mode") {
            store
                .lock()
                .transport_mut()
                .server
                .external_write(&format!("{VBD_BACK}/mode"), m);
        }
        let f =
            BlkFront::connect(&w.front_grants, &w.front_events, &store, 51712, quick()).unwrap();
        assert_eq!(f.info().read_only, ro, "{control:?}");
    }
}

#[test]
fn close_says_when_the_backend_never_closes() {
    let w = world();
    let store = vbd_store(51712, &[]);
    let f = BlkFront::connect(&w.front_grants, &w.front_events, &store, 51712, quick()).unwrap();
    // The backend stops answering: our Closing is never followed.
    store.lock().transport_mut().server.peer = None;
    assert_eq!(
        f.close(),
        Err(BlockError::Xenbus(crate::xenbus::XenbusError::Timeout {
            waiting_for: crate::xenbus::XenbusState::Closing,
            backend: Some(crate::xenbus::XenbusState::Connected),
        }))
    );
    assert_eq!(
        node(&store, &format!("{VBD_FRONT}/state")).as_deref(),
        Some("6")
    );
}

#[test]
fn a_lying_answer_while_a_failed_call_waits_for_its_others_breaks_the_device() {
    // 20 pages: two requests (slots 0 and 1); the first fails, and the
    // answer to the second, waited for before the error is reported, is
    // checked as any answer is.
    for (mode, want) in [
        (
            Mode::FailFirstThen(Some(4), None),
            BlockError::BadResponse {
                id: 4,
                operation: BLKIF_OP_WRITE,
            },
        ),
        (
            Mode::FailFirstThen(None, Some(BLKIF_OP_READ)),
            BlockError::BadResponse {
                id: 1,
                operation: BLKIF_OP_READ,
            },
        ),
        (
            Mode::FailFirstThen(None, None),
            BlockError::Io {
                operation: BLKIF_OP_WRITE,
                status: BLKIF_RSP_ERROR,
            },
        ),
    ] {
        with_backend(mode, quick(), |f, _| {
            assert_eq!(
                f.write(0, &vec![1u8; 20 * 4096]),
                Err(want.clone()),
                "{mode:?}"
            );
            let then = match want {
                BlockError::Io { .. } => Ok(()),
                _ => Err(BlockError::Broken),
            };
            assert_eq!(f.flush(), then, "{mode:?}");
        });
    }
}

#[test]
fn a_wait_that_reaches_a_bus_check_before_the_answer_goes_on_waiting() {
    with_backend(Mode::Late, quick(), |f, w| {
        let mut buf = vec![0u8; 1024];
        f.read(2, &mut buf).unwrap();
        assert!(buf[..] == w.disk.lock().unwrap()[1024..2048]);
        // (More than one on a loaded machine: each step is 100 ms real.)
        assert!(w.ew.timeouts(FRONT) >= 1, "a step of the wait ran out");
    });
}
