//! What clients saw, and a checker over all of it.
//!
//! Each write is one run of the real client with `--json`; [`History`]
//! records when it started and ended, what came back and from which server.
//! [`History::check`] then verifies, over the whole run:
//!
//! - every run ended, with an answer or a clear error, within the client's
//!   timeout (plus its linger and process start-up);
//! - a second reply to one request only ever came with the client's error
//!   (exit 3, `more than one server answered`);
//! - no slot was confirmed twice without a cancel that could have come in
//!   between (and no cancel confirmed twice without a reserve between): two
//!   confirmed reserves of one slot need a cancel whose run overlaps the span
//!   from the first's start to the second's end, confirmed or of unknown
//!   outcome. This is sound: in any legal order that cancel took effect
//!   between them, so its run overlapped that span. A run that two servers
//!   answered (the client's error) has an unknown outcome whatever its first
//!   answer said: a refusal may come from a server that only believed it led,
//!   while the leader whose history stands ran the write;
//! - the final table agrees with every slot whose last write is decided: when
//!   one confirmed write on a slot started after every other confirmed write
//!   there ended, and no write of unknown outcome of the opposite kind exists
//!   (it could take effect later), the slot ends in that write's state (a
//!   write two servers answered decides nothing);
//! - nothing is reserved at the end that no client tried to reserve.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::Lan;

/// A slot as the client names it: room, timeslot, day.
pub type SlotName = [String; 3];

/// A write a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Reserve,
    Cancel,
}

/// How one client run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Reserved or cancelled, as asked.
    Confirmed,
    /// Refused (already reserved, not reserved, too few replicas): no effect.
    Refused(String),
    /// No answer, or `Not confirmed`: it may or may not have taken effect.
    Unknown(String),
    /// The client broke its promise (no JSON output, or a second reply
    /// without its error): a violation, and the outcome is unknown too.
    Broken(String),
}

/// One client run.
#[derive(Debug, Clone)]
pub struct Op {
    pub host: usize,
    pub write: Write,
    pub slot: SlotName,
    pub started: Instant,
    pub ended: Instant,
    pub outcome: Outcome,
    /// The server that answered, if one did.
    pub answered_by: Option<u64>,
    /// The client printed `duplicate_reply`: a second server answered too.
    pub duplicate: bool,
    /// That second server, if the client named it.
    pub also_answered_by: Option<u64>,
    /// The client's ID, as its JSON gave it (for reading a violation beside
    /// the servers' logs).
    pub client: Option<u64>,
}

impl Op {
    /// Could this write have changed the table? A refusal is no proof when a
    /// second server answered too: the first answer can come from a server
    /// that only believed it led (its table behind), while the leader whose
    /// history stands ran the write.
    fn may_have_effect(&self) -> bool {
        self.duplicate || !matches!(self.outcome, Outcome::Refused(_))
    }

    /// Nobody knows whether, or when, this write took effect: no answer, or
    /// two servers' answers (the other one's side can be merged in later).
    fn outcome_unknown(&self) -> bool {
        self.duplicate || matches!(self.outcome, Outcome::Unknown(_) | Outcome::Broken(_))
    }
}

/// Counts for a scenario's summary line.
#[derive(Debug, Default)]
pub struct Summary {
    pub requests: usize,
    pub confirmed: usize,
    pub refused: usize,
    pub unknown: usize,
    pub duplicates: usize,
    /// Slots whose final state the history decides, and that were checked.
    pub decided_slots: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests: {} confirmed, {} refused, {} without a known outcome (no answer or not confirmed), \
             {} duplicate replies; final state checked on {} decided slots",
            self.requests, self.confirmed, self.refused, self.unknown, self.duplicates, self.decided_slots
        )
    }
}

/// Every client run of a scenario, from any thread.
pub struct History {
    ops: Mutex<Vec<Op>>,
    /// Options every client run gets (a key file, for a group with keys).
    client_args: Vec<String>,
    /// When the history began, on both clocks: a violation lists its slot's
    /// runs in UTC too, to set them beside the servers' log lines.
    origin: (Instant, SystemTime),
}

impl Default for History {
    fn default() -> History {
        History::with_client_args(&[])
    }
}

/// The client's `--timeout` in the scenarios, and the slack a run gets on top
/// of it (linger, process start-up on a loaded machine).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);
const RUN_SLACK: Duration = Duration::from_secs(3);
/// How long the client listens for a second reply after the first.
const LINGER: Duration = Duration::from_millis(200);

impl History {
    /// A history whose client runs all get `args` (e.g. `--key-file FILE`).
    pub fn with_client_args(args: &[String]) -> History {
        History { ops: Mutex::default(), client_args: args.to_vec(), origin: (Instant::now(), SystemTime::now()) }
    }

    /// Runs one write with the real client on `host` and records it.
    pub fn run(&self, lan: &Lan, host: usize, write: Write, slot: &SlotName) -> Op {
        let word = match write {
            Write::Reserve => "reserve",
            Write::Cancel => "cancel",
        };
        let timeout = CLIENT_TIMEOUT.as_millis().to_string();
        let started = Instant::now();
        let mut args: Vec<&str> = self.client_args.iter().map(String::as_str).collect();
        args.extend(["--json", "--timeout", &timeout, word, &slot[0], &slot[1], &slot[2]]);
        let out = lan.run_client(host, &args);
        let ended = Instant::now();
        let mut op = Op {
            host,
            write,
            slot: slot.clone(),
            started,
            ended,
            outcome: Outcome::Unknown(String::new()),
            answered_by: None,
            duplicate: false,
            also_answered_by: None,
            client: None,
        };
        let events: Vec<Value> = out.stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        for event in &events {
            op.client = op.client.or(event["client"].as_u64());
            match event["event"].as_str() {
                Some("answer") => {
                    op.answered_by = event["from"]["server"].as_u64();
                    op.outcome = outcome_of(&event["answer"], write);
                }
                Some("duplicate_reply") => {
                    op.duplicate = true;
                    op.also_answered_by = event["second"]["server"].as_u64();
                }
                Some("no_answer") => op.outcome = Outcome::Unknown("no answer".into()),
                _ => {}
            }
        }
        if events.is_empty() {
            op.outcome = Outcome::Broken(format!("no JSON output; {out}"));
        }
        if op.duplicate && !(out.code() == 3 && out.stderr.contains("more than one server answered")) {
            op.outcome = Outcome::Broken(format!("a duplicate reply without the client's error; {out}"));
        }
        self.record(op.clone());
        op
    }

    /// Adds a run to the history.
    pub fn record(&self, op: Op) {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).push(op);
    }

    /// How many writes were confirmed so far.
    pub fn confirmed(&self) -> usize {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).iter().filter(|o| o.outcome == Outcome::Confirmed).count()
    }

    /// Runs answered by `server` whose answer arrived in `[from, to)`. The
    /// answer time is taken as the run's end less the client's linger.
    pub fn answered_by_between(&self, server: u64, from: Instant, to: Instant) -> Vec<Op> {
        let ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        let answered_at = |o: &Op| o.ended.checked_sub(LINGER).unwrap_or(o.ended);
        ops.iter().filter(|o| o.answered_by == Some(server) && (from..to).contains(&answered_at(o))).cloned().collect()
    }

    /// Checks the whole history against the final reservations of the slots
    /// the clients used (as `check` listed them); the summary, or every violation.
    pub fn check(&self, final_reserved: &BTreeSet<SlotName>) -> Result<Summary, Vec<String>> {
        let ops = self.ops.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut violations = Vec::new();
        let mut summary = Summary { requests: ops.len(), ..Summary::default() };
        for op in &ops {
            match &op.outcome {
                Outcome::Confirmed => summary.confirmed += 1,
                Outcome::Refused(_) => summary.refused += 1,
                Outcome::Broken(_) => violations.push(format!("{op:?}")),
                Outcome::Unknown(_) => summary.unknown += 1,
            }
            summary.duplicates += usize::from(op.duplicate);
            let took = op.ended - op.started;
            if took > CLIENT_TIMEOUT + RUN_SLACK {
                violations.push(format!("a client run took {took:?}: {op:?}"));
            }
        }
        let mut by_slot: BTreeMap<&SlotName, Vec<&Op>> = BTreeMap::new();
        for op in &ops {
            by_slot.entry(&op.slot).or_default().push(op);
        }
        for (slot, slot_ops) in &by_slot {
            let mut found = check_alternation(slot, slot_ops);
            if let Some(last) = found.last_mut() {
                last.push('\n');
                last.push_str(&self.listing(slot, slot_ops));
            }
            violations.extend(found);
            if let Some(last) = decided_last(slot_ops) {
                summary.decided_slots += 1;
                let want = last.write == Write::Reserve;
                if final_reserved.contains(*slot) != want {
                    violations.push(format!(
                        "{} ends {} but its last write, confirmed, was {:?} (by host {})",
                        slot.join(" "),
                        if want { "free" } else { "reserved" },
                        last.write,
                        last.host
                    ));
                }
            }
        }
        for slot in final_reserved {
            let tried = by_slot.get(slot).is_some_and(|ops| ops.iter().any(|o| o.write == Write::Reserve));
            if !tried {
                violations.push(format!("{} is reserved but no client tried to reserve it", slot.join(" ")));
            }
        }
        if violations.is_empty() { Ok(summary) } else { Err(violations) }
    }
}

impl History {
    /// Every run on `slot`, by start, with times from the history's origin and
    /// in UTC (the servers' log format).
    fn listing(&self, slot: &SlotName, ops: &[&Op]) -> String {
        let mut ops = ops.to_vec();
        ops.sort_by_key(|o| o.started);
        let (origin, wall) = self.origin;
        let at = |t: Instant| {
            let since = t.saturating_duration_since(origin);
            let utc = (wall + since).duration_since(UNIX_EPOCH).unwrap_or_default();
            let (secs, ms) = (utc.as_secs() % 86_400, utc.subsec_millis());
            format!("{:.3}s ({:02}:{:02}:{:02}.{ms:03})", since.as_secs_f64(), secs / 3600, secs / 60 % 60, secs % 60)
        };
        let lines: Vec<String> = ops
            .iter()
            .map(|o| {
                format!(
                    "  host {} client {:?} {:?} from {} to {}: {:?}, answered by {:?}{}",
                    o.host,
                    o.client,
                    o.write,
                    at(o.started),
                    at(o.ended),
                    o.outcome,
                    o.answered_by,
                    match (o.duplicate, o.also_answered_by) {
                        (true, Some(second)) => format!(" and by {second} (duplicate reply)"),
                        (true, None) => " and by another server (duplicate reply)".to_string(),
                        (false, _) => String::new(),
                    }
                )
            })
            .collect();
        format!("every run on {}:\n{}", slot.join(" "), lines.join("\n"))
    }
}

fn outcome_of(answer: &Value, write: Write) -> Outcome {
    let wanted = match write {
        Write::Reserve => "Reserved",
        Write::Cancel => "Cancelled",
    };
    if answer["Write"].as_str() == Some(wanted) {
        return Outcome::Confirmed;
    }
    if !answer["Write"]["Refused"].is_null() || !answer["TooFewReplicas"].is_null() {
        return Outcome::Refused(answer.to_string());
    }
    Outcome::Unknown(format!("answer {answer}"))
}

/// Two confirmed writes of the same kind on one slot need an opposite write
/// that may have taken effect between them.
fn check_alternation(slot: &SlotName, ops: &[&Op]) -> Vec<String> {
    let mut violations = Vec::new();
    for kind in [Write::Reserve, Write::Cancel] {
        let mut confirmed: Vec<&&Op> =
            ops.iter().filter(|o| o.write == kind && o.outcome == Outcome::Confirmed).collect();
        confirmed.sort_by_key(|o| o.ended);
        for pair in confirmed.windows(2) {
            let (first, second) = (pair[0], pair[1]);
            // The two took effect in either order: the one that ended later
            // may have started first and been answered late (its reply lost,
            // then repeated from the leader's session). So the write between
            // them took effect after the earlier start and before the later
            // end. One of unknown outcome may take effect any time after it
            // started (its entry can commit after the client gave up).
            let earlier_start = first.started.min(second.started);
            let between = ops.iter().any(|o| {
                let could_follow_one = o.ended > earlier_start || o.outcome_unknown();
                o.write != kind && o.may_have_effect() && o.started < second.ended && could_follow_one
            });
            if !between {
                let span = |o: &Op| {
                    let (from, to) = (o.started - earlier_start, o.ended - earlier_start);
                    format!("host {} from {from:?} to {to:?}, answered by {:?}", o.host, o.answered_by)
                };
                violations.push(format!(
                    "{} was {:?} twice with nothing in between: {} and {}",
                    slot.join(" "),
                    kind,
                    span(first),
                    span(second)
                ));
            }
        }
    }
    violations
}

/// The slot's last write if the history decides it: a confirmed write that
/// started after every other confirmed write had ended, with no write of
/// unknown outcome of the opposite kind (which could take effect later; one of
/// the same kind would be refused then). A write two servers answered decides
/// nothing and counts as one of unknown outcome.
fn decided_last<'a>(ops: &[&'a Op]) -> Option<&'a Op> {
    let last = ops.iter().filter(|o| o.outcome == Outcome::Confirmed).max_by_key(|o| o.started)?;
    if last.duplicate {
        return None;
    }
    let decided = ops.iter().filter(|o| !std::ptr::eq(**o, *last)).all(|o| {
        if o.outcome_unknown() {
            o.write == last.write
        } else {
            // Confirmed, or refused (no effect).
            o.outcome != Outcome::Confirmed || o.ended < last.started
        }
    });
    decided.then_some(*last)
}

/// The checker itself must be able to fail: hand-made histories.
#[cfg(test)]
mod tests {
    use super::*;

    fn slot() -> SlotName {
        ["SA318", "8:30-9:30", "Monday"].map(String::from)
    }

    /// A run on host `host` from `start` to `end` ms after `t0`.
    fn op(t0: Instant, host: usize, write: Write, (start, end): (u64, u64), outcome: Outcome) -> Op {
        let at = |ms| t0 + Duration::from_millis(ms);
        Op {
            host,
            write,
            slot: slot(),
            started: at(start),
            ended: at(end),
            outcome,
            answered_by: Some(500),
            duplicate: false,
            also_answered_by: None,
            client: Some(host as u64 + 1),
        }
    }

    fn history(ops: Vec<Op>) -> History {
        let history = History::default();
        ops.into_iter().for_each(|op| history.record(op));
        history
    }

    fn reserved() -> BTreeSet<SlotName> {
        BTreeSet::from([slot()])
    }

    #[test]
    fn two_confirmed_reserves_with_nothing_between_are_a_double_booking() {
        let t0 = Instant::now();
        let h = history(vec![
            op(t0, 0, Write::Reserve, (0, 10), Outcome::Confirmed),
            op(t0, 1, Write::Reserve, (20, 30), Outcome::Confirmed),
        ]);
        let violations = h.check(&reserved()).expect_err("a double booking");
        assert!(violations[0].contains("Reserve twice"), "{violations:?}");
    }

    #[test]
    fn a_cancel_between_makes_two_reserves_legal_even_of_unknown_outcome() {
        let t0 = Instant::now();
        for cancel in [Outcome::Confirmed, Outcome::Unknown("no answer".into())] {
            let h = history(vec![
                op(t0, 0, Write::Reserve, (0, 10), Outcome::Confirmed),
                op(t0, 2, Write::Cancel, (12, 18), cancel),
                op(t0, 1, Write::Reserve, (20, 30), Outcome::Confirmed),
            ]);
            let summary = h.check(&reserved()).expect("legal");
            assert_eq!(summary.requests, 3);
        }
    }

    #[test]
    fn a_write_answered_late_may_have_taken_effect_before_the_other() {
        // Host 1's reserve took effect first, its reply was lost and repeated
        // after host 0's: host 2's cancel fits between them.
        let t0 = Instant::now();
        let answered_late = op(t0, 1, Write::Reserve, (0, 1500), Outcome::Confirmed);
        let answered_early = op(t0, 0, Write::Reserve, (40, 50), Outcome::Confirmed);
        let cancel = op(t0, 2, Write::Cancel, (20, 30), Outcome::Confirmed);
        let h = history(vec![answered_late.clone(), cancel, answered_early.clone()]);
        h.check(&reserved()).expect("legal: reserve, cancel, reserve");
        let without_cancel = history(vec![answered_late, answered_early]);
        let violations = without_cancel.check(&reserved()).expect_err("a double booking");
        assert!(violations[0].contains("Reserve twice"), "{violations:?}");
    }

    #[test]
    fn a_cancel_two_servers_answered_may_have_come_between_whatever_its_first_answer() {
        // Leader 500 confirms both reserves. The cancel between them was
        // answered first by 400, which still believed it led with a table
        // that lacked the first reserve ("not reserved"), and then by 500,
        // which ran it: the client exits with its error, and the history is
        // reserve, cancel, reserve on 500.
        let t0 = Instant::now();
        let mut cancel = op(t0, 2, Write::Cancel, (12, 230), Outcome::Refused("not reserved".into()));
        (cancel.answered_by, cancel.duplicate, cancel.also_answered_by) = (Some(400), true, Some(500));
        let first = op(t0, 0, Write::Reserve, (0, 10), Outcome::Confirmed);
        let second = op(t0, 1, Write::Reserve, (240, 250), Outcome::Confirmed);
        let h = history(vec![first.clone(), cancel.clone(), second.clone()]);
        let summary = h.check(&reserved()).expect("legal: reserve, cancel, reserve");
        assert_eq!((summary.duplicates, summary.decided_slots), (1, 0), "the cancel may take effect late");

        // Refused by the only server that answered, it had no effect: a double booking.
        let mut refused = cancel.clone();
        (refused.duplicate, refused.also_answered_by) = (false, None);
        let h = history(vec![first.clone(), refused, second.clone()]);
        let violations = h.check(&reserved()).expect_err("a double booking");
        assert!(violations[0].contains("Reserve twice"), "{violations:?}");
        assert!(violations[0].contains("every run on SA318 8:30-9:30 Monday"), "{violations:?}");

        // Two answers, but started after the second reserve had been answered:
        // it cannot come between them.
        let mut late = cancel;
        (late.started, late.ended) = (t0 + Duration::from_millis(260), t0 + Duration::from_millis(480));
        let h = history(vec![first, late, second]);
        let violations = h.check(&reserved()).expect_err("a double booking");
        assert!(violations[0].contains("Reserve twice"), "{violations:?}");
    }

    #[test]
    fn a_cancel_answered_late_from_the_leaders_session_comes_between() {
        // The cancel ran on 500 between the reserves; its reply was lost and
        // repeated from 500's at-most-once table when the client retried,
        // after the second reserve was answered.
        let t0 = Instant::now();
        let h = history(vec![
            op(t0, 0, Write::Reserve, (0, 10), Outcome::Confirmed),
            op(t0, 2, Write::Cancel, (12, 1600), Outcome::Confirmed),
            op(t0, 1, Write::Reserve, (30, 40), Outcome::Confirmed),
        ]);
        h.check(&reserved()).expect("legal: reserve, cancel, reserve");
        // A confirmed cancel that ended before either reserve started cannot.
        let h = history(vec![
            op(t0, 2, Write::Cancel, (0, 5), Outcome::Confirmed),
            op(t0, 0, Write::Reserve, (10, 20), Outcome::Confirmed),
            op(t0, 1, Write::Reserve, (30, 40), Outcome::Confirmed),
        ]);
        let violations = h.check(&reserved()).expect_err("a double booking");
        assert!(violations[0].contains("Reserve twice"), "{violations:?}");
    }

    #[test]
    fn a_confirmed_last_write_decides_the_final_state() {
        let t0 = Instant::now();
        let h = history(vec![
            op(t0, 0, Write::Reserve, (0, 10), Outcome::Confirmed),
            op(t0, 1, Write::Cancel, (20, 30), Outcome::Confirmed),
        ]);
        let violations = h.check(&reserved()).expect_err("cancelled, yet reserved at the end");
        assert!(violations[0].contains("ends reserved"), "{violations:?}");
        assert_eq!(h.check(&BTreeSet::new()).expect("free at the end").decided_slots, 1);
    }

    #[test]
    fn a_late_cancel_of_unknown_outcome_leaves_the_final_state_open() {
        let t0 = Instant::now();
        let h = history(vec![
            op(t0, 1, Write::Cancel, (0, 3000), Outcome::Unknown("no answer".into())),
            op(t0, 0, Write::Reserve, (3100, 3110), Outcome::Confirmed),
        ]);
        let summary = h.check(&BTreeSet::new()).expect("the cancel may have committed after the reserve");
        assert_eq!(summary.decided_slots, 0);
    }

    #[test]
    fn a_reservation_nobody_asked_for_is_reported() {
        let h = history(vec![]);
        let violations = h.check(&reserved()).expect_err("a phantom reservation");
        assert!(violations[0].contains("no client tried"), "{violations:?}");
    }
}
