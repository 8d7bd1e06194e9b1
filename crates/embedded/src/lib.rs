//! The embedded store: one redb file, durable across restarts (every commit is fsynced, but the
//! rate counters': see `writer.rs`),
//! implementing every store port. It follows the item layout of `docs/storage.md`: the same
//! uniqueness claims, version conditions and key order as the DynamoDB table, so both
//! adapters pass one contract suite.
//!
//! `keys` lays out the tables, `codec` encodes the values; each port is implemented in its
//! own module, and `writer` commits the writes.

mod audit;
mod codec;
mod keys;
mod logins;
mod once;
mod quota;
mod secrets;
mod sessions;
mod setup_links;
mod sweep;
mod tenants;
mod tokens;
mod users;
mod writer;

use butterfly_core::error::StoreResultExt;
use butterfly_core::Result;
use keys::{init_tables, META, TENANTS};
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use writer::Writer;

pub use butterfly_core::user::LAST_SUPER_ADMIN;

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the data directory {0} is in use by another butterfly process (stop the local stack first, or use another --data-dir)")]
    InUse(PathBuf),
    #[error("cannot create the data directory {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("cannot open the store at {path}: {message}")]
    Other { path: PathBuf, message: String },
}

/// The embedded store. Cheap to clone. Reads run concurrently (redb's MVCC); writes go
/// through one writer thread that commits the writes waiting at the same moment together
/// (group commit, see `writer.rs`).
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    writer: Arc<Writer>,
}

/// Makes the data directory `0700` and the data file (created empty if new) `0600`.
#[cfg(unix)]
fn restrict(dir: &Path, file: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    if !file.exists() {
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(file)?;
    }
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict(_dir: &Path, _file: &Path) -> std::io::Result<()> {
    Ok(())
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir` (file `butterfly.redb`). The directory is created
    /// `0700` and the file `0600`: it holds the tenants' OIDC client secrets.
    pub fn open(dir: &Path) -> std::result::Result<Self, OpenError> {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::Dir { path: dir.to_path_buf(), source })?;
        let path = dir.join("butterfly.redb");
        restrict(dir, &path).map_err(|source| OpenError::Dir { path: dir.to_path_buf(), source })?;
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => OpenError::InUse(dir.to_path_buf()),
            other => OpenError::Other { path: path.clone(), message: other.to_string() },
        })?;
        let db = Arc::new(db);
        init_tables(&db).map_err(|e| OpenError::Other { path: path.clone(), message: e.to_string() })?;
        let writer = Writer::start(db.clone()).map_err(|e| OpenError::Other { path, message: e.to_string() })?;
        Ok(EmbeddedStore { db, writer: Arc::new(writer) })
    }

    /// Runs a write in the next group commit and waits until it is durable. `f` may run more
    /// than once (a failed write in its group makes every write of the group run again alone).
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnMut(&redb::WriteTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.writer.write(f).await
    }

    /// Runs a write whose loss in a crash does no harm (a rate counter) in the next group
    /// commit, without waiting for it to reach the disk (see `writer.rs` for the bound on what a
    /// crash may lose).
    async fn write_volatile<T: Send + 'static>(
        &self,
        f: impl FnMut(&redb::WriteTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.writer.write_volatile(f).await
    }

    /// How many commits the store has made with an fsync and without one (durable, volatile).
    pub fn commit_counts(&self) -> (u64, u64) {
        let c = self.writer.counts();
        (c.durable.load(std::sync::atomic::Ordering::Relaxed), c.volatile.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Runs `f` in one read transaction on the calling task: for point reads (a key or two: a
    /// few B-tree pages, nearly always in redb's cache), where handing the read to the blocking
    /// pool and back costs more than the read (the lookup profile in docs/performance.md).
    async fn read<T>(&self, f: impl FnOnce(&ReadTransaction) -> Result<T>) -> Result<T> {
        f(&self.db.begin_read().or_store_error()?)
    }

    /// Runs `f` in one read transaction off the async executor: for scans (a page of users, the
    /// audit trail, every tenant), whose time grows with what they read.
    async fn scan<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db.begin_read().or_store_error()?)).await.or_store_error()?
    }

    /// A 32-byte server secret stored under `name`, created at random on first use
    /// (the local stack's cursor-signing key).
    pub async fn server_secret(&self, name: &str) -> Result<Vec<u8>> {
        let name = name.to_string();
        self.write(move |tx| {
            let mut t = tx.open_table(META).or_store_error()?;
            let existing = t.get(name.as_str()).or_store_error()?.map(|v| v.value().to_vec());
            if let Some(s) = existing {
                return Ok(s);
            }
            let mut s = vec![0u8; 32];
            getrandom::fill(&mut s).or_store_error()?;
            t.insert(name.as_str(), s.as_slice()).or_store_error()?;
            Ok(s)
        })
        .await
    }

    /// Whether the store holds no tenant yet.
    pub async fn is_empty(&self) -> Result<bool> {
        self.read(|tx| tx.open_table(TENANTS).or_store_error()?.is_empty().or_store_error()).await
    }
}
