//! Under xl with a dom0 companion (xs_watch.dom0.sh): checks `name` and
//! `domid` against the xl config and against what dom0's `xl domid`
//! reported, then watches `data/ping`, says it is ready, and reports the
//! watch event dom0's `xenstore-write` causes.
#![no_std]
#![no_main]

extern crate alloc;

use xenpv::println;
use xenpv::xenstore::XsError;

xenpv::main!(main);

const CFG_NAME: &str = "xs_watch";
const SECOND: u64 = 1_000_000_000;

fn fail(what: &str) -> Result<(), XsError> {
    println!("xs_watch: FAIL: {what}");
    Err(XsError::Unavailable)
}

fn main(xen: xenpv::Xen) -> Result<(), XsError> {
    let store = xen.store()?;
    let mut c = store.lock();
    let domid = c.own_domid()?;
    let name = c.read_string("name")?;
    // dom0's companion writes xl's idea of our domid; it runs alongside
    // us, so wait for the key (polling: the watch test comes next).
    let mut tries = 0;
    let from_xl = loop {
        match c.read_string("data/xl-domid") {
            Ok(v) => break v,
            Err(XsError::Errno(xenpv::Errno::ENOENT)) if tries < 1500 => {
                tries += 1;
                xenpv::sleep(core::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    };
    println!("xs_watch: name \"{name}\", domid {domid}, xl says domid {from_xl}");
    if name != CFG_NAME || from_xl != alloc::format!("{}", domid.0) {
        return fail("identity does not match the xl config / xl domid");
    }
    println!("xs_watch: ok: name and domid match");

    c.watch("data/ping", "ping-token")?;
    c.write("data/watching", b"1")?;
    let t0 = xenpv::time::now_ns();
    loop {
        let e = match c.wait_watch_event(30 * SECOND) {
            Ok(e) => e,
            Err(XsError::Timeout) => return fail("no watch event within 30 s"),
            Err(e) => return Err(e),
        };
        // The first event is the one every new watch fires at once.
        match c.read_string("data/ping") {
            Ok(v) => {
                println!(
                    "xs_watch: watch event path \"{}\" token \"{}\": value \"{v}\" ({} ms after arming)",
                    e.path,
                    e.token,
                    (xenpv::time::now_ns() - t0) / 1_000_000
                );
                if e.token != "ping-token" || v != "hello from dom0" {
                    return fail("unexpected event or value");
                }
                break;
            }
            Err(XsError::Errno(xenpv::Errno::ENOENT)) => {
                println!("xs_watch: initial watch event for \"{}\" (node absent yet)", e.path);
            }
            Err(e) => return Err(e),
        }
    }
    c.unwatch("data/ping", "ping-token")?;
    c.rm("data/watching")?;
    println!("xs_watch: all checks passed");
    Ok(())
}
