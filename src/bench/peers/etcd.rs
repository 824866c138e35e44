//! etcd as a peer (Debian's `etcd-server`): three members on 127.0.0.1
//! (client and peer ports free ones of loopback, data in a scratch
//! directory). The bench talks to etcd's JSON gateway (`/v3/kv/put`,
//! `/v3/kv/range`, `/v3/maintenance/status`) over keep-alive HTTP/1.1 on
//! loopback, with a small client of its own, so no client process is
//! started per request. Reads are etcd's default, linearizable ones; every
//! put is fsynced by etcd, so puts compare with roomcast's durable writes.
//!
//! Failover: the leader (asked by `status`) is killed with SIGKILL; the
//! bench then tries a put on the survivors, each attempt with a short
//! timeout, until one succeeds. The killed member restarts on its data.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::super::Settings;
use super::super::error::BenchError;
use super::super::floor::FloorResult;
use super::super::procs::{Bell, ServerProc, run_tool, tool_available};
use super::super::report::Row;
use super::super::stats::{Summary, closed_loop, fmt_ops, fmt_us};

/// How long one failover put attempt may take before the next is tried.
const ATTEMPT: Duration = Duration::from_millis(25);
/// How long a member may take to start, or the group to elect.
const PATIENCE: Duration = Duration::from_secs(30);

/// The etcd program found.
pub struct EtcdBins {
    /// Its version line.
    pub version: String,
}

/// Failover at one set of timings.
#[derive(Debug, Clone, Serialize)]
pub struct EtcdFailover {
    /// `--heartbeat-interval`/`--election-timeout`, e.g. `100/1000 ms`.
    pub label: String,
    /// Kill -9 of the leader to the first successful put.
    pub kill_first_put: Summary,
}

/// etcd's figures.
#[derive(Debug, Clone, Serialize)]
pub struct EtcdResult {
    /// `etcd --version`, first line.
    pub version: String,
    /// Puts, 1 client.
    pub puts_one: Summary,
    /// Puts, N clients.
    pub puts_many: Summary,
    /// Linearizable reads, 1 client.
    pub reads_one: Summary,
    /// Linearizable reads, N clients.
    pub reads_many: Summary,
    /// N.
    pub clients: usize,
    /// Failover at the default timings, then at the fast ones.
    pub failover: Vec<EtcdFailover>,
}

/// Finds `etcd`, or says why it is skipped.
pub fn find() -> Result<EtcdBins, String> {
    if !tool_available("etcd", "--version") {
        return Err("etcd is not installed (Debian: apt-get install etcd-server etcd-client)".into());
    }
    let version = run_tool("etcd", &["--version"], None).map_err(|e| e.to_string())?;
    Ok(EtcdBins { version: version.lines().next().unwrap_or_default().to_string() })
}

/// Runs the etcd measurements.
pub fn run(bins: &EtcdBins, settings: &Settings) -> Result<EtcdResult, BenchError> {
    let scratch = tempfile::Builder::new()
        .prefix("roomcast-bench-etcd-")
        .tempdir_in(settings.scratch_dir())
        .map_err(BenchError::io("creating a scratch directory"))?;
    let duration = settings.load_duration();
    let (puts_one, puts_many, reads_one, reads_many) = {
        let group = EtcdGroup::start(scratch.path(), "load", 100, 1000)?;
        let leader = group.leader()?;
        let addr = group.members[leader].client_addr();
        let put = |i: usize| {
            let mut http = Http::connect(addr, PATIENCE)?;
            let body = format!("{{\"key\":\"{}\",\"value\":\"{}\"}}", base64(&format!("k{i}")), base64("v"));
            Ok(move || http.timed("/v3/kv/put", &body))
        };
        let read = |i: usize| {
            let mut http = Http::connect(addr, PATIENCE)?;
            let body = format!("{{\"key\":\"{}\"}}", base64(&format!("k{i}")));
            Ok(move || http.timed("/v3/kv/range", &body))
        };
        closed_loop(1, duration / 10, put)?;
        (
            closed_loop(1, duration, put)?.summary(),
            closed_loop(settings.clients, duration, put)?.summary(),
            closed_loop(1, duration, read)?.summary(),
            closed_loop(settings.clients, duration, read)?.summary(),
        )
    };
    let fast = (settings.fast_interval, settings.fast_timeout);
    let mut failover = Vec::new();
    for (heartbeat, election) in [(100, 1000), fast] {
        let mut group = EtcdGroup::start(scratch.path(), &format!("f{heartbeat}"), heartbeat, election)?;
        let samples = (0..settings.kill_trials()).map(|_| group.kill_trial()).collect::<Result<Vec<_>, _>>()?;
        failover.push(EtcdFailover {
            label: format!("{heartbeat}/{election} ms"),
            kill_first_put: Summary::of(samples, None),
        });
    }
    Ok(EtcdResult {
        version: bins.version.clone(),
        puts_one,
        puts_many,
        reads_one,
        reads_many,
        clients: settings.clients,
        failover,
    })
}

/// A free TCP port of 127.0.0.1 (free when asked; etcd binds it just after).
fn free_port() -> Result<u16, BenchError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(BenchError::io("finding a free port"))?;
    Ok(listener.local_addr().map_err(BenchError::io("finding a free port"))?.port())
}

/// One member's settings, and its process while it runs.
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data: PathBuf,
    process: Option<ServerProc>,
}

impl Member {
    fn client_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.client_port))
    }
}

/// Three etcd members on loopback; killed (by PID) when dropped.
struct EtcdGroup {
    members: Vec<Member>,
    cluster: String,
    timings: (u64, u64),
    bell: Arc<Bell>,
}

impl EtcdGroup {
    /// Starts three members named `prefix`-N with the given timings (ms) and
    /// waits until they serve.
    fn start(scratch: &Path, prefix: &str, heartbeat: u64, election: u64) -> Result<EtcdGroup, BenchError> {
        let mut members = Vec::new();
        for n in 1..=3 {
            let name = format!("{prefix}-{n}");
            let data = scratch.join(&name);
            members.push(Member { name, client_port: free_port()?, peer_port: free_port()?, data, process: None });
        }
        let cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut group = EtcdGroup { members, cluster, timings: (heartbeat, election), bell: Bell::new() };
        for index in 0..3 {
            group.launch(index)?;
        }
        for index in 0..3 {
            group.wait_ready(index)?;
        }
        group.leader()?;
        Ok(group)
    }

    /// Starts member `index`.
    fn launch(&mut self, index: usize) -> Result<(), BenchError> {
        let (heartbeat, election) = self.timings;
        let m = &self.members[index];
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let mut command = Command::new("etcd");
        command.args(["--name", &m.name, "--data-dir"]).arg(&m.data);
        command.args(["--listen-client-urls", &client, "--advertise-client-urls", &client]);
        command.args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer]);
        command.args(["--initial-cluster", &self.cluster, "--initial-cluster-state", "new"]);
        command.args(["--initial-cluster-token", &format!("roomcast-bench-{}", std::process::id())]);
        command.args(["--heartbeat-interval", &heartbeat.to_string(), "--election-timeout", &election.to_string()]);
        command.args(["--logger", "zap", "--log-outputs", "stderr"]);
        let process = ServerProc::start(command, index as u64 + 1, &self.bell)?;
        self.members[index].process = Some(process);
        Ok(())
    }

    /// Waits for member `index`'s `published local member to cluster` line (its readiness).
    fn wait_ready(&mut self, index: usize) -> Result<(), BenchError> {
        let process =
            self.members[index].process.as_mut().ok_or_else(|| BenchError::Unexpected("no process".into()))?;
        process.wait_line(0, "published local member to cluster", PATIENCE).map(|_| ())
    }

    /// The index of the member that leads, as the members' `status` says;
    /// waits (asking again on each log line) until one does.
    fn leader(&self) -> Result<usize, BenchError> {
        let deadline = Instant::now() + PATIENCE;
        let found = self.bell.wait_for(deadline, || {
            self.members
                .iter()
                .enumerate()
                .find_map(|(i, m)| (m.process.is_some() && leads(m.client_addr())).then_some(i))
        });
        found.ok_or_else(|| BenchError::Timeout {
            what: "an etcd member saying it leads".into(),
            waited: PATIENCE,
            context: self.members.iter().filter_map(|m| m.process.as_ref()).map(|p| p.tail(5)).collect(),
        })
    }

    /// Kills the leader, times the first successful put on the others, and
    /// restarts it.
    fn kill_trial(&mut self) -> Result<Duration, BenchError> {
        let leader = self.leader()?;
        let survivors: Vec<SocketAddr> =
            self.members.iter().enumerate().filter(|(i, _)| *i != leader).map(|(_, m)| m.client_addr()).collect();
        let mut victim =
            self.members[leader].process.take().ok_or_else(|| BenchError::Unexpected("no leader".into()))?;
        let zero = victim.kill();
        drop(victim);
        let body = format!("{{\"key\":\"{}\",\"value\":\"{}\"}}", base64("failover"), base64("x"));
        let mut attempt = 0usize;
        let resumed = loop {
            if zero.elapsed() > PATIENCE {
                return Err(BenchError::Timeout {
                    what: "a put after etcd's leader was killed".into(),
                    waited: PATIENCE,
                    context: String::new(),
                });
            }
            let target = survivors[attempt % survivors.len()];
            attempt += 1;
            if Http::connect(target, ATTEMPT)
                .and_then(|mut h| h.post("/v3/kv/put", &body))
                .is_ok_and(|(code, _)| code == 200)
            {
                break Instant::now();
            }
        };
        self.launch(leader)?;
        self.wait_ready(leader)?;
        self.leader()?;
        Ok(resumed - zero)
    }
}

/// Whether the member at `addr` says it leads.
fn leads(addr: SocketAddr) -> bool {
    let Ok(mut http) = Http::connect(addr, Duration::from_millis(200)) else { return false };
    let Ok((200, body)) = http.post("/v3/maintenance/status", "{}") else { return false };
    let Ok(status) = serde_json::from_str::<serde_json::Value>(&body) else { return false };
    let me = status.pointer("/header/member_id").and_then(|v| v.as_str());
    let leader = status.get("leader").and_then(|v| v.as_str());
    matches!((me, leader), (Some(a), Some(b)) if a == b)
}

/// A keep-alive HTTP/1.1 connection to etcd's JSON gateway.
struct Http {
    reader: BufReader<TcpStream>,
    host: String,
}

impl Http {
    fn connect(addr: SocketAddr, timeout: Duration) -> Result<Http, BenchError> {
        let stream =
            TcpStream::connect_timeout(&addr, timeout).map_err(BenchError::io(format!("connecting to {addr}")))?;
        stream.set_read_timeout(Some(timeout)).map_err(BenchError::io("setting a timeout"))?;
        stream.set_write_timeout(Some(timeout)).map_err(BenchError::io("setting a timeout"))?;
        stream.set_nodelay(true).map_err(BenchError::io("setting TCP_NODELAY"))?;
        Ok(Http { reader: BufReader::new(stream), host: addr.to_string() })
    }

    /// POSTs `body` to `path`; the status code and the response body.
    fn post(&mut self, path: &str, body: &str) -> Result<(u16, String), BenchError> {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        let io = |what: &str| BenchError::io(format!("{what} {path} on {}", self.host));
        self.reader.get_mut().write_all(request.as_bytes()).map_err(io("sending"))?;
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line).map_err(io("reading the answer to"))?;
        let code = status_line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let (mut length, mut chunked) = (0usize, false);
        loop {
            let mut header = String::new();
            self.reader.read_line(&mut header).map_err(io("reading the headers of"))?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let lower = header.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            chunked |= lower.starts_with("transfer-encoding:") && lower.contains("chunked");
        }
        let body = if chunked { self.read_chunks()? } else { self.read_exact(length)? };
        Ok((code, body))
    }

    fn read_exact(&mut self, length: usize) -> Result<String, BenchError> {
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).map_err(BenchError::io("reading an answer's body"))?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    fn read_chunks(&mut self) -> Result<String, BenchError> {
        let mut body = String::new();
        loop {
            let mut size = String::new();
            self.reader.read_line(&mut size).map_err(BenchError::io("reading a chunk size"))?;
            let size = usize::from_str_radix(size.trim(), 16)
                .map_err(|_| BenchError::Unexpected(format!("a bad chunk size {size:?}")))?;
            let chunk = self.read_exact(size + 2)?;
            if size == 0 {
                return Ok(body);
            }
            body.push_str(&chunk[..size.min(chunk.len())]);
        }
    }

    /// One POST that must succeed; its latency.
    fn timed(&mut self, path: &str, body: &str) -> Result<Duration, BenchError> {
        let started = Instant::now();
        match self.post(path, body)? {
            (200, _) => Ok(started.elapsed()),
            (code, text) => Err(BenchError::Unexpected(format!("etcd answered {path} with {code}: {text}"))),
        }
    }
}

/// Standard base64 of `text` (etcd's JSON gateway takes keys and values so).
fn base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// etcd's rows of the table.
pub fn rows(e: &EtcdResult, floor: Option<&FloorResult>) -> Vec<Row> {
    let mut rows = Vec::new();
    let one = floor.map(|f| &f.one_client);
    let mut add = |figure: String, value: String, floor_value: Option<f64>, ratio: f64, latency: bool| {
        let (shown, compared) = match floor_value {
            Some(f) if f > 0.0 && latency => (fmt_us(f), format!("{:.2}× the floor", ratio / f)),
            Some(f) if f > 0.0 => (fmt_ops(f), format!("{:.0}% of the floor", 100.0 * ratio / f)),
            _ => (String::new(), String::new()),
        };
        rows.push(Row { figure, floor: shown, value, ratio: compared });
    };
    let many = floor.map(|f| &f.many_clients);
    let n = e.clients;
    add("etcd put, 1 client, p50".into(), fmt_us(e.puts_one.p50_us), one.map(|f| f.p50_us), e.puts_one.p50_us, true);
    add("etcd put, 1 client, ops/s".into(), fmt_ops(e.puts_one.ops()), one.map(Summary::ops), e.puts_one.ops(), false);
    add(
        format!("etcd put, {n} clients, ops/s"),
        fmt_ops(e.puts_many.ops()),
        many.map(Summary::ops),
        e.puts_many.ops(),
        false,
    );
    add(
        format!("etcd put, {n} clients, p99"),
        fmt_us(e.puts_many.p99_us),
        many.map(|f| f.p99_us),
        e.puts_many.p99_us,
        true,
    );
    add("etcd read, 1 client, p50".into(), fmt_us(e.reads_one.p50_us), one.map(|f| f.p50_us), e.reads_one.p50_us, true);
    add(
        format!("etcd read, {n} clients, ops/s"),
        fmt_ops(e.reads_many.ops()),
        many.map(Summary::ops),
        e.reads_many.ops(),
        false,
    );
    for f in &e.failover {
        let k = &f.kill_first_put;
        rows.push(Row {
            figure: format!("etcd failover {}: kill -9 → first put, p50/p99 ({} trials)", f.label, k.count),
            floor: String::new(),
            value: format!("{} / {}", fmt_us(k.p50_us), fmt_us(k.p99_us)),
            ratio: String::new(),
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_pads_like_the_standard() {
        assert_eq!(base64("k1"), "azE=");
        assert_eq!(base64("v"), "dg==");
        assert_eq!(base64("abc"), "YWJj");
        assert_eq!(base64("failover"), "ZmFpbG92ZXI=");
    }
}
