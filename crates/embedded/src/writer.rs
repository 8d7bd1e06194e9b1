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
//!
//! A write may be *volatile* ([`Writer::write_volatile`]: the SCIM rate counters, which a crash
//! may lose without harm: a tenant's minute starts again). A group of volatile writes only is
//! committed without an fsync (redb's `Durability::None`) and answered at once; the next
//! durable commit makes it durable, and so does the writer itself when a volatile commit has
//! waited [`VOLATILE_AT_MOST`] (the next group is committed durably, or an empty one if none
//! comes) and when the store closes. So a crash loses at most that long of rate counts, and
//! never a durable write.

use butterfly_core::error::StoreResultExt;
use butterfly_core::{Error, Result};
use redb::{Database, Durability, WriteTransaction};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The most writes committed together.
pub const MAX_BATCH: usize = 64;

/// The longest a volatile commit waits before a durable commit covers it.
pub const VOLATILE_AT_MOST: Duration = Duration::from_secs(1);

/// One write: applied to a transaction (possibly more than once, see the module docs), then
/// told whether the transaction it was last applied to committed.
trait Job: Send {
    fn apply(&mut self, tx: &WriteTransaction) -> Result<()>;
    fn finish(self: Box<Self>, outcome: Result<()>);
    /// Whether the caller may be answered only once the write is on disk.
    fn durable(&self) -> bool;
}

struct Typed<T, F> {
    f: F,
    out: Option<T>,
    reply: oneshot::Sender<Result<T>>,
    durable: bool,
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

    fn durable(&self) -> bool {
        self.durable
    }
}

/// How many commits were made with and without an fsync (for tests and the benchmarks).
#[derive(Debug, Default)]
pub struct CommitCounts {
    pub durable: AtomicU64,
    pub volatile: AtomicU64,
    /// Transactions that could not be begun or committed.
    pub failed: AtomicU64,
}

/// The writer thread and the queue in front of it. Dropping the last handle drains the queue,
/// stops the thread and waits for it, so the database file is closed when the store is.
pub struct Writer {
    queue: Mutex<Option<mpsc::Sender<Box<dyn Job>>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    counts: Arc<CommitCounts>,
}

impl Writer {
    pub fn start(db: Arc<Database>) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
        let counts = Arc::new(CommitCounts::default());
        let c = counts.clone();
        let thread = std::thread::Builder::new().name("redb-writer".into()).spawn(move || run(&db, &rx, &c))?;
        Ok(Writer { queue: Mutex::new(Some(tx)), thread: Mutex::new(Some(thread)), counts })
    }

    /// The commits made so far.
    pub fn counts(&self) -> &CommitCounts {
        &self.counts
    }

    /// Queues `f` and waits until the transaction it ran in is durable.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnMut(&WriteTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.queue_job(f, true).await
    }

    /// Queues `f` and waits until the transaction it ran in is committed, perhaps not yet
    /// durable (see the module docs: for what a crash may lose).
    pub async fn write_volatile<T: Send + 'static>(
        &self,
        f: impl FnMut(&WriteTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.queue_job(f, false).await
    }

    async fn queue_job<T: Send + 'static>(
        &self,
        f: impl FnMut(&WriteTransaction) -> Result<T> + Send + 'static,
        durable: bool,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Typed { f, out: None, reply, durable });
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

fn run(db: &Database, rx: &mpsc::Receiver<Box<dyn Job>>, counts: &CommitCounts) {
    // When the oldest commit not yet covered by a durable one was made.
    let mut volatile_since: Option<Instant> = None;
    loop {
        let first = match volatile_since {
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
            Some(since) => match rx.recv_timeout(VOLATILE_AT_MOST.saturating_sub(since.elapsed())) {
                Ok(job) => job,
                Err(e) => {
                    // Quiet for the whole bound (or closing): an empty durable commit.
                    let mut none: [Box<dyn Job>; 0] = [];
                    volatile_since = match apply_and_commit(db, &mut none, true, counts) {
                        Outcome::Committed(Ok(())) => None,
                        // The store is failing (a full disk): try again after another bound,
                        // not at once (that would spin).
                        _ => Some(Instant::now()),
                    };
                    if matches!(e, mpsc::RecvTimeoutError::Disconnected) {
                        return;
                    }
                    continue;
                }
            },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Volatile writes alone skip the fsync, unless an earlier one has waited long enough.
        let overdue = volatile_since.is_some_and(|t| t.elapsed() >= VOLATILE_AT_MOST);
        let durable = overdue || batch.iter().any(|j| j.durable());
        let mut note = |committed: bool, durable: bool| {
            if committed {
                match (durable, volatile_since) {
                    (true, _) => volatile_since = None,
                    (false, None) => volatile_since = Some(Instant::now()),
                    (false, Some(_)) => {}
                }
            }
        };
        if batch.len() > 1 {
            if let Outcome::Committed(outcome) = apply_and_commit(db, &mut batch, durable, counts) {
                note(outcome.is_ok(), durable);
                for job in batch {
                    job.finish(outcome.clone());
                }
                continue;
            }
        }
        for mut job in batch {
            let durable = overdue || job.durable();
            let outcome = match apply_and_commit(db, std::slice::from_mut(&mut job), durable, counts) {
                Outcome::Committed(outcome) => {
                    note(outcome.is_ok(), durable);
                    outcome
                }
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

/// Applies the jobs in order in one transaction and commits it, with an fsync if `durable`.
fn apply_and_commit(db: &Database, jobs: &mut [Box<dyn Job>], durable: bool, counts: &CommitCounts) -> Outcome {
    let mut tx = match db.begin_write() {
        Ok(tx) => tx,
        Err(e) => {
            counts.failed.fetch_add(1, Ordering::Relaxed);
            return Outcome::Committed(Err(e).or_store_error());
        }
    };
    // If redb refuses to skip the fsync, the commit is simply durable.
    let durable = durable || tx.set_durability(Durability::None).is_err();
    for job in jobs.iter_mut() {
        if let Err(e) = job.apply(&tx) {
            let _ = tx.abort();
            return Outcome::JobFailed(e);
        }
    }
    let outcome = tx.commit().or_store_error();
    let counter = match (&outcome, durable) {
        (Err(_), _) => &counts.failed,
        (Ok(()), true) => &counts.durable,
        (Ok(()), false) => &counts.volatile,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    Outcome::Committed(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{ReadableDatabase, TableDefinition};

    const T: TableDefinition<&str, u64> = TableDefinition::new("t");

    fn put(k: &'static str, v: u64) -> impl FnMut(&WriteTransaction) -> Result<()> + Send + 'static {
        move |tx| {
            tx.open_table(T).or_store_error()?.insert(k, v).or_store_error()?;
            Ok(())
        }
    }

    fn get(db: &Database, k: &str) -> Option<u64> {
        db.begin_read().unwrap().open_table(T).ok()?.get(k).unwrap().map(|v| v.value())
    }

    fn counts(w: &Writer) -> (u64, u64) {
        (w.counts().durable.load(Ordering::Relaxed), w.counts().volatile.load(Ordering::Relaxed))
    }

    fn open(dir: &tempfile::TempDir) -> Arc<Database> {
        Arc::new(Database::create(dir.path().join("w.redb")).unwrap())
    }

    /// A writer on a fresh file that has made one volatile write of `a` = `v`.
    async fn after_one_volatile_write(dir: &tempfile::TempDir, v: u64) -> (Arc<Database>, Writer) {
        let db = open(dir);
        let w = Writer::start(db.clone()).unwrap();
        w.write_volatile(put("a", v)).await.unwrap();
        (db, w)
    }

    #[tokio::test]
    async fn volatile_writes_skip_the_fsync_and_are_seen_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (db, w) = after_one_volatile_write(&dir, 1).await;
        assert_eq!(counts(&w), (0, 1));
        assert_eq!(get(&db, "a"), Some(1), "a volatile commit is visible to readers");
        w.write(put("b", 2)).await.unwrap();
        assert_eq!(counts(&w), (1, 1), "a durable write waits for its fsync");
    }

    #[tokio::test]
    async fn a_quiet_writer_makes_volatile_commits_durable_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, w) = after_one_volatile_write(&dir, 1).await;
        tokio::time::sleep(VOLATILE_AT_MOST + Duration::from_millis(500)).await;
        assert_eq!(counts(&w), (1, 1), "an empty durable commit covers the volatile one");
        // Nothing volatile is waiting: no further commits while quiet.
        tokio::time::sleep(VOLATILE_AT_MOST + Duration::from_millis(200)).await;
        assert_eq!(counts(&w), (1, 1));
    }

    #[tokio::test]
    async fn steady_volatile_writes_are_made_durable_at_least_once_per_bound() {
        let dir = tempfile::tempdir().unwrap();
        let w = Writer::start(open(&dir)).unwrap();
        let start = Instant::now();
        let mut n = 0;
        while start.elapsed() < VOLATILE_AT_MOST * 2 + Duration::from_millis(300) && n < 10_000 {
            w.write_volatile(put("a", n)).await.unwrap();
            n += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (durable, volatile) = counts(&w);
        assert!(durable >= 2, "durable {durable}, volatile {volatile}");
        assert!(volatile > durable * 10, "most commits skip the fsync: durable {durable}, volatile {volatile}");
    }

    /// Storage that starts failing every write and flush when told to (a full disk).
    #[derive(Debug)]
    struct Failing {
        inner: redb::backends::InMemoryBackend,
        fail: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Failing {
        fn check(&self) -> std::io::Result<()> {
            if self.fail.load(Ordering::Relaxed) {
                return Err(std::io::Error::other("no space left on device"));
            }
            Ok(())
        }
    }

    impl redb::StorageBackend for Failing {
        fn len(&self) -> std::io::Result<u64> {
            self.inner.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
            self.inner.read(offset, out)
        }
        fn set_len(&self, len: u64) -> std::io::Result<()> {
            self.check()?;
            self.inner.set_len(len)
        }
        fn sync_data(&self) -> std::io::Result<()> {
            self.check()?;
            self.inner.sync_data()
        }
        fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
            self.check()?;
            self.inner.write(offset, data)
        }
    }

    /// A store that fails while a volatile commit waits for its durable one: the writer tries
    /// again once per bound instead of spinning, and writes are answered with the error.
    #[tokio::test]
    async fn a_failing_store_does_not_make_the_writer_spin() {
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let backend = Failing { inner: redb::backends::InMemoryBackend::new(), fail: fail.clone() };
        let w = Writer::start(Arc::new(redb::Builder::new().create_with_backend(backend).unwrap())).unwrap();
        w.write_volatile(put("a", 1)).await.unwrap();
        fail.store(true, Ordering::Relaxed);
        assert!(w.write(put("b", 2)).await.is_err());
        tokio::time::sleep(VOLATILE_AT_MOST * 2 + Duration::from_millis(500)).await;
        let failed = w.counts().failed.load(Ordering::Relaxed);
        assert!((1..=5).contains(&failed), "failed commits: {failed}");
        assert!(w.write_volatile(put("c", 3)).await.is_err());
    }

    /// A writer never quiet long enough for the timeout (a job is always waiting): the first
    /// group after the bound is committed durably all the same.
    #[tokio::test]
    async fn a_busy_writer_makes_the_first_group_after_the_bound_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, w) = after_one_volatile_write(&dir, 1).await;
        let w = Arc::new(w);
        // A volatile write that holds the writer past the bound, and one queued behind it.
        let slow = {
            let w = w.clone();
            tokio::spawn(async move {
                w.write_volatile(|tx| {
                    std::thread::sleep(VOLATILE_AT_MOST + Duration::from_millis(200));
                    put("b", 2)(tx)
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        w.write_volatile(put("c", 3)).await.unwrap();
        slow.await.unwrap().unwrap();
        assert_eq!(counts(&w), (1, 2), "the write queued past the bound is committed durably");
    }

    #[tokio::test]
    async fn volatile_writes_survive_a_graceful_close() {
        let dir = tempfile::tempdir().unwrap();
        let (db, w) = after_one_volatile_write(&dir, 7).await;
        let c = w.counts.clone();
        drop(w);
        assert_eq!(c.durable.load(Ordering::Relaxed), 1, "the closing writer commits durably");
        drop(db);
        let db = open(&dir);
        assert_eq!(get(&db, "a"), Some(7));
    }
}
