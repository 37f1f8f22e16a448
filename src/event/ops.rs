//! The event-channel operations protocols need, behind one narrow trait,
//! [`EventOps`], so protocol code (vchan's handshake, waits and close)
//! runs on the host against `fake::FakeEvents` and in a guest against
//! `XenEvents` (public/event_channel.h's `EVTCHNOP_*`, `SCHEDOP_block`).

use super::{EventError, Status};
use crate::types::{DomId, EvtchnPort};

/// Event channels and the clock their waits are measured against.
pub trait EventOps {
    /// `EVTCHNOP_alloc_unbound`: a port `remote` may bind to.
    #[doc(alias = "EVTCHNOP_alloc_unbound")]
    fn alloc_unbound(&self, remote: DomId) -> Result<EvtchnPort, EventError>;
    /// `EVTCHNOP_bind_interdomain`: connects to `remote`'s unbound port.
    #[doc(alias = "EVTCHNOP_bind_interdomain")]
    fn bind_interdomain(
        &self,
        remote: DomId,
        remote_port: EvtchnPort,
    ) -> Result<EvtchnPort, EventError>;
    /// `EVTCHNOP_send`: raises the event on the far end of `port`.
    #[doc(alias = "EVTCHNOP_send")]
    fn send(&self, port: EvtchnPort) -> Result<(), EventError>;
    /// `EVTCHNOP_close`.
    #[doc(alias = "EVTCHNOP_close")]
    fn close(&self, port: EvtchnPort) -> Result<(), EventError>;
    /// `EVTCHNOP_status`.
    #[doc(alias = "EVTCHNOP_status")]
    fn status(&self, port: EvtchnPort) -> Result<Status, EventError>;
    /// Sleeps until `cond()` holds (`Ok`) or the clock reaches
    /// `deadline_ns` (`Err(Timeout)`); any event may wake it early, after
    /// which `cond` is tested again. An event that makes `cond` true is
    /// never lost between the test and the sleep.
    fn wait_until(
        &self,
        deadline_ns: Option<u64>,
        cond: &mut dyn FnMut() -> bool,
    ) -> Result<(), EventError>;
    /// The clock deadlines refer to, in nanoseconds.
    fn now_ns(&self) -> u64;

    /// The clock `d` from now, saturating (`u64::MAX` means "never";
    /// the timer is armed with a clamped value, see `time::timer_deadline`).
    fn deadline_after(&self, d: core::time::Duration) -> u64 {
        self.now_ns()
            .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

impl<E: EventOps + ?Sized> EventOps for &E {
    fn alloc_unbound(&self, remote: DomId) -> Result<EvtchnPort, EventError> {
        (**self).alloc_unbound(remote)
    }
    fn bind_interdomain(
        &self,
        remote: DomId,
        remote_port: EvtchnPort,
    ) -> Result<EvtchnPort, EventError> {
        (**self).bind_interdomain(remote, remote_port)
    }
    fn send(&self, port: EvtchnPort) -> Result<(), EventError> {
        (**self).send(port)
    }
    fn close(&self, port: EvtchnPort) -> Result<(), EventError> {
        (**self).close(port)
    }
    fn status(&self, port: EvtchnPort) -> Result<Status, EventError> {
        (**self).status(port)
    }
    fn wait_until(
        &self,
        deadline_ns: Option<u64>,
        cond: &mut dyn FnMut() -> bool,
    ) -> Result<(), EventError> {
        (**self).wait_until(deadline_ns, cond)
    }
    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }
}

/// A port that can be signalled and that stays open while this handle
/// lives: what an unmap notification names (a grant owner keeps it and
/// signals it at release), so a notification can never reach a port
/// that was closed and handed out again.
pub trait NotifyPort {
    /// The port number.
    fn port(&self) -> EvtchnPort;
    /// `EVTCHNOP_send` on it.
    fn notify(&self) -> Result<(), EventError>;
}

/// One of our event-channel ports, closed when dropped. Share it (e.g.
/// in an `Arc`) with the grant owners whose unmap notifications signal
/// it: the port then stays open until the last of them is gone.
#[derive(Debug)]
pub struct Port<E: EventOps> {
    events: E,
    port: EvtchnPort,
}

impl<E: EventOps> Port<E> {
    /// A new port `remote` may bind to (`EVTCHNOP_alloc_unbound`).
    pub fn alloc_unbound(events: E, remote: DomId) -> Result<Self, EventError> {
        let port = events.alloc_unbound(remote)?;
        Ok(Port { events, port })
    }

    /// Our end of `remote`'s unbound `remote_port` (`EVTCHNOP_bind_interdomain`).
    pub fn bind_interdomain(
        events: E,
        remote: DomId,
        remote_port: EvtchnPort,
    ) -> Result<Self, EventError> {
        let port = events.bind_interdomain(remote, remote_port)?;
        Ok(Port { events, port })
    }

    /// The port number.
    pub fn port(&self) -> EvtchnPort {
        self.port
    }

    /// The backend the port belongs to.
    pub fn events(&self) -> &E {
        &self.events
    }

    /// Raises the event on the far end.
    pub fn send(&self) -> Result<(), EventError> {
        self.events.send(self.port)
    }

    /// `EVTCHNOP_status` of the port.
    pub fn status(&self) -> Result<Status, EventError> {
        self.events.status(self.port)
    }
}

impl<E: EventOps> Drop for Port<E> {
    fn drop(&mut self) {
        let _ = self.events.close(self.port);
    }
}

impl<E: EventOps> NotifyPort for Port<E> {
    fn port(&self) -> EvtchnPort {
        self.port
    }
    fn notify(&self) -> Result<(), EventError> {
        self.send()
    }
}

/// This domain's event channels: the hypercalls and `SCHEDOP_block`
/// waits of [`crate::event`], and Xen's system time. Applications get it
/// from [`Xen::events`](crate::Xen::events); it is the only public door to
/// the domain's event channels.
#[cfg(target_os = "none")]
#[derive(Debug, Clone, Copy)]
pub struct XenEvents {
    _private: (),
}

#[cfg(target_os = "none")]
impl XenEvents {
    /// The runtime's instance (one per domain).
    pub(crate) const fn new() -> Self {
        XenEvents { _private: () }
    }

    /// Waits until `port` fires (consuming its fired bit), for at most
    /// `timeout` (`None`: forever).
    pub fn wait(
        &self,
        port: EvtchnPort,
        timeout: Option<core::time::Duration>,
    ) -> Result<(), EventError> {
        super::wait(port, timeout)
    }

    /// Whether `port` fired since the last look (and clears that).
    pub fn take_fired(&self, port: EvtchnPort) -> bool {
        super::take_fired(port)
    }

    /// `SCHEDOP_poll`: sleeps until one of `ports` is pending or the clock
    /// reaches `deadline_ns`; whether one was.
    pub fn poll(&self, ports: &[EvtchnPort], deadline_ns: Option<u64>) -> Result<bool, EventError> {
        super::poll(ports, deadline_ns)
    }

    /// Installs (or removes) the handler run from the upcall when `port`
    /// fires (see [`Handler`](super::Handler) for what one may do).
    pub fn set_handler(
        &self,
        port: EvtchnPort,
        handler: Option<super::Handler>,
    ) -> Result<(), EventError> {
        super::set_handler(port, handler)
    }

    /// Masks `port`: it stays pending but wakes nothing.
    pub fn mask(&self, port: EvtchnPort) -> Result<(), EventError> {
        super::mask(port)
    }

    /// Unmasks `port` (delivering it if it is pending).
    pub fn unmask(&self, port: EvtchnPort) -> Result<(), EventError> {
        super::unmask(port)
    }

    /// Whether `port` is pending.
    pub fn is_pending(&self, port: EvtchnPort) -> Result<bool, EventError> {
        super::is_pending(port)
    }

    /// `EVTCHNOP_bind_virq` on vCPU 0.
    pub fn bind_virq(&self, virq: super::Virq) -> Result<EvtchnPort, EventError> {
        super::bind_virq(virq)
    }
}

#[cfg(target_os = "none")]
impl EventOps for XenEvents {
    fn alloc_unbound(&self, remote: DomId) -> Result<EvtchnPort, EventError> {
        super::alloc_unbound(remote)
    }
    fn bind_interdomain(
        &self,
        remote: DomId,
        remote_port: EvtchnPort,
    ) -> Result<EvtchnPort, EventError> {
        super::bind_interdomain(remote, remote_port)
    }
    fn send(&self, port: EvtchnPort) -> Result<(), EventError> {
        super::send(port)
    }
    fn close(&self, port: EvtchnPort) -> Result<(), EventError> {
        super::close(port)
    }
    fn status(&self, port: EvtchnPort) -> Result<Status, EventError> {
        super::status(port)
    }
    fn wait_until(
        &self,
        deadline_ns: Option<u64>,
        cond: &mut dyn FnMut() -> bool,
    ) -> Result<(), EventError> {
        super::wait_until(deadline_ns, cond)
    }
    fn now_ns(&self) -> u64 {
        crate::time::now_ns()
    }
}

/// Simulated event channels for host tests: domains on threads, ports
/// bound as Xen binds them, events that wake waiting threads, a real
/// clock a test can move ahead ([`fake::FakeEventWorld::advance`]: a
/// deadline it wants passed passes at once), and faults a test can inject (a domain that dies, sends that
/// fail).
#[cfg(any(test, feature = "host-fakes"))]
pub mod fake {
    extern crate std;

    use super::*;
    use std::collections::BTreeMap;
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::{Duration, Instant};
    use std::vec::Vec;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Port {
        Unbound { remote: u16 },
        Interdomain { remote: u16, remote_port: u32 },
    }

    #[derive(Debug, Default)]
    struct State {
        ports: BTreeMap<(u16, u32), Port>,
        next_port: BTreeMap<u16, u32>,
        /// Events delivered to (domain, port) and not yet consumed.
        pending: BTreeMap<(u16, u32), u32>,
        /// Every send that reached a peer: (from domain, its port).
        sent: Vec<(u16, u32)>,
        /// Sends of these domains fail with `EINVAL`.
        failing_sends: Vec<u16>,
        /// Waits of each domain that ended at their deadline.
        timeouts: BTreeMap<u16, u64>,
        /// Clock reads of each domain (a PV clock read costs an `rdtsc`).
        clock_reads: BTreeMap<u16, u64>,
        /// How far a test moved the clock ahead of real time
        /// ([`FakeEventWorld::advance`]).
        skew_ns: u64,
        /// Waits of each domain asleep now (nothing pending, condition
        /// false).
        asleep: BTreeMap<u16, usize>,
    }

    /// The simulated hypervisor's event channels, shared by its domains.
    #[derive(Debug, Clone)]
    pub struct FakeEventWorld {
        /// The state, the condvar events wake, and the one a wait going
        /// to sleep wakes (`until_asleep`).
        inner: Arc<(Mutex<State>, Condvar, Condvar)>,
        start: Instant,
    }

    impl Default for FakeEventWorld {
        fn default() -> Self {
            Self::new()
        }
    }

    impl FakeEventWorld {
        /// No domain, no port.
        pub fn new() -> Self {
            FakeEventWorld {
                inner: Arc::new((Mutex::new(State::default()), Condvar::new(), Condvar::new())),
                start: Instant::now(),
            }
        }

        /// Domain `dom`'s view.
        pub fn domain(&self, dom: DomId) -> FakeEvents {
            FakeEvents {
                world: self.clone(),
                dom: dom.0,
            }
        }

        fn state(&self) -> std::sync::MutexGuard<'_, State> {
            self.inner.0.lock().unwrap_or_else(|p| p.into_inner())
        }

        /// Destroys `dom` as Xen does: its ports close and every peer's
        /// end turns back into "unbound", without an event.
        pub fn kill(&self, dom: DomId) {
            let mut s = self.state();
            let mine: Vec<(u16, u32)> = s.ports.keys().filter(|k| k.0 == dom.0).copied().collect();
            for k in mine {
                if let Some(Port::Interdomain {
                    remote,
                    remote_port,
                }) = s.ports.remove(&k)
                {
                    s.ports
                        .insert((remote, remote_port), Port::Unbound { remote: dom.0 });
                }
            }
            self.inner.1.notify_all();
        }

        /// From now on `dom`'s sends fail (a port Xen refuses).
        pub fn fail_sends(&self, dom: DomId) {
            self.state().failing_sends.push(dom.0);
        }

        /// How many events `dom` sent on `port` that reached a peer.
        pub fn sends(&self, dom: DomId, port: EvtchnPort) -> usize {
            self.state()
                .sent
                .iter()
                .filter(|&&s| s == (dom.0, port.0))
                .count()
        }

        /// How many of `dom`'s waits ended at their deadline rather than
        /// by an event or their condition.
        pub fn timeouts(&self, dom: DomId) -> u64 {
            self.state().timeouts.get(&dom.0).copied().unwrap_or(0)
        }

        /// How many times `dom` read the clock.
        pub fn clock_reads(&self, dom: DomId) -> u64 {
            self.state().clock_reads.get(&dom.0).copied().unwrap_or(0)
        }

        /// Moves every domain's clock `d` ahead and wakes every wait, so
        /// a deadline a test wants to pass passes now instead of after a
        /// real sleep (a silent peer, a rate-limited check).
        pub fn advance(&self, d: Duration) {
            let mut s = self.state();
            let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            s.skew_ns = s.skew_ns.saturating_add(ns);
            self.inner.1.notify_all();
        }

        /// How many of `dom`'s waits are asleep now (to act while a wait
        /// is under way, without guessing how long a sleep takes).
        pub fn asleep(&self, dom: DomId) -> usize {
            self.state().asleep.get(&dom.0).copied().unwrap_or(0)
        }

        /// Sleeps (a few ms of real time a look, up to `bound`) until one
        /// of `dom`'s waits is asleep; whether one was.
        pub fn until_asleep(&self, dom: DomId, bound: Duration) -> bool {
            let start = Instant::now();
            let mut s = self.state();
            loop {
                if s.asleep.get(&dom.0).copied().unwrap_or(0) > 0 {
                    return true;
                }
                if start.elapsed() >= bound {
                    return false;
                }
                s = self
                    .inner
                    .2
                    .wait_timeout(s, Duration::from_millis(5))
                    .map(|r| r.0)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        }

        fn clock(&self, s: &State) -> u64 {
            u64::try_from(self.start.elapsed().as_nanos())
                .unwrap_or(u64::MAX)
                .saturating_add(s.skew_ns)
        }

        /// Ports `dom` holds open.
        pub fn open_ports(&self, dom: DomId) -> usize {
            self.state().ports.keys().filter(|k| k.0 == dom.0).count()
        }
    }

    /// One domain's [`EventOps`] in a [`FakeEventWorld`].
    #[derive(Debug, Clone)]
    pub struct FakeEvents {
        world: FakeEventWorld,
        dom: u16,
    }

    impl FakeEvents {
        /// The world this domain lives in.
        pub fn world(&self) -> &FakeEventWorld {
            &self.world
        }

        fn new_port(&self, s: &mut State) -> u32 {
            let next = s.next_port.entry(self.dom).or_insert(1);
            let p = *next;
            *next += 1;
            p
        }
    }

    fn einval() -> EventError {
        EventError::Hypercall(crate::errno::Errno::EINVAL)
    }

    impl EventOps for FakeEvents {
        fn alloc_unbound(&self, remote: DomId) -> Result<EvtchnPort, EventError> {
            let mut s = self.world.state();
            let p = self.new_port(&mut s);
            s.ports
                .insert((self.dom, p), Port::Unbound { remote: remote.0 });
            Ok(EvtchnPort(p))
        }

        fn bind_interdomain(
            &self,
            remote: DomId,
            remote_port: EvtchnPort,
        ) -> Result<EvtchnPort, EventError> {
            let mut s = self.world.state();
            match s.ports.get(&(remote.0, remote_port.0)) {
                Some(Port::Unbound { remote: allowed }) if *allowed == self.dom => {}
                _ => return Err(einval()),
            }
            let p = self.new_port(&mut s);
            s.ports.insert(
                (self.dom, p),
                Port::Interdomain {
                    remote: remote.0,
                    remote_port: remote_port.0,
                },
            );
            s.ports.insert(
                (remote.0, remote_port.0),
                Port::Interdomain {
                    remote: self.dom,
                    remote_port: p,
                },
            );
            Ok(EvtchnPort(p))
        }

        fn send(&self, port: EvtchnPort) -> Result<(), EventError> {
            let mut s = self.world.state();
            if s.failing_sends.contains(&self.dom) {
                return Err(einval());
            }
            match s.ports.get(&(self.dom, port.0)).copied() {
                Some(Port::Interdomain {
                    remote,
                    remote_port,
                }) => {
                    *s.pending.entry((remote, remote_port)).or_default() += 1;
                    s.sent.push((self.dom, port.0));
                    self.world.inner.1.notify_all();
                    Ok(())
                }
                // Xen drops a send on an unbound port silently.
                Some(Port::Unbound { .. }) => Ok(()),
                None => Err(einval()),
            }
        }

        fn close(&self, port: EvtchnPort) -> Result<(), EventError> {
            let mut s = self.world.state();
            match s.ports.remove(&(self.dom, port.0)) {
                Some(Port::Interdomain {
                    remote,
                    remote_port,
                }) => {
                    s.ports
                        .insert((remote, remote_port), Port::Unbound { remote: self.dom });
                    Ok(())
                }
                Some(Port::Unbound { .. }) => Ok(()),
                None => Err(einval()),
            }
        }

        fn status(&self, port: EvtchnPort) -> Result<Status, EventError> {
            Ok(match self.world.state().ports.get(&(self.dom, port.0)) {
                None => Status::Closed,
                Some(Port::Unbound { remote }) => Status::Unbound {
                    remote: DomId(*remote),
                },
                Some(Port::Interdomain {
                    remote,
                    remote_port,
                }) => Status::Interdomain {
                    remote: DomId(*remote),
                    remote_port: EvtchnPort(*remote_port),
                },
            })
        }

        fn wait_until(
            &self,
            deadline_ns: Option<u64>,
            cond: &mut dyn FnMut() -> bool,
        ) -> Result<(), EventError> {
            loop {
                if cond() {
                    return Ok(());
                }
                let now = self.now_ns();
                let mut s = self.world.state();
                if deadline_ns.is_some_and(|d| now >= d) {
                    *s.timeouts.entry(self.dom).or_default() += 1;
                    return Err(EventError::Timeout);
                }
                // Sleep only until an event for us (or the deadline), as
                // SCHEDOP_block does: a lost wake-up shows as a timeout.
                // An event that came after `cond()` is pending: no sleep.
                let mine = s.pending.keys().any(|k| k.0 == self.dom);
                if !mine {
                    let left = deadline_ns.map_or(1_000_000_000, |d| d.saturating_sub(now));
                    *s.asleep.entry(self.dom).or_default() += 1;
                    self.world.inner.2.notify_all();
                    s = self
                        .world
                        .inner
                        .1
                        .wait_timeout(s, Duration::from_nanos(left))
                        .map(|r| r.0)
                        .unwrap_or_else(|p| p.into_inner().0);
                    *s.asleep.entry(self.dom).or_default() -= 1;
                }
                s.pending.retain(|k, _| k.0 != self.dom);
            }
        }

        fn now_ns(&self) -> u64 {
            let mut s = self.world.state();
            *s.clock_reads.entry(self.dom).or_default() += 1;
            self.world.clock(&s)
        }
    }
}
