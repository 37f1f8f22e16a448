//! Who listens to which port: the handler table and the "fired" bits
//! that waiters consume. Plain atomics, no unsafe, host-tested.
//!
//! Handlers run inside the upcall with events masked, on whatever stack
//! was interrupted. They must be short and must not take a lock that
//! ordinary code may hold (the console's, an allocator's): a handler
//! that blocks on such a lock deadlocks the vCPU.

use super::two_level::{word_bit, PortOutOfRange};
use crate::abi::event::EVTCHN_2L_NR_CHANNELS;
use crate::types::EvtchnPort;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

/// A port's handler, called from the upcall with the port that fired.
pub type Handler = fn(EvtchnPort);

/// Per-port handlers and fired bits.
#[derive(Debug)]
pub struct Table {
    // One small lock per port. The upcall only ever `try_lock`s, so a
    // handler being replaced while an event arrives is skipped for that
    // event (its fired bit is still set) instead of deadlocking; the guest
    // glue also masks upcalls around `set_handler`.
    handlers: [Mutex<Option<Handler>>; EVTCHN_2L_NR_CHANNELS as usize],
    fired: [AtomicU64; 64],
}

impl Default for Table {
    fn default() -> Self {
        Self::new()
    }
}

impl Table {
    /// An empty table: no handlers, nothing fired.
    pub const fn new() -> Self {
        Table {
            handlers: [const { Mutex::new(None) }; EVTCHN_2L_NR_CHANNELS as usize],
            fired: [const { AtomicU64::new(0) }; 64],
        }
    }

    /// Installs (or with `None`, removes) the handler of `port`.
    pub fn set_handler(
        &self,
        port: EvtchnPort,
        handler: Option<Handler>,
    ) -> Result<(), PortOutOfRange> {
        word_bit(port)?;
        *self.handlers[port.0 as usize].lock() = handler;
        Ok(())
    }

    /// Records that `port` fired and runs its handler, if any. Called by
    /// the upcall for every delivered port.
    pub fn deliver(&self, port: EvtchnPort) {
        let Ok((w, bit)) = word_bit(port) else { return };
        self.fired[w].fetch_or(bit, Ordering::AcqRel);
        let handler = self.handlers[port.0 as usize].try_lock().and_then(|h| *h);
        if let Some(handler) = handler {
            handler(port);
        }
    }

    /// Clears and returns whether `port` fired since the last call.
    pub fn take_fired(&self, port: EvtchnPort) -> bool {
        match word_bit(port) {
            Ok((w, bit)) => self.fired[w].fetch_and(!bit, Ordering::AcqRel) & bit != 0,
            Err(_) => false,
        }
    }

    /// Whether `port` fired since the last `take_fired`, without clearing.
    pub fn has_fired(&self, port: EvtchnPort) -> bool {
        match word_bit(port) {
            Ok((w, bit)) => self.fired[w].load(Ordering::Acquire) & bit != 0,
            Err(_) => false,
        }
    }

    /// Forgets a port entirely (after `close`).
    pub fn clear(&self, port: EvtchnPort) {
        let _ = self.set_handler(port, None);
        self.take_fired(port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    static SEEN: AtomicU32 = AtomicU32::new(u32::MAX);

    fn record(port: EvtchnPort) {
        SEEN.store(port.0, Ordering::SeqCst);
    }

    #[test]
    fn handlers_run_and_fired_bits_are_consumed_once() {
        let t = Table::new();
        t.set_handler(EvtchnPort(4095), Some(record)).unwrap();
        t.deliver(EvtchnPort(4095));
        assert_eq!(SEEN.load(Ordering::SeqCst), 4095);
        assert!(t.has_fired(EvtchnPort(4095)));
        assert!(t.take_fired(EvtchnPort(4095)));
        assert!(!t.take_fired(EvtchnPort(4095)));
        // No handler: only the fired bit.
        t.deliver(EvtchnPort(3));
        assert!(t.take_fired(EvtchnPort(3)));
        assert_eq!(SEEN.load(Ordering::SeqCst), 4095);
        t.clear(EvtchnPort(4095));
        t.deliver(EvtchnPort(4095));
        assert_eq!(SEEN.load(Ordering::SeqCst), 4095);
        assert!(t.set_handler(EvtchnPort(4096), Some(record)).is_err());
        t.deliver(EvtchnPort(9999));
        assert!(!t.take_fired(EvtchnPort(9999)));
    }

    static REENTRANT: Table = Table::new();
    static SLOT_FREE: AtomicU32 = AtomicU32::new(0);

    /// Looks at its own handler slot, then removes itself, as a handler
    /// may (`set_handler` takes the slot's lock and would spin forever on
    /// a lock `deliver` held).
    fn reenter(port: EvtchnPort) {
        let free = REENTRANT.handlers[port.0 as usize].try_lock().is_some();
        SLOT_FREE.store(if free { 1 } else { 2 }, Ordering::SeqCst);
        if free {
            REENTRANT.set_handler(port, None).unwrap();
        }
    }

    #[test]
    fn handlers_run_with_their_slot_unlocked() {
        REENTRANT.set_handler(EvtchnPort(7), Some(reenter)).unwrap();
        REENTRANT.deliver(EvtchnPort(7));
        assert_eq!(SLOT_FREE.load(Ordering::SeqCst), 1, "slot was locked");
        // It removed itself: a second event only sets the fired bit.
        SLOT_FREE.store(0, Ordering::SeqCst);
        REENTRANT.deliver(EvtchnPort(7));
        assert_eq!(SLOT_FREE.load(Ordering::SeqCst), 0);
        assert!(REENTRANT.take_fired(EvtchnPort(7)));
    }
}
