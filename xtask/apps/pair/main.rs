//! The pair application's main guest: a vchan client of its peer.
//! Written by `cargo xtask test` into an application made with
//! `xenpv-run new`; the runner boots it with `peer` (Xenpv.toml).

#![no_std]
#![no_main]

extern crate alloc;

use core::time::Duration;
use xenpv::vchan::{ChannelError, Vchan};
use xenpv::xenstore::XsError;
use xenpv::{DomId, Xen};

xenpv::main!(main);

const MESSAGE: &[u8] = b"ping from the app";

fn main(xen: Xen) -> Result<(), xenpv::Error> {
    let xs = xen.store()?;
    // The runner gives each guest its peers' domain ids.
    let server: u16 = xs
        .lock()
        .read_string("data/peers/peer")?
        .parse()
        .map_err(|_| ChannelError::BadNode { path: "data/peers/peer".into() })?;
    let path = alloc::format!("/local/domain/{server}/data/vchan");
    let ready = alloc::format!("{path}/event-channel");
    let mut waited = 0;
    loop {
        match xs.lock().read(&ready) {
            Ok(_) => break,
            Err(XsError::Errno(_)) if waited < 600 => waited += 1,
            Err(e) => return Err(e.into()),
        }
        xen.sleep(Duration::from_millis(100));
    }
    let mut chan = Vchan::client(xen.vchan()?, DomId(server), &path)?;
    chan.write_all(MESSAGE, Some(Duration::from_secs(30)))?;
    let mut reply = [0u8; MESSAGE.len()];
    chan.read_exact(&mut reply, Some(Duration::from_secs(30)))?;
    let text = core::str::from_utf8(&reply).unwrap_or("?");
    xenpv::println!("the peer answered: {text}");
    if !reply.eq_ignore_ascii_case(MESSAGE) || reply == *MESSAGE {
        xen.exit(3);
    }
    Ok(())
}
