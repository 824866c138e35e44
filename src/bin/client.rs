//! The roomcast client: sends room-reservation commands to the server group
//! and prints the leader's answers. Parses arguments (defined in
//! `roomcast::cli::client`) and runs the client.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use roomcast::cli::client::ClientArgs;
use roomcast::client::ClientConfig;
use roomcast::client::io::{self, Options};
use roomcast::net::GroupAddr;

fn main() -> ExitCode {
    // The client logs only what `RUST_LOG=debug` asks for (each send that failed).
    let filter = roomcast::logging::Filter { given: None, default: "warn" };
    if let Err(e) = roomcast::logging::init(filter, env_logger::Target::Stderr) {
        eprintln!("error: starting the log: {e}");
    }
    let args = ClientArgs::parse();
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
        linger: Duration::from_millis(args.linger),
        stop_on_error: args.stop_on_error,
        prompt: args.prompt,
    };
    io::run(&options).into()
}
