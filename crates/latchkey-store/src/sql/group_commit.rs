//! Group commit: SQLite has one writer, so second-factor attempts that arrive together
//! share it. One task takes every attempt waiting (up to [`MAX_BATCH`]), decides them
//! in order in one transaction, each inside its own savepoint, commits once and
//! answers each. It never waits for more to arrive: attempts that come while a batch
//! commits form the next batch, so a lone attempt costs what it did alone and a crowd
//! shares its commits. One attempt failing (a user deleted meanwhile) is rolled back
//! to its savepoint and answered with its error; the others go on. If the commit
//! itself fails, every attempt of the batch is answered with that failure, and none
//! has taken effect.

use sqlx::{AnyPool, Connection};
use tokio::sync::{mpsc, oneshot};

use super::attempts;
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
    let mut pending = Vec::with_capacity(jobs.len());
    let mut jobs = jobs.into_iter();
    let committed: StoreResult<()> = async {
        let mut tx = pool.begin().await?;
        for Job { attempt, answer } in jobs.by_ref() {
            let mut savepoint = tx.begin().await?;
            let decided = attempts::decide_in(&mut savepoint, attempt).await;
            match decided {
                Ok(_) => savepoint.commit().await?,
                Err(_) => savepoint.rollback().await?,
            }
            pending.push((answer, decided));
        }
        tx.commit().await?;
        Ok(())
    }
    .await;
    match committed {
        Ok(()) => {
            for (answer, decided) in pending {
                // A caller that stopped waiting has nothing to be told.
                let _ = answer.send(decided);
            }
        }
        Err(error) => {
            tracing::error!(%error, "a group commit failed");
            let unanswered = jobs.map(|job| job.answer);
            for answer in pending.into_iter().map(|(answer, _)| answer).chain(unanswered) {
                let _ = answer.send(Err(shared(&error)));
            }
        }
    }
}

/// The batch's failure, told to each of its attempts (errors do not clone).
fn shared(error: &StoreError) -> StoreError {
    let text = sqlx::Error::Protocol(format!("the shared transaction failed: {error}"));
    match error {
        StoreError::Unavailable(_) => StoreError::Unavailable(text),
        _ => StoreError::Database(text),
    }
}
