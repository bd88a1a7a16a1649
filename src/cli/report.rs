//! How the library's progress and warnings reach a person: `tracing` events, printed on stderr
//! the way the rest of sealroom's output reads. An info event is a line of progress as it is
//! (`step compile: running`); a warning starts with `warning: `; anything else (debug output with
//! `SEALROOM_LOG=debug`) with its level. Fields other than the message follow it as `key=value`.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event format of the `sealroom` binary.
pub struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    N: for<'writer> FormatFields<'writer> + 'static,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        match *event.metadata().level() {
            Level::INFO => {}
            Level::WARN => write!(writer, "warning: ")?,
            Level::ERROR => write!(writer, "error: ")?,
            level => write!(writer, "{}: ", level.as_str().to_lowercase())?,
        }
        context
            .field_format()
            .format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Installs the subscriber: sealroom's own progress and everyone's warnings by default,
/// `SEALROOM_LOG` (an `EnvFilter`, e.g. `debug`) to choose otherwise.
pub fn init() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SEALROOM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sealroom=info")),
        )
        .with_writer(std::io::stderr)
        .event_format(Plain)
        .init();
}
