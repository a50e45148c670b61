//! How the daemons log: to stderr, in colour only on a terminal (and never with `NO_COLOR`
//! set), as text or as one JSON object per line for log shippers (`--log-format json`). The
//! level can change while running (the node agent follows BGPConfiguration
//! `logSeverityScreen`).

use std::io::IsTerminal;
use std::sync::Arc;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

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

/// Sets the level while running.
pub type SetLevel = Arc<dyn Fn(LevelFilter) + Send + Sync>;

/// Installs the process's subscriber; returns what changes its level.
pub fn init(level: LevelFilter, format: LogFormat, with_target: bool) -> SetLevel {
    let (filter, handle) = tracing_subscriber::reload::Layer::new(level);
    let registry = tracing_subscriber::registry().with(filter);
    let layer =
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(with_target);
    match format {
        LogFormat::Text => registry.with(layer.with_ansi(colour())).init(),
        LogFormat::Json => registry.with(layer.json().flatten_event(true).with_ansi(false)).init(),
    }
    Arc::new(move |level| {
        let _ = handle.reload(level);
    })
}
