//! When each server changed role around a failover, read from the log lines
//! the bench stamped as they arrived (see `src/node/election.rs` and
//! `src/node/mod.rs` for the lines).

use std::time::Instant;

use serde::Serialize;

use super::procs::{Line, leader_in};

/// A role a server took, or something it noticed, at a moment.
#[derive(Debug, Clone, Serialize)]
pub struct RoleEvent {
    /// The server.
    pub server: u64,
    /// Milliseconds after the leader was killed or stopped (negative: before).
    pub at_ms: f64,
    /// `leader`, `follower`, `candidate`, `detected` (a heartbeat to the
    /// leader failed), `down` (killed or stopped), `started` or `left`.
    pub what: String,
    /// The log line it was read from (empty for the bench's own events).
    pub line: String,
}

/// One failover, for the timeline chart and the JSON file.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    /// What it shows, e.g. `kill -9 at 10/50 ms`.
    pub title: String,
    /// Every role change, in time order.
    pub events: Vec<RoleEvent>,
    /// When the first write after the kill was confirmed, ms after the kill.
    pub first_write_ms: f64,
    /// When the restarted server confirmed its first write as leader, ms.
    pub newcomer_write_ms: Option<f64>,
}

/// Milliseconds from `zero` to `at` (negative when `at` is earlier).
pub fn ms_since(zero: Instant, at: Instant) -> f64 {
    match at.checked_duration_since(zero) {
        Some(d) => d.as_secs_f64() * 1e3,
        None => -(zero - at).as_secs_f64() * 1e3,
    }
}

/// What a log line of server `id` says about its role, if anything.
pub fn classify(id: u64, text: &str) -> Option<&'static str> {
    if let Some(leader) = leader_in(text) {
        return Some(if leader == id { "leader" } else { "follower" });
    }
    if text.contains("is running an election") || text.contains("stepping down") {
        return Some("candidate");
    }
    if text.contains("Heartbeat to group leader") && text.contains("failed") {
        return Some("detected");
    }
    if text.contains("leaving the group") {
        return Some("left");
    }
    None
}

/// The role events of server `id` in `lines`, relative to `zero`.
pub fn events_of(id: u64, lines: &[Line], zero: Instant) -> Vec<RoleEvent> {
    lines
        .iter()
        .filter_map(|l| {
            let what = classify(id, &l.text)?;
            Some(RoleEvent { server: id, at_ms: ms_since(zero, l.at), what: what.into(), line: l.text.clone() })
        })
        .collect()
}

/// A bench-made event (a signal, a start) of server `id`.
pub fn bench_event(id: u64, at_ms: f64, what: &str) -> RoleEvent {
    RoleEvent { server: id, at_ms, what: what.into(), line: String::new() }
}

/// How many times a server took a role other than the one it had, over
/// `events` in time order (the first role seen of each server counts as a
/// change only if `count_first`).
pub fn role_changes(events: &[RoleEvent], count_first: bool) -> usize {
    let mut current: Vec<(u64, &str)> = Vec::new();
    let mut changes = 0;
    for event in events.iter().filter(|e| matches!(e.what.as_str(), "leader" | "follower" | "candidate")) {
        match current.iter_mut().find(|(id, _)| *id == event.server) {
            Some((_, role)) if *role == event.what => {}
            Some((_, role)) => {
                *role = &event.what;
                changes += 1;
            }
            None => {
                current.push((event.server, &event.what));
                changes += usize::from(count_first);
            }
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_lines_name_their_roles() {
        let line = |text: &str| format!("[2026-01-01T00:00:00Z INFO  roomcast::node] {text}");
        assert_eq!(classify(3, &line("Election completed. Group Leader: 3")), Some("leader"));
        assert_eq!(classify(2, &line("Election completed. Group Leader: 3")), Some("follower"));
        assert_eq!(classify(2, &line("2 is running an election initiated by 0")), Some("candidate"));
        assert_eq!(classify(1, &line("Heartbeat to group leader 3 failed")), Some("detected"));
        assert_eq!(classify(1, &line("The server is ready to receive")), None);
    }

    #[test]
    fn a_repeated_role_is_no_change() {
        let event = |server, what: &str| bench_event(server, 0.0, what);
        let events = [
            event(1, "follower"),
            event(2, "leader"),
            event(2, "candidate"),
            event(2, "candidate"),
            event(1, "follower"),
            event(1, "detected"),
            event(2, "leader"),
        ];
        assert_eq!(role_changes(&events, false), 2);
        assert_eq!(role_changes(&events, true), 4);
    }

    #[test]
    fn times_before_the_zero_are_negative() {
        let zero = Instant::now();
        let later = zero + std::time::Duration::from_millis(5);
        assert!((ms_since(zero, later) - 5.0).abs() < 1e-9);
        assert!((ms_since(later, zero) + 5.0).abs() < 1e-9);
    }
}
