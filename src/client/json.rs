//! `--json`: one JSON object per line on standard output for each outcome of
//! a one-shot command, for scripts (and the LAN tests' history checker).
//! Error messages still go to standard error as text.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Responder, Source};
use crate::wire::{Answer, ServerStatus};

fn responder((server, address): Responder) -> Value {
    json!({ "server": server, "address": address.to_string() })
}

/// An answer, from the servers (`from` names the one that replied) or the cache.
pub fn answer(client: u64, request: Option<u64>, from: Option<Responder>, source: Source, answer: &Answer) -> String {
    let source = match source {
        Source::Servers => "servers",
        Source::Cache => "cache",
    };
    let mut object =
        json!({ "event": "answer", "client": client, "request": request, "source": source, "answer": answer });
    if let (Some(from), Some(map)) = (from, object.as_object_mut()) {
        map.insert("from".into(), responder(from));
    }
    object.to_string()
}

/// No server answered `request` within `waited`.
pub fn no_answer(client: u64, request: u64, waited: Duration) -> String {
    let waited_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
    json!({ "event": "no_answer", "client": client, "request": request, "waited_ms": waited_ms }).to_string()
}

/// No server answered `request`, and `server` said our key is missing or wrong.
pub fn key_refused(client: u64, request: u64, server: std::net::SocketAddrV4, notice: crate::auth::Notice) -> String {
    let notice = format!("{notice:?}");
    json!({ "event": "key_refused", "client": client, "request": request, "server": server.to_string(), "notice": notice })
        .to_string()
}

/// Two servers answered one request.
pub fn duplicate_reply(client: u64, request: u64, first: Responder, second: Responder) -> String {
    json!({
        "event": "duplicate_reply",
        "client": client,
        "request": request,
        "first": responder(first),
        "second": responder(second),
    })
    .to_string()
}

/// Every server's answer to `status`.
pub fn statuses(client: u64, request: u64, servers: &[(Responder, ServerStatus)]) -> String {
    let servers: Vec<Value> =
        servers.iter().map(|(from, status)| json!({ "from": responder(*from), "status": status })).collect();
    json!({ "event": "status", "client": client, "request": request, "servers": servers }).to_string()
}
