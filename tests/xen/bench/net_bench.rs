//! Network benchmark guest (run by `cargo xtask bench`): netfront and
//! smoltcp as a TCP server for dom0's busybox `nc`, next to a Linux PV
//! guest doing the same in the same run.
//!
//! - port 5001, sink: reads and drops everything a client sends until the
//!   client half-closes, then closes (dom0 → guest);
//! - port 5002, source: sends `bytes=` bytes (default 8 MiB) of a prepared
//!   buffer, then closes (guest → dom0);
//! - ICMP echo (smoltcp answers it) for dom0's `ping`.
//!
//! Each port serves `runs=` connections (default 3), one after another;
//! then the guest powers off. dom0 times the transfers (the figures); the
//! guest prints its own view of each session too (from its first received
//! byte or its connection to the close), for comparison.
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

const SINK: u16 = 5001;
const SOURCE: u16 = 5002;
const BUF: usize = 65536;

/// One port's connections, one after another.
struct Session {
    port: u16,
    done: u32,
    active: bool,
    closing: bool,
    bytes: u64,
    start: u64,
}

fn mib_s(bytes: u64, ns: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / (ns.max(1) as f64 / 1e9)
}

impl Session {
    fn new(port: u16) -> Self {
        Session { port, done: 0, active: false, closing: false, bytes: 0, start: 0 }
    }

    /// Notices a new connection and the end of one; listens again after it.
    fn track(&mut self, s: &mut tcp::Socket, now: u64, what: &str) -> Result<(), xenpv::Error> {
        if !self.active && s.is_active() {
            self.active = true;
            self.start = now;
        }
        if self.active && matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait) {
            println!(
                "net_bench: {what} run {}: {} bytes in {} us ({:.2} MiB/s, guest clock)",
                self.done + 1,
                self.bytes,
                (now - self.start) / 1000,
                mib_s(self.bytes, now - self.start)
            );
            self.done += 1;
            *self = Session { port: self.port, done: self.done, ..Session::new(self.port) };
            if s.state() == tcp::State::TimeWait {
                s.abort();
            }
            s.listen(self.port).map_err(|_| xenpv::Error::App("listen again"))?;
        }
        Ok(())
    }
}

fn main(xen: Xen) -> Result<(), xenpv::Error> {
    let runs: u32 = xen.arg("runs").and_then(|v| v.parse().ok()).unwrap_or(3);
    let bytes: u64 = xen.arg("bytes").and_then(|v| v.parse().ok()).unwrap_or(8 << 20);
    let dev = NetFront::connect(xen.grants()?, xen.events(), xen.store()?, 0, Options::default())?;
    let ip = dev.configured_ip().ok_or(xenpv::Error::App("no ip= in the vif spec"))?;
    let mut net = Stack::new(dev, ip, 24, Some(Ipv4Addr::new(10, 0, 7, 1)))
        .map_err(xenpv::Error::msg)?;
    let mk = || tcp::Socket::new(tcp::SocketBuffer::new(vec![0; BUF]), tcp::SocketBuffer::new(vec![0; BUF]));
    let (hsink, hsource) = (net.add(mk()), net.add(mk()));
    net.sockets.get_mut::<tcp::Socket>(hsink).listen(SINK).map_err(|_| xenpv::Error::App("listen"))?;
    net.sockets.get_mut::<tcp::Socket>(hsource).listen(SOURCE).map_err(|_| xenpv::Error::App("listen"))?;
    println!("net_bench: {ip} listening: sink on {SINK}, source on {SOURCE} ({bytes} bytes), {runs} runs each");
    xen.store()?.lock().write("data/listening", b"1")?;

    let (mut sink, mut source) = (Session::new(SINK), Session::new(SOURCE));
    let (mut scratch, data) = (vec![0u8; 16384], vec![0x5au8; 16384]);
    let deadline = xen.now_ns() + 300_000_000_000;
    while sink.done < runs || source.done < runs {
        net.poll()?;
        let now = xen.now_ns();

        let s = net.sockets.get_mut::<tcp::Socket>(hsink);
        while s.can_recv() {
            let n = s.recv_slice(&mut scratch).unwrap_or(0);
            if n == 0 {
                break;
            }
            sink.bytes += n as u64;
        }
        // The client half-closed and everything it sent was read.
        if s.state() == tcp::State::CloseWait && !sink.closing {
            sink.closing = true;
            s.close();
        }
        sink.track(s, now, "sink (dom0 -> guest)")?;

        let s = net.sockets.get_mut::<tcp::Socket>(hsource);
        while s.can_recv() && s.recv_slice(&mut scratch).unwrap_or(0) > 0 {}
        if s.may_send() && !source.closing {
            while source.bytes < bytes && s.can_send() {
                let want = (bytes - source.bytes).min(data.len() as u64) as usize;
                let n = s.send_slice(&data[..want]).unwrap_or(0);
                if n == 0 {
                    break;
                }
                source.bytes += n as u64;
            }
            if source.bytes >= bytes {
                source.closing = true;
                s.close();
            }
        }
        source.track(s, now, "source (guest -> dom0)")?;

        if now > deadline {
            println!("net_bench: FAIL: {} sink and {} source runs in 300 s", sink.done, source.done);
            return Err(xenpv::Error::App("timeout"));
        }
        net.wait(Duration::from_millis(100))?;
    }
    let st = net.dev.stats();
    println!("net_bench: done; frames rx {} tx {}, dropped {}", st.rx_frames, st.tx_frames, st.rx_dropped);
    Ok(())
}
