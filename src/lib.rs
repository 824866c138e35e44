//! roomcast: a replicated room-reservation service for a LAN, run as a group
//! of UDP multicast servers that elect a leader with the bully algorithm.
//!
//! ```text
//!  client ──Request (multicast)──▶ every server's group socket
//!                                    │ followers: ignore (the leader sequences writes)
//!                                    ▼
//!                                  leader ──Append (multicast)──▶ followers
//!                                    ▲                              │
//!                                    └──────── AppendAck (unicast) ◀┘
//!                                    │ all live in-sync members hold it: commit, apply
//!  client ◀──Reply (unicast, only from the leader)──┘
//! ```
//!
//! The protocol lives in a deterministic, sans-IO core ([`node::Node`] for the
//! servers, [`client::Client`] for the client): it takes a datagram or a timer
//! expiry together with the current time and returns what to send and when it
//! next wants to be woken. It never reads the clock, opens a socket or spawns a
//! thread. [`driver`] is the thin mio loop that feeds a node from real sockets;
//! tests and the simulation feed it from a simulated network instead.

pub mod auth;
pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod driver;
#[doc(hidden)]
pub mod fuzzing;
pub mod hooks;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod node;
pub mod rooms;
pub mod silence;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod storage;
pub mod systemd;
pub mod wire;
