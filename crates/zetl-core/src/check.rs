//! The verdicts of `zetl check`, shared by every source and target.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// Worth a look, but nothing stops replication.
    Warn,
    Fail,
}

impl From<bool> for Outcome {
    fn from(ok: bool) -> Self {
        if ok {
            Outcome::Pass
        } else {
            Outcome::Fail
        }
    }
}

/// One line of `zetl check`: whether it passed, what was checked, and the detail or fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub outcome: Outcome,
    pub what: String,
    pub detail: String,
}

impl Verdict {
    pub fn new(outcome: impl Into<Outcome>, what: String, detail: String) -> Self {
        Verdict { outcome: outcome.into(), what, detail }
    }

    pub fn pass(what: String, detail: String) -> Self {
        Self::new(Outcome::Pass, what, detail)
    }

    pub fn warn(what: String, detail: String) -> Self {
        Self::new(Outcome::Warn, what, detail)
    }

    pub fn fail(what: String, detail: String) -> Self {
        Self::new(Outcome::Fail, what, detail)
    }
}
