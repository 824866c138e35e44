//! Turning an answer into the text the user sees, in the assignment's format:
//! `(From servers): ` or `(From cache): ` and the answer, whose further lines
//! follow on lines of their own.

use std::fmt;

use super::Source;
use crate::wire::{Answer, Command, WriteOutcome};

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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Refusal, RoomVersion, Slot};

    fn slot(timeslot: &str, day: &str) -> Slot {
        Slot { room: "ME4326".into(), timeslot: timeslot.into(), day: day.into() }
    }

    fn reservations(slots: Vec<Slot>) -> Answer {
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
    fn the_source_prefixes_the_first_line() {
        let answer = Answer::Timeslots(vec!["8:30-9:30".into(), "9:30-10:30".into()]);
        assert_eq!(answer_text(Source::Servers, &Command::Timeslots, &answer), "(From servers): 8:30-9:30\n9:30-10:30");
        assert_eq!(answer_text(Source::Cache, &Command::Timeslots, &answer), "(From cache): 8:30-9:30\n9:30-10:30");
    }
}
