//! Authentication, encryption and replay protection, sans-IO like the
//! protocol cores it serves (docs/security.md).
//!
//! With keys, every datagram is a sealed frame ([`frame`]): XChaCha20-Poly1305
//! under a server key (server to server) or under the requesting client's own
//! key (requests and replies), authenticated before any byte of its body is
//! decoded. A [`ServerGuard`] sits in front of every [`crate::node::Node`],
//! a [`ClientGuard`] in front of every [`crate::client::Client`]: they open
//! what arrives, seal what leaves, refuse copies and stale datagrams
//! ([`replay`]), and make a sender they have not heard lately prove that it
//! is live before anything it sent is acted on. Without keys they pass plain
//! frames through, as roomcast always did.
//!
//! Nothing here reads the clock, a file or a socket: inputs take `now`, and
//! randomness (boot nonces) comes from the caller, so a simulation runs this
//! very code.

mod client;
pub mod file;
pub mod frame;
pub mod keys;
mod limit;
pub mod replay;
pub(crate) mod server;
#[cfg(test)]
#[allow(clippy::disallowed_methods)] // simulated time starts at a real instant
mod tests;

use std::fmt;

pub use client::{ClientGuard, ClientInput};
pub use keys::{ClientKey, Key, KeyId, Principal, ServerKeys};
pub use server::{Accepted, ServerGuard};

/// An unauthenticated hint a server sends where a datagram failed for want
/// of the right key, so that a misconfigured host finds out instead of
/// timing out as if no server ran. Anyone can forge one: a client never
/// takes it as an answer, only as the likely reason when no answer comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The datagram had no key, and this group requires one.
    KeyRequired = 1,
    /// The datagram was sealed with a key this server does not hold, or a revoked client's.
    UnknownKey = 2,
    /// The datagram failed authentication under the key its header names.
    BadKey = 3,
    /// The datagram was sealed with a key, and this server runs without keys.
    NoKeys = 4,
}

impl Notice {
    /// The notice's reason byte.
    pub fn from_byte(byte: u8) -> Option<Notice> {
        [Notice::KeyRequired, Notice::UnknownKey, Notice::BadKey, Notice::NoKeys]
            .into_iter()
            .find(|notice| *notice as u8 == byte)
    }

    /// The notice as a datagram (5 bytes: smaller than anything it answers).
    pub fn encode(self) -> Vec<u8> {
        let mut bytes = crate::wire::header(crate::wire::FrameKind::Notice).to_vec();
        bytes.push(self as u8);
        bytes
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Notice::KeyRequired => "this group requires a key, and the datagram had none",
            Notice::UnknownKey => {
                "the datagram's key is not one this server accepts (another group's, rolled out, or revoked)"
            }
            Notice::BadKey => {
                "the datagram failed authentication under the key it names (a damaged or different key file)"
            }
            Notice::NoKeys => "this server runs without keys, and the datagram was sealed with one",
        })
    }
}
