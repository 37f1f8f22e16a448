//! A TCP/IP stack over a [`NetFront`]: smoltcp's `Interface` and its
//! sockets, driven by one `poll`/`wait` loop, with the address from the
//! xl config (`vif = ['ip=...']`, read from the backend's `ip` node).

use super::{NetError, NetFront};
use crate::event::EventOps;
use crate::grant::GrantOps;
use alloc::vec::Vec;
use core::net::Ipv4Addr;
use core::time::Duration;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::wire::{EthernetAddress, IpCidr};

/// The device, its smoltcp interface and sockets.
pub struct Stack<'g, G: GrantOps, E: EventOps> {
    /// The network front end.
    pub dev: NetFront<'g, G, E>,
    /// smoltcp's interface (addresses, routes, neighbour cache).
    pub iface: Interface,
    /// The sockets `poll` serves.
    pub sockets: SocketSet<'static>,
}

impl<G: GrantOps, E: EventOps> core::fmt::Debug for Stack<'_, G, E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Stack")
            .field("dev", &self.dev)
            .field("addrs", &self.iface.ip_addrs())
            .finish()
    }
}

fn instant(ns: u64) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros((ns / 1000) as i64)
}

impl<'g, G: GrantOps, E: EventOps> Stack<'g, G, E> {
    /// An interface with our MAC and `addr`/`prefix`, routing everything
    /// else through `gateway`.
    pub fn new(
        mut dev: NetFront<'g, G, E>,
        addr: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
    ) -> Self {
        let mut config = Config::new(EthernetAddress(dev.mac()).into());
        let now = dev.now_ns();
        // TCP initial sequence numbers: vary per boot.
        config.random_seed = now
            ^ u64::from_le_bytes([
                dev.mac()[0],
                dev.mac()[1],
                dev.mac()[2],
                dev.mac()[3],
                dev.mac()[4],
                dev.mac()[5],
                0,
                0,
            ]);
        let mut iface = Interface::new(config, &mut dev, instant(now));
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(addr.into(), prefix));
        });
        if let Some(gw) = gateway {
            let _ = iface.routes_mut().add_default_ipv4_route(gw);
        }
        Stack {
            dev,
            iface,
            sockets: SocketSet::new(Vec::new()),
        }
    }

    /// Puts a new device under the stack (the same interface: a vif
    /// detached and attached again, reconnected with [`NetFront::connect`])
    /// and returns the old one. Sockets keep their state; connections of
    /// the old link will time out or be reset by their peers.
    pub fn replace_device(&mut self, dev: NetFront<'g, G, E>) -> NetFront<'g, G, E> {
        core::mem::replace(&mut self.dev, dev)
    }

    /// Adds a socket.
    pub fn add<S: smoltcp::socket::AnySocket<'static>>(&mut self, socket: S) -> SocketHandle {
        self.sockets.add(socket)
    }

    /// Moves frames between the device and the sockets; `Err` when the
    /// link is gone (backend closing, domain dead, broken ring).
    pub fn poll(&mut self) -> Result<(), NetError> {
        self.dev.check_link()?;
        let now = instant(self.dev.now_ns());
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
        Ok(())
    }

    /// Sleeps until a frame arrives, a socket timer is due, or `max`.
    pub fn wait(&mut self, max: Duration) -> Result<(), NetError> {
        let now = instant(self.dev.now_ns());
        let delay = self
            .iface
            .poll_delay(now, &self.sockets)
            .map_or(max, |d| Duration::from_micros(d.total_micros()).min(max));
        if delay.is_zero() {
            return Ok(());
        }
        self.dev.wait(delay)
    }
}
