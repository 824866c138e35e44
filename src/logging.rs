//! Log lines as the programs write them: a UTC timestamp to the millisecond
//! (failover is measured in milliseconds), the level, and the ID of the server
//! whose thread wrote the line, e.g.
//!
//! ```text
//! [2026-03-31T12:00:01.207Z INFO  server 200] Heartbeat to group leader 300 failed
//! ```
//!
//! The ID comes from the thread, not the process, because the demo runs
//! several servers in one process: [`tag_thread`] marks a thread as working
//! for a server (the driver and the hook thread do). Lines from other threads
//! name their module instead, as env_logger does.

use std::cell::Cell;
use std::io::Write;
use std::sync::mpsc::Sender;

use env_logger::{Env, Target};
use log::{Level, LevelFilter, Log, Metadata, Record, SetLoggerError};

thread_local! {
    static SERVER: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Marks the calling thread as working for server `id`: its log lines carry the ID.
pub fn tag_thread(id: u64) {
    SERVER.with(|server| server.set(Some(id)));
}

/// The server the calling thread works for, if [`tag_thread`] said so.
pub fn thread_server() -> Option<u64> {
    SERVER.with(Cell::get)
}

/// Which lines to write (`RUST_LOG` syntax, e.g. `info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filter<'a> {
    /// Given by the user (`--log-level`); overrides `$RUST_LOG`.
    pub given: Option<&'a str>,
    /// Without `given` or `$RUST_LOG`.
    pub default: &'a str,
}

/// The log lines' format, writing to `target`, filtered by `filter`.
fn builder(filter: Filter<'_>, target: Target) -> env_logger::Builder {
    let mut builder = env_logger::Builder::from_env(Env::default().default_filter_or(filter.default));
    if let Some(given) = filter.given {
        builder.parse_filters(given);
    }
    builder.target(target).format(|out, record| {
        let style = out.default_level_style(record.level());
        let (timestamp, level) = (out.timestamp_millis(), record.level());
        match thread_server() {
            Some(id) => writeln!(out, "[{timestamp} {style}{level:<5}{style:#} server {id}] {}", record.args()),
            None => writeln!(out, "[{timestamp} {style}{level:<5}{style:#} {}] {}", record.target(), record.args()),
        }
    });
    builder
}

/// Starts logging to `target`.
pub fn init(filter: Filter<'_>, target: Target) -> Result<(), SetLoggerError> {
    builder(filter, target).try_init()
}

/// Like [`init`], and also sends every server line at `info` and above to
/// `echo` in short form, without the timestamp (`[server 200] Heartbeat to
/// group leader 300 failed`): the demo shows its servers' role changes in
/// the terminal while the full log goes to a file.
pub fn init_with_echo(filter: Filter<'_>, target: Target, echo: Sender<String>) -> Result<(), SetLoggerError> {
    let inner = builder(filter, target).build();
    let max_level = inner.filter().max(LevelFilter::Info);
    log::set_boxed_logger(Box::new(Echoing { inner, echo }))?;
    log::set_max_level(max_level);
    Ok(())
}

/// A logger that writes through env_logger and echoes server lines.
struct Echoing {
    inner: env_logger::Logger,
    echo: Sender<String>,
}

impl Echoing {
    /// The short form of `record` when it is a server's line worth showing.
    fn echoed(record: &Record<'_>) -> Option<String> {
        let id = thread_server().filter(|_| record.level() <= Level::Info)?;
        Some(format!("[server {id}] {}", record.args()))
    }
}

impl Log for Echoing {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata) || metadata.level() <= Level::Info
    }

    fn log(&self, record: &Record<'_>) {
        if self.inner.matches(record) {
            self.inner.log(record);
        }
        if let Some(line) = Echoing::echoed(record) {
            // The receiver is gone once the program is leaving; nothing to show then.
            let _ = self.echo.send(line);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // simulated time starts at a real instant
mod tests {
    use super::*;

    #[test]
    fn a_tagged_thread_names_its_server_and_others_do_not() {
        let other = std::thread::spawn(thread_server).join().expect("the thread runs");
        tag_thread(300);
        assert_eq!((thread_server(), other), (Some(300), None));
        let echoed = |level| {
            let args = format_args!("Election completed. Group Leader: 300");
            Echoing::echoed(&Record::builder().level(level).args(args).build())
        };
        assert_eq!(echoed(Level::Warn).as_deref(), Some("[server 300] Election completed. Group Leader: 300"));
        assert_eq!(echoed(Level::Debug), None, "debug lines stay in the log file");
    }
}
