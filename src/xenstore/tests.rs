//! The client against the fake xenstored: operations, reply matching
//! with interleaved watch events, transactions, hostile replies.

use super::fake::FakeTransport;
use super::wire::encode_header;
use super::*;
use crate::abi::xenstore::{msg, ring, xsd_sockmsg, HEADER_SIZE};
use core::sync::atomic::Ordering;

fn client() -> Client<FakeTransport> {
    Client::new(FakeTransport::new(7, "guest-seven"))
}

fn raw(ty: u32, req_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = encode_header(&xsd_sockmsg {
        type_: ty,
        req_id,
        tx_id: 0,
        len: payload.len() as u32,
    })
    .to_vec();
    v.extend_from_slice(payload);
    v
}

#[test]
fn identity_read_write_directory_rm() {
    let mut c = client();
    assert_eq!(c.own_domid().unwrap(), DomId(7));
    assert_eq!(c.own_domain_path().unwrap(), "/local/domain/7");
    assert_eq!(c.read_string("name").unwrap(), "guest-seven");
    c.write("data/greeting", b"hello").unwrap();
    assert_eq!(c.read("/local/domain/7/data/greeting").unwrap(), b"hello");
    c.mkdir("data/empty").unwrap();
    let mut d = c.directory("data").unwrap();
    d.sort();
    assert_eq!(d, ["empty", "greeting"]);
    assert_eq!(c.directory("data/empty").unwrap(), Vec::<String>::new());
    c.rm("data").unwrap();
    assert_eq!(c.read("data/greeting"), Err(XsError::Errno(Errno::ENOENT)));
    assert_eq!(c.rm("data"), Err(XsError::Errno(Errno::ENOENT)));
    // Req ids are distinct and increasing.
    let ids: Vec<u32> = c
        .transport_mut()
        .server
        .requests
        .iter()
        .map(|h| h.req_id)
        .collect();
    assert!(ids.windows(2).all(|w| w[1] > w[0]), "{ids:?}");
}

#[test]
fn large_values_cross_the_1k_rings_both_ways() {
    let mut c = client();
    let value: Vec<u8> = (0..4000u32).map(|i| b'a' + (i % 26) as u8).collect();
    c.write("data/big", &value).unwrap();
    assert_eq!(c.transport_mut().server.get("data/big").unwrap(), value);
    assert_eq!(c.read("data/big").unwrap(), value);
    let too_big = vec![b'x'; 4096];
    assert_eq!(
        c.write("data/big", &too_big),
        Err(XsError::RequestTooLong(4096 + 9))
    );
}

#[test]
fn permissions_round_trip() {
    let mut c = client();
    c.write("data/p", b"1").unwrap();
    assert_eq!(
        c.get_perms("data/p").unwrap(),
        [Perm {
            domid: DomId(7),
            access: Access::None
        }]
    );
    let perms = [
        Perm {
            domid: DomId(7),
            access: Access::None,
        },
        Perm {
            domid: DomId(0),
            access: Access::ReadWrite,
        },
        Perm {
            domid: DomId(3),
            access: Access::Read,
        },
    ];
    c.set_perms("data/p", &perms).unwrap();
    assert_eq!(c.get_perms("data/p").unwrap(), perms);
    assert_eq!(
        c.set_perms("data/none", &perms),
        Err(XsError::Errno(Errno::ENOENT))
    );
}

#[test]
fn watch_events_interleaved_with_replies_are_queued_not_lost() {
    let mut c = client();
    c.watch("data", "tok").unwrap();
    // Every later reply is preceded by an unrelated watch event.
    c.transport_mut().server.event_before_reply = Some(("/x/y".into(), "other".into()));
    c.write("data/k", b"v").unwrap();
    assert_eq!(c.read("data/k").unwrap(), b"v");
    c.transport_mut().server.event_before_reply = None;
    let mut got = Vec::new();
    while let Some(e) = c.poll_watch_event().unwrap() {
        got.push((e.path, e.token));
    }
    let s = |a: &str, b: &str| (String::from(a), String::from(b));
    assert_eq!(
        got,
        [
            s("data", "tok"),
            s("/x/y", "other"),
            s("/local/domain/7/data/k", "tok"),
            s("/x/y", "other")
        ],
        "the initial event, then events in arrival order"
    );
    // An external write (dom0's xenstore-write) while we wait.
    c.transport_mut().server.external_write("data/k", b"new");
    let e = c.wait_watch_event(1_000_000_000).unwrap();
    assert_eq!(
        (e.path.as_str(), e.token.as_str()),
        ("/local/domain/7/data/k", "tok")
    );
    c.unwatch("data", "tok").unwrap();
    c.transport_mut().server.external_write("data/k", b"newer");
    assert_eq!(c.wait_watch_event(10_000_000), Err(XsError::Timeout));
    assert_eq!(c.unwatch("data", "tok"), Err(XsError::Errno(Errno::ENOENT)));
}

#[test]
fn a_stale_reply_to_a_timed_out_request_is_skipped() {
    let mut c = client();
    c.set_timeout_ns(5_000_000);
    c.transport_mut().server.silent = true;
    assert_eq!(c.read("name"), Err(XsError::Timeout));
    c.transport_mut().server.silent = false;
    // The daemon wakes up and answers the old request (id 1) first.
    c.transport_mut().server.raw_replies.push_back(
        [
            raw(msg::XS_READ, 1, b"stale"),
            raw(msg::XS_READ, 2, b"fresh"),
        ]
        .concat(),
    );
    assert_eq!(c.read("name").unwrap(), b"fresh");
}

#[test]
fn a_silent_xenstored_is_a_timeout_not_a_hang() {
    let mut c = client();
    c.transport_mut().server.silent = true;
    c.set_timeout_ns(50_000_000);
    assert_eq!(c.read("name"), Err(XsError::Timeout));
    let waits = c.transport_mut().waits;
    assert!((49..=51).contains(&waits), "waited {waits} ms");
    // A request that cannot even be sent (the daemon never takes bytes
    // off the ring) times out too, and the half-sent stream is refused.
    let mut c = client();
    c.transport_mut().server.stalled = true;
    c.set_timeout_ns(10_000_000);
    assert_eq!(c.write("data/a", &[b'x'; 2000]), Err(XsError::Timeout));
    assert_eq!(
        c.read("name"),
        Err(XsError::Broken(Malformed::Desynchronized))
    );
}

#[test]
fn transactions_commit_and_retry_on_eagain() {
    let mut c = client();
    c.write("data/counter", b"0").unwrap();
    c.transport_mut().server.fail_commits = 3;
    let mut runs = 0;
    let r = c.transaction(|tx| {
        runs += 1;
        let v = tx.read("data/counter")?;
        let n: u32 = core::str::from_utf8(&v).unwrap().parse().unwrap();
        tx.write("data/counter", alloc::format!("{}", n + 1).as_bytes())?;
        Ok(n + 1)
    });
    assert_eq!(r, Ok(1));
    assert_eq!(runs, 4, "three EAGAIN commits, then success");
    assert_eq!(c.read("data/counter").unwrap(), b"1");
    // Writes inside a transaction are invisible outside until commit.
    let tx = c.transaction_start().unwrap();
    c.write_in(tx, "data/t", b"x").unwrap();
    assert_eq!(c.read("data/t"), Err(XsError::Errno(Errno::ENOENT)));
    assert_eq!(c.read_in(tx, "data/t").unwrap(), b"x");
    c.transaction_end(tx, false).unwrap();
    assert_eq!(c.read("data/t"), Err(XsError::Errno(Errno::ENOENT)));
    // A conflicting outside write makes the commit fail with EAGAIN.
    let tx = c.transaction_start().unwrap();
    c.write_in(tx, "data/t", b"x").unwrap();
    c.transport_mut().server.external_write("data/other", b"y");
    assert_eq!(
        c.transaction_end(tx, true),
        Err(XsError::Errno(Errno::EAGAIN))
    );
    // Endless conflicts give up after the attempt limit.
    c.transport_mut().server.fail_commits = u32::MAX;
    let before = c.transport_mut().server.commits;
    assert_eq!(
        c.transaction(|tx| tx.write("data/z", b"1")),
        Err(XsError::Errno(Errno::EAGAIN))
    );
    assert_eq!(
        c.transport_mut().server.commits - before,
        MAX_TRANSACTION_ATTEMPTS
    );
    // A non-EAGAIN error in the body aborts without retrying.
    c.transport_mut().server.fail_commits = 0;
    let mut runs = 0;
    let r = c.transaction(|tx| {
        runs += 1;
        tx.read("data/missing")
    });
    assert_eq!((r, runs), (Err(XsError::Errno(Errno::ENOENT)), 1));
}

#[test]
fn hostile_replies_are_typed_errors() {
    let cases: Vec<(Vec<u8>, XsError)> = vec![
        (
            raw(msg::XS_READ, 1, &[])
                .into_iter()
                .take(12)
                .chain(5000u32.to_le_bytes())
                .collect(),
            XsError::Broken(Malformed::PayloadTooLong(5000)),
        ),
        (
            raw(77, 1, b"x"),
            XsError::Malformed(Malformed::UnknownType(77)),
        ),
        (
            raw(msg::XS_ERROR, 1, b"ENOENT"),
            XsError::Malformed(Malformed::MissingNul),
        ),
        (
            raw(msg::XS_ERROR, 1, b"EWHAT\0"),
            XsError::Malformed(Malformed::UnknownErrorName),
        ),
        (
            raw(msg::XS_ERROR, 1, b"EACCES\0"),
            XsError::Errno(Errno::EACCES),
        ),
        (
            raw(msg::XS_ERROR, 1, b"E2BIG\0"),
            XsError::Errno(Errno::E2BIG),
        ),
        (
            raw(msg::XS_ERROR, 1, b"EEXIST\0"),
            XsError::Errno(Errno::EEXIST),
        ),
        (
            raw(msg::XS_ERROR, 1, b"EINVAL\0"),
            XsError::Errno(Errno::EINVAL),
        ),
        (
            raw(msg::XS_WRITE, 1, b"OK\0"),
            XsError::Malformed(Malformed::UnexpectedType {
                expected: msg::XS_READ,
                got: msg::XS_WRITE,
            }),
        ),
        (
            raw(msg::XS_WATCH_EVENT, 0, b"/a\0"),
            XsError::Malformed(Malformed::MissingNul),
        ),
        (
            raw(msg::XS_READ, 1, b"\xff\xfe"),
            XsError::Malformed(Malformed::InvalidUtf8),
        ),
    ];
    for (reply, want) in cases {
        let mut c = client();
        c.set_timeout_ns(5_000_000);
        c.transport_mut().server.raw_replies.push_back(reply);
        assert_eq!(c.read_string("name"), Err(want));
    }
    // After a reply too long to frame, the connection refuses further use.
    let mut c = client();
    c.transport_mut().server.raw_replies.push_back(
        raw(msg::XS_READ, 1, &[])
            .into_iter()
            .take(12)
            .chain(4097u32.to_le_bytes())
            .collect(),
    );
    assert!(matches!(c.read("name"), Err(XsError::Broken(_))));
    assert_eq!(
        c.read("name"),
        Err(XsError::Broken(Malformed::PayloadTooLong(4097)))
    );
    // Bad strings in typed replies.
    for (ty, payload, call) in [
        (msg::XS_DIRECTORY, &b"a\0b"[..], 0),
        (msg::XS_DIRECTORY, &b"a\0\xff\0"[..], 0),
        (msg::XS_TRANSACTION_START, &b"12x\0"[..], 1),
        (msg::XS_GET_PERMS, &b"q1\0"[..], 2),
        (msg::XS_GET_DOMAIN_PATH, &b"/local/domain/7"[..], 3),
    ] {
        let mut c = client();
        c.transport_mut()
            .server
            .raw_replies
            .push_back(raw(ty, 1, payload));
        let r = match call {
            0 => c.directory("x").map(drop),
            1 => c.transaction_start().map(drop),
            2 => c.get_perms("x").map(drop),
            _ => c.domain_path(DomId(7)).map(drop),
        };
        assert!(matches!(r, Err(XsError::Malformed(_))), "{ty}: {r:?}");
    }
}

#[test]
fn a_corrupt_ring_index_is_an_error_not_an_overread() {
    let mut c = client();
    c.read("name").unwrap();
    let page = c.transport_mut().page();
    let cons = page.load_u32(ring::RSP_CONS, Ordering::Relaxed).unwrap();
    page.store_u32(ring::RSP_PROD, cons.wrapping_add(5000), Ordering::Relaxed)
        .unwrap();
    c.transport_mut().server.silent = true;
    let r = c.read("name");
    assert!(
        matches!(r, Err(XsError::Broken(Malformed::CorruptIndex { .. }))),
        "{r:?}"
    );
    assert!(matches!(c.read("name"), Err(XsError::Broken(_))));
}

#[test]
fn bad_paths_never_reach_the_wire() {
    let mut c = client();
    assert_eq!(c.read("a\0b"), Err(XsError::InvalidPath));
    assert_eq!(c.write("", b"x"), Err(XsError::InvalidPath));
    assert_eq!(c.watch("data", "t\0"), Err(XsError::InvalidPath));
    assert!(c.transport_mut().server.requests.is_empty());
}

#[test]
fn a_truncated_reply_desynchronises_the_client_for_good() {
    // Seen against a buggy daemon: a reply cut short, after which every
    // later reply was read as the remainder of the cut one (nine
    // timeouts, then a garbage type). The client must give up instead.
    let mut c = client();
    c.set_timeout_ns(5_000_000);
    c.transport_mut().server.truncate_next_reply = Some(HEADER_SIZE + 3);
    assert_eq!(c.read("name"), Err(XsError::Timeout));
    let sent = c.transport_mut().server.requests.len();
    for _ in 0..12 {
        assert_eq!(
            c.read("name"),
            Err(XsError::Broken(Malformed::Desynchronized))
        );
    }
    assert_eq!(
        c.poll_watch_event(),
        Err(XsError::Broken(Malformed::Desynchronized))
    );
    assert_eq!(
        c.wait_watch_event(1_000_000),
        Err(XsError::Broken(Malformed::Desynchronized))
    );
    assert_eq!(
        c.transport_mut().server.requests.len(),
        sent,
        "nothing more goes into a lost stream"
    );

    // A watch event cut short while we only wait for events: a short wait
    // may end between two chunks of a healthy message, so that alone is a
    // timeout; once the message has stalled for a whole request timeout,
    // the stream is lost.
    let mut c = client();
    c.set_timeout_ns(5_000_000);
    c.transport_mut()
        .server
        .send_raw(&raw(msg::XS_WATCH_EVENT, 0, b"/a\0tok\0")[..HEADER_SIZE + 2]);
    assert_eq!(c.wait_watch_event(1_000_000), Err(XsError::Timeout));
    assert_eq!(c.wait_watch_event(10_000_000), Err(XsError::Timeout));
    assert_eq!(
        c.read("name"),
        Err(XsError::Broken(Malformed::Desynchronized))
    );
}

#[test]
fn a_reply_arriving_in_slow_chunks_within_the_deadline_still_completes() {
    // The other side of the rule above: a 4000-byte value crosses the
    // 1 KiB ring in four chunks, one per wait; that is not a truncation.
    let mut c = client();
    c.set_timeout_ns(50_000_000);
    let value = vec![b'v'; 4000];
    c.write("data/big", &value).unwrap();
    assert_eq!(c.read("data/big").unwrap(), value);
    assert_eq!(c.read_string("name").unwrap(), "guest-seven");
}

#[test]
fn a_flood_of_other_replies_cannot_hold_a_request_past_its_deadline() {
    let mut c = client();
    c.set_timeout_ns(10_000_000);
    let t = c.transport_mut();
    // Reading the ring costs 1 us; the daemon never answers our request
    // but keeps the ring full of replies to some other req_id.
    t.ns_per_recv = 1_000;
    t.server.silent = true;
    t.server.flood = Some(raw(msg::XS_READ, 0xdead, b"x\0"));
    t.server.flood_left = 200_000;
    assert_eq!(c.read("name"), Err(XsError::Timeout));
    let t = c.transport_mut();
    // 10 ms at three ring reads per message is ~3,300 messages.
    assert!(
        t.server.flooded < 10_000,
        "read {} flood replies",
        t.server.flooded
    );
    assert!(t.now_ns() < 11_000_000, "returned at {} ns", t.now_ns());
    // A poll never blocks, even with the ring kept full.
    let before = t.server.flooded;
    assert_eq!(c.poll_watch_event(), Ok(None));
    assert!(c.transport_mut().server.flooded - before < 1_000);
}

#[test]
fn a_flooded_watch_queue_stays_bounded_and_reports_its_drops() {
    let mut c = client();
    c.watch("data", "tok").unwrap();
    c.watch("misc", "quiet").unwrap();
    // Another domain allowed to write the watched node writes it over
    // and over while we are busy (XSA-349): thousands of events.
    for i in 0..5_000u32 {
        c.transport_mut()
            .server
            .external_write("data/k", alloc::format!("{i}").as_bytes());
    }
    c.transport_mut().server.external_write("misc/m", b"1");
    // Our next request takes them all in on its way to its reply.
    assert_eq!(c.read_string("name").unwrap(), "guest-seven");
    // "tok": its initial event and the first 255 writes; "quiet": its
    // initial event and the one write, not crowded out by "tok".
    assert_eq!(c.queued_watch_events(), DEFAULT_WATCH_QUEUE_LIMIT + 2);
    assert_eq!(
        c.take_dropped_watch_events("tok"),
        5_001 - DEFAULT_WATCH_QUEUE_LIMIT as u64
    );
    assert_eq!(
        c.take_dropped_watch_events("tok"),
        0,
        "the count resets when taken"
    );
    assert_eq!(c.take_dropped_watch_events("quiet"), 0);
    let mut toks = Vec::new();
    while let Some(e) = c.poll_watch_event().unwrap() {
        toks.push(e.token);
    }
    assert_eq!(
        toks.iter().filter(|t| *t == "tok").count(),
        DEFAULT_WATCH_QUEUE_LIMIT
    );
    assert_eq!(toks.iter().filter(|t| *t == "quiet").count(), 2);
    // Drained, the queue takes events again.
    c.transport_mut().server.external_write("data/k", b"again");
    assert_eq!(c.wait_watch_event(10_000_000).unwrap().token, "tok");

    // The limit is configurable, and events of tokens we never watched
    // (made up by a hostile daemon) share one bounded queue.
    c.set_watch_queue_limit(4);
    let t = c.transport_mut();
    t.server.flood = Some(
        [
            raw(msg::XS_WATCH_EVENT, 0, b"/x\0made-up\0"),
            raw(msg::XS_WATCH_EVENT, 0, b"/y\0made-up-too\0"),
        ]
        .concat(),
    );
    t.server.flood_left = 500;
    assert_eq!(c.read("name").unwrap(), b"guest-seven");
    assert_eq!(c.transport_mut().server.flooded, 500);
    assert_eq!(c.queued_watch_events(), 4);
    assert_eq!(c.take_dropped_watch_events("made-up"), 1_000 - 4);
    assert_eq!(c.take_dropped_watch_events("tok"), 0);
}

#[test]
fn debug_output_shows_the_client_and_transaction_state() {
    let mut c = client();
    assert!(alloc::format!("{c:?}").contains("next_req_id: 1"), "{c:?}");
    c.read("name").unwrap();
    let s = alloc::format!("{c:?}");
    assert!(
        s.starts_with("Client") && s.contains("next_req_id: 2") && s.contains("broken: None"),
        "{s}"
    );
    let shown = c.transaction(|tx| Ok(alloc::format!("{tx:?}"))).unwrap();
    assert_eq!(shown, "Transaction { id: TxId(1) }");
}

#[test]
fn every_operation_of_a_transaction_goes_out_in_it() {
    let mut c = client();
    c.write("data/old", b"1").unwrap();
    let perms = [
        Perm {
            domid: DomId(7),
            access: Access::None,
        },
        Perm {
            domid: DomId(0),
            access: Access::Read,
        },
    ];
    let mut id = TxId::NONE;
    let listing = c
        .transaction(|tx| {
            id = tx.id();
            tx.mkdir("data/new")?;
            tx.rm("data/old")?;
            tx.set_perms("data", &perms)?;
            tx.directory("data")
        })
        .unwrap();
    assert_eq!(listing, ["new"], "the transaction's own view");
    assert_ne!(id, TxId::NONE);
    assert_eq!(c.directory("data").unwrap(), ["new"], "committed");
    assert_eq!(c.get_perms("data").unwrap(), perms);
    let in_tx: Vec<u32> = c
        .transport_mut()
        .server
        .requests
        .iter()
        .filter(|h| h.tx_id == id.0)
        .map(|h| h.type_)
        .collect();
    assert_eq!(
        in_tx,
        [
            msg::XS_MKDIR,
            msg::XS_RM,
            msg::XS_SET_PERMS,
            msg::XS_DIRECTORY,
            msg::XS_TRANSACTION_END
        ]
    );
}

/// Sends an unasked watch event for `token` (as a hostile daemon may).
fn unasked_event(c: &mut Client<FakeTransport>, token: &str) {
    let payload = alloc::format!("/x\0{token}\0");
    c.transport_mut()
        .server
        .send_raw(&raw(msg::XS_WATCH_EVENT, 0, payload.as_bytes()));
}

/// Takes in everything that waits (events queue on the way to a reply).
fn take_in(c: &mut Client<FakeTransport>) {
    assert_eq!(c.read_string("name").unwrap(), "guest-seven");
}

fn drain(c: &mut Client<FakeTransport>) -> usize {
    let mut n = 0;
    while c.poll_watch_event().unwrap().is_some() {
        n += 1;
    }
    n
}

#[test]
fn a_token_keeps_its_own_queue_while_watched_or_while_its_events_wait() {
    let mut c = client();
    // One token, two watches: the queue lives until both end, even when
    // it is empty in between.
    c.watch("data", "t").unwrap();
    c.watch("misc", "t").unwrap();
    assert_eq!(drain(&mut c), 2, "the two initial events");
    c.unwatch("data", "t").unwrap();
    c.set_watch_queue_limit(1);
    unasked_event(&mut c, "other");
    unasked_event(&mut c, "other");
    c.transport_mut().server.external_write("misc/m", b"1");
    c.transport_mut().server.external_write("misc/m", b"2");
    take_in(&mut c);
    assert_eq!(c.queued_watch_events(), 2);
    assert_eq!(c.take_dropped_watch_events("t"), 1, "t's own queue");
    assert_eq!(
        c.take_dropped_watch_events("other"),
        1,
        "the shared queue of unwatched tokens"
    );
    assert_eq!(drain(&mut c), 2);

    // Its last watch gone (and nothing queued), the token is a stray one.
    c.unwatch("misc", "t").unwrap();
    unasked_event(&mut c, "other");
    unasked_event(&mut c, "t");
    take_in(&mut c);
    assert_eq!(c.queued_watch_events(), 1);
    assert_eq!(
        c.take_dropped_watch_events("other"),
        1,
        "t's event counted in the shared queue"
    );
    assert_eq!(drain(&mut c), 1);

    // Unwatched while its events wait: the queue stays until the last of
    // them is taken, so later events still count against it.
    c.set_watch_queue_limit(2);
    c.watch("data", "u").unwrap();
    c.transport_mut().server.external_write("data/k", b"1");
    take_in(&mut c);
    c.unwatch("data", "u").unwrap();
    assert_eq!(c.poll_watch_event().unwrap().unwrap().token, "u");
    unasked_event(&mut c, "u");
    unasked_event(&mut c, "u");
    take_in(&mut c);
    assert_eq!(
        c.take_dropped_watch_events("u"),
        1,
        "one left queued, one more fits"
    );
    assert_eq!(drain(&mut c), 2);
    // Now drained, "u" shares the stray queue.
    c.set_watch_queue_limit(1);
    unasked_event(&mut c, "other");
    unasked_event(&mut c, "u");
    take_in(&mut c);
    assert_eq!(c.take_dropped_watch_events("other"), 1);
    assert_eq!(drain(&mut c), 1);

    // Each token watched gets a queue of its own, not another's.
    c.watch("data", "a").unwrap();
    c.watch("misc", "b").unwrap();
    unasked_event(&mut c, "other");
    take_in(&mut c);
    assert_eq!(
        c.queued_watch_events(),
        3,
        "a's, b's and the stray event, one per queue"
    );
    assert_eq!(c.take_dropped_watch_events("other"), 0);
}

#[test]
fn a_message_stalls_from_its_first_byte_not_its_latest_chunk() {
    let mut c = client();
    c.set_timeout_ns(5_000_000);
    let event = raw(msg::XS_WATCH_EVENT, 0, b"/a\0tok\0");
    // The header and two bytes at 0 ms, two more bytes at 3 ms, then no more.
    c.transport_mut().server.send_raw(&event[..HEADER_SIZE + 2]);
    assert_eq!(c.wait_watch_event(3_000_000), Err(XsError::Timeout));
    c.transport_mut()
        .server
        .send_raw(&event[HEADER_SIZE + 2..HEADER_SIZE + 4]);
    assert_eq!(c.wait_watch_event(3_000_000), Err(XsError::Timeout));
    // At 6 ms the message began 6 ms ago, more than the 5 ms timeout.
    assert_eq!(
        c.read("name"),
        Err(XsError::Broken(Malformed::Desynchronized))
    );
}

#[test]
fn a_request_that_could_not_start_leaves_the_stream_usable() {
    let mut c = client();
    c.set_timeout_ns(5_000_000);
    c.transport_mut().server.stalled = true;
    // Exactly fills the 1 KiB request ring: 16 + "data/a\0" + 1001.
    let value = vec![b'x'; 1001];
    assert_eq!(c.write("data/a", &value), Err(XsError::Timeout));
    // Not a byte of this one fits: it times out, but nothing half-sent
    // is in the ring.
    assert_eq!(c.read("name"), Err(XsError::Timeout));
    c.transport_mut().server.stalled = false;
    assert_eq!(c.read("name").unwrap(), b"guest-seven");
    assert_eq!(c.read("data/a").unwrap(), value);
}
