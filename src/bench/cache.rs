//! Part 6, the client's cache: the library client core
//! ([`crate::client::Client`]) against three servers, on a real socket.
//!
//! * a hit: `rooms` once answered, asked again: [`Client::submit`] answers
//!   from the cache, nothing goes on the network;
//! * a round trip: `rooms` from a client with an empty cache;
//! * a revalidated `check`: the cached list is sent with its version and the
//!   leader answers `NotModified` (a small round trip; the list shown comes
//!   from the cache).

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Settings;
use super::error::BenchError;
use super::group::Cluster;
use super::procs::Binaries;
use super::stats::Summary;
use super::wireclient::random_id;
use crate::client::{Client, ClientConfig, ClientEvent, Source, Submitted};
use crate::net::{self, GroupAddr};
use crate::wire::{Command, MAX_DATAGRAM};

/// Part 6's figures.
#[derive(Debug, Clone, Serialize)]
pub struct CacheResult {
    /// `rooms` answered from the cache.
    pub hit: Summary,
    /// `rooms` answered by the leader (empty cache).
    pub round_trip: Summary,
    /// `check` answered `NotModified` and shown from the cache.
    pub revalidated_check: Summary,
}

/// Runs part 6.
pub fn run(bins: &Binaries, settings: &Settings) -> Result<CacheResult, BenchError> {
    let mut cluster = Cluster::new(bins, Vec::new())?;
    cluster.start_all(&[1, 2, 3], |_| Vec::new())?;
    let group = cluster.group.addr;
    let mut link = Link::open(&group)?;
    let samples = settings.cache_sample_count();
    let round_trips = (samples / 10).max(10);

    let mut round_trip = Vec::with_capacity(round_trips);
    for _ in 0..round_trips {
        let mut fresh = Client::new(random_id(), ClientConfig::default());
        round_trip.push(link.exchange(&mut fresh, Command::Rooms)?.0);
    }

    let mut warm = Client::new(random_id(), ClientConfig::default());
    link.exchange(&mut warm, Command::Rooms)?;
    let mut hit = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        let submitted = warm.submit(started, Command::Rooms).map_err(|e| BenchError::Unexpected(e.to_string()))?;
        let took = started.elapsed();
        if !matches!(submitted, Submitted::FromCache(_)) {
            return Err(BenchError::Unexpected("a second `rooms` was not answered from the cache".into()));
        }
        hit.push(took);
    }

    let check = || Command::Check { room: "SA318".into(), cached: None };
    link.exchange(&mut warm, check())?;
    let mut revalidated = Vec::with_capacity(round_trips);
    for _ in 0..round_trips {
        let (took, source) = link.exchange(&mut warm, check())?;
        if source != Source::Cache {
            return Err(BenchError::Unexpected("a repeated `check` was not confirmed from the cache".into()));
        }
        revalidated.push(took);
    }
    Ok(CacheResult {
        hit: Summary::of(hit, None),
        round_trip: Summary::of(round_trip, None),
        revalidated_check: Summary::of(revalidated, None),
    })
}

/// A socket that carries a [`Client`]'s datagrams to the group.
struct Link {
    socket: UdpSocket,
    group: std::net::SocketAddrV4,
    buf: Vec<u8>,
}

impl Link {
    fn open(group: &GroupAddr) -> Result<Link, BenchError> {
        let socket = net::unicast_socket(group)?;
        socket.set_nonblocking(false).map_err(BenchError::io("making the cache part's socket blocking"))?;
        // Short enough for the client's retries (every 250 ms); an early
        // `handle_timeout` does nothing.
        socket.set_read_timeout(Some(Duration::from_millis(20))).map_err(BenchError::io("setting a socket timeout"))?;
        Ok(Link { socket, group: group.socket_addr(), buf: vec![0; MAX_DATAGRAM] })
    }

    /// Runs `command` through `client` to its answer: how long it took and
    /// where the answer came from.
    fn exchange(&mut self, client: &mut Client, command: Command) -> Result<(Duration, Source), BenchError> {
        let started = Instant::now();
        if let Submitted::FromCache(_) =
            client.submit(started, command).map_err(|e| BenchError::Unexpected(e.to_string()))?
        {
            return Ok((started.elapsed(), Source::Cache));
        }
        loop {
            while let Some((dst, datagram)) = client.poll_transmit() {
                let to = match dst {
                    crate::node::Destination::Group => self.group,
                    crate::node::Destination::Peer(to) => to,
                };
                self.socket.send_to(&datagram, to).map_err(BenchError::io("sending a client request"))?;
            }
            if client.poll_timeout().is_none() {
                return Err(BenchError::Unexpected("the client stopped waiting without an answer".into()));
            }
            let event = match self.socket.recv_from(&mut self.buf) {
                Ok((n, SocketAddr::V4(from))) => client.handle_datagram(Instant::now(), from, &self.buf[..n]),
                Ok(_) => None,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    client.handle_timeout(Instant::now())
                }
                Err(e) => return Err(BenchError::Io { action: "receiving a reply".into(), source: e }),
            };
            match event {
                Some(ClientEvent::Answered { source, .. }) => return Ok((started.elapsed(), source)),
                Some(ClientEvent::TimedOut { .. }) => {
                    return Err(BenchError::Unexpected("no server answered the cache part's request".into()));
                }
                _ => {}
            }
        }
    }
}
