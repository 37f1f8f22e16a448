//! A disk taken away under a running guest: reads xvda in a loop until
//! dom0 detaches it (`xl block-detach`, block_detach.dom0.sh), and checks
//! that the read then fails with `BackendClosing` within seconds (no
//! hang) and that its end of the device was closed (xl's detach waits
//! for that). Then the next read is refused and says why again
//! (`BackendClosing`: the link's latch keeps the reason).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use xenpv::block::{BlkFront, BlockDevice, BlockError, Options};
use xenpv::{println, Xen};

xenpv::main!(main);

fn main(xen: Xen) -> Result<(), xenpv::Error> {
    let opts = Options { timeout: core::time::Duration::from_secs(20), ..Options::default() };
    let mut disk = BlkFront::connect(xen.grants()?, xen.events(), xen.store()?, 51712, opts)?;
    println!("block_detach: connected, {} sectors", disk.info().sectors);
    xen.store()?.lock().write("data/reading", b"1")?;
    let mut buf = vec![0u8; 4096];
    let start = xen.now_ns();
    let mut reads = 0u64;
    let err = loop {
        match disk.read(reads % 2048 * 8 % disk.info().sectors, &mut buf) {
            Ok(()) => reads += 1,
            Err(e) => break e,
        }
        if xen.now_ns() - start > 60_000_000_000 {
            println!("block_detach: FAIL: still reading after 60 s");
            return Err(xenpv::Error::App("no detach seen"));
        }
    };
    let t = xen.now_ns();
    println!("block_detach: read failed after {reads} reads: {err:?}");
    if err != BlockError::BackendClosing {
        return Err(xenpv::Error::App("expected BackendClosing"));
    }
    match disk.read(0, &mut buf) {
        Err(BlockError::BackendClosing) => println!("block_detach: next read: BackendClosing"),
        other => {
            println!("block_detach: FAIL: next read gave {other:?}");
            return Err(xenpv::Error::App("a detached disk read again"));
        }
    }
    drop(disk);
    println!("block_detach: PASS ({} ms from the error to here)", (xen.now_ns() - t) / 1_000_000);
    Ok(())
}
