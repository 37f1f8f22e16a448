//! Interdomain event ping-pong, second side: waits for the port ev_ping
//! publishes in its xenstore `data/port`, binds to it and answers each
//! event, 1000 times.
#![no_std]
#![no_main]

extern crate alloc;

use core::time::Duration;
use xenpv::event::EventOps;
use xenpv::xenstore::XsError;
use xenpv::{println, DomId, Error, EvtchnPort, Xen};

xenpv::main!(main);

const ROUNDS: u32 = 1000;

fn main(xen: Xen) -> Result<(), Error> {
    let xs = xen.store()?;
    let peer: u16 = xs
        .lock()
        .read_string("data/peers/ev_ping")?
        .parse()
        .map_err(|_| Error::App("bad peer id"))?;
    let peer = DomId(peer);
    let port_node = alloc::format!("{}/data/port", xs.lock().domain_path(peer)?);
    // ev_ping writes it once it has a port: poll for up to 30 s.
    let deadline = xen.now_ns() + 30_000_000_000;
    let remote = loop {
        match xs.lock().read_string(&port_node) {
            Ok(v) => break EvtchnPort(v.trim().parse().map_err(|_| Error::App("bad port"))?),
            Err(XsError::Errno(_)) if xen.now_ns() < deadline => {
                xen.sleep(Duration::from_millis(20))
            }
            Err(e) => return Err(e.into()),
        }
    };
    let port = xen.events().bind_interdomain(peer, remote)?;
    // Xen raises a freshly bound port once (for events lost while unbound).
    xen.events().take_fired(port);
    println!("ev_pong: bound local port {port} to {peer}:{remote}");
    xen.events().send(port)?;
    for _ in 0..ROUNDS {
        xen.events().wait(port, Some(Duration::from_secs(5)))?;
        xen.events().send(port)?;
    }
    println!("ev_pong: answered {ROUNDS} pings");
    xen.events().close(port)?;
    println!("ev_pong: all checks passed");
    Ok(())
}
