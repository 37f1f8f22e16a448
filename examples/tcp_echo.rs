//! TCP echo over the network front end and smoltcp: connects `vif 0`
//! (dom0's xen-netback, bridged to `xenbr0`), takes the address `xl` gave
//! it (`vif = ['ip=...']`), answers ping, and echoes what a client sends
//! to port 7 until it closes or `bytes=<n>` (xl `extra=`) have gone
//! back; then it closes the connection and powers off. Prints the rate.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use core::net::Ipv4Addr;
use core::time::Duration;
use xenpv::net::smoltcp::socket::tcp;
use xenpv::net::{NetFront, Options, Stack};
use xenpv::{println, Xen};

xenpv::main!(main);

fn main(xen: Xen) -> Result<(), xenpv::Error> {
    let limit: u64 = xen
        .arg("bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    let dev = NetFront::connect(
        xen.grants()?,
        xen.events(),
        xen.store()?,
        0,
        Options::default(),
    )?;
    let ip = dev
        .configured_ip()
        .ok_or(xenpv::Error::App("no ip= in the vif spec"))?;
    let mac = dev.mac();
    let mut net =
        Stack::new(dev, ip, 24, Some(Ipv4Addr::new(10, 0, 7, 1))).map_err(xenpv::Error::msg)?;
    let sock = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 65536]),
        tcp::SocketBuffer::new(vec![0; 65536]),
    );
    let h = net.add(sock);
    net.sockets
        .get_mut::<tcp::Socket>(h)
        .listen(7)
        .map_err(|_| xenpv::Error::App("listen"))?;
    println!(
        "tcp_echo: {ip} ({:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}) listening on port 7",
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
    );
    xen.store()?.lock().write("data/listening", b"1")?;

    let (mut echoed, mut start, mut buf) = (0u64, 0u64, vec![0u8; 16384]);
    let mut pending = 0usize; // bytes in buf not yet sent back
    let deadline = xen.now_ns() + 120_000_000_000;
    let mut report = xen.now_ns() + 5_000_000_000;
    loop {
        net.poll()?;
        let s = net.sockets.get_mut::<tcp::Socket>(h);
        if s.is_active() && start == 0 {
            start = xen.now_ns();
            println!("tcp_echo: connection from {:?}", s.remote_endpoint());
        }
        if pending == 0 && s.can_recv() {
            pending = s.recv_slice(&mut buf).unwrap_or(0);
        }
        if pending > 0 && s.can_send() {
            let n = s.send_slice(&buf[..pending]).unwrap_or(0);
            buf.copy_within(n..pending, 0);
            pending -= n;
            echoed += n as u64;
        }
        // The client half-closed and everything it sent went back.
        let peer_done = s.state() == tcp::State::CloseWait && !s.can_recv() && pending == 0;
        if (echoed >= limit || peer_done) && s.send_queue() == 0 {
            s.close();
        }
        if start != 0 && matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait) {
            break;
        }
        if xen.now_ns() > report {
            report += 5_000_000_000;
            let st = net.dev.stats();
            let s = net.sockets.get_mut::<tcp::Socket>(h);
            println!("tcp_echo: {:?}, echoed {echoed}, pending {pending}, send queue {}, recv queue {}; {st:?}", s.state(), s.send_queue(), s.recv_queue());
        }
        if xen.now_ns() > deadline {
            println!("tcp_echo: FAIL: no complete session in 120 s (echoed {echoed})");
            return Err(xenpv::Error::App("timeout"));
        }
        net.wait(Duration::from_millis(100))?;
    }
    let ns = xen.now_ns() - start;
    let st = net.dev.stats();
    println!(
        "tcp_echo: echoed {echoed} bytes in {} ms ({:.2} MiB/s each way); frames rx {} tx {}, dropped {}",
        ns / 1_000_000,
        echoed as f64 / (1024.0 * 1024.0) / (ns.max(1) as f64 / 1e9),
        st.rx_frames,
        st.tx_frames,
        st.rx_dropped
    );
    println!("tcp_echo: PASS");
    Ok(())
}
