//! The examples run as their READMEs say, so they cannot rot.

use std::process::Command;

#[path = "interop/venv.rs"]
mod venv;

#[test]
fn docker_the_fetch_local_example_pins_builds_and_consumes_its_fetches() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = tempfile::tempdir().unwrap();
    let output = Command::new("bash")
        .arg(format!("{root}/examples/fetch-local/run.sh"))
        .env("SEALROOM", assert_cmd::cargo::cargo_bin("sealroom"))
        .env("SEALROOM_EXAMPLE_OUT", out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.ends_with("PAYLOAD SERVED FROM A LOOPBACK MIRROR\n"),
        "{stdout}"
    );

    // Its SBOM lists both fetches, the download by its URL, and passes the validators.
    let sbom = out.path().join("shout.txt.cdx.json");
    venv::assert_sboms_valid(&[&sbom]);
    let document: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sbom).unwrap()).unwrap();
    let refs: Vec<&str> = document["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|component| component["bom-ref"].as_str())
        .filter(|reference| !reference.starts_with("image:"))
        .collect();
    assert_eq!(
        refs,
        ["step:consume", "fetch:payload", "fetch:mirrored"],
        "{document}"
    );
    let payload = document["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|component| component["bom-ref"] == "fetch:payload")
        .unwrap();
    assert_eq!(
        payload["externalReferences"][0]["url"],
        "http://127.0.0.1:8765/payload-1.0.tar.gz"
    );
}
