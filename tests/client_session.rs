//! The interactive client as the user sees it, and the one-shot client's exit codes.

mod common;

use std::time::Duration;

use common::*;

/// The handout's sample client session, piped through stdin, prints exactly
/// the handout's transcript (minus the echo of the typed commands).
#[test]
fn handout_sample_session_transcript() {
    let group = TestGroup::new();
    let _server = start_leader(&group, 300);

    let script = [
        "rooms",
        "timeslots",
        "check ME4326",
        "rooms",
        "days",
        "reserve ME4326 8:30-9:30 Friday",
        "check ME4326",
        "days",
        "quit",
    ];
    let stdin: String = script.iter().map(|l| format!("{l}\n")).collect();
    let out = run_client_with_stdin(&group, &[], &stdin);

    let answers = [
        answer_text(FROM_SERVERS, &ROOMS),
        answer_text(FROM_SERVERS, &TIMESLOTS),
        answer_text(FROM_SERVERS, &["No room reservation found"]),
        answer_text(FROM_CACHE, &ROOMS),
        answer_text(FROM_SERVERS, &DAYS),
        answer_text(FROM_SERVERS, &["Reservation confirmed"]),
        answer_text(FROM_SERVERS, &["ME4326 8:30-9:30 Friday"]),
        answer_text(FROM_CACHE, &DAYS),
        answer_text(FROM_SERVERS, &["bye"]),
    ];
    let expected: String = answers.iter().map(|a| format!("{PROMPT}{a}")).collect();
    assert_eq!(out.stdout, expected, "transcript differs from the handout's; {out}");
    assert_eq!(out.code(), 0, "{out}");
    assert_eq!(out.stderr.lines().filter(|l| l.starts_with("error: ")).count(), 0, "{out}");
}

/// One-shot mode: 0 when the request succeeds, 1 when it is refused, 2 for a
/// usage error, which is reported without asking any server.
#[test]
fn one_shot_exit_codes() {
    let group = TestGroup::new();
    let _server = start_leader(&group, 300);

    let first = run_client(&group, &["reserve", "ME4494", "10:30-11:30", "Tuesday"]);
    first.assert_success(&["(From servers): Reservation confirmed"]);

    let again = run_client(&group, &["reserve", "ME4494", "10:30-11:30", "Tuesday"]);
    assert_eq!(again.code(), 1, "a refused reservation exits 1; {again}");
    let lines = again.stdout_lines();
    assert_eq!(lines.len(), 1, "one answer line; {again}");
    assert!(lines[0].starts_with("(From servers): Reservation refused: "), "{again}");
    assert!(lines[0].contains("already reserved"), "the refusal says why; {again}");

    // Usage error: checked locally. This group has no server, so a client that
    // asked one would wait for its whole --timeout and exit 3.
    let empty = TestGroup::new();
    let usage = run_client(&empty, &["--timeout", "3000", "reserve", "SA318"]);
    assert_eq!(usage.code(), 2, "missing arguments are a usage error; {usage}");
    assert!(usage.stderr.starts_with("error: ") || usage.stderr.contains("\nerror: "), "{usage}");
    assert_eq!(usage.stdout, "", "{usage}");
    assert!(usage.elapsed < Duration::from_secs(2), "a usage error must not wait for servers; {usage}");
}

/// Room and day names are matched case-insensitively: the same slot typed in
/// lower case is the same slot.
#[test]
fn room_and_day_names_are_case_insensitive() {
    let group = TestGroup::new();
    let _server = start_leader(&group, 300);

    run_client(&group, &["reserve", "me4326", "8:30-9:30", "friday"])
        .assert_success(&["(From servers): Reservation confirmed"]);
    let again = run_client(&group, &["reserve", "ME4326", "8:30-9:30", "Friday"]);
    assert_eq!(again.code(), 1, "the slot is already reserved under another spelling; {again}");
    assert!(again.stdout.starts_with("(From servers): Reservation refused: "), "{again}");
}

/// A command the client cannot parse is reported on stderr by the client
/// itself; the session goes on.
#[test]
fn malformed_command_is_a_local_error() {
    let group = TestGroup::new();
    let _server = start_leader(&group, 300);

    let mut session = ClientSession::start(&group);
    session.read_until(PROMPT, PATIENCE);
    for (n, bad) in ["frobnicate", "reserve SA318", "check", "reserve SA318 8:30-9:30"].iter().enumerate() {
        let answer = session.command(bad);
        assert_eq!(answer, "", "{bad:?} must print nothing on stdout\n{}", session.dump());
        let error = session.wait_stderr("error: ", n + 1, PATIENCE);
        assert!(error.starts_with("error: "), "stderr line {error:?} for {bad:?}\n{}", session.dump());
    }
    assert_eq!(session.command("rooms"), answer_text(FROM_SERVERS, &ROOMS), "{}", session.dump());
    session.send("quit");
    session.read_until("(From servers): bye\n", PATIENCE);
    let out = session.finish(CLIENT_DEADLINE);
    assert_eq!(out.code(), 0, "{out}");

    // One-shot: an unknown command exits 2 at once, even with no server at all.
    let empty = TestGroup::new();
    let oneshot = run_client(&empty, &["--timeout", "3000", "frobnicate"]);
    assert_eq!(oneshot.code(), 2, "{oneshot}");
    assert!(oneshot.stderr.contains("error: "), "{oneshot}");
    assert!(!oneshot.stderr.contains("no server answered"), "{oneshot}");
    assert!(oneshot.elapsed < Duration::from_secs(2), "{oneshot}");
}

/// On a terminal the client edits lines: the up arrow recalls the last
/// command, and a malformed command is refused locally. Runs the client
/// under `script` (a pseudo-terminal); needs /usr/bin/script.
#[test]
fn a_terminal_session_recalls_the_last_command_with_the_up_arrow() {
    let group = TestGroup::new();
    let _server = start_leader(&group, 300);
    let test = "a_terminal_session_recalls_the_last_command_with_the_up_arrow";
    let Some(mut session) = ClientSession::start_in_terminal(&group) else {
        return skip_or_fail(test, "a terminal session", "`script` (bsdutils) is not installed").unwrap_or(());
    };
    session.read_until(PROMPT, PATIENCE);
    session.send("rooms");
    session.read_until("(From servers): SA318", PATIENCE);
    session.read_until(PROMPT, PATIENCE);
    session.send_raw("\x1b[A\r");
    session.read_until("(From cache): SA318", PATIENCE);
    session.read_until(PROMPT, PATIENCE);
    session.send("bogus");
    session.read_until("error: unknown command 'bogus'", PATIENCE);
    session.read_until(PROMPT, PATIENCE);
    session.send("quit");
    session.read_until("(From servers): bye", PATIENCE);
}
