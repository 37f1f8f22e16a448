//! The front-end handshake against the fake xenstored, with a backend
//! played on every client wait (`FakeXenstored::peer`) as Linux's blkback
//! would, and backends that misbehave.

use super::*;
use crate::xenstore::fake::{FakeTransport, FakeXenstored};
use alloc::vec::Vec;

const FRONT: &str = "/local/domain/7/device/vbd/51712";
const BACK: &str = "/local/domain/0/backend/vbd/7/51712";

fn get(x: &FakeXenstored, p: &str) -> Option<String> {
    x.get(p).map(|v| String::from_utf8(v).unwrap())
}

/// blkback's side: InitWait with its features, Connected once the front
/// is Initialised (publishing the disk), and closing after the front.
fn blkback(x: &mut FakeXenstored) {
    let front = get(x, &format!("{FRONT}/state"));
    let back = get(x, &format!("{BACK}/state"));
    match (back.as_deref(), front.as_deref()) {
        (Some("1"), _) => {
            x.external_write(&format!("{BACK}/feature-flush-cache"), b"1");
            x.external_write(&format!("{BACK}/state"), b"2");
        }
        (Some("2"), Some("3")) => {
            x.external_write(&format!("{BACK}/sectors"), b"2048");
            x.external_write(&format!("{BACK}/state"), b"4");
        }
        (Some("4"), Some("5")) => x.external_write(&format!("{BACK}/state"), b"5"),
        (Some("5"), Some("5" | "6")) => x.external_write(&format!("{BACK}/state"), b"6"),
        _ => {}
    }
}

/// A client of domain 7 with device vbd/51712 whose backend is in state
/// `back_state`, played by `peer`.
fn store(back_state: &str, peer: Option<fn(&mut FakeXenstored)>) -> spin::Mutex<Client<FakeTransport>> {
    let mut t = FakeTransport::new(7, "guest-seven");
    t.server.external_write(&format!("{FRONT}/backend"), BACK.as_bytes());
    t.server.external_write(&format!("{FRONT}/backend-id"), b"0");
    t.server.external_write(&format!("{FRONT}/state"), b"1");
    t.server.external_write(&format!("{BACK}/state"), back_state.as_bytes());
    t.server.peer = peer;
    spin::Mutex::new(Client::new(t))
}

const T: Duration = Duration::from_secs(1);

#[test]
fn states_parse_from_their_numbers_only() {
    assert_eq!(XenbusState::parse(b"4"), Ok(XenbusState::Connected));
    assert_eq!(XenbusState::parse(b"6\0"), Ok(XenbusState::Closed));
    assert_eq!(XenbusState::parse(b"0"), Ok(XenbusState::Unknown));
    assert_eq!(XenbusState::parse(b"8"), Ok(XenbusState::Reconfigured));
    assert_eq!(XenbusState::parse(b"9"), Err(XenbusError::BadState(9)));
    assert_eq!(XenbusState::parse(b"x"), Err(XenbusError::BadState(b'x')));
    assert_eq!(XenbusState::parse(b""), Err(XenbusError::BadState(0)));
    assert_eq!(XenbusState::parse(&[0xff]), Err(XenbusError::BadState(0xff)));
}

#[test]
fn the_handshake_goes_through_initwait_to_connected_and_closes() {
    let s = store("1", Some(blkback));
    assert_eq!(Frontend::devices(&s, "vbd").unwrap(), [51712]);
    assert_eq!(Frontend::devices(&s, "vif").unwrap(), Vec::<u32>::new());
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    assert_eq!((f.backend_path(), f.backend_id(), f.devid(), f.path()), (BACK, DomId(0), 51712, FRONT));
    assert_eq!(f.wait_backend(XenbusState::InitWait, T).unwrap(), XenbusState::InitWait);
    assert!(f.backend_flag("feature-flush-cache").unwrap());
    assert!(!f.backend_flag("feature-barrier").unwrap());
    // The backend publishes the disk only when connecting.
    assert_eq!(f.backend_u64("sectors"), Err(XenbusError::BadNode("sectors".into())));
    f.publish(&[("ring-ref", "8"), ("event-channel", "5"), ("protocol", "x86_64-abi")]).unwrap();
    f.switch(XenbusState::Initialised).unwrap();
    assert_eq!(f.wait_backend(XenbusState::Connected, T).unwrap(), XenbusState::Connected);
    assert_eq!(f.backend_u64("sectors").unwrap(), 2048);
    f.switch(XenbusState::Connected).unwrap();
    f.check_backend().unwrap();
    {
        let mut c = s.lock();
        let x = &c.transport_mut().server;
        assert_eq!(get(x, &format!("{FRONT}/ring-ref")).as_deref(), Some("8"));
        assert_eq!(get(x, &format!("{FRONT}/protocol")).as_deref(), Some("x86_64-abi"));
        assert_eq!(get(x, &format!("{FRONT}/state")).as_deref(), Some("4"));
    }
    f.close(T).unwrap();
    let mut c = s.lock();
    assert_eq!(get(&c.transport_mut().server, &format!("{FRONT}/state")).as_deref(), Some("6"));
    assert_eq!(get(&c.transport_mut().server, &format!("{BACK}/state")).as_deref(), Some("6"));
    // No watch of ours is left: a backend write fires nothing.
    assert_eq!(c.queued_watch_events(), 0);
    c.transport_mut().server.external_write(&format!("{BACK}/state"), b"1");
    assert_eq!(c.poll_watch_event().unwrap(), None);
}

#[test]
fn waiting_skips_nothing_the_backend_has_not_reached() {
    // A backend that went straight to Connected satisfies a wait for
    // InitWait; one stuck in Initialising does not.
    let s = store("4", None);
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    assert_eq!(f.wait_backend(XenbusState::InitWait, T).unwrap(), XenbusState::Connected);
    let s = store("1", None);
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    assert_eq!(
        f.wait_backend(XenbusState::InitWait, Duration::from_millis(50)),
        Err(XenbusError::Timeout { waiting_for: XenbusState::InitWait, backend: Some(XenbusState::Initialising) })
    );
    assert_eq!(s.lock().queued_watch_events(), 0, "the wait's watch is gone");
}

#[test]
fn garbage_and_closing_backends_are_typed_errors() {
    let s = store("banana", None);
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    assert_eq!(f.wait_backend(XenbusState::InitWait, T), Err(XenbusError::BadState(b'b')));
    assert_eq!(f.backend_state(), Err(XenbusError::BadState(b'b')));
    let s = store("42", None);
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    assert_eq!(f.wait_backend(XenbusState::InitWait, T), Err(XenbusError::BadState(42)));
    // A backend closing while we wait for it to connect.
    let s = store("5", None);
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    assert_eq!(f.wait_backend(XenbusState::Connected, T), Err(XenbusError::BackendClosing(XenbusState::Closing)));
    assert_eq!(f.check_backend(), Err(XenbusError::BackendClosing(XenbusState::Closing)));
    // Its directory removed (device detached): Closed.
    s.lock().transport_mut().server.external_rm(BACK);
    assert_eq!(f.check_backend(), Err(XenbusError::BackendClosing(XenbusState::Closed)));
    // Closing against a vanished backend still ends Closed, at once.
    f.close(T).unwrap();
    assert_eq!(get(&s.lock().transport_mut().server, &format!("{FRONT}/state")).as_deref(), Some("6"));
    let s = store("x", None);
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    assert!(matches!(f.backend_flag("state"), Err(XenbusError::BadNode(_))));
}

#[test]
fn a_backend_that_never_closes_leaves_us_closed_after_the_timeout() {
    let s = store("4", None);
    let f = Frontend::open(&s, "vbd", 51712).unwrap();
    assert_eq!(
        f.close(Duration::from_millis(30)),
        Err(XenbusError::Timeout { waiting_for: XenbusState::Closing, backend: Some(XenbusState::Connected) })
    );
    assert_eq!(get(&s.lock().transport_mut().server, &format!("{FRONT}/state")).as_deref(), Some("6"));
}

#[test]
fn a_backend_path_that_is_not_the_toolstack_s_is_refused() {
    for (node, value) in [
        ("backend", "/local/domain/0/backend/vbd/8/51712"), // another guest's
        ("backend", "/local/domain/3/backend/vbd/7/51712"), // not backend-id's
        ("backend", "/local/domain/0/backend/vif/7/51712"), // another class
        ("backend-id", "zero"),
        ("backend-id", "70000"),
    ] {
        let s = store("1", None);
        s.lock().transport_mut().server.external_write(&format!("{FRONT}/{node}"), value.as_bytes());
        assert!(matches!(Frontend::open(&s, "vbd", 51712), Err(XenbusError::BadBackend(_))), "{node} = {value}");
    }
    let s = store("1", None);
    s.lock().transport_mut().server.external_rm(&format!("{FRONT}/backend"));
    assert!(matches!(Frontend::open(&s, "vbd", 51712), Err(XenbusError::BadBackend(_))));
    assert!(matches!(Frontend::open(&s, "vbd", 1), Err(XenbusError::BadBackend(_))), "no such device");
}
