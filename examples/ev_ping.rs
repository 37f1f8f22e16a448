//! Interdomain event ping-pong, first side (`cargo xtask run ev_ping
//! ev_pong`): offers an unbound event-channel port to ev_pong (whose domain
//! id the lab or the runner left in `data/peers/ev_pong`), publishes it in
//! xenstore where the peer may read it, and times 1000 round trips.
#![no_std]
#![no_main]

extern crate alloc;

use core::time::Duration;
use xenpv::event::EventOps;
use xenpv::xenstore::{Access, Perm};
use xenpv::{println, DomId, Error, Xen};

xenpv::main!(main);

const ROUNDS: u64 = 1000;

fn main(xen: Xen) -> Result<(), Error> {
    let me = xen.domid()?;
    let xs = xen.store()?;
    let peer: u16 = xs
        .lock()
        .read_string("data/peers/ev_pong")?
        .parse()
        .map_err(|_| Error::App("bad peer id"))?;
    let peer = DomId(peer);
    let port = xen.events().alloc_unbound(peer)?;
    let mut store = xs.lock();
    store.write("data/port", alloc::format!("{}", port.0).as_bytes())?;
    // Our data/ is ours alone by default: let the peer read the port.
    store.set_perms(
        "data/port",
        &[
            Perm {
                domid: me,
                access: Access::None,
            },
            Perm {
                domid: peer,
                access: Access::Read,
            },
        ],
    )?;
    drop(store);
    println!("ev_ping: domid {me}, peer {peer}: offered port {port} in data/port");
    xen.events().wait(port, Some(Duration::from_secs(30)))?;
    println!("ev_ping: peer connected; {ROUNDS} round trips");
    let t0 = xen.now_ns();
    for _ in 0..ROUNDS {
        xen.events().send(port)?;
        xen.events().wait(port, Some(Duration::from_secs(5)))?;
    }
    let dt = (xen.now_ns() - t0).max(1);
    println!(
        "ev_ping: {ROUNDS} interdomain round trips in {} us: {} round trips/s, {} us each",
        dt / 1000,
        ROUNDS * 1_000_000_000 / dt,
        dt / 1000 / ROUNDS
    );
    xen.events().close(port)?;
    xs.lock().rm("data/port")?;
    println!("ev_ping: all checks passed");
    Ok(())
}
