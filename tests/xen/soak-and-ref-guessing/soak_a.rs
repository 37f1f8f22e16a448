//! Soak under real Xen, guest A (with soak_b, and hostile_guesser as a
//! third domain; `cargo xtask run soak_a soak_b hostile_guesser`).
//!
//! A offers a control vchan to B, then runs
//! 1. `shares=` (default 10,000) share/release cycles: A shares a page,
//!    B maps it, checks A's word, writes its own and unmaps; A checks
//!    B's word and releases. Every 16th cycle A releases while B still
//!    maps the page: the release must stay pending (the page pinned)
//!    until B unmaps and a grant operation reclaims it;
//! 2. `opens=` (default 1,000) vchan open/close cycles: A offers a
//!    fresh channel, B connects, one byte each way, both close, A
//!    removes the nodes.
//!
//! Free page frames (`mm::stats`), free and used grant references and
//! the pending-release list (`grants.stats`) are measured after the
//! control channel is up and again at the end: nothing may leak.
//! It also grants one read-only page to C (hostile_guesser), C's
//! positive control: everything else C guesses must be refused.
#![no_std]
#![no_main]

extern crate alloc;

use xenpv_test_support::guest as helpers;

use alloc::format;
use core::time::Duration;
use xenpv::grant::Access;
use xenpv::vchan::Vchan;
use xenpv::xenstore::Perm;
use xenpv::{println, DomId};

use xenpv_test_support::guest::Error;

xenpv::main!(main);

const T: Option<Duration> = Some(Duration::from_secs(30));

fn check(ok: bool, what: &'static str) -> Result<(), Error> {
    if ok { Ok(()) } else { Err(Error::Check(what)) }
}

/// Prints the figures compared before and after (`g`: `grants.stats()`).
macro_rules! figures {
    ($tag:expr, $m:expr, $g:expr) => {{
        let (m, g) = (&$m, &$g);
        println!(
            "soak_a: {}: free frames {}, heap free {}, grant refs used {} free {}, pending {}, shared pages {}, table frames {}",
            $tag, m.free_frames, m.heap_free, g.refs_used, g.refs_free, g.pending, g.shared_pages, g.nr_frames
        );
    }};
}

fn main(xen: xenpv::Xen) -> Result<(), Error> {
    let shares: u32 = helpers::arg("shares", 10_000);
    let opens: u32 = helpers::arg("opens", 1_000);
    let xs = xen.store()?;
    let me = xs.lock().own_domid()?;
    let b = DomId(helpers::wait_key_for(&mut xs.lock(), "data/peer_domid", Duration::from_secs(60))?.parse().map_err(|_| Error::Check("peer domid"))?);
    let c = DomId(helpers::wait_key_for(&mut xs.lock(), "data/guesser_domid", Duration::from_secs(60))?.parse().map_err(|_| Error::Check("C's domid"))?);
    let g = xen.grants()?;

    // C's positive control: one page granted to it, read-only.
    let for_c = g.share(c, 1, Access::ReadOnly)?;
    for_c.page(0).ok_or(Error::Check("page"))?.write(0, b"for C")?;
    let c_ref = for_c.gref(0).ok_or(Error::Check("ref"))?;
    xs.lock().write("data/c_ref", format!("{}", c_ref.0).as_bytes())?;
    xs.lock().set_perms("data/c_ref", &[Perm { domid: me, access: xenpv::xenstore::Access::None }, Perm { domid: c, access: xenpv::xenstore::Access::Read }])?;

    let base = format!("/local/domain/{}/data", me.0);
    let ctl_path = format!("{base}/soakctl");
    let ctl = Vchan::server(xen.vchan()?, b, &ctl_path, 1024, 1024)?;
    ctl.wait_connected(Some(Duration::from_secs(60)))?;
    let mut ctl = ctl;
    println!("soak_a: dom{} connected; {shares} share/release cycles, {opens} vchan open/close cycles", b.0);

    // Warm-up cycle (first-use allocations: mapping VA, heap), then measure.
    let (m0, g0) = (xenpv::mm::stats(), g.stats());
    figures!("before", m0, g0);

    // 1. Share/release cycles.
    let start = xenpv::time::now_ns();
    let mut pending_seen = 0u32;
    for i in 0..shares {
        let keep = i % 16 == 15;
        let mut s = g.share(b, 1, Access::ReadWrite)?;
        let r = s.gref(0).ok_or(Error::Check("ref"))?;
        s.page(0).ok_or(Error::Check("page"))?.store_u32(0, i)?;
        let mut msg = [0u8; 8];
        msg[..4].copy_from_slice(&r.0.to_le_bytes());
        msg[4..].copy_from_slice(&(i | if keep { 1 << 31 } else { 0 }).to_le_bytes());
        ctl.write_all(&msg, T)?;
        let mut reply = [0u8; 8];
        ctl.read_exact(&mut reply, T)?;
        check(u32::from_le_bytes(reply[..4].try_into().unwrap_or([0; 4])) == i, "B answered another cycle")?;
        let index = s.index();
        if keep {
            // B still maps the page: the release must stay pending.
            let rel = s.release(index, 1)?;
            check(rel.pending == 1 && rel.freed == 0, "release while mapped was not pending")?;
            let st = g.stats();
            check(st.pending >= 1 && st.shared_pages >= 1, "pending page not counted")?;
            check(g.entry_flags(r)? & 1 == 1, "entry of a pending page was invalidated")?;
            pending_seen += 1;
            ctl.write_all(b"unmapnow", T)?;
            ctl.read_exact(&mut reply, T)?;
            check(&reply == b"unmapped", "B did not unmap")?;
            check(g.reclaim() == 0, "pending page not reclaimed after B's unmap")?;
        } else {
            check(s.page(0).ok_or(Error::Check("page"))?.load_u32(4)? == !i, "B's write is missing")?;
            let rel = s.release(index, 1)?;
            check(rel.freed == 1 && rel.pending == 0, "release after unmap was not freed")?;
        }
        drop(s);
    }
    let ns = xenpv::time::now_ns() - start;
    println!(
        "soak_a: {shares} share/release cycles in {} ms ({pending_seen} released while mapped, all reclaimed)",
        ns / 1_000_000
    );

    // 2. Vchan open/close cycles.
    let start = xenpv::time::now_ns();
    let path = format!("{base}/soakchan");
    for i in 0..opens {
        let chan = Vchan::server(xen.vchan()?, b, &path, 1024, 1024)?;
        ctl.write_all(&i.to_le_bytes(), T)?;
        chan.wait_connected(T)?;
        let mut chan = chan;
        let mut byte = [0u8; 1];
        chan.read_exact(&mut byte, T)?;
        check(byte[0] == i as u8, "wrong byte from B")?;
        chan.write_all(&[!(i as u8)], T)?;
        // B closes first; then we close and remove the nodes.
        let mut done = [0u8; 4];
        ctl.read_exact(&mut done, T)?;
        check(u32::from_le_bytes(done) == i, "B closed another channel")?;
        drop(chan); // closes, removing the nodes
    }
    let ns = xenpv::time::now_ns() - start;
    println!("soak_a: {opens} vchan open/close cycles in {} ms", ns / 1_000_000);

    // Pages B mapped at its close may need one more grant operation.
    let deadline = xenpv::time::now_ns() + 5_000_000_000;
    while g.reclaim() > 0 && xenpv::time::now_ns() < deadline {
        xenpv::sleep(Duration::from_millis(10));
    }
    let (m1, g1) = (xenpv::mm::stats(), g.stats());
    figures!("after", m1, g1);
    check(m1.free_frames == m0.free_frames, "page frames leaked")?;
    check(g1.refs_used == g0.refs_used && g1.refs_free == g0.refs_free, "grant references leaked")?;
    check(g1.pending == 0 && g1.shared_pages == g0.shared_pages, "pending releases left")?;
    check(m1.free_map_pages == m0.free_map_pages, "mapping address space leaked")?;
    println!("soak_a: no leak: frames, grant refs, pending list and mapping space as before");

    ctl.write_all(b"bye!", T)?;
    let mut ack = [0u8; 4];
    ctl.read_exact(&mut ack, T)?;
    // C (hostile_guesser) maps its page once; keep it until C is done.
    // (C's own data/ vanishes when it powers off: the companion relays.)
    helpers::wait_key_for(&mut xs.lock(), "data/c_done", Duration::from_secs(120))?;
    drop(for_c);
    drop(ctl); // closes, removing the nodes
    println!("soak_a: PASS");
    Ok(())
}
