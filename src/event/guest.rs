//! The guest half of event channels: callback registration, the upcall,
//! `EVTCHNOP_*`, blocking with `SCHEDOP_block` and `SCHEDOP_poll`.

// Xen backend: event-channel hypercalls and the upcall.
#![allow(unsafe_code)]

use super::{EventError, Status, Table, TwoLevel, Virq};
use crate::abi::event as abi;
use crate::hypercall;
use crate::types::{DomId, EvtchnPort};
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

static TABLE: Table = Table::new();
static READY: AtomicBool = AtomicBool::new(false);

fn state() -> Option<TwoLevel> {
    crate::shared_info::page().and_then(|p| TwoLevel::new(p, 0))
}

fn ready_state() -> Result<TwoLevel, EventError> {
    if !READY.load(Ordering::Acquire) {
        return Err(EventError::NotReady);
    }
    state().ok_or(EventError::NotReady)
}

/// Whether `init` has run: upcalls are live and waits block.
pub fn is_ready() -> bool {
    READY.load(Ordering::Acquire)
}

/// Masks every port, registers the upcall and enables event delivery;
/// then unmasks the console and xenstore ports (their fired bits wake
/// the ring waiters) and binds the timer VIRQ. Called once at boot.
pub(crate) fn init() -> Result<(), EventError> {
    let ev = state().ok_or(EventError::NotReady)?;
    ev.mask_upcalls();
    ev.mask_all();
    let (event, failsafe) = crate::arch::x86_64::upcall::callback_addresses();
    // SAFETY: both addresses are the entry stubs of arch::x86_64::upcall,
    // written for the frames Xen builds for these callbacks.
    unsafe { hypercall::set_callbacks(event, failsafe) }?;
    READY.store(true, Ordering::Release);
    let info = crate::start_info::boot_info();
    for port in [info.console_evtchn, info.store_evtchn] {
        if port.0 != 0 {
            let _ = ev.unmask(port);
        }
    }
    init_timer()?;
    enable(&ev);
    Ok(())
}

fn force_callback() {
    // Any hypercall returns through Xen's event check (Mini-OS's
    // force_evtchn_callback uses xen_version too).
    let _ = hypercall::xen_version();
}

/// Delivers events again after a fatal path left them masked (trap
/// handlers run with `evtchn_upcall_mask` set): the test harness calls
/// this when it goes on after a failed test.
pub(crate) fn reenable_upcalls() {
    if let Some(ev) = state() {
        if READY.load(Ordering::Acquire) {
            enable(&ev);
        }
    }
}

fn enable(ev: &TwoLevel) {
    if ev.unmask_upcalls() {
        force_callback();
    }
}

/// The body of the upcall: dispatches every pending, unmasked port
/// (called by `arch`'s upcall stub through this symbol).
#[no_mangle]
fn __xenpv_event_upcall() {
    if let Some(ev) = state() {
        ev.dispatch(|port| TABLE.deliver(port));
    }
}

/// Installs (or removes) the handler run from the upcall when `port`
/// fires. See [`super::table`] for what a handler may do.
pub fn set_handler(port: EvtchnPort, handler: Option<super::Handler>) -> Result<(), EventError> {
    let ev = ready_state()?;
    let was = ev.mask_upcalls();
    let r = TABLE.set_handler(port, handler);
    if !was {
        enable(&ev);
    }
    Ok(r?)
}

/// Masks `port`: its events stay pending and are not delivered.
pub fn mask(port: EvtchnPort) -> Result<(), EventError> {
    Ok(ready_state()?.mask(port)?)
}

/// Unmasks `port`, delivering an event that arrived while it was masked.
pub fn unmask(port: EvtchnPort) -> Result<(), EventError> {
    if ready_state()?.unmask(port)? {
        force_callback();
    }
    Ok(())
}

/// Clears and returns whether `port` fired since the last call.
pub fn take_fired(port: EvtchnPort) -> bool {
    TABLE.take_fired(port)
}

/// Whether `port`'s pending bit is set in `shared_info` (for masked
/// ports, which the upcall leaves alone).
pub fn is_pending(port: EvtchnPort) -> Result<bool, EventError> {
    Ok(ready_state()?.is_pending(port)?)
}

fn op<T>(cmd: u32, arg: &mut T) -> Result<(), EventError> {
    // SAFETY: every caller passes the struct `cmd` expects (the pairs
    // below are fixed), valid for reads and writes during the call.
    unsafe { hypercall::event_channel_op(cmd, (arg as *mut T).cast()) }
        .map_err(EventError::Hypercall)
}

fn bound(port: u32) -> Result<EvtchnPort, EventError> {
    let port = EvtchnPort(port);
    unmask(port)?;
    Ok(port)
}

/// `EVTCHNOP_alloc_unbound`: a new port that `remote` may bind to.
#[doc(alias = "EVTCHNOP_alloc_unbound")]
pub fn alloc_unbound(remote: DomId) -> Result<EvtchnPort, EventError> {
    let mut arg = abi::evtchn_alloc_unbound {
        dom: DomId::SELF.0,
        remote_dom: remote.0,
        port: 0,
    };
    op(abi::EVTCHNOP_alloc_unbound, &mut arg)?;
    bound(arg.port)
}

/// `EVTCHNOP_bind_interdomain`: connects a new local port to `remote`'s
/// unbound `remote_port`.
#[doc(alias = "EVTCHNOP_bind_interdomain")]
pub fn bind_interdomain(remote: DomId, remote_port: EvtchnPort) -> Result<EvtchnPort, EventError> {
    let mut arg = abi::evtchn_bind_interdomain {
        remote_dom: remote.0,
        remote_port: remote_port.0,
        local_port: 0,
    };
    op(abi::EVTCHNOP_bind_interdomain, &mut arg)?;
    bound(arg.local_port)
}

/// `EVTCHNOP_bind_virq` on vCPU 0.
#[doc(alias = "EVTCHNOP_bind_virq")]
pub fn bind_virq(virq: Virq) -> Result<EvtchnPort, EventError> {
    let mut arg = abi::evtchn_bind_virq {
        virq: virq.0,
        vcpu: 0,
        port: 0,
    };
    op(abi::EVTCHNOP_bind_virq, &mut arg)?;
    bound(arg.port)
}

/// `EVTCHNOP_send`: notifies the other end of `port`.
#[doc(alias = "EVTCHNOP_send")]
pub fn send(port: EvtchnPort) -> Result<(), EventError> {
    hypercall::evtchn_send(port).map_err(EventError::Hypercall)
}

/// `EVTCHNOP_close`: masks, forgets and closes `port`.
#[doc(alias = "EVTCHNOP_close")]
pub fn close(port: EvtchnPort) -> Result<(), EventError> {
    let _ = mask(port);
    TABLE.clear(port);
    let mut arg = abi::evtchn_close { port: port.0 };
    op(abi::EVTCHNOP_close, &mut arg)
}

/// `EVTCHNOP_status` of one of our own ports.
#[doc(alias = "EVTCHNOP_status")]
pub fn status(port: EvtchnPort) -> Result<Status, EventError> {
    // SAFETY: evtchn_status is plain integers; all-zero is a valid value.
    let mut arg: abi::evtchn_status = unsafe { core::mem::zeroed() };
    arg.dom = DomId::SELF.0;
    arg.port = port.0;
    op(abi::EVTCHNOP_status, &mut arg)?;
    // Each arm reads the union variant Xen fills in for that status
    // (public/event_channel.h); every variant is plain integers.
    Ok(match arg.status {
        abi::EVTCHNSTAT_closed => Status::Closed,
        abi::EVTCHNSTAT_unbound => {
            // SAFETY: see above: `unbound` for EVTCHNSTAT_unbound.
            let dom = unsafe { arg.u.unbound.dom };
            Status::Unbound { remote: DomId(dom) }
        }
        abi::EVTCHNSTAT_interdomain => {
            // SAFETY: see above: `interdomain` for EVTCHNSTAT_interdomain.
            let i = unsafe { arg.u.interdomain };
            Status::Interdomain {
                remote: DomId(i.dom),
                remote_port: EvtchnPort(i.port),
            }
        }
        // SAFETY: see above: `pirq` for EVTCHNSTAT_pirq.
        abi::EVTCHNSTAT_pirq => Status::Pirq(unsafe { arg.u.pirq }),
        // SAFETY: see above: `virq` for EVTCHNSTAT_virq.
        abi::EVTCHNSTAT_virq => Status::Virq(Virq(unsafe { arg.u.virq })),
        abi::EVTCHNSTAT_ipi => Status::Ipi,
        other => Status::Unknown(other),
    })
}

/// Blocks the vCPU until `cond()` holds or Xen system time reaches
/// `deadline_ns`.
///
/// Race-free order: mask upcalls, test `cond`, and only then
/// `SCHEDOP_block`, which re-enables upcalls and sleeps in one step and
/// returns at once if an event is already pending. An event that makes
/// `cond` true therefore either lands before the test (seen) or wakes the
/// block (seen on the next turn); it cannot fall in between.
///
/// Before `init`, or when called with upcalls masked (from a handler),
/// it cannot block safely and polls with `SCHEDOP_yield` instead.
pub fn wait_until(
    deadline_ns: Option<u64>,
    mut cond: impl FnMut() -> bool,
) -> Result<(), EventError> {
    let Ok(ev) = ready_state() else {
        return yield_until(deadline_ns, cond);
    };
    loop {
        let was_masked = ev.mask_upcalls();
        let done = cond();
        let late = !done && deadline_ns.is_some_and(|d| crate::time::now_ns() >= d);
        if done || late || was_masked {
            if !was_masked {
                enable(&ev);
            }
            if done {
                return Ok(());
            }
            if late {
                return Err(EventError::Timeout);
            }
            // Upcalls were masked by our caller: we must not unmask them.
            return yield_until(deadline_ns, cond);
        }
        // Arm the one-shot timer when the deadline differs from the one it
        // holds, or when it has fired since it was armed: Xen's timer may
        // fire a little before our TSC-derived clock reaches the deadline
        // (and a far deadline is armed at most MAX_TIMER_SPAN_NS ahead), and
        // then nothing would ever wake this block again. A wait woken by
        // its peer's event keeps its timer: no hypercall per turn.
        if let Some(d) = deadline_ns {
            if let Err(e) = arm_timer(d) {
                enable(&ev);
                return Err(e);
            }
        }
        if let Some(hook) = IDLE_HOOK.get() {
            hook();
        }
        hypercall::sched_block();
    }
}

/// Work a higher layer asks to run each time the domain is about to block
/// (with upcalls masked: it must not wait). The grant table registers its
/// background reclaim here, so pages a peer has since unmapped are freed
/// without the application calling `reclaim`.
static IDLE_HOOK: spin::Once<fn()> = spin::Once::new();

/// Registers the idle hook (the first registration wins).
pub fn set_idle_hook(hook: fn()) {
    IDLE_HOOK.call_once(|| hook);
}

fn yield_until(deadline_ns: Option<u64>, mut cond: impl FnMut() -> bool) -> Result<(), EventError> {
    loop {
        if cond() {
            return Ok(());
        }
        if deadline_ns.is_some_and(|d| crate::time::now_ns() >= d) {
            return Err(EventError::Timeout);
        }
        hypercall::sched_yield();
    }
}

/// Waits until `port` fires (consuming its fired bit), for at most
/// `timeout` (`None`: forever).
pub fn wait(port: EvtchnPort, timeout: Option<Duration>) -> Result<(), EventError> {
    let deadline = timeout.map(crate::time::deadline_after);
    wait_until(deadline, || TABLE.take_fired(port))
}

/// `SCHEDOP_poll`: sleeps until one of `ports` is pending or Xen system
/// time reaches `deadline_ns` (`None`: no timeout). Meant for masked
/// ports: the upcall clears the pending bit of unmasked ones. Xen also
/// ends a poll early when any unmasked event is delivered to the vCPU
/// (`vcpu_mark_events_pending` kicks it), so this polls again until a
/// polled port is pending or the deadline passes. Returns whether one of
/// the ports is pending.
#[doc(alias = "SCHEDOP_poll")]
pub fn poll(ports: &[EvtchnPort], deadline_ns: Option<u64>) -> Result<bool, EventError> {
    let ev = ready_state()?;
    loop {
        for &p in ports {
            if ev.is_pending(p)? {
                return Ok(true);
            }
        }
        if deadline_ns.is_some_and(|d| crate::time::now_ns() >= d) {
            return Ok(false);
        }
        hypercall::sched_poll(ports, deadline_ns.unwrap_or(0))?;
    }
}

// The vCPU's one-shot timer lives here, with the waits it wakes; `time`
// is only the clock, so the two layers no longer call each other.

static TIMER_PORT: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Binds `VIRQ_TIMER` (so the timer can wake `SCHEDOP_block`) and
/// stops the periodic tick Xen starts PV vCPUs with.
pub(crate) fn init_timer() -> Result<(), EventError> {
    let port = bind_virq(Virq::TIMER)?;
    TIMER_PORT.store(port.0, Ordering::Release);
    let _ = crate::hypercall::vcpu_stop_periodic_timer();
    Ok(())
}

/// Arms the vCPU's one-shot timer for system time `deadline_ns`
/// (`VCPUOP_set_singleshot_timer`); a deadline in the past fires at
/// once. A far deadline arms it [`MAX_TIMER_SPAN_NS`](crate::time::MAX_TIMER_SPAN_NS) ahead instead
/// (the caller's wait loop re-arms it), see [`timer_deadline`](crate::time::timer_deadline).
/// Replaces any earlier deadline.
#[doc(alias = "VCPUOP_set_singleshot_timer")]
fn set_timer(deadline_ns: u64) -> Result<(), EventError> {
    let deadline_ns = crate::time::timer_deadline(crate::time::now_ns(), deadline_ns);
    if crate::hypercall::vcpu_set_singleshot_timer(deadline_ns).is_ok() {
        return Ok(());
    }
    // Older interface, same effect on this vCPU.
    crate::hypercall::set_timer_op(deadline_ns).map_err(EventError::Hypercall)
}

/// The deadline `wait_until` last armed the timer for and that has not
/// fired since; 0 when none (or unknown).
static ARMED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Arms the timer for `deadline_ns` unless it already holds that deadline
/// and has not fired (the timer port's fired bit, set by the upcall, says
/// it fired; taking it here is the only reader). Called with upcalls
/// masked, so a timer event arriving after the check is still pending
/// when the vCPU blocks and wakes it at once.
fn arm_timer(deadline_ns: u64) -> Result<(), EventError> {
    let fired = TABLE.take_fired(EvtchnPort(TIMER_PORT.load(Ordering::Acquire)));
    if !fired && ARMED.load(Ordering::Relaxed) == deadline_ns {
        return Ok(());
    }
    ARMED.store(0, Ordering::Relaxed);
    set_timer(deadline_ns)?;
    ARMED.store(deadline_ns, Ordering::Relaxed);
    Ok(())
}

/// Blocks the vCPU for at least `d` (the timer's event wakes it).
pub fn sleep(d: Duration) {
    let deadline = crate::time::deadline_after(d);
    let _ = wait_until(Some(deadline), || crate::time::now_ns() >= deadline);
}
