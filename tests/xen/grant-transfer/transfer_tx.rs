//! Page transfers, sending side (case grant-transfer, with transfer_rx):
//! gives two pages away with `GNTTABOP_transfer` to the references
//! transfer_rx offers, after one transfer to a reference that accepts
//! none, and checks that each pfn it gave up was refilled.
#![no_std]
#![no_main]

extern crate alloc;

use core::time::Duration;
use xenpv::grant::TransferError;
use xenpv::mm::{self, Page};
use xenpv::xenstore::{Access, Perm};
use xenpv::{println, DomId, GrantRef, Xen};

use xenpv_test_support::guest::{self as helpers, check, Error};
use xenpv_test_support::pattern;

xenpv::main!(main);

fn give(xen: &Xen, n: u8, rx: DomId, r: GrantRef) -> Result<u64, Error> {
    let page = Page::alloc()?;
    let mut bytes = [0u8; 4096];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = pattern::byte(n, i);
    }
    page.shared().write(0, &bytes).map_err(|_| Error::Check("page bounds"))?;
    let mfn = page.mfn().0;
    match xen.grants()?.transfer(page, rx, r) {
        Ok(()) => Ok(mfn),
        Err(TransferError::Kept(_, e)) | Err(TransferError::Lost(e)) => Err(e.into()),
    }
}

fn main(xen: Xen) -> Result<(), Error> {
    let me = xen.domid()?;
    let xs = xen.store()?;
    let rx: u16 = xs.lock().read_string("data/peers/transfer_rx")?.parse().map_err(|_| Error::Check("bad peer id"))?;
    let rx = DomId(rx);
    let node = alloc::format!("{}/data/xfer", xs.lock().domain_path(rx)?);
    let refs = helpers::wait_key_for(&mut xs.lock(), &node, Duration::from_secs(60))?;
    let mut it = refs.split(' ').map(|r| r.trim().parse::<u32>().map(GrantRef));
    let (Some(Ok(first)), Some(Ok(second))) = (it.next(), it.next()) else {
        return Err(Error::Check("bad references"));
    };
    let g = xen.grants()?;
    let before = mm::stats().free_frames;

    // Reference 1 is one of the receiver's reserved entries: it accepts
    // no transfer. Xen takes the frame first, then frees it.
    match g.transfer(Page::alloc()?, rx, GrantRef(1)) {
        Err(TransferError::Lost(e)) => {
            println!("transfer_tx: transfer to a reference that accepts none: Lost({e:?})")
        }
        Err(TransferError::Kept(_, e)) => return Err(e.into()),
        Ok(()) => return Err(Error::Check("a transfer to a reserved entry went through")),
    }
    check(mm::stats().free_frames == before, "the lost page's pfn was not refilled")?;

    let a = give(&xen, 1, rx, first)?;
    let b = give(&xen, 2, rx, second)?;
    println!("transfer_tx: gave frames {a} and {b} to dom{}", rx.0);
    let mut store = xs.lock();
    store.write("data/sent", b"2")?;
    store.set_perms("data/sent", &[Perm { domid: me, access: Access::None }, Perm { domid: rx, access: Access::Read }])?;
    drop(store);

    let after = mm::stats().free_frames;
    println!("transfer_tx: free frames {before} before, {after} after");
    check(after == before, "frames lost")?;
    // Every pfn given up has a frame again, which the allocator hands out.
    let p = Page::alloc()?;
    check(mm::mfn_to_pfn(p.mfn()) == Some(p.pfn()), "M2P and p2m agree")?;
    drop(p);
    // Stay until the receiver has read data/sent.
    xen.sleep(Duration::from_secs(2));
    println!("transfer_tx: PASS");
    Ok(())
}
