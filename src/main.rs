//! The `sealroom` binary: parse the command line, run one command from `sealroom::ops`, print
//! what it returns, and map any error to its documented exit code.

use std::path::Path;
use std::process::ExitCode as ProcessExitCode;

use clap::Parser;
use sealroom::cli::{Cli, Command, Format, ImageCommand, KeyEncryption, StoreCommand};
use sealroom::{Error, ExitCode, ops};

fn main() -> ProcessExitCode {
    let cli = Cli::parse();
    // The library's progress and warnings go to stderr; SEALROOM_LOG=debug for more.
    sealroom::cli::report::init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ProcessExitCode::from(ExitCode::Internal.code());
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ProcessExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ProcessExitCode::from(error.exit_code().code())
        }
    }
}

/// A token fired by the first SIGINT or SIGTERM, so that the running command can stop its
/// steps and remove their containers; a second signal exits at once.
fn interrupt_on_signals() -> tokio_util::sync::CancellationToken {
    use tokio::signal::unix::{SignalKind, signal};
    let token = tokio_util::sync::CancellationToken::new();
    let fired = token.clone();
    tokio::spawn(async move {
        let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        loop {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            if fired.is_cancelled() {
                eprintln!("interrupted again: exiting now");
                std::process::exit(ExitCode::Interrupted.code().into());
            }
            eprintln!(
                "interrupted: stopping the running steps and removing their containers (again to exit at once)"
            );
            fired.cancel();
        }
    });
    token
}

/// Options for the fetch stage run on its own (`fetch`, `pin`).
fn fetch_options(
    offline: bool,
    jobs: Option<u16>,
    network: &sealroom::cli::NetworkArgs,
) -> ops::fetch::FetchOptions {
    let network = network_choices(network);
    ops::fetch::FetchOptions {
        offline,
        allow_host_network: network.allow_host_network,
        mirrors: network.mirrors,
        jobs: jobs
            .map(usize::from)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |cpus| cpus.get())),
        build_id: format!("fetch-{}", std::process::id()),
        interrupt: interrupt_on_signals(),
    }
}

/// The command line's network choices (`--allow-host-network`, `--mirror`).
fn network_choices(args: &sealroom::cli::NetworkArgs) -> ops::fetch::NetworkChoices {
    let mut mirrors = sealroom::fetch::Mirrors::default();
    for (prefix, url) in &args.mirrors {
        mirrors
            .insert(prefix, url)
            .expect("clap checked each --mirror");
    }
    ops::fetch::NetworkChoices {
        allow_host_network: args.allow_host_network,
        mirrors,
    }
}

/// Prints `value` as JSON on stdout (for `--format json`).
fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("reports serialize")
    );
}

async fn run(cli: Cli) -> Result<(), Error> {
    sealroom::registry::configure(sealroom::registry::Settings {
        ca_files: cli.registry_ca.clone(),
    });
    match cli.command {
        Command::Build(args) => {
            let store = cli.store.unwrap_or_else(sealroom::store::default_root);
            let options = ops::build::BuildOptions {
                out_dir: args.out,
                key: args.key,
                builder_id: args.builder_id,
                jobs: args.jobs.map(usize::from).unwrap_or_else(|| {
                    std::thread::available_parallelism().map_or(1, |cpus| cpus.get())
                }),
                keep_going: args.keep_going,
                no_cache: args.no_cache,
                interrupt: interrupt_on_signals(),
                reverse_order: false,
                bundle: args.bundle,
                sbom: args.sbom,
                offline: args.offline,
                allow_host_network: args.network.allow_host_network,
                mirrors: network_choices(&args.network).mirrors,
                load: args.load.then_some(args.tag),
                remote: args.remote.settings(),
            };
            let report = ops::build::build(&args.spec, &store, &options).await?;
            match cli.format {
                Format::Json => print_json(&report),
                Format::Text => {
                    for artifact in &report.artifacts {
                        println!("{}", artifact.path.display());
                    }
                    for image in &report.images {
                        println!("{}", image.layout.display());
                    }
                }
            }
            Ok(())
        }
        Command::Verify(args) => {
            let policy = ops::verify::Policy {
                keys: args.keys,
                threshold: usize::try_from(args.threshold).unwrap_or(usize::MAX),
                builder_id: args.builder_id,
                source_digest: args.source_digest,
                spec_digest: args.spec_digest,
                sbom: args.sbom,
            };
            let (artifact, provenance) = match ops::verify::target(
                &args.artifact,
                args.provenance.as_deref(),
                policy.sbom.as_deref(),
            )? {
                ops::verify::Target::Registry(reference) => {
                    return verify_reference(&reference, &policy, cli.format).await;
                }
                ops::verify::Target::File {
                    artifact,
                    provenance,
                } => (artifact, provenance),
            };
            let report = ops::verify::check_policy(&artifact, &provenance, &policy)?;
            match cli.format {
                Format::Json => print_json(&report),
                Format::Text => {
                    for check in &report.checks {
                        let mark = if check.ok { "ok  " } else { "FAIL" };
                        eprintln!("{mark} {}: {}", check.name, check.detail);
                    }
                }
            }
            let report = report.into_result()?;
            if cli.format == Format::Text {
                println!("verified {}", report.artifact.display());
            }
            Ok(())
        }
        Command::Fetch(args) => {
            let store = cli.store.unwrap_or_else(sealroom::store::default_root);
            let options = fetch_options(args.offline, args.jobs, &args.network);
            let fetched = ops::fetch::fetch(&args.spec, &store, &options).await?;
            match cli.format {
                Format::Json => print_json(&fetched),
                Format::Text => {
                    for done in &fetched {
                        let how = if done.cached {
                            "in the store"
                        } else {
                            "fetched"
                        };
                        eprintln!("fetch {}: {how}", done.name);
                        println!("{} {}", done.name, done.tree);
                    }
                }
            }
            Ok(())
        }
        Command::Pin(args) => {
            let store = cli.store.unwrap_or_else(sealroom::store::default_root);
            let changes = ops::fetch::pin(
                &args.spec,
                &store,
                &fetch_options(false, None, &args.network),
            )
            .await?;
            match cli.format {
                Format::Json => print_json(&changes),
                Format::Text if changes.is_empty() => eprintln!("every pin is up to date"),
                Format::Text => {
                    for change in &changes {
                        println!("{} {} {}", change.fetch, change.key, change.new);
                    }
                }
            }
            Ok(())
        }
        Command::Reproduce(args) => {
            let report = ops::reproduce::reproduce(
                &args.provenance,
                &args.source,
                args.key.as_deref(),
                &network_choices(&args.network),
                interrupt_on_signals(),
            )
            .await?;
            eprintln!(
                "{:<32} {:<64} {:<64} match",
                "subject", "recorded sha256", "rebuilt sha256"
            );
            for subject in &report.subjects {
                eprintln!(
                    "{:<32} {:<64} {:<64} {}",
                    subject.name,
                    subject.recorded,
                    subject.rebuilt.as_deref().unwrap_or("(not rebuilt)"),
                    if subject.matches { "yes" } else { "NO" }
                );
            }
            match cli.format {
                Format::Json => print_json(&report),
                Format::Text => println!(
                    "{}",
                    if report.reproduced {
                        "reproduced"
                    } else {
                        "not reproduced"
                    }
                ),
            }
            if !report.reproduced {
                let names = report
                    .subjects
                    .iter()
                    .filter(|subject| !subject.matches)
                    .map(|subject| format!("`{}`", subject.name))
                    .collect();
                return Err(ops::reproduce::ReproduceError::Differs { names }.into());
            }
            Ok(())
        }
        Command::Explain(args) => {
            let store = cli.store.unwrap_or_else(sealroom::store::default_root);
            // One word that names no file is a step of ./sealroom.toml: `sealroom explain compile`.
            let (spec, step) = match args.step {
                None if !args.spec.exists() && std::path::Path::new("sealroom.toml").is_file() => (
                    std::path::PathBuf::from("sealroom.toml"),
                    Some(args.spec.to_string_lossy().into_owned()),
                ),
                step => (args.spec, step),
            };
            let report = ops::explain::explain(&spec, &store, step.as_deref())?;
            match cli.format {
                Format::Json => print_json(&report),
                Format::Text => print!("{}", report.to_text()),
            }
            Ok(())
        }
        Command::Check(args) => {
            let report = ops::check::check(
                &args.spec,
                &args.report_dir,
                &network_choices(&args.network),
                interrupt_on_signals(),
            )
            .await?;
            for difference in &report.differences {
                eprintln!(
                    "differs: step `{}` /out/{}: {} vs {}",
                    difference.step, difference.path, difference.first, difference.second
                );
            }
            if let Some(cause) = &report.likely_cause {
                eprintln!("likely cause: {cause}");
            }
            for diffoscope in &report.diffoscope_reports {
                eprintln!("diffoscope report: {}", diffoscope.display());
            }
            match cli.format {
                Format::Json => print_json(&report),
                Format::Text => println!(
                    "{}",
                    if report.reproducible {
                        "reproducible"
                    } else {
                        "not reproducible"
                    }
                ),
            }
            if !report.reproducible {
                let paths = report
                    .differences
                    .iter()
                    .map(|difference| format!("`{}`", difference.path))
                    .collect();
                return Err(ops::check::CheckError::Differs { paths }.into());
            }
            Ok(())
        }
        Command::Keygen(args) => {
            let passphrase = |variable: &'static str| {
                std::env::var(variable)
                    .map_err(|_| sealroom::sign::SignError::MissingPassphrase { variable })
            };
            let (pkcs8, cosign);
            let protection = match args.encrypt {
                None => ops::keygen::Protection::None,
                Some(KeyEncryption::Pkcs8) => {
                    pkcs8 = passphrase("SEALROOM_KEY_PASSWORD")?;
                    ops::keygen::Protection::Pkcs8 { passphrase: &pkcs8 }
                }
                Some(KeyEncryption::Cosign) => {
                    cosign = passphrase("COSIGN_PASSWORD")?;
                    ops::keygen::Protection::Cosign {
                        passphrase: &cosign,
                    }
                }
            };
            let files = ops::keygen::keygen_protected(args.algorithm, &args.out, protection)?;
            match cli.format {
                Format::Json => print_json(&files),
                Format::Text => {
                    eprintln!("key id {}", files.key_id);
                    println!("{}", files.private_key.display());
                    println!("{}", files.public_key.display());
                }
            }
            Ok(())
        }
        Command::Push(args) => {
            let report = ops::push::push(&args.image, &args.reference, &args.out).await?;
            match cli.format {
                Format::Json => print_json(&report),
                Format::Text => {
                    println!("{}", report.reference);
                    for pushed in &report.attestations {
                        let listed = match &pushed.listed_by {
                            Some(listed) => format!(", listed by {listed}"),
                            None => String::new(),
                        };
                        println!(
                            "attestation {} {} {}{}{}",
                            pushed.scheme,
                            pushed.reference,
                            pushed.predicate_types.join(" "),
                            listed,
                            if pushed.new { "" } else { " (already there)" }
                        );
                    }
                    if report.unsigned_skipped > 0 {
                        eprintln!(
                            "note: {} unsigned attestation envelope(s) not pushed (build with --key to sign them)",
                            report.unsigned_skipped
                        );
                    }
                }
            }
            Ok(())
        }
        Command::Login(args) => {
            let password = if args.password_stdin {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                    .map_err(|error| Error::io("cannot read the password from", "stdin", error))?;
                Some(sealroom::registry::auth::Secret::new(
                    text.trim_end_matches(['\n', '\r']),
                ))
            } else {
                None
            };
            let stored =
                ops::login::login(&args.registry, args.username.as_deref(), password).await?;
            match cli.format {
                Format::Json => print_json(&stored),
                Format::Text => {
                    eprintln!("login succeeded: {} as `{}`", stored.key, stored.username);
                    match &stored.helper {
                        Some(helper) => println!(
                            "{}: auths.{} (the secret is in docker-credential-{helper})",
                            stored.config.display(),
                            stored.key
                        ),
                        None => println!("{}: auths.{}", stored.config.display(), stored.key),
                    }
                }
            }
            Ok(())
        }
        Command::Logout(args) => {
            let removed = ops::login::logout(&args.registry).await?;
            match cli.format {
                Format::Json => print_json(&removed),
                Format::Text => {
                    if removed.keys.is_empty() && removed.helper.is_none() {
                        eprintln!("not logged in to {}", args.registry);
                    }
                    for key in &removed.keys {
                        println!("{}: removed auths.{key}", removed.config.display());
                    }
                    if let Some(helper) = &removed.helper {
                        println!("erased the entry of docker-credential-{helper}");
                    }
                }
            }
            Ok(())
        }
        Command::Convert(args) => {
            let toml = ops::convert::convert(
                &args.dockerfile,
                args.context.as_deref(),
                args.name.as_deref(),
                &args.build_args,
            )?;
            print!("{toml}");
            Ok(())
        }
        Command::Image(ImageCommand::Import { rootfs, name }) => {
            let imported = ops::image_import::image_import(&rootfs, &name).await?;
            if imported.dropped_devices > 0 {
                eprintln!(
                    "note: left out {} device nodes under /dev (the engine gives every container its own /dev)",
                    imported.dropped_devices
                );
            }
            let image = imported.image;
            match cli.format {
                Format::Json => print_json(&serde_json::json!({
                    "name": image.name,
                    "digest": image.digest,
                    "reference": image.to_string(),
                    "droppedDevices": imported.dropped_devices,
                })),
                Format::Text => println!("{image}"),
            }
            Ok(())
        }
        Command::Store(command) => {
            let store = cli.store.unwrap_or_else(sealroom::store::default_root);
            if matches!(
                command,
                StoreCommand::Verify { .. } | StoreCommand::Gc { .. }
            ) {
                ops::store::remove_leftover_containers().await;
            }
            store_command(command, &store, cli.format)
        }
    }
}

/// `sealroom verify REGISTRY/REPO@sha256:…`: each attestation's result on stderr (the report
/// with `--format json`), then `verified REF (schemes)` on stdout, or the failure.
async fn verify_reference(
    reference: &sealroom::registry::Reference,
    policy: &ops::verify::Policy,
    format: Format,
) -> Result<(), Error> {
    let report = ops::verify::verify_reference(reference, policy).await?;
    let schemes = report
        .schemes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match format {
        Format::Json => print_json(&report),
        Format::Text => {
            eprintln!(
                "found: {}",
                if schemes.is_empty() {
                    "nothing"
                } else {
                    &schemes
                }
            );
            for attestation in &report.attestations {
                eprintln!(
                    "{} {} {} layer {} ({} {}): {}",
                    if attestation.verified { "ok  " } else { "FAIL" },
                    attestation.scheme,
                    attestation.manifest,
                    attestation.layer,
                    attestation.kind,
                    attestation.predicate_type.as_deref().unwrap_or("unknown"),
                    attestation.summary()
                );
            }
            for refused in &report.not_accepted {
                eprintln!(
                    "skip {} {}: {}",
                    refused.scheme, refused.manifest, refused.reason
                );
            }
        }
    }
    let report = report.into_result()?;
    if format == Format::Text {
        println!("verified {} ({schemes})", report.reference);
    }
    Ok(())
}

/// `sealroom store ls|verify|gc`: a table or summary for people, the report with `--format json`.
fn store_command(command: StoreCommand, store: &Path, format: Format) -> Result<(), Error> {
    use std::time::Duration;
    match command {
        StoreCommand::Ls => {
            let usage = ops::store::ls(store)?;
            match format {
                Format::Json => print_json(&usage),
                Format::Text => {
                    println!("store {}", usage.root.display());
                    for (kind, entries) in [
                        ("blobs", usage.blobs),
                        ("trees", usage.trees),
                        ("checkouts", usage.checkouts),
                        ("actions", usage.actions),
                        ("tmp", usage.tmp),
                        ("quarantine", usage.quarantine),
                    ] {
                        println!(
                            "{kind:<12}{:>10} entries{:>16} bytes",
                            entries.entries, entries.bytes
                        );
                    }
                    println!("{:<12}{:>35} bytes", "total", usage.total_bytes);
                }
            }
            Ok(())
        }
        StoreCommand::Verify { wait } => {
            let report = ops::store::verify(store, Duration::from_secs(wait))?;
            match format {
                Format::Json => print_json(&report),
                Format::Text => {
                    for problem in &report.problems {
                        eprintln!("corrupt: {problem}");
                    }
                    for entry in &report.invalidated {
                        eprintln!("{entry}");
                    }
                    let checked = &report.checked;
                    eprintln!(
                        "checked {} blobs, {} trees, {} action entries, {} checkouts ({} bytes re-hashed); removed {} stale tmp entries",
                        checked.blobs,
                        checked.trees,
                        checked.actions,
                        checked.checkouts,
                        checked.bytes_hashed,
                        report.stale_tmp_removed
                    );
                    if report.is_healthy() {
                        eprintln!("store {} is healthy", report.root.display());
                    }
                }
            }
            match report.failure() {
                Some(failure) => Err(failure.into()),
                None => Ok(()),
            }
        }
        StoreCommand::Gc { keep_days, wait } => {
            let report = ops::store::gc(store, keep_days, Duration::from_secs(wait))?;
            match format {
                Format::Json => print_json(&report),
                Format::Text => {
                    let removed = &report.removed;
                    eprintln!(
                        "removed {} blobs, {} trees, {} checkouts, {} action entries, {} tmp and {} quarantined entries; kept {} action entries and {} checkouts used within {} days, and the {} trees and {} blobs they reach",
                        removed.blobs.entries,
                        removed.trees.entries,
                        removed.checkouts.entries,
                        removed.actions.entries,
                        removed.tmp.entries,
                        removed.quarantine.entries,
                        report.kept.actions,
                        report.kept.checkouts,
                        report.keep_days,
                        report.kept.trees,
                        report.kept.blobs,
                    );
                    eprintln!("freed {} bytes", report.bytes_freed);
                }
            }
            Ok(())
        }
    }
}
