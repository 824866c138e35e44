//! The floor: what loopback multicast itself costs. A client multicasts a
//! request to a group that three responder processes joined (the bench
//! itself, `bench floor-responder`, as roomcast's servers are processes), with the same
//! sockets as roomcast ([`crate::net::group_socket`] and
//! [`crate::net::unicast_socket`] on 127.0.0.1, TTL 0); one responder echoes
//! it back by unicast, the other two receive it and drop it, as roomcast's
//! followers do. Nothing else happens, so no protocol can answer faster.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Settings;
use super::error::BenchError;
use super::group::Group;
use super::procs::Binaries;
use super::stats::{Summary, closed_loop};
use super::wireclient::random_id;
use crate::net::{self, GroupAddr};
use crate::wire::{self, Command, MAX_DATAGRAM, Message, Request};

/// The floor's figures.
#[derive(Debug, Clone, Serialize)]
pub struct FloorResult {
    /// One client, sequential requests.
    pub one_client: Summary,
    /// `clients` concurrent clients.
    pub many_clients: Summary,
    /// How many concurrent clients.
    pub clients: usize,
    /// Bytes per request (a roomcast `check` request, encoded).
    pub request_bytes: usize,
}

/// Three responder processes on one group (`bench floor-responder`), like
/// three servers; killed by PID when dropped.
struct Responders {
    children: Vec<std::process::Child>,
}

impl Responders {
    /// Starts three responders on `group`; the first one replies. Waits until
    /// each has joined the group (it prints `joined`).
    fn start(bench: &std::path::Path, group: &Group) -> Result<Responders, BenchError> {
        let mut responders = Responders { children: Vec::new() };
        for index in 0..3 {
            let mut command = std::process::Command::new(bench);
            command.args(["floor-responder", "--group", &group.addr.group.to_string()]);
            command.args(["--port", &group.addr.port.to_string(), "--seconds", "600"]);
            if index == 0 {
                command.arg("--reply");
            }
            command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
            let mut child = command.spawn().map_err(BenchError::io("starting a floor responder"))?;
            let stdout = child.stdout.take();
            responders.children.push(child);
            let mut line = String::new();
            if let Some(out) = stdout {
                BufReader::new(out).read_line(&mut line).map_err(BenchError::io("reading a floor responder"))?;
            }
            if line.trim() != "joined" {
                return Err(BenchError::Unexpected(format!("a floor responder said {line:?} instead of joining")));
            }
        }
        Ok(responders)
    }
}

impl Drop for Responders {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What `bench floor-responder` runs: joins `group` on 127.0.0.1 (TTL 0),
/// prints `joined`, then receives requests for at most `seconds`, echoing
/// each back by unicast (from its own unicast socket) if `reply`.
pub fn respond(group: GroupAddr, reply: bool, seconds: f64) -> Result<(), BenchError> {
    // The server's way: non-blocking sockets under mio, drained on each wake.
    let mut receiver = mio::net::UdpSocket::from_std(net::group_socket(&group)?);
    let sender = net::unicast_socket(&group)?;
    let mut poll = mio::Poll::new().map_err(BenchError::io("creating a poll"))?;
    poll.registry()
        .register(&mut receiver, mio::Token(0), mio::Interest::READABLE)
        .map_err(BenchError::io("registering the responder's socket"))?;
    println!("joined");
    std::io::stdout().flush().map_err(BenchError::io("writing to stdout"))?;
    let end = Instant::now() + Duration::from_secs_f64(seconds.max(0.0));
    let mut events = mio::Events::with_capacity(16);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while Instant::now() < end {
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(200)))
            && e.kind() != std::io::ErrorKind::Interrupted
        {
            return Err(BenchError::Io { action: "waiting for requests".into(), source: e });
        }
        while let Ok((n, from)) = receiver.recv_from(&mut buf) {
            if reply {
                let _ = sender.send_to(&buf[..n], from);
            }
        }
    }
    Ok(())
}

/// One client of the floor: sends the request, waits for its echo.
struct Pinger {
    socket: std::net::UdpSocket,
    group: std::net::SocketAddrV4,
    request: Vec<u8>,
    buf: Vec<u8>,
}

impl Pinger {
    fn open(group: &Group) -> Result<Pinger, BenchError> {
        let socket = net::unicast_socket(&group.addr)?;
        socket.set_nonblocking(false).map_err(BenchError::io("making the floor's socket blocking"))?;
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(BenchError::io("setting the floor's socket timeout"))?;
        Ok(Pinger { socket, group: group.addr.socket_addr(), request: check_request(), buf: vec![0; MAX_DATAGRAM] })
    }

    /// One round trip; a lost datagram is sent again (and counted in the time).
    fn ping(&mut self) -> Result<Duration, BenchError> {
        let sent = Instant::now();
        loop {
            self.socket.send_to(&self.request, self.group).map_err(BenchError::io("sending a floor request"))?;
            match self.socket.recv_from(&mut self.buf) {
                Ok((_, SocketAddr::V4(_))) => return Ok(sent.elapsed()),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    if sent.elapsed() > Duration::from_secs(5) {
                        return Err(BenchError::Timeout {
                            what: "the floor's responder".into(),
                            waited: Duration::from_secs(5),
                            context: String::new(),
                        });
                    }
                }
                Err(e) => return Err(BenchError::Io { action: "receiving a floor reply".into(), source: e }),
            }
        }
    }
}

/// The bytes of a roomcast `check` request, which the floor sends too.
fn check_request() -> Vec<u8> {
    let command = Command::Check { room: "B00".into(), cached: None };
    wire::encode(&Message::Request(Request { client: random_id(), request: 1, command }))
}

/// Measures the floor with one client, then with `settings.clients`.
pub fn run(bins: &Binaries, settings: &Settings) -> Result<FloorResult, BenchError> {
    measure(bins, settings.clients, settings.load_duration())
}

/// Measures the floor with one client, then with `clients`, each for
/// `duration`, on responders of its own. The requests part calls this just
/// before its own measurements too, so that each ratio compares figures
/// taken under the same load of the (shared) machine.
pub fn measure(bins: &Binaries, clients: usize, duration: Duration) -> Result<FloorResult, BenchError> {
    let group = Group::new()?;
    let _responders = Responders::start(&bins.bench, &group)?;
    // Warm up (and make sure the responder answers at all).
    Pinger::open(&group)?.ping()?;
    let ping = |_| {
        let mut pinger = Pinger::open(&group)?;
        Ok(move || pinger.ping())
    };
    let one = closed_loop(1, duration, ping)?;
    let many = closed_loop(clients, duration, ping)?;
    Ok(FloorResult {
        one_client: one.summary(),
        many_clients: many.summary(),
        clients,
        request_bytes: check_request().len(),
    })
}
