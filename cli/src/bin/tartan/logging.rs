//! How the daemons log: to stderr, in colour only on a terminal (and never with `NO_COLOR`
//! set), as text or as one JSON object per line for log shippers (`--log-format json`).

use std::io::IsTerminal;

use tracing_subscriber::filter::LevelFilter;

/// `--log-format`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, message and fields.
    Json,
}

/// Whether to colour: stderr is a terminal and `NO_COLOR` is unset (no-color.org).
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Installs the process's subscriber.
pub fn init(level: LevelFilter, format: LogFormat, with_target: bool) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(with_target);
    match format {
        LogFormat::Text => builder.with_ansi(colour()).init(),
        LogFormat::Json => builder.json().flatten_event(true).with_ansi(false).init(),
    }
}
