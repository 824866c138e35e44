//! `server GROUP PORT [ID]`: a roomcast server. Parses arguments, sets up
//! logging and signals, and runs the driver.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches, Parser};
use log::info;

use roomcast::auth::{ClientKey, Principal, ServerKeys, file};
use roomcast::cli;
use roomcast::config::{ConfigError, ResolvedServer, ServerOptions, load_server_options, resolve_server};
use roomcast::driver::{Server, ServerError, ServerSettings};

/// A replicated room-reservation server: joins the multicast group, elects a
/// leader with the bully algorithm, and serves clients when it leads.
///
/// Settings come from the command line, then `--config FILE`, then the
/// built-in defaults (shown below); see config/roomcast.toml.
#[derive(Parser, Debug)]
#[command(version, about, after_help = EXIT_STATUS)]
struct Args {
    /// IPv4 multicast group to join, e.g. 224.1.1.1 (or `group` in --config).
    #[arg(value_parser = roomcast::net::parse_group)]
    group: Option<Ipv4Addr>,
    /// UDP port of the group, e.g. 11111 (or `port` in --config).
    #[arg(value_parser = clap::value_parser!(u16).range(1..))]
    port: Option<u16>,
    /// Server ID (the highest leads); defaults to the process ID.
    id: Option<u64>,
    /// A TOML file with any of these settings (keys as in config/roomcast.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Server ID, as an option (the same as the third argument).
    #[arg(long = "id", value_name = "ID", conflicts_with = "id")]
    id_option: Option<u64>,
    /// IPv4 address of the local interface to join on and send multicast from
    /// [default: chosen by the kernel's routing table].
    #[arg(long, value_name = "ADDR")]
    interface: Option<Ipv4Addr>,
    /// Multicast TTL, 0 to 255: 0 keeps traffic on this host, 1 on the local network [default: 1].
    #[arg(long, value_name = "N", value_parser = cli::ttl)]
    ttl: Option<u32>,
    /// Another server's host, reached by unicast at ADDR:PORT (PORT: the
    /// group's port) besides multicast, where the network drops multicast.
    /// Repeat for each server; one server per address. Replaces `peers` in --config.
    #[arg(long = "peer", value_name = "ADDR:PORT", value_parser = roomcast::net::parse_peer)]
    peers: Vec<SocketAddrV4>,
    /// How often followers heartbeat the leader, in milliseconds [default: 200].
    #[arg(long, value_name = "MS", value_parser = cli::positive_millis)]
    heartbeat_interval: Option<u64>,
    /// After this many milliseconds without an answer the leader is declared failed [default: 1000].
    #[arg(long, value_name = "MS", value_parser = cli::positive_millis)]
    heartbeat_timeout: Option<u64>,
    /// How long a candidate waits for a higher server to answer, in milliseconds [default: 200].
    #[arg(long, value_name = "MS", value_parser = cli::positive_millis)]
    election_timeout: Option<u64>,
    /// The leader waits this long before answering a client (models load or distance) [default: 0].
    #[arg(long, value_name = "MS", value_parser = cli::millis)]
    service_delay: Option<u64>,
    /// A server higher than the leader waits this long after it starts (and
    /// until it has caught up) before taking over, so that one restarting in
    /// a loop does not make the group flap [default: 0].
    #[arg(long, value_name = "MS", value_parser = cli::millis)]
    preempt_delay: Option<u64>,
    /// File with the rooms, timeslots and days [default: the built-in list,
    /// the same as config/catalog.toml].
    #[arg(long, value_name = "FILE")]
    catalog: Option<PathBuf>,
    /// Directory to keep the log and snapshots in, so that the server comes
    /// back with its reservations after a restart [default: memory only].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Confirm a write only once this many servers (the leader included) hold
    /// it, and refuse writes while fewer are reachable. With more than half of
    /// the group, a network partition cannot confirm conflicting writes; the
    /// smaller side refuses them instead [default: 1, every live server].
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    min_replicas: Option<u64>,
    /// Log level: `off` logs nothing, `error` only errors, and each further
    /// level adds to the one before; `info` shows elections and heartbeat
    /// failures [default: $RUST_LOG, else info].
    #[arg(long, value_name = "LEVEL", ignore_case = true, value_parser = LOG_LEVELS)]
    log_level: Option<String>,
    /// Shell command run each time this server becomes the leader, with
    /// ROOMCAST_ROLE, ROOMCAST_LEADER, ROOMCAST_TERM and ROOMCAST_ID set.
    #[arg(long, value_name = "CMD")]
    on_leader: Option<String>,
    /// Shell command run each time this server becomes a follower (same variables).
    #[arg(long, value_name = "CMD")]
    on_follower: Option<String>,
    /// The group's server key file: every datagram is then sealed and
    /// authenticated (docs/security.md) [default: no keys, open to anyone on the network].
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Write a new server key file (mode 600) and exit; copy it to every server.
    #[arg(long, value_name = "FILE", conflicts_with = "issue_client_key")]
    generate_key: Option<PathBuf>,
    /// Write the key of client NAME (from --key-file's first client master
    /// key) to FILE (mode 600) and exit; give FILE to that client only.
    #[arg(long, num_args = 2, value_names = ["NAME", "FILE"])]
    issue_client_key: Option<Vec<String>>,
    /// With --issue-client-key: the key may cancel anyone's reservations.
    #[arg(long, requires = "issue_client_key")]
    admin: bool,
}

/// What `--log-level` takes, quietest first.
const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// The end of `--help`: what the exit status says, and so whether systemd
/// restarts the server (`RestartPreventExitStatus=2 3`).
const EXIT_STATUS: &str = "\
Exit status:
  0  stopped cleanly (SIGINT, SIGTERM)
  1  a failure a restart may cure: a socket, the event loop, disk I/O
  2  a bad command line or config file, or a network set-up no restart cures:
     --interface is not an address of this host, or no route leads to 224.0.0.0/4
  3  needs an operator first: a damaged or old-format data directory, an ID
     already in use in the group, a catalog different from the group's";

impl Args {
    /// The settings given on the command line.
    fn options(&self) -> ServerOptions {
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
            ..ServerOptions::default()
        }
    }
}

fn main() -> ExitCode {
    // Kept after parsing for its usage line, which names the program as it was run.
    let mut command = Args::command();
    let args = Args::from_arg_matches(&command.get_matches_mut()).unwrap_or_else(|e| e.exit());
    if let Some(done) = key_command(&args) {
        return match done {
            Ok(message) => {
                println!("{message}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    if args.config.is_none() && (args.group.is_none() || args.port.is_none()) {
        // Like any missing argument: the message, the usage line, exit 2.
        let message = "the server needs GROUP and PORT, e.g. `server 224.1.1.1 11111`, \
                       or `--config FILE` with `group` and `port` in it";
        command.error(ErrorKind::MissingRequiredArgument, message).exit();
    }
    let resolved = match resolve(&args) {
        Ok(resolved) => resolved,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = roomcast::logging::Filter { given: resolved.log_level.as_deref(), default: "info" };
    if let Err(e) = roomcast::logging::init(filter, env_logger::Target::Stderr) {
        eprintln!("error: starting the log: {e}");
        return ExitCode::FAILURE;
    }
    match run(resolved.settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit_status(e.as_ref()))
        }
    }
}

/// `--generate-key` or `--issue-client-key`, if given: what was written.
fn key_command(args: &Args) -> Option<Result<String, Box<dyn std::error::Error>>> {
    if let Some(path) = &args.generate_key {
        return Some(generate_key(path));
    }
    let [name, path] = args.issue_client_key.as_deref()? else { return None };
    Some(issue_client_key(args, name, Path::new(path)))
}

fn generate_key(path: &Path) -> Result<String, Box<dyn std::error::Error>> {
    let mut random = [0u8; 64];
    getrandom::fill(&mut random).map_err(|e| format!("no random numbers from the system: {e}"))?;
    let keys = ServerKeys::generate(random);
    file::write_server_keys(path, &keys)?;
    Ok(format!(
        "wrote new server keys to {} (server key {}, client master key {}); copy the file to every server of \
         the group, readable by the server only (chmod 600), and issue client keys with --issue-client-key",
        path.display(),
        keys.server[0].id(),
        keys.client_masters[0].id()
    ))
}

fn issue_client_key(args: &Args, name: &str, path: &Path) -> Result<String, Box<dyn std::error::Error>> {
    let key_file = match (&args.key_file, &args.config) {
        (Some(key_file), _) => key_file.clone(),
        (None, Some(config)) => resolve_key_file(config)?,
        (None, None) => return Err("--issue-client-key needs the servers' keys: give --key-file FILE".into()),
    };
    let keys = file::read_server_keys(&key_file)?;
    let principal = Principal { name: name.to_string(), admin: args.admin };
    let key = ClientKey::issue(&keys.client_masters[0], principal)?;
    file::write_client_key(path, &key)?;
    let role = if args.admin { "an administrator's key" } else { "a user's key" };
    Ok(format!(
        "wrote the key of client '{name}' ({role}, from master key {}) to {}; give it to that client only",
        key.master,
        path.display()
    ))
}

/// The `key_file` a config file names, beside the file if relative.
fn resolve_key_file(config: &Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let options = load_server_options(config)?;
    let key_file =
        options.key_file.ok_or_else(|| format!("{}: no `key_file`; give --key-file FILE", config.display()))?;
    Ok(config.parent().unwrap_or(Path::new("")).join(key_file))
}

/// The exit status for `error`; 2 and 3 tell systemd (RestartPreventExitStatus)
/// not to restart into the same error.
fn exit_status(error: &(dyn std::error::Error + 'static)) -> u8 {
    match error.downcast_ref::<ServerError>() {
        Some(e) if e.needs_operator() => 3,
        Some(ServerError::Net(e)) if e.is_setup_mistake() => 2,
        _ => 1,
    }
}

/// Merges the command line over `--config` over the defaults.
fn resolve(args: &Args) -> Result<ResolvedServer, ConfigError> {
    let file = args.config.as_ref().map(|path| load_server_options(path).map(|f| (path, f))).transpose()?;
    resolve_server(&args.options(), file.as_ref().map(|(path, f)| (path.as_path(), f)))
}

fn run(settings: ServerSettings) -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::bind(settings)?;
    let stopper = server.stopper();
    ctrlc::set_handler(move || stopper.stop())?;
    server.run()?;
    info!("stopped");
    Ok(())
}
