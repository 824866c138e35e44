//! Role-change hooks (`--on-leader CMD`, `--on-follower CMD`), like
//! keepalived's notify scripts: a command run through `sh -c` each time the
//! server becomes leader, or becomes a follower after leading or at start-up.
//! Hooks run on a thread of their own, one at a time and in order, so a slow
//! hook never holds up the protocol; a failing one is logged and forgotten.
//!
//! The command sees `ROOMCAST_ROLE` (`leader` or `follower`),
//! `ROOMCAST_LEADER` (the leader's ID), `ROOMCAST_TERM` and `ROOMCAST_ID`.

// Hooks run on a thread of their own (clippy.toml keeps these out of the core).
#![allow(clippy::disallowed_methods)]

use std::process::Command;
use std::sync::mpsc::{self, Sender};
use std::thread;

use log::{info, warn};

/// The commands to run on role changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookCommands {
    /// Run when this server becomes the leader.
    pub on_leader: Option<String>,
    /// Run when this server becomes a follower.
    pub on_follower: Option<String>,
}

/// A role change to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleChange {
    /// True for leader, false for follower.
    pub leading: bool,
    /// The leader's ID.
    pub leader: u64,
    /// The term of that leadership.
    pub term: u64,
}

/// Runs the hooks on their own thread; dropping it lets the thread finish
/// the hooks already queued.
pub struct Hooks {
    queue: Option<Sender<RoleChange>>,
    last: Option<bool>,
}

impl Hooks {
    /// Starts the hook thread if any hook is set.
    pub fn start(commands: HookCommands, server_id: u64) -> std::io::Result<Hooks> {
        if commands.on_leader.is_none() && commands.on_follower.is_none() {
            return Ok(Hooks { queue: None, last: None });
        }
        let (queue, changes) = mpsc::channel::<RoleChange>();
        thread::Builder::new().name("hooks".into()).spawn(move || {
            crate::logging::tag_thread(server_id);
            for change in changes {
                run(&commands, change, server_id);
            }
        })?;
        Ok(Hooks { queue: Some(queue), last: None })
    }

    /// Reports the server's role; queues a hook if the role really changed
    /// (a new leader while we follow is not a change of role).
    pub fn role(&mut self, change: RoleChange) {
        if self.last == Some(change.leading) {
            return;
        }
        self.last = Some(change.leading);
        if let Some(queue) = &self.queue {
            // The thread only stops when the queue is dropped.
            let _ = queue.send(change);
        }
    }
}

fn run(commands: &HookCommands, change: RoleChange, server_id: u64) {
    let (role, command) = match change.leading {
        true => ("leader", &commands.on_leader),
        false => ("follower", &commands.on_follower),
    };
    let Some(command) = command else { return };
    let status = Command::new("sh")
        .args(["-c", command])
        .env("ROOMCAST_ROLE", role)
        .env("ROOMCAST_LEADER", change.leader.to_string())
        .env("ROOMCAST_TERM", change.term.to_string())
        .env("ROOMCAST_ID", server_id.to_string())
        .status();
    match status {
        Ok(status) if status.success() => info!("--on-{role} hook ran"),
        Ok(status) => warn!("--on-{role} hook `{command}` failed ({status}); carrying on"),
        Err(e) => warn!("--on-{role} hook `{command}` could not run: {e}; carrying on"),
    }
}
