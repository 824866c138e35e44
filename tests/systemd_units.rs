//! The Debian package under a real systemd: the test builds it (`cargo deb`,
//! a release build) and installs it with `dpkg -i` in a `systemd-nspawn`
//! container booted over this machine's own `/usr`, so that the shipped unit
//! (`systemd/roomcast-server@.service`), config (`config/`), binaries and
//! maintainer scripts (`dist/debian/`) are tested as an operator gets them.
//!
//! The container's root is a fresh tmpfs (`--volatile=yes`: its own `/etc`
//! and `/var`), with two writable overlays whose changes land in the test's
//! temporary directory, never on this machine: `/usr`, for the package's
//! files, and `/var/lib/dpkg`, this machine's package database, against
//! which dpkg checks the package's dependencies. dpkg runs with
//! `--no-triggers`: this machine's packages that watch the package's paths
//! (man-db) expect users and directories a fresh `/etc` lacks.
//!
//! NETWORK SAFETY: the container always runs with `--private-network`, so it
//! has nothing but its own loopback; the test gives that loopback a multicast
//! route, and the servers use the config file's group with no `--interface`,
//! as on a real host.
//!
//! Needs root, `systemd-nspawn` (Debian's `systemd-container`) and
//! `cargo deb` (`cargo install cargo-deb`), which `.ci/run` installs: skipped
//! otherwise, a failure when `CI` is set. The container is powered off and
//! its files removed when the test ends, also on failure; a container left by
//! a test run that was killed is removed by the next run.

// Tests run real processes and sockets and wait with the clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{PATIENCE, indent, is_root, skip_or_fail, tool_available};

/// Longest wait for the container to boot (1–2 s seen; a cold page cache is slower).
const BOOT_DEADLINE: Duration = Duration::from_secs(60);
/// The group and port in the shipped `config/roomcast.toml`.
const GROUP_AND_PORT: [&str; 2] = ["224.1.1.1", "11111"];
/// Prefix of this test's container (machine) names, followed by the test's PID.
const MACHINE_PREFIX: &str = "rcsd";
/// Where the package is seen in the container.
const PACKAGE_IN_CONTAINER: &str = "/root/roomcast.deb";
/// The group's key, as the package's postinst creates it.
const SERVER_KEY: &str = "/etc/roomcast/server.key";
/// A client key the test issues as the postinst's message says.
const CLIENT_KEY: &str = "/root/tester.key";
/// A PATH with the sbin directories dpkg needs (ldconfig, start-stop-daemon).
const ROOT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The package installs with a new group key (mode 600, root's) that a
/// second install keeps; three instances of the template unit elect the
/// highest ID, systemd restarts a SIGKILLed leader which leads again with its
/// data intact, and `systemctl stop` hands over at once and ends the service
/// successfully; purging the package stops the rest and removes the key.
#[test]
fn units_under_a_real_systemd_elect_restart_and_stop_cleanly() {
    let Some(container) = Container::boot_or_skip("units_under_a_real_systemd_elect_restart_and_stop_cleanly") else {
        return;
    };
    let key_id = container.install_package();
    let units = ["roomcast-server@100", "roomcast-server@200", "roomcast-server@300"];

    // Type=notify: `systemctl start` returns once every server sent READY=1,
    // that is after its first election.
    container.systemctl_ok(&[&["start"], &units[..]].concat());
    let started = Instant::now();
    container.wait_for_leader(&units, 300);
    container.client_ok(&["reserve", "SA318", "8:30-9:30", "Monday"], "Reservation confirmed");
    // Every server seals with the key the postinst made.
    let status = container.client_ok(&["status"], "3 servers answered");
    assert_eq!(status.matches(&format!(" {key_id} ")).count(), 3, "every server's KEY is {key_id}:\n{status}");

    let killed_pid = container.show(units[2], "MainPID");
    let killed = Instant::now();
    container.systemctl_ok(&["kill", "--signal=KILL", units[2]]);
    container.wait_until("systemd restarts the SIGKILLed leader", PATIENCE, || {
        container.show(units[2], "NRestarts") == "1"
            && container.show(units[2], "ActiveState") == "active"
            && container.show(units[2], "MainPID") != killed_pid
    });
    let restarted = killed.elapsed();
    container.wait_for_leader(&units, 300);
    let recovered = killed.elapsed();
    // The restarted leader answers from the state directory it kept.
    container.client_ok(&["check", "SA318"], "SA318 8:30-9:30 Monday");

    let stopping = Instant::now();
    container.systemctl_ok(&["stop", units[2]]);
    assert_eq!(container.show(units[2], "Result"), "success", "{}", container.journal());
    assert_eq!(container.show(units[2], "ExecMainStatus"), "0", "{}", container.journal());
    assert!(
        container.journal_of(units[2]).contains("leaving the group: handing over to 200"),
        "{}",
        container.journal()
    );
    container.wait_for_leader(&units[..2], 200);
    let handed_over = stopping.elapsed();
    container.client_ok(&["reserve", "SA318", "9:30-10:30", "Monday"], "Reservation confirmed");

    // The watchdog (WatchdogSec=5s) was fed: the first two ran past it unrestarted.
    let watchdog = Duration::from_secs(5);
    container.wait_until("the servers run past their watchdog interval", PATIENCE, || {
        started.elapsed() > watchdog + watchdog / 5
    });
    for unit in &units[..2] {
        assert_eq!(container.show(unit, "NRestarts"), "0", "{unit}\n{}", container.journal());
        assert_eq!(container.show(unit, "ActiveState"), "active", "{unit}\n{}", container.journal());
    }
    container.purge_package(&units[..2]);
    println!(
        "systemd: after SIGKILL of leader 300 systemd restarted it in {} ms and all agreed on it again after {} ms; \
         `systemctl stop` of it returned and 200 led within {} ms",
        restarted.as_millis(),
        recovered.as_millis(),
        handed_over.as_millis()
    );
}

/// A booted `systemd-nspawn` container; powered off and removed on drop.
struct Container {
    nspawn: Child,
    /// The container's PID 1 (systemd), as seen from here.
    init_pid: u32,
    dir: tempfile::TempDir,
    name: String,
}

impl Container {
    /// Boots a container, or returns `None` after printing why it cannot here
    /// (a panic instead when `CI` is set).
    fn boot_or_skip(test: &str) -> Option<Container> {
        let reason = if !is_root() {
            "booting a container needs root (effective UID is not 0)"
        } else if !tool_available("systemd-nspawn", "--version") {
            "the `systemd-nspawn` command (Debian package systemd-container) is not installed"
        } else if !tool_available("ip", "-V") {
            "the `ip` command (iproute2) is not installed"
        } else if !tool_available("dpkg", "--version") {
            "the `dpkg` command is not installed (the container installs the package with it)"
        } else if !Command::new(cargo()).args(["deb", "--version"]).output().is_ok_and(|o| o.status.success()) {
            "`cargo deb` is not installed: cargo install cargo-deb --locked"
        } else {
            return Some(Container::boot());
        };
        skip_or_fail(test, "a systemd container", reason)
    }

    fn boot() -> Container {
        remove_abandoned_containers();
        let dir =
            tempfile::Builder::new().prefix("roomcast-systemd-").tempdir().expect("creating a temporary directory");
        let name = format!("{MACHINE_PREFIX}{}", std::process::id());
        let package = build_package(dir.path());
        let args = nspawn_args(dir.path(), &name, &package);
        let console = std::fs::File::create(dir.path().join("console.log")).expect("creating the console log");
        let nspawn = Command::new("systemd-nspawn")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(console.try_clone().expect("duplicating the console log"))
            .stderr(console)
            .spawn()
            .expect("starting systemd-nspawn");
        let mut container = Container { nspawn, init_pid: 0, dir, name };
        container.init_pid = container.wait_for_init();
        container.wait_until("the container finishes booting", BOOT_DEADLINE, || {
            let state = container.run(&["systemctl", "is-system-running"]);
            matches!(String::from_utf8_lossy(&state.stdout).trim(), "running" | "degraded")
        });
        // Never touch this machine's own network: the container must have its own.
        let namespace = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
        let ours = namespace("self");
        assert!(ours.is_some() && namespace(&container.init_pid.to_string()) != ours, "not a private network");
        // The private network has only `lo`; give it what a LAN interface has.
        container.run_ok(&["ip", "link", "set", "lo", "multicast", "on"]);
        container.run_ok(&["ip", "route", "add", "224.0.0.0/4", "dev", "lo", "src", "127.0.0.1"]);
        container
    }

    /// The PID of the container's systemd: nspawn's child once it runs systemd.
    fn wait_for_init(&mut self) -> u32 {
        let nspawn = self.nspawn.id();
        let deadline = Instant::now() + BOOT_DEADLINE;
        loop {
            if let Some(pid) = children_of(nspawn).into_iter().find(|&pid| comm(pid).as_deref() == Some("systemd")) {
                return pid;
            }
            if let Ok(Some(status)) = self.nspawn.try_wait() {
                panic!("systemd-nspawn exited with {status} before booting:\n{}", self.console());
            }
            assert!(Instant::now() < deadline, "the container's systemd did not start:\n{}", self.console());
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs a command inside the container (all its namespaces).
    fn run(&self, command: &[&str]) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.init_pid.to_string(), "-a"])
            .args(command)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {command:?} in the container: {e}"))
    }

    /// [`Container::run`], asserting success; returns standard output.
    fn run_ok(&self, command: &[&str]) -> String {
        let output = self.run(command);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{command:?} in the container failed ({}):\n{stdout}{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            self.journal()
        );
        stdout
    }

    /// Runs dpkg in the container as an operator would (with the sbin
    /// directories in PATH), asserting success; returns what it printed.
    fn dpkg(&self, args: &[&str]) -> String {
        self.run_ok(&[&["env", ROOT_PATH, "dpkg", "--no-triggers"], args].concat())
    }

    /// Installs the package: its postinst makes the group key (mode 600,
    /// root's) and says what to do next; installed again (as an upgrade
    /// would be), it keeps the key. Then issues a client key as the message
    /// says. Returns the ID of the server key, as the postinst printed it.
    fn install_package(&self) -> String {
        // Docker-made hosts have a policy-rc.d that forbids maintainer scripts
        // to start or stop services (deb-systemd-invoke obeys it); a machine
        // that runs servers has none. Removed from the overlay only.
        self.run_ok(&["rm", "-f", "/usr/sbin/policy-rc.d"]);
        let created = format!("created a new group key in {SERVER_KEY}");
        let first = self.dpkg(&["-i", PACKAGE_IN_CONTAINER]);
        assert!(first.contains(&created) && first.contains("--issue-client-key"), "dpkg -i printed:\n{first}");
        let key_id = first
            .split_once("(server key ")
            .and_then(|(_, rest)| rest.get(..8))
            .unwrap_or_else(|| panic!("dpkg -i did not print the server key's ID:\n{first}"))
            .to_string();
        assert_eq!(self.run_ok(&["stat", "-c", "%a %U %G", SERVER_KEY]).trim(), "600 root root");
        let key = self.run_ok(&["sha256sum", SERVER_KEY]);
        let again = self.dpkg(&["-i", PACKAGE_IN_CONTAINER]);
        assert!(!again.contains(&created), "the second dpkg -i printed:\n{again}");
        assert_eq!(self.run_ok(&["sha256sum", SERVER_KEY]), key, "a second install must keep the key");
        let files = self.run_ok(&["dpkg", "--listfiles", "roomcast"]);
        for file in [
            "/usr/share/man/man1/roomcast-server.1.gz",
            "/usr/share/man/man1/roomcast-client.1.gz",
            "/usr/share/bash-completion/completions/roomcast-client",
            "/usr/share/zsh/vendor-completions/_roomcast-server",
            "/usr/share/fish/vendor_completions.d/roomcast-client.fish",
        ] {
            assert!(files.lines().any(|line| line == file), "the package lacks {file}:\n{files}");
        }
        let conffiles = self.run_ok(&["dpkg-query", "--show", "--showformat=${Conffiles}", "roomcast"]);
        for file in ["/etc/roomcast/roomcast.toml", "/etc/roomcast/catalog.toml"] {
            assert!(conffiles.contains(file), "{file} is not a conffile: {conffiles}");
        }
        let issue = ["--key-file", SERVER_KEY, "--issue-client-key", "tester", CLIENT_KEY];
        self.run_ok(&[&["/usr/bin/roomcast-server"], &issue[..]].concat());
        key_id
    }

    /// Purges the package: its prerm stops the servers still `running`
    /// (cleanly), its postrm removes the group key and the servers' state,
    /// and dpkg the rest.
    fn purge_package(&self, running: &[&str]) {
        for unit in running {
            assert_eq!(self.show(unit, "ActiveState"), "active", "{unit}\n{}", self.journal());
        }
        self.dpkg(&["--purge", "roomcast"]);
        for unit in running {
            assert_eq!(self.show(unit, "ActiveState"), "inactive", "{unit}\n{}", self.journal());
            assert!(self.journal_of(unit).contains("Deactivated successfully"), "{unit}\n{}", self.journal());
        }
        for gone in [
            "/etc/roomcast",
            "/var/lib/roomcast",
            "/var/lib/private/roomcast",
            "/usr/bin/roomcast-server",
            "/usr/lib/systemd/system/roomcast-server@.service",
        ] {
            assert!(!self.run(&["test", "-e", gone]).status.success(), "{gone} is left after the purge");
        }
    }

    fn systemctl_ok(&self, args: &[&str]) {
        self.run_ok(&[&["systemctl"], args].concat());
    }

    /// One property of a unit, e.g. `show("roomcast-server@100", "MainPID")`.
    fn show(&self, unit: &str, property: &str) -> String {
        self.run_ok(&["systemctl", "show", "--value", "-p", property, unit]).trim().to_string()
    }

    /// Waits until every unit's status line (sent with `STATUS=`) names `leader`.
    fn wait_for_leader(&self, units: &[&str], leader: u64) {
        let leading = format!("leading the group as {leader} ");
        let following = format!("following leader {leader} ");
        self.wait_until(&format!("{units:?} agree on leader {leader}"), PATIENCE, || {
            units.iter().all(|unit| {
                let status = self.show(unit, "StatusText");
                status.starts_with(&leading) || status.starts_with(&following)
            })
        });
    }

    /// Runs the installed client once against the shipped config's group and
    /// asserts success and an answer from the servers containing `expected`;
    /// returns what it printed.
    fn client_ok(&self, command: &[&str], expected: &str) -> String {
        let client = ["/usr/bin/roomcast-client", GROUP_AND_PORT[0], GROUP_AND_PORT[1], "--key-file", CLIENT_KEY];
        let stdout = self.run_ok(&[&client[..], command].concat());
        assert!(
            stdout.contains("(From servers): ") && stdout.contains(expected),
            "client {command:?} printed:\n{}\nexpected an answer from the servers with {expected:?}\n{}",
            indent(&stdout),
            self.journal()
        );
        stdout
    }

    fn wait_until(&self, what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}\n{}", self.journal());
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn journal_of(&self, unit: &str) -> String {
        String::from_utf8_lossy(&self.run(&["journalctl", "--no-pager", "-u", unit]).stdout).into_owned()
    }

    /// The container's journal (what systemd and the servers logged), for failures.
    fn journal(&self) -> String {
        let output = self.run(&["journalctl", "--no-pager", "-n", "300"]);
        format!("--- container journal ---\n{}", indent(&String::from_utf8_lossy(&output.stdout)))
    }

    fn console(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default();
        format!("--- container console ---\n{}", indent(&log))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // SIGTERM asks nspawn for an orderly poweroff of the container.
        power_off(self.nspawn.id(), &mut || self.nspawn.try_wait().ok().flatten().is_some());
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
        remove_propagation_dir(&self.name);
    }
}

/// Builds the package into `dir` with `cargo deb` (a release build of the
/// server and the client, quick when they are built already: `.ci/run`
/// builds them first) and returns its path.
fn build_package(dir: &Path) -> PathBuf {
    let package = dir.join("roomcast.deb");
    let started = Instant::now();
    let output = Command::new(cargo())
        .args(["deb", "--fast", "--output"])
        .arg(&package)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .expect("running cargo deb");
    assert!(
        output.status.success(),
        "`cargo deb` failed ({}):\n{}",
        output.status,
        indent(&String::from_utf8_lossy(&output.stderr))
    );
    println!("cargo deb built the package in {:.1} s", started.elapsed().as_secs_f64());
    package
}

/// The cargo that runs the tests (cargo sets `CARGO`), else the one in PATH.
fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The systemd-nspawn arguments: the host's `/usr` under a fresh tmpfs root
/// (`--volatile=yes`), made writable for dpkg by an overlay whose changes go
/// to `dir`, the host's package database the same way, the package where
/// [`PACKAGE_IN_CONTAINER`] says, and the first-boot pitfalls avoided (a
/// fixed machine ID, no first-boot wizard).
fn nspawn_args(dir: &Path, name: &str, package: &Path) -> Vec<String> {
    let machine_id = dir.join("machine-id");
    std::fs::write(&machine_id, format!("{:032x}\n", u128::from(std::process::id()) << 64 | 0x5eed))
        .expect("writing a machine ID");
    let upper = |name: &str| {
        let upper = dir.join(name);
        std::fs::create_dir(&upper).unwrap_or_else(|e| panic!("creating {}: {e}", upper.display()));
        upper.display().to_string()
    };
    let var_lib = upper("var-lib");
    std::fs::create_dir(Path::new(&var_lib).join("dpkg")).expect("creating the mount point of /var/lib/dpkg");
    let dpkg = upper("dpkg");
    // The host's ownership overrides name its own users and groups, which
    // the container's fresh /etc lacks (and dpkg refuses to run then): an
    // empty file in the upper directory hides them.
    std::fs::write(Path::new(&dpkg).join("statoverride"), "").expect("hiding the host's statoverride");
    vec![
        "--quiet".into(),
        "--boot".into(),
        "--volatile=yes".into(),
        "--private-network".into(),
        "--register=no".into(),
        // Without it nspawn asks the (absent) system bus for a scope unit.
        "--keep-unit".into(),
        "--console=read-only".into(),
        "--directory=/".into(),
        format!("--machine={name}"),
        format!("--bind-ro={}:/etc/machine-id", machine_id.display()),
        // DynamicUser= resolves its user names through nss-systemd.
        "--bind-ro=/etc/nsswitch.conf".into(),
        // What dpkg writes goes to the upper directories in `dir`. The
        // container's /var/lib is an empty directory of `dir` too: nspawn
        // creates an overlay's mount point, not its parents.
        format!("--overlay=/usr:{}:/usr", upper("usr")),
        format!("--bind={var_lib}:/var/lib"),
        format!("--overlay=/var/lib/dpkg:{dpkg}:/var/lib/dpkg"),
        format!("--bind-ro={}:{PACKAGE_IN_CONTAINER}", package.display()),
        "systemd.firstboot=off".into(),
        "systemd.mask=systemd-machine-id-commit.service".into(),
    ]
}

/// Sends SIGTERM to `pid` and waits up to 20 s for `exited()`.
fn power_off(pid: u32, exited: &mut dyn FnMut() -> bool) {
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !exited() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
}

/// nspawn keeps a directory per machine name for mount propagation; it
/// cannot remove it itself when the container's root is `/`.
fn remove_propagation_dir(name: &str) {
    let _ = std::fs::remove_dir_all(Path::new("/run/systemd/nspawn/propagate").join(name));
}

/// Powers off containers of this test whose test process is gone (killed by a
/// runner, so its `Drop` never ran).
fn remove_abandoned_containers() {
    for pid in all_pids() {
        if comm(pid).as_deref() != Some("systemd-nspawn") {
            continue;
        }
        let Some(name) = cmdline(pid).into_iter().find_map(|arg| arg.strip_prefix("--machine=").map(str::to_string))
        else {
            continue;
        };
        let owner = name.strip_prefix(MACHINE_PREFIX).and_then(|p| p.parse::<u32>().ok());
        if owner.is_some_and(|owner| !Path::new(&format!("/proc/{owner}")).exists()) {
            eprintln!("removing container {name} (systemd-nspawn pid {pid}) left by a test run that was killed");
            power_off(pid, &mut || !Path::new(&format!("/proc/{pid}")).exists());
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            remove_propagation_dir(&name);
        }
    }
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|entries| entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).ok().map(|c| c.trim().to_string())
}

fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| raw.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect())
        .unwrap_or_default()
}

/// Processes whose parent is `parent` (from `/proc/PID/stat`, field 4).
fn children_of(parent: u32) -> Vec<u32> {
    let parent_of = |pid: u32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) may hold spaces; it ends at the last ')'.
        stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse::<u32>().ok()
    };
    all_pids().into_iter().filter(|&pid| parent_of(pid) == Some(parent)).collect()
}
