//! The hostile peer of hostile_victim: maps the victim's vchan control
//! page the way a client would, but writes garbage into the ring indices
//! (left prod 0xdeadbeef, right cons 0x40000000), says "connected" and
//! kicks the event channel. Then it leaves without unmapping politely.
#![no_std]
#![no_main]

extern crate alloc;

use xenpv_test_support::guest as helpers;

use alloc::format;
use core::time::Duration;
use xenpv::abi::vchan::{CLI_LIVE, LEFT, RIGHT, RING_CONS, RING_PROD};
use xenpv::event::EventOps;
use xenpv::grant::Access;
use xenpv::vchan::ChannelError;
use xenpv::xenstore::{Access as XsAccess, Perm};
use xenpv::{println, DomId, EvtchnPort, GrantRef};

xenpv::main!(main);

fn number(s: alloc::string::String, path: &str) -> Result<u32, ChannelError> {
    s.parse().map_err(|_| ChannelError::BadNode { path: path.into() })
}

fn main(xen: xenpv::Xen) -> Result<(), xenpv::Error> {
    let store = xen.store()?;
    let mut xs = store.lock();
    let victim = DomId(number(helpers::wait_key_for(&mut xs, "data/peer_domid", Duration::from_secs(60))?, "peer")? as u16);
    let path = format!("/local/domain/{}/data/hostile", victim.0);
    let port = number(helpers::wait_key_for(&mut xs, &format!("{path}/event-channel"), Duration::from_secs(60))?, "event-channel")?;
    let ring_ref = number(helpers::wait_key_for(&mut xs, &format!("{path}/ring-ref"), Duration::from_secs(60))?, "ring-ref")?;
    let g = xen.grants()?;
    let local = xen.events().bind_interdomain(victim, EvtchnPort(port))?;
    let ctrl = g.map(victim, &[GrantRef(ring_ref)], Access::ReadWrite)?;
    let page = ctrl.page(0).ok_or(ChannelError::Timeout)?;
    page.store_u32(LEFT + RING_PROD, 0xdead_beef)?;
    page.store_u32(RIGHT + RING_CONS, 0x4000_0000)?;
    page.store_u8(CLI_LIVE, 1)?;
    xen.events().send(local)?;
    println!("hostile_scribbler: wrote garbage indices into dom{}'s vchan and kicked it", victim.0);
    // Give the victim time to trip over them, then leave.
    xenpv::sleep(Duration::from_secs(2));
    drop(ctrl);
    let _ = xen.events().close(local);
    let me = xs.own_domid()?;
    xs.write("data/done", b"1")?;
    let read_only = |d| Perm { domid: d, access: XsAccess::Read };
    xs.set_perms("data/done", &[Perm { domid: me, access: XsAccess::None }, read_only(victim)])?;
    // The victim removes its channel's nodes once it has read that.
    wait_gone(&mut xs, &format!("{path}/ring-ref"), Duration::from_secs(60));
    println!("hostile_scribbler: done");
    Ok(())
}

/// Waits until `path` (a node the peer wrote and let us read) no longer
/// reads: the peer has removed it or is gone, so it has seen our last
/// message. The last message of a handshake is otherwise a race with the
/// toolstack removing a powered-off domain's nodes.
fn wait_gone<T: xenpv::xenstore::Transport>(xs: &mut xenpv::xenstore::Client<T>, path: &str, timeout: Duration) {
    let deadline = xenpv::time::now_ns() + timeout.as_nanos() as u64;
    while xs.read_string(path).is_ok() && xenpv::time::now_ns() < deadline {
        xenpv::sleep(Duration::from_millis(20));
    }
}
