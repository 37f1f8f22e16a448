//! Event channels: Xen's virtual interrupts (public/event_channel.h, the
//! 2-level ABI over `shared_info`).
//!
//! - [`two_level`]: the pending/mask bitmap protocol, pure logic over a
//!   `SharedMem` view of `shared_info` (host-tested for all 4096 ports).
//! - [`table`]: per-port handlers and the "fired" bits waiters consume.
//! - the guest glue (x86_64 PV only): `set_callbacks`, the upcall, the
//!   `EVTCHNOP_*` operations and race-free blocking with `SCHEDOP_block`.
//!
//! Every bound port starts masked; the `bind_*`/`alloc_unbound` calls
//! unmask the port they return, and every delivered port sets its fired
//! bit whether or not a handler is installed, so code that only waits
//! (`wait`) needs no handler at all.

pub mod ops;
#[doc(hidden)]
pub mod table;
#[doc(hidden)]
pub mod two_level;

#[cfg(target_os = "none")]
pub use ops::XenEvents;
pub use ops::{EventOps, NotifyPort, Port};
pub use table::Handler;
#[doc(hidden)]
pub use table::Table;
pub use two_level::PortOutOfRange;
#[doc(hidden)]
pub use two_level::TwoLevel;

use crate::errno::Errno;
use crate::types::{DomId, EvtchnPort};

/// Why an event-channel operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventError {
    /// The port is outside the 2-level ABI (>= 4096).
    PortOutOfRange(EvtchnPort),
    /// Xen refused the hypercall.
    Hypercall(Errno),
    /// The deadline passed first.
    Timeout,
    /// `event::init` has not run (or failed): no `shared_info` mapping.
    NotReady,
    /// The port is the runtime's own (the timer's VIRQ, xenstore's or the
    /// console's channel): closing it would stop the domain's waits.
    RuntimePort(EvtchnPort),
}

impl core::fmt::Display for EventError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EventError::PortOutOfRange(p) => {
                write!(f, "port {p} is outside the 2-level ABI (ports below 4096)")
            }
            EventError::Hypercall(e) => write!(f, "Xen refused the operation: {e}"),
            EventError::Timeout => f.write_str("the deadline passed first"),
            EventError::NotReady => {
                f.write_str("event channels are not set up (shared_info is not mapped)")
            }
            EventError::RuntimePort(p) => write!(
                f,
                "port {p} belongs to the runtime (timer, xenstore or console) and stays open"
            ),
        }
    }
}

impl From<PortOutOfRange> for EventError {
    fn from(e: PortOutOfRange) -> Self {
        EventError::PortOutOfRange(e.0)
    }
}

impl From<Errno> for EventError {
    fn from(e: Errno) -> Self {
        EventError::Hypercall(e)
    }
}

/// A virtual IRQ number (`VIRQ_*`, public/xen.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Virq(pub u32);

impl Virq {
    /// `VIRQ_TIMER`: this vCPU's timer (periodic or single-shot) expired.
    #[doc(alias = "VIRQ_TIMER")]
    pub const TIMER: Virq = Virq(crate::abi::event::VIRQ_TIMER);
}

/// What a port is bound to (`EVTCHNOP_status`'s `EVTCHNSTAT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `EVTCHNSTAT_closed`: free.
    Closed,
    /// `EVTCHNSTAT_unbound`: allocated, waiting for `remote` to bind.
    Unbound {
        /// The domain allowed to bind.
        remote: DomId,
    },
    /// `EVTCHNSTAT_interdomain`: connected to `remote`'s `remote_port`.
    Interdomain {
        /// The peer domain.
        remote: DomId,
        /// The peer's port.
        remote_port: EvtchnPort,
    },
    /// `EVTCHNSTAT_pirq`: a physical IRQ.
    Pirq(u32),
    /// `EVTCHNSTAT_virq`: a virtual IRQ.
    Virq(Virq),
    /// `EVTCHNSTAT_ipi`: an inter-vCPU channel.
    Ipi,
    /// A status value this code does not know.
    Unknown(u32),
}

#[cfg(target_os = "none")]
mod guest;
#[cfg(target_os = "none")]
pub use guest::sleep;
#[cfg(target_os = "none")]
// The event channels are reached through `Xen::events()` (`XenEvents`);
// the free functions behind it stay inside the crate. `sleep` is
// `xenpv::sleep`, like `std::thread::sleep`.
#[cfg(target_os = "none")]
pub(crate) use guest::*;
