//! Shared body of ev_ping and ev_pong: two guests meet through xenstore
//! (dom0's companion tells each its peer's domid), connect an
//! interdomain event channel and bounce 1000 events.

// Each example uses one side; the error payloads are read through Debug.
#![allow(dead_code)]

use alloc::format;
use core::time::Duration;
use xenpv::event::{self, EventError};
use xenpv::xenstore::{self, Access, Perm, XsError};
use xenpv::{println, time, DomId, EvtchnPort};

pub const ROUNDS: u32 = 1000;
const SECOND: u64 = 1_000_000_000;

#[derive(Debug)]
pub enum Error {
    Xs(XsError),
    Ev(EventError),
    Timeout(&'static str),
}

impl From<XsError> for Error {
    fn from(e: XsError) -> Self {
        Error::Xs(e)
    }
}
impl From<EventError> for Error {
    fn from(e: EventError) -> Self {
        Error::Ev(e)
    }
}

fn parse_domid(s: &str) -> Option<DomId> {
    s.trim().parse().ok().map(DomId)
}

/// Reads `path` until it exists (and parses), for up to 30 s.
fn read_until<T>(c: &mut xenstore::Client<xenstore::RingTransport>, path: &str, parse: impl Fn(&str) -> Option<T>) -> Result<T, Error> {
    let deadline = time::now_ns() + 30 * SECOND;
    loop {
        match c.read_string(path) {
            Ok(v) => {
                if let Some(t) = parse(&v) {
                    return Ok(t);
                }
            }
            Err(XsError::Errno(_)) => {}
            Err(e) => return Err(e.into()),
        }
        if time::now_ns() > deadline {
            return Err(Error::Timeout("waiting for a xenstore key"));
        }
        xenpv::sleep(Duration::from_millis(20));
    }
}

pub fn ping(me: &str) -> Result<(), Error> {
    let mut c = xenstore::open()?;
    let self_id = c.own_domid()?;
    let peer = read_until(&mut c, "data/peer", parse_domid)?;
    let port = event::alloc_unbound(peer)?;
    c.write("data/port", format!("{}", port.0).as_bytes())?;
    // /local/domain/<id>/data is ours alone by default: let the peer read.
    c.set_perms("data/port", &[Perm { domid: self_id, access: Access::None }, Perm { domid: peer, access: Access::Read }])?;
    println!("{me}: domid {self_id}, peer {peer}: offered port {port} in data/port");
    event::wait(port, Some(Duration::from_secs(30))).map_err(|_| Error::Timeout("peer never connected"))?;
    println!("{me}: peer connected; {ROUNDS} round trips");
    let t0 = time::now_ns();
    for _ in 0..ROUNDS {
        event::send(port)?;
        event::wait(port, Some(Duration::from_secs(5))).map_err(|_| Error::Timeout("pong lost"))?;
    }
    let dt = time::now_ns() - t0;
    println!(
        "{me}: {ROUNDS} interdomain round trips in {} us: {} round trips/s, {} us each",
        dt / 1000,
        ROUNDS as u64 * SECOND / dt.max(1),
        dt / 1000 / ROUNDS as u64
    );
    event::close(port)?;
    c.rm("data/port")?;
    println!("{me}: all checks passed");
    Ok(())
}

pub fn pong(me: &str) -> Result<(), Error> {
    let mut c = xenstore::open()?;
    let self_id = c.own_domid()?;
    let peer = read_until(&mut c, "data/peer", parse_domid)?;
    let peer_home = c.domain_path(peer)?;
    let remote = read_until(&mut c, &format!("{peer_home}/data/port"), |s| s.trim().parse().ok().map(EvtchnPort))?;
    let port = event::bind_interdomain(peer, remote)?;
    // Xen raises a freshly bound port once (for events lost while unbound).
    event::take_fired(port);
    println!("{me}: domid {self_id}: bound local port {port} to {peer}:{remote}");
    event::send(port)?;
    for i in 0..ROUNDS {
        if event::wait(port, Some(Duration::from_secs(5))).is_err() {
            println!("{me}: ping {i} never came");
            return Err(Error::Timeout("ping lost"));
        }
        event::send(port)?;
    }
    println!("{me}: answered {ROUNDS} pings");
    event::close(port)?;
    println!("{me}: all checks passed");
    Ok(())
}
