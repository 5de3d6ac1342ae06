//! Search-structure comparison behind ARCHITECTURE.md: the same queries over the same library
//! through the in-memory index (`sd_core::search`) and through an SQLite FTS5 trigram index
//! built from the same normalized names. Reports build time, size and per-query latency.
//!
//! ```sh
//! cargo run --release --example search_compare -- DATA_DIR [QUERY...]   # the daemon must be stopped
//! ```

use std::time::Instant;

use sd_core::search::{Query, normalize, search};

const DEFAULT_QUERIES: &[&str] = &[
    "report",
    "invoice",
    "img_",
    "café",
    "summer 2019",
    "json",
    "photo",
    "zzzz",
    "mod.rs",
    "résumé",
    "2019",
    "draft",
    "screenshot",
    "ab",
    "e",
];

fn pct(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let data = std::path::PathBuf::from(
        args.next()
            .ok_or("usage: search_compare DATA_DIR [QUERY...]")?,
    );
    let mut queries: Vec<String> = args.collect();
    // `--per-query`: in-memory index only, one line per query (for profiling).
    let per_query = queries.first().is_some_and(|q| q == "--per-query");
    if per_query {
        queries.remove(0);
    }
    if queries.is_empty() {
        queries = DEFAULT_QUERIES.iter().map(|s| s.to_string()).collect();
    }
    let node = sd_core::Node::open(&data)?;
    let lib = node.library(None)?;
    let runs = 20;

    // In-memory index.
    let t = Instant::now();
    sd_core::search::warm(&lib)?;
    let build_mem = t.elapsed();
    let mut mem = Vec::new();
    for q in &queries {
        let query = Query {
            text: q.clone(),
            limit: Some(50),
            hidden: Some(false),
            ..Query::default()
        };
        for _ in 0..runs {
            let r = search(&lib, &query)?;
            mem.push(r.took_us as f64 / 1000.0);
        }
    }

    if per_query {
        for (q, times) in queries.iter().zip(mem.chunks(runs)) {
            let r = search(
                &lib,
                &Query {
                    text: q.clone(),
                    limit: Some(50),
                    hidden: Some(false),
                    ..Query::default()
                },
            )?;
            println!(
                "{q:>14}: {:>8} matches  p50 {:6.2} ms  max {:6.2} ms",
                r.total,
                pct(times.to_vec(), 0.5),
                pct(times.to_vec(), 1.0)
            );
        }
        return Ok(());
    }

    // FTS5 trigram over the same normalized names, in a scratch database.
    let conn = lib.reader()?;
    let dir = tempfile::tempdir()?;
    let fts_path = dir.path().join("fts.db");
    let fts = rusqlite::Connection::open(&fts_path)?;
    fts.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
                       CREATE VIRTUAL TABLE names USING fts5(name, tokenize = 'trigram');",
    )?;
    let t = Instant::now();
    {
        let mut rows = conn.prepare("SELECT id, name FROM entries WHERE parent_id IS NOT NULL")?;
        let mut it = rows.query([])?;
        fts.execute_batch("BEGIN")?;
        let mut ins = fts.prepare("INSERT INTO names (rowid, name) VALUES (?1, ?2)")?;
        while let Some(r) = it.next()? {
            let name = sd_core::names::from_sql(r.get_ref(1)?)?;
            ins.execute(rusqlite::params![
                r.get::<_, i64>(0)?,
                normalize(&name.to_string_lossy())
            ])?;
        }
        drop(ins);
        fts.execute_batch("COMMIT; PRAGMA wal_checkpoint(TRUNCATE);")?;
    }
    let build_fts = t.elapsed();
    let fts_bytes = std::fs::metadata(&fts_path)?.len();
    let mut ftsl = Vec::new();
    for q in &queries {
        let terms = sd_core::search::terms(q);
        // Every term ≥ 3 chars goes to MATCH as a quoted string; shorter ones need LIKE (a scan).
        let (sql, params): (String, Vec<String>) = if terms.iter().all(|t| t.chars().count() >= 3) {
            let m = terms
                .iter()
                .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
                .collect::<Vec<_>>()
                .join(" AND ");
            (
                "SELECT rowid FROM names WHERE names MATCH ?1".into(),
                vec![m],
            )
        } else {
            let like = terms
                .iter()
                .enumerate()
                .map(|(i, _)| format!("name LIKE ?{}", i + 1))
                .collect::<Vec<_>>()
                .join(" AND ");
            (
                format!("SELECT rowid FROM names WHERE {like}"),
                terms.iter().map(|t| format!("%{t}%")).collect(),
            )
        };
        let mut stmt = fts.prepare(&sql)?;
        for _ in 0..runs {
            let t = Instant::now();
            // Count every match and keep the first 50, like the engine (which also ranks them).
            let mut n = 0usize;
            let mut top = Vec::with_capacity(50);
            let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
            while let Some(r) = rows.next()? {
                if top.len() < 50 {
                    top.push(r.get::<_, i64>(0)?);
                }
                n += 1;
            }
            std::hint::black_box((n, top));
            ftsl.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let entries: i64 = conn.query_row("SELECT count(*) FROM entries", [], |r| r.get(0))?;
    println!("{entries} entries, {} queries x {runs} runs", queries.len());
    println!(
        "in-memory index   build {:6.0} ms   p50 {:6.2} ms   p99 {:6.2} ms",
        build_mem.as_secs_f64() * 1000.0,
        pct(mem.clone(), 0.5),
        pct(mem, 0.99)
    );
    println!(
        "FTS5 trigram      build {:6.0} ms   p50 {:6.2} ms   p99 {:6.2} ms   {:.1} MB on disk ({:.0} bytes/entry)",
        build_fts.as_secs_f64() * 1000.0,
        pct(ftsl.clone(), 0.5),
        pct(ftsl, 0.99),
        fts_bytes as f64 / 1e6,
        fts_bytes as f64 / entries as f64
    );
    Ok(())
}
