//! Deterministic synthetic file trees for Spacedrive's tests and benchmarks.
//!
//! The same options give the same tree on any machine: paths, sizes, bytes, modification times,
//! links (inode numbers and change times aside). Two profiles:
//!
//! - **realistic**: nested folders (2–20 subfolders each, at most 8 deep) themed as photos, code,
//!   documents, videos and downloads; heavy-tailed sizes (most under 64 KiB, a few of 1–50 MiB,
//!   about 30 MiB per 1,000 files) with magic bytes per type; ~10% exact copies (some copied
//!   several times, some beside their original as `name (1)`); same-size groups, half of them
//!   **near-duplicates** that differ only between the content identity's samples (BRIEF §3), so
//!   a sampled hash alone calls them equal; unicode, emoji and space-laden names, hidden files and
//!   folders, `.DS_Store`; two projects with a `.gitignore`, an ignored `build.log` and a large
//!   ignored `target/`; symbolic links (a cycle to an ancestor, dangling ones, to folders, to
//!   files) and hard links; and files whose names are not valid UTF-8.
//! - **tiny**: metadata stress (e.g. a million files): 70% empty files, the rest 1–256 bytes of
//!   text, the same folder, copy, link and name machinery, no projects or hard links.
//!
//! [`generate`] writes the tree and returns its [`Stats`]; the `sd-treegen` binary does the same
//! from the command line and writes the stats beside the tree ([`stats_path`]).
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let root = dir.path().join("tree");
//! let stats = sd_treegen::generate(&root, &sd_treegen::Options::new(sd_treegen::Profile::Realistic, 300))?;
//! assert_eq!(stats.regular_files, 300);
//! assert!(stats.sampled_near_dup_groups >= 1 && stats.non_utf8_files == 3);
//! # Ok::<(), std::io::Error>(())
//! ```

#![deny(missing_docs, unreachable_pub)]

mod model;
mod plan;
mod rng;
mod write;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What kind of tree to make.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Mixed personal files: real sizes and contents, copies, near-duplicates, projects.
    Realistic,
    /// Many tiny files, mostly empty: for metadata-only stress.
    Tiny,
}

/// How to make a tree.
#[derive(Clone, Debug)]
pub struct Options {
    /// The profile.
    pub profile: Profile,
    /// Regular files in the tree (copies and project files included; hard links, symbolic links
    /// and the non-UTF-8 files not).
    pub files: usize,
    /// The seed: one seed, one tree.
    pub seed: u64,
    /// Files whose names are not valid UTF-8; default `files / 20000`, at least 3.
    pub non_utf8: Option<usize>,
}

impl Options {
    /// `files` files of `profile`, seed 42.
    pub fn new(profile: Profile, files: usize) -> Options {
        Options {
            profile,
            files,
            seed: 42,
            non_utf8: None,
        }
    }
}

/// What a generated tree holds, counted from its plan (an independent walk should agree).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    /// The tree's root as given.
    pub root: String,
    /// The seed.
    pub seed: u64,
    /// The profile.
    pub profile: Profile,
    /// Regular files, as `Options::files` (not counting `non_utf8_files`).
    pub regular_files: usize,
    /// Files whose names are not valid UTF-8.
    pub non_utf8_files: usize,
    /// Folders below the root.
    pub dirs: usize,
    /// Symbolic links.
    pub symlinks: usize,
    /// Symbolic links to an ancestor folder (following links would never end).
    pub symlink_cycles: usize,
    /// Symbolic links to nothing.
    pub dangling_symlinks: usize,
    /// Symbolic links to folders (cycles not counted).
    pub dir_symlinks: usize,
    /// Extra names of existing files.
    pub hardlinks: usize,
    /// Bytes in all regular files (each inode once).
    pub total_bytes: u64,
    /// Empty regular files.
    pub empty_files: usize,
    /// Regular files under 64 KiB.
    pub files_lt_64kib: usize,
    /// Regular files of 64 KiB up to 1 MiB.
    pub files_64kib_1mib: usize,
    /// Regular files of 1 MiB or more.
    pub files_ge_1mib: usize,
    /// The median file size.
    pub median_size: u64,
    /// The largest file size.
    pub max_size: u64,
    /// Exact copies planted.
    pub exact_dup_copies: usize,
    /// Files that were copied (each heads a group with its copies).
    pub exact_dup_groups_from_copies: usize,
    /// Bytes in the planted copies.
    pub exact_dup_redundant_bytes: u64,
    /// Groups of files of one size and extension.
    pub samesize_groups: usize,
    /// Those groups whose files differ only in a few bytes in the middle.
    pub near_dup_groups: usize,
    /// Near-duplicate groups over 100 KiB: equal sampled content hashes, different bytes.
    pub sampled_near_dup_groups: usize,
    /// Projects with a `.gitignore`.
    pub gitignore_projects: usize,
    /// Files whose names start with a dot.
    pub hidden_files: usize,
    /// Folders per depth (the root is depth 0).
    pub dir_depth_histogram: BTreeMap<u32, usize>,
    /// The most entries in one folder.
    pub max_entries_per_dir: usize,
    /// Note on what the counts mean.
    pub note: String,
}

/// Where the command-line tool writes a tree's stats: `ROOT.stats.json`, beside the tree.
pub fn stats_path(root: &Path) -> PathBuf {
    let mut s = root.as_os_str().to_owned();
    s.push(".stats.json");
    PathBuf::from(s)
}

fn shape(p: Profile) -> &'static model::Shape {
    match p {
        Profile::Realistic => &model::REALISTIC,
        Profile::Tiny => &model::TINY,
    }
}

/// The stats of the tree `options` describe, without writing it.
pub fn plan_stats(root: &Path, options: &Options) -> Stats {
    let plan = plan::build(
        options.files,
        options.seed,
        shape(options.profile),
        options.non_utf8,
    );
    stats(root, options, &plan)
}

/// Writes the tree `options` describe at `root`, which must not exist yet; returns its stats.
pub fn generate(root: &Path, options: &Options) -> io::Result<Stats> {
    let shape = shape(options.profile);
    let plan = plan::build(options.files, options.seed, shape, options.non_utf8);
    write::write(&plan, root, options.seed, shape.tiny)?;
    Ok(stats(root, options, &plan))
}

fn stats(root: &Path, options: &Options, plan: &plan::Plan) -> Stats {
    let mut sizes: Vec<u64> = plan.files.iter().map(|f| f.size).collect();
    sizes.sort_unstable();
    let raw_bytes: u64 = plan.non_utf8.iter().map(|r| r.body.len() as u64).sum();
    let count = |f: &dyn Fn(u64) -> bool| sizes.iter().filter(|&&s| f(s)).count();
    let mut dir_depth_histogram = BTreeMap::new();
    for d in &plan.dirs {
        *dir_depth_histogram.entry(d.depth).or_insert(0) += 1;
    }
    let links = |k| plan.symlinks.iter().filter(|s| s.kind == k).count();
    let copy_bytes = plan
        .copies
        .values()
        .flatten()
        .map(|&i| plan.files[i].size)
        .sum();
    Stats {
        root: root.to_string_lossy().into_owned(),
        seed: options.seed,
        profile: options.profile,
        regular_files: plan.files.len(),
        non_utf8_files: plan.non_utf8.len(),
        dirs: plan.dirs.len() - 1,
        symlinks: plan.symlinks.len(),
        symlink_cycles: links(plan::LinkKind::Cycle),
        dangling_symlinks: links(plan::LinkKind::Dangling),
        dir_symlinks: links(plan::LinkKind::ToDir),
        hardlinks: plan.hard_links.len(),
        total_bytes: sizes.iter().sum::<u64>() + raw_bytes,
        empty_files: count(&|s| s == 0),
        files_lt_64kib: count(&|s| s < 64 * model::KIB),
        files_64kib_1mib: count(&|s| (64 * model::KIB..model::MIB).contains(&s)),
        files_ge_1mib: count(&|s| s >= model::MIB),
        median_size: sizes.get(sizes.len() / 2).copied().unwrap_or(0),
        max_size: sizes.last().copied().unwrap_or(0),
        exact_dup_copies: plan.copies.values().map(Vec::len).sum(),
        exact_dup_groups_from_copies: plan.copies.len(),
        exact_dup_redundant_bytes: copy_bytes,
        samesize_groups: plan.samesize_groups,
        near_dup_groups: plan.near_dup_groups,
        sampled_near_dup_groups: plan.sampled_near_dup_groups,
        gitignore_projects: plan.projects.len(),
        hidden_files: plan
            .files
            .iter()
            .filter(|f| f.name.starts_with('.'))
            .count(),
        dir_depth_histogram,
        max_entries_per_dir: (0..plan.dirs.len())
            .map(|i| plan.entries_in(i))
            .max()
            .unwrap_or(0),
        note: "Copies are the planted ones; files may also be equal by accident (empty and \
               tiny files). Hard links are extra names of files counted once. Symbolic links \
               include one cycle to an ancestor and two dangling ones."
            .to_owned(),
    }
}
