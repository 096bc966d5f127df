//! The verdicts of `zetl check`, shared by every source and target.

/// One line of `zetl check`: whether it passed, what was checked, and the detail or fix.
pub type Verdict = (Outcome, String, String);

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
