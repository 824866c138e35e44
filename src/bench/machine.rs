//! What the figures were measured on: CPU, cores, memory, kernel, from /proc.

use std::path::Path;

use serde::Serialize;

/// The machine of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// The CPU's model name.
    pub cpu: String,
    /// CPUs this process may run on.
    pub cpus: usize,
    /// Memory, MiB.
    pub memory_mib: u64,
    /// The kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads the machine's description; unknown parts say `unknown`.
    pub fn describe() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().into()))
            .unwrap_or_else(|| "unknown".to_string());
        let memory_mib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024);
        let kernel = read("/proc/sys/kernel/osrelease").trim().to_string();
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        Machine { cpu, cpus, memory_mib, kernel }
    }

    /// One line for the table's heading.
    pub fn line(&self) -> String {
        format!("{}, {} CPUs, {} MiB, Linux {}", self.cpu, self.cpus, self.memory_mib, self.kernel)
    }
}

/// The type of the file system `path` is on (from /proc/mounts), e.g. `ext4`.
pub fn filesystem_of(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let (_, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(point).then(|| (point.len(), kind.to_string()))
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "unknown".to_string(), |(_, kind)| kind)
}

/// The 1, 5 and 15 minute load averages (from /proc/loadavg): a busy machine
/// (other builds) moves every figure, the floor's too.
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}
