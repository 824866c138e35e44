//! Telling systemd (or another service manager that speaks its notify
//! protocol) how the server is doing: `READY=1` once the first election
//! completed, a `STATUS=` line on every role change, `WATCHDOG=1` while the
//! event loop runs, `STOPPING=1` on a clean stop. Without `$NOTIFY_SOCKET`
//! (not started by systemd with `Type=notify`) every call does nothing.

use std::time::{Duration, Instant};

use log::debug;
use sd_notify::NotifyState;

/// The server's link to its service manager.
#[derive(Debug)]
pub struct Notifier {
    /// How often to feed the watchdog, and when next.
    watchdog: Option<(Duration, Instant)>,
}

impl Notifier {
    /// Reads `$WATCHDOG_USEC`: the watchdog is fed at twice the rate it asks.
    pub fn from_env(now: Instant) -> Self {
        let watchdog = sd_notify::watchdog_enabled().map(|limit| (limit / 2, now));
        Notifier { watchdog }
    }

    /// The server serves: `READY=1`, with what it is doing.
    pub fn ready(&self, status: &str) {
        send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// A new one-line status (`systemctl status` shows it).
    pub fn status(&self, status: &str) {
        send(&[NotifyState::Status(status)]);
    }

    /// The server is stopping cleanly.
    pub fn stopping(&self) {
        send(&[NotifyState::Stopping, NotifyState::Status("leaving the group")]);
    }

    /// When the event loop must wake to feed the watchdog, if it must.
    pub fn next_wake(&self) -> Option<Instant> {
        self.watchdog.map(|(_, next)| next)
    }

    /// Feeds the watchdog if it is due: called from the event loop, so a loop
    /// that hangs stops feeding it and systemd restarts the server.
    pub fn tick(&mut self, now: Instant) {
        if let Some((every, next)) = &mut self.watchdog
            && now >= *next
        {
            send(&[NotifyState::Watchdog]);
            *next = now + *every;
        }
    }
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        debug!("could not notify the service manager: {e}");
    }
}
