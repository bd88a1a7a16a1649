//! sealroom's fetch network: the engine network every fixed-output fetch runs on (unless the
//! person running sealroom passes `--allow-host-network` for a `network = "host"` fetch).
//!
//! It is a bridge network of the engine's own `bridge` driver, made once (by whichever sealroom
//! process needs it first) and kept, with
//!
//! - a fixed bridge interface, [`BRIDGE`], so that the firewall rules below name it alone and
//!   two sealroom processes creating the network at once cannot both succeed (the driver refuses
//!   a second network on the same bridge name; the loser uses the winner's);
//! - `enable_icc=false`: the engine drops traffic between two containers on it;
//! - no IPv6 (`EnableIPv6 = false`: a container gets no IPv6 address and no IPv6 route);
//! - rules of sealroom's own iptables chains ([`INPUT_CHAIN`], [`FORWARD_CHAIN`]), reached only
//!   from packets that come in on [`BRIDGE`]: everything addressed to the host itself (the
//!   gateway, the host's other addresses, which go through `INPUT`, not `FORWARD`) is rejected,
//!   and so is anything forwarded to link-local addresses (169.254.0.0/16, the cloud metadata
//!   service) or to a port the engine publishes for another container (a DNAT to it). IPv6 from
//!   the bridge is rejected whole (fd00:ec2::254 included).
//!
//! The rules are checked (`iptables -C`) and added when missing by every sealroom process
//! before its first fetch container, so they come back after a reboot or a firewall reload;
//! nothing is flushed or removed, and no other chain or rule of the host is changed. When they
//! cannot be set (not root, no `iptables`, or an engine whose bridge is not in sealroom's network
//! namespace, e.g. a remote `DOCKER_HOST`), no fetch container starts: the error says why.
//!
//! What it still allows: any other address (the internet, the LAN behind the host's default
//! route), through the host's NAT, and names resolved by the engine's embedded DNS server.
//!
//! This module holds the names, the settings and the firewall; it never talks to the engine
//! (creating and inspecting the network is `docker::ensure_fetch_network`, the one user of
//! bollard).

use std::collections::HashMap;
use std::process::Command;

use super::EngineError;

/// The engine network's name.
pub const NAME: &str = "sealroom-fetch";
/// The bridge interface the engine makes for it (at most 15 bytes, the kernel's limit).
pub const BRIDGE: &str = "sr-fetch0";
const _: () = assert!(BRIDGE.len() <= 15);
/// The label sealroom puts on it; a network of that name without it is not used.
pub const LABEL: &str = "dev.sealroom.network";
/// The chain of the `filter` table that `INPUT` jumps to for packets from [`BRIDGE`].
pub const INPUT_CHAIN: &str = "SEALROOM-FETCH-IN";
/// The chain that `DOCKER-USER` (or `FORWARD`, without it) jumps to for packets from [`BRIDGE`].
pub const FORWARD_CHAIN: &str = "SEALROOM-FETCH-FWD";

pub const ICC_OPTION: &str = "com.docker.network.bridge.enable_icc";
pub const BRIDGE_OPTION: &str = "com.docker.network.bridge.name";

/// A fresh hostname for one fetch container: nothing of the host, nothing another container has.
pub fn fresh_hostname() -> String {
    use rand_core::RngCore;
    let mut bytes = [0u8; 6];
    rand_core::OsRng.fill_bytes(&mut bytes);
    format!("fetch-{}", hex::encode(bytes))
}

pub fn refused(detail: impl Into<String>) -> EngineError {
    EngineError::FetchNetwork {
        detail: detail.into(),
    }
}

/// How an engine network is set up, as the engine reports it: what [`check_settings`] reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSettings {
    pub driver: Option<String>,
    pub options: HashMap<String, String>,
    pub labels: HashMap<String, String>,
    pub enable_ipv6: bool,
    pub internal: bool,
}

impl NetworkSettings {
    /// The settings sealroom creates the network with.
    pub fn wanted() -> Self {
        NetworkSettings {
            driver: Some("bridge".to_string()),
            options: HashMap::from([
                (ICC_OPTION.to_string(), "false".to_string()),
                (BRIDGE_OPTION.to_string(), BRIDGE.to_string()),
            ]),
            labels: HashMap::from([(LABEL.to_string(), "fetch".to_string())]),
            enable_ipv6: false,
            internal: false,
        }
    }
}

/// A network of that name is used only when it is ours and as isolated as ours are made.
pub fn check_settings(network: &NetworkSettings) -> Result<(), EngineError> {
    let option = |key: &str| network.options.get(key).map(String::as_str);
    let mut wrong = Vec::new();
    if network.driver.as_deref() != Some("bridge") {
        wrong.push(format!(
            "driver `bridge`, found `{}`",
            network.driver.as_deref().unwrap_or("")
        ));
    }
    if option(ICC_OPTION) != Some("false") {
        wrong.push(format!(
            "{ICC_OPTION}=false, found {}",
            option(ICC_OPTION).unwrap_or("nothing")
        ));
    }
    if option(BRIDGE_OPTION) != Some(BRIDGE) {
        wrong.push(format!(
            "{BRIDGE_OPTION}={BRIDGE}, found {}",
            option(BRIDGE_OPTION).unwrap_or("nothing")
        ));
    }
    if network.enable_ipv6 {
        wrong.push("no IPv6, found EnableIPv6 = true".to_string());
    }
    if network.internal {
        wrong.push("a route out, found Internal = true".to_string());
    }
    if !network.labels.contains_key(LABEL) {
        wrong.push(format!("the label {LABEL}, found none"));
    }
    if wrong.is_empty() {
        return Ok(());
    }
    Err(refused(format!(
        "the engine network `{NAME}` is not the one sealroom makes: want {}\n  hint: if nothing uses it, remove it (`docker network rm {NAME}`) and sealroom makes it again",
        wrong.join("; ")
    )))
}

/// The rules, as `iptables` arguments after `-t filter`: (chain, rule) pairs, each added with
/// `-A` to sealroom's own chains; the jumps into them are inserted first in their chain.
fn rules_v4() -> Vec<Vec<&'static str>> {
    vec![
        // To the host itself: nothing.
        vec![
            INPUT_CHAIN,
            "-p",
            "tcp",
            "-j",
            "REJECT",
            "--reject-with",
            "tcp-reset",
        ],
        vec![
            INPUT_CHAIN,
            "-j",
            "REJECT",
            "--reject-with",
            "icmp-port-unreachable",
        ],
        // Through the host: not to link-local addresses, not to ports published for other
        // containers.
        vec![
            FORWARD_CHAIN,
            "-d",
            "169.254.0.0/16",
            "-j",
            "REJECT",
            "--reject-with",
            "icmp-net-unreachable",
        ],
        vec![
            FORWARD_CHAIN,
            "-m",
            "conntrack",
            "--ctstate",
            "DNAT",
            "-j",
            "REJECT",
            "--reject-with",
            "icmp-port-unreachable",
        ],
    ]
}

fn rules_v6() -> Vec<Vec<&'static str>> {
    vec![
        vec![INPUT_CHAIN, "-j", "REJECT"],
        vec![FORWARD_CHAIN, "-j", "REJECT"],
    ]
}

/// Sets the firewall rules of [`BRIDGE`], adding only what is missing. Blocking (it runs
/// `iptables`).
pub fn firewall() -> Result<(), EngineError> {
    let bridge = std::path::Path::new("/sys/class/net").join(BRIDGE);
    if !bridge.exists() {
        return Err(refused(format!(
            "its bridge `{BRIDGE}` is not in sealroom's network namespace (no {}), so sealroom cannot firewall it: the engine runs elsewhere (a remote DOCKER_HOST, or sealroom in a container)\n  hint: run sealroom on the engine's own host, as root",
            bridge.display()
        )));
    }
    rule_set("iptables", &rules_v4())?;
    // Without IPv6 in the kernel there is nothing to reject.
    if std::path::Path::new("/proc/sys/net/ipv6").exists() {
        rule_set("ip6tables", &rules_v6())?;
    }
    Ok(())
}

fn rule_set(tool: &str, rules: &[Vec<&str>]) -> Result<(), EngineError> {
    for chain in [INPUT_CHAIN, FORWARD_CHAIN] {
        if !succeeds(tool, &["-n", "-L", chain])? {
            // Two processes may race here: "already exists" is as good as created.
            let created = run(tool, &["-N", chain]);
            if !succeeds(tool, &["-n", "-L", chain])? {
                created?;
            }
        }
    }
    for rule in rules {
        let (chain, spec) = rule.split_first().expect("every rule names its chain");
        ensure_rule(tool, chain, spec, false)?;
    }
    ensure_rule(tool, "INPUT", &["-i", BRIDGE, "-j", INPUT_CHAIN], true)?;
    // The engine sends forwarded traffic through DOCKER-USER first, when it has one.
    let forward = if succeeds(tool, &["-n", "-L", "DOCKER-USER"])? {
        "DOCKER-USER"
    } else {
        "FORWARD"
    };
    ensure_rule(tool, forward, &["-i", BRIDGE, "-j", FORWARD_CHAIN], true)
}

/// Adds `spec` to `chain` unless it is there: first in the chain (`first`), else last.
fn ensure_rule(tool: &str, chain: &str, spec: &[&str], first: bool) -> Result<(), EngineError> {
    let with = |action: &[&str]| -> Vec<String> {
        action
            .iter()
            .chain(spec)
            .map(|part| part.to_string())
            .collect()
    };
    let check = with(&["-C", chain]);
    if succeeds(tool, &check.iter().map(String::as_str).collect::<Vec<_>>())? {
        return Ok(());
    }
    let add = if first {
        with(&["-I", chain, "1"])
    } else {
        with(&["-A", chain])
    };
    run(tool, &add.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Runs `tool -w -t filter ARGS`; whether it exited 0. An error only when it cannot run.
fn succeeds(tool: &str, args: &[&str]) -> Result<bool, EngineError> {
    Ok(output(tool, args)?.status.success())
}

fn run(tool: &str, args: &[&str]) -> Result<(), EngineError> {
    let out = output(tool, args)?;
    if out.status.success() {
        return Ok(());
    }
    Err(refused(format!(
        "`{tool} -t filter {}` failed ({}): {}\n  hint: sealroom adds its own iptables rules for the fetch network's bridge `{BRIDGE}`; run it as root on the engine's host",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

fn output(tool: &str, args: &[&str]) -> Result<std::process::Output, EngineError> {
    Command::new(tool)
        .args(["-w", "-t", "filter"])
        .args(args)
        .output()
        .map_err(|error| {
            refused(format!(
                "cannot run `{tool}`: {error}\n  hint: sealroom firewalls its fetch network with iptables; install it (Debian: `apt-get install iptables`) and run sealroom as root on the engine's host"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(options: &[(&str, &str)], labelled: bool) -> NetworkSettings {
        let mut settings = NetworkSettings::wanted();
        settings.options = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if !labelled {
            settings.labels.clear();
        }
        settings
    }

    #[test]
    fn only_an_isolated_network_of_ours_is_used() {
        let ours = [(ICC_OPTION, "false"), (BRIDGE_OPTION, BRIDGE)];
        assert!(check_settings(&network(&ours, true)).is_ok());
        let error = check_settings(&network(&[(BRIDGE_OPTION, BRIDGE)], true))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("enable_icc=false, found nothing")
                && error.contains("docker network rm"),
            "{error}"
        );
        let error = check_settings(&network(&ours, false))
            .unwrap_err()
            .to_string();
        assert!(error.contains(LABEL), "{error}");
        assert!(check_settings(&NetworkSettings::wanted()).is_ok());
        let mut v6 = network(&ours, true);
        v6.enable_ipv6 = true;
        assert!(
            check_settings(&v6)
                .unwrap_err()
                .to_string()
                .contains("IPv6")
        );
    }

    #[test]
    fn a_firewall_that_cannot_be_set_is_an_error_with_a_hint() {
        let missing = rule_set("sealroom-test-no-such-iptables", &rules_v4())
            .unwrap_err()
            .to_string();
        assert!(
            missing.starts_with("cannot set up sealroom's fetch network (`sealroom-fetch`, bridge `sr-fetch0`), so no fetch container was started: cannot run `sealroom-test-no-such-iptables`")
                && missing.contains("hint: sealroom firewalls its fetch network with iptables"),
            "{missing}"
        );
        // A tool that refuses every change, as iptables does for a user who is not root.
        let refused = rule_set("false", &rules_v4()).unwrap_err().to_string();
        assert!(
            refused.contains("no fetch container was started")
                && refused
                    .contains("`false -t filter -N SEALROOM-FETCH-IN` failed (exit status: 1)")
                && refused.contains("run it as root on the engine's host"),
            "{refused}"
        );
    }

    #[test]
    fn fresh_hostnames_differ_and_are_valid() {
        let (a, b) = (fresh_hostname(), fresh_hostname());
        assert_ne!(a, b);
        assert!(a.len() <= 63 && a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'));
    }
}
