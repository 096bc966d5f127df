//! The one error type of the harness.

use std::fmt;
use std::io;

/// Why starting, stopping or talking to a throwaway server failed.
///
/// Every variant carries enough text to act on: the command line that
/// failed with its output, or the tail of the server's log file.
#[derive(Debug)]
#[non_exhaustive]
pub enum HarnessError {
    /// An I/O operation of the harness itself (creating a directory,
    /// writing a config file, spawning a program) failed.
    Io {
        /// What the harness was doing.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A program ran but exited unsuccessfully.
    Command {
        /// The command line, as it would be typed in a shell.
        command: String,
        /// How it ended ("exit status: 1", "killed after 60s", ...).
        status: String,
        /// Its standard output (possibly truncated).
        stdout: String,
        /// Its standard error (possibly truncated).
        stderr: String,
    },
    /// A server did not become ready (or did not stop) in time, or exited
    /// during startup.
    Startup {
        /// What was being waited for.
        what: String,
        /// The last lines of the server's log file.
        log_tail: String,
    },
    /// A required program or OS user is missing.
    NotFound {
        /// What is missing.
        what: String,
        /// How to get it.
        hint: String,
    },
    /// Anything else (bad arguments, unexpected directory contents, ...).
    Other(String),
}

impl HarnessError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        HarnessError::Io { context: context.into(), source }
    }

    /// The captured standard error of a failed command, if this is one.
    pub fn stderr(&self) -> Option<&str> {
        match self {
            HarnessError::Command { stderr, .. } => Some(stderr),
            _ => None,
        }
    }
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HarnessError::Io { context, source } => write!(f, "{context}: {source}"),
            HarnessError::Command { command, status, stdout, stderr } => {
                write!(f, "command failed ({status}): {command}")?;
                if !stderr.trim().is_empty() {
                    write!(f, "\n--- stderr ---\n{}", stderr.trim_end())?;
                }
                if !stdout.trim().is_empty() {
                    write!(f, "\n--- stdout ---\n{}", stdout.trim_end())?;
                }
                Ok(())
            }
            HarnessError::Startup { what, log_tail } => {
                write!(f, "{what}")?;
                if !log_tail.trim().is_empty() {
                    write!(f, "\n--- server log (tail) ---\n{}", log_tail.trim_end())?;
                }
                Ok(())
            }
            HarnessError::NotFound { what, hint } => write!(f, "{what} not found: {hint}"),
            HarnessError::Other(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for HarnessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HarnessError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
