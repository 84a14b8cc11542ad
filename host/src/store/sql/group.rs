//! Group commit, as both backends do it: every write is a `Job` on a queue; a
//! writer takes all jobs queued at that moment (at most `MAX_GROUP`), runs each in
//! its own savepoint inside ONE transaction, commits once, and only then answers
//! each job. Under load, writes that arrive during a commit form the next group, so
//! durability costs one flush per group instead of one per write. How a writer
//! takes jobs and holds its connection is the backend's (`sqlite::writer`,
//! `postgres::writer`); what a job is and how a group's callers are answered is
//! here.
//!
//! The queue is bounded (`write_queue`, `DEFAULT_WRITE_QUEUE`): while the disk or the database
//! stalls, writes beyond it are refused at once as `Unavailable` (503 with
//! `Retry-After`) instead of piling up in memory, and a job whose caller has
//! gone (a client that gave up) is dropped unrun when a writer takes it.

use anyhow::{anyhow, Context, Result};
use tokio::sync::oneshot;

use super::writes::{Write, Written};
use crate::store::Unavailable;

/// The most jobs one commit covers; bounds the latency a single group adds.
pub const MAX_GROUP: usize = 512;

/// The most jobs waiting for a writer unless the config says (`write_queue`).
/// Two groups' worth: enough that a burst never meets a full queue while the
/// store keeps up, small enough that a stalled store holds a bounded number of
/// requests (each up to a body limit).
pub const DEFAULT_WRITE_QUEUE: usize = 2 * MAX_GROUP;

/// Why a job could not be queued.
pub enum Refused {
    /// The queue is full (`write_queue`): the store is not keeping up.
    Full,
    /// The writer has stopped (the store was closed, or its thread is gone).
    Stopped,
}

/// Why a whole group failed: the message for its callers, and whether the
/// failure means "try later" (the database unreachable, busy, out of disk), which
/// callers see as `Unavailable`.
pub struct GroupFailure {
    pub message: String,
    pub try_later: bool,
}

pub struct Job {
    pub write: Write,
    /// Answered once the group's commit is known; dropped unanswered only if the
    /// writer itself failed, which the caller reports as a failed write.
    pub reply: oneshot::Sender<Result<Written>>,
}

/// Hands `write` to a writer with `send`, which must not wait for room, and waits
/// until the group it joined was committed.
pub async fn submit(
    write: Write,
    send: impl FnOnce(Job) -> Result<(), Refused>,
) -> Result<Written> {
    let (reply, answer) = oneshot::channel();
    match send(Job { write, reply }) {
        Ok(()) => {}
        Err(Refused::Full) => {
            return Err(anyhow!(
                "the event store's write queue is full (config `write_queue`)"
            ))
            .context(Unavailable)
        }
        Err(Refused::Stopped) => {
            return Err(anyhow!("the event store's writer has stopped")).context(Unavailable)
        }
    }
    answer
        .await
        .map_err(|_| anyhow!("the event store could not run the write (see the log)"))?
}

/// Whether anyone still waits for `job`'s answer. A job nobody waits for was
/// never acknowledged, so leaving it unrun is the same as a failed write, and it
/// costs the stalled store nothing when it recovers.
pub fn still_wanted(job: &Job) -> bool {
    !job.reply.is_closed()
}

/// Answers each job of a committed (or failed) group: a job whose own write
/// failed gets its error (its savepoint was rolled back alone); the others get
/// their result if the commit succeeded, else the commit's error. `outcomes` are
/// in the jobs' order; a job without one was never run.
pub fn answer(group: Vec<Job>, outcomes: Vec<Result<Written>>, commit: Result<(), GroupFailure>) {
    let mut outcomes = outcomes.into_iter();
    for job in group {
        let result = match (outcomes.next(), &commit) {
            (Some(Err(error)), _) => Err(error),
            (Some(Ok(written)), Ok(())) => Ok(written),
            (_, Err(failure)) => {
                let error = anyhow!("committing to the event store: {}", failure.message);
                Err(if failure.try_later {
                    error.context(Unavailable)
                } else {
                    error
                })
            }
            (None, Ok(())) => Err(anyhow!("the event store's writer skipped a write")),
        };
        let _ = job.reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> (Job, oneshot::Receiver<Result<Written>>) {
        let (reply, answer) = oneshot::channel();
        let write = Write::ReleaseLeases {
            node: "node".into(),
        };
        (Job { write, reply }, answer)
    }

    /// The answers of `outcomes` under `commit`, as each caller sees them.
    fn answers(
        outcomes: Vec<Result<Written>>,
        commit: Result<(), GroupFailure>,
    ) -> Vec<Result<()>> {
        let (jobs, receivers): (Vec<_>, Vec<_>) = (0..3).map(|_| job()).unzip();
        answer(jobs, outcomes, commit);
        receivers
            .into_iter()
            .map(|mut answer| {
                answer
                    .try_recv()
                    .expect("every job is answered")
                    .map(|_| ())
            })
            .collect()
    }

    // A failed savepoint release fails its own job (the writers turn it into that
    // job's error or the group's), and a failed commit fails every job, even those
    // whose own write went well: nothing is acknowledged that is not durable.
    #[test]
    fn no_job_is_answered_ok_unless_its_write_and_the_commit_both_succeeded() {
        let outcomes = || vec![Ok(Written::Done), Err(anyhow!("releasing a savepoint"))];
        let committed = answers(outcomes(), Ok(()));
        assert!(committed[0].is_ok());
        assert!(format!("{:#}", committed[1].as_ref().unwrap_err()).contains("savepoint"));
        assert!(committed[2].is_err(), "a job that was never run is not ok");

        let failure = GroupFailure {
            message: "disk I/O error".into(),
            try_later: true,
        };
        let failed = answers(outcomes(), Err(failure));
        for answer in &failed {
            assert!(answer.is_err(), "{failed:?}");
        }
        assert!(format!("{:#}", failed[0].as_ref().unwrap_err()).contains("disk I/O error"));
    }
}
