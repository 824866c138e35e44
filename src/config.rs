//! Configuration files: the server's settings (`--config FILE`, documented
//! in `config/roomcast.toml`) and the catalog of rooms, timeslots and days
//! (`config/catalog.toml`), which every server of a group must share.
//!
//! A setting given on the command line wins over the config file, which wins
//! over the built-in default. Anything unknown, malformed or impossible is
//! refused with the key, the file and what to do.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::auth::ServerKeys;
use crate::auth::file::read_server_keys;
use crate::driver::ServerSettings;
use crate::hooks::HookCommands;
use crate::net::{GroupAddr, parse_group, parse_metrics_addr, parse_peer};
use crate::node::Timing;
use crate::rooms::{Catalog, MAX_CATALOG_NAMES, MAX_NAME_CHARS};

/// Every server setting, each optional: what the command line or a config
/// file says. Keys in the file are these field names.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerOptions {
    /// Multicast group, e.g. "224.1.1.1".
    pub group: Option<String>,
    /// UDP port of the group.
    pub port: Option<u16>,
    /// Explicit server ID (default: the process ID).
    pub id: Option<u64>,
    /// Local interface address to join on and send from.
    pub interface: Option<Ipv4Addr>,
    /// Multicast TTL.
    pub ttl: Option<u32>,
    /// Servers reached by unicast too, as "ADDR:PORT" (where multicast is dropped).
    pub peers: Option<Vec<String>>,
    /// Heartbeat interval, in milliseconds.
    pub heartbeat_interval_ms: Option<u64>,
    /// Heartbeat timeout, in milliseconds.
    pub heartbeat_timeout_ms: Option<u64>,
    /// Election timeout, in milliseconds.
    pub election_timeout_ms: Option<u64>,
    /// Delay before each answer to a client, in milliseconds.
    pub service_delay_ms: Option<u64>,
    /// How long a higher server waits after starting before it takes over, in milliseconds.
    pub preempt_delay_ms: Option<u64>,
    /// Directory for the log and snapshots.
    pub data_dir: Option<PathBuf>,
    /// Servers that must hold a write before it is confirmed.
    pub min_replicas: Option<u64>,
    /// A catalog file (exclusive with `rooms`, `timeslots` and `days`).
    pub catalog: Option<PathBuf>,
    /// The rooms, inline.
    pub rooms: Option<Vec<String>>,
    /// The timeslots, inline.
    pub timeslots: Option<Vec<String>>,
    /// The days, inline.
    pub days: Option<Vec<String>>,
    /// Log level: error, warn, info, debug or trace.
    pub log_level: Option<String>,
    /// Command run when this server becomes the leader.
    pub on_leader: Option<String>,
    /// Command run when this server becomes a follower.
    pub on_follower: Option<String>,
    /// The group's server key file (`--generate-key`); none runs without keys.
    pub key_file: Option<PathBuf>,
    /// Where to serve Prometheus metrics: "ADDR:PORT", or "PORT" on 127.0.0.1.
    pub metrics: Option<String>,
}

impl ServerOptions {
    /// These options with relative `catalog` and `data_dir` paths taken as
    /// relative to the directory of `config_file`, as a reader of the file
    /// expects (a service's working directory is usually `/`).
    fn paths_relative_to(&self, config_file: &Path) -> ServerOptions {
        let dir = config_file.parent().unwrap_or(Path::new(""));
        let beside = |path: &Option<PathBuf>| path.as_ref().map(|p| dir.join(p));
        ServerOptions {
            catalog: beside(&self.catalog),
            data_dir: beside(&self.data_dir),
            key_file: beside(&self.key_file),
            ..self.clone()
        }
    }
}

/// What the server runs with once the command line, the config file and the
/// defaults are merged and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedServer {
    /// The settings for the driver.
    pub settings: ServerSettings,
    /// The log filter (`RUST_LOG` syntax), `None` for `RUST_LOG` or `info`.
    pub log_level: Option<String>,
}

/// Default heartbeat interval, timeout and election timeout, in milliseconds.
const DEFAULT_TIMINGS_MS: (u64, u64, u64) = (200, 1000, 200);

/// Reads and parses a server config file.
pub fn load_server_options(path: &Path) -> Result<ServerOptions, ConfigError> {
    let fail = |problem: String| ConfigError { path: path.to_path_buf(), problem };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read the config file: {e}")))?;
    parse_server_options(&text).map_err(fail)
}

/// Parses a server config file's text; the error says which key is wrong.
pub fn parse_server_options(text: &str) -> Result<ServerOptions, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
}

/// Where [`resolve_server_with`] gets the files that settings name (a
/// catalog, a key file): the disk for [`resolve_server`], or anything else
/// for a caller that must not read files (a fuzzer, a test).
pub trait ConfigFiles {
    /// The catalog file at `path`.
    fn catalog(&self, path: &Path) -> Result<Catalog, ConfigError>;
    /// The server key file at `path`, checked as [`read_server_keys`] checks it.
    fn server_keys(&self, path: &Path) -> Result<ServerKeys, String>;
}

/// The files as they are on disk.
struct Disk;

impl ConfigFiles for Disk {
    fn catalog(&self, path: &Path) -> Result<Catalog, ConfigError> {
        load_catalog(path)
    }

    fn server_keys(&self, path: &Path) -> Result<ServerKeys, String> {
        read_server_keys(path).map_err(|e| e.to_string())
    }
}

/// Merges `cli` over `file` (read from `path`) over the defaults, and checks
/// the result. Errors name the key and where it came from.
pub fn resolve_server(
    cli: &ServerOptions,
    file: Option<(&Path, &ServerOptions)>,
) -> Result<ResolvedServer, ConfigError> {
    resolve_server_with(cli, file, &Disk)
}

/// [`resolve_server`], with the files that settings name read from `files`.
pub fn resolve_server_with(
    cli: &ServerOptions,
    file: Option<(&Path, &ServerOptions)>,
    files: &dyn ConfigFiles,
) -> Result<ResolvedServer, ConfigError> {
    let empty = ServerOptions::default();
    let beside_file;
    let (path, from_file) = match file {
        Some((path, options)) => {
            beside_file = options.paths_relative_to(path);
            (path, &beside_file)
        }
        None => (Path::new("the command line"), &empty),
    };
    let fail = |problem: String| ConfigError { path: path.to_path_buf(), problem };
    // Says where a value came from, for error messages.
    let origin = |flag: &str, key: &str, given_on_cli: bool| match given_on_cli {
        true => format!("--{flag}"),
        false => format!("`{key}`"),
    };

    let group_text = pick(&cli.group, &from_file.group)
        .ok_or_else(|| fail("no multicast group: give GROUP PORT on the command line or `group` and `port`".into()))?;
    let group = parse_group(&group_text)
        .map_err(|e| fail(format!("{}: {e}", origin("group", "group", cli.group.is_some()))))?;
    let port = pick(&cli.port, &from_file.port).ok_or_else(|| fail("no port: give GROUP PORT or `port`".into()))?;
    if port == 0 {
        return Err(fail(format!(
            "{}: port 0 is not a port; use 1 to 65535",
            origin("port", "port", cli.port.is_some())
        )));
    }
    let (interval, timeout, election) = DEFAULT_TIMINGS_MS;
    let interval = pick(&cli.heartbeat_interval_ms, &from_file.heartbeat_interval_ms).unwrap_or(interval);
    let timeout = pick(&cli.heartbeat_timeout_ms, &from_file.heartbeat_timeout_ms).unwrap_or(timeout);
    let election = pick(&cli.election_timeout_ms, &from_file.election_timeout_ms).unwrap_or(election);
    if interval == 0 || election == 0 {
        return Err(fail("`heartbeat_interval_ms` and `election_timeout_ms` must be at least 1".into()));
    }
    if timeout <= interval {
        let key = origin("heartbeat-timeout", "heartbeat_timeout_ms", cli.heartbeat_timeout_ms.is_some());
        return Err(fail(format!(
            "{key} ({timeout} ms) must be longer than the heartbeat interval ({interval} ms), \
             or every follower would declare the leader failed between two heartbeats"
        )));
    }
    let min_replicas = pick(&cli.min_replicas, &from_file.min_replicas).unwrap_or(1);
    if min_replicas == 0 {
        return Err(fail("`min_replicas` must be at least 1 (the leader itself)".into()));
    }
    let catalog = resolve_catalog(cli, from_file, files).map_err(fail)?;
    let peers = resolve_peers(cli, from_file).map_err(fail)?;
    let metrics = pick(&cli.metrics, &from_file.metrics)
        .map(|text| {
            parse_metrics_addr(&text)
                .map_err(|e| fail(format!("{}: {e}", origin("metrics", "metrics", cli.metrics.is_some()))))
        })
        .transpose()?;
    let keys = match pick(&cli.key_file, &from_file.key_file) {
        Some(path) => Some(files.server_keys(&path).map_err(fail)?),
        None => None,
    };
    let ms = Duration::from_millis;
    let settings = ServerSettings {
        group: GroupAddr {
            group,
            port,
            interface: pick(&cli.interface, &from_file.interface),
            ttl: pick(&cli.ttl, &from_file.ttl).unwrap_or(1),
        },
        peers,
        id: pick(&cli.id, &from_file.id),
        timing: Timing {
            heartbeat_interval: ms(interval),
            heartbeat_timeout: ms(timeout),
            election_timeout: ms(election),
            service_delay: ms(pick(&cli.service_delay_ms, &from_file.service_delay_ms).unwrap_or(0)),
            preempt_delay: ms(pick(&cli.preempt_delay_ms, &from_file.preempt_delay_ms).unwrap_or(0)),
        },
        catalog,
        data_dir: pick(&cli.data_dir, &from_file.data_dir),
        min_replicas: usize::try_from(min_replicas).unwrap_or(usize::MAX),
        hooks: HookCommands {
            on_leader: pick(&cli.on_leader, &from_file.on_leader),
            on_follower: pick(&cli.on_follower, &from_file.on_follower),
        },
        keys,
        metrics,
    };
    let log_level = pick(&cli.log_level, &from_file.log_level);
    if let Some(level) = &log_level
        && !["error", "warn", "info", "debug", "trace", "off"].contains(&level.to_ascii_lowercase().as_str())
    {
        return Err(fail(format!("`log_level` = \"{level}\": use error, warn, info, debug, trace or off")));
    }
    Ok(ResolvedServer { settings, log_level })
}

/// The command line's value, else the file's.
fn pick<T: Clone>(cli: &Option<T>, file: &Option<T>) -> Option<T> {
    cli.clone().or_else(|| file.clone())
}

/// The peers: every `--peer`, else the file's `peers`, each checked.
fn resolve_peers(cli: &ServerOptions, file: &ServerOptions) -> Result<Vec<SocketAddrV4>, String> {
    let key = if cli.peers.is_some() { "--peer" } else { "`peers`" };
    let texts = pick(&cli.peers, &file.peers).unwrap_or_default();
    texts.iter().map(|text| parse_peer(text).map_err(|e| format!("{key}: {e}"))).collect()
}

/// The catalog: a `--catalog`/`catalog` file, inline lists in the config
/// file, or the built-in one.
fn resolve_catalog(cli: &ServerOptions, file: &ServerOptions, files: &dyn ConfigFiles) -> Result<Catalog, String> {
    let inline = [&file.rooms, &file.timeslots, &file.days];
    let given = inline.iter().filter(|list| list.is_some()).count();
    if let Some(path) = &cli.catalog {
        return files.catalog(path).map_err(|e| e.to_string());
    }
    match (&file.catalog, given) {
        (Some(_), 1..) => Err("give either `catalog` or `rooms`, `timeslots` and `days`, not both".into()),
        (Some(path), 0) => files.catalog(path).map_err(|e| e.to_string()),
        (None, 0) => Ok(Catalog::default()),
        (None, 3) => {
            let [rooms, timeslots, days] = inline.map(|list| list.clone().unwrap_or_default());
            for (key, names) in [("rooms", &rooms), ("timeslots", &timeslots), ("days", &days)] {
                check_names(key, names)?;
            }
            Ok(Catalog { rooms, timeslots, days })
        }
        (None, _) => Err("`rooms`, `timeslots` and `days` go together: give all three, or none".into()),
    }
}

/// A configuration file that cannot be used, with where and why.
#[derive(Debug)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong and how to fix it.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    rooms: Vec<String>,
    timeslots: Vec<String>,
    days: Vec<String>,
}

/// Reads a catalog file: three lists of names, `rooms`, `timeslots`, `days`.
pub fn load_catalog(path: &Path) -> Result<Catalog, ConfigError> {
    let fail = |problem: String| ConfigError { path: path.to_path_buf(), problem };
    let metadata = std::fs::metadata(path).map_err(|e| fail(format!("cannot read the catalog: {e}")))?;
    if !metadata.is_file() {
        return Err(fail("the catalog is not a regular file".into()));
    }
    if metadata.len() > MAX_CATALOG_FILE {
        return Err(fail(format!("{} bytes; a catalog file is at most {MAX_CATALOG_FILE}", metadata.len())));
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read the catalog: {e}")))?;
    parse_catalog(&text).map_err(fail)
}

/// The largest catalog file read: every list at its longest fits.
const MAX_CATALOG_FILE: u64 = 4 << 20;

/// Parses catalog text; the error says which key is wrong.
pub fn parse_catalog(text: &str) -> Result<Catalog, String> {
    let file: CatalogFile = toml::from_str(text).map_err(|e| e.to_string())?;
    for (key, names) in [("rooms", &file.rooms), ("timeslots", &file.timeslots), ("days", &file.days)] {
        check_names(key, names)?;
    }
    Ok(Catalog { rooms: file.rooms, timeslots: file.timeslots, days: file.days })
}

/// Names are typed as single words by users and matched case-insensitively.
fn check_names(key: &str, names: &[String]) -> Result<(), String> {
    if names.is_empty() {
        return Err(format!("'{key}' is empty; list at least one name"));
    }
    if names.len() > MAX_CATALOG_NAMES {
        return Err(format!("'{key}' lists {} names; at most {MAX_CATALOG_NAMES}", names.len()));
    }
    let mut seen = std::collections::HashSet::new();
    for name in names {
        let shown: String = name.chars().take(MAX_NAME_CHARS).collect();
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            return Err(format!("'{key}' entry '{shown}' must be one word without spaces"));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(format!("'{key}' entry '{shown}...' is longer than {MAX_NAME_CHARS} characters"));
        }
        if !seen.insert(name.to_lowercase()) {
            return Err(format!("'{key}' lists '{name}' twice (names are case-insensitive)"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(text: &str) -> ServerOptions {
        toml::from_str(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn resolve_text(cli: &ServerOptions, text: &str) -> Result<ResolvedServer, String> {
        resolve_server(cli, Some((Path::new("roomcast.toml"), &options(text)))).map_err(|e| e.to_string())
    }

    #[test]
    fn the_shipped_config_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/roomcast.toml");
        let file = load_server_options(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((file.group.as_deref(), file.port), (Some("224.1.1.1"), Some(11111)));
    }

    #[test]
    fn the_command_line_wins_over_the_file_which_wins_over_defaults() {
        let file =
            "group = \"224.1.1.1\"\nport = 5000\nheartbeat_interval_ms = 100\nheartbeat_timeout_ms = 900\nid = 7";
        let cli = ServerOptions { port: Some(6000), heartbeat_timeout_ms: Some(300), ..ServerOptions::default() };
        let resolved = resolve_text(&cli, file).expect("valid");
        let s = &resolved.settings;
        assert_eq!((s.group.group, s.group.port, s.id), (Ipv4Addr::new(224, 1, 1, 1), 6000, Some(7)));
        assert_eq!(s.timing.heartbeat_interval, Duration::from_millis(100));
        assert_eq!(s.timing.heartbeat_timeout, Duration::from_millis(300));
        assert_eq!(s.timing.election_timeout, Duration::from_millis(200), "the default");
        assert_eq!((s.group.ttl, s.min_replicas, s.catalog.clone()), (1, 1, Catalog::default()));
        assert_eq!(s.metrics, None, "no metrics unless asked");
        let with_metrics = resolve_text(&cli, &format!("{file}\nmetrics = \"9464\"")).expect("valid");
        assert_eq!(with_metrics.settings.metrics, Some(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9464)));
    }

    #[test]
    fn bad_settings_name_the_key_and_the_file() {
        let cases = [
            ("group = \"10.1.1.1\"\nport = 1", "roomcast.toml: `group`: 10.1.1.1 is not a multicast address"),
            ("group = \"224.1.1.1\"\nport = 0", "`port`: port 0 is not a port"),
            ("port = 1", "no multicast group"),
            (
                "group = \"224.1.1.1\"\nport = 1\nheartbeat_interval_ms = 500\nheartbeat_timeout_ms = 500",
                "`heartbeat_timeout_ms` (500 ms) must be longer than the heartbeat interval (500 ms)",
            ),
            ("group = \"224.1.1.1\"\nport = 1\nrooms = [\"A\"]", "give all three, or none"),
            ("group = \"224.1.1.1\"\nport = 1\nlog_level = \"loud\"", "`log_level` = \"loud\""),
            ("group = \"224.1.1.1\"\nport = 1\nmetrics = \"x:1\"", "`metrics`: 'x:1' is not a port"),
            (
                "group = \"224.1.1.1\"\nport = 1\npeers = [\"10.0.0.2\"]",
                "`peers`: '10.0.0.2' is not an IPv4 address and port",
            ),
            (
                "group = \"224.1.1.1\"\nport = 1\npeers = [\"224.1.1.1:1\"]",
                "`peers`: '224.1.1.1:1' is not one server's",
            ),
            ("group = \"224.1.1.1\"\nport = 1\npeers = [\"10.0.0.2:0\"]", "`peers`: '10.0.0.2:0': port 0"),
        ];
        for (text, want) in cases {
            let error = resolve_text(&ServerOptions::default(), text).expect_err(text);
            assert!(error.contains(want), "{text:?}: got {error:?}, want {want:?}");
        }
        let cli = ServerOptions { heartbeat_timeout_ms: Some(50), ..ServerOptions::default() };
        let error = resolve_text(&cli, "group = \"224.1.1.1\"\nport = 1").expect_err("timeout below the interval");
        assert!(error.contains("--heartbeat-timeout (50 ms)"), "{error}");
    }

    #[test]
    fn peers_from_the_command_line_replace_the_files() {
        let file = "group = \"224.1.1.1\"\nport = 1\npeers = [\"10.0.0.2:1\", \"10.0.0.3:1\"]";
        let from_file = resolve_text(&ServerOptions::default(), file).expect("valid").settings.peers;
        assert_eq!(from_file, ["10.0.0.2:1".parse().unwrap(), "10.0.0.3:1".parse::<SocketAddrV4>().unwrap()]);
        let cli = ServerOptions { peers: Some(vec!["10.0.0.9:1".into()]), ..ServerOptions::default() };
        let from_cli = resolve_text(&cli, file).expect("valid").settings.peers;
        assert_eq!(from_cli, ["10.0.0.9:1".parse::<SocketAddrV4>().unwrap()]);
    }

    #[test]
    fn relative_paths_in_a_config_file_are_beside_it() {
        let file = options("group = \"224.1.1.1\"\nport = 1\ndata_dir = \"state\"");
        let resolved = resolve_server(&ServerOptions::default(), Some((Path::new("/etc/roomcast/r.toml"), &file)));
        assert_eq!(resolved.expect("valid").settings.data_dir, Some(PathBuf::from("/etc/roomcast/state")));
        let absolute = options("group = \"224.1.1.1\"\nport = 1\ndata_dir = \"/var/lib/rc\"");
        let resolved = resolve_server(&ServerOptions::default(), Some((Path::new("/etc/roomcast/r.toml"), &absolute)));
        assert_eq!(resolved.expect("valid").settings.data_dir, Some(PathBuf::from("/var/lib/rc")));
        // On the command line a relative path stays relative to the working directory.
        let cli = ServerOptions { data_dir: Some("here".into()), ..ServerOptions::default() };
        let resolved = resolve_server(&cli, Some((Path::new("/etc/roomcast/r.toml"), &file)));
        assert_eq!(resolved.expect("valid").settings.data_dir, Some(PathBuf::from("here")));
        let catalog = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/roomcast.toml");
        let beside = options("group = \"224.1.1.1\"\nport = 1\ncatalog = \"catalog.toml\"");
        let resolved = resolve_server(&ServerOptions::default(), Some((&catalog, &beside)));
        assert_eq!(resolved.expect("the shipped catalog, found beside the file").settings.catalog, Catalog::default());
    }

    #[test]
    fn an_inline_catalog_is_checked_like_a_catalog_file() {
        let text = "group = \"224.1.1.1\"\nport = 1\nrooms = [\"LAB\", \"lab\"]\ntimeslots = [\"9\"]\ndays = [\"Sat\"]";
        let error = resolve_text(&ServerOptions::default(), text).expect_err("a duplicate room");
        assert!(error.contains("'rooms' lists 'lab' twice"), "{error}");
        let text = "group = \"224.1.1.1\"\nport = 1\nrooms = [\"LAB\"]\ntimeslots = [\"9\"]\ndays = [\"Sat\"]";
        let catalog = resolve_text(&ServerOptions::default(), text).expect("valid").settings.catalog;
        assert_eq!(catalog.rooms, ["LAB"]);
    }

    #[test]
    fn the_shipped_catalog_is_the_built_in_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/catalog.toml");
        assert_eq!(load_catalog(&path).unwrap(), Catalog::default());
    }

    #[test]
    fn bad_catalogs_name_the_key() {
        let cases = [
            ("rooms = []\ntimeslots = [\"a\"]\ndays = [\"d\"]", "'rooms' is empty"),
            ("rooms = [\"A\", \"a\"]\ntimeslots = [\"t\"]\ndays = [\"d\"]", "'rooms' lists 'a' twice"),
            ("rooms = [\"A B\"]\ntimeslots = [\"t\"]\ndays = [\"d\"]", "one word"),
            (
                &format!("rooms = [\"{}\"]\ntimeslots = [\"t\"]\ndays = [\"d\"]", "x".repeat(65)),
                "longer than 64 characters",
            ),
            ("rooms = [\"A\"]\ntimeslots = [\"t\"]\ndays = [\"d\"]\ncolour = 1", "unknown field `colour`"),
        ];
        for (i, (text, want)) in cases.iter().enumerate() {
            let err = parse_catalog(text).unwrap_err();
            assert!(err.contains(want), "#{i}: got {err:?}, want {want:?}");
        }
    }
}
