//! Peer death, the side that dies: connects to vchan_survivor (as its
//! client) and streams the test sequence without end; its dom0 companion
//! destroys it with `xl destroy` mid-stream. Reaching the end of `main`
//! is a failure.
#![no_std]
#![no_main]

extern crate alloc;

// Each example uses part of the shared helpers.
#[allow(dead_code)]
use xenpv_test_support::{guest as helpers, stream};

use alloc::vec;
use core::time::Duration;
use xenpv::vchan::{ChannelError, Vchan};
use xenpv::{println, DomId};

xenpv::main!(main);

fn main(xen: xenpv::Xen) -> Result<(), xenpv::Error> {
    let xs = xen.store()?;
    let peer: u16 = helpers::wait_key_for(&mut xs.lock(), "data/peer_domid", Duration::from_secs(60))?
        .parse()
        .map_err(|_| ChannelError::BadNode { path: "data/peer_domid".into() })?;
    let path = alloc::format!("/local/domain/{peer}/data/vchan");
    helpers::wait_key_for(&mut xs.lock(), &alloc::format!("{path}/event-channel"), Duration::from_secs(60))?;
    let mut chan = Vchan::client(xen.vchan()?, DomId(peer), &path)?;
    println!("vchan_victim: connected to dom{peer}, streaming until destroyed");
    let mut buf = vec![0u8; 65536];
    let mut sent = 0u64;
    loop {
        stream::fill(sent, &mut buf);
        if let Err(e) = chan.write_all(&buf, Some(Duration::from_secs(60))) {
            println!("vchan_victim: FAIL: still alive after {sent} bytes: {e:?}");
            return Err(e.into());
        }
        sent += buf.len() as u64;
    }
}
