//! A run's failure, classified where the source's or target's own error was still at hand:
//! transient (the run loop pauses and resumes from the target's checkpoint) or definite (the
//! integration stops with the message). The loop asks this, never the message or the type.

use zetl_core::Retry;

pub struct Failure {
    pub error: anyhow::Error,
    pub transient: bool,
}

impl Failure {
    /// A source's or target's error, as transient as it says it is.
    pub fn of<E: std::error::Error + Retry + Send + Sync + 'static>(e: E) -> Self {
        Failure { transient: e.is_transient(), error: anyhow::Error::new(e) }
    }

    pub fn context(self, what: &'static str) -> Self {
        Failure { error: self.error.context(what), ..self }
    }
}

/// Anything else (configuration, a panicked thread, a refused start) is definite.
impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure { error, transient: false }
    }
}
