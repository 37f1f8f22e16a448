//! A disk through Linux's xen-blkback: connects to `xvda` (a raw image in
//! dom0, block_rw.cfg), writes a pattern across the whole disk in 64 KiB
//! writes, flushes, reads everything back and checks every sector; then
//! checks that `xvdb`, given read-only, refuses a write with a typed
//! error. The dom0 companion checks the image's bytes once the guest has
//! gone. Prints the write and read rates (I/O time only).
//!
//! The pattern: each 512-byte sector holds 16 lines of 32 bytes,
//! `xenpv block_rw sector #NNNNNNNN\n` with the sector's number, so
//! dom0's busybox tools can check it.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use xenpv::block::{BlkFront, BlockDevice, BlockError, Options};
use xenpv::{println, Xen};

xenpv::main!(main);

const XVDA: u32 = 51712;
const XVDB: u32 = 51728;
const CHUNK: usize = 64 * 1024;

fn fill(first_sector: u64, buf: &mut [u8]) {
    for (i, sector) in buf.chunks_mut(512).enumerate() {
        let line = alloc::format!("xenpv block_rw sector #{:08}\n", first_sector + i as u64);
        for l in sector.chunks_mut(32) {
            l.copy_from_slice(line.as_bytes());
        }
    }
}

fn mib_per_s(bytes: u64, ns: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / (ns.max(1) as f64 / 1e9)
}

fn main(xen: Xen) -> Result<(), xenpv::Error> {
    // A 4-page ring where blkback offers one, 16 requests in flight.
    let opts = Options {
        in_flight: 16,
        ..Options::default()
    };
    let mut disk = BlkFront::connect(xen.grants()?, xen.events(), xen.store()?, XVDA, opts)?;
    let info = disk.info();
    let (ring_pages, in_flight) = disk.ring_pages();
    println!("block_rw: xvda: ring of {ring_pages} pages, {in_flight} requests in flight");
    println!(
        "block_rw: xvda: {} sectors ({} KiB), sector-size {}, read-only {}, flush {}, barrier {}",
        info.sectors,
        info.sectors / 2,
        info.sector_size,
        info.read_only,
        info.flush,
        info.barrier
    );
    let per_chunk = (CHUNK / 512) as u64;
    let chunks = info.sectors / per_chunk;
    let mut buf = vec![0u8; CHUNK];
    let mut write_ns = 0;
    for c in 0..chunks {
        fill(c * per_chunk, &mut buf);
        let t = xen.now_ns();
        disk.write(c * per_chunk, &buf)?;
        write_ns += xen.now_ns() - t;
    }
    let t = xen.now_ns();
    disk.flush()?;
    let flush_ns = xen.now_ns() - t;
    let (mut read_ns, mut want) = (0, vec![0u8; CHUNK]);
    for c in 0..chunks {
        let t = xen.now_ns();
        disk.read(c * per_chunk, &mut buf)?;
        read_ns += xen.now_ns() - t;
        fill(c * per_chunk, &mut want);
        if buf != want {
            let bad = buf.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(0);
            println!(
                "block_rw: FAIL: sector {} reads back wrong",
                c * per_chunk + (bad / 512) as u64
            );
            return Err(xenpv::Error::App("read-back differs"));
        }
    }
    let bytes = chunks * CHUNK as u64;
    println!(
        "block_rw: wrote {} KiB at {:.2} MiB/s, flushed in {} us, read back at {:.2} MiB/s: every sector checked",
        bytes / 1024,
        mib_per_s(bytes, write_ns),
        flush_ns / 1000,
        mib_per_s(bytes, read_ns)
    );
    disk.close()?;

    // A read-only disk reads, and refuses writes before sending anything.
    let mut ro = BlkFront::connect(
        xen.grants()?,
        xen.events(),
        xen.store()?,
        XVDB,
        Options::default(),
    )?;
    let mut sector = [0u8; 512];
    ro.read(0, &mut sector)?;
    match ro.write(0, &sector) {
        Err(BlockError::ReadOnly) => println!(
            "block_rw: xvdb is read-only ({} sectors): write refused with ReadOnly",
            ro.info().sectors
        ),
        other => {
            println!("block_rw: FAIL: a write to read-only xvdb gave {other:?}");
            return Err(xenpv::Error::App("read-only disk took a write"));
        }
    }
    ro.close()?;
    println!("block_rw: PASS");
    Ok(())
}
