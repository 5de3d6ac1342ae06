//! Filename search over every indexed entry of a library (all locations, offline ones included).
//!
//! The structure is an in-memory index per library, read from the database the first time it is
//! needed: every name, lowercased with diacritics removed, in one byte buffer (NUL-separated),
//! searched with SIMD substring search (`memchr::memmem`), plus a compact row per entry for the
//! filters. On 1M entries that is ~50 MB and a scan of ~20 MB per query; ARCHITECTURE.md has the
//! measurements against SQLite FTS5 that chose it.
//!
//! After that the index follows the entries without reading them all again: the library's change
//! log ([`crate::store::ChangeLog`], filled by SQLite's update hook) says which entries were
//! written, and the next query (or the refresher thread, once writes pause) reads just those and
//! lays them over the whole read (`SearchIndex::update`). The whole read is redone only when the
//! log has dropped changes the index has not seen (more than its capacity since), and in the
//! background once many entries lie over it.
//!
//! Query language: whitespace-separated terms, all of which must occur in the file name
//! (substring, case- and accent-insensitive); a double-quoted span is one term with its spaces.
//! Every other character is literal: `*`, `-`, `:`, a lone `"` have no special meaning.
//! Ranking: exact name, then name prefix, then word start, then anywhere; shorter names first.

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use memchr::memmem;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::filetype::{self, ContentKind};
use crate::index::walk::EntryKind;
use crate::library::Library;
use crate::names::{JsonName, JsonPath};
use crate::tree::{self, Link};
use crate::{Error, Result, names};

/// Lowercase, compatibility-decomposed, without combining marks: `Café` → `cafe`.
pub fn normalize(s: &str) -> String {
    s.nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Splits a query into normalized terms (see the module docs).
pub fn terms(query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = query;
    while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
        rest = &rest[start..];
        let (term, tail) = match rest
            .strip_prefix('"')
            .and_then(|r| r.find('"').map(|end| (&r[..end], &r[end + 1..])))
        {
            Some((phrase, tail)) if !phrase.trim().is_empty() => (phrase, tail),
            _ => {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            }
        };
        let t = normalize(term);
        if !t.is_empty() {
            out.push(t);
        }
        rest = tail;
    }
    out
}

/// How to order results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Order {
    #[default]
    Relevance,
    Name,
    Size,
    Modified,
}

/// A search: text plus filters. Every filter narrows the result.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct Query {
    pub text: String,
    /// Content kinds (from identified content, else from the extension); directories have none.
    pub kinds: Vec<ContentKind>,
    /// Extensions, without the dot, case-insensitive.
    pub extensions: Vec<String>,
    pub larger_than: Option<u64>,
    pub smaller_than: Option<u64>,
    /// Nanoseconds since the epoch.
    pub modified_after: Option<i64>,
    pub modified_before: Option<i64>,
    pub created_after: Option<i64>,
    pub created_before: Option<i64>,
    pub locations: Vec<i64>,
    /// Tag paths (`Work/Invoices`); a tag matches its descendants. All listed tags must match.
    pub tags: Vec<String>,
    pub not_tags: Vec<String>,
    pub favorite: bool,
    /// Words (all of them) or "quoted phrases" the file's extracted text must contain: text,
    /// code, Markdown, HTML and PDF files of deep locations (see `sidecar`).
    pub content: Option<String>,
    /// When a picture was taken (EXIF), nanoseconds since the epoch.
    pub taken_after: Option<i64>,
    pub taken_before: Option<i64>,
    /// Text in the camera's make or model (EXIF), case-insensitive.
    pub camera: Option<String>,
    /// Pictures at least this wide / high, in pixels, as displayed.
    pub min_width: Option<u32>,
    pub min_height: Option<u32>,
    /// `None`: leave out what the user hid. `Some(true)`: only hidden. `Some(false)`: everything.
    pub hidden: Option<bool>,
    pub order: Order,
    pub limit: Option<usize>,
    pub offset: usize,
}

/// One match.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Hit {
    pub id: i64,
    pub location_id: i64,
    pub name: JsonName,
    pub path: JsonPath,
    pub kind: EntryKind,
    pub content_kind: Option<ContentKind>,
    pub size: u64,
    pub mtime: Option<i64>,
    /// With `content`: where the words occur in the file's text, matches in `[brackets]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
}

/// The answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Results {
    /// Matches before `offset`/`limit`.
    pub total: usize,
    pub hits: Vec<Hit>,
    /// Time spent in the engine, microseconds (index build excluded, reported apart).
    pub took_us: u64,
    /// Set when this query had to build the in-memory index first (read every entry).
    pub index_built_ms: Option<u64>,
    /// Set when this query brought the in-memory index up to date first, reading only the
    /// entries changed since it was built, microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_updated_us: Option<u64>,
}

const NO_KIND: u8 = u8::MAX;

/// A set of hidden entry ids and the (generation, meta_generation) it was computed at.
type HiddenAt = ((u64, u64), Arc<HashSet<i64>>);

/// What search keeps per library (one of the library's extensions): the in-memory index and
/// the set of hidden entries, each valid at the generations it was built at.
#[derive(Default)]
struct Cache {
    index: std::sync::Mutex<Option<Arc<SearchIndex>>>,
    /// Hidden entry ids, keyed by (generation, meta_generation).
    hidden: std::sync::Mutex<Option<HiddenAt>>,
    /// Whether the refresher thread runs for this library.
    refreshing: std::sync::atomic::AtomicBool,
}

/// How long entries must stay unchanged before the refresher brings the index up to date (an
/// index job commits a batch at least every 250 ms, so a running scan is not followed batch by
/// batch; a query in the meantime brings it up to date itself).
const QUIET: Duration = Duration::from_millis(500);

/// Keeps a searched library's index current: waits for the entries generation to move, then for
/// it to stay still for [`QUIET`], and updates it (reading it whole again in the background when
/// many changes lie over it) — so the next query finds it ready. Ends when the library closes.
fn refresh(lib: std::sync::Weak<Library>, mut seen: u64) {
    loop {
        let Some(l) = lib.upgrade() else { return };
        if !l.is_open() {
            return;
        }
        let mut g = l.wait_generation(seen, Duration::from_secs(1));
        if g == seen {
            continue;
        }
        loop {
            let next = l.wait_generation(g, QUIET);
            if next == g || !l.is_open() {
                break;
            }
            g = next;
        }
        if !l.is_open() {
            return;
        }
        if let Err(e) = index_of(&l).and_then(|_| compact(&l)) {
            tracing::warn!(error = %e, "bringing the search index up to date");
        }
        seen = g;
    }
}

/// 40 bytes per entry. Times use `NO_TIME` for "unknown".
#[derive(Clone)]
struct Row {
    id: u32,
    parent: u32,
    location: u32,
    kind: EntryKind,
    content_kind: u8,
    size: u64,
    mtime: i64,
    btime: i64,
}

const NO_TIME: i64 = i64::MIN;

fn opt_time(t: i64) -> Option<i64> {
    (t != NO_TIME).then_some(t)
}

fn kind_code(k: ContentKind) -> u8 {
    ContentKind::ALL
        .iter()
        .position(|x| *x == k)
        .unwrap_or(NO_KIND as usize) as u8
}

fn small(v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| {
        Error::Invalid(
            "the library has more entries than the search index can hold (4 billion)".into(),
        )
    })
}

/// The names and rows of a set of entries, in the order they were added.
#[derive(Default)]
struct Names {
    /// Normalized names, each followed by a NUL.
    text: Vec<u8>,
    /// Start offset of each row's name in `text`.
    starts: Vec<u32>,
    rows: Vec<Row>,
    /// Raw names (for results), concatenated; `raw_starts[i]..raw_starts[i + 1]`.
    raw: Vec<u8>,
    raw_starts: Vec<u32>,
}

impl Names {
    fn len(&self) -> usize {
        self.rows.len()
    }

    fn push(&mut self, row: Row, normalized: &[u8], raw: &[u8]) {
        self.starts.push(self.text.len() as u32);
        self.text.extend_from_slice(normalized);
        self.text.push(0);
        self.rows.push(row);
        self.raw_starts.push(self.raw.len() as u32);
        self.raw.extend_from_slice(raw);
    }

    fn name(&self, row: usize) -> &[u8] {
        let start = self.starts[row] as usize;
        let end = self
            .starts
            .get(row + 1)
            .map(|s| *s as usize - 1)
            .unwrap_or(self.text.len() - 1);
        &self.text[start..end]
    }

    fn raw_bytes(&self, row: usize) -> &[u8] {
        let start = self.raw_starts[row] as usize;
        let end = self
            .raw_starts
            .get(row + 1)
            .map(|s| *s as usize)
            .unwrap_or(self.raw.len());
        &self.raw[start..end]
    }

    /// Calls `f(row, score)` for every row whose name contains every term, in row order.
    /// Score (lower is better): 0 exact name, 1 name starts with the longest term, 2 it starts a
    /// word, 3 anywhere.
    fn each_match(
        &self,
        terms: &[String],
        rows: std::ops::Range<usize>,
        mut f: impl FnMut(usize, u8),
    ) {
        if terms.is_empty() {
            rows.for_each(|i| f(i, 0));
            return;
        }
        if rows.is_empty() {
            return;
        }
        let base = self.starts[rows.start] as usize;
        let end = self
            .starts
            .get(rows.end)
            .map(|s| *s as usize)
            .unwrap_or(self.text.len());
        // Scan for the longest term; check the others inside each candidate name.
        let mut order: Vec<&String> = terms.iter().collect();
        order.sort_by_key(|t| std::cmp::Reverse(t.len()));
        let first = memmem::Finder::new(order[0].as_bytes());
        let tlen = order[0].len();
        let rest: Vec<memmem::Finder<'_>> = order[1..]
            .iter()
            .map(|t| memmem::Finder::new(t.as_bytes()))
            .collect();
        if tlen == 1 {
            // A one-byte term occurs everywhere: test each name once instead of visiting every
            // occurrence.
            let byte = order[0].as_bytes()[0];
            for row in rows {
                let name = self.name(row);
                let Some(first_at) = memchr::memchr(byte, name) else {
                    continue;
                };
                let score = if first_at == 0 {
                    if name.len() == 1 && terms.len() == 1 {
                        0
                    } else {
                        1
                    }
                } else if memchr::memchr_iter(byte, name)
                    .any(|i| i == 0 || !name[i - 1].is_ascii_alphanumeric())
                {
                    2
                } else {
                    3
                };
                if rest.iter().all(|t| t.find(name).is_some()) {
                    f(row, score);
                }
            }
            return;
        }
        let mut row = rows.start;
        let mut current: Option<(usize, u8)> = None; // row being collected and its best score
        let emit = |cur: Option<(usize, u8)>, f: &mut dyn FnMut(usize, u8)| {
            if let Some((r, score)) = cur
                && rest.iter().all(|t| t.find(self.name(r)).is_some())
            {
                f(r, score);
            }
        };
        for pos in first.find_iter(&self.text[base..end]).map(|p| p + base) {
            // Hits come in order: search only ahead of the current row.
            if row + 1 < rows.end && self.starts[row + 1] as usize <= pos {
                row += self.starts[row..rows.end].partition_point(|&s| s as usize <= pos) - 1;
            }
            let start = self.starts[row] as usize;
            let score = if pos == start {
                if self.name(row).len() == tlen && terms.len() == 1 {
                    0
                } else {
                    1
                }
            } else if !self.text[pos - 1].is_ascii_alphanumeric() {
                2
            } else {
                3
            };
            match current {
                Some((r, best)) if r == row => current = Some((r, best.min(score))),
                _ => {
                    emit(current, &mut f);
                    current = Some((row, score));
                }
            }
        }
        emit(current, &mut f);
    }
}

/// What a whole read of the entries gives: every result row and every directory's link.
#[derive(Default)]
struct Base {
    names: Names,
    links: HashMap<i64, Link>,
}

/// The in-memory index of one library at one generation: the entries as a whole read left them
/// (`base`, shared between generations) and, over it, the entries changed since, read again one
/// by one from the library's change log.
pub struct SearchIndex {
    generation: u64,
    /// Where the library's change log stood before this index read the database: the changes
    /// after it are not in the index yet.
    position: u64,
    base: Arc<Base>,
    /// Entries changed since `base` was read, as they are now (a gone entry has no row).
    recent: Names,
    /// Ids of those entries: their rows in `base` are out of date.
    stale: HashSet<u32>,
    /// Their directory links now (`None`: gone, or no longer a directory), over `base.links`.
    links: HashMap<i64, Option<Link>>,
    /// Location roots: entry id → path.
    roots: HashMap<i64, PathBuf>,
}

/// Most changed entries an index carries over its base; past it, a query reads everything again.
const MAX_CHANGED: usize = 200_000;
/// Changed entries past which the refresher reads everything again in the background, so
/// queries keep scanning mostly the compact base.
const COMPACT_AT: usize = 20_000;

/// Reads entries (those `filter` selects, or all) and hands each to `f` with its result row,
/// if it is one (location roots are not), and its name normalized.
fn read_entries(
    conn: &Connection,
    filter: &str,
    mut f: impl FnMut(i64, Option<i64>, OsString, EntryKind, Option<(Row, String)>),
) -> Result<()> {
    let mut q = conn.prepare(&format!(
        "SELECT e.id, e.parent_id, e.location_id, e.name, e.kind, e.size, e.mtime, e.btime, c.kind
           FROM entries e
           LEFT JOIN entry_content ec ON ec.entry_id = e.id
           LEFT JOIN content_identities c ON c.id = ec.content_id {filter}"
    ))?;
    let mut rows = q.query([])?;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let parent: Option<i64> = r.get(1)?;
        let name = names::from_sql(r.get_ref(3)?)?;
        let kind = EntryKind::from_i64(r.get(4)?);
        let row = match parent {
            None => None, // location roots are not results
            Some(parent) => {
                let content_kind = match (kind, r.get::<_, Option<String>>(8)?) {
                    (EntryKind::File, Some(k)) => {
                        ContentKind::parse(&k).map(kind_code).unwrap_or(NO_KIND)
                    }
                    (EntryKind::File, None) => kind_code(filetype::detect(&name, &[]).kind),
                    _ => NO_KIND,
                };
                let row = Row {
                    id: small(id)?,
                    parent: small(parent)?,
                    location: small(r.get(2)?)?,
                    kind,
                    content_kind,
                    size: r.get::<_, i64>(5)? as u64,
                    mtime: r.get::<_, Option<i64>>(6)?.unwrap_or(NO_TIME),
                    btime: r.get::<_, Option<i64>>(7)?.unwrap_or(NO_TIME),
                };
                Some((row, normalize(&name.to_string_lossy())))
            }
        };
        f(id, parent, name, kind, row);
    }
    Ok(())
}

fn read_roots(conn: &Connection) -> Result<HashMap<i64, PathBuf>> {
    Ok(crate::location::row::list_with(conn)?
        .into_iter()
        .map(|loc| (loc.root_entry_id, loc.path.0))
        .collect())
}

impl SearchIndex {
    /// Reads every entry. `position` is the change log's, taken before.
    fn build(conn: &Connection, generation: u64, position: u64) -> Result<SearchIndex> {
        let snapshot = conn.unchecked_transaction()?;
        let mut base = Base::default();
        read_entries(&snapshot, "", |id, parent, name, kind, row| {
            if let Some((row, normalized)) = row {
                base.names
                    .push(row, normalized.as_bytes(), name.as_encoded_bytes());
            }
            if kind == EntryKind::Dir {
                base.links.insert(id, (parent, name));
            }
        })?;
        let roots = read_roots(&snapshot)?;
        Ok(SearchIndex {
            generation,
            position,
            base: Arc::new(base),
            recent: Names::default(),
            stale: HashSet::new(),
            links: HashMap::new(),
            roots,
        })
    }

    /// This index brought to `generation` by reading again the entries the change log says were
    /// written since (`changed`, up to `position`); `None` when they are too many, so reading
    /// everything is better.
    fn update(
        &self,
        conn: &Connection,
        changed: Vec<i64>,
        position: u64,
        generation: u64,
    ) -> Result<Option<SearchIndex>> {
        let changed: HashSet<i64> = changed.into_iter().collect();
        let mut stale = self.stale.clone();
        for id in &changed {
            match u32::try_from(*id) {
                Ok(id) => stale.insert(id),
                Err(_) => return Ok(None), // the whole read says why
            };
        }
        if stale.len() > MAX_CHANGED {
            return Ok(None);
        }
        // The entries changed before and not since keep their rows.
        let mut recent = Names::default();
        for i in 0..self.recent.len() {
            let row = &self.recent.rows[i];
            if !changed.contains(&i64::from(row.id)) {
                recent.push(row.clone(), self.recent.name(i), self.recent.raw_bytes(i));
            }
        }
        let mut links = self.links.clone();
        let snapshot = conn.unchecked_transaction()?;
        let ids: Vec<i64> = changed.into_iter().collect();
        for chunk in ids.chunks(5000) {
            for id in chunk {
                links.insert(*id, None); // gone, unless read below as a directory
            }
            let list = chunk
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            read_entries(
                &snapshot,
                &format!("WHERE e.id IN ({list})"),
                |id, parent, name, kind, row| {
                    if let Some((row, normalized)) = row {
                        recent.push(row, normalized.as_bytes(), name.as_encoded_bytes());
                    }
                    if kind == EntryKind::Dir {
                        links.insert(id, Some((parent, name)));
                    }
                },
            )?;
        }
        let roots = read_roots(&snapshot)?;
        Ok(Some(SearchIndex {
            generation,
            position,
            base: self.base.clone(),
            recent,
            stale,
            links,
            roots,
        }))
    }

    /// How many entries this index carries over its base.
    fn changed(&self) -> usize {
        self.stale.len()
    }

    /// Rows are numbered through the base, then the recent ones.
    fn part(&self, i: usize) -> (&Names, usize) {
        let n = self.base.names.len();
        if i < n {
            (&self.base.names, i)
        } else {
            (&self.recent, i - n)
        }
    }

    fn row(&self, i: usize) -> &Row {
        let (names, r) = self.part(i);
        &names.rows[r]
    }

    fn name(&self, i: usize) -> &[u8] {
        let (names, r) = self.part(i);
        names.name(r)
    }

    fn raw_name(&self, i: usize) -> OsString {
        let (names, r) = self.part(i);
        <OsString as std::os::unix::ffi::OsStringExt>::from_vec(names.raw_bytes(r).to_vec())
    }

    /// Whether row `i` is the entry as it is now (not a base row changed since).
    fn is_current(&self, i: usize) -> bool {
        i >= self.base.names.len()
            || self.stale.is_empty()
            || !self.stale.contains(&self.base.names.rows[i].id)
    }

    /// Path of directory `id`, if it hangs under a location root.
    fn dir_path(&self, id: i64) -> Option<PathBuf> {
        let path = tree::climb(
            id,
            |cur| self.roots.get(&cur).cloned(),
            |cur| {
                Ok::<_, std::convert::Infallible>(match self.links.get(&cur) {
                    Some(link) => link.clone(),
                    None => self.base.links.get(&cur).cloned(),
                })
            },
            |_, _| {},
        );
        match path {
            Ok(p) => p,
            Err(never) => match never {},
        }
    }
}

/// Entry ids carrying any of `tag_ids`, directly or through their content.
fn tagged(conn: &Connection, tag_ids: &[i64]) -> Result<HashSet<i64>> {
    let list = tag_ids
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut q = conn.prepare(&format!(
        "SELECT entry_id FROM tag_assignments WHERE tag_id IN ({list}) AND entry_id IS NOT NULL
         UNION SELECT ec.entry_id FROM tag_assignments t JOIN entry_content ec ON ec.content_id = t.content_id
           JOIN content_identities ci ON ci.id = ec.content_id
          WHERE t.tag_id IN ({list}) AND {}",
        crate::copies::CONFIRMED_MEMBER
    ))?;
    let ids = q
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

fn flagged(conn: &Connection, column: &str) -> Result<HashSet<i64>> {
    let mut q = conn.prepare(&format!(
        "SELECT entry_id FROM user_metadata WHERE {column} = 1 AND entry_id IS NOT NULL
         UNION SELECT ec.entry_id FROM user_metadata m JOIN entry_content ec ON ec.content_id = m.content_id
           JOIN content_identities ci ON ci.id = ec.content_id
          WHERE m.{column} = 1 AND {}",
        crate::copies::CONFIRMED_MEMBER
    ))?;
    let ids = q
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

/// How a query found the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Freshness {
    /// Current already.
    Ready,
    /// Brought up to date from the change log, in this many microseconds.
    Updated(u64),
    /// Read whole, in this many milliseconds.
    Built(u64),
}

/// The library's index at its current generation: as it was, brought up to date from the
/// change log, or read whole when there is none yet or it is too far behind.
fn index_of(lib: &Library) -> Result<(Arc<SearchIndex>, Freshness)> {
    let cache = lib.extension::<Cache>();
    let mut slot = cache.index.lock().unwrap_or_else(|p| p.into_inner());
    let generation = lib.generation();
    if !cache
        .refreshing
        .swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        let weak = lib.weak();
        std::thread::Builder::new()
            .name("sd-search-refresh".into())
            .spawn(move || refresh(weak, generation))
            .map_err(|e| Error::io("<search refresh thread>", e))?;
    }
    let started = Instant::now();
    if let Some(idx) = slot.as_ref() {
        if idx.generation == generation {
            return Ok((idx.clone(), Freshness::Ready));
        }
        // Everything committed before `generation` moved is in the log by now.
        if let Some((changed, position)) = lib.entry_changes().since(idx.position)
            && let Some(next) = idx.update(&lib.reader()?, changed, position, generation)?
        {
            let next = Arc::new(next);
            *slot = Some(next.clone());
            return Ok((
                next,
                Freshness::Updated(started.elapsed().as_micros() as u64),
            ));
        }
    }
    let position = lib.entry_changes().position();
    let idx = Arc::new(SearchIndex::build(&lib.reader()?, generation, position)?);
    *slot = Some(idx.clone());
    Ok((idx, Freshness::Built(started.elapsed().as_millis() as u64)))
}

/// Reads the whole index again when it carries many changed entries over its base, without
/// holding up queries: they go on with the current one meanwhile, and the next one brings the
/// new one up to date from the change log.
fn compact(lib: &Library) -> Result<()> {
    let cache = lib.extension::<Cache>();
    let behind = cache
        .index
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .is_some_and(|idx| idx.changed() > COMPACT_AT);
    if !behind {
        return Ok(());
    }
    let generation = lib.generation();
    let position = lib.entry_changes().position();
    let idx = SearchIndex::build(&lib.reader()?, generation, position)?;
    *cache.index.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(idx));
    Ok(())
}

/// Keeps `key` if it is among the `want` smallest seen so far (`best` is a max-heap of them).
fn offer(best: &mut BinaryHeap<(u8, usize, usize)>, want: usize, key: (u8, usize, usize)) {
    if best.len() < want {
        best.push(key);
    } else if best.peek().is_some_and(|top| key < *top) {
        best.pop();
        best.push(key);
    }
}

/// Entries the user hid (directly or through their content), cached until entries or
/// organisation change.
fn hidden_set(lib: &Library) -> Result<Arc<HashSet<i64>>> {
    let key = (lib.generation(), lib.meta_generation());
    let cache = lib.extension::<Cache>();
    let mut slot = cache.hidden.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((k, set)) = slot.as_ref()
        && *k == key
    {
        return Ok(set.clone());
    }
    let set = Arc::new(flagged(&lib.reader()?, "hidden")?);
    *slot = Some((key, set.clone()));
    Ok(set)
}

/// The longest query text accepted, in bytes (a file name holds at most 255).
pub const MAX_QUERY_BYTES: usize = 1024;
/// The most distinct terms a query may have; each one is tested against every candidate name.
pub const MAX_TERMS: usize = 32;

/// Refuses a query that is too long or whose ranges cannot match anything; returns its terms
/// (deduplicated: a repeated term changes nothing).
fn check(q: &Query) -> Result<Vec<String>> {
    if q.text.len() > MAX_QUERY_BYTES {
        return Err(Error::Invalid(format!(
            "the search text is {} bytes long; at most {MAX_QUERY_BYTES} are accepted (a file name has at most 255): search for a few words of the name",
            q.text.len()
        )));
    }
    let mut terms = terms(&q.text);
    let mut seen = HashSet::new();
    terms.retain(|t| seen.insert(t.clone()));
    if terms.len() > MAX_TERMS {
        return Err(Error::Invalid(format!(
            "the search has {} different words; at most {MAX_TERMS} are accepted: search for a few words of the name",
            terms.len()
        )));
    }
    let empty = |what: &str, low: Option<i64>, high: Option<i64>| match (low, high) {
        (Some(a), Some(b)) if a >= b => Err(Error::Invalid(format!(
            "{what}_after is not earlier than {what}_before, so nothing can match; swap the two dates"
        ))),
        _ => Ok(()),
    };
    empty("modified", q.modified_after, q.modified_before)?;
    empty("created", q.created_after, q.created_before)?;
    empty("taken", q.taken_after, q.taken_before)?;
    if q.content
        .as_ref()
        .is_some_and(|c| c.len() > MAX_QUERY_BYTES)
    {
        return Err(Error::Invalid(format!(
            "the --content text is longer than {MAX_QUERY_BYTES} bytes: search for a few words of it"
        )));
    }
    if let (Some(a), Some(b)) = (q.larger_than, q.smaller_than)
        && a.saturating_add(1) >= b
    {
        return Err(Error::Invalid(format!(
            "no size is larger than {a} bytes and smaller than {b}: check --larger-than and --smaller-than"
        )));
    }
    Ok(terms)
}

/// Builds the in-memory index ahead of the first search.
pub fn warm(lib: &Library) -> Result<()> {
    index_of(lib).map(|_| ())
}

/// Runs a query.
pub fn search(lib: &Library, q: &Query) -> Result<Results> {
    let terms = check(q)?;
    let (idx, fresh) = index_of(lib)?;
    let started = Instant::now();
    let media_filter = crate::sidecar::MediaFilter {
        taken_after: q.taken_after,
        taken_before: q.taken_before,
        camera: q.camera.clone().filter(|c| !c.trim().is_empty()),
        min_width: q.min_width,
        min_height: q.min_height,
    };
    let by_media = media_filter.taken_after.is_some()
        || media_filter.taken_before.is_some()
        || media_filter.camera.is_some()
        || media_filter.min_width.is_some()
        || media_filter.min_height.is_some();
    let needs_db = !q.tags.is_empty()
        || !q.not_tags.is_empty()
        || q.favorite
        || by_media
        || q.content.is_some();
    let conn = if needs_db { Some(lib.reader()?) } else { None };
    let tag_set = |paths: &[String]| -> Result<Vec<HashSet<i64>>> {
        match &conn {
            Some(c) => paths
                .iter()
                .map(|p| tagged(c, &crate::organise::tag_and_descendants(c, p)?))
                .collect(),
            None => Ok(Vec::new()),
        }
    };
    let with_tags = tag_set(&q.tags)?;
    let without_tags = tag_set(&q.not_tags)?;
    let favorites = match (&conn, q.favorite) {
        (Some(c), true) => Some(flagged(c, "favorite")?),
        _ => None,
    };
    let media = match (&conn, by_media) {
        (Some(c), true) => Some(crate::sidecar::media_matches(c, &media_filter)?),
        _ => None,
    };
    let texts = match (&conn, &q.content) {
        (Some(c), Some(text)) => Some(crate::sidecar::text_matches(c, text)?),
        _ => None,
    };
    let hidden = hidden_set(lib)?;
    let kinds: Vec<u8> = q.kinds.iter().map(|k| kind_code(*k)).collect();
    let exts: Vec<String> = q
        .extensions
        .iter()
        .map(|e| normalize(e.trim_start_matches('.')))
        .collect();
    // With no filter that needs the row, matches never touch it (one cache miss each otherwise).
    let filtering = !kinds.is_empty()
        || !exts.is_empty()
        || q.larger_than.is_some()
        || q.smaller_than.is_some()
        || q.modified_after.is_some()
        || q.modified_before.is_some()
        || q.created_after.is_some()
        || q.created_before.is_some()
        || !q.locations.is_empty()
        || !with_tags.is_empty()
        || !without_tags.is_empty()
        || favorites.is_some()
        || media.is_some()
        || texts.is_some()
        || q.hidden == Some(true)
        || (q.hidden.is_none() && !hidden.is_empty());
    let keep = |i: usize| -> bool {
        if !idx.is_current(i) {
            return false;
        }
        if !filtering {
            return true;
        }
        let r = idx.row(i);
        let id = i64::from(r.id);
        if !kinds.is_empty() && !kinds.contains(&r.content_kind) {
            return false;
        }
        if !exts.is_empty() {
            let name = idx.name(i);
            let ext = name
                .iter()
                .rposition(|b| *b == b'.')
                .map(|d| &name[d + 1..]);
            if !ext.is_some_and(|e| exts.iter().any(|x| x.as_bytes() == e))
                || r.kind == EntryKind::Dir
            {
                return false;
            }
        }
        let file_size = (r.kind != EntryKind::Dir).then_some(r.size);
        if q.larger_than
            .is_some_and(|min| file_size.is_none_or(|s| s <= min))
            || q.smaller_than
                .is_some_and(|max| file_size.is_none_or(|s| s >= max))
        {
            return false;
        }
        // A bound of i64::MAX stands for any time past 2262 (see `parse_date`): every stored
        // time, kept at most at i64::MAX, is before it.
        let in_range = |v: Option<i64>, after: Option<i64>, before: Option<i64>| {
            v.is_some_and(|v| {
                after.is_none_or(|a| v >= a) && before.is_none_or(|b| v < b || b == i64::MAX)
            }) || (after.is_none() && before.is_none())
        };
        if !in_range(opt_time(r.mtime), q.modified_after, q.modified_before)
            || !in_range(opt_time(r.btime), q.created_after, q.created_before)
        {
            return false;
        }
        if !q.locations.is_empty() && !q.locations.contains(&i64::from(r.location)) {
            return false;
        }
        if !with_tags.iter().all(|s| s.contains(&id))
            || without_tags.iter().any(|s| s.contains(&id))
        {
            return false;
        }
        if favorites.as_ref().is_some_and(|f| !f.contains(&id))
            || media.as_ref().is_some_and(|m| !m.contains(&id))
            || texts.as_ref().is_some_and(|t| !t.contains_key(&id))
        {
            return false;
        }
        match q.hidden {
            None => !hidden.contains(&id),
            Some(true) => hidden.contains(&id),
            Some(false) => true,
        }
    };
    // One pass: match, filter, rank — on two threads, each over half the base's names (the
    // first also over the recent ones). Relevance keeps only the best `offset + limit` in a heap
    // per thread; the heaps are merged after.
    let want = q.offset.saturating_add(q.limit.unwrap_or(usize::MAX));
    let based = idx.base.names.len();
    let half = based / 2;
    let scan = |parts: &[(&Names, usize, std::ops::Range<usize>)]| {
        let mut total = 0usize;
        let mut best: BinaryHeap<(u8, usize, usize)> = BinaryHeap::new();
        let mut all: Vec<usize> = Vec::new();
        for (names, first, rows) in parts {
            names.each_match(&terms, rows.clone(), |r, score| {
                let i = first + r;
                if !keep(i) {
                    return;
                }
                total += 1;
                if q.order == Order::Relevance {
                    offer(&mut best, want, (score, names.name(r).len(), i));
                } else {
                    all.push(i);
                }
            });
        }
        (total, best, all)
    };
    let ((t0, b0, mut all), (t1, b1, a1)) = std::thread::scope(|s| {
        let second = s.spawn(|| scan(&[(&idx.base.names, 0, half..based)]));
        let first = scan(&[
            (&idx.base.names, 0, 0..half),
            (&idx.recent, based, 0..idx.recent.len()),
        ]);
        (first, second.join().expect("search thread"))
    });
    let total = t0 + t1;
    all.extend(a1);
    let mut best = b0;
    for key in b1 {
        offer(&mut best, want, key);
    }
    let matched: Vec<usize> = match q.order {
        Order::Relevance => best.into_sorted_vec().into_iter().map(|k| k.2).collect(),
        Order::Name => {
            all.sort_by(|a, b| idx.name(*a).cmp(idx.name(*b)).then(a.cmp(b)));
            all
        }
        Order::Size => {
            all.sort_by_key(|i| (std::cmp::Reverse(idx.row(*i).size), *i));
            all
        }
        Order::Modified => {
            all.sort_by_key(|i| (std::cmp::Reverse(idx.row(*i).mtime), *i));
            all
        }
    };
    let hits = matched
        .into_iter()
        .skip(q.offset)
        .take(q.limit.unwrap_or(usize::MAX))
        .filter_map(|i| {
            let r = idx.row(i);
            let dir = idx.dir_path(i64::from(r.parent))?;
            let name = idx.raw_name(i);
            Some(Hit {
                id: i64::from(r.id),
                location_id: i64::from(r.location),
                path: JsonPath(dir.join(&name)),
                name: JsonName(name),
                kind: r.kind,
                content_kind: ContentKind::ALL.get(r.content_kind as usize).copied(),
                size: r.size,
                mtime: opt_time(r.mtime),
                snippet: texts
                    .as_ref()
                    .and_then(|t| t.get(&i64::from(r.id)).cloned()),
            })
        })
        .collect();
    Ok(Results {
        total,
        hits,
        took_us: started.elapsed().as_micros() as u64,
        index_built_ms: match fresh {
            Freshness::Built(ms) => Some(ms),
            _ => None,
        },
        index_updated_us: match fresh {
            Freshness::Updated(us) => Some(us),
            _ => None,
        },
    })
}

/// The date and time forms [`parse_date`] accepts, as shown in its error messages.
pub const DATE_FORMS: &str = "2019, 2019-03, 2019-03-02, 2019-03-02T10:00 (or with a space), 2019-03-02T10:00:30, \
     2019-03-02T10:00+01:00, 2019-03-02T10:00Z, 2019-03-02T10:00[Europe/Paris]";

/// Parses a date or time as a user types it into nanoseconds since the epoch (see
/// [`DATE_FORMS`]); the calendar is `jiff`'s. A form without an offset or zone is a time in `tz`
/// (the CLI passes the system's). A date alone means its first instant, so `--modified-after
/// 2019-03` includes March and `--modified-before 2019-03` does not. Impossible dates
/// (`2019-02-30`) are refused, never rolled over.
///
/// Times are nanoseconds in an `i64`, which spans 1677-09-21 to 2262-04-11; an instant outside
/// that is clamped to its end, where the indexer also keeps files stamped beyond it, so
/// `--modified-before 2500-01-01` matches every ordinary file and `--modified-after 2263-01-01`
/// none of them.
pub fn parse_date(s: &str, tz: &jiff::tz::TimeZone) -> Result<i64> {
    let t = s.trim();
    let bad = |why: &dyn std::fmt::Display| {
        Error::Invalid(format!(
            "{t:?} is not a date or time ({why}); use a form like {DATE_FORMS}"
        ))
    };
    if let Some(why) = impossible_day(t) {
        return Err(bad(&why));
    }
    let ts = if let Some(date) = year_or_month(t).map_err(|e| bad(&e))? {
        tz.to_zoned_datetime(date.to_datetime(jiff::civil::Time::midnight()))
            .map_err(|e| bad(&e))?
            .timestamp()
    } else if let Ok(z) = t.parse::<jiff::ZonedDateTime>() {
        z.timestamp()
    } else if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        ts
    } else {
        let dt: jiff::civil::DateTime = t.parse().map_err(|e| bad(&e))?;
        tz.to_zoned_datetime(dt).map_err(|e| bad(&e))?.timestamp()
    };
    let ns = ts.as_nanosecond();
    Ok(i64::try_from(ns).unwrap_or(if ns < 0 { i64::MIN + 1 } else { i64::MAX }))
}

/// `2019` or `2019-03` (four-digit year): that year's or month's first day.
fn year_or_month(t: &str) -> std::result::Result<Option<jiff::civil::Date>, String> {
    let digits = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_digit());
    let (y, m) = match t.split_once('-') {
        None if digits(t, 4) => (t, "01"),
        Some((y, m)) if digits(y, 4) && digits(m, 2) => (y, m),
        _ => return Ok(None),
    };
    let (y, m): (i16, i8) = (
        y.parse().map_err(|_| "bad year")?,
        m.parse().map_err(|_| "bad month")?,
    );
    if !(1..=12).contains(&m) {
        return Err(format!("there is no month {m}"));
    }
    jiff::civil::Date::new(y, m, 1)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Why `YYYY-MM-DD…` names a day its month does not have (`2019-02-30`), if it does.
fn impossible_day(t: &str) -> Option<String> {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())?
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| t[r].parse::<i16>().ok())?
    };
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || b.get(10).is_some_and(u8::is_ascii_digit)
    {
        return None;
    }
    let (y, m, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    if !(1..=12).contains(&m) {
        return Some(format!("there is no month {m}"));
    }
    let days = i16::from(jiff::civil::Date::new(y, m as i8, 1).ok()?.days_in_month());
    (d < 1 || d > days).then(|| format!("{} {y} has {days} days", MONTHS[(m - 1) as usize]))
}

/// Parses `1MB`, `1.5 GiB`, `200k`, `4096`: decimal units for KB/MB/GB, binary for KiB/MiB/GiB.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| Error::Invalid(format!("{s:?} is not a size; try 10MB or 1GiB")))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024f64.powi(2),
        "gib" => 1024f64.powi(3),
        "tib" => 1024f64.powi(4),
        other => {
            return Err(Error::Invalid(format!(
                "unknown size unit {other:?} in {s:?}"
            )));
        }
    };
    let bytes = (n * mult).round();
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(Error::Invalid(format!(
            "{s:?} is more bytes than any file can have"
        )));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_literal_and_normalized() {
        assert_eq!(terms("Café  résumé"), vec!["cafe", "resume"]);
        assert_eq!(terms(r#""2019 beach" x"#), vec!["2019 beach", "x"]);
        assert_eq!(terms(r#"a"b *c -d e:f"#), vec![r#"a"b"#, "*c", "-d", "e:f"]);
        assert_eq!(terms(r#"" lone"#), vec!["\"", "lone"]);
        assert_eq!(terms("   "), Vec::<String>::new());
        assert_eq!(normalize("GRÖSSE Ärger Ωmega"), "grosse arger ωmega");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MB").unwrap(), 1_000_000);
        assert_eq!(parse_size("1.5 KiB").unwrap(), 1536);
        assert_eq!(parse_size("42").unwrap(), 42);
        assert!(parse_size("3 parsecs").is_err());
        assert!(parse_size("99999999999999999999TB").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn dates_in_the_forms_users_type() {
        use jiff::tz::TimeZone;
        let utc = TimeZone::UTC;
        let d = |s: &str| parse_date(s, &utc);
        const S: i64 = 1_000_000_000;
        assert_eq!(d("1970-01-02").unwrap(), 86_400 * S);
        assert_eq!(d("2019-01-01").unwrap(), 1_546_300_800 * S);
        assert_eq!(d("2019").unwrap(), 1_546_300_800 * S);
        assert_eq!(d("2019-03").unwrap(), d("2019-03-01").unwrap());
        assert_eq!(
            d("2019-03-02T10:00").unwrap(),
            d("2019-03-02").unwrap() + 36_000 * S
        );
        assert_eq!(
            d("2019-03-02 10:00").unwrap(),
            d("2019-03-02T10:00").unwrap()
        );
        assert_eq!(
            d(" 2019-03-02T10:00:30 ").unwrap(),
            d("2019-03-02T10:00").unwrap() + 30 * S
        );
        assert_eq!(
            d("2019-03-02T10:00Z").unwrap(),
            d("2019-03-02T10:00").unwrap()
        );
        assert_eq!(
            d("2019-03-02T10:00+01:00").unwrap(),
            d("2019-03-02T09:00").unwrap()
        );
        assert_eq!(
            d("2019-03-02T10:00[Europe/Paris]").unwrap(),
            d("2019-03-02T09:00").unwrap()
        );
        // A form without an offset is in the zone given.
        let paris = TimeZone::get("Europe/Paris").unwrap();
        assert_eq!(
            parse_date("2019-03-02T10:00", &paris).unwrap(),
            d("2019-03-02T09:00").unwrap()
        );
        // Impossible days are refused, not rolled over into the next month.
        let e = d("2019-02-30").unwrap_err().to_string();
        assert!(e.contains("February 2019 has 28 days"), "{e}");
        assert!(d("2020-02-29").is_ok());
        assert!(d("2019-02-29").is_err());
        assert!(d("2019-04-31T10:00").is_err());
        assert!(d("2019-13-01").is_err());
        assert!(d("2019-00").is_err());
        assert!(d("2019-03-00").is_err());
        assert!(d("yesterday").is_err());
        assert!(d("").is_err());
        assert!(d("99999-01-01").is_err());
        assert!(d("2019-03-02T25:00").is_err());
        // Outside what i64 nanoseconds hold: clamped, never wrapped.
        assert_eq!(d("2263-01-01").unwrap(), i64::MAX);
        assert_eq!(d("9000-12-31").unwrap(), i64::MAX);
        assert_eq!(d("1600-01-01").unwrap(), i64::MIN + 1);
        assert!(d("2262-01-01").unwrap() < i64::MAX);
    }
}
