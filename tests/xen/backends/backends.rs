//! The lab's split-driver backends (xen-netback, xen-blkback in dom0): a
//! guest with one vif and one disk (backends.cfg) that drives neither. It
//! prints the front-end dirs xl made for it, then waits for the dom0
//! companion's verdict (backends.dom0.sh checks the backends reached
//! InitWait, the hotplug scripts ran, the vif is in xenbr0, and detaches
//! both devices) in `data/verdict`, prints it and powers off.
#![no_std]
#![no_main]

use core::time::Duration;
use xenpv::println;
use xenpv_test_support::guest as helpers;

xenpv::main!(main);

fn main(xen: xenpv::Xen) -> Result<(), xenpv::Error> {
    let xs = xen.store()?;
    for dev in ["device/vif/0", "device/vbd/51712"] {
        let backend = xs.lock().read_string(&alloc_path(dev, "backend"));
        match backend {
            Ok(b) => println!("backends: {dev}: backend {}", b.trim()),
            Err(e) => println!("backends: {dev}: no backend node ({e:?})"),
        }
    }
    xs.lock().write("data/ready", b"1")?;
    let verdict = helpers::wait_key_for(&mut xs.lock(), "data/verdict", Duration::from_secs(50))?;
    println!("backends: dom0 says: {}", verdict.trim());
    Ok(())
}

fn alloc_path(dir: &str, key: &str) -> alloc::string::String {
    alloc::format!("{dir}/{key}")
}

extern crate alloc;
