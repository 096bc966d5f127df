use crate::{tty, LogFormat};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal (and never with NO_COLOR): log files stay plain text.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi);
    match format {
        // On a terminal, records are written above the live progress line (tty.rs).
        LogFormat::Text if tty::terminal() => {
            tty::activate();
            builder.with_writer(tty::TtyWriter).with_target(false).init()
        }
        LogFormat::Text => builder.with_writer(std::io::stderr).with_target(false).init(),
        LogFormat::Json => builder.with_writer(std::io::stderr).json().flatten_event(true).init(),
    }
}
