//! Two- and three-guest grant test, guest A (with grant_b and grant_c;
//! `cargo xtask run grant_a grant_b grant_c`). A shares one writable and
//! one read-only page with B, publishes the references in its xenstore
//! `data/` (the dom0 companion `grant_a.dom0.sh` relays them and the
//! domids), waits until B has written to the writable page and C has
//! reported its refused map, then releases.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use core::time::Duration;
use xenpv::grant::Access;
use xenpv::{println, DomId};

use xenpv::{Error, Xen};

xenpv::main!(main);

/// How long to wait for a node dom0's relay (grant_a.dom0.sh) writes.
const WAIT_NS: u64 = 60_000_000_000;

const B_WROTE: &[u8] = b"B was here";

fn main(xen: Xen) -> Result<(), Error> {
    let store = xen.store()?;
    let mut xs = store.lock();
    let me = xs.read_string("domid")?;
    let peer = xs.wait_for_string("data/peer_domid", WAIT_NS)?;
    let b = DomId(peer.parse().map_err(|_| Error::App("peer domid"))?);
    println!("grant_a: I am dom{me}, sharing with dom{}", b.0);

    let g = xen.grants()?;
    let rw = g.share(b, 1, Access::ReadWrite)?;
    let ro = g.share(b, 1, Access::ReadOnly)?;
    rw.page(0).expect("page").write(0, b"hello B from A (rw)")?;
    ro.page(0).expect("page").write(0, b"hello B from A (ro)")?;
    let (rw_ref, ro_ref) = (rw.gref(0).expect("page"), ro.gref(0).expect("page"));
    xs.write("data/ro", format!("{}", ro_ref.0).as_bytes())?;
    xs.write("data/rw", format!("{}", rw_ref.0).as_bytes())?;
    println!(
        "grant_a: published rw gref {} and ro gref {}",
        rw_ref.0, ro_ref.0
    );

    // B writes at offset 100 of the writable page.
    let deadline = xenpv::time::now_ns() + 60_000_000_000;
    let mut buf = [0u8; B_WROTE.len()];
    loop {
        rw.page(0).expect("page").read(100, &mut buf)?;
        if buf == *B_WROTE {
            break;
        }
        if xenpv::time::now_ns() > deadline {
            return Err(Error::App("B's write"));
        }
        xen.sleep(Duration::from_millis(20));
    }
    println!(
        "grant_a: (b) A sees B's write: {:?}",
        core::str::from_utf8(&buf)
    );
    let c = xs.wait_for_string("data/c_result", WAIT_NS)?;
    println!("grant_a: (c) C reports: {c}");
    if !c.starts_with("refused") {
        return Err(Error::App("C was not refused"));
    }
    // B unmaps when done; wait for that, then release with nothing pending.
    // Wait for B to unmap both pages, so that nothing goes pending.
    let events = xen.events();
    for pages in [&rw, &ro] {
        pages.wait_unmapped(events, Duration::from_secs(30))?;
    }
    println!("grant_a: B has unmapped both pages");
    drop(rw);
    drop(ro);
    let st = g.stats();
    println!(
        "grant_a: released; refs in use {}, pending {}",
        st.refs_used, st.pending
    );
    println!("grant_a: PASS");
    Ok(())
}
