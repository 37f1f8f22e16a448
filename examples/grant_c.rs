//! Three-guest grant test, guest C (see grant_a): tries to map the grant
//! A made for B, which Xen must refuse; reports the outcome to A through
//! xenstore (relayed by grant_a.dom0.sh).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use xenpv::grant::{Access};
use xenpv::{println, DomId, GrantRef};

use alloc::string::String;
use core::time::Duration;
use xenpv::xenstore::{Client, RingTransport, XsError};
use xenpv::{Error, Xen};

xenpv::main!(main);

fn main(xen: Xen) -> Result<(), Error> {
    let store = xen.store()?;
    let mut xs = store.lock();
    let a = DomId(wait_key(&xen, &mut xs, "data/peer_domid")?.parse().map_err(|_| Error::App("domid"))?);
    let rw = GrantRef(wait_key(&xen, &mut xs, "data/rw")?.parse().map_err(|_| Error::App("rw ref"))?);
    let g = xen.grants()?;
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
        return Err(Error::App("C could map a grant made for B"));
    }
    println!("grant_c: PASS");
    Ok(())
}

/// Reads `key` once dom0's relay (grant_a.dom0.sh) has written it, polling
/// for up to 60 s.
fn wait_key(xen: &Xen, xs: &mut Client<RingTransport>, key: &str) -> Result<String, Error> {
    let deadline = xen.now_ns() + 60_000_000_000;
    loop {
        match xs.read_string(key) {
            Ok(v) => return Ok(v),
            Err(XsError::Errno(_)) if xen.now_ns() < deadline => xen.sleep(Duration::from_millis(50)),
            Err(e) => return Err(e.into()),
        }
    }
}
