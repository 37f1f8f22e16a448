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
use xenpv::grant::{self, Access};
use xenpv::{println, DomId};

use xenpv_test_support::guest::{wait_key, Error};

xenpv::main!(main);

const B_WROTE: &[u8] = b"B was here";

fn main() -> Result<(), Error> {
    let mut xs = xenpv::xenstore::open()?;
    let me = xs.read_string("domid")?;
    let peer = wait_key(&mut xs, "data/peer_domid")?;
    let b = DomId(peer.parse().map_err(|_| Error::Timeout("peer domid"))?);
    println!("grant_a: I am dom{me}, sharing with dom{}", b.0);

    let g = grant::grants()?;
    let rw = g.share(b, 1, Access::ReadWrite)?;
    let ro = g.share(b, 1, Access::ReadOnly)?;
    rw.page(0).expect("page").write(0, b"hello B from A (rw)")?;
    ro.page(0).expect("page").write(0, b"hello B from A (ro)")?;
    let (rw_ref, ro_ref) = (rw.gref(0).expect("page"), ro.gref(0).expect("page"));
    xs.write("data/ro", format!("{}", ro_ref.0).as_bytes())?;
    xs.write("data/rw", format!("{}", rw_ref.0).as_bytes())?;
    println!("grant_a: published rw gref {} and ro gref {}", rw_ref.0, ro_ref.0);

    // B writes at offset 100 of the writable page.
    let deadline = xenpv::time::now_ns() + 60_000_000_000;
    let mut buf = [0u8; B_WROTE.len()];
    loop {
        rw.page(0).expect("page").read(100, &mut buf)?;
        if buf == *B_WROTE {
            break;
        }
        if xenpv::time::now_ns() > deadline {
            return Err(Error::Timeout("B's write"));
        }
        xenpv::sleep(Duration::from_millis(20));
    }
    println!("grant_a: (b) A sees B's write: {:?}", core::str::from_utf8(&buf));
    let c = wait_key(&mut xs, "data/c_result")?;
    println!("grant_a: (c) C reports: {c}");
    if !c.starts_with("refused") {
        return Err(Error::Timeout("C was not refused"));
    }
    // B unmaps when done; wait for that, then release with nothing pending.
    // Wait for B to unmap both pages, so that nothing goes pending.
    let events = xenpv::event::XenEvents;
    for pages in [&rw, &ro] {
        pages.wait_unmapped(&events, Duration::from_secs(30))?;
    }
    println!("grant_a: B has unmapped both pages");
    drop(rw);
    drop(ro);
    let st = g.stats();
    println!("grant_a: released; refs in use {}, pending {}", st.refs_used, st.pending);
    println!("grant_a: PASS");
    Ok(())
}
