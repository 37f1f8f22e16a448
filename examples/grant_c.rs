//! Three-guest grant test, guest C (see grant_a): tries to map the grant
//! A made for B, which Xen must refuse; reports the outcome to A through
//! xenstore (relayed by grant_a.dom0.sh).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use xenpv::grant::Access;
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
    let g = xen.grants()?;
    let ro_try = g.map(a, &[rw], Access::ReadOnly);
    let rw_try = g.map(a, &[rw], Access::ReadWrite);
    let result = match (&ro_try, &rw_try) {
        (Err(e1), Err(e2)) => format!("refused: read-only map: {e1}; writable map: {e2}"),
        _ => format!("MAPPED: {:?} {:?}", ro_try.is_ok(), rw_try.is_ok()),
    };
    println!(
        "grant_c: (c) mapping dom{}'s gref {} made for another domain: {result}",
        a.0, rw.0
    );
    let ok = ro_try.is_err() && rw_try.is_err();
    drop(ro_try);
    drop(rw_try);
    xs.write("data/result", result.as_bytes())?;
    if !ok {
        return Err(Error::App("C could map a grant made for B"));
    }
    println!("grant_c: PASS");
    Ok(())
}
