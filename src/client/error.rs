//! What can go wrong for the client program, worded for its user.

use std::fmt;
use std::io;
use std::net::SocketAddrV4;
use std::time::Duration;

use super::{Busy, Responder};
use crate::auth::Notice;
use crate::net::NetError;

/// An error the client program reports as `error: ...` on stderr.
#[derive(Debug)]
pub enum ClientError {
    /// No server answered a request before the timeout.
    NoAnswer {
        /// How long the client waited.
        waited: Duration,
        /// The group the request went to.
        group: SocketAddrV4,
        /// Why the last attempt to send the request failed, if it did.
        send_failure: Option<String>,
    },
    /// Two servers answered one request: each believes it leads the group.
    MultipleLeaders {
        /// The request both answered.
        request: u64,
        /// The server whose answer was shown.
        first: Responder,
        /// The other server.
        second: Responder,
    },
    /// No server answered, and one said this client's key is missing or wrong.
    KeyRefused {
        /// What the server said.
        notice: Notice,
        /// The server that said it.
        server: SocketAddrV4,
    },
    /// The user pressed Ctrl-C (or a signal came) while a request waited for its answer.
    Interrupted {
        /// The request was a reservation or a cancellation, which may still take effect.
        write: bool,
    },
    /// A command was submitted while another was in flight (a bug in the loop).
    Busy(Busy),
    /// A socket could not be set up or used.
    Net(NetError),
    /// The terminal or a thread failed.
    Io {
        /// What the client was doing, e.g. "reading standard input".
        action: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::NoAnswer { waited, group, send_failure: None } => write!(
                f,
                "no server answered within {:.1} s (group {group}); \
                 check that servers are running and reachable from this host",
                waited.as_secs_f64()
            ),
            ClientError::NoAnswer { waited, group, send_failure: Some(why) } => write!(
                f,
                "no server answered within {:.1} s (group {group}), and sending the request failed: {why}; \
                 check this host's route to the group (`--interface`) and its firewall",
                waited.as_secs_f64()
            ),
            ClientError::MultipleLeaders { request, first: (a, a_addr), second: (b, b_addr) } => write!(
                f,
                "more than one server answered request {request}: \
                 server {a} ({a_addr}) and server {b} ({b_addr}); two servers believe they lead"
            ),
            ClientError::KeyRefused { notice, server } => {
                write!(f, "no server answered, and the server at {server} refuses this client's requests: ")?;
                f.write_str(match notice {
                    Notice::KeyRequired => {
                        "the group requires a key and this client has none; run it with --key-file FILE, \
                         a key made by `roomcast-server --key-file SERVER_KEYS --issue-client-key NAME FILE` \
                         (docs/security.md)"
                    }
                    Notice::UnknownKey => {
                        "it does not accept this client's key (made from a master key the servers no longer \
                         hold, or issued to a revoked name); ask the group's operator for a current key"
                    }
                    Notice::BadKey => {
                        "this client's key fails authentication (the key file is damaged, or not the one \
                         issued to its name); ask the group's operator for a new one"
                    }
                    Notice::NoKeys => {
                        "the servers run without keys and this client has one; run it without --key-file, \
                         or give the servers their key file"
                    }
                })
            }
            ClientError::Interrupted { write: false } => f.write_str("interrupted: no longer waiting for the answer"),
            ClientError::Interrupted { write: true } => f.write_str(
                "interrupted: no longer waiting for the answer; the change may still take effect: run 'check' to see",
            ),
            ClientError::Busy(busy) => busy.fmt(f),
            ClientError::Net(error) => error.fmt(f),
            ClientError::Io { action, source } => write!(f, "{action}: {source}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Busy(busy) => Some(busy),
            ClientError::Net(error) => Some(error),
            ClientError::Io { source, .. } => Some(source),
            ClientError::NoAnswer { .. }
            | ClientError::MultipleLeaders { .. }
            | ClientError::KeyRefused { .. }
            | ClientError::Interrupted { .. } => None,
        }
    }
}

impl From<NetError> for ClientError {
    fn from(error: NetError) -> Self {
        ClientError::Net(error)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn messages_say_what_happened_and_what_to_do() {
        let group = SocketAddrV4::new(Ipv4Addr::new(224, 1, 1, 1), 11111);
        let no_answer = ClientError::NoAnswer { waited: Duration::from_millis(5_000), group, send_failure: None };
        assert_eq!(
            no_answer.to_string(),
            "no server answered within 5.0 s (group 224.1.1.1:11111); \
             check that servers are running and reachable from this host"
        );
        let send_failure = Some("Operation not permitted (os error 1)".to_string());
        let unsent = ClientError::NoAnswer { waited: Duration::from_millis(5_000), group, send_failure };
        assert_eq!(
            unsent.to_string(),
            "no server answered within 5.0 s (group 224.1.1.1:11111), and sending the request failed: \
             Operation not permitted (os error 1); check this host's route to the group (`--interface`) \
             and its firewall"
        );
        let a = (41220, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 50001));
        let b = (45000, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 50002));
        let duplicate = ClientError::MultipleLeaders { request: 3, first: a, second: b };
        assert_eq!(
            duplicate.to_string(),
            "more than one server answered request 3: server 41220 (127.0.0.1:50001) \
             and server 45000 (127.0.0.1:50002); two servers believe they lead"
        );
    }
}
