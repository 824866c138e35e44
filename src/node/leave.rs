//! Leaving cleanly (SIGINT, SIGTERM). A leader hands over to its highest
//! member that holds the whole log, listing the others, and that member
//! serves at once; with no such member it says `Leaving` to all, and they
//! elect without waiting for a heartbeat timeout. A follower tells its leader,
//! which stops waiting for its acknowledgements at once.

use std::time::Instant;

use ::log::info;

use super::{Node, NodeId, State};
use crate::wire::PeerBody;

impl Node {
    /// The server is stopping: hands leadership over, or tells the leader.
    /// The driver sends what this queues, then exits.
    pub fn leave(&mut self, now: Instant) {
        let last = self.log.last().seq;
        match &mut self.state {
            State::Leader(l) => {
                let successor = l.successor(last);
                // Writes stop here: the successor must miss none.
                l.handing_over = Some((successor.unwrap_or(self.me), now));
                match successor {
                    Some(target) => {
                        info!("leaving the group: handing over to {target}");
                        // Twice: a lost hand-over would cost a heartbeat timeout.
                        self.hand_over_to(target, true);
                        self.hand_over_to(target, true);
                    }
                    None => {
                        info!("leaving the group; no member holds the whole log, so the others elect a leader");
                        self.multicast(PeerBody::Leaving);
                    }
                }
            }
            State::Follower(f) => {
                let leader = f.leader;
                info!("leaving the group: telling leader {leader}");
                self.send_to(leader, PeerBody::Leaving);
            }
            State::Candidate(_) => self.multicast(PeerBody::Leaving),
        }
    }

    /// `sender` is stopping cleanly.
    pub(super) fn on_leaving(&mut self, now: Instant, sender: NodeId) {
        self.forget_server(sender);
        match &mut self.state {
            State::Leader(l) => {
                if l.remove_member(sender) {
                    info!("server {sender} left the group");
                }
                if l.handing_over.is_some_and(|(target, _)| target == sender) {
                    l.handing_over = None; // it will not take over: take writes again
                }
                self.try_commit(now);
            }
            State::Follower(f) if f.leader == sender => {
                info!("group leader {} left the group", sender.id);
                self.become_candidate(now, 0);
            }
            State::Candidate(c) => c.forget(sender),
            State::Follower(_) => {}
        }
    }

    /// Stops expecting `server` in elections: it left, or handed over to us.
    pub(super) fn forget_server(&mut self, server: NodeId) {
        self.listed_members.remove(&server);
        self.last_heard_from.remove(&server);
    }
}
