//! `server GROUP PORT [ID]`: a roomcast server. Parses arguments, sets up
//! logging and signals, and runs the driver.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use log::{error, info};

use roomcast::config::load_catalog;
use roomcast::driver::{Server, ServerSettings};
use roomcast::net::GroupAddr;
use roomcast::node::Timing;
use roomcast::rooms::Catalog;

/// A replicated room-reservation server: joins the multicast group, elects a
/// leader with the bully algorithm, and serves clients when it leads.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// IPv4 multicast group to join, e.g. 224.1.1.1.
    #[arg(value_parser = roomcast::net::parse_group)]
    group: Ipv4Addr,
    /// UDP port of the group, e.g. 11111.
    #[arg(value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    /// Server ID (the highest leads); defaults to the process ID.
    id: Option<u64>,
    /// IPv4 address of the local interface to join on and send multicast from
    /// (default: chosen by the kernel's routing table).
    #[arg(long, value_name = "ADDR")]
    interface: Option<Ipv4Addr>,
    /// Multicast TTL: 0 keeps traffic on this host, 1 on the local network.
    #[arg(long, default_value_t = 1, value_name = "N")]
    ttl: u32,
    /// How often followers heartbeat the leader, in milliseconds.
    #[arg(long, default_value_t = 200, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    heartbeat_interval: u64,
    /// After this many milliseconds without an answer the leader is declared failed.
    #[arg(long, default_value_t = 1000, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    heartbeat_timeout: u64,
    /// How long a candidate waits for a higher server to answer, in milliseconds.
    #[arg(long, default_value_t = 200, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    election_timeout: u64,
    /// The leader waits this long before answering a client (models load or distance).
    #[arg(long, default_value_t = 0, value_name = "MS")]
    service_delay: u64,
    /// File with the rooms, timeslots and days (default: the built-in list,
    /// the same as config/catalog.toml).
    #[arg(long, value_name = "FILE")]
    catalog: Option<PathBuf>,
    /// Directory to keep the log and snapshots in, so that the server comes
    /// back with its reservations after a restart (default: memory only).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Confirm a write only once this many servers (the leader included) hold
    /// it, and refuse writes while fewer are reachable. With more than half of
    /// the group, a network partition cannot confirm conflicting writes; the
    /// smaller side refuses them instead (default 1: every live server, no
    /// minimum).
    #[arg(long, default_value_t = 1, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    min_replicas: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if args.heartbeat_timeout <= args.heartbeat_interval {
        eprintln!("error: --heartbeat-timeout must be longer than --heartbeat-interval");
        return ExitCode::from(2);
    }
    let catalog = match &args.catalog {
        None => Catalog::default(),
        Some(path) => match load_catalog(path) {
            Ok(catalog) => catalog,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    match run(&args, catalog) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args, catalog: Catalog) -> Result<(), Box<dyn std::error::Error>> {
    let ms = Duration::from_millis;
    let settings = ServerSettings {
        group: GroupAddr { group: args.group, port: args.port, interface: args.interface, ttl: args.ttl },
        id: args.id,
        timing: Timing {
            heartbeat_interval: ms(args.heartbeat_interval),
            heartbeat_timeout: ms(args.heartbeat_timeout),
            election_timeout: ms(args.election_timeout),
            service_delay: ms(args.service_delay),
        },
        catalog,
        data_dir: args.data_dir.clone(),
        min_replicas: usize::try_from(args.min_replicas).unwrap_or(usize::MAX),
    };
    let server = Server::bind(settings)?;
    let stopper = server.stopper();
    ctrlc::set_handler(move || stopper.stop())?;
    server.run()?;
    info!("stopped");
    Ok(())
}
