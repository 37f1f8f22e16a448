//! A vchan echo server (with echo_client): offers a vchan to its only peer
//! (named in `data/peers/`), reads a line, answers it in capitals and
//! stays until the client has closed.

#![no_std]
#![no_main]

extern crate alloc;

use core::time::Duration;
use xenpv::event::Port;
use xenpv::vchan::{ChannelError, Vchan};
use xenpv::{DomId, Xen};

xenpv::main!(main);

fn main(xen: Xen) -> Result<(), xenpv::Error> {
    let xs = xen.store()?;
    let me = xs.lock().own_domid()?;
    // Our only peer is the application, whatever its name.
    let peers = xs.lock().directory("data/peers")?;
    let [app] = peers.as_slice() else {
        return Err(ChannelError::BadNode {
            path: "data/peers".into(),
        }
        .into());
    };
    let client: u16 = xs
        .lock()
        .read_string(&alloc::format!("data/peers/{app}"))?
        .parse()
        .map_err(|_| ChannelError::BadNode {
            path: "data/peers".into(),
        })?;
    // Waiting on a channel and another event port at once: a channel
    // nobody maps (offered to dom0, which never connects) and a loopback
    // pair of our own ports. Signalling one end of the pair ends the wait.
    {
        let events = xen.events();
        let idle_path = alloc::format!("/local/domain/{}/data/idle-vchan", me.0);
        let idle = Vchan::server(xen.vchan()?, DomId(0), &idle_path, 1024, 1024)?;
        let a = Port::alloc_unbound(events, me)?;
        let b = Port::bind_interdomain(events, me, a.port())?;
        a.send()?;
        let woken = Vchan::wait_any_or(
            &[&idle],
            &mut || events.take_fired(b.port()),
            Some(Duration::from_secs(10)),
        )?;
        xenpv::println!("echo_server: wait_any_or woke for {woken:?}");
    }
    let path = alloc::format!("/local/domain/{}/data/vchan", me.0);
    let chan = Vchan::server(xen.vchan()?, DomId(client), &path, 4096, 4096)?;
    chan.wait_connected(Some(Duration::from_secs(60)))?;
    let mut chan = chan;
    // The client's line arrives in one write: take it whole (`recv` moves
    // all of it or nothing), answer it whole (`send`, likewise).
    let mut buf = [0u8; 17];
    while chan.recv(&mut buf)? == 0 {
        chan.wait(true, false, Some(Duration::from_secs(30)))?;
    }
    buf.make_ascii_uppercase();
    while chan.send(&buf)? == 0 {
        chan.wait(false, true, Some(Duration::from_secs(30)))?;
    }
    // Stay until the application has read the answer and closed.
    while chan.is_open() {
        let _ = chan.wait(true, false, Some(Duration::from_millis(200)));
        let mut byte = [0u8; 1];
        if chan.read(&mut byte).is_err() {
            break;
        }
    }
    xenpv::println!("echo_server: answered {app} (dom{client})");
    Ok(())
}
