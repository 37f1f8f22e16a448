//! Block benchmark guest (run by `cargo xtask bench`): sequential writes
//! and reads over the whole of `xvda` (a raw image in dom0 served by
//! Linux's xen-blkback) through BlkFront, next to a Linux PV guest doing
//! the same with `dd oflag=direct`/`iflag=direct` in the same run.
//!
//! For each size of `chunks=` (bytes per call, comma-separated, default
//! 65536), `runs=` times (default 3): write the disk from start to end in
//! calls of that size, then read it back the same way.
//! Each pass is timed around the I/O calls alone (the buffer is prepared
//! once, the data is not checked: block_rw checks it); the write pass
//! ends when the last write completed, before the flush, which is timed
//! on its own (dd with O_DIRECT does not flush either).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use xenpv::block::{BlkFront, BlockDevice, Options};
use xenpv::{println, Xen};

xenpv::main!(main);

const XVDA: u32 = 51712;

fn main(xen: Xen) -> Result<(), xenpv::Error> {
    let runs: u32 = xen.arg("runs").and_then(|v| v.parse().ok()).unwrap_or(3);
    let chunks_arg = xen.arg("chunks").unwrap_or("65536");
    let mut disk = BlkFront::connect(xen.grants()?, xen.events(), xen.store()?, XVDA, Options::default())?;
    let sectors = disk.info().sectors;
    println!("blk_bench: xvda {} KiB, calls of {chunks_arg} bytes, {runs} runs each", sectors / 2);
    for chunk in chunks_arg.split(',').filter_map(|c| c.parse::<usize>().ok()) {
        pass(&xen, &mut disk, sectors, chunk, runs)?;
    }
    Ok(())
}

fn pass<D: BlockDevice>(xen: &Xen, disk: &mut D, sectors: u64, chunk: usize, runs: u32) -> Result<(), xenpv::Error> {
    let per_chunk = (chunk / 512) as u64;
    let chunks = sectors / per_chunk;
    let bytes = chunks * chunk as u64;
    let mut buf = vec![0x5au8; chunk];
    for run in 1..=runs {
        let t = xen.now_ns();
        for c in 0..chunks {
            disk.write(c * per_chunk, &buf)?;
        }
        let write_ns = xen.now_ns() - t;
        let t = xen.now_ns();
        disk.flush()?;
        let flush_ns = xen.now_ns() - t;
        let t = xen.now_ns();
        for c in 0..chunks {
            disk.read(c * per_chunk, &mut buf)?;
        }
        let read_ns = xen.now_ns() - t;
        println!("blk_bench: block write run {run}: {bytes} bytes in {write_ns} ns, {chunk}-byte requests (flush after it {} us)", flush_ns / 1000);
        println!("blk_bench: block read run {run}: {bytes} bytes in {read_ns} ns, {chunk}-byte requests");
    }
    Ok(())
}
