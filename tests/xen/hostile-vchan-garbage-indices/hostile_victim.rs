//! Hostile-peer scenario under real Xen: a vchan peer that writes garbage
//! ring indices (with hostile_scribbler: `cargo xtask run hostile_victim
//! hostile_scribbler`). The victim offers a channel; the scribbler maps
//! the control page and, instead of speaking the protocol, claims to have
//! produced 0xdeadbeef bytes and consumed 0x40000000. The victim's read
//! and write must fail with `PeerCorrupt`, touching nothing outside its
//! rings; it then shows it is alive (a xenstore round trip, its memory
//! figures), closes the channel and powers off cleanly.
#![no_std]
#![no_main]

extern crate alloc;

use xenpv_test_support::guest as helpers;

use alloc::format;
use core::time::Duration;
use xenpv::vchan::{ChannelError, Vchan, VchanError};
use xenpv::{println, DomId};

xenpv::main!(main);

fn main(xen: xenpv::Xen) -> Result<(), xenpv::Error> {
    let xs = xen.store()?;
    let me = xs.lock().own_domid()?;
    let peer: u16 = helpers::wait_key_for(&mut xs.lock(), "data/peer_domid", Duration::from_secs(60))?
        .parse()
        .map_err(|_| ChannelError::BadNode { path: "data/peer_domid".into() })?;
    let path = format!("/local/domain/{}/data/hostile", me.0);
    // First use of the grant table maps it (page-table frames): before measuring.
    let g = xen.grants()?;
    let frames_before = xenpv::mm::stats().free_frames;
    let chan = Vchan::server(xen.vchan()?, DomId(peer), &path, 1024, 1024)?;
    println!("hostile_victim: offering a vchan to dom{peer}");
    chan.wait_connected(Some(Duration::from_secs(60)))?;
    let mut chan = chan;
    let mut buf = [0u8; 64];
    let read = chan.read_blocking(&mut buf, Some(Duration::from_secs(30)));
    println!("hostile_victim: read from the scribbled ring: {read:?}");
    let write = chan.write(b"hello?");
    println!("hostile_victim: write into the scribbled ring: {write:?}");
    let corrupt = |r: &Result<usize, ChannelError>| matches!(r, Err(ChannelError::Vchan(VchanError::PeerCorrupt { .. })));
    if !corrupt(&read) || !corrupt(&write) {
        return Err(ChannelError::Timeout.into());
    }
    // Alive and well: xenstore still answers, memory is intact.
    xs.lock().write("data/victim", b"alive")?;
    let back = xs.lock().read_string("data/victim")?;
    // The scribbler unmaps (without any notify) before it says it is done;
    // then the next grant operation reclaims our pages. Removing the nodes
    // tells it we have seen that.
    helpers::wait_key_for(&mut xs.lock(), &format!("/local/domain/{peer}/data/done"), Duration::from_secs(60))?;
    drop(chan); // closes, removing the nodes
    let pending = g.reclaim();
    println!(
        "hostile_victim: still alive after the garbage indices (xenstore says {back:?}; free frames {} before the channel, {} after closing it, {pending} pending)",
        frames_before,
        xenpv::mm::stats().free_frames
    );
    if pending != 0 || xenpv::mm::stats().free_frames != frames_before {
        return Err(ChannelError::Timeout.into());
    }
    println!("hostile_victim: PASS");
    Ok(())
}
