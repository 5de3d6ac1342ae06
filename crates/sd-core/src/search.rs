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

use std::collections::{HashMap, HashSet};
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

struct Row {
    id: i64,
    parent: i64,
    location: i64,
    kind: EntryKind,
    content_kind: u8,
    size: u64,
    mtime: Option<i64>,
    btime: Option<i64>,
}

/// The in-memory index of one library at one generation.
pub struct SearchIndex {
    generation: u64,
    /// Normalized names, each followed by a NUL.
    text: Vec<u8>,
    /// Start offset of each row's name in `text`.
    starts: Vec<u32>,
    rows: Vec<Row>,
    /// Raw names, for results.
    raw: Vec<OsString>,
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
            idx.rows.push(Row {
                id,
                parent,
                location: r.get(2)?,
                kind,
                content_kind,
                size: r.get::<_, i64>(5)? as u64,
                mtime: r.get(6)?,
                btime: r.get(7)?,
            });
            idx.raw.push(name);
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

    /// Rows whose names contain every term, in row order.
    fn matching(&self, terms: &[String]) -> Vec<usize> {
        if terms.is_empty() {
            return (0..self.rows.len()).collect();
        }
        // Scan for the longest term; check the others inside each candidate name.
        let mut order: Vec<&String> = terms.iter().collect();
        order.sort_by_key(|t| std::cmp::Reverse(t.len()));
        let first = memmem::Finder::new(order[0].as_bytes());
        let rest: Vec<memmem::Finder<'_>> = order[1..]
            .iter()
            .map(|t| memmem::Finder::new(t.as_bytes()))
            .collect();
        let mut out = Vec::new();
        let mut next_row_start = 0usize;
        for pos in first.find_iter(&self.text) {
            if pos < next_row_start {
                continue; // another hit inside a name already taken
            }
            let row = self.starts.partition_point(|&s| s as usize <= pos) - 1;
            let name = self.name(row);
            next_row_start = self.starts[row] as usize + name.len() + 1;
            if pos + order[0].len() > self.starts[row] as usize + name.len() {
                continue; // the match ran across the separator: impossible with NUL, kept for safety
            }
            if rest.iter().all(|f| f.find(name).is_some()) {
                out.push(row);
            }
        }
        out
    }

    fn score(&self, row: usize, terms: &[String]) -> u8 {
        let Some(t) = terms.first() else { return 0 };
        let name = self.name(row);
        let t = t.as_bytes();
        if terms.len() == 1 && name == t {
            return 0;
        }
        if name.starts_with(t) {
            return 1;
        }
        let word_start =
            memmem::find_iter(name, t).any(|i| i == 0 || !name[i - 1].is_ascii_alphanumeric());
        if word_start { 2 } else { 3 }
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
          WHERE t.tag_id IN ({list})"
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
          WHERE m.{column} = 1"
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

/// Builds the in-memory index ahead of the first search (called after index jobs).
pub fn warm(lib: &Library) -> Result<()> {
    index_of(lib).map(|_| ())
}

/// Runs a query.
pub fn search(lib: &Library, q: &Query) -> Result<Results> {
    let (idx, built) = index_of(lib)?;
    let started = Instant::now();
    let conn = lib.reader()?;
    let terms = terms(&q.text);
    let tag_set = |paths: &[String]| -> Result<Vec<HashSet<i64>>> {
        paths
            .iter()
            .map(|p| tagged(&conn, &crate::organise::tag_and_descendants(&conn, p)?))
            .collect()
    };
    let with_tags = tag_set(&q.tags)?;
    let without_tags = tag_set(&q.not_tags)?;
    let favorites = if q.favorite {
        Some(flagged(&conn, "favorite")?)
    } else {
        None
    };
    let hidden = flagged(&conn, "hidden")?;
    let kinds: Vec<u8> = q.kinds.iter().map(|k| kind_code(*k)).collect();
    let exts: Vec<String> = q
        .extensions
        .iter()
        .map(|e| normalize(e.trim_start_matches('.')))
        .collect();
    let keep = |i: usize| -> bool {
        let r = &idx.rows[i];
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
        if !in_range(r.mtime, q.modified_after, q.modified_before)
            || !in_range(r.btime, q.created_after, q.created_before)
        {
            return false;
        }
        if !q.locations.is_empty() && !q.locations.contains(&r.location) {
            return false;
        }
        if !with_tags.iter().all(|s| s.contains(&r.id))
            || without_tags.iter().any(|s| s.contains(&r.id))
        {
            return false;
        }
        if favorites.as_ref().is_some_and(|f| !f.contains(&r.id)) {
            return false;
        }
        match q.hidden {
            None => !hidden.contains(&r.id),
            Some(true) => hidden.contains(&r.id),
            Some(false) => true,
        }
    };
    let mut matched: Vec<usize> = idx
        .matching(&terms)
        .into_iter()
        .filter(|&i| keep(i))
        .collect();
    let total = matched.len();
    let key_name = |i: &usize| idx.name(*i).to_vec();
    match q.order {
        Order::Relevance => {
            let mut scored: Vec<(u8, usize, usize)> = matched
                .iter()
                .map(|&i| (idx.score(i, &terms), idx.name(i).len(), i))
                .collect();
            let want = (q.offset + q.limit.unwrap_or(usize::MAX)).min(scored.len());
            if want < scored.len() && want > 0 {
                scored.select_nth_unstable(want - 1);
                scored.truncate(want);
            }
            scored.sort_unstable();
            matched = scored.into_iter().map(|s| s.2).collect();
        }
        Order::Name => matched.sort_by_key(key_name),
        Order::Size => matched.sort_by_key(|i| (std::cmp::Reverse(idx.rows[*i].size), *i)),
        Order::Modified => matched.sort_by_key(|i| (std::cmp::Reverse(idx.rows[*i].mtime), *i)),
    }
    let hits = matched
        .into_iter()
        .skip(q.offset)
        .take(q.limit.unwrap_or(usize::MAX))
        .filter_map(|i| {
            let r = &idx.rows[i];
            let dir = idx.dir_path(r.parent)?;
            Some(Hit {
                id: r.id,
                location_id: r.location,
                name: JsonName(idx.raw[i].clone()),
                path: JsonPath(dir.join(&idx.raw[i])),
                kind: r.kind,
                content_kind: ContentKind::ALL.get(r.content_kind as usize).copied(),
                size: r.size,
                mtime: r.mtime,
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
