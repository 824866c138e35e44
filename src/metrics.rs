//! Prometheus metrics over HTTP (`--metrics ADDR:PORT`), in the OpenMetrics
//! text format that prometheus-client writes.
//!
//! The event loop accepts a scrape and renders the text from the node as it
//! is at that moment; a short-lived thread then reads the request and writes
//! the answer, so that a slow or stalled scraper never holds up heartbeats.

// An I/O shell: the metrics listener and its answering threads (clippy.toml keeps these out of the core).
#![allow(clippy::disallowed_methods)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use log::{debug, info, warn};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::net::NetError;
use crate::node::NodeStats;
use crate::wire::{ServerStatus, StatusRole};

/// Scrapes answered at once; more are closed unanswered (a scraper retries).
const MAX_IN_FLIGHT: usize = 4;
/// How long a scraper may take to send its request or read the answer.
const SCRAPE_IO_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest request head read; a scrape's is a few hundred bytes.
const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// A float gauge.
type FloatGauge = Gauge<f64, AtomicU64>;
/// One label, e.g. `kind="append"`.
type Label = [(&'static str, String); 1];

/// The listening endpoint and what only the I/O shell measures.
pub struct MetricsEndpoint {
    listener: mio::net::TcpListener,
    storage_save: Histogram,
    in_flight: Arc<AtomicUsize>,
}

impl MetricsEndpoint {
    /// Listens on `addr` (port 0: one the kernel picks; the log names it).
    pub fn bind(addr: SocketAddrV4) -> Result<MetricsEndpoint, NetError> {
        let fail = |source| NetError { action: format!("serving metrics on {addr}"), source, setup: None };
        let listener = std::net::TcpListener::bind(addr).map_err(fail)?;
        listener.set_nonblocking(true).map_err(fail)?;
        let addr = listener.local_addr().map_err(fail)?;
        info!("metrics at http://{addr}/metrics");
        Ok(MetricsEndpoint {
            listener: mio::net::TcpListener::from_std(listener),
            // 50 µs to about 3 s: a page-cache write to a disk that stalls.
            storage_save: Histogram::new(exponential_buckets(50e-6, 2.0, 16)),
            in_flight: Arc::default(),
        })
    }

    /// The socket, to register with the event loop.
    pub fn source(&mut self) -> &mut mio::net::TcpListener {
        &mut self.listener
    }

    /// Records how long storing a change (write and fsync) took.
    pub fn observe_storage_save(&self, took: Duration) {
        self.storage_save.observe(took.as_secs_f64());
    }

    /// Answers every scrape waiting to be accepted with `text()`.
    pub fn accept_all(&mut self, text: impl Fn() -> String) {
        loop {
            match self.listener.accept() {
                Ok((stream, from)) => self.answer(stream, from, &text),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return warn!("accepting a metrics scrape failed: {e}"),
            }
        }
    }

    /// The histograms this endpoint keeps, for [`render`].
    pub fn storage_save(&self) -> &Histogram {
        &self.storage_save
    }

    fn answer(&self, stream: mio::net::TcpStream, from: SocketAddr, text: &impl Fn() -> String) {
        if self.in_flight.load(Ordering::SeqCst) >= MAX_IN_FLIGHT {
            return debug!("metrics scrape from {from} closed: {MAX_IN_FLIGHT} already in flight");
        }
        let stream = TcpStream::from(stream);
        let body = text();
        let in_flight = Arc::clone(&self.in_flight);
        in_flight.fetch_add(1, Ordering::SeqCst);
        let spawned = std::thread::Builder::new().name("metrics".into()).spawn(move || {
            if let Err(e) = serve(stream, &body) {
                debug!("metrics scrape from {from}: {e}");
            }
            in_flight.fetch_sub(1, Ordering::SeqCst);
        });
        if let Err(e) = spawned {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            warn!("cannot answer a metrics scrape: no thread: {e}");
        }
    }
}

/// Reads one request and answers it: the metrics for `GET /metrics`.
fn serve(mut stream: TcpStream, body: &str) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(SCRAPE_IO_TIMEOUT))?;
    stream.set_write_timeout(Some(SCRAPE_IO_TIMEOUT))?;
    let head = read_head(&mut stream)?;
    let response = respond(&head, body);
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

/// The request up to its blank line (or as much as arrived, at most
/// [`MAX_REQUEST_BYTES`]).
fn read_head(stream: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while head.len() < MAX_REQUEST_BYTES && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..read]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// The HTTP response to a request whose head is `head`.
fn respond(head: &str, body: &str) -> String {
    let mut words = head.split_whitespace();
    let (status, content_type, body) = match (words.next(), words.next().and_then(|p| p.split('?').next())) {
        (Some("GET"), Some("/metrics")) => {
            ("200 OK", "application/openmetrics-text; version=1.0.0; charset=utf-8", body)
        }
        (Some("GET"), _) => ("404 Not Found", "text/plain; charset=utf-8", "roomcast serves /metrics only\n"),
        _ => ("405 Method Not Allowed", "text/plain; charset=utf-8", "use GET /metrics\n"),
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// What one scrape reports.
pub struct Scrape<'a> {
    /// This server's ID.
    pub id: u64,
    /// What `status` would answer now.
    pub status: &'a ServerStatus,
    /// The node's counters.
    pub stats: &'a NodeStats,
    /// Time to store each change, when the server has a data directory.
    pub storage_save: Option<&'a Histogram>,
}

/// The OpenMetrics text of `scrape`.
pub fn render(scrape: &Scrape) -> String {
    let mut registry = Registry::with_prefix("roomcast");
    register_state(&mut registry, scrape);
    register_counts(&mut registry, scrape.stats, scrape.status);
    register_heartbeat(&mut registry, scrape);
    if let Some(histogram) = scrape.storage_save {
        registry.register(
            "storage_save_seconds",
            "Time to write a change to the data directory and fsync it",
            histogram.clone(),
        );
    }
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut text, &registry);
    text
}

fn gauge(value: u64) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
    gauge
}

fn counter(value: u64) -> Counter {
    let counter = Counter::default();
    counter.inc_by(value);
    counter
}

fn counters<'k>(label: &'static str, counts: impl IntoIterator<Item = (&'k str, u64)>) -> Family<Label, Counter> {
    let family = Family::<Label, Counter>::default();
    for (key, value) in counts {
        family.get_or_create(&[(label, key.to_string())]).inc_by(value);
    }
    family
}

/// Role, leader and log positions.
fn register_state(registry: &mut Registry, scrape: &Scrape) {
    let status = scrape.status;
    registry.register("server_id", "This server's ID", gauge(scrape.id));
    let roles = Family::<Label, Gauge>::default();
    let role_names = [
        (StatusRole::Leader, "leader"),
        (StatusRole::Follower, "follower"),
        (StatusRole::Syncing, "syncing"),
        (StatusRole::Candidate, "candidate"),
    ];
    for (role, name) in role_names {
        roles.get_or_create(&[("role", name.to_string())]).set(i64::from(status.role == role));
    }
    registry.register("role", "1 for this server's role (syncing: a follower catching up)", roles);
    registry.register("leader_id", "The leader this server follows (itself when leading); 0 while electing", {
        gauge(status.leader.unwrap_or(0))
    });
    registry.register("term", "The highest term this server knows", gauge(status.term));
    registry.register("applied", "Sequence number of the last change applied to the table", gauge(status.applied));
    registry.register("commit", "This server's commit point", gauge(status.commit));
    registry.register("last", "Sequence number of the last log entry, committed or not", gauge(status.last));
    registry.register("reservations", "Reservations in the table", gauge(status.reservations));
    registry.register("keyed", "1 when the group's datagrams are authenticated", {
        gauge(u64::from(status.auth.server_key.is_some()))
    });
}

/// What the server received, answered and went through.
fn register_counts(registry: &mut Registry, stats: &NodeStats, status: &ServerStatus) {
    let copied = |map: &'_ std::collections::BTreeMap<&'static str, u64>| -> Vec<(&'static str, u64)> {
        map.iter().map(|(k, v)| (*k, *v)).collect()
    };
    registry.register("requests", "Client requests received, by command", counters("command", copied(&stats.requests)));
    registry.register("replies", "Answers sent to clients, by kind", counters("answer", copied(&stats.replies)));
    registry.register(
        "writes",
        "Answers to reserves and cancels, by outcome",
        counters("outcome", copied(&stats.writes)),
    );
    registry.register("elections", "Elections this server ran as a candidate", counter(stats.elections));
    registry.register("failovers", "Times this server declared its leader failed", counter(stats.failovers));
    registry.register("hand_overs", "Times this server, leading, handed over to a higher one", {
        counter(stats.hand_overs)
    });
    registry.register("conflicts", "Writes dropped when partitions healed", counter(status.conflicts_total));
    registry.register("datagrams", "Datagrams accepted, by message kind", counters("kind", copied(&stats.datagrams)));
    let rejected = status.auth.rejected;
    let reasons = [
        ("unauthenticated", rejected.unauthenticated),
        ("unknown_key", rejected.unknown_key),
        ("bad_mac", rejected.bad_mac),
        ("replay", rejected.replay),
        ("duplicate", rejected.duplicate),
        ("malformed", rejected.malformed),
        ("unexpected_key", rejected.unexpected_key),
    ];
    registry.register("datagrams_dropped", "Datagrams refused, by reason", counters("reason", reasons));
}

/// The heartbeat round trip to the leader, against the timeout.
fn register_heartbeat(registry: &mut Registry, scrape: &Scrape) {
    let seconds = |ms: u64| Duration::from_millis(ms).as_secs_f64();
    let timeout = FloatGauge::default();
    timeout.set(seconds(scrape.status.heartbeat_timeout_ms));
    registry.register("heartbeat_timeout_seconds", "The configured heartbeat timeout", timeout);
    let rtt = Family::<Label, FloatGauge>::default();
    if let Some((leader, took)) = scrape.stats.heartbeat_rtt {
        rtt.get_or_create(&[("member", leader.to_string())]).set(took.as_secs_f64());
    }
    registry.register(
        "heartbeat_rtt_seconds",
        "Round trip of this server's last answered heartbeat to the member it follows",
        rtt,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_of_metrics_is_answered_with_them() {
        let cases = [
            ("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK"),
            ("GET /metrics?x=1 HTTP/1.0\r\n\r\n", "HTTP/1.1 200 OK"),
            ("GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found"),
            ("POST /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 405 Method Not Allowed"),
            ("", "HTTP/1.1 405 Method Not Allowed"),
        ];
        for (i, (head, want)) in cases.iter().enumerate() {
            let got = respond(head, "body");
            assert!(got.starts_with(want), "#{i}: got {got:?}, want {want:?}");
            assert_eq!(got.contains("\r\n\r\nbody"), want.contains("200"), "#{i}: {got:?}");
        }
    }

    #[test]
    fn a_scrape_reports_role_positions_counts_and_round_trip() {
        let status = ServerStatus {
            role: StatusRole::Follower,
            leader: Some(300),
            term: 7,
            applied: 41,
            commit: 41,
            last: 42,
            reservations: 2,
            digest: 0,
            leader_heard_ms: Some(30),
            heartbeat_interval_ms: 200,
            heartbeat_timeout_ms: 1000,
            min_replicas: 1,
            conflicts_total: 0,
            conflicts: Vec::new(),
            auth: crate::wire::AuthStatus::default(),
        };
        let mut stats = NodeStats::default();
        stats.datagrams.insert("append", 5);
        stats.writes.insert("reserved", 2);
        stats.failovers = 1;
        stats.heartbeat_rtt = Some((300, Duration::from_micros(250)));
        let text = render(&Scrape { id: 200, status: &status, stats: &stats, storage_save: None });
        let wanted = [
            "roomcast_role{role=\"follower\"} 1",
            "roomcast_role{role=\"leader\"} 0",
            "roomcast_leader_id 300",
            "roomcast_term 7",
            "roomcast_commit 41",
            "roomcast_last 42",
            "roomcast_datagrams_total{kind=\"append\"} 5",
            "roomcast_writes_total{outcome=\"reserved\"} 2",
            "roomcast_failovers_total 1",
            "roomcast_datagrams_dropped_total{reason=\"replay\"} 0",
            "roomcast_heartbeat_rtt_seconds{member=\"300\"} 0.00025",
            "roomcast_heartbeat_timeout_seconds 1.0",
            "# EOF",
        ];
        for (i, line) in wanted.iter().enumerate() {
            assert!(text.lines().any(|l| l == *line), "#{i}: no line {line:?} in\n{text}");
        }
    }
}
