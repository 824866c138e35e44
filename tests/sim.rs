//! Deterministic simulation: random fault schedules against the real protocol
//! cores, each checked against the replication invariants (see
//! `roomcast::sim::check`).
//!
//! - `cargo nextest run sim_replay` runs seed 0; `SIM_SEED=1234 cargo nextest
//!   run sim_replay --no-capture` replays any seed and prints its report;
//!   `SIM_TRACE=info` (or `debug`) adds every server's log, stamped with the
//!   simulated time and the server's ID;
//! - `SIM_SEEDS=100000 cargo nextest run --release sim_soak --run-ignored all
//!   --no-capture` is the long soak for local runs (`SIM_FIRST` sets its
//!   first seed).
//!
//! - `sim_gate_*` is the CI gate: seeds 0 to 1,999, in four parts that run in
//!   parallel, and `sim_seeds_once_found_by_soaks` replays the seeds beyond
//!   it that once failed.

// Tests run real processes and sockets and wait with the clock.
#![allow(clippy::disallowed_methods)]

use std::io::Write;

use roomcast::sim::{schedule, trace_context};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// Replays `SIM_SEED` (default 0) and prints what the run did.
#[test]
fn sim_replay() {
    if let Ok(level) = std::env::var("SIM_TRACE") {
        trace_to_stderr(&level);
    }
    let report = schedule::run(env_number("SIM_SEED", 0));
    println!("{report}");
    assert!(report.violations.is_empty(), "{report}");
}

/// Seeds in the CI gate, and how many parts it is split into.
const GATE_SEEDS: u64 = 2_000;
const GATE_PARTS: u64 = 4;

fn gate(part: u64) {
    let size = GATE_SEEDS / GATE_PARTS;
    run_seeds(part * size, size);
}

#[test]
fn sim_gate_seeds_0_to_499() {
    gate(0);
}

#[test]
fn sim_gate_seeds_500_to_999() {
    gate(1);
}

#[test]
fn sim_gate_seeds_1000_to_1499() {
    gate(2);
}

#[test]
fn sim_gate_seeds_1500_to_1999() {
    gate(3);
}

/// Seeds beyond the gate that a soak found failing, each fixed since (the
/// git log names the fix): they stay fixed.
const FIXED_SOAK_SEEDS: [u64; 21] = [
    4415, 5831, 18777, 25527, 31459, 38645, 40779, 203257, 219443, 262177, 723227, 725113, 414922, 327089, 864330,
    751239, 1005778, 835436, 571042, 571567, 570773,
];

#[test]
fn sim_seeds_once_found_by_soaks() {
    for seed in FIXED_SOAK_SEEDS {
        run_seeds(seed, 1);
    }
}

/// Runs `SIM_SEEDS` seeds from `SIM_FIRST`; run it in release mode.
#[test]
#[ignore = "long soak: SIM_SEEDS=100000 cargo nextest run --release sim_soak --run-ignored all"]
fn sim_soak() {
    run_seeds(env_number("SIM_FIRST", 0), env_number("SIM_SEEDS", 100_000));
}

/// Counts the seeds that break an invariant instead of stopping at the
/// first: `SIM_FIRST` (default 0) and `SIM_SEEDS` (default the gate's
/// 2,000), spread over every core. For measuring how many seeds catch a
/// deliberately broken rule: `SIM_SEEDS=2000 cargo nextest run sim_count
/// --run-ignored all --no-capture`.
#[test]
#[ignore = "a measurement, not a check: cargo nextest run sim_count --run-ignored all --no-capture"]
fn sim_count() {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    let (first, count) = (env_number("SIM_FIRST", 0), env_number("SIM_SEEDS", GATE_SEEDS));
    let next = AtomicU64::new(first);
    let failed = Mutex::new(Vec::new());
    // Seeds in which each aimed fault sprang at least once.
    let exercised: [AtomicU64; 4] = Default::default();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= first + count {
                        break;
                    }
                    let report = schedule::run(seed);
                    let s = report.sprung;
                    let sprung = [s.crashed_after_answer, s.appends_lost, s.paused_after_append, s.torn_flushes];
                    for (count, times) in exercised.iter().zip(sprung) {
                        if times > 0 {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if !report.violations.is_empty() {
                        failed.lock().unwrap_or_else(|e| e.into_inner()).push(report);
                    }
                }
            });
        }
    });
    let mut failed = failed.into_inner().unwrap_or_else(|e| e.into_inner());
    failed.sort_by_key(|r| r.seed);
    let mut by_invariant: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_mode: BTreeMap<u64, usize> = BTreeMap::new();
    for report in &failed {
        let mut names: Vec<&str> = report.violations.iter().map(|v| v.invariant).collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            *by_invariant.entry(name).or_default() += 1;
        }
        *by_mode.entry(report.seed % 4).or_default() += 1;
    }
    let seeds: Vec<u64> = failed.iter().map(|r| r.seed).collect();
    println!(
        "CAUGHT {} of {count} seeds from {first} in {:.1}s; seeds per invariant {by_invariant:?}; per seed % 4 {by_mode:?}; first: {:?}",
        failed.len(),
        started.elapsed().as_secs_f64(),
        &seeds[..seeds.len().min(12)]
    );
    let exercised = exercised.map(|count| count.into_inner());
    println!(
        "seeds in which each aimed fault sprang: crash after answer {}, Append lost {}, pause after append {}, torn flush {}",
        exercised[0], exercised[1], exercised[2], exercised[3]
    );
    if let Some(report) = failed.first() {
        println!("{report}");
    }
}

fn run_seeds(first: u64, count: u64) {
    let failures: Vec<String> = (first..first + count)
        .map(schedule::run)
        .filter(|report| !report.violations.is_empty())
        .map(|report| report.to_string())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {count} seeds from {first} broke an invariant; replay one with SIM_SEED=<seed> SIM_TRACE=info cargo nextest run sim_replay --no-capture\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Logs every server's lines at `level`, prefixed with simulated time and ID.
fn trace_to_stderr(level: &str) {
    let _ = env_logger::Builder::new()
        .parse_filters(&format!("roomcast={level}"))
        .format(|out, record| {
            let (at, server) = trace_context();
            writeln!(out, "{:>9.3}s {server:>4} {:<5} {}", at.as_secs_f64(), record.level(), record.args())
        })
        .try_init();
}
