//! Parsing a line the user typed. The command word is matched without regard
//! to case; arguments are passed on as typed (servers match names
//! case-insensitively). Malformed lines never reach the network.

use std::fmt;

use crate::wire::{Command, Slot};

pub use crate::rooms::MAX_NAME_CHARS;

/// How much of an unknown command word an error message repeats, in characters.
const ECHO_CHARS: usize = 32;

/// What a typed line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// Nothing was typed.
    Empty,
    /// List the commands; answered locally.
    Help,
    /// End the session; answered locally (`bye`), at once.
    Quit,
    /// Send this command to the group.
    Send(Command),
}

/// Why a line is not a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageError {
    /// The first word is not a command.
    UnknownCommand(String),
    /// A command got the wrong number of arguments.
    WrongArguments {
        /// The command word.
        command: &'static str,
        /// The arguments it takes, e.g. `ROOM TIMESLOT DAY` (empty: none).
        needs: &'static str,
        /// A correct line.
        example: &'static str,
    },
    /// An argument is longer than any name can be ([`MAX_NAME_CHARS`]).
    TooLong {
        /// The command word.
        command: &'static str,
        /// Which argument, e.g. `ROOM`.
        argument: &'static str,
        /// The argument as typed.
        value: String,
    },
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::UnknownCommand(word) => {
                write!(f, "unknown command {}; 'help' lists the commands", quoted(word))
            }
            UsageError::WrongArguments { command, needs: "", example } => {
                write!(f, "'{command}' takes no arguments, e.g. {example}")
            }
            UsageError::WrongArguments { command, needs, example } => {
                let count = ["one word", "two words", "three words"];
                let words = count.get(needs.split(' ').count() - 1).copied().unwrap_or("more words");
                write!(f, "'{command}' takes {words} ({needs}), e.g. {example}")
            }
            UsageError::TooLong { command, argument, value } => write!(
                f,
                "'{command}': {argument} {} is too long; a name has at most {MAX_NAME_CHARS} characters",
                quoted(value)
            ),
        }
    }
}

impl std::error::Error for UsageError {}

/// `word` in quotes, cut after [`ECHO_CHARS`] characters with its length
/// said, so that a pasted page does not come back in full.
fn quoted(word: &str) -> String {
    let chars = word.chars().count();
    match word.char_indices().nth(ECHO_CHARS) {
        Some((cut, _)) => format!("'{}...' ({chars} characters)", &word[..cut]),
        None => format!("'{word}'"),
    }
}

/// One command's form, for parsing errors and `help`.
struct Spec {
    word: &'static str,
    needs: &'static str,
    example: &'static str,
    summary: &'static str,
}

const SPECS: [Spec; 9] = [
    Spec { word: "rooms", needs: "", example: "rooms", summary: "list the rooms" },
    Spec { word: "timeslots", needs: "", example: "timeslots", summary: "list the timeslots" },
    Spec { word: "days", needs: "", example: "days", summary: "list the days" },
    Spec { word: "check", needs: "ROOM", example: "check ME4326", summary: "list a room's reservations" },
    Spec {
        word: "reserve",
        needs: "ROOM TIMESLOT DAY",
        example: "reserve ME4326 8:30-9:30 Friday",
        summary: "reserve a room",
    },
    Spec {
        word: "cancel",
        needs: "ROOM TIMESLOT DAY",
        example: "cancel ME4326 8:30-9:30 Friday",
        summary: "cancel a reservation",
    },
    Spec { word: "status", needs: "", example: "status", summary: "show every server's role, log and timings" },
    Spec { word: "help", needs: "", example: "help", summary: "show this list" },
    Spec { word: "quit", needs: "", example: "quit", summary: "end the session" },
];

/// Parses one typed line.
pub fn parse(line: &str) -> Result<Line, UsageError> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((word, args)) = words.split_first() else {
        return Ok(Line::Empty);
    };
    let spec = SPECS
        .iter()
        .find(|spec| spec.word.eq_ignore_ascii_case(word))
        .ok_or_else(|| UsageError::UnknownCommand(word.to_string()))?;
    let wrong = || UsageError::WrongArguments { command: spec.word, needs: spec.needs, example: spec.example };
    let named: Vec<&str> = spec.needs.split_whitespace().collect();
    if args.len() != named.len() {
        return Err(wrong());
    }
    if let Some((argument, value)) = named.iter().zip(args).find(|(_, value)| value.chars().count() > MAX_NAME_CHARS) {
        return Err(UsageError::TooLong { command: spec.word, argument, value: value.to_string() });
    }
    build(spec.word, args).ok_or_else(wrong)
}

/// The line for a known command word, or `None` when the arguments do not fit.
fn build(word: &str, args: &[&str]) -> Option<Line> {
    let slot = |room: &str, timeslot: &str, day: &str| Slot {
        room: room.to_string(),
        timeslot: timeslot.to_string(),
        day: day.to_string(),
    };
    let command = match (word, args) {
        ("help", []) => return Some(Line::Help),
        ("quit", []) => return Some(Line::Quit),
        ("rooms", []) => Command::Rooms,
        ("timeslots", []) => Command::Timeslots,
        ("days", []) => Command::Days,
        ("check", [room]) => Command::Check { room: room.to_string(), cached: None },
        ("reserve", [room, timeslot, day]) => Command::Reserve(slot(room, timeslot, day)),
        ("cancel", [room, timeslot, day]) => Command::Cancel(slot(room, timeslot, day)),
        ("status", []) => Command::Status,
        _ => return None,
    };
    Some(Line::Send(command))
}

/// The text `help` prints: every command with what it does and an example.
pub fn help() -> String {
    let mut text = String::from("Commands (the command word may be in any case):");
    let form = |spec: &Spec| format!("{} {}", spec.word, spec.needs);
    // Columns as wide as their longest entry, plus a gap.
    let form_width = SPECS.iter().map(|spec| form(spec).len()).max().unwrap_or(0) + 2;
    let summary_width = SPECS.iter().map(|spec| spec.summary.len()).max().unwrap_or(0) + 2;
    for spec in &SPECS {
        text.push_str(&format!("\n  {:<form_width$}{:<summary_width$}e.g. {}", form(spec), spec.summary, spec.example));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot() -> Slot {
        Slot { room: "ME4326".into(), timeslot: "8:30-9:30".into(), day: "Friday".into() }
    }

    #[test]
    fn good_lines() {
        let check = |room: &str| Line::Send(Command::Check { room: room.into(), cached: None });
        let table = [
            ("", Line::Empty),
            ("   \t ", Line::Empty),
            ("rooms", Line::Send(Command::Rooms)),
            ("ROOMS", Line::Send(Command::Rooms)),
            ("  Timeslots  \r", Line::Send(Command::Timeslots)),
            ("days", Line::Send(Command::Days)),
            ("check ME4326", check("ME4326")),
            ("CHECK me4326", check("me4326")),
            ("reserve ME4326 8:30-9:30 Friday", Line::Send(Command::Reserve(slot()))),
            ("Reserve  ME4326\t8:30-9:30 Friday", Line::Send(Command::Reserve(slot()))),
            ("cancel ME4326 8:30-9:30 Friday", Line::Send(Command::Cancel(slot()))),
            ("help", Line::Help),
            ("HELP", Line::Help),
            ("quit", Line::Quit),
            ("Quit", Line::Quit),
        ];
        for (i, (line, want)) in table.into_iter().enumerate() {
            assert_eq!(parse(line), Ok(want), "#{i}: {line:?}");
        }
    }

    #[test]
    fn bad_lines() {
        let table = [
            ("reserve ME4326", "'reserve' takes three words (ROOM TIMESLOT DAY), e.g. reserve ME4326 8:30-9:30 Friday"),
            ("cancel a b c d", "'cancel' takes three words (ROOM TIMESLOT DAY), e.g. cancel ME4326 8:30-9:30 Friday"),
            ("check", "'check' takes one word (ROOM), e.g. check ME4326"),
            ("CHECK a b", "'check' takes one word (ROOM), e.g. check ME4326"),
            ("check SA318 extra", "'check' takes one word (ROOM), e.g. check ME4326"),
            ("rooms now", "'rooms' takes no arguments, e.g. rooms"),
            ("help me", "'help' takes no arguments, e.g. help"),
            ("quit now", "'quit' takes no arguments, e.g. quit"),
            ("book ME4326", "unknown command 'book'; 'help' lists the commands"),
            ("room", "unknown command 'room'; 'help' lists the commands"),
        ];
        for (i, (line, want)) in table.into_iter().enumerate() {
            let got = parse(line).map_err(|e| e.to_string());
            assert_eq!(got, Err(want.to_string()), "#{i}: {line:?}");
        }
    }

    #[test]
    fn long_words_are_refused_with_the_limit_and_echoed_cut() {
        let name = |n: usize| "A".repeat(n);
        assert!(matches!(parse(&format!("check {}", name(MAX_NAME_CHARS))), Ok(Line::Send(_))));
        let long = format!("reserve ME4326 {} Friday", "é".repeat(70_000));
        let error = parse(&long).map_err(|e| e.to_string()).expect_err("too long");
        let cut = "é".repeat(ECHO_CHARS);
        assert_eq!(
            error,
            format!("'reserve': TIMESLOT '{cut}...' (70000 characters) is too long; a name has at most 64 characters")
        );
        let unknown = parse(&name(5_000)).map_err(|e| e.to_string()).expect_err("unknown");
        assert_eq!(unknown, format!("unknown command '{}...' (5000 characters); 'help' lists the commands", name(32)));
        assert!(unknown.len() < 120, "{unknown}");
    }

    /// The limit is what keeps every request that parses within one datagram.
    #[test]
    fn the_longest_request_that_parses_fits_a_datagram() {
        let widest = "\u{10FFFF}".repeat(MAX_NAME_CHARS);
        let line = format!("reserve {widest} {widest} {widest}");
        let Ok(Line::Send(command)) = parse(&line) else { panic!("{line} does not parse") };
        let request =
            crate::wire::Message::Request(crate::wire::Request { client: u64::MAX, request: u64::MAX, command });
        assert!(crate::wire::encode(&request).len() <= crate::wire::MAX_DATAGRAM);
    }

    #[test]
    fn help_lists_every_command_with_an_example() {
        let text = help();
        assert_eq!(text.lines().count(), 1 + SPECS.len());
        for spec in &SPECS {
            assert!(text.contains(&format!("e.g. {}", spec.example)), "{} missing", spec.word);
            assert!(parse(spec.example).is_ok(), "example {:?} does not parse", spec.example);
        }
        // Aligned columns: each wide enough for its longest entry.
        let lines: Vec<&str> = text.lines().skip(1).collect();
        let column = lines[0].find("e.g. ").expect("an example");
        for line in lines {
            assert!(line.find("e.g. ") == Some(column) && line[..column].ends_with("  "), "{text}");
        }
    }
}
