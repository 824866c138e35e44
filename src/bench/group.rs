//! A private multicast group on loopback, and a cluster of real servers in it.
//!
//! NETWORK SAFETY: every server gets `--interface 127.0.0.1 --ttl 0`, and the
//! group's [`GroupAddr`] (which the bench's own sockets use) names the same.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::error::BenchError;
use super::procs::{Bell, Binaries, ServerProc};
use crate::net::GroupAddr;

/// The options that keep every server on this host.
pub const SAFETY_ARGS: [&str; 4] = ["--interface", "127.0.0.1", "--ttl", "0"];

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A multicast group 239.255.X.Y and a UDP port used by one measurement only.
/// The port is a free port of 127.0.0.1, held by a socket while the group lives.
pub struct Group {
    /// Group, port, interface 127.0.0.1 and TTL 0.
    pub addr: GroupAddr,
    _holder: UdpSocket,
}

impl Group {
    /// Picks a fresh group and port.
    pub fn new() -> Result<Group, BenchError> {
        let holder = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(BenchError::io("binding 127.0.0.1:0"))?;
        let port = holder.local_addr().map_err(BenchError::io("reading a socket's port"))?.port();
        let mut hasher = DefaultHasher::new();
        (port, std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), "bench").hash(&mut hasher);
        let h = hasher.finish();
        let group = Ipv4Addr::new(239, 255, 1 + (h % 254) as u8, 1 + ((h >> 8) % 254) as u8);
        let addr = GroupAddr { group, port, interface: Some(Ipv4Addr::LOCALHOST), ttl: 0 };
        Ok(Group { addr, _holder: holder })
    }

    /// `--interface 127.0.0.1 --ttl 0 GROUP PORT ID`.
    pub fn server_args(&self, id: u64) -> Vec<String> {
        let mut args: Vec<String> = SAFETY_ARGS.iter().map(|s| s.to_string()).collect();
        args.extend([self.addr.group.to_string(), self.addr.port.to_string(), id.to_string()]);
        args
    }
}

/// A group of real servers sharing one [`Group`] and the same extra options.
pub struct Cluster {
    bins: Binaries,
    /// The group they share.
    pub group: Group,
    extra: Vec<String>,
    bell: Arc<Bell>,
    servers: Vec<ServerProc>,
}

/// How long a group may take to elect at start-up, or to agree after a change.
pub const PATIENCE: Duration = Duration::from_secs(30);

impl Cluster {
    /// A cluster with no server yet; each server gets `extra` options.
    pub fn new(bins: &Binaries, extra: Vec<String>) -> Result<Cluster, BenchError> {
        Ok(Cluster { bins: bins.clone(), group: Group::new()?, extra, bell: Bell::new(), servers: Vec::new() })
    }

    /// Starts server `id` with the cluster's options plus `more`.
    pub fn spawn(&mut self, id: u64, more: &[String]) -> Result<&mut ServerProc, BenchError> {
        let mut extra = self.extra.clone();
        extra.extend_from_slice(more);
        let server = ServerProc::spawn(&self.bins, &self.group, id, &extra, &self.bell)?;
        self.servers.push(server);
        let last = self.servers.len() - 1;
        Ok(&mut self.servers[last])
    }

    /// Starts servers `ids` (the highest first, alone, then the others at
    /// once, so nobody takes over) and waits until all follow the highest.
    /// `per_server` gives each its own extra options (e.g. a data directory).
    pub fn start_all(&mut self, ids: &[u64], per_server: impl Fn(u64) -> Vec<String>) -> Result<u64, BenchError> {
        let mut sorted = ids.to_vec();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&top) = sorted.first() else { return Err(BenchError::Usage("a cluster of no server".into())) };
        let first = self.spawn(top, &per_server(top))?;
        first.wait_line(0, &format!("{} {top}", super::procs::ELECTED), PATIENCE)?;
        for &id in &sorted[1..] {
            self.spawn(id, &per_server(id))?;
        }
        self.wait_agreement(top, PATIENCE)?;
        Ok(top)
    }

    /// Waits until every running server's last `Election completed` line
    /// names `leader`; returns when the last of them printed it.
    pub fn wait_agreement(&mut self, leader: u64, timeout: Duration) -> Result<Instant, BenchError> {
        let deadline = Instant::now() + timeout;
        let servers = &self.servers;
        let agreed = self.bell.wait_for(deadline, || {
            let views: Option<Vec<Instant>> =
                servers.iter().map(|s| s.last_leader().filter(|(id, _)| *id == leader).map(|(_, at)| at)).collect();
            views.and_then(|times| times.into_iter().max())
        });
        agreed.ok_or_else(|| BenchError::Timeout {
            what: format!("every server of the group naming leader {leader}"),
            waited: timeout,
            context: self.dump(6),
        })
    }

    /// Waits until every running server's last leader line is later than
    /// `after` and names one same leader; returns it and when the last named it.
    pub fn wait_new_agreement(&mut self, after: Instant, timeout: Duration) -> Result<(u64, Instant), BenchError> {
        let deadline = Instant::now() + timeout;
        let servers = &self.servers;
        let agreed = self.bell.wait_for(deadline, || {
            let views: Option<Vec<(u64, Instant)>> =
                servers.iter().map(|s| s.last_leader().filter(|(_, at)| *at > after)).collect();
            let views = views?;
            let leader = views.first()?.0;
            views.iter().all(|(id, _)| *id == leader).then(|| (leader, views.iter().map(|v| v.1).max()))
        });
        match agreed {
            Some((leader, Some(at))) => Ok((leader, at)),
            _ => Err(BenchError::Timeout {
                what: "every server of the group naming one new leader".into(),
                waited: timeout,
                context: self.dump(6),
            }),
        }
    }

    /// Lets `duration` pass while the servers run; fails early, naming it,
    /// if one of them exits meanwhile.
    pub fn watch(&mut self, duration: Duration) -> Result<(), BenchError> {
        let deadline = Instant::now() + duration;
        let servers = &mut self.servers;
        let exited = self.bell.wait_for(deadline, || servers.iter_mut().find_map(|s| s.exited().then(|| s.id())));
        match exited {
            None => Ok(()),
            Some(id) => Err(BenchError::Exited { what: format!("server {id}"), context: self.dump(10) }),
        }
    }

    /// The running servers.
    pub fn servers(&self) -> &[ServerProc] {
        &self.servers
    }

    /// Server `id`, if running.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut ServerProc> {
        self.servers.iter_mut().find(|s| s.id() == id)
    }

    /// Takes server `id` out of the cluster (to kill or stop it).
    pub fn take(&mut self, id: u64) -> Option<ServerProc> {
        let at = self.servers.iter().position(|s| s.id() == id)?;
        Some(self.servers.remove(at))
    }

    /// Each server's line count: marks for the timeline after a change.
    pub fn marks(&self) -> Vec<(u64, usize)> {
        self.servers.iter().map(|s| (s.id(), s.mark())).collect()
    }

    /// The last `count` lines of every server, for error messages.
    pub fn dump(&self, count: usize) -> String {
        self.servers.iter().map(|s| s.tail(count)).collect()
    }
}
