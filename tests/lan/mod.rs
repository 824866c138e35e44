//! Harness for "real LAN on one machine" tests: a handful of hosts, each a
//! Linux network namespace with its own `eth0`, cabled to one Linux bridge that
//! lives in a namespace of its own. The real `server` and `client` binaries run
//! inside the host namespaces with their default interface choice (no
//! `--interface`: a `224.0.0.0/4` route sends multicast out of `eth0`) and
//! `--ttl 1`, as on a real LAN.
//!
//! NETWORK SAFETY: everything the harness creates lives in namespaces it
//! creates itself: the bridge, both ends of every veth pair (the pair is
//! created inside a host namespace with its peer moved straight into the
//! bridge namespace), every address, route and nftables table (`netdev rcfault`). The host's own
//! interfaces, routes and firewall are never touched, and no namespace has a
//! route off the bridge, so no datagram can leave the machine. Deleting the
//! namespaces deletes all of it.
//!
//! Cleanup: [`Lan`] and every process handle share one [`Net`]; the namespaces
//! are deleted when the last of them is dropped, after the processes were
//! killed (each by its own PID), also when a test panics. Names are
//! `rc<pid>n<counter>b` (bridge) and `rc<pid>n<counter>h<i>` (hosts), so tests
//! running in parallel (threads or processes) never share a namespace.
//!
//! Privileges: namespaces need root. [`Lan::new_or_skip`] returns `None` and
//! prints why when they cannot be had, so the test can return early; with the
//! environment variable `CI` set it panics instead, so CI never passes a LAN
//! test by skipping it.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::ops::{Deref, DerefMut};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::common::{
    CLIENT_BIN, CLIENT_DEADLINE, ClientOutput, ClientSession, SERVER_BIN, ServerProcess, is_root, skip_or_fail,
    tool_available,
};

pub mod flood;
pub mod history;

/// The multicast group every LAN uses (each LAN is isolated, so they can share it).
pub const LAN_GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 77, 1);
/// The group's UDP port.
pub const LAN_PORT: u16 = 11111;
/// Options every server and client on the LAN gets: a LAN-wide multicast TTL.
pub const LAN_ARGS: [&str; 2] = ["--ttl", "1"];

static LAN_COUNTER: AtomicU64 = AtomicU64::new(0);

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

/// Runs `program args...`, optionally feeding `stdin`; `Err` carries the
/// command and its output when it cannot run or exits non-zero.
fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<(), String> {
    run_output(program, args, stdin).map(drop)
}

/// Like [`run`], returning what the command printed on stdout.
fn run_output(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let describe = || format!("`{program} {}`", args.join(" "));
    let mut command = Command::new(program);
    command.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = command.spawn().map_err(|e| format!("cannot run {}: {e}", describe()))?;
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(text.as_bytes()).map_err(|e| format!("writing to {}: {e}", describe()))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("waiting for {}: {e}", describe()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{} failed ({}): {}{}",
            describe(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args, None)
}

/// Deletes the namespaces of LANs whose test process is gone (killed by the
/// test runner, e.g. when it cancels the run after a failure, before its
/// cleanup could run). Only this harness's names (`rc<pid>n<k>b`,
/// `rc<pid>n<k>h<i>`) with a dead `<pid>` and no process inside are touched.
fn remove_abandoned_namespaces() {
    let Ok(list) = run_output("ip", &["netns", "list"], None) else { return };
    for name in list.lines().filter_map(|line| line.split_whitespace().next()) {
        let Some(pid) = harness_namespace_pid(name) else { continue };
        let owner_alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
        let empty = run_output("ip", &["netns", "pids", name], None).is_ok_and(|pids| pids.trim().is_empty());
        if !owner_alive && empty {
            match ip(&["netns", "del", name]) {
                Ok(()) => eprintln!("removed namespace {name}, left behind by test process {pid}"),
                Err(e) => eprintln!("warning: removing an abandoned namespace: {e}"),
            }
        }
    }
}

/// The test process ID in a namespace name this harness makes, if it is one.
fn harness_namespace_pid(name: &str) -> Option<u32> {
    let (pid, rest) = name.strip_prefix("rc")?.split_once('n')?;
    let (lan, host) = match rest.split_once('h') {
        Some((lan, host)) => (lan, host),
        None => (rest.strip_suffix('b')?, "0"),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(lan) && digits(host)).then(|| pid.parse().ok()).flatten()
}

// ---------------------------------------------------------------------------
// The network
// ---------------------------------------------------------------------------

/// Fault state of one host, rendered into its `netdev rcfault` nftables table.
#[derive(Default, Clone)]
struct Faults {
    /// Percentage of packets dropped on `eth0`, each way.
    loss: u8,
    /// Peers whose traffic is dropped both ways.
    blocked: BTreeSet<Ipv4Addr>,
    /// Multicast is dropped both ways, as by a network that does not carry it.
    multicast_dropped: bool,
}

/// The namespaces of one LAN; deleted on drop. Shared by [`Lan`] and every
/// process handle, so it outlives the processes running inside it.
struct Net {
    /// Bridge namespace, then one namespace per host.
    bridge_ns: String,
    hosts: Vec<String>,
    /// Every namespace created so far, in creation order (for cleanup of a half-built LAN too).
    created: Mutex<Vec<String>>,
    subnet: u8,
    faults: Mutex<Vec<Faults>>,
}

impl Net {
    fn add_ns(&self, name: &str) -> Result<(), String> {
        ip(&["netns", "add", name])?;
        self.created.lock().unwrap_or_else(|p| p.into_inner()).push(name.to_string());
        ip(&["-n", name, "link", "set", "lo", "up"])
    }

    fn build(&self) -> Result<(), String> {
        let br = self.bridge_ns.as_str();
        self.add_ns(br)?;
        // No IGMP snooping: multicast floods to every port, as on a dumb switch.
        ip(&["-n", br, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"])?;
        ip(&["-n", br, "link", "set", "br0", "up"])?;
        for (i, ns) in self.hosts.iter().enumerate() {
            let ns = ns.as_str();
            let port = format!("p{i}");
            let cidr = format!("{}/24", self.addr(i));
            self.add_ns(ns)?;
            // Created inside the host namespace, the peer moved straight into the
            // bridge namespace: no end of the pair ever appears on the host.
            ip(&["-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns", br])?;
            ip(&["-n", br, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", br, "link", "set", &port, "up"])?;
            ip(&["-n", ns, "addr", "add", &cidr, "dev", "eth0"])?;
            ip(&["-n", ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0"])?;
        }
        Ok(())
    }

    fn addr(&self, host: usize) -> Ipv4Addr {
        assert!(host < self.hosts.len(), "host {host} of a LAN with {} hosts", self.hosts.len());
        Ipv4Addr::new(10, 77, self.subnet, host as u8 + 1)
    }

    /// Writes host `host`'s fault table from `faults` (atomically: one nft transaction).
    ///
    /// The table is `netdev rcfault` on `eth0`, with `ingress` and `egress`
    /// chains: packets are dropped on the wire side of the interface, as a lossy
    /// cable or switch would. An `inet` output-hook drop is not loss: the kernel
    /// fails the sender's `sendto` with EPERM. An egress drop is reported to
    /// the stack as congestion, which UDP sockets ignore (unless IP_RECVERR).
    fn apply_faults(&self, host: usize, faults: &Faults) {
        let mut script = String::from("table netdev rcfault {}\ndelete table netdev rcfault\n");
        if faults.loss > 0 || !faults.blocked.is_empty() || faults.multicast_dropped {
            let mut ingress = Vec::new();
            let mut egress = Vec::new();
            if !faults.blocked.is_empty() {
                let set = faults.blocked.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ");
                ingress.push(format!("ip saddr {{ {set} }} drop"));
                egress.push(format!("ip daddr {{ {set} }} drop"));
            }
            if faults.multicast_dropped {
                ingress.push("ip daddr 224.0.0.0/4 drop".to_string());
                egress.push("ip daddr 224.0.0.0/4 drop".to_string());
            }
            if faults.loss > 0 {
                ingress.push(format!("numgen random mod 100 < {} drop", faults.loss));
                egress.push(format!("numgen random mod 100 < {} drop", faults.loss));
            }
            script.push_str(&format!(
                "table netdev rcfault {{\n\
                 \tchain ingress {{\n\t\ttype filter hook ingress device \"eth0\" priority 0; policy accept;\n\t\t{}\n\t}}\n\
                 \tchain egress {{\n\t\ttype filter hook egress device \"eth0\" priority 0; policy accept;\n\t\t{}\n\t}}\n\
                 }}\n",
                ingress.join("\n\t\t"),
                egress.join("\n\t\t")
            ));
        }
        let ns = self.hosts[host].as_str();
        run("ip", &["netns", "exec", ns, "nft", "-f", "-"], Some(&script))
            .unwrap_or_else(|e| panic!("setting faults on host {host} ({ns}): {e}\nscript:\n{script}"));
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let created = std::mem::take(&mut *self.created.lock().unwrap_or_else(|p| p.into_inner()));
        // Hosts first, then the bridge: deleting a namespace deletes its links,
        // and with them the veth peers in the other namespace.
        for ns in created.iter().rev() {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("warning: cleaning up the LAN: {e}");
            }
        }
    }
}

/// A LAN of hosts on one bridge; see the module documentation.
pub struct Lan {
    net: Arc<Net>,
}

impl Lan {
    /// Builds a LAN of `hosts` hosts (addresses `10.77.S.1` .. `10.77.S.hosts`, S
    /// chosen per LAN), or says why it cannot.
    pub fn new(hosts: usize) -> Result<Lan, String> {
        assert!((1..=250).contains(&hosts), "1 to 250 hosts, not {hosts}");
        if !is_root() {
            return Err("network namespaces need root (effective UID is not 0)".to_string());
        }
        if !tool_available("ip", "-V") {
            return Err("the `ip` command (iproute2) is not installed".to_string());
        }
        remove_abandoned_namespaces();
        let pid = std::process::id();
        let n = LAN_COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("rc{pid}n{n}");
        // Each LAN is sealed off in its own namespaces, so equal subnets would
        // not meet; a per-LAN /24 keeps logs and captures unambiguous anyway.
        let subnet = 1 + ((u64::from(pid) * 7 + n) % 254) as u8;
        let net = Net {
            bridge_ns: format!("{prefix}b"),
            hosts: (0..hosts).map(|i| format!("{prefix}h{i}")).collect(),
            created: Mutex::new(Vec::new()),
            subnet,
            faults: Mutex::new(vec![Faults::default(); hosts]),
        };
        // On error `net` is dropped here, deleting what was created.
        net.build()?;
        Ok(Lan { net: Arc::new(net) })
    }

    /// [`Lan::new`], or `None` after printing why the test is skipped (a panic
    /// instead when `CI` is set). `nft` says the test needs nftables (faults).
    pub fn new_or_skip(test: &str, hosts: usize, nft: bool) -> Option<Lan> {
        if nft && !tool_available("nft", "--version") {
            return skip_or_fail(test, "the namespace LAN", "the `nft` command (nftables) is not installed");
        }
        match Lan::new(hosts) {
            Ok(lan) => Some(lan),
            Err(reason) => skip_or_fail(test, "the namespace LAN", &reason),
        }
    }

    /// How many hosts the LAN has.
    pub fn hosts(&self) -> usize {
        self.net.hosts.len()
    }

    /// Host `host`'s address on `eth0`.
    pub fn addr(&self, host: usize) -> Ipv4Addr {
        self.net.addr(host)
    }

    /// Host `host`'s namespace name.
    pub fn namespace(&self, host: usize) -> &str {
        &self.net.hosts[host]
    }

    /// Every namespace of the LAN, bridge first.
    pub fn namespaces(&self) -> Vec<String> {
        std::iter::once(self.net.bridge_ns.clone()).chain(self.net.hosts.iter().cloned()).collect()
    }

    /// `[GROUP, PORT]` as command-line arguments.
    pub fn group_args(&self) -> [String; 2] {
        [LAN_GROUP.to_string(), LAN_PORT.to_string()]
    }

    /// `ip netns exec NS program ARGS...` for host `host`: `ip` execs the
    /// program, so the child's PID is the program's.
    fn on_host_args(&self, host: usize, program: &str, args: Vec<String>) -> Vec<String> {
        let mut all: Vec<String> =
            vec!["netns".into(), "exec".into(), self.namespace(host).to_string(), program.into()];
        all.extend(args);
        all
    }

    /// Starts `server --ttl 1 GROUP PORT [ID] EXTRA...` on host `host` (no
    /// `--interface`: the kernel's multicast route picks `eth0`). `ip netns
    /// exec` replaces itself with the server, so the child's PID is the
    /// server's PID, and its ID when `id` is `None`.
    pub fn start_server(&self, host: usize, id: Option<u64>, extra: &[&str]) -> LanServer {
        let mut args: Vec<String> = LAN_ARGS.iter().map(|s| s.to_string()).collect();
        args.extend(self.group_args());
        if let Some(id) = id {
            args.push(id.to_string());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let all = self.on_host_args(host, SERVER_BIN, args);
        let addr = self.addr(host);
        let label = |id, pid| format!("server {id} on host {host} ({addr}; pid {pid}, ip {all:?})");
        let process = ServerProcess::start_program("ip", all.clone(), id, &[], label);
        LanServer { process, host, _net: Arc::clone(&self.net) }
    }

    /// Runs `client --ttl 1 GROUP PORT ARGS...` on host `host` to completion
    /// (stdin closed). Options in `args` go before the command words. Killed,
    /// and the test panics with its output, past [`CLIENT_DEADLINE`].
    pub fn run_client(&self, host: usize, args: &[&str]) -> ClientOutput {
        let mut all: Vec<String> = LAN_ARGS.iter().map(|s| s.to_string()).collect();
        all.extend(self.group_args());
        all.extend(args.iter().map(|s| s.to_string()));
        let all = self.on_host_args(host, CLIENT_BIN, all);
        let what = format!("client on host {host}");
        ClientSession::start_program("ip", all, &[], &what).finish(CLIENT_DEADLINE)
    }

    fn update_faults(&self, hosts: impl IntoIterator<Item = usize>, change: impl Fn(&mut Faults)) {
        let mut all = self.net.faults.lock().unwrap_or_else(|p| p.into_inner());
        for host in hosts {
            change(&mut all[host]);
            self.net.apply_faults(host, &all[host]);
        }
    }

    /// Runs `body` on a thread of its own inside host `host`'s network
    /// namespace (sockets it opens are that host's), and returns its result.
    pub fn on_host<T: Send>(&self, host: usize, body: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.namespace(host));
        thread::scope(|scope| {
            let joined = scope.spawn(|| {
                let namespace = std::fs::File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
                nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET)
                    .unwrap_or_else(|e| panic!("entering {path}: {e}"));
                body()
            });
            joined.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Drops `percent`% of the packets arriving on and, independently, of those
    /// sent out of host `host`'s `eth0` (nftables `numgen random`), invisibly
    /// to the sender as on a lossy wire; 0 removes the loss.
    pub fn set_loss(&self, host: usize, percent: u8) {
        assert!(percent <= 100, "loss of {percent}%");
        self.update_faults([host], |f| f.loss = percent);
    }

    /// Drops all IPv4 traffic between every host of `a` and every host of `b`,
    /// both ways, on their `eth0`s (on top of any partition already in place).
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        let addrs = |hosts: &[usize]| hosts.iter().map(|&h| self.addr(h)).collect::<Vec<_>>();
        let (a_addrs, b_addrs) = (addrs(a), addrs(b));
        self.update_faults(a.iter().copied(), |f| f.blocked.extend(b_addrs.iter().copied()));
        self.update_faults(b.iter().copied(), |f| f.blocked.extend(a_addrs.iter().copied()));
    }

    /// Drops every multicast packet into and out of host `host`'s `eth0`, as
    /// a cloud network, a container overlay or a switch with IGMP snooping and
    /// no querier would. The ingress drop also takes the copy of the host's
    /// own multicast that loops back through `eth0`.
    pub fn drop_multicast(&self, host: usize) {
        self.update_faults([host], |f| f.multicast_dropped = true);
    }

    /// Removes every fault (partitions, loss, dropped multicast) from every host.
    pub fn heal(&self) {
        self.update_faults(0..self.hosts(), |f| *f = Faults::default());
    }
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// A server running on a LAN host: a [`ServerProcess`] (SIGKILLed by its
/// own PID when dropped) that keeps the LAN's namespaces until it is gone.
pub struct LanServer {
    process: ServerProcess,
    host: usize,
    /// Dropped after `process`: the namespaces outlive the server.
    _net: Arc<Net>,
}

impl LanServer {
    /// The host it runs on.
    pub fn host(&self) -> usize {
        self.host
    }
}

impl Deref for LanServer {
    type Target = ServerProcess;

    fn deref(&self) -> &ServerProcess {
        &self.process
    }
}

impl DerefMut for LanServer {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.process
    }
}

impl AsRef<ServerProcess> for LanServer {
    fn as_ref(&self) -> &ServerProcess {
        &self.process
    }
}

#[cfg(test)]
mod tests {
    use super::harness_namespace_pid;

    #[test]
    fn only_this_harness_namespace_names_are_recognised() {
        assert_eq!(harness_namespace_pid("rc29512n0b"), Some(29512));
        assert_eq!(harness_namespace_pid("rc29512n3h4"), Some(29512));
        for other in ["rc29512", "rcxn0b", "rc1n0x", "rc1nh2", "rc1n0h", "docker0", "rc1n0bb"] {
            assert_eq!(harness_namespace_pid(other), None, "{other}");
        }
    }
}
