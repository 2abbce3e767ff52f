//! Where the daemon's log goes: journald's native protocol with structured fields when the
//! daemon runs under systemd (`journalctl -u mape MAPE_EVENT=culprit_named` finds the
//! events), plain text on stderr otherwise, or JSON lines when asked for.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// How the log is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSink {
    /// journald's native protocol (systemd.journal-fields(7)): each field its own journal
    /// field, upper-cased (`mape_event` → `MAPE_EVENT`), no prefix.
    Journald,
    /// Plain text on stderr with timestamps.
    Text,
    /// One JSON object per line on stderr.
    Json,
}

impl LogSink {
    /// The sink for this process: `json` when asked for; journald when systemd connected
    /// stderr to the journal (`JOURNAL_STREAM`, systemd.exec(5)) and its socket answers.
    pub fn detect(json: bool) -> LogSink {
        if json {
            LogSink::Json
        } else if std::env::var_os("JOURNAL_STREAM").is_some() {
            LogSink::Journald
        } else {
            LogSink::Text
        }
    }
}

/// Installs the global logger for `sink`, filtered by `MAPE_LOG` (default `info`). If
/// journald's socket cannot be opened, logs go to stderr as text instead (and say so).
pub fn init(sink: LogSink) {
    let filter = || EnvFilter::try_from_env("MAPE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let text = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr);
    match sink {
        LogSink::Json => text.json().init(),
        // Colour only for a person at a terminal, never into a file or a pipe.
        LogSink::Text => text.with_ansi(std::io::stderr().is_terminal()).init(),
        LogSink::Journald => match tracing_journald::layer() {
            Ok(layer) => tracing_subscriber::registry()
                .with(filter())
                .with(
                    layer
                        .with_field_prefix(None)
                        .with_syslog_identifier("mape".into()),
                )
                .init(),
            Err(e) => {
                // Still under journald (its stream adds the timestamps).
                text.without_time().with_ansi(false).init();
                tracing::warn!(error = %e, "journald socket unavailable; logging to stderr");
            }
        },
    }
}
