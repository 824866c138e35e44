//! A hostile host's flood: garbage, forgeries without a key and datagrams
//! sealed with keys that are not the group's, multicast to the LAN's group.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use roomcast::auth::file::{read_client_key, read_server_keys};
use roomcast::auth::frame::{self, Boot, Inner, SealedHeader, Target};
use roomcast::auth::{ClientKey, Key};
use roomcast::rooms::Catalog;
use roomcast::wire::{self, Command, FrameKind, LogPosition, Message, PeerBody, PeerMessage, Request};

use super::{LAN_GROUP, LAN_PORT};
use crate::common::GroupKeys;

/// What the flood seals with: another group's server key and client key.
pub struct Flood {
    foreign_server: Key,
    foreign_client: ClientKey,
}

impl Flood {
    /// A flood using the second group's keys of `keys`.
    pub fn new(keys: &GroupKeys) -> Flood {
        let servers = read_server_keys(Path::new(&keys.path("other-server.key"))).expect("the other group's keys");
        let client = read_client_key(Path::new(&keys.path("other-alice.key"))).expect("the other group's client key");
        Flood { foreign_server: servers.server[0].clone(), foreign_client: client }
    }

    /// Multicasts `count` hostile datagrams to the group, spread over
    /// `spread`, from the current thread's network namespace; returns how
    /// many were sent.
    pub fn send(&self, count: u64, spread: Duration) -> u64 {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("bind the flood's socket");
        socket.set_multicast_ttl_v4(1).expect("TTL 1: the LAN only");
        let to = SocketAddrV4::new(LAN_GROUP, LAN_PORT);
        let started = Instant::now();
        let mut rng = 0x0F10_0D5E_ED00_0001_u64;
        let mut sent = 0;
        for n in 0..count {
            let bytes = self.datagram(n, &mut rng);
            if socket.send_to(&bytes, to).is_ok() {
                sent += 1;
            }
            // Paced: the flood is meant to be refused, not to fill the socket buffers.
            let due = spread.mul_f64(n as f64 / count as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        sent
    }

    fn datagram(&self, n: u64, rng: &mut u64) -> Vec<u8> {
        let mut next = || {
            *rng ^= *rng << 13;
            *rng ^= *rng >> 7;
            *rng ^= *rng << 17;
            *rng
        };
        let claim = forged_claim(next());
        match n % 5 {
            0 => (0..next() % 300).map(|_| next() as u8).collect(),
            1 => {
                let mut bytes = wire::header(FrameKind::Peer).to_vec();
                bytes.extend((0..next() % 100).map(|_| next() as u8));
                bytes
            }
            2 => wire::encode(&claim),
            3 => {
                let header = header(FrameKind::Peer, self.foreign_server.id(), None, next());
                frame::seal(&header, &self.foreign_server, &[], &Inner::Message(&claim))
            }
            _ => {
                let key = &self.foreign_client;
                let request = Message::Request(Request { client: next(), request: 1, command: Command::Rooms });
                let header = header(FrameKind::Request, key.master, Some(key.principal.clone()), next());
                frame::seal(&header, &key.key, &[], &Inner::Message(&request))
            }
        }
    }
}

fn header(
    kind: FrameKind,
    key_id: roomcast::auth::KeyId,
    client: Option<roomcast::auth::Principal>,
    r: u64,
) -> SealedHeader {
    SealedHeader { kind, key_id, boot: Boot([r as u8; 16]), counter: r, clock: r, target: Target::Group, client }
}

/// A made-up server with a huge ID and term claiming to lead.
fn forged_claim(r: u64) -> Message {
    Message::Peer(PeerMessage {
        sender: u64::MAX - 1,
        incarnation: r,
        explicit_id: true,
        joining: false,
        term: 1_000_000 + r % 1000,
        last: LogPosition::new(1_000_000, 1),
        commit: 1,
        catalog: Catalog::default().fingerprint(),
        body: PeerBody::Coordinator,
    })
}
