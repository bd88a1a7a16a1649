//! What a RUN's simple commands need from the network, read from the commands themselves.
//!
//! - The download commands of the ecosystems sealroom has lock files for (`pip download` /
//!   `pip wheel -r FILE`, `npm ci` / `npm install` with a package-lock, `cargo fetch` /
//!   `cargo vendor`, `go mod download` / `go mod vendor`) are [`Kind::Fetch`]: `convert` turns
//!   them into a `[[fetch]]` of that lock.
//! - Installs that say they are offline (`pip install --no-index`, `npm ci --offline`,
//!   `cargo build --offline`/`--frozen`, `GOFLAGS=-mod=vendor`, `GOPROXY=off`, …) are
//!   [`Kind::Offline`] and are never flagged.
//! - Other downloads (`curl`, `wget`, `git clone`, `apt-get install`, online installs) are
//!   [`Kind::Online`], each with the fix that applies to it.
//! - A build tool that downloads only what it lacks (`cargo build`, `go build`) is
//!   [`Kind::Resolves`]: flagged unless a fetch of its ecosystem feeds the step.
//!
//! It also lists the paths a command writes ([`writes`]), so that `convert` can place them
//! under `/out`. Pure functions of the words and the variables in effect.

use std::collections::BTreeMap;

use super::shell::Simple;

/// The ecosystems of sealroom's lock-file fetches that a Dockerfile's RUN downloads for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ecosystem {
    Pip,
    Npm,
    Cargo,
    Go,
}

impl Ecosystem {
    pub fn as_str(self) -> &'static str {
        match self {
            Ecosystem::Pip => "pip",
            Ecosystem::Npm => "npm",
            Ecosystem::Cargo => "cargo",
            Ecosystem::Go => "go",
        }
    }

    /// The lock file the command reads when none is named, in its directory.
    pub fn default_lock(self) -> &'static str {
        match self {
            Ecosystem::Pip => "requirements.txt",
            Ecosystem::Npm => "package-lock.json",
            Ecosystem::Cargo => "Cargo.lock",
            Ecosystem::Go => "go.sum",
        }
    }
}

/// A download that becomes a `[[fetch]]` of a lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockDownload {
    pub ecosystem: Ecosystem,
    /// The command as a user would name it (`pip download`, `npm ci`).
    pub tool: &'static str,
    /// The lock file, as written (relative to the command's directory, or absolute); `None`:
    /// the ecosystem's default name in `directory`.
    pub lock: Option<String>,
    /// Where the lock's default name is looked for (`--manifest-path`'s directory, `--prefix`),
    /// relative to the command's directory or absolute; `None`: the command's directory.
    pub directory: Option<String>,
    /// The directory it downloads into (`-d`, `-w`, `cargo vendor DIR`), as written.
    pub dest: Option<String>,
    /// The package index (`--index-url`, `PIP_INDEX_URL`), if the command names one.
    pub index: Option<String>,
    /// True when the command also installs (`npm ci`, `go mod vendor`): it stays, offline,
    /// reading the fetch. False when downloading is all it does: the fetch replaces it.
    pub installs: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Fetch(LockDownload),
    Online {
        tool: String,
        fix: String,
    },
    /// A build that downloads what it lacks: offline when a fetch of `ecosystem` feeds it.
    Resolves {
        ecosystem: Ecosystem,
        tool: String,
        fix: String,
    },
    Offline,
    Other,
}

const SYSTEM_PACKAGES_FIX: &str = "system packages belong in the base image (a step's root file system is read-only, too): make one with them (`sandbox/debian/build.sh --name NAME PACKAGE...` does, from Debian's packages) and pin it";

/// What `command` needs from the network, with `variables` the environment in effect (the
/// stage's ARGs and ENVs, then `export`s and the command's own assignments).
pub fn classify(command: &Simple, variables: &BTreeMap<String, String>) -> Kind {
    let mut variables = variables.clone();
    variables.extend(command.assignments.iter().cloned());
    let words = &command.words;
    let Some(program) = command.program() else {
        return Kind::Other;
    };
    let args: Vec<&str> = words.iter().skip(1).map(String::as_str).collect();
    // `python3 -m pip …` is pip.
    if is_python(program) {
        if let [flag, module, rest @ ..] = args.as_slice()
            && *flag == "-m"
        {
            return match *module {
                "pip" => pip(rest, &variables),
                _ => Kind::Other,
            };
        }
        return Kind::Other;
    }
    if is_pip(program) {
        return pip(&args, &variables);
    }
    match program {
        "npm" => npm(&args, &variables),
        "yarn" | "pnpm" => node_other(program, &args, &variables),
        "cargo" => cargo(&args, &variables),
        "go" => go(&args, &variables),
        "uv" => uv(&args, &variables),
        "curl" | "wget" => Kind::Online {
            tool: program.to_string(),
            fix: "make the download a [[fetch]] with its url and sha256 (`sealroom pin` fills in the sha256) and read the file from /inputs/<fetch>".to_string(),
        },
        "git" => match args.iter().find(|arg| !arg.starts_with('-')).copied() {
            Some(sub @ ("clone" | "fetch" | "pull" | "submodule" | "ls-remote")) => Kind::Online {
                tool: format!("git {sub}"),
                fix: "fetch the commit's source archive as a [[fetch]] (url + sha256), or add the repository to the build context".to_string(),
            },
            _ => Kind::Other,
        },
        "apt-get" | "apt" | "aptitude" => match first_operand(&args) {
            Some(sub @ ("install" | "update" | "upgrade" | "dist-upgrade" | "full-upgrade" | "build-dep" | "source" | "download")) => Kind::Online {
                tool: format!("{program} {sub}"),
                fix: SYSTEM_PACKAGES_FIX.to_string(),
            },
            _ => Kind::Other,
        },
        "apk" => match first_operand(&args) {
            Some(sub @ ("add" | "update" | "upgrade" | "fetch")) if !args.contains(&"--no-network") => Kind::Online {
                tool: format!("apk {sub}"),
                fix: SYSTEM_PACKAGES_FIX.to_string(),
            },
            _ => Kind::Other,
        },
        "yum" | "dnf" | "microdnf" | "zypper" => match first_operand(&args) {
            Some(sub @ ("install" | "in" | "update" | "upgrade" | "makecache" | "groupinstall")) => Kind::Online {
                tool: format!("{program} {sub}"),
                fix: SYSTEM_PACKAGES_FIX.to_string(),
            },
            _ => Kind::Other,
        },
        "gem" if first_operand(&args) == Some("install") => {
            if has_flag(&args, &["--local", "-l"]) {
                Kind::Offline
            } else {
                Kind::Online {
                    tool: "gem install".to_string(),
                    fix: "vendor the gems into the build context (`bundle cache`) and install them with `--local`".to_string(),
                }
            }
        }
        "bundle" if first_operand(&args) == Some("install") => {
            if has_flag(&args, &["--local"]) || truthy(variables.get("BUNDLE_LOCAL").map(String::as_str)) {
                Kind::Offline
            } else {
                Kind::Online {
                    tool: "bundle install".to_string(),
                    fix: "vendor the gems into the build context (`bundle cache`) and install them with `bundle install --local`".to_string(),
                }
            }
        }
        _ => Kind::Other,
    }
}

fn is_python(program: &str) -> bool {
    program == "python"
        || program
            .strip_prefix("python")
            .is_some_and(|version| version.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
}

fn is_pip(program: &str) -> bool {
    program
        .strip_prefix("pip")
        .is_some_and(|version| version.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
}

fn pip(args: &[&str], variables: &BTreeMap<String, String>) -> Kind {
    let Some(sub) = first_operand_skipping(args, PIP_GLOBAL_VALUED) else {
        return Kind::Other;
    };
    let offline = has_flag(args, &["--no-index"])
        || truthy(variables.get("PIP_NO_INDEX").map(String::as_str));
    match sub {
        "download" | "wheel" => {
            if offline {
                return Kind::Offline;
            }
            let tool = if sub == "download" {
                "pip download"
            } else {
                "pip wheel"
            };
            let requirements = values(args, &["-r", "--requirement"]);
            let index = values(args, &["-i", "--index-url"])
                .into_iter()
                .next()
                .or_else(|| variables.get("PIP_INDEX_URL").cloned())
                .filter(|index| !index.is_empty());
            let dest = if sub == "download" {
                values(args, &["-d", "--dest", "--destination-directory"])
            } else {
                values(args, &["-w", "--wheel-dir"])
            }
            .into_iter()
            .next_back();
            match requirements.as_slice() {
                [lock] => Kind::Fetch(LockDownload {
                    ecosystem: Ecosystem::Pip,
                    tool,
                    lock: Some(lock.clone()),
                    directory: None,
                    dest: Some(dest.unwrap_or_else(|| ".".to_string())),
                    index,
                    installs: false,
                }),
                [] => Kind::Online {
                    tool: tool.to_string(),
                    fix: format!(
                        "pin the packages in a requirements file with hashes (`pip-compile --generate-hashes`, `uv export`) and `{tool} -r` it: the conversion makes that a [[fetch]]"
                    ),
                },
                _ => Kind::Online {
                    tool: tool.to_string(),
                    fix: format!(
                        "merge the requirement files into one lock with hashes (`pip-compile --generate-hashes`, `uv export`) and `{tool} -r` it: the conversion makes that a [[fetch]]"
                    ),
                },
            }
        }
        "install" => {
            if offline {
                Kind::Offline
            } else {
                Kind::Online {
                    tool: "pip install".to_string(),
                    fix: "download the requirements in a stage of their own with `pip download -r requirements.txt -d /wheels` (a hashed lock: it becomes a [[fetch]]) and install with `pip install --no-index --find-links=/wheels`".to_string(),
                }
            }
        }
        _ => Kind::Other,
    }
}

/// pip's options that take a value before the subcommand.
const PIP_GLOBAL_VALUED: &[&str] = &[
    "--log",
    "--proxy",
    "--retries",
    "--timeout",
    "--exists-action",
    "--trusted-host",
    "--cert",
    "--client-cert",
    "--cache-dir",
    "--python",
    "--use-feature",
    "--use-deprecated",
];

fn npm(args: &[&str], variables: &BTreeMap<String, String>) -> Kind {
    let Some(sub) = first_operand(args) else {
        return Kind::Other;
    };
    let offline = has_flag(args, &["--offline"])
        || truthy(variables.get("npm_config_offline").map(String::as_str))
        || truthy(variables.get("NPM_CONFIG_OFFLINE").map(String::as_str));
    match sub {
        "ci" | "clean-install" | "install-clean" | "isntall-clean" | "install" | "i" | "add"
        | "in" | "ins" | "inst" | "insta" | "instal" | "isnt" | "isnta" | "isntal" => {
            if offline {
                return Kind::Offline;
            }
            let is_ci = matches!(
                sub,
                "ci" | "clean-install" | "install-clean" | "isntall-clean"
            );
            let packages: Vec<&&str> = operands(args, NPM_VALUED).skip(1).collect();
            if has_flag(args, &["-g", "--global"]) || (!is_ci && !packages.is_empty()) {
                return Kind::Online {
                    tool: format!("npm {sub}"),
                    fix: "add the packages to package.json, lock them (`npm install --package-lock-only`) and `npm ci`: the conversion makes that a [[fetch]] of package-lock.json".to_string(),
                };
            }
            Kind::Fetch(LockDownload {
                ecosystem: Ecosystem::Npm,
                tool: if is_ci { "npm ci" } else { "npm install" },
                lock: None,
                directory: values(args, &["--prefix", "-C"]).into_iter().next_back(),
                dest: None,
                index: None,
                installs: true,
            })
        }
        "update" | "up" | "upgrade" | "audit" | "outdated" | "publish" | "view" | "info" => {
            Kind::Online {
                tool: format!("npm {sub}"),
                fix: "this asks the registry: run it outside the build and commit what it changes"
                    .to_string(),
            }
        }
        _ => Kind::Other,
    }
}

/// npm's options that take a value.
const NPM_VALUED: &[&str] = &[
    "--prefix",
    "-C",
    "--registry",
    "--cache",
    "--omit",
    "--include",
    "--install-strategy",
    "--loglevel",
    "--logs-dir",
    "--userconfig",
    "--workspace",
    "-w",
];

fn node_other(program: &str, args: &[&str], variables: &BTreeMap<String, String>) -> Kind {
    let sub = first_operand(args).unwrap_or("install");
    if !matches!(sub, "install" | "i" | "add" | "fetch") {
        return Kind::Other;
    }
    if has_flag(args, &["--offline"])
        || truthy(variables.get("npm_config_offline").map(String::as_str))
    {
        return Kind::Offline;
    }
    Kind::Online {
        tool: format!("{program} {sub}"),
        fix: "sealroom reads npm's package-lock.json: lock the packages with npm and `npm ci` (the conversion makes that a [[fetch]]), or fetch each tarball with its url and sha256".to_string(),
    }
}

fn cargo(args: &[&str], variables: &BTreeMap<String, String>) -> Kind {
    let Some(sub) = first_operand_skipping(args, &["--config", "-Z", "-C", "--color"]) else {
        return Kind::Other;
    };
    let offline = has_flag(args, &["--offline", "--frozen"])
        || truthy(variables.get("CARGO_NET_OFFLINE").map(String::as_str))
        || args
            .windows(2)
            .any(|pair| pair[0] == "--config" && pair[1].replace(' ', "") == "net.offline=true");
    let directory = values(args, &["--manifest-path"])
        .into_iter()
        .next_back()
        .map(|manifest| match manifest.rsplit_once('/') {
            Some((directory, _)) if !directory.is_empty() => directory.to_string(),
            Some(_) => "/".to_string(),
            None => ".".to_string(),
        });
    match sub {
        "fetch" | "vendor" => {
            if offline {
                return Kind::Offline;
            }
            let dest = if sub == "vendor" {
                Some(
                    operands(args, &["--manifest-path", "-s", "--sync", "--config"])
                        .nth(1)
                        .map_or_else(|| "vendor".to_string(), |dir| dir.to_string()),
                )
            } else {
                None
            };
            Kind::Fetch(LockDownload {
                ecosystem: Ecosystem::Cargo,
                tool: if sub == "fetch" {
                    "cargo fetch"
                } else {
                    "cargo vendor"
                },
                lock: None,
                directory,
                dest,
                index: None,
                installs: false,
            })
        }
        "install" if !has_flag(args, &["--path"]) => {
            if offline {
                Kind::Offline
            } else {
                Kind::Online {
                    tool: "cargo install".to_string(),
                    fix: "build the tool from its source with its Cargo.lock (`cargo fetch` in a stage becomes a [[fetch]]), or put it in the base image".to_string(),
                }
            }
        }
        "build" | "b" | "test" | "t" | "run" | "r" | "check" | "c" | "doc" | "d" | "bench"
        | "install" | "generate-lockfile" | "update" | "tree" | "metadata" | "package" => {
            if offline {
                Kind::Offline
            } else {
                Kind::Resolves {
                    ecosystem: Ecosystem::Cargo,
                    tool: format!("cargo {sub}"),
                    fix: "`cargo fetch` in an earlier RUN (with Cargo.lock COPY'd) becomes a [[fetch]] that feeds this command; or build with `--offline` from vendored crates".to_string(),
                }
            }
        }
        _ => Kind::Other,
    }
}

fn go(args: &[&str], variables: &BTreeMap<String, String>) -> Kind {
    let Some(sub) = first_operand(args) else {
        return Kind::Other;
    };
    let goflags = variables.get("GOFLAGS").map(String::as_str).unwrap_or("");
    let offline = variables.get("GOPROXY").is_some_and(|proxy| {
        proxy == "off" || proxy.split([',', '|']).all(|p| p.starts_with("file://"))
    }) || goflags.split_whitespace().any(|flag| flag == "-mod=vendor")
        || args.contains(&"-mod=vendor");
    match sub {
        "mod" => match operands(args, &[]).nth(1).copied() {
            Some("download") if !offline => Kind::Fetch(LockDownload {
                ecosystem: Ecosystem::Go,
                tool: "go mod download",
                lock: None,
                directory: None,
                dest: None,
                index: variables.get("GOPROXY").cloned().and_then(first_proxy),
                installs: false,
            }),
            Some("vendor") if !offline => Kind::Fetch(LockDownload {
                ecosystem: Ecosystem::Go,
                tool: "go mod vendor",
                lock: None,
                directory: None,
                dest: None,
                index: variables.get("GOPROXY").cloned().and_then(first_proxy),
                installs: true,
            }),
            _ => Kind::Offline,
        },
        "get" => Kind::Online {
            tool: "go get".to_string(),
            fix: "add the module to go.mod and go.sum outside the build (`go get`, `go mod tidy`) and commit them: `go mod download` then becomes a [[fetch]] of go.sum".to_string(),
        },
        "install" if args.iter().any(|arg| arg.contains('@')) && !offline => Kind::Online {
            tool: "go install".to_string(),
            fix: "require the tool in go.mod (a `tool` directive or a tools.go) so that go.sum pins it, and `go install` it from there".to_string(),
        },
        "build" | "test" | "run" | "install" | "generate" | "vet" | "list" => {
            if offline {
                Kind::Offline
            } else {
                Kind::Resolves {
                    ecosystem: Ecosystem::Go,
                    tool: format!("go {sub}"),
                    fix: "`go mod download` in an earlier RUN (with go.mod and go.sum COPY'd) becomes a [[fetch]] that feeds this command; or vendor the modules (`go mod vendor`, `-mod=vendor`)".to_string(),
                }
            }
        }
        _ => Kind::Other,
    }
}

/// The first URL of a GOPROXY list that is one (not `direct` or `off`).
fn first_proxy(list: String) -> Option<String> {
    list.split([',', '|'])
        .find(|proxy| proxy.starts_with("http://") || proxy.starts_with("https://"))
        .map(str::to_string)
}

fn uv(args: &[&str], variables: &BTreeMap<String, String>) -> Kind {
    let operands: Vec<&str> = operands(args, &[]).copied().collect();
    let offline =
        has_flag(args, &["--offline"]) || truthy(variables.get("UV_OFFLINE").map(String::as_str));
    let installs = matches!(
        operands.as_slice(),
        ["pip", "install" | "sync", ..] | ["sync", ..] | ["add", ..] | ["tool", "install", ..]
    );
    if !installs || offline {
        return if installs { Kind::Offline } else { Kind::Other };
    }
    Kind::Online {
        tool: format!("uv {}", operands[..2.min(operands.len())].join(" ")),
        fix: "export the lock with hashes (`uv export --format requirements-txt`), `pip download -r` it in a stage of its own (it becomes a [[fetch]]), and install with `--offline --no-index --find-links`".to_string(),
    }
}

/// What `command` installs into the base image's own directories by default, said for a
/// note: `pip install` without `--target`/`--prefix`/`--root`/`--user` (the interpreter's
/// site-packages), `make install` without `DESTDIR`/`PREFIX`/`prefix` (/usr/local).
pub fn installs_into_the_base(command: &Simple) -> Option<&'static str> {
    let program = command.program()?;
    let args: Vec<&str> = command.words.iter().skip(1).map(String::as_str).collect();
    if let Some(pip_args) = pip_arguments(command) {
        let pip_args = pip_args.as_slice();
        let installs = first_operand_skipping(pip_args, PIP_GLOBAL_VALUED) == Some("install");
        let placed = !values(pip_args, &["-t", "--target", "--prefix", "--root"]).is_empty()
            || has_flag(pip_args, &["--user"]);
        return (installs && !placed)
            .then_some("`pip install` writes into the interpreter's own site-packages");
    }
    if program == "make" && args.contains(&"install") {
        let assigned = |key: &str| {
            args.iter().any(|arg| arg.starts_with(&format!("{key}=")))
                || command.assignments.iter().any(|(name, _)| name == key)
        };
        let placed = ["DESTDIR", "PREFIX", "prefix"].into_iter().any(assigned);
        return (!placed).then_some("`make install` writes into /usr/local by default");
    }
    None
}

/// pip's arguments, for `pip …`, `pip3 …` and `python3 -m pip …`.
fn pip_arguments(command: &Simple) -> Option<Vec<&str>> {
    let program = command.program()?;
    let args: Vec<&str> = command.words.iter().skip(1).map(String::as_str).collect();
    if is_pip(program) {
        Some(args)
    } else if is_python(program) && args.len() >= 2 && args[0] == "-m" && args[1] == "pip" {
        Some(args[2..].to_vec())
    } else {
        None
    }
}

/// `pip install --target` without `--no-compile`: the `.pyc` files it writes hold the random
/// temporary directory pip installs through, so the output differs from build to build.
pub fn compiles_through_a_temp_dir(command: &Simple, variables: &BTreeMap<String, String>) -> bool {
    let Some(pip_args) = pip_arguments(command) else {
        return false;
    };
    let pip_args = pip_args.as_slice();
    first_operand_skipping(pip_args, PIP_GLOBAL_VALUED) == Some("install")
        && !values(pip_args, &["-t", "--target"]).is_empty()
        && !has_flag(pip_args, &["--no-compile"])
        && !truthy(variables.get("PIP_NO_COMPILE").map(String::as_str))
}

/// Paths `command` writes to by its arguments (`mkdir`, `-d`/`--target`/`--prefix`,
/// `cp`/`mv`/`install` destinations, `tar -C`, `-o`, `python -m venv`, `cargo vendor`) and by
/// redirections, as written. The second element is true for a virtual environment, which
/// records its own path.
pub fn writes(command: &Simple) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = command
        .writes
        .iter()
        .map(|path| (path.clone(), false))
        .collect();
    let Some(program) = command.program() else {
        return out;
    };
    let args: Vec<&str> = command.words.iter().skip(1).map(String::as_str).collect();
    let mut add = |path: &str, venv: bool| {
        if !path.is_empty() && !path.starts_with('-') {
            out.push((path.to_string(), venv));
        }
    };
    match program {
        "mkdir" | "touch" => operands(&args, &["-m", "--mode"]).for_each(|p| add(p, false)),
        "cp" | "mv" | "ln" | "rsync" => {
            if let Some(target) = values(&args, &["-t", "--target-directory"]).pop() {
                add(&target, false);
            } else if operands(&args, &[]).count() >= 2
                && let Some(last) = operands(&args, &[]).last()
            {
                add(last, false);
            }
        }
        "install" => {
            if has_flag(&args, &["-d", "--directory"]) {
                operands(&args, &["-m", "-o", "-g", "--mode", "--owner", "--group"])
                    .for_each(|p| add(p, false));
            } else if let Some(last) =
                operands(&args, &["-m", "-o", "-g", "--mode", "--owner", "--group"]).last()
            {
                add(last, false);
            }
        }
        "tar" => values(&args, &["-C", "--directory"])
            .iter()
            .for_each(|p| add(p, false)),
        "unzip" => values(&args, &["-d"]).iter().for_each(|p| add(p, false)),
        "virtualenv" => {
            if let Some(dir) = operands(&args, &["-p", "--python"]).next() {
                add(dir, true);
            }
        }
        _ if is_python(program) => {
            if let [flag, module, rest @ ..] = args.as_slice()
                && *flag == "-m"
            {
                match *module {
                    "venv" | "virtualenv" => {
                        if let Some(dir) = operands(rest, &["--prompt"]).next() {
                            add(dir, true);
                        }
                    }
                    "pip" => pip_writes(rest, &mut add),
                    _ => {}
                }
            }
        }
        _ if is_pip(program) => pip_writes(&args, &mut add),
        "go" => values(&args, &["-o"]).iter().for_each(|p| add(p, false)),
        "cargo" => {
            values(
                &args,
                &["--root", "--target-dir", "--out-dir", "--artifact-dir"],
            )
            .iter()
            .for_each(|p| add(p, false));
        }
        "gcc" | "cc" | "clang" | "g++" | "c++" => {
            values(&args, &["-o"]).iter().for_each(|p| add(p, false))
        }
        _ => {}
    }
    out
}

fn pip_writes(args: &[&str], add: &mut impl FnMut(&str, bool)) {
    for value in values(
        args,
        &[
            "-t",
            "--target",
            "--prefix",
            "--root",
            "-d",
            "--dest",
            "-w",
            "--wheel-dir",
            "--src",
        ],
    ) {
        add(&value, false);
    }
}

/// Values of an option in its forms `-d DIR`, `-dDIR` (one-letter options), `--dest DIR` and
/// `--dest=DIR`, in order.
pub fn values(args: &[&str], names: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        for name in names {
            if arg == name {
                if let Some(value) = iter.next() {
                    found.push(value.to_string());
                }
                break;
            }
            if name.starts_with("--")
                && let Some(value) = arg.strip_prefix(name).and_then(|r| r.strip_prefix('='))
            {
                found.push(value.to_string());
                break;
            }
            if name.len() == 2
                && !name.starts_with("--")
                && arg.len() > 2
                && !arg.starts_with("--")
                && let Some(value) = arg.strip_prefix(name)
            {
                found.push(value.to_string());
                break;
            }
        }
    }
    found
}

fn has_flag(args: &[&str], names: &[&str]) -> bool {
    args.iter().any(|arg| {
        names.iter().any(|name| {
            arg == name
                || (name.starts_with("--")
                    && arg
                        .strip_prefix(name)
                        .is_some_and(|rest| rest.starts_with('=') && truthy(Some(&rest[1..]))))
        })
    })
}

/// Arguments that are not options nor values of `valued` options.
fn operands<'a>(args: &'a [&'a str], valued: &'a [&'a str]) -> impl Iterator<Item = &'a &'a str> {
    let mut skip_next = false;
    args.iter().filter(move |arg| {
        if skip_next {
            skip_next = false;
            return false;
        }
        if valued.contains(arg) {
            skip_next = true;
            return false;
        }
        !arg.starts_with('-')
    })
}

fn first_operand<'a>(args: &[&'a str]) -> Option<&'a str> {
    args.iter().find(|arg| !arg.starts_with('-')).copied()
}

fn first_operand_skipping<'a>(args: &[&'a str], valued: &[&str]) -> Option<&'a str> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if valued.contains(arg) {
            iter.next();
            continue;
        }
        if !arg.starts_with('-') {
            return Some(arg);
        }
    }
    None
}

/// An environment value that means yes (`1`, `true`, `yes`, `on`).
fn truthy(value: Option<&str>) -> bool {
    value.is_some_and(|value| {
        matches!(
            value.to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::shell::commands;
    use super::*;

    /// The kinds of each simple command of `text`, with `env` in effect.
    fn kinds_with(text: &str, env: &[(&str, &str)]) -> Vec<Kind> {
        let variables: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        commands(text)
            .iter()
            .map(|command| classify(command, &variables))
            .collect()
    }

    fn kind(text: &str) -> Kind {
        let kinds: Vec<Kind> = kinds_with(text, &[])
            .into_iter()
            .filter(|kind| *kind != Kind::Other)
            .collect();
        assert_eq!(kinds.len(), 1, "{text}: {kinds:?}");
        kinds.into_iter().next().unwrap()
    }

    fn fetch(text: &str) -> LockDownload {
        match kind(text) {
            Kind::Fetch(download) => download,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn online_tool(text: &str) -> String {
        match kind(text) {
            Kind::Online { tool, .. } | Kind::Resolves { tool, .. } => tool,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn pip_download_and_wheel_with_a_requirements_file_are_lock_fetches() {
        for text in [
            "pip download -r requirements.txt -d /wheels",
            "python3 -m pip download --require-hashes -r requirements.txt --dest=/wheels",
            "pip3 download --requirement requirements.txt -d/wheels",
            "cd /src && pip download \\\n  -r requirements.txt -d /wheels && ls /wheels",
            "sh -c 'pip download -r requirements.txt -d /wheels'",
            "bash -euxc \"python -m pip download -r requirements.txt -d /wheels\"",
            "PIP_DISABLE_PIP_VERSION_CHECK=1 pip download -r requirements.txt -d /wheels",
        ] {
            let download = fetch(&text.replace("\\\n", " "));
            assert_eq!(download.ecosystem, Ecosystem::Pip, "{text}");
            assert_eq!(download.tool, "pip download");
            assert_eq!(download.lock.as_deref(), Some("requirements.txt"), "{text}");
            assert_eq!(download.dest.as_deref(), Some("/wheels"), "{text}");
            assert!(!download.installs);
        }
        let wheel =
            fetch("pip wheel --wheel-dir=/wheels -r reqs/prod.txt -i https://idx.example/simple/");
        assert_eq!(wheel.tool, "pip wheel");
        assert_eq!(wheel.lock.as_deref(), Some("reqs/prod.txt"));
        assert_eq!(wheel.dest.as_deref(), Some("/wheels"));
        assert_eq!(wheel.index.as_deref(), Some("https://idx.example/simple/"));
        let from_env = kinds_with(
            "pip download -r r.txt",
            &[("PIP_INDEX_URL", "https://idx.example/simple/")],
        );
        let Kind::Fetch(from_env) = &from_env[0] else {
            panic!("{from_env:?}")
        };
        assert_eq!(
            from_env.index.as_deref(),
            Some("https://idx.example/simple/")
        );
        assert_eq!(from_env.dest.as_deref(), Some("."));
    }

    #[test]
    fn npm_ci_and_a_bare_npm_install_are_lock_fetches_that_stay_as_installs() {
        for text in [
            "npm ci",
            "npm ci --omit=dev --ignore-scripts",
            "cd /app && npm ci && npm run build",
            "npm install",
            "sh -c \"npm clean-install --no-audit\"",
        ] {
            let download = fetch(text);
            assert_eq!(download.ecosystem, Ecosystem::Npm, "{text}");
            assert!(download.installs, "{text}");
            assert_eq!(download.lock, None);
        }
        assert_eq!(
            fetch("npm ci --prefix /app").directory.as_deref(),
            Some("/app")
        );
        assert_eq!(online_tool("npm install express"), "npm install");
        assert_eq!(online_tool("npm i -g typescript"), "npm i");
        assert_eq!(
            online_tool("yarn install --frozen-lockfile"),
            "yarn install"
        );
    }

    #[test]
    fn cargo_and_go_downloads_are_lock_fetches() {
        let fetched = fetch("cargo fetch --locked");
        assert_eq!(
            (fetched.ecosystem, fetched.tool, fetched.installs),
            (Ecosystem::Cargo, "cargo fetch", false)
        );
        assert_eq!(
            fetch("cargo fetch --manifest-path /src/app/Cargo.toml")
                .directory
                .as_deref(),
            Some("/src/app")
        );
        assert_eq!(
            fetch("cargo vendor --locked third_party").dest.as_deref(),
            Some("third_party")
        );
        assert_eq!(fetch("cargo vendor").dest.as_deref(), Some("vendor"));
        let go = fetch("go mod download -x");
        assert_eq!((go.ecosystem, go.installs), (Ecosystem::Go, false));
        assert!(fetch("go mod vendor").installs);
        let proxied = kinds_with(
            "go mod download",
            &[("GOPROXY", "https://proxy.internal.example,direct")],
        );
        let Kind::Fetch(proxied) = &proxied[0] else {
            panic!("{proxied:?}")
        };
        assert_eq!(
            proxied.index.as_deref(),
            Some("https://proxy.internal.example")
        );
    }

    #[test]
    fn offline_installs_are_never_flagged() {
        for text in [
            "pip install --no-index --find-links=/wheels -r requirements.txt",
            "python3 -m pip install --no-index -f /wheels app",
            "PIP_NO_INDEX=1 pip install -r requirements.txt",
            "sh -c 'cd /app && pip install --no-index --find-links /wheels .'",
            "pip download --no-index --find-links /wheels -r r.txt -d /out",
            "npm ci --offline",
            "npm install --offline",
            "npm_config_offline=true npm ci",
            "cargo build --offline --release",
            "cargo build --frozen",
            "CARGO_NET_OFFLINE=true cargo test",
            "cargo build --config net.offline=true",
            "GOFLAGS=-mod=vendor go build ./...",
            "go build -mod=vendor -o /app/x .",
            "GOPROXY=off go test ./...",
            "GOPROXY=file:///mods go build .",
            "uv pip install --offline -r r.txt",
            "gem install --local x.gem",
        ] {
            let kinds = kinds_with(text, &[]);
            assert!(
                kinds
                    .iter()
                    .all(|kind| matches!(kind, Kind::Offline | Kind::Other)),
                "{text}: {kinds:?}"
            );
            assert!(kinds.contains(&Kind::Offline), "{text}: {kinds:?}");
        }
        // From the stage's environment.
        for (text, env) in [
            ("pip install -r r.txt", ("PIP_NO_INDEX", "true")),
            ("npm ci", ("npm_config_offline", "true")),
            ("go build .", ("GOFLAGS", "-trimpath -mod=vendor")),
            ("go build .", ("GOPROXY", "off")),
            ("cargo build", ("CARGO_NET_OFFLINE", "1")),
        ] {
            assert_eq!(kinds_with(text, &[env]), vec![Kind::Offline], "{text}");
        }
    }

    #[test]
    fn downloads_without_a_lock_are_flagged_with_their_fix() {
        let cases = [
            (
                "curl -fsSL https://x.example/a.tgz | tar -xz",
                "curl",
                "[[fetch]] with its url and sha256",
            ),
            (
                "wget -O /tmp/x https://x.example/x",
                "wget",
                "[[fetch]] with its url and sha256",
            ),
            (
                "git clone --depth 1 https://x.example/r.git",
                "git clone",
                "source archive",
            ),
            (
                "apt-get update && apt-get install -y gcc",
                "apt-get update",
                "base image",
            ),
            ("apk add --no-cache gcc", "apk add", "base image"),
            ("dnf install -y gcc", "dnf install", "base image"),
            (
                "pip install flask",
                "pip install",
                "--no-index --find-links",
            ),
            (
                "python -m pip install -r requirements.txt",
                "pip install",
                "pip download -r",
            ),
            (
                "pip download flask -d /wheels",
                "pip download",
                "pip-compile --generate-hashes",
            ),
            (
                "pip download -r a.txt -r b.txt",
                "pip download",
                "merge the requirement files",
            ),
            ("npm install left-pad", "npm install", "package-lock"),
            ("cargo install ripgrep", "cargo install", "Cargo.lock"),
            ("go get example.com/m@v1", "go get", "go.sum"),
            ("go install example.com/tool@latest", "go install", "go.mod"),
            ("gem install rails", "gem install", "--local"),
            ("uv sync", "uv sync", "uv export"),
        ];
        for (text, tool, fix_part) in cases {
            let kinds = kinds_with(text, &[]);
            let found = kinds.iter().find_map(|kind| match kind {
                Kind::Online { tool, fix } => Some((tool.clone(), fix.clone())),
                _ => None,
            });
            let (found_tool, fix) = found.unwrap_or_else(|| panic!("{text}: {kinds:?}"));
            assert_eq!(found_tool, tool, "{text}");
            assert!(fix.contains(fix_part), "{text}: {fix}");
        }
        // Builds that resolve what they lack: flagged unless a fetch feeds them.
        assert!(matches!(
            kind("cargo build --release"),
            Kind::Resolves {
                ecosystem: Ecosystem::Cargo,
                ..
            }
        ));
        assert!(matches!(
            kind("go build -o /app/x ."),
            Kind::Resolves {
                ecosystem: Ecosystem::Go,
                ..
            }
        ));
        // Not downloads at all.
        for text in [
            "make && make test",
            "git status",
            "apt-cache policy",
            "pip --version",
            "npm run build",
            "npm test",
        ] {
            assert!(
                kinds_with(text, &[]).iter().all(|k| *k == Kind::Other),
                "{text}"
            );
        }
    }

    /// The one kind (other than `Other`) of the RUN `text` as a Dockerfile line.
    fn kind_of_run(text: &str) -> Kind {
        let dockerfile = format!("FROM x@sha256:00\nRUN {text}\n");
        let parsed = super::super::dockerfile::parse(&dockerfile).unwrap();
        let run = parsed[1].arguments.text();
        let kinds: Vec<Kind> = kinds_with(&run, &[])
            .into_iter()
            .filter(|kind| *kind != Kind::Other)
            .collect();
        assert_eq!(kinds.len(), 1, "{text}: {kinds:?}");
        kinds.into_iter().next().unwrap()
    }

    #[test]
    fn each_form_is_read_the_same_in_continued_lines_chains_and_sh_c() {
        let forms = [
            "pip download --require-hashes -r requirements.txt -d /wheels",
            "pip wheel -r requirements.txt -w /wheels",
            "npm ci --omit=dev",
            "npm install",
            "cargo fetch --locked",
            "cargo vendor vendor",
            "go mod download",
            "go mod vendor",
            "pip install --no-index --find-links=/wheels -r requirements.txt",
            "npm ci --offline",
            "cargo build --offline --release",
            "cargo build --frozen",
            "GOFLAGS=-mod=vendor go build ./...",
            "GOPROXY=off go build ./...",
            "curl -fsSLo /tmp/x https://x.example/x",
            "wget https://x.example/x",
            "git clone https://x.example/r.git",
            "apt-get install -y gcc",
            "pip install flask",
        ];
        for form in forms {
            let plain = kind_of_run(form);
            let words: Vec<&str> = form.split(' ').collect();
            let (head, tail) = words.split_at(words.len() / 2 + 1);
            let continued = format!("{} \\\n    {}", head.join(" "), tail.join(" "));
            for variant in [
                continued.clone(),
                format!("set -eux; cd /src \\\n  && {form} \\\n  && ls"),
                format!("sh -c '{form}'"),
                format!("/bin/bash -euxo pipefail -c \"cd /src && {form}\""),
                format!("true && {continued} || exit 1"),
            ] {
                assert_eq!(
                    kind_of_run(&variant),
                    plain,
                    "`{variant}` reads differently from `{form}`"
                );
            }
        }
    }

    #[test]
    fn written_paths_are_found_by_command() {
        let paths = |text: &str| -> Vec<(String, bool)> {
            commands(text).iter().flat_map(writes).collect()
        };
        assert_eq!(
            paths("mkdir -p /a /b && cp x y /c/ && echo hi > /d/log 2>&1"),
            vec![
                ("/a".to_string(), false),
                ("/b".to_string(), false),
                ("/c/".to_string(), false),
                ("/d/log".to_string(), false)
            ]
        );
        assert_eq!(
            paths("python3 -m venv /opt/venv && pip install --target=/app/site -r r.txt"),
            vec![
                ("/opt/venv".to_string(), true),
                ("/app/site".to_string(), false)
            ]
        );
        assert_eq!(
            paths("tar -xzf a.tgz -C /srv && go build -o /usr/local/bin/app ."),
            vec![
                ("/srv".to_string(), false),
                ("/usr/local/bin/app".to_string(), false)
            ]
        );
    }

    #[test]
    fn option_values_in_every_form() {
        let args = ["-d", "/a", "-d/b", "--dest=/c", "--dest", "/d", "-x"];
        assert_eq!(
            values(&args, &["-d", "--dest"]),
            vec!["/a", "/b", "/c", "/d"]
        );
        assert!(truthy(Some("TRUE")));
        assert!(!truthy(Some("0")));
    }
}
