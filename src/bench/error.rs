//! The benchmark's one error type: what went wrong, with what it was doing.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::net::NetError;

/// Why a benchmark part could not finish.
#[derive(Debug)]
pub enum BenchError {
    /// The `server` or `client` binary is missing next to the bench.
    Binaries(String),
    /// An I/O operation failed (a file, a pipe, a process).
    Io {
        /// What the bench was doing.
        action: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// A socket could not be set up.
    Net(NetError),
    /// Something the bench waited for did not happen in time.
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the bench waited.
        waited: Duration,
        /// What the processes involved printed last, for diagnosis.
        context: String,
    },
    /// A process exited while the bench needed it.
    Exited {
        /// Which process.
        what: String,
        /// What it printed last.
        context: String,
    },
    /// A server answered something the bench did not expect.
    Unexpected(String),
    /// A command the bench runs (ip, nft, etcdctl, ...) failed.
    Tool {
        /// The command line.
        command: String,
        /// Its exit status and error output.
        why: String,
    },
    /// A chart could not be drawn.
    Chart(String),
    /// The arguments make no sense together.
    Usage(String),
}

impl BenchError {
    /// A closure that wraps an `io::Error` with `action`, for `map_err`.
    pub fn io(action: impl Into<String>) -> impl FnOnce(io::Error) -> BenchError {
        let action = action.into();
        move |source| BenchError::Io { action, source }
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Binaries(why) => write!(f, "{why}"),
            BenchError::Io { action, source } => write!(f, "{action}: {source}"),
            BenchError::Net(e) => write!(f, "{e}"),
            BenchError::Timeout { what, waited, context } => {
                write!(f, "{what}: not seen within {:.1} s", waited.as_secs_f64())?;
                if !context.is_empty() {
                    write!(f, "\n{context}")?;
                }
                Ok(())
            }
            BenchError::Exited { what, context } => write!(f, "{what} exited unexpectedly\n{context}"),
            BenchError::Unexpected(why) => write!(f, "unexpected answer: {why}"),
            BenchError::Tool { command, why } => write!(f, "`{command}` failed: {why}"),
            BenchError::Chart(why) => write!(f, "drawing a chart: {why}"),
            BenchError::Usage(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for BenchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BenchError::Io { source, .. } => Some(source),
            BenchError::Net(e) => Some(e),
            _ => None,
        }
    }
}

impl From<NetError> for BenchError {
    fn from(e: NetError) -> Self {
        BenchError::Net(e)
    }
}
