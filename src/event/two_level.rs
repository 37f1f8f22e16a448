//! The 2-level event-channel ABI over `shared_info` (public/xen.h,
//! "Event channel endpoints" and public/event_channel.h).
//!
//! Xen marks port `p` pending by setting bit `p % 64` of
//! `evtchn_pending[p / 64]`, then (if the port is not masked) bit `p / 64`
//! of the vCPU's `evtchn_pending_sel`, then `evtchn_upcall_pending`, and
//! calls the guest's event callback unless `evtchn_upcall_mask` is set.
//! This module is that protocol's guest half as pure logic over a
//! [`SharedMem`] view, so it runs against a fake page on the host; the
//! hypercalls and the upcall entry live in `event::guest`.

use crate::abi::event::{offsets, BITS_PER_WORD, EVTCHN_2L_NR_CHANNELS};
use crate::shared_mem::SharedMem;
use crate::types::EvtchnPort;
use core::sync::atomic::Ordering;

/// A port outside the 2-level ABI's 4096 channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortOutOfRange(pub EvtchnPort);

/// Splits a port into (word index, bit mask) of the bitmaps.
pub fn word_bit(port: EvtchnPort) -> Result<(usize, u64), PortOutOfRange> {
    if port.0 >= EVTCHN_2L_NR_CHANNELS {
        return Err(PortOutOfRange(port));
    }
    Ok((
        (port.0 / BITS_PER_WORD) as usize,
        1u64 << (port.0 % BITS_PER_WORD),
    ))
}

/// The event state of one vCPU in a `shared_info` page.
#[derive(Debug, Clone, Copy)]
pub struct TwoLevel {
    page: SharedMem<'static>,
    vcpu_info: usize,
}

impl TwoLevel {
    /// Views `page` (a whole `shared_info`) for vCPU `vcpu`; `None` if the
    /// page is too short to hold that vCPU's `vcpu_info` and the bitmaps.
    pub fn new(page: SharedMem<'static>, vcpu: usize) -> Option<Self> {
        let vcpu_info = vcpu.checked_mul(offsets::VCPU_INFO_SIZE)?;
        let need = (offsets::WC_SEC_HI + 4).max(vcpu_info + offsets::VCPU_INFO_SIZE);
        (page.len() >= need && vcpu_info < offsets::EVTCHN_PENDING)
            .then_some(TwoLevel { page, vcpu_info })
    }

    /// The underlying page (for the time fields).
    pub fn page(&self) -> SharedMem<'static> {
        self.page
    }

    /// Offset of this vCPU's `vcpu_info`.
    pub fn vcpu_info_offset(&self) -> usize {
        self.vcpu_info
    }

    // Every offset below is inside the page (checked in `new`), so the
    // SharedMem accessors cannot fail; their `Result`s are folded into a
    // harmless default rather than a panic path.
    fn word(&self, base: usize, idx: usize) -> usize {
        base + idx * 8
    }

    /// Sets `evtchn_upcall_mask`: Xen will not call the event callback.
    /// Returns the previous value.
    pub fn mask_upcalls(&self) -> bool {
        let old = self
            .page
            .swap_u8(self.vcpu_info + offsets::UPCALL_MASK, 1)
            .unwrap_or(1);
        old != 0
    }

    /// Clears `evtchn_upcall_mask`. Returns whether an upcall is pending
    /// that Xen will not deliver by itself (the caller must then issue
    /// any hypercall, Mini-OS's `force_evtchn_callback`).
    pub fn unmask_upcalls(&self) -> bool {
        let _ = self
            .page
            .store_u8(self.vcpu_info + offsets::UPCALL_MASK, 0, Ordering::SeqCst);
        // mb(): the unmask must be visible before we sample pending, the
        // partner of Xen's "set pending, then test mask" in evtchn_set_pending.
        crate::shared_mem::mb();
        self.upcall_pending()
    }

    /// Sets or clears `evtchn_upcall_mask` without looking at pending.
    pub fn set_upcall_mask(&self, masked: bool) {
        let _ = self.page.store_u8(
            self.vcpu_info + offsets::UPCALL_MASK,
            masked as u8,
            Ordering::SeqCst,
        );
    }

    /// Whether `evtchn_upcall_mask` is set.
    pub fn upcalls_masked(&self) -> bool {
        self.page
            .load_u8(self.vcpu_info + offsets::UPCALL_MASK, Ordering::SeqCst)
            .unwrap_or(1)
            != 0
    }

    /// Whether `evtchn_upcall_pending` is set.
    pub fn upcall_pending(&self) -> bool {
        self.page
            .load_u8(self.vcpu_info + offsets::UPCALL_PENDING, Ordering::SeqCst)
            .unwrap_or(0)
            != 0
    }

    /// Masks every port (Mini-OS `init_events` does the same): a port is
    /// only delivered once someone unmasks it.
    pub fn mask_all(&self) {
        for i in 0..BITS_PER_WORD as usize {
            let _ = self.page.store_u64(
                self.word(offsets::EVTCHN_MASK, i),
                u64::MAX,
                Ordering::SeqCst,
            );
        }
    }

    /// Masks `port`.
    pub fn mask(&self, port: EvtchnPort) -> Result<(), PortOutOfRange> {
        let (w, bit) = word_bit(port)?;
        let _ = self
            .page
            .fetch_or_u64(self.word(offsets::EVTCHN_MASK, w), bit);
        Ok(())
    }

    /// Unmasks `port`. An event that arrived while the port was masked
    /// set only the pending bit; like Mini-OS's `unmask_evtchn` this
    /// re-raises it in `pending_sel`/`upcall_pending`. Returns whether the
    /// caller must force a callback (an upcall is pending and upcalls
    /// are enabled, so Xen will not notice by itself until the next
    /// hypercall or interrupt).
    pub fn unmask(&self, port: EvtchnPort) -> Result<bool, PortOutOfRange> {
        let (w, bit) = word_bit(port)?;
        let _ = self
            .page
            .fetch_and_u64(self.word(offsets::EVTCHN_MASK, w), !bit);
        if !self.is_pending(port)? {
            return Ok(false);
        }
        let sel_bit = 1u64 << w;
        let old = self
            .page
            .fetch_or_u64(self.vcpu_info + offsets::PENDING_SEL, sel_bit)
            .unwrap_or(sel_bit);
        if old & sel_bit != 0 {
            return Ok(false);
        }
        let _ = self.page.store_u8(
            self.vcpu_info + offsets::UPCALL_PENDING,
            1,
            Ordering::SeqCst,
        );
        Ok(!self.upcalls_masked())
    }

    /// Whether `port` is masked.
    pub fn is_masked(&self, port: EvtchnPort) -> Result<bool, PortOutOfRange> {
        let (w, bit) = word_bit(port)?;
        Ok(self.load(offsets::EVTCHN_MASK, w) & bit != 0)
    }

    /// Whether `port` is pending.
    pub fn is_pending(&self, port: EvtchnPort) -> Result<bool, PortOutOfRange> {
        let (w, bit) = word_bit(port)?;
        Ok(self.load(offsets::EVTCHN_PENDING, w) & bit != 0)
    }

    /// Clears `port`'s pending bit; returns whether it was set.
    pub fn clear_pending(&self, port: EvtchnPort) -> Result<bool, PortOutOfRange> {
        let (w, bit) = word_bit(port)?;
        let old = self
            .page
            .fetch_and_u64(self.word(offsets::EVTCHN_PENDING, w), !bit)
            .unwrap_or(0);
        Ok(old & bit != 0)
    }

    fn load(&self, base: usize, idx: usize) -> u64 {
        self.page
            .load_u64(self.word(base, idx), Ordering::SeqCst)
            .unwrap_or(0)
    }

    /// One upcall's worth of work: takes every pending, unmasked port,
    /// clears its pending bit and hands it to `deliver`, lowest word and
    /// bit first. Repeats while Xen raises `evtchn_upcall_pending` again.
    /// Returns how many ports were delivered.
    ///
    /// Order of operations (as Linux's `__xen_evtchn_do_upcall` and
    /// Mini-OS's `do_hypervisor_callback`): clear `upcall_pending` first,
    /// then exchange `pending_sel` with 0, then clear each port's pending
    /// bit before calling its handler, so an event that arrives during a
    /// handler sets everything again and is seen on the next pass.
    pub fn dispatch(&self, mut deliver: impl FnMut(EvtchnPort)) -> usize {
        let mut delivered = 0;
        // Bounded so a peer that keeps a port firing cannot hold us in the
        // upcall forever; leftovers stay pending with upcall_pending set,
        // and Xen delivers them again after the return.
        for _ in 0..16 {
            if self
                .page
                .swap_u8(self.vcpu_info + offsets::UPCALL_PENDING, 0)
                .unwrap_or(0)
                == 0
            {
                break;
            }
            let mut sel = self
                .page
                .swap_u64(self.vcpu_info + offsets::PENDING_SEL, 0)
                .unwrap_or(0);
            while sel != 0 {
                let w = sel.trailing_zeros() as usize;
                sel &= sel - 1;
                let mut bits =
                    self.load(offsets::EVTCHN_PENDING, w) & !self.load(offsets::EVTCHN_MASK, w);
                while bits != 0 {
                    let b = bits.trailing_zeros();
                    bits &= bits - 1;
                    let port = EvtchnPort(w as u32 * BITS_PER_WORD + b);
                    let _ = self
                        .page
                        .fetch_and_u64(self.word(offsets::EVTCHN_PENDING, w), !(1u64 << b));
                    deliver(port);
                    delivered += 1;
                }
            }
        }
        delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> (SharedMem<'static>, TwoLevel) {
        let page = SharedMem::leak_zeroed(4096);
        (page, TwoLevel::new(page, 0).unwrap())
    }

    /// What Xen's `evtchn_2l_set_pending` does for vCPU 0.
    fn xen_raise(page: &SharedMem, port: u32) {
        let (w, bit) = word_bit(EvtchnPort(port)).unwrap();
        let old = page
            .fetch_or_u64(offsets::EVTCHN_PENDING + w * 8, bit)
            .unwrap();
        if old & bit != 0 {
            return;
        }
        let mask = page
            .load_u64(offsets::EVTCHN_MASK + w * 8, Ordering::SeqCst)
            .unwrap();
        if mask & bit == 0
            && page.fetch_or_u64(offsets::PENDING_SEL, 1 << w).unwrap() & (1 << w) == 0
        {
            page.store_u8(offsets::UPCALL_PENDING, 1, Ordering::SeqCst)
                .unwrap();
        }
    }

    #[test]
    fn every_port_position_is_dispatched_exactly_once() {
        let (page, ev) = fresh();
        for port in 0..EVTCHN_2L_NR_CHANNELS {
            xen_raise(&page, port);
            let mut got = Vec::new();
            assert_eq!(ev.dispatch(|p| got.push(p)), 1, "port {port}");
            assert_eq!(got, [EvtchnPort(port)]);
            assert!(
                !ev.is_pending(EvtchnPort(port)).unwrap(),
                "port {port} left pending"
            );
            assert_eq!(
                page.load_u64(offsets::PENDING_SEL, Ordering::SeqCst)
                    .unwrap(),
                0
            );
            assert!(!ev.upcall_pending());
            // Nothing left over for a second upcall.
            assert_eq!(ev.dispatch(|p| panic!("spurious {p:?}")), 0);
        }
    }

    #[test]
    fn all_ports_at_once_arrive_in_port_order() {
        let (page, ev) = fresh();
        for port in (0..EVTCHN_2L_NR_CHANNELS).rev() {
            xen_raise(&page, port);
        }
        let mut got = Vec::new();
        assert_eq!(ev.dispatch(|p| got.push(p.0)), 4096);
        assert_eq!(got, (0..EVTCHN_2L_NR_CHANNELS).collect::<Vec<_>>());
        for w in 0..64 {
            assert_eq!(
                page.load_u64(offsets::EVTCHN_PENDING + w * 8, Ordering::SeqCst)
                    .unwrap(),
                0
            );
        }
    }

    #[test]
    fn masked_ports_stay_pending_until_unmasked() {
        let (page, ev) = fresh();
        ev.mask_all();
        for port in [0u32, 63, 64, 2047, 4095] {
            let p = EvtchnPort(port);
            xen_raise(&page, port);
            assert!(!ev.upcall_pending(), "a masked port raises no upcall");
            assert_eq!(ev.dispatch(|_| panic!("masked port delivered")), 0);
            assert!(ev.is_pending(p).unwrap());
            // Upcalls enabled: unmask must ask for a forced callback.
            assert!(ev.unmask(p).unwrap(), "port {port}");
            assert!(ev.upcall_pending());
            let mut got = Vec::new();
            ev.dispatch(|q| got.push(q));
            assert_eq!(got, [p]);
            ev.mask(p).unwrap();
            assert!(ev.is_masked(p).unwrap());
        }
    }

    #[test]
    fn unmask_with_upcalls_masked_defers_to_the_unmasker() {
        let (page, ev) = fresh();
        ev.mask_all();
        assert!(!ev.mask_upcalls());
        xen_raise(&page, 100);
        assert!(
            !ev.unmask(EvtchnPort(100)).unwrap(),
            "no forced callback while upcalls are masked"
        );
        assert!(ev.upcall_pending());
        assert!(
            ev.unmask_upcalls(),
            "re-enabling upcalls reports the pending upcall"
        );
        // Unmasking a port that is not pending asks for nothing.
        assert!(!ev.unmask(EvtchnPort(101)).unwrap());
    }

    #[test]
    fn an_event_raised_during_a_handler_is_seen_in_the_same_upcall() {
        let (page, ev) = fresh();
        xen_raise(&page, 5);
        let mut got = Vec::new();
        let mut once = true;
        let n = ev.dispatch(|p| {
            got.push(p.0);
            if p.0 == 5 && std::mem::take(&mut once) {
                // The peer fires again (and fires 700) while we handle 5.
                xen_raise(&page, 5);
                xen_raise(&page, 700);
            }
        });
        assert_eq!(n, 3);
        assert_eq!(got, [5, 5, 700]);
        assert!(!ev.upcall_pending());
    }

    #[test]
    fn out_of_range_ports_are_errors() {
        let (_, ev) = fresh();
        assert_eq!(
            ev.mask(EvtchnPort(4096)),
            Err(PortOutOfRange(EvtchnPort(4096)))
        );
        assert!(ev.unmask(EvtchnPort(u32::MAX)).is_err());
        assert!(ev.is_pending(EvtchnPort(5000)).is_err());
        assert!(TwoLevel::new(SharedMem::leak_zeroed(1000), 0).is_none());
        assert!(TwoLevel::new(SharedMem::leak_zeroed(4096), 32).is_none());
    }
}
