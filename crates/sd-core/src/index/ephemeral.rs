//! Ephemeral browsing: walk any path in memory, with the same walker and rules as the indexer,
//! without touching a library.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::Sums;
use super::walk::{self, EntryKind, PathError};
use crate::Result;
use crate::control::Control;
use crate::names::{JsonName, JsonPath};
use crate::rules::RuleConfig;

/// `current`: the folder's own entries. `recursive`: the whole tree below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The folder's own entries
    Current,
    /// The whole tree below it (folders show recursive sizes)
    Recursive,
}

/// One entry of the scanned folder. For directories in a recursive scan, `size`, `files` and
/// `dirs` are recursive totals.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EphemeralEntry {
    pub name: JsonName,
    pub kind: EntryKind,
    pub size: u64,
    pub mtime: i64,
    pub inode: u64,
    pub files: Option<u64>,
    pub dirs: Option<u64>,
    pub target: Option<JsonPath>,
}

/// What a quick scan found.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct QuickScan {
    pub path: JsonPath,
    pub scope: Scope,
    pub entries: Vec<EphemeralEntry>,
    /// Totals over the scope: files, directories and file bytes.
    pub totals: Sums,
    pub symlinks: u64,
    pub ignored: u64,
    pub errors: u64,
    pub error_samples: Vec<PathError>,
    pub duration_ms: u64,
}

/// Scans `path` in memory.
pub fn quick_scan(
    path: &Path,
    scope: Scope,
    rules: RuleConfig,
    control: &Control,
) -> Result<QuickScan> {
    let started = Instant::now();
    let mut out = QuickScan {
        path: JsonPath(PathBuf::new()),
        scope,
        entries: Vec::new(),
        totals: Sums::default(),
        symlinks: 0,
        ignored: 0,
        errors: 0,
        error_samples: Vec::new(),
        duration_ms: 0,
    };
    // token → (parent token, direct sums); root children keep their token to pick up totals.
    let mut dirs: HashMap<u64, (u64, Sums)> = HashMap::new();
    let mut root_children: Vec<(EphemeralEntry, Option<u64>)> = Vec::new();
    let root = walk::walk_folder(path, rules, scope == Scope::Recursive, control, |listing| {
        out.ignored += listing.ignored;
        let mut errs = listing.errors;
        let children = match listing.children {
            Ok(c) => c,
            Err(message) => {
                errs.push(PathError {
                    path: listing.path.clone().into(),
                    message,
                });
                Vec::new()
            }
        };
        out.errors += errs.len() as u64;
        out.error_samples.extend(
            errs.into_iter()
                .take(50usize.saturating_sub(out.error_samples.len())),
        );
        let mut sums = Sums::default();
        for c in children {
            match c.kind {
                EntryKind::File => {
                    sums.files += 1;
                    sums.bytes += c.size;
                }
                EntryKind::Dir => sums.dirs += 1,
                EntryKind::Symlink => out.symlinks += 1,
                EntryKind::Other => {}
            }
            if let Some(t) = c.token {
                dirs.entry(t).or_insert((listing.token, Sums::default())).0 = listing.token;
            }
            if listing.token == 0 {
                root_children.push((
                    EphemeralEntry {
                        name: JsonName(c.name),
                        kind: c.kind,
                        size: c.size,
                        mtime: c.mtime_ns,
                        inode: c.inode,
                        files: None,
                        dirs: None,
                        target: c.target.map(|t| JsonPath(OsString::from_vec(t).into())),
                    },
                    c.token,
                ));
            }
        }
        dirs.entry(listing.token).or_insert((0, Sums::default())).1 = sums;
    })?;
    out.path = JsonPath(root);
    // Fold every directory's sums into its ancestors (parents before children is not guaranteed
    // here, so order by depth).
    let depth_of = |mut t: u64| {
        let mut d = 0u32;
        while t != 0 {
            t = dirs.get(&t).map(|x| x.0).unwrap_or(0);
            d += 1;
        }
        d
    };
    let mut order: Vec<(u32, u64)> = dirs.keys().map(|&t| (depth_of(t), t)).collect();
    order.sort_unstable_by(|a, b| b.cmp(a));
    let mut totals: HashMap<u64, Sums> = dirs.iter().map(|(t, (_, s))| (*t, *s)).collect();
    for (_, t) in order {
        if t == 0 {
            continue;
        }
        let s = totals[&t];
        let parent = dirs[&t].0;
        if let Some(p) = totals.get_mut(&parent) {
            *p += s;
        }
    }
    out.totals = totals.get(&0).copied().unwrap_or_default();
    for (mut e, token) in root_children {
        if let Some(t) = token.and_then(|t| totals.get(&t)) {
            e.size = t.bytes;
            e.files = Some(t.files);
            e.dirs = Some(t.dirs);
        }
        out.entries.push(e);
    }
    out.entries.sort_by(|a, b| a.name.cmp(&b.name));
    out.duration_ms = started.elapsed().as_millis() as u64;
    Ok(out)
}
