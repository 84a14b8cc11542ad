//! Group commit (`sql::group`) on PostgreSQL: writers take the queued writes as
//! groups, each committing its groups on a connection of its own. Under load,
//! writes that arrive during a commit form the next group, so durability costs one
//! WAL flush per group instead of one per request.
//!
//! The writers run on a thread of their own (`spawn`), as SQLite's writer does. A
//! group is a chain of round trips (find, insert; begin and commit around them
//! when the group holds other writes too, `commit_together`); on the runtime
//! that serves requests, each answer from PostgreSQL waited behind whatever plugin
//! calls were queued on the worker, so the chain, and with it every webhook's
//! latency, grew with the load, and the groups with it stayed small.
//!
//! A writer never dies on an error: a failed connection or commit answers its
//! group's jobs with the error (nothing of them was acknowledged) and the writer
//! takes the next group on a fresh connection from the pool.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use deadpool_postgres::{Object, Pool, Transaction};
use futures_util::FutureExt;
use tokio::sync::{mpsc, Mutex};
use tokio_postgres::error::SqlState;

use super::batched_ingest;
use super::conn::PgConn;
use super::database_url::DatabaseUrl;
use super::pool::{self, GROUP_TIMEOUT};
use crate::store::sql::group::{self, GroupFailure, Job, MAX_GROUP};
use crate::store::sql::writes::{self, Write, Written};
use crate::store::IngestRecord;

/// How often a write that lost a deadlock (or a serialization conflict) with a
/// concurrent transaction is run again, in a transaction of its own, before it
/// fails (see `commit_group`).
const CONFLICT_RETRIES: u32 = 5;

/// The receiving end of the (bounded) job queue, shared by the writer tasks:
/// whichever is idle takes the next group.
pub type Queue = Arc<Mutex<mpsc::Receiver<Job>>>;

/// Starts `writers` writers (at least one) on a thread of their own, each with a
/// connection to `url` of its own that this thread drives, and returns the
/// queue's sending end, which holds at most `write_queue` jobs. The thread ends
/// once every sender is gone (the store was dropped).
pub fn spawn(url: &DatabaseUrl, writers: usize, write_queue: usize) -> Result<mpsc::Sender<Job>> {
    let writers = writers.max(1);
    let pool = pool::pool(url, writers)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the event store's writer runtime")?;
    let (jobs, queue) = mpsc::channel(write_queue.max(1));
    let queue: Queue = Arc::new(Mutex::new(queue));
    std::thread::Builder::new()
        .name("hookhost-pg-writer".into())
        .spawn(move || {
            let writers = (0..writers).map(|_| run(pool.clone(), queue.clone()));
            runtime.block_on(futures_util::future::join_all(writers));
        })
        .context("starting the event store's writer thread")?;
    Ok(jobs)
}

/// One writer: runs until every sender of the queue is gone.
async fn run(pool: Pool, queue: Queue) {
    while let Some(group) = next_group(&queue).await {
        // A panic in a write must not end the writer (and with it every later
        // write): the group's jobs are dropped unanswered, so their callers report
        // a failed write, and the writer goes on.
        let ran = std::panic::AssertUnwindSafe(run_group(&pool, group))
            .catch_unwind()
            .await;
        if ran.is_err() {
            tracing::error!("event store: a write panicked; its group was rolled back");
        }
    }
}

async fn next_group(queue: &Queue) -> Option<Vec<Job>> {
    let mut queue = queue.lock().await;
    loop {
        let first = queue.recv().await?;
        let mut group = Vec::new();
        group.extend(group::still_wanted(&first).then_some(first));
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.extend(group::still_wanted(&job).then_some(job)),
                Err(_) => break,
            }
        }
        if !group.is_empty() {
            return Some(group);
        }
    }
}

async fn run_group(pool: &Pool, group: Vec<Job>) {
    let mut client = match pool.get().await {
        Ok(client) => client,
        Err(error) => {
            let message = format!("connecting to PostgreSQL: {error}");
            tracing::error!("event store: {message}");
            let failure = GroupFailure {
                message,
                try_later: true,
            };
            group::answer(group, Vec::new(), Err(failure));
            return;
        }
    };
    let mut finished = Vec::with_capacity(group.len());
    let committed = tokio::time::timeout(
        GROUP_TIMEOUT,
        commit_group(&mut client, &group, &mut finished),
    )
    .await;
    let commit = match committed {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(GroupFailure {
            try_later: is_try_later(&error),
            message: format!("{error:#}"),
        }),
        Err(_) => {
            // The connection may be in the middle of anything; closing it makes the
            // server roll back a transaction not yet committed. A group's insert
            // without a transaction (`commit_ingests_alone`) that the server had
            // already taken whole may still commit: its callers are told to try
            // later, and their retries find the events stored, as duplicates.
            drop(Object::take(client));
            Err(GroupFailure {
                message: format!(
                    "the transaction took longer than {GROUP_TIMEOUT:?} and was abandoned"
                ),
                try_later: true,
            })
        }
    };
    if let Err(failure) = &commit {
        tracing::error!(
            "event store: committing a group of writes: {}",
            failure.message
        );
    }
    group::answer(group, finished, commit);
}

/// Runs every job of `group` in one transaction (see `commit_together`), pushing
/// each job's outcome to `finished` in order, and commits. A job that fails leaves
/// the other jobs' writes intact.
///
/// A deadlock cannot be settled inside the group: rolling back one savepoint keeps
/// the locks the group's earlier writes took, which are what the other transaction
/// waits for, so the same write would deadlock again. The whole group is rolled
/// back instead and its jobs run again one transaction each, which holds nothing
/// while it waits to be retried.
async fn commit_group(
    client: &mut Object,
    group: &[Job],
    finished: &mut Vec<Result<Written>>,
) -> Result<()> {
    match commit_together(client, group, finished).await {
        Err(error) if lost_a_conflict(&error) => {
            tracing::debug!("event store: a group lost a deadlock; writing its jobs one by one");
            finished.clear();
            for job in group {
                finished.push(commit_alone(client, &job.write).await?);
            }
            Ok(())
        }
        other => other,
    }
}

/// Runs the group in one transaction and commits: its webhook writes together
/// (`batched_ingest`), every other write in its own savepoint. When the webhook
/// writes fail together for a reason of their own (not a lost connection or a
/// deadlock, which fail or retry the group as a whole), the group is rolled back
/// and run again a savepoint per write, so that the failing write fails alone.
async fn commit_together(
    client: &mut Object,
    group: &[Job],
    finished: &mut Vec<Result<Written>>,
) -> Result<()> {
    let ingests: Vec<&IngestRecord> = group
        .iter()
        .filter_map(|job| match &job.write {
            Write::Ingest(record) => Some(record),
            _ => None,
        })
        .collect();
    if ingests.is_empty() {
        return commit_in_savepoints(client, group, finished).await;
    }
    if ingests.len() == group.len() {
        return commit_ingests_alone(client, group, &ingests, finished).await;
    }
    let mut tx = client
        .transaction()
        .await
        .context("beginning a transaction")?;
    let mut persisted = match batched_ingest::persist(&tx, &ingests).await {
        Ok(persisted) => persisted.into_iter(),
        Err(error) => {
            tx.rollback().await.context("rolling back a group")?;
            return write_one_by_one(client, group, finished, error).await;
        }
    };
    let mut outcomes = Vec::with_capacity(group.len());
    for job in group {
        let outcome = match &job.write {
            Write::Ingest(_) => match persisted.next() {
                Some(outcome) => outcome.map(Written::Persisted),
                None => Err(anyhow!("the group's webhook writes lost an answer")),
            },
            write => match run_in_savepoint(&mut tx, write).await {
                Ok(outcome) => outcome,
                Err(error) => {
                    tx.rollback().await.context("rolling back a group")?;
                    return Err(error);
                }
            },
        };
        outcomes.push(outcome);
    }
    finished.extend(outcomes);
    tx.commit().await.context("committing")
}

/// A group of webhook writes only, in two round trips without BEGIN and COMMIT:
/// the insert statement commits by itself (`batched_ingest`). It falls back as
/// `commit_together` does when the statement fails.
async fn commit_ingests_alone(
    client: &mut Object,
    group: &[Job],
    ingests: &[&IngestRecord],
    finished: &mut Vec<Result<Written>>,
) -> Result<()> {
    match batched_ingest::persist(&*client, ingests).await {
        Ok(persisted) => {
            finished.extend(
                persisted
                    .into_iter()
                    .map(|outcome| outcome.map(Written::Persisted)),
            );
            Ok(())
        }
        Err(error) => write_one_by_one(client, group, finished, error).await,
    }
}

/// After the group's webhook writes failed together (`error`, nothing of them
/// stored): a lost connection or a lost deadlock fails or retries the group as a
/// whole (`commit_group`); any other failure is one write's own, so the group is
/// written again a savepoint per write, and that write fails alone.
async fn write_one_by_one(
    client: &mut Object,
    group: &[Job],
    finished: &mut Vec<Result<Written>>,
    error: anyhow::Error,
) -> Result<()> {
    if is_try_later(&error) || lost_a_conflict(&error) {
        return Err(error);
    }
    tracing::debug!(
        "event store: a group's webhook writes failed together ({error:#}); \
         writing each in its own savepoint"
    );
    commit_in_savepoints(client, group, finished).await
}

async fn commit_in_savepoints(
    client: &mut Object,
    group: &[Job],
    finished: &mut Vec<Result<Written>>,
) -> Result<()> {
    let mut tx = client
        .transaction()
        .await
        .context("beginning a transaction")?;
    for job in group {
        match run_in_savepoint(&mut tx, &job.write).await {
            Ok(outcome) => finished.push(outcome),
            Err(error) => {
                tx.rollback().await.context("rolling back a group")?;
                return Err(error);
            }
        }
    }
    tx.commit().await.context("committing")
}

/// The job's own outcome, or (outer `Err`) a failure of the transaction itself,
/// including a lost deadlock, which fails the whole group.
async fn run_in_savepoint(tx: &mut Transaction<'_>, write: &Write) -> Result<Result<Written>> {
    let savepoint = tx.savepoint("write").await.context("opening a savepoint")?;
    match writes::apply(&PgConn(&savepoint), write).await {
        Ok(written) => {
            savepoint.commit().await.context("releasing a savepoint")?;
            Ok(Ok(written))
        }
        Err(error) => {
            savepoint
                .rollback()
                .await
                .context("rolling back a savepoint")?;
            if lost_a_conflict(&error) {
                return Err(error);
            }
            Ok(Err(error))
        }
    }
}

/// One job in a transaction of its own, run again (after a short random pause)
/// when it loses a deadlock or a serialization conflict: once rolled back it holds
/// no lock, so the other transaction finishes and the retry sees what it wrote.
async fn commit_alone(client: &mut Object, write: &Write) -> Result<Result<Written>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let tx = client
            .transaction()
            .await
            .context("beginning a transaction")?;
        let outcome = match writes::apply(&PgConn(&tx), write).await {
            Ok(written) => tx
                .commit()
                .await
                .map(|()| written)
                .map_err(anyhow::Error::from),
            Err(error) => {
                tx.rollback().await.context("rolling back a write")?;
                Err(error)
            }
        };
        match outcome {
            Err(error) if attempt <= CONFLICT_RETRIES && lost_a_conflict(&error) => {
                tokio::time::sleep(Duration::from_millis(fastrand::u64(1..20))).await;
            }
            outcome => return Ok(outcome),
        }
    }
}

/// Whether `error` means "try later": the connection was lost or broke (an I/O
/// error, a closed socket), or the server said it cannot take the
/// work now (class 08 connection exception, class 53 insufficient resources such
/// as a full disk, 57P01-57P03 shutting down or starting, a statement timeout).
pub fn is_try_later(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        let Some(error) = cause.downcast_ref::<tokio_postgres::Error>() else {
            return false;
        };
        let Some(code) = error.code() else {
            return error.is_closed()
                || std::error::Error::source(error)
                    .is_some_and(|source| source.is::<std::io::Error>());
        };
        let code = code.code();
        code.starts_with("08")
            || code.starts_with("53")
            || matches!(code, "57P01" | "57P02" | "57P03" | "57014")
    })
}

fn lost_a_conflict(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(|error| error.code())
            .is_some_and(|code| {
                *code == SqlState::T_R_DEADLOCK_DETECTED
                    || *code == SqlState::T_R_SERIALIZATION_FAILURE
            })
    })
}
