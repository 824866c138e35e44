//! The processes the bench starts: real `server`s (their log lines captured
//! and timestamped as they arrive), busy loops, and helper commands.
//!
//! Every process is a child of the bench, killed by its own PID when its
//! handle is dropped (also when a part fails or panics). Nothing is ever
//! killed by name.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::error::BenchError;
use super::group::Group;

/// The marker of the log line naming a new leader.
pub const ELECTED: &str = "Election completed. Group Leader:";

/// The `server` and `client` programs beside the bench's own executable.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `target/release/server` (or wherever the bench runs from).
    pub server: PathBuf,
    /// `target/release/client`.
    pub client: PathBuf,
    /// The bench itself, started again for its busy loops.
    pub bench: PathBuf,
}

impl Binaries {
    /// Finds `server` and `client` next to the running bench. Missing ones are
    /// an error saying what to build; ones older than the bench only a
    /// warning (returned), since cargo leaves unchanged programs alone.
    pub fn locate() -> Result<(Binaries, Vec<String>), BenchError> {
        let bench = std::env::current_exe().map_err(BenchError::io("finding the bench's own executable"))?;
        let dir = bench.parent().map(Path::to_path_buf).unwrap_or_default();
        let bins = Binaries { server: dir.join("server"), client: dir.join("client"), bench: bench.clone() };
        let bench_time = modified(&bench);
        let mut warnings = Vec::new();
        for program in [&bins.server, &bins.client] {
            if !program.is_file() {
                return Err(BenchError::Binaries(format!(
                    "{} is missing: build every program first with `cargo build --release`, then run \
                     `target/release/bench ...` again",
                    program.display()
                )));
            }
            // Programs of one build are linked a few seconds apart.
            if let (Some(theirs), Some(ours)) = (modified(program), bench_time)
                && theirs + STALE_AFTER < ours
            {
                warnings.push(format!(
                    "{} is older than the bench; if you changed the server or client since, run \
                     `cargo build --release` so that the bench measures the current code",
                    program.display()
                ));
            }
        }
        Ok((bins, warnings))
    }
}

/// How much older than the bench a program may be before the bench warns.
const STALE_AFTER: Duration = Duration::from_secs(300);

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// How often a wait looks again without a ring.
const RECHECK: Duration = Duration::from_millis(20);

/// Wakes waiters whenever any watched process prints a line: one per group
/// of processes, so that a wait for "every server agrees" needs no polling.
#[derive(Default)]
pub struct Bell {
    rung: Mutex<u64>,
    changed: Condvar,
}

impl Bell {
    /// A new bell, shared by the processes it watches.
    pub fn new() -> Arc<Bell> {
        Arc::new(Bell::default())
    }

    fn lock(&self) -> MutexGuard<'_, u64> {
        self.rung.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Something happened.
    pub fn ring(&self) {
        *self.lock() += 1;
        self.changed.notify_all();
    }

    /// Calls `check` until it returns `Some`, waiting for a ring between
    /// calls; `None` once `deadline` passes.
    pub fn wait_for<T>(&self, deadline: Instant, mut check: impl FnMut() -> Option<T>) -> Option<T> {
        loop {
            let seen = *self.lock();
            if let Some(found) = check() {
                return Some(found);
            }
            let rung = self.lock();
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            if *rung == seen {
                // Also look again now and then: a process's exit shows in
                // `try_wait` a moment after its output closed.
                let slice = (deadline - now).min(RECHECK);
                drop(self.changed.wait_timeout(rung, slice).unwrap_or_else(|p| p.into_inner()));
            }
        }
    }
}

/// One line a process printed, stamped when the bench read it.
#[derive(Debug, Clone)]
pub struct Line {
    /// When the line arrived.
    pub at: Instant,
    /// The line, without its newline.
    pub text: String,
}

/// Everything a process printed, filled by reader threads.
#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<Line>>,
}

impl Lines {
    fn lock(&self) -> MutexGuard<'_, Vec<Line>> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Copies `source` line by line into `lines`, ringing `bell` for each.
fn pump(mut source: impl Read + Send + 'static, lines: Arc<Lines>, bell: Arc<Bell>) {
    thread::spawn(move || {
        let mut partial = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = match source.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let at = Instant::now();
            let mut complete = Vec::new();
            for &byte in &buf[..n] {
                if byte == b'\n' {
                    complete.push(Line { at, text: String::from_utf8_lossy(&partial).into_owned() });
                    partial.clear();
                } else {
                    partial.push(byte);
                }
            }
            if !complete.is_empty() {
                lines.lock().extend(complete);
                bell.ring();
            }
        }
        bell.ring();
    });
}

/// The leader named by an `Election completed. Group Leader: N` line.
pub fn leader_in(line: &str) -> Option<u64> {
    let at = line.find(ELECTED)?;
    line[at + ELECTED.len()..].split_whitespace().next()?.parse().ok()
}

/// A running `server` process, killed (SIGKILL, by PID) when dropped.
pub struct ServerProc {
    child: Child,
    id: u64,
    lines: Arc<Lines>,
    bell: Arc<Bell>,
    /// When the bench started it.
    pub spawned: Instant,
}

impl ServerProc {
    /// Starts `server GROUP PORT ID --interface 127.0.0.1 --ttl 0 EXTRA...`
    /// at log level info; its stdout and stderr are captured.
    pub fn spawn(
        bins: &Binaries,
        group: &Group,
        id: u64,
        extra: &[String],
        bell: &Arc<Bell>,
    ) -> Result<ServerProc, BenchError> {
        let mut command = Command::new(&bins.server);
        command.args(group.server_args(id)).args(extra);
        command.env("RUST_LOG", "info").env("RUST_LOG_STYLE", "never");
        ServerProc::start(command, id, bell)
    }

    /// Starts any program the same way (a peer's server), its output
    /// captured; `id` names it in messages.
    pub fn start(mut command: Command, id: u64, bell: &Arc<Bell>) -> Result<ServerProc, BenchError> {
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let spawned = Instant::now();
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command.spawn().map_err(BenchError::io(format!("starting {program} ({id})")))?;
        let lines = Arc::new(Lines::default());
        if let Some(out) = child.stdout.take() {
            pump(out, Arc::clone(&lines), Arc::clone(bell));
        }
        if let Some(err) = child.stderr.take() {
            pump(err, Arc::clone(&lines), Arc::clone(bell));
        }
        Ok(ServerProc { child, id, lines, bell: Arc::clone(bell), spawned })
    }

    /// The server's ID.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Its process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How many lines it printed so far: a mark for [`ServerProc::lines_since`].
    pub fn mark(&self) -> usize {
        self.lines.lock().len()
    }

    /// The lines printed after `mark`.
    pub fn lines_since(&self, mark: usize) -> Vec<Line> {
        self.lines.lock().iter().skip(mark).cloned().collect()
    }

    /// Its last `Election completed` line: the leader it names, and when.
    pub fn last_leader(&self) -> Option<(u64, Instant)> {
        self.lines.lock().iter().rev().find_map(|l| leader_in(&l.text).map(|id| (id, l.at)))
    }

    /// The last lines it printed, for error messages.
    pub fn tail(&self, count: usize) -> String {
        let lines = self.lines.lock();
        let start = lines.len().saturating_sub(count);
        let body: Vec<String> = lines[start..].iter().map(|l| format!("    {}", l.text)).collect();
        format!("--- server {} (pid {}) printed last:\n{}\n", self.id, self.pid(), body.join("\n"))
    }

    /// Waits for a line containing `needle` after `mark`.
    pub fn wait_line(&mut self, mark: usize, needle: &str, timeout: Duration) -> Result<Line, BenchError> {
        let deadline = Instant::now() + timeout;
        let lines = Arc::clone(&self.lines);
        let bell = Arc::clone(&self.bell);
        let child = &mut self.child;
        let found = bell.wait_for(deadline, || {
            let line = lines.lock().iter().skip(mark).find(|l| l.text.contains(needle)).cloned();
            match line {
                Some(line) => Some(Ok(line)),
                None => matches!(child.try_wait(), Ok(Some(_))).then_some(Err(())),
            }
        });
        match found {
            Some(Ok(line)) => Ok(line),
            Some(Err(())) => Err(BenchError::Exited {
                what: format!("server {} while the bench waited for {needle:?}", self.id),
                context: self.tail(20),
            }),
            None => Err(BenchError::Timeout {
                what: format!("server {}: a line containing {needle:?}", self.id),
                waited: timeout,
                context: self.tail(20),
            }),
        }
    }

    /// SIGKILLs it (this child only) and reaps it; returns the instant just
    /// before the signal went.
    pub fn kill(&mut self) -> Instant {
        let at = Instant::now();
        let _ = self.child.kill();
        let _ = self.child.wait();
        at
    }

    /// Sends SIGTERM (a clean stop); returns the instant just before.
    pub fn terminate(&mut self) -> Result<Instant, BenchError> {
        let pid = i32::try_from(self.child.id()).map_err(|_| BenchError::Unexpected("a PID beyond i32".into()))?;
        let at = Instant::now();
        kill(Pid::from_raw(pid), Signal::SIGTERM).map_err(|e| BenchError::Io {
            action: format!("sending SIGTERM to server {} (pid {pid})", self.id),
            source: e.into(),
        })?;
        Ok(at)
    }

    /// Waits until it exited (after [`ServerProc::terminate`]).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<(), BenchError> {
        let deadline = Instant::now() + timeout;
        let bell = Arc::clone(&self.bell);
        let child = &mut self.child;
        let exited = bell.wait_for(deadline, || matches!(child.try_wait(), Ok(Some(_))).then_some(()));
        exited.ok_or_else(|| BenchError::Timeout {
            what: format!("server {} to exit", self.id),
            waited: timeout,
            context: self.tail(10),
        })
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Its resident memory (VmRSS from /proc), in KiB.
    pub fn rss_kib(&self) -> Result<u64, BenchError> {
        rss_kib(self.pid())
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// VmRSS of process `pid`, in KiB, from `/proc/PID/status`.
pub fn rss_kib(pid: u32) -> Result<u64, BenchError> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(BenchError::io(format!("reading {path}")))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| BenchError::Unexpected(format!("{path} has no VmRSS line")))
}

/// The CPU time process `pid` has used so far, all its threads, from
/// `/proc/PID/task/*/schedstat` (nanoseconds, unlike the ticks of `stat`).
pub fn cpu_time(pid: u32) -> Result<Duration, BenchError> {
    let tasks = format!("/proc/{pid}/task");
    let mut total = Duration::ZERO;
    for task in std::fs::read_dir(&tasks).map_err(BenchError::io(format!("reading {tasks}")))? {
        let path = task.map_err(BenchError::io(format!("reading {tasks}")))?.path().join("schedstat");
        // A thread that ended meanwhile has no CPU time left to count.
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let nanos: u64 = text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| BenchError::Unexpected(format!("{} does not start with a number", path.display())))?;
        total += Duration::from_nanos(nanos);
    }
    Ok(total)
}

/// Busy-loop processes (the bench itself, `bench busy-loop`), competing for
/// the CPUs; each also stops by itself after its time, and all are killed
/// (by PID) when this is dropped.
pub struct BusyLoops {
    children: Vec<Child>,
}

impl BusyLoops {
    /// Starts `count` busy loops that run for at most `seconds`.
    pub fn start(bins: &Binaries, count: usize, seconds: f64) -> Result<BusyLoops, BenchError> {
        let mut loops = BusyLoops { children: Vec::new() };
        for _ in 0..count {
            let child = Command::new(&bins.bench)
                .args(["busy-loop", "--seconds", &format!("{seconds:.1}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(BenchError::io("starting a busy loop (bench busy-loop)"))?;
            loops.children.push(child);
        }
        Ok(loops)
    }
}

impl Drop for BusyLoops {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Spins one CPU until `seconds` have passed: what `bench busy-loop` runs.
pub fn busy_loop(seconds: f64) {
    let end = Instant::now() + Duration::from_secs_f64(seconds.max(0.0));
    let mut x: u64 = 1;
    while Instant::now() < end {
        for _ in 0..10_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

/// Runs `program args` to completion with `input` on its stdin; returns its
/// stdout, or why it failed.
pub fn run_tool(program: &str, args: &[&str], input: Option<&str>) -> Result<String, BenchError> {
    use std::io::Write;
    let command_line = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| BenchError::Tool { command: command_line.clone(), why: e.to_string() })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| BenchError::Tool { command: command_line.clone(), why: format!("writing stdin: {e}") })?;
    }
    let output =
        child.wait_with_output().map_err(|e| BenchError::Tool { command: command_line.clone(), why: e.to_string() })?;
    if !output.status.success() {
        let why = format!("{}: {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
        return Err(BenchError::Tool { command: command_line, why });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Whether `program` can be run (`program ARG` exits at all).
pub fn tool_available(program: &str, arg: &str) -> bool {
    Command::new(program).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_is_read_from_an_election_line() {
        assert_eq!(leader_in("[... INFO roomcast::node] Election completed. Group Leader: 45000"), Some(45000));
        assert_eq!(leader_in("Heartbeat to group leader 3 failed"), None);
    }

    #[test]
    fn a_bell_wait_ends_at_its_deadline_or_when_found() {
        let bell = Bell::new();
        let deadline = Instant::now() + Duration::from_millis(30);
        assert_eq!(bell.wait_for(deadline, || None::<()>), None);
        assert!(Instant::now() >= deadline);
        assert_eq!(bell.wait_for(Instant::now() + Duration::from_secs(5), || Some(7)), Some(7));
    }

    #[test]
    fn a_failing_tool_says_how() {
        match run_tool("sh", &["-c", "echo oops >&2; exit 3"], None) {
            Err(BenchError::Tool { why, .. }) => assert!(why.contains("oops"), "{why}"),
            other => panic!("expected a tool error, got {other:?}"),
        }
        assert_eq!(run_tool("cat", &[], Some("hello")).expect("cat"), "hello");
    }
}
