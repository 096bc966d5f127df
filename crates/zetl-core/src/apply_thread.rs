//! The writer's second thread: the target applies (and commits) one batch there while the
//! writer gathers the next, so that a backlog costs the longer of gathering and applying,
//! not their sum. The target travels with each job and comes back with its outcome: only one
//! thread holds it at a time, and the writer waits for it before anything else it asks of
//! the target, which keeps every target call in the order the writer made it.

use crate::batch::Batch;
use crate::error::PipelineError;
use crate::event::Checkpoint;
use crate::target::Target;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What the target does with one batch.
pub(crate) struct Job<T: Target> {
    pub target: T,
    pub batch: Batch,
    /// Open the target transaction first (the writer opens it lazily: see `Writer::target`).
    pub begin: bool,
    /// Commit with this checkpoint after applying.
    pub commit: Option<Checkpoint>,
}

/// A job's outcome, with the target and the batch (to be reused) handed back.
pub(crate) struct Done<T: Target> {
    pub target: T,
    pub batch: Batch,
    pub result: Result<(), T::Error>,
    /// How long the target took: the apply latency reported.
    pub took: Duration,
}

impl<T: Target> Job<T> {
    pub fn run(self) -> Done<T> {
        let Job { mut target, batch, begin, commit } = self;
        let started = Instant::now();
        let result = (|| {
            if begin {
                target.begin()?;
            }
            if !batch.is_empty() {
                target.apply(&batch)?;
            }
            commit.map_or(Ok(()), |checkpoint| target.commit(&checkpoint))
        })();
        Done { target, batch, result, took: started.elapsed() }
    }
}

/// The writer's end of the apply thread. Dropping it ends the thread once its job is done.
pub(crate) struct ApplyThread<T: Target> {
    jobs: mpsc::Sender<Job<T>>,
    done: mpsc::Receiver<Done<T>>,
}

impl<T: Target> ApplyThread<T> {
    /// Starts the thread within `scope` (the writer's run).
    pub fn start<'scope>(scope: &'scope std::thread::Scope<'scope, '_>) -> Result<ApplyThread<T>, PipelineError>
    where
        T: 'scope,
    {
        let (jobs, job_rx) = mpsc::channel::<Job<T>>();
        let (done_tx, done) = mpsc::channel();
        std::thread::Builder::new()
            .name("zetl-apply".into())
            .spawn_scoped(scope, move || {
                for job in job_rx {
                    if done_tx.send(job.run()).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| PipelineError::Protocol(format!("cannot start the apply thread: {e}")))?;
        Ok(ApplyThread { jobs, done })
    }

    /// Hands `job` to the thread; returns it if the thread is gone.
    pub fn send(&self, job: Job<T>) -> Option<Job<T>> {
        self.jobs.send(job).err().map(|mpsc::SendError(job)| job)
    }

    /// The outcome of the job sent last: waited for, or (`wait` false) `None` while it runs.
    pub fn outcome(&self, wait: bool) -> Result<Option<Done<T>>, PipelineError> {
        let stopped = || PipelineError::Protocol("the apply thread stopped before its batch was written".into());
        if wait {
            return self.done.recv().map(Some).map_err(|_| stopped());
        }
        match self.done.try_recv() {
            Ok(done) => Ok(Some(done)),
            Err(mpsc::TryRecvError::Empty) => Ok(None),
            Err(mpsc::TryRecvError::Disconnected) => Err(stopped()),
        }
    }
}
