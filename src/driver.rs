//! The server's I/O shell: a mio loop over the two sockets that feeds the
//! [`Node`] and carries out what it returns. This is the only place where the
//! server reads the clock or touches a socket.

// The server's I/O shell: its clock and its sockets (clippy.toml keeps these out of the core).
#![allow(clippy::disallowed_methods)]

use std::fmt;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use log::{debug, info, warn};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::auth::ServerKeys;
use crate::auth::frame::Boot;
use crate::hooks::{HookCommands, Hooks, RoleChange};
use crate::metrics::{MetricsEndpoint, Scrape, render};
use crate::net::{self, GroupAddr, GroupTargets, NetError};
use crate::node::{Destination, Event, FatalError, Node, NodeConfig, Role, Timing};
use crate::rooms::Catalog;
use crate::silence::{GroupSilence, SilenceNews};
use crate::storage::{Storage, StorageError};
use crate::systemd::Notifier;
use crate::wire;

const GROUP: Token = Token(0);
const UNICAST: Token = Token(1);
const WAKE: Token = Token(2);
const PEERS: Token = Token(3);
const METRICS: Token = Token(4);

/// What the server binary passes in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Where the group is.
    pub group: GroupAddr,
    /// Servers also reached by unicast at this address and port (`--peer`),
    /// where the network does not carry multicast.
    pub peers: Vec<SocketAddrV4>,
    /// Explicit server ID; `None` uses the process ID.
    pub id: Option<u64>,
    /// Protocol timings.
    pub timing: Timing,
    /// Rooms, timeslots and days.
    pub catalog: Catalog,
    /// Where to keep state across restarts; `None` keeps it in memory only.
    pub data_dir: Option<PathBuf>,
    /// Servers that must hold a write before it is confirmed (1: no minimum).
    pub min_replicas: usize,
    /// Commands to run on role changes.
    pub hooks: HookCommands,
    /// The group's keys (`--key-file`); `None` runs without keys.
    pub keys: Option<ServerKeys>,
    /// Where to serve Prometheus metrics (`--metrics`); `None` serves none.
    pub metrics: Option<SocketAddrV4>,
}

/// Why the server stopped with an error.
#[derive(Debug)]
pub enum ServerError {
    /// A socket could not be set up.
    Net(NetError),
    /// The event loop failed.
    Io(io::Error),
    /// The protocol found a condition it cannot go on with.
    Fatal(FatalError),
    /// The data directory cannot be read or written.
    Storage(StorageError),
}

impl ServerError {
    /// True when restarting cannot help until an operator acts: a damaged or
    /// old data directory, one whose reservations the catalog no longer
    /// holds, an ID already in use, a catalog other servers do not share.
    pub fn needs_operator(&self) -> bool {
        matches!(
            self,
            ServerError::Fatal(_)
                | ServerError::Storage(
                    StorageError::Corrupt { .. } | StorageError::OldFormat { .. } | StorageError::CatalogChanged { .. }
                )
        )
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Net(e) => write!(f, "{e}"),
            ServerError::Io(e) => write!(f, "event loop failed: {e}"),
            ServerError::Fatal(e) => write!(f, "{e}"),
            ServerError::Storage(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ServerError {}

impl From<NetError> for ServerError {
    fn from(e: NetError) -> Self {
        ServerError::Net(e)
    }
}

impl From<StorageError> for ServerError {
    fn from(e: StorageError) -> Self {
        ServerError::Storage(e)
    }
}

impl From<io::Error> for ServerError {
    fn from(e: io::Error) -> Self {
        ServerError::Io(e)
    }
}

/// Asks a running server to stop, from another thread or a signal handler.
#[derive(Clone)]
pub struct Stopper {
    flag: Arc<AtomicBool>,
    /// Set with `flag` by [`Stopper::crash`]: stop without a word to the group.
    silently: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl Stopper {
    /// Requests a stop; the loop notices at once.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        if let Err(e) = self.waker.wake() {
            warn!("could not wake the event loop to stop: {e}");
        }
    }

    /// Stops as a crash would, telling the group nothing: the others notice
    /// the silence after a heartbeat timeout (the demo's `kill`).
    pub fn crash(&self) {
        self.silently.store(true, Ordering::SeqCst);
        self.stop();
    }
}

/// A bound server, ready to run.
pub struct Server {
    poll: Poll,
    group_socket: UdpSocket,
    unicast: UdpSocket,
    /// Receives what peers send by unicast; only with `--peer`.
    peer_socket: Option<UdpSocket>,
    targets: GroupTargets,
    silence: GroupSilence,
    node: Node,
    storage: Option<Storage>,
    stopper: Stopper,
    notifier: Notifier,
    hooks: Hooks,
    metrics: Option<MetricsEndpoint>,
}

impl Server {
    /// Opens the sockets and builds the node; nothing is sent yet.
    pub fn bind(settings: ServerSettings) -> Result<Server, ServerError> {
        let group_socket = UdpSocket::from_std(net::group_socket(&settings.group)?);
        let unicast_std = net::unicast_socket(&settings.group)?;
        let addr = net::advertised_addr(&settings.group, &unicast_std)?;
        let mut unicast = UdpSocket::from_std(unicast_std);
        let mut group_socket = group_socket;
        let poll = Poll::new()?;
        poll.registry().register(&mut group_socket, GROUP, Interest::READABLE)?;
        poll.registry().register(&mut unicast, UNICAST, Interest::READABLE)?;
        let mut peer_socket = match settings.peers.is_empty() {
            true => None,
            false => Some(UdpSocket::from_std(net::peer_socket(&settings.group)?)),
        };
        if let Some(socket) = &mut peer_socket {
            poll.registry().register(socket, PEERS, Interest::READABLE)?;
        }
        // A shared config file lists every server, this one too.
        let own_peer_addr = SocketAddrV4::new(*addr.ip(), settings.group.port);
        let peers = settings.peers.iter().copied().filter(|peer| *peer != own_peer_addr).collect();
        let targets = GroupTargets { group: settings.group.socket_addr(), peers };
        let mut metrics = settings.metrics.map(MetricsEndpoint::bind).transpose()?;
        if let Some(endpoint) = &mut metrics {
            poll.registry().register(endpoint.source(), METRICS, Interest::READABLE)?;
        }
        let silence = GroupSilence::new(Instant::now(), settings.timing.heartbeat_timeout);
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let config = NodeConfig {
            id: settings.id.unwrap_or_else(|| u64::from(std::process::id())),
            explicit_id: settings.id.is_some(),
            addr,
            timing: settings.timing,
            catalog: settings.catalog,
            seed: random_seed(),
            min_replicas: settings.min_replicas,
            keys: settings.keys,
            boot: random_boot()?,
        };
        crate::logging::tag_thread(config.id);
        let (node, storage) = match &settings.data_dir {
            Some(dir) => {
                let (storage, log) = Storage::open(dir, &config.catalog)?;
                (Node::recovered(config, Instant::now(), log), Some(storage))
            }
            None => (Node::new(config, Instant::now()), None),
        };
        let stopper = Stopper { flag: Arc::new(AtomicBool::new(false)), silently: Arc::default(), waker };
        let notifier = Notifier::from_env(Instant::now());
        let hooks = Hooks::start(settings.hooks, node.id().id)?;
        Ok(Server {
            poll,
            group_socket,
            unicast,
            peer_socket,
            targets,
            silence,
            node,
            storage,
            stopper,
            notifier,
            hooks,
            metrics,
        })
    }

    /// A handle that stops [`Server::run`].
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Runs until stopped or a fatal error.
    pub fn run(mut self) -> Result<(), ServerError> {
        crate::logging::tag_thread(self.node.id().id);
        let mut events = Events::with_capacity(64);
        let mut buffer = vec![0u8; wire::MAX_DATAGRAM + 1];
        self.node.start(Instant::now());
        self.flush()?;
        while !self.stopper.flag.load(Ordering::SeqCst) {
            let wake = [self.node.poll_timeout(), self.notifier.next_wake(), self.silence.next_wake()]
                .into_iter()
                .flatten()
                .min();
            let timeout = wake.map(|t| t.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e.into());
            }
            for event in events.iter() {
                if event.token() == METRICS {
                    self.serve_metrics();
                    continue;
                }
                let from_group = match (event.token(), &self.peer_socket) {
                    (GROUP, _) => drain(&self.group_socket, &mut self.node, &mut buffer),
                    (PEERS, Some(socket)) => drain(socket, &mut self.node, &mut buffer),
                    (UNICAST, _) => {
                        drain(&self.unicast, &mut self.node, &mut buffer);
                        false // answers to our own messages say nothing about the group
                    }
                    _ => false,
                };
                if from_group && let Some(news) = self.silence.heard(Instant::now()) {
                    self.report_silence(news);
                }
            }
            let now = Instant::now();
            if let Some(news) = self.silence.check(now) {
                self.report_silence(news);
            }
            self.node.handle_timeout(now);
            self.flush()?;
            self.notifier.tick(now);
        }
        if self.stopper.silently.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.notifier.stopping();
        // Hand over (or tell the leader) rather than leave the group to notice
        // a heartbeat timeout later.
        self.node.leave(Instant::now());
        self.flush()
    }

    /// Stores what changed, then sends what the node queued and acts on its
    /// events. Storing first is what makes an acknowledgement durable.
    fn flush(&mut self) -> Result<(), ServerError> {
        if let Some(storage) = &mut self.storage
            && let Some(changes) = self.node.take_log_changes()
        {
            let started = Instant::now();
            storage.save(self.node.log(), changes)?;
            if let Some(metrics) = &self.metrics {
                metrics.observe_storage_save(started.elapsed());
            }
        }
        while let Some((dst, bytes)) = self.node.poll_datagram() {
            let send = |to: SocketAddrV4| {
                if let Err(e) = self.unicast.send_to(&bytes, SocketAddr::V4(to)) {
                    // UDP gives no delivery guarantee anyway; the protocol retries.
                    warn!("sending {} bytes to {to} failed: {e}", bytes.len());
                }
            };
            match dst {
                Destination::Group => self.targets.all().for_each(send),
                Destination::Peer(addr) => send(addr),
            }
        }
        while let Some(event) = self.node.poll_event() {
            match event {
                Event::Fatal(e) => return Err(ServerError::Fatal(e)),
                Event::Applied(..) | Event::HistoryDropped | Event::SnapshotInstalled { .. } => {}
                Event::Ready => self.notifier.ready(&describe_role(&self.node)),
                Event::RoleChanged { role, leader, term } => {
                    self.notifier.status(&describe_role(&self.node));
                    if role != Role::Candidate {
                        self.hooks.role(RoleChange { leading: role == Role::Leader, leader, term });
                    }
                }
            }
        }
        Ok(())
    }

    /// Answers the scrapes waiting, with the node as it is now.
    fn serve_metrics(&mut self) {
        let Some(endpoint) = &mut self.metrics else { return };
        let (node, with_storage) = (&self.node, self.storage.is_some());
        let status = node.status(Instant::now());
        let histogram = endpoint.storage_save().clone();
        let storage_save = with_storage.then_some(&histogram);
        endpoint
            .accept_all(|| render(&Scrape { id: node.id().id, status: &status, stats: node.stats(), storage_save }));
    }

    fn report_silence(&self, news: SilenceNews) {
        let heard_from = match self.targets.peers.is_empty() {
            true => format!("group {}", self.targets.group),
            false => format!("group {} or from any --peer", self.targets.group),
        };
        match news {
            SilenceNews::Silent(quiet) => warn!(
                "heard nothing on {heard_from} for {:.1} s, not even this server's own datagrams: \
                 multicast does not reach this server. Likely causes: a firewall on this host dropping \
                 UDP port {} or multicast (`nft list ruleset`), no multicast route through the interface \
                 meant (`ip route get {}`; --interface ADDR picks one), an interface without MULTICAST \
                 (`ip link`). Where the network drops multicast (cloud, container overlays, switches with \
                 IGMP snooping and no querier), list the servers with --peer ADDR:PORT (`peers` in the \
                 config file)",
                quiet.as_secs_f64(),
                self.targets.group.port(),
                self.targets.group.ip()
            ),
            SilenceNews::HeardAgain(quiet) => {
                info!("hearing the group again after {:.1} s of silence", quiet.as_secs_f64())
            }
        }
    }
}

/// A one-line status for the service manager.
fn describe_role(node: &Node) -> String {
    match (node.role(), node.leader()) {
        (Role::Leader, _) => format!("leading the group as {} (term {})", node.id().id, node.term()),
        (_, Some(leader)) => format!("following leader {} (term {})", leader.id, node.term()),
        (_, None) => "electing a leader".to_string(),
    }
}

/// Reads every datagram waiting on `socket` into the node; true if any came.
fn drain(socket: &UdpSocket, node: &mut Node, buffer: &mut [u8]) -> bool {
    let mut any = false;
    loop {
        match socket.recv_from(buffer) {
            Ok((len, SocketAddr::V4(from))) => node.handle_datagram(Instant::now(), from, &buffer[..len]),
            Ok((_, SocketAddr::V6(from))) => warn!("dropped datagram from IPv6 address {from}"),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return any,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                // ICMP errors from earlier sends surface here; they are not fatal.
                debug!("receive error: {e}");
                return any;
            }
        }
        any = true;
    }
}

/// A boot nonce from the OS's random source: sealed datagrams' nonces
/// depend on it never repeating, so a clock or a PID would not do.
pub fn random_boot() -> Result<Boot, ServerError> {
    let mut bytes = [0u8; crate::auth::frame::BOOT_LEN];
    getrandom::fill(&mut bytes).map_err(|e| ServerError::Io(io::Error::other(format!("no random numbers: {e}"))))?;
    Ok(Boot(bytes))
}

/// A seed that differs between processes and runs, for epochs and cookies.
fn random_seed() -> u64 {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    nanos ^ u64::from(std::process::id()).rotate_left(32)
}
