//! The client's command line (`roomcast-client`, built as `client`): its
//! clap definition, here rather than in `src/bin/client.rs` so that the man
//! page and shell completions can be generated from it (see [`super::installed`]).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use clap::{Parser, ValueHint};

use crate::client::command;
use crate::client::io::{self, EXIT_STATUS_HELP};

/// Reserve rooms through a group of roomcast servers.
///
/// Without COMMAND it reads commands from standard input: on a terminal with
/// the `Next command: ` prompt, line editing and history; through a pipe
/// without prompts, so that standard output holds only the answers. With
/// COMMAND it runs that one command and exits. After each answer the client
/// listens --linger milliseconds more for a second server's reply (two
/// leaders); scripts with many commands run faster through one session
/// (`client GROUP PORT < commands.txt`) than one process per command.
///
/// Ctrl-C stops waiting for an answer: on a terminal the session goes on
/// (Ctrl-C at an empty prompt, or twice in a row, ends it); otherwise the
/// client exits with 130.
#[derive(Parser, Debug)]
#[command(version, after_help = format!("{}\n\n{EXIT_STATUS_HELP}", command::help()))]
pub struct ClientArgs {
    /// Multicast group of the servers, e.g. 224.1.1.1.
    #[arg(value_parser = crate::net::parse_group)]
    pub group: Ipv4Addr,
    /// UDP port of the group, e.g. 11111.
    #[arg(value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// A command to run once, e.g. `reserve ME4326 8:30-9:30 Friday`.
    pub command: Vec<String>,
    /// Local address to send from and receive replies on (default: chosen by the kernel's routes).
    #[arg(long, value_name = "ADDR")]
    pub interface: Option<Ipv4Addr>,
    /// Multicast time-to-live, 0 to 255: 0 keeps requests on this host, 1 on the local network.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = super::ttl)]
    pub ttl: u32,
    /// A server's host to send each request to by unicast as well, at
    /// ADDR:PORT (PORT: the group's port), where the network drops multicast.
    /// Repeat for each server.
    #[arg(long = "peer", value_name = "ADDR:PORT", value_parser = crate::net::parse_peer)]
    pub peers: Vec<SocketAddrV4>,
    /// Total time to wait for an answer, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000, value_parser = super::positive_millis)]
    pub timeout: u64,
    /// After an answer, listen this many milliseconds more for a second
    /// server's reply, reported as an error (exit 3); 0 does not wait. A late
    /// second reply is still reported while a session runs on.
    #[arg(long, value_name = "MS", default_value_t = io::DEFAULT_LINGER.as_millis() as u64, value_parser = super::millis)]
    pub linger: u64,
    /// End a session at the first command that does not succeed (refused,
    /// malformed, unanswered), with its exit status.
    #[arg(long)]
    pub stop_on_error: bool,
    /// Print the `Next command: ` prompt on standard output even when
    /// standard input is not a terminal, for programs that drive the client
    /// through pipes and wait for the prompt.
    #[arg(long)]
    pub prompt: bool,
    /// Print each outcome as one line of JSON (for scripts).
    #[arg(long)]
    pub json: bool,
    /// This client's key file, for a group with keys (made by
    /// `roomcast-server --issue-client-key NAME FILE`; readable by its owner only).
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub key_file: Option<PathBuf>,
}
