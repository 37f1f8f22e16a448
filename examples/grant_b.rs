//! Two-guest grant test, guest B (see grant_a): maps A's writable and
//! read-only pages, reads A's data, writes to the writable page, and
//! checks that Xen refuses a writable map of the read-only grant.
#![no_std]
#![no_main]

extern crate alloc;

use core::time::Duration;
use xenpv::grant::{Access, GntStatus, GrantError};
use xenpv::{println, DomId, GrantRef};

use xenpv::{Error, Xen};

xenpv::main!(main);

/// How long to wait for a node dom0's relay (grant_a.dom0.sh) writes.
const WAIT_NS: u64 = 60_000_000_000;

fn main(xen: Xen) -> Result<(), Error> {
    let store = xen.store()?;
    let mut xs = store.lock();
    let a = DomId(
        xs.wait_for_string("data/peer_domid", WAIT_NS)?
            .parse()
            .map_err(|_| Error::App("domid"))?,
    );
    let rw = GrantRef(
        xs.wait_for_string("data/rw", WAIT_NS)?
            .parse()
            .map_err(|_| Error::App("rw ref"))?,
    );
    let ro = GrantRef(
        xs.wait_for_string("data/ro", WAIT_NS)?
            .parse()
            .map_err(|_| Error::App("ro ref"))?,
    );
    println!("grant_b: mapping dom{} grefs rw {} ro {}", a.0, rw.0, ro.0);
    let g = xen.grants()?;

    let e = g
        .map(a, &[ro], Access::ReadWrite)
        .err()
        .ok_or(Error::App("writable map of a r/o grant worked"))?;
    println!("grant_b: (b) writable map of the read-only grant refused: {e}");
    if e != (GrantError::BatchOp {
        index: 0,
        status: GntStatus::GeneralError,
    }) {
        return Err(Error::App("unexpected error"));
    }

    let m = g.map(a, &[rw, ro], Access::ReadOnly)?;
    let mut buf = [0u8; 19];
    m.page(0).expect("page").read(0, &mut buf)?;
    println!("grant_b: (b) rw page says {:?}", core::str::from_utf8(&buf));
    m.page(1).expect("page").read(0, &mut buf)?;
    println!("grant_b: (b) ro page says {:?}", core::str::from_utf8(&buf));
    if &buf != b"hello B from A (ro)" {
        return Err(Error::App("ro data"));
    }
    drop(m);
    let w = g.map(a, &[rw], Access::ReadWrite)?;
    w.page(0).expect("page").write(100, b"B was here")?;
    println!("grant_b: (b) wrote to A's writable page");
    // Give A time to see it through its own mapping, then unmap.
    xen.sleep(Duration::from_millis(500));
    w.unmap()?;
    println!("grant_b: PASS");
    Ok(())
}
