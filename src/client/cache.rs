//! What the client remembers between requests, and when it forgets it.
//!
//! The catalog listings (`rooms`, `timeslots`, `days`) are answered locally
//! once received. A room's `check` list is kept with its [`RoomVersion`] and
//! only ever shown after the leader confirmed it current, so it is never stale.
//! Everything is emptied when the servers' catalog fingerprint changes.

use std::collections::HashMap;

use crate::wire::{Answer, Command, Reservation, RoomVersion};

/// A room's reservations as last received.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CachedCheck {
    slots: Vec<Reservation>,
    version: RoomVersion,
}

/// The client's cache; see the module documentation.
#[derive(Debug, Default)]
pub(super) struct Cache {
    /// Fingerprint of the catalog the cached data was received under.
    catalog: Option<u64>,
    rooms: Option<Vec<String>>,
    timeslots: Option<Vec<String>>,
    days: Option<Vec<String>>,
    /// Keyed by the lowercased room name, as servers match rooms case-insensitively.
    checks: HashMap<String, CachedCheck>,
}

impl Cache {
    /// The cached answer to a catalog listing, which needs no server.
    pub(super) fn listing(&self, command: &Command) -> Option<Answer> {
        match command {
            Command::Rooms => self.rooms.clone().map(Answer::Rooms),
            Command::Timeslots => self.timeslots.clone().map(Answer::Timeslots),
            Command::Days => self.days.clone().map(Answer::Days),
            _ => None,
        }
    }

    /// The version of the room's cached reservations, to send with a `check`.
    pub(super) fn version(&self, room: &str) -> Option<RoomVersion> {
        self.checks.get(&key(room)).map(|cached| cached.version)
    }

    /// The cached answer to a `check`, once the leader said it is current.
    pub(super) fn reservations(&self, command: &Command) -> Option<Answer> {
        let Command::Check { room, .. } = command else {
            return None;
        };
        let cached = self.checks.get(&key(room))?;
        Some(Answer::Reservations { slots: cached.slots.clone(), version: cached.version })
    }

    /// Drops the room's cached `check`.
    pub(super) fn forget_room(&mut self, room: &str) {
        self.checks.remove(&key(room));
    }

    /// Notes the catalog fingerprint of a reply; a different catalog means
    /// every cached name and list may be wrong.
    pub(super) fn observe_catalog(&mut self, fingerprint: u64) {
        if self.catalog != Some(fingerprint) {
            *self = Cache { catalog: Some(fingerprint), ..Cache::default() };
        }
    }

    /// Keeps what a server answered to `command`.
    pub(super) fn store(&mut self, command: &Command, answer: &Answer) {
        match (command, answer) {
            (_, Answer::Rooms(names)) => self.rooms = Some(names.clone()),
            (_, Answer::Timeslots(names)) => self.timeslots = Some(names.clone()),
            (_, Answer::Days(names)) => self.days = Some(names.clone()),
            (Command::Check { room, .. }, Answer::Reservations { slots, version }) => {
                let cached = CachedCheck { slots: slots.clone(), version: *version };
                self.checks.insert(key(room), cached);
            }
            _ => {}
        }
    }
}

fn key(room: &str) -> String {
    room.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot() -> Reservation {
        let slot = crate::wire::Slot { room: "ME4326".into(), timeslot: "8:30-9:30".into(), day: "Friday".into() };
        Reservation { slot, owner: Some("alice".into()) }
    }

    fn check(room: &str) -> Command {
        Command::Check { room: room.into(), cached: None }
    }

    fn filled() -> Cache {
        let mut cache = Cache::default();
        cache.observe_catalog(1);
        cache.store(&Command::Days, &Answer::Days(vec!["Monday".into()]));
        let version = RoomVersion { epoch: 9, seq: 3 };
        cache.store(&check("ME4326"), &Answer::Reservations { slots: vec![slot()], version });
        cache
    }

    #[test]
    fn check_entries_are_keyed_without_case() {
        let cache = filled();
        assert_eq!(cache.version("me4326"), Some(RoomVersion { epoch: 9, seq: 3 }));
        assert_eq!(
            cache.reservations(&check("Me4326")),
            Some(Answer::Reservations { slots: vec![slot()], version: RoomVersion { epoch: 9, seq: 3 } })
        );
    }

    #[test]
    fn forgetting_a_room_keeps_the_rest() {
        let mut cache = filled();
        cache.forget_room("ME4326");
        assert_eq!(cache.version("ME4326"), None);
        assert_eq!(cache.listing(&Command::Days), Some(Answer::Days(vec!["Monday".into()])));
    }

    #[test]
    fn the_same_catalog_keeps_the_cache_and_another_empties_it() {
        let mut cache = filled();
        cache.observe_catalog(1);
        assert_eq!(cache.listing(&Command::Days), Some(Answer::Days(vec!["Monday".into()])));
        cache.observe_catalog(2);
        assert_eq!(cache.listing(&Command::Days), None);
        assert_eq!(cache.version("ME4326"), None);
    }

    #[test]
    fn only_catalog_listings_are_answered_locally() {
        let cache = filled();
        assert_eq!(cache.listing(&check("ME4326")), None);
        assert_eq!(cache.listing(&Command::Rooms), None);
    }
}
