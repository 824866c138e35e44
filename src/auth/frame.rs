//! Sealed frames: how a datagram is authenticated and encrypted.
//!
//! ```text
//! 0     "RC" | version | kind            4 B   (wire::header)
//! 4     key ID                           4 B   which key sealed it
//! 8     sender boot nonce               16 B   random per process start
//! 24    counter (LE)                     8 B   grows with every datagram the boot sends
//! 32    clock (LE)                       8 B   milliseconds since the boot started, by its own clock
//! 40    Peer:          destination       6 B   IPv4 + port (BE); all zero: the group
//!       (Leader)Request/Reply: role, name length, name  2 + 1..32 B   whose client key
//! ..    ciphertext of Inner (bincode)
//! end   Poly1305 tag                    16 B
//! ```
//!
//! The cipher is ChaCha20-Poly1305 (`ring`), under a key of the sender's
//! boot's own: HKDF-SHA256(key, boot), whose 96-bit nonce is the counter.
//! So no two datagrams ever share a (key, nonce): boots are 128 random bits
//! and a boot's counter never repeats. The boot's key is derived once and
//! kept ([`FrameKeys`]). Everything before the ciphertext is authenticated
//! data, so the kind, key ID, boot, counter, clock, destination and client name
//! cannot be changed without the tag failing. A reply also authenticates the
//! boot of the client it answers (not sent: the client knows it), so a reply
//! is good only for the client process that asked; inside, it names the
//! request datagram it answers ([`Inner::Reply`]).
//!
//! A client seals every command but `status` as a [`FrameKind::LeaderRequest`]:
//! only the leader answers those, so the other servers drop them by their
//! authenticated kind without paying for opening them.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use std::collections::BTreeMap;

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, Tag, UnboundKey};
use serde::{Deserialize, Serialize};

use super::keys::{Key, KeyId, Principal, check_name, hkdf_expand};
use crate::wire::{self, DecodeError, FrameKind, HEADER_LEN, MAX_DATAGRAM, Message, Reply};

/// Bytes in a boot nonce.
pub const BOOT_LEN: usize = 16;
/// Bytes in the Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// Bytes of a sealed header before the kind-specific part.
const FIXED_LEN: usize = HEADER_LEN + 4 + BOOT_LEN + 8 + 8;

/// A process's boot nonce: 128 random bits drawn when it starts.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Boot(pub [u8; BOOT_LEN]);

impl fmt::Debug for Boot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "boot ")?;
        self.0[..4].iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A random value a challenge asks to have echoed.
pub type Cookie = [u8; 16];

/// What a sealed frame carries: owned as it is opened; a sender seals a
/// [`Sealing`], which borrows what it carries.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Inner<M = Message, R = Reply> {
    /// A protocol message.
    Message(M),
    /// "Prove that boot `boot` is live": sent to a sender the receiver has
    /// not heard from before (or not lately).
    Challenge {
        /// The boot being asked.
        boot: Boot,
        /// To be echoed in the proof.
        cookie: Cookie,
    },
    /// The answer to a challenge, sealed by the boot it asked about. Its
    /// header's clock, read after the challenge was sent, is what the
    /// challenger measures the boot's later clocks against (`replay::Anchor`).
    Proof {
        /// The challenge's cookie.
        cookie: Cookie,
    },
    /// A server's reply to a client, naming the request datagram it answers.
    Reply {
        /// The counter of the client's latest request datagram the server
        /// had taken when it sealed this: the client, which knows when it
        /// sent that counter, refuses a reply to a request datagram older
        /// than the freshness horizon (a reply it missed, replayed late).
        answers: u64,
        /// The reply.
        reply: R,
    },
}

/// An [`Inner`] to seal, borrowing its message or reply: serde encodes a
/// reference as what it refers to, so its bytes are the owned one's, and
/// a sender need not copy a message (an `Append`'s entries) to seal it.
pub type Sealing<'a> = Inner<&'a Message, &'a Reply>;

/// Where a server-to-server datagram was sent; part of what is authenticated,
/// so that a datagram for one server cannot be replayed to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// To the group (multicast, and its unicast copies to `--peer`s).
    Group,
    /// To one server's unicast address.
    Peer(SocketAddrV4),
}

/// The clear part of a sealed frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedHeader {
    /// [`FrameKind::Peer`], [`FrameKind::Request`], [`FrameKind::LeaderRequest`] or [`FrameKind::Reply`].
    pub kind: FrameKind,
    /// The sealing key's ID (a client master key's for requests and replies).
    pub key_id: KeyId,
    /// The sender's boot nonce.
    pub boot: Boot,
    /// The sender's counter for this datagram.
    pub counter: u64,
    /// Milliseconds since the sender's boot started, by its own clock, when
    /// it sealed this (`replay`: how a receiver tells how old it is).
    pub clock: u64,
    /// Peer frames: where it was sent.
    pub target: Target,
    /// Requests and replies: whose client key sealed it.
    pub client: Option<Principal>,
}

/// A parsed datagram whose sealed part is not yet opened.
#[derive(Debug)]
pub enum Frame<'a> {
    /// A plain message's body (not yet decoded).
    Plain(&'a [u8]),
    /// A key notice, with its reason byte.
    Notice(u8),
    /// A sealed frame.
    Sealed(SealedFrame<'a>),
}

/// A sealed frame: its header, and the bytes to open.
#[derive(Debug)]
pub struct SealedFrame<'a> {
    /// What the clear header says (authenticated once opened).
    pub header: SealedHeader,
    /// The header's bytes: authenticated data.
    aad: &'a [u8],
    /// The ciphertext followed by the tag.
    sealed: &'a [u8],
}

/// Why a sealed frame could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// The tag does not match: altered, or sealed with another key.
    BadMac,
    /// Authentic, but its plaintext does not decode (a bug or another version).
    Malformed(DecodeError),
}

/// Reads a datagram's header: what kind of frame it is and, for a sealed
/// one, its clear fields. Nothing sealed is looked at.
pub fn parse(datagram: &[u8]) -> Result<Frame<'_>, DecodeError> {
    let kind = wire::frame_kind(datagram)?;
    let rest = &datagram[HEADER_LEN..];
    match kind {
        FrameKind::Plain => Ok(Frame::Plain(rest)),
        FrameKind::Notice => match rest {
            [reason] => Ok(Frame::Notice(*reason)),
            _ => Err(DecodeError::Malformed("a key notice is one byte".into())),
        },
        FrameKind::Peer | FrameKind::Request | FrameKind::LeaderRequest | FrameKind::Reply => {
            parse_sealed(kind, datagram).map(Frame::Sealed)
        }
    }
}

fn parse_sealed(kind: FrameKind, datagram: &[u8]) -> Result<SealedFrame<'_>, DecodeError> {
    let short = || DecodeError::Malformed("sealed header cut short".into());
    let fixed = datagram.get(..FIXED_LEN).ok_or_else(short)?;
    let key_id = KeyId([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let mut boot = [0u8; BOOT_LEN];
    boot.copy_from_slice(&fixed[8..8 + BOOT_LEN]);
    let counter = u64::from_le_bytes(fixed[24..32].try_into().map_err(|_| short())?);
    let clock = u64::from_le_bytes(fixed[32..40].try_into().map_err(|_| short())?);
    let (target, client, header_len) = match kind {
        FrameKind::Peer => {
            let raw = datagram.get(FIXED_LEN..FIXED_LEN + 6).ok_or_else(short)?;
            (decode_target(raw), None, FIXED_LEN + 6)
        }
        _ => {
            let (principal, len) = decode_client(&datagram[FIXED_LEN..])?;
            (Target::Group, Some(principal), FIXED_LEN + len)
        }
    };
    let sealed = &datagram[header_len..];
    if sealed.len() < TAG_LEN {
        return Err(DecodeError::Malformed("sealed frame shorter than its tag".into()));
    }
    let header = SealedHeader { kind, key_id, boot: Boot(boot), counter, clock, target, client };
    Ok(SealedFrame { header, aad: &datagram[..header_len], sealed })
}

fn decode_target(raw: &[u8]) -> Target {
    let ip = Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]);
    let port = u16::from_be_bytes([raw[4], raw[5]]);
    match (ip.is_unspecified(), port) {
        (true, 0) => Target::Group,
        _ => Target::Peer(SocketAddrV4::new(ip, port)),
    }
}

fn encode_target(target: Target, out: &mut Vec<u8>) {
    let addr = match target {
        Target::Group => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
        Target::Peer(addr) => addr,
    };
    out.extend_from_slice(&addr.ip().octets());
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// The client part of a request's or reply's header: role byte, name length,
/// name; and the bytes it took.
fn decode_client(raw: &[u8]) -> Result<(Principal, usize), DecodeError> {
    let malformed = |why: &str| DecodeError::Malformed(why.to_string());
    let [role, len, rest @ ..] = raw else { return Err(malformed("client header cut short")) };
    let admin = match role {
        0 => false,
        1 => true,
        _ => return Err(malformed("unknown client role")),
    };
    let name = rest.get(..usize::from(*len)).ok_or_else(|| malformed("client name cut short"))?;
    let name = std::str::from_utf8(name).map_err(|_| malformed("client name is not UTF-8"))?;
    check_name(name).map_err(DecodeError::Malformed)?;
    Ok((Principal { name: name.to_string(), admin }, 2 + usize::from(*len)))
}

fn encode_client(principal: &Principal, out: &mut Vec<u8>) {
    out.push(u8::from(principal.admin));
    // Names are checked to be at most 32 bytes when keys are issued and parsed.
    out.push(principal.name.len() as u8);
    out.extend_from_slice(principal.name.as_bytes());
}

/// A counter as the cipher's nonce (under a key that is the boot's own).
fn nonce(counter: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&counter.to_le_bytes());
    Nonce::assume_unique_for_key(bytes)
}

/// The cipher key of `boot`'s frames sealed under `key`.
fn derive(key: &Key, boot: &Boot) -> LessSafeKey {
    let bytes = hkdf_expand(key, b"roomcast frame key v1", &[&boot.0]);
    match UnboundKey::new(&CHACHA20_POLY1305, &bytes) {
        Ok(unbound) => LessSafeKey::new(unbound),
        Err(_) => unreachable!("a 32-byte key is a ChaCha20-Poly1305 key"),
    }
}

/// How many boots' cipher keys [`FrameKeys`] keeps before it starts over.
const FRAME_KEYS_KEPT: usize = 4096;

/// The cipher keys derived so far, by (key, boot): a guard derives a boot's
/// key once, not per datagram. Keys of frames that failed are not kept, so
/// a flood of them cannot push the others out.
#[derive(Default)]
pub struct FrameKeys {
    kept: BTreeMap<([u8; 8], Boot), LessSafeKey>,
    /// Where frames are decrypted: one buffer reused, not one per datagram.
    plaintext: Vec<u8>,
}

impl fmt::Debug for FrameKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FrameKeys({} kept)", self.kept.len())
    }
}

impl FrameKeys {
    /// Makes room for the cipher key of `id` if it is not kept yet: at most
    /// [`FRAME_KEYS_KEPT`] are (a server opens frames of every client process
    /// it hears, each a new boot, and seals under a key per client name).
    fn make_room(&mut self, id: &([u8; 8], Boot)) {
        if self.kept.len() >= FRAME_KEYS_KEPT && !self.kept.contains_key(id) {
            self.kept.clear(); // deriving again is cheap; this only saves it
        }
    }

    /// [`seal`], keeping the boot's cipher key.
    pub fn seal(&mut self, header: &SealedHeader, key: &Key, extra: &[u8], inner: &Sealing) -> Vec<u8> {
        let mut out = clear_header(header);
        let header_len = out.len();
        wire::encode_body_into(inner, &mut out);
        let id = (key.fingerprint(), header.boot);
        self.make_room(&id);
        let cipher = self.kept.entry(id).or_insert_with(|| derive(key, &header.boot));
        encrypt(&mut out, header_len, header.counter, cipher, extra);
        debug_assert!(out.len() <= MAX_DATAGRAM, "sealed frame of {} bytes does not fit a datagram", out.len());
        out
    }

    /// [`SealedFrame::open`], keeping the sender boot's cipher key if it opened.
    pub fn open(&mut self, frame: &SealedFrame, key: &Key, extra: &[u8]) -> Result<Inner, OpenError> {
        let id = (key.fingerprint(), frame.header.boot);
        if let Some(cipher) = self.kept.get(&id) {
            return frame.open_into(cipher, extra, &mut self.plaintext);
        }
        let cipher = derive(key, &frame.header.boot);
        let inner = frame.open_into(&cipher, extra, &mut self.plaintext)?;
        self.make_room(&id);
        self.kept.insert(id, cipher);
        Ok(inner)
    }
}

/// The clear header's bytes.
fn clear_header(header: &SealedHeader) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(&wire::header(header.kind));
    out.extend_from_slice(&header.key_id.0);
    out.extend_from_slice(&header.boot.0);
    out.extend_from_slice(&header.counter.to_le_bytes());
    out.extend_from_slice(&header.clock.to_le_bytes());
    match (&header.kind, &header.client) {
        (FrameKind::Peer, _) => encode_target(header.target, &mut out),
        (_, Some(principal)) => encode_client(principal, &mut out),
        (_, None) => unreachable!("requests and replies always name their client"),
    }
    out
}

/// Seals `inner` under `key`: the datagram to send. `extra` is
/// authenticated but not sent (a reply's recipient boot). Derives the
/// boot's cipher key each time; guards keep theirs ([`FrameKeys`]).
pub fn seal(header: &SealedHeader, key: &Key, extra: &[u8], inner: &Sealing) -> Vec<u8> {
    FrameKeys::default().seal(header, key, extra, inner)
}

/// Encrypts `out` after its first `header_len` bytes (the clear header,
/// authenticated with `extra`) in place, and appends the tag.
fn encrypt(out: &mut Vec<u8>, header_len: usize, counter: u64, cipher: &LessSafeKey, extra: &[u8]) {
    let (header, body) = out.split_at_mut(header_len);
    // Sealing fails only for messages beyond 256 GiB; ours fit a datagram.
    let tag = match with_aad(header, extra, |aad| cipher.seal_in_place_separate_tag(nonce(counter), aad, body)) {
        Ok(tag) => tag,
        Err(_) => unreachable!("a datagram is far below the cipher's limit"),
    };
    out.extend_from_slice(tag.as_ref());
}

/// Room on the stack for the authenticated data: the longest clear header
/// (a request's, with a 32-byte name) and a reply's client boot fit.
const AAD_ON_STACK: usize = 128;

/// Calls `f` with `header` followed by `extra` as the authenticated data,
/// without allocating for it (this runs for every datagram).
fn with_aad<R>(header: &[u8], extra: &[u8], f: impl FnOnce(Aad<&[u8]>) -> R) -> R {
    let len = header.len() + extra.len();
    if extra.is_empty() {
        return f(Aad::from(header));
    }
    if len > AAD_ON_STACK {
        return f(Aad::from(&[header, extra].concat()[..]));
    }
    let mut buffer = [0u8; AAD_ON_STACK];
    buffer[..header.len()].copy_from_slice(header);
    buffer[header.len()..len].copy_from_slice(extra);
    f(Aad::from(&buffer[..len]))
}

impl SealedFrame<'_> {
    /// This frame sealed anew under `key` with the same clear header, its
    /// sealed bytes (less the tag) taken as the plaintext, whatever they
    /// are: an authentic frame whose plaintext may be anything. For fuzzing
    /// what comes after the tag check (`crate::fuzzing`); a holder of the
    /// key can seal anything anyway.
    #[doc(hidden)]
    pub fn reseal(&self, key: &Key, extra: &[u8]) -> Vec<u8> {
        let mut out = [self.aad, &self.sealed[..self.sealed.len() - TAG_LEN]].concat();
        let cipher = derive(key, &self.header.boot);
        encrypt(&mut out, self.aad.len(), self.header.counter, &cipher, extra);
        out
    }

    /// Authenticates and decrypts the frame under `key`, then decodes it.
    /// Derives the sender boot's cipher key; guards keep theirs ([`FrameKeys`]).
    pub fn open(&self, key: &Key, extra: &[u8]) -> Result<Inner, OpenError> {
        self.open_into(&derive(key, &self.header.boot), extra, &mut Vec::new())
    }

    /// Opens the frame with `cipher`, decrypting in `plaintext` (whatever it held is lost).
    fn open_into(&self, cipher: &LessSafeKey, extra: &[u8], plaintext: &mut Vec<u8>) -> Result<Inner, OpenError> {
        let (ciphertext, tag) = self.sealed.split_at(self.sealed.len() - TAG_LEN);
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| OpenError::BadMac)?;
        plaintext.clear();
        plaintext.extend_from_slice(ciphertext);
        with_aad(self.aad, extra, |aad| {
            cipher.open_in_place_separate_tag(nonce(self.header.counter), aad, Tag::from(tag), plaintext, 0..)
        })
        .map_err(|_| OpenError::BadMac)?;
        wire::decode_body(plaintext).map_err(OpenError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Command, Request};

    fn key(byte: u8) -> Key {
        Key::from_bytes([byte; 32])
    }

    fn message() -> Message {
        Message::Request(Request { client: 1, request: 2, command: Command::Rooms })
    }

    fn request() -> Inner {
        Inner::Message(message())
    }

    fn sealing(message: &Message) -> Sealing<'_> {
        Inner::Message(message)
    }

    fn headers() -> Vec<SealedHeader> {
        let alice = Principal { name: "alice".into(), admin: false };
        let base = SealedHeader {
            kind: FrameKind::Peer,
            key_id: key(1).id(),
            boot: Boot([9; BOOT_LEN]),
            counter: 77,
            clock: 123_456,
            target: Target::Group,
            client: None,
        };
        vec![
            base.clone(),
            SealedHeader { target: Target::Peer("10.0.0.2:5000".parse().expect("address")), ..base.clone() },
            SealedHeader { kind: FrameKind::Request, client: Some(alice.clone()), ..base.clone() },
            SealedHeader { kind: FrameKind::Reply, client: Some(Principal { admin: true, ..alice }), ..base },
        ]
    }

    fn open(bytes: &[u8], key: &Key, extra: &[u8]) -> Result<Inner, OpenError> {
        match parse(bytes) {
            Ok(Frame::Sealed(frame)) => frame.open(key, extra),
            other => panic!("not a sealed frame: {other:?}"),
        }
    }

    #[test]
    fn a_sealed_frame_opens_with_its_key_and_keeps_its_header() {
        for (i, header) in headers().into_iter().enumerate() {
            let bytes = seal(&header, &key(1), b"extra", &sealing(&message()));
            let Ok(Frame::Sealed(frame)) = parse(&bytes) else { panic!("#{i}: not sealed") };
            assert_eq!(frame.header, header, "#{i}");
            assert_eq!(frame.open(&key(1), b"extra"), Ok(request()), "#{i}");
        }
    }

    #[test]
    fn the_kept_cipher_keys_stay_bounded_when_sealing_and_opening_for_many_boots() {
        let mut keys = FrameKeys::default();
        let boot = |i: usize| Boot(std::array::from_fn(|b| (i >> (8 * (b % 4))) as u8));
        for i in 0..FRAME_KEYS_KEPT + 10 {
            let header = SealedHeader { boot: boot(i), ..headers()[0].clone() };
            let bytes = keys.seal(&header, &key(1), b"", &sealing(&message()));
            let Ok(Frame::Sealed(frame)) = parse(&bytes) else { panic!("#{i}: not sealed") };
            assert_eq!(keys.open(&frame, &key(1), b""), Ok(request()), "#{i}");
        }
        assert!(keys.kept.len() <= FRAME_KEYS_KEPT, "{} cipher keys kept", keys.kept.len());
    }

    #[test]
    fn a_sealing_encodes_as_the_inner_it_borrows() {
        let reply = Reply { request: 3, server: 4, catalog: 5, answer: crate::wire::Answer::Rooms(vec!["A".into()]) };
        let mut borrowed = Vec::new();
        wire::encode_body_into(&Sealing::Reply { answers: 9, reply: &reply }, &mut borrowed);
        let mut owned = Vec::new();
        wire::encode_body_into(&Inner::<Message, Reply>::Reply { answers: 9, reply }, &mut owned);
        assert_eq!(borrowed, owned);
        let (mut borrowed, mut owned) = (Vec::new(), Vec::new());
        wire::encode_body_into(&sealing(&message()), &mut borrowed);
        wire::encode_body_into(&request(), &mut owned);
        assert_eq!(borrowed, owned);
    }

    #[test]
    fn another_key_or_other_authenticated_data_fails() {
        let bytes = seal(&headers()[0], &key(1), b"", &sealing(&message()));
        assert_eq!(open(&bytes, &key(2), b""), Err(OpenError::BadMac));
        assert_eq!(open(&bytes, &key(1), b"x"), Err(OpenError::BadMac));
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        for header in headers() {
            let bytes = seal(&header, &key(1), b"", &sealing(&message()));
            for bit in 0..bytes.len() * 8 {
                let mut altered = bytes.clone();
                altered[bit / 8] ^= 1 << (bit % 8);
                let refused = match parse(&altered) {
                    Ok(Frame::Sealed(frame)) => frame.open(&key(1), b"").is_err(),
                    Ok(_) | Err(_) => true,
                };
                assert!(refused, "bit {bit} of a {:?} frame flipped, and it still opened", header.kind);
            }
        }
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        for header in headers() {
            let bytes = seal(&header, &key(1), b"", &sealing(&message()));
            for len in 0..bytes.len() {
                if let Ok(Frame::Sealed(frame)) = parse(&bytes[..len]) {
                    assert!(frame.open(&key(1), b"").is_err(), "a prefix of {len} bytes opened");
                }
            }
        }
    }

    #[test]
    fn bad_client_headers_are_malformed() {
        let bytes = seal(&headers()[2], &key(1), b"", &sealing(&message()));
        let mut bad_role = bytes.clone();
        bad_role[FIXED_LEN] = 7;
        let mut bad_name = bytes.clone();
        bad_name[FIXED_LEN + 2] = b' ';
        let mut long_name = bytes;
        long_name[FIXED_LEN + 1] = 200;
        for (i, bytes) in [bad_role, bad_name, long_name].iter().enumerate() {
            assert!(matches!(parse(bytes), Err(DecodeError::Malformed(_))), "#{i}");
        }
    }
}
