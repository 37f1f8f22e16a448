//! A vchan server that echoes what its client sends, for interop with
//! Linux's libxenvchan: dom0's unmodified `vchan-socket-proxy -m client`
//! connects to it (examples/vchan_echo.dom0.sh feeds bytes through the
//! proxy and checks that the same bytes come back).
//!
//! It offers one channel per session, one after another, each at
//! `/local/domain/<self>/data/echo<i>` with its own ring orders, and
//! echoes until the client closes. After each session it waits for the
//! dom0 companion's verdict in `data/verdict<i>` and prints it.
//!
//! Options (xl `extra=`): `peer=<domid>` (default 0), `orders=<l>:<r>,...`
//! the requested (left, right) ring orders of each session (left is
//! client→server; default `10:11,11:10,12:16,20:12`).
#![no_std]
#![no_main]

extern crate alloc;

// Each example uses part of the shared helpers.
#[allow(dead_code)]
use xenpv_test_support::{guest as helpers, stream};

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;
use xenpv::vchan::{ChannelError, State, Vchan, VchanError, XenVchan};
use xenpv::{println, DomId};

xenpv::main!(main);

fn main(xen: xenpv::Xen) -> Result<(), xenpv::Error> {
    let peer = DomId(helpers::arg("peer", 0u16));
    let orders: String = helpers::arg("orders", String::from("10:11,11:10,12:16,20:12"));
    let sessions = parse_orders(&orders).ok_or(ChannelError::BadNode { path: format!("orders={orders}") })?;
    let xs = xen.store()?;
    let me = xs.lock().own_domid()?;
    xs.lock().write("data/sessions", format!("{}", sessions.len()).as_bytes())?;

    let mut all_ok = true;
    for (i, &(lo, ro)) in sessions.iter().enumerate() {
        let path = format!("/local/domain/{}/data/echo{i}", me.0);
        let chan = Vchan::server(xen.vchan()?, peer, &path, 1 << lo, 1 << ro)?;
        let (read, write) = chan.ring_sizes();
        println!(
            "vchan_echo: session {i}: offering {path} to dom{}, rings {read} bytes in (order {}), {write} bytes out (order {})",
            peer.0,
            read.trailing_zeros(),
            write.trailing_zeros()
        );
        let before = chan.state();
        chan.wait_connected(Some(Duration::from_secs(60)))?;
        let during = chan.state();
        let mut chan = chan;
        // Odd sessions use libxenvchan's blocking mode (plain read/write
        // wait), even ones the explicit blocking calls with timeouts.
        chan.set_blocking(i % 2 == 1);
        let (bytes, sum) = echo(&mut chan)?;
        let after = chan.state();
        println!("vchan_echo: session {i}: states {before:?} -> {during:?} -> {after:?}");
        all_ok &= (before, during, after) == (State::Waiting, State::Connected, State::Closed);
        println!("vchan_echo: session {i}: client closed after {bytes} bytes echoed (checksum {sum:016x})");
        drop(chan); // closes, removing the nodes
        let verdict = helpers::wait_key_for(&mut xs.lock(), &format!("data/verdict{i}"), Duration::from_secs(60))?;
        println!("vchan_echo: session {i}: dom0 says: {}", verdict.trim());
        all_ok &= verdict.starts_with("ok");
    }
    all_ok &= persistent_session(&xen, peer, me)?;
    let pending = xen.grants()?.reclaim();
    println!("vchan_echo: {} sessions done, {pending} granted pages still pending", sessions.len());
    if all_ok && pending == 0 {
        println!("vchan_echo: PASS");
    } else {
        println!("vchan_echo: FAIL");
    }
    Ok(())
}

/// libxenvchan's server_persist: one persistent server, two clients in a
/// row (two runs of dom0's vchan-socket-proxy on the same path), each
/// echoed; the stream carries on across them. dom0 writes `data/persist-done`
/// after the second.
fn persistent_session(xen: &xenpv::Xen, peer: DomId, me: DomId) -> Result<bool, xenpv::Error> {
    let path = format!("/local/domain/{}/data/persist", me.0);
    let mut chan = Vchan::server(xen.vchan()?, peer, &path, 4096, 4096)?;
    chan.set_persist(true)?;
    println!("vchan_echo: persistent session: offering {path}");
    let mut buf = vec![0u8; 16384];
    let mut clients = 0;
    let mut connected = false;
    let mut total = 0u64;
    loop {
        match chan.state() {
            State::Connected if !connected => {
                connected = true;
                clients += 1;
                println!("vchan_echo: persistent session: client {clients} connected");
            }
            State::Waiting if connected => {
                connected = false;
                println!("vchan_echo: persistent session: client {clients} left, still offering");
            }
            _ => {}
        }
        if !connected && xen.store()?.lock().read_string("data/persist-done").is_ok() {
            break;
        }
        match chan.read_blocking(&mut buf, Some(Duration::from_millis(200))) {
            Ok(n) => {
                chan.write_all(&buf[..n], Some(Duration::from_secs(60)))?;
                total += n as u64;
            }
            Err(ChannelError::Timeout) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let verdict = xen.store()?.lock().read_string("data/persist-done")?;
    println!("vchan_echo: persistent session: {clients} clients, {total} bytes echoed; dom0 says: {}", verdict.trim());
    Ok(clients == 2 && verdict.starts_with("ok"))
}

/// Echoes until the client closes; returns the byte count and checksum.
fn echo(chan: &mut XenVchan<'_>) -> Result<(u64, u64), ChannelError> {
    let mut buf = vec![0u8; 16384];
    let (mut total, mut sum) = (0u64, stream::Checksum::new());
    loop {
        let got = if chan.is_blocking() { chan.read(&mut buf) } else { chan.read_blocking(&mut buf, Some(Duration::from_secs(60))) };
        let n = match got {
            Ok(n) => n,
            Err(ChannelError::Vchan(VchanError::Closed)) => return Ok((total, sum.finish())),
            Err(e) => return Err(e),
        };
        sum.update(&buf[..n]);
        if chan.is_blocking() {
            assert_eq!(chan.write(&buf[..n])?, n, "a blocking write moves everything");
        } else {
            chan.write_all(&buf[..n], Some(Duration::from_secs(60)))?;
        }
        total += n as u64;
    }
}

/// `10:11,12:16` -> [(10, 11), (12, 16)].
fn parse_orders(text: &str) -> Option<Vec<(u16, u16)>> {
    text.split(',')
        .map(|pair| {
            let (l, r) = pair.split_once(':')?;
            let (l, r) = (l.trim().parse::<u16>().ok()?, r.trim().parse::<u16>().ok()?);
            ((10..=20).contains(&l) && (10..=20).contains(&r)).then_some((l, r))
        })
        .collect()
}
