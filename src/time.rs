//! Time: Xen system time from `vcpu_time_info` (public/xen.h, "Time
//! information") and the wall clock in `shared_info`: the clock only.
//! The one-shot timer and `sleep`, which block on events, are in
//! [`crate::event`], the layer above.
//!
//! Xen publishes, per vCPU, a TSC stamp and the system time at that
//! stamp plus a fixed-point factor: `ns = system_time +
//! ((tsc - tsc_timestamp) << shift) * mul >> 32` (a negative shift is a
//! right shift). It updates the record under a version counter that is
//! odd while an update is in progress, so a reader retries until it
//! sees the same even version before and after copying the fields.

use crate::abi::event::offsets;
use crate::shared_mem::{rmb, SharedMem};
use core::sync::atomic::Ordering;
use core::time::Duration;

/// Scales a TSC delta to nanoseconds (`pvclock_scale_delta` in Linux,
/// `scale_delta` in Mini-OS): shift, then a 32.32 fixed-point multiply.
pub fn scale_delta(delta: u64, mul: u32, shift: i8) -> u64 {
    let d = if shift < 0 {
        delta >> shift.unsigned_abs().min(63)
    } else {
        delta << (shift as u32).min(63)
    };
    ((d as u128 * mul as u128) >> 32) as u64
}

/// A consistent copy of one vCPU's `vcpu_time_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuTime {
    /// TSC value at `system_time`.
    pub tsc_timestamp: u64,
    /// Xen system time (ns since Xen booted) at `tsc_timestamp`.
    pub system_time: u64,
    /// TSC to ns multiplier (32.32 fixed point, after the shift).
    pub tsc_to_system_mul: u32,
    /// Power-of-two pre-shift of the TSC delta.
    pub tsc_shift: i8,
}

impl VcpuTime {
    /// Xen system time in ns when the TSC reads `tsc`.
    ///
    /// The difference is taken modulo 2^64, as Linux's pvclock does: Xen
    /// gives a domU a TSC offset, so the stamp may sit just below 2^64
    /// while the guest's TSC reads a small number (seen under Xen 4.17:
    /// stamp 0xFFFFFFFFE2087A2F, TSC 1,345,804,757). A saturating
    /// subtraction froze the clock at the stamp in such domains. A TSC
    /// read a little *before* the stamp (a negative difference) counts as
    /// the stamp itself.
    pub fn system_time_at(&self, tsc: u64) -> u64 {
        let delta = match tsc.wrapping_sub(self.tsc_timestamp) {
            d if (d as i64) < 0 => 0,
            d => d,
        };
        self.system_time
            .wrapping_add(scale_delta(delta, self.tsc_to_system_mul, self.tsc_shift))
    }
}

/// How many times a reader retries a torn record before giving up (Xen
/// holds a record odd for a few instructions; this is a safety net).
const MAX_RETRIES: u32 = 1 << 20;

/// Reads the `vcpu_time_info` of the `vcpu_info` at `vcpu_info` in the
/// `shared_info` view, retrying while Xen updates it. `None` if the
/// version never settles or the view is too short.
pub fn read_vcpu_time(page: &SharedMem<'_>, vcpu_info: usize) -> Option<VcpuTime> {
    read_vcpu_time_and_tsc(page, vcpu_info, || 0).map(|(t, _)| t)
}

/// Like [`read_vcpu_time`], and also reads the TSC with `tsc` *inside*
/// the version window, so the TSC value and the record belong together:
/// if Xen moved this vCPU to another physical CPU (and rewrote the record
/// for that CPU's TSC) between the two reads, the version changed and the
/// pair is read again (Linux's pvclock reader does the same).
pub fn read_vcpu_time_and_tsc(
    page: &SharedMem<'_>,
    vcpu_info: usize,
    mut tsc: impl FnMut() -> u64,
) -> Option<(VcpuTime, u64)> {
    let t = vcpu_info.checked_add(offsets::TIME)?;
    for _ in 0..MAX_RETRIES {
        let v1 = page
            .load_u32(t + offsets::TIME_VERSION, Ordering::Acquire)
            .ok()?;
        if v1 & 1 != 0 {
            core::hint::spin_loop();
            continue;
        }
        // rmb(): the fields are read after the first version read
        // (Acquire above) and before the second (this fence), the reader
        // half of Xen's `version++; wmb(); update; wmb(); version++`.
        let tsc_timestamp = page
            .load_u64(t + offsets::TIME_TSC_TIMESTAMP, Ordering::Relaxed)
            .ok()?;
        let system_time = page
            .load_u64(t + offsets::TIME_SYSTEM_TIME, Ordering::Relaxed)
            .ok()?;
        let tsc_to_system_mul = page
            .load_u32(t + offsets::TIME_TSC_MUL, Ordering::Relaxed)
            .ok()?;
        let tsc_shift = page
            .load_u8(t + offsets::TIME_TSC_SHIFT, Ordering::Relaxed)
            .ok()? as i8;
        let now = tsc();
        rmb();
        let v2 = page
            .load_u32(t + offsets::TIME_VERSION, Ordering::Relaxed)
            .ok()?;
        if v1 == v2 {
            return Some((
                VcpuTime {
                    tsc_timestamp,
                    system_time,
                    tsc_to_system_mul,
                    tsc_shift,
                },
                now,
            ));
        }
    }
    None
}

/// Reads the wall clock at Xen system time 0 (`wc_sec`/`wc_nsec`, with
/// `wc_sec_hi`), retrying on `wc_version` like [`read_vcpu_time`].
pub fn read_wallclock_base(page: &SharedMem<'_>) -> Option<Duration> {
    for _ in 0..MAX_RETRIES {
        let v1 = page.load_u32(offsets::WC_VERSION, Ordering::Acquire).ok()?;
        if v1 & 1 != 0 {
            core::hint::spin_loop();
            continue;
        }
        let lo = page.load_u32(offsets::WC_SEC, Ordering::Relaxed).ok()?;
        let nsec = page.load_u32(offsets::WC_NSEC, Ordering::Relaxed).ok()?;
        let hi = page.load_u32(offsets::WC_SEC_HI, Ordering::Relaxed).ok()?;
        rmb();
        let v2 = page.load_u32(offsets::WC_VERSION, Ordering::Relaxed).ok()?;
        if v1 == v2 {
            let sec = ((hi as u64) << 32) | lo as u64;
            return Some(Duration::new(sec, nsec.min(999_999_999)));
        }
    }
    None
}

/// How far ahead the vCPU's one-shot timer is armed at most: 1 hour.
///
/// Xen keeps the timer's deadline as `s_time_t`, a signed 64-bit count
/// of nanoseconds: a deadline of 2^63 or more (what a saturating
/// `now + Duration::MAX` gives) reads as negative, i.e. long past, so
/// the timer fires at once and a long wait spins at two hypercalls per
/// turn. `set_timer_op` moreover takes any offset over 2^50 ns (about 13
/// days) for a guest bug and fires 100 ms later instead. An hour is far
/// below both limits and costs one wake-up an hour; the waits re-arm the
/// timer on every turn, so a longer wait is simply several legs.
pub const MAX_TIMER_SPAN_NS: u64 = 3_600_000_000_000;

/// The system time to program into Xen's one-shot timer when the caller
/// wants to be woken at `deadline_ns` and it is `now_ns` now: the
/// deadline itself when it is near (or past: the timer then fires at
/// once, as it should), else [`MAX_TIMER_SPAN_NS`] from now, and never
/// at or beyond 2^63 (a past time to Xen). Never 0 either:
/// `set_timer_op(0)` *stops* the timer instead of firing it.
pub fn timer_deadline(now_ns: u64, deadline_ns: u64) -> u64 {
    let far = now_ns
        .saturating_add(MAX_TIMER_SPAN_NS)
        .min(i64::MAX as u64);
    deadline_ns.min(far).max(1)
}

#[cfg(target_os = "none")]
mod guest {
    use super::*;
    use crate::arch::x86_64::rdtsc;

    /// Xen system time now, in ns since Xen booted (0 before shared_info
    /// is mapped).
    pub fn now_ns() -> u64 {
        /// The latest time handed out: system time never goes backwards,
        /// even if the TSCs of the physical CPUs this vCPU runs on
        /// disagree a little (seen under QEMU-TCG).
        static LAST: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
        let Some(page) = crate::shared_info::page() else {
            return 0;
        };
        loop {
            if let Some((t, tsc)) = read_vcpu_time_and_tsc(&page, 0, rdtsc) {
                let now = t.system_time_at(tsc);
                let last = LAST.fetch_max(now, Ordering::AcqRel);
                return now.max(last);
            }
        }
    }

    /// Xen system time now, as a [`Duration`].
    pub fn now() -> Duration {
        Duration::from_nanos(now_ns())
    }

    /// The wall clock (time since the Unix epoch), as Xen keeps it.
    pub fn wallclock() -> Duration {
        let base = crate::shared_info::page()
            .and_then(|p| read_wallclock_base(&p))
            .unwrap_or_default();
        base + now()
    }

    /// The system time `d` from now, saturating (`u64::MAX` is "never";
    /// `event::set_timer` clamps what it hands to Xen, see [`timer_deadline`]).
    pub fn deadline_after(d: Duration) -> u64 {
        now_ns().saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

#[cfg(target_os = "none")]
pub use guest::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_from_an_offset_tsc_wraps_instead_of_freezing() {
        // Figures read from a domU under Xen 4.17 (the stamp is 2^64 - 502,742,481).
        let t = VcpuTime {
            tsc_timestamp: 18446744073206809135,
            system_time: 7755156867,
            tsc_to_system_mul: 3308735742,
            tsc_shift: -1,
        };
        let a = t.system_time_at(1_345_804_757);
        let b = t.system_time_at(1_419_345_836);
        assert!(a > t.system_time, "time advances past the stamp");
        assert_eq!(
            a - t.system_time,
            scale_delta(1_345_804_757 + 502_742_481, 3308735742, -1)
        );
        assert!(b > a, "and keeps advancing");
        // A TSC read just before the stamp is the stamp, not 2^64 ticks later.
        let u = VcpuTime {
            tsc_timestamp: 1000,
            ..t
        };
        assert_eq!(u.system_time_at(990), t.system_time);
    }

    #[test]
    fn far_future_deadlines_arm_the_timer_in_the_future() {
        let now = 7_755_156_867u64;
        // What `deadline_after(Duration::MAX)` gives: saturated to u64::MAX.
        let forever =
            now.saturating_add(u64::try_from(Duration::MAX.as_nanos()).unwrap_or(u64::MAX));
        for far in [
            forever,
            1 << 63,
            (1 << 63) - 1,
            now + (1 << 50),
            now + MAX_TIMER_SPAN_NS + 1,
        ] {
            let t = timer_deadline(now, far);
            // As Xen reads it (s_time_t): in the future, by at most the span.
            assert!(
                (t as i64) > now as i64,
                "{far:#x} armed at {t:#x}, the past to Xen"
            );
            assert_eq!(t, now + MAX_TIMER_SPAN_NS, "{far:#x}");
            // set_timer_op's "huge timeout" check: offset below 2^50 ns.
            assert!(t - now < 1 << 50);
        }
        // Near and past deadlines are programmed as they are.
        assert_eq!(timer_deadline(now, now + 1_000), now + 1_000);
        assert_eq!(
            timer_deadline(now, now + MAX_TIMER_SPAN_NS),
            now + MAX_TIMER_SPAN_NS
        );
        assert_eq!(timer_deadline(now, 3), 3);
        // 0 would stop the timer under set_timer_op: fire at once instead.
        assert_eq!(timer_deadline(0, 0), 1);
        // A clock near 2^63 still never yields a negative s_time_t.
        let late = i64::MAX as u64 - 10;
        assert_eq!(timer_deadline(late, u64::MAX), i64::MAX as u64);
    }

    #[test]
    fn scaling_matches_exact_arithmetic() {
        // A 2 GHz TSC: Xen picks shift 0, mul = 2^32 / 2 (0.5 ns per tick).
        assert_eq!(scale_delta(2_000_000_000, 1 << 31, 0), 1_000_000_000);
        // A 3 GHz TSC: mul = 2^32 / 3 rounded, shift 0. One second of ticks.
        let mul = ((1u64 << 32) / 3) as u32;
        let ns = scale_delta(3_000_000_000, mul, 0);
        assert!((999_999_999..=1_000_000_000).contains(&ns), "{ns}");
        // A slow 500 MHz TSC needs a left shift: 2 ns per tick = (1 << 1) * 2^32/2^32.
        assert_eq!(scale_delta(500_000_000, 1 << 31, 2), 1_000_000_000);
        // A negative shift halves first.
        assert_eq!(
            scale_delta(1000, u32::MAX, -1),
            ((500u128 * u32::MAX as u128) >> 32) as u64
        );
        // Large deltas do not overflow the 64-bit intermediate.
        assert_eq!(scale_delta(u64::MAX, 1 << 31, 0), u64::MAX >> 1);
        // Absurd shifts from a corrupt record saturate instead of panicking.
        assert_eq!(
            scale_delta(1, 1 << 31, 127),
            (((1u128 << 63) * (1u128 << 31)) >> 32) as u64
        );
        assert_eq!(scale_delta(u64::MAX, 1 << 31, -128), 0);
    }

    fn write_time(page: &SharedMem<'_>, version: u32, tsc: u64, sys: u64, mul: u32, shift: i8) {
        let t = offsets::TIME;
        page.store_u32(t, version, Ordering::SeqCst).unwrap();
        page.store_u64(t + offsets::TIME_TSC_TIMESTAMP, tsc, Ordering::SeqCst)
            .unwrap();
        page.store_u64(t + offsets::TIME_SYSTEM_TIME, sys, Ordering::SeqCst)
            .unwrap();
        page.store_u32(t + offsets::TIME_TSC_MUL, mul, Ordering::SeqCst)
            .unwrap();
        page.store_u8(t + offsets::TIME_TSC_SHIFT, shift as u8, Ordering::SeqCst)
            .unwrap();
    }

    #[test]
    fn a_stable_record_converts_tsc_to_system_time() {
        let page = SharedMem::leak_zeroed(4096);
        write_time(&page, 4, 1_000, 5_000_000, 1 << 31, 1);
        let t = read_vcpu_time(&page, 0).unwrap();
        assert_eq!(
            t,
            VcpuTime {
                tsc_timestamp: 1_000,
                system_time: 5_000_000,
                tsc_to_system_mul: 1 << 31,
                tsc_shift: 1
            }
        );
        // (3000 - 1000) << 1 * 0.5 = 2000 ns later.
        assert_eq!(t.system_time_at(3_000), 5_002_000);
        assert_eq!(
            t.system_time_at(10),
            5_000_000,
            "a TSC before the stamp clamps"
        );
    }

    #[test]
    fn an_update_in_progress_is_retried() {
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let page = SharedMem::leak_zeroed(4096);
        write_time(&page, 1, 0, 0, 0, 0);
        // Odd forever: the reader gives up rather than hang.
        assert_eq!(read_vcpu_time(&page, 0), None);
        // A writer thread keeps updating; every read must be self-consistent
        // (system_time == tsc_timestamp * 2 in every record it writes).
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let writer = std::thread::spawn(move || {
            let mut v = 2u32;
            let mut i = 0u64;
            while !s2.load(Ordering::Relaxed) {
                page.store_u32(offsets::TIME, v + 1, Ordering::SeqCst)
                    .unwrap();
                page.store_u64(
                    offsets::TIME + offsets::TIME_TSC_TIMESTAMP,
                    i,
                    Ordering::SeqCst,
                )
                .unwrap();
                page.store_u64(
                    offsets::TIME + offsets::TIME_SYSTEM_TIME,
                    i * 2,
                    Ordering::SeqCst,
                )
                .unwrap();
                page.store_u32(offsets::TIME, v + 2, Ordering::SeqCst)
                    .unwrap();
                v += 2;
                i += 1;
            }
        });
        // Under Miri (which interleaves the two threads itself) 200 reads.
        for _ in 0..if cfg!(miri) { 200 } else { 20_000 } {
            if let Some(t) = read_vcpu_time(&page, 0) {
                assert_eq!(t.system_time, t.tsc_timestamp * 2, "torn read");
            }
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
    }

    #[test]
    fn the_wallclock_combines_the_high_seconds() {
        let page = SharedMem::leak_zeroed(4096);
        page.store_u32(offsets::WC_VERSION, 2, Ordering::SeqCst)
            .unwrap();
        page.store_u32(offsets::WC_SEC, 5, Ordering::SeqCst)
            .unwrap();
        page.store_u32(offsets::WC_SEC_HI, 1, Ordering::SeqCst)
            .unwrap();
        page.store_u32(offsets::WC_NSEC, 7, Ordering::SeqCst)
            .unwrap();
        assert_eq!(
            read_wallclock_base(&page),
            Some(Duration::new((1 << 32) + 5, 7))
        );
        page.store_u32(offsets::WC_VERSION, 3, Ordering::SeqCst)
            .unwrap();
        assert_eq!(read_wallclock_base(&page), None);
    }
}
