//! The network front end against a fake netback on another thread,
//! mapping the rings and pages through the grant fake as dom0's would:
//! frames both ways, the pools reused, and a backend that lies.

extern crate std;

use super::*;
use crate::event::ops::fake::{FakeEventWorld, FakeEvents};
use crate::grant::fake::{FakeWorld, FakeXen};
use crate::ring::{BackRing, RingMemory};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::vec;

const FRONT: DomId = DomId(1);
const BACK: DomId = DomId(0);
const MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0, 0, 0x10];

/// How the fake backend answers an injected frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rx {
    Good { offset: u16 },
    BadId,
    OutsidePage,
    Error,
    MoreData,
}

struct World {
    _gw: FakeWorld,
    ew: FakeEventWorld,
    front_grants: Grants<FakeXen>,
    back_grants: Grants<FakeXen>,
    front_events: FakeEvents,
    back_events: FakeEvents,
    /// Frames the backend took off the tx ring.
    sent: Mutex<std::vec::Vec<std::vec::Vec<u8>>>,
    /// Frames for the backend to deliver.
    inject: Mutex<VecDeque<(std::vec::Vec<u8>, Rx)>>,
    /// Answer tx requests (else hold them).
    answer_tx: AtomicBool,
    stop: AtomicBool,
}

fn world() -> World {
    let (gw, ew) = (FakeWorld::new(), FakeEventWorld::new());
    World {
        front_grants: Grants::new(gw.add_domain(FRONT, 1, 8), 1).unwrap(),
        back_grants: Grants::new(gw.add_domain(BACK, 1, 8), 1).unwrap(),
        front_events: ew.domain(FRONT),
        back_events: ew.domain(BACK),
        _gw: gw,
        ew,
        sent: Mutex::new(vec![]),
        inject: Mutex::new(VecDeque::new()),
        answer_tx: AtomicBool::new(true),
        stop: AtomicBool::new(false),
    }
}

fn netback(w: &World, k: FrontKeys) {
    let port = Port::bind_interdomain(&w.back_events, FRONT, k.event_channel).unwrap();
    let map = |r| w.back_grants.map(FRONT, &[r], Access::ReadWrite).unwrap();
    let mut tx: BackRing<_, TxRequest, TxResponse> = BackRing::attach(map(k.tx_ring_ref)).unwrap();
    let mut rx: BackRing<_, RxRequest, RxResponse> = BackRing::attach(map(k.rx_ring_ref)).unwrap();
    while !w.stop.load(Ordering::Relaxed) {
        let mut notify = false;
        if w.answer_tx.load(Ordering::Relaxed) {
            while let Some(req) = tx.poll_request().unwrap() {
                let page = w
                    .back_grants
                    .map(FRONT, &[req.gref], Access::ReadOnly)
                    .unwrap();
                let mut frame = vec![0u8; req.size as usize];
                page.read_at(req.offset as usize, &mut frame).unwrap();
                page.unmap().unwrap();
                w.sent.lock().unwrap().push(frame);
                tx.push_response(&TxResponse {
                    id: req.id,
                    status: NETIF_RSP_OKAY,
                })
                .unwrap();
            }
            notify |= tx.push_responses_and_check_notify();
        }
        while rx.unconsumed_requests().unwrap() > 0 {
            let Some((frame, how)) = w.inject.lock().unwrap().pop_front() else {
                break;
            };
            let req = rx.poll_request().unwrap().unwrap();
            let page = w
                .back_grants
                .map(FRONT, &[req.gref], Access::ReadWrite)
                .unwrap();
            let offset = if let Rx::Good { offset } = how {
                offset
            } else {
                0
            };
            page.write_at(offset as usize, &frame).unwrap();
            page.unmap().unwrap();
            let mut rsp = RxResponse {
                id: req.id,
                offset,
                flags: 0,
                status: frame.len() as i16,
            };
            match how {
                Rx::Good { .. } => {}
                Rx::BadId => rsp.id = 999,
                Rx::OutsidePage => rsp.offset = 4000,
                Rx::Error => rsp.status = NETIF_RSP_ERROR,
                Rx::MoreData => rsp.flags = NETRXF_MORE_DATA,
            }
            rx.push_response(&rsp).unwrap();
            notify |= rx.push_responses_and_check_notify();
        }
        if notify {
            port.send().unwrap();
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn with_backend(opts: Options, body: impl FnOnce(&mut NetFront<'_, FakeXen, FakeEvents>, &World)) {
    let w = world();
    let mut nf = NetFront::new(&w.front_grants, &w.front_events, BACK, MAC, opts).unwrap();
    let keys = nf.keys();
    std::thread::scope(|s| {
        let back = s.spawn(|| netback(&w, keys));
        // Stops the backend even when the body panics, so that the
        // scope's join cannot hang a failing test.
        let _stop = StopOnDrop(&w.stop);
        body(&mut nf, &w);
        drop(_stop);
        back.join().unwrap();
    });
}

/// The back end's side of one of the front end's rings (`gref`), for a
/// test that plays netback itself.
fn back_ring<Req: crate::ring::Message, Rsp: crate::ring::Message>(
    w: &World,
    gref: GrantRef,
) -> BackRing<crate::grant::MappedPages<'_, FakeXen>, Req, Rsp> {
    let map = w
        .back_grants
        .map(FRONT, &[gref], Access::ReadWrite)
        .unwrap();
    BackRing::attach(map).unwrap()
}

fn frame(n: usize, seed: u8) -> std::vec::Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

/// Receives one frame, waiting up to 10 s (a bound on a hang, not a
/// speed: a loaded CI machine may deschedule the backend thread).
fn recv(nf: &mut NetFront<'_, FakeXen, FakeEvents>) -> Option<std::vec::Vec<u8>> {
    let start = std::time::Instant::now();
    let mut buf = [0u8; MAX_FRAME];
    while start.elapsed() < Duration::from_secs(10) {
        if let Some(n) = nf.recv(&mut buf).unwrap() {
            return Some(buf[..n].to_vec());
        }
        nf.wait(Duration::from_millis(20)).unwrap();
    }
    None
}

#[test]
fn messages_have_netif_h_s_layout() {
    let mut b = [0u8; 12];
    TxRequest {
        gref: GrantRef(0x01020304),
        offset: 5,
        flags: 4,
        id: 7,
        size: 1514,
    }
    .encode(&mut b);
    assert_eq!(b, [4, 3, 2, 1, 5, 0, 4, 0, 7, 0, 0xea, 0x05]);
    assert_eq!(TxRequest::decode(&b).size, 1514);
    let mut b = [0xffu8; 8];
    RxRequest {
        id: 3,
        gref: GrantRef(9),
    }
    .encode(&mut b);
    assert_eq!(b, [3, 0, 0, 0, 9, 0, 0, 0]);
    let r = RxResponse {
        id: 1,
        offset: 2,
        flags: 8,
        status: -2,
    };
    r.encode(&mut b);
    assert_eq!(b, [1, 0, 2, 0, 8, 0, 0xfe, 0xff]);
    assert_eq!(RxResponse::decode(&b), r);
    let t = TxResponse {
        id: 300,
        status: -1,
    };
    let mut b = [0u8; 4];
    t.encode(&mut b);
    assert_eq!(TxResponse::decode(&b), t);
    assert_eq!(
        parse_mac("00:16:3e:00:00:1a"),
        Some([0, 0x16, 0x3e, 0, 0, 0x1a])
    );
    for bad in [
        "00:16:3e:00:00",
        "00:16:3e:00:00:1a:22",
        "0:16:3e:00:00:1a",
        "zz:16:3e:00:00:1a",
        "",
    ] {
        assert_eq!(parse_mac(bad), None, "{bad}");
    }
}

#[test]
fn frames_go_both_ways_and_the_pools_are_reused() {
    with_backend(
        Options {
            rx_buffers: 4,
            tx_buffers: 2,
            timeout: Duration::from_secs(1),
        },
        |nf, w| {
            // More frames than either pool has pages: pages come back.
            for i in 0..20u8 {
                let f = frame(60 + i as usize * 70, i);
                let start = std::time::Instant::now();
                while !nf.send(&f).unwrap() {
                    assert!(
                        start.elapsed() < Duration::from_secs(10),
                        "tx pages never came back"
                    );
                    nf.wait(Duration::from_millis(10)).unwrap();
                }
            }
            let start = std::time::Instant::now();
            while w.sent.lock().unwrap().len() < 20 && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(5));
            }
            let sent = w.sent.lock().unwrap().clone();
            assert_eq!(
                sent,
                (0..20u8)
                    .map(|i| frame(60 + i as usize * 70, i))
                    .collect::<std::vec::Vec<_>>()
            );
            for i in 0..10u8 {
                let f = frame(42 + i as usize * 140, 100 + i);
                w.inject.lock().unwrap().push_back((
                    f.clone(),
                    Rx::Good {
                        offset: (i as u16 % 3) * 64,
                    },
                ));
                assert_eq!(recv(nf), Some(f), "frame {i}");
            }
            assert_eq!(
                nf.stats(),
                NetStats {
                    tx_frames: 20,
                    rx_frames: 10,
                    tx_errors: 0,
                    rx_dropped: 0
                }
            );
            // 2 rings + 2 tx + 4 rx pages, granted once.
            assert_eq!(w.front_grants.stats().shared_pages, 8);
        },
    );
}

#[test]
fn frames_we_cannot_send_are_refused() {
    with_backend(Options::default(), |nf, _| {
        assert_eq!(nf.send(&[]), Err(NetError::BadFrame(0)));
        assert_eq!(
            nf.send(&[0u8; MAX_FRAME + 1]),
            Err(NetError::BadFrame(MAX_FRAME + 1))
        );
        assert!(nf.send(&[0u8; MAX_FRAME]).unwrap());
    });
}

#[test]
fn a_backend_holding_every_tx_page_makes_send_wait_not_fail() {
    with_backend(
        Options {
            rx_buffers: 2,
            tx_buffers: 2,
            timeout: Duration::from_secs(1),
        },
        |nf, w| {
            w.answer_tx.store(false, Ordering::Relaxed);
            assert!(nf.send(&frame(100, 1)).unwrap());
            assert!(nf.send(&frame(100, 2)).unwrap());
            assert!(!nf.send(&frame(100, 3)).unwrap(), "no tx page free");
            w.answer_tx.store(true, Ordering::Relaxed);
            let start = std::time::Instant::now();
            while !nf.send(&frame(100, 3)).unwrap() {
                assert!(start.elapsed() < Duration::from_secs(10));
                nf.wait(Duration::from_millis(10)).unwrap();
            }
        },
    );
}

#[test]
fn lying_rx_responses_drop_the_frame_and_keep_the_device() {
    with_backend(
        Options {
            rx_buffers: 4,
            tx_buffers: 2,
            timeout: Duration::from_secs(1),
        },
        |nf, w| {
            for how in [Rx::BadId, Rx::OutsidePage, Rx::Error, Rx::MoreData] {
                w.inject.lock().unwrap().push_back((frame(200, 1), how));
            }
            let good = frame(300, 9);
            w.inject
                .lock()
                .unwrap()
                .push_back((good.clone(), Rx::Good { offset: 0 }));
            assert_eq!(recv(nf), Some(good.clone()));
            let s = nf.stats();
            assert_eq!((s.rx_frames, s.rx_dropped), (1, 4));
            // The bad id named no page, so one page is still the backend's
            // (never reposted); the three others came back: frames still flow.
            for i in 0..6u8 {
                let f = frame(100 + i as usize, i);
                w.inject
                    .lock()
                    .unwrap()
                    .push_back((f.clone(), Rx::Good { offset: 0 }));
                assert_eq!(recv(nf), Some(f));
            }
        },
    );
}

#[test]
fn a_flooding_backend_breaks_the_device() {
    with_backend(
        Options {
            rx_buffers: 2,
            tx_buffers: 2,
            timeout: Duration::from_secs(1),
        },
        |nf, _| {
            nf.rx
                .memory()
                .ring_mem()
                .store_u32(
                    crate::ring::RSP_PROD,
                    500,
                    core::sync::atomic::Ordering::Release,
                )
                .unwrap();
            let mut buf = [0u8; MAX_FRAME];
            assert!(matches!(
                nf.recv(&mut buf),
                Err(NetError::Ring(RingError::TooManyResponses { .. }))
            ));
            assert_eq!(nf.recv(&mut buf), Err(NetError::Broken));
            assert_eq!(nf.send(&[1u8; 60]), Err(NetError::Broken));
        },
    );
}

/// Sets the flag when dropped (also while unwinding).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn a_link_that_went_down_keeps_saying_why() {
    with_backend(
        Options {
            rx_buffers: 2,
            tx_buffers: 2,
            timeout: Duration::from_secs(1),
        },
        |nf, _| {
            assert_eq!(
                nf.fail::<()>(NetError::BackendClosing),
                Err(NetError::BackendClosing)
            );
            let mut buf = [0u8; MAX_FRAME];
            assert_eq!(nf.recv(&mut buf), Err(NetError::BackendClosing));
            assert_eq!(nf.send(&[1u8; 60]), Err(NetError::BackendClosing));
        },
    );
}

#[test]
fn a_vif_being_detached_is_not_reconnected() {
    use crate::xenstore::fake::FakeTransport;
    use crate::xenstore::Client;
    const F: &str = "/local/domain/7/device/vif/0";
    const B: &str = "/local/domain/0/backend/vif/7/0";
    let w = world();
    let mut t = FakeTransport::new(7, "guest-seven");
    for (p, v) in [
        (format!("{F}/backend"), B),
        (format!("{F}/backend-id"), "0"),
        (format!("{F}/mac"), "00:16:3e:00:00:12"),
        (format!("{F}/state"), "6"),
    ] {
        t.server.external_write(&p, v.as_bytes());
    }
    t.server.external_write(&format!("{B}/state"), b"6");
    t.server.external_write(&format!("{B}/online"), b"0");
    let store = spin::Mutex::new(Client::new(t));
    let r = NetFront::connect(
        &w.front_grants,
        &w.front_events,
        &store,
        0,
        Options {
            timeout: Duration::from_millis(50),
            ..Options::default()
        },
    );
    assert_eq!(r.err(), Some(NetError::BackendClosing));
    assert_eq!(
        store
            .lock()
            .transport_mut()
            .server
            .get(&format!("{F}/state"))
            .as_deref(),
        Some(&b"6"[..]),
        "nothing written: netback is not reopened"
    );
    assert_eq!(w.front_grants.stats().shared_pages, 0, "nothing granted");
}

const VIF_FRONT: &str = "/local/domain/7/device/vif/0";
const VIF_BACK: &str = "/local/domain/0/backend/vif/7/0";

/// netback's xenbus side: InitWait, Connected once the front is, and a
/// front that closes followed to Closed. `/test/vif/ip` is what it
/// publishes as `ip`.
fn netback_bus(x: &mut crate::xenstore::fake::FakeXenstored) {
    let back = x.get(&format!("{VIF_BACK}/state"));
    let front = x.get(&format!("{VIF_FRONT}/state"));
    match (back.as_deref(), front.as_deref()) {
        (Some(b"1"), _) => x.external_write(&format!("{VIF_BACK}/state"), b"2"),
        (Some(b"2"), Some(b"4")) => {
            if let Some(ip) = x.get("/test/vif/ip") {
                x.external_write(&format!("{VIF_BACK}/ip"), &ip);
            }
            x.external_write(&format!("{VIF_BACK}/state"), b"4");
        }
        (Some(b"2" | b"4"), Some(b"5")) => x.external_write(&format!("{VIF_BACK}/state"), b"5"),
        (Some(b"5"), Some(b"5" | b"6")) => x.external_write(&format!("{VIF_BACK}/state"), b"6"),
        _ => {}
    }
}

fn vif_store(
    ip: &[u8],
) -> spin::Mutex<crate::xenstore::Client<crate::xenstore::fake::FakeTransport>> {
    let mut t = crate::xenstore::fake::FakeTransport::new(7, "guest-seven");
    for (p, v) in [
        (format!("{VIF_FRONT}/backend"), VIF_BACK.as_bytes()),
        (format!("{VIF_FRONT}/backend-id"), b"0"),
        (format!("{VIF_FRONT}/mac"), b"00:16:3e:00:00:12"),
        (format!("{VIF_BACK}/state"), b"1"),
        (String::from("/test/vif/ip"), ip),
    ] {
        t.server.external_write(&p, v);
    }
    t.server.peer = Some(netback_bus);
    spin::Mutex::new(crate::xenstore::Client::new(t))
}

#[test]
fn connect_reads_the_configured_address() {
    let w = world();
    let store = vif_store(b"10.0.0.7 255.255.255.0");
    let quick = Options {
        timeout: Duration::from_millis(500),
        ..Options::default()
    };
    let nf = NetFront::connect(&w.front_grants, &w.front_events, &store, 0, quick).unwrap();
    assert_eq!(
        nf.configured_ip(),
        Some(core::net::Ipv4Addr::new(10, 0, 0, 7))
    );
    assert_eq!(nf.mac(), [0, 0x16, 0x3e, 0, 0, 0x12]);
    let state = |p: &str| store.lock().transport_mut().server.get(p);
    assert_eq!(
        state(&format!("{VIF_FRONT}/state")).as_deref(),
        Some(&b"4"[..])
    );
    drop(nf);
    assert_eq!(
        state(&format!("{VIF_FRONT}/state")).as_deref(),
        Some(&b"6"[..])
    );
    assert_eq!(
        state(&format!("{VIF_BACK}/state")).as_deref(),
        Some(&b"6"[..])
    );
}

#[test]
fn a_connect_that_fails_after_initialising_closes_the_device() {
    let w = world();
    // An `ip` that is not UTF-8: refused, and both ends Closed.
    let store = vif_store(b"10.0.0.\xff");
    let quick = Options {
        timeout: Duration::from_millis(500),
        ..Options::default()
    };
    let r = NetFront::connect(&w.front_grants, &w.front_events, &store, 0, quick);
    assert!(
        matches!(r, Err(NetError::Xenbus(XenbusError::BadNode(_)))),
        "{r:?}"
    );
    let state = |p: &str| store.lock().transport_mut().server.get(p);
    assert_eq!(
        state(&format!("{VIF_FRONT}/state")).as_deref(),
        Some(&b"6"[..]),
        "our end Closed"
    );
    assert_eq!(
        state(&format!("{VIF_BACK}/state")).as_deref(),
        Some(&b"6"[..]),
        "the backend followed"
    );
    w.front_grants.reclaim();
    assert_eq!(w.front_grants.stats().shared_pages, 0);
}

#[test]
fn a_mac_is_two_hex_digits_a_byte_without_signs() {
    for bad in [
        "+0:+1:+2:+3:+4:+5",
        "-0:16:3e:00:00:1a",
        "0x:16:3e:00:00:1a",
        " 00:16:3e:00:00:1a:",
    ] {
        assert_eq!(parse_mac(bad), None, "{bad}");
    }
    assert_eq!(
        parse_mac("0A:1b:3E:00:00:fF"),
        Some([0x0a, 0x1b, 0x3e, 0, 0, 0xff])
    );
}

#[test]
fn smoltcp_gets_each_frame_in_a_buffer_of_its_length_and_nothing_on_an_idle_poll() {
    use smoltcp::phy::{Device, RxToken as _};
    with_backend(Options::default(), |nf, w| {
        let now = smoltcp::time::Instant::from_millis(0);
        // Nothing arrived: no token (and the ring was only looked at).
        assert!(nf.receive(now).is_none());
        let sizes = [60usize, 1514, 333];
        for (i, &n) in sizes.iter().enumerate() {
            let f = frame(n, i as u8);
            w.inject
                .lock()
                .unwrap()
                .push_back((f.clone(), Rx::Good { offset: 0 }));
            let start = std::time::Instant::now();
            let (rx, _tx) = loop {
                if let Some(t) = nf.receive(now) {
                    break t;
                }
                assert!(start.elapsed() < Duration::from_secs(10), "frame {i}");
                std::thread::sleep(Duration::from_millis(1));
            };
            assert_eq!(rx.frame.capacity(), n, "one buffer of the frame's length");
            assert_eq!(rx.consume(|b| b.to_vec()), f);
        }
        assert!(nf.receive(now).is_none());
        assert_eq!(nf.stats().rx_frames, 3);
    });
}

#[test]
fn smoltcp_frames_go_out_through_one_kept_buffer_zeroed_each_time() {
    use smoltcp::phy::{Device, TxToken as _};
    with_backend(Options::default(), |nf, w| {
        let now = smoltcp::time::Instant::from_millis(0);
        let tx = nf.transmit(now).unwrap();
        tx.consume(100, |b| b.fill(0xaa));
        let kept = nf.tx_buf.as_ptr();
        // A shorter frame of which smoltcp writes only the first byte.
        let tx = nf.transmit(now).unwrap();
        tx.consume(60, |b| b[0] = 1);
        assert_eq!(nf.tx_buf.as_ptr(), kept, "the same buffer");
        let start = std::time::Instant::now();
        while w.sent.lock().unwrap().len() < 2 {
            assert!(start.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(1));
        }
        let sent = w.sent.lock().unwrap().clone();
        assert_eq!(sent[0], vec![0xaa; 100]);
        let mut second = vec![0u8; 60];
        second[0] = 1;
        assert_eq!(sent[1], second, "nothing of the first frame");
    });
}

#[test]
fn a_device_tells_its_backend_mac_clock_and_counters() {
    let w = world();
    let nf = NetFront::new(
        &w.front_grants,
        &w.front_events,
        DomId(3),
        MAC,
        Options::default(),
    )
    .unwrap();
    assert_eq!(nf.backend(), DomId(3));
    assert_eq!(nf.mac(), MAC);
    assert_eq!(nf.stats(), NetStats::default());
    assert_eq!(
        format!("{nf:?}"),
        "NetFront { backend: DomId(0x3), mac: [0, 22, 62, 0, 0, 16], stats: NetStats { tx_frames: 0, rx_frames: 0, tx_errors: 0, rx_dropped: 0 } }"
    );
    // smoltcp's timestamps come from the event clock.
    let t0 = nf.now_ns();
    w.ew.advance(Duration::from_secs(5));
    let t1 = nf.now_ns();
    assert!(
        (5_000_000_000..6_000_000_000).contains(&(t1 - t0)),
        "{t0} {t1}"
    );
}

#[test]
fn errors_say_what_went_wrong_in_words() {
    use alloc::string::ToString;
    let cases = [
        (NetError::BadFrame(0), "a 0-byte frame (1 to 1514 bytes go)"),
        (NetError::BackendGone, "the backend domain is gone"),
        (
            NetError::BackendClosing,
            "the backend is closing: the vif was detached",
        ),
        (NetError::Broken, "an earlier error broke the device"),
        (
            NetError::BadMac("x".into()),
            "the mac node holds \"x\", not a MAC address",
        ),
    ];
    for (e, words) in cases {
        assert_eq!(e.to_string(), words);
    }
    for (e, start) in [
        (
            NetError::Ring(RingError::TooManyResponses {
                rsp_prod: 9,
                rsp_cons: 0,
                req_prod: 1,
            }),
            "a ring broke the protocol: ",
        ),
        (
            NetError::Xenbus(XenbusError::BadNode(crate::xenbus::Snippet::new(b"x"))),
            "its xenbus handshake failed: ",
        ),
        (
            NetError::Grant(GrantError::InvalidArgument),
            "sharing its pages failed: ",
        ),
        (
            NetError::Event(EventError::Timeout),
            "its event channel failed: ",
        ),
    ] {
        let text = e.to_string();
        assert!(
            text.starts_with(start) && text.len() > start.len(),
            "{text:?}"
        );
    }
}

#[test]
fn lying_tx_responses_are_counted_and_free_no_page_twice() {
    // The backend's side played by the test: it takes the requests off
    // the tx ring and answers as it likes.
    let w = world();
    let opts = Options {
        rx_buffers: 1,
        tx_buffers: 3,
        timeout: Duration::from_secs(1),
    };
    let mut nf = NetFront::new(&w.front_grants, &w.front_events, BACK, MAC, opts).unwrap();
    let k = nf.keys();
    let mut tx: BackRing<_, TxRequest, TxResponse> = back_ring(&w, k.tx_ring_ref);
    let take = |tx: &mut BackRing<_, TxRequest, TxResponse>| tx.poll_request().unwrap().unwrap().id;
    for i in 0..3 {
        assert!(nf.send(&frame(60, i)).unwrap());
    }
    let ids: std::vec::Vec<u16> = (0..3).map(|_| take(&mut tx)).collect();
    assert_eq!(ids, [0, 1, 2]);
    let answer = |tx: &mut BackRing<_, TxRequest, TxResponse>, id, status| {
        tx.push_response(&TxResponse { id, status }).unwrap();
        tx.push_responses_and_check_notify();
    };
    answer(&mut tx, 999, NETIF_RSP_OKAY); // no such page
    answer(&mut tx, 0, NETIF_RSP_ERROR); // counted; page 0 is free again
    answer(&mut tx, 0, NETIF_RSP_OKAY); // page 0 again: already free
                                        // Page 0 alone is free: one send goes, the next waits.
    assert!(nf.send(&frame(60, 3)).unwrap());
    assert_eq!(nf.stats().tx_errors, 3);
    assert!(!nf.send(&frame(60, 4)).unwrap());
    assert_eq!(take(&mut tx), 0);
    answer(&mut tx, 1, NETIF_RSP_OKAY);
    assert!(nf.send(&frame(60, 4)).unwrap());
    assert_eq!(take(&mut tx), 1);
    let s = nf.stats();
    assert_eq!((s.tx_frames, s.tx_errors), (5, 3));
}

#[test]
fn an_empty_rx_response_is_dropped_not_handed_on() {
    with_backend(
        Options {
            rx_buffers: 2,
            tx_buffers: 1,
            timeout: Duration::from_secs(1),
        },
        |nf, w| {
            let good = frame(64, 3);
            let mut inject = w.inject.lock().unwrap();
            // Status 0: a response of no bytes.
            inject.push_back((vec![], Rx::Good { offset: 0 }));
            inject.push_back((good.clone(), Rx::Good { offset: 0 }));
            drop(inject);
            assert_eq!(recv(nf), Some(good));
            let s = nf.stats();
            assert_eq!((s.rx_frames, s.rx_dropped), (1, 1));
        },
    );
}

#[test]
fn close_says_when_the_backend_never_closes() {
    let w = world();
    let store = vif_store(b"10.0.0.7");
    let nf = NetFront::connect(
        &w.front_grants,
        &w.front_events,
        &store,
        0,
        Options::default(),
    )
    .unwrap();
    // The backend stops answering: our Closing is never followed.
    store.lock().transport_mut().server.peer = None;
    assert_eq!(
        nf.close(),
        Err(NetError::Xenbus(XenbusError::Timeout {
            waiting_for: crate::xenbus::XenbusState::Closing,
            backend: Some(crate::xenbus::XenbusState::Connected),
        }))
    );
    let state = store
        .lock()
        .transport_mut()
        .server
        .get(&format!("{VIF_FRONT}/state"));
    assert_eq!(state.as_deref(), Some(&b"6"[..]));
}

#[test]
fn a_page_taken_back_from_the_backend_is_posted_again_at_once() {
    // The back end's side played by the test: one rx page, one frame.
    let w = world();
    let opts = Options {
        rx_buffers: 1,
        tx_buffers: 1,
        timeout: Duration::from_secs(1),
    };
    let mut nf = NetFront::new(&w.front_grants, &w.front_events, BACK, MAC, opts).unwrap();
    let k = nf.keys();
    let mut rx: BackRing<_, RxRequest, RxResponse> = back_ring(&w, k.rx_ring_ref);
    let req = rx.poll_request().unwrap().unwrap();
    assert_eq!(rx.unconsumed_requests().unwrap(), 0);
    let page = w
        .back_grants
        .map(FRONT, &[req.gref], Access::ReadWrite)
        .unwrap();
    let f = frame(80, 5);
    page.write_at(0, &f).unwrap();
    page.unmap().unwrap();
    rx.push_response(&RxResponse {
        id: req.id,
        offset: 0,
        flags: 0,
        status: f.len() as i16,
    })
    .unwrap();
    rx.push_responses_and_check_notify();
    let mut buf = [0u8; MAX_FRAME];
    assert_eq!(nf.recv(&mut buf).unwrap(), Some(f.len()));
    assert!(buf[..f.len()] == f[..]);
    // The page is the backend's again, published with the frame's take
    // (not at the next poll).
    assert_eq!(rx.unconsumed_requests().unwrap(), 1);
}

#[test]
fn the_keys_a_netfront_publishes_and_a_gone_backend_latched() {
    let w = world();
    let mut nf = NetFront::new(
        &w.front_grants,
        &w.front_events,
        BACK,
        MAC,
        Options::default(),
    )
    .unwrap();
    let k = nf.keys();
    let (tx, rx, ev) = (
        k.tx_ring_ref.0.to_string(),
        k.rx_ring_ref.0.to_string(),
        k.event_channel.0.to_string(),
    );
    assert_eq!(
        k.nodes().pairs(),
        [
            ("tx-ring-ref", tx.as_str()),
            ("rx-ring-ref", rx.as_str()),
            ("event-channel", ev.as_str()),
            ("request-rx-copy", "1"),
            ("feature-rx-notify", "1"),
            ("feature-sg", "0"),
            ("feature-gso-tcpv4", "0"),
            ("feature-no-csum-offload", "1"),
            ("feature-ipv6-csum-offload", "0"),
        ]
    );
    // A backend domain that died: every later call says so.
    assert_eq!(
        nf.fail::<()>(NetError::BackendGone),
        Err(NetError::BackendGone)
    );
    let mut buf = [0u8; MAX_FRAME];
    assert_eq!(nf.recv(&mut buf), Err(NetError::BackendGone));
    assert_eq!(nf.send(&[1u8; 60]), Err(NetError::BackendGone));
}

#[test]
fn smoltcp_sees_the_device_s_capabilities_frames_and_tx_room() {
    use smoltcp::phy::{Device, Medium, RxToken as _};
    let w = world();
    let opts = Options {
        rx_buffers: 1,
        tx_buffers: 1,
        timeout: Duration::from_secs(1),
    };
    let mut nf = NetFront::new(&w.front_grants, &w.front_events, BACK, MAC, opts).unwrap();
    let caps = nf.capabilities();
    assert_eq!(caps.medium, Medium::Ethernet);
    assert_eq!(caps.max_transmission_unit, MAX_FRAME);
    assert_eq!(caps.max_burst_size, Some(1));
    let now = smoltcp::time::Instant::from_millis(0);
    // An idle wait runs to its deadline (the fake counts it).
    nf.wait(Duration::from_millis(1)).unwrap();
    assert_eq!(w.ew.timeouts(FRONT), 1);
    // A frame from the backend (played here).
    let k = nf.keys();
    let mut rx: BackRing<_, RxRequest, RxResponse> = back_ring(&w, k.rx_ring_ref);
    let req = rx.poll_request().unwrap().unwrap();
    let page = w
        .back_grants
        .map(FRONT, &[req.gref], Access::ReadWrite)
        .unwrap();
    let f = frame(70, 8);
    page.write_at(0, &f).unwrap();
    page.unmap().unwrap();
    rx.push_response(&RxResponse {
        id: req.id,
        offset: 0,
        flags: 0,
        status: f.len() as i16,
    })
    .unwrap();
    rx.push_responses_and_check_notify();
    let (token, _) = nf.receive(now).expect("the frame");
    assert!(token.consume(|b| b == &f[..]));
    // The one tx page taken: no room to transmit.
    assert!(nf.transmit(now).is_some());
    assert!(nf.send(&frame(60, 1)).unwrap());
    assert!(nf.transmit(now).is_none());
    // Broken: no room either, whatever the pool holds.
    let w2 = world();
    let mut nf = NetFront::new(&w2.front_grants, &w2.front_events, BACK, MAC, opts).unwrap();
    let _ = nf.fail::<()>(NetError::Broken);
    assert!(nf.transmit(now).is_none());
}
