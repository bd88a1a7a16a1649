//! The examples run as their READMEs say, so they cannot rot.

use std::process::Command;

#[test]
fn docker_the_fetch_local_example_pins_builds_and_consumes_its_fetches() {
    let root = env!("CARGO_MANIFEST_DIR");
    let output = Command::new("bash")
        .arg(format!("{root}/examples/fetch-local/run.sh"))
        .env("SEALROOM", assert_cmd::cargo::cargo_bin("sealroom"))
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
}
