//! The front-end handshake against the fake xenstored, with the backend
//! played on every client wait (`FakeXenstored::peer`) as Linux's
//! blkback/netback do (`frontend_changed`), and backends that misbehave.

use super::*;
use crate::xenstore::fake::{FakeTransport, FakeXenstored};
use alloc::string::ToString;

const FRONT: &str = "/local/domain/7/device/vbd/51712";
const BACK: &str = "/local/domain/0/backend/vbd/7/51712";
const VIF_FRONT: &str = "/local/domain/7/device/vif/0";
const VIF_BACK: &str = "/local/domain/0/backend/vif/7/0";

fn get(x: &FakeXenstored, p: &str) -> Option<String> {
    x.get(p).map(|v| String::from_utf8(v).unwrap())
}

/// A backend's reaction to the two states, as Linux's blkback and
/// netback have it: InitWait after probing (or when a frontend starts
/// over after a close), Connected once the frontend announced `ready`
/// (with its keys, which must be there by then), closing after it.
fn backend(
    x: &mut FakeXenstored,
    front: &str,
    back: &str,
    ready: &str,
    keys: &[&str],
    on_connect: &[(&str, &str)],
) {
    let fs = get(x, &format!("{front}/state"));
    let bs = get(x, &format!("{back}/state"));
    match (bs.as_deref(), fs.as_deref()) {
        // A frontend may announce itself only after our InitWait.
        (Some("1" | "6"), Some("3" | "4")) => {
            panic!("frontend state {fs:?} before the backend's InitWait")
        }
        (Some("1"), _) | (Some("6"), Some("1")) => {
            x.external_write(&format!("{back}/feature-flush-cache"), b"1");
            x.external_write(&format!("{back}/feature-rx-copy"), b"1");
            x.external_write(&format!("{back}/state"), b"2");
        }
        (Some("2"), Some(s)) if s == ready => {
            for k in keys {
                assert!(
                    x.get(&format!("{front}/{k}")).is_some(),
                    "{k} missing when the frontend said {ready}"
                );
            }
            for (k, v) in on_connect {
                x.external_write(&format!("{back}/{k}"), v.as_bytes());
            }
            x.external_write(&format!("{back}/state"), b"4");
        }
        (Some("4"), Some("5")) => x.external_write(&format!("{back}/state"), b"5"),
        (Some("5"), Some("5" | "6")) => x.external_write(&format!("{back}/state"), b"6"),
        _ => {}
    }
}

fn blkback(x: &mut FakeXenstored) {
    backend(
        x,
        FRONT,
        BACK,
        "3",
        &["ring-ref", "event-channel", "protocol"],
        &[("sectors", "2048")],
    );
}

fn netback(x: &mut FakeXenstored) {
    backend(
        x,
        VIF_FRONT,
        VIF_BACK,
        "4",
        &[
            "tx-ring-ref",
            "rx-ring-ref",
            "event-channel",
            "request-rx-copy",
        ],
        &[],
    );
}

/// A client of domain 7 with devices vbd/51712 and vif/0 as libxl
/// creates them (both ends Initialising); vbd's backend in `back_state`,
/// played by `peer`.
fn store(
    back_state: &str,
    peer: Option<fn(&mut FakeXenstored)>,
) -> spin::Mutex<Client<FakeTransport>> {
    let mut t = FakeTransport::new(7, "guest-seven");
    for (front, back) in [(FRONT, BACK), (VIF_FRONT, VIF_BACK)] {
        t.server
            .external_write(&format!("{front}/backend"), back.as_bytes());
        t.server
            .external_write(&format!("{front}/backend-id"), b"0");
        t.server.external_write(&format!("{front}/state"), b"1");
        t.server.external_write(&format!("{back}/state"), b"1");
    }
    t.server
        .external_write(&format!("{BACK}/state"), back_state.as_bytes());
    t.server.peer = peer;
    spin::Mutex::new(Client::new(t))
}

/// The values our `state` writes under `front` carried, in order.
fn state_writes(s: &spin::Mutex<Client<FakeTransport>>, front: &str) -> Vec<String> {
    let node = format!("{front}/state");
    s.lock()
        .transport_mut()
        .server
        .writes
        .iter()
        .filter(|w| w.1 == node)
        .map(|w| String::from_utf8(w.2.clone()).unwrap())
        .collect()
}

/// No watch of ours is left at xenstored and no event waits in the client.
fn assert_no_watches(s: &spin::Mutex<Client<FakeTransport>>) {
    let mut c = s.lock();
    assert_eq!(
        c.transport_mut().server.watches(),
        &[],
        "watches left at xenstored"
    );
    assert_eq!(c.queued_watch_events(), 0, "events left in the client");
}

fn snip(s: &str) -> Snippet {
    Snippet::new(s.as_bytes())
}

const T: Duration = Duration::from_secs(1);
const SHORT: Duration = Duration::from_millis(30);

#[test]
fn states_parse_from_their_numbers_only() {
    assert_eq!(XenbusState::parse(b"4"), Ok(XenbusState::Connected));
    assert_eq!(XenbusState::parse(b"6\0"), Ok(XenbusState::Closed));
    assert_eq!(XenbusState::parse(b"0"), Ok(XenbusState::Unknown));
    assert_eq!(XenbusState::parse(b"8"), Ok(XenbusState::Reconfigured));
    for bad in [
        &b"9"[..],
        b"300",
        b"4294967300",
        b"x",
        b"",
        b"+4",
        b" 4",
        b"4\n",
        b"\xff",
        b"\0",
    ] {
        assert_eq!(
            XenbusState::parse(bad),
            Err(XenbusError::BadState(Snippet::new(bad))),
            "{bad:?}"
        );
    }
    for s in 0..=8 {
        let st = XenbusState::from_number(s).unwrap();
        assert_eq!(XenbusState::parse(&st.digit()), Ok(st));
        assert_eq!(st as u32, s);
    }
    // Errors stay small and readable.
    let long = [b'7'; 100];
    let e = Snippet::new(&long);
    assert!(e.is_cut() && e.as_bytes().len() == Snippet::CAP);
    assert_eq!(format!("{:?}", Snippet::new(b"a\"\xff")), r#""a\"\xff""#);
}

#[test]
fn blkfront_handshake_initwait_initialised_connected_closed() {
    let s = store("1", Some(blkback));
    assert_eq!(Frontend::devices(&s, "vbd").unwrap(), [51712]);
    assert_eq!(Frontend::devices(&s, "vif").unwrap(), [0]);
    assert_eq!(Frontend::devices(&s, "vkbd").unwrap(), Vec::<u32>::new());
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    assert_eq!(
        (f.backend_path(), f.backend_id(), f.devid(), f.path()),
        (BACK, DomId(0), 51712, FRONT)
    );
    assert_eq!(f.initialise(T).unwrap(), XenbusState::InitWait);
    assert!(f.backend_flag("feature-flush-cache").unwrap());
    assert!(!f.backend_flag("feature-barrier").unwrap());
    // The backend publishes the disk only when connecting.
    assert_eq!(
        f.backend_u64("sectors"),
        Err(XenbusError::Missing(snip(&format!("{BACK}/sectors"))))
    );
    f.connect(
        Announce::Initialised,
        &[
            ("ring-ref", "8"),
            ("event-channel", "5"),
            ("protocol", "x86_64-abi"),
        ],
        T,
    )
    .unwrap();
    assert_eq!(f.backend_state().unwrap(), XenbusState::Connected);
    assert_eq!(f.backend_u64("sectors").unwrap(), 2048);
    f.switch(XenbusState::Connected).unwrap();
    {
        let mut c = s.lock();
        let x = &c.transport_mut().server;
        assert_eq!(get(x, &format!("{FRONT}/ring-ref")).as_deref(), Some("8"));
        assert_eq!(
            get(x, &format!("{FRONT}/protocol")).as_deref(),
            Some("x86_64-abi")
        );
        // The keys and Initialised went in one transaction, state last.
        let tx: Vec<_> = x.writes.iter().filter(|w| w.1.starts_with(FRONT)).collect();
        assert_eq!(tx.len(), 5, "{tx:?}");
        assert!(tx[..4].iter().all(|w| w.0 != 0 && w.0 == tx[0].0), "{tx:?}");
        assert_eq!(
            (tx[3].1.as_str(), &tx[3].2[..]),
            (&*format!("{FRONT}/state"), &b"3"[..])
        );
    }
    // The watch fires once when set: the backend is still connected.
    assert_eq!(f.poll_backend(), Ok(Some(XenbusState::Connected)));
    assert_eq!(f.poll_backend(), Ok(None));
    f.check_backend().unwrap();
    f.close(T).unwrap();
    // Initialising was there already (libxl writes it): not rewritten.
    assert_eq!(state_writes(&s, FRONT), ["3", "4", "5", "6"]);
    assert_eq!(
        get(&s.lock().transport_mut().server, &format!("{BACK}/state")).as_deref(),
        Some("6")
    );
    assert_no_watches(&s);
    drop(f);
    assert_no_watches(&s);
}

#[test]
fn netfront_announces_connected_with_its_keys() {
    let s = store("1", Some(netback));
    let f = Frontend::open(&s, "vif", 0).unwrap();
    assert_eq!(f.initialise(T).unwrap(), XenbusState::InitWait);
    assert!(f.backend_flag("feature-rx-copy").unwrap());
    let keys = [
        ("tx-ring-ref", "9"),
        ("rx-ring-ref", "10"),
        ("event-channel", "6"),
        ("request-rx-copy", "1"),
    ];
    f.connect(Announce::Connected, &keys, T).unwrap();
    assert_eq!(state_writes(&s, VIF_FRONT), ["4"]);
    assert_eq!(
        get(
            &s.lock().transport_mut().server,
            &format!("{VIF_FRONT}/request-rx-copy")
        )
        .as_deref(),
        Some("1")
    );
    f.close(T).unwrap();
    assert_eq!(state_writes(&s, VIF_FRONT), ["4", "5", "6"]);
    assert_no_watches(&s);
}

#[test]
fn a_conflicting_writer_makes_the_publishing_transaction_start_over() {
    let s = store("1", Some(netback));
    let f = Frontend::open(&s, "vif", 0).unwrap();
    f.initialise(T).unwrap();
    let before = s.lock().transport_mut().server.commits;
    s.lock().transport_mut().server.fail_commits = 2;
    f.connect(
        Announce::Connected,
        &[
            ("tx-ring-ref", "9"),
            ("rx-ring-ref", "10"),
            ("event-channel", "6"),
            ("request-rx-copy", "1"),
        ],
        T,
    )
    .unwrap();
    assert_eq!(s.lock().transport_mut().server.commits - before, 3);
    assert_eq!(
        get(
            &s.lock().transport_mut().server,
            &format!("{VIF_FRONT}/state")
        )
        .as_deref(),
        Some("4")
    );
}

#[test]
fn a_backend_that_never_gets_there_times_out_and_leaves_no_watch() {
    // Stuck in Initialising: no InitWait.
    let s = store("1", None);
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    assert_eq!(
        f.initialise(SHORT),
        Err(XenbusError::Timeout {
            waiting_for: XenbusState::InitWait,
            backend: Some(XenbusState::Initialising)
        })
    );
    assert_no_watches(&s);
    // No state node at all.
    s.lock()
        .transport_mut()
        .server
        .external_rm(&format!("{BACK}/state"));
    assert_eq!(
        f.initialise(SHORT),
        Err(XenbusError::Timeout {
            waiting_for: XenbusState::InitWait,
            backend: None
        })
    );
    // InitWait, but never Connected.
    let s = store("2", None);
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    assert_eq!(f.initialise(T), Ok(XenbusState::InitWait));
    assert_eq!(
        f.connect(Announce::Initialised, &[("ring-ref", "8")], SHORT),
        Err(XenbusError::Timeout {
            waiting_for: XenbusState::Connected,
            backend: Some(XenbusState::InitWait)
        })
    );
    assert_no_watches(&s);
}

#[test]
fn initialise_waits_for_a_late_initwait_and_skips_nothing() {
    // InitWait comes a few client waits later.
    let s = store("1", None);
    s.lock().transport_mut().server.write_later =
        Some((30, BACK.to_string() + "/state", b"2".to_vec()));
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    assert_eq!(f.initialise(T), Ok(XenbusState::InitWait));
    // A backend still Closed from an earlier connection is waited for
    // while it reopens.
    let s = store("6", None);
    s.lock().transport_mut().server.write_later =
        Some((30, BACK.to_string() + "/state", b"2".to_vec()));
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    assert_eq!(f.initialise(T), Ok(XenbusState::InitWait));
    // A backend that went straight to Connected satisfies it too.
    let s = store("4", None);
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    assert_eq!(f.initialise(T), Ok(XenbusState::Connected));
}

#[test]
fn garbage_states_are_typed_errors() {
    for bad in ["banana", "42", "-1", ""] {
        let s = store(bad, None);
        let f = Frontend::open(&s, "vbd", 51712).unwrap();
        assert_eq!(
            f.initialise(T),
            Err(XenbusError::BadState(snip(bad))),
            "{bad:?}"
        );
        assert_eq!(f.backend_state(), Err(XenbusError::BadState(snip(bad))));
        assert_eq!(f.poll_backend(), Err(XenbusError::BadState(snip(bad))));
        assert_no_watches(&s);
    }
    let s = store("1", None);
    s.lock()
        .transport_mut()
        .server
        .external_write(&format!("{BACK}/state"), b"\xff\xfe");
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    assert_eq!(
        f.backend_state(),
        Err(XenbusError::BadState(Snippet::new(b"\xff\xfe")))
    );
    // Garbage in feature keys and numbers.
    let x = |k: &str, v: &[u8]| {
        s.lock()
            .transport_mut()
            .server
            .external_write(&format!("{BACK}/{k}"), v)
    };
    x("feature-a", b"yes");
    x("sectors", b"-5");
    x("max", b"18446744073709551616");
    x("utf", b"\xc0");
    let node = |k: &str| snip(&format!("{BACK}/{k}"));
    assert_eq!(
        f.backend_flag("feature-a"),
        Err(XenbusError::BadNode(node("feature-a")))
    );
    assert_eq!(
        f.backend_u64("sectors"),
        Err(XenbusError::BadNode(node("sectors")))
    );
    assert_eq!(f.backend_u64("max"), Err(XenbusError::BadNode(node("max"))));
    assert_eq!(
        f.read_backend("utf"),
        Err(XenbusError::BadNode(node("utf")))
    );
}

#[test]
fn a_backend_path_that_is_not_the_toolstack_s_is_refused() {
    for (node, value) in [
        ("backend", "/local/domain/0/backend/vbd/8/51712"), // another guest's
        ("backend", "/local/domain/3/backend/vbd/7/51712"), // not backend-id's
        ("backend", "/local/domain/0/backend/vif/7/51712"), // another class
        ("backend", "/local/domain/0/backend/vbd/7/51712/"),
        (
            "backend",
            "/local/domain/0/backend/vbd/7/51712/../../8/51712",
        ),
        ("backend-id", "zero"),
        ("backend-id", "70000"),
        ("backend-id", "+0"),
        ("backend-id", ""),
    ] {
        let s = store("1", None);
        s.lock()
            .transport_mut()
            .server
            .external_write(&format!("{FRONT}/{node}"), value.as_bytes());
        assert_eq!(
            Frontend::open(&s, "vbd", 51712).err(),
            Some(XenbusError::BadBackend(snip(value))),
            "{node} = {value}"
        );
    }
    let s = store("1", None);
    s.lock()
        .transport_mut()
        .server
        .external_write(&format!("{FRONT}/backend"), b"\xff");
    assert_eq!(
        Frontend::open(&s, "vbd", 51712).err(),
        Some(XenbusError::BadNode(snip(&format!("{FRONT}/backend"))))
    );
    let s = store("1", None);
    s.lock()
        .transport_mut()
        .server
        .external_rm(&format!("{FRONT}/backend-id"));
    assert_eq!(
        Frontend::open(&s, "vbd", 51712).err(),
        Some(XenbusError::Missing(snip(&format!("{FRONT}/backend-id"))))
    );
    s.lock()
        .transport_mut()
        .server
        .external_rm(&format!("{FRONT}/backend"));
    assert_eq!(
        Frontend::open(&s, "vbd", 51712).err(),
        Some(XenbusError::Missing(snip(&format!("{FRONT}/backend"))))
    );
    assert_eq!(
        Frontend::open(&s, "vbd", 1).err(),
        Some(XenbusError::Missing(snip(
            "/local/domain/7/device/vbd/1/backend"
        )))
    );
}

#[test]
fn a_backend_closing_or_vanishing_while_connected_is_a_typed_error() {
    let s = store("1", Some(blkback));
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    f.initialise(T).unwrap();
    f.connect(
        Announce::Initialised,
        &[
            ("ring-ref", "8"),
            ("event-channel", "5"),
            ("protocol", "x86_64-abi"),
        ],
        T,
    )
    .unwrap();
    f.switch(XenbusState::Connected).unwrap();
    assert_eq!(f.poll_backend(), Ok(Some(XenbusState::Connected)));
    assert_eq!(f.poll_backend(), Ok(None));
    // The toolstack detaches the device: blkback goes Closing.
    s.lock().transport_mut().server.peer = None;
    s.lock()
        .transport_mut()
        .server
        .external_write(&format!("{BACK}/state"), b"5");
    assert_eq!(
        f.poll_backend(),
        Err(XenbusError::BackendClosing(XenbusState::Closing))
    );
    assert_eq!(
        f.check_backend(),
        Err(XenbusError::BackendClosing(XenbusState::Closing))
    );
    // Its directory removed (the backend domain died, say).
    s.lock().transport_mut().server.external_rm(BACK);
    assert_eq!(f.poll_backend(), Err(XenbusError::BackendGone));
    assert_eq!(f.check_backend(), Err(XenbusError::BackendGone));
    // Closing against a vanished backend still ends Closed, at once.
    f.close(T).unwrap();
    assert_eq!(
        get(&s.lock().transport_mut().server, &format!("{FRONT}/state")).as_deref(),
        Some("6")
    );
    assert_no_watches(&s);
    // While waiting for Connected, closing and vanishing are errors too.
    let s = store("5", None);
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    assert_eq!(
        f.wait_backend(XenbusState::Connected, T),
        Err(XenbusError::BackendClosing(XenbusState::Closing))
    );
    s.lock().transport_mut().server.external_rm(BACK);
    assert_eq!(
        f.wait_backend(XenbusState::Connected, T),
        Err(XenbusError::BackendGone)
    );
    assert_no_watches(&s);
}

#[test]
fn polling_our_watch_leaves_other_watchers_events_alone() {
    let s = store("1", Some(blkback));
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    f.initialise(T).unwrap();
    f.connect(
        Announce::Initialised,
        &[
            ("ring-ref", "8"),
            ("event-channel", "5"),
            ("protocol", "x86_64-abi"),
        ],
        T,
    )
    .unwrap();
    s.lock()
        .watch("/local/domain/7/data", "someone-else")
        .unwrap();
    assert_eq!(f.poll_backend(), Ok(Some(XenbusState::Connected)));
    let e = s.lock().poll_watch_event().unwrap().unwrap();
    assert_eq!(e.token, "someone-else");
}

#[test]
fn dropping_a_connected_frontend_removes_its_watch() {
    let s = store("1", Some(blkback));
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    f.initialise(T).unwrap();
    f.connect(
        Announce::Initialised,
        &[
            ("ring-ref", "8"),
            ("event-channel", "5"),
            ("protocol", "x86_64-abi"),
        ],
        T,
    )
    .unwrap();
    // A backend storm while nobody polls: bounded by the queue limit.
    s.lock().set_watch_queue_limit(4);
    for _ in 0..10 {
        s.lock()
            .transport_mut()
            .server
            .external_write(&format!("{BACK}/state"), b"4");
    }
    assert_eq!(s.lock().transport_mut().server.watches().len(), 1);
    drop(f);
    assert_no_watches(&s);
    // A drop while the store is locked does not spin.
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    f.watch_backend().unwrap();
    let guard = s.lock();
    drop(f);
    drop(guard);
}

#[test]
fn a_closed_device_can_be_connected_again() {
    let s = store("1", Some(blkback));
    for _ in 0..2 {
        let f = Frontend::open(&s, "vbd", 51712).unwrap();
        assert_eq!(f.initialise(T), Ok(XenbusState::InitWait));
        f.connect(
            Announce::Initialised,
            &[
                ("ring-ref", "8"),
                ("event-channel", "5"),
                ("protocol", "x86_64-abi"),
            ],
            T,
        )
        .unwrap();
        f.switch(XenbusState::Connected).unwrap();
        f.close(T).unwrap();
        assert_eq!(
            get(&s.lock().transport_mut().server, &format!("{BACK}/state")).as_deref(),
            Some("6")
        );
    }
    assert_eq!(
        state_writes(&s, FRONT),
        ["3", "4", "5", "6", "1", "3", "4", "5", "6"]
    );
    assert_no_watches(&s);
}

#[test]
fn a_removed_device_is_not_recreated() {
    let s = store("1", Some(blkback));
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    f.initialise(T).unwrap();
    s.lock().transport_mut().server.external_rm(FRONT);
    assert_eq!(
        f.connect(Announce::Initialised, &[("ring-ref", "8")], T),
        Err(XenbusError::DeviceGone)
    );
    f.close(SHORT).unwrap_or(());
    let mut c = s.lock();
    assert_eq!(c.transport_mut().server.get(FRONT), None);
    assert_eq!(
        c.transport_mut().server.get(&format!("{FRONT}/state")),
        None
    );
}

#[test]
fn a_backend_that_never_closes_leaves_us_closed_after_the_timeout() {
    let s = store("4", None);
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    f.watch_backend().unwrap();
    assert_eq!(
        f.close(SHORT),
        Err(XenbusError::Timeout {
            waiting_for: XenbusState::Closing,
            backend: Some(XenbusState::Connected)
        })
    );
    assert_eq!(state_writes(&s, FRONT), ["5", "6"]);
    assert_no_watches(&s);
}

#[test]
fn errors_convert_into_the_crate_error() {
    let e: crate::Error = XenbusError::BackendGone.into();
    assert_eq!(e, crate::Error::Xenbus(XenbusError::BackendGone));
    let e: XenbusError = XsError::Timeout.into();
    assert_eq!(e, XenbusError::Store(XsError::Timeout));
}

/// Two domains' clients over one shared fake store, each with its own
/// ring and daemon: domain 7 has vbd 51712, served by domain 0.
fn two_ends() -> (
    spin::Mutex<Client<FakeTransport>>,
    spin::Mutex<Client<FakeTransport>>,
) {
    let shared = crate::xenstore::fake::SharedStore::new();
    let mut front = FakeTransport::new(7, "guest-seven");
    let mut back = FakeTransport::new(0, "Domain-0");
    // What the toolstack writes for the device.
    for (p, v) in [
        (format!("{FRONT}/backend"), BACK),
        (format!("{FRONT}/backend-id"), "0"),
        (format!("{FRONT}/state"), "1"),
        (format!("{BACK}/frontend"), FRONT),
        (format!("{BACK}/frontend-id"), "7"),
        (format!("{BACK}/state"), "1"),
    ] {
        front.server.external_write(&p, v.as_bytes());
    }
    front.server.join(&shared);
    back.server.join(&shared);
    (
        spin::Mutex::new(Client::new(front)),
        spin::Mutex::new(Client::new(back)),
    )
}

/// Node `p` as `store`'s daemon sees it once it applied what the other
/// domains changed (it does at each step).
/// The front end's `state`, written as its domain would (the fake
/// front end is the test itself).
fn set_front_state(store: &spin::Mutex<Client<FakeTransport>>, v: &[u8]) {
    store
        .lock()
        .transport_mut()
        .server
        .external_write(&format!("{FRONT}/state"), v)
}

fn synced(store: &spin::Mutex<Client<FakeTransport>>, p: &str) -> Option<alloc::vec::Vec<u8>> {
    let mut c = store.lock();
    let x = &mut c.transport_mut().server;
    x.step();
    x.get(p)
}

/// A bound on a hang, not a speed: the fake clock moves 1 ms per wait,
/// and the other thread may be descheduled for many of them.
const LONG: Duration = Duration::from_secs(3600);

#[test]
fn a_backend_and_a_frontend_handshake_close_and_reopen_through_one_store() {
    extern crate std;
    let (fstore, bstore) = two_ends();
    let be = Backend::open(&bstore, "vbd", DomId(7), 51712).unwrap();
    assert_eq!(be.path(), BACK);
    assert_eq!(be.frontend_path(), FRONT);
    assert_eq!((be.frontend_id(), be.devid()), (DomId(7), 51712));
    let mut features = Keys::new();
    features.set("feature-flush-cache", 1);
    let mut disk = Keys::new();
    disk.set("sectors", 2048)
        .set("sector-size", 512)
        .set("info", 0);
    std::thread::scope(|s| {
        let front = s.spawn(|| {
            let bus = Frontend::open(&fstore, "vbd", 51712).unwrap();
            for round in 0..2 {
                assert_eq!(bus.initialise(LONG).unwrap(), XenbusState::InitWait);
                assert!(bus.backend_flag("feature-flush-cache").unwrap());
                bus.connect(
                    Announce::Initialised,
                    &[("ring-ref", "8"), ("event-channel", "5")],
                    LONG,
                )
                .unwrap();
                assert_eq!(bus.backend_u64("sectors").unwrap(), 2048);
                bus.switch(XenbusState::Connected).unwrap();
                if round == 0 {
                    // We close; the backend follows to Closed before we
                    // start over (so that it sees each of our states).
                    bus.close(LONG).unwrap();
                    assert_eq!(
                        bus.wait_backend(XenbusState::Closed, LONG).unwrap(),
                        XenbusState::Closed
                    );
                } else {
                    // The backend closes (an unplug): we see it, and close.
                    let e = loop {
                        match bus.poll_backend() {
                            Ok(_) => {
                                let _ = bus.wait_backend(XenbusState::Closing, LONG);
                            }
                            Err(e) => break e,
                        }
                    };
                    assert_eq!(e, XenbusError::BackendClosing(XenbusState::Closing));
                    bus.close(LONG).unwrap();
                }
            }
        });
        be.init_wait(&features).unwrap();
        assert_eq!(be.state(), XenbusState::InitWait);
        let mut log = alloc::vec::Vec::new();
        for round in 0..2 {
            // Until the front end has published its keys.
            let ev = be.next(LONG).unwrap();
            assert_eq!(ev, FrontendEvent::Connect, "round {round}");
            assert_eq!(be.frontend_u64("ring-ref").unwrap(), 8);
            assert_eq!(be.frontend_u64("event-channel").unwrap(), 5);
            be.connect(&disk).unwrap();
            log.push(ev);
            if round == 0 {
                // Closing, then Closed, then the front end starts over.
                for want in [
                    FrontendEvent::Closing,
                    FrontendEvent::Closed,
                    FrontendEvent::Reopened,
                ] {
                    let ev = be.next(LONG).unwrap();
                    assert_eq!(ev, want);
                    log.push(ev);
                }
                assert_eq!(be.state(), XenbusState::InitWait);
            } else {
                // Seen Connected first, then closed from our side.
                assert_eq!(
                    be.wait_frontend(XenbusState::Connected, LONG).unwrap(),
                    XenbusState::Connected
                );
                be.close(LONG).unwrap();
            }
        }
        front.join().unwrap();
        assert_eq!(
            log,
            [
                FrontendEvent::Connect,
                FrontendEvent::Closing,
                FrontendEvent::Closed,
                FrontendEvent::Reopened,
                FrontendEvent::Connect
            ]
        );
    });
    let node = |p: &str| synced(&fstore, p);
    assert_eq!(node(&format!("{FRONT}/state")).as_deref(), Some(&b"6"[..]));
    // The shared store converged: domain 0's daemon sees the same.
    assert_eq!(
        synced(&bstore, &format!("{FRONT}/state")).as_deref(),
        Some(&b"6"[..])
    );
    assert_eq!(node(&format!("{BACK}/state")).as_deref(), Some(&b"6"[..]));
    assert_eq!(
        node(&format!("{BACK}/sectors")).as_deref(),
        Some(&b"2048"[..])
    );
}

#[test]
fn a_backend_refuses_a_frontend_path_it_was_not_given_and_sees_a_frontend_vanish() {
    let (fstore, bstore) = two_ends();
    // The toolstack's `frontend` names another guest's device.
    fstore.lock().transport_mut().server.external_write(
        &format!("{BACK}/frontend"),
        b"/local/domain/8/device/vbd/51712",
    );
    // Domain 0's daemon applies it at its next step (a client request).
    let _ = bstore.lock().read(&format!("{BACK}/state"));
    assert!(matches!(
        Backend::open(&bstore, "vbd", DomId(7), 51712),
        Err(XenbusError::BadFrontend(_))
    ));
    fstore
        .lock()
        .transport_mut()
        .server
        .external_write(&format!("{BACK}/frontend"), FRONT.as_bytes());
    let _ = bstore.lock().read(&format!("{BACK}/state"));
    let be = Backend::open(&bstore, "vbd", DomId(7), 51712).unwrap();
    be.init_wait(&Keys::new()).unwrap();
    // A front end that starts closing while we wait for its keys.
    fstore
        .lock()
        .transport_mut()
        .server
        .external_write(&format!("{FRONT}/state"), b"5");
    assert_eq!(
        be.wait_frontend(XenbusState::Initialised, Duration::from_secs(1)),
        Err(XenbusError::FrontendClosing(XenbusState::Closing))
    );
    assert_eq!(be.next(Duration::from_secs(1)), Ok(FrontendEvent::Closing));
    assert_eq!(be.state(), XenbusState::Closing);
    // Its domain dies: the device directory goes.
    fstore
        .lock()
        .transport_mut()
        .server
        .external_rm("/local/domain/7/device");
    assert_eq!(be.next(Duration::from_secs(1)), Ok(FrontendEvent::Gone));
    assert_eq!(be.frontend_state(), Err(XenbusError::FrontendGone));
    assert_eq!(be.state(), XenbusState::Closed);
    assert_eq!(
        synced(&fstore, &format!("{BACK}/state")).as_deref(),
        Some(&b"6"[..]),
        "Closed, seen from the front end's domain too"
    );
}

/// A driver's error, as block's and net's are to the link.
#[derive(Debug, Clone, PartialEq)]
enum DriverError {
    Down(Down),
    Broken,
    Xenbus(XenbusError),
    Refused,
}

impl LinkError for DriverError {
    fn down(why: Down) -> Self {
        DriverError::Down(why)
    }
    fn broken() -> Self {
        DriverError::Broken
    }
    fn xenbus(e: XenbusError) -> Self {
        DriverError::Xenbus(e)
    }
    fn is_down(&self) -> Option<Down> {
        match self {
            DriverError::Down(d) => Some(*d),
            _ => None,
        }
    }
}

fn vbd_keys() -> Keys {
    let mut k = Keys::new();
    k.set("ring-ref", 8)
        .set("event-channel", 5)
        .set("protocol", "x86_64-abi");
    k
}

#[test]
fn an_opening_closes_the_device_unless_committed_and_the_link_closes_on_detach() {
    let s = store("1", Some(blkback));
    // Refused by the check: nothing written, the backend not woken.
    let r = Opening::initialise(&s, "vbd", 51712, T, |_| Err(DriverError::Refused));
    assert_eq!(r.err(), Some(DriverError::Refused));
    assert_eq!(state_writes(&s, FRONT), Vec::<String>::new());
    // Given up after the keys went out: Closing, the backend closes, Closed.
    {
        let o = Opening::initialise(&s, "vbd", 51712, T, |_| Ok::<_, DriverError>(())).unwrap();
        o.connect::<DriverError>(Announce::Initialised, &vbd_keys(), T)
            .unwrap();
    }
    assert_eq!(state_writes(&s, FRONT), ["3", "5", "6"]);
    assert_eq!(
        get(&s.lock().transport_mut().server, &format!("{BACK}/state")).as_deref(),
        Some("6")
    );
    assert_no_watches(&s);
    // Committed: it stays open; the link sees the detach and closes.
    let o = Opening::initialise(&s, "vbd", 51712, T, |_| Ok::<_, DriverError>(())).unwrap();
    o.connect::<DriverError>(Announce::Initialised, &vbd_keys(), T)
        .unwrap();
    o.switch(XenbusState::Connected).unwrap();
    let mut link = o.commit(Duration::from_millis(100));
    assert!(link.is_connected());
    assert_eq!(link.check::<DriverError>(0), Ok(()), "not due yet");
    assert_eq!(state_writes(&s, FRONT), ["3", "5", "6", "1", "3", "4"]);
    s.lock()
        .transport_mut()
        .server
        .external_write(&format!("{BACK}/state"), b"5");
    assert_eq!(link.check::<DriverError>(50_000_000), Ok(()), "not due yet");
    assert_eq!(
        link.check::<DriverError>(100_000_000),
        Err(DriverError::Down(Down::Closing))
    );
    assert!(!link.is_connected());
    assert_eq!(
        state_writes(&s, FRONT).last().map(String::as_str),
        Some("6")
    );
    // Latched: every later check says why, without asking the store.
    let requests = s.lock().transport_mut().server.requests.len();
    assert_eq!(
        link.check::<DriverError>(u64::MAX),
        Err(DriverError::Down(Down::Closing))
    );
    assert_eq!(s.lock().transport_mut().server.requests.len(), requests);
    // Another failure breaks an unconnected link for good.
    let mut bare = Link::unconnected(T);
    assert_eq!(
        bare.fail::<(), _>(DriverError::Xenbus(XenbusError::BackendGone)),
        Err(DriverError::Xenbus(XenbusError::BackendGone))
    );
    assert_eq!(bare.latched::<DriverError>(), Err(DriverError::Broken));
    assert_eq!(
        link_error::<DriverError>(XenbusError::BackendGone),
        DriverError::Down(Down::Closing)
    );
}

#[test]
fn a_backend_polled_in_an_event_loop_sees_each_change_once() {
    let (fstore, bstore) = two_ends();
    let be = Backend::open(&bstore, "vbd", DomId(7), 51712).unwrap();
    be.init_wait(&Keys::new()).unwrap();
    assert_eq!(be.poll(), Ok(FrontendEvent::Nothing), "no change yet");
    let front = |v: &[u8]| set_front_state(&fstore, v);
    front(b"3");
    // Domain 0's daemon takes the change at its next step.
    let _ = synced(&bstore, FRONT);
    assert_eq!(be.poll(), Ok(FrontendEvent::Connect));
    be.connect(&Keys::new()).unwrap();
    assert_eq!(be.poll(), Ok(FrontendEvent::Nothing), "handled once");
    front(b"4");
    let _ = synced(&bstore, FRONT);
    assert_eq!(
        be.poll(),
        Ok(FrontendEvent::Nothing),
        "Connected asks nothing"
    );
    front(b"5");
    let _ = synced(&bstore, FRONT);
    assert_eq!(be.poll(), Ok(FrontendEvent::Closing));
    assert_eq!(be.state(), XenbusState::Closing);
    front(b"6");
    let _ = synced(&bstore, FRONT);
    assert_eq!(be.poll(), Ok(FrontendEvent::Closed));
    front(b"1");
    let _ = synced(&bstore, FRONT);
    assert_eq!(be.poll(), Ok(FrontendEvent::Reopened));
    assert_eq!(be.state(), XenbusState::InitWait);
    assert_eq!(
        synced(&fstore, &format!("{BACK}/state")).as_deref(),
        Some(&b"2"[..])
    );
}

#[test]
fn a_backend_in_a_driver_domain_is_named_by_its_id() {
    let mut t = FakeTransport::new(7, "guest-seven");
    let back = "/local/domain/3/backend/vbd/7/51712";
    t.server
        .external_write(&format!("{FRONT}/backend"), back.as_bytes());
    t.server
        .external_write(&format!("{FRONT}/backend-id"), b"3");
    let s = spin::Mutex::new(Client::new(t));
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    assert_eq!((f.backend_path(), f.backend_id()), (back, DomId(3)));
}

#[test]
fn a_store_error_other_than_enoent_is_an_error_not_an_absent_node() {
    let s = store("2", None);
    let eacces = Err(XenbusError::Store(XsError::Errno(
        crate::errno::Errno::EACCES,
    )));
    s.lock()
        .transport_mut()
        .server
        .directory_errors
        .push_back("EACCES");
    assert_eq!(Frontend::devices(&s, "vbd"), eacces.map(|()| Vec::new()));
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    s.lock()
        .transport_mut()
        .server
        .read_errors
        .push_back("EACCES");
    assert_eq!(f.read_backend("sectors"), eacces.map(|()| None));
    s.lock()
        .transport_mut()
        .server
        .read_errors
        .push_back("EACCES");
    assert_eq!(f.backend_state(), eacces.map(|()| XenbusState::Unknown));
    // ENOENT is an absent node.
    assert_eq!(f.read_backend("sectors"), Ok(None));
    assert_eq!(Frontend::devices(&s, "vkbd"), Ok(Vec::new()));
}

#[test]
fn domids_are_decimal_digits_below_2_to_the_16() {
    assert_eq!(parse_domid("0"), Some(DomId(0)));
    assert_eq!(parse_domid("10000"), Some(DomId(10000)));
    for bad in ["", "+5", "-1", "65536", "100000", "000001", "1x", " 1"] {
        assert_eq!(parse_domid(bad), None, "{bad:?}");
    }
}

#[test]
fn a_wait_for_a_state_between_the_handshake_s_steps_ends_on_that_state_only() {
    let s = store("3", None);
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    assert_eq!(
        f.wait_backend(XenbusState::Initialised, T),
        Ok(XenbusState::Initialised)
    );
    let s = store("2", None);
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    assert_eq!(
        f.wait_backend(XenbusState::Initialised, SHORT),
        Err(XenbusError::Timeout {
            waiting_for: XenbusState::Initialised,
            backend: Some(XenbusState::InitWait),
        })
    );
}

#[test]
fn a_short_snippet_is_not_cut_and_errors_read_as_words() {
    assert!(!Snippet::new(b"ab").is_cut());
    assert_eq!(
        XenbusError::Missing(snip("/a")).to_string(),
        "node \"/a\" does not exist"
    );
}

#[test]
fn backend_numbers_are_plain_decimal_digits() {
    let s = store("2", None);
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    for (v, want) in [
        ("2048", Ok(2048)),
        (" 7\n", Ok(7)),
        ("+5", Err(())),
        ("", Err(())),
        ("0x10", Err(())),
    ] {
        s.lock()
            .transport_mut()
            .server
            .external_write(&format!("{BACK}/sectors"), v.as_bytes());
        assert_eq!(
            f.backend_u64("sectors"),
            want.map_err(|()| XenbusError::BadNode(snip(&format!("{BACK}/sectors")))),
            "{v:?}"
        );
    }
}

#[test]
fn publish_writes_every_key_and_a_store_error_stops_a_switch() {
    let s = store("2", None);
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    f.publish(&[("ring-ref", "8"), ("event-channel", "5")])
        .unwrap();
    let mut c = s.lock();
    let x = &mut c.transport_mut().server;
    assert_eq!(get(x, &format!("{FRONT}/ring-ref")).as_deref(), Some("8"));
    assert_eq!(
        get(x, &format!("{FRONT}/event-channel")).as_deref(),
        Some("5")
    );
    // Our state unreadable (not absent): nothing is written.
    x.read_errors.push_back("EACCES");
    let before = x.writes.len();
    drop(c);
    assert_eq!(
        f.switch(XenbusState::Initialising),
        Err(XenbusError::Store(XsError::Errno(
            crate::errno::Errno::EACCES
        )))
    );
    assert_eq!(s.lock().transport_mut().server.writes.len(), before);
    // Our state absent and our `backend` node unreadable: not a removed
    // device (Ok, nothing written) but an error.
    let mut c = s.lock();
    let x = &mut c.transport_mut().server;
    x.read_errors.extend(["ENOENT", "EACCES"]);
    drop(c);
    assert_eq!(
        f.switch(XenbusState::Initialising),
        Err(XenbusError::Store(XsError::Errno(
            crate::errno::Errno::EACCES
        )))
    );
    assert_eq!(s.lock().transport_mut().server.writes.len(), before);
}

#[test]
fn two_devices_watches_are_told_apart() {
    let s = store("2", None);
    let vbd = Frontend::open(&s, "vbd", 51712).unwrap();
    let vif = Frontend::open(&s, "vif", 0).unwrap();
    vbd.watch_backend().unwrap();
    vif.watch_backend().unwrap();
    // A new watch fires once at once (xenstored's first event).
    assert_eq!(vbd.poll_backend(), Ok(Some(XenbusState::InitWait)));
    assert_eq!(vif.poll_backend(), Ok(Some(XenbusState::Initialising)));
    assert_eq!(vbd.poll_backend(), Ok(None));
    s.lock()
        .transport_mut()
        .server
        .external_write(&format!("{VIF_BACK}/state"), b"4");
    assert_eq!(vbd.poll_backend(), Ok(None));
    assert_eq!(vif.poll_backend(), Ok(Some(XenbusState::Connected)));
    assert_eq!(vif.poll_backend(), Ok(None));
}

#[test]
fn dropped_watch_events_count_as_a_change() {
    let s = store("2", None);
    // Every event of our watch is dropped (a full queue): the count says
    // the backend changed.
    s.lock().set_watch_queue_limit(0);
    let vif = Frontend::open(&s, "vif", 0).unwrap();
    vif.watch_backend().unwrap();
    s.lock()
        .transport_mut()
        .server
        .external_write(&format!("{VIF_BACK}/state"), b"4");
    // A request takes in what the daemon sent (the events, dropped).
    assert_eq!(vif.backend_state(), Ok(XenbusState::Connected));
    assert_eq!(vif.poll_backend(), Ok(Some(XenbusState::Connected)));
}

#[test]
fn a_back_end_reads_the_front_end_s_keys() {
    let (fstore, bstore) = two_ends();
    let f = Frontend::open(&fstore, "vbd", 51712).unwrap();
    f.publish(&[
        ("ring-ref", "8"),
        ("feature-persistent", "1"),
        ("request-rx-copy", "0"),
        ("feature-x", "2"),
    ])
    .unwrap();
    let be = Backend::open(&bstore, "vbd", DomId(7), 51712).unwrap();
    let _ = synced(&bstore, FRONT);
    assert_eq!(be.read_frontend("ring-ref"), Ok(Some("8".to_string())));
    assert_eq!(be.frontend_u64("ring-ref"), Ok(8));
    assert_eq!(be.frontend_flag("feature-persistent"), Ok(true));
    assert_eq!(be.frontend_flag("request-rx-copy"), Ok(false));
    assert_eq!(
        be.frontend_flag("feature-x"),
        Err(XenbusError::BadNode(snip(&format!("{FRONT}/feature-x"))))
    );
    assert_eq!(be.read_frontend("event-channel"), Ok(None));
    assert_eq!(
        be.frontend_u64("event-channel"),
        Err(XenbusError::Missing(snip(&format!(
            "{FRONT}/event-channel"
        ))))
    );
}

#[test]
fn a_front_end_that_starts_over_while_we_close_sees_us_closed_then_initwait() {
    let (fstore, bstore) = two_ends();
    let be = Backend::open(&bstore, "vbd", DomId(7), 51712).unwrap();
    be.init_wait(&Keys::new()).unwrap();
    let front = |v: &[u8]| set_front_state(&fstore, v);
    front(b"5");
    let _ = synced(&bstore, FRONT);
    assert_eq!(be.poll(), Ok(FrontendEvent::Closing));
    // Initialising before we saw its Closed: we close, then reopen.
    front(b"1");
    let _ = synced(&bstore, FRONT);
    assert_eq!(be.poll(), Ok(FrontendEvent::Reopened));
    assert_eq!(state_writes(&bstore, BACK), ["2", "5", "6", "2"]);
}

#[test]
fn keys_keep_their_order_and_are_found_by_name() {
    let mut k = Keys::new();
    k.set("ring-ref", 8).set("protocol", "x86_64-abi");
    assert_eq!(k.get("protocol"), Some("x86_64-abi"));
    assert_eq!(k.get("ring-ref"), Some("8"));
    assert_eq!(k.get("event-channel"), None);
    assert_eq!(k.pairs(), [("ring-ref", "8"), ("protocol", "x86_64-abi")]);
}

#[test]
fn a_link_s_debug_says_its_state() {
    let mut link = Link::unconnected(T);
    assert_eq!(
        format!("{link:?}"),
        "Link { connected: false, broken: false, down: None }"
    );
    assert!(!link.is_broken());
    let _ = link.fail::<(), DriverError>(DriverError::down(Down::Gone));
    assert!(link.is_broken());
    assert_eq!(
        format!("{link:?}"),
        "Link { connected: false, broken: true, down: Some(Gone) }"
    );
}

#[test]
fn a_link_s_close_says_when_the_backend_never_closes() {
    let s = store("1", Some(blkback));
    let o = Opening::initialise(&s, "vbd", 51712, T, |_| Ok::<_, DriverError>(())).unwrap();
    o.connect::<DriverError>(Announce::Initialised, &vbd_keys(), T)
        .unwrap();
    o.switch(XenbusState::Connected).unwrap();
    let mut link = o.commit(T);
    s.lock().transport_mut().server.peer = None;
    assert_eq!(
        link.close::<DriverError>(),
        Err(DriverError::Xenbus(XenbusError::Timeout {
            waiting_for: XenbusState::Closing,
            backend: Some(XenbusState::Connected),
        }))
    );
    assert!(!link.is_connected());
    assert_eq!(link.close::<DriverError>(), Ok(()), "closed already");
}
