//! `demo`: three roomcast servers (IDs 100, 200, 300) on this host's loopback
//! interface, and the interactive client in front of them. Nothing leaves the
//! host: the group is joined on 127.0.0.1 with a multicast TTL of 0.

use std::fs::File;
use std::net::{Ipv4Addr, UdpSocket};
use std::process::ExitCode;
use std::thread;

use env_logger::{Env, Target};
use roomcast::client::ClientConfig;
use roomcast::client::io::{self, Options};
use roomcast::driver::{Server, ServerSettings};
use roomcast::net::GroupAddr;
use roomcast::node::Timing;
use roomcast::rooms::Catalog;

const IDS: [u64; 3] = [100, 200, 300];

fn main() -> ExitCode {
    match start_servers() {
        Ok(group) => io::run(&Options {
            group,
            peers: Vec::new(),
            config: ClientConfig::default(),
            command: Vec::new(),
            json: false,
            linger: io::DEFAULT_LINGER,
            stop_on_error: false,
            prompt: false,
        })
        .into(),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn start_servers() -> Result<GroupAddr, Box<dyn std::error::Error>> {
    let log_path = std::env::temp_dir().join(format!("roomcast-demo-{}.log", std::process::id()));
    let log = File::create(&log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    env_logger::Builder::from_env(Env::default().default_filter_or("info")).target(Target::Pipe(Box::new(log))).init();
    let group = GroupAddr {
        group: Ipv4Addr::new(239, 255, 77, 77),
        port: free_port()?,
        interface: Some(Ipv4Addr::LOCALHOST),
        ttl: 0,
    };
    for id in IDS {
        let settings = ServerSettings {
            group,
            peers: Vec::new(),
            id: Some(id),
            timing: Timing::default(),
            catalog: Catalog::default(),
            data_dir: None,
            min_replicas: 1,
            hooks: Default::default(),
        };
        let server = Server::bind(settings)?;
        thread::spawn(move || {
            if let Err(e) = server.run() {
                eprintln!("error: server {id}: {e}");
            }
        });
    }
    println!("Servers {IDS:?} run on group {}:{} over loopback.", group.group, group.port);
    println!("Their log (elections, heartbeats): {}", log_path.display());
    println!("Type 'help' for the commands, 'quit' to leave.");
    Ok(group)
}

/// A UDP port nobody on this host uses right now, for the demo's group.
fn free_port() -> std::io::Result<u16> {
    Ok(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}
