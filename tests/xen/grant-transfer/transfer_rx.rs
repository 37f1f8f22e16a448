//! Page transfers, receiving side (case grant-transfer, with transfer_tx):
//! offers accept-transfer entries to transfer_tx over landing pages, checks
//! the frames that arrive, a withdrawn offer and a dropped slot, and that
//! no frame is lost on the way.
#![no_std]
#![no_main]

extern crate alloc;

use core::time::Duration;
use xenpv::grant::{Cancelled, TransferPoll};
use xenpv::mm::{self, Page};
use xenpv::xenstore::{Access, Perm};
use xenpv::{println, DomId, Xen};

use xenpv_test_support::guest::{self as helpers, check, Error};
use xenpv_test_support::pattern;

xenpv::main!(main);

fn main(xen: Xen) -> Result<(), Error> {
    let me = xen.domid()?;
    let xs = xen.store()?;
    let tx: u16 = xs.lock().read_string("data/peers/transfer_tx")?.parse().map_err(|_| Error::Check("bad peer id"))?;
    let tx = DomId(tx);
    let g = xen.grants()?;
    // Grow the grant table and the heap's working set once, so the frame
    // count below compares like with like.
    drop(g.accept_transfer(tx, Page::alloc()?)?);
    let before = mm::stats().free_frames;

    // An offer withdrawn before anything arrived.
    let landing = Page::alloc()?;
    landing.shared().write(0, b"landing").map_err(|_| Error::Check("page bounds"))?;
    let old = landing.mfn();
    let slot = g.accept_transfer(tx, landing)?;
    let page = match slot.cancel() {
        Ok(Cancelled::Withdrawn(p)) => p,
        Ok(Cancelled::Received(_)) => return Err(Error::Check("nothing was sent yet")),
        Err((_, e)) => return Err(e.into()),
    };
    let mut buf = [0xAAu8; 7];
    page.shared().read(0, &mut buf).map_err(|_| Error::Check("page bounds"))?;
    check(buf == [0; 7], "the new frame is not zeroed")?;
    // (Xen may hand back the very frame it was given: what counts is
    // that the page is mapped, consistent and zeroed.)
    check(mm::mfn_to_pfn(page.mfn()) == Some(page.pfn()), "M2P and p2m agree on the new frame")?;
    println!("transfer_rx: withdrawn offer: landing page back over a frame from Xen ({} -> {}), zeroed", old.0, page.mfn().0);

    // Two offers: the first is polled, the second dropped once sent.
    let landing = Page::alloc()?;
    let landing_mfn = landing.mfn();
    let first = g.accept_transfer(tx, landing)?;
    let second = g.accept_transfer(tx, page)?;
    let mut store = xs.lock();
    store.write("data/xfer", alloc::format!("{} {}", first.gref().0, second.gref().0).as_bytes())?;
    store.set_perms("data/xfer", &[Perm { domid: me, access: Access::None }, Perm { domid: tx, access: Access::Read }])?;
    drop(store);

    let deadline = xen.now_ns() + 60_000_000_000;
    let mut slot = first;
    let got = loop {
        match slot.poll()? {
            TransferPoll::Received(p) => break p,
            TransferPoll::Waiting(s) if xen.now_ns() < deadline => {
                slot = s;
                xen.sleep(Duration::from_millis(5));
            }
            TransferPoll::Waiting(_) => return Err(Error::Check("no page arrived")),
        }
    };
    let mut bytes = [0u8; 4096];
    got.shared().read(0, &mut bytes).map_err(|_| Error::Check("page bounds"))?;
    check(bytes.iter().enumerate().all(|(i, &b)| b == pattern::byte(1, i)), "the page's bytes")?;
    check(mm::mfn_to_pfn(got.mfn()) == Some(got.pfn()), "M2P and p2m agree on the frame that arrived")?;
    check(mm::virt_to_mfn(got.virt()) == Some(got.mfn()), "p2m names the frame that arrived")?;
    // It is an ordinary page of ours now: writable.
    got.shared().write(0, b"mine").map_err(|_| Error::Check("page bounds"))?;
    println!(
        "transfer_rx: received frame {} at pfn {} (was frame {}): all 4096 bytes as the sender wrote them",
        got.mfn().0,
        got.pfn().0,
        landing_mfn.0
    );
    drop(got);

    // The second page: wait until the sender says it went, then drop
    // the slot without polling it.
    let sent = alloc::format!("{}/data/sent", xs.lock().domain_path(tx)?);
    helpers::wait_key_for(&mut xs.lock(), &sent, Duration::from_secs(60))?;
    let free = mm::stats().free_frames;
    drop(second);
    check(mm::stats().free_frames == free + 1, "the dropped slot's page went back to the allocator")?;
    println!("transfer_rx: dropped slot freed the page that arrived");

    let after = mm::stats().free_frames;
    println!("transfer_rx: free frames {before} before, {after} after");
    check(after == before, "frames lost")?;
    check(g.stats().refs_used == 0, "references left")?;
    xs.lock().rm("data/xfer")?;
    println!("transfer_rx: PASS");
    Ok(())
}
