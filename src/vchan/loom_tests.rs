//! Model checks (loom, `cargo xtask loom`) of the vchan stream protocol
//! through the library's own [`Ring`]: a writer and a reader on two
//! threads over one control page, each doing what libxenvchan's io.c
//! does. The property is the one the notify handshake exists for: a side
//! that found nothing to do and will sleep is always woken (no lost
//! wake-up), and the bytes it then reads are the ones written.

extern crate std;

use super::ring::{HostChanMemory, Progress, Ring, Side};
use crate::abi::vchan::*;
use crate::shared_mem::loom_model;
use core::sync::atomic::Ordering;
use loom::thread;

/// A server/client pair at orders 10/11 with the left ring's indices at
/// `prod`/`cons`, every header field and the first data bytes primed on
/// this thread (see `SharedMem::loom_prime`).
fn pair(prod: u32, cons: u32) -> (Ring<HostChanMemory<'static>>, Ring<HostChanMemory<'static>>) {
    let mem = HostChanMemory::new(10, 11);
    let ctrl = mem.ctrl;
    for off in [
        LEFT + RING_CONS,
        LEFT + RING_PROD,
        RIGHT + RING_CONS,
        RIGHT + RING_PROD,
    ] {
        ctrl.loom_prime(off, 4);
    }
    for off in [CLI_LIVE, SRV_LIVE, CLI_NOTIFY, SRV_NOTIFY] {
        ctrl.loom_prime(off, 1);
    }
    for i in 0..4 {
        ctrl.loom_prime(SMALL_RING_OFFSET + i, 1);
    }
    ctrl.store_u32(LEFT + RING_PROD, prod, Ordering::Relaxed)
        .unwrap();
    ctrl.store_u32(LEFT + RING_CONS, cons, Ordering::Relaxed)
        .unwrap();
    ctrl.store_u8(SRV_LIVE, 1, Ordering::Relaxed).unwrap();
    ctrl.store_u8(CLI_LIVE, 1, Ordering::Relaxed).unwrap();
    (
        Ring::new(mem.clone(), Side::Server).unwrap(),
        Ring::new(mem, Side::Client).unwrap(),
    )
}

#[test]
fn loom_a_reader_that_finds_the_ring_empty_is_woken_by_the_write() {
    loom_model(|| {
        let (mut srv, mut cli) = pair(0, 0);
        // The client writes the left ring; an event is its notify.
        let writer = thread::spawn(move || cli.write(b"ab").unwrap());
        let mut buf = [0u8; 2];
        let got = srv.read(&mut buf).unwrap();
        let wrote = writer.join().unwrap();
        assert_eq!(wrote.bytes, 2);
        if got.bytes == 0 {
            assert!(
                wrote.notify,
                "lost wake-up: the reader sleeps on an empty ring the writer filled"
            );
        } else {
            assert_eq!(
                &buf[..got.bytes],
                &b"ab"[..got.bytes],
                "read bytes before they were written"
            );
        }
    });
}

#[test]
fn loom_a_poller_that_sees_no_data_is_woken_by_the_write() {
    loom_model(|| {
        let (srv, mut cli) = pair(0, 0);
        let writer = thread::spawn(move || cli.write(b"a").unwrap());
        let ready = srv.data_ready().unwrap();
        let wrote = writer.join().unwrap();
        assert!(
            ready == 1 || wrote.notify,
            "lost wake-up after data_ready() found nothing"
        );
    });
}

#[test]
fn loom_a_writer_that_finds_the_ring_full_is_woken_by_the_read() {
    loom_model(|| {
        // The left ring (1024 bytes) is full.
        let (mut srv, mut cli) = pair(1024, 0);
        let writer = thread::spawn(move || cli.write(b"x").unwrap());
        let mut buf = [0u8; 1];
        let got: Progress = srv.read(&mut buf).unwrap();
        let wrote = writer.join().unwrap();
        assert_eq!(got.bytes, 1);
        // The reader copied the old byte out before it freed the slot the
        // writer may now fill.
        assert_eq!(
            buf[0], 0,
            "the writer overwrote a byte before the reader copied it"
        );
        assert!(
            wrote.bytes == 1 || got.notify,
            "lost wake-up: the writer sleeps on a ring the reader drained"
        );
    });
}
