//! Every deadline the node keeps, in one table. [`Node::poll_timeout`] is the
//! earliest one set; [`Node::handle_timeout`] runs each one due, in the
//! table's order, checking each again as it comes (an earlier one may have
//! moved it, say by changing the role).

use std::time::Instant;

use super::Node;

/// A deadline of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The next reply held back by `--service-delay` is due.
    ServiceDelay,
    /// Every heartbeat interval: a follower heartbeats and checks its
    /// leader's silence; a leader announces itself and drops silent members.
    Tick,
    /// An election round left open this long reports the leader we have.
    RoundClose,
    /// The candidate's phase ends: its answer window (patience is checked
    /// there), the wait for a higher server's `Coordinator`, or catch-up
    /// without progress.
    Candidacy,
    /// The next fetch of a catch-up may go.
    PullRetry,
    /// A server whose datagrams the guard holds has not proved it is live:
    /// challenge it again (the challenge or the proof may have been lost).
    Rechallenge,
}

// Two deadlines are checked on the leader's tick rather than kept here: the
// end of a new leader's collecting window (it coincides with the first tick,
// or a later one) and the expiry of an unanswered hand-over. Made deadlines of
// their own, they changed the schedule enough for a default-mode partition
// merge to lose two confirmed writes (simulation seed 262177, not yet
// understood): see the closing note of issue 12.

impl Timer {
    /// Every timer, in the order they run when due at once.
    pub(crate) const ALL: [Timer; 6] =
        [Timer::ServiceDelay, Timer::Tick, Timer::RoundClose, Timer::Candidacy, Timer::PullRetry, Timer::Rechallenge];
}

impl Node {
    /// When `timer` is due; `None` while it is not set.
    pub(crate) fn due(&self, timer: Timer) -> Option<Instant> {
        match timer {
            Timer::ServiceDelay => self.delayed.front().map(|(due, _)| *due),
            Timer::Tick => self.next_tick,
            Timer::RoundClose => self.round_deadline,
            Timer::Candidacy => self.candidacy_deadline(),
            Timer::PullRetry => self.catchup.as_ref().map(|c| c.retry_at),
            Timer::Rechallenge => self.guard.next_rechallenge(),
        }
    }

    /// Runs `timer`, which is due.
    fn fire(&mut self, now: Instant, timer: Timer) {
        match timer {
            Timer::ServiceDelay => self.flush_delayed(now),
            Timer::Tick => {
                self.next_tick = Some(now + self.config.timing.heartbeat_interval);
                self.on_tick(now);
            }
            Timer::RoundClose => {
                self.round_deadline = None;
                self.on_round_deadline();
            }
            Timer::Candidacy => self.on_candidacy_timer(now),
            Timer::PullRetry => self.on_catchup_timer(now),
            Timer::Rechallenge => self.guard.rechallenge(now),
        }
    }

    /// Runs every timer that is due at `now`.
    pub(super) fn run_due_timers(&mut self, now: Instant) {
        for timer in Timer::ALL {
            if self.due(timer).is_some_and(|due| due <= now) {
                self.fire(now, timer);
            }
        }
    }

    /// The earliest deadline set.
    pub(super) fn earliest_timer(&self) -> Option<Instant> {
        Timer::ALL.into_iter().filter_map(|timer| self.due(timer)).min()
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // simulated time starts at a real instant
mod tests {
    use std::net::SocketAddrV4;

    use super::*;
    use crate::auth::frame::Boot;
    use crate::node::{NodeConfig, Role, Timing};
    use crate::rooms::Catalog;

    fn lone_server(now: Instant) -> Node {
        let config = NodeConfig {
            id: 100,
            explicit_id: true,
            addr: SocketAddrV4::new([127, 0, 0, 1].into(), 5000),
            timing: Timing::default(),
            catalog: Catalog::default(),
            seed: 7,
            min_replicas: 1,
            keys: None,
            boot: Boot([1; 16]),
        };
        Node::new(config, now)
    }

    #[test]
    fn poll_timeout_is_the_earliest_timer_through_a_lone_election() {
        let timing = Timing::default();
        let start = Instant::now();
        let mut node = lone_server(start);
        node.start(start);
        assert_eq!(node.poll_timeout(), Some(start + timing.election_timeout), "the answer window");
        assert_eq!(node.due(Timer::Tick), None, "a candidate has no tick");

        let elected = start + timing.election_timeout;
        node.handle_timeout(elected);
        assert_eq!(node.role(), Role::Leader, "nobody else answered");
        // Alone with an empty log, it waits a whole heartbeat timeout for
        // members to report before it commits, checked on its ticks.
        assert_eq!(node.due(Timer::Candidacy), None);
        assert_eq!(node.poll_timeout(), Some(elected + timing.heartbeat_interval));

        // Wake as it asks (skipping ahead would look like a frozen process).
        let collected = elected + timing.heartbeat_timeout;
        let mut now = elected;
        while now < collected {
            now = node.poll_timeout().expect("a leader always has a timer");
            assert!(now <= collected, "no wake-up is skipped: {:?}", now - collected);
            node.handle_timeout(now);
        }
        assert_eq!(node.log().commit(), 1, "the genesis entry commits at the tick that ends the window");
        let next_tick = node.due(Timer::Tick).expect("a leader ticks");
        assert!(next_tick > collected, "no timer left in the past: {next_tick:?}");
        assert_eq!(node.poll_timeout(), Some(next_tick));
    }
}
