//! Filename search over every indexed entry of a library (all locations, offline ones included).
//!
//! The structure is an in-memory index per library, built from the database the first time it is
//! needed after the entries changed: every name, lowercased with diacritics removed, in one byte
//! buffer (NUL-separated), searched with SIMD substring search (`memchr::memmem`), plus a compact
//! row per entry for the filters. On 1M entries that is ~50 MB and a scan of ~20 MB per query;
//! ARCHITECTURE.md has the measurements against SQLite FTS5 that chose it.
//!
//! Query language: whitespace-separated terms, all of which must occur in the file name
//! (substring, case- and accent-insensitive); a double-quoted span is one term with its spaces.
//! Every other character is literal: `*`, `-`, `:`, a lone `"` have no special meaning.
//! Ranking: exact name, then name prefix, then word start, then anywhere; shorter names first.

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use memchr::memmem;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::filetype::{self, ContentKind};
use crate::index::walk::EntryKind;
use crate::library::Library;
use crate::names::{JsonName, JsonPath};
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
    /// `None`: leave out what the user hid. `Some(true)`: only hidden. `Some(false)`: everything.
    pub hidden: Option<bool>,
    pub order: Order,
    pub limit: Option<usize>,
    pub offset: usize,
}

/// One match.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hit {
    pub id: i64,
    pub location_id: i64,
    pub name: JsonName,
    pub path: JsonPath,
    pub kind: EntryKind,
    pub content_kind: Option<ContentKind>,
    pub size: u64,
    pub mtime: Option<i64>,
}

/// The answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// Matches before `offset`/`limit`.
    pub total: usize,
    pub hits: Vec<Hit>,
    /// Time spent in the engine, microseconds (index build excluded, reported apart).
    pub took_us: u64,
    /// Set when this query had to (re)build the in-memory index first.
    pub index_built_ms: Option<u64>,
}

const NO_KIND: u8 = u8::MAX;

/// A library's cached set of hidden entry ids, with the generations it was computed at.
pub(crate) type HiddenCache = std::sync::Mutex<Option<((u64, u64), Arc<HashSet<i64>>)>>;

/// 40 bytes per entry. Times use `NO_TIME` for "unknown".
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

/// The in-memory index of one library at one generation.
pub struct SearchIndex {
    generation: u64,
    /// Normalized names, each followed by a NUL.
    text: Vec<u8>,
    /// Start offset of each row's name in `text`.
    starts: Vec<u32>,
    rows: Vec<Row>,
    /// Raw names (for results), concatenated; `raw_starts[i]..raw_starts[i + 1]`.
    raw: Vec<u8>,
    raw_starts: Vec<u32>,
    /// Directory id → (parent, raw name), and location roots → path.
    dirs: HashMap<i64, (Option<i64>, OsString)>,
    roots: HashMap<i64, PathBuf>,
}

fn kind_code(k: ContentKind) -> u8 {
    ContentKind::ALL
        .iter()
        .position(|x| *x == k)
        .unwrap_or(NO_KIND as usize) as u8
}

impl SearchIndex {
    fn build(conn: &Connection, generation: u64) -> Result<SearchIndex> {
        let mut idx = SearchIndex {
            generation,
            text: Vec::new(),
            starts: Vec::new(),
            rows: Vec::new(),
            raw: Vec::new(),
            raw_starts: Vec::new(),
            dirs: HashMap::new(),
            roots: HashMap::new(),
        };
        for loc in crate::location::list_with(conn)? {
            idx.roots.insert(loc.root_entry_id, loc.path.0.clone());
        }
        let mut q = conn.prepare(
            "SELECT e.id, e.parent_id, e.location_id, e.name, e.kind, e.size, e.mtime, e.btime, c.kind
               FROM entries e
               LEFT JOIN entry_content ec ON ec.entry_id = e.id
               LEFT JOIN content_identities c ON c.id = ec.content_id",
        )?;
        let mut rows = q.query([])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let parent: Option<i64> = r.get(1)?;
            let name = names::from_sql(r.get_ref(3)?)?;
            let kind = EntryKind::from_i64(r.get(4)?);
            if kind == EntryKind::Dir {
                idx.dirs.insert(id, (parent, name.clone()));
            }
            let Some(parent) = parent else { continue }; // location roots are not results
            let content_kind = match (kind, r.get::<_, Option<String>>(8)?) {
                (EntryKind::File, Some(k)) => {
                    ContentKind::parse(&k).map(kind_code).unwrap_or(NO_KIND)
                }
                (EntryKind::File, None) => kind_code(filetype::detect(&name, &[]).kind),
                _ => NO_KIND,
            };
            let lossy = name.to_string_lossy();
            idx.starts.push(idx.text.len() as u32);
            idx.text.extend_from_slice(normalize(&lossy).as_bytes());
            idx.text.push(0);
            let small = |v: i64| {
                u32::try_from(v).map_err(|_| {
                    Error::Invalid(
                        "the library has more entries than the search index can hold (4 billion)"
                            .into(),
                    )
                })
            };
            idx.rows.push(Row {
                id: small(id)?,
                parent: small(parent)?,
                location: small(r.get(2)?)?,
                kind,
                content_kind,
                size: r.get::<_, i64>(5)? as u64,
                mtime: r.get::<_, Option<i64>>(6)?.unwrap_or(NO_TIME),
                btime: r.get::<_, Option<i64>>(7)?.unwrap_or(NO_TIME),
            });
            idx.raw_starts.push(idx.raw.len() as u32);
            idx.raw.extend_from_slice(name.as_encoded_bytes());
        }
        Ok(idx)
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

    fn raw_name(&self, row: usize) -> OsString {
        let start = self.raw_starts[row] as usize;
        let end = self
            .raw_starts
            .get(row + 1)
            .map(|s| *s as usize)
            .unwrap_or(self.raw.len());
        <OsString as std::os::unix::ffi::OsStringExt>::from_vec(self.raw[start..end].to_vec())
    }

    fn dir_path(&self, mut id: i64) -> Option<PathBuf> {
        let mut parts = Vec::new();
        loop {
            if let Some(root) = self.roots.get(&id) {
                let mut p = root.clone();
                p.extend(parts.iter().rev());
                return Some(p);
            }
            let (parent, name) = self.dirs.get(&id)?;
            parts.push(name.clone());
            id = (*parent)?;
            if parts.len() > 4096 {
                return None;
            }
        }
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

/// The library's index at its current generation, building it if needed.
/// Returns the index and the build time when it was built now.
fn index_of(lib: &Library) -> Result<(Arc<SearchIndex>, Option<u64>)> {
    let mut slot = lib.search.lock().unwrap_or_else(|p| p.into_inner());
    let generation = lib.generation();
    if let Some(idx) = slot.as_ref()
        && idx.generation == generation
    {
        return Ok((idx.clone(), None));
    }
    let started = Instant::now();
    let idx = Arc::new(SearchIndex::build(&lib.reader()?, generation)?);
    *slot = Some(idx.clone());
    Ok((idx, Some(started.elapsed().as_millis() as u64)))
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
    let mut slot = lib.hidden.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((k, set)) = slot.as_ref()
        && *k == key
    {
        return Ok(set.clone());
    }
    let set = Arc::new(flagged(&lib.reader()?, "hidden")?);
    *slot = Some((key, set.clone()));
    Ok(set)
}

/// Builds the in-memory index ahead of the first search (called after index jobs).
pub fn warm(lib: &Library) -> Result<()> {
    index_of(lib).map(|_| ())
}

/// Runs a query.
pub fn search(lib: &Library, q: &Query) -> Result<Results> {
    let (idx, built) = index_of(lib)?;
    let started = Instant::now();
    let terms = terms(&q.text);
    let needs_db = !q.tags.is_empty() || !q.not_tags.is_empty() || q.favorite;
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
        || q.hidden == Some(true)
        || (q.hidden.is_none() && !hidden.is_empty());
    let keep = |i: usize| -> bool {
        if !filtering {
            return true;
        }
        let r = &idx.rows[i];
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
        let in_range = |v: Option<i64>, after: Option<i64>, before: Option<i64>| {
            (after.is_none() || v.is_some_and(|v| v >= after.unwrap_or(0)))
                && (before.is_none() || v.is_some_and(|v| v < before.unwrap_or(0)))
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
        if favorites.as_ref().is_some_and(|f| !f.contains(&id)) {
            return false;
        }
        match q.hidden {
            None => !hidden.contains(&id),
            Some(true) => hidden.contains(&id),
            Some(false) => true,
        }
    };
    // One pass: match, filter, rank — on two threads, each over half the names. Relevance keeps
    // only the best `offset + limit` in a heap per thread; the heaps are merged after.
    let want = q.offset.saturating_add(q.limit.unwrap_or(usize::MAX));
    let half = idx.rows.len() / 2;
    let scan = |rows: std::ops::Range<usize>| {
        let mut total = 0usize;
        let mut best: BinaryHeap<(u8, usize, usize)> = BinaryHeap::new();
        let mut all: Vec<usize> = Vec::new();
        idx.each_match(&terms, rows, |i, score| {
            if !keep(i) {
                return;
            }
            total += 1;
            if q.order == Order::Relevance {
                offer(&mut best, want, (score, idx.name(i).len(), i));
            } else {
                all.push(i);
            }
        });
        (total, best, all)
    };
    let ((t0, b0, mut all), (t1, b1, a1)) = std::thread::scope(|s| {
        let second = s.spawn(|| scan(half..idx.rows.len()));
        let first = scan(0..half);
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
            all.sort_by_key(|i| (std::cmp::Reverse(idx.rows[*i].size), *i));
            all
        }
        Order::Modified => {
            all.sort_by_key(|i| (std::cmp::Reverse(idx.rows[*i].mtime), *i));
            all
        }
    };
    let hits = matched
        .into_iter()
        .skip(q.offset)
        .take(q.limit.unwrap_or(usize::MAX))
        .filter_map(|i| {
            let r = &idx.rows[i];
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
            })
        })
        .collect();
    Ok(Results {
        total,
        hits,
        took_us: started.elapsed().as_micros() as u64,
        index_built_ms: built,
    })
}

/// Parses `2019-01-01` (UTC midnight) into nanoseconds since the epoch.
pub fn parse_date(s: &str) -> Result<i64> {
    let bad = || Error::Invalid(format!("{s:?} is not a date; use YYYY-MM-DD"));
    let mut it = s
        .trim()
        .splitn(3, '-')
        .map(|p| p.parse::<i64>().map_err(|_| bad()));
    let (y, m, d) = (
        it.next().ok_or_else(bad)??,
        it.next().ok_or_else(bad)??,
        it.next().ok_or_else(bad)??,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    // Days from civil (Howard Hinnant).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(days * 86_400 * 1_000_000_000)
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
    Ok((n * mult).round() as u64)
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
    fn sizes_and_dates() {
        assert_eq!(parse_size("1MB").unwrap(), 1_000_000);
        assert_eq!(parse_size("1.5 KiB").unwrap(), 1536);
        assert_eq!(parse_size("42").unwrap(), 42);
        assert!(parse_size("3 parsecs").is_err());
        assert_eq!(parse_date("1970-01-02").unwrap(), 86_400_000_000_000);
        assert_eq!(
            parse_date("2019-01-01").unwrap(),
            1_546_300_800 * 1_000_000_000
        );
        assert!(parse_date("2019-13-01").is_err());
        assert!(parse_date("yesterday").is_err());
    }
}
