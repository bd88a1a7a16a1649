//! The `sealroom` binary: parse the command line, run one command from `sealroom::ops`, print
//! what it returns, and map any error to its documented exit code.

use std::path::Path;
use std::process::ExitCode as ProcessExitCode;

use clap::Parser;
use sealroom::cli::{Cli, Command, Format, ImageCommand, StoreCommand};
use sealroom::{Error, ExitCode, ops};

fn main() -> ProcessExitCode {
    let cli = Cli::parse();
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

/// Prints `value` as JSON on stdout (for `--format json`).
fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("reports serialize")
    );
}

async fn run(cli: Cli) -> Result<(), Error> {
    let store = cli.store.unwrap_or_else(sealroom::store::default_root);
    match cli.command {
        Command::Build(args) => {
            let options = ops::build::BuildOptions {
                out_dir: args.out,
                key: args.key,
                builder_id: args.builder_id,
                jobs: args.jobs.map(usize::from).unwrap_or_else(|| {
                    std::thread::available_parallelism().map_or(1, |cpus| cpus.get())
                }),
                keep_going: args.keep_going,
                no_cache: args.no_cache,
            };
            let report = ops::build::build(&args.spec, &store, &options).await?;
            match cli.format {
                Format::Json => print_json(&report),
                Format::Text => {
                    for artifact in &report.artifacts {
                        println!("{}", artifact.path.display());
                    }
                }
            }
            Ok(())
        }
        Command::Verify(args) => {
            let report = ops::verify::verify(
                &args.artifact,
                &args.provenance,
                &args.key,
                args.builder_id.as_deref(),
            )?;
            match cli.format {
                Format::Json => print_json(&report),
                Format::Text => {
                    for check in &report.checks {
                        eprintln!("ok  {}: {}", check.name, check.detail);
                    }
                    println!("verified {}", args.artifact.display());
                }
            }
            Ok(())
        }
        Command::Keygen(args) => {
            let files = ops::keygen::keygen(args.algorithm, &args.out)?;
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
        Command::Image(ImageCommand::Import { rootfs, name }) => {
            let image = ops::image_import::image_import(&rootfs, &name).await?;
            match cli.format {
                Format::Json => print_json(&serde_json::json!({
                    "name": image.name,
                    "digest": image.digest,
                    "reference": image.to_string(),
                })),
                Format::Text => println!("{image}"),
            }
            Ok(())
        }
        Command::Store(command) => store_command(command, &store, cli.format),
    }
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
