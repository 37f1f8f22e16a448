//! The plumbing every split-driver front end shares
//! (`xen/include/public/io/xenbus.h`; Linux's `xenbus_client.c`:
//! `xenbus_switch_state`, `xenbus_dev_fatal`): the set-up guard that
//! closes a half-open device, the published keys, and the [`Link`] a
//! connected driver keeps (failure latch, rate-limited backend check,
//! the event channel's peer check, close on drop).

use super::{Announce, Connection, Frontend, XenbusError, XenbusState, CLOSE_TIMEOUT};
use crate::event::{EventOps, Status};
use crate::types::EvtchnPort;
use crate::xenstore::{Client, Transport};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Display;
use core::ops::Deref;
use core::time::Duration;

/// Why a link is down: the two ends of a device's life a driver reports
/// alike whatever its protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Down {
    /// The backend is closing, closed or its `state` node is gone (the
    /// toolstack detached the device).
    Closing,
    /// The backend domain is gone (our end of the event channel is no
    /// longer interdomain).
    Gone,
}

/// What a driver's error type says for the link's failures: one mapping
/// of [`XenbusError`] for every driver ([`link_error`]).
pub trait LinkError: Sized {
    /// The link went down.
    fn down(why: Down) -> Self;
    /// An earlier error broke the device: nothing more is sent.
    fn broken() -> Self;
    /// Any other xenbus failure (a typed error of the handshake).
    fn xenbus(e: XenbusError) -> Self;
    /// Whether this error is the link going down (latched by
    /// [`Link::fail`] so that every later call says why).
    fn is_down(&self) -> Option<Down>;
}

/// The driver error for a xenbus failure: a backend closing or gone is
/// [`Down::Closing`], anything else [`LinkError::xenbus`].
pub fn link_error<E: LinkError>(e: XenbusError) -> E {
    match e {
        XenbusError::BackendClosing(_) | XenbusError::BackendGone => E::down(Down::Closing),
        e => E::xenbus(e),
    }
}

/// The `(key, value)` nodes a front end publishes under its device
/// directory with [`Opening::connect`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys(Vec<(String, String)>);

impl Keys {
    /// No keys.
    pub fn new() -> Self {
        Keys(Vec::new())
    }

    /// Adds `key` = `value` (formatted).
    pub fn set(&mut self, key: &str, value: impl Display) -> &mut Self {
        self.0.push((String::from(key), format!("{value}")));
        self
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The pairs, in the order set.
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        self.0
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

/// A front end being set up: from `Initialising` until the driver
/// [`commit`](Self::commit)s it, dropping it (any `?` of the connect
/// sequence) closes the device through the handshake (`Closing`, the
/// backend closes, `Closed`), as Linux's `xenbus_dev_fatal` does, so no
/// backend is left `Connected` on a ring no one serves.
#[derive(Debug)]
pub struct Opening<'s, T: Transport> {
    bus: Option<Frontend<'s, T>>,
    /// How long the close on drop waits for the backend.
    close_timeout: Duration,
}

impl<'s, T: Transport> Opening<'s, T> {
    /// Opens device `class`/`devid` ([`Frontend::open`]) and runs `check`
    /// on it before anything is written (a device being detached, our own
    /// nodes: refuse here what must be refused without a trace); then
    /// handshake step 2 ([`Frontend::initialise`]). From `Initialising`
    /// on, an error closes the device.
    pub fn initialise<E: LinkError>(
        store: &'s spin::Mutex<Client<T>>,
        class: &str,
        devid: u32,
        timeout: Duration,
        check: impl FnOnce(&Frontend<'s, T>) -> Result<(), E>,
    ) -> Result<Self, E> {
        let bus = Frontend::open(store, class, devid).map_err(link_error)?;
        check(&bus)?;
        bus.switch(XenbusState::Initialising).map_err(link_error)?;
        let opening = Opening {
            bus: Some(bus),
            close_timeout: timeout.min(CLOSE_TIMEOUT),
        };
        opening
            .wait_backend(XenbusState::InitWait, timeout)
            .map_err(link_error)?;
        Ok(opening)
    }

    /// Handshake step 3 ([`Frontend::connect`]) with the driver's keys.
    pub fn connect<E: LinkError>(
        &self,
        announce: Announce,
        keys: &Keys,
        timeout: Duration,
    ) -> Result<(), E> {
        self.bus()
            .connect(announce, &keys.pairs(), timeout)
            .map_err(link_error)
    }

    fn bus(&self) -> &Frontend<'s, T> {
        // Some until commit or drop, which consume the guard.
        self.bus.as_ref().expect("an Opening holds its Frontend")
    }

    /// The rest of the set-up: `finish` (handshake step 3 and what the
    /// driver reads after it), then [`commit`](Self::commit) when it
    /// succeeded; when it failed, the device is closed (before the error
    /// reaches the caller, so before the driver's pages are released).
    pub fn complete<E>(
        self,
        check_every: Duration,
        finish: impl FnOnce(&Frontend<'s, T>) -> Result<(), E>,
    ) -> Result<Link<'s>, E>
    where
        T: 's,
    {
        // On Err, `self` is dropped here: Closing, the backend closes,
        // Closed.
        finish(self.bus())?;
        Ok(self.commit(check_every))
    }

    /// The set-up succeeded: the device stays open, closed from now on by
    /// the [`Link`] this makes (on [`Link::close`] or drop).
    pub fn commit(mut self, check_every: Duration) -> Link<'s>
    where
        T: 's,
    {
        let bus = self.bus.take().expect("an Opening holds its Frontend");
        Link::connected(Box::new(bus), check_every)
    }
}

impl<'s, T: Transport> Deref for Opening<'s, T> {
    type Target = Frontend<'s, T>;
    fn deref(&self) -> &Frontend<'s, T> {
        self.bus()
    }
}

impl<T: Transport> Drop for Opening<'_, T> {
    fn drop(&mut self) {
        if let Some(bus) = self.bus.take() {
            let _ = bus.close(self.close_timeout);
        }
    }
}

/// A device's xenbus side as its driver keeps it: the connection (if the
/// device was connected through xenbus), the failure latch, and the
/// checks that tell a detach from a backend's death.
pub struct Link<'s> {
    bus: Option<Box<dyn Connection + 's>>,
    /// Backend checks at most this often (ns).
    period_ns: u64,
    checked_ns: u64,
    broken: bool,
    down: Option<Down>,
}

impl core::fmt::Debug for Link<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Link")
            .field("connected", &self.bus.is_some())
            .field("broken", &self.broken)
            .field("down", &self.down)
            .finish()
    }
}

impl<'s> Link<'s> {
    /// A link without a xenbus connection (a device whose keys were
    /// exchanged by other means, as the host tests do): only the latch
    /// and the peer check.
    pub fn unconnected(check_every: Duration) -> Self {
        Link {
            bus: None,
            period_ns: u64::try_from(check_every.as_nanos()).unwrap_or(u64::MAX),
            checked_ns: 0,
            broken: false,
            down: None,
        }
    }

    /// A link over `bus`, checked at most every `check_every`.
    pub fn connected(bus: Box<dyn Connection + 's>, check_every: Duration) -> Self {
        Link {
            bus: Some(bus),
            ..Link::unconnected(check_every)
        }
    }

    /// Whether the device is connected through xenbus (and not closed).
    pub fn is_connected(&self) -> bool {
        self.bus.is_some()
    }

    /// Whether an error broke the device.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Latches `e`: the device is broken, and when `e` is the link going
    /// down, every later [`check`](Self::check) says so.
    pub fn fail<T, E: LinkError>(&mut self, e: E) -> Result<T, E> {
        self.broken = true;
        if let Some(d) = e.is_down() {
            self.down = Some(d);
        }
        Err(e)
    }

    /// `Err` once the device broke: why the link went down, or
    /// [`LinkError::broken`].
    pub fn latched<E: LinkError>(&self) -> Result<(), E> {
        if !self.broken {
            return Ok(());
        }
        Err(self.down.map_or_else(E::broken, E::down))
    }

    /// Before an operation: [`latched`](Self::latched), then, at most
    /// once per period (by the clock `now_ns`), [`check_bus`](Self::check_bus).
    pub fn check<E: LinkError>(&mut self, now_ns: u64) -> Result<(), E> {
        self.latched()?;
        if now_ns.saturating_sub(self.checked_ns) < self.period_ns {
            return Ok(());
        }
        self.checked_ns = now_ns;
        self.check_bus()
    }

    /// Asks xenbus now whether the backend is closing or gone; if so our
    /// end is closed (so that the detach completes) and the link is down.
    pub fn check_bus<E: LinkError>(&mut self) -> Result<(), E> {
        if let Some(e) = self.bus.as_ref().and_then(|b| b.check().err()) {
            if let Some(bus) = self.bus.take() {
                let _ = bus.close(CLOSE_TIMEOUT);
            }
            return self.fail(link_error(e));
        }
        Ok(())
    }

    /// Whether the backend domain is still there: our end of the event
    /// channel `port` is still interdomain (it stops being so when the
    /// peer's domain dies). Otherwise the link is down ([`Down::Gone`]).
    pub fn check_peer<E: LinkError, Ev: EventOps + ?Sized>(
        &mut self,
        events: &Ev,
        port: EvtchnPort,
    ) -> Result<(), E> {
        if matches!(events.status(port), Ok(Status::Interdomain { .. })) {
            return Ok(());
        }
        self.fail(E::down(Down::Gone))
    }

    /// Closes the xenbus connection (Closing, the backend closes, Closed);
    /// nothing when there is none or it was closed already.
    pub fn close<E: LinkError>(&mut self) -> Result<(), E> {
        match self.bus.take() {
            Some(bus) => bus.close(CLOSE_TIMEOUT).map_err(link_error),
            None => Ok(()),
        }
    }
}

impl Drop for Link<'_> {
    fn drop(&mut self) {
        if let Some(bus) = self.bus.take() {
            let _ = bus.close(CLOSE_TIMEOUT);
        }
    }
}
