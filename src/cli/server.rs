//! The server's command line (`roomcast-server`, built as `server`): its
//! clap definition, here rather than in `src/bin/server.rs` so that the man
//! page and shell completions can be generated from it (see [`super::installed`]).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use clap::{Parser, ValueHint};

use crate::config::ServerOptions;

/// A replicated room-reservation server: joins the multicast group, elects a
/// leader with the bully algorithm, and serves clients when it leads.
///
/// Settings come from the command line, then `--config FILE`, then the
/// built-in defaults (shown below); see config/roomcast.toml.
#[derive(Parser, Debug)]
#[command(version, after_help = EXIT_STATUS)]
pub struct ServerArgs {
    /// IPv4 multicast group to join, e.g. 224.1.1.1 (or `group` in --config).
    #[arg(value_parser = crate::net::parse_group)]
    pub group: Option<Ipv4Addr>,
    /// UDP port of the group, e.g. 11111 (or `port` in --config).
    #[arg(value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Server ID (the highest leads); defaults to the process ID.
    pub id: Option<u64>,
    /// A TOML file with any of these settings (keys as in config/roomcast.toml).
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub config: Option<PathBuf>,
    /// Server ID, as an option (the same as the third argument).
    #[arg(long = "id", value_name = "ID", conflicts_with = "id")]
    pub id_option: Option<u64>,
    /// IPv4 address of the local interface to join on and send multicast from
    /// [default: chosen by the kernel's routing table].
    #[arg(long, value_name = "ADDR")]
    pub interface: Option<Ipv4Addr>,
    /// Multicast TTL, 0 to 255: 0 keeps traffic on this host, 1 on the local network [default: 1].
    #[arg(long, value_name = "N", value_parser = super::ttl)]
    pub ttl: Option<u32>,
    /// Another server's host, reached by unicast at ADDR:PORT (PORT: the
    /// group's port) besides multicast, where the network drops multicast.
    /// Repeat for each server; one server per address. Replaces `peers` in --config.
    #[arg(long = "peer", value_name = "ADDR:PORT", value_parser = crate::net::parse_peer)]
    pub peers: Vec<SocketAddrV4>,
    /// How often followers heartbeat the leader, in milliseconds [default: 200].
    #[arg(long, value_name = "MS", value_parser = super::positive_millis)]
    pub heartbeat_interval: Option<u64>,
    /// After this many milliseconds without an answer the leader is declared failed [default: 1000].
    #[arg(long, value_name = "MS", value_parser = super::positive_millis)]
    pub heartbeat_timeout: Option<u64>,
    /// How long a candidate waits for a higher server to answer, in milliseconds [default: 200].
    #[arg(long, value_name = "MS", value_parser = super::positive_millis)]
    pub election_timeout: Option<u64>,
    /// The leader waits this long before answering a client (models load or distance) [default: 0].
    #[arg(long, value_name = "MS", value_parser = super::millis)]
    pub service_delay: Option<u64>,
    /// A server higher than the leader waits this long after it starts (and
    /// until it has caught up) before taking over, so that one restarting in
    /// a loop does not make the group flap [default: 0].
    #[arg(long, value_name = "MS", value_parser = super::millis)]
    pub preempt_delay: Option<u64>,
    /// File with the rooms, timeslots and days [default: the built-in list,
    /// the same as config/catalog.toml].
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub catalog: Option<PathBuf>,
    /// Directory to keep the log and snapshots in, so that the server comes
    /// back with its reservations after a restart [default: memory only].
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub data_dir: Option<PathBuf>,
    /// Confirm a write only once this many servers (the leader included) hold
    /// it, and refuse writes while fewer are reachable. With more than half of
    /// the group, a network partition cannot confirm conflicting writes; the
    /// smaller side refuses them instead [default: 1, every live server].
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    pub min_replicas: Option<u64>,
    /// Log level: `off` logs nothing, `error` only errors, and each further
    /// level adds to the one before; `info` shows elections and heartbeat
    /// failures [default: $RUST_LOG, else info].
    #[arg(long, value_name = "LEVEL", ignore_case = true, value_parser = LOG_LEVELS)]
    pub log_level: Option<String>,
    /// Shell command run each time this server becomes the leader, with
    /// ROOMCAST_ROLE, ROOMCAST_LEADER, ROOMCAST_TERM and ROOMCAST_ID set.
    #[arg(long, value_name = "CMD", value_hint = ValueHint::CommandString)]
    pub on_leader: Option<String>,
    /// Shell command run each time this server becomes a follower (same variables).
    #[arg(long, value_name = "CMD", value_hint = ValueHint::CommandString)]
    pub on_follower: Option<String>,
    /// The group's server key file: every datagram is then sealed and
    /// authenticated (docs/security.md) [default: no keys, open to anyone on the network].
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub key_file: Option<PathBuf>,
    /// Serve Prometheus metrics over HTTP at ADDR:PORT, or PORT on 127.0.0.1
    /// (`metrics` in --config; docs/operations.md lists them) [default: none].
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<String>,
    /// Write a new server key file (mode 600) and exit; copy it to every server.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath, conflicts_with = "issue_client_key")]
    pub generate_key: Option<PathBuf>,
    /// Write the key of client NAME (from --key-file's first client master
    /// key) to FILE (mode 600) and exit; give FILE to that client only.
    #[arg(long, num_args = 2, value_names = ["NAME", "FILE"])]
    pub issue_client_key: Option<Vec<String>>,
    /// With --issue-client-key: the key may cancel anyone's reservations.
    #[arg(long, requires = "issue_client_key")]
    pub admin: bool,
}

/// What `--log-level` takes, quietest first.
const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// The end of `--help`: what the exit status says, and so whether systemd
/// restarts the server (`RestartPreventExitStatus=2 3`).
const EXIT_STATUS: &str = "\
Exit status:
  0  stopped cleanly (SIGINT, SIGTERM)
  1  a failure a restart may cure: a socket, the event loop, disk I/O
  2  a bad command line, config file or key file, or a network set-up no restart cures:
     --interface is not an address of this host, or no route leads to 224.0.0.0/4
  3  needs an operator first: a damaged or old-format data directory, an ID
     already in use in the group, a catalog different from the group's";

impl ServerArgs {
    /// The settings given on the command line.
    pub fn options(&self) -> ServerOptions {
        ServerOptions {
            group: self.group.map(|g| g.to_string()),
            port: self.port,
            id: self.id.or(self.id_option),
            interface: self.interface,
            ttl: self.ttl,
            peers: (!self.peers.is_empty()).then(|| self.peers.iter().map(ToString::to_string).collect()),
            heartbeat_interval_ms: self.heartbeat_interval,
            heartbeat_timeout_ms: self.heartbeat_timeout,
            election_timeout_ms: self.election_timeout,
            service_delay_ms: self.service_delay,
            preempt_delay_ms: self.preempt_delay,
            data_dir: self.data_dir.clone(),
            min_replicas: self.min_replicas,
            catalog: self.catalog.clone(),
            log_level: self.log_level.clone(),
            on_leader: self.on_leader.clone(),
            on_follower: self.on_follower.clone(),
            key_file: self.key_file.clone(),
            metrics: self.metrics.clone(),
            ..ServerOptions::default()
        }
    }
}
