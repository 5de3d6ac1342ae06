//! Paths rebuilt from the entry tree's parent links.
//!
//! The index stores each entry as `(parent_id, name)`, never a full path, so a move is one row
//! update. A path is rebuilt by walking up the parent links to a directory whose path is known
//! (a location root) and joining the names on the way down. [`climb`] is that walk, the only
//! one in the crate; it reads its links either from the database ([`entry_path`], for a few
//! entries), from the directories loaded once into a [`DirPaths`] (for many: the content phase,
//! duplicate reports, subtree listings), which remembers every path it built so a directory's
//! path is built once however many files it holds, or from the search index's own links.
//!
//! Names are raw bytes (`OsString`): a non-UTF-8 name is joined like any other.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};

use crate::names;

/// Most names a path is rebuilt from. A real tree is far shallower (the walker reads paths
/// of at most `PATH_MAX`, 4,096 bytes, so 2,048 levels); a longer chain is a cycle in the
/// parent links, reported as "no path" rather than followed forever.
pub const MAX_DEPTH: usize = 4096;

/// An entry's link: its parent (`None` for a location root) and its name.
pub type Link = (Option<i64>, OsString);

/// The walk up from `id`: looks each entry up with `link` until `known` gives a path, then joins
/// the names below it, telling `remember` each directory path built on the way down (nearest
/// the known one first). `None` when the chain breaks — an id `link` does not know, an entry
/// without a parent that `known` does not know (another location's root) — or is longer than
/// [`MAX_DEPTH`].
pub fn climb<E>(
    id: i64,
    mut known: impl FnMut(i64) -> Option<PathBuf>,
    mut link: impl FnMut(i64) -> Result<Option<Link>, E>,
    mut remember: impl FnMut(i64, &Path),
) -> Result<Option<PathBuf>, E> {
    let mut chain: Vec<(i64, OsString)> = Vec::new();
    let mut cur = id;
    let base = loop {
        if let Some(p) = known(cur) {
            break p;
        }
        if chain.len() >= MAX_DEPTH {
            return Ok(None);
        }
        match link(cur)? {
            Some((Some(parent), name)) => {
                chain.push((cur, name));
                cur = parent;
            }
            _ => return Ok(None),
        }
    };
    let mut path = base;
    for (id, name) in chain.into_iter().rev() {
        path.push(name);
        remember(id, &path);
    }
    Ok(Some(path))
}

/// Absolute path of entry `id` (any kind), read up the parent links in the database to the
/// location root `root_id` at `root_path`. `None` when the entry is not attached under that
/// root (detached mid-scan, gone, or in another location). For a few entries; to rebuild many,
/// load a [`DirPaths`] once.
pub fn entry_path(
    conn: &Connection,
    root_id: i64,
    root_path: &Path,
    id: i64,
) -> crate::Result<Option<PathBuf>> {
    let mut q = conn.prepare_cached("SELECT parent_id, name FROM entries WHERE id = ?1")?;
    climb(
        id,
        |cur| (cur == root_id).then(|| root_path.to_path_buf()),
        |cur| -> crate::Result<Option<Link>> {
            Ok(
                q.query_row([cur], |r| Ok((r.get(0)?, names::from_sql(r.get_ref(1)?)?)))
                    .optional()?,
            )
        },
        |_, _| {},
    )
}

/// Directory paths from links held in memory: directories added with [`DirPaths::add_dir`]
/// (or a location's, by [`DirPaths::load`]) under roots added with [`DirPaths::add_root`].
#[derive(Debug, Default)]
pub struct DirPaths {
    /// Directory id → its link.
    links: HashMap<i64, Link>,
    /// Root id → path, plus every path [`DirPaths::dir`] has built.
    known: HashMap<i64, PathBuf>,
}

impl DirPaths {
    pub fn new() -> DirPaths {
        DirPaths::default()
    }

    /// Every directory of location `location_id` (one query over the directories' partial
    /// index), under its root `root_id` at `root_path`.
    pub fn load(
        conn: &Connection,
        location_id: i64,
        root_id: i64,
        root_path: &Path,
    ) -> crate::Result<DirPaths> {
        let mut paths = DirPaths::new();
        paths.add_root(root_id, root_path.to_path_buf());
        let mut q = conn.prepare(
            "SELECT id, parent_id, name FROM entries WHERE location_id = ?1 AND kind = 1",
        )?;
        let mut rows = q.query([location_id])?;
        while let Some(r) = rows.next()? {
            paths.add_dir(r.get(0)?, r.get(1)?, names::from_sql(r.get_ref(2)?)?);
        }
        Ok(paths)
    }

    /// A directory whose path is known: a location root, or the top of a subtree.
    pub fn add_root(&mut self, id: i64, path: PathBuf) {
        self.known.insert(id, path);
    }

    /// A directory's link. Links of other kinds of entry do no harm; files are never asked for.
    pub fn add_dir(&mut self, id: i64, parent: Option<i64>, name: OsString) {
        self.links.insert(id, (parent, name));
    }

    /// Path of directory `id`, if it hangs under a root; remembered, with those of the
    /// directories above it, for the next call.
    pub fn dir(&mut self, id: i64) -> Option<PathBuf> {
        let DirPaths { links, known } = self;
        let mut built = Vec::new();
        let path = climb(
            id,
            |cur| known.get(&cur).cloned(),
            |cur| Ok::<_, std::convert::Infallible>(links.get(&cur).cloned()),
            |dir, p| built.push((dir, p.to_path_buf())),
        );
        known.extend(built);
        match path {
            Ok(p) => p,
            Err(never) => match never {},
        }
    }

    /// Path of directory `id`, without remembering it: for a set shared by several threads.
    pub fn dir_shared(&self, id: i64) -> Option<PathBuf> {
        let path = climb(
            id,
            |cur| self.known.get(&cur).cloned(),
            |cur| Ok::<_, std::convert::Infallible>(self.links.get(&cur).cloned()),
            |_, _| {},
        );
        match path {
            Ok(p) => p,
            Err(never) => match never {},
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStringExt;

    use super::*;

    fn raw(b: &[u8]) -> OsString {
        OsString::from_vec(b.to_vec())
    }

    /// A chain of `depth` directories `d0/d1/…` under root 1 at `/r`, ids 2, 3, ….
    fn chain(depth: i64) -> DirPaths {
        let mut t = DirPaths::new();
        t.add_root(1, PathBuf::from("/r"));
        for i in 0..depth {
            t.add_dir(i + 2, Some(i + 1), OsString::from(format!("d{i}")));
        }
        t
    }

    #[test]
    fn non_utf8_names_are_joined_byte_for_byte() {
        let mut t = DirPaths::new();
        t.add_root(1, PathBuf::from("/loc"));
        t.add_dir(2, Some(1), raw(b"caf\xe9"));
        t.add_dir(3, Some(2), raw(b"\xff\xfe dir"));
        let want = {
            let mut p = PathBuf::from("/loc");
            p.push(raw(b"caf\xe9"));
            p.push(raw(b"\xff\xfe dir"));
            p
        };
        assert_eq!(t.dir_shared(3), Some(want.clone()));
        assert_eq!(t.dir(3), Some(want.clone()));
        assert_eq!(t.dir(3), Some(want), "the remembered path is the same");
        assert_eq!(t.dir(1), Some(PathBuf::from("/loc")));
    }

    #[test]
    fn deep_trees_are_rebuilt_to_the_limit_and_not_beyond() {
        let mut t = chain(MAX_DEPTH as i64 + 1);
        let deepest = MAX_DEPTH as i64 + 1; // MAX_DEPTH names below the root
        let p = t.dir_shared(deepest).expect("MAX_DEPTH levels are rebuilt");
        assert_eq!(p.components().count(), 2 + MAX_DEPTH); // "/", "r", names
        assert!(p.ends_with(format!("d{}", MAX_DEPTH - 1)));
        assert_eq!(t.dir(deepest), Some(p.clone()));
        // Every directory above it was remembered on the way down.
        assert_eq!(t.known.len(), 1 + MAX_DEPTH);
        assert_eq!(t.dir(deepest - 1).as_deref(), p.parent());

        let mut t = chain(MAX_DEPTH as i64 + 1);
        assert_eq!(t.dir_shared(deepest + 1), None, "one level too deep");
        assert_eq!(t.dir(deepest + 1), None);
    }

    #[test]
    fn broken_chains_and_cycles_have_no_path() {
        let mut t = chain(3);
        t.add_dir(10, Some(99), OsString::from("orphan")); // parent unknown
        t.add_dir(11, None, OsString::from("other-root")); // another location's root
        t.add_dir(12, Some(13), OsString::from("a")); // a cycle
        t.add_dir(13, Some(12), OsString::from("b"));
        for id in [10, 11, 12, 13, 77] {
            assert_eq!(t.dir_shared(id), None, "{id}");
            assert_eq!(t.dir(id), None, "{id}");
        }
        assert_eq!(t.dir(4), Some(PathBuf::from("/r/d0/d1/d2")));
    }

    #[test]
    fn entry_paths_from_the_database_match_the_loaded_ones() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE entries (id INTEGER PRIMARY KEY, location_id INTEGER, parent_id INTEGER,
                                   name ANY, kind INTEGER);",
        )
        .unwrap();
        let mut ins = conn
            .prepare("INSERT INTO entries VALUES (?1, 1, ?2, ?3, ?4)")
            .unwrap();
        ins.execute(rusqlite::params![1, None::<i64>, "root", 1])
            .unwrap();
        let mut parent = 1;
        for i in 0..300i64 {
            let mut name = format!("d\u{e9}-{i}").into_bytes();
            if i % 2 == 1 {
                name.push(0xff); // not UTF-8: stored as a BLOB
            }
            let name = OsString::from_vec(name);
            ins.execute(rusqlite::params![i + 2, parent, names::to_sql(&name), 1])
                .unwrap();
            parent = i + 2;
        }
        ins.execute(rusqlite::params![
            1000,
            parent,
            names::to_sql(&raw(b"file\x80")),
            0
        ])
        .unwrap();
        let root = Path::new("/mnt/loc");
        let mut loaded = DirPaths::load(&conn, 1, 1, root).unwrap();
        let file = entry_path(&conn, 1, root, 1000).unwrap().unwrap();
        assert_eq!(file, loaded.dir(parent).unwrap().join(raw(b"file\x80")));
        assert_eq!(file.components().count(), 3 + 300 + 1);
        assert_eq!(entry_path(&conn, 1, root, 1).unwrap(), Some(root.into()));
        assert_eq!(entry_path(&conn, 1, root, 5000).unwrap(), None, "gone");
        // Another location's root: the chain ends at root 1, which has no parent.
        ins.execute(rusqlite::params![2000, None::<i64>, "other", 1])
            .unwrap();
        assert_eq!(entry_path(&conn, 2000, root, 1000).unwrap(), None);
    }
}
