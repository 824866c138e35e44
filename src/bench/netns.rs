//! A private network namespace for one part: the part runs on a thread of
//! its own that first calls `unshare(CLONE_NEWNET)` (network namespaces are
//! per thread in Linux), so every socket it opens and every process it starts
//! (servers, `nft`, `etcd`) lives in a namespace that has nothing but its own
//! loopback. Nothing in it can reach another host, nor meet other programs'
//! traffic on this one. The namespace disappears with its last thread,
//! socket and process: there is nothing to clean up by name.
//!
//! It needs root; otherwise (or with `--no-netns`) the part runs in the
//! shared namespace, still on 127.0.0.1 with TTL 0.

use serde::Serialize;

use super::error::BenchError;
use super::procs::{run_tool, tool_available};

/// Where a part ran.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "namespace", rename_all = "lowercase")]
pub enum Isolation {
    /// A private network namespace with only `lo`.
    Private,
    /// The host's namespace, loopback only; why not a private one.
    Shared {
        /// Why the part did not get a private namespace.
        why: String,
    },
}

impl Isolation {
    /// True in a private namespace (where the bench may set nftables counters).
    pub fn is_private(&self) -> bool {
        *self == Isolation::Private
    }

    /// For the table's heading.
    pub fn describe(&self) -> String {
        match self {
            Isolation::Private => "a private network namespace (loopback only)".into(),
            Isolation::Shared { why } => format!("the shared network namespace on 127.0.0.1, TTL 0 ({why})"),
        }
    }
}

/// Runs `part` on a new thread, in a private network namespace if `wanted`
/// and possible.
pub fn run_isolated<T: Send>(
    wanted: bool,
    part: impl FnOnce(&Isolation) -> Result<T, BenchError> + Send,
) -> Result<T, BenchError> {
    std::thread::scope(|scope| {
        let handle = scope.spawn(move || {
            let isolation = enter(wanted)?;
            part(&isolation)
        });
        handle.join().unwrap_or_else(|_| Err(BenchError::Unexpected("a part's thread panicked".into())))
    })
}

/// Moves the calling thread into a new network namespace and brings up its
/// loopback, or says why not.
fn enter(wanted: bool) -> Result<Isolation, BenchError> {
    if !wanted {
        return Ok(Isolation::Shared { why: "--no-netns".into() });
    }
    if !nix::unistd::geteuid().is_root() {
        return Ok(Isolation::Shared { why: "not root: network namespaces need root".into() });
    }
    if !tool_available("ip", "-V") {
        return Ok(Isolation::Shared { why: "the `ip` command (iproute2) is not installed".into() });
    }
    if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
        return Ok(Isolation::Shared { why: format!("unshare(CLONE_NEWNET) failed: {e}") });
    }
    // From here on the thread is in the new namespace: failing is an error.
    run_tool("ip", &["link", "set", "lo", "up"], None)?;
    run_tool("ip", &["link", "set", "lo", "multicast", "on"], None)?;
    Ok(Isolation::Private)
}

/// nftables counters of the datagrams one UDP port receives and sends, in a
/// private namespace only (table `inet roomcast_bench`, gone with the namespace).
pub struct PortCounters {
    port: u16,
}

/// Packets counted so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Datagrams to the port.
    pub received: u64,
    /// Datagrams from the port.
    pub sent: u64,
}

impl PortCounters {
    /// Starts counting datagrams to and from UDP `port`.
    pub fn install(isolation: &Isolation, port: u16) -> Result<PortCounters, BenchError> {
        if !isolation.is_private() {
            return Err(BenchError::Usage("port counters need a private network namespace".into()));
        }
        let script = format!(
            "table inet roomcast_bench {{}}\ndelete table inet roomcast_bench\n\
             table inet roomcast_bench {{\n\
             \tcounter rx {{}}\n\tcounter tx {{}}\n\
             \tchain input {{ type filter hook input priority 0; policy accept; udp dport {port} counter name \"rx\"; }}\n\
             \tchain output {{ type filter hook output priority 0; policy accept; udp sport {port} counter name \"tx\"; }}\n\
             }}\n"
        );
        run_tool("nft", &["-f", "-"], Some(&script))?;
        Ok(PortCounters { port })
    }

    /// The port counted.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The counts so far.
    pub fn read(&self) -> Result<Counts, BenchError> {
        Ok(Counts { received: packets("rx")?, sent: packets("tx")? })
    }
}

fn packets(counter: &str) -> Result<u64, BenchError> {
    let text = run_tool("nft", &["list", "counter", "inet", "roomcast_bench", counter], None)?;
    text.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| BenchError::Unexpected(format!("no packet count in `nft list counter`: {text}")))
}
