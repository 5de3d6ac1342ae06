//! The written tree against its promises, checked by walking it with std only: one seed gives one
//! tree, the stats count what is on disk, and every planted shape is there.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sd_treegen::{Options, Profile, Stats, generate, plan_stats, stats_path};

/// One entry as seen by `lstat` (links not followed).
#[derive(PartialEq, Eq, Debug)]
enum Seen {
    Dir {
        mtime: i64,
    },
    File {
        size: u64,
        mtime: i64,
        ino: u64,
        nlink: u64,
    },
    Link {
        target: PathBuf,
        mtime: i64,
    },
}

fn walk(root: &Path) -> BTreeMap<Vec<u8>, Seen> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            let seen = if m.file_type().is_symlink() {
                Seen::Link {
                    target: std::fs::read_link(&p).unwrap(),
                    mtime: m.mtime(),
                }
            } else if m.is_dir() {
                stack.push(p);
                Seen::Dir { mtime: m.mtime() }
            } else {
                Seen::File {
                    size: m.len(),
                    mtime: m.mtime(),
                    ino: m.ino(),
                    nlink: m.nlink(),
                }
            };
            out.insert(rel, seen);
        }
    }
    out
}

fn path(root: &Path, rel: &[u8]) -> PathBuf {
    root.join(std::ffi::OsStr::from_bytes(rel))
}

/// The bytes BRIEF §3's sampled content identity reads from a file over 100 KiB.
fn sampled(bytes: &[u8]) -> Vec<u8> {
    let size = bytes.len();
    let step = (size - 16_384) / 4;
    let mut out = bytes[..8192].to_vec();
    for i in 0..4 {
        let at = 8192 + i * step;
        out.extend_from_slice(&bytes[at..at + 10_240]);
    }
    out.extend_from_slice(&bytes[size - 8192..]);
    out
}

fn make(dir: &Path, name: &str, options: &Options) -> (PathBuf, Stats) {
    let root = dir.join(name);
    let stats = generate(&root, options).unwrap();
    (root, stats)
}

#[test]
fn one_seed_one_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let options = Options::new(Profile::Realistic, 800);
    let (a, sa) = make(tmp.path(), "a", &options);
    let (b, sb) = make(tmp.path(), "b", &options);
    let (wa, wb) = (walk(&a), walk(&b));
    let strip = |w: &BTreeMap<Vec<u8>, Seen>| {
        w.iter()
            .map(|(k, v)| match v {
                Seen::File { size, mtime, .. } => (k.clone(), 1, *size, *mtime, PathBuf::new()),
                Seen::Dir { mtime } => (k.clone(), 2, 0, *mtime, PathBuf::new()),
                Seen::Link { target, mtime } => (k.clone(), 3, 0, *mtime, target.clone()),
            })
            .collect::<Vec<_>>()
    };
    assert!(
        strip(&wa) == strip(&wb),
        "same options, same names, sizes, times and links"
    );
    for (rel, seen) in &wa {
        if matches!(seen, Seen::File { .. }) {
            let (x, y) = (
                std::fs::read(path(&a, rel)).unwrap(),
                std::fs::read(path(&b, rel)).unwrap(),
            );
            assert!(
                x == y,
                "{} differs between two runs",
                String::from_utf8_lossy(rel)
            );
        }
    }
    assert_eq!(sa.dir_depth_histogram, sb.dir_depth_histogram);
    assert_eq!(
        plan_stats(&a, &options),
        sa,
        "the dry run plans what is written"
    );

    let other = make(tmp.path(), "c", &Options { seed: 7, ..options }).0;
    assert!(
        strip(&walk(&other)) != strip(&wa),
        "another seed, another tree"
    );
}

#[test]
fn realistic_tree_has_every_shape_and_its_stats_count_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, stats) = make(tmp.path(), "tree", &Options::new(Profile::Realistic, 2000));
    let w = walk(&root);

    // Counts.
    let files: Vec<(&Vec<u8>, u64, u64, u64)> = w
        .iter()
        .filter_map(|(k, v)| match v {
            Seen::File {
                size, ino, nlink, ..
            } => Some((k, *size, *ino, *nlink)),
            _ => None,
        })
        .collect();
    assert_eq!(
        files.len(),
        stats.regular_files + stats.non_utf8_files + stats.hardlinks
    );
    assert_eq!(
        w.values().filter(|v| matches!(v, Seen::Dir { .. })).count(),
        stats.dirs
    );
    assert_eq!(
        w.values()
            .filter(|v| matches!(v, Seen::Link { .. }))
            .count(),
        stats.symlinks
    );
    let mut inodes = HashMap::new();
    for &(_, size, ino, _) in &files {
        inodes.insert(ino, size);
    }
    assert_eq!(inodes.values().sum::<u64>(), stats.total_bytes);
    assert_eq!(inodes.len(), stats.regular_files + stats.non_utf8_files);
    assert!(stats.hardlinks >= 1);
    assert!(files.iter().filter(|f| f.3 > 1).count() > stats.hardlinks);

    // Names: non-UTF-8, non-ASCII, hidden, long.
    let names: Vec<&[u8]> = w
        .keys()
        .map(|k| k.rsplit(|&b| b == b'/').next().unwrap())
        .collect();
    assert_eq!(
        names
            .iter()
            .filter(|n| std::str::from_utf8(n).is_err())
            .count(),
        stats.non_utf8_files
    );
    assert!(stats.non_utf8_files >= 3);
    assert!(names.iter().filter(|n| !n.is_ascii()).count() > 100);
    assert!(names.iter().any(|n| n.starts_with(b".")));
    assert!(names.iter().any(|n| n.len() > 150));
    assert!(
        names
            .iter()
            .any(|n| *n == b".DS_Store" || n.starts_with(b".Trash-"))
    );

    // Projects: a .gitignore beside a target/ folder and a build log.
    let projects: Vec<&Vec<u8>> = w.keys().filter(|k| k.ends_with(b"/.gitignore")).collect();
    assert_eq!(projects.len(), stats.gitignore_projects);
    assert_eq!(projects.len(), 2);
    for g in projects {
        let dir = &g[..g.len() - b"/.gitignore".len()];
        let target = [dir, b"/target"].concat();
        assert!(matches!(w.get(&target), Some(Seen::Dir { .. })));
        assert!(
            w.keys()
                .any(|k| k.starts_with(&[target.as_slice(), b"/"].concat()))
        );
        assert!(w.contains_key(&[dir, b"/build.log"].concat()));
        let text = std::fs::read_to_string(path(&root, g)).unwrap();
        assert!(text.lines().any(|l| l == "target/") && text.lines().any(|l| l == "*.log"));
    }

    // Symbolic links: a cycle to an ancestor, dangling ones, links to folders and to files.
    let (mut cycles, mut dangling, mut to_dirs, mut to_files) = (0, 0, 0, 0);
    for (rel, v) in &w {
        let Seen::Link { .. } = v else { continue };
        let p = path(&root, rel);
        match std::fs::metadata(&p) {
            Err(_) => dangling += 1,
            Ok(m) if m.is_dir() => {
                let real = std::fs::canonicalize(&p).unwrap();
                if p.parent()
                    .unwrap()
                    .canonicalize()
                    .unwrap()
                    .starts_with(&real)
                {
                    cycles += 1;
                } else {
                    to_dirs += 1;
                }
            }
            Ok(_) => to_files += 1,
        }
    }
    assert_eq!(cycles, stats.symlink_cycles);
    assert_eq!(cycles, 1);
    assert_eq!(dangling, stats.dangling_symlinks);
    assert_eq!(dangling, 2);
    assert!(to_dirs >= 1 && to_files >= 1);

    // Contents: exact copies and near-duplicates, one inode each.
    let mut by_size: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for &(rel, size, ino, _) in &files {
        if size > 0 && seen.insert(ino) {
            by_size
                .entry(size)
                .or_default()
                .push(std::fs::read(path(&root, rel)).unwrap());
        }
    }
    let (mut redundant, mut near_sampled) = (0, 0);
    for (size, contents) in &by_size {
        let distinct: HashSet<&Vec<u8>> = contents.iter().collect();
        redundant += contents.len() - distinct.len();
        if *size > 100 * 1024 && distinct.len() > 1 {
            let mut samples: HashMap<Vec<u8>, usize> = HashMap::new();
            for c in &distinct {
                *samples.entry(sampled(c)).or_default() += 1;
            }
            near_sampled += samples.values().filter(|&&k| k > 1).count();
        }
    }
    assert!(
        redundant >= stats.exact_dup_copies,
        "{redundant} redundant files"
    );
    assert_eq!(stats.exact_dup_copies, 200);
    assert!(
        near_sampled >= stats.sampled_near_dup_groups && stats.sampled_near_dup_groups >= 1,
        "{near_sampled} groups of different files with equal samples"
    );
    assert!(stats.near_dup_groups >= stats.sampled_near_dup_groups);
    assert!(stats.samesize_groups > stats.near_dup_groups);

    // The stats file is the tool's, not the library's.
    assert!(!stats_path(&root).exists());
}

#[test]
fn tiny_tree_is_mostly_empty_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, stats) = make(tmp.path(), "tiny", &Options::new(Profile::Tiny, 2000));
    let w = walk(&root);
    let sizes: Vec<u64> = w
        .values()
        .filter_map(|v| match v {
            Seen::File { size, .. } => Some(*size),
            _ => None,
        })
        .collect();
    assert_eq!(sizes.len(), 2000 + stats.non_utf8_files);
    assert_eq!(stats.hardlinks, 0);
    assert_eq!(stats.gitignore_projects, 0);
    let empty = sizes.iter().filter(|&&s| s == 0).count();
    assert_eq!(empty, stats.empty_files);
    assert!((1200..1600).contains(&empty), "{empty} empty files");
    assert!(sizes.iter().all(|&s| s <= 256));
    assert_eq!(stats.dirs, 80 - 1);
    assert_eq!(
        w.values()
            .filter(|v| matches!(v, Seen::Link { .. }))
            .count(),
        6
    );
}
