//! Group commit. redb runs one write transaction at a time and every commit is fsynced, so
//! writes issued one transaction each queue behind one another's flushes. Here one thread
//! owns all write transactions: it takes every write waiting at that moment (up to
//! [`MAX_BATCH`]), applies them in arrival order inside one transaction and commits once, so
//! one fsync makes the whole group durable. Each caller is answered only after that commit.
//!
//! A write that fails (a uniqueness conflict, a changed version, a missing item) may already
//! have touched tables, so the group's transaction is aborted and every write of the group is
//! replayed in its own transaction, in the same order: each caller gets exactly the result it
//! would have had alone, and nothing of a failed write is ever committed.

use butterfly_core::error::StoreResultExt;
use butterfly_core::{Error, Result};
use redb::{Database, WriteTransaction};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// The most writes committed together.
pub const MAX_BATCH: usize = 64;

/// One write: applied to a transaction (possibly more than once, see the module docs), then
/// told whether the transaction it was last applied to committed.
trait Job: Send {
    fn apply(&mut self, tx: &WriteTransaction) -> Result<()>;
    fn finish(self: Box<Self>, outcome: Result<()>);
}

struct Typed<T, F> {
    f: F,
    out: Option<T>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T: Send, F: FnMut(&WriteTransaction) -> Result<T> + Send> Job for Typed<T, F> {
    fn apply(&mut self, tx: &WriteTransaction) -> Result<()> {
        let f = &mut self.f;
        let v =
            catch_unwind(AssertUnwindSafe(|| f(tx))).unwrap_or_else(|_| Err(Error::store("a store write panicked")))?;
        self.out = Some(v);
        Ok(())
    }

    fn finish(self: Box<Self>, outcome: Result<()>) {
        let Typed { out, reply, .. } = *self;
        let result = outcome.and_then(|()| out.ok_or_else(|| Error::store("write had no result")));
        // The caller may have gone away (a cancelled request); the write stands either way.
        let _ = reply.send(result);
    }
}

/// The writer thread and the queue in front of it. Dropping the last handle drains the queue,
/// stops the thread and waits for it, so the database file is closed when the store is.
pub struct Writer {
    queue: Mutex<Option<mpsc::Sender<Box<dyn Job>>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    pub fn start(db: Arc<Database>) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
        let thread = std::thread::Builder::new().name("redb-writer".into()).spawn(move || run(&db, &rx))?;
        Ok(Writer { queue: Mutex::new(Some(tx)), thread: Mutex::new(Some(thread)) })
    }

    /// Queues `f` and waits until the transaction it ran in is durable.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnMut(&WriteTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Typed { f, out: None, reply });
        {
            let queue = self.queue.lock().map_err(|_| Error::store("store writer lock poisoned"))?;
            let sent = queue.as_ref().map(|q| q.send(job));
            if !matches!(sent, Some(Ok(()))) {
                return Err(Error::store("the store is closed"));
            }
        }
        answer.await.map_err(|_| Error::store("the store writer stopped"))?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Ok(mut q) = self.queue.lock() {
            q.take();
        }
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

fn run(db: &Database, rx: &mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if batch.len() > 1 {
            if let Outcome::Committed(outcome) = apply_and_commit(db, &mut batch) {
                for job in batch {
                    job.finish(outcome.clone());
                }
                continue;
            }
        }
        for mut job in batch {
            let outcome = match apply_and_commit(db, std::slice::from_mut(&mut job)) {
                Outcome::Committed(outcome) => outcome,
                Outcome::JobFailed(e) => Err(e),
            };
            job.finish(outcome);
        }
    }
}

enum Outcome {
    /// Every job applied; the commit's result.
    Committed(Result<()>),
    /// A job failed; the transaction was aborted.
    JobFailed(Error),
}

/// Applies the jobs in order in one transaction and commits it.
fn apply_and_commit(db: &Database, jobs: &mut [Box<dyn Job>]) -> Outcome {
    let tx = match db.begin_write() {
        Ok(tx) => tx,
        Err(e) => return Outcome::Committed(Err(e).or_store_error()),
    };
    for job in jobs.iter_mut() {
        if let Err(e) = job.apply(&tx) {
            let _ = tx.abort();
            return Outcome::JobFailed(e);
        }
    }
    Outcome::Committed(tx.commit().or_store_error())
}
