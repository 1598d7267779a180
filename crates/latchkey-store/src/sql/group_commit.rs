//! Group commit: SQLite has one writer, so second-factor attempts that arrive together
//! share it. One task takes every attempt waiting (up to [`MAX_BATCH`]), decides them
//! in order in one transaction, commits once and answers each. It never waits for more
//! to arrive: attempts that come while a batch commits form the next batch, so a lone
//! attempt costs what it did alone and a crowd shares its commits. If any attempt of a
//! batch fails (a user deleted meanwhile) or the commit does, the whole transaction is
//! rolled back and each attempt is decided again in a transaction of its own, so one
//! failure is answered to its own caller and the others go on. (Failures are rare, so
//! this costs less than a savepoint around every attempt: two statements each.)

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::{attempts, audit};
use crate::{AttemptOutcome, AuditEvent, SecondFactorAttempt, StoreError, StoreResult};

/// The most attempts one transaction decides.
pub const MAX_BATCH: usize = 64;
/// Attempts waiting beyond this make their callers wait to be queued.
const QUEUE_LENGTH: usize = 1024;

type Decided = StoreResult<(AttemptOutcome, Vec<AuditEvent>)>;

struct Job {
    attempt: SecondFactorAttempt,
    answer: oneshot::Sender<Decided>,
}

/// The way into the writer task; cloned with the store, and the task ends with the
/// last clone.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the writer task on the current Tokio runtime.
    pub(super) fn start(pool: AnyPool) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE_LENGTH);
        tokio::spawn(write(pool, queue));
        Self { jobs }
    }

    pub(super) async fn decide(&self, attempt: SecondFactorAttempt) -> Decided {
        let (answer, answered) = oneshot::channel();
        self.jobs.send(Job { attempt, answer }).await.map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable(sqlx::Error::Protocol("the group-commit writer has stopped".into()))
}

async fn write(pool: AnyPool, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        commit(&pool, std::mem::take(&mut batch)).await;
    }
}

async fn commit(pool: &AnyPool, jobs: Vec<Job>) {
    if jobs.len() > 1 {
        match decide_together(pool, &jobs).await {
            Ok(decided) => {
                for (job, decided) in jobs.into_iter().zip(decided) {
                    // A caller that stopped waiting has nothing to be told.
                    let _ = job.answer.send(Ok(decided));
                }
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "a shared transaction failed; deciding its attempts one by one")
            }
        }
    }
    for job in jobs {
        let _ = job.answer.send(attempts::decide_alone(pool, &job.attempt).await);
    }
}

/// Every attempt of `jobs` in one transaction, or none if one fails.
async fn decide_together(
    pool: &AnyPool,
    jobs: &[Job],
) -> StoreResult<Vec<(AttemptOutcome, Vec<AuditEvent>)>> {
    let mut tx = pool.begin().await?;
    let mut decided = Vec::with_capacity(jobs.len());
    for job in jobs {
        decided.push(attempts::decide_in(&mut tx, &job.attempt).await?);
    }
    audit::insert_all(&mut tx, decided.iter().flat_map(|(_, events)| events)).await?;
    tx.commit().await?;
    Ok(decided)
}
