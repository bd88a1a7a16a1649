//! One function per command. Each composes the library modules and returns a value for the CLI
//! to print; none of them parses arguments or prints data to stdout.

pub mod attest;
pub mod build;
pub mod check;
pub mod convert;
pub mod explain;
pub mod fetch;
pub mod image_build;
pub mod image_contents;
pub mod image_import;
pub mod keygen;
pub mod lock_fetch;
pub mod login;
pub mod push;
pub mod reproduce;
pub mod sandbox_image;
pub mod sbom;
pub mod store;
pub mod verify;
