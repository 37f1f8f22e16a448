//! Host tests of the vchan channel (`channel.rs`): server and client over
//! the fakes (grants, events, a shared store), each on its own thread as
//! two domains would be.
extern crate std;

use super::*;
use crate::event::ops::fake::{FakeEventWorld, FakeEvents};
use crate::grant::fake::{FakeWorld, FakeXen};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

const A: DomId = DomId(1);
const B: DomId = DomId(2);
const PATH: &str = "data/vchan/test";

/// One domain's view of a shared in-memory xenstore.
#[derive(Debug, Clone)]
struct FakeStore {
    nodes: Arc<Mutex<BTreeMap<String, (String, DomId)>>>,
    me: DomId,
}

impl FakeStore {
    fn nodes(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (String, DomId)>> {
        self.nodes.lock().unwrap()
    }
}

impl Rendezvous for FakeStore {
    fn own_domid(&self) -> core::result::Result<DomId, XsError> {
        Ok(self.me)
    }
    fn read_string(&self, path: &str) -> core::result::Result<String, XsError> {
        match self.nodes().get(path) {
            Some((v, reader)) if *reader == self.me => Ok(v.clone()),
            Some(_) => Err(XsError::Errno(crate::errno::Errno::EACCES)),
            None => Err(XsError::Errno(crate::errno::Errno::ENOENT)),
        }
    }
    fn publish(&self, nodes: &[(&str, &str)], reader: DomId) -> core::result::Result<(), XsError> {
        let mut n = self.nodes();
        for (p, v) in nodes {
            n.insert(String::from(*p), (String::from(*v), reader));
        }
        Ok(())
    }
    fn remove(&self, path: &str) -> core::result::Result<(), XsError> {
        self.nodes()
            .retain(|k, _| !(k == path || k.starts_with(&format!("{path}/"))));
        Ok(())
    }
    fn wait_for(&self, path: &str, timeout_ns: u64) -> core::result::Result<(), XsError> {
        let start = Instant::now();
        while !self.nodes().contains_key(path) {
            if start.elapsed().as_nanos() >= u128::from(timeout_ns) {
                return Err(XsError::Timeout);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
}

struct Dom {
    grants: Grants<FakeXen>,
    events: FakeEvents,
    store: FakeStore,
}

impl Dom {
    fn backends(&self) -> Backends<'_, FakeXen, FakeEvents, FakeStore> {
        Backends {
            grants: &self.grants,
            events: &self.events,
            store: &self.store,
        }
    }
}

fn world() -> (FakeWorld, FakeEventWorld, Dom, Dom) {
    let (gw, ew) = (FakeWorld::new(), FakeEventWorld::new());
    let nodes = Arc::new(Mutex::new(BTreeMap::new()));
    let dom = |d: DomId| Dom {
        grants: Grants::new(gw.add_domain(d, 1, 8), 1).unwrap(),
        events: ew.domain(d),
        store: FakeStore {
            nodes: nodes.clone(),
            me: d,
        },
    };
    let (a, b) = (dom(A), dom(B));
    (gw, ew, a, b)
}

type TestChan<'b> = Vchan<'b, FakeXen, FakeEvents, FakeStore>;

/// The client side: waits for the server's nodes, then connects.
fn connect(b: &Dom) -> TestChan<'_> {
    let start = Instant::now();
    loop {
        match Vchan::client(b.backends(), A, PATH) {
            Ok(c) => return c,
            Err(ChannelError::Xenstore(_)) if start.elapsed().as_secs() < 5 => {
                std::thread::yield_now()
            }
            Err(e) => panic!("client: {e:?}"),
        }
    }
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2654435761).rotate_left(seed as u32) as u8)
        .collect()
}

/// The real xenstore client is a `Rendezvous` (over the fake daemon):
/// one transaction writes the nodes, owned by us and readable by the
/// peer, the wait is a watch with its deadline, remove takes the tree.
#[test]
fn the_xenstore_client_is_a_rendezvous() {
    use crate::xenstore::{fake::FakeTransport, Access, Client, Perm, XsError};
    let store = spin::Mutex::new(Client::new(FakeTransport::new(7, "guest-seven")));
    assert_eq!(store.own_domid(), Ok(DomId(7)));
    assert_eq!(
        store.wait_for("data/v/event-channel", 5_000_000),
        Err(XsError::Timeout)
    );
    store
        .publish(
            &[("data/v/ring-ref", "12"), ("data/v/event-channel", "5")],
            DomId(3),
        )
        .unwrap();
    assert_eq!(store.read_string("data/v/ring-ref").as_deref(), Ok("12"));
    assert_eq!(
        store.read_string("data/v/event-channel").as_deref(),
        Ok("5")
    );
    let perms = [
        Perm {
            domid: DomId(7),
            access: Access::None,
        },
        Perm {
            domid: DomId(3),
            access: Access::Read,
        },
    ];
    assert_eq!(store.lock().get_perms("data/v/ring-ref").unwrap(), perms);
    assert_eq!(
        store.lock().get_perms("data/v/event-channel").unwrap(),
        perms
    );
    assert_eq!(store.wait_for("data/v/event-channel", 5_000_000), Ok(()));
    store.remove("data/v").unwrap();
    assert!(store.read_string("data/v/ring-ref").is_err());
    assert!(
        store.lock().read("data/v").is_err(),
        "the directory went too"
    );
}

#[test]
fn server_and_client_stream_both_ways_then_close_cleanly() {
    // Orders 10/11 (rings in the control page) and 12/16 (ring pages).
    for (left, right) in [(1024, 2048), (4096, 65536)] {
        let (gw, ew, a, b) = world();
        let up = pattern(300_000, 3);
        let down = pattern(200_000, 7);
        std::thread::scope(|s| {
            let srv = Vchan::server(a.backends(), B, PATH, left, right).unwrap();
            assert!(a.store.nodes().contains_key(&format!("{PATH}/ring-ref")));
            let client = s.spawn(|| {
                let mut c = connect(&b);
                assert_eq!(c.ring_sizes(), (right, left));
                assert_eq!(c.peer(), A);
                let mut got = std::vec![0u8; up.len()];
                c.read_exact(&mut got, Some(Duration::from_secs(20)))
                    .unwrap();
                assert!(got == up, "client->server stream corrupted");
                c.write_all(&down, Some(Duration::from_secs(20))).unwrap();
                // Stay until the server has read everything.
                c.wait_for(c.deadline(Some(Duration::from_secs(20))), &mut || {
                    c.ring.buffer_space().unwrap() == left
                })
                .unwrap();
            });
            let mut srv = srv;
            srv.wait_connected(Some(Duration::from_secs(5))).unwrap();
            assert_eq!(srv.peer(), B);
            assert_eq!(
                a.store.nodes()[&format!("{PATH}/event-channel")].0,
                format!("{}", srv.port().0)
            );
            assert_eq!(srv.header().1[..2], [1, 1], "both ends live");
            srv.write_all(&up, Some(Duration::from_secs(20))).unwrap();
            let mut got = std::vec![0u8; down.len()];
            srv.read_exact(&mut got, Some(Duration::from_secs(20)))
                .unwrap();
            assert!(got == down, "server->client stream corrupted");
            // The indices: all of `down` through the left ring, all of
            // `up` through the right one, each consumed.
            let (d, u) = (down.len() as u32, up.len() as u32);
            assert_eq!(srv.header().0, [d, d, u, u]);
            client.join().unwrap();
            // Every sleep was ended by an event: no lost wake-up (a
            // lost one would cost a whole PEER_CHECK slice and count).
            assert_eq!(
                (ew.timeouts(A), ew.timeouts(B)),
                (0, 0),
                "waits that ended at their deadline"
            );
            // The client is gone (dropped: live flag 0): reads say so.
            let mut buf = [0u8; 16];
            assert_eq!(
                srv.read_blocking(&mut buf, Some(Duration::from_secs(5))),
                Err(ChannelError::Vchan(VchanError::Closed))
            );
            drop(srv);
        });
        // The server's close removed its nodes, released every page and
        // closed its port; the client's drop unmapped and closed its.
        assert!(
            a.store.nodes().is_empty(),
            "nodes left: {:?}",
            a.store.nodes().keys().collect::<Vec<_>>()
        );
        let st = a.grants.stats();
        assert_eq!((st.shared_pages, st.pending, st.refs_used), (0, 0, 0));
        assert_eq!(gw.mapping_count(), 0);
        assert_eq!((ew.open_ports(A), ew.open_ports(B)), (0, 0));
        assert!(gw.violations().is_empty(), "{:?}", gw.violations());
    }
}

/// A clock read costs an `rdtsc`, which Xen emulates where the TSC is
/// not invariant (about 10 µs under QEMU): reads and writes that need
/// not wait read no clock, whatever their timeout; one that waits does.
#[test]
fn calls_that_need_not_wait_read_no_clock() {
    let (_gw, ew, a, b) = world();
    let mut srv = Vchan::server(a.backends(), B, PATH, 1024, 1024).unwrap();
    let mut cli = connect(&b);
    srv.wait_connected(Some(Duration::from_secs(5))).unwrap();
    let t = Some(Duration::from_secs(5));
    let (ra, rb) = (ew.clock_reads(A), ew.clock_reads(B));
    srv.write_all(b"hello", t).unwrap();
    let mut buf = [0u8; 5];
    cli.read_exact(&mut buf, t).unwrap();
    assert_eq!(&buf, b"hello");
    cli.write_all(b"x", t).unwrap();
    assert_eq!(srv.read_blocking(&mut buf, t), Ok(1));
    assert_eq!(buf[0], b'x');
    cli.write_all(b"y", t).unwrap();
    srv.wait(true, false, t).unwrap();
    assert_eq!(Vchan::wait_any(&[&srv], t), Ok(0));
    assert_eq!(srv.read_blocking(&mut buf, t), Ok(1));
    assert_eq!(
        (ew.clock_reads(A), ew.clock_reads(B)),
        (ra, rb),
        "clock reads without a wait"
    );
    // An idle read has to wait: it reads the clock, and times out.
    assert_eq!(
        srv.read_blocking(&mut buf, Some(Duration::from_millis(2))),
        Err(ChannelError::Timeout)
    );
    assert!(ew.clock_reads(A) > ra);
}

/// libxenvchan's all-or-nothing send/recv and its tri-state open check.
/// Rings of many pages on both sides (orders 18 and 17: 64 and 32
/// pages, more grants than a product of the two could hold): each
/// page is where the control page says, and no ring reaches past its
/// own pages.
#[test]
fn rings_of_many_pages_on_both_sides() {
    let (left, right) = (1 << 18, 1 << 17);
    let (gw, _ew, a, b) = world();
    let up = pattern(700_000, 5);
    let down = pattern(500_000, 9);
    std::thread::scope(|s| {
        let mut srv = Vchan::server(a.backends(), B, PATH, left, right).unwrap();
        let (nl, nr) = (left / 4096, right / 4096);
        let mem = srv.ring.memory();
        assert!(
            mem.ring_page(Which::Left, nl - 1).is_some()
                && mem.ring_page(Which::Left, nl).is_none()
        );
        assert!(
            mem.ring_page(Which::Right, nr - 1).is_some()
                && mem.ring_page(Which::Right, nr).is_none()
        );
        let client = s.spawn(|| {
            let mut c = connect(&b);
            assert_eq!(c.ring_sizes(), (right, left));
            c.write_all(&up, Some(Duration::from_secs(20))).unwrap();
            let mut got = std::vec![0u8; down.len()];
            c.read_exact(&mut got, Some(Duration::from_secs(20)))
                .unwrap();
            assert!(got == down, "server->client stream corrupted");
        });
        let mut got = std::vec![0u8; up.len()];
        srv.read_exact(&mut got, Some(Duration::from_secs(20)))
            .unwrap();
        assert!(got == up, "client->server stream corrupted");
        srv.write_all(&down, Some(Duration::from_secs(20))).unwrap();
        client.join().unwrap();
    });
    assert!(gw.violations().is_empty(), "{:?}", gw.violations());
}

#[test]
fn streaming_calls_move_a_quarter_ring_per_step() {
    let (_gw, ew, a, b) = world();
    let ring = 1 << 16;
    let step = ring / 4;
    let mut srv = Vchan::server(a.backends(), B, PATH, ring, ring).unwrap();
    let mut cli = connect(&b);
    srv.wait_connected(Some(Duration::from_secs(5))).unwrap();
    let (data, mut buf) = (pattern(ring, 3), std::vec![0u8; ring]);
    // A non-blocking write of a whole ring into an empty one: a step.
    cli.set_blocking(false);
    srv.set_blocking(false);
    assert_eq!(cli.write(&data), Ok(step));
    for i in 1..4 {
        assert_eq!(cli.write(&data[i * step..]), Ok(step));
    }
    assert_eq!(cli.write(&data), Ok(0), "full");
    // Reads with room for the whole ring: a step each, in order.
    assert_eq!(srv.read(&mut buf), Ok(step));
    assert_eq!(
        srv.read_blocking(&mut buf[step..], Some(Duration::from_secs(5))),
        Ok(step)
    );
    // send and recv stay all-or-nothing: half a ring in one call.
    assert_eq!(cli.send(&data[..2 * step]), Ok(2 * step));
    assert_eq!(srv.recv(&mut buf[2 * step..]), Ok(2 * step));
    assert!(buf == data, "the stream arrived whole and in order");
    // write_all publishes (and wakes the peer) after its first step:
    // with the event failing, the call ends there.
    let mut rest = std::vec![0u8; 2 * step];
    srv.read_exact(&mut rest, Some(Duration::from_secs(5)))
        .unwrap();
    assert!(rest[..] == data[..2 * step], "what send wrote");
    assert_eq!(
        srv.data_ready(),
        Ok(0),
        "drained; the server asks for an event"
    );
    ew.fail_sends(B);
    assert!(
        matches!(cli.write_all(&data, Some(Duration::from_secs(5))), Err(ChannelError::NotifyFailed { bytes, .. }) if bytes == step)
    );
}

#[test]
fn send_and_recv_move_all_or_nothing_and_state_follows_the_peer() {
    let (_gw, _ew, a, b) = world();
    let mut srv = Vchan::server(a.backends(), B, PATH, 1024, 1024).unwrap();
    assert_eq!(srv.state(), State::Waiting);
    let mut cli = connect(&b);
    assert_eq!(
        (srv.state(), cli.state()),
        (State::Connected, State::Connected)
    );
    let (_, room) = cli.ring_sizes();
    // Too big to ever fit: refused, nothing written.
    assert!(matches!(
        cli.send(&std::vec![1u8; room + 1]),
        Err(ChannelError::Grant(GrantError::InvalidArgument))
    ));
    assert_eq!(srv.data_ready().unwrap(), 0);
    // Fill all but 10 bytes; a send of 11 moves nothing, of 10 moves all.
    assert_eq!(cli.send(&std::vec![7u8; room - 10]).unwrap(), room - 10);
    assert_eq!(cli.send(&[9u8; 11]).unwrap(), 0);
    assert_eq!(srv.data_ready().unwrap(), room - 10);
    assert_eq!(cli.send(&[9u8; 10]).unwrap(), 10);
    // recv: all of the request or nothing.
    let mut big = std::vec![0u8; room];
    assert_eq!(srv.recv(&mut big[..room - 5]).unwrap(), room - 5);
    assert_eq!(srv.recv(&mut [0u8; 6]).unwrap(), 0, "only 5 left");
    let mut five = [0u8; 5];
    assert_eq!(srv.recv(&mut five).unwrap(), 5);
    assert_eq!(five, [9u8; 5]);
    assert!(srv
        .recv(&mut std::vec![0u8; srv.ring_sizes().0 + 1])
        .is_err());
    drop(cli);
    assert_eq!(srv.state(), State::Closed);
}

/// The blocking switch: recv/read wait for their data, send/write for
/// room, and a peer that closes ends the wait.
#[test]
fn blocking_channels_wait_for_their_data_and_room() {
    let (_gw, _ew, a, b) = world();
    std::thread::scope(|s| {
        let srv = Vchan::server(a.backends(), B, PATH, 1024, 1024).unwrap();
        // Before the client exists, so its two sleeps fall after it
        // however late this thread is scheduled.
        let start = Instant::now();
        let client = s.spawn(|| {
            let mut c = connect(&b);
            std::thread::sleep(Duration::from_millis(50));
            // In two parts, the second late: a blocking recv of 8
            // must not return after the first 4.
            assert_eq!(c.write(b"abcd").unwrap(), 4);
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(c.write(b"efgh").unwrap(), 4);
            c.set_blocking(true);
            let mut back = [0u8; 8];
            assert_eq!(c.recv(&mut back).unwrap(), 8);
            assert_eq!(&back, b"ABCDEFGH");
        });
        let mut srv = srv;
        srv.wait_connected(Some(Duration::from_secs(5))).unwrap();
        srv.set_blocking(true);
        assert!(srv.is_blocking());
        let mut buf = [0u8; 8];
        assert_eq!(srv.recv(&mut buf).unwrap(), 8);
        assert!(
            start.elapsed() >= Duration::from_millis(90),
            "waited for the second half"
        );
        assert_eq!(&buf, b"abcdefgh");
        buf.make_ascii_uppercase();
        assert_eq!(srv.send(&buf).unwrap(), 8);
        client.join().unwrap();
        // The client is gone: a blocking read ends with Closed.
        assert_eq!(
            srv.read(&mut buf),
            Err(ChannelError::Vchan(VchanError::Closed))
        );
        srv.set_blocking(false);
    });
}

/// Waiting on several channels: the one with data (or a closed peer)
/// is named; none ready is a timeout.
#[test]
fn idle_waits_nudge_only_a_peer_that_never_woke_us() {
    let (_gw, ew, a, b) = world();
    std::thread::scope(|s| {
        let mut srv = Vchan::server(a.backends(), B, PATH, 1024, 1024).unwrap();
        let client = s.spawn(|| {
            let mut c = connect(&b);
            // Idle for 300 ms: the server has not woken us yet, so
            // each 67-134 ms peer-check slice nudges it.
            let before = ew.sends(B, c.port());
            let mut buf = [0u8; 4];
            assert_eq!(
                c.read_blocking(&mut buf, Some(Duration::from_millis(300))),
                Err(ChannelError::Timeout)
            );
            assert!(
                ew.sends(B, c.port()) - before >= 2,
                "the unproven peer is nudged"
            );
            // Now the server's write wakes a sleep of ours...
            assert_eq!(
                c.read_blocking(&mut buf, Some(Duration::from_secs(5)))
                    .unwrap(),
                4
            );
            // ...and an idle wait sends nothing any more.
            let before = ew.sends(B, c.port());
            assert_eq!(
                c.read_blocking(&mut buf, Some(Duration::from_millis(300))),
                Err(ChannelError::Timeout)
            );
            assert_eq!(
                ew.sends(B, c.port()),
                before,
                "a peer that woke us is not nudged"
            );
        });
        srv.wait_connected(Some(Duration::from_secs(5))).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        srv.write_all(b"wake", Some(Duration::from_secs(5)))
            .unwrap();
        client.join().unwrap();
    });
}

#[test]
fn peer_check_deadlines_are_shared_within_a_period() {
    let grid = 1u64 << 26;
    assert_eq!(peer_check_deadline(0), 2 * grid);
    assert_eq!(peer_check_deadline(grid - 1), 2 * grid);
    assert_eq!(peer_check_deadline(grid), 3 * grid);
    let now = 5 * grid + 12345;
    let d = peer_check_deadline(now);
    assert!(d - now >= grid && d - now <= 2 * grid && d.is_multiple_of(grid));
    assert_eq!(peer_check_deadline(u64::MAX), u64::MAX);
}

#[test]
fn wait_any_names_the_ready_channel() {
    let (_gw, _ew, a, b) = world();
    const PATH2: &str = "data/vchan/second";
    let first = Vchan::server(a.backends(), B, PATH, 1024, 1024).unwrap();
    let second = Vchan::server(a.backends(), B, PATH2, 1024, 1024).unwrap();
    let _c1 = connect(&b);
    let mut c2 = Vchan::client(b.backends(), A, PATH2).unwrap();
    // Longer than a peer-check slice: live peers are not "gone".
    assert_eq!(
        Vchan::wait_any(&[&first, &second], Some(Duration::from_millis(300))),
        Err(ChannelError::Timeout)
    );
    c2.write(b"x").unwrap();
    assert_eq!(
        Vchan::wait_any(&[&first, &second], Some(Duration::from_secs(5))),
        Ok(1)
    );
    drop(_c1);
    assert_eq!(
        Vchan::wait_any(&[&first, &second], Some(Duration::from_secs(5))),
        Ok(0),
        "a closed peer counts"
    );
    assert!(Vchan::<FakeXen, FakeEvents, FakeStore>::wait_any(&[], None).is_err());
}

/// A client started before its server waits for the offer instead of
/// failing; with no server it times out.
#[test]
fn wait_any_or_wakes_for_the_callers_condition_too() {
    use core::sync::atomic::AtomicBool;
    let (_gw, _ew, a, b) = world();
    let srv: TestChan<'_> = Vchan::server(a.backends(), B, PATH, 1024, 1024).unwrap();
    let mut cli = connect(&b);
    let flag = AtomicBool::new(false);
    let cli_port = cli.port();
    let mut other = || flag.load(Ordering::Acquire);
    assert_eq!(
        Vchan::wait_any_or(&[&srv], &mut other, Some(Duration::from_millis(60))),
        Err(ChannelError::Timeout)
    );
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            flag.store(true, Ordering::Release);
            // Any event to the domain wakes it; here the client's port.
            b.events.send(cli_port).unwrap();
        });
        let t = Instant::now();
        let mut other = || flag.load(Ordering::Acquire);
        assert_eq!(
            Vchan::wait_any_or(&[&srv], &mut other, Some(Duration::from_secs(10))),
            Ok(Woken::Other)
        );
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "took {:?}",
            t.elapsed()
        );
    });
    // A ready channel comes first.
    cli.write(b"x").unwrap();
    let mut asked = false;
    assert_eq!(
        Vchan::wait_any_or(
            &[&srv],
            &mut || {
                asked = true;
                true
            },
            None
        ),
        Ok(Woken::Channel(0))
    );
    assert!(!asked, "other() is asked only when no channel is ready");
}

#[test]
fn a_client_can_wait_for_its_server() {
    let (_gw, _ew, a, b) = world();
    assert!(matches!(
        Vchan::client_wait(b.backends(), A, PATH, Duration::from_millis(20)),
        Err(ChannelError::Xenstore(XsError::Timeout))
    ));
    std::thread::scope(|s| {
        let client = s.spawn(|| {
            let mut c = Vchan::client_wait(b.backends(), A, PATH, Duration::from_secs(10)).unwrap();
            c.write_all(b"hi", Some(Duration::from_secs(5))).unwrap();
            let mut ack = [0u8; 1];
            c.read_exact(&mut ack, Some(Duration::from_secs(5)))
                .unwrap();
        });
        std::thread::sleep(Duration::from_millis(30));
        let srv = Vchan::server(a.backends(), B, PATH, 1024, 1024).unwrap();
        srv.wait_connected(Some(Duration::from_secs(5))).unwrap();
        let mut srv = srv;
        let mut buf = [0u8; 2];
        srv.read_exact(&mut buf, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(&buf, b"hi");
        srv.write_all(b"!", Some(Duration::from_secs(5))).unwrap();
        client.join().unwrap();
    });
}

/// server_persist: the server outlives its client, and a second client
/// of the same domain carries on the stream.
#[test]
fn a_persistent_server_takes_a_second_client() {
    let (_gw, _ew, a, b) = world();
    let mut srv = Vchan::server(a.backends(), B, PATH, 1024, 1024).unwrap();
    srv.set_persist(true).unwrap();
    let mut first = connect(&b);
    assert!(
        matches!(
            first.set_persist(true),
            Err(ChannelError::Grant(GrantError::InvalidArgument))
        ),
        "only servers persist"
    );
    first
        .write_all(b"one", Some(Duration::from_secs(5)))
        .unwrap();
    drop(first);
    let mut buf = [0u8; 3];
    srv.read_exact(&mut buf, Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(&buf, b"one");
    // Gone client: nothing to read, not Closed; waiting again.
    assert_eq!(srv.read(&mut buf).unwrap(), 0);
    assert_eq!(srv.write(b"x").unwrap(), 0);
    assert_eq!(srv.state(), State::Waiting);
    assert!(srv.is_open());
    assert!(
        srv.read_blocking(&mut buf, Some(Duration::from_millis(20)))
            .is_err(),
        "a timeout, not an end"
    );
    // The offer is still there: a second client connects.
    let mut second = connect(&b);
    assert_eq!(srv.state(), State::Connected);
    second
        .write_all(b"two", Some(Duration::from_secs(5)))
        .unwrap();
    srv.read_exact(&mut buf, Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(&buf, b"two");
    srv.write_all(b"ack", Some(Duration::from_secs(5))).unwrap();
    second
        .read_exact(&mut buf, Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(&buf, b"ack");
    drop(second);
    // Without persist the same server sees the close.
    srv.set_persist(false).unwrap();
    assert_eq!(
        srv.read(&mut buf),
        Err(ChannelError::Vchan(VchanError::Closed))
    );
    assert_eq!(srv.state(), State::Closed);
}

#[test]
fn qubes_paths() {
    assert_eq!(
        qubes_path(DomId(3), DomId(7), 512),
        "/local/domain/3/data/vchan/7/512"
    );
}

#[test]
fn a_client_that_never_connects_times_out() {
    let (_gw, _ew, a, _b) = world();
    let srv: TestChan<'_> = Vchan::server(a.backends(), B, PATH, 1024, 1024).unwrap();
    let t = Instant::now();
    assert_eq!(
        srv.wait_connected(Some(Duration::from_millis(250))),
        Err(ChannelError::Timeout)
    );
    assert!(t.elapsed() >= Duration::from_millis(250));
    // A client never bound the port: not "gone", just absent.
    let mut srv = srv;
    let mut buf = [0u8; 8];
    assert_eq!(
        srv.read_blocking(&mut buf, Some(Duration::from_millis(250))),
        Err(ChannelError::Timeout)
    );
}

#[test]
fn a_peer_that_dies_is_reported_not_waited_for() {
    let (gw, ew, a, b) = world();
    std::thread::scope(|s| {
        let mut srv = Vchan::server(a.backends(), B, PATH, 1024, 1024).unwrap();
        let c = s.spawn(|| {
            let c = connect(&b);
            // The client's domain is destroyed: no code of it runs
            // again, its live flag stays 1, Xen unbinds its ports.
            ew.kill(B);
            core::mem::forget(c);
        });
        c.join().unwrap();
        srv.wait_connected(Some(Duration::from_secs(5))).unwrap();
        let t = Instant::now();
        let mut buf = [0u8; 8];
        assert_eq!(
            srv.read_blocking(&mut buf, Some(Duration::from_secs(10))),
            Err(ChannelError::PeerGone)
        );
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "took {:?}",
            t.elapsed()
        );
        // Waiting on several channels finds it gone too.
        let t = Instant::now();
        assert_eq!(
            Vchan::wait_any(&[&srv], Some(Duration::from_secs(10))),
            Ok(0)
        );
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "took {:?}",
            t.elapsed()
        );
        // The dead peer still maps our pages (the fake keeps its
        // mappings): closing must leave them pending, never freed.
        drop(srv);
    });
    assert!(a.grants.stats().pending > 0);
    assert!(gw.violations().is_empty(), "{:?}", gw.violations());
}

#[test]
fn a_scribbling_peer_gives_a_typed_error() {
    let (_gw, _ew, a, b) = world();
    let mut srv: TestChan<'_> = Vchan::server(a.backends(), B, PATH, 1024, 1024).unwrap();
    let cli = connect(&b);
    // The client claims to have produced more than the ring holds.
    let ctrl = cli.ring.memory().ctrl();
    ctrl.store_u32(LEFT + RING_PROD, 5000, Ordering::Release)
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(matches!(
        srv.read(&mut buf),
        Err(ChannelError::Vchan(VchanError::PeerCorrupt {
            prod: 5000,
            ..
        }))
    ));
    // And a server announcing impossible orders is refused by a client.
    drop(cli);
    drop(srv);
    let (_gw, _ew, a, b) = world();
    let srv: TestChan<'_> = Vchan::server(a.backends(), B, PATH, 1024, 1024).unwrap();
    srv.ring
        .memory()
        .ctrl()
        .store_u16(LEFT_ORDER, 9, Ordering::Release)
        .unwrap();
    assert!(matches!(
        Vchan::client(b.backends(), A, PATH),
        Err(ChannelError::Vchan(VchanError::Layout(_)))
    ));
}

/// Every wait with a timeout ends at it on an idle channel, an empty
/// read returns at once, and a wait for room returns while there is.
#[test]
fn idle_waits_end_at_their_timeout() {
    let (_gw, _ew, a, b) = world();
    let mut srv: TestChan<'_> = Vchan::server(a.backends(), B, PATH, 1024, 1024).unwrap();
    let mut cli = connect(&b);
    let short = Some(Duration::from_millis(60));
    let t = Instant::now();
    assert_eq!(
        cli.read_blocking(&mut [], Some(Duration::from_secs(5))),
        Ok(0)
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "an empty read waited {:?}",
        t.elapsed()
    );
    assert_eq!(cli.wait(true, false, short), Err(ChannelError::Timeout));
    assert_eq!(cli.wait(false, true, short), Ok(()), "there is room");
    let mut buf = [0u8; 8];
    assert_eq!(
        cli.read_blocking(&mut buf, short),
        Err(ChannelError::Timeout)
    );
    assert_eq!(cli.read_exact(&mut buf, short), Err(ChannelError::Timeout));
    // Fill the server's write ring, then wait for room that never comes.
    assert!(
        !cli.is_blocking() && !srv.is_blocking(),
        "non-blocking by default"
    );
    let room = srv.buffer_space().unwrap();
    assert_eq!(room, srv.ring_sizes().1);
    // A message the size of the whole ring fits an empty one.
    assert_eq!(srv.send(&std::vec![7u8; room]), Ok(room));
    assert_eq!((srv.buffer_space(), cli.data_ready()), (Ok(0), Ok(room)));
    assert_eq!(srv.write_all(b"more", short), Err(ChannelError::Timeout));
    assert_eq!(srv.wait(false, true, short), Err(ChannelError::Timeout));
    assert_eq!(cli.wait(true, false, short), Ok(()), "there is data");
    let shown = format!("{srv:?}");
    assert!(
        shown.contains("ring_sizes: (1024, 2048)") && shown.contains(&format!("peer: {B:?}")),
        "{shown}"
    );
    // Unread bytes both ways: each index is its own.
    assert_eq!(cli.write(b"abc"), Ok(3));
    assert_eq!(cli.read(&mut [0u8; 5]), Ok(5));
    assert_eq!(srv.header().0, [0, 3, 5, room as u32]);
    // Full again: one receive takes the whole ring.
    assert_eq!(srv.send(&[1, 2, 3, 4, 5]), Ok(5));
    let mut all = std::vec![0u8; cli.ring_sizes().0];
    assert_eq!(cli.recv(&mut all), Ok(room));
    assert_eq!(all[room - 5..], [1, 2, 3, 4, 5]);
    // The server closes: the client sees it, whatever is left unread.
    assert_eq!((cli.state(), cli.is_open()), (State::Connected, true));
    drop(srv);
    assert_eq!((cli.state(), cli.is_open()), (State::Closed, false));
    // Not persistent: writing to a closed peer is an error, not 0.
    assert_eq!(
        cli.write(b"x"),
        Err(ChannelError::Vchan(VchanError::Closed))
    );
}

#[test]
fn a_failed_event_reports_the_bytes_moved() {
    let (_gw, ew, a, b) = world();
    let mut srv: TestChan<'_> = Vchan::server(a.backends(), B, PATH, 1024, 1024).unwrap();
    let mut cli = connect(&b);
    // The client drains an empty ring: it asks to be notified.
    let mut buf = [0u8; 16];
    assert_eq!(cli.read(&mut buf), Ok(0));
    ew.fail_sends(A);
    assert_eq!(
        srv.write(b"hello"),
        Err(ChannelError::NotifyFailed {
            bytes: 5,
            error: EventError::Hypercall(crate::errno::Errno::EINVAL)
        })
    );
    // The bytes did go: the client reads them.
    assert_eq!(cli.read(&mut buf), Ok(5));
    assert_eq!(&buf[..5], b"hello");
}

/// A failed event in the middle of `write_all` reports every byte the
/// call moved, the earlier steps' included.
#[test]
fn a_failed_event_inside_write_all_counts_the_whole_call() {
    let (_gw, ew, a, b) = world();
    let data = pattern(3000, 1);
    let ready = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        let mut srv: TestChan<'_> = Vchan::server(a.backends(), B, PATH, 1024, 2048).unwrap();
        let client = s.spawn(|| {
            let mut c = connect(&b);
            let until = |what: &str, done: &dyn Fn() -> bool| {
                let t = Instant::now();
                while !done() {
                    assert!(t.elapsed() < Duration::from_secs(10), "waited for {what}");
                    std::thread::yield_now();
                }
            };
            // Connect asked for an event; the server's "z" answers it
            // only once it is sure to see the request (after this
            // barrier), so none is left over for write_all below.
            ready.wait();
            // The byte that answers it, read without asking again.
            until("1 byte", &|| c.ring.peek_ready().unwrap() >= 1);
            assert_eq!(
                c.ring.read_with(&mut [0u8; 1], false).map(|p| p.bytes),
                Ok(1)
            );
            ready.wait();
            // The ring full, ask for an event, then make room. Not
            // before the server has asked us for a read event: it does
            // so only after the step that filled the ring decided
            // whether to notify, so our request cannot reach that step.
            until("2048 bytes", &|| c.ring.peek_ready().unwrap() >= 2048);
            until("the server's request", &|| {
                c.header().1[2] & NOTIFY_READ != 0
            });
            c.ring.data_ready().unwrap();
            let mut got = std::vec![0u8; 3000];
            assert_eq!(c.read(&mut got), Ok(2048));
            c.read_exact(&mut got[2048..], Some(Duration::from_secs(10)))
                .unwrap();
            assert!(got == data, "the stream arrived whole");
        });
        srv.wait_connected(Some(Duration::from_secs(5))).unwrap();
        ready.wait();
        assert_eq!(srv.write(b"z"), Ok(1));
        ready.wait();
        ew.fail_sends(A);
        // 2048 bytes fill the ring without an event; the last 952 go
        // after the client asked for one, which fails.
        assert_eq!(
            srv.write_all(&data, Some(Duration::from_secs(10))),
            Err(ChannelError::NotifyFailed {
                bytes: 3000,
                error: EventError::Hypercall(crate::errno::Errno::EINVAL)
            })
        );
        client.join().unwrap();
    });
}

#[test]
fn bad_handshake_nodes_are_typed_errors() {
    let (_gw, _ew, a, b) = world();
    a.store
        .publish(
            &[
                (&format!("{PATH}/ring-ref"), "zero"),
                (&format!("{PATH}/event-channel"), "3"),
            ],
            B,
        )
        .unwrap();
    let r: Result<TestChan<'_>> = Vchan::client(b.backends(), A, PATH);
    assert!(matches!(r, Err(ChannelError::BadNode { .. })));
    // Reference 0 is never a vchan's (it is the toolstack's).
    a.store
        .publish(
            &[
                (&format!("{PATH}/ring-ref"), "0"),
                (&format!("{PATH}/event-channel"), "3"),
            ],
            B,
        )
        .unwrap();
    let r: Result<TestChan<'_>> = Vchan::client(b.backends(), A, PATH);
    assert!(
        matches!(&r, Err(ChannelError::BadNode { path }) if path.ends_with("ring-ref")),
        "{r:?}"
    );
    a.store
        .publish(
            &[
                (&format!("{PATH}/ring-ref"), "8"),
                (&format!("{PATH}/event-channel"), "99"),
            ],
            B,
        )
        .unwrap();
    let r: Result<TestChan<'_>> = Vchan::client(b.backends(), A, PATH);
    assert!(matches!(r, Err(ChannelError::Event(_))), "{r:?}");
}

#[test]
fn a_server_asked_for_an_impossible_ring_size_refuses_it() {
    let (gw, ew, a, _b) = world();
    for (l, r) in [(usize::MAX, 1), (1, usize::MAX), (usize::MAX, usize::MAX)] {
        let res: Result<TestChan<'_>> = Vchan::server(a.backends(), B, PATH, l, r);
        assert_eq!(
            res.err(),
            Some(ChannelError::Vchan(VchanError::Layout(
                LayoutError::BadOrder(64)
            ))),
            "({l}, {r})"
        );
    }
    // Refused before anything was taken or published.
    assert_eq!(a.grants.stats().shared_pages, 0);
    assert_eq!(ew.open_ports(A), 0);
    assert!(a.store.nodes().is_empty());
    assert!(gw.violations().is_empty());
}
