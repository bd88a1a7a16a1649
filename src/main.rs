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

/// Prints `value` as JSON on stdout (for `--format json`).
fn print_json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(value).expect("reports serialize"));
}

async fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Build(_args) => unimplemented!("build"),
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
    }
}
