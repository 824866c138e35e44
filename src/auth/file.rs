//! Reading and writing key files. A key file that anyone but its owner may
//! read is refused, as ssh refuses a private key: a key that leaked is no key.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::keys::{ClientKey, KeyFile, ServerKeys, format_client_key, format_server_keys, parse_key_file};

/// The largest key file read (a server's, with every revoked name).
const MAX_KEY_FILE: u64 = 256 * 1024;

/// Why a key file cannot be used.
#[derive(Debug)]
pub enum KeyFileError {
    /// Reading or writing it failed.
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
    /// Others than its owner may read or write it.
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Its contents are not a key file.
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A client's key where a server's was expected, or the other way round.
    WrongKind {
        /// The file.
        path: PathBuf,
        /// True when a server key file was expected.
        wanted_server: bool,
    },
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyFileError::Io { path, error } if error.kind() == io::ErrorKind::AlreadyExists => write!(
                f,
                "{} exists already; roomcast never overwrites a key file: choose another name, or move it away",
                path.display()
            ),
            KeyFileError::Io { path, error } => write!(f, "cannot use key file {}: {error}", path.display()),
            KeyFileError::Exposed { path, mode } => write!(
                f,
                "key file {} may be read by others than its owner (mode {:03o}): run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            ),
            KeyFileError::Invalid { path, problem } => {
                write!(f, "{} is not a usable key file: {problem}", path.display())
            }
            KeyFileError::WrongKind { path, wanted_server: true } => write!(
                f,
                "{} is a client's key file; a server needs the group's server key file \
                 (made with `roomcast-server --generate-key FILE`)",
                path.display()
            ),
            KeyFileError::WrongKind { path, wanted_server: false } => write!(
                f,
                "{} is the servers' key file, which a client must not hold; give this client a key of its \
                 own: `roomcast-server --key-file {} --issue-client-key NAME FILE`",
                path.display(),
                path.display()
            ),
        }
    }
}

impl std::error::Error for KeyFileError {}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> KeyFileError + '_ {
    move |error| KeyFileError::Io { path: path.to_path_buf(), error }
}

/// Reads a key file after checking that only its owner may read it.
pub fn read_key_file(path: &Path) -> Result<KeyFile, KeyFileError> {
    let metadata = fs::metadata(path).map_err(io_error(path))?;
    if !metadata.is_file() {
        let error = io::Error::new(io::ErrorKind::InvalidInput, "not a regular file");
        return Err(KeyFileError::Io { path: path.to_path_buf(), error });
    }
    let mode = metadata.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Exposed { path: path.to_path_buf(), mode });
    }
    if metadata.len() > MAX_KEY_FILE {
        let problem = format!("{} bytes; a key file is at most {MAX_KEY_FILE}", metadata.len());
        return Err(KeyFileError::Invalid { path: path.to_path_buf(), problem });
    }
    let text = fs::read_to_string(path).map_err(io_error(path))?;
    parse_key_file(&text).map_err(|problem| KeyFileError::Invalid { path: path.to_path_buf(), problem })
}

/// Reads a server key file.
pub fn read_server_keys(path: &Path) -> Result<ServerKeys, KeyFileError> {
    match read_key_file(path)? {
        KeyFile::Server(keys) => Ok(keys),
        KeyFile::Client(_) => Err(KeyFileError::WrongKind { path: path.to_path_buf(), wanted_server: true }),
    }
}

/// Reads a client key file.
pub fn read_client_key(path: &Path) -> Result<ClientKey, KeyFileError> {
    match read_key_file(path)? {
        KeyFile::Client(key) => Ok(key),
        KeyFile::Server(_) => Err(KeyFileError::WrongKind { path: path.to_path_buf(), wanted_server: false }),
    }
}

/// Writes new server keys to `path` (mode 0600; never over an existing file).
pub fn write_server_keys(path: &Path, keys: &ServerKeys) -> Result<(), KeyFileError> {
    write_new(path, &format_server_keys(keys))
}

/// Writes a client's key to `path` (mode 0600; never over an existing file).
pub fn write_client_key(path: &Path, key: &ClientKey) -> Result<(), KeyFileError> {
    write_new(path, &format_client_key(key))
}

fn write_new(path: &Path, text: &str) -> Result<(), KeyFileError> {
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io_error(path))?;
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::Principal;

    #[test]
    fn a_written_key_file_reads_back_and_is_never_overwritten() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("server.key");
        let keys = ServerKeys::generate([3; 64]);
        write_server_keys(&path, &keys).expect("write");
        assert_eq!(fs::metadata(&path).expect("written").permissions().mode() & 0o777, 0o600);
        assert_eq!(read_server_keys(&path).expect("read"), keys);
        let again = write_server_keys(&path, &ServerKeys::generate([4; 64])).expect_err("exists");
        assert!(again.to_string().contains("never overwrites"), "{again}");
        let client = dir.path().join("alice.key");
        let alice = ClientKey::issue(&keys.client_masters[0], Principal { name: "alice".into(), admin: false });
        write_client_key(&client, &alice.expect("valid")).expect("write");
        let wrong = read_server_keys(&client).expect_err("a client's file");
        assert!(wrong.to_string().contains("is a client's key file"), "{wrong}");
        let wrong = read_client_key(&path).expect_err("the servers' file");
        assert!(wrong.to_string().contains("which a client must not hold"), "{wrong}");
    }

    #[test]
    fn a_key_file_others_may_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("server.key");
        write_server_keys(&path, &ServerKeys::generate([3; 64])).expect("write");
        for mode in [0o644, 0o640, 0o604, 0o660] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
            let error = read_server_keys(&path).expect_err("exposed");
            let message = error.to_string();
            assert!(message.contains(&format!("mode {mode:03o}")), "{message}");
            assert!(message.contains(&format!("chmod 600 {}", path.display())), "{message}");
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).expect("chmod");
        assert!(read_server_keys(&path).is_ok(), "read-only for the owner is fine");
    }
}
