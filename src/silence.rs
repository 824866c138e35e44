//! Notices a server that hears nothing at all from its group.
//!
//! In a working group something arrives on the group socket every heartbeat
//! interval: the leader's announcements, which loop back to the leader itself.
//! A server that hears nothing for several heartbeat timeouts, not even its own
//! datagrams, is cut off by something on its host or path (a firewall, a
//! missing multicast route, the wrong interface), and says so by name instead
//! of quietly leading a group of one. Sans-IO like the node: the driver reports
//! arrivals and asks with `now`.

use std::time::{Duration, Instant};

/// How many heartbeat timeouts of silence make a warning.
const SILENT_TIMEOUTS: u32 = 3;

/// Tracks the last datagram heard from the group (multicast or peers).
#[derive(Debug)]
pub struct GroupSilence {
    limit: Duration,
    last_heard: Instant,
    warned: bool,
}

/// What the driver should log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilenceNews {
    /// Nothing was heard for this long: warn, once per silence.
    Silent(Duration),
    /// Datagrams arrive again after a warned silence of this long.
    HeardAgain(Duration),
}

impl GroupSilence {
    /// Starts watching at `now`, warning after three heartbeat timeouts.
    pub fn new(now: Instant, heartbeat_timeout: Duration) -> GroupSilence {
        GroupSilence { limit: heartbeat_timeout * SILENT_TIMEOUTS, last_heard: now, warned: false }
    }

    /// A datagram arrived from the group at `now`.
    pub fn heard(&mut self, now: Instant) -> Option<SilenceNews> {
        let silent_for = now.saturating_duration_since(self.last_heard);
        self.last_heard = now;
        std::mem::take(&mut self.warned).then_some(SilenceNews::HeardAgain(silent_for))
    }

    /// Whether the silence just became long enough to warn about.
    pub fn check(&mut self, now: Instant) -> Option<SilenceNews> {
        let silent_for = now.saturating_duration_since(self.last_heard);
        if self.warned || silent_for < self.limit {
            return None;
        }
        self.warned = true;
        Some(SilenceNews::Silent(silent_for))
    }

    /// When [`GroupSilence::check`] may next have news; `None` once warned.
    pub fn next_wake(&self) -> Option<Instant> {
        (!self.warned).then_some(self.last_heard + self.limit)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // simulated time starts at a real instant
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_millis(1000);

    #[test]
    fn warns_once_after_three_timeouts_of_silence_and_says_when_it_hears_again() {
        let t0 = Instant::now();
        let mut watch = GroupSilence::new(t0, TIMEOUT);
        assert_eq!(watch.next_wake(), Some(t0 + 3 * TIMEOUT));
        assert_eq!(watch.check(t0 + 3 * TIMEOUT - Duration::from_millis(1)), None);
        assert_eq!(watch.check(t0 + 3 * TIMEOUT), Some(SilenceNews::Silent(3 * TIMEOUT)));
        assert_eq!(watch.check(t0 + 10 * TIMEOUT), None, "once per silence");
        assert_eq!(watch.next_wake(), None);
        assert_eq!(watch.heard(t0 + 4 * TIMEOUT), Some(SilenceNews::HeardAgain(4 * TIMEOUT)));
        assert_eq!(watch.heard(t0 + 5 * TIMEOUT), None, "news only after a warning");
        assert_eq!(watch.check(t0 + 8 * TIMEOUT), Some(SilenceNews::Silent(3 * TIMEOUT)), "a second silence");
    }

    #[test]
    fn regular_datagrams_keep_it_quiet() {
        let t0 = Instant::now();
        let mut watch = GroupSilence::new(t0, TIMEOUT);
        for step in 1..100 {
            let now = t0 + step * TIMEOUT / 5;
            assert_eq!(watch.heard(now), None);
            assert_eq!(watch.check(now), None);
        }
    }
}
