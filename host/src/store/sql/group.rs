//! Group commit, as both backends do it: every write is a `Job` on a queue; a
//! writer takes all jobs queued at that moment (at most `MAX_GROUP`), runs each in
//! its own savepoint inside ONE transaction, commits once, and only then answers
//! each job. Under load, writes that arrive during a commit form the next group, so
//! durability costs one flush per group instead of one per write. How a writer
//! takes jobs and holds its connection is the backend's (`sqlite::writer`,
//! `postgres::writer`); what a job is and how a group's callers are answered is
//! here.

use anyhow::{anyhow, Context, Result};
use tokio::sync::oneshot;

use super::writes::{Write, Written};
use crate::store::Unavailable;

/// The most jobs one commit covers; bounds the latency a single group adds.
pub const MAX_GROUP: usize = 512;

pub struct Job {
    pub write: Write,
    /// Answered once the group's commit is known; dropped unanswered only if the
    /// writer itself failed, which the caller reports as a failed write.
    pub reply: oneshot::Sender<Result<Written>>,
}

/// Hands `write` to a writer with `send` (false when the writer has stopped) and
/// waits until the group it joined was committed.
pub async fn submit(write: Write, send: impl FnOnce(Job) -> bool) -> Result<Written> {
    let (reply, answer) = oneshot::channel();
    if !send(Job { write, reply }) {
        return Err(anyhow!("the event store's writer has stopped")).context(Unavailable);
    }
    answer
        .await
        .map_err(|_| anyhow!("the event store could not run the write (see the log)"))?
}

/// Answers each job of a committed (or failed) group: a job whose own write
/// failed gets its error (its savepoint was rolled back alone); the others get
/// their result if the commit succeeded, else the commit's error. `outcomes` are
/// in the jobs' order; a job without one was never run.
pub fn answer(group: Vec<Job>, outcomes: Vec<Result<Written>>, commit: Result<(), String>) {
    let mut outcomes = outcomes.into_iter();
    for job in group {
        let result = match (outcomes.next(), &commit) {
            (Some(Err(error)), _) => Err(error),
            (Some(Ok(written)), Ok(())) => Ok(written),
            (_, Err(error)) => Err(anyhow!("committing to the event store: {error}")),
            (None, Ok(())) => Err(anyhow!("the event store's writer skipped a write")),
        };
        let _ = job.reply.send(result);
    }
}
