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

/// Why [`Stack::new`] refused its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackError {
    /// A prefix length above 32.
    BadPrefix(u8),
    /// A broadcast or multicast address.
    NotUnicast(Ipv4Addr),
}

impl core::fmt::Display for StackError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StackError::BadPrefix(p) => write!(f, "prefix /{p} is longer than 32 bits"),
            StackError::NotUnicast(a) => write!(f, "{a} is not a unicast address"),
        }
    }
}

/// What smoltcp asserts of an interface address, as a typed error.
fn check_address(addr: Ipv4Addr, prefix: u8) -> Result<(), StackError> {
    if prefix > 32 {
        return Err(StackError::BadPrefix(prefix));
    }
    // 0.0.0.0 passes, as in smoltcp (an interface waiting for DHCP).
    if addr.is_broadcast() || addr.is_multicast() {
        return Err(StackError::NotUnicast(addr));
    }
    Ok(())
}

fn instant(ns: u64) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros((ns / 1000) as i64)
}

impl<'g, G: GrantOps, E: EventOps> Stack<'g, G, E> {
    /// An interface with our MAC and `addr`/`prefix`, routing everything
    /// else through `gateway`. Refuses (dropping, so closing, `dev`) a
    /// prefix above 32 and an address that is not unicast (smoltcp
    /// asserts both; `addr` may come from the backend's `ip` node).
    pub fn new(
        mut dev: NetFront<'g, G, E>,
        addr: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
    ) -> Result<Self, StackError> {
        check_address(addr, prefix)?;
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
        Ok(Stack {
            dev,
            iface,
            sockets: SocketSet::new(Vec::new()),
        })
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

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::event::ops::fake::FakeEventWorld;
    use crate::grant::fake::FakeWorld;
    use crate::grant::Grants;
    use crate::net::Options;
    use crate::types::DomId;

    #[test]
    fn addresses_smoltcp_asserts_on_are_typed_errors() {
        let (gw, ew) = (FakeWorld::new(), FakeEventWorld::new());
        let grants = Grants::new(gw.add_domain(DomId(1), 1, 8), 1).unwrap();
        let events = ew.domain(DomId(1));
        let mac = [0, 0x16, 0x3e, 0, 0, 1];
        let ip = Ipv4Addr::new(10, 0, 7, 2);
        let dev = || NetFront::new(&grants, &events, DomId(0), mac, Options::default()).unwrap();
        for prefix in [33, 64, u8::MAX] {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Stack::new(dev(), ip, prefix, None).map(drop)
            }));
            assert_eq!(r.ok(), Some(Err(StackError::BadPrefix(prefix))));
        }
        // What else smoltcp asserts: a unicast address (the `ip` node the
        // address usually comes from is the backend's to write).
        for bad in [
            Ipv4Addr::BROADCAST,
            Ipv4Addr::new(224, 0, 0, 1),
            Ipv4Addr::new(239, 255, 255, 250),
        ] {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Stack::new(dev(), bad, 24, None).map(drop)
            }));
            assert_eq!(r.ok(), Some(Err(StackError::NotUnicast(bad))));
        }
        // The bounds themselves are fine.
        for (addr, prefix) in [
            (ip, 32),
            (ip, 0),
            (Ipv4Addr::new(10, 0, 7, 255), 16),
            (Ipv4Addr::UNSPECIFIED, 0),
        ] {
            let net = Stack::new(dev(), addr, prefix, Some(Ipv4Addr::new(10, 0, 7, 1))).unwrap();
            assert_eq!(
                net.iface.ip_addrs(),
                &[IpCidr::new(addr.into(), prefix)][..]
            );
        }
    }

    #[test]
    fn a_stack_adds_sockets_polls_and_waits_on_its_device_and_says_when_the_link_is_gone() {
        use smoltcp::socket::udp;
        let (gw, ew) = (FakeWorld::new(), FakeEventWorld::new());
        let grants = Grants::new(gw.add_domain(DomId(1), 1, 8), 1).unwrap();
        let events = ew.domain(DomId(1));
        let mac = [0, 0x16, 0x3e, 0, 0, 1];
        let dev = NetFront::new(&grants, &events, DomId(0), mac, Options::default()).unwrap();
        let ip = Ipv4Addr::new(10, 0, 7, 2);
        let mut net = Stack::new(dev, ip, 24, None).unwrap();
        let debug = alloc::format!("{net:?}");
        assert!(
            debug.starts_with("Stack {") && debug.contains("address: 10.0.7.2, prefix_len: 24"),
            "{debug}"
        );
        // Each socket gets its own handle.
        let udp = || {
            let buf = || {
                udp::PacketBuffer::new(
                    alloc::vec![udp::PacketMetadata::EMPTY; 1],
                    alloc::vec![0; 64],
                )
            };
            udp::Socket::new(buf(), buf())
        };
        let (a, b) = (net.add(udp()), net.add(udp()));
        assert_ne!(a, b);
        net.sockets.get_mut::<udp::Socket>(b).bind(7).unwrap();
        assert!(net.sockets.get::<udp::Socket>(b).is_open());
        assert!(!net.sockets.get::<udp::Socket>(a).is_open());
        // A live device: poll serves it, an idle wait returns.
        assert_eq!(net.poll(), Ok(()));
        assert_eq!(net.wait(Duration::from_millis(1)), Ok(()));
        // A link that went down is the stack's error too.
        assert_eq!(
            net.dev.fail::<()>(NetError::BackendGone),
            Err(NetError::BackendGone)
        );
        assert_eq!(net.poll(), Err(NetError::BackendGone));
        assert_eq!(
            net.wait(Duration::from_millis(1)),
            Err(NetError::BackendGone)
        );
    }

    #[test]
    fn the_clock_reaches_smoltcp_in_microseconds_and_errors_read_as_words() {
        assert_eq!(
            instant(1_500_000),
            smoltcp::time::Instant::from_micros(1500)
        );
        assert_eq!(instant(999), smoltcp::time::Instant::from_micros(0));
        assert_eq!(
            alloc::format!("{}", StackError::BadPrefix(40)),
            "prefix /40 is longer than 32 bits"
        );
        let text = alloc::format!("{}", StackError::NotUnicast(Ipv4Addr::BROADCAST));
        assert!(text.contains("255.255.255.255"), "{text}");
    }
}
