//! What the Debian package (`cargo deb`, `[package.metadata.deb]` in
//! Cargo.toml) ships, checked without building it:
//!
//! - the man pages and shell completions in `dist/` are generated from the
//!   clap definitions (`roomcast::cli::installed`) by this file, and a test
//!   fails when a checked-in file differs from what the definitions give now.
//!   `ROOMCAST_REGENERATE=1 cargo test --test package` writes them anew
//!   (commit the result);
//! - the package lists every generated file, and the unit, the package and
//!   the postinst agree on where the server and the group's key are.
//!
//! `tests/systemd_units.rs` builds the package and installs it in a container.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap_complete::{Generator, Shell};
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

/// Set to regenerate `dist/man` and `dist/completions` instead of comparing.
const REGENERATE: &str = "ROOMCAST_REGENERATE";
/// The shells a completion file is generated for.
const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// The man pages and completions as generated now, by path in the repository.
fn generated() -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for command in roomcast::cli::installed() {
        let name = command.get_name().to_string();
        files.insert(Path::new("dist/man").join(format!("{name}.1")), man_page(command.clone()));
        for shell in SHELLS {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command.clone(), &name, &mut script);
            files.insert(Path::new("dist/completions").join(shell.file_name(&name)), script);
        }
    }
    files
}

/// One of clap_mangen's sections, rendered into a writer.
type Section = fn(&Man, &mut dyn std::io::Write) -> std::io::Result<()>;

/// A program's man page: clap_mangen's sections, then the `--help` text
/// after the options (commands, exit status) and the files and other pages.
fn man_page(command: clap::Command) -> Vec<u8> {
    let man = Man::new(command.clone());
    let mut page = Vec::new();
    let sections: [Section; 5] = [
        Man::render_title,
        Man::render_name_section,
        Man::render_synopsis_section,
        Man::render_description_section,
        Man::render_options_section,
    ];
    for render in sections {
        render(&man, &mut page).expect("rendering into memory");
    }
    let mut roff = Roff::new();
    if let Some(after) = command.get_after_help() {
        after_help_sections(&mut roff, &after.to_string());
    }
    let server = roomcast::cli::SERVER_NAME;
    let client = roomcast::cli::CLIENT_NAME;
    if command.get_name() == server {
        roff.control("SH", ["FILES"]);
        for (file, what) in [
            ("/etc/roomcast/roomcast.toml", "the settings the systemd unit passes with --config"),
            ("/etc/roomcast/catalog.toml", "the rooms, timeslots and days"),
            ("/etc/roomcast/server.key", "the group's key, the same on every server (mode 600)"),
            ("/usr/lib/systemd/system/roomcast-server@.service", "the unit: one instance per server ID"),
            ("/var/lib/roomcast/ID", "the unit's data directory of server ID"),
        ] {
            roff.control("TP", []).text([bold(file)]).text([roman(what)]);
        }
    }
    roff.control("SH", ["SEE ALSO"]);
    let other = if command.get_name() == server { client } else { server };
    roff.text([bold(other), roman("(1), "), bold("systemctl"), roman("(1), /usr/share/doc/roomcast/")]);
    roff.to_writer(&mut page).expect("rendering into memory");
    page
}

/// The `--help` text after the options, one section per paragraph:
/// `Exit status (of ...):` followed by indented lines becomes the section
/// EXIT STATUS, its parenthesis a sentence and its lines kept as laid out.
fn after_help_sections(roff: &mut Roff, text: &str) {
    for block in text.split("\n\n") {
        let mut lines = block.lines();
        let Some(first) = lines.next() else { continue };
        let heading = first.split([':', '(']).next().unwrap_or(first).trim();
        roff.control("SH", [heading.to_uppercase().as_str()]);
        if let Some((_, aside)) = first.split_once('(')
            && let Some((aside, _)) = aside.rsplit_once(')')
        {
            let mut sentence: String = aside.chars().take(1).flat_map(char::to_uppercase).collect();
            sentence.extend(aside.chars().skip(1));
            roff.text([roman(format!("{sentence}."))]);
        }
        roff.control("PP", []).control("nf", []);
        for line in lines {
            roff.text([roman(line)]);
        }
        roff.control("fi", []);
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The checked-in man pages and completions are what the clap definitions
/// give now: none differs, none is missing, none is left over.
#[test]
fn man_pages_and_completions_are_generated_from_the_clap_definitions() {
    let generated = generated();
    let on_disk: Vec<PathBuf> = ["dist/man", "dist/completions"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(repo().join(dir)).into_iter().flatten().flatten())
        .map(|entry| entry.path().strip_prefix(repo()).expect("under the repository").to_path_buf())
        .collect();
    if std::env::var_os(REGENERATE).is_some() {
        for stale in on_disk.iter().filter(|path| !generated.contains_key(*path)) {
            std::fs::remove_file(repo().join(stale)).unwrap_or_else(|e| panic!("removing {}: {e}", stale.display()));
        }
        for (path, content) in &generated {
            let path = repo().join(path);
            std::fs::create_dir_all(path.parent().expect("a file in a directory")).expect("creating dist/");
            std::fs::write(&path, content).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        }
        return;
    }
    let mut problems = Vec::new();
    for (path, content) in &generated {
        match std::fs::read(repo().join(path)) {
            Ok(found) if &found == content => {}
            Ok(_) => problems.push(format!("{} differs from what the clap definitions give", path.display())),
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    for path in on_disk.iter().filter(|path| !generated.contains_key(*path)) {
        problems.push(format!("{} is generated from nothing", path.display()));
    }
    assert!(
        problems.is_empty(),
        "{}\nRun `{REGENERATE}=1 cargo test --test package` and commit dist/.",
        problems.join("\n")
    );
}

/// `[package.metadata.deb]` of Cargo.toml.
fn deb_metadata() -> toml::Table {
    let text = std::fs::read_to_string(repo().join("Cargo.toml")).expect("reading Cargo.toml");
    let manifest: toml::Table = text.parse().expect("Cargo.toml parses");
    manifest["package"]["metadata"]["deb"].as_table().expect("[package.metadata.deb]").clone()
}

/// The package's assets as (source, destination) pairs, the destination with
/// the source's file name when it names a directory.
fn assets() -> Vec<(String, String)> {
    let metadata = deb_metadata();
    let assets = metadata["assets"].as_array().expect("assets = [...]");
    assets
        .iter()
        .map(|asset| {
            let fields = asset.as_array().expect("an asset is [source, destination, mode]");
            let source = fields[0].as_str().expect("a source path").to_string();
            let dest = fields[1].as_str().expect("a destination path");
            let dest = match dest.strip_suffix('/') {
                Some(dir) => format!("/{dir}/{}", Path::new(&source).file_name().expect("a file").to_string_lossy()),
                None => format!("/{dest}"),
            };
            (source, dest)
        })
        .collect()
}

/// The value of the first `KEY=value` line of a unit or a script.
fn setting<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= line in:\n{text}"))
}

/// Everything generated is packaged, the binaries under their installed
/// names; the unit runs the packaged server with the key the postinst makes;
/// the Debian changelog has an entry for this version; the maintainer scripts
/// exist and are executable.
#[test]
fn the_package_ships_what_the_unit_and_the_postinst_expect() {
    let assets = assets();
    let dest_of = |source: &str| {
        assets.iter().find(|(s, _)| s == source).map(|(_, d)| d.clone()).unwrap_or_else(|| {
            panic!("{source} is not among the package's assets in Cargo.toml: {assets:?}");
        })
    };
    for path in generated().keys() {
        dest_of(&path.display().to_string());
    }
    let server = dest_of("target/release/server");
    assert_eq!(server, format!("/usr/bin/{}", roomcast::cli::SERVER_NAME));
    assert_eq!(dest_of("target/release/client"), format!("/usr/bin/{}", roomcast::cli::CLIENT_NAME));

    let unit_name = "systemd/roomcast-server@.service";
    let unit = std::fs::read_to_string(repo().join(unit_name)).expect("reading the unit");
    assert_eq!(dest_of(unit_name), "/usr/lib/systemd/system/roomcast-server@.service");
    let exec_start = setting(&unit, "ExecStart");
    assert_eq!(exec_start.split_whitespace().next(), Some(server.as_str()), "the unit runs the packaged server");
    assert!(exec_start.contains("--key-file %d/server.key"), "the unit passes its credential: {exec_start}");

    let scripts = repo().join(deb_metadata()["maintainer-scripts"].as_str().expect("maintainer-scripts = DIR"));
    let postinst = std::fs::read_to_string(scripts.join("postinst")).expect("reading the postinst");
    let key = setting(&postinst, "KEY");
    assert_eq!(setting(&unit, "LoadCredential"), format!("server.key:{key}"), "the unit loads the key postinst makes");
    // dpkg runs maintainer scripts with /usr/bin in PATH (lintian wants no paths there).
    assert!(postinst.contains(&format!("{} --generate-key \"$KEY\"", roomcast::cli::SERVER_NAME)), "{postinst}");
    let changelog = std::fs::read_to_string(repo().join(deb_metadata()["changelog"].as_str().expect("changelog")))
        .expect("reading the Debian changelog");
    let top = format!("roomcast ({}-1) ", env!("CARGO_PKG_VERSION"));
    assert!(changelog.starts_with(&top), "the Debian changelog's first entry is not {top:?}: add one for this version");
    for script in ["postinst", "prerm", "postrm"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(scripts.join(script)).expect(script).permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "{script} is executable");
    }
}
