//! The roomcast client: sends room-reservation commands to the server group
//! and prints the leader's answers.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use roomcast::client::ClientConfig;
use roomcast::client::io::{self, Options};
use roomcast::net::GroupAddr;

/// Reserve rooms through a group of roomcast servers.
///
/// Without COMMAND it prompts for commands on standard input (type `help`);
/// with one it runs it, prints the answer and exits with 0 (success),
/// 1 (refused), 2 (usage error) or 3 (no server answered, or more than one).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Multicast group of the servers, e.g. 224.1.1.1.
    #[arg(value_parser = roomcast::net::parse_group)]
    group: Ipv4Addr,
    /// UDP port of the group, e.g. 11111.
    #[arg(value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    /// A command to run once, e.g. `reserve ME4326 8:30-9:30 Friday`.
    command: Vec<String>,
    /// Local address to send from and receive replies on (default: chosen by the kernel's routes).
    #[arg(long, value_name = "ADDR")]
    interface: Option<Ipv4Addr>,
    /// Multicast time-to-live: 0 keeps requests on this host, 1 on the local network.
    #[arg(long, value_name = "N", default_value_t = 1)]
    ttl: u32,
    /// A server's host to send each request to by unicast as well, at
    /// ADDR:PORT (PORT: the group's port), where the network drops multicast.
    /// Repeat for each server.
    #[arg(long = "peer", value_name = "ADDR:PORT", value_parser = roomcast::net::parse_peer)]
    peers: Vec<SocketAddrV4>,
    /// Total time to wait for an answer, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// Print each outcome as one line of JSON (for scripts).
    #[arg(long)]
    json: bool,
    /// This client's key file, for a group with keys (made by
    /// `roomcast-server --issue-client-key NAME FILE`; readable by its owner only).
    #[arg(long, value_name = "FILE")]
    key_file: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    env_logger::init();
    let args = Args::parse();
    let key = match args.key_file.as_deref().map(roomcast::auth::file::read_client_key).transpose() {
        Ok(key) => key,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let options = Options {
        group: GroupAddr { group: args.group, port: args.port, interface: args.interface, ttl: args.ttl },
        peers: args.peers,
        config: ClientConfig { timeout: Duration::from_millis(args.timeout), ..ClientConfig::default() },
        command: args.command,
        json: args.json,
        key,
    };
    io::run(&options).into()
}
