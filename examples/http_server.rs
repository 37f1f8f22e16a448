//! A web server: serves one page on port 80 over the network front end
//! and smoltcp, to any number of clients one after another, until the
//! link goes down (dom0 detaches the vif with `xl network-detach`): the
//! stack then reports `BackendClosing`, a typed error. When a vif is
//! attached again (`xl network-attach`) it reconnects and serves on, with
//! the same address; at the second detach it powers off saying how many
//! pages it served.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use core::net::Ipv4Addr;
use core::time::Duration;
use xenpv::net::smoltcp::iface::SocketHandle;
use xenpv::net::smoltcp::socket::tcp;
use xenpv::net::{NetError, NetFront, Options, Stack};
use xenpv::{println, Xen};

xenpv::main!(main);

const BODY: &str = "<html><body><h1>Hello from xenpv</h1><p>A Xen PV unikernel in Rust, over netfront and smoltcp.</p></body></html>\n";

fn main(xen: Xen) -> Result<(), xenpv::Error> {
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
    let mut net =
        Stack::new(dev, ip, 24, Some(Ipv4Addr::new(10, 0, 7, 1))).map_err(xenpv::Error::msg)?;
    let h = net.add(tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 4096]),
        tcp::SocketBuffer::new(vec![0; 4096]),
    ));
    println!("http_server: serving http://{ip}/");
    xen.store()?.lock().write("data/listening", b"1")?;
    let mut served = 0u32;
    let deadline = xen.now_ns() + 180_000_000_000;
    for round in 1..=2 {
        let link = serve(&xen, &mut net, h, &mut served, deadline)?;
        println!("http_server: link down: {link:?}; served {served} pages");
        if link != NetError::BackendClosing {
            return Err(xenpv::Error::App("expected BackendClosing"));
        }
        if round == 2 {
            break;
        }
        // Link up again when the toolstack attaches a vif again: the old
        // device is dropped (its end closed) and the stack goes on with
        // the new one, same address.
        let dev = reconnect(&xen, deadline)?;
        println!(
            "http_server: link up again: {}",
            dev.configured_ip()
                .map_or(alloc::string::String::from("?"), |a| alloc::format!("{a}"))
        );
        drop(net.replace_device(dev));
        net.sockets.get_mut::<tcp::Socket>(h).abort();
    }
    println!("http_server: PASS");
    Ok(())
}

/// Waits for a vif to appear in `device/vif` and connects to it.
fn reconnect(xen: &Xen, deadline: u64) -> Result<xenpv::net::XenNetFront, xenpv::Error> {
    let opts = Options {
        timeout: Duration::from_secs(10),
        ..Options::default()
    };
    loop {
        let ids = xenpv::xenbus::Frontend::devices(xen.store()?, "vif")?;
        if let Some(&id) = ids.first() {
            match NetFront::connect(xen.grants()?, xen.events(), xen.store()?, id, opts) {
                Ok(dev) => return Ok(dev),
                Err(e) if xen.now_ns() < deadline => {
                    println!("http_server: vif {id} not ready yet: {e:?}")
                }
                Err(e) => return Err(e.into()),
            }
        }
        if xen.now_ns() > deadline {
            return Err(xenpv::Error::App("no vif came back"));
        }
        xen.sleep(Duration::from_millis(500));
    }
}

/// Serves until the link goes down; returns why.
fn serve(
    xen: &Xen,
    net: &mut Stack<'static, xenpv::grant::XenGrantOps, xenpv::event::XenEvents>,
    h: SocketHandle,
    served: &mut u32,
    deadline: u64,
) -> Result<NetError, xenpv::Error> {
    let mut request = vec![0u8; 0];
    Ok(loop {
        if let Err(e) = net.poll() {
            break e;
        }
        let s = net.sockets.get_mut::<tcp::Socket>(h);
        if !s.is_open() {
            request.clear();
            s.listen(80).map_err(|_| xenpv::Error::App("listen"))?;
        }
        if s.can_recv() {
            let _ = s.recv(|d| {
                request.extend_from_slice(d);
                (d.len(), ())
            });
            // A whole request head: answer it and close.
            if request.windows(4).any(|w| w == b"\r\n\r\n") {
                let line = request.split(|&b| b == b'\r').next().unwrap_or(&[]);
                let ok = line.starts_with(b"GET / ") || line.starts_with(b"GET /index.html ");
                let head = if ok {
                    alloc::format!("HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", BODY.len())
                } else {
                    alloc::string::String::from(
                        "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                };
                let _ = s.send_slice(head.as_bytes());
                if ok {
                    let _ = s.send_slice(BODY.as_bytes());
                    *served += 1;
                }
                println!(
                    "http_server: {} -> {}",
                    core::str::from_utf8(line).unwrap_or("?"),
                    if ok { 200 } else { 404 }
                );
                s.close();
            }
        }
        if xen.now_ns() > deadline {
            println!("http_server: FAIL: the link never went down ({served} pages served)");
            return Err(xenpv::Error::App("timeout"));
        }
        if let Err(e) = net.wait(Duration::from_millis(100)) {
            break e;
        }
    })
}
