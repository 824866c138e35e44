//! Configuration files. For now: the catalog of rooms, timeslots and days
//! (`config/catalog.toml`), which every server of a group must share.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::rooms::Catalog;

/// A configuration file that cannot be used, with where and why.
#[derive(Debug)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong and how to fix it.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    rooms: Vec<String>,
    timeslots: Vec<String>,
    days: Vec<String>,
}

/// Reads a catalog file: three lists of names, `rooms`, `timeslots`, `days`.
pub fn load_catalog(path: &Path) -> Result<Catalog, ConfigError> {
    let fail = |problem: String| ConfigError { path: path.to_path_buf(), problem };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read the catalog: {e}")))?;
    parse_catalog(&text).map_err(fail)
}

/// Parses catalog text; the error says which key is wrong.
pub fn parse_catalog(text: &str) -> Result<Catalog, String> {
    let file: CatalogFile = toml::from_str(text).map_err(|e| e.to_string())?;
    for (key, names) in [("rooms", &file.rooms), ("timeslots", &file.timeslots), ("days", &file.days)] {
        check_names(key, names)?;
    }
    Ok(Catalog { rooms: file.rooms, timeslots: file.timeslots, days: file.days })
}

/// Names are typed as single words by users and matched case-insensitively.
fn check_names(key: &str, names: &[String]) -> Result<(), String> {
    if names.is_empty() {
        return Err(format!("'{key}' is empty; list at least one name"));
    }
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            return Err(format!("'{key}' entry '{name}' must be one word without spaces"));
        }
        if names[..i].iter().any(|other| other.eq_ignore_ascii_case(name)) {
            return Err(format!("'{key}' lists '{name}' twice (names are case-insensitive)"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalog_is_the_built_in_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/catalog.toml");
        assert_eq!(load_catalog(&path).unwrap(), Catalog::default());
    }

    #[test]
    fn bad_catalogs_name_the_key() {
        let cases = [
            ("rooms = []\ntimeslots = [\"a\"]\ndays = [\"d\"]", "'rooms' is empty"),
            ("rooms = [\"A\", \"a\"]\ntimeslots = [\"t\"]\ndays = [\"d\"]", "'rooms' lists 'a' twice"),
            ("rooms = [\"A B\"]\ntimeslots = [\"t\"]\ndays = [\"d\"]", "one word"),
            ("rooms = [\"A\"]\ntimeslots = [\"t\"]\ndays = [\"d\"]\ncolour = 1", "unknown field `colour`"),
        ];
        for (i, (text, want)) in cases.iter().enumerate() {
            let err = parse_catalog(text).unwrap_err();
            assert!(err.contains(want), "#{i}: got {err:?}, want {want:?}");
        }
    }
}
