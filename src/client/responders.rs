//! Who answered the client's recent requests, so that a second server's reply
//! is reported even when it arrives after the first answer was shown.

use std::collections::VecDeque;

use super::Responder;

/// How many answered requests are remembered. Replies to older requests are
/// ignored; a second leader answers within milliseconds, not 64 requests later.
pub(super) const REMEMBERED: usize = 64;

/// The responders of the last [`REMEMBERED`] answered requests, oldest first.
#[derive(Debug, Default)]
pub(super) struct Responders {
    recent: VecDeque<(u64, Vec<Responder>)>,
}

impl Responders {
    /// Records the server whose reply answered `request`.
    pub(super) fn answered(&mut self, request: u64, responder: Responder) {
        if self.recent.len() == REMEMBERED {
            self.recent.pop_front();
        }
        self.recent.push_back((request, vec![responder]));
    }

    /// Records a further reply to an answered request. Returns the server that
    /// answered first when `responder` is one not seen for this request yet;
    /// `None` for a repeat (a reply to a retransmission) or a forgotten request.
    pub(super) fn another(&mut self, request: u64, responder: Responder) -> Option<Responder> {
        let (_, seen) = self.recent.iter_mut().find(|(answered, _)| *answered == request)?;
        if seen.contains(&responder) {
            return None;
        }
        seen.push(responder);
        seen.first().copied()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddrV4};

    use super::*;

    fn server(id: u64) -> Responder {
        (id, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40_000 + id as u16))
    }

    #[test]
    fn each_new_responder_is_reported_once() {
        let mut responders = Responders::default();
        responders.answered(1, server(1));
        assert_eq!(responders.another(1, server(1)), None);
        assert_eq!(responders.another(1, server(2)), Some(server(1)));
        assert_eq!(responders.another(1, server(2)), None);
        assert_eq!(responders.another(1, server(3)), Some(server(1)));
    }

    #[test]
    fn same_id_from_another_address_is_another_server() {
        let mut responders = Responders::default();
        responders.answered(1, server(1));
        let elsewhere = (1, SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 40_001));
        assert_eq!(responders.another(1, elsewhere), Some(server(1)));
    }

    #[test]
    fn the_oldest_request_is_forgotten_first() {
        let mut responders = Responders::default();
        for request in 1..=REMEMBERED as u64 + 1 {
            responders.answered(request, server(1));
        }
        assert_eq!(responders.another(1, server(2)), None);
        assert_eq!(responders.another(2, server(2)), Some(server(1)));
    }

    #[test]
    fn unknown_requests_are_ignored() {
        let mut responders = Responders::default();
        assert_eq!(responders.another(7, server(2)), None);
    }
}
