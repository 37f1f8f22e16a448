//! A xenpv vchan client of a Linux libxenvchan server: dom0's unmodified
//! `vchan-socket-proxy -m server` (gntalloc shares the pages) with its
//! socket side looped back, so it echoes (examples/vchan_client.dom0.sh).
//! Sends the deterministic test stream and checks every byte that comes
//! back, reading and writing in one loop as the echo path is only a few
//! KiB deep.
//!
//! The companion writes `<server domid> <path>` to `data/server`.
//! Options (xl `extra=`): `bytes=<n>` (default 256 KiB), `chunk=<n>` (4096).
#![no_std]
#![no_main]

extern crate alloc;

// Each example uses part of the shared helpers.
#[allow(dead_code)]
use xenpv_test_support::{guest as helpers, stream};

use alloc::format;
use alloc::vec;
use core::time::Duration;
use xenpv::vchan::{ChannelError, Vchan};
use xenpv::{println, DomId};

xenpv::main!(main);

fn main(xen: xenpv::Xen) -> Result<(), xenpv::Error> {
    let total: usize = helpers::arg("bytes", 256 << 10);
    let chunk: usize = helpers::arg("chunk", 4096);
    let xs = xen.store()?;
    let server = helpers::wait_key_for(&mut xs.lock(), "data/server", Duration::from_secs(60))?;
    let bad = || ChannelError::BadNode { path: "data/server".into() };
    let (domid, path) = server.trim().split_once(' ').ok_or_else(bad)?;
    let domid = DomId(domid.parse().map_err(|_| bad())?);
    helpers::wait_key_for(&mut xs.lock(), &format!("{path}/event-channel"), Duration::from_secs(60))?;
    let mut chan = Vchan::client(xen.vchan()?, domid, path)?;
    let (read, write) = chan.ring_sizes();
    println!("vchan_client: header at connect {:?}", chan.header());
    println!(
        "vchan_client: connected to dom{} at {path}: {write} bytes out (order {}), {read} bytes in (order {})",
        domid.0,
        write.trailing_zeros(),
        read.trailing_zeros()
    );

    let mut data = vec![0u8; total];
    stream::fill(0, &mut data);
    let mut back = vec![0u8; chunk];
    let (mut sent, mut got) = (0, 0);
    let start = xenpv::time::now_ns();
    while got < total {
        let w = if sent < total { chan.write(&data[sent..total.min(sent + chunk)])? } else { 0 };
        sent += w;
        let r = chan.read(&mut back)?;
        if back[..r] != data[got..(got + r).min(total)] {
            println!("vchan_client: FAIL: echo differs near byte {got}");
            return Err(ChannelError::Timeout.into());
        }
        got += r;
        if w == 0 && r == 0 {
            if let Err(e) = chan.wait(true, sent < total, Some(Duration::from_secs(30))) {
                println!("vchan_client: stalled after {sent} bytes sent, {got} received; header {:?}", chan.header());
                return Err(e.into());
            }
        }
    }
    let ns = xenpv::time::now_ns() - start;
    let mut sum = stream::Checksum::new();
    sum.update(&data);
    println!(
        "vchan_client: {got} bytes echoed back intact by dom{}'s vchan-socket-proxy (checksum {:016x}, {} KiB/s round trip)",
        domid.0,
        sum.finish(),
        (got as u64 * 1_000_000_000 / ns.max(1)) >> 10
    );
    drop(chan);
    println!("vchan_client: PASS");
    Ok(())
}
