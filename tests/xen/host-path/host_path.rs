//! One image, two roles, for xenpv-run's real-host path
//! (tests/xen/host-path). Without arguments (the lab's guest, and the
//! peer the companion's xenpv-run boots) it prints and powers off. With
//! `inner` (the application of that xenpv-run) it reads the peer's domain
//! id that the runner promises in `data/peers/<name>` and exits with code
//! 3, which xenpv-run must read back from xenstore and exit with.
#![no_std]
#![no_main]

use xenpv::{println, Error, Xen};

xenpv::main!(main);

fn main(xen: Xen) -> Result<(), Error> {
    if xen.args().next() != Some("inner") {
        println!("host_path: up");
        return Ok(());
    }
    let peer = xen.store()?.lock().read_string("data/peers/host_path_peer")?;
    println!("inner: peer host_path_peer is domain {peer}");
    xen.exit(3)
}
