//! The SQLite store's one writer: a thread that owns the writing connection and
//! commits in groups (`sql::group`), running the shared core on each job with
//! `run_now` inside the job's own savepoint. One IMMEDIATE transaction per group
//! holds the whole database, so no write needs a row lock.

use anyhow::{anyhow, bail, Context, Result};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::conn::SqliteConn;
use super::try_later;
use crate::store::sql::conn::run_now;
use crate::store::sql::group::{self, GroupFailure, Job, MAX_GROUP};
use crate::store::sql::writes::{self, Written};

/// What the writer thread is asked to do.
pub enum Message {
    Write(Job),
    /// Checkpoint the WAL into the database file and stop taking writes.
    Close(oneshot::Sender<Result<()>>),
}

/// Whether the writer groups queued writes into one commit. `PerWrite` exists for
/// the benchmark that measures what grouping buys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    Grouped,
    PerWrite,
}

/// Starts the writer thread on `conn`; it runs until every sender is gone or it
/// is asked to close. The queue holds at most `write_queue` messages.
pub fn spawn(
    mut conn: Connection,
    commit: Commit,
    write_queue: usize,
) -> Result<mpsc::Sender<Message>> {
    let (jobs, mut queue) = mpsc::channel::<Message>(write_queue.max(1));
    std::thread::Builder::new()
        .name("event-store-writer".into())
        .spawn(move || {
            while let Some(first) = queue.blocking_recv() {
                let mut group = Vec::new();
                let mut close = None;
                match first {
                    Message::Write(job) => group.extend(group::still_wanted(&job).then_some(job)),
                    Message::Close(reply) => close = Some(reply),
                }
                while close.is_none() && commit == Commit::Grouped && group.len() < MAX_GROUP {
                    match queue.try_recv() {
                        Ok(Message::Write(job)) => {
                            group.extend(group::still_wanted(&job).then_some(job))
                        }
                        Ok(Message::Close(reply)) => close = Some(reply),
                        Err(_) => break,
                    }
                }
                if !group.is_empty() {
                    run_group(&mut conn, group);
                }
                if let Some(reply) = close {
                    // Writes sent after this are refused (their callers report a
                    // storage failure); the ones queued before were committed above.
                    queue.close();
                    let _ = reply.send(checkpoint(&conn));
                    return;
                }
            }
        })
        .context("starting the event store's writer thread")?;
    Ok(jobs)
}

fn run_group(conn: &mut Connection, group: Vec<Job>) {
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(error) => {
            // Nothing was written, and nothing is acknowledged: each caller
            // reports a storage failure (503 for a webhook; for every route when
            // the database is busy past the busy timeout or the disk failed).
            tracing::error!("event store: beginning a transaction: {error}");
            let failure = GroupFailure {
                try_later: try_later::is_try_later(&error),
                message: format!("beginning a transaction: {error}"),
            };
            group::answer(group, Vec::new(), Err(failure));
            return;
        }
    };
    let mut outcomes = Vec::with_capacity(group.len());
    for job in &group {
        outcomes.push(run_in_savepoint(&mut tx, job).map_err(try_later::mark));
    }
    // After a full disk or an I/O error SQLite may have rolled the whole
    // transaction back by itself; the commit then fails with a plain "no
    // transaction is active", which is still the disk's doing.
    let job_hit_the_disk = outcomes
        .iter()
        .any(|outcome| outcome.as_ref().is_err_and(crate::store::is_unavailable));
    let commit = tx.commit().map_err(|error| GroupFailure {
        try_later: job_hit_the_disk || try_later::is_try_later(&error),
        message: error.to_string(),
    });
    if let Err(failure) = &commit {
        tracing::error!("event store: commit failed: {}", failure.message);
    }
    group::answer(group, outcomes, commit);
}

/// Runs one job in its own savepoint, released when it succeeded and rolled back
/// (leaving the group's other writes intact) when it failed or panicked.
fn run_in_savepoint(tx: &mut Transaction<'_>, job: &Job) -> Result<Written> {
    let savepoint = tx.savepoint().context("opening a savepoint")?;
    // A panicking write must not take the writer thread (and with it every later
    // write) down.
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_now(writes::apply(&SqliteConn(&savepoint), &job.write))
    }));
    let outcome = match ran {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(error)) => Err(error),
        Err(_) => {
            tracing::error!("event store: a write panicked; it was rolled back");
            Err(anyhow!("the write panicked (see the log)"))
        }
    };
    if outcome.is_ok() {
        savepoint.commit().context("releasing a savepoint")?;
    }
    // A failed job's savepoint rolls back when dropped.
    outcome
}

/// Copies every committed page from the WAL into the database file and empties the
/// WAL, so that the database file alone holds everything (for a backup taken after
/// shutdown, or a tool that ignores the WAL).
fn checkpoint(conn: &Connection) -> Result<()> {
    let (busy, _, _): (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .context("checkpointing the event store's write-ahead log")?;
    if busy != 0 {
        bail!("checkpointing the event store's write-ahead log: a reader kept it busy");
    }
    Ok(())
}
