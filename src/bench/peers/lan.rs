//! A small LAN of network namespaces, for the keepalived peer: one
//! namespace per host, each with an `eth0` cabled (veth) to a bridge that
//! lives in a namespace of its own. Modelled on `tests/lan/mod.rs`.
//!
//! NETWORK SAFETY: both ends of every veth pair are created inside the
//! LAN's namespaces (the pair inside a host namespace, its peer moved
//! straight into the bridge namespace); the host's interfaces, routes and
//! firewall are never touched and no namespace has a route off the bridge,
//! so nothing can leave the machine. The namespaces are deleted when the
//! [`Lan`] is dropped, also when a part fails, after the processes in them
//! (the caller's handles, dropped first) were killed by PID.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};

use super::super::error::BenchError;
use super::super::procs::run_tool;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The LAN; see the module documentation.
pub struct Lan {
    bridge: String,
    hosts: Vec<String>,
    created: Vec<String>,
    subnet: u8,
}

fn ip(args: &[&str]) -> Result<String, BenchError> {
    run_tool("ip", args, None)
}

impl Lan {
    /// Builds a LAN of `hosts` hosts at 10.79.S.1 and up (S chosen per LAN).
    pub fn build(hosts: usize) -> Result<Lan, BenchError> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("rcb{}n{n}", std::process::id());
        let subnet = 1 + ((u64::from(std::process::id()) * 7 + n) % 254) as u8;
        let mut lan = Lan {
            bridge: format!("{prefix}b"),
            hosts: (0..hosts).map(|i| format!("{prefix}h{i}")).collect(),
            created: Vec::new(),
            subnet,
        };
        // On error `lan` is dropped, deleting what was made.
        lan.cable()?;
        Ok(lan)
    }

    fn add_namespace(&mut self, name: &str) -> Result<(), BenchError> {
        ip(&["netns", "add", name])?;
        self.created.push(name.to_string());
        ip(&["-n", name, "link", "set", "lo", "up"]).map(|_| ())
    }

    fn cable(&mut self) -> Result<(), BenchError> {
        let bridge = self.bridge.clone();
        self.add_namespace(&bridge)?;
        ip(&["-n", &bridge, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"])?;
        ip(&["-n", &bridge, "link", "set", "br0", "up"])?;
        for (i, host) in self.hosts.clone().iter().enumerate() {
            let port = format!("p{i}");
            self.add_namespace(host)?;
            ip(&["-n", host, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns", &bridge])?;
            ip(&["-n", &bridge, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &bridge, "link", "set", &port, "up"])?;
            ip(&["-n", host, "addr", "add", &format!("{}/24", self.addr(i)), "dev", "eth0"])?;
            ip(&["-n", host, "link", "set", "eth0", "up"])?;
        }
        Ok(())
    }

    /// Host `i`'s address.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 79, self.subnet, i as u8 + 1)
    }

    /// An address on the LAN that no host has (for a virtual address).
    pub fn spare_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 79, self.subnet, 100)
    }

    /// Host `i`'s namespace.
    pub fn namespace(&self, i: usize) -> &str {
        &self.hosts[i]
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        // Hosts first, then the bridge: deleting a namespace deletes its
        // links, and with them the veth peers in the other one.
        for name in self.created.iter().rev() {
            if let Err(e) = ip(&["netns", "del", name]) {
                eprintln!("warning: deleting network namespace {name}: {e}");
            }
        }
    }
}
