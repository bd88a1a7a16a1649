//! The image around a layer: the config JSON, whose sha256 is the image id. Its bytes are fixed
//! for a given layer: keys in sorted order, no whitespace, no creation time, no history.

use oci_spec::image::{ConfigBuilder, ImageConfigurationBuilder, RootFsBuilder};

use super::oci::canonical_json;

use super::ImageError;
use crate::digest::{BlobDigest, ImageDigest};

/// The `PATH` every image sets; steps get nothing else from the image's environment.
pub const IMAGE_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The config JSON for an image of one layer, and its digest (the image id): the canonical JSON
/// (sorted keys, no whitespace) of an OCI image configuration with only the architecture, `os`,
/// the `PATH` and the layer's `diff_id`, as every config sealroom writes.
pub fn config_json(architecture: &str, diff_id: BlobDigest) -> (Vec<u8>, ImageDigest) {
    let run = ConfigBuilder::default()
        .env(vec![IMAGE_PATH.to_string()])
        .build()
        .expect("a run config");
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(vec![diff_id.to_string()])
        .build()
        .expect("a rootfs");
    let config = ImageConfigurationBuilder::default()
        .architecture(architecture)
        .os("linux")
        .config(run)
        .rootfs(rootfs)
        .build()
        .expect("an image configuration");
    let bytes = canonical_json(&config);
    let digest = ImageDigest::of(&bytes);
    (bytes, digest)
}

/// The host's architecture in the names images use (Go's `GOARCH`).
pub fn host_architecture() -> Result<&'static str, ImageError> {
    match std::env::consts::ARCH {
        "x86_64" => Ok("amd64"),
        "aarch64" => Ok("arm64"),
        "arm" => Ok("arm"),
        "x86" => Ok("386"),
        "powerpc64" if cfg!(target_endian = "little") => Ok("ppc64le"),
        "s390x" => Ok("s390x"),
        "riscv64" => Ok("riscv64"),
        other => Err(ImageError::UnsupportedArchitecture { arch: other }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_bytes_are_fixed() {
        let diff_id = BlobDigest::of(b"layer");
        let (bytes, digest) = config_json("amd64", diff_id);
        let expected = format!(
            r#"{{"architecture":"amd64","config":{{"Env":["{IMAGE_PATH}"]}},"os":"linux","rootfs":{{"diff_ids":["{diff_id}"],"type":"layers"}}}}"#
        );
        assert_eq!(String::from_utf8(bytes.clone()).unwrap(), expected);
        assert_eq!(digest, ImageDigest::of(&bytes));
    }
}
