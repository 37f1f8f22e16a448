//! The guest side of the store page's two byte rings
//! (`xenstore_domain_interface`, public/io/xs_wire.h): we produce into
//! `req` and consume from `rsp`. Pure index arithmetic over a
//! [`SharedMem`] page, host-tested; xenstored owns `req_cons` and
//! `rsp_prod`, and a value that puts more than a ring's worth between
//! producer and consumer is a corrupt peer, reported as an error.

use crate::abi::xenstore::{ring, XENSTORE_RING_SIZE};
use crate::shared_mem::{mb, wmb, SharedMem};
use core::sync::atomic::Ordering;

/// xenstored left a ring in an impossible state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorruptIndex {
    /// Producer index seen.
    pub prod: u32,
    /// Consumer index seen.
    pub cons: u32,
}

fn masked(idx: u32) -> usize {
    idx as usize & (XENSTORE_RING_SIZE - 1)
}

/// The store page.
#[derive(Debug, Clone, Copy)]
pub struct StoreRing<'a> {
    page: SharedMem<'a>,
}

impl<'a> StoreRing<'a> {
    /// Wraps the store page; `None` if it is too short.
    pub fn new(page: SharedMem<'a>) -> Option<Self> {
        (page.len() >= ring::SIZE).then_some(StoreRing { page })
    }

    fn load(&self, off: usize, order: Ordering) -> u32 {
        // In bounds by construction (`new` checked the length).
        self.page.load_u32(off, order).unwrap_or(0)
    }

    fn indices(
        &self,
        prod_off: usize,
        cons_off: usize,
        peer_is_prod: bool,
    ) -> Result<(u32, u32), CorruptIndex> {
        // Acquire on the peer's index pairs with its release of the data
        // (xs_wire users: `rmb()` after reading the peer's index).
        let (p_ord, c_ord) = if peer_is_prod {
            (Ordering::Acquire, Ordering::Relaxed)
        } else {
            (Ordering::Relaxed, Ordering::Acquire)
        };
        let cons = self.load(cons_off, c_ord);
        let prod = self.load(prod_off, p_ord);
        if prod.wrapping_sub(cons) as usize > XENSTORE_RING_SIZE {
            return Err(CorruptIndex { prod, cons });
        }
        Ok((prod, cons))
    }

    /// Free bytes in the request ring.
    pub fn request_space(&self) -> Result<usize, CorruptIndex> {
        let (prod, cons) = self.indices(ring::REQ_PROD, ring::REQ_CONS, false)?;
        Ok(XENSTORE_RING_SIZE - prod.wrapping_sub(cons) as usize)
    }

    /// Bytes waiting in the response ring.
    pub fn response_available(&self) -> Result<usize, CorruptIndex> {
        let (prod, cons) = self.indices(ring::RSP_PROD, ring::RSP_CONS, true)?;
        Ok(prod.wrapping_sub(cons) as usize)
    }

    /// Copies as much of `bytes` as fits into the request ring and
    /// publishes it. Returns the count (0 when full).
    pub fn write_request(&self, bytes: &[u8]) -> Result<usize, CorruptIndex> {
        let (prod, cons) = self.indices(ring::REQ_PROD, ring::REQ_CONS, false)?;
        let n = (XENSTORE_RING_SIZE - prod.wrapping_sub(cons) as usize).min(bytes.len());
        let start = masked(prod);
        let first = n.min(XENSTORE_RING_SIZE - start);
        // Offsets stay inside req[] (start + first <= RING_SIZE): cannot fail.
        let _ = self.page.write(ring::REQ + start, &bytes[..first]);
        let _ = self.page.write(ring::REQ, &bytes[first..n]);
        // wmb(): data before the index that publishes it (xenbus_comms.c
        // `virt_wmb(); intf->req_prod += avail;`).
        wmb();
        let _ = self.page.store_u32(
            ring::REQ_PROD,
            prod.wrapping_add(n as u32),
            Ordering::Relaxed,
        );
        Ok(n)
    }

    /// Copies up to `buf.len()` waiting bytes out of the response ring and
    /// frees their space. Returns the count (0 when empty).
    pub fn read_response(&self, buf: &mut [u8]) -> Result<usize, CorruptIndex> {
        let (prod, cons) = self.indices(ring::RSP_PROD, ring::RSP_CONS, true)?;
        let n = (prod.wrapping_sub(cons) as usize).min(buf.len());
        let start = masked(cons);
        let first = n.min(XENSTORE_RING_SIZE - start);
        let _ = self.page.read(ring::RSP + start, &mut buf[..first]);
        let _ = self.page.read(ring::RSP, &mut buf[first..n]);
        // mb(): our reads of the data complete before xenstored may see
        // the space as free and overwrite it (xenbus_comms.c `virt_mb();
        // intf->rsp_cons += avail;`).
        mb();
        let _ = self.page.store_u32(
            ring::RSP_CONS,
            cons.wrapping_add(n as u32),
            Ordering::Relaxed,
        );
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_wrap_and_indices_overflow() {
        let page = SharedMem::leak_zeroed(4096);
        let start = u32::MAX - 300;
        page.store_u32(ring::REQ_PROD, start, Ordering::Relaxed)
            .unwrap();
        page.store_u32(ring::REQ_CONS, start, Ordering::Relaxed)
            .unwrap();
        let r = StoreRing::new(page).unwrap();
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let mut sent = 0;
        let mut got = Vec::new();
        while sent < data.len() {
            sent += r.write_request(&data[sent..]).unwrap();
            // Play xenstored: consume everything.
            let cons = page.load_u32(ring::REQ_CONS, Ordering::Relaxed).unwrap();
            let prod = page.load_u32(ring::REQ_PROD, Ordering::Acquire).unwrap();
            let mut c = cons;
            while c != prod {
                let mut b = [0];
                page.read(ring::REQ + masked(c), &mut b).unwrap();
                got.push(b[0]);
                c = c.wrapping_add(1);
            }
            page.store_u32(ring::REQ_CONS, c, Ordering::Release)
                .unwrap();
        }
        assert_eq!(got, data);
    }

    #[test]
    fn responses_wrap_and_free_space() {
        let page = SharedMem::leak_zeroed(4096);
        let r = StoreRing::new(page).unwrap();
        let mut expected = Vec::new();
        let mut got = Vec::new();
        let mut p = 0u32;
        for round in 0..10u32 {
            let len = 700 + round as usize;
            for i in 0..len {
                let b = (round as usize * 31 + i) as u8;
                page.write(ring::RSP + masked(p), &[b]).unwrap();
                expected.push(b);
                p = p.wrapping_add(1);
            }
            page.store_u32(ring::RSP_PROD, p, Ordering::Release)
                .unwrap();
            assert_eq!(r.response_available().unwrap(), len);
            let mut buf = vec![0u8; 4096];
            let n = r.read_response(&mut buf[..300]).unwrap();
            let m = r.read_response(&mut buf[300..]).unwrap();
            assert_eq!(n + m, len);
            got.extend_from_slice(&buf[..len]);
            assert_eq!(r.read_response(&mut buf).unwrap(), 0);
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn corrupt_peer_indices_are_errors_and_change_nothing() {
        let page = SharedMem::leak_zeroed(4096);
        let r = StoreRing::new(page).unwrap();
        page.store_u32(ring::RSP_PROD, 1025, Ordering::Relaxed)
            .unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(
            r.read_response(&mut buf),
            Err(CorruptIndex {
                prod: 1025,
                cons: 0
            })
        );
        assert_eq!(page.load_u32(ring::RSP_CONS, Ordering::Relaxed).unwrap(), 0);
        // A consumer index ahead of our producer.
        page.store_u32(ring::REQ_CONS, 10, Ordering::Relaxed)
            .unwrap();
        assert_eq!(
            r.write_request(b"x"),
            Err(CorruptIndex { prod: 0, cons: 10 })
        );
        assert_eq!(page.load_u32(ring::REQ_PROD, Ordering::Relaxed).unwrap(), 0);
        assert!(StoreRing::new(SharedMem::leak_zeroed(2048)).is_none());
    }
}
