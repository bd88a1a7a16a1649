//! The `sealroom` binary: parse the command line, run one command from `sealroom::ops`, print
//! what it returns, and map any error to its documented exit code.

use std::process::ExitCode as ProcessExitCode;

use clap::Parser;
use sealroom::cli::{Cli, Command, Format, ImageCommand};
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

/// Prints `value` as JSON on stdout (for `--format json`).
fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("reports serialize")
    );
}

async fn run(cli: Cli) -> Result<(), Error> {
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
            };
            let mut report = ops::build::build(&args.spec, &store, &options).await?;
            if args.load {
                ops::image_build::load_images(&mut report.images, &args.tag).await?;
            }
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
        Command::Reproduce(args) => {
            let report = ops::reproduce::reproduce(
                &args.provenance,
                &args.source,
                args.key.as_deref(),
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
        Command::Check(args) => {
            let report =
                ops::check::check(&args.spec, &args.report_dir, interrupt_on_signals()).await?;
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
        Command::Push(args) => {
            let report = ops::push::push(&args.image, &args.reference, &args.out).await?;
            match cli.format {
                Format::Json => print_json(&report),
                Format::Text => println!("{}", report.reference),
            }
            Ok(())
        }
        Command::Convert(args) => {
            let toml = ops::convert::convert(
                &args.dockerfile,
                args.context.as_deref(),
                args.name.as_deref(),
            )?;
            print!("{toml}");
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
    }
}
