//! The step record: the complete, canonical description of what one container runs. It is the
//! one value that describes a step:
//!
//! - the engine implementation turns exactly this record into the container config
//!   (`docker::DockerEngine::container_body`), adding only host paths and labels, which do not
//!   change what the step sees;
//! - the action key is the sha256 of its canonical bytes ([`StepRecord::action_key`]);
//! - provenance writes it as it is for every step (`ops::attest`).
//!
//! So a hardening setting cannot reach the container without reaching the key: both read it
//! from [`SandboxPolicy`]. The canonical bytes are the JSON of the record with fields in
//! declaration order, maps sorted by key, no whitespace, every number an integer (documented in
//! docs/store.md); [`RECORD_FORMAT`] names the encoding and changes only when it does.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{DEFAULT_USER, INPUTS_DIR, Network, OUT_DIR, SCRATCH_DIRS, TMP_DIR, WORK_DIR};
use crate::digest::{ActionDigest, ImageDigest, TreeDigest};
use crate::spec::{Limits, Name, Spec, Step};
use crate::store::MATERIALIZED_MTIME;

/// The `PATH` every step gets (the spec may set another).
pub const STEP_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The name of the canonical encoding; the first field of every record.
pub const RECORD_FORMAT: &str = "sealroom-step-record-v1";

/// Mount options of each scratch tmpfs, after its `size=`. Executable: builds run what they
/// compile and the scripts they copy there (`./configure`).
pub const SCRATCH_OPTIONS: &str = "nosuid,nodev,mode=1777";

/// What one container runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRecord {
    pub format: &'static str,
    /// The image id the container is created from.
    pub image: ImageDigest,
    pub argv: Vec<String>,
    /// The complete environment; nothing else is set.
    pub env: BTreeMap<String, String>,
    pub workdir: String,
    /// `uid:gid` inside the container.
    pub user: String,
    pub network: Network,
    pub limits: RecordLimits,
    /// Every mount the step sees, sorted by target.
    pub mounts: Vec<MountRecord>,
    pub policy: SandboxPolicy,
}

/// Every limit, as integers the engine is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RecordLimits {
    pub timeout_ms: u64,
    pub memory_bytes: u64,
    pub pids: u64,
    /// Billionths of a CPU (the engine's `NanoCpus`); `None` is all of them.
    pub nano_cpus: Option<u64>,
    pub output_bytes: u64,
    pub scratch_bytes: u64,
    /// The size of the step's `/dev/shm`: [`DEV_SHM_BYTES`], or `scratch_bytes` if smaller.
    pub shm_bytes: u64,
}

/// The most a step's `/dev/shm` holds (a tmpfs of the container's own IPC namespace).
pub const DEV_SHM_BYTES: u64 = 64 * 1024 * 1024;

impl From<&Limits> for RecordLimits {
    fn from(limits: &Limits) -> Self {
        RecordLimits {
            timeout_ms: u64::try_from(limits.timeout.as_millis()).unwrap_or(u64::MAX),
            memory_bytes: limits.memory.0,
            pids: limits.pids,
            nano_cpus: limits.cpus.map(|cpus| (cpus * 1e9).round() as u64),
            output_bytes: limits.output.0,
            scratch_bytes: limits.scratch.0,
            shm_bytes: DEV_SHM_BYTES.min(limits.scratch.0),
        }
    }
}

/// One mount of the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum MountRecord {
    /// A store checkout of `tree`, read-only at `/inputs/<name>`.
    Input { target: String, tree: TreeDigest },
    /// The step's output directory, writable, empty at the start.
    Output { target: String },
    /// A private tmpfs of `size_bytes`, mounted with `options`.
    Scratch {
        target: String,
        size_bytes: u64,
        options: &'static str,
    },
}

impl MountRecord {
    pub fn target(&self) -> &str {
        match self {
            MountRecord::Input { target, .. }
            | MountRecord::Output { target }
            | MountRecord::Scratch { target, .. } => target,
        }
    }
}

/// The hardening every container gets. Each field is read by the engine implementation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SandboxPolicy {
    pub read_only_root: bool,
    /// Capabilities dropped (`ALL`) and added back (none).
    pub cap_drop: Vec<&'static str>,
    pub cap_add: Vec<&'static str>,
    pub no_new_privileges: bool,
    /// `engine-default`: no profile is passed, so the engine applies its default one.
    pub seccomp: &'static str,
    /// The hostname the step sees; `None` on the host's network, which comes with its name, and
    /// on the fetch network, where each container gets a fresh random one
    /// (`fetch_network::fresh_hostname`).
    pub hostname: Option<&'static str>,
    /// How input checkouts are written (`store::checkout`).
    pub input_file_modes: &'static str,
    pub input_mtime: u64,
}

/// The hostname every step sees, so it cannot leak into outputs from the host.
pub const HOSTNAME: &str = "sealroom";

impl SandboxPolicy {
    /// The policy of every container sealroom starts, on `network`.
    pub fn for_network(network: Network) -> Self {
        SandboxPolicy {
            read_only_root: true,
            cap_drop: vec!["ALL"],
            cap_add: Vec::new(),
            no_new_privileges: true,
            seccomp: "engine-default",
            hostname: (network == Network::None).then_some(HOSTNAME),
            input_file_modes: "files 0644 or 0755, directories 0755",
            input_mtime: MATERIALIZED_MTIME,
        }
    }
}

/// What a record is made from: the parts a caller decides.
pub struct StepDefinition<'a> {
    pub image: ImageDigest,
    pub argv: &'a [String],
    pub env: BTreeMap<String, String>,
    pub workdir: &'a str,
    pub user: &'a str,
    pub network: Network,
    pub limits: &'a Limits,
    /// Input name (its mount point under `/inputs`) to tree.
    pub inputs: &'a [(String, TreeDigest)],
}

impl StepRecord {
    /// The record of a build step of `spec` whose inputs have these trees: network off, the
    /// fixed user and working directory, the step's own limits.
    pub fn for_step(spec: &Spec, step: &Step, inputs: &[(Name, TreeDigest)]) -> Self {
        let inputs: Vec<(String, TreeDigest)> = inputs
            .iter()
            .map(|(name, tree)| (name.to_string(), *tree))
            .collect();
        StepRecord::new(StepDefinition {
            image: spec.sandbox.image.digest,
            argv: &step.run,
            env: step_environment(spec, step),
            workdir: WORK_DIR,
            user: DEFAULT_USER,
            network: Network::None,
            limits: &step.limits,
            inputs: &inputs,
        })
    }

    pub fn new(definition: StepDefinition<'_>) -> Self {
        let limits = RecordLimits::from(definition.limits);
        let mut mounts: Vec<MountRecord> = definition
            .inputs
            .iter()
            .map(|(name, tree)| MountRecord::Input {
                target: format!("{INPUTS_DIR}/{name}"),
                tree: *tree,
            })
            .collect();
        mounts.push(MountRecord::Output {
            target: OUT_DIR.to_string(),
        });
        mounts.extend(SCRATCH_DIRS.iter().map(|target| MountRecord::Scratch {
            target: target.to_string(),
            size_bytes: limits.scratch_bytes,
            options: SCRATCH_OPTIONS,
        }));
        mounts.sort_by(|a, b| a.target().cmp(b.target()));
        StepRecord {
            format: RECORD_FORMAT,
            image: definition.image,
            argv: definition.argv.to_vec(),
            env: definition.env,
            workdir: definition.workdir.to_string(),
            user: definition.user.to_string(),
            network: definition.network,
            limits,
            mounts,
            policy: SandboxPolicy::for_network(definition.network),
        }
    }

    /// The canonical encoding: compact JSON, fields in declaration order, maps sorted.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("step records serialize")
    }

    /// The step's action key: the sha256 of the canonical bytes.
    pub fn action_key(&self) -> ActionDigest {
        ActionDigest::of(&self.canonical_bytes())
    }

    /// The record as a JSON value, for provenance.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("step records serialize")
    }
}

/// The complete environment of a step: the fixed variables, then the spec's `env` on top.
/// Nothing comes from the host.
pub fn step_environment(spec: &Spec, step: &Step) -> BTreeMap<String, String> {
    fixed_environment(spec.source_date_epoch, &step.env)
}

/// The variables every container sealroom starts gets (steps and fixed-output fetches alike),
/// with `extra` (a spec's `env`) on top.
pub fn fixed_environment(
    source_date_epoch: u64,
    extra: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::from([
        (
            "SOURCE_DATE_EPOCH".to_string(),
            source_date_epoch.to_string(),
        ),
        ("TZ".to_string(), "UTC".to_string()),
        ("LC_ALL".to_string(), "C".to_string()),
        ("LANG".to_string(), "C".to_string()),
        ("HOME".to_string(), TMP_DIR.to_string()),
        ("PATH".to_string(), STEP_PATH.to_string()),
    ]);
    env.extend(
        extra
            .iter()
            .map(|(key, value)| (key.clone(), value.clone())),
    );
    env
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::spec::ByteSize;

    fn image() -> ImageDigest {
        format!("sha256:{}", "ab".repeat(32)).parse().unwrap()
    }

    fn tree(byte: &str) -> TreeDigest {
        format!("sha256:{}", byte.repeat(32)).parse().unwrap()
    }

    type Base = (
        Vec<String>,
        BTreeMap<String, String>,
        Limits,
        Vec<(String, TreeDigest)>,
    );
    type RecordChange = (&'static str, Box<dyn Fn(&mut StepRecord)>);
    type LimitChange = (&'static str, fn(&mut Limits));

    /// A fixed record: the golden key below is its action key.
    fn base() -> Base {
        let argv = vec!["sh".to_string(), "-c".to_string(), "make".to_string()];
        let env = BTreeMap::from([
            ("CFLAGS".to_string(), "-O2".to_string()),
            ("SOURCE_DATE_EPOCH".to_string(), "0".to_string()),
        ]);
        let limits = Limits::default();
        let inputs = vec![
            ("src".to_string(), tree("01")),
            ("dep".to_string(), tree("02")),
        ];
        (argv, env, limits, inputs)
    }

    fn record_of(
        argv: &[String],
        env: &BTreeMap<String, String>,
        limits: &Limits,
        inputs: &[(String, TreeDigest)],
    ) -> StepRecord {
        StepRecord::new(StepDefinition {
            image: image(),
            argv,
            env: env.clone(),
            workdir: "/build",
            user: "1000:1000",
            network: Network::None,
            limits,
            inputs,
        })
    }

    fn base_record() -> StepRecord {
        let (argv, env, limits, inputs) = base();
        record_of(&argv, &env, &limits, &inputs)
    }

    #[test]
    fn every_field_of_the_record_changes_the_action_key() {
        let base = base_record();
        let key = base.action_key();
        let changes: Vec<RecordChange> = vec![
            (
                "image",
                Box::new(|r| r.image = format!("sha256:{}", "cd".repeat(32)).parse().unwrap()),
            ),
            ("argv", Box::new(|r| r.argv.push("-j2".to_string()))),
            (
                "env value",
                Box::new(|r| {
                    r.env.insert("CFLAGS".into(), "-O3".into());
                }),
            ),
            (
                "env key",
                Box::new(|r| {
                    r.env.insert("NEW".into(), String::new());
                }),
            ),
            ("workdir", Box::new(|r| r.workdir = "/tmp".to_string())),
            ("user", Box::new(|r| r.user = "0:0".to_string())),
            ("network", Box::new(|r| r.network = Network::Fetch)),
            ("limits.timeout", Box::new(|r| r.limits.timeout_ms += 1000)),
            ("limits.memory", Box::new(|r| r.limits.memory_bytes += 1)),
            ("limits.pids", Box::new(|r| r.limits.pids += 1)),
            (
                "limits.cpus",
                Box::new(|r| r.limits.nano_cpus = Some(1_500_000_000)),
            ),
            ("limits.output", Box::new(|r| r.limits.output_bytes += 1)),
            ("limits.scratch", Box::new(|r| r.limits.scratch_bytes += 1)),
            ("/dev/shm size", Box::new(|r| r.limits.shm_bytes += 1)),
            (
                "an input's tree",
                Box::new(|r| {
                    if let MountRecord::Input { tree: t, .. } = &mut r.mounts[1] {
                        *t = tree("03")
                    }
                }),
            ),
            (
                "an input's name",
                Box::new(|r| {
                    if let MountRecord::Input { target, .. } = &mut r.mounts[1] {
                        *target = "/inputs/other".into()
                    }
                }),
            ),
            (
                "scratch options",
                Box::new(|r| {
                    if let Some(MountRecord::Scratch { options, .. }) = r.mounts.last_mut() {
                        *options = "nosuid,nodev,noexec,mode=1777"
                    }
                }),
            ),
            (
                "read-only root",
                Box::new(|r| r.policy.read_only_root = false),
            ),
            (
                "capabilities dropped",
                Box::new(|r| r.policy.cap_drop.clear()),
            ),
            (
                "capabilities added",
                Box::new(|r| r.policy.cap_add.push("SYS_ADMIN")),
            ),
            (
                "no-new-privileges",
                Box::new(|r| r.policy.no_new_privileges = false),
            ),
            ("seccomp", Box::new(|r| r.policy.seccomp = "unconfined")),
            ("hostname", Box::new(|r| r.policy.hostname = None)),
            (
                "input modes",
                Box::new(|r| r.policy.input_file_modes = "files 0444 or 0555"),
            ),
            ("input mtime", Box::new(|r| r.policy.input_mtime = 1)),
            ("format", Box::new(|r| r.format = "sealroom-step-record-v0")),
        ];
        for (field, change) in changes {
            let mut changed = base.clone();
            change(&mut changed);
            assert_ne!(
                changed, base,
                "{field}: the change did not change the record"
            );
            assert_ne!(
                changed.action_key(),
                key,
                "{field} is not in the action key"
            );
        }
    }

    #[test]
    fn each_limit_of_the_spec_reaches_the_record() {
        let (argv, env, limits, inputs) = base();
        let key = record_of(&argv, &env, &limits, &inputs).action_key();
        let changes: [LimitChange; 6] = [
            ("timeout", |l| l.timeout += Duration::from_secs(1)),
            ("memory", |l| l.memory = ByteSize(l.memory.0 + 1)),
            ("pids", |l| l.pids += 1),
            ("cpus", |l| l.cpus = Some(0.5)),
            ("output", |l| l.output = ByteSize(l.output.0 + 1)),
            ("scratch", |l| l.scratch = ByteSize(l.scratch.0 + 1)),
        ];
        for (name, change) in changes {
            let mut changed = limits;
            change(&mut changed);
            assert_ne!(
                record_of(&argv, &env, &changed, &inputs).action_key(),
                key,
                "limits.{name}"
            );
        }
    }

    #[test]
    fn the_order_inputs_and_variables_are_given_in_does_not_matter() {
        let (argv, env, limits, mut inputs) = base();
        let first = record_of(&argv, &env, &limits, &inputs);
        inputs.reverse();
        let mut reversed_env = BTreeMap::new();
        for (key, value) in env.iter().rev() {
            reversed_env.insert(key.clone(), value.clone());
        }
        let second = record_of(&argv, &reversed_env, &limits, &inputs);
        assert_eq!(first.canonical_bytes(), second.canonical_bytes());
        assert_eq!(first.action_key(), second.action_key());
    }

    #[test]
    fn the_canonical_bytes_and_the_golden_key_of_a_fixed_record() {
        let record = base_record();
        let text = String::from_utf8(record.canonical_bytes()).unwrap();
        let ab = "ab".repeat(32);
        let (t1, t2) = ("01".repeat(32), "02".repeat(32));
        assert_eq!(
            text,
            format!(
                concat!(
                    r#"{{"format":"sealroom-step-record-v1","image":"sha256:{ab}","argv":["sh","-c","make"],"#,
                    r#""env":{{"CFLAGS":"-O2","SOURCE_DATE_EPOCH":"0"}},"workdir":"/build","user":"1000:1000","network":"none","#,
                    r#""limits":{{"timeout_ms":7200000,"memory_bytes":8589934592,"pids":4096,"nano_cpus":null,"output_bytes":17179869184,"scratch_bytes":8589934592,"shm_bytes":67108864}},"#,
                    r#""mounts":[{{"kind":"scratch","target":"/build","size_bytes":8589934592,"options":"nosuid,nodev,mode=1777"}},"#,
                    r#"{{"kind":"input","target":"/inputs/dep","tree":"sha256:{t2}"}},{{"kind":"input","target":"/inputs/src","tree":"sha256:{t1}"}},"#,
                    r#"{{"kind":"output","target":"/out"}},{{"kind":"scratch","target":"/tmp","size_bytes":8589934592,"options":"nosuid,nodev,mode=1777"}}],"#,
                    r#""policy":{{"read_only_root":true,"cap_drop":["ALL"],"cap_add":[],"no_new_privileges":true,"seccomp":"engine-default","#,
                    r#""hostname":"sealroom","input_file_modes":"files 0644 or 0755, directories 0755","input_mtime":315532800}}}}"#
                ),
                ab = ab,
                t1 = t1,
                t2 = t2
            )
        );
        // A change of the encoding is a deliberate break: update docs/store.md with this key.
        assert_eq!(
            record.action_key().to_string(),
            "sha256:98013b78930c50609e0aa61a391f1d4bf013a43553791bb6b6c300303f7af7cc"
        );
    }
}
