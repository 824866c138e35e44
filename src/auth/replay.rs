//! Replay protection (docs/security.md, "Replay"): every sealed datagram
//! carries its sender's boot nonce (random per process start) and a counter
//! that only grows. A receiver keeps, per sender boot, a sliding window of
//! the counters it accepted (RFC 6479, as WireGuard and IPsec do), so loss
//! and reordering within [`WINDOW`] pass and a second copy never does.
//!
//! The window alone would let a datagram that a receiver missed arrive much
//! later. Two time rules close that, each on one process's own clock (no
//! clocks need to agree):
//! - a receiver refuses a counter at or below the highest it had accepted
//!   [`FRESHNESS`] ago: that datagram was sent before one that arrived long ago;
//! - a sender, asked to prove that its boot is live, says where its counter
//!   stood over the last [`FRESHNESS`] ([`SentCounter::history`]); the
//!   receiver refuses what came before that, and from then on refuses each
//!   counter once it is [`FRESHNESS`] old by that history. That is how a
//!   receiver that restarted, or has never heard a sender, tells an old
//!   datagram from a new one.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Counters a window remembers below the highest one accepted: reordering of
/// up to this many of one sender's datagrams is tolerated.
pub const WINDOW: u64 = 8192;

/// How old a datagram may be, on the receiver's or the sender's clock.
pub const FRESHNESS: Duration = Duration::from_secs(2);

/// A sender not heard for this long proves again that it is live before
/// anything more it sends is taken: from a process that died, an unseen
/// datagram could otherwise arrive at any later time.
pub const IDLE: Duration = Duration::from_secs(1);

const BLOCK_BITS: u64 = 64;
/// One block more than the window, so that advancing never clears a bit still inside it.
const BLOCKS: usize = (WINDOW / BLOCK_BITS) as usize + 1;

/// How often the window and the sender note where their counter stands.
const MARK_EVERY: Duration = Duration::from_millis(250);

/// The oldest a datagram can be when a receiver takes it: one that never
/// reached it before (lost, or sent before it restarted), sent just after
/// the last datagram that did, while the sender was heard within [`IDLE`];
/// it is refused once a later one is [`FRESHNESS`] old, to the precision of
/// the marks. Nothing older works twice, or late.
pub const MAX_AGE: Duration = Duration::from_millis(2000 + 1000 + 250);

/// Why a counter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// This counter was accepted before: a copy.
    Seen,
    /// Below the window, below the handshake's floor, or older than [`FRESHNESS`].
    TooOld,
}

/// The counters accepted from one sender boot.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// The highest counter accepted (0: none yet).
    highest: u64,
    /// Counters at or below this are refused: where the sender's proof of
    /// life said its fresh datagrams begin.
    floor: u64,
    /// Bit `c % (BLOCKS * 64)` is set when counter `c` (within the window) was accepted.
    bits: [u64; BLOCKS],
    /// (when, highest accepted then), one per [`MARK_EVERY`], oldest first.
    marks: VecDeque<(Instant, u64)>,
}

impl ReplayWindow {
    /// A window that refuses every counter at or below `floor`.
    pub fn new(floor: u64) -> Self {
        ReplayWindow { highest: floor, floor, bits: [0; BLOCKS], marks: VecDeque::new() }
    }

    /// A window opened by a proof of life at `now` that carried `history`
    /// (see [`ReplayWindow::vouch`]).
    pub fn vouched(history: &[(u32, u64)], now: Instant) -> Self {
        let mut window = ReplayWindow::new(0);
        window.vouch(history, now);
        window
    }

    /// Takes in a proof of life received at `now`: the sender's counter as it
    /// stood over the horizon, oldest first (milliseconds before the proof,
    /// counter). Everything up to the first counter is older than the
    /// horizon; each later counter becomes too old as its time passes, just
    /// as if this window had noted it itself.
    pub fn vouch(&mut self, history: &[(u32, u64)], now: Instant) {
        let Some(&(_, oldest)) = history.first() else { return };
        self.floor = self.floor.max(oldest);
        self.highest = self.highest.max(oldest);
        for &(ago, counter) in history {
            let at = now.checked_sub(Duration::from_millis(u64::from(ago))).unwrap_or(now);
            self.marks.push_back((at, counter));
        }
        self.marks.make_contiguous().sort_by_key(|(at, _)| *at);
        // A later mark never says less was sent than an earlier one.
        let mut most = 0;
        for (_, counter) in self.marks.iter_mut() {
            most = most.max(*counter);
            *counter = most;
        }
        prune(&mut self.marks, now);
    }

    /// Accepts `counter` if it is fresh, and remembers it.
    pub fn accept(&mut self, counter: u64, now: Instant) -> Result<(), Stale> {
        self.check(counter, now)?;
        if counter > self.highest {
            self.advance(counter);
        }
        let (block, bit) = position(counter);
        self.bits[block] |= 1 << bit;
        self.mark(now);
        Ok(())
    }

    /// Whether `counter` would be accepted now; changes nothing.
    pub fn check(&self, counter: u64, now: Instant) -> Result<(), Stale> {
        if counter <= self.lowest_refused(now) {
            return Err(Stale::TooOld);
        }
        if counter > self.highest {
            return Ok(());
        }
        let (block, bit) = position(counter);
        match self.bits[block] & (1 << bit) {
            0 => Ok(()),
            _ => Err(Stale::Seen),
        }
    }

    /// The highest counter refused outright at `now`.
    fn lowest_refused(&self, now: Instant) -> u64 {
        let by_window = self.highest.saturating_sub(WINDOW);
        let by_age = match now.checked_sub(FRESHNESS) {
            Some(horizon) => self.marks.iter().rev().find(|(at, _)| *at <= horizon).map_or(0, |m| m.1),
            None => 0,
        };
        self.floor.max(by_window).max(by_age)
    }

    /// Moves the window up to `counter`, clearing the blocks it passes.
    fn advance(&mut self, counter: u64) {
        let (old_block, _) = position(self.highest);
        let blocks = (counter / BLOCK_BITS - self.highest / BLOCK_BITS).min(BLOCKS as u64);
        for step in 1..=blocks as usize {
            self.bits[(old_block + step) % BLOCKS] = 0;
        }
        self.highest = counter;
    }

    fn mark(&mut self, now: Instant) {
        if self.marks.back().is_none_or(|(at, _)| now >= *at + MARK_EVERY) {
            self.marks.push_back((now, self.highest));
        }
        prune(&mut self.marks, now);
    }
}

/// The block and bit of `counter` in the ring.
fn position(counter: u64) -> (usize, u64) {
    (((counter / BLOCK_BITS) % BLOCKS as u64) as usize, counter % BLOCK_BITS)
}

/// Drops the marks older than the newest one at least [`FRESHNESS`] old,
/// which is the only old one still needed.
fn prune(marks: &mut VecDeque<(Instant, u64)>, now: Instant) {
    let Some(horizon) = now.checked_sub(FRESHNESS) else { return };
    while marks.len() > 1 && marks.get(1).is_some_and(|(at, _)| *at <= horizon) {
        marks.pop_front();
    }
}

/// A sender's counter, and where it stood over the last [`FRESHNESS`].
#[derive(Debug, Clone, Default)]
pub struct SentCounter {
    /// The last counter used (0: none yet).
    last: u64,
    /// (when, last counter used then), one per [`MARK_EVERY`], oldest first.
    marks: VecDeque<(Instant, u64)>,
}

impl SentCounter {
    /// Notes the time of an input, before anything it causes is sent.
    pub fn note_time(&mut self, now: Instant) {
        if self.marks.back().is_none_or(|(at, _)| now >= *at + MARK_EVERY) {
            self.marks.push_back((now, self.last));
        }
        while self.marks.front().is_some_and(|(at, _)| *at + FRESHNESS < now) && self.marks.len() > 1 {
            self.marks.pop_front();
        }
    }

    /// The counter for the next datagram.
    pub fn take_next(&mut self) -> u64 {
        self.last += 1;
        self.last
    }

    /// True if datagram `counter` was sent by this counter's owner within the
    /// last [`FRESHNESS`] (to the precision of the marks, erring towards no).
    pub fn sent_within_horizon(&self, counter: u64, now: Instant) -> bool {
        let before_horizon = self.history(now).first().map_or(self.last, |&(_, counter)| counter);
        before_horizon < counter && counter <= self.last
    }

    /// What a proof of life says: where the counter stood over the last
    /// [`FRESHNESS`], oldest first, as (milliseconds before `now`, counter).
    /// Every datagram above the first counter was sent within the horizon.
    pub fn history(&self, now: Instant) -> Vec<(u32, u64)> {
        let horizon = now.checked_sub(FRESHNESS);
        let recent: Vec<(u32, u64)> = self
            .marks
            .iter()
            .filter(|(at, _)| horizon.is_none_or(|h| *at >= h))
            .map(|&(at, counter)| (u32::try_from(now.duration_since(at).as_millis()).unwrap_or(u32::MAX), counter))
            .collect();
        match recent.is_empty() {
            true => vec![(0, self.last)],
            false => recent,
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // simulated time starts at a real instant
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_sender_knows_which_of_its_counters_it_sent_within_the_horizon() {
        let start = Instant::now();
        let mut sent = SentCounter::default();
        // Counters 1 and 2 at the start, 3 a second later, 4 at 1.9 s.
        for (at, count) in [(0, 2), (1000, 1), (1900, 1)] {
            sent.note_time(start + MS * at);
            for _ in 0..count {
                let _ = sent.take_next();
            }
        }
        // (counter, ms after the start, want)
        let cases = [
            (0, 1900, false), // never sent
            (1, 1900, true),
            (2, 1900, true),
            (5, 1900, false), // not sent yet
            (2, 2100, false), // sent 2.1 s before
            (3, 2100, true),
            (3, 3100, false),
            (4, 3100, true),
            (4, 4100, false), // no mark within the horizon: nothing counts as recent
        ];
        for (i, (counter, at, want)) in cases.into_iter().enumerate() {
            assert_eq!(sent.sent_within_horizon(counter, start + MS * at), want, "#{i}");
        }
    }

    #[test]
    fn the_window_takes_each_fresh_counter_once() {
        let now = Instant::now();
        // (counter, want) in the order they arrive.
        let cases: [(u64, Result<(), Stale>); 12] = [
            (5, Ok(())),
            (5, Err(Stale::Seen)),
            (3, Ok(())),
            (4, Ok(())),
            (3, Err(Stale::Seen)),
            (10_000, Ok(())),
            (9_999, Ok(())),
            (10_000 - WINDOW + 1, Ok(())),
            (10_000 - WINDOW, Err(Stale::TooOld)),
            (4, Err(Stale::TooOld)),
            (u64::MAX - 1, Ok(())),
            (u64::MAX - 1, Err(Stale::Seen)),
        ];
        let mut window = ReplayWindow::new(0);
        for (i, (counter, want)) in cases.into_iter().enumerate() {
            let got = window.accept(counter, now);
            assert_eq!(got, want, "#{i}: counter {counter}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn counters_at_or_below_the_floor_are_refused() {
        let now = Instant::now();
        let mut window = ReplayWindow::new(100);
        for (i, (counter, want)) in
            [(100, Err(Stale::TooOld)), (1, Err(Stale::TooOld)), (101, Ok(()))].into_iter().enumerate()
        {
            assert_eq!(window.accept(counter, now), want, "#{i}: counter {counter}");
        }
    }

    #[test]
    fn a_missed_counter_is_refused_once_a_later_one_is_freshness_old() {
        let start = Instant::now();
        let mut window = ReplayWindow::new(0);
        window.accept(10, start).expect("fresh");
        // 9 was lost or delayed: within FRESHNESS it may still come ...
        assert_eq!(window.check(9, start + FRESHNESS - MS), Ok(()));
        // ... but once 10 arrived FRESHNESS ago, 9 was sent earlier than that.
        window.accept(11, start + FRESHNESS).expect("fresh");
        assert_eq!(window.check(9, start + FRESHNESS), Err(Stale::TooOld));
        // Anything newer than what had arrived then is still fine.
        assert_eq!(window.check(12, start + FRESHNESS * 10), Ok(()));
    }

    #[test]
    fn advancing_never_forgets_a_counter_inside_the_window() {
        let now = Instant::now();
        let mut window = ReplayWindow::new(0);
        let accepted: Vec<u64> = (1..3 * WINDOW).step_by(7).collect();
        for (i, &counter) in accepted.iter().enumerate() {
            window.accept(counter, now).expect("fresh");
            let inside = counter.saturating_sub(WINDOW);
            let oldest = accepted[..=i].iter().find(|&&c| c > inside).copied().unwrap_or(counter);
            assert_eq!(window.check(oldest, now), Err(Stale::Seen), "#{i}: {oldest} after {counter}");
            if counter > WINDOW {
                assert_eq!(window.check(inside + 2, now).is_ok(), (inside + 2 - 1) % 7 != 0, "#{i}");
            }
        }
        // A jump past the whole window clears every block.
        window.accept(100 * WINDOW, now).expect("fresh");
        assert_eq!(window.check(100 * WINDOW - 1, now), Ok(()));
    }

    #[test]
    fn a_sender_vouches_only_for_what_it_sent_within_freshness() {
        let start = Instant::now();
        let mut sent = SentCounter::default();
        sent.note_time(start);
        assert_eq!(sent.history(start), [(0, 0)], "everything this boot sent is fresh");
        for second in 1..=5u32 {
            let now = start + Duration::from_secs(u64::from(second));
            sent.note_time(now);
            for _ in 0..100 {
                sent.take_next();
            }
        }
        // At 5 s the counter is 500; 100 were sent in each second since start.
        let now = start + Duration::from_secs(5);
        assert_eq!(sent.history(now), [(2000, 200), (1000, 300), (0, 400)], "as it stood at 3, 4 and 5 s");
    }

    #[test]
    fn a_vouched_window_refuses_each_counter_once_it_is_freshness_old_by_its_senders_history() {
        let now = Instant::now();
        // The sender says: 200 counters 2 s ago, 300 one second ago, 400 now.
        let window = ReplayWindow::vouched(&[(2000, 200), (1000, 300), (0, 400)], now);
        let cases = [
            (200, MS, Err(Stale::TooOld)),
            (250, MS, Ok(())),
            (250, Duration::from_millis(1001), Err(Stale::TooOld)),
            (350, Duration::from_millis(1001), Ok(())),
            (350, FRESHNESS + MS, Err(Stale::TooOld)),
            (401, FRESHNESS * 5, Ok(())),
        ];
        for (i, (counter, later, want)) in cases.into_iter().enumerate() {
            assert_eq!(window.check(counter, now + later), want, "#{i}: counter {counter}, {later:?} after the proof");
        }
    }
}
