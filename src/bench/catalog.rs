//! Catalog files for the bench's groups: the usual timeslots and days, and
//! as many rooms as the part needs (`B000`, `B001`, ...), so that every
//! client writes to rooms of its own.

use std::path::{Path, PathBuf};

use super::error::BenchError;
use crate::rooms::Catalog;
use crate::wire::Slot;

/// The name of room `index`.
pub fn room(index: usize) -> String {
    format!("B{index:03}")
}

/// A catalog of `rooms` rooms with the built-in timeslots and days.
pub fn with_rooms(rooms: usize) -> Catalog {
    let builtin = Catalog::default();
    Catalog { rooms: (0..rooms).map(room).collect(), timeslots: builtin.timeslots, days: builtin.days }
}

/// Writes `catalog` as TOML to `dir/catalog.toml` and returns the path.
pub fn write(dir: &Path, catalog: &Catalog) -> Result<PathBuf, BenchError> {
    let quoted = |items: &[String]| items.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    let text = format!(
        "rooms = [{}]\ntimeslots = [{}]\ndays = [{}]\n",
        quoted(&catalog.rooms),
        quoted(&catalog.timeslots),
        quoted(&catalog.days)
    );
    let path = dir.join("catalog.toml");
    std::fs::write(&path, text).map_err(BenchError::io(format!("writing {}", path.display())))?;
    Ok(path)
}

/// Every slot of room `name`, day by day.
pub fn slots_of(catalog: &Catalog, name: &str) -> Vec<Slot> {
    catalog
        .days
        .iter()
        .flat_map(|day| {
            catalog.timeslots.iter().map(move |timeslot| Slot {
                room: name.to_string(),
                timeslot: timeslot.clone(),
                day: day.clone(),
            })
        })
        .collect()
}

/// Every slot of the catalog, room by room.
pub fn all_slots(catalog: &Catalog) -> impl Iterator<Item = Slot> + '_ {
    catalog.rooms.iter().flat_map(|name| slots_of(catalog, name))
}
