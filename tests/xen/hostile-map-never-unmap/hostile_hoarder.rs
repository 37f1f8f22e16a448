//! The hostile peer of hostile_sharer: maps the shared page, scribbles on
//! it, and never unmaps (it even forgets its mapping, so no destructor
//! unmaps it). While the sharer runs its checks, the page must stay the
//! sharer's old page: still readable and writable here, with our bytes
//! in it (nothing reused or zeroed it).
#![no_std]
#![no_main]

extern crate alloc;

use xenpv_test_support::guest as helpers;

use alloc::format;
use core::time::Duration;
use xenpv::grant::Access;
use xenpv::vchan::ChannelError;
use xenpv::xenstore::{Access as XsAccess, Perm};
use xenpv::{println, DomId, GrantRef};

xenpv::main!(main);

fn main(xen: xenpv::Xen) -> Result<(), xenpv::Error> {
    let store = xen.store()?;
    let mut xs = store.lock();
    let me = xs.own_domid()?;
    let a: u16 = helpers::wait_key_for(&mut xs, "data/peer_domid", Duration::from_secs(60))?
        .parse()
        .map_err(|_| ChannelError::BadNode { path: "data/peer_domid".into() })?;
    let a = DomId(a);
    let perms = [Perm { domid: me, access: XsAccess::None }, Perm { domid: a, access: XsAccess::Read }];
    let r: u32 = helpers::wait_key_for(&mut xs, &format!("/local/domain/{}/data/ref", a.0), Duration::from_secs(60))?
        .parse()
        .map_err(|_| ChannelError::BadNode { path: "ref".into() })?;
    let g = xen.grants()?;
    let m = g.map(a, &[GrantRef(r)], Access::ReadWrite)?;
    let page = m.page(0).ok_or(ChannelError::Timeout)?;
    page.write(100, b"hoarded")?;
    xs.write("data/mapped", b"1")?;
    xs.set_perms("data/mapped", &perms)?;
    println!("hostile_hoarder: mapped dom{}'s gref {r} and keeping it", a.0);
    helpers::wait_key_for(&mut xs, &format!("/local/domain/{}/data/done", a.0), Duration::from_secs(120))?;
    let (mut head, mut ours) = ([0u8; 13], [0u8; 7]);
    page.read(0, &mut head)?;
    page.read(100, &mut ours)?;
    println!(
        "hostile_hoarder: after the sharer's release and 300 more shares the page still reads {:?} / {:?}",
        core::str::from_utf8(&head).unwrap_or("?"),
        core::str::from_utf8(&ours).unwrap_or("?")
    );
    if &head != b"sharer's page" || &ours != b"hoarded" {
        return Err(ChannelError::Timeout.into());
    }
    xs.write("data/checked", b"1")?;
    xs.set_perms("data/checked", &perms)?;
    // Never unmap: Xen tears the mapping down with this domain.
    core::mem::forget(m);
    wait_gone(&mut xs, &format!("/local/domain/{}/data/done", a.0), Duration::from_secs(60));
    println!("hostile_hoarder: PASS (leaving with the page still mapped)");
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
