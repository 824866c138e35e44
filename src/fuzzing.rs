//! Entry points for the fuzz targets in `fuzz/` and for their regression
//! test (`tests/fuzz_regressions.rs`), which feeds every checked-in input
//! to the very function its target calls. Not an API: each takes arbitrary
//! bytes, drives one decoder the way roomcast uses it, checks what must hold
//! of what it accepted (with `assert!`, so that the fuzzer reports it), and
//! returns the decoder's verdict. Nothing here opens a socket or reads a
//! file; addresses are values only.
//!
//! Two decoders sit behind a check that random mutation cannot pass: the
//! tag of a sealed frame and the CRC-32s of the data files. Their entry
//! points have a mode, chosen by the input, in which the harness signs or
//! checksums the mutated bytes itself, so that what lies behind is fuzzed
//! too ([`sealed`], [`snapshot`], [`log`]).

// Fuzz entry points: a base instant for the inputs they feed (clippy.toml keeps these out of the core).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::net::SocketAddrV4;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::auth::frame::{self, Boot, Frame};
use crate::auth::keys::{self, KeyFile, derive_client_key};
use crate::auth::{ClientGuard, ClientInput, ClientKey, Key, Principal, ServerGuard, ServerKeys};
use crate::config::{self, ConfigError, ConfigFiles, ResolvedServer, ServerOptions};
use crate::node::{Destination, Node, NodeConfig, ReplicatedLog, Timing};
use crate::rooms::Catalog;
use crate::storage::{self, FormatError, Replayed};
use crate::wire::{self, DecodeError, FrameKind, Message};

/// The plain datagram decoder: [`wire::decode`]. What decodes must encode
/// and decode back to itself.
pub fn wire_decode(data: &[u8]) -> Result<Message, DecodeError> {
    let decoded = wire::decode(data);
    if let Ok(message) = &decoded {
        assert_eq!(wire::decode(&wire::encode(message)).as_ref(), Ok(message), "a decoded message re-encodes");
    }
    decoded
}

/// The server key the sealed harness's group holds.
pub const SERVER_KEY: [u8; 32] = [0x11; 32];
/// The client master key the sealed harness's group holds.
pub const MASTER_KEY: [u8; 32] = [0x22; 32];
/// The harness server's boot nonce.
pub const SERVER_BOOT: Boot = Boot([0x33; 16]);
/// The harness client's boot nonce.
pub const CLIENT_BOOT: Boot = Boot([0x44; 16]);
/// The boot nonce of the second server, which answers the harness
/// server's challenges from the second source address.
pub const PEER_BOOT: Boot = Boot([0x66; 16]);
/// The harness server's address (a value: no socket is opened).
pub const SERVER_ADDR: SocketAddrV4 = SocketAddrV4::new(std::net::Ipv4Addr::new(127, 0, 0, 1), 11111);

/// Request datagrams the sealed harness's client has sealed (counters 1 to
/// this, not delivered) when an input starts, so that a reply to one opens;
/// its proofs of life come after them. The seeds' requests use counters 5
/// and up, below this.
pub const CLIENT_REQUESTS_SENT: u64 = 8;

/// The harness's source addresses: the client is the first, the second server the second.
pub fn sender(index: u8) -> SocketAddrV4 {
    SocketAddrV4::new(std::net::Ipv4Addr::new(127, 0, 0, 2 + (index & 7)), 40000 + u16::from(index & 7))
}

/// The keys of the sealed harness's group: one server key, one master, and
/// a revoked client (`mallory`).
pub fn server_keys() -> ServerKeys {
    ServerKeys {
        server: vec![Key::from_bytes(SERVER_KEY)],
        client_masters: vec![Key::from_bytes(MASTER_KEY)],
        revoked: BTreeSet::from(["mallory".to_string()]),
    }
}

/// The sealed harness client's key: `alice`, a user.
pub fn client_key() -> ClientKey {
    let alice = Principal { name: "alice".into(), admin: false };
    match ClientKey::issue(&Key::from_bytes(MASTER_KEY), alice) {
        Ok(key) => key,
        Err(e) => unreachable!("alice is a valid name: {e}"),
    }
}

/// What the sealed harness's guards let through.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SealedOutcome {
    /// Messages the keyed server accepted (at once or released after a proof).
    pub server_accepted: usize,
    /// Replies the keyed client accepted.
    pub client_replies: usize,
    /// Messages the keyless server and client accepted.
    pub keyless_accepted: usize,
}

/// One step of a sealed-harness input: a header byte, a 2-byte length (LE)
/// and that many bytes (fewer at the end of the input).
///
/// Header bits 0-1: 0 a datagram to the keyed server, 1 to the keyed
/// client, 2 and 3 the same but sealed anew by the harness (see
/// [`frame::SealedFrame::reseal`]; the bytes are a sealed frame less its
/// tag, the harness adds the tag). Bits 2-4: which of 8 source addresses
/// it comes from (0 is the client's). Bits 5-7: how far the clock moves first.
struct Step<'a> {
    to_client: bool,
    reseal: bool,
    from: SocketAddrV4,
    advance: Duration,
    bytes: &'a [u8],
}

fn steps(mut data: &[u8]) -> impl Iterator<Item = Step<'_>> {
    const ADVANCE_MS: [u64; 8] = [0, 1, 10, 120, 600, 2100, 10_000, 3_600_000];
    std::iter::from_fn(move || {
        let (&op, rest) = data.split_first()?;
        let (len, rest) = match rest {
            [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
            _ => (rest.len(), &[][..]),
        };
        let (bytes, rest) = rest.split_at(len.min(rest.len()));
        data = rest;
        Some(Step {
            to_client: op & 1 == 1,
            reseal: op & 2 == 2,
            from: sender((op >> 2) & 7),
            advance: Duration::from_millis(ADVANCE_MS[usize::from(op >> 5)]),
            bytes,
        })
    })
}

/// The sealed harness's keyed server, the client and a second server that
/// answer its challenges, and a keyless server and client.
struct Group {
    server: ServerGuard,
    client: ClientGuard,
    peer: ServerGuard,
    keyless_server: ServerGuard,
    keyless_client: ClientGuard,
    outcome: SealedOutcome,
}

impl Group {
    fn new(now: Instant) -> Self {
        // A client takes only replies to request datagrams it sent lately.
        let mut client = ClientGuard::new(Some(client_key()), CLIENT_BOOT);
        for _ in 0..CLIENT_REQUESTS_SENT {
            let _ = client.seal_request(now, &wire::Request { client: 1, request: 1, command: wire::Command::Rooms });
        }
        Group {
            server: ServerGuard::new(Some(server_keys()), SERVER_ADDR, SERVER_BOOT, 7, now),
            client,
            peer: ServerGuard::new(Some(server_keys()), sender(1), PEER_BOOT, 9, now),
            keyless_server: ServerGuard::new(None, SERVER_ADDR, SERVER_BOOT, 7, now),
            keyless_client: ClientGuard::new(None, CLIENT_BOOT),
            outcome: SealedOutcome::default(),
        }
    }

    /// Delivers what the guards send each other (challenges, proofs) until
    /// they are quiet, and counts what the server releases.
    fn pump(&mut self, now: Instant) {
        for _ in 0..64 {
            let mut quiet = true;
            while let Some((to, bytes)) = self.server.poll_transmit() {
                quiet = false;
                if to == Destination::Peer(sender(0)) {
                    self.deliver_to_client(now, &bytes);
                } else if to == Destination::Peer(sender(1)) {
                    let _ = self.peer.open(now, SERVER_ADDR, &bytes);
                }
            }
            while let Some((_, bytes)) = self.peer.poll_transmit() {
                quiet = false;
                self.deliver_to_server(now, sender(1), &bytes);
            }
            while self.peer.poll_released().is_some() {}
            while let Some((_, bytes)) = self.client.poll_transmit() {
                quiet = false;
                self.deliver_to_server(now, sender(0), &bytes);
            }
            while self.server.poll_released().is_some() {
                self.outcome.server_accepted += 1;
            }
            if quiet {
                return;
            }
        }
    }

    fn deliver_to_server(&mut self, now: Instant, from: SocketAddrV4, bytes: &[u8]) {
        if self.server.open(now, from, bytes).is_some() {
            self.outcome.server_accepted += 1;
        }
    }

    fn deliver_to_client(&mut self, now: Instant, bytes: &[u8]) {
        if let ClientInput::Reply(_) = self.client.open(now, SERVER_ADDR, bytes) {
            self.outcome.client_replies += 1;
        }
    }

    fn step(&mut self, now: Instant, step: &Step) {
        let resealed;
        let bytes = match step.reseal {
            false => step.bytes,
            true => match reseal(step.bytes) {
                Some(bytes) => {
                    resealed = bytes;
                    &resealed
                }
                None => return,
            },
        };
        match step.to_client {
            false => self.deliver_to_server(now, step.from, bytes),
            true => self.deliver_to_client(now, bytes),
        }
        if self.keyless_server.open(now, step.from, bytes).is_some() {
            self.outcome.keyless_accepted += 1;
        }
        if let ClientInput::Reply(_) = self.keyless_client.open(now, SERVER_ADDR, bytes) {
            self.outcome.keyless_accepted += 1;
        }
        while self.keyless_server.poll_transmit().is_some() || self.keyless_server.poll_released().is_some() {}
        self.pump(now);
    }
}

/// The key a frame with this header is sealed with in the harness's group
/// (the server key, or the derived key of the client it names), and what
/// else it authenticates (a reply: the harness client's boot).
fn harness_key(header: &frame::SealedHeader) -> (Key, &'static [u8]) {
    let master = Key::from_bytes(MASTER_KEY);
    match (&header.kind, &header.client) {
        (FrameKind::Request | FrameKind::LeaderRequest, Some(client)) => (derive_client_key(&master, client), &[]),
        (FrameKind::Reply, Some(client)) => (derive_client_key(&master, client), &CLIENT_BOOT.0),
        _ => (Key::from_bytes(SERVER_KEY), &[]),
    }
}

/// A sealed frame less its tag, its bytes after the header taken as
/// plaintext and sealed with the harness's key for its header. `None` if it
/// is no sealed frame.
fn reseal(bytes: &[u8]) -> Option<Vec<u8>> {
    let tagged = [bytes, &[0; frame::TAG_LEN]].concat();
    let Ok(Frame::Sealed(sealed)) = frame::parse(&tagged) else { return None };
    let (key, extra) = harness_key(&sealed.header);
    Some(sealed.reseal(&key, extra))
}

/// The opposite of the resealing steps' sealing: a frame sealed with the
/// harness's keys, opened, as header and plaintext without the tag. For
/// building seeds; `None` if it does not open.
pub fn unseal(datagram: &[u8]) -> Option<Vec<u8>> {
    let Ok(Frame::Sealed(sealed)) = frame::parse(datagram) else { return None };
    let (key, extra) = harness_key(&sealed.header);
    let inner = sealed.open(&key, extra).ok()?;
    let mut plaintext = Vec::new();
    wire::encode_body_into(&inner, &mut plaintext);
    let header_len = datagram.len().checked_sub(frame::TAG_LEN + plaintext.len())?;
    Some([&datagram[..header_len], &plaintext].concat())
}

/// The datagram decoder with keys: a sequence of datagrams (see [`Step`])
/// to a [`ServerGuard`] and a [`ClientGuard`] with fixed keys, the
/// challenges and proofs they exchange delivered, and to a keyless pair.
pub fn sealed(data: &[u8]) -> SealedOutcome {
    let mut now = Instant::now();
    let mut group = Group::new(now);
    for step in steps(data) {
        now += step.advance;
        group.step(now, &step);
    }
    let [senders, pending, held, sessions] = group.server.footprint();
    assert!(senders <= crate::auth::server::MAX_SENDERS && pending <= crate::auth::server::MAX_PENDING);
    assert!(held <= pending * crate::auth::server::MAX_HELD);
    assert!(sessions <= crate::auth::server::MAX_CLIENT_SESSIONS);
    group.outcome
}

/// An input for [`sealed`]: `datagram` as one step with header byte `op`.
pub fn sealed_step(op: u8, datagram: &[u8]) -> Vec<u8> {
    let len = u16::try_from(datagram.len()).unwrap_or(u16::MAX);
    [&[op][..], &len.to_le_bytes(), &datagram[..usize::from(len)]].concat()
}

/// The header bytes that [`snapshot`] and [`log`] put in front of their
/// input, in their checksummed mode.
const CHECKSUMMED: u8 = 1;

/// The snapshot reader, [`storage::parse_snapshot`], and what a server
/// does with a snapshot at start. If the first byte is odd, the rest is a
/// snapshot's body, which the harness frames (magic, length, CRC-32);
/// otherwise the rest is the file.
pub fn snapshot(data: &[u8]) -> Result<(Catalog, usize), FormatError> {
    let (mode, rest) = data.split_first().map_or((0, data), |(&mode, rest)| (mode, rest));
    let file = match mode & CHECKSUMMED {
        0 => rest.to_vec(),
        _ => frame_snapshot(rest),
    };
    let (catalog, table) = storage::parse_snapshot(&file)?;
    // What Storage::open does with it (on a changed catalog it writes a
    // snapshot and the entries after it), then a server's first answers.
    let mut log = ReplicatedLog::recovered(table);
    let applied = log.table().applied();
    let _ = (log.entries_after(applied.seq), log.last(), log.holds(applied), log.take_changes());
    let _ = log.commit_to(applied.seq, &catalog);
    run_node(log.clone(), Timing::default(), catalog.clone());
    let table = log.table();
    for room in &catalog.rooms {
        let _ = table.check(&catalog, room);
    }
    let _ = (table.digest(&catalog), table.all(&catalog), table.conflicts().1.count());
    let _ = table.remap(&catalog, &Catalog::default());
    // What the server writes back reads back the same.
    let body = bincode::serde::encode_to_vec((&catalog, table), bincode::config::standard());
    let body = body.unwrap_or_else(|e| unreachable!("a decoded snapshot encodes: {e}"));
    let again = storage::parse_snapshot(&frame_snapshot(&body));
    assert!(again.as_ref().is_ok_and(|(c, t)| *c == catalog && t == table), "a snapshot reads back");
    Ok((catalog, table.len()))
}

/// A server that starts with `log` and runs a few rounds of its timers
/// (alone: nothing is delivered, nothing sent anywhere).
fn run_node(log: ReplicatedLog, timing: Timing, catalog: Catalog) {
    let mut now = Instant::now();
    let config = NodeConfig {
        id: 45000,
        explicit_id: true,
        addr: SERVER_ADDR,
        timing,
        catalog,
        seed: 1,
        min_replicas: 1,
        keys: None,
        boot: SERVER_BOOT,
    };
    let mut node = Node::recovered(config, now, log);
    node.start(now);
    for _ in 0..4 {
        while node.poll_transmit().is_some() || node.poll_event().is_some() {}
        let _ = node.take_log_changes();
        let Some(next) = node.poll_timeout() else { break };
        now = now.max(next);
        node.handle_timeout(now);
    }
    let _ = node.status(now);
}

/// A snapshot file around `body`: magic, length, CRC-32.
pub fn frame_snapshot(body: &[u8]) -> Vec<u8> {
    let mut file = storage::SNAPSHOT_MAGIC.to_vec();
    file.extend_from_slice(&(body.len() as u64).to_le_bytes());
    file.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    file.extend_from_slice(body);
    file
}

/// The log reader, [`storage::replay_log_bytes`], as `Storage::open` runs
/// it: the catalog from the first record, then every record replayed under
/// it. If the first byte is odd, the harness first sets every record's
/// checksums right (so that mutated records reach the decoder); otherwise
/// the rest is the file as it is. What a torn tail leaves must replay the
/// same once the file is cut there.
pub fn log(data: &[u8]) -> Result<Replayed, FormatError> {
    let (mode, rest) = data.split_first().map_or((0, data), |(&mode, rest)| (mode, rest));
    let file = match mode & CHECKSUMMED {
        0 => rest.to_vec(),
        _ => checksum_records(rest),
    };
    let replayed = replay(&file)?;
    if let Some(cut) = replayed.torn_at {
        let whole = replay(&file[..cut]).map(|r| r.torn_at);
        assert_eq!(whole, Ok(None), "a log cut at its torn record replays whole");
    }
    Ok(replayed)
}

/// Replays a log file's bytes as `Storage::open` does, without a snapshot.
fn replay(file: &[u8]) -> Result<Replayed, FormatError> {
    let catalog = storage::parse_log_catalog(file)?.unwrap_or_default();
    let mut log = ReplicatedLog::default();
    let replayed = storage::replay_log_bytes(file, &mut log, &catalog)?;
    if catalog != Catalog::default() {
        let _ = log.table().remap(&catalog, &Catalog::default());
    }
    Ok(replayed)
}

/// `bytes` (a log file) with each record's two checksums set right, as far
/// as its records' lengths go.
pub fn checksum_records(bytes: &[u8]) -> Vec<u8> {
    let mut file = bytes.to_vec();
    let mut offset = storage::LOG_MAGIC.len();
    while let Some(header) = file.get(offset..offset + storage::RECORD_HEADER) {
        let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let length_crc = crc32fast::hash(&header[..4]).to_le_bytes();
        file[offset + 4..offset + 8].copy_from_slice(&length_crc);
        let start = offset + storage::RECORD_HEADER;
        let Some(payload) = file.get(start..start.saturating_add(length)) else { break };
        let payload_crc = crc32fast::hash(payload).to_le_bytes();
        file[offset + 8..offset + 12].copy_from_slice(&payload_crc);
        offset = start + length;
    }
    file
}

/// What [`config`] made of its input.
#[derive(Debug)]
pub struct ConfigOutcome {
    /// The text as a catalog file.
    pub catalog: Result<Catalog, String>,
    /// The text as a server config file, resolved as if at
    /// `/etc/roomcast/roomcast.toml` with nothing on the command line.
    pub server: Result<ResolvedServer, String>,
}

/// The catalog and config parsers: the input as a catalog file
/// ([`config::parse_catalog`]) and as a server config file
/// ([`config::parse_server_options`], then [`config::resolve_server_with`],
/// with files from [`NoFiles`]). Text that is not UTF-8 is refused as the
/// files' readers refuse it.
pub fn config(data: &[u8]) -> Option<ConfigOutcome> {
    let text = std::str::from_utf8(data).ok()?;
    let catalog = config::parse_catalog(text);
    let server = config::parse_server_options(text).and_then(|options| {
        let path = Path::new("/etc/roomcast/roomcast.toml");
        // As a file, and as the same settings given on the command line.
        let _ = config::resolve_server_with(&options, None, &NoFiles);
        config::resolve_server_with(&ServerOptions::default(), Some((path, &options)), &NoFiles)
            .map_err(|e| e.to_string())
    });
    // A server runs with what resolved.
    if let Ok(resolved) = &server {
        let settings = &resolved.settings;
        let _ = crate::silence::GroupSilence::new(Instant::now(), settings.timing.heartbeat_timeout);
        run_node(ReplicatedLog::default(), settings.timing, settings.catalog.clone());
    }
    if let Ok(catalog) = &catalog {
        let _ = catalog.fingerprint();
    }
    Some(ConfigOutcome { catalog, server })
}

/// Files for [`config`]: `catalog.toml` beside the config file is the
/// built-in catalog, `server.key` there the sealed harness's keys; every
/// other file is missing. Nothing is read from disk.
pub struct NoFiles;

impl ConfigFiles for NoFiles {
    fn catalog(&self, path: &Path) -> Result<Catalog, ConfigError> {
        match path == Path::new("/etc/roomcast/catalog.toml") {
            true => Ok(Catalog::default()),
            false => Err(ConfigError { path: path.to_path_buf(), problem: "no such file (fuzzing)".into() }),
        }
    }

    fn server_keys(&self, path: &Path) -> Result<ServerKeys, String> {
        match path == Path::new("/etc/roomcast/server.key") {
            true => Ok(server_keys()),
            false => Err(format!("{}: no such file (fuzzing)", path.display())),
        }
    }
}

/// The key file parser, [`keys::parse_key_file`]. A key file that parses
/// must format and parse back to the same keys.
pub fn key_file(data: &[u8]) -> Option<Result<KeyFile, String>> {
    let text = std::str::from_utf8(data).ok()?;
    let parsed = keys::parse_key_file(text);
    if let Ok(file) = &parsed {
        let again = match file {
            KeyFile::Server(keys) => keys::parse_key_file(&keys::format_server_keys(keys)),
            KeyFile::Client(key) => keys::parse_key_file(&keys::format_client_key(key)),
        };
        assert_eq!(again.as_ref(), Ok(file), "a parsed key file formats and parses back");
    }
    Some(parsed)
}
