//! The interactive client as the user sees it, and the one-shot client's exit codes.

mod common;

use std::time::Duration;

use common::*;

/// The handout's sample client session, piped through stdin with
/// `--prompt`, prints exactly the handout's transcript (minus the echo of the
/// typed commands; `quit` is answered by the client itself, `bye`). Without
/// `--prompt`, as scripts run it, standard output holds the answers alone.
#[test]
fn handout_sample_session_transcript() {
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
    let answers = [
        answer_text(FROM_SERVERS, &ROOMS),
        answer_text(FROM_SERVERS, &TIMESLOTS),
        answer_text(FROM_SERVERS, &["No room reservation found"]),
        answer_text(FROM_CACHE, &ROOMS),
        answer_text(FROM_SERVERS, &DAYS),
        answer_text(FROM_SERVERS, &["Reservation confirmed"]),
        answer_text(FROM_SERVERS, &["ME4326 8:30-9:30 Friday"]),
        answer_text(FROM_CACHE, &DAYS),
        "bye\n".to_string(),
    ];
    for (args, expected) in [
        (&["--prompt"][..], answers.iter().map(|a| format!("{PROMPT}{a}")).collect::<String>()),
        (&[][..], answers.concat()),
    ] {
        // A group of its own each time: the reservation is new, the cache empty.
        let group = TestGroup::new();
        let _server = start_leader(&group, 300);
        let out = run_client_with_stdin(&group, args, &stdin);
        assert_eq!(out.stdout, expected, "transcript differs from the handout's with {args:?}; {out}");
        assert_eq!(out.code(), 0, "{out}");
        assert_eq!(out.stderr, "", "{out}");
    }
}

/// A piped session exits with its worst command's status, as scripts need:
/// 3 if any got no answer, else 1 if any was refused, else 2 for a
/// malformed line; and without a terminal it prints no prompts.
#[test]
fn a_piped_session_exits_with_its_worst_command() {
    let group = TestGroup::new();
    let _server = start_leader(&group, 300);
    let cases = [
        ("rooms\ndays\n", 0),
        ("bogus\nrooms\n", 2),
        ("check NOSUCH\nbogus\n", 1),
        ("reserve SA318 8:30-9:30 Monday\nreserve SA318 8:30-9:30 Monday\nbogus\ndays\n", 1),
    ];
    for (stdin, code) in cases {
        let out = run_client_with_stdin(&group, &[], stdin);
        assert_eq!(out.code(), code, "{stdin:?}; {out}");
        assert!(!out.stdout.contains(PROMPT) && !out.stderr.contains(PROMPT), "no prompts on a pipe; {out}");
    }
    let empty = TestGroup::new();
    let out = run_client_with_stdin(&empty, &["--timeout", "300"], "bogus\ncheck NOSUCH\n");
    assert_eq!(out.code(), 3, "no answer outranks a usage error; {out}");
    assert!(out.stderr.contains("error: no server answered within 0.3 s"), "{out}");
    assert_eq!(out.stdout, "", "{out}");
}

/// `--stop-on-error` ends a session at the first command that does not
/// succeed, with its status; without it every line runs.
#[test]
fn stop_on_error_ends_the_session_at_the_first_failure() {
    let group = TestGroup::new();
    let _server = start_leader(&group, 300);
    let usage = run_client_with_stdin(&group, &["--stop-on-error"], "days\nbogus\nrooms\n");
    assert_eq!((usage.code(), usage.stdout.as_str()), (2, answer_text(FROM_SERVERS, &DAYS).as_str()), "{usage}");
    let twice = "reserve SA318 8:30-9:30 Monday\nreserve SA318 8:30-9:30 Monday\ndays\n";
    let refused = run_client_with_stdin(&group, &["--stop-on-error"], twice);
    assert_eq!(refused.code(), 1, "{refused}");
    let lines = refused.stdout_lines();
    assert_eq!(lines.len(), 2, "days did not run after the refusal; {refused}");
    assert!(lines[1].starts_with("(From servers): Reservation refused: "), "{refused}");
    let all = run_client_with_stdin(&group, &[], "bogus\ndays\n");
    assert_eq!((all.code(), all.stdout.as_str()), (2, answer_text(FROM_SERVERS, &DAYS).as_str()), "{all}");
}

/// `quit` ends the client at once, also with no server at all: it is
/// answered locally and what follows it is not run.
#[test]
fn quit_ends_at_once_without_a_server() {
    let empty = TestGroup::new();
    let session = run_client_with_stdin(&empty, &["--timeout", "5000"], "quit\nrooms\n");
    let one_shot = run_client(&empty, &["--timeout", "5000", "quit"]);
    for out in [session, one_shot] {
        assert_eq!((out.code(), out.stdout.as_str(), out.stderr.as_str()), (0, "bye\n", ""), "{out}");
        assert!(out.elapsed < Duration::from_secs(2), "quit waited for the network; {out}");
    }
}

/// Ctrl-C in a piped session or a one-shot command (here SIGINT, as the
/// terminal sends it to the whole pipeline) stops the wait at once: exit 130,
/// and a write is said to be possibly done. SIGTERM does the same.
#[test]
fn ctrl_c_stops_a_piped_session_or_a_one_shot_command_with_130() {
    let group = TestGroup::new();
    let silent = FakeServer::silent(&group);
    let mut session = ClientSession::start_with(&group, &["--timeout", "20000"]);
    session.send("rooms");
    silent.wait_for_requests(1, PATIENCE);
    session.signal("INT");
    let out = session.finish(PATIENCE);
    assert_eq!(out.code(), 130, "{out}");
    assert_eq!(out.stderr, "error: interrupted: no longer waiting for the answer\n", "{out}");
    for (signal, seen) in [("INT", 2), ("TERM", 3)] {
        let args = ["--timeout", "20000", "reserve", "SA318", "8:30-9:30", "Monday"];
        let one_shot = ClientSession::start_with(&group, &args);
        // Its request is out (so its signal handler is set): one more seen.
        silent.wait_for_requests(seen, PATIENCE);
        one_shot.signal(signal);
        let out = one_shot.finish(PATIENCE);
        assert_eq!(out.code(), 130, "{signal}; {out}");
        assert!(out.stderr.contains("interrupted: no longer waiting for the answer; the change may still"), "{out}");
        assert!(out.elapsed < Duration::from_secs(15), "the signal did not stop the wait; {out}");
    }
}

/// Usage errors are refused at once (exit 2, nothing sent) and say what is
/// wrong: a command with one word too many, a name longer than any name can
/// be (instead of a datagram too long for the network), a pasted page as a
/// command (echoed cut), times and TTLs out of range.
#[test]
fn usage_errors_say_what_is_wrong_at_once() {
    let empty = TestGroup::new();
    let long_room = "A".repeat(70_000);
    let long_word = "x".repeat(5_000);
    let cases: [(&[&str], &str); 5] = [
        (&["check", "SA318", "extra"], "error: 'check' takes one word (ROOM), e.g. check ME4326\n"),
        (&["check", &long_room], "is too long; a name has at most 64 characters\n"),
        (&[&long_word], "...' (5000 characters); 'help' lists the commands\n"),
        (&["--timeout", "0", "rooms"], "give a whole number of milliseconds from 1 to 86400000 (one day)"),
        (&["--linger", "86400001", "rooms"], "give a whole number of milliseconds from 0 to 86400000 (one day)"),
    ];
    for (args, want) in cases {
        let out = run_client(&empty, args);
        assert_eq!((out.code(), out.stdout.as_str()), (2, ""), "{out}");
        assert!(out.stderr.contains(want), "{want:?} missing; {out}");
        assert!(out.stderr.len() < 400, "the message repeats too much of the input; {out}");
        assert!(out.elapsed < Duration::from_secs(2), "a usage error must not wait for servers; {out}");
    }
    // Refused by the argument parser, before any socket exists.
    let ttl = std::process::Command::new(CLIENT_BIN)
        .args(["--interface", "127.0.0.1", "--ttl", "300", "239.255.77.9", "11111", "rooms"])
        .output()
        .expect("the client runs");
    let stderr = String::from_utf8_lossy(&ttl.stderr);
    assert_eq!(ttl.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("a multicast TTL is 0 to 255"), "{stderr}");
}

/// `--linger MS` is how long a one-shot command listens after its answer for
/// a second server's reply; 0 does not wait.
#[test]
fn linger_sets_how_long_a_one_shot_command_listens_after_its_answer() {
    let group = TestGroup::new();
    let _server = start_leader(&group, 300);
    let quick = run_client(&group, &["--linger", "0", "days"]);
    quick.assert_success(&answer_lines(FROM_SERVERS, &DAYS));
    let slow = run_client(&group, &["--linger", "3000", "days"]);
    slow.assert_success(&answer_lines(FROM_SERVERS, &DAYS));
    assert!(slow.elapsed >= Duration::from_millis(3000), "exited before its linger; {slow}");
    assert!(quick.elapsed < Duration::from_millis(2500), "--linger 0 still lingered; {quick}");
}

/// `client --help` lists the commands, `--linger` and the exit statuses.
#[test]
fn help_lists_the_commands_the_options_and_the_exit_statuses() {
    let out = std::process::Command::new(CLIENT_BIN).arg("--help").output().expect("the client runs");
    let help = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{help}");
    for needle in [
        "reserve ROOM TIMESLOT DAY",
        "check ROOM",
        "e.g. quit",
        "--linger <MS>",
        "[default: 200]",
        "--stop-on-error",
        "--prompt",
        "Exit status",
        "3    no server answered",
        "130  interrupted by Ctrl-C",
    ] {
        assert!(help.contains(needle), "{needle:?} missing from:\n{help}");
    }
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
    session.read_until("bye\n", PATIENCE);
    let out = session.finish(CLIENT_DEADLINE);
    assert_eq!(out.code(), 2, "the session's worst command was malformed; {out}");

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
    session.read_until("bye", PATIENCE);
}

/// On a terminal the session looks like the handout's: the prompt, the
/// typed command, the answer with where it came from.
#[test]
fn a_terminal_session_looks_like_the_handout() {
    let group = TestGroup::new();
    let _server = start_leader(&group, 300);
    let test = "a_terminal_session_looks_like_the_handout";
    let Some(mut session) = ClientSession::start_in_terminal(&group) else {
        return skip_or_fail(test, "a terminal session", "`script` (bsdutils) is not installed").unwrap_or(());
    };
    for (command, answer) in [
        ("rooms", "(From servers): SA318\r\nME4494\r\n"),
        ("check ME4326", "(From servers): No room reservation found\r\n"),
        ("rooms", "(From cache): SA318\r\n"),
        ("quit", "bye\r\n"),
    ] {
        session.read_until(PROMPT, PATIENCE);
        session.send(command);
        session.read_until(command, PATIENCE);
        session.read_until(answer, PATIENCE);
    }
    assert_eq!(session.wait_exit(PATIENCE).code(), Some(0), "{}", session.dump());
}

/// Ctrl-C on a terminal, as psql and redis-cli take it: during a request it
/// stops waiting and the prompt comes back; with a line typed it drops the
/// line; at an empty prompt, so also twice in a row, it ends the session.
#[test]
fn ctrl_c_on_a_terminal_stops_a_request_drops_a_line_and_ends_at_an_empty_prompt() {
    let group = TestGroup::new();
    let silent = FakeServer::silent(&group);
    let test = "ctrl_c_on_a_terminal_stops_a_request_drops_a_line_and_ends_at_an_empty_prompt";
    let Some(mut session) = ClientSession::start_in_terminal_with(&group, &["--timeout", "20000"]) else {
        return skip_or_fail(test, "a terminal session", "`script` (bsdutils) is not installed").unwrap_or(());
    };
    session.read_until(PROMPT, PATIENCE);
    session.send("reserve SA318 8:30-9:30 Monday");
    // The request is out, so the line editor has let go of the terminal.
    silent.wait_for_requests(1, PATIENCE);
    session.send_raw("\x03");
    session.read_until("interrupted: no longer waiting for the answer; the change may still take effect", PATIENCE);
    session.read_until(PROMPT, PATIENCE);
    session.send_raw("days\x03");
    session.read_until("days", PATIENCE);
    session.read_until("^C\r\n", PATIENCE);
    session.read_until(PROMPT, PATIENCE);
    session.send("rooms");
    silent.wait_for_requests(2, PATIENCE);
    session.send_raw("\x03");
    session.read_until("interrupted: no longer waiting for the answer\r\n", PATIENCE);
    session.read_until(PROMPT, PATIENCE);
    session.send_raw("\x03");
    assert_eq!(session.wait_exit(PATIENCE).code(), Some(0), "{}", session.dump());
    assert!(session.started().elapsed() < Duration::from_secs(15), "Ctrl-C did not stop a wait\n{}", session.dump());
}
