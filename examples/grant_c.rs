//! Three-guest grant test, guest C (see grant_a): tries to map the grant
//! A made for B, which Xen must refuse; reports the outcome to A through
//! xenstore (relayed by grant_a.dom0.sh).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use xenpv::grant::{self, Access};
use xenpv::{println, DomId, GrantRef};

use xenpv_test_support::guest::{wait_key, Error};

xenpv::main!(main);

fn main() -> Result<(), Error> {
    let mut xs = xenpv::xenstore::open()?;
    let a = DomId(wait_key(&mut xs, "data/peer_domid")?.parse().map_err(|_| Error::Check("domid"))?);
    let rw = GrantRef(wait_key(&mut xs, "data/rw")?.parse().map_err(|_| Error::Check("rw ref"))?);
    let g = grant::grants()?;
    let ro_try = g.map(a, &[rw], Access::ReadOnly);
    let rw_try = g.map(a, &[rw], Access::ReadWrite);
    let result = match (&ro_try, &rw_try) {
        (Err(e1), Err(e2)) => format!("refused: read-only map: {e1}; writable map: {e2}"),
        _ => format!("MAPPED: {:?} {:?}", ro_try.is_ok(), rw_try.is_ok()),
    };
    println!("grant_c: (c) mapping dom{}'s gref {} made for another domain: {result}", a.0, rw.0);
    let ok = ro_try.is_err() && rw_try.is_err();
    drop(ro_try);
    drop(rw_try);
    xs.write("data/result", result.as_bytes())?;
    if !ok {
        return Err(Error::Check("C could map a grant made for B"));
    }
    println!("grant_c: PASS");
    Ok(())
}
