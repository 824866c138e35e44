//! `bench PART [OPTIONS]`: roomcast's benchmark suite (issue 14). Parses the
//! arguments and runs [`roomcast::bench::run`]; that module documents what
//! each part measures.
//!
//! ```sh
//! cargo build --release && target/release/bench all
//! ```

use std::net::Ipv4Addr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use roomcast::bench::{self, Part, Settings};
use roomcast::net::GroupAddr;

/// roomcast's benchmark suite: the real servers on loopback (as root, in a
/// private network namespace), every figure beside the floor (a bare
/// multicast request → unicast reply ping-pong) measured in the same run.
/// Prints a table; writes OUT/results.json and PNG charts.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Every part, the floor first (peers where installed).
    All(Settings),
    /// The floor alone: multicast request → unicast reply, three responders, one replies.
    Floor(Settings),
    /// Reads and writes, 1 and N clients, in memory and with --data-dir.
    Requests(Settings),
    /// Kill -9 and SIGTERM of the leader to the first confirmed write; a higher newcomer.
    Failover(Settings),
    /// Role changes at the fast timings while busy loops compete for the CPUs.
    FalseFailovers(Settings),
    /// Groups of 3 to 64 servers: agreement after a kill, heartbeat load, write latency.
    Scale(Settings),
    /// A newcomer copying a large state; resident memory.
    CatchUp(Settings),
    /// The client's cache hit against a round trip.
    Cache(Settings),
    /// Reads and writes without keys and with them (the cost of authentication).
    Keys(Settings),
    /// etcd and keepalived, where installed.
    Peers(Settings),
    /// One responder of the floor (the floor part starts three).
    #[command(hide = true)]
    FloorResponder {
        /// The multicast group.
        #[arg(long)]
        group: std::net::Ipv4Addr,
        /// Its port.
        #[arg(long)]
        port: u16,
        /// Echo each request back (one responder of the three does).
        #[arg(long)]
        reply: bool,
        /// Stop after this many seconds at the latest.
        #[arg(long, default_value_t = 600.0)]
        seconds: f64,
    },
    /// Spin one CPU (the false-failover part starts these).
    #[command(hide = true)]
    BusyLoop {
        /// How long, in seconds.
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
    },
}

fn main() -> ExitCode {
    let (part, settings) = match Cli::parse().command {
        Command::All(s) => (Part::All, s),
        Command::Floor(s) => (Part::Floor, s),
        Command::Requests(s) => (Part::Requests, s),
        Command::Failover(s) => (Part::Failover, s),
        Command::FalseFailovers(s) => (Part::FalseFailovers, s),
        Command::Scale(s) => (Part::Scale, s),
        Command::CatchUp(s) => (Part::CatchUp, s),
        Command::Cache(s) => (Part::Cache, s),
        Command::Keys(s) => (Part::Keys, s),
        Command::Peers(s) => (Part::Peers, s),
        Command::FloorResponder { group, port, reply, seconds } => {
            let addr = GroupAddr { group, port, interface: Some(Ipv4Addr::LOCALHOST), ttl: 0 };
            return match bench::floor::respond(addr, reply, seconds) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::BusyLoop { seconds } => {
            bench::procs::busy_loop(seconds);
            return ExitCode::SUCCESS;
        }
    };
    match bench::run(part, &settings) {
        Ok(report) if report.failures.is_empty() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
