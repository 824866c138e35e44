//! `client ... status`: every server answers with its own state, as text for
//! an operator and as JSON for scripts.

mod common;

use common::*;

#[test]
fn status_lists_every_server_and_says_they_agree() {
    let group = TestGroup::new();
    let (_a, _b, _c) = start_handout_trio(&group);
    run_client(&group, &["reserve", "SA318", "8:30-9:30", "Monday"])
        .assert_success(&["(From servers): Reservation confirmed"]);

    let summary = "(From servers): 3 servers answered; leader 450; every table identical";
    let out = status_until(&group, &[], |out| out.stdout.starts_with(summary) && !out.stdout.contains("syncing"));
    assert_eq!(out.code(), 0, "{out}");
    let rows = out.stdout_lines();
    assert_eq!(rows.len(), 6, "summary, header, one row per server and the keys note: {out}");
    assert_eq!(
        rows[5],
        "UNAUTHENTICATED: 450, 300, 200 without keys: anyone on the network can take the group over (docs/security.md)"
    );
    assert!(rows[1].starts_with("ID   ADDRESS"), "{out}");
    let ids_and_roles: Vec<(&str, &str)> = rows[2..5]
        .iter()
        .map(|row| {
            let cells: Vec<&str> = row.split_whitespace().collect();
            (cells[0], cells[2])
        })
        .collect();
    assert_eq!(ids_and_roles, [("450", "leader"), ("300", "follower"), ("200", "follower")], "{out}");
    assert!(rows[2..5].iter().all(|row| row.contains(" 1 ") && row.contains(", min 1")), "{out}");
}

#[test]
fn status_json_has_one_object_per_server() {
    let group = TestGroup::new();
    let _leader = start_leader(&group, 300);
    let follower = ServerProcess::start_fast(&group, 200, &[]);
    follower.wait_for("Election completed. Group Leader: 300", PATIENCE);

    // Until 200 has caught up (it shows "syncing" before).
    let settled =
        |out: &ClientOutput| out.stdout.contains("\"role\":\"leader\"") && out.stdout.contains("\"role\":\"follower\"");
    let out = status_until(&group, &["--json"], settled);
    let value: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(value["event"], "status", "{out}");
    let mut roles: Vec<(u64, String)> = value["servers"]
        .as_array()
        .unwrap_or_else(|| panic!("no servers array: {out}"))
        .iter()
        .map(|s| (s["from"]["server"].as_u64().unwrap_or(0), s["status"]["role"].as_str().unwrap_or("").to_string()))
        .collect();
    roles.sort();
    assert_eq!(roles, [(200, "follower".to_string()), (300, "leader".to_string())], "{out}");
}

#[test]
fn status_with_no_server_running_is_a_clear_error() {
    let group = TestGroup::new();
    let out = run_client(&group, &["status"]);
    assert_eq!(out.code(), 3, "{out}");
    assert!(out.stderr.contains("no server answered"), "{out}");
}
