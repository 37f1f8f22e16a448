//! `Client::wait_for_node` against the fake xenstored: woken by the
//! watch, not by polling; other watches' events left alone; nothing left
//! behind.

use super::fake::FakeTransport;
use super::*;

fn client() -> Client<FakeTransport> {
    Client::new(FakeTransport::new(7, "guest-seven"))
}

#[test]
fn a_node_that_exists_is_read_at_once() {
    let mut c = client();
    c.write("data/ready", b"yes").unwrap();
    let requests = c.transport_mut().server.requests.len();
    assert_eq!(
        c.wait_for_node("data/ready", 1_000_000_000).unwrap(),
        b"yes"
    );
    assert_eq!(
        c.transport_mut().server.requests.len() - requests,
        3,
        "watch, read, unwatch"
    );
    assert_eq!(
        c.poll_watch_event().unwrap(),
        None,
        "the watch's initial event is not left queued"
    );
    assert_eq!(
        c.wait_for_string("data/ready", 1_000_000_000).unwrap(),
        "yes"
    );
    c.write("data/binary", &[0xff, 0xfe]).unwrap();
    assert_eq!(
        c.wait_for_string("data/binary", 1_000_000_000),
        Err(XsError::Malformed(Malformed::InvalidUtf8))
    );
}

#[test]
fn a_node_written_later_wakes_the_wait_and_other_events_stay_queued() {
    let mut c = client();
    c.watch("data/other", "app-token").unwrap();
    // Another domain writes the node after a few client waits.
    c.transport_mut().server.write_later = Some((3, String::from("data/ring-ref"), b"42".to_vec()));
    let waits = c.transport_mut().waits;
    assert_eq!(
        c.wait_for_node("data/ring-ref", 10_000_000_000).unwrap(),
        b"42"
    );
    // The fake's clock moves 1 ms a wait: a poll-free wait took a few.
    assert!(
        c.transport_mut().waits - waits < 20,
        "woken by the event, not after the timeout"
    );
    // Our token's events are gone; the application's are still there.
    let mut tokens = Vec::new();
    while let Some(e) = c.poll_watch_event().unwrap() {
        tokens.push(e.token);
    }
    assert!(
        !tokens.is_empty() && tokens.iter().all(|t| t == "app-token"),
        "{tokens:?}"
    );
    // The wait's watch was removed: a later write fires nothing for it.
    c.transport_mut()
        .server
        .external_write("data/ring-ref", b"43");
    assert_eq!(c.poll_watch_event().unwrap(), None);
}

#[test]
fn a_node_that_never_comes_times_out_and_cleans_up() {
    let mut c = client();
    assert_eq!(
        c.wait_for_node("data/never", 20_000_000),
        Err(XsError::Timeout)
    );
    assert_eq!(c.queued_watch_events(), 0);
    c.transport_mut()
        .server
        .external_write("data/never", b"late");
    assert_eq!(c.poll_watch_event().unwrap(), None, "the watch is gone");
    // A bad path is refused before any request.
    assert!(matches!(c.wait_for_node("", 1), Err(XsError::InvalidPath)));
}

#[test]
fn only_absent_or_unreadable_nodes_are_waited_for() {
    let mut c = client();
    // Unreadable for now (its writer is still setting permissions): wait.
    c.write("data/locked", b"v").unwrap();
    c.transport_mut().server.read_errors.push_back("EACCES");
    c.transport_mut().server.write_later = Some((2, String::from("data/locked"), b"open".to_vec()));
    assert_eq!(
        c.wait_for_node("data/locked", 10_000_000_000).unwrap(),
        b"open"
    );
    // Any other error ends the wait at once.
    c.transport_mut().server.read_errors.push_back("EINVAL");
    let waits = c.transport_mut().waits;
    assert_eq!(
        c.wait_for_node("data/locked", 10_000_000_000),
        Err(XsError::Errno(crate::errno::Errno::EINVAL))
    );
    assert!(c.transport_mut().waits - waits < 10, "not waited out");
    assert_eq!(c.poll_watch_event().unwrap(), None);
}
