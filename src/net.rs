//! Socket setup with socket2: the group socket that receives multicast, and the
//! unicast socket every process sends from. Nothing here reads or writes data.

// Socket set-up (clippy.toml keeps these out of the core).
#![allow(clippy::disallowed_methods)]

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

/// Where and how a process talks to the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupAddr {
    /// The IPv4 multicast group, e.g. 224.1.1.1.
    pub group: Ipv4Addr,
    /// The group's UDP port.
    pub port: u16,
    /// Local interface address to join on and send multicast from;
    /// `None` lets the kernel choose by its routing table.
    pub interface: Option<Ipv4Addr>,
    /// Multicast time-to-live: 0 keeps datagrams on this host, 1 on the LAN.
    pub ttl: u32,
}

impl GroupAddr {
    /// The group's socket address.
    pub fn socket_addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.group, self.port)
    }
}

/// Where a datagram for the whole group goes: the multicast group, and each
/// peer given with `--peer` by unicast, for networks that drop multicast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTargets {
    /// The multicast group and port.
    pub group: SocketAddrV4,
    /// Servers reached by unicast as well, at their group port.
    pub peers: Vec<SocketAddrV4>,
}

impl GroupTargets {
    /// The group first, then every peer.
    pub fn all(&self) -> impl Iterator<Item = SocketAddrV4> + '_ {
        std::iter::once(self.group).chain(self.peers.iter().copied())
    }
}

/// Parses a `--peer ADDR:PORT`: a unicast IPv4 address and a port other than 0.
pub fn parse_peer(text: &str) -> Result<SocketAddrV4, String> {
    let peer: SocketAddrV4 =
        text.parse().map_err(|_| format!("'{text}' is not an IPv4 address and port, e.g. 10.0.0.2:11111"))?;
    if peer.port() == 0 {
        return Err(format!("'{text}': port 0 is not a port; use the group's port, e.g. {}:11111", peer.ip()));
    }
    if peer.ip().is_multicast() || peer.ip().is_unspecified() || peer.ip().is_broadcast() {
        return Err(format!("'{text}' is not one server's address: give the unicast address of a server's host"));
    }
    Ok(peer)
}

/// Parses `--metrics`: `ADDR:PORT`, or a bare `PORT` on 127.0.0.1 (metrics
/// say much about the group, so they stay on this host unless told otherwise).
pub fn parse_metrics_addr(text: &str) -> Result<SocketAddrV4, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
    }
    let addr: SocketAddrV4 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a port or an IPv4 address and port, e.g. 9464 or 127.0.0.1:9464"))?;
    if addr.ip().is_multicast() || addr.ip().is_broadcast() {
        return Err(format!("'{text}': metrics need an address of this host, e.g. 127.0.0.1:{}", addr.port()));
    }
    Ok(addr)
}

/// Error of a socket operation, with what was being attempted.
#[derive(Debug)]
pub struct NetError {
    /// What roomcast was doing, e.g. "joining group 224.1.1.1 on 127.0.0.1".
    pub action: String,
    /// The operating system's error.
    pub source: io::Error,
    /// What the error says is wrong with this host's set-up or the options,
    /// when it says that: then no retry or restart can cure it.
    pub setup: Option<SetupMistake>,
}

/// A socket error that means the options or the host's network set-up are
/// wrong, not that something failed for now: the programs exit with status 2
/// for these, as for a bad command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupMistake {
    /// `--interface` names an address this host does not have.
    NotAnAddressOfThisHost(Ipv4Addr),
    /// No `--interface`, and the kernel has no route for multicast.
    NoMulticastRoute,
}

impl SetupMistake {
    /// What an error during set-up means, if it is a set-up mistake: an
    /// address the kernel cannot assign or a device it cannot find means the
    /// given interface is not this host's, or without one that no route
    /// leads to the multicast range.
    fn of(source: &io::Error, interface: Option<Ipv4Addr>) -> Option<SetupMistake> {
        const ENODEV: i32 = 19;
        const EADDRNOTAVAIL: i32 = 99;
        const ENETUNREACH: i32 = 101;
        match (source.raw_os_error()?, interface) {
            (ENODEV | EADDRNOTAVAIL, Some(address)) => Some(SetupMistake::NotAnAddressOfThisHost(address)),
            (ENODEV | ENETUNREACH, None) => Some(SetupMistake::NoMulticastRoute),
            _ => None,
        }
    }
}

impl std::fmt::Display for SetupMistake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetupMistake::NotAnAddressOfThisHost(address) => write!(
                f,
                "{address} is not an address of this host: pass one that `ip -4 addr` lists to --interface \
                 (127.0.0.1 keeps everything on this host)"
            ),
            SetupMistake::NoMulticastRoute => f.write_str(
                "this host has no route to 224.0.0.0/4 for multicast: add one \
                 (e.g. `ip route add 224.0.0.0/4 dev eth0`), or pass --interface ADDR",
            ),
        }
    }
}

impl NetError {
    /// True when the options or the host's set-up are wrong (see [`SetupMistake`]).
    pub fn is_setup_mistake(&self) -> bool {
        self.setup.is_some()
    }
}

impl std::fmt::Display for NetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.action, self.source)?;
        match self.setup {
            Some(mistake) => write!(f, ": {mistake}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for NetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Runs one step of setting up a socket for `addr`; an error names `action`
/// and, when it is a set-up mistake, what to change.
fn attempt<T>(addr: &GroupAddr, result: io::Result<T>, action: impl FnOnce() -> String) -> Result<T, NetError> {
    result.map_err(|source| {
        let setup = SetupMistake::of(&source, addr.interface);
        NetError { action: action(), source, setup }
    })
}

/// Opens the socket that receives the group's multicast traffic.
///
/// It binds to the group address itself (not 0.0.0.0) so that on Linux it only
/// receives datagrams sent to this group, even when other groups share the port.
/// Address and port reuse let several servers on one host share the group.
pub fn group_socket(addr: &GroupAddr) -> Result<UdpSocket, NetError> {
    let what = || format!("opening the group socket for {}", addr.socket_addr());
    let socket = attempt(addr, Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)), what)?;
    attempt(addr, socket.set_reuse_address(true), what)?;
    attempt(addr, socket.set_reuse_port(true), what)?;
    let bind_to = SocketAddr::V4(addr.socket_addr());
    attempt(addr, socket.bind(&bind_to.into()), || format!("binding the group socket to {bind_to}"))?;
    let iface = addr.interface.unwrap_or(Ipv4Addr::UNSPECIFIED);
    attempt(addr, socket.join_multicast_v4(&addr.group, &iface), || {
        format!("joining multicast group {} on {}", addr.group, describe(addr.interface))
    })?;
    attempt(addr, socket.set_nonblocking(true), what)?;
    Ok(socket.into())
}

/// Opens the socket that receives what peers (`--peer`) send to this host's
/// group port by unicast. It takes no multicast, which the group socket gets.
pub fn peer_socket(addr: &GroupAddr) -> Result<UdpSocket, NetError> {
    let local = SocketAddrV4::new(addr.interface.unwrap_or(Ipv4Addr::UNSPECIFIED), addr.port);
    let what = || format!("opening the peer socket on {local}");
    let socket = attempt(addr, Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)), what)?;
    // Shares the port with the group sockets bound to the group address.
    attempt(addr, socket.set_reuse_address(true), what)?;
    attempt(addr, socket.set_multicast_all_v4(false), what)?;
    attempt(addr, socket.bind(&SocketAddr::V4(local).into()), || format!("binding the peer socket to {local}"))?;
    attempt(addr, socket.set_nonblocking(true), what)?;
    Ok(socket.into())
}

/// Opens the unicast socket a process sends everything from (multicast too)
/// and receives unicast on. Its port is chosen by the kernel.
pub fn unicast_socket(addr: &GroupAddr) -> Result<UdpSocket, NetError> {
    let what = || "opening the unicast socket".to_string();
    let socket = attempt(addr, Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)), what)?;
    let local = SocketAddrV4::new(addr.interface.unwrap_or(Ipv4Addr::UNSPECIFIED), 0);
    attempt(addr, socket.bind(&SocketAddr::V4(local).into()), || format!("binding the unicast socket to {local}"))?;
    if let Some(iface) = addr.interface {
        attempt(addr, socket.set_multicast_if_v4(&iface), || {
            format!("choosing interface {iface} for outgoing multicast")
        })?;
    }
    attempt(addr, socket.set_multicast_ttl_v4(addr.ttl), || format!("setting multicast TTL {}", addr.ttl))?;
    attempt(addr, socket.set_multicast_loop_v4(true), what)?;
    attempt(addr, socket.set_nonblocking(true), what)?;
    Ok(socket.into())
}

/// The address other hosts see this socket's datagrams come from.
///
/// With an explicit interface that is its address. Otherwise the kernel's route
/// to the group decides; connecting a throwaway UDP socket asks the kernel which
/// source it would use without sending anything.
pub fn advertised_addr(addr: &GroupAddr, unicast: &UdpSocket) -> Result<SocketAddrV4, NetError> {
    let port = attempt(addr, unicast.local_addr(), || "reading the unicast socket's port".into())?.port();
    let ip = match addr.interface {
        Some(ip) => ip,
        None => {
            let probe = attempt(addr, UdpSocket::bind("0.0.0.0:0"), || "probing the route to the group".into())?;
            attempt(addr, probe.connect(addr.socket_addr()), || format!("finding a route to group {}", addr.group))?;
            match attempt(addr, probe.local_addr(), || "probing the route to the group".into())? {
                SocketAddr::V4(v4) => *v4.ip(),
                SocketAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
            }
        }
    };
    // Others would see an address this server does not know, and it would
    // take its own datagrams for another member's.
    if ip.is_unspecified() {
        return Err(NetError {
            action: format!("finding this server's address on the route to group {}", addr.group),
            setup: None,
            source: io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                "the route gives no source address (a multicast route on `lo` needs `src 127.0.0.1`); \
                 pass --interface ADDR or set `interface` in the config file",
            ),
        });
    }
    Ok(SocketAddrV4::new(ip, port))
}

/// Parses a multicast group address given on the command line.
pub fn parse_group(text: &str) -> Result<Ipv4Addr, String> {
    let group: Ipv4Addr = text.parse().map_err(|_| format!("'{text}' is not an IPv4 address"))?;
    if !group.is_multicast() {
        return Err(format!("{group} is not a multicast address (use one in 224.0.0.0/4, e.g. 224.1.1.1)"));
    }
    Ok(group)
}

fn describe(interface: Option<Ipv4Addr>) -> String {
    match interface {
        Some(ip) => format!("interface {ip}"),
        None => "the interface chosen by the kernel".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_one_servers_unicast_address_and_port() {
        assert_eq!(parse_peer("10.0.0.2:11111"), Ok(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 11111)));
        for (text, want) in [
            ("10.0.0.2", "is not an IPv4 address and port"),
            ("host:1", "is not an IPv4 address and port"),
            ("10.0.0.2:0", "port 0 is not a port"),
            ("224.1.1.1:11111", "not one server's address"),
            ("0.0.0.0:11111", "not one server's address"),
            ("255.255.255.255:11111", "not one server's address"),
        ] {
            let error = parse_peer(text).expect_err(text);
            assert!(error.contains(want), "{text}: {error}");
        }
    }

    #[test]
    fn metrics_listen_on_this_host_unless_told_otherwise() {
        let at = |a, b, c, d, port| Ok(SocketAddrV4::new(Ipv4Addr::new(a, b, c, d), port));
        let cases = [
            ("9464", at(127, 0, 0, 1, 9464)),
            ("0", at(127, 0, 0, 1, 0)),
            ("0.0.0.0:9464", at(0, 0, 0, 0, 9464)),
            ("10.0.0.2:80", at(10, 0, 0, 2, 80)),
            ("224.1.1.1:9464", Err("metrics need an address of this host".to_string())),
            ("localhost:9464", Err("is not a port or an IPv4 address and port".to_string())),
            ("70000", Err("is not a port or an IPv4 address and port".to_string())),
        ];
        for (i, (text, want)) in cases.into_iter().enumerate() {
            let got = parse_metrics_addr(text);
            let ok = match (&got, &want) {
                (Err(got), Err(want)) => got.contains(want.as_str()),
                _ => got == want,
            };
            assert!(ok, "#{i} {text}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn set_up_mistakes_say_what_to_change() {
        let error = |errno| io::Error::from_raw_os_error(errno);
        let address = Ipv4Addr::new(10, 9, 9, 9);
        let here = Some(address);
        assert_eq!(SetupMistake::of(&error(99), here), Some(SetupMistake::NotAnAddressOfThisHost(address)));
        assert_eq!(SetupMistake::of(&error(19), here), Some(SetupMistake::NotAnAddressOfThisHost(address)));
        assert_eq!(SetupMistake::of(&error(19), None), Some(SetupMistake::NoMulticastRoute));
        assert_eq!(SetupMistake::of(&error(101), None), Some(SetupMistake::NoMulticastRoute));
        // A full buffer or a refused permission may pass; a custom error says nothing.
        assert_eq!(SetupMistake::of(&error(105), None), None);
        assert_eq!(SetupMistake::of(&error(1), here), None);
        assert_eq!(SetupMistake::of(&io::Error::other("no source address"), None), None);
        let join = NetError {
            action: "joining multicast group 224.1.1.1 on the interface chosen by the kernel".into(),
            source: error(19),
            setup: Some(SetupMistake::NoMulticastRoute),
        };
        assert!(join.is_setup_mistake());
        assert!(join.to_string().ends_with("no route to 224.0.0.0/4 for multicast: add one (e.g. `ip route add 224.0.0.0/4 dev eth0`), or pass --interface ADDR"), "{join}");
    }

    #[test]
    fn the_group_goes_first_then_every_peer() {
        let addr = |last: u8| SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), 1);
        let targets =
            GroupTargets { group: SocketAddrV4::new(Ipv4Addr::new(224, 1, 1, 1), 1), peers: vec![addr(2), addr(3)] };
        assert_eq!(targets.all().collect::<Vec<_>>(), [targets.group, addr(2), addr(3)]);
    }
}
