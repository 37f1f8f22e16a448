//! The guest side of the PV console ring (public/io/console.h).
//!
//! Pure ring arithmetic over a [`SharedMem`] page: no hypercalls, so it is
//! tested on the host. The backend (xenconsoled) owns `out_cons`; a value
//! that makes `prod - cons` exceed the ring is a corrupt peer.

use crate::abi::console::{offsets, OUT_RING_SIZE};
use crate::shared_mem::{wmb, SharedMem};
use core::sync::atomic::Ordering;

/// The console backend left the ring in an impossible state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// `out_prod - out_cons` exceeds the ring size.
    Corrupt {
        /// Producer index (ours).
        prod: u32,
        /// Consumer index (the backend's).
        cons: u32,
    },
}

/// The output half of a console page.
#[derive(Debug, Clone, Copy)]
pub struct ConsoleRing<'a> {
    page: SharedMem<'a>,
}

impl<'a> ConsoleRing<'a> {
    /// Wraps a console page (at least 4096 bytes).
    pub fn new(page: SharedMem<'a>) -> Option<Self> {
        (page.len() >= crate::abi::PAGE_SIZE).then_some(ConsoleRing { page })
    }

    fn indices(&self) -> Result<(u32, u32), RingError> {
        // Acquire on out_cons pairs with the backend's update after it has
        // copied the bytes out: only then may we overwrite them.
        let cons = self
            .page
            .load_u32(offsets::OUT_CONS, Ordering::Acquire)
            .unwrap_or(0);
        let prod = self
            .page
            .load_u32(offsets::OUT_PROD, Ordering::Relaxed)
            .unwrap_or(0);
        if prod.wrapping_sub(cons) as usize > OUT_RING_SIZE {
            return Err(RingError::Corrupt { prod, cons });
        }
        Ok((prod, cons))
    }

    /// Bytes the backend has not consumed yet.
    pub fn pending(&self) -> Result<usize, RingError> {
        let (prod, cons) = self.indices()?;
        Ok(prod.wrapping_sub(cons) as usize)
    }

    /// Copies as much of `bytes` as fits and publishes it; returns how many
    /// bytes were written (0 when the ring is full).
    pub fn write(&self, bytes: &[u8]) -> Result<usize, RingError> {
        let (prod, cons) = self.indices()?;
        let space = OUT_RING_SIZE - prod.wrapping_sub(cons) as usize;
        let n = space.min(bytes.len());
        for (i, &b) in bytes[..n].iter().enumerate() {
            let idx = (prod.wrapping_add(i as u32) as usize) % OUT_RING_SIZE;
            // Offset is < OUT + OUT_RING_SIZE <= page size: cannot fail.
            let _ = self.page.write(offsets::OUT + idx, &[b]);
        }
        // wmb(): the bytes must be visible before the new producer index
        // (console.h users do `wmb(); intf->out_prod = prod;`).
        wmb();
        let _ = self.page.store_u32(
            offsets::OUT_PROD,
            prod.wrapping_add(n as u32),
            Ordering::Relaxed,
        );
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The backend side: consumes everything pending into `sink`.
    fn drain(page: &SharedMem, sink: &mut Vec<u8>) {
        let cons = page.load_u32(offsets::OUT_CONS, Ordering::Relaxed).unwrap();
        let prod = page.load_u32(offsets::OUT_PROD, Ordering::Acquire).unwrap();
        let mut c = cons;
        while c != prod {
            let mut b = [0u8];
            page.read(offsets::OUT + (c as usize % OUT_RING_SIZE), &mut b)
                .unwrap();
            sink.push(b[0]);
            c = c.wrapping_add(1);
        }
        page.store_u32(offsets::OUT_CONS, c, Ordering::Release)
            .unwrap();
    }

    #[test]
    fn bytes_arrive_in_order_across_wraparound_and_index_overflow() {
        let page = SharedMem::leak_zeroed(4096);
        // Start both indices just below u32::MAX so the test crosses the
        // index overflow as well as the ring's end.
        let start = u32::MAX - 700;
        page.store_u32(offsets::OUT_PROD, start, Ordering::Relaxed)
            .unwrap();
        page.store_u32(offsets::OUT_CONS, start, Ordering::Relaxed)
            .unwrap();
        let ring = ConsoleRing::new(page).unwrap();
        // Under Miri 3,000 bytes: still past the overflow and the ring's end.
        let n: u32 = if cfg!(miri) { 3_000 } else { 10_000 };
        let msg: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
        let mut got = Vec::new();
        let mut sent = 0;
        while sent < msg.len() {
            let n = ring
                .write(&msg[sent..(sent + 1500).min(msg.len())])
                .unwrap();
            sent += n;
            if n < 1500 {
                drain(&page, &mut got);
            }
        }
        drain(&page, &mut got);
        assert_eq!(got, msg);
    }

    #[test]
    fn a_full_ring_takes_nothing() {
        let page = SharedMem::leak_zeroed(4096);
        let ring = ConsoleRing::new(page).unwrap();
        assert_eq!(ring.write(&[b'x'; 3000]).unwrap(), OUT_RING_SIZE);
        assert_eq!(ring.write(b"more").unwrap(), 0);
        assert_eq!(ring.pending().unwrap(), OUT_RING_SIZE);
    }

    #[test]
    fn a_corrupt_consumer_index_is_an_error() {
        let page = SharedMem::leak_zeroed(4096);
        page.store_u32(offsets::OUT_PROD, 10, Ordering::Relaxed)
            .unwrap();
        page.store_u32(offsets::OUT_CONS, 5000, Ordering::Relaxed)
            .unwrap();
        let ring = ConsoleRing::new(page).unwrap();
        assert_eq!(
            ring.write(b"x"),
            Err(RingError::Corrupt {
                prod: 10,
                cons: 5000
            })
        );
        // Nothing was written past the check.
        assert_eq!(
            page.load_u32(offsets::OUT_PROD, Ordering::Relaxed).unwrap(),
            10
        );
    }

    #[test]
    fn short_pages_are_refused() {
        assert!(ConsoleRing::new(SharedMem::leak_zeroed(100)).is_none());
    }
}
