//! Prints this domain's xenstore subtree, checks `name` against the xl
//! config, writes a key under `/local/domain/<id>/data` and reads it
//! back, and bumps a counter in a transaction.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use xenpv::xenstore::{Client, Transport, XsError};
use xenpv::{println, time};

xenpv::main!(main);

/// The `name` in examples/xenstore_walk.cfg.
const CFG_NAME: &str = "xenstore_walk";

fn walk<T: Transport>(
    c: &mut Client<T>,
    path: &str,
    depth: usize,
    budget: &mut u32,
) -> Result<(), XsError> {
    if *budget == 0 {
        return Ok(());
    }
    *budget -= 1;
    let value = match c.read(path) {
        Ok(v) => String::from_utf8(v).unwrap_or_else(|_| String::from("<binary>")),
        Err(XsError::Errno(e)) => format!("<{e:?}>"),
        Err(e) => return Err(e),
    };
    let name = path.rsplit('/').next().unwrap_or(path);
    println!(
        "xenstore_walk: {:indent$}{name} = \"{value}\"",
        "",
        indent = depth * 2
    );
    let children = match c.directory(path) {
        Ok(c) => c,
        Err(XsError::Errno(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    for child in children {
        walk(c, &format!("{path}/{child}"), depth + 1, budget)?;
    }
    Ok(())
}

fn main(xen: xenpv::Xen) -> Result<(), xenpv::Error> {
    let store = xen.store()?;
    let mut c = store.lock();
    let domid = c.own_domid()?;
    let home = c.own_domain_path()?;
    let name = c.read_string("name")?;
    println!("xenstore_walk: domid {domid}, home {home}, name \"{name}\"");
    if name != CFG_NAME || home != format!("/local/domain/{}", domid.0) {
        println!("xenstore_walk: FAIL: identity does not match the xl config");
        return Err(xenpv::Error::App("xenstore_walk check failed"));
    }
    println!("xenstore_walk: ok: name and domain path match the xl config");

    let mut budget = 200;
    walk(&mut c, &home, 0, &mut budget)?;

    let key = format!("{home}/data/xenstore_walk");
    let value = format!("written at wallclock {} s", time::wallclock().as_secs());
    c.write(&key, value.as_bytes())?;
    let back = c.read_string(&key)?;
    println!("xenstore_walk: wrote and read back {key} = \"{back}\"");
    if back != value {
        println!("xenstore_walk: FAIL: read-back differs");
        return Err(xenpv::Error::App("xenstore_walk check failed"));
    }

    let counter = format!("{home}/data/counter");
    c.write(&counter, b"41")?;
    let n = c.transaction(|tx| {
        let v = tx.read(&counter)?;
        let n: u32 = core::str::from_utf8(&v)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
            + 1;
        tx.write(&counter, format!("{n}").as_bytes())?;
        Ok(n)
    })?;
    println!("xenstore_walk: transaction committed counter = {n}");
    let missing = c.read(&format!("{home}/data/does-not-exist"));
    println!("xenstore_walk: reading a missing key gives {missing:?}");
    let t0 = time::now_ns();
    let rounds = 100;
    for _ in 0..rounds {
        c.read(&key)?;
    }
    let dt = time::now_ns() - t0;
    println!(
        "xenstore_walk: {rounds} reads in {} us ({} us per request)",
        dt / 1000,
        dt / 1000 / rounds
    );
    c.rm(&key)?;
    c.rm(&counter)?;
    println!("xenstore_walk: all checks passed");
    Ok(())
}
