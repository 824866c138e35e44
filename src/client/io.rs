//! The client program's I/O loop: the only client code that reads the clock or
//! touches a socket or the terminal.
//!
//! One thread blocks on the unicast socket and, in interactive mode, another on
//! standard input; both feed a channel. The main thread waits on that channel
//! until the [`Client`]'s next timeout, so a late second reply is reported even
//! while the user is still typing, and a request never waits longer than its
//! timeout.

use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::{self, BufRead, ErrorKind, IsTerminal, Write};
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::command::{self, Line};
use super::error::ClientError;
use super::{Client, ClientConfig, ClientEvent, Responder, Source, Submitted};
use super::{json, render};
use crate::net::{self, GroupAddr, GroupTargets, NetError};
use crate::wire::{Answer, Command, MAX_DATAGRAM, WriteOutcome};

/// How long the client keeps listening after its last answer, to catch a
/// second server's reply before it exits.
pub const LINGER: Duration = Duration::from_millis(200);

/// How the client program ends, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// Every request was answered.
    Success = 0,
    /// The group refused the request: a reservation, a cancellation or an unknown room.
    Refused = 1,
    /// Bad arguments or a malformed command.
    Usage = 2,
    /// No server answered, more than one did, a socket failed, or the
    /// outcome of a write is not known yet.
    Failed = 3,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// What the client program was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The group to send requests to, and how.
    pub group: GroupAddr,
    /// Servers to send each request to by unicast as well (`--peer`).
    pub peers: Vec<SocketAddrV4>,
    /// Retry interval and timeout.
    pub config: ClientConfig,
    /// The words of a command to run once; empty to read commands from stdin.
    pub command: Vec<String>,
    /// Print each outcome as a line of JSON instead of text.
    pub json: bool,
}

/// Runs the client program; errors are reported on stderr.
pub fn run(options: &Options) -> Exit {
    match run_mode(options) {
        Ok(exit) => exit,
        Err(error) => {
            complain(&error);
            Exit::Failed
        }
    }
}

fn run_mode(options: &Options) -> Result<Exit, ClientError> {
    // A malformed one-shot command is refused before any socket is opened.
    match command::parse(&options.command.join(" ")) {
        Ok(Line::Empty) => Session::open(options, true)?.interactive(),
        Ok(Line::Help) => say(&command::help()).map(|()| Exit::Success),
        Ok(Line::Send(command)) => Session::open(options, false)?.one_shot(command),
        Err(error) => {
            complain(&error);
            Ok(Exit::Usage)
        }
    }
}

/// What wakes the main thread.
enum Input {
    /// A line from standard input; `None` at its end.
    Line(Option<String>),
    /// A datagram on the unicast socket.
    Datagram(SocketAddrV4, Vec<u8>),
    /// A reader thread failed and stopped.
    Failed(ClientError),
}

struct Session {
    client: Client,
    socket: UdpSocket,
    targets: GroupTargets,
    inputs: Receiver<Input>,
    /// Lines that arrived while a request was in flight, for the next prompts.
    backlog: VecDeque<Option<String>>,
    /// Until when a second server's reply to the last request is worth waiting for.
    linger_until: Option<Instant>,
    json: bool,
    /// Why the last send failed, for the message if no answer comes.
    send_failure: Option<String>,
    /// On a terminal, the line editor's thread reads a line (showing the
    /// prompt) each time it is asked here.
    editor: Option<Sender<()>>,
    /// A line was asked of the editor and has not arrived yet.
    line_requested: bool,
}

impl Session {
    fn open(options: &Options, interactive: bool) -> Result<Session, ClientError> {
        let socket = net::unicast_socket(&options.group)?;
        // The reader thread blocks in recv; the flag is shared with its clone.
        socket.set_nonblocking(false).map_err(net_error("making the unicast socket blocking"))?;
        let receiver = socket.try_clone().map_err(net_error("sharing the unicast socket with its reader"))?;
        let (sender, inputs) = mpsc::channel();
        spawn("socket reader", receiver_loop(receiver, sender.clone()))?;
        let mut editor = None;
        if interactive && io::stdin().is_terminal() {
            let (wants, requests) = mpsc::channel();
            spawn("line editor", editor_loop(sender, requests))?;
            editor = Some(wants);
        } else if interactive {
            spawn("stdin reader", stdin_loop(sender))?;
        }
        Ok(Session {
            client: Client::new(random_id(), options.config),
            socket,
            targets: GroupTargets { group: options.group.socket_addr(), peers: options.peers.clone() },
            inputs,
            backlog: VecDeque::new(),
            linger_until: None,
            json: options.json,
            send_failure: None,
            editor,
            line_requested: false,
        })
    }

    /// Shows the prompt: printed through a pipe, drawn by the line editor on
    /// a terminal (asked once per line).
    fn prompt(&mut self) -> Result<(), ClientError> {
        let Some(editor) = &self.editor else { return print_prompt() };
        if !self.line_requested {
            editor.send(()).map_err(|_| readers_gone())?;
            self.line_requested = true;
        }
        Ok(())
    }

    fn one_shot(&mut self, command: Command) -> Result<Exit, ClientError> {
        let exit = self.exchange(command)?;
        Ok(exit.max(self.linger()?))
    }

    /// Prompts for and runs commands until end of input or `quit`.
    fn interactive(&mut self) -> Result<Exit, ClientError> {
        loop {
            self.prompt()?;
            let Some(line) = self.next_line()? else {
                self.linger()?;
                return Ok(Exit::Success);
            };
            match command::parse(&line) {
                Ok(Line::Empty) => {}
                Ok(Line::Help) => say(&command::help())?,
                Ok(Line::Send(Command::Quit)) => {
                    let exit = self.exchange(Command::Quit)?;
                    self.linger()?;
                    return Ok(exit);
                }
                Ok(Line::Send(command)) => {
                    self.exchange(command)?;
                }
                Err(error) => complain(&error),
            }
        }
    }

    /// Runs one command to its answer or its timeout, and shows the outcome.
    fn exchange(&mut self, command: Command) -> Result<Exit, ClientError> {
        let submitted = self.client.submit(Instant::now(), command.clone()).map_err(ClientError::Busy)?;
        self.send_failure = None;
        if let Submitted::FromCache(answer) = submitted {
            return self.show(None, None, Source::Cache, &command, &answer);
        }
        let mut exit = Exit::Success;
        loop {
            self.flush();
            let Some(deadline) = self.client.poll_timeout() else {
                break;
            };
            if let Some(event) = self.step(Some(deadline))? {
                exit = exit.max(self.report(event)?);
            }
        }
        Ok(exit)
    }

    /// The next input line, reporting late replies while the user types;
    /// `None` at the end of input.
    fn next_line(&mut self) -> Result<Option<String>, ClientError> {
        loop {
            if let Some(line) = self.backlog.pop_front() {
                return Ok(line);
            }
            if let Some(event) = self.step(None)? {
                self.report(event)?;
                // The report went below the prompt; show it again (the line
                // editor keeps showing its own).
                if self.editor.is_none() {
                    print_prompt()?;
                }
            }
        }
    }

    /// Listens until the linger window closes, reporting any further replies.
    fn linger(&mut self) -> Result<Exit, ClientError> {
        let mut exit = Exit::Success;
        while let Some(until) = self.linger_until.filter(|&until| Instant::now() < until) {
            if let Some(event) = self.step(Some(until))? {
                exit = exit.max(self.report(event)?);
            }
        }
        Ok(exit)
    }

    /// Waits for one input or until `deadline` (`None`: no deadline) and hands
    /// it to the client; lines are kept for later prompts.
    fn step(&mut self, deadline: Option<Instant>) -> Result<Option<ClientEvent>, ClientError> {
        let input = match deadline {
            None => self.inputs.recv().map_err(|_| readers_gone())?,
            Some(deadline) => {
                // Checked first so that a steady stream of input cannot delay a retry.
                let now = Instant::now();
                if now >= deadline {
                    return Ok(self.client.handle_timeout(now));
                }
                match self.inputs.recv_timeout(deadline - now) {
                    Ok(input) => input,
                    Err(RecvTimeoutError::Timeout) => {
                        return Ok(self.client.handle_timeout(Instant::now()));
                    }
                    Err(RecvTimeoutError::Disconnected) => return Err(readers_gone()),
                }
            }
        };
        match input {
            Input::Datagram(from, bytes) => Ok(self.client.handle_datagram(Instant::now(), from, &bytes)),
            Input::Line(line) => {
                self.line_requested = false;
                self.backlog.push_back(line);
                Ok(None)
            }
            Input::Failed(error) => Err(error),
        }
    }

    /// Sends what the client queued. A failed send is a lost datagram (a full
    /// buffer, a firewall rule, a route coming back): the retry sends again,
    /// and a timeout reports the last failure.
    fn flush(&mut self) {
        while let Some(datagram) = self.client.poll_transmit() {
            for to in self.targets.all() {
                if let Err(e) = self.socket.send_to(&datagram, to) {
                    log::debug!("sending a request to {to} failed: {e}");
                    self.send_failure = Some(format!("{e} (to {to})"));
                }
            }
        }
    }

    fn report(&mut self, event: ClientEvent) -> Result<Exit, ClientError> {
        let client = self.client.id();
        let (error, json) = match event {
            ClientEvent::Answered { request, from, source, command, answer } => {
                // Every answer event came off the network, so a second server may follow it.
                self.linger_until = Some(Instant::now() + LINGER);
                return self.show(Some(request), Some(from), source, &command, &answer);
            }
            ClientEvent::Statuses { request, servers } => {
                self.linger_until = None; // every server was meant to answer
                let text = match self.json {
                    true => json::statuses(client, request, &servers),
                    false => format!("({}): {}", Source::Servers, render::statuses(&servers)),
                };
                return say(&text).map(|()| Exit::Success);
            }
            ClientEvent::TimedOut { request, waited } => {
                let send_failure = self.send_failure.take();
                let error = ClientError::NoAnswer { waited, group: self.targets.group, send_failure };
                (error, json::no_answer(client, request, waited))
            }
            ClientEvent::DuplicateReply { request, first, second } => (
                ClientError::MultipleLeaders { request, first, second },
                json::duplicate_reply(client, request, first, second),
            ),
        };
        if self.json {
            say(&json)?;
        }
        complain(&error);
        Ok(Exit::Failed)
    }

    /// Prints an answer as text or JSON; its exit status.
    fn show(
        &self,
        request: Option<u64>,
        from: Option<Responder>,
        source: Source,
        command: &Command,
        answer: &Answer,
    ) -> Result<Exit, ClientError> {
        let text = match self.json {
            true => json::answer(self.client.id(), request, from, source, answer),
            false => render::answer_text(source, command, answer),
        };
        say(&text)?;
        let refused = matches!(
            answer,
            Answer::UnknownRoom(_) | Answer::Write(WriteOutcome::Refused(_)) | Answer::TooFewReplicas { .. }
        );
        Ok(match answer {
            _ if refused => Exit::Refused,
            Answer::Unconfirmed { .. } => Exit::Failed,
            _ => Exit::Success,
        })
    }
}

fn print_prompt() -> Result<(), ClientError> {
    let mut out = io::stdout().lock();
    write!(out, "Next command: ").and_then(|()| out.flush()).map_err(stdout_error)
}

fn say(text: &str) -> Result<(), ClientError> {
    writeln!(io::stdout().lock(), "{text}").map_err(stdout_error)
}

fn complain(error: &dyn std::fmt::Display) {
    // If stderr itself is gone there is nowhere left to report to.
    let _ = writeln!(io::stderr().lock(), "error: {error}");
}

fn stdout_error(source: io::Error) -> ClientError {
    ClientError::Io { action: "writing to standard output", source }
}

fn readers_gone() -> ClientError {
    let source = io::Error::other("both reader threads stopped");
    ClientError::Io { action: "waiting for input", source }
}

fn net_error(action: &'static str) -> impl FnOnce(io::Error) -> NetError {
    move |source| NetError { action: action.to_string(), source, setup: None }
}

fn spawn(name: &'static str, body: impl FnOnce() + Send + 'static) -> Result<(), ClientError> {
    let started = thread::Builder::new().name(name.to_string()).spawn(body);
    started.map(drop).map_err(|source| ClientError::Io { action: "starting a thread", source })
}

fn receiver_loop(socket: UdpSocket, inputs: Sender<Input>) -> impl FnOnce() + Send + 'static {
    move || {
        let mut buffer = vec![0; MAX_DATAGRAM];
        loop {
            let input = match socket.recv_from(&mut buffer) {
                Ok((len, SocketAddr::V4(from))) => Input::Datagram(from, buffer[..len].to_vec()),
                // The socket is IPv4; nothing else can arrive.
                Ok((_, SocketAddr::V6(_))) => continue,
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(source) => Input::Failed(net_error("receiving replies")(source).into()),
            };
            let failed = matches!(input, Input::Failed(_));
            if inputs.send(input).is_err() || failed {
                return;
            }
        }
    }
}

/// On a terminal: reads one line with editing and history (arrow keys) each
/// time one is requested, so that the prompt appears after the last answer.
fn editor_loop(inputs: Sender<Input>, requests: Receiver<()>) -> impl FnOnce() + Send + 'static {
    move || {
        let mut editor = match rustyline::DefaultEditor::new() {
            Ok(editor) => editor,
            Err(e) => {
                let source = io::Error::other(e.to_string());
                let _ = inputs.send(Input::Failed(ClientError::Io { action: "starting the line editor", source }));
                return;
            }
        };
        while requests.recv().is_ok() {
            let input = match editor.readline("Next command: ") {
                Ok(line) => {
                    let _ = editor.add_history_entry(line.as_str());
                    Input::Line(Some(line))
                }
                // Ctrl-D or Ctrl-C end the session like the end of piped input.
                Err(rustyline::error::ReadlineError::Eof | rustyline::error::ReadlineError::Interrupted) => {
                    Input::Line(None)
                }
                Err(e) => Input::Failed(ClientError::Io {
                    action: "reading a line from the terminal",
                    source: io::Error::other(e.to_string()),
                }),
            };
            let more = matches!(input, Input::Line(Some(_)));
            if inputs.send(input).is_err() || !more {
                return;
            }
        }
    }
}

fn stdin_loop(inputs: Sender<Input>) -> impl FnOnce() + Send + 'static {
    move || {
        let mut stdin = io::stdin().lock();
        loop {
            let mut bytes = Vec::new();
            let input = match stdin.read_until(b'\n', &mut bytes) {
                Ok(0) => Input::Line(None),
                // A line that is not UTF-8 gets a usage error instead of ending the session.
                Ok(_) => Input::Line(Some(String::from_utf8_lossy(&bytes).into_owned())),
                Err(source) => Input::Failed(ClientError::Io { action: "reading standard input", source }),
            };
            let more = matches!(input, Input::Line(Some(_)));
            if inputs.send(input).is_err() || !more {
                return;
            }
        }
    }
}

/// A client ID that differs between processes, also on different hosts with
/// equal PIDs: `RandomState` is seeded from the OS's randomness.
fn random_id() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_nanos());
    // 0 marks the servers' own log entries.
    RandomState::new().hash_one((std::process::id(), nanos)).max(1)
}
