//! Resource limits of a step: the model, its defaults, and how the TOML values are read.
//!
//! `[sandbox.limits]` sets defaults for every step; a step's own `limits` table overrides them
//! key by key. Durations are whole seconds (an integer) or a string with units (`"500ms"`,
//! `"90s"`, `"10m"`, `"2h"`, `"1h30m"`); sizes are bytes (an integer) or a string with a unit
//! (`"512MiB"`, `"2GiB"`, `"100MB"`: `KiB`/`MiB`/`GiB`/`TiB` are powers of 1024, `KB`/`MB`/`GB`/`TB`
//! of 1000).

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_spanned::Spanned;

/// The limits a step runs under. Every field has a value: the defaults are finite, so that a
/// step nobody reviewed cannot hold the machine forever.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Wall-clock time from the container's start to its exit.
    pub timeout: Duration,
    /// Memory (and memory + swap): the step is killed when it goes over.
    pub memory: ByteSize,
    /// Processes and threads inside the container at once.
    pub pids: u64,
    /// CPUs the step may use (fractions allowed); `None` is all of them.
    pub cpus: Option<f64>,
    /// The total size of the files the step leaves in `/out`.
    pub output: ByteSize,
    /// The size of each of the step's scratch file systems, `/tmp` and `/build` (tmpfs: their
    /// pages also count against `memory`).
    pub scratch: ByteSize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(2 * 60 * 60),
            memory: ByteSize(8 * 1024 * 1024 * 1024),
            pids: 4096,
            cpus: None,
            output: ByteSize(16 * 1024 * 1024 * 1024),
            scratch: ByteSize(8 * 1024 * 1024 * 1024),
        }
    }
}

/// A number of bytes; shown with a binary unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        for (unit, size) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{} bytes", self.0)
    }
}

/// Shows a duration the way a spec would write it.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if !millis.is_multiple_of(1000) {
        return format!("{millis}ms");
    }
    let seconds = duration.as_secs();
    match seconds {
        s if s % 3600 == 0 && s > 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 && s > 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The raw `limits` table, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub timeout: Option<Spanned<toml::Value>>,
    pub memory: Option<Spanned<toml::Value>>,
    pub pids: Option<Spanned<toml::Value>>,
    pub cpus: Option<Spanned<toml::Value>>,
    pub output: Option<Spanned<toml::Value>>,
    pub scratch: Option<Spanned<toml::Value>>,
}

/// What is wrong with one value, and where; the validator adds the file location.
pub struct LimitError {
    pub span: std::ops::Range<usize>,
    pub message: String,
    pub hint: Option<String>,
}

impl RawLimits {
    /// `base` with every key this table sets replaced.
    pub fn apply(&self, base: Limits) -> Result<Limits, LimitError> {
        let mut limits = base;
        if let Some(value) = &self.timeout {
            limits.timeout = parse_duration(value)?;
        }
        if let Some(value) = &self.memory {
            limits.memory = parse_size(value, "memory")?;
            if limits.memory.0 < 6 * 1024 * 1024 {
                return Err(LimitError {
                    span: value.span(),
                    message: format!(
                        "expected at least 6MiB for `memory` (the engine's minimum), found {}",
                        limits.memory
                    ),
                    hint: None,
                });
            }
        }
        if let Some(value) = &self.pids {
            limits.pids = match value.get_ref() {
                toml::Value::Integer(n) if *n > 0 => *n as u64,
                other => return Err(expected(value, "a positive integer for `pids`", other)),
            };
        }
        if let Some(value) = &self.cpus {
            limits.cpus = Some(match value.get_ref() {
                toml::Value::Integer(n) if *n > 0 => *n as f64,
                toml::Value::Float(x) if *x > 0.0 && x.is_finite() => *x,
                other => return Err(expected(value, "a positive number for `cpus`", other)),
            });
        }
        if let Some(value) = &self.output {
            limits.output = parse_size(value, "output")?;
        }
        if let Some(value) = &self.scratch {
            limits.scratch = parse_size(value, "scratch")?;
            if limits.scratch.0 < 1024 * 1024 {
                return Err(LimitError {
                    span: value.span(),
                    message: format!(
                        "expected at least 1MiB for `scratch` (the size of `/tmp` and `/build`), found {}",
                        limits.scratch
                    ),
                    hint: None,
                });
            }
        }
        Ok(limits)
    }
}

fn expected(value: &Spanned<toml::Value>, what: &str, found: &toml::Value) -> LimitError {
    LimitError {
        span: value.span(),
        message: format!("expected {what}, found {found}"),
        hint: None,
    }
}

fn parse_duration(value: &Spanned<toml::Value>) -> Result<Duration, LimitError> {
    const WHAT: &str =
        "a duration for `timeout`: whole seconds, or a string like \"90s\", \"10m\", \"1h30m\"";
    let duration = match value.get_ref() {
        toml::Value::Integer(seconds) if *seconds > 0 => Some(Duration::from_secs(*seconds as u64)),
        toml::Value::String(text) => duration_from_text(text),
        _ => None,
    };
    match duration {
        Some(duration) if !duration.is_zero() => Ok(duration),
        _ => Err(expected(value, WHAT, value.get_ref())),
    }
}

/// `"1h30m"`, `"90s"`, `"500ms"`, `"2h"`: numbers each followed by `h`, `m`, `s` or `ms`.
fn duration_from_text(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.checked_mul(60)?),
            "h" => Duration::from_secs(number.checked_mul(3600)?),
            _ => return None,
        };
        total = total.checked_add(part)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

fn parse_size(value: &Spanned<toml::Value>, key: &str) -> Result<ByteSize, LimitError> {
    let size = match value.get_ref() {
        toml::Value::Integer(bytes) if *bytes > 0 => Some(*bytes as u64),
        toml::Value::String(text) => size_from_text(text),
        _ => None,
    };
    match size {
        Some(bytes) if bytes > 0 => Ok(ByteSize(bytes)),
        _ => Err(expected(
            value,
            &format!("a size for `{key}`: bytes, or a string like \"512MiB\", \"2GiB\""),
            value.get_ref(),
        )),
    }
}

fn size_from_text(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..digits].parse().ok()?;
    let multiplier: u64 = match text[digits..].trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => return None,
    };
    number.checked_mul(multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_the_way_people_write_them() {
        assert_eq!(duration_from_text("90s"), Some(Duration::from_secs(90)));
        assert_eq!(duration_from_text("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(
            duration_from_text("500ms"),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            duration_from_text("10"),
            None,
            "a bare number in a string has no unit"
        );
        assert_eq!(duration_from_text("5 minutes"), None);
        assert_eq!(format_duration(Duration::from_secs(5400)), "90m");
        assert_eq!(format_duration(Duration::from_secs(5)), "5s");
    }

    #[test]
    fn sizes_distinguish_binary_and_decimal_units() {
        assert_eq!(size_from_text("512MiB"), Some(512 << 20));
        assert_eq!(size_from_text("2GB"), Some(2_000_000_000));
        assert_eq!(size_from_text("12"), Some(12));
        assert_eq!(size_from_text("2 gigs"), None);
        assert_eq!(ByteSize(512 << 20).to_string(), "512MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000 bytes");
    }

    #[test]
    fn a_table_overrides_only_the_keys_it_sets() {
        let raw: RawLimits = toml::from_str("timeout = \"5s\"\npids = 64").unwrap();
        let limits = raw.apply(Limits::default()).ok().unwrap();
        assert_eq!(limits.timeout, Duration::from_secs(5));
        assert_eq!(limits.pids, 64);
        assert_eq!(limits.memory, Limits::default().memory);
    }
}
