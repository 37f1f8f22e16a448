//! Hostile-peer scenario under real Xen: a peer that maps and never
//! unmaps (with hostile_hoarder: `cargo xtask run hostile_sharer
//! hostile_hoarder`). The sharer shares a page with the hoarder, which
//! maps it and keeps it. The sharer's release must then stay pending:
//! the frame is not freed (free frames unchanged), the entry stays valid,
//! the page counts toward the share limit, and neither its reference nor
//! its frame is handed out again while new pages come and go.
#![no_std]
#![no_main]

extern crate alloc;

use xenpv_test_support::guest as helpers;

use alloc::format;
use alloc::vec::Vec;
use core::time::Duration;
use xenpv::grant::{Access, GrantError};
use xenpv::xenstore::{Access as XsAccess, Perm};
use xenpv::{println, DomId};

use xenpv_test_support::guest::{check, Error};

xenpv::main!(main);

fn main(xen: xenpv::Xen) -> Result<(), Error> {
    let store = xen.store()?;
    let mut xs = store.lock();
    let me = xs.own_domid()?;
    let b = DomId(helpers::wait_key_for(&mut xs, "data/peer_domid", Duration::from_secs(60))?.parse().map_err(|_| Error::Check("domid"))?);
    let perms = [Perm { domid: me, access: XsAccess::None }, Perm { domid: b, access: XsAccess::Read }];
    let g = xen.grants()?;
    g.set_share_limit(4);
    let mut s = g.share(b, 1, Access::ReadWrite)?;
    let (r, mfn) = (s.gref(0).ok_or(Error::Check("ref"))?, s.mfn(0).ok_or(Error::Check("mfn"))?);
    s.page(0).ok_or(Error::Check("page"))?.write(0, b"sharer's page")?;
    xs.write("data/ref", format!("{}", r.0).as_bytes())?;
    xs.set_perms("data/ref", &perms)?;
    let mapped = format!("/local/domain/{}/data/mapped", b.0);
    helpers::wait_key_for(&mut xs, &mapped, Duration::from_secs(60))?;

    let before = xenpv::mm::stats().free_frames;
    let rel = s.release(s.index(), 1)?;
    let st = g.stats();
    let after = xenpv::mm::stats().free_frames;
    println!(
        "hostile_sharer: released gref {} while dom{} maps it: freed {}, pending {}; stats pending {} shared pages {}/{}; free frames {before} -> {after}",
        r.0, b.0, rel.freed, rel.pending, st.pending, st.shared_pages, st.share_limit
    );
    check(rel.pending == 1 && st.pending == 1 && st.shared_pages == 1, "the release is not pending")?;
    check(after == before, "the frame of a mapped page was freed")?;
    check(g.entry_flags(r)? & 0x19 == 0x19, "the entry of a mapped page was invalidated")?;
    drop(s);

    // The pending page counts toward the limit (1 + 4 > 4) ...
    match g.share(b, 4, Access::ReadWrite) {
        Err(GrantError::LimitReached { limit: 4, in_use: 1, requested: 4 }) => {}
        other => {
            println!("hostile_sharer: share of 4 gave {:?}", other.map(|p| p.len()));
            return Err(Error::Check("the pending page did not count toward the limit"));
        }
    }
    println!("hostile_sharer: share of 4 more refused: limit 4, 1 pending page counted");
    // ... and is never reused while pages come and go.
    let mut reused = 0;
    for _ in 0..100 {
        let more = g.share(b, 3, Access::ReadWrite)?;
        let refs: Vec<_> = more.refs().collect();
        reused += refs.iter().filter(|&&x| x == r).count();
        reused += (0..3).filter(|&i| more.mfn(i) == Some(mfn)).count();
    }
    let st = g.stats();
    check(reused == 0, "the pending reference or frame was reused")?;
    check(st.pending == 1 && g.reclaim() == 1, "the pending page went away while mapped")?;
    check(xenpv::mm::stats().free_frames == after, "frames leaked or the pinned one freed")?;
    println!("hostile_sharer: 100 share/release rounds of 3 pages: pending gref {} and its frame never reused; still pending {}", r.0, st.pending);

    xs.write("data/done", b"1")?;
    xs.set_perms("data/done", &perms)?;
    helpers::wait_key_for(&mut xs, &format!("/local/domain/{}/data/checked", b.0), Duration::from_secs(60))?;
    println!("hostile_sharer: PASS");
    Ok(())
}
