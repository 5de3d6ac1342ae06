//! Indexer rules: which paths a location leaves out.
//!
//! Three sources, each toggled per location ([`RuleConfig`]):
//! - **system defaults**: OS clutter that is never user data (`.DS_Store`, `Thumbs.db`,
//!   `.Trash-*`, `lost+found`, …), matched on the file name;
//! - **`.gitignore` files** found in the location, with git's semantics: a file's patterns apply
//!   to its directory and below, deeper files override shallower ones, `!` re-includes. They are
//!   honoured whether or not the folder is a git repository;
//! - **custom globs** given when the location is added, matched on the file name.
//!
//! Rules only decide what is *recorded*; they never touch files.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use globset::{Glob, GlobSet, GlobSetBuilder};
use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// File names the system-default rule leaves out.
pub const SYSTEM_DEFAULTS: &[&str] = &[
    ".DS_Store",
    ".AppleDouble",
    ".Spotlight-V100",
    ".Trashes",
    ".fseventsd",
    ".TemporaryItems",
    ".Trash-*",
    "Thumbs.db",
    "ehthumbs.db",
    "desktop.ini",
    "$RECYCLE.BIN",
    "System Volume Information",
    "lost+found",
];

/// Per-location rule toggles, stored as JSON in the location row.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RuleConfig {
    /// Leave out [`SYSTEM_DEFAULTS`].
    pub system_defaults: bool,
    /// Honour `.gitignore` files inside the location.
    pub gitignore: bool,
    /// Extra file-name globs to leave out (`*.tmp`, `node_modules`).
    #[serde(default)]
    pub ignore: Vec<String>,
}

impl Default for RuleConfig {
    fn default() -> Self {
        RuleConfig {
            system_defaults: true,
            gitignore: true,
            ignore: Vec::new(),
        }
    }
}

/// Compiled rules for one walk.
#[derive(Debug)]
pub struct Rules {
    config: RuleConfig,
    names: GlobSet,
}

impl Rules {
    /// Compiles a configuration; an invalid custom glob is an error naming the glob.
    pub fn new(config: RuleConfig) -> Result<Rules> {
        let mut b = GlobSetBuilder::new();
        let mut add = |g: &str| -> Result<()> {
            let glob =
                Glob::new(g).map_err(|e| Error::Invalid(format!("ignore rule {g:?}: {e}")))?;
            b.add(glob);
            Ok(())
        };
        if config.system_defaults {
            for g in SYSTEM_DEFAULTS {
                add(g)?;
            }
        }
        for g in &config.ignore {
            add(g)?;
        }
        let names = b
            .build()
            .map_err(|e| Error::Invalid(format!("ignore rules: {e}")))?;
        Ok(Rules { config, names })
    }

    /// The configuration these rules were built from.
    pub fn config(&self) -> &RuleConfig {
        &self.config
    }

    /// Whether the entry at `path` (named `name`, inside a directory governed by `chain`) is left out.
    pub fn excluded(&self, name: &OsStr, path: &Path, is_dir: bool, chain: &IgnoreChain) -> bool {
        if self.names.is_match(Path::new(name)) {
            return true;
        }
        self.config.gitignore && chain.ignored(path, is_dir)
    }

    /// The ignore chain for directory `dir`, given the chain of its parent: extended when `dir`
    /// holds a `.gitignore` (and the rule is on). `has_gitignore` says whether the listing saw one.
    pub fn chain_for(
        &self,
        parent: &Arc<IgnoreChain>,
        dir: &Path,
        has_gitignore: bool,
    ) -> (Arc<IgnoreChain>, Option<String>) {
        if !self.config.gitignore || !has_gitignore {
            return (parent.clone(), None);
        }
        let mut b = GitignoreBuilder::new(dir);
        let err = b.add(dir.join(".gitignore")).map(|e| e.to_string());
        match b.build() {
            Ok(gi) if !gi.is_empty() => (
                Arc::new(IgnoreChain {
                    gitignore: Some(gi),
                    parent: Some(parent.clone()),
                }),
                err,
            ),
            Ok(_) => (parent.clone(), err),
            Err(e) => (parent.clone(), Some(e.to_string())),
        }
    }

    /// Rebuilds the chain for a directory deep inside `root` (used when a scan resumes from a
    /// checkpoint and the chain built on the way down is gone).
    pub fn chain_from_root(&self, root: &Path, dir: &Path) -> Arc<IgnoreChain> {
        let mut chain = Arc::new(IgnoreChain::default());
        if !self.config.gitignore {
            return chain;
        }
        let mut cur = PathBuf::from(root);
        let rel = dir.strip_prefix(root).unwrap_or(Path::new(""));
        let mut dirs = vec![cur.clone()];
        for c in rel.components() {
            cur.push(c);
            dirs.push(cur.clone());
        }
        for d in dirs {
            let has = d.join(".gitignore").is_file();
            chain = self.chain_for(&chain, &d, has).0;
        }
        chain
    }
}

/// The `.gitignore` matchers in force for a directory: its own (if any), then its ancestors'.
#[derive(Debug, Default)]
pub struct IgnoreChain {
    gitignore: Option<Gitignore>,
    parent: Option<Arc<IgnoreChain>>,
}

impl IgnoreChain {
    /// The deepest `.gitignore` with an opinion on `path` decides, as in git.
    pub fn ignored(&self, path: &Path, is_dir: bool) -> bool {
        let mut cur = Some(self);
        while let Some(c) = cur {
            if let Some(gi) = &c.gitignore {
                match gi.matched(path, is_dir) {
                    Match::Ignore(_) => return true,
                    Match::Whitelist(_) => return false,
                    Match::None => {}
                }
            }
            cur = c.parent.as_deref();
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_gitignore_and_custom_globs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("proj/sub")).unwrap();
        std::fs::write(root.join("proj/.gitignore"), "target/\n*.log\n!keep.log\n").unwrap();
        std::fs::write(root.join("proj/sub/.gitignore"), "*.tmp\n").unwrap();
        let rules = Rules::new(RuleConfig {
            ignore: vec!["*.bak".into()],
            ..RuleConfig::default()
        })
        .unwrap();
        let top = Arc::new(IgnoreChain::default());
        let proj = rules.chain_for(&top, &root.join("proj"), true).0;
        let sub = rules.chain_for(&proj, &root.join("proj/sub"), true).0;
        let ex = |name: &str, rel: &str, dir: bool, chain: &IgnoreChain| {
            rules.excluded(OsStr::new(name), &root.join(rel), dir, chain)
        };
        assert!(ex(".DS_Store", ".DS_Store", false, &top));
        assert!(ex(".Trash-1000", ".Trash-1000", true, &top));
        assert!(ex("x.bak", "x.bak", false, &top));
        assert!(
            !ex("target", "target", true, &top),
            "gitignore applies below its dir only"
        );
        assert!(ex("target", "proj/target", true, &proj));
        assert!(
            !ex("target", "proj/target", false, &proj),
            "target/ matches directories only"
        );
        assert!(ex("build.log", "proj/build.log", false, &proj));
        assert!(!ex("keep.log", "proj/keep.log", false, &proj));
        assert!(ex("a.tmp", "proj/sub/a.tmp", false, &sub));
        assert!(
            ex("b.log", "proj/sub/b.log", false, &sub),
            "parent rules still apply"
        );
        let rebuilt = rules.chain_from_root(root, &root.join("proj/sub"));
        assert!(rebuilt.ignored(&root.join("proj/sub/b.log"), false));
        assert!(rebuilt.ignored(&root.join("proj/sub/a.tmp"), false));

        let none = Rules::new(RuleConfig {
            system_defaults: false,
            gitignore: false,
            ignore: vec![],
        })
        .unwrap();
        assert!(!none.excluded(
            OsStr::new(".DS_Store"),
            &root.join(".DS_Store"),
            false,
            &top
        ));
        assert!(!none.excluded(OsStr::new("a.log"), &root.join("proj/a.log"), false, &proj));
        assert!(
            Rules::new(RuleConfig {
                ignore: vec!["a[".into()],
                ..RuleConfig::default()
            })
            .is_err()
        );
    }
}
