//! Replay protection (docs/security.md, "Replay"): every sealed datagram
//! carries its sender's boot nonce (random per process start), a counter
//! that only grows, and the sender's clock (milliseconds since that boot
//! started). A receiver keeps, per sender boot, a sliding window of the
//! counters it accepted (RFC 6479, as WireGuard and IPsec do), so loss and
//! reordering within [`WINDOW`] pass and a second copy never does.
//!
//! The window alone would let a datagram that a receiver missed arrive much
//! later. The sender's clock closes that, without any two clocks having to
//! agree: a receiver that challenged a boot at `t`, by its own clock, and got
//! a proof of life sealed when the boot's clock read `p`, knows that the
//! boot read `p` after `t`. A datagram sealed when the boot read `c` was
//! therefore sent after `t + (c - p)`, and at `now` it is at most
//! `now - t - (c - p)` old ([`Anchor::age_bound`]). A receiver refuses what
//! may be older than [`FRESHNESS`]. Only the clocks' rates must agree: the
//! bound adds [`MAX_DRIFT_PER_MILLE`] of the time since the challenge, so a
//! sender's clock that runs that much faster cannot make an old datagram look
//! young, however long its anchor lasts; each boot is challenged again every
//! [`REANCHOR`], so that margin stays small.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Counters a window remembers below the highest one accepted: reordering of
/// up to this many of one sender's datagrams is tolerated.
pub const WINDOW: u64 = 8192;

/// How old a datagram may be when a receiver takes it, by the bound of
/// [`Anchor::age_bound`].
pub const FRESHNESS: Duration = Duration::from_secs(2);

/// How long a receiver measures a boot's clock against one proof before it
/// challenges the boot again (the drift margin is 60 ms by then).
pub const REANCHOR: Duration = Duration::from_secs(60);

/// How much faster than the receiver's a sender's clock may run, per
/// thousand: quartz clocks differ by about 0.1, and NTP slews a clock by at
/// most 0.5 (ntpd; chrony only while it corrects a large offset, which
/// `makestep` does by a step instead).
pub const MAX_DRIFT_PER_MILLE: u32 = 1;

/// The oldest a datagram can be when a receiver takes it: [`FRESHNESS`],
/// plus the clock's millisecond resolution, while the clocks' rates differ
/// by less than [`MAX_DRIFT_PER_MILLE`]. Nothing older works late, and
/// nothing works twice.
pub const MAX_AGE: Duration = Duration::from_millis(FRESHNESS.as_millis() as u64 + 1);

const BLOCK_BITS: u64 = 64;
/// One block more than the window, so that advancing never clears a bit still inside it.
const BLOCKS: usize = (WINDOW / BLOCK_BITS) as usize + 1;

/// How often a sender notes where its counter stands (for [`SentCounter::sent_within_horizon`]).
const MARK_EVERY: Duration = Duration::from_millis(250);

/// Why a counter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// This counter was accepted before: a copy.
    Seen,
    /// Below the window.
    TooOld,
    /// Not taken before, but its sender's clock says it may be older than
    /// [`FRESHNESS`]: replayed or held up, or the receiver's [`Anchor`] is
    /// out of date (its proof came late), which a new challenge mends.
    Late,
}

/// What a proof of life tells about a sender boot's clock: it read `clock`
/// at some instant after the receiver's `challenged_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// When the receiver sent the challenge the proof answers, by its own clock.
    pub challenged_at: Instant,
    /// The clock in the proof's header.
    pub clock: u64,
}

impl Anchor {
    /// The most that a datagram its sender sealed at `clock` can be old at
    /// `now`. It was sealed `clock - self.clock` after the proof, which was
    /// sealed after the challenge, so after `challenged_at + clock - self.clock`;
    /// plus [`MAX_DRIFT_PER_MILLE`] of the time since the challenge, for a
    /// sender's clock that runs fast. The bound errs towards older by the time
    /// from the challenge to the proof's sealing (a challenge that reached the
    /// sender late makes fresh datagrams look old, never an old one young),
    /// and towards younger by less than the clocks' millisecond.
    pub fn age_bound(&self, clock: u64, now: Instant) -> Duration {
        let since_challenge = now.saturating_duration_since(self.challenged_at);
        let drift = since_challenge / 1000 * MAX_DRIFT_PER_MILLE;
        let by_clocks = match clock.checked_sub(self.clock) {
            Some(after_proof) => since_challenge.saturating_sub(Duration::from_millis(after_proof)),
            None => since_challenge.saturating_add(Duration::from_millis(self.clock - clock)),
        };
        by_clocks.saturating_add(drift)
    }
}

/// The counters accepted from one sender boot, and its clock's anchor.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// The highest counter accepted (0: none yet).
    highest: u64,
    /// Bit `c % (BLOCKS * 64)` is set when counter `c` (within the window) was accepted.
    bits: [u64; BLOCKS],
    /// The sender's clock, as its latest proof of life told it; without
    /// one, ages are not checked.
    anchor: Option<Anchor>,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow { highest: 0, bits: [0; BLOCKS], anchor: None }
    }
}

impl ReplayWindow {
    /// A window that checks ages against `anchor`.
    pub fn anchored(anchor: Anchor) -> Self {
        ReplayWindow { anchor: Some(anchor), ..ReplayWindow::default() }
    }

    /// Measures the sender's clock against a newer proof of life (replacing
    /// the old anchor, which drifts, rather than keeping the tighter one).
    pub fn reanchor(&mut self, anchor: Anchor) {
        self.anchor = Some(anchor);
    }

    /// When the challenge of the anchor's proof was sent.
    pub fn anchored_at(&self) -> Option<Instant> {
        self.anchor.map(|anchor| anchor.challenged_at)
    }

    /// Accepts `counter`, sealed at the sender's `clock`, if it is fresh, and remembers it.
    pub fn accept(&mut self, counter: u64, clock: u64, now: Instant) -> Result<(), Stale> {
        self.check(counter, clock, now)?;
        if counter > self.highest {
            self.advance(counter);
        }
        let (block, bit) = position(counter);
        self.bits[block] |= 1 << bit;
        Ok(())
    }

    /// Whether `counter`, sealed at the sender's `clock`, would be accepted now; changes nothing.
    pub fn check(&self, counter: u64, clock: u64, now: Instant) -> Result<(), Stale> {
        if counter == 0 || counter <= self.highest.saturating_sub(WINDOW) {
            return Err(Stale::TooOld);
        }
        let (block, bit) = position(counter);
        if counter <= self.highest && self.bits[block] & (1 << bit) != 0 {
            return Err(Stale::Seen);
        }
        match self.anchor {
            Some(anchor) if anchor.age_bound(clock, now) > FRESHNESS => Err(Stale::Late),
            _ => Ok(()),
        }
    }

    /// True if a datagram refused as `stale` may be held until its sender
    /// proves again rather than dropped: one that looks late but is newer
    /// than anything taken, as every fresh datagram looks when the anchor
    /// came from a challenge that reached its sender late.
    pub fn may_hold(&self, counter: u64, stale: Stale) -> bool {
        stale == Stale::Late && counter > self.highest
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
}

/// The block and bit of `counter` in the ring.
fn position(counter: u64) -> (usize, u64) {
    (((counter / BLOCK_BITS) % BLOCKS as u64) as usize, counter % BLOCK_BITS)
}

/// A sender's counter and clock.
#[derive(Debug, Clone, Default)]
pub struct SentCounter {
    /// The last counter used (0: none yet).
    last: u64,
    /// When the boot started: the clock's zero.
    started: Option<Instant>,
    /// The clock at the latest input, in milliseconds since `started`.
    clock: u64,
}

impl SentCounter {
    /// Notes the time of an input, before anything it causes is sealed: the
    /// clock that those datagrams carry (the first input starts the clock,
    /// which never goes back: a proof's clock must not be older than it was).
    pub fn note_time(&mut self, now: Instant) {
        let started = *self.started.get_or_insert(now);
        let clock = u64::try_from(now.saturating_duration_since(started).as_millis()).unwrap_or(u64::MAX);
        self.clock = self.clock.max(clock);
    }

    /// The clock for the next datagram: milliseconds since the boot started.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// The counter for the next datagram.
    pub fn take_next(&mut self) -> u64 {
        self.last += 1;
        self.last
    }

    /// The last counter used (0: none yet).
    pub fn last(&self) -> u64 {
        self.last
    }
}

/// Where a sender's counter stood over the last [`FRESHNESS`], one mark per
/// [`MARK_EVERY`]: what a client needs to tell whether a reply answers a
/// request it sent lately (servers need no such thing).
#[derive(Debug, Clone, Default)]
pub struct SentMarks {
    /// (when, last counter used then), oldest first.
    marks: VecDeque<(Instant, u64)>,
}

impl SentMarks {
    /// Notes, at an input at `now`, that `last` is the counter last used.
    pub fn note(&mut self, now: Instant, last: u64) {
        if self.marks.back().is_none_or(|(at, _)| now >= *at + MARK_EVERY) {
            self.marks.push_back((now, last));
        }
        while self.marks.front().is_some_and(|(at, _)| *at + FRESHNESS < now) && self.marks.len() > 1 {
            self.marks.pop_front();
        }
    }

    /// True if datagram `counter` was sent within the last [`FRESHNESS`]
    /// (to the precision of the marks, erring towards no), `last` being the
    /// counter last used.
    pub fn sent_within_horizon(&self, counter: u64, last: u64, now: Instant) -> bool {
        let horizon = now.checked_sub(FRESHNESS);
        let before_horizon =
            self.marks.iter().find(|(at, _)| horizon.is_none_or(|h| *at >= h)).map_or(last, |&(_, counter)| counter);
        before_horizon < counter && counter <= last
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
        let (mut sent, mut marks) = (SentCounter::default(), SentMarks::default());
        // Counters 1 and 2 at the start, 3 a second later, 4 at 1.9 s.
        for (at, count) in [(0, 2), (1000, 1), (1900, 1)] {
            marks.note(start + MS * at, sent.last());
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
            assert_eq!(marks.sent_within_horizon(counter, sent.last(), start + MS * at), want, "#{i}");
        }
    }

    #[test]
    fn the_window_takes_each_fresh_counter_once() {
        let now = Instant::now();
        // (counter, want) in the order they arrive.
        let cases: [(u64, Result<(), Stale>); 13] = [
            (0, Err(Stale::TooOld)), // counters start at 1
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
        let mut window = ReplayWindow::default();
        for (i, (counter, want)) in cases.into_iter().enumerate() {
            let got = window.accept(counter, 0, now);
            assert_eq!(got, want, "#{i}: counter {counter}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn an_anchor_bounds_the_age_of_what_its_sender_sealed_after_the_proof_and_before() {
        let challenged_at = Instant::now();
        // The proof was sealed at the sender's clock 10 s.
        let anchor = Anchor { challenged_at, clock: 10_000 };
        // (the datagram's clock, ms after the challenge, want µs: the clocks' bound, plus 1/1000 of the time since)
        let cases = [
            (10_000, 0, 0),
            (10_000, 300, 300_300), // the challenge's way to the sender counts as age: errs towards older
            (10_500, 300, 300),     // sealed after the proof: no older than now, but for the drift margin
            (10_500, 2_500, 2_002_500),
            (9_000, 0, 1_000_000), // sealed a second before the proof
            (9_000, 1_500, 2_501_500),
            (0, 0, 10_000_000),
            (u64::MAX, 1_000, 1_000),
            (70_000, 60_000, 60_000), // a minute on, the margin is 60 ms
        ];
        for (i, (clock, after, want)) in cases.into_iter().enumerate() {
            let got = anchor.age_bound(clock, challenged_at + MS * after);
            let want = Duration::from_micros(want);
            assert_eq!(got, want, "#{i}: clock {clock}, {after} ms after: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn an_anchored_window_refuses_what_its_senders_clock_says_is_older_than_freshness() {
        let start = Instant::now();
        let mut window = ReplayWindow::anchored(Anchor { challenged_at: start, clock: 5_000 });
        // (counter, the sender's clock, ms after the challenge, want)
        let cases = [
            (10, 5_000, 0, Ok(())),
            (11, 5_000, 1_998, Ok(())), // 1.998 s, and 2 ms for drift
            (12, 5_000, 1_999, Err(Stale::Late)),
            (9, 3_500, 400, Ok(())),           // missed, reordered: 1.9 s old at most
            (8, 3_500, 600, Err(Stale::Late)), // the same, 2.1 s
            (13, 9_010, 6_000, Ok(())),        // 1.99 s by the clocks, 6 ms for drift
            (13, 9_010, 6_000, Err(Stale::Seen)),
            (12, 5_000, 6_000, Err(Stale::Late)), // never taken, and never will be
        ];
        for (i, (counter, clock, after, want)) in cases.into_iter().enumerate() {
            let got = window.accept(counter, clock, start + MS * after);
            assert_eq!(got, want, "#{i}: counter {counter} at clock {clock}, {after} ms after: got {got:?}");
        }
        assert!(window.may_hold(14, Stale::Late) && !window.may_hold(13, Stale::Late));
        assert!(!window.may_hold(14, Stale::Seen), "only a late one");
        // A later proof replaces the anchor: what was late by the old one may pass by the new.
        window.reanchor(Anchor { challenged_at: start + MS * 6_000, clock: 8_900 });
        assert_eq!(window.anchored_at(), Some(start + MS * 6_000));
        assert_eq!(window.check(14, 8_000, start + MS * 6_000), Ok(()));
        assert_eq!(window.check(14, 6_000, start + MS * 6_000), Err(Stale::Late));
    }

    #[test]
    fn advancing_never_forgets_a_counter_inside_the_window() {
        let now = Instant::now();
        let mut window = ReplayWindow::default();
        let accepted: Vec<u64> = (1..3 * WINDOW).step_by(7).collect();
        for (i, &counter) in accepted.iter().enumerate() {
            window.accept(counter, 0, now).expect("fresh");
            let inside = counter.saturating_sub(WINDOW);
            let oldest = accepted[..=i].iter().find(|&&c| c > inside).copied().unwrap_or(counter);
            assert_eq!(window.check(oldest, 0, now), Err(Stale::Seen), "#{i}: {oldest} after {counter}");
            if counter > WINDOW {
                assert_eq!(window.check(inside + 2, 0, now).is_ok(), (inside + 2 - 1) % 7 != 0, "#{i}");
            }
        }
        // A jump past the whole window clears every block.
        window.accept(100 * WINDOW, 0, now).expect("fresh");
        assert_eq!(window.check(100 * WINDOW - 1, 0, now), Ok(()));
    }

    #[test]
    fn a_senders_clock_counts_milliseconds_from_its_first_input() {
        let start = Instant::now();
        let mut sent = SentCounter::default();
        sent.note_time(start);
        assert_eq!(sent.clock(), 0);
        sent.note_time(start + Duration::from_micros(1_999));
        assert_eq!(sent.clock(), 1, "whole milliseconds, rounded down");
        sent.note_time(start + Duration::from_secs(3600));
        assert_eq!(sent.clock(), 3_600_000);
    }
}
