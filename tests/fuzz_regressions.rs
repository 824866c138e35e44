//! Every input checked in under `fuzz/seeds/TARGET/` and
//! `fuzz/regressions/TARGET/` fed to the entry point its fuzz target calls
//! (`roomcast::fuzzing`), on the stable toolchain: none may panic. The seeds
//! must also do what they were built for (a sealed request gets through its
//! proof of life, a real data file reads back), or the fuzzer would start
//! from inputs that stop at the tag or the checksum.

use std::fs;
use std::path::{Path, PathBuf};

use roomcast::fuzzing::{self, SealedOutcome};
use roomcast::storage::FormatError;

/// The inputs of `kind` (`seeds` or `regressions`) for `target`, by file name.
fn inputs(kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(kind).join(target);
    let Ok(entries) = fs::read_dir(&dir) else { return Vec::new() };
    let mut paths: Vec<PathBuf> = entries.map(|e| e.expect("a directory entry").path()).collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let name = path.file_name().expect("a file name").to_string_lossy().into_owned();
            (name, fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        })
        .collect()
}

fn all(target: &str) -> Vec<(String, Vec<u8>)> {
    [inputs("seeds", target), inputs("regressions", target)].concat()
}

#[test]
fn wire_decode_inputs() {
    for (name, bytes) in all("wire_decode") {
        let decoded = fuzzing::wire_decode(&bytes);
        if name != "notice" && !name.starts_with("crash") && !name.starts_with("timeout") {
            assert!(decoded.is_ok(), "{name}: {decoded:?}");
        }
    }
}

#[test]
fn sealed_inputs() {
    let seeds = inputs("seeds", "sealed");
    assert!(seeds.len() >= 10, "the seeds are checked in");
    for (name, bytes) in seeds {
        let got = fuzzing::sealed(&bytes);
        let want = match name.as_str() {
            "request" | "request_resealed" => SealedOutcome { server_accepted: 1, ..SealedOutcome::default() },
            "reply" | "reply_resealed" => SealedOutcome { client_replies: 1, ..SealedOutcome::default() },
            // The request, the reply, a copy of the request (refused), a new request.
            "request_reply_copy" => SealedOutcome { server_accepted: 2, client_replies: 1, keyless_accepted: 0 },
            "plain_coordinator" => SealedOutcome { keyless_accepted: 1, ..SealedOutcome::default() },
            "notice" | "revoked_request" => SealedOutcome::default(),
            peer if peer.starts_with("peer_") => SealedOutcome { server_accepted: 1, ..SealedOutcome::default() },
            other => panic!("a seed without an expected outcome: {other}"),
        };
        assert_eq!(got, want, "{name}");
    }
    for (_, bytes) in inputs("regressions", "sealed") {
        let _ = fuzzing::sealed(&bytes);
    }
}

#[test]
fn snapshot_inputs() {
    for (name, bytes) in inputs("seeds", "snapshot") {
        let (catalog, reservations) = fuzzing::snapshot(&bytes).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!((catalog, reservations), (roomcast::rooms::Catalog::default(), 2), "{name}");
    }
    for (name, bytes) in inputs("regressions", "snapshot") {
        let got = fuzzing::snapshot(&bytes);
        if name.starts_with("seq-max") {
            assert!(matches!(&got, Err(FormatError::Corrupt(e)) if e.contains("beyond any log")), "{name}: {got:?}");
        }
    }
}

#[test]
fn log_inputs() {
    for (name, bytes) in inputs("seeds", "log") {
        let replayed = fuzzing::log(&bytes);
        if name == "log_after_snapshot" {
            // Its entries follow a snapshot that the harness does not have.
            assert!(matches!(replayed, Err(FormatError::Corrupt(ref e)) if e.contains("do not follow")), "{name}");
            continue;
        }
        let replayed = replayed.unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(replayed.torn_at, None, "{name}");
    }
    for (name, bytes) in inputs("regressions", "log") {
        let got = fuzzing::log(&bytes);
        if name.starts_with("seq-max") {
            assert!(matches!(&got, Err(FormatError::Corrupt(e)) if e.contains("beyond any log")), "{name}: {got:?}");
        }
    }
    // Only the checksummed mode gets a mutated record past its checksum.
    let (_, mut bytes) = inputs("seeds", "log").into_iter().find(|(n, _)| n == "log").expect("the log seed");
    let last = bytes.len() - 30;
    bytes[last] ^= 0x40;
    assert!(matches!(fuzzing::log(&bytes), Ok(r) if r.torn_at.is_some()), "a garbled last record is torn");
    bytes[0] = 1;
    assert!(matches!(fuzzing::log(&bytes), Ok(r) if r.torn_at.is_none()) || fuzzing::log(&bytes).is_err());
    assert!(matches!(fuzzing::log(b"\x00RCLOG001"), Err(FormatError::OldFormat)));
}

#[test]
fn config_inputs() {
    for (name, bytes) in all("config") {
        let outcome = fuzzing::config(&bytes);
        if name == "catalog.toml" {
            assert!(outcome.is_some_and(|o| o.catalog.is_ok()), "{name}");
        } else if name.ends_with(".toml") {
            let outcome = outcome.expect("UTF-8");
            assert!(outcome.server.is_ok(), "{name}: {:?}", outcome.server);
        }
    }
}

#[test]
fn key_file_inputs() {
    for (name, bytes) in all("key_file") {
        let parsed = fuzzing::key_file(&bytes);
        if name.ends_with(".key") {
            assert!(parsed.is_some_and(|p| p.is_ok()), "{name}");
        }
    }
}
