//! SQLite access: opening a library database, migrations, and the single writer thread.
//!
//! One thread (the [`Writer`]) owns the read-write connection; everything that writes sends it a
//! closure and waits for the answer, so writes are serialised and batched by construction.
//! Readers open their own connections ([`open_reader`]); WAL lets them run beside the writer.
//! A second thread with a connection of its own folds the WAL back into the database when it
//! grows (a passive checkpoint, beside the writer's next commits), so the writer does not stop to
//! copy pages; once the WAL is twice that size the writer copies what the thread has not, so the
//! WAL can start again from its beginning ([`Checkpoints`]).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use crossbeam_channel::{Sender, bounded};
use rusqlite::{Connection, OpenFlags};

use crate::crypt::LibraryKey;
use crate::{Error, Result};

/// Numbered migrations, applied in order. `PRAGMA user_version` holds how many have run.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_content.sql"),
    include_str!("../migrations/0003_organise.sql"),
    include_str!("../migrations/0004_watch.sql"),
    include_str!("../migrations/0005_volumes.sql"),
    include_str!("../migrations/0006_actions.sql"),
    include_str!("../migrations/0007_rescan_after.sql"),
    include_str!("../migrations/0008_departed.sql"),
    include_str!("../migrations/0009_exact_content.sql"),
    include_str!("../migrations/0010_job_outcomes.sql"),
    include_str!("../migrations/0011_sidecars.sql"),
    include_str!("../migrations/0012_orphan_content.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Marks the file as a Spacedrive library database (`PRAGMA application_id`), "SDLB".
const APPLICATION_ID: i64 = 0x5344_4c42;

/// Reads the schema version from the database file header without opening it through SQLite,
/// so a library written by a newer build can be refused without touching a byte of it.
/// Returns `None` when the file does not exist.
pub fn peek_schema_version(db: &Path) -> Result<Option<i64>> {
    let mut f = match std::fs::File::open(db) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(db, e)),
    };
    let mut header = [0u8; 100];
    match f.read_exact(&mut header) {
        Ok(()) => {}
        // A zero-length file is a database SQLite has not written yet.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return if f.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
                Ok(Some(0))
            } else {
                Err(corrupt(db, "the file is shorter than a SQLite header"))
            };
        }
        Err(e) => return Err(Error::io(db, e)),
    }
    if &header[..16] != b"SQLite format 3\0" {
        return Err(corrupt(db, "not a SQLite database"));
    }
    let user_version = i32::from_be_bytes([header[60], header[61], header[62], header[63]]);
    Ok(Some(i64::from(user_version)))
}

fn corrupt(db: &Path, reason: &str) -> Error {
    Error::Corrupt {
        path: db.to_path_buf(),
        reason: reason.to_owned(),
    }
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -32768;",
    )?;
    // The indexer's multi-row inserts alone are 21 statements (three tables, seven sizes each),
    // beside a dozen more; rusqlite's default of 16 would have them evict each other.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// A library's database file and, for an encrypted library, the key that opens it. Cheap to
/// clone; threads that open their own reader connections carry one.
#[derive(Clone, Debug)]
pub struct DbFile {
    pub path: PathBuf,
    key: Option<Arc<LibraryKey>>,
}

impl DbFile {
    pub fn new(path: PathBuf, key: Option<Arc<LibraryKey>>) -> DbFile {
        DbFile { path, key }
    }

    pub fn is_encrypted(&self) -> bool {
        self.key.is_some()
    }

    /// A connection of an already migrated file, keyed, waiting up to 10 s for a lock.
    fn open(&self, access: OpenFlags) -> Result<Connection> {
        let conn =
            Connection::open_with_flags(&self.path, access | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        apply_key(&conn, self.key.as_deref())?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(conn)
    }

    /// A read-write connection that only checkpoints (no migration, no settings but the key).
    fn checkpointer(&self) -> Result<Connection> {
        self.open(OpenFlags::SQLITE_OPEN_READ_WRITE)
    }

    /// A fresh read-only connection. Only call after the writer has migrated the file.
    pub fn reader(&self) -> Result<Connection> {
        let conn = self.open(OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.execute_batch("PRAGMA cache_size = -8192; PRAGMA temp_store = MEMORY;")?;
        Ok(conn)
    }

    /// Opens (creating if needed) the read-write connection and brings the schema up to date.
    /// Refuses, before writing anything, a database whose schema is newer than this build's.
    /// An encrypted database's header cannot be read without its key: its version is checked
    /// (read-only) right after the key is applied, before anything else.
    pub fn writer(&self, library_name: &str) -> Result<Connection> {
        let db = &self.path;
        if self.key.is_none()
            && let Some(found) = peek_schema_version(db)?
            && found > SCHEMA_VERSION
        {
            return Err(newer(library_name, found));
        }
        let mut conn = Connection::open(db).map_err(|e| damaged(db, e))?;
        let keyed = || -> Result<()> {
            apply_key(&conn, self.key.as_deref())?;
            let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if found > SCHEMA_VERSION {
                return Err(newer(library_name, found));
            }
            configure(&conn)
        };
        keyed().map_err(|e| match e {
            Error::Db(e) => damaged(db, e),
            other => other,
        })?;
        migrate(&mut conn, library_name).map_err(|e| match e {
            Error::Db(e) => damaged(db, e),
            other => other,
        })?;
        Ok(conn)
    }
}

/// Gives SQLCipher the raw key (nothing for a plain library). SQLCipher reads no page until the
/// first statement, so this never fails on a wrong key; the next read does.
pub fn apply_key(conn: &Connection, key: Option<&LibraryKey>) -> Result<()> {
    if let Some(key) = key {
        conn.execute_batch(&format!("PRAGMA key = {};", &*key.sqlcipher_pragma()))?;
    }
    Ok(())
}

fn newer(library_name: &str, found: i64) -> Error {
    Error::NewerVersion {
        name: library_name.to_owned(),
        found,
        supported: SCHEMA_VERSION,
    }
}

/// Opens (creating if needed) a plain library's read-write connection; see [`DbFile::writer`].
pub fn open_writer(db: &Path, library_name: &str) -> Result<Connection> {
    DbFile::new(db.to_path_buf(), None).writer(library_name)
}

fn damaged(db: &Path, e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) | Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
            corrupt(db, &e.to_string())
        }
        _ => Error::Db(e),
    }
}

fn migrate(conn: &mut Connection, library_name: &str) -> Result<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(newer(library_name, current));
    }
    if current == 0 {
        let app: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        if app != 0 && app != APPLICATION_ID || app == 0 && tables > 0 {
            return Err(Error::Corrupt {
                path: PathBuf::from(library_name),
                reason: "the database is not a Spacedrive library".into(),
            });
        }
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.commit()?;
    }
    Ok(())
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

enum Msg {
    Run(Job),
    Close(Sender<()>),
}

/// The row ids written in some tables, in commit order, for caches kept beside the database
/// (the search index follows `entries`): a cache remembers the [`ChangeLog::position`] it was
/// built at and later reads what changed since instead of everything.
///
/// Filled by SQLite's update hook on the writer's connection, which reports every row inserted,
/// updated or deleted — by a statement, a trigger or a foreign-key action — in a rowid table (it
/// does not see `INSERT OR REPLACE` deleting a conflicting row, and no code here writes that
/// into a followed table). Ids are published when the writer's closure returns, so everything
/// published is committed (or rolled back: an id too many only costs a re-read). The log holds
/// at most [`ChangeLog::CAPACITY`] ids; a cache further behind than that reads everything again.
#[derive(Debug, Default)]
pub struct ChangeLog {
    /// Ids reported by the hook during the writer's current closure.
    pending: Mutex<Vec<i64>>,
    log: Mutex<Log>,
}

#[derive(Debug, Default)]
struct Log {
    /// The newest ids published, oldest first.
    ids: std::collections::VecDeque<i64>,
    /// How many ids were ever published: the position after the newest.
    end: u64,
}

impl ChangeLog {
    /// The most ids kept.
    pub const CAPACITY: usize = 1 << 18;

    /// The position now: what is published so far is before it.
    pub fn position(&self) -> u64 {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).end
    }

    /// The ids published since `position` (with repeats) and the position after them, or `None`
    /// when some of them were already dropped.
    pub fn since(&self, position: u64) -> Option<(Vec<i64>, u64)> {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let start = log.end - log.ids.len() as u64;
        if position < start || position > log.end {
            return None;
        }
        let skip = (position - start) as usize;
        Some((log.ids.iter().skip(skip).copied().collect(), log.end))
    }

    fn note(&self, id: i64) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(id);
    }

    fn publish(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.is_empty() {
            return;
        }
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.end += pending.len() as u64;
        log.ids.extend(pending.drain(..));
        let over = log.ids.len().saturating_sub(Self::CAPACITY);
        log.ids.drain(..over);
    }
}

/// Handle to the thread that owns a library's read-write connection. Cloneable; the thread ends
/// on [`Writer::close`] or when the last handle is dropped.
#[derive(Clone)]
pub struct Writer {
    tx: Sender<Msg>,
    checkpoints: Arc<AtomicU64>,
}

/// When the WAL is folded back into the database, in WAL pages after a commit.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoints {
    /// The checkpoint thread is asked to run (SQLite's own automatic checkpoint, which runs on
    /// the committing connection, defaults to 1,000).
    pub ask: i32,
    /// The writer checkpoints itself. The thread has copied most frames by then, so this copies
    /// the rest, and the WAL starts again from its beginning at the next commit (a WAL written
    /// while a checkpoint runs beside it is never wholly copied at the moment a commit starts,
    /// so without this it would grow for as long as the writes go on).
    pub force: i32,
}

impl Default for Checkpoints {
    fn default() -> Checkpoints {
        Checkpoints {
            ask: 8192,
            force: 2 * 8192,
        }
    }
}

impl Writer {
    /// Starts the writer thread on an opened, migrated connection of `db`, and the thread that
    /// checkpoints its WAL. Rows written in the tables `follow` names are noted in `changes`.
    pub fn spawn(
        name: &str,
        db: &DbFile,
        mut conn: Connection,
        follow: &'static [&'static str],
        changes: Arc<ChangeLog>,
        when: Checkpoints,
    ) -> Result<Writer> {
        let (tx, rx) = bounded::<Msg>(64);
        let noted = changes.clone();
        conn.update_hook(Some(
            move |_: rusqlite::hooks::Action, _db: &str, table: &str, rowid: i64| {
                if follow.contains(&table) {
                    noted.note(rowid);
                }
            },
        ))?;
        // One pending request at most: a commit while a checkpoint runs asks for the next one.
        let (ask, asked) = bounded::<()>(1);
        let ask = Arc::new(Mutex::new(Some(ask)));
        let asker = ask.clone();
        // What this hook returns becomes the result of the commit that called it, which has
        // happened whatever it returns: it never returns an error. A checkpoint the writer cannot
        // run now (the thread is running one: "SQL logic error") is put off to the next commit,
        // and the thread asked again.
        conn.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages: i32| {
            let ask_thread = || {
                if let Some(ask) = asker.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                    let _ = ask.try_send(());
                }
            };
            if pages >= when.force {
                if let Err(e) = wal.checkpoint() {
                    tracing::debug!(error = %e, pages, "WAL checkpoint put off to the next commit");
                    ask_thread();
                }
            } else if pages >= when.ask {
                ask_thread();
            }
            Ok(())
        }))?;
        let checkpoints = Arc::new(AtomicU64::new(0));
        let done_count = checkpoints.clone();
        let cp_conn = db.checkpointer()?;
        let checkpointer = thread::Builder::new()
            .name(format!("sd-checkpoint-{name}"))
            .spawn(move || {
                for () in asked {
                    match cp_conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
                        Ok(()) => {
                            done_count.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; the next commit asks again"),
                    }
                }
            })
            .map_err(|e| Error::io("<checkpoint thread>", e))?;
        thread::Builder::new()
            .name(format!("sd-writer-{name}"))
            .spawn(move || {
                let mut ack = None;
                for msg in rx {
                    match msg {
                        Msg::Run(job) => {
                            job(&mut conn);
                            changes.publish();
                        }
                        Msg::Close(done) => {
                            ack = Some(done);
                            break;
                        }
                    }
                }
                // The checkpoint thread ends with its last request; then fold the WAL back into
                // the database so a closed library is one file again.
                ask.lock().unwrap_or_else(|p| p.into_inner()).take();
                let _ = checkpointer.join();
                let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
                drop(conn);
                if let Some(done) = ack {
                    let _ = done.send(());
                }
            })
            .map_err(|e| Error::io("<writer thread>", e))?;
        Ok(Writer { tx, checkpoints })
    }

    /// How many checkpoints the checkpoint thread has run.
    pub fn background_checkpoints(&self) -> u64 {
        self.checkpoints.load(Ordering::Relaxed)
    }

    /// Closes the connection once queued work is done; later calls fail with `WriterGone`.
    pub fn close(&self) {
        let (done, wait) = bounded(1);
        if self.tx.send(Msg::Close(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Runs `f` on the writer thread and returns its result.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (rtx, rrx) = bounded(1);
        self.tx
            .send(Msg::Run(Box::new(move |conn: &mut Connection| {
                let _ = rtx.send(f(conn));
            })))
            .map_err(|_| Error::WriterGone)?;
        rrx.recv().map_err(|_| Error::WriterGone)?
    }

    /// Runs `f` inside one transaction on the writer thread.
    pub fn transaction<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
    }
}

/// An INSERT that writes many rows with few statements: SQLite's cost is mostly per statement,
/// not per row, for the narrow rows the indexer writes by the hundred thousand. Rows go 64 to a
/// statement, and the rest with one statement per binary digit of their count (32, 16, … 1
/// rows), so a handful of prepared statements covers every count.
pub(crate) struct RowsInsert {
    /// One statement per size of [`RowsInsert::SIZES`].
    sql: Vec<String>,
    cols: usize,
}

impl RowsInsert {
    const SIZES: [usize; 7] = [64, 32, 16, 8, 4, 2, 1];

    /// `head` is the statement up to `VALUES` (use `INSERT OR FAIL`: a plain INSERT of several
    /// rows keeps a statement journal to undo half a statement, which a failure rolling back
    /// the whole transaction does not need), `cols` the values per row, `tail` what follows them
    /// (an upsert clause, or nothing).
    pub(crate) fn new(head: &str, cols: usize, tail: &str) -> RowsInsert {
        let row = format!("({})", vec!["?"; cols].join(","));
        let sql = Self::SIZES
            .iter()
            .map(|&n| format!("{head} {} {tail}", vec![row.as_str(); n].join(",")))
            .collect();
        RowsInsert { sql, cols }
    }

    /// Writes `rows`; `bind(stmt, at, i, row)` binds row `i`'s values at 1-based positions
    /// `at`, `at + 1`, ….
    pub(crate) fn run<T>(
        &self,
        tx: &rusqlite::Transaction<'_>,
        rows: &[T],
        mut bind: impl FnMut(&mut rusqlite::Statement<'_>, usize, usize, &T) -> rusqlite::Result<()>,
    ) -> Result<()> {
        let mut done = 0;
        for (size, sql) in Self::SIZES.iter().zip(&self.sql) {
            while rows.len() - done >= *size {
                let mut stmt = tx.prepare_cached(sql)?;
                for (k, row) in rows[done..done + size].iter().enumerate() {
                    bind(&mut stmt, k * self.cols + 1, done + k, row)?;
                }
                stmt.raw_execute()?;
                done += size;
            }
        }
        Ok(())
    }
}

/// Milliseconds since the Unix epoch, the timestamp unit of the database.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_and_refuses_newer_schema_without_touching_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("library.db");
        let conn = open_writer(&db, "t").unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 5)
            .unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
        drop(conn);
        let before = std::fs::read(&db).unwrap();
        let err = open_writer(&db, "t").unwrap_err();
        assert!(matches!(err, Error::NewerVersion { found, .. } if found == SCHEMA_VERSION + 5));
        assert_eq!(std::fs::read(&db).unwrap(), before);
    }

    /// A writer on a new library holding table `t`, with these checkpoint thresholds, after
    /// `commits` transactions of `rows` rows of `bytes` zero bytes each, every one of which must
    /// succeed. Returns the folder holding the library, its file and the writer.
    fn filled(
        when: Checkpoints,
        commits: i64,
        rows: i64,
        bytes: i64,
    ) -> (tempfile::TempDir, DbFile, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let db = DbFile::new(dir.path().join("library.db"), None);
        let conn = db.writer("t").unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
            .unwrap();
        let w = Writer::spawn("t", &db, conn, &[], Arc::default(), when).unwrap();
        for i in 0..commits {
            w.transaction(move |tx| {
                for j in 0..rows {
                    tx.execute(
                        "INSERT INTO t (id, v) VALUES (?1, zeroblob(?2))",
                        [i * rows + j, bytes],
                    )?;
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("commit {i} failed: {e}"));
        }
        (dir, db, w)
    }

    fn rows_in(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn the_wal_is_checkpointed_beside_the_writer_and_folded_in_at_close() {
        let when = Checkpoints {
            ask: 16,
            force: i32::MAX,
        };
        let (dir, db, w) = filled(when, 200, 8, 3000);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while w.background_checkpoints() == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            w.background_checkpoints() > 0,
            "no checkpoint ran beside the writer"
        );
        assert_eq!(rows_in(&db.reader().unwrap()), 1600);
        w.close();
        let wal = dir.path().join("library.db-wal");
        assert!(
            std::fs::metadata(&wal).map_or(0, |m| m.len()) == 0,
            "a closed library is one file"
        );
        let conn = Connection::open(dir.path().join("library.db")).unwrap();
        assert_eq!(rows_in(&conn), 1600);
    }

    /// A commit that meets the checkpoint thread mid-checkpoint when it wants to checkpoint
    /// itself (the WAL past `force`) still succeeds: that checkpoint is only put off. (The
    /// commit once failed with "SQL logic error" although it had happened, and so did the index
    /// job that made it.)
    #[test]
    fn a_commit_never_fails_because_a_checkpoint_is_already_running() {
        // Every commit asks the thread, and every other one checkpoints itself too: with some
        // 30 pages a commit, the thread's checkpoints take long enough for them to meet often.
        let (_dir, db, w) = filled(Checkpoints { ask: 1, force: 40 }, 300, 10, 9000);
        assert_eq!(rows_in(&db.reader().unwrap()), 3000);
        w.close();
    }

    #[test]
    fn refuses_a_file_that_is_not_a_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("library.db");
        std::fs::write(&db, vec![7u8; 4096]).unwrap();
        assert!(matches!(open_writer(&db, "t"), Err(Error::Corrupt { .. })));
    }

    /// Every count of rows goes in whole and in order, whatever mix of statement sizes it takes
    /// (none, one of each size, several of 64), and an upsert tail applies to every row.
    #[test]
    fn rows_insert_writes_every_row_of_any_count() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL, n INTEGER)")
            .unwrap();
        let ins = RowsInsert::new(
            "INSERT OR FAIL INTO t (k, v, n) VALUES",
            3,
            "ON CONFLICT (k) DO UPDATE SET n = n + excluded.n",
        );
        let mut base = 0i64;
        for count in [0usize, 1, 63, 64, 65, 130] {
            let rows: Vec<(i64, String)> = (0..count as i64)
                .map(|i| (base + i, format!("r{}", base + i)))
                .collect();
            let tx = conn.transaction().unwrap();
            ins.run(&tx, &rows, |stmt, at, i, (k, v)| {
                assert_eq!(rows[i].0, *k, "row index matches the row");
                stmt.raw_bind_parameter(at, k)?;
                stmt.raw_bind_parameter(at + 1, v)?;
                stmt.raw_bind_parameter(at + 2, 1)
            })
            .unwrap();
            tx.commit().unwrap();
            base += count as i64;
        }
        let (n, sum, bad): (i64, i64, i64) = conn
            .query_row(
                "SELECT count(*), sum(n), sum(v <> 'r' || k) FROM t",
                [],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                    ))
                },
            )
            .unwrap();
        assert_eq!((n, sum, bad), (323, 323, 0));
        // The same keys again: every row is updated by the tail, none added.
        let again: Vec<i64> = (0..323).collect();
        let tx = conn.transaction().unwrap();
        ins.run(&tx, &again, |stmt, at, _, k| {
            stmt.raw_bind_parameter(at, k)?;
            stmt.raw_bind_parameter(at + 1, "x")?;
            stmt.raw_bind_parameter(at + 2, 2)
        })
        .unwrap();
        tx.commit().unwrap();
        let (n, sum): (i64, i64) = conn
            .query_row("SELECT count(*), sum(n) FROM t", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((n, sum), (323, 323 * 3));
    }
}
