//! `server --config FILE`: settings from a TOML file, the command line over
//! it, and a clear refusal (exit 2) of anything wrong in it.

mod common;

use common::*;

/// A config file on loopback (TTL 0) for `group`, plus `extra` lines.
fn config_file(group: &TestGroup, extra: &str) -> TempToml {
    let [address, port] = group.args();
    let text = format!("group = \"{address}\"\nport = {port}\ninterface = \"127.0.0.1\"\nttl = 0\n{extra}");
    TempToml::with_contents(&text)
}

#[test]
fn a_server_runs_from_a_config_file_with_the_command_line_on_top() {
    let group = TestGroup::new();
    let extra = "id = 100\nheartbeat_interval_ms = 100\nheartbeat_timeout_ms = 500\n\
                 rooms = [\"LAB1\", \"LAB2\"]\ntimeslots = [\"9-10\"]\ndays = [\"Sat\"]\n";
    let file = config_file(&group, extra);
    let args = ["--config", file.path(), "--id", "300"].map(String::from).to_vec();
    let server = ServerProcess::start_with_args(args, Some(300));
    // `--id 300` on the command line wins over `id = 100` in the file.
    server.wait_for("Election completed. Group Leader: 300", PATIENCE);
    run_client(&group, &["rooms"]).assert_success(&["(From servers): LAB1", "LAB2"]);
    run_client(&group, &["reserve", "LAB2", "9-10", "Sat"]).assert_success(&["(From servers): Reservation confirmed"]);
}

#[test]
fn a_bad_config_file_is_refused_with_the_key_and_the_file() {
    let group = TestGroup::new();
    let cases = [
        ("colour = \"blue\"\n", "unknown field `colour`"),
        ("heartbeat_interval_ms = 900\nheartbeat_timeout_ms = 800\n", "`heartbeat_timeout_ms` (800 ms) must be longer"),
        ("min_replicas = 0\n", "`min_replicas` must be at least 1"),
    ];
    for (extra, want) in cases {
        let file = config_file(&group, extra);
        let args = ["--config", file.path()].map(String::from).to_vec();
        let mut server = ServerProcess::start_with_args(args, None);
        let status = server.wait_exit(PATIENCE);
        assert_eq!(status.code(), Some(2), "{extra:?}\n{}", server.dump());
        let stderr = server.stderr();
        assert!(stderr.contains(want) && stderr.contains(file.path()), "{extra:?}: {stderr}");
    }
    // The command line's group is checked even when a (valid) file is given.
    let file = config_file(&group, "");
    let mut bad_group =
        ServerProcess::start_with_args(["--config", file.path(), "10.0.0.1", "5000"].map(String::from).to_vec(), None);
    assert_eq!(bad_group.wait_exit(PATIENCE).code(), Some(2), "{}", bad_group.dump());
    assert!(bad_group.stderr().contains("not a multicast address"), "{}", bad_group.dump());
}
