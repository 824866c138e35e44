//! A background writer: one [`WireClient`] writing without pause, each write
//! retransmitted every few milliseconds until some leader confirms it. Its
//! record of confirmations (when, and by which server) tells when writes
//! resumed after a failover.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::error::BenchError;
use super::wireclient::{SlotCycler, WireClient, write_confirmed};
use crate::net::GroupAddr;
use crate::wire::Slot;

/// How long one write may go unanswered before the writer gives up.
const WRITE_PATIENCE: Duration = Duration::from_secs(60);

/// One confirmed write.
#[derive(Debug, Clone, Copy)]
pub struct Confirmation {
    /// When the request was first sent.
    pub sent: Instant,
    /// When its confirmation arrived.
    pub at: Instant,
    /// The server that confirmed it (the leader then).
    pub server: u64,
}

#[derive(Default)]
struct Record {
    confirmations: Vec<Confirmation>,
    failed: Option<String>,
    refused: u64,
}

#[derive(Default)]
struct Shared {
    record: Mutex<Record>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running writer; stopped and joined when dropped.
pub struct Writer {
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts writing to `group`, cycling over `slots`, retransmitting every `retry`.
    pub fn start(group: &GroupAddr, slots: Vec<Slot>, retry: Duration) -> Result<Writer, BenchError> {
        let mut client = WireClient::open(group, retry)?;
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::default());
        let thread = {
            let (stop, shared) = (Arc::clone(&stop), Arc::clone(&shared));
            std::thread::spawn(move || {
                let mut cycler = SlotCycler::new(slots);
                while !stop.load(Ordering::Relaxed) {
                    let outcome = client
                        .call_while(cycler.next_command(), WRITE_PATIENCE, || !stop.load(Ordering::Relaxed))
                        .and_then(|a| write_confirmed(&a.reply.answer).map(|ok| (a, ok)));
                    let mut record = shared.lock();
                    match outcome {
                        Ok((answered, confirmed)) => {
                            if !confirmed {
                                record.refused += 1;
                            }
                            let server = answered.reply.server;
                            record.confirmations.push(Confirmation {
                                sent: answered.sent,
                                at: answered.received,
                                server,
                            });
                        }
                        Err(_) if stop.load(Ordering::Relaxed) => return,
                        Err(e) => {
                            record.failed = Some(e.to_string());
                            drop(record);
                            shared.changed.notify_all();
                            return;
                        }
                    }
                    drop(record);
                    shared.changed.notify_all();
                }
            })
        };
        Ok(Writer { stop, shared, thread: Some(thread) })
    }

    /// Waits for the first confirmation that satisfies `wanted`.
    pub fn wait(
        &self,
        timeout: Duration,
        what: &str,
        wanted: impl Fn(&Confirmation) -> bool,
    ) -> Result<Confirmation, BenchError> {
        let deadline = Instant::now() + timeout;
        let mut record = self.shared.lock();
        loop {
            if let Some(found) = record.confirmations.iter().find(|c| wanted(c)) {
                return Ok(*found);
            }
            if let Some(why) = &record.failed {
                return Err(BenchError::Unexpected(format!("the bench's writer stopped: {why}")));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(BenchError::Timeout { what: what.to_string(), waited: timeout, context: String::new() });
            }
            record = self.shared.changed.wait_timeout(record, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Forgets the confirmations so far (they are searched on every wait).
    pub fn clear(&self) {
        self.shared.lock().confirmations.clear();
    }

    /// Writes refused so far (0 unless a retried write had taken effect).
    pub fn refused(&self) -> u64 {
        self.shared.lock().refused
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
