//! keepalived as a peer (Debian's `keepalived`): three VRRP routers
//! (priorities 200, 190, 180, one virtual address) on a [`Lan`] of network
//! namespaces the bench builds and deletes. Each trial kills the master's
//! keepalived with SIGKILL (its VRRP child first, then the parent, so that
//! nothing is sent on the way out), or stops it with SIGTERM (it then sends
//! a priority-0 advert), and times the `Entering MASTER STATE` line of the
//! next router. The old master then restarts and takes the address back
//! (preemption) before the next trial. At the default advert interval (1 s)
//! and at 10 ms adverts (VRRPv3).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Serialize;

use super::super::Settings;
use super::super::error::BenchError;
use super::super::netns::Isolation;
use super::super::procs::{Bell, ServerProc, tool_available};
use super::super::report::Row;
use super::super::stats::{Summary, fmt_us};
use super::lan::Lan;

/// How long a router may take to start or take over.
const PATIENCE: Duration = Duration::from_secs(30);
const MASTER: &str = "Entering MASTER STATE";

/// Failover at one advert interval.
#[derive(Debug, Clone, Serialize)]
pub struct KeepalivedFailover {
    /// `advert_int`, s.
    pub advert_int_s: f64,
    /// Kill -9 of the master to the next one entering MASTER state.
    pub kill: Summary,
    /// SIGTERM of the master to the next one entering MASTER state.
    pub stop: Summary,
}

/// keepalived's figures.
#[derive(Debug, Clone, Serialize)]
pub struct KeepalivedResult {
    /// `keepalived --version`, first line.
    pub version: String,
    /// Default adverts, then 10 ms ones.
    pub failover: Vec<KeepalivedFailover>,
}

/// Finds keepalived and what it needs, or says why it is skipped.
pub fn find(isolation: &Isolation) -> Result<String, String> {
    if !tool_available("keepalived", "--version") {
        return Err("keepalived is not installed (Debian: apt-get install keepalived)".into());
    }
    if !nix::unistd::geteuid().is_root() {
        return Err("the keepalived LAN needs root (network namespaces)".into());
    }
    if !tool_available("ip", "-V") {
        return Err("the keepalived LAN needs the `ip` command (iproute2)".into());
    }
    let _ = isolation;
    let output = Command::new("keepalived").arg("--version").output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
    Ok(text.lines().next().unwrap_or("keepalived").to_string())
}

/// Runs the keepalived measurements.
pub fn run(version: &str, settings: &Settings) -> Result<KeepalivedResult, BenchError> {
    let scratch = tempfile::Builder::new()
        .prefix("roomcast-bench-keepalived-")
        .tempdir_in(settings.scratch_dir())
        .map_err(BenchError::io("creating a scratch directory"))?;
    let mut failover = Vec::new();
    for advert in [1.0, 0.01] {
        let lan = Lan::build(3)?;
        let mut routers = Routers::start(&lan, scratch.path(), advert)?;
        let kills = (0..settings.kill_trials()).map(|_| routers.trial(false)).collect::<Result<Vec<_>, _>>()?;
        let stops = (0..settings.clean_stop_trials()).map(|_| routers.trial(true)).collect::<Result<Vec<_>, _>>()?;
        drop(routers); // the processes go before their namespaces
        drop(lan);
        failover.push(KeepalivedFailover {
            advert_int_s: advert,
            kill: Summary::of(kills, None),
            stop: Summary::of(stops, None),
        });
    }
    Ok(KeepalivedResult { version: version.to_string(), failover })
}

/// Three keepalived processes, one per host of the LAN; killed when dropped.
struct Routers {
    namespaces: Vec<String>,
    configs: Vec<std::path::PathBuf>,
    pid_files: Vec<(std::path::PathBuf, std::path::PathBuf)>,
    processes: Vec<Option<ServerProc>>,
    bell: Arc<Bell>,
}

impl Routers {
    fn start(lan: &Lan, scratch: &Path, advert: f64) -> Result<Routers, BenchError> {
        let mut routers = Routers {
            namespaces: (0..3).map(|i| lan.namespace(i).to_string()).collect(),
            configs: Vec::new(),
            pid_files: Vec::new(),
            processes: Vec::new(),
            bell: Bell::new(),
        };
        for i in 0..3 {
            let dir = scratch.join(lan.namespace(i));
            std::fs::create_dir_all(&dir).map_err(BenchError::io(format!("creating {}", dir.display())))?;
            let config = dir.join("keepalived.conf");
            let text = config_text(i, advert, lan);
            std::fs::write(&config, text).map_err(BenchError::io(format!("writing {}", config.display())))?;
            routers.configs.push(config);
            routers.pid_files.push((dir.join("keepalived.pid"), dir.join("vrrp.pid")));
            routers.processes.push(None);
        }
        for i in 0..3 {
            routers.launch(i)?;
        }
        routers.wait_master(0, 0)?;
        Ok(routers)
    }

    fn launch(&mut self, i: usize) -> Result<(), BenchError> {
        let (pid, vrrp_pid) = &self.pid_files[i];
        // A killed router's VRRP child may linger as a zombie whose PID its
        // file still names; keepalived would take it for a running daemon.
        for file in [pid, vrrp_pid] {
            let _ = std::fs::remove_file(file);
        }
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.namespaces[i], "keepalived", "-n", "-l", "-D", "-P", "-R", "-G", "-f"]);
        command.arg(&self.configs[i]).arg("-p").arg(pid).arg("-r").arg(vrrp_pid);
        self.processes[i] = Some(ServerProc::start(command, i as u64, &self.bell)?);
        Ok(())
    }

    /// Waits until router `i` prints `Entering MASTER STATE` after line `mark`.
    fn wait_master(&mut self, i: usize, mark: usize) -> Result<Instant, BenchError> {
        let process = self.processes[i].as_mut().ok_or_else(|| BenchError::Unexpected("router not running".into()))?;
        Ok(process.wait_line(mark, MASTER, PATIENCE)?.at)
    }

    /// Takes router 0 (the master) away, times router 1's take-over, and
    /// restarts router 0, which takes the address back.
    fn trial(&mut self, clean: bool) -> Result<Duration, BenchError> {
        let mark = self.processes[1].as_ref().map_or(0, ServerProc::mark);
        let mut master = self.processes[0].take().ok_or_else(|| BenchError::Unexpected("no master".into()))?;
        let zero = if clean {
            let at = master.terminate()?;
            master.wait_exit(PATIENCE)?;
            at
        } else {
            let child = std::fs::read_to_string(&self.pid_files[0].1).ok().and_then(|t| t.trim().parse::<i32>().ok());
            let at = Instant::now();
            if let Some(pid) = child {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            master.kill();
            at
        };
        drop(master);
        let took_over = self.wait_master(1, mark)?;
        self.launch(0)?;
        self.wait_master(0, 0)?;
        Ok(took_over - zero)
    }
}

impl Drop for Routers {
    fn drop(&mut self) {
        // The VRRP children were started by our children: kill them by the
        // PIDs their parents wrote, then the parents (ServerProc's drop).
        for (i, (_, vrrp_pid)) in self.pid_files.iter().enumerate() {
            if self.processes[i].is_some()
                && let Some(pid) = std::fs::read_to_string(vrrp_pid).ok().and_then(|t| t.trim().parse::<i32>().ok())
            {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        self.processes.clear();
    }
}

/// Router `i`'s configuration: priority 200 - 10 i, one virtual address.
fn config_text(i: usize, advert: f64, lan: &Lan) -> String {
    format!(
        "global_defs {{\n  router_id rcbench{i}\n  vrrp_version 3\n  script_user root\n  enable_script_security\n}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority {}\n  \
         advert_int {advert}\n  virtual_ipaddress {{\n    {}/24 dev eth0\n  }}\n}}\n",
        200 - 10 * i,
        lan.spare_addr()
    )
}

/// keepalived's rows of the table.
pub fn rows(k: &KeepalivedResult) -> Vec<Row> {
    let mut rows = Vec::new();
    for f in &k.failover {
        let advert = if f.advert_int_s >= 1.0 {
            "default advert 1 s".to_string()
        } else {
            format!("{:.0} ms adverts", f.advert_int_s * 1e3)
        };
        for (what, s) in [("kill -9", &f.kill), ("SIGTERM", &f.stop)] {
            rows.push(Row {
                figure: format!("keepalived ({advert}): {what} → new MASTER, p50/p99 ({} trials)", s.count),
                floor: String::new(),
                value: format!("{} / {}", fmt_us(s.p50_us), fmt_us(s.p99_us)),
                ratio: String::new(),
            });
        }
    }
    rows
}
