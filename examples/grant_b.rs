//! Two-guest grant test, guest B (see grant_a): maps A's writable and
//! read-only pages, reads A's data, writes to the writable page, and
//! checks that Xen refuses a writable map of the read-only grant.
#![no_std]
#![no_main]

extern crate alloc;

use core::time::Duration;
use xenpv::grant::{self, Access, GntStatus, GrantError};
use xenpv::xenstore::XsError;
use xenpv::{println, DomId, GrantRef};

xenpv::main!(main);

#[derive(Debug)]
#[allow(dead_code)] // read through Debug when main fails
enum Error {
    Grant(GrantError),
    Xs(XsError),
    Check(&'static str),
}

impl From<GrantError> for Error {
    fn from(e: GrantError) -> Self {
        Error::Grant(e)
    }
}
impl From<XsError> for Error {
    fn from(e: XsError) -> Self {
        Error::Xs(e)
    }
}

fn main() -> Result<(), Error> {
    let mut xs = xenpv::xenstore::open()?;
    let a = DomId(wait_key(&mut xs, "data/peer_domid")?.parse().map_err(|_| Error::Check("domid"))?);
    let rw = GrantRef(wait_key(&mut xs, "data/rw")?.parse().map_err(|_| Error::Check("rw ref"))?);
    let ro = GrantRef(wait_key(&mut xs, "data/ro")?.parse().map_err(|_| Error::Check("ro ref"))?);
    println!("grant_b: mapping dom{} grefs rw {} ro {}", a.0, rw.0, ro.0);
    let g = grant::grants()?;

    let e = g.map(a, &[ro], Access::ReadWrite).err().ok_or(Error::Check("writable map of a r/o grant worked"))?;
    println!("grant_b: (b) writable map of the read-only grant refused: {e}");
    if e != (GrantError::BatchOp { index: 0, status: GntStatus::GeneralError }) {
        return Err(Error::Check("unexpected error"));
    }

    let m = g.map(a, &[rw, ro], Access::ReadOnly)?;
    let mut buf = [0u8; 19];
    m.page(0).expect("page").read(0, &mut buf)?;
    println!("grant_b: (b) rw page says {:?}", core::str::from_utf8(&buf));
    m.page(1).expect("page").read(0, &mut buf)?;
    println!("grant_b: (b) ro page says {:?}", core::str::from_utf8(&buf));
    if &buf != b"hello B from A (ro)" {
        return Err(Error::Check("ro data"));
    }
    drop(m);
    let w = g.map(a, &[rw], Access::ReadWrite)?;
    w.page(0).expect("page").write(100, b"B was here")?;
    println!("grant_b: (b) wrote to A's writable page");
    // Give A time to see it through its own mapping, then unmap.
    pause(Duration::from_millis(500));
    w.unmap()?;
    println!("grant_b: PASS");
    Ok(())
}

fn wait_key<T: xenpv::xenstore::Transport>(xs: &mut xenpv::xenstore::Client<T>, key: &str) -> Result<alloc::string::String, Error> {
    let deadline = xenpv::time::now_ns() + 60_000_000_000;
    loop {
        match xs.read_string(key) {
            Ok(v) => return Ok(v),
            Err(XsError::Errno(_)) if xenpv::time::now_ns() < deadline => pause(Duration::from_millis(50)),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits `d` by yielding the CPU and polling the clock.
fn pause(d: Duration) {
    let until = xenpv::time::now_ns() + d.as_nanos() as u64;
    while xenpv::time::now_ns() < until {
        xenpv::hypercall::sched_yield();
    }
}
