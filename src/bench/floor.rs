//! The floor: what loopback multicast itself costs. A client multicasts a
//! request to a group that three responder threads joined, with the same
//! sockets as roomcast ([`crate::net::group_socket`] and
//! [`crate::net::unicast_socket`] on 127.0.0.1, TTL 0); one responder echoes
//! it back by unicast, the other two receive it and drop it, as roomcast's
//! followers do. Nothing else happens, so no protocol can answer faster.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Settings;
use super::error::BenchError;
use super::group::Group;
use super::stats::{Summary, closed_loop};
use super::wireclient::random_id;
use crate::net;
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

/// Three responders on one group; stopped and joined when dropped.
struct Responders {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Responders {
    /// Starts three responders on `group`; the first one replies.
    fn start(group: &Group) -> Result<Responders, BenchError> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for index in 0..3 {
            let receiver = net::group_socket(&group.addr)?;
            receiver.set_nonblocking(false).map_err(BenchError::io("making a responder socket blocking"))?;
            receiver
                .set_read_timeout(Some(Duration::from_millis(50)))
                .map_err(BenchError::io("setting a responder's timeout"))?;
            let sender = net::unicast_socket(&group.addr)?;
            sender.set_nonblocking(false).map_err(BenchError::io("making a responder socket blocking"))?;
            let stop = Arc::clone(&stop);
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; MAX_DATAGRAM];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = receiver.recv_from(&mut buf)
                        && index == 0
                    {
                        let _ = sender.send_to(&buf[..n], from);
                    }
                }
            }));
        }
        Ok(Responders { stop, threads })
    }
}

impl Drop for Responders {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
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
pub fn run(settings: &Settings) -> Result<FloorResult, BenchError> {
    let group = Group::new()?;
    let _responders = Responders::start(&group)?;
    let duration = settings.load_duration();
    // Warm up (and make sure the responder answers at all).
    Pinger::open(&group)?.ping()?;
    let one = closed_loop(1, duration, |_| {
        let mut pinger = Pinger::open(&group)?;
        Ok(move || pinger.ping())
    })?;
    let many = closed_loop(settings.clients, duration, |_| {
        let mut pinger = Pinger::open(&group)?;
        Ok(move || pinger.ping())
    })?;
    Ok(FloorResult {
        one_client: one.summary(),
        many_clients: many.summary(),
        clients: settings.clients,
        request_bytes: check_request().len(),
    })
}
