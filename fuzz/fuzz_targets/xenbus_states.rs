//! Fuzzes the xenbus front-end state machine (`xenbus::Frontend`) over
//! the fake xenstored (served through the real `StoreRing` on a page):
//! fuzz-chosen handshake, poll, read, switch and close calls, while at
//! every wait step the other side (the back end, the toolstack) writes
//! any state or value into the back end's `state` and keys, removes
//! them, removes our device, rewrites our state or makes a commit
//! conflict. Checks:
//! - every step ends (the clock is virtual) with a typed result that
//!   fits the states seen: `initialise` returns only InitWait,
//!   Initialised or Connected; `poll_backend` never reports a closing
//!   state as a live one; `BackendClosing` carries Closing or Closed;
//! - `XenbusState::parse` accepts exactly 1-3 decimal digits naming a
//!   state (and a trailing NUL);
//! - `connect` that succeeds leaves our keys and announced state in the
//!   store; a `close` that ends (or times out) leaves us Closed unless
//!   the toolstack removed the device;
//! - watches do not pile up: after each step at most the device's own
//!   backend watch is set, and none after `close`.
//!
//! One input in four plays the other side: our `xenbus::Backend` of a
//! device whose front end (and toolstack) writes any state or value,
//! removes nodes or the device. Checks: `open` takes exactly the
//! toolstack's `frontend`/`frontend-id`; each `FrontendEvent` fits the
//! front end's state and leaves ours where Linux's back ends go
//! (Connect: still InitWait; Closing; Closed; Gone: Closed; Reopened:
//! InitWait); what `init_wait`, `connect` and `close` publish is in the
//! store; at most the front end's `state` is watched.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use xenpv::xenbus::{Announce, Backend, Frontend, FrontendEvent, Keys, XenbusError, XenbusState};
use xenpv::xenstore::fake::FakeXenstored;
use xenpv::xenstore::ring::StoreRing;
use xenpv::xenstore::{Client, Transport, XsError};
use xenpv_fuzz::{Input, StaticPage};

static PAGE: StaticPage = StaticPage::new();
const ME: u16 = 7;
const KEYS: [&str; 8] = [
    "state",
    "feature-persistent",
    "sectors",
    "max-ring-page-order",
    "online",
    "mac",
    "ring-ref",
    "event-channel",
];
/// The front end's domain when we play the back end.
const FRONT: u16 = 9;

/// xenstored, and everyone else who writes the store, at each wait.
struct Bus<'a> {
    ring: StoreRing<'static>,
    server: FakeXenstored,
    clock: u64,
    input: Input<'a>,
    /// The other end's directory (the toolstack's layout): the back
    /// end's, or the front end's when we are the back end.
    backend: String,
    /// Our own end's directory.
    device: String,
    /// The others hold still (while a check reads the store).
    quiet: bool,
}

impl Bus<'_> {
    fn value(&mut self) -> Vec<u8> {
        match self.input.u8() % 8 {
            0..=3 => vec![b'0' + self.input.u8() % 9],
            4 => vec![b'0' + self.input.u8() % 10, b'0' + self.input.u8() % 10],
            5 => [b'0' + self.input.u8() % 9, 0].to_vec(),
            _ => self.input.chunk(1).to_vec(),
        }
    }

    /// The other domains' turn.
    fn peer(&mut self) {
        if self.quiet {
            return;
        }
        let op = self.input.u8();
        match op % 16 {
            // Mostly nothing: the back end is slow.
            0..=5 => {}
            6..=9 => {
                let v = self.value();
                let p = format!("{}/state", self.backend);
                self.server.external_write(&p, &v);
            }
            10 => {
                let key = KEYS[self.input.u8() as usize % KEYS.len()];
                let v = self.value();
                let p = format!("{}/{key}", self.backend);
                self.server.external_write(&p, &v);
            }
            11 => {
                let p = format!("{}/state", self.backend);
                self.server.external_rm(&p);
            }
            12 => {
                let b = self.backend.clone();
                self.server.external_rm(&b);
            }
            13 => {
                // The toolstack (or a confused back end) writes our state.
                let v = self.value();
                let p = format!("{}/state", self.device);
                self.server.external_write(&p, &v);
            }
            14 => self.server.fail_commits = (self.input.u8() % 4) as u32,
            _ => {
                if self.input.u8() == 0xff {
                    let d = self.device.clone();
                    self.server.external_rm(&d);
                }
            }
        }
    }
}

impl Transport for Bus<'_> {
    fn send(&mut self, bytes: &[u8]) -> Result<usize, XsError> {
        Ok(self.ring.write_request(bytes)?)
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, XsError> {
        Ok(self.ring.read_response(buf)?)
    }
    fn now_ns(&self) -> u64 {
        self.clock
    }
    fn wait(&mut self, _deadline_ns: u64) -> Result<(), XsError> {
        self.clock += 1_000_000;
        self.peer();
        self.server.step();
        Ok(())
    }
}

type Store<'a> = spin::Mutex<Client<Bus<'a>>>;

/// The next byte of the shared input, taken under the store's lock.
fn byte(store: &Store<'_>) -> u8 {
    store.lock().transport_mut().input.u8()
}

fn timeout(store: &Store<'_>) -> Duration {
    Duration::from_millis(1 + byte(store) as u64 % 40)
}

fn node(store: &Store<'_>, path: &str) -> Option<Vec<u8>> {
    store.lock().transport_mut().server.get(path)
}

fn state(store: &Store<'_>) -> XenbusState {
    XenbusState::from_number(byte(store) as u32 % 9).unwrap()
}

fn check_parse(v: &[u8]) {
    let digits = v.strip_suffix(b"\0").unwrap_or(v);
    let n = (!digits.is_empty() && digits.len() <= 3 && digits.iter().all(u8::is_ascii_digit))
        .then(|| std::str::from_utf8(digits).unwrap().parse::<u32>().unwrap());
    let want = n.and_then(XenbusState::from_number);
    match XenbusState::parse(v) {
        Ok(s) => assert_eq!(Some(s), want, "{v:?}"),
        Err(XenbusError::BadState(snip)) => {
            assert_eq!(want, None, "{v:?} refused");
            assert_eq!(snip.as_bytes(), &v[..v.len().min(64)]);
        }
        Err(e) => panic!("{e:?}"),
    }
}

fn check_error(e: &XenbusError) {
    if let XenbusError::BackendClosing(s) = e {
        assert!(
            matches!(s, XenbusState::Closing | XenbusState::Closed),
            "{e:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    check_parse(input.chunk(1));
    if input.u8() % 4 == 0 {
        return backend_side(input);
    }
    let vif = input.u8() & 1 == 0;
    let (class, devid) = if vif { ("vif", 0u32) } else { ("vbd", 51712) };
    let device = format!("/local/domain/{ME}/device/{class}/{devid}");
    let backend_dom = if input.u8() % 8 == 0 { 3 } else { 0 };
    let backend = format!("/local/domain/{backend_dom}/backend/{class}/{ME}/{devid}");
    let page = PAGE.take();
    let mut server = FakeXenstored::new(page, ME, "guest");
    // The toolstack's nodes, now and then wrong.
    let written_backend = match input.u8() % 8 {
        0 => format!("/local/domain/0/backend/{class}/8/{devid}"),
        1 => String::from_utf8_lossy(input.chunk(1)).into_owned(),
        _ => backend.clone(),
    };
    server.external_write(&format!("{device}/backend"), written_backend.as_bytes());
    let id = match input.u8() % 8 {
        0 => input.chunk(1).to_vec(),
        _ => backend_dom.to_string().into_bytes(),
    };
    server.external_write(&format!("{device}/backend-id"), &id);
    server.external_write(&format!("{device}/state"), b"1");
    server.external_write(&format!("{backend}/state"), &[b'0' + input.u8() % 9]);
    let bus = Bus {
        ring: StoreRing::new(page).unwrap(),
        server,
        clock: 0,
        input,
        backend: backend.clone(),
        device: device.clone(),
        quiet: true,
    };
    let store: Store<'_> = spin::Mutex::new(Client::new(bus));

    let ok_ids = id == backend_dom.to_string().as_bytes() && written_backend == backend;
    let fe = match Frontend::open(&store, class, devid) {
        Ok(fe) => {
            assert!(
                ok_ids,
                "opened a device whose backend is {written_backend:?} / {id:?}"
            );
            assert_eq!(fe.backend_path(), backend);
            assert_eq!(fe.path(), device);
            fe
        }
        Err(e) => {
            assert!(
                matches!(e, XenbusError::BadBackend(_) | XenbusError::BadNode(_)),
                "{e:?}"
            );
            assert!(!ok_ids, "refused a good device: {e:?}");
            return;
        }
    };
    assert_eq!(Frontend::devices(&store, class).unwrap(), vec![devid]);

    let mut closed = false;
    for _ in 0..64 {
        if store.lock().transport_mut().input.is_empty() {
            break;
        }
        let op = byte(&store);
        // Only the handshake's waits let the others act; a check that
        // compares a reply with the store needs the store to hold still.
        store.lock().transport_mut().quiet = !matches!(op % 12, 0 | 1 | 2 | 8 | 10);
        match op % 12 {
            0 => match fe.initialise(timeout(&store)) {
                Ok(s) => assert!(
                    matches!(
                        s,
                        XenbusState::InitWait | XenbusState::Initialised | XenbusState::Connected
                    ),
                    "{s:?}"
                ),
                Err(e) => check_error(&e),
            },
            1 | 2 => {
                let announce = if op & 0x80 == 0 {
                    Announce::Initialised
                } else {
                    Announce::Connected
                };
                let keys = [("ring-ref", "8"), ("event-channel", "5")];
                match fe.connect(announce, &keys, timeout(&store)) {
                    Ok(()) => {
                        for (k, v) in keys {
                            let got = node(&store, &format!("{device}/{k}"));
                            assert!(
                                got.as_deref() == Some(v.as_bytes())
                                    || node(&store, &format!("{device}/backend")).is_none(),
                                "{k} = {got:?}"
                            );
                        }
                        closed = false;
                    }
                    Err(XenbusError::DeviceGone) => {
                        assert!(node(&store, &format!("{device}/backend")).is_none());
                        assert!(node(&store, &format!("{device}/state")).is_none());
                    }
                    Err(e) => check_error(&e),
                }
            }
            3 => match fe.poll_backend() {
                Ok(Some(s)) => assert!(
                    !matches!(s, XenbusState::Closing | XenbusState::Closed),
                    "{s:?} reported live"
                ),
                Ok(None) => {}
                Err(e) => check_error(&e),
            },
            4 => match fe.check_backend() {
                Ok(()) => {}
                Err(e) => check_error(&e),
            },
            5 => {
                let v = node(&store, &format!("{backend}/state"));
                match (fe.backend_state(), v) {
                    (Ok(s), Some(v)) => assert_eq!(XenbusState::parse(&v), Ok(s)),
                    (Err(XenbusError::BackendGone), None) => {}
                    (Err(XenbusError::BadState(_)), Some(v)) => {
                        assert!(XenbusState::parse(&v).is_err())
                    }
                    (r, v) => panic!("{r:?} for {v:?}"),
                }
            }
            6 => {
                let key = KEYS[byte(&store) as usize % KEYS.len()];
                let raw = node(&store, &format!("{backend}/{key}"));
                match (op >> 4) % 3 {
                    0 => match fe.read_backend(key) {
                        Ok(v) => assert_eq!(v.map(String::into_bytes), raw),
                        Err(e) => assert!(
                            matches!(e, XenbusError::BadNode(_))
                                && std::str::from_utf8(raw.as_deref().unwrap()).is_err(),
                            "{e:?}"
                        ),
                    },
                    1 => match fe.backend_u64(key) {
                        Ok(n) => {
                            let s = String::from_utf8(raw.unwrap()).unwrap();
                            assert_eq!(s.trim().parse::<u64>(), Ok(n));
                        }
                        Err(XenbusError::Missing(_)) => assert!(raw.is_none()),
                        Err(e) => assert!(matches!(e, XenbusError::BadNode(_)), "{e:?}"),
                    },
                    _ => match fe.backend_flag(key) {
                        Ok(on) => {
                            let s = raw.map(|r| String::from_utf8(r).unwrap());
                            let s = s.as_deref().map(str::trim);
                            assert_eq!(on, s == Some("1"));
                            assert!(matches!(s, None | Some("0") | Some("1")));
                        }
                        Err(e) => assert!(matches!(e, XenbusError::BadNode(_)), "{e:?}"),
                    },
                }
            }
            7 => {
                let s = state(&store);
                match fe.switch(s) {
                    Ok(()) => {
                        let st = node(&store, &format!("{device}/state"));
                        assert!(
                            st.as_deref() == Some(&[s as u8 + b'0'][..])
                                || node(&store, &format!("{device}/backend")).is_none(),
                            "switched to {s:?}, state is {st:?}"
                        );
                    }
                    Err(e) => check_error(&e),
                }
            }
            8 => {
                let want = state(&store);
                match fe.wait_backend(want, timeout(&store)) {
                    Ok(s) => match want {
                        XenbusState::InitWait => assert!(matches!(
                            s,
                            XenbusState::InitWait
                                | XenbusState::Initialised
                                | XenbusState::Connected
                        )),
                        XenbusState::Closing => assert!(matches!(
                            s,
                            XenbusState::Closing | XenbusState::Closed | XenbusState::Unknown
                        )),
                        XenbusState::Closed => {
                            assert!(matches!(s, XenbusState::Closed | XenbusState::Unknown))
                        }
                        w => assert_eq!(s, w),
                    },
                    Err(XenbusError::Timeout { waiting_for, .. }) => assert_eq!(waiting_for, want),
                    Err(e) => check_error(&e),
                }
            }
            9 => {
                let _ = fe.watch_backend();
                closed = false;
            }
            10 => {
                let r = fe.close(timeout(&store));
                if let Ok(()) | Err(XenbusError::Timeout { .. }) = r {
                    let st = node(&store, &format!("{device}/state"));
                    assert!(
                        st.as_deref() == Some(b"6")
                            || node(&store, &format!("{device}/backend")).is_none(),
                        "closed, state {st:?} ({r:?})"
                    );
                    closed = true;
                }
                if let Err(e) = &r {
                    check_error(e);
                }
            }
            _ => {
                let v = node(&store, &format!("{backend}/state"));
                if let Some(v) = v {
                    check_parse(&v);
                }
            }
        }
        // No watch piles up: the device's own, at most, and our waits'
        // watches are gone once they return.
        let mut c = store.lock();
        let watches = c.transport_mut().server.watches();
        assert!(
            watches
                .iter()
                .all(|(p, _)| *p == format!("{backend}/state")),
            "{watches:?}"
        );
        assert!(watches.len() <= 1, "{watches:?}");
        if closed {
            assert!(watches.is_empty(), "a watch outlived close: {watches:?}");
        }
    }
    store.lock().transport_mut().quiet = true;
    drop(fe);
    assert!(store.lock().transport_mut().server.watches().is_empty());
});

/// The back end's half: our `Backend` against a fuzzed front end.
fn backend_side(mut input: Input<'_>) {
    let devid = u32::from(input.u8() % 3);
    let ours = format!("/local/domain/{ME}/backend/vif/{FRONT}/{devid}");
    let front = format!("/local/domain/{FRONT}/device/vif/{devid}");
    let page = PAGE.take();
    let mut server = FakeXenstored::new(page, ME, "driver");
    let written_front = match input.u8() % 8 {
        0 => format!("/local/domain/{FRONT}/device/vif/{}", devid + 1),
        1 => String::from_utf8_lossy(input.chunk(1)).into_owned(),
        _ => front.clone(),
    };
    server.external_write(&format!("{ours}/frontend"), written_front.as_bytes());
    let id = match input.u8() % 8 {
        0 => input.chunk(1).to_vec(),
        _ => FRONT.to_string().into_bytes(),
    };
    server.external_write(&format!("{ours}/frontend-id"), &id);
    server.external_write(&format!("{ours}/state"), b"1");
    server.external_write(&format!("{front}/state"), &[b'0' + input.u8() % 9]);
    let bus = Bus {
        ring: StoreRing::new(page).unwrap(),
        server,
        clock: 0,
        input,
        backend: front.clone(),
        device: ours.clone(),
        quiet: true,
    };
    let store: Store<'_> = spin::Mutex::new(Client::new(bus));
    let ok_ids = id == FRONT.to_string().as_bytes() && written_front == front;
    let be = match Backend::open(&store, "vif", xenpv::DomId(FRONT), devid) {
        Ok(be) => {
            assert!(
                ok_ids,
                "opened a back end whose front end is {written_front:?} / {id:?}"
            );
            assert_eq!((be.path(), be.frontend_path()), (&ours[..], &front[..]));
            be
        }
        Err(e) => {
            assert!(
                matches!(e, XenbusError::BadFrontend(_) | XenbusError::BadNode(_)),
                "{e:?}"
            );
            assert!(!ok_ids, "refused a good back end: {e:?}");
            return;
        }
    };
    let gone = |store: &Store<'_>| node(store, &format!("{ours}/frontend")).is_none();
    let mut features = Keys::new();
    features.set("feature-rx-copy", 1);
    let mut closed = false;
    for _ in 0..64 {
        if store.lock().transport_mut().input.is_empty() {
            break;
        }
        let op = byte(&store);
        // The others act only inside the waits (`next`, `close`).
        store.lock().transport_mut().quiet = !matches!(op % 8, 2 | 6);
        let front_state = node(&store, &format!("{front}/state"));
        match op % 8 {
            0 => match be.init_wait(&features) {
                Ok(()) => {
                    assert_eq!(be.state(), XenbusState::InitWait);
                    assert_eq!(
                        node(&store, &format!("{ours}/state")).as_deref(),
                        Some(&b"2"[..])
                    );
                    assert_eq!(
                        node(&store, &format!("{ours}/feature-rx-copy")).as_deref(),
                        Some(&b"1"[..])
                    );
                    closed = false;
                }
                Err(XenbusError::DeviceGone) => assert!(gone(&store)),
                Err(e) => check_error(&e),
            },
            1 | 2 => {
                let before = be.state();
                let r = if op % 8 == 1 {
                    be.poll()
                } else {
                    be.next(timeout(&store))
                };
                let now = node(&store, &format!("{front}/state"));
                // `poll` saw the state as it stands (nobody moved);
                // `next` saw the one it handled, the node may have moved on.
                let seen = if op % 8 == 1 { now.clone() } else { None };
                let parsed = seen.as_deref().map(XenbusState::parse);
                match r {
                    Ok(ev) => {
                        let want = match ev {
                            FrontendEvent::Connect => Some(XenbusState::InitWait),
                            FrontendEvent::Closing => Some(XenbusState::Closing),
                            FrontendEvent::Closed | FrontendEvent::Gone => {
                                Some(XenbusState::Closed)
                            }
                            FrontendEvent::Reopened => Some(XenbusState::InitWait),
                            FrontendEvent::Nothing => None,
                        };
                        match want {
                            // With our directory gone too, nothing was
                            // published: the state is the last one that was.
                            Some(_) if ev == FrontendEvent::Gone && gone(&store) => {
                                assert!(
                                    matches!(be.state(), XenbusState::Closed)
                                        || be.state() == before
                                )
                            }
                            Some(w) => assert_eq!(be.state(), w, "{ev:?} from {before:?}"),
                            None => assert_eq!(be.state(), before, "Nothing moved us"),
                        }
                        if ev == FrontendEvent::Connect {
                            assert_eq!(before, XenbusState::InitWait, "Connect outside InitWait");
                        }
                        if let Some(Ok(s)) = parsed {
                            let fits = match ev {
                                FrontendEvent::Connect => {
                                    matches!(s, XenbusState::Initialised | XenbusState::Connected)
                                }
                                FrontendEvent::Closing => s == XenbusState::Closing,
                                FrontendEvent::Closed => s == XenbusState::Closed,
                                FrontendEvent::Gone => s == XenbusState::Unknown,
                                FrontendEvent::Reopened => s == XenbusState::Initialising,
                                FrontendEvent::Nothing => true,
                            };
                            assert!(fits, "{ev:?} for a front end in {s:?}");
                        }
                        if op % 8 == 1
                            && want.is_some()
                            && !gone(&store)
                            && ev != FrontendEvent::Connect
                        {
                            let st = node(&store, &format!("{ours}/state"));
                            assert_eq!(st, Some(vec![be.state() as u8 + b'0']), "{ev:?}");
                        }
                    }
                    Err(XenbusError::Timeout { waiting_for, .. }) => {
                        assert_eq!(op % 8, 2, "poll does not wait");
                        assert_eq!(waiting_for, XenbusState::Unknown);
                    }
                    Err(XenbusError::DeviceGone) => assert!(gone(&store)),
                    Err(XenbusError::BadState(_)) => {
                        if let Some(p) = parsed {
                            assert!(p.is_err(), "BadState for a good state");
                        }
                    }
                    Err(e) => check_error(&e),
                }
            }
            3 => {
                let mut keys = Keys::new();
                keys.set("sectors", 8);
                match be.connect(&keys) {
                    Ok(()) => {
                        assert_eq!(be.state(), XenbusState::Connected);
                        assert_eq!(
                            node(&store, &format!("{ours}/state")).as_deref(),
                            Some(&b"4"[..])
                        );
                        assert_eq!(
                            node(&store, &format!("{ours}/sectors")).as_deref(),
                            Some(&b"8"[..])
                        );
                    }
                    Err(XenbusError::DeviceGone) => assert!(gone(&store)),
                    Err(e) => check_error(&e),
                }
            }
            4 => match (be.frontend_state(), &front_state) {
                (Ok(s), Some(v)) => assert_eq!(XenbusState::parse(v), Ok(s)),
                (Err(XenbusError::FrontendGone), None) => {}
                (Err(XenbusError::BadState(_)), Some(v)) => assert!(XenbusState::parse(v).is_err()),
                (r, v) => panic!("{r:?} for {v:?}"),
            },
            5 => {
                let key = KEYS[byte(&store) as usize % KEYS.len()];
                let raw = node(&store, &format!("{front}/{key}"));
                match be.frontend_u64(key) {
                    Ok(n) => {
                        let s = String::from_utf8(raw.unwrap()).unwrap();
                        assert_eq!(s.trim().parse::<u64>(), Ok(n));
                    }
                    Err(XenbusError::Missing(_)) => assert!(raw.is_none()),
                    Err(e) => assert!(matches!(e, XenbusError::BadNode(_)), "{e:?}"),
                }
            }
            6 => {
                let r = be.close(timeout(&store));
                if let Ok(()) | Err(XenbusError::Timeout { .. }) = r {
                    let st = node(&store, &format!("{ours}/state"));
                    assert!(
                        st.as_deref() == Some(b"6") || gone(&store),
                        "closed, state {st:?} ({r:?})"
                    );
                    closed = true;
                }
                if let Err(e) = &r {
                    check_error(e);
                }
            }
            _ => {
                if let Some(v) = front_state {
                    check_parse(&v);
                }
            }
        }
        let mut c = store.lock();
        let watches = c.transport_mut().server.watches();
        assert!(
            watches.iter().all(|(p, _)| *p == format!("{front}/state")),
            "{watches:?}"
        );
        assert!(watches.len() <= 1, "{watches:?}");
        if closed {
            assert!(watches.is_empty(), "a watch outlived close: {watches:?}");
        }
    }
    store.lock().transport_mut().quiet = true;
    drop(be);
    assert!(store.lock().transport_mut().server.watches().is_empty());
}
