//! The binaries' command lines: the clap definitions of the server
//! ([`server`]) and the client ([`client`]), [`installed`] to name them as the
//! package installs them (for the generated man pages and shell completions),
//! and parsers for option values whose errors a person can read (clap's own
//! ranges print `1..18446744073709551615`).

pub mod client;
pub mod server;

use clap::CommandFactory;

/// The server's name where it is installed (cargo builds it as `server`).
pub const SERVER_NAME: &str = "roomcast-server";
/// The client's name where it is installed (cargo builds it as `client`).
pub const CLIENT_NAME: &str = "roomcast-client";

/// The installed programs' clap commands, named as installed: what their man
/// pages and shell completions (`dist/`, generated and checked by `tests/package.rs`)
/// are generated from.
pub fn installed() -> [clap::Command; 2] {
    [
        server::ServerArgs::command().name(SERVER_NAME).bin_name(SERVER_NAME),
        client::ClientArgs::command().name(CLIENT_NAME).bin_name(CLIENT_NAME),
    ]
}

/// The longest time option: one day, far beyond any sensible timeout, and
/// short enough that adding it to the clock cannot overflow.
pub const MAX_MILLIS: u64 = 86_400_000;

/// A time in milliseconds, 0 allowed (e.g. `--linger`).
pub fn millis(text: &str) -> Result<u64, String> {
    millis_from(text, 0)
}

/// A time in milliseconds of at least 1 (e.g. `--timeout`).
pub fn positive_millis(text: &str) -> Result<u64, String> {
    millis_from(text, 1)
}

fn millis_from(text: &str, least: u64) -> Result<u64, String> {
    let range = format!("give a whole number of milliseconds from {least} to {MAX_MILLIS} (one day)");
    match text.trim().parse::<u64>() {
        Ok(ms) if (least..=MAX_MILLIS).contains(&ms) => Ok(ms),
        _ => Err(range),
    }
}

/// A multicast time-to-live: 0 to 255.
pub fn ttl(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u8>() {
        Ok(ttl) => Ok(u32::from(ttl)),
        Err(_) => Err("a multicast TTL is 0 to 255 (0 keeps datagrams on this host, 1 on the local network)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_ttls_in_range_and_readable_refusals() {
        assert_eq!((millis("0"), positive_millis("1"), millis("86400000")), (Ok(0), Ok(1), Ok(MAX_MILLIS)));
        for bad in ["0", "-1", "x", "86400001", "18446744073709551616"] {
            let error = positive_millis(bad).expect_err(bad);
            assert_eq!(error, "give a whole number of milliseconds from 1 to 86400000 (one day)", "{bad}");
        }
        assert_eq!((ttl("0"), ttl("255")), (Ok(0), Ok(255)));
        for bad in ["256", "300", "-1", "one"] {
            assert!(ttl(bad).expect_err(bad).starts_with("a multicast TTL is 0 to 255"), "{bad}");
        }
    }
}
