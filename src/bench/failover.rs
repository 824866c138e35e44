//! Part 2, failover: three servers (1, 2, 3) and the bench's [`Writer`]
//! writing without pause. Each trial kills the leader (3) with SIGKILL, or
//! stops it with SIGTERM, and times
//!
//! * the first write confirmed by another server after the signal (the
//!   writer retransmits every `--retry-ms`, so this is the time writes were
//!   impossible, to that resolution);
//! * when every remaining server's log named the new leader;
//!
//! then starts 3 again, empty: a higher newcomer, which catches up and takes
//! over, and times its first confirmed write from its start. The trials run
//! at the default timings, at the fast ones (`--fast-interval`/`--fast-timeout`),
//! and at the fast ones with a short `--election-timeout` too.

use std::time::Instant;

use serde::Serialize;

use super::Settings;
use super::catalog;
use super::error::BenchError;
use super::group::{Cluster, PATIENCE};
use super::procs::{Binaries, ServerProc};
use super::stats::Summary;
use super::timeline::{RoleEvent, Timeline, bench_event, events_of, ms_since};
use super::writer::Writer;
use crate::rooms::Catalog;

/// How the leader was taken away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Removal {
    /// SIGKILL.
    Kill,
    /// SIGTERM: the server hands over and leaves.
    Stop,
}

/// One trial's figures, ms.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    /// Kill or stop.
    pub removal: Removal,
    /// Signal to the first write confirmed by another server.
    pub first_write_ms: f64,
    /// Signal to the moment every remaining server had named the new leader.
    pub agreed_ms: f64,
    /// Restart of the old leader (higher, empty) to its first confirmed write.
    pub newcomer_write_ms: f64,
}

/// The trials at one set of timings.
#[derive(Debug, Clone, Serialize)]
pub struct TimingResult {
    /// `default` or e.g. `10/50 ms`.
    pub label: String,
    /// The timing options every server got.
    pub server_args: Vec<String>,
    /// Kill to first write.
    pub kill_first_write: Summary,
    /// Kill to every server naming the new leader.
    pub kill_agreed: Summary,
    /// Clean stop to first write.
    pub stop_first_write: Summary,
    /// Newcomer start to its first write as leader.
    pub newcomer_write: Summary,
    /// Every trial.
    pub trials: Vec<Trial>,
    /// The first kill and the first stop, role by role.
    pub timelines: Vec<Timeline>,
    /// Writes refused during the trials (0 expected).
    pub refused: u64,
}

/// Part 2's figures.
#[derive(Debug, Clone, Serialize)]
pub struct FailoverResult {
    /// Default timings, then the fast ones.
    pub timings: Vec<TimingResult>,
    /// The writer's retransmission interval, ms.
    pub retry_ms: u64,
}

/// Runs part 2.
pub fn run(bins: &Binaries, settings: &Settings) -> Result<FailoverResult, BenchError> {
    let fast_label = format!("{}/{} ms", settings.fast_interval, settings.fast_timeout);
    let mut timings = vec![
        run_timing(bins, settings, "default".into(), Vec::new())?,
        run_timing(bins, settings, fast_label.clone(), settings.fast_args())?,
    ];
    if let Some(args) = settings.fast_election_args() {
        let label = format!("{fast_label}, election {} ms", settings.fast_election_timeout);
        timings.push(run_timing(bins, settings, label, args)?);
    }
    Ok(FailoverResult { timings, retry_ms: settings.retry_ms })
}

/// All trials at one set of timings.
fn run_timing(
    bins: &Binaries,
    settings: &Settings,
    label: String,
    args: Vec<String>,
) -> Result<TimingResult, BenchError> {
    let mut cluster = Cluster::new(bins, args.clone())?;
    cluster.start_all(&[1, 2, 3], |_| Vec::new())?;
    let writer = Writer::start(&cluster.group.addr, catalog::slots_of(&Catalog::default(), "SA318"), settings.retry())?;
    writer.wait(PATIENCE, "a first write confirmed by server 3", |c| c.server == 3)?;
    let kills = settings.kill_trials();
    let plan = (0..kills + settings.clean_stop_trials()).map(|n| if n < kills { Removal::Kill } else { Removal::Stop });
    let mut trials = Vec::new();
    let mut timelines = Vec::new();
    for removal in plan {
        let want_timeline = !trials.iter().any(|t: &Trial| t.removal == removal);
        let (trial, timeline) = one_trial(&mut cluster, &writer, removal, &label)?;
        trials.push(trial);
        if want_timeline {
            timelines.push(timeline);
        }
        writer.clear();
    }
    let pick = |removal: Removal, f: fn(&Trial) -> f64| -> Summary {
        let samples = trials.iter().filter(|t| t.removal == removal).map(|t| ms_to_duration(f(t))).collect();
        Summary::of(samples, None)
    };
    Ok(TimingResult {
        label,
        server_args: args,
        kill_first_write: pick(Removal::Kill, |t| t.first_write_ms),
        kill_agreed: pick(Removal::Kill, |t| t.agreed_ms),
        stop_first_write: pick(Removal::Stop, |t| t.first_write_ms),
        newcomer_write: Summary::of(trials.iter().map(|t| ms_to_duration(t.newcomer_write_ms)).collect(), None),
        refused: writer.refused(),
        trials,
        timelines,
    })
}

fn ms_to_duration(ms: f64) -> std::time::Duration {
    std::time::Duration::from_secs_f64(ms.max(0.0) / 1e3)
}

/// Takes leader 3 away, times the failover, starts 3 again and times its
/// take-over; the cluster ends as it began, led by 3.
fn one_trial(
    cluster: &mut Cluster,
    writer: &Writer,
    removal: Removal,
    label: &str,
) -> Result<(Trial, Timeline), BenchError> {
    let marks = cluster.marks();
    let mut old = cluster.take(3).ok_or_else(|| BenchError::Unexpected("server 3 is not running".into()))?;
    let old_mark = old.mark();
    let zero = match removal {
        Removal::Kill => old.kill(),
        Removal::Stop => old.terminate()?,
    };
    let first =
        writer.wait(PATIENCE, "the first write confirmed after the leader went", |c| c.at > zero && c.server != 3)?;
    let agreed = cluster.wait_agreement(first.server, PATIENCE)?;
    if removal == Removal::Stop {
        old.wait_exit(PATIENCE)?;
    }
    let restarted = Instant::now();
    cluster.spawn(3, &[])?;
    let newcomer =
        writer.wait(PATIENCE, "the restarted server 3 confirming a write", |c| c.at > restarted && c.server == 3)?;
    cluster.wait_agreement(3, PATIENCE)?;
    let trial = Trial {
        removal,
        first_write_ms: ms_since(zero, first.at),
        agreed_ms: ms_since(zero, agreed),
        newcomer_write_ms: ms_since(restarted, newcomer.at),
    };
    let what = match removal {
        Removal::Kill => "kill -9",
        Removal::Stop => "SIGTERM",
    };
    let timeline = Timeline {
        title: format!("{what} of leader 3, timings {label}"),
        events: trial_events(cluster, &marks, &old, old_mark, zero, restarted),
        first_write_ms: trial.first_write_ms,
        newcomer_write_ms: Some(ms_since(zero, newcomer.at)),
    };
    Ok((trial, timeline))
}

/// Every role event of one trial: the survivors' lines after `marks`, the
/// old leader's after `old_mark` and its end, and the newcomer's.
fn trial_events(
    cluster: &Cluster,
    marks: &[(u64, usize)],
    old: &ServerProc,
    old_mark: usize,
    zero: Instant,
    restarted: Instant,
) -> Vec<RoleEvent> {
    let mut events = vec![bench_event(3, 0.0, "down")];
    events.extend(role_before(old, old_mark, zero));
    events.extend(events_of(3, &old.lines_since(old_mark), zero));
    for server in cluster.servers() {
        match marks.iter().find(|(id, _)| *id == server.id() && server.spawned < zero) {
            Some((id, mark)) => {
                events.extend(role_before(server, *mark, zero));
                events.extend(events_of(*id, &server.lines_since(*mark), zero));
            }
            None => {
                events.push(bench_event(server.id(), ms_since(zero, restarted), "started"));
                events.extend(events_of(server.id(), &server.lines_since(0), zero));
            }
        }
    }
    events.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    events
}

/// The role `server` last took before its line `mark` (when the trial began).
fn role_before(server: &ServerProc, mark: usize, zero: Instant) -> Option<RoleEvent> {
    let lines = server.lines_since(0);
    let before = &lines[..mark.min(lines.len())];
    events_of(server.id(), before, zero).into_iter().rev().find(|e| e.what == "leader" || e.what == "follower")
}
