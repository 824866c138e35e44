//! Rate limits for what a flood of bad datagrams could otherwise multiply:
//! log lines and key notices.

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

/// How many senders a limiter remembers; beyond it, those not heard within
/// the period are forgotten (and a flood from more still gets no more than
/// the global budget).
const MAX_SENDERS: usize = 1024;

/// At most one event per sender per period, and at most `budget` in all per period.
#[derive(Debug)]
pub(crate) struct PerSender {
    period: Duration,
    budget: u32,
    last: BTreeMap<SocketAddrV4, Instant>,
    window: Option<(Instant, u32)>,
}

impl PerSender {
    pub(crate) fn new(period: Duration, budget: u32) -> Self {
        PerSender { period, budget, last: BTreeMap::new(), window: None }
    }

    /// True if an event for `sender` may happen now (and counts it).
    pub(crate) fn allow(&mut self, sender: SocketAddrV4, now: Instant) -> bool {
        if self.last.get(&sender).is_some_and(|at| now < *at + self.period) {
            return false;
        }
        let (start, used) = match self.window {
            Some((start, used)) if now < start + self.period => (start, used),
            _ => (now, 0),
        };
        if used >= self.budget {
            return false;
        }
        self.window = Some((start, used + 1));
        if self.last.len() >= MAX_SENDERS {
            let period = self.period;
            self.last.retain(|_, at| now < *at + period);
        }
        if self.last.len() < MAX_SENDERS {
            self.last.insert(sender, now);
        }
        true
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // simulated time starts at a real instant
mod tests {
    use super::*;

    #[test]
    fn one_per_sender_per_period_and_a_budget_for_all() {
        let now = Instant::now();
        let addr = |port| SocketAddrV4::new([10, 0, 0, 1].into(), port);
        let mut limit = PerSender::new(Duration::from_secs(10), 3);
        let cases = [(1, 0, true), (1, 1, false), (2, 1, true), (3, 2, true), (4, 3, false), (1, 10, true)];
        for (i, (port, second, want)) in cases.into_iter().enumerate() {
            let got = limit.allow(addr(port), now + Duration::from_secs(second));
            assert_eq!(got, want, "#{i}: sender {port} at {second} s: got {got}, want {want}");
        }
    }
}
