//! `demo`: three roomcast servers (IDs 100, 200, 300) on this host's loopback
//! interface, and the interactive client in front of them, with commands to
//! kill, stop and start the servers. Nothing leaves the host: the group is
//! joined on 127.0.0.1 with a multicast TTL of 0.

// A binary: its own I/O shell.
#![allow(clippy::disallowed_methods)]

use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;

use clap::Parser;
use env_logger::Target;
use roomcast::client::ClientConfig;
use roomcast::client::io::{self, Embedding, Options};
use roomcast::demo::Demo;
use roomcast::logging::{self, Filter};
use roomcast::net::GroupAddr;

/// Three roomcast servers (IDs 100, 200, 300) in this process, on this host's
/// loopback only (127.0.0.1, TTL 0), and the interactive client in front of
/// them.
///
/// Type the client's commands (`help` lists them), and the demo's own:
/// `kill 300` stops the leader as a crash would, and the others report
/// `Heartbeat to group leader 300 failed` and elect 200 while the client
/// carries on; `start 300` brings it back, and it takes over once it has
/// caught up; `stop 200` lets a server leave cleanly. The servers' lines
/// appear as they happen, marked `[server ID]`; their whole log, with
/// timestamps (`RUST_LOG=debug` for more), goes to a file the demo names at
/// start and removes when it ends.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Keep the servers' log file when the demo ends (it is removed otherwise).
    #[arg(long)]
    keep_log: bool,
}

const IDS: [u64; 3] = [100, 200, 300];

fn main() -> ExitCode {
    let args = Args::parse();
    let log = LogFile::named(args.keep_log);
    match run(&log) {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(log: &LogFile) -> Result<io::Exit, String> {
    let (echo, notices) = mpsc::channel();
    let file = File::create(&log.path).map_err(|e| format!("cannot create {}: {e}", log.path.display()))?;
    let filter = Filter { given: None, default: "info" };
    logging::init_with_echo(filter, Target::Pipe(Box::new(file)), echo)
        .map_err(|e| format!("starting the log: {e}"))?;
    let group = GroupAddr {
        group: Ipv4Addr::new(239, 255, 77, 77),
        port: free_port().map_err(|e| format!("finding a free UDP port on 127.0.0.1: {e}"))?,
        interface: Some(Ipv4Addr::LOCALHOST),
        ttl: 0,
    };
    let mut demo = Demo::new(group);
    for id in IDS {
        demo.start(id)?;
    }
    let banner = format!(
        "Servers {IDS:?} run on group {}:{} over loopback (127.0.0.1, TTL 0).\n\
         Their log: {path}; follow it from another terminal with: tail -f {path}\n\
         Type 'help' for the commands: 'kill 300' shows a failover, 'start 300' brings it back, 'quit' leaves.",
        group.group,
        group.port,
        path = log.path.display()
    );
    say(&banner)?;
    let options = Options {
        group,
        peers: Vec::new(),
        config: ClientConfig::default(),
        command: Vec::new(),
        json: false,
        linger: io::DEFAULT_LINGER,
        stop_on_error: false,
        prompt: false,
        key: None,
    };
    // Dropping the demo at the end kills its servers, before the log goes.
    Ok(io::run_session(&options, Embedding { commands: &mut demo, notices }))
}

/// The servers' log file, removed when dropped unless it is to be kept.
struct LogFile {
    path: PathBuf,
    keep: bool,
}

impl LogFile {
    /// Names the file in the temporary directory (`$TMPDIR`), after this process.
    fn named(keep: bool) -> LogFile {
        let path = std::env::temp_dir().join(format!("roomcast-demo-{}.log", std::process::id()));
        LogFile { path, keep }
    }
}

impl Drop for LogFile {
    fn drop(&mut self) {
        if self.keep {
            let _ = say(&format!("The servers' log is kept in {}", self.path.display()));
        } else if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!("error: removing the log {}: {e}", self.path.display());
        }
    }
}

fn say(text: &str) -> Result<(), String> {
    writeln!(std::io::stdout(), "{text}").map_err(|e| format!("writing to standard output: {e}"))
}

/// A UDP port nobody on this host uses right now, for the demo's group.
fn free_port() -> std::io::Result<u16> {
    Ok(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}
