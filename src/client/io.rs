//! The client program's I/O loop: the only client code that reads the clock or
//! touches a socket, a signal or the terminal.
//!
//! One thread blocks on the unicast socket and, in a session, another on
//! standard input (the line editor on a terminal); both feed a channel, and
//! so do the signal handler and, in the demo, its servers' notices. The main
//! thread waits on that channel until the [`Client`]'s next timeout, so a
//! late second reply is reported even while the user is still typing, a
//! request never waits longer than its timeout, and Ctrl-C stops the wait.
//!
//! On a terminal the session looks like the handout's: `Next command: `
//! prompts, line editing and history. Through a pipe it prints no prompts
//! (unless `--prompt`), so that standard output holds only the answers.

// The client's I/O shell: its clock and its socket (clippy.toml keeps these out of the core).
#![allow(clippy::disallowed_methods)]

use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::{self, BufRead, ErrorKind, IsTerminal, Write};
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustyline::error::ReadlineError;
use rustyline::{Cmd, ConditionalEventHandler, DefaultEditor, EventContext, EventHandler, KeyEvent};

use super::command::{self, Line};
use super::error::ClientError;
use super::{Client, ClientConfig, ClientEvent, Responder, Source, Submitted};
use super::{json, render};
use crate::auth::ClientKey;
use crate::auth::frame::{BOOT_LEN, Boot};
use crate::net::{self, GroupAddr, GroupTargets, NetError};
use crate::node::Destination;
use crate::wire::{Answer, Command, MAX_DATAGRAM, WriteOutcome};

/// How long the client keeps listening after an answer unless `--linger`
/// says otherwise, to catch a second server's reply (two leaders) before it
/// exits. A server on the LAN answers within milliseconds.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(200);

/// The interactive prompt, the handout's.
const PROMPT: &str = "Next command: ";

/// How a command, and so the client program, ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every request was answered.
    Success = 0,
    /// The group refused the request: a reservation, a cancellation or an unknown room.
    Refused = 1,
    /// Bad arguments, a malformed command, or an `--interface` this host lacks.
    Usage = 2,
    /// No server answered, more than one did, a socket failed, or the
    /// outcome of a write is not known yet.
    Failed = 3,
    /// Ctrl-C (or SIGTERM, SIGHUP) stopped a one-shot command or a session
    /// that does not read from a terminal.
    Interrupted = 130,
}

impl Exit {
    /// The worse of two outcomes, for a session's status: what scripts must
    /// hear first is that a request got no answer (3), then that one was
    /// refused (1), then that a line was malformed (2).
    pub fn worse(self, other: Exit) -> Exit {
        let rank = |exit: Exit| match exit {
            Exit::Success => 0,
            Exit::Usage => 1,
            Exit::Refused => 2,
            Exit::Failed => 3,
            Exit::Interrupted => 4,
        };
        if rank(other) > rank(self) { other } else { self }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// What the exit statuses mean, for `--help`.
pub const EXIT_STATUS_HELP: &str = "\
Exit status (of a one-shot command, or the worst of a session's commands):
  0    every command succeeded
  1    refused: already reserved, not reserved, reserved by another user, an unknown room, timeslot or day
  2    usage error: a malformed command or option, an --interface this host lacks,
       or a key file missing, exposed or not accepted by the servers
  3    no server answered, more than one did, or a write is not confirmed yet
  130  interrupted by Ctrl-C (or SIGTERM, SIGHUP) in a one-shot command or a piped session
A session's status is the worst of its commands: 3 before 1 before 2 before 0.";

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
    /// How long to keep listening after an answer for a second server's reply.
    pub linger: Duration,
    /// End a session at the first command that does not succeed.
    pub stop_on_error: bool,
    /// Print prompts on standard output even when standard input is not a terminal.
    pub prompt: bool,
    /// This client's key (`--key-file`); `None` for a group without keys.
    pub key: Option<ClientKey>,
}

/// Commands that a program embedding the client adds to its session, e.g.
/// the demo's `kill 300`. They are tried before the client's own.
pub trait LocalCommands {
    /// Runs `line` if it is one of these commands: `Some(Ok(text))` to print
    /// `text`, `Some(Err(text))` for a usage error; `None` if it is not one.
    fn run(&mut self, line: &str) -> Option<Result<String, String>>;
    /// Their lines for `help`.
    fn help(&self) -> String;
}

/// What a program embedding the client adds to a session: its commands, and
/// lines to show as they come (the demo's servers' role changes).
pub struct Embedding<'a> {
    /// The added commands.
    pub commands: &'a mut dyn LocalCommands,
    /// Lines to print as they come; on a terminal over the prompt, which
    /// is drawn again below them.
    pub notices: Receiver<String>,
}

/// Runs the client program; errors are reported on stderr.
pub fn run(options: &Options) -> Exit {
    // A malformed one-shot command is refused before any socket is opened.
    let result = match command::parse(&options.command.join(" ")) {
        Ok(Line::Empty) => Session::open(options, true).and_then(|mut session| session.interactive()),
        Ok(Line::Help) => say(&command::help()).map(|()| Exit::Success),
        Ok(Line::Quit) => say("bye").map(|()| Exit::Success),
        Ok(Line::Send(command)) => Session::open(options, false).and_then(|mut session| session.one_shot(command)),
        Err(error) => {
            complain(&error);
            Ok(Exit::Usage)
        }
    };
    settle(result)
}

/// Runs an interactive session with `embedding`'s commands and notices (the demo).
pub fn run_session(options: &Options, embedding: Embedding<'_>) -> Exit {
    let result = Session::open(options, true).and_then(|mut session| {
        spawn("notice forwarder", forward_notices(embedding.notices, session.sender.clone()))?;
        session.local = Some(embedding.commands);
        session.interactive()
    });
    settle(result)
}

/// The exit status of a run, reporting its error.
fn settle(result: Result<Exit, ClientError>) -> Exit {
    match result {
        Ok(exit) => exit,
        Err(error) => {
            complain(&error);
            match &error {
                // Wrong options or host set-up: like a bad command line.
                ClientError::Net(net) if net.is_setup_mistake() => Exit::Usage,
                _ => Exit::Failed,
            }
        }
    }
}

/// What the user typed, or did at the keyboard.
enum Typed {
    /// A line.
    Line(String),
    /// The end of input (Ctrl-D, the end of a pipe).
    End,
    /// Ctrl-C at the prompt of the line editor; whether the line was empty.
    CtrlC { empty: bool },
}

/// What wakes the main thread.
enum Input {
    /// Standard input or the line editor.
    Typed(Typed),
    /// A datagram on the unicast socket.
    Datagram(SocketAddrV4, Vec<u8>),
    /// SIGINT (Ctrl-C while no line is being edited), SIGTERM or SIGHUP.
    Signal,
    /// A line to show from the embedding program.
    Notice(String),
    /// A reader thread failed and stopped.
    Failed(ClientError),
}

/// What one wait for input brought.
enum Woke {
    /// Something for the user, from the client core.
    Event(ClientEvent),
    /// A signal asked the client to stop waiting.
    Signal,
    /// A notice to print.
    Notice(String),
    /// Nothing to act on (a retry went out, a line was kept for later).
    Nothing,
}

/// How a line that was run ended the command.
enum Ran {
    /// The command is done, with this status.
    Done(Exit),
    /// `quit`: the session ends now.
    Quit,
}

/// The line editor's side of a session on a terminal.
struct Terminal {
    /// Asks the editor's thread for a line (it shows the prompt).
    wants_line: Sender<()>,
}

/// A one-shot command or an interactive session, with its socket and inputs.
struct Session<'a> {
    client: Client,
    socket: UdpSocket,
    targets: GroupTargets,
    inputs: Receiver<Input>,
    /// For the threads that feed `inputs`.
    sender: Sender<Input>,
    /// What was typed while a request was in flight, for the next prompts.
    backlog: VecDeque<Typed>,
    linger: Duration,
    /// Until when a second server's reply to the last request is worth waiting for.
    linger_until: Option<Instant>,
    json: bool,
    /// Why the last send failed, for the message if no answer comes.
    send_failure: Option<String>,
    /// Set on a terminal: the line editor.
    terminal: Option<Terminal>,
    /// A line was asked of the editor and has not arrived yet.
    line_requested: bool,
    /// Print prompts on standard output (no editor, `--prompt`).
    prompts: bool,
    stop_on_error: bool,
    /// The worst status so far, including late reports between commands.
    worst: Exit,
    local: Option<&'a mut dyn LocalCommands>,
}

impl<'a> Session<'a> {
    fn open(options: &Options, interactive: bool) -> Result<Session<'a>, ClientError> {
        let socket = net::unicast_socket(&options.group)?;
        // The reader thread blocks in recv; the flag is shared with its clone.
        socket.set_nonblocking(false).map_err(net_error("making the unicast socket blocking"))?;
        let receiver = socket.try_clone().map_err(net_error("sharing the unicast socket with its reader"))?;
        let (sender, inputs) = mpsc::channel();
        spawn("socket reader", receiver_loop(receiver, sender.clone()))?;
        let on_terminal = interactive && io::stdin().is_terminal();
        let terminal = match on_terminal {
            true => Some(start_editor(sender.clone())?),
            false => None,
        };
        if interactive && !on_terminal {
            spawn("stdin reader", stdin_loop(sender.clone()))?;
        }
        // After the editor, whose own SIGINT handler this one replaces.
        catch_signals(sender.clone());
        let client = Client::with_key(random_id(), options.config, options.key.clone(), random_boot()?);
        Ok(Session {
            client,
            socket,
            targets: GroupTargets { group: options.group.socket_addr(), peers: options.peers.clone() },
            inputs,
            sender,
            backlog: VecDeque::new(),
            linger: options.linger,
            linger_until: None,
            json: options.json,
            send_failure: None,
            terminal,
            line_requested: false,
            prompts: options.prompt && !on_terminal,
            stop_on_error: options.stop_on_error,
            worst: Exit::Success,
            local: None,
        })
    }

    /// Shows the prompt: drawn by the line editor on a terminal (asked once
    /// per line), printed with `--prompt`, and otherwise not at all.
    fn prompt(&mut self) -> Result<(), ClientError> {
        match &self.terminal {
            Some(terminal) if !self.line_requested => {
                terminal.wants_line.send(()).map_err(|_| readers_gone())?;
                self.line_requested = true;
                Ok(())
            }
            Some(_) => Ok(()),
            None if self.prompts => print_prompt(),
            None => Ok(()),
        }
    }

    fn one_shot(&mut self, command: Command) -> Result<Exit, ClientError> {
        let exit = self.exchange(command)?;
        Ok(exit.worse(self.linger()?))
    }

    /// Prompts for and runs commands until the end of input, `quit`, Ctrl-C
    /// at an empty prompt (so also twice in a row: the first one stops a
    /// request or clears the line), or with `--stop-on-error` the first
    /// command that fails.
    fn interactive(&mut self) -> Result<Exit, ClientError> {
        loop {
            self.prompt()?;
            let line = match self.next_typed()? {
                None => return Ok(self.stopped_by_signal()),
                Some(Typed::End) => return self.end(),
                Some(Typed::CtrlC { empty }) => {
                    say("^C")?;
                    match empty {
                        true => return Ok(self.worst),
                        false => continue,
                    }
                }
                Some(Typed::Line(line)) => line,
            };
            match self.run_line(&line)? {
                Ran::Quit => return Ok(self.worst),
                // On a terminal the user stopped one request; the session goes on.
                Ran::Done(Exit::Interrupted) if self.terminal.is_some() => {}
                Ran::Done(Exit::Interrupted) => return Ok(Exit::Interrupted),
                Ran::Done(exit) => {
                    self.worst = self.worst.worse(exit);
                    if self.stop_on_error && exit != Exit::Success {
                        return self.end();
                    }
                }
            }
        }
    }

    /// A signal came while the session waited for a line: on a terminal the
    /// line editor takes Ctrl-C as a key, so this was SIGTERM or SIGHUP.
    fn stopped_by_signal(&self) -> Exit {
        match self.terminal {
            Some(_) => self.worst,
            None => Exit::Interrupted,
        }
    }

    /// Ends the session as at the end of input: after the linger window.
    fn end(&mut self) -> Result<Exit, ClientError> {
        let exit = self.linger()?;
        Ok(self.worst.worse(exit))
    }

    /// Runs one typed line: a local command, `help`, `quit`, or a request.
    fn run_line(&mut self, line: &str) -> Result<Ran, ClientError> {
        if let Some(local) = self.local.as_mut()
            && let Some(result) = local.run(line)
        {
            return Ok(Ran::Done(match result {
                Ok(text) => say(&text).map(|()| Exit::Success)?,
                Err(text) => {
                    complain(&text);
                    Exit::Usage
                }
            }));
        }
        let exit = match command::parse(line) {
            Ok(Line::Empty) => Exit::Success,
            Ok(Line::Help) => say(&self.help()).map(|()| Exit::Success)?,
            Ok(Line::Quit) => {
                say("bye")?;
                return Ok(Ran::Quit);
            }
            Ok(Line::Send(command)) => self.exchange(command)?,
            Err(error) => {
                complain(&error);
                Exit::Usage
            }
        };
        Ok(Ran::Done(exit))
    }

    fn help(&self) -> String {
        match &self.local {
            Some(local) => format!("{}\n{}", command::help(), local.help()),
            None => command::help(),
        }
    }

    /// Runs one command to its answer, its timeout or an interruption, and
    /// shows the outcome.
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
            match self.step(Some(deadline))? {
                Woke::Event(event) => exit = exit.worse(self.report(event)?),
                Woke::Signal => return Ok(self.interrupted(&command)),
                Woke::Notice(text) => say(&text)?,
                Woke::Nothing => {}
            }
        }
        Ok(exit)
    }

    /// Gives up the request in flight for Ctrl-C and says so.
    fn interrupted(&mut self, command: &Command) -> Exit {
        self.client.abandon();
        if self.terminal.is_some() {
            // The terminal echoed ^C where the answer would have gone; end that line.
            let _ = writeln!(io::stdout());
        }
        complain(&ClientError::Interrupted { write: matches!(command, Command::Reserve(_) | Command::Cancel(_)) });
        Exit::Interrupted
    }

    /// The next thing typed, reporting late replies and notices meanwhile;
    /// `None` when a signal came first.
    fn next_typed(&mut self) -> Result<Option<Typed>, ClientError> {
        loop {
            if let Some(typed) = self.backlog.pop_front() {
                return Ok(Some(typed));
            }
            match self.step(None)? {
                Woke::Event(event) => {
                    let exit = self.at_prompt(|session| session.report(event))?;
                    self.worst = self.worst.worse(exit);
                }
                Woke::Notice(text) => self.at_prompt(|_| say(&text))?,
                Woke::Signal => return Ok(None),
                Woke::Nothing => {}
            }
        }
    }

    /// Prints with `print` while a prompt is showing, and shows it again
    /// below. The line editor's prompt is overwritten and drawn anew (the
    /// editor redraws what was typed at the next key).
    fn at_prompt<T>(&mut self, print: impl FnOnce(&mut Self) -> Result<T, ClientError>) -> Result<T, ClientError> {
        let editing = self.terminal.is_some() && self.line_requested && io::stdout().is_terminal();
        if editing {
            // To the start of the prompt's line, and clear it.
            write!(io::stdout().lock(), "\r\x1b[K").map_err(stdout_error)?;
        }
        let printed = print(self)?;
        if editing || self.prompts {
            print_prompt()?;
        }
        Ok(printed)
    }

    /// Listens until the linger window closes, reporting any further replies.
    fn linger(&mut self) -> Result<Exit, ClientError> {
        let mut exit = Exit::Success;
        while let Some(until) = self.linger_until.filter(|&until| Instant::now() < until) {
            match self.step(Some(until))? {
                Woke::Event(event) => exit = exit.worse(self.report(event)?),
                Woke::Signal => return Ok(Exit::Interrupted),
                Woke::Notice(text) => say(&text)?,
                Woke::Nothing => {}
            }
        }
        Ok(exit)
    }

    /// Waits for one input or until `deadline` (`None`: no deadline) and hands
    /// it to the client; typed input is kept for later prompts.
    fn step(&mut self, deadline: Option<Instant>) -> Result<Woke, ClientError> {
        let input = match deadline {
            None => self.inputs.recv().map_err(|_| readers_gone())?,
            Some(deadline) => {
                // Checked first so that a steady stream of input cannot delay a retry.
                let now = Instant::now();
                if now >= deadline {
                    return Ok(self.client.handle_timeout(now).map_or(Woke::Nothing, Woke::Event));
                }
                match self.inputs.recv_timeout(deadline - now) {
                    Ok(input) => input,
                    Err(RecvTimeoutError::Timeout) => {
                        return Ok(self.client.handle_timeout(Instant::now()).map_or(Woke::Nothing, Woke::Event));
                    }
                    Err(RecvTimeoutError::Disconnected) => return Err(readers_gone()),
                }
            }
        };
        match input {
            Input::Datagram(from, bytes) => {
                Ok(self.client.handle_datagram(Instant::now(), from, &bytes).map_or(Woke::Nothing, Woke::Event))
            }
            Input::Typed(typed) => {
                self.line_requested = false;
                self.backlog.push_back(typed);
                Ok(Woke::Nothing)
            }
            Input::Signal => Ok(Woke::Signal),
            Input::Notice(text) => Ok(Woke::Notice(text)),
            Input::Failed(error) => Err(error),
        }
    }

    /// Sends what the client queued. A failed send is a lost datagram (a full
    /// buffer, a firewall rule, a route coming back): the retry sends again,
    /// and a timeout reports the last failure.
    fn flush(&mut self) {
        while let Some((dst, datagram)) = self.client.poll_transmit() {
            let unicast;
            let targets: Box<dyn Iterator<Item = SocketAddrV4>> = match dst {
                Destination::Group => Box::new(self.targets.all()),
                Destination::Peer(to) => {
                    unicast = [to];
                    Box::new(unicast.into_iter())
                }
            };
            for to in targets {
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
                self.linger_until = Some(Instant::now() + self.linger);
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
            ClientEvent::KeyRefused { request, notice, server } => {
                if self.json {
                    say(&json::key_refused(client, request, server, notice))?;
                }
                complain(&ClientError::KeyRefused { notice, server });
                return Ok(Exit::Usage); // a configuration to fix, not a network to retry
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
    write!(out, "{PROMPT}").and_then(|()| out.flush()).map_err(stdout_error)
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

fn editor_error(action: &'static str) -> impl FnOnce(ReadlineError) -> ClientError {
    move |e| ClientError::Io { action, source: io::Error::other(e.to_string()) }
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

/// Turns SIGINT (and SIGTERM, SIGHUP) into an input, so that Ctrl-C stops
/// a wait. In the line editor's raw mode Ctrl-C is a key instead, and the
/// editor's own SIGINT handler, which this replaces, has nothing to do.
fn catch_signals(inputs: Sender<Input>) {
    if let Err(e) = ctrlc::set_handler(move || {
        let _ = inputs.send(Input::Signal);
    }) {
        // Set once per process: a second session keeps the first one's.
        log::debug!("Ctrl-C keeps its earlier handler: {e}");
    }
}

fn forward_notices(notices: Receiver<String>, inputs: Sender<Input>) -> impl FnOnce() + Send + 'static {
    move || {
        for notice in notices {
            if inputs.send(Input::Notice(notice)).is_err() {
                return;
            }
        }
    }
}

/// Ctrl-C in the line editor: notes whether the line was empty (then the
/// session ends) before rustyline reports the interruption.
struct CtrlC {
    line_empty: Arc<AtomicBool>,
}

impl ConditionalEventHandler for CtrlC {
    fn handle(&self, _: &rustyline::Event, _: rustyline::RepeatCount, _: bool, ctx: &EventContext) -> Option<Cmd> {
        self.line_empty.store(ctx.line().is_empty(), Ordering::SeqCst);
        Some(Cmd::Interrupt)
    }
}

/// Starts the line editor (arrow keys, history) on its own thread; it reads
/// a line each time one is asked for, so the prompt appears after the last answer.
fn start_editor(inputs: Sender<Input>) -> Result<Terminal, ClientError> {
    let mut editor = DefaultEditor::new().map_err(editor_error("starting the line editor"))?;
    let line_empty = Arc::new(AtomicBool::new(true));
    let ctrl_c = CtrlC { line_empty: Arc::clone(&line_empty) };
    editor.bind_sequence(KeyEvent::ctrl('C'), EventHandler::Conditional(Box::new(ctrl_c)));
    // No rustyline ExternalPrinter: with one, the editor read one key per
    // wake-up and left the rest of a pasted line unread (rustyline 17).
    let (wants_line, requests) = mpsc::channel();
    spawn("line editor", editor_loop(editor, line_empty, inputs, requests))?;
    Ok(Terminal { wants_line })
}

fn editor_loop(
    mut editor: DefaultEditor,
    line_empty: Arc<AtomicBool>,
    inputs: Sender<Input>,
    requests: Receiver<()>,
) -> impl FnOnce() + Send + 'static {
    move || {
        while requests.recv().is_ok() {
            let typed = match editor.readline(PROMPT) {
                Ok(line) => {
                    let _ = editor.add_history_entry(line.as_str());
                    Typed::Line(line)
                }
                Err(ReadlineError::Eof) => Typed::End,
                Err(ReadlineError::Interrupted) => Typed::CtrlC { empty: line_empty.load(Ordering::SeqCst) },
                Err(e) => {
                    let _ = inputs.send(Input::Failed(editor_error("reading a line from the terminal")(e)));
                    return;
                }
            };
            let more = !matches!(typed, Typed::End);
            if inputs.send(Input::Typed(typed)).is_err() || !more {
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
                Ok(0) => Input::Typed(Typed::End),
                // A line that is not UTF-8 gets a usage error instead of ending the session.
                Ok(_) => Input::Typed(Typed::Line(String::from_utf8_lossy(&bytes).into_owned())),
                Err(source) => Input::Failed(ClientError::Io { action: "reading standard input", source }),
            };
            let more = matches!(input, Input::Typed(Typed::Line(_)));
            if inputs.send(input).is_err() || !more {
                return;
            }
        }
    }
}

/// A boot nonce from the OS's random source, so that replies sealed for this
/// process are good for it alone.
fn random_boot() -> Result<Boot, ClientError> {
    let mut bytes = [0u8; BOOT_LEN];
    getrandom::fill(&mut bytes).map_err(|e| ClientError::Io {
        action: "drawing a random boot nonce",
        source: io::Error::other(e.to_string()),
    })?;
    Ok(Boot(bytes))
}

/// A client ID that differs between processes, also on different hosts with
/// equal PIDs: `RandomState` is seeded from the OS's randomness.
fn random_id() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_nanos());
    // 0 marks the servers' own log entries.
    RandomState::new().hash_one((std::process::id(), nanos)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_exits_with_its_worst_command() {
        use Exit::*;
        let session = |exits: &[Exit]| exits.iter().fold(Success, |worst, &exit| worst.worse(exit));
        assert_eq!(session(&[Success, Usage, Success]), Usage);
        assert_eq!(session(&[Usage, Refused, Usage]), Refused);
        assert_eq!(session(&[Refused, Failed, Usage]), Failed);
        assert_eq!(session(&[Failed, Interrupted, Refused]), Interrupted);
        assert_eq!([Success, Refused, Usage, Failed, Interrupted].map(|e| e as u8), [0, 1, 2, 3, 130]);
    }
}
