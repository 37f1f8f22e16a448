//! Event channels and the timer inside one domain: a loopback channel
//! (alloc_unbound to ourselves, then bind_interdomain to it), handlers,
//! mask/unmask, SCHEDOP_poll, status, 1000 round trips, and a 100 ms
//! sleep checked against Xen system time. Runs as dom0 or as a domU.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;
use xenpv::event::{EventError, EventOps, Status, Virq, XenEvents};
use xenpv::{println, time, DomId, EvtchnPort};

xenpv::main!(main);

static HITS: AtomicU32 = AtomicU32::new(0);

fn count(_: EvtchnPort) {
    HITS.fetch_add(1, Ordering::SeqCst);
}

fn check(ok: bool, what: &str) -> Result<(), &'static str> {
    if ok {
        println!("ev_selftest: ok: {what}");
        Ok(())
    } else {
        println!("ev_selftest: FAIL: {what}");
        Err("check failed")
    }
}

fn main(xen: xenpv::Xen) -> Result<(), EventError> {
    run(xen.events()).map_err(|_| EventError::Timeout)
}

fn run(ev: &XenEvents) -> Result<(), &'static str> {
    let e = |e: EventError| {
        println!("ev_selftest: error {e:?}");
        "event error"
    };
    let a = ev.alloc_unbound(DomId::SELF).map_err(e)?;
    let b = ev.bind_interdomain(DomId::SELF, a).map_err(e)?;
    println!("ev_selftest: loopback ports a={a} b={b}");
    match ev.status(b).map_err(e)? {
        Status::Interdomain { remote_port, .. } => check(remote_port == a, "status(b) names a")?,
        s => {
            println!("ev_selftest: status {s:?}");
            check(false, "status(b) is interdomain")?
        }
    }
    ev.set_handler(a, Some(count)).map_err(e)?;
    ev.send(b).map_err(e)?;
    ev.wait(a, Some(Duration::from_secs(1))).map_err(e)?;
    check(HITS.load(Ordering::SeqCst) == 1, "handler ran once for one send")?;

    // Masked: the event stays pending; poll sees it; unmask delivers it.
    ev.mask(a).map_err(e)?;
    ev.send(b).map_err(e)?;
    let pending = ev.poll(&[a], Some(time::deadline_after(Duration::from_millis(500)))).map_err(e)?;
    check(pending && HITS.load(Ordering::SeqCst) == 1, "masked port: poll sees it pending, no handler")?;
    ev.unmask(a).map_err(e)?;
    ev.wait(a, Some(Duration::from_secs(1))).map_err(e)?;
    check(HITS.load(Ordering::SeqCst) == 2, "unmask delivers the held event")?;

    // poll timing out.
    ev.mask(a).map_err(e)?;
    let t0 = time::now_ns();
    let pending = ev.poll(&[a], Some(t0 + 20_000_000)).map_err(e)?;
    let waited = time::now_ns() - t0;
    println!("ev_selftest: poll with nothing pending returned after {} us", waited / 1000);
    check(!pending && waited >= 20_000_000, "poll times out after 20 ms")?;
    ev.unmask(a).map_err(e)?;

    // A wait on a silent port times out. (Xen raises the local port once
    // at bind_interdomain, for notifications lost while unbound: drop it.)
    ev.take_fired(b);
    let r = ev.wait(b, Some(Duration::from_millis(30)));
    println!("ev_selftest: wait on silent port: {r:?}");
    check(r == Err(EventError::Timeout), "wait on a silent port times out")?;

    // Ping-pong over the loopback pair.
    ev.set_handler(a, None).map_err(e)?;
    let n = 1000;
    let t0 = time::now_ns();
    for _ in 0..n {
        ev.send(b).map_err(e)?;
        ev.wait(a, Some(Duration::from_secs(1))).map_err(e)?;
        ev.send(a).map_err(e)?;
        ev.wait(b, Some(Duration::from_secs(1))).map_err(e)?;
    }
    let dt = time::now_ns() - t0;
    println!("ev_selftest: {n} loopback round trips in {} us ({} round trips/s)", dt / 1000, n as u64 * 1_000_000_000 / dt.max(1));

    // Sleep.
    let t0 = time::now_ns();
    xenpv::sleep(Duration::from_millis(100));
    let slept = time::now_ns() - t0;
    println!("ev_selftest: sleep(100 ms) took {} us", slept / 1000);
    // Never early; the upper bound leaves room for QEMU-TCG scheduling.
    check((100_000_000..200_000_000).contains(&slept), "sleep(100 ms) within [100, 200) ms")?;
    // Many short sleeps in a row: each must be woken by its own timer
    // (a regression test for a wait that armed the timer only once and
    // slept forever when Xen's timer fired just before our clock's deadline).
    let t0 = time::now_ns();
    for _ in 0..300 {
        xenpv::sleep(Duration::from_millis(1));
    }
    let total = time::now_ns() - t0;
    println!("ev_selftest: 300 x sleep(1 ms) took {} us", total / 1000);
    check((300_000_000..10_000_000_000).contains(&total), "300 short sleeps all wake up, none early")?;
    let wc = time::wallclock();
    println!("ev_selftest: wallclock {}.{:09} s since the epoch", wc.as_secs(), wc.subsec_nanos());

    // The runtime's own ports stay open: closing the timer's VIRQ would
    // leave every later wait without a wake-up.
    let timer = (1..4096)
        .map(EvtchnPort)
        .find(|&p| matches!(ev.status(p), Ok(Status::Virq(v)) if v == Virq::TIMER));
    check(timer.is_some(), "the timer's VIRQ port is found by status")?;
    let timer = timer.unwrap_or(EvtchnPort(0));
    check(ev.close(timer) == Err(EventError::RuntimePort(timer)), "close of the timer's port is refused")?;
    let store = xenpv::runtime::boot_info().store_evtchn;
    if store.0 != 0 {
        check(ev.close(store) == Err(EventError::RuntimePort(store)), "close of xenstore's port is refused")?;
    }
    let t0 = time::now_ns();
    xenpv::sleep(Duration::from_millis(10));
    check(time::now_ns() - t0 >= 10_000_000, "the timer still wakes a sleep after the refused close")?;

    ev.close(b).map_err(e)?;
    check(matches!(ev.status(a), Ok(Status::Unbound { .. })), "closing b leaves a unbound")?;
    ev.close(a).map_err(e)?;
    check(ev.send(a).is_err(), "send on a closed port fails")?;
    println!("ev_selftest: all checks passed");
    Ok(())
}
