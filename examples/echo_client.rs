//! A vchan echo client (with echo_server: `cargo xtask run echo_server
//! echo_client`): finds the server's domain id in its own xenstore
//! (`data/peers/echo_server`, written by the runner or the lab before the
//! guests start), waits on a xenstore watch for the server's vchan nodes, connects, sends a
//! line and checks that it comes back in capitals. It uses only the `Xen`
//! handle and `xenpv::Error`. `cargo xtask test` also builds this file as
//! the main binary of an application made with `xenpv-run new`.

#![no_std]
#![no_main]

extern crate alloc;

use core::time::Duration;
use xenpv::vchan::{ChannelError, Vchan};
use xenpv::{DomId, Xen};

xenpv::main!(main);

const MESSAGE: &[u8] = b"ping from the app";

fn main(xen: Xen) -> Result<(), xenpv::Error> {
    let xs = xen.store()?;
    // The runner gives each guest its peers' domain ids.
    let server: u16 = xs
        .lock()
        .read_string("data/peers/echo_server")?
        .parse()
        .map_err(|_| ChannelError::BadNode {
            path: "data/peers/echo_server".into(),
        })?;
    let path = alloc::format!("/local/domain/{server}/data/vchan");
    // Waits on a xenstore watch until the server has offered the channel.
    let mut chan = Vchan::client_wait(xen.vchan()?, DomId(server), &path, Duration::from_secs(60))?;
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
