//! Hostile-peer scenario under real Xen: a third domain guessing grant
//! references (runs beside the soak: `cargo xtask run soak_a soak_b
//! hostile_guesser`). While A shares page after page with B, C tries to
//! map every reference of A's first `refs=` (default 2048) entries,
//! read-only and writable, for `rounds=` rounds (default 3). Xen must
//! refuse all of them but the one page A granted to C itself (the
//! positive control: C's mapping code works). C's own frames, mapping
//! address space and grant figures must be as before afterwards.
#![no_std]
#![no_main]

extern crate alloc;

use xenpv_test_support::guest as helpers;

use core::time::Duration;
use xenpv::grant::Access;
use xenpv::{println, DomId, GrantRef};

use xenpv_test_support::guest::Error;

xenpv::main!(main);

fn main(xen: xenpv::Xen) -> Result<(), Error> {
    let refs: u32 = helpers::arg("refs", 2048);
    let rounds: u32 = helpers::arg("rounds", 3);
    let store = xen.store()?;
    let mut xs = store.lock();
    let a = DomId(helpers::wait_key_for(&mut xs, "data/peer_domid", Duration::from_secs(60))?.parse().map_err(|_| Error::Check("domid"))?);
    let mine: u32 = helpers::wait_key_for(&mut xs, &alloc::format!("/local/domain/{}/data/c_ref", a.0), Duration::from_secs(60))?
        .parse()
        .map_err(|_| Error::Check("c_ref"))?;
    let g = xen.grants()?;
    let (m0, g0) = (xenpv::mm::stats(), g.stats());

    // Positive control: the page A granted to us maps, read-only only.
    {
        let m = g.map(a, &[GrantRef(mine)], Access::ReadOnly)?;
        let mut b = [0u8; 5];
        m.page(0).ok_or(Error::Check("page"))?.read(0, &mut b)?;
        if &b != b"for C" {
            return Err(Error::Check("control page content"));
        }
        if g.map(a, &[GrantRef(mine)], Access::ReadWrite).is_ok() {
            return Err(Error::Check("writable map of a read-only grant"));
        }
    }
    println!("hostile_guesser: control: dom{}'s ref {mine} granted to us maps read-only", a.0);

    let (mut tried, mut mapped) = (0u32, 0u32);
    let mut first_refusal = None;
    let start = xenpv::time::now_ns();
    for _ in 0..rounds {
        for r in (0..refs).filter(|&r| r != mine) {
            for access in [Access::ReadOnly, Access::ReadWrite] {
                tried += 1;
                match g.map(a, &[GrantRef(r)], access) {
                    Ok(m) => {
                        mapped += 1;
                        println!("hostile_guesser: MAPPED dom{}'s ref {r} ({access:?})", a.0);
                        drop(m);
                    }
                    Err(e) => {
                        first_refusal.get_or_insert(e);
                    }
                }
            }
        }
    }
    let ms = (xenpv::time::now_ns() - start) / 1_000_000;
    println!(
        "hostile_guesser: {tried} guesses at dom{}'s refs 0..{refs} in {ms} ms: {mapped} mapped (refusal: {:?})",
        a.0,
        first_refusal
    );
    let (m1, g1) = (xenpv::mm::stats(), g.stats());
    if mapped != 0 {
        return Err(Error::Check("a guessed reference mapped"));
    }
    if m1.free_frames != m0.free_frames || m1.free_map_pages != m0.free_map_pages || g1.refs_used != g0.refs_used {
        return Err(Error::Check("failed maps leaked frames or address space"));
    }
    // Tell A (through the dom0 companion, which reads our data/ while we
    // are still alive) that we are done with its control page; leave only
    // once the companion has passed it on.
    xs.write("data/done", b"1")?;
    helpers::wait_key_for(&mut xs, "data/ack", Duration::from_secs(120))?;
    println!("hostile_guesser: refused, nothing leaked (free map pages {} before and after)", m1.free_map_pages);
    println!("hostile_guesser: PASS");
    Ok(())
}
