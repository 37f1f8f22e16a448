//! Soak under real Xen, guest B (see soak_a): connects to A's control
//! vchan, maps and unmaps every page A shares (keeping it mapped across
//! A's release when A asks), and connects to each of A's short-lived
//! channels. Measures its own frames, grant figures and mapping address
//! space before and after: mapping 10,000 pages and 1,000 channels must
//! leak none of them either.
#![no_std]
#![no_main]

extern crate alloc;

use xenpv_test_support::guest as helpers;

use alloc::format;
use core::time::Duration;
use xenpv::grant::Access;
use xenpv::vchan::Vchan;
use xenpv::{println, DomId, GrantRef};

use xenpv_test_support::guest::Error;

xenpv::main!(main);

const T: Option<Duration> = Some(Duration::from_secs(30));

fn main(xen: xenpv::Xen) -> Result<(), Error> {
    let shares: u32 = helpers::arg("shares", 10_000);
    let opens: u32 = helpers::arg("opens", 1_000);
    let xs = xen.store()?;
    let a = DomId(helpers::wait_key_for(&mut xs.lock(), "data/peer_domid", Duration::from_secs(60))?.parse().map_err(|_| Error::Check("peer domid"))?);
    let base = format!("/local/domain/{}/data", a.0);
    let ctl_path = format!("{base}/soakctl");
    helpers::wait_key_for(&mut xs.lock(), &format!("{ctl_path}/event-channel"), Duration::from_secs(60))?;
    let mut ctl = Vchan::client(xen.vchan()?, a, &ctl_path)?;
    let g = xen.grants()?;
    let (m0, g0) = (xenpv::mm::stats(), g.stats());
    println!(
        "soak_b: before: free frames {}, free map pages {}, grant refs used {}, pending {}",
        m0.free_frames, m0.free_map_pages, g0.refs_used, g0.pending
    );

    for _ in 0..shares {
        let mut msg = [0u8; 8];
        ctl.read_exact(&mut msg, T)?;
        let r = GrantRef(u32::from_le_bytes(msg[..4].try_into().unwrap_or([0; 4])));
        let word = u32::from_le_bytes(msg[4..].try_into().unwrap_or([0; 4]));
        let (i, keep) = (word & !(1 << 31), word & (1 << 31) != 0);
        let m = g.map(a, &[r], Access::ReadWrite)?;
        let page = m.page(0).ok_or(Error::Check("page"))?;
        if page.load_u32(0)? != i {
            return Err(Error::Check("A's word is missing"));
        }
        page.store_u32(4, !i)?;
        let mut reply = [0u8; 8];
        reply[..4].copy_from_slice(&i.to_le_bytes());
        if keep {
            // Stay mapped while A releases; unmap when told.
            ctl.write_all(&reply, T)?;
            let mut cmd = [0u8; 8];
            ctl.read_exact(&mut cmd, T)?;
            if &cmd != b"unmapnow" {
                return Err(Error::Check("expected unmapnow"));
            }
            drop(m);
            ctl.write_all(b"unmapped", T)?;
        } else {
            drop(m);
            ctl.write_all(&reply, T)?;
        }
    }
    println!("soak_b: mapped and unmapped {shares} pages");

    let path = format!("{base}/soakchan");
    for _ in 0..opens {
        let mut n = [0u8; 4];
        ctl.read_exact(&mut n, T)?;
        let i = u32::from_le_bytes(n);
        let mut chan = Vchan::client(xen.vchan()?, a, &path)?;
        chan.write_all(&[i as u8], T)?;
        let mut byte = [0u8; 1];
        chan.read_exact(&mut byte, T)?;
        if byte[0] != !(i as u8) {
            return Err(Error::Check("wrong byte from A"));
        }
        drop(chan);
        ctl.write_all(&n, T)?;
    }
    println!("soak_b: connected to {opens} channels");

    let mut bye = [0u8; 4];
    ctl.read_exact(&mut bye, T)?;
    let (m1, g1) = (xenpv::mm::stats(), g.stats());
    println!(
        "soak_b: after: free frames {}, free map pages {}, grant refs used {}, pending {}",
        m1.free_frames, m1.free_map_pages, g1.refs_used, g1.pending
    );
    if m1.free_frames != m0.free_frames || m1.free_map_pages != m0.free_map_pages || g1.refs_used != g0.refs_used || g1.pending != 0 {
        return Err(Error::Check("B leaked frames, mapping space or grant refs"));
    }
    println!("soak_b: no leak");
    ctl.write_all(b"ack!", T)?;
    drop(ctl);
    println!("soak_b: PASS");
    Ok(())
}
