//! `server GROUP PORT [ID]`: a roomcast server. Parses arguments (defined in
//! `roomcast::cli::server`), runs a key command or sets up
//! logging and signals and runs the driver.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches};
use log::info;

use roomcast::auth::{ClientKey, Principal, ServerKeys, file};
use roomcast::cli::server::ServerArgs;
use roomcast::config::{ConfigError, ResolvedServer, load_server_options, resolve_server};
use roomcast::driver::{Server, ServerError, ServerSettings};

fn main() -> ExitCode {
    // Kept after parsing for its usage line, which names the program as it was run.
    let mut command = ServerArgs::command();
    let args = ServerArgs::from_arg_matches(&command.get_matches_mut()).unwrap_or_else(|e| e.exit());
    if let Some(done) = key_command(&args) {
        return match done {
            Ok(message) => {
                println!("{message}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    if args.config.is_none() && (args.group.is_none() || args.port.is_none()) {
        // Like any missing argument: the message, the usage line, exit 2.
        let message = "the server needs GROUP and PORT, e.g. `server 224.1.1.1 11111`, \
                       or `--config FILE` with `group` and `port` in it";
        command.error(ErrorKind::MissingRequiredArgument, message).exit();
    }
    let resolved = match resolve(&args) {
        Ok(resolved) => resolved,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = roomcast::logging::Filter { given: resolved.log_level.as_deref(), default: "info" };
    if let Err(e) = roomcast::logging::init(filter, env_logger::Target::Stderr) {
        eprintln!("error: starting the log: {e}");
        return ExitCode::FAILURE;
    }
    match run(resolved.settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit_status(e.as_ref()))
        }
    }
}

/// `--generate-key` or `--issue-client-key`, if given: what was written.
fn key_command(args: &ServerArgs) -> Option<Result<String, Box<dyn std::error::Error>>> {
    if let Some(path) = &args.generate_key {
        return Some(generate_key(path));
    }
    let [name, path] = args.issue_client_key.as_deref()? else { return None };
    Some(issue_client_key(args, name, Path::new(path)))
}

fn generate_key(path: &Path) -> Result<String, Box<dyn std::error::Error>> {
    let mut random = [0u8; 64];
    getrandom::fill(&mut random).map_err(|e| format!("no random numbers from the system: {e}"))?;
    let keys = ServerKeys::generate(random);
    file::write_server_keys(path, &keys)?;
    Ok(format!(
        "wrote new server keys to {} (server key {}, client master key {}); copy the file to every server of \
         the group, readable by the server only (chmod 600), and issue client keys with --issue-client-key",
        path.display(),
        keys.server[0].id(),
        keys.client_masters[0].id()
    ))
}

fn issue_client_key(args: &ServerArgs, name: &str, path: &Path) -> Result<String, Box<dyn std::error::Error>> {
    let key_file = match (&args.key_file, &args.config) {
        (Some(key_file), _) => key_file.clone(),
        (None, Some(config)) => resolve_key_file(config)?,
        (None, None) => return Err("--issue-client-key needs the servers' keys: give --key-file FILE".into()),
    };
    let keys = file::read_server_keys(&key_file)?;
    let principal = Principal { name: name.to_string(), admin: args.admin };
    let key = ClientKey::issue(&keys.client_masters[0], principal)?;
    file::write_client_key(path, &key)?;
    let role = if args.admin { "an administrator's key" } else { "a user's key" };
    Ok(format!(
        "wrote the key of client '{name}' ({role}, from master key {}) to {}; give it to that client only",
        key.master,
        path.display()
    ))
}

/// The `key_file` a config file names, beside the file if relative.
fn resolve_key_file(config: &Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let options = load_server_options(config)?;
    let key_file =
        options.key_file.ok_or_else(|| format!("{}: no `key_file`; give --key-file FILE", config.display()))?;
    Ok(config.parent().unwrap_or(Path::new("")).join(key_file))
}

/// The exit status for `error`; 2 and 3 tell systemd (RestartPreventExitStatus)
/// not to restart into the same error.
fn exit_status(error: &(dyn std::error::Error + 'static)) -> u8 {
    match error.downcast_ref::<ServerError>() {
        Some(e) if e.needs_operator() => 3,
        Some(ServerError::Net(e)) if e.is_setup_mistake() => 2,
        _ => 1,
    }
}

/// Merges the command line over `--config` over the defaults.
fn resolve(args: &ServerArgs) -> Result<ResolvedServer, ConfigError> {
    let file = args.config.as_ref().map(|path| load_server_options(path).map(|f| (path, f))).transpose()?;
    resolve_server(&args.options(), file.as_ref().map(|(path, f)| (path.as_path(), f)))
}

fn run(settings: ServerSettings) -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::bind(settings)?;
    let stopper = server.stopper();
    ctrlc::set_handler(move || stopper.stop())?;
    server.run()?;
    info!("stopped");
    Ok(())
}
