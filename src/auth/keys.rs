//! Key material and key files (docs/security.md, "Keys").
//!
//! Servers share the *server keys*, which seal everything servers say to each
//! other, and the *client master keys*, from which each client's own key is
//! derived: `HKDF-SHA256(master, name, role)`. A client holds only its derived
//! key, so it can neither speak as a server nor compute another client's key,
//! and adding a client changes nothing on the servers. Each list may hold
//! several keys: a process seals with the first and accepts every one, which
//! is how keys roll without downtime.
//!
//! This module parses and formats key files; reading them (with the
//! permission check) is [`super::file`]'s job.

use std::collections::BTreeSet;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

pub use crate::wire::Principal;
use ring::{digest, hkdf};
use zeroize::Zeroize;

/// Bytes in a key.
pub const KEY_LEN: usize = 32;
/// The most keys one list of a key file may hold (server keys, client master keys).
pub const MAX_KEYS_PER_LIST: usize = 8;
/// The most revoked client names a server key file may list.
pub const MAX_REVOKED: usize = 4096;
/// The longest client name, in bytes.
pub const MAX_NAME_LEN: usize = 32;

/// A 256-bit secret key. Its bytes are wiped when it is dropped, and
/// `Debug` shows only its ID.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    bytes: [u8; KEY_LEN],
    /// SHA-256("roomcast key id" ‖ key), first 8 bytes: public, computed once.
    fingerprint: [u8; 8],
}

impl Drop for Key {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl Key {
    /// A key made of these bytes (from the OS's random source, or a test).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(b"roomcast key id");
        context.update(&bytes);
        let digest = context.finish();
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&digest.as_ref()[..8]);
        Key { bytes, fingerprint }
    }

    /// The key's bytes, for the cipher.
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// The short public name of this key: the first 4 bytes of
    /// SHA-256("roomcast key id" ‖ key). It goes in every datagram's header,
    /// so that a receiver picks the right key and an operator can compare
    /// which keys two hosts hold without showing the keys.
    pub fn id(&self) -> KeyId {
        let [a, b, c, d, ..] = self.fingerprint;
        KeyId([a, b, c, d])
    }

    /// The first 8 bytes of the same digest: tells keys apart where a key
    /// ID's 4 bytes could be made to collide (the frame key cache).
    pub fn fingerprint(&self) -> [u8; 8] {
        self.fingerprint
    }

    fn to_base64(&self) -> String {
        BASE64.encode(self.bytes)
    }

    fn from_base64(text: &str) -> Result<Key, String> {
        let bytes = BASE64.decode(text.trim()).map_err(|_| "is not base64".to_string())?;
        let bytes: [u8; KEY_LEN] =
            bytes.try_into().map_err(|b: Vec<u8>| format!("holds {} bytes; a key is {KEY_LEN}", b.len()))?;
        Ok(Key::from_bytes(bytes))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.id())
    }
}

/// A key's public 4-byte ID, shown as 8 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub [u8; 4]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl KeyId {
    fn parse(text: &str) -> Result<KeyId, String> {
        let bad = || format!("'{text}' is not a key ID (8 hex digits)");
        if text.len() != 8 || !text.is_ascii() {
            return Err(bad());
        }
        let mut id = [0u8; 4];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(KeyId(id))
    }
}

/// A client's own key: what `roomcast-server --issue-client-key` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey {
    /// Whom the key was issued to.
    pub principal: Principal,
    /// The ID of the master key it was derived from (servers look the master up by it).
    pub master: KeyId,
    /// The derived key.
    pub key: Key,
}

impl ClientKey {
    /// Issues the key of `principal` from `master`.
    pub fn issue(master: &Key, principal: Principal) -> Result<ClientKey, String> {
        check_name(&principal.name)?;
        let key = derive_client_key(master, &principal);
        Ok(ClientKey { principal, master: master.id(), key })
    }
}

/// Every key a server holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerKeys {
    /// Keys of server-to-server traffic; the first seals, all open.
    pub server: Vec<Key>,
    /// Keys from which the clients' keys are derived; the first issues new
    /// client keys, all are accepted.
    pub client_masters: Vec<Key>,
    /// Client names whose keys no longer count.
    pub revoked: BTreeSet<String>,
}

impl ServerKeys {
    /// Fresh keys from `random` (64 bytes from the OS's random source).
    pub fn generate(random: [u8; 2 * KEY_LEN]) -> ServerKeys {
        let mut server = [0u8; KEY_LEN];
        let mut master = [0u8; KEY_LEN];
        server.copy_from_slice(&random[..KEY_LEN]);
        master.copy_from_slice(&random[KEY_LEN..]);
        ServerKeys {
            server: vec![Key::from_bytes(server)],
            client_masters: vec![Key::from_bytes(master)],
            revoked: BTreeSet::new(),
        }
    }

    /// The master key with this ID, if held.
    pub fn master(&self, id: KeyId) -> Option<&Key> {
        self.client_masters.iter().find(|k| k.id() == id)
    }
}

/// The key a client named `principal` gets from `master`. The role is part
/// of the derivation, so a key issued to a user cannot claim to be an
/// administrator's.
pub fn derive_client_key(master: &Key, principal: &Principal) -> Key {
    let role: &[u8] = if principal.admin { b"admin" } else { b"user" };
    let info = [b"roomcast client key v1\0".as_slice(), role, b"\0", principal.name.as_bytes()].concat();
    Key::from_bytes(hkdf_expand(master, &[], &[&info]))
}

/// HKDF-SHA256 (RFC 5869) of `key` with `salt` and `info`: 32 bytes.
pub(crate) fn hkdf_expand(key: &Key, salt: &[u8], info: &[&[u8]]) -> [u8; KEY_LEN] {
    struct Length;
    impl hkdf::KeyType for Length {
        fn len(&self) -> usize {
            KEY_LEN
        }
    }
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(key.bytes());
    let mut okm = [0u8; KEY_LEN];
    // HKDF-Expand fails only for outputs longer than 255 hash lengths; ours is one.
    match prk.expand(info, Length).and_then(|okm_out| okm_out.fill(&mut okm)) {
        Ok(()) => okm,
        Err(_) => unreachable!("a 32-byte HKDF output is always possible"),
    }
}

/// A client name is typed by people and logged: short, printable, no spaces.
pub fn check_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@');
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.chars().all(allowed) {
        return Err(format!(
            "client name '{}' must be 1 to {MAX_NAME_LEN} letters, digits or - _ . @",
            name.chars().take(40).collect::<String>()
        ));
    }
    Ok(())
}

/// What a key file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyFile {
    /// A server's keys (`--generate-key`).
    Server(ServerKeys),
    /// One client's key (`--issue-client-key`).
    Client(ClientKey),
}

/// The file as TOML: a server key file has `server_keys`, a client key file `name`.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawKeyFile {
    server_keys: Option<Vec<String>>,
    client_master_keys: Option<Vec<String>>,
    revoked_clients: Option<Vec<String>>,
    name: Option<String>,
    admin: Option<bool>,
    master_key_id: Option<String>,
    key: Option<String>,
}

/// Parses a key file; errors name the key (the TOML key) that is wrong.
pub fn parse_key_file(text: &str) -> Result<KeyFile, String> {
    let raw: RawKeyFile = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
    match (&raw.server_keys, &raw.name) {
        (Some(_), Some(_)) => Err("a key file is a server's (`server_keys`) or a client's (`name`), not both".into()),
        (None, None) => Err("not a roomcast key file: it has neither `server_keys` nor `name`".into()),
        (Some(_), None) => parse_server_keys(raw).map(KeyFile::Server),
        (None, Some(_)) => parse_client_key(raw).map(KeyFile::Client),
    }
}

fn parse_key_list(field: &str, texts: Option<Vec<String>>) -> Result<Vec<Key>, String> {
    let texts = texts.ok_or_else(|| format!("`{field}` is missing"))?;
    if texts.is_empty() || texts.len() > MAX_KEYS_PER_LIST {
        return Err(format!("`{field}` must list 1 to {MAX_KEYS_PER_LIST} keys, not {}", texts.len()));
    }
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| Key::from_base64(text).map_err(|e| format!("`{field}` key {} {e}", i + 1)))
        .collect()
}

fn parse_server_keys(raw: RawKeyFile) -> Result<ServerKeys, String> {
    if raw.admin.is_some() || raw.master_key_id.is_some() || raw.key.is_some() {
        return Err("a server key file has no `admin`, `master_key_id` or `key` (those are a client's)".into());
    }
    let server = parse_key_list("server_keys", raw.server_keys)?;
    let client_masters = parse_key_list("client_master_keys", raw.client_master_keys)?;
    let revoked: BTreeSet<String> = raw.revoked_clients.unwrap_or_default().into_iter().collect();
    if revoked.len() > MAX_REVOKED {
        return Err(format!("`revoked_clients` lists {} names; at most {MAX_REVOKED}", revoked.len()));
    }
    revoked.iter().try_for_each(|name| check_name(name).map_err(|e| format!("`revoked_clients`: {e}")))?;
    Ok(ServerKeys { server, client_masters, revoked })
}

fn parse_client_key(raw: RawKeyFile) -> Result<ClientKey, String> {
    if raw.client_master_keys.is_some() || raw.revoked_clients.is_some() {
        return Err("a client key file has no `client_master_keys` or `revoked_clients` (those are a server's)".into());
    }
    let name = raw.name.unwrap_or_default();
    check_name(&name).map_err(|e| format!("`name`: {e}"))?;
    let master = KeyId::parse(&raw.master_key_id.ok_or("`master_key_id` is missing")?)
        .map_err(|e| format!("`master_key_id`: {e}"))?;
    let key = Key::from_base64(&raw.key.ok_or("`key` is missing")?).map_err(|e| format!("`key` {e}"))?;
    Ok(ClientKey { principal: Principal { name, admin: raw.admin.unwrap_or(false) }, master, key })
}

/// A server key file's text.
pub fn format_server_keys(keys: &ServerKeys) -> String {
    let list = |keys: &[Key]| keys.iter().map(|k| format!("\"{}\"", k.to_base64())).collect::<Vec<_>>().join(", ");
    let revoked = keys.revoked.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ");
    format!(
        "# roomcast server keys (server key {}, client master key {}).\n\
         # Keep this file secret: readable by its owner only (chmod 600). Every server\n\
         # of the group needs the same file. Clients get keys of their own from it:\n\
         #   roomcast-server --key-file THIS_FILE --issue-client-key NAME OUT_FILE\n\
         # A server seals with the first key of each list and accepts all of them,\n\
         # which is how keys roll without downtime (docs/security.md).\n\
         server_keys = [{}]\n\
         client_master_keys = [{}]\n\
         # Client names whose keys no longer count, e.g. [\"bob\"].\n\
         revoked_clients = [{revoked}]\n",
        keys.server[0].id(),
        keys.client_masters[0].id(),
        list(&keys.server),
        list(&keys.client_masters),
    )
}

/// A client key file's text.
pub fn format_client_key(key: &ClientKey) -> String {
    let role = if key.principal.admin { "an administrator: may cancel anyone's reservations" } else { "a user" };
    format!(
        "# roomcast client key of \"{name}\", {role}.\n\
         # Keep it secret (chmod 600): whoever holds it acts as {name}.\n\
         name = \"{name}\"\n\
         admin = {admin}\n\
         master_key_id = \"{master}\"\n\
         key = \"{key}\"\n",
        name = key.principal.name,
        admin = key.principal.admin,
        master = key.master,
        key = key.key.to_base64(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ServerKeys {
        ServerKeys::generate([7; 64])
    }

    fn alice(admin: bool) -> Principal {
        Principal { name: "alice".into(), admin }
    }

    #[test]
    fn key_files_round_trip() {
        let mut server = keys();
        server.revoked.insert("bob".into());
        assert_eq!(parse_key_file(&format_server_keys(&server)), Ok(KeyFile::Server(server.clone())));
        let client = ClientKey::issue(&server.client_masters[0], alice(true)).expect("valid name");
        assert_eq!(parse_key_file(&format_client_key(&client)), Ok(KeyFile::Client(client)));
    }

    #[test]
    fn a_clients_key_depends_on_the_master_the_name_and_the_role() {
        let master = &keys().client_masters[0];
        let other_master = Key::from_bytes([8; KEY_LEN]);
        let base = derive_client_key(master, &alice(false));
        assert_eq!(base, derive_client_key(master, &alice(false)), "deterministic");
        assert_ne!(base, derive_client_key(master, &alice(true)), "a user's key is not an admin's");
        assert_ne!(base, derive_client_key(&other_master, &alice(false)));
        let bob = Principal { name: "bob".into(), admin: false };
        assert_ne!(base, derive_client_key(master, &bob));
        assert_ne!(base, *master);
    }

    #[test]
    fn key_ids_are_stable_and_differ_between_keys() {
        let (a, b) = (Key::from_bytes([1; KEY_LEN]), Key::from_bytes([2; KEY_LEN]));
        assert_eq!(a.id(), Key::from_bytes([1; KEY_LEN]).id());
        assert_ne!(a.id(), b.id());
        assert_eq!(KeyId::parse(&a.id().to_string()), Ok(a.id()));
        assert_eq!(format!("{:?}", a), format!("Key({})", a.id()), "Debug never shows the key");
    }

    #[test]
    fn bad_key_files_say_what_is_wrong() {
        let key = "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"";
        let cases = [
            ("", "neither `server_keys` nor `name`"),
            ("server_keys = []\nclient_master_keys = []", "`server_keys` must list 1 to 8 keys, not 0"),
            (&format!("server_keys = [{key}]"), "`client_master_keys` is missing"),
            (&format!("server_keys = [\"abc\"]\nclient_master_keys = [{key}]"), "`server_keys` key 1 is not base64"),
            (&format!("server_keys = [\"AAAA\"]\nclient_master_keys = [{key}]"), "holds 3 bytes"),
            (&format!("server_keys = [{key}]\nclient_master_keys = [{key}]\nname = \"a\""), "not both"),
            ("name = \"a b\"\nmaster_key_id = \"00000000\"\nkey = \"\"", "`name`: client name 'a b'"),
            (&format!("name = \"a\"\nmaster_key_id = \"xyz\"\nkey = {key}"), "`master_key_id`: 'xyz'"),
            ("name = \"a\"\nmaster_key_id = \"00000000\"", "`key` is missing"),
            (&format!("name = \"a\"\nmaster_key_id = \"00000000\"\nkey = {key}\ncolour = 1"), "unknown field"),
        ];
        for (i, (text, want)) in cases.iter().enumerate() {
            let got = parse_key_file(text).expect_err(text);
            assert!(got.contains(want), "#{i}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn names_are_short_printable_words() {
        for (i, (name, ok)) in
            [("alice", true), ("ops.team-1@lab", true), ("", false), ("a b", false), ("é", false)].iter().enumerate()
        {
            assert_eq!(check_name(name).is_ok(), *ok, "#{i}: {name:?}");
        }
        assert!(check_name(&"x".repeat(MAX_NAME_LEN)).is_ok());
        assert!(check_name(&"x".repeat(MAX_NAME_LEN + 1)).is_err());
    }
}
