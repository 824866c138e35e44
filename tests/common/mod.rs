//! Harness for the integration tests: starts the real `server` and `client`
//! binaries on a private multicast group and watches what they print.
//!
//! NETWORK SAFETY: every process is started with `--interface 127.0.0.1 --ttl 0`,
//! and every socket the tests open themselves sends with TTL 0 through
//! 127.0.0.1, so no datagram ever leaves this machine.
//!
//! Waiting rule: a test never sleeps "long enough". It waits for an expected
//! output with a deadline ([`ServerProcess::wait_for`], [`ClientSession::read_until`],
//! [`wait_for_leader`]), and a missed deadline panics with everything the
//! processes printed, so a failure says what the server or client saw.
//!
//! API overview:
//! - [`TestGroup::new`]: a unique multicast group and port for one test.
//! - [`ServerProcess::start`]: a server, its merged stdout/stderr captured line by line.
//! - [`run_client`] / [`run_client_with_stdin`]: a client run to completion, with a hard deadline.
//! - [`ClientSession::start`]: a client kept running (interactive, or a one-shot whose
//!   output is watched as it appears).
//! - [`wait_for_leader`]: waits until a whole group agrees on one leader.

// Tests run real processes and sockets and wait with the clock.
#![allow(clippy::disallowed_methods)]
#![allow(dead_code)]

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, UdpSocket};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// The server binary under test.
pub const SERVER_BIN: &str = env!("CARGO_BIN_EXE_server");
/// The client binary under test.
pub const CLIENT_BIN: &str = env!("CARGO_BIN_EXE_client");

/// The only interface any process of the tests uses.
pub const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// Options every server and client is started with: loopback only, TTL 0.
pub const SAFETY_ARGS: [&str; 4] = ["--interface", "127.0.0.1", "--ttl", "0"];

/// Fast failure detection for tests that do not measure the default timings.
pub const FAST_HEARTBEAT: [&str; 4] = ["--heartbeat-interval", "100", "--heartbeat-timeout", "500"];

/// Default deadline for something that should happen "at once" (elections,
/// answers). Generous, so that a loaded machine does not fail a test; a
/// passing test does not wait for it.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The seed assignment's rooms, in catalog order.
pub const ROOMS: [&str; 6] = ["SA318", "ME4494", "SA314", "MC5050", "ME4326", "SA412"];
/// The seed assignment's timeslots, in catalog order.
pub const TIMESLOTS: [&str; 11] = [
    "8:30-9:30",
    "9:30-10:30",
    "10:30-11:30",
    "11:30-12:30",
    "12:30-13:30",
    "13:30-14:30",
    "14:30-15:30",
    "15:30-16:30",
    "16:30-17:30",
    "17:30-19:00",
    "19:30-21:00",
];
/// The seed assignment's days, in catalog order.
pub const DAYS: [&str; 5] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"];

// ---------------------------------------------------------------------------
// Test group
// ---------------------------------------------------------------------------

/// A multicast group and port used by one test only.
///
/// The port is a free UDP port of 127.0.0.1, held by a socket for the life of
/// the `TestGroup` so the kernel does not hand it to another test. The group
/// 239.255.X.Y is derived from that port, the test process's PID and a
/// per-process counter, so tests running in parallel (as threads under
/// `cargo test`, as processes under nextest) use different groups and ports:
/// servers bind to the group address, so two tests would only meet if both
/// the group and the port collided.
pub struct TestGroup {
    /// The multicast group, 239.255.X.Y (administratively scoped).
    pub group: Ipv4Addr,
    /// The group's UDP port.
    pub port: u16,
    _port_holder: UdpSocket,
}

static GROUP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl TestGroup {
    /// Picks a fresh group and port.
    pub fn new() -> TestGroup {
        let holder = UdpSocket::bind((LOOPBACK, 0)).expect("binding a UDP socket to 127.0.0.1:0");
        let port = holder.local_addr().expect("local address of the port holder").port();
        let mut hasher = DefaultHasher::new();
        (port, std::process::id(), GROUP_COUNTER.fetch_add(1, Ordering::Relaxed)).hash(&mut hasher);
        let h = hasher.finish();
        // X and Y in 1..=254: avoids 239.255.0.x and any .0 / .255 address.
        let x = 1 + (h % 254) as u8;
        let y = 1 + ((h >> 8) % 254) as u8;
        TestGroup { group: Ipv4Addr::new(239, 255, x, y), port, _port_holder: holder }
    }

    /// `[GROUP, PORT]` as command-line arguments.
    pub fn args(&self) -> [String; 2] {
        [self.group.to_string(), self.port.to_string()]
    }
}

impl Default for TestGroup {
    fn default() -> Self {
        TestGroup::new()
    }
}

// ---------------------------------------------------------------------------
// Output capture
// ---------------------------------------------------------------------------

/// Everything a child printed so far.
#[derive(Default)]
struct Captured {
    /// Raw stdout, including a trailing line without newline (prompts).
    stdout: Vec<u8>,
    /// Raw stderr.
    stderr: Vec<u8>,
    /// Complete lines of stdout and stderr merged in arrival order
    /// (a last line without newline is added when its stream ends).
    lines: Vec<String>,
    /// Streams still open (2 while the child may print).
    open: usize,
}

/// Output of a child, filled by one reader thread per stream.
struct Capture {
    state: Mutex<Captured>,
    changed: Condvar,
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

impl Capture {
    fn new() -> Arc<Capture> {
        Arc::new(Capture { state: Mutex::new(Captured { open: 2, ..Captured::default() }), changed: Condvar::new() })
    }

    fn lock(&self) -> MutexGuard<'_, Captured> {
        // A panicking test thread must not hide the output from the others.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a thread that copies `source` into the capture.
    fn pump(self: &Arc<Self>, mut source: impl Read + Send + 'static, stream: Stream) {
        let capture = Arc::clone(self);
        thread::spawn(move || {
            let mut partial = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                let n = match source.read(&mut buf) {
                    Ok(0) | Err(_) => 0,
                    Ok(n) => n,
                };
                let mut state = capture.lock();
                if n == 0 {
                    if !partial.is_empty() {
                        state.lines.push(String::from_utf8_lossy(&partial).into_owned());
                    }
                    state.open -= 1;
                    drop(state);
                    capture.changed.notify_all();
                    return;
                }
                let chunk = &buf[..n];
                match stream {
                    Stream::Stdout => state.stdout.extend_from_slice(chunk),
                    Stream::Stderr => state.stderr.extend_from_slice(chunk),
                }
                for &byte in chunk {
                    if byte == b'\n' {
                        let line = String::from_utf8_lossy(&partial).trim_end_matches('\r').to_string();
                        state.lines.push(line);
                        partial.clear();
                    } else {
                        partial.push(byte);
                    }
                }
                drop(state);
                capture.changed.notify_all();
            }
        });
    }

    /// Waits until `check` returns `Some`, the deadline passes, or both streams
    /// are closed (the child exited) without `check` succeeding.
    fn wait_until<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&Captured) -> Option<T>,
    ) -> Result<T, WaitFailure> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if let Some(found) = check(&state) {
                return Ok(found);
            }
            if state.open == 0 {
                return Err(WaitFailure::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(WaitFailure::Deadline);
            }
            state = self.changed.wait_timeout(state, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Waits until both streams are closed (the child exited and its pipes were drained).
    fn wait_closed(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, |s| (s.open == 0).then_some(())).is_ok() || self.lock().open == 0
    }

    fn lines(&self) -> Vec<String> {
        self.lock().lines.clone()
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.lock().stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.lock().stderr).into_owned()
    }
}

#[derive(Debug)]
enum WaitFailure {
    Deadline,
    Closed,
}

impl WaitFailure {
    fn describe(&self, timeout: Duration) -> String {
        match self {
            WaitFailure::Deadline => format!("not seen within {timeout:?}"),
            WaitFailure::Closed => "not seen before the process closed its output (it exited)".to_string(),
        }
    }
}

/// Spawns `program` with piped stdio and both output streams captured.
fn spawn_captured(program: &str, args: &[String], configure: impl FnOnce(&mut Command)) -> (Child, Arc<Capture>) {
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // env_logger colours only terminals, but say it anyway: tests match on text.
    command.env("RUST_LOG_STYLE", "never");
    configure(&mut command);
    let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {program} {args:?}: {e}"));
    let capture = Capture::new();
    capture.pump(child.stdout.take().expect("piped stdout"), Stream::Stdout);
    capture.pump(child.stderr.take().expect("piped stderr"), Stream::Stderr);
    (child, capture)
}

/// Polls `child` until it exits or the deadline passes.
fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Ok(None) => return None,
            Err(e) => panic!("waiting for child {}: {e}", child.id()),
        }
    }
}

/// Sends `signal` (e.g. `STOP`, `CONT`) to `child` only, by its PID; panics
/// naming `label` if that fails.
pub fn send_signal(child: &Child, signal: &str, label: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("running kill -{signal}: {e}"));
    assert!(status.success(), "kill -{signal} {label} failed: {status}");
}

/// A TOML file in the temporary directory, removed when dropped.
pub struct TempToml(tempfile::NamedTempFile);

impl TempToml {
    /// Writes `text` to a new temporary `.toml` file.
    pub fn with_contents(text: &str) -> TempToml {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().expect("a temporary file");
        file.write_all(text.as_bytes()).expect("writing a temporary file");
        TempToml(file)
    }

    /// Its path.
    pub fn path(&self) -> &str {
        self.0.path().to_str().expect("temporary paths are UTF-8")
    }
}

/// Kills `child` (SIGKILL, this child only, by its PID) unless it already exited, and reaps it.
pub fn kill_child(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// `text` indented for a failure message; `(nothing)` when empty.
pub fn indent(text: &str) -> String {
    if text.is_empty() {
        return "    (nothing)\n".to_string();
    }
    text.lines().map(|l| format!("    {l}\n")).collect()
}

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------

/// A socket that talks to the group the way the client does, loopback only:
/// bound to 127.0.0.1, multicast interface 127.0.0.1, TTL 0, loop on.
pub fn loopback_sender() -> std::net::UdpSocket {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
    socket.bind(&std::net::SocketAddr::from((LOOPBACK, 0)).into()).expect("bind 127.0.0.1:0");
    socket.set_multicast_if_v4(&LOOPBACK).expect("IP_MULTICAST_IF 127.0.0.1");
    socket.set_multicast_ttl_v4(0).expect("IP_MULTICAST_TTL 0");
    socket.set_multicast_loop_v4(true).expect("IP_MULTICAST_LOOP");
    socket.into()
}

/// A socket that hears `group` on 127.0.0.1 beside the servers (address and
/// port reuse), reading with a 20 ms timeout so its thread can notice a stop.
fn group_listener(group: &TestGroup) -> UdpSocket {
    use socket2::{Domain, Protocol, Socket, Type};
    let listen = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
    listen.set_reuse_address(true).expect("SO_REUSEADDR");
    listen.set_reuse_port(true).expect("SO_REUSEPORT");
    listen.bind(&std::net::SocketAddr::from((group.group, group.port)).into()).expect("bind to the group");
    listen.join_multicast_v4(&group.group, &LOOPBACK).expect("join on 127.0.0.1");
    let listen: UdpSocket = listen.into();
    listen.set_read_timeout(Some(Duration::from_millis(20))).expect("read timeout");
    listen
}

/// A running `server` process; killed when dropped (also when a test panics).
pub struct ServerProcess {
    child: Child,
    capture: Arc<Capture>,
    id: u64,
    label: String,
}

impl ServerProcess {
    /// Starts `server [--interface 127.0.0.1 --ttl 0] GROUP PORT [ID] EXTRA...`
    /// with `RUST_LOG=info` unless `RUST_LOG` is set. Returns at once: wait for
    /// its output (e.g. [`ServerProcess::wait_for`] or [`wait_for_leader`]).
    pub fn start(group: &TestGroup, id: Option<u64>, extra: &[&str]) -> ServerProcess {
        let mut args: Vec<String> = SAFETY_ARGS.iter().map(|s| s.to_string()).collect();
        args.extend(group.args());
        if let Some(id) = id {
            args.push(id.to_string());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        ServerProcess::start_with_args(args, id)
    }

    /// Starts `server ARGS...` exactly as given: the caller keeps it on
    /// loopback (in `args` or a config file). `id` is its explicit ID, if any.
    pub fn start_with_args(args: Vec<String>, id: Option<u64>) -> ServerProcess {
        ServerProcess::start_with_env(args, id, &[])
    }

    /// Like [`ServerProcess::start_with_args`], with these environment variables set.
    pub fn start_with_env(args: Vec<String>, id: Option<u64>, env: &[(&str, &str)]) -> ServerProcess {
        ServerProcess::spawn(SERVER_BIN, args, id, env)
    }

    /// Starts `server ARGS...` in a network namespace of its own (`unshare
    /// -n`, so root only) after `setup`, shell commands that build its network
    /// (its `lo` is down until they bring it up). `exec` keeps the PID the server's.
    pub fn start_in_own_network(setup: &str, args: &[&str], id: Option<u64>) -> ServerProcess {
        assert!(args.iter().all(|a| !a.contains([' ', '\'', '"', '\\'])), "plain words only: {args:?}");
        let script = format!("{setup} && exec {SERVER_BIN} {}", args.join(" "));
        ServerProcess::spawn("unshare", vec!["-n".into(), "sh".into(), "-c".into(), script], id, &[])
    }

    fn spawn(program: &str, args: Vec<String>, id: Option<u64>, env: &[(&str, &str)]) -> ServerProcess {
        let described = format!("args {args:?}");
        ServerProcess::start_program(program, args, id, env, |id, pid| format!("server {id} (pid {pid}, {described})"))
    }

    /// Starts `program ARGS...`, which execs the server (e.g. `ip netns exec
    /// NS server ...`, so that the child's PID is the server's, and its ID when
    /// `id` is `None`); `label(id, pid)` names it in failure messages.
    pub fn start_program(
        program: &str,
        args: Vec<String>,
        id: Option<u64>,
        env: &[(&str, &str)],
        label: impl FnOnce(u64, u32) -> String,
    ) -> ServerProcess {
        let (child, capture) = spawn_captured(program, &args, |command| {
            if std::env::var_os("RUST_LOG").is_none() {
                command.env("RUST_LOG", "info");
            }
            command.envs(env.iter().copied());
        });
        let id = id.unwrap_or(u64::from(child.id()));
        let label = label(id, child.id());
        ServerProcess { child, capture, id, label }
    }

    /// Starts a server with [`FAST_HEARTBEAT`] followed by `extra`.
    pub fn start_fast(group: &TestGroup, id: u64, extra: &[&str]) -> ServerProcess {
        let mut all: Vec<&str> = FAST_HEARTBEAT.to_vec();
        all.extend_from_slice(extra);
        ServerProcess::start(group, Some(id), &all)
    }

    /// The server's ID: the explicit one, or its PID.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The server's process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line the server printed so far (stderr and stdout, merged).
    pub fn lines(&self) -> Vec<String> {
        self.capture.lines()
    }

    /// Raw stderr so far.
    pub fn stderr(&self) -> String {
        self.capture.stderr()
    }

    /// How many lines the server printed so far: a mark for [`wait_for_any_after`].
    pub fn mark(&self) -> usize {
        self.capture.lock().lines.len()
    }

    /// The local UDP addresses of the server's sockets, read from `/proc` (Linux).
    pub fn udp_addrs(&self) -> Vec<std::net::SocketAddrV4> {
        udp_addrs_of(self.pid())
    }

    /// Lines containing `needle`.
    pub fn lines_containing(&self, needle: &str) -> Vec<String> {
        self.lines().into_iter().filter(|l| l.contains(needle)).collect()
    }

    /// The leader named by the server's last `Election completed. Group Leader: N` line.
    pub fn last_leader(&self) -> Option<u64> {
        last_leader_in(&self.lines())
    }

    /// Every leader named by the server's `Election completed` lines, in order.
    pub fn leaders(&self) -> Vec<u64> {
        self.lines().iter().filter_map(|l| leader_in(l)).collect()
    }

    /// Everything the server printed, for failure messages.
    pub fn dump(&self) -> String {
        format!("--- {} printed:\n{}", self.label, indent(&self.lines().join("\n")))
    }

    /// Waits for a line containing `needle` and returns it; panics on the
    /// deadline with the needle and the server's whole output.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        self.wait_for_count(needle, 1, timeout)
    }

    /// Like [`ServerProcess::wait_for`], looking only at lines from index
    /// `mark` on (a [`ServerProcess::mark`] taken earlier).
    pub fn wait_for_since(&self, mark: usize, needle: &str, timeout: Duration) -> String {
        let found = |state: &Captured| state.lines.iter().skip(mark).find(|l| l.contains(needle)).cloned();
        self.capture.wait_until(timeout, found).unwrap_or_else(|why| {
            panic!(
                "{}: a line containing {needle:?} after line {mark} {}\n{}",
                self.label,
                why.describe(timeout),
                self.dump()
            )
        })
    }

    /// Waits for the `n`-th line containing `needle` (n >= 1) and returns it.
    pub fn wait_for_count(&self, needle: &str, n: usize, timeout: Duration) -> String {
        assert!(n >= 1, "wait_for_count needs n >= 1");
        let result = self
            .capture
            .wait_until(timeout, |state| state.lines.iter().filter(|l| l.contains(needle)).nth(n - 1).cloned());
        match result {
            Ok(line) => line,
            Err(why) => panic!(
                "{}: occurrence {n} of a line containing {needle:?} {}\n{}",
                self.label,
                why.describe(timeout),
                self.dump()
            ),
        }
    }

    /// Non-blocking: whether the server already printed a line containing `needle`.
    pub fn has_printed(&self, needle: &str) -> bool {
        self.lines().iter().any(|l| l.contains(needle))
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`) to this server only, by its PID.
    pub fn signal(&self, signal: &str) {
        send_signal(&self.child, signal, &self.label);
    }

    /// SIGKILLs the server (only this child, by its PID) and reaps it.
    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }

    /// Waits for the server to exit on its own; panics with its output on the deadline.
    /// Returns once its output is fully captured.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match wait_child(&mut self.child, timeout) {
            Some(status) => {
                self.capture.wait_closed(Duration::from_secs(2));
                status
            }
            None => panic!("{} did not exit within {timeout:?}\n{}", self.label, self.dump()),
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        kill_child(&mut self.child);
    }
}

impl AsRef<ServerProcess> for ServerProcess {
    fn as_ref(&self) -> &ServerProcess {
        self
    }
}

/// The leader in an `Election completed. Group Leader: N` line.
pub fn leader_in(line: &str) -> Option<u64> {
    const MARK: &str = "Election completed. Group Leader:";
    let at = line.find(MARK)?;
    line[at + MARK.len()..].split_whitespace().next()?.parse().ok()
}

/// The leader of the last `Election completed` line among `lines`.
pub fn last_leader_in(lines: &[String]) -> Option<u64> {
    lines.iter().rev().find_map(|l| leader_in(l))
}

/// Everything every server printed, for failure messages.
pub fn dump_all<S: AsRef<ServerProcess>>(servers: &[S]) -> String {
    servers.iter().map(|s| s.as_ref().dump()).collect::<Vec<_>>().join("")
}

/// Starts a fast-heartbeat server with an explicit ID and waits until it has
/// elected itself (the first server of a group).
pub fn start_leader(group: &TestGroup, id: u64) -> ServerProcess {
    let server = ServerProcess::start_fast(group, id, &[]);
    server.wait_for(&format!("Election completed. Group Leader: {id}"), PATIENCE);
    server
}

/// The handout's set-up: 300 leads, 200 joins, then 450 joins and takes over.
pub fn start_handout_trio(group: &TestGroup) -> (ServerProcess, ServerProcess, ServerProcess) {
    let a = start_leader(group, 300);
    let b = ServerProcess::start_fast(group, 200, &[]);
    wait_for_leader(&[&a, &b], 300, PATIENCE);
    let c = ServerProcess::start_fast(group, 450, &[]);
    wait_for_leader(&[&a, &b, &c], 450, PATIENCE);
    (a, b, c)
}

/// Waits until every server's last `Election completed. Group Leader: N` line
/// names `leader`; panics with every server's output on the deadline.
pub fn wait_for_leader<S: AsRef<ServerProcess>>(servers: &[S], leader: u64, timeout: Duration) {
    if poll_agreement(servers, |_| true, leader, Instant::now(), timeout).is_none() {
        let ids: Vec<u64> = servers.iter().map(|s| s.as_ref().id()).collect();
        let views: Vec<Option<u64>> = servers.iter().map(|s| s.as_ref().last_leader()).collect();
        panic!(
            "servers {ids:?} did not all agree on leader {leader} within {timeout:?}; \
             their last elected leaders: {views:?}\n{}",
            dump_all(servers)
        );
    }
}

/// Polls until every server's last elected leader is `leader`; returns the
/// time from `since` to that moment, or `None` once `timeout` after `since` passed.
pub fn wait_agreement<S: AsRef<ServerProcess>>(
    servers: &[S],
    leader: u64,
    since: Instant,
    timeout: Duration,
) -> Option<Duration> {
    poll_agreement(servers, |_| true, leader, since, timeout)
}

/// Waits until every server that `counted` picks (by index; the others are
/// down) names `leader`, and returns how long that took; panics with every
/// server's output after [`PATIENCE`].
pub fn expect_agreement<S: AsRef<ServerProcess>>(
    servers: &[S],
    counted: impl Fn(usize) -> bool,
    leader: u64,
) -> Duration {
    poll_agreement(servers, counted, leader, Instant::now(), PATIENCE)
        .unwrap_or_else(|| panic!("no agreement on leader {leader} within {PATIENCE:?}\n{}", dump_all(servers)))
}

fn poll_agreement<S: AsRef<ServerProcess>>(
    servers: &[S],
    counted: impl Fn(usize) -> bool,
    leader: u64,
    since: Instant,
    timeout: Duration,
) -> Option<Duration> {
    loop {
        let mut voters = servers.iter().enumerate().filter(|(i, _)| counted(*i));
        if voters.all(|(_, s)| s.as_ref().last_leader() == Some(leader)) {
            return Some(since.elapsed());
        }
        if since.elapsed() >= timeout {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until at least one of `servers` printed a line containing `needle`;
/// returns the index of the first one found and the line.
pub fn wait_for_any(servers: &[&ServerProcess], needle: &str, timeout: Duration) -> (usize, String) {
    wait_for_any_after(servers, &vec![0; servers.len()], needle, timeout)
}

/// Like [`wait_for_any`], looking only at the lines each server printed after
/// its [`ServerProcess::mark`] in `marks` (e.g. taken just before killing the leader).
pub fn wait_for_any_after(
    servers: &[&ServerProcess],
    marks: &[usize],
    needle: &str,
    timeout: Duration,
) -> (usize, String) {
    assert_eq!(servers.len(), marks.len(), "one mark per server");
    let deadline = Instant::now() + timeout;
    loop {
        for (i, server) in servers.iter().enumerate() {
            if let Some(line) = server.lines().into_iter().skip(marks[i]).find(|l| l.contains(needle)) {
                return (i, line);
            }
        }
        if Instant::now() >= deadline {
            panic!(
                "no server printed a line containing {needle:?} (after lines {marks:?}) within {timeout:?}\n{}",
                dump_all(servers)
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts that `needles` occur in `lines` in this order (each on a later line
/// than the previous one; other lines may come between).
pub fn assert_in_order(lines: &[String], needles: &[&str], context: &str) {
    let mut from = 0;
    for needle in needles {
        match lines[from..].iter().position(|l| l.contains(needle)) {
            Some(i) => from += i + 1,
            None => panic!(
                "{context}: expected lines containing, in this order, {needles:?}; \
                 {needle:?} is missing after line {from}\n{}",
                indent(&lines.join("\n"))
            ),
        }
    }
}

/// A fake server in the test: joins the group on 127.0.0.1 and notes the
/// requests it decodes. An answering one replies to each with `Rooms`, as
/// server 999999, by unicast to the sender (loopback); a silent one never
/// answers, so a request it saw is one a client is still waiting on.
pub struct FakeServer {
    stop: Arc<AtomicBool>,
    /// Each request seen once, as (client, request number): retries count once.
    seen: Arc<Mutex<std::collections::HashSet<(u64, u64)>>>,
    answered: Arc<AtomicUsize>,
    thread: Option<thread::JoinHandle<()>>,
}

impl FakeServer {
    /// A fake server that answers every request.
    pub fn answering(group: &TestGroup) -> FakeServer {
        FakeServer::start(group, true)
    }

    /// A fake server that answers nothing.
    pub fn silent(group: &TestGroup) -> FakeServer {
        FakeServer::start(group, false)
    }

    fn start(group: &TestGroup, answers: bool) -> FakeServer {
        use roomcast::rooms::Catalog;
        use roomcast::wire::{self, Answer, Message, Reply};
        let listen = group_listener(group);
        let reply_from = UdpSocket::bind((LOOPBACK, 0)).expect("bind 127.0.0.1:0");

        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(std::collections::HashSet::new()));
        let answered = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, seen, answered) = (Arc::clone(&stop), Arc::clone(&seen), Arc::clone(&answered));
            thread::spawn(move || {
                let catalog = Catalog::default();
                let mut buf = vec![0u8; wire::MAX_DATAGRAM];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = listen.recv_from(&mut buf) else {
                        continue;
                    };
                    let Ok(Message::Request(request)) = wire::decode(&buf[..n]) else {
                        continue;
                    };
                    seen.lock().unwrap_or_else(|p| p.into_inner()).insert((request.client, request.request));
                    if !answers {
                        continue;
                    }
                    let reply = Message::Reply(Reply {
                        request: request.request,
                        server: 999_999,
                        catalog: catalog.fingerprint(),
                        answer: Answer::Rooms(catalog.rooms.clone()),
                    });
                    if reply_from.send_to(&wire::encode(&reply), from).is_ok() {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        FakeServer { stop, seen, answered, thread: Some(thread) }
    }

    /// Waits until the fake server has seen `n` different requests (retries
    /// count once; each client numbers its own); panics on the deadline.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.seen.lock().unwrap_or_else(|p| p.into_inner()).len() < n {
            assert!(Instant::now() < deadline, "the fake server did not see {n} requests within {timeout:?}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the fake server; returns how many replies it sent.
    pub fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("fake server thread");
        }
        self.answered.load(Ordering::Relaxed)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

/// How a client run ended.
#[derive(Debug)]
pub struct ClientOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Everything printed on stdout.
    pub stdout: String,
    /// Everything printed on stderr.
    pub stderr: String,
    /// Wall time from start to exit.
    pub elapsed: Duration,
}

impl ClientOutput {
    /// The exit code (panics if the client was killed by a signal).
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or_else(|| panic!("client killed by a signal: {self}"))
    }

    /// stdout split into lines.
    pub fn stdout_lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// Asserts exit code 0 and stdout exactly `expected` (one entry per line).
    pub fn assert_success<S: AsRef<str>>(&self, expected: &[S]) {
        let expected: Vec<&str> = expected.iter().map(AsRef::as_ref).collect();
        assert_eq!(self.status.code(), Some(0), "client should succeed; {self}");
        assert_eq!(self.stdout_lines(), expected, "client stdout; {self}");
    }
}

impl std::fmt::Display for ClientOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "client {} after {:?}\n--- stdout:\n{}--- stderr:\n{}",
            self.status,
            self.elapsed,
            indent(&self.stdout),
            indent(&self.stderr)
        )
    }
}

/// Hard deadline for a client run: well above any `--timeout` the tests pass.
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(20);

fn client_args(group: &TestGroup, args: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = SAFETY_ARGS.iter().map(|s| s.to_string()).collect();
    all.extend(group.args());
    all.extend(args.iter().map(|s| s.to_string()));
    all
}

/// Runs `client --interface 127.0.0.1 --ttl 0 GROUP PORT ARGS...` with empty
/// stdin to completion. Options in `args` go before the command words, e.g.
/// `&["--timeout", "1000", "rooms"]`.
pub fn run_client(group: &TestGroup, args: &[&str]) -> ClientOutput {
    run_client_with_stdin(group, args, "")
}

/// Like [`run_client`], writing `stdin` to the client and closing it.
/// Kills the client and panics with its output if it runs past [`CLIENT_DEADLINE`].
pub fn run_client_with_stdin(group: &TestGroup, args: &[&str], stdin: &str) -> ClientOutput {
    let mut session = ClientSession::start_with(group, args);
    session.send_raw(stdin);
    session.finish(CLIENT_DEADLINE)
}

/// A `client` process kept running while the test talks to it: interactive
/// (no command words) with piped stdin, or a one-shot whose output is watched
/// as it appears. Killed when dropped.
pub struct ClientSession {
    child: Child,
    stdin: Option<ChildStdin>,
    capture: Arc<Capture>,
    /// How much of stdout `read_until` has consumed.
    cursor: usize,
    started: Instant,
    label: String,
}

/// The interactive client's prompt (no newline after it).
pub const PROMPT: &str = "Next command: ";

impl ClientSession {
    /// Starts an interactive client on `group` with `--prompt`, so that each
    /// answer on stdout ends at the next prompt (through a pipe the client
    /// prints no prompts of its own accord).
    pub fn start(group: &TestGroup) -> ClientSession {
        ClientSession::start_with(group, &["--prompt"])
    }

    /// Starts `client --interface 127.0.0.1 --ttl 0 GROUP PORT ARGS...`.
    pub fn start_with(group: &TestGroup, args: &[&str]) -> ClientSession {
        ClientSession::start_program(CLIENT_BIN, client_args(group, args), &[], "client")
    }

    /// Starts `program ARGS...` with these environment variables, as a
    /// session to talk to (the demo, whose servers the program keeps on
    /// loopback itself); `what` names it in failure messages.
    pub fn start_program(program: &str, args: Vec<String>, env: &[(&str, &str)], what: &str) -> ClientSession {
        let (mut child, capture) = spawn_captured(program, &args, |command| {
            command.envs(env.iter().copied());
        });
        let stdin = child.stdin.take();
        let label = format!("{what} (pid {}, args {:?})", child.id(), args);
        ClientSession { child, stdin, capture, cursor: 0, started: Instant::now(), label }
    }

    /// Starts the client on a pseudo-terminal (`script`), as a user at a
    /// terminal runs it: with the line editor. `None` without `script`.
    pub fn start_in_terminal(group: &TestGroup) -> Option<ClientSession> {
        ClientSession::start_in_terminal_with(group, &[])
    }

    /// Like [`ClientSession::start_in_terminal`], with `args` (plain words)
    /// after GROUP PORT. What the test writes reaches the client as typed
    /// keys: `"\x03"` is Ctrl-C, which the terminal turns into SIGINT while
    /// the line editor is not reading.
    pub fn start_in_terminal_with(group: &TestGroup, args: &[&str]) -> Option<ClientSession> {
        if !tool_available("script", "--version") {
            return None;
        }
        let words = client_args(group, args);
        assert!(words.iter().all(|w| !w.contains([' ', '\'', '"', '\\'])), "plain words only: {words:?}");
        // `exec`: the client itself, not a shell around it, gets the terminal's signals.
        let command = format!("exec {CLIENT_BIN} {}", words.join(" "));
        let args = ["-qfec".to_string(), command, "/dev/null".to_string()];
        Some(ClientSession::start_program("script", args.to_vec(), &[], "client on a terminal"))
    }

    /// Sends `signal` (e.g. `INT`) to the process started (for a terminal
    /// session that is `script`), by its PID.
    pub fn signal(&self, signal: &str) {
        send_signal(&self.child, signal, &self.label);
    }

    /// Waits for the process to exit without closing its stdin; kills it
    /// and panics with its output if it runs past `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let status = self.exited(timeout);
        self.capture.wait_closed(Duration::from_secs(2));
        status
    }

    /// The exit status, once the process exits within `timeout`; otherwise
    /// kills it and panics with its output.
    fn exited(&mut self, timeout: Duration) -> ExitStatus {
        let Some(status) = wait_child(&mut self.child, timeout) else {
            kill_child(&mut self.child);
            panic!("{} still running after {timeout:?}: killed\n{}", self.label, self.dump());
        };
        status
    }

    /// Writes `line` and a newline to the client's stdin.
    pub fn send(&mut self, line: &str) {
        self.send_raw(&format!("{line}\n"));
    }

    /// Writes `text` as it is (e.g. an escape sequence for an arrow key).
    pub fn send_raw(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        let stdin = self.stdin.as_mut().unwrap_or_else(|| panic!("{}: stdin already closed", self.label));
        // A client that already exited cannot take input: report that with its output.
        if let Err(e) = stdin.write_all(text.as_bytes()).and_then(|()| stdin.flush()) {
            panic!("{}: writing {text:?} to stdin failed: {e}\n{}", self.label, self.dump());
        }
    }

    /// Closes stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits until stdout, from where the last read stopped, contains `needle`;
    /// returns that text up to and including `needle` and consumes it.
    /// Panics on the deadline with the client's whole output.
    pub fn read_until(&mut self, needle: &str, timeout: Duration) -> String {
        let cursor = self.cursor;
        let result = self.capture.wait_until(timeout, |state| {
            let text = String::from_utf8_lossy(&state.stdout[cursor..]).into_owned();
            text.find(needle).map(|at| text[..at + needle.len()].to_string())
        });
        match result {
            Ok(text) => {
                self.cursor += text.len();
                text
            }
            Err(why) => panic!(
                "{}: stdout text {needle:?} {} (already consumed: {cursor} bytes)\n{}",
                self.label,
                why.describe(timeout),
                self.dump()
            ),
        }
    }

    /// Sends `line` and returns what the client printed before its next
    /// prompt (the answer, e.g. `"(From servers): Reservation confirmed\n"`).
    /// Expects the previous prompt to have been read already.
    pub fn command(&mut self, line: &str) -> String {
        self.send(line);
        let text = self.read_until(PROMPT, PATIENCE);
        text[..text.len() - PROMPT.len()].to_string()
    }

    /// Waits for the `n`-th stderr line containing `needle` and returns it.
    pub fn wait_stderr(&self, needle: &str, n: usize, timeout: Duration) -> String {
        let result = self.capture.wait_until(timeout, |state| {
            let text = String::from_utf8_lossy(&state.stderr).into_owned();
            text.lines().filter(|l| l.contains(needle)).nth(n - 1).map(str::to_string)
        });
        result.unwrap_or_else(|why| {
            panic!("{}: stderr line {n} containing {needle:?} {}\n{}", self.label, why.describe(timeout), self.dump())
        })
    }

    /// Waits until stdout as a whole, read or not, holds `needle` `n` times
    /// (for lines whose order among others is not fixed).
    pub fn wait_stdout(&self, needle: &str, n: usize, timeout: Duration) {
        let result = self.capture.wait_until(timeout, |state| {
            (String::from_utf8_lossy(&state.stdout).matches(needle).count() >= n).then_some(())
        });
        result.unwrap_or_else(|why| {
            panic!("{}: stdout text {needle:?} ({n} times) {}\n{}", self.label, why.describe(timeout), self.dump())
        })
    }

    /// stdout so far.
    pub fn stdout(&self) -> String {
        self.capture.stdout()
    }

    /// stderr so far.
    pub fn stderr(&self) -> String {
        self.capture.stderr()
    }

    /// When the client was started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Everything the client printed, for failure messages.
    pub fn dump(&self) -> String {
        format!("--- {} stdout:\n{}--- stderr:\n{}", self.label, indent(&self.stdout()), indent(&self.stderr()))
    }

    /// Closes stdin and waits for the client to exit; kills it and panics with
    /// its output if it runs past `timeout`.
    pub fn finish(mut self, timeout: Duration) -> ClientOutput {
        self.close_stdin();
        let status = self.exited(timeout);
        let elapsed = self.started.elapsed();
        self.capture.wait_closed(Duration::from_secs(2));
        ClientOutput { status, stdout: self.stdout(), stderr: self.stderr(), elapsed }
    }
}

impl Drop for ClientSession {
    fn drop(&mut self) {
        self.stdin = None;
        kill_child(&mut self.child);
    }
}

/// The lines a one-shot or interactive answer prints for a list: the first
/// line carries `marker` (`"(From servers): "` or `"(From cache): "`).
pub fn answer_lines(marker: &str, items: &[&str]) -> Vec<String> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| if i == 0 { format!("{marker}{item}") } else { item.to_string() })
        .collect()
}

/// `answer_lines` joined with newlines, each line terminated.
pub fn answer_text(marker: &str, items: &[&str]) -> String {
    answer_lines(marker, items).iter().map(|l| format!("{l}\n")).collect()
}

/// Marker of an answer that came from the servers.
pub const FROM_SERVERS: &str = "(From servers): ";
/// Marker of an answer served from the client's cache.
pub const FROM_CACHE: &str = "(From cache): ";

// ---------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------

/// The local addresses of the IPv4 UDP sockets process `pid` holds (Linux `/proc`).
pub fn udp_addrs_of(pid: u32) -> Vec<std::net::SocketAddrV4> {
    let fd_dir = format!("/proc/{pid}/fd");
    let inodes: Vec<String> = std::fs::read_dir(&fd_dir)
        .unwrap_or_else(|e| panic!("reading {fd_dir}: {e}"))
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(target.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/udp").expect("reading /proc/net/udp");
    table
        .lines()
        .skip(1)
        .filter_map(|row| {
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
            let fields: Vec<&str> = row.split_whitespace().collect();
            if !inodes.iter().any(|inode| fields.get(9) == Some(&inode.as_str())) {
                return None;
            }
            let (ip, port) = fields.get(1)?.split_once(':')?;
            // The kernel prints the network-order address as a native-endian u32.
            let ip = Ipv4Addr::from(u32::from_str_radix(ip, 16).ok()?.to_ne_bytes());
            Some(std::net::SocketAddrV4::new(ip, u16::from_str_radix(port, 16).ok()?))
        })
        .collect()
}

/// Whether this process runs with effective UID 0 (Linux `/proc`).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?.to_string();
            // Uid: real effective saved filesystem
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// Whether `program` runs and succeeds with `version_arg`.
pub fn tool_available(program: &str, version_arg: &str) -> bool {
    Command::new(program)
        .arg(version_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A reason `test` cannot build `what` (e.g. "the namespace LAN") here: panics
/// when `CI` is set, so CI never passes such a test by skipping it; otherwise
/// prints the reason (so a skipped test says so) and returns `None`.
pub fn skip_or_fail<T>(test: &str, what: &str, reason: &str) -> Option<T> {
    if std::env::var_os("CI").is_some() {
        panic!("{test}: cannot build {what}, and CI is set so this is a failure, not a skip: {reason}");
    }
    eprintln!("SKIPPED {test}: {reason} (set CI=1 to make this a failure)");
    None
}

/// Runs `status` (with `extra` options) until its output satisfies `done`;
/// panics with the last output on the deadline.
pub fn status_until(group: &TestGroup, extra: &[&str], done: impl Fn(&ClientOutput) -> bool) -> ClientOutput {
    let started = Instant::now();
    let args: Vec<&str> = extra.iter().copied().chain(["status"]).collect();
    loop {
        let out = run_client(group, &args);
        if done(&out) {
            return out;
        }
        assert!(started.elapsed() < PATIENCE, "status never showed what was expected; last: {out}");
    }
}

/// The datagrams server `id` refused, by reason, from `status --json`
/// (`extra`: e.g. the client's `--key-file`); `None` if it did not answer.
pub fn rejected_by(out: &ClientOutput, id: u64) -> Option<serde_json::Value> {
    let value: serde_json::Value = serde_json::from_str(out.stdout.trim()).ok()?;
    let servers = value["servers"].as_array()?;
    let server = servers.iter().find(|s| s["from"]["server"] == id)?;
    Some(server["status"]["auth"]["rejected"].clone())
}

// ---------------------------------------------------------------------------
// Keys and a tap on the group
// ---------------------------------------------------------------------------

/// Key files made with the real `server --generate-key` and
/// `--issue-client-key`, in a temporary directory removed on drop.
pub struct GroupKeys {
    dir: tempfile::TempDir,
}

impl GroupKeys {
    /// A group's server keys and client keys for `alice`, `bob` and the
    /// administrator `ops`; and a second group's server keys and `alice`.
    pub fn new() -> GroupKeys {
        let keys = GroupKeys { dir: tempfile::tempdir().expect("temporary directory") };
        keys.server_command(&["--generate-key", &keys.path("server.key")]);
        keys.server_command(&["--generate-key", &keys.path("other-server.key")]);
        for (file, name, admin) in [("alice", "alice", false), ("bob", "bob", false), ("ops", "ops", true)] {
            keys.issue("server.key", name, &format!("{file}.key"), admin);
        }
        keys.issue("other-server.key", "alice", "other-alice.key", false);
        keys
    }

    /// Issues a client key named `name` from the server key file `from` into `file`.
    pub fn issue(&self, from: &str, name: &str, file: &str, admin: bool) {
        let mut args = vec!["--key-file".to_string(), self.path(from), "--issue-client-key".into(), name.into()];
        args.push(self.path(file));
        if admin {
            args.push("--admin".into());
        }
        self.server_command(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// The path of a key file in the directory, e.g. `server.key` or `alice.key`.
    pub fn path(&self, file: &str) -> String {
        self.dir.path().join(file).to_str().expect("UTF-8 temporary paths").to_string()
    }

    /// `["--key-file", PATH]` for a file of the directory.
    pub fn arg(&self, file: &str) -> [String; 2] {
        ["--key-file".to_string(), self.path(file)]
    }

    /// Runs `server ARGS...` to completion (a key command); panics unless it succeeds.
    pub fn server_command(&self, args: &[&str]) -> String {
        let out = Command::new(SERVER_BIN).args(args).output().expect("running the server binary");
        assert!(out.status.success(), "server {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Default for GroupKeys {
    fn default() -> Self {
        GroupKeys::new()
    }
}

/// A datagram seen on the group: where it came from, and its bytes.
pub type Seen = (std::net::SocketAddr, Vec<u8>);

/// A listener on the test's group (loopback only) that keeps every datagram
/// it sees, with its source, as an attacker on the LAN would.
pub struct GroupTap {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl GroupTap {
    /// Joins `group` on 127.0.0.1 and starts listening.
    pub fn start(group: &TestGroup) -> GroupTap {
        let listen = group_listener(group);
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
            thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = listen.recv_from(&mut buf) {
                        seen.lock().unwrap_or_else(|p| p.into_inner()).push((from, buf[..n].to_vec()));
                    }
                }
            })
        };
        GroupTap { stop, seen, thread: Some(thread) }
    }

    /// Everything seen so far, oldest first.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many datagrams were seen so far.
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Waits until a datagram from `from` arrives after the first `after`
    /// ones; returns it. Panics on the deadline.
    pub fn wait_from(&self, from: impl Fn(&std::net::SocketAddr) -> bool, after: usize, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((_, bytes)) = self.seen().into_iter().skip(after).find(|(f, _)| from(f)) {
                return bytes;
            }
            assert!(Instant::now() < deadline, "the tap saw no such datagram within {timeout:?}");
            thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for GroupTap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
