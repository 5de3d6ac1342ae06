//! `search`: indexed files by name and filters, built into a typed [`Query`].

use anyhow::Result;
use clap::Args;
use sd_api::Request;
use sd_core::index::walk::EntryKind;
use sd_core::search::{Order, Query, Results, parse_date, parse_size};

use crate::client::Client;
use crate::{output, print_json};

#[derive(Args)]
pub struct SearchArgs {
    /// Words that must all appear in the name; "quoted words" stay together. May start with '-'.
    #[arg(allow_hyphen_values = true)]
    query: Option<String>,
    /// Content kind: image, video, audio, document, book, archive, code, text, database, font, executable
    #[arg(long)]
    kind: Vec<String>,
    /// Extension, without the dot (repeatable)
    #[arg(long)]
    ext: Vec<String>,
    /// e.g. 1MB, 500KiB
    #[arg(long, value_name = "SIZE")]
    larger_than: Option<String>,
    #[arg(long, value_name = "SIZE")]
    smaller_than: Option<String>,
    /// YYYY-MM-DD (UTC)
    #[arg(long, value_name = "DATE")]
    modified_after: Option<String>,
    #[arg(long, value_name = "DATE")]
    modified_before: Option<String>,
    #[arg(long, value_name = "DATE")]
    created_after: Option<String>,
    #[arg(long, value_name = "DATE")]
    created_before: Option<String>,
    /// Location id (repeatable)
    #[arg(long)]
    location: Vec<i64>,
    /// Must carry this tag or one of its children (repeatable: all must match)
    #[arg(long)]
    tag: Vec<String>,
    /// Must not carry this tag or its children
    #[arg(long)]
    not_tag: Vec<String>,
    /// Favourites only
    #[arg(long)]
    favorite: bool,
    /// Words the file's text must contain ("quoted" for a phrase): text, code, Markdown, HTML
    /// and PDF files of deep locations
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    content: Option<String>,
    /// Pictures taken on or after this date (EXIF)
    #[arg(long, value_name = "DATE")]
    taken_after: Option<String>,
    /// Pictures taken before this date (EXIF)
    #[arg(long, value_name = "DATE")]
    taken_before: Option<String>,
    /// Pictures whose camera make or model contains this text
    #[arg(long, value_name = "TEXT")]
    camera: Option<String>,
    /// Pictures at least this many pixels wide (as displayed)
    #[arg(long, value_name = "PX")]
    min_width: Option<u32>,
    /// Pictures at least this many pixels high (as displayed)
    #[arg(long, value_name = "PX")]
    min_height: Option<u32>,
    /// Only what you hid
    #[arg(long, conflicts_with = "include_hidden")]
    hidden: bool,
    /// Include what you hid
    #[arg(long)]
    include_hidden: bool,
    #[arg(long, value_enum, default_value = "relevance")]
    sort: Order,
    #[arg(long, default_value = "50")]
    limit: usize,
    #[arg(long, default_value = "0")]
    offset: usize,
}

pub fn run(client: &Client, library: Option<String>, a: SearchArgs, json: bool) -> Result<()> {
    let kinds = a
        .kind
        .iter()
        .map(|k| {
            sd_core::filetype::ContentKind::parse(&k.to_ascii_lowercase())
                .ok_or_else(|| anyhow::anyhow!("unknown kind {k:?}; one of image, video, audio, document, book, archive, code, text, database, font, executable"))
        })
        .collect::<Result<Vec<_>>>()?;
    let size = |s: &Option<String>| s.as_deref().map(parse_size).transpose();
    // Dates without an offset or zone are local times, as times are shown.
    let tz = output::time_zone();
    let date = |s: &Option<String>| s.as_deref().map(|s| parse_date(s, tz)).transpose();
    let query = Query {
        text: a.query.unwrap_or_default(),
        kinds,
        extensions: a.ext,
        larger_than: size(&a.larger_than)?,
        smaller_than: size(&a.smaller_than)?,
        modified_after: date(&a.modified_after)?,
        modified_before: date(&a.modified_before)?,
        created_after: date(&a.created_after)?,
        created_before: date(&a.created_before)?,
        locations: a.location,
        tags: a.tag,
        not_tags: a.not_tag,
        favorite: a.favorite,
        content: a.content,
        taken_after: date(&a.taken_after)?,
        taken_before: date(&a.taken_before)?,
        camera: a.camera,
        min_width: a.min_width,
        min_height: a.min_height,
        hidden: if a.hidden {
            Some(true)
        } else if a.include_hidden {
            Some(false)
        } else {
            None
        },
        order: a.sort,
        limit: Some(a.limit),
        offset: a.offset,
    };
    let r: Results = client.call(&Request::Search {
        library,
        query: Box::new(query),
    })?;
    if json {
        return print_json(&r);
    }
    let rows: Vec<Vec<String>> = r
        .hits
        .iter()
        .map(|h| {
            vec![
                h.content_kind
                    .map(|k| k.as_str().to_owned())
                    .unwrap_or_else(|| format!("{:?}", h.kind).to_lowercase()),
                if h.kind == EntryKind::Dir {
                    "-".into()
                } else {
                    output::bytes(h.size)
                },
                h.mtime.map(output::time_ns).unwrap_or_default(),
                output::shown(h.path.0.as_os_str()),
            ]
        })
        .collect();
    if !rows.is_empty() {
        output::table(&["KIND", "SIZE", "MODIFIED", "PATH"], &rows);
    }
    // With --content: where the words were found, file by file.
    for h in r.hits.iter().filter(|h| h.snippet.is_some()) {
        println!(
            "{}: {}",
            output::shown(h.path.0.as_os_str()),
            output::escape_controls(&h.snippet.clone().unwrap_or_default().replace('\n', " "))
        );
    }
    let shown = r.hits.len();
    println!(
        "{} matches{} ({:.1} ms{})",
        output::count(r.total as u64),
        if shown < r.total {
            format!(", showing {shown} (--limit/--offset for more)")
        } else {
            String::new()
        },
        r.took_us as f64 / 1000.0,
        match (r.index_built_ms, r.index_updated_us) {
            (Some(b), _) => format!(", after building the search index in {b} ms"),
            (None, Some(u)) => format!(
                ", after bringing the search index up to date in {:.1} ms",
                u as f64 / 1000.0
            ),
            (None, None) => String::new(),
        }
    );
    Ok(())
}
