//! Turning an answer into the text the user sees, in the assignment's format:
//! `(From servers): ` or `(From cache): ` and the answer, whose further lines
//! follow on lines of their own.

use std::fmt;

use super::{Responder, Source};
use crate::wire::{Answer, Command, Rejected, ServerStatus, WriteOutcome};

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Servers => "From servers",
            Source::Cache => "From cache",
        })
    }
}

/// The answer's lines with where they came from, without a final newline.
pub fn answer_text(source: Source, command: &Command, answer: &Answer) -> String {
    format!("({source}): {}", render(command, answer))
}

/// The answer's lines, without a final newline. The command decides whether a
/// refused write reads as a refused reservation or a refused cancellation.
pub fn render(command: &Command, answer: &Answer) -> String {
    match answer {
        Answer::Rooms(names) | Answer::Timeslots(names) | Answer::Days(names) => names.join("\n"),
        Answer::Reservations { slots, .. } if slots.is_empty() => "No room reservation found".to_string(),
        Answer::Reservations { slots, .. } => slots.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"),
        Answer::NotModified => "No change since the cached reservations".to_string(),
        Answer::UnknownRoom(room) => {
            format!("Unknown room '{room}' (the command 'rooms' lists them)")
        }
        Answer::Write(WriteOutcome::Reserved) => "Reservation confirmed".to_string(),
        Answer::Write(WriteOutcome::Cancelled) => "Reservation cancelled".to_string(),
        Answer::Write(WriteOutcome::Refused(why)) if matches!(command, Command::Cancel(_)) => {
            format!("Cancellation refused: {why}")
        }
        Answer::Write(WriteOutcome::Refused(why)) => format!("Reservation refused: {why}"),
        Answer::Bye => "bye".to_string(),
        Answer::TooFewReplicas { reachable, required } => format!(
            "Not done: the leader reaches {reachable} of the {required} servers that must hold each change \
             (--min-replicas); try again when more servers are up"
        ),
        Answer::Unconfirmed { reachable, required } => format!(
            "Not confirmed: the leader lost contact with servers while this change waited; it reaches \
             {reachable} of the {required} that must hold each change (--min-replicas). The change may \
             still take effect once they are back: run 'check' to see"
        ),
        Answer::Status(status) => status_table(&[(None, status)]),
    }
}

/// The answers to `status`: a summary line saying whether the servers agree,
/// then a table, highest ID first; without a final newline.
pub fn statuses(servers: &[(Responder, ServerStatus)]) -> String {
    let mut rows: Vec<(Option<Responder>, &ServerStatus)> = servers.iter().map(|(r, s)| (Some(*r), s)).collect();
    rows.sort_by_key(|(r, _)| std::cmp::Reverse(r.map(|(id, _)| id)));
    let mut leaders: Vec<u64> = servers.iter().filter_map(|(_, s)| s.leader).collect();
    leaders.sort_unstable();
    leaders.dedup();
    let same = servers.windows(2).all(|w| (w[0].1.applied, w[0].1.digest) == (w[1].1.applied, w[1].1.digest));
    let leader = match leaders.as_slice() {
        [] => "no leader".to_string(),
        [one] => format!("leader {one}"),
        many => format!("SPLIT: leaders {many:?}"),
    };
    let tables = if same { "every table identical" } else { "tables differ (catching up, or a split)" };
    let mut text = format!("{} servers answered; {leader}; {tables}\n{}", servers.len(), status_table(&rows));
    text += &security_notes(&rows);
    // Every server holds the same record once they agree; show the fullest.
    if let Some((_, s)) = servers.iter().max_by_key(|(_, s)| s.conflicts_total).filter(|(_, s)| s.conflicts_total > 0) {
        text += &format!(
            "\nPARTITION CONFLICTS: {} writes dropped when a split group healed; latest first:",
            s.conflicts_total
        );
        for conflict in &s.conflicts {
            text += &format!("\n  {conflict}");
        }
    }
    text
}

/// Lines under the table about keys: servers without any, and what each refused.
fn security_notes(rows: &[(Option<Responder>, &ServerStatus)]) -> String {
    let id = |r: &Option<Responder>| r.map_or("-".to_string(), |(id, _)| id.to_string());
    let open: Vec<String> = rows.iter().filter(|(_, s)| s.auth.server_key.is_none()).map(|(r, _)| id(r)).collect();
    let mut text = String::new();
    if !open.is_empty() {
        text += &format!(
            "\nUNAUTHENTICATED: {} without keys: anyone on the network can take the group over (docs/security.md)",
            open.join(", ")
        );
    }
    for (responder, s) in rows.iter().filter(|(_, s)| s.auth.rejected.total() > 0) {
        text += &format!("\nREJECTED by {}: {}", id(responder), rejected_text(&s.auth.rejected));
    }
    text
}

/// The non-zero counts of refused datagrams, e.g. `3 bad key or MAC, 1 replayed`.
pub fn rejected_text(r: &Rejected) -> String {
    let counts = [
        (r.unauthenticated, "without a key"),
        (r.unknown_key, "with an unknown key"),
        (r.bad_mac, "bad key or MAC"),
        (r.replay, "replayed or stale"),
        (r.duplicate, "duplicate"),
        (r.malformed, "malformed"),
        (r.unexpected_key, "sealed, to a server without keys"),
    ];
    let parts: Vec<String> = counts.iter().filter(|(n, _)| *n > 0).map(|(n, what)| format!("{n} {what}")).collect();
    parts.join(", ")
}

fn status_table(rows: &[(Option<Responder>, &ServerStatus)]) -> String {
    let header = [
        "ID", "ADDRESS", "ROLE", "LEADER", "TERM", "APPLIED", "COMMIT", "LAST", "RESERVED", "DIGEST", "HEARD",
        "TIMINGS", "KEY", "REJECTED",
    ];
    let mut lines = vec![header.map(String::from).to_vec()];
    for (responder, s) in rows {
        let (id, address) = match responder {
            Some((id, address)) => (id.to_string(), address.to_string()),
            None => ("-".into(), "-".into()),
        };
        lines.push(vec![
            id,
            address,
            s.role.to_string(),
            s.leader.map_or("-".into(), |l| l.to_string()),
            s.term.to_string(),
            s.applied.to_string(),
            s.commit.to_string(),
            s.last.to_string(),
            s.reservations.to_string(),
            format!("{:08x}", s.digest),
            s.leader_heard_ms.map_or("-".into(), |ms| format!("{ms} ms ago")),
            format!("{}/{} ms, min {}", s.heartbeat_interval_ms, s.heartbeat_timeout_ms, s.min_replicas),
            s.auth.server_key.clone().unwrap_or_else(|| "NONE".into()),
            s.auth.rejected.total().to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..header.len()).map(|c| lines.iter().map(|l| l[c].len()).max().unwrap_or(0)).collect();
    let format_line = |line: &Vec<String>| {
        let cells: Vec<String> = line.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        cells.join("  ").trim_end().to_string()
    };
    lines.iter().map(format_line).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Refusal, Reservation, RoomVersion, Slot};

    fn slot(timeslot: &str, day: &str) -> Slot {
        Slot { room: "ME4326".into(), timeslot: timeslot.into(), day: day.into() }
    }

    fn reservations(slots: Vec<Slot>) -> Answer {
        let slots = slots.into_iter().map(|slot| Reservation { slot, owner: None }).collect();
        Answer::Reservations { slots, version: RoomVersion { epoch: 1, seq: 2 } }
    }

    #[test]
    fn renderings() {
        let check = Command::Check { room: "ME4326".into(), cached: None };
        let reserve = Command::Reserve(slot("8:30-9:30", "Friday"));
        let cancel = Command::Cancel(slot("8:30-9:30", "Friday"));
        let refused = |r: Refusal| Answer::Write(WriteOutcome::Refused(r));
        let table = [
            (&Command::Rooms, Answer::Rooms(vec!["SA318".into(), "ME4494".into()]), "SA318\nME4494"),
            (&Command::Days, Answer::Days(vec!["Monday".into()]), "Monday"),
            (&check, reservations(vec![]), "No room reservation found"),
            (
                &check,
                reservations(vec![slot("8:30-9:30", "Friday"), slot("9:30-10:30", "Friday")]),
                "ME4326 8:30-9:30 Friday\nME4326 9:30-10:30 Friday",
            ),
            (&check, Answer::UnknownRoom("XX1".into()), "Unknown room 'XX1' (the command 'rooms' lists them)"),
            (&reserve, Answer::Write(WriteOutcome::Reserved), "Reservation confirmed"),
            (&cancel, Answer::Write(WriteOutcome::Cancelled), "Reservation cancelled"),
            (
                &reserve,
                refused(Refusal::AlreadyReserved(slot("8:30-9:30", "Friday"))),
                "Reservation refused: ME4326 8:30-9:30 Friday is already reserved",
            ),
            (
                &cancel,
                refused(Refusal::UnknownDay("Sunday".into())),
                "Cancellation refused: unknown day 'Sunday' (the command 'days' lists them)",
            ),
            (&Command::Quit, Answer::Bye, "bye"),
            (
                &reserve,
                Answer::Unconfirmed { reachable: 2, required: 3 },
                "Not confirmed: the leader lost contact with servers while this change waited; it reaches 2 of \
                 the 3 that must hold each change (--min-replicas). The change may still take effect once they \
                 are back: run 'check' to see",
            ),
        ];
        for (i, (command, answer, want)) in table.into_iter().enumerate() {
            assert_eq!(render(command, &answer), want, "#{i}");
        }
    }

    #[test]
    fn status_lists_servers_highest_first_and_says_whether_they_agree() {
        use crate::wire::{ServerStatus, StatusRole};
        let addr = |port| std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port);
        let status = |role, applied, heard| ServerStatus {
            role,
            leader: Some(300),
            term: 2,
            applied,
            commit: applied,
            last: applied,
            reservations: 1,
            digest: 0xab,
            leader_heard_ms: heard,
            heartbeat_interval_ms: 200,
            heartbeat_timeout_ms: 1000,
            min_replicas: 1,
            conflicts_total: 0,
            conflicts: Vec::new(),
            auth: Default::default(),
        };
        let mut keyed = status(StatusRole::Leader, 2, None);
        keyed.auth.server_key = Some("a1b2c3d4".into());
        keyed.auth.rejected.bad_mac = 3;
        keyed.auth.rejected.replay = 1;
        let servers = vec![((100, addr(7100)), status(StatusRole::Follower, 2, Some(95))), ((300, addr(7300)), keyed)];
        let want = "2 servers answered; leader 300; every table identical\n\
                    ID   ADDRESS         ROLE      LEADER  TERM  APPLIED  COMMIT  LAST  RESERVED  DIGEST    HEARD      TIMINGS             KEY       REJECTED\n\
                    300  127.0.0.1:7300  leader    300     2     2        2       2     1         000000ab  -          200/1000 ms, min 1  a1b2c3d4  4\n\
                    100  127.0.0.1:7100  follower  300     2     2        2       2     1         000000ab  95 ms ago  200/1000 ms, min 1  NONE      0\n\
                    UNAUTHENTICATED: 100 without keys: anyone on the network can take the group over (docs/security.md)\n\
                    REJECTED by 300: 3 bad key or MAC, 1 replayed or stale";
        assert_eq!(statuses(&servers), want);
        let lagging = vec![servers[0].clone(), ((200, addr(7200)), status(StatusRole::Syncing, 1, Some(5)))];
        assert!(statuses(&lagging).starts_with("2 servers answered; leader 300; tables differ"));
        let mut merged = status(StatusRole::Leader, 3, None);
        let slot = crate::wire::Slot { room: "SA318".into(), timeslot: "8:30-9:30".into(), day: "Monday".into() };
        merged.conflicts_total = 1;
        merged.conflicts = vec![crate::wire::Conflict { slot, reserve: true, client: 0xab, request: 4 }];
        let text = statuses(&[((300, addr(7300)), merged)]);
        assert!(
            text.ends_with(
                "PARTITION CONFLICTS: 1 writes dropped when a split group healed; latest first:\n  the reservation \
                 of SA318 8:30-9:30 Monday confirmed to client ab (request 4) on the other side of a partition was \
                 dropped: the slot was reserved on this side"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_source_prefixes_the_first_line() {
        let answer = Answer::Timeslots(vec!["8:30-9:30".into(), "9:30-10:30".into()]);
        assert_eq!(answer_text(Source::Servers, &Command::Timeslots, &answer), "(From servers): 8:30-9:30\n9:30-10:30");
        assert_eq!(answer_text(Source::Cache, &Command::Timeslots, &answer), "(From cache): 8:30-9:30\n9:30-10:30");
    }
}
