//! The pair application's peer: a vchan server that answers in capitals.

#![no_std]
#![no_main]

extern crate alloc;

use core::time::Duration;
use xenpv::vchan::{Backends, ChannelError, Vchan};
use xenpv::DomId;

xenpv::main!(main);

fn main() -> Result<(), ChannelError> {
    let xs = xenpv::xenstore::open_shared()?;
    let me = xs.lock().own_domid()?;
    // Our only peer is the application, whatever its name.
    let peers = xs.lock().directory("data/peers")?;
    let [app] = peers.as_slice() else {
        return Err(ChannelError::BadNode { path: "data/peers".into() });
    };
    let client: u16 = xs
        .lock()
        .read_string(&alloc::format!("data/peers/{app}"))?
        .parse()
        .map_err(|_| ChannelError::BadNode { path: "data/peers".into() })?;
    let path = alloc::format!("/local/domain/{}/data/vchan", me.0);
    let chan = Vchan::server(Backends::xen(&xs)?, DomId(client), &path, 4096, 4096)?;
    chan.wait_connected(Some(Duration::from_secs(60)))?;
    let mut chan = chan;
    let mut buf = [0u8; 17];
    chan.read_exact(&mut buf, Some(Duration::from_secs(30)))?;
    buf.make_ascii_uppercase();
    chan.write_all(&buf, Some(Duration::from_secs(30)))?;
    // Stay until the application has read the answer and closed.
    while chan.is_open() {
        let _ = chan.wait(true, false, Some(Duration::from_millis(200)));
        let mut byte = [0u8; 1];
        if chan.read(&mut byte).is_err() {
            break;
        }
    }
    xenpv::println!("peer: answered {app} (dom{client})");
    Ok(())
}
