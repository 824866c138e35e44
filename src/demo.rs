//! The demo's servers: each runs on a thread of its own in the demo's process,
//! on this host's loopback (interface 127.0.0.1, TTL 0), and the demo's
//! commands kill, stop and start them while the client carries on.

// The demo runs servers on threads and reads the clock (clippy.toml keeps these out of the core).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};

use crate::client::io::LocalCommands;
use crate::driver::{Server, ServerSettings, Stopper};
use crate::net::GroupAddr;
use crate::node::Timing;
use crate::rooms::Catalog;

/// A server the demo started.
struct Running {
    stopper: Stopper,
    thread: JoinHandle<()>,
}

/// The demo's group of servers and its commands.
pub struct Demo {
    group: GroupAddr,
    servers: BTreeMap<u64, Running>,
}

/// How a demo command stops a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// As a crash would: nothing is sent.
    Kill,
    /// Cleanly: the server leaves the group (a leader hands over).
    Stop,
}

/// The demo's commands for `help`: the form, what it does, an example.
const COMMANDS: [(&str, &str, &str); 3] = [
    ("kill ID", "stop server ID as a crash would, without a word", "kill 300"),
    ("stop ID", "stop server ID cleanly: it leaves the group", "stop 200"),
    ("start ID", "start server ID anew; it catches up from the group", "start 300"),
];

impl Demo {
    /// A demo on `group`, with no server yet.
    pub fn new(group: GroupAddr) -> Demo {
        Demo { group, servers: BTreeMap::new() }
    }

    /// The IDs of the servers that run, lowest first.
    pub fn running(&self) -> Vec<u64> {
        self.servers.iter().filter(|(_, server)| !server.thread.is_finished()).map(|(id, _)| *id).collect()
    }

    /// Starts server `id` on a thread of its own (named `server ID`, and
    /// logging as it): it binds there, so that its log lines carry its ID.
    pub fn start(&mut self, id: u64) -> Result<(), String> {
        if id == 0 {
            return Err("server IDs start at 1 (\"initiated by 0\" means a server's own election)".into());
        }
        if self.running().contains(&id) {
            return Err(format!("server {id} is running; 'kill {id}' or 'stop {id}' it first"));
        }
        let settings = self.settings(id);
        let (bound, stopper) = mpsc::channel();
        let body = move || match Server::bind(settings) {
            Ok(server) => {
                let _ = bound.send(Ok(server.stopper()));
                if let Err(e) = server.run() {
                    log::error!("server {id} stopped: {e}");
                }
            }
            Err(e) => {
                let _ = bound.send(Err(format!("starting server {id}: {e}")));
            }
        };
        let thread = thread::Builder::new()
            .name(format!("server {id}"))
            .spawn(body)
            .map_err(|e| format!("starting a thread for server {id}: {e}"))?;
        let stopper = stopper.recv().map_err(|_| format!("server {id}'s thread ended before binding"))??;
        self.servers.insert(id, Running { stopper, thread });
        Ok(())
    }

    /// Stops every server as a crash would, at the end of the demo.
    fn kill_all(&mut self) {
        for id in self.running() {
            let _ = self.stop(id, Stop::Kill);
        }
    }

    fn stop(&mut self, id: u64, how: Stop) -> Result<(), String> {
        let Some(server) = self.servers.remove(&id).filter(|server| !server.thread.is_finished()) else {
            return Err(format!("server {id} is not running (running: {})", list(&self.running())));
        };
        match how {
            Stop::Kill => server.stopper.crash(),
            Stop::Stop => server.stopper.stop(),
        }
        // It leaves its loop at once; waiting makes `start ID` right after safe.
        server.thread.join().map_err(|_| format!("server {id}'s thread panicked"))
    }

    fn settings(&self, id: u64) -> ServerSettings {
        ServerSettings {
            group: self.group,
            peers: Vec::new(),
            id: Some(id),
            timing: Timing::default(),
            catalog: Catalog::default(),
            data_dir: None,
            min_replicas: 1,
            hooks: Default::default(),
            keys: None,
            metrics: None,
        }
    }

    /// Runs one demo command given its word and arguments.
    fn command(&mut self, word: &str, args: &[&str]) -> Result<String, String> {
        let id = match args {
            [id] => id.parse::<u64>().map_err(|_| format!("'{word}' takes a server ID, a number, e.g. {word} 300"))?,
            _ => return Err(format!("'{word}' takes one server ID, e.g. {word} 300")),
        };
        let timeout = Timing::default().heartbeat_timeout.as_millis();
        match word {
            "kill" => self.stop(id, Stop::Kill).map(|()| {
                format!(
                    "Killed server {id}: it sent nothing; the others notice when its heartbeats fail ({timeout} ms)"
                )
            }),
            "stop" => {
                self.stop(id, Stop::Stop).map(|()| format!("Stopped server {id}: it told the group that it leaves"))
            }
            _ => self.start(id).map(|()| format!("Started server {id}: it catches up from the group")),
        }
    }
}

impl LocalCommands for Demo {
    fn run(&mut self, line: &str) -> Option<Result<String, String>> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (word, args) = words.split_first()?;
        let word = ["kill", "stop", "start"].into_iter().find(|known| known.eq_ignore_ascii_case(word))?;
        Some(self.command(word, args))
    }

    fn help(&self) -> String {
        let mut text = String::from("Demo commands (the servers' lines, marked [server ID], show what follows):");
        let width = COMMANDS.iter().map(|(_, summary, _)| summary.len()).max().unwrap_or(0) + 2;
        for (form, summary, example) in COMMANDS {
            let _ = write!(text, "\n  {form:<10}{summary:<width$}e.g. {example}");
        }
        let _ = write!(text, "\nRunning now: {}", list(&self.running()));
        text
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.kill_all();
    }
}

fn list(ids: &[u64]) -> String {
    match ids {
        [] => "none".to_string(),
        ids => ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
    }
}
