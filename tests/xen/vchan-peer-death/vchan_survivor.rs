//! Peer death, the surviving side: offers a vchan (as its server) to
//! vchan_victim, reads and checks its stream until the victim's dom0
//! companion destroys it with `xl destroy` mid-stream. The blocked read
//! must end in an error, not a hang; then the pages the dead peer had
//! mapped (Xen tears its mappings down) must come back from the grant
//! module's pending list.
//!
//! Options (xl `extra=`): `order=<10..20>` of the victim→survivor ring
//! (default 20), `kill_after=<bytes>` received before it asks dom0 to
//! destroy the victim (default 1 MiB).
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
    let order: u32 = helpers::arg("order", 20);
    let kill_after: u64 = helpers::arg("kill_after", 1 << 20);
    let xs = xen.store()?;
    let me = xs.lock().own_domid()?;
    let peer: u16 = helpers::wait_key_for(&mut xs.lock(), "data/peer_domid", Duration::from_secs(60))?
        .parse()
        .map_err(|_| ChannelError::BadNode { path: "data/peer_domid".into() })?;
    let path = format!("/local/domain/{}/data/vchan", me.0);
    let grants = xen.grants()?;
    let before = grants.stats();

    let chan = Vchan::server(xen.vchan()?, DomId(peer), &path, 1 << order.clamp(10, 20), 1024)?;
    let shared = grants.stats().shared_pages - before.shared_pages;
    println!("vchan_survivor: offering {path} to dom{peer}: {} byte ring in, {shared} pages shared", chan.ring_sizes().0);
    chan.wait_connected(Some(Duration::from_secs(60)))?;
    let mut chan = chan;

    let mut buf = vec![0u8; 65536];
    let mut want = vec![0u8; 65536];
    let mut got = 0u64;
    let mut asked = false;
    let error = loop {
        let n = match chan.read_blocking(&mut buf, Some(Duration::from_secs(30))) {
            Ok(n) => n,
            Err(e) => break e,
        };
        stream::fill(got, &mut want[..n]);
        if buf[..n] != want[..n] {
            println!("vchan_survivor: FAIL: byte {} differs", got);
            return Err(ChannelError::Timeout.into());
        }
        got += n as u64;
        if asked {
            // Keep the stream going, slowly, so the data volume stays small
            // until dom0 gets round to the destroy.
            xenpv::sleep(Duration::from_millis(20));
        } else if got >= kill_after {
            // The victim's companion is waiting for this key.
            xs.lock().write("data/streaming", b"1")?;
            asked = true;
            println!("vchan_survivor: {got} bytes received intact, asking dom0 to destroy dom{peer}");
        }
    };
    let t_err = xenpv::time::now_ns();
    println!("vchan_survivor: read failed after {got} bytes: {error:?} (peer still live per ring: {})", chan.is_open());
    if error != ChannelError::PeerGone || !asked {
        println!("vchan_survivor: FAIL: expected PeerGone after the destroy");
        return Err(error.into());
    }
    drop(chan);
    let pending = grants.stats().pending;
    // Xen may still be tearing the dead domain's mappings down.
    let mut left = grants.reclaim();
    while left > 0 && xenpv::time::now_ns() - t_err < 10_000_000_000 {
        xenpv::sleep(Duration::from_millis(50));
        left = grants.reclaim();
    }
    let after = grants.stats();
    println!(
        "vchan_survivor: released the channel: {pending} of {shared} pages pending at drop, {left} still pending after {} ms; shared pages now {} (before the channel: {})",
        (xenpv::time::now_ns() - t_err) / 1_000_000,
        after.shared_pages,
        before.shared_pages
    );
    if left != 0 || after.shared_pages != before.shared_pages {
        println!("vchan_survivor: FAIL: pages the dead peer had mapped were not reclaimed");
        return Err(ChannelError::Timeout.into());
    }
    let _ = xs.lock().rm(&path);
    println!("vchan_survivor: PASS: peer death detected and its pages reclaimed");
    Ok(())
}
