//! Search and organisation: results against an independent filter, tags, favourites, notes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{Sd, corpus, json_path, write};

fn truth(root: &Path, query: &str, filters: &[&str]) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/search_truth.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(root)
        .arg(query)
        .args(filters)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("truth JSON")
}

fn ours(sd: &Sd, root: &Path, query: &str, filters: &[&str]) -> Vec<String> {
    let mut args: Vec<&str> = vec!["search", query, "--limit", "1000000", "--include-hidden"];
    args.extend(filters);
    let r = sd.json(args);
    let mut paths: Vec<String> = r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let p = json_path(&h["path"]);
            let rel = p.strip_prefix(root).expect("under the root");
            rel.as_os_str()
                .as_encoded_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        })
        .collect();
    assert_eq!(r["total"].as_u64().unwrap() as usize, paths.len());
    paths.sort();
    paths
}

#[test]
fn search_equals_an_independent_filter() {
    let sd = Sd::new();
    let root = corpus(sd.tmp.path(), 5000);
    sd.json([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--no-default-rules".as_ref(),
        "--no-gitignore".as_ref(),
    ]);
    let queries = [
        "invoice",
        "INVOICE",
        "café",
        "cafe",
        "résumé",
        "resume",
        "IMG_",
        "(2)",
        "- Copy",
        "2019 beach",
        "\"new folder\"",
        "ünïcödé",
        "📷",
        "\"",
        "*",
        "-",
        ":",
        "a\"b",
        "photo 2019-",
        "e",
    ];
    let mut nonempty = 0;
    for q in queries {
        let want = truth(&root, q, &[]);
        let got = ours(&sd, &root, q, &[]);
        assert_eq!(
            got.len(),
            want.len(),
            "query {q:?}: {} results, the filter finds {}",
            got.len(),
            want.len()
        );
        assert!(
            got == want,
            "query {q:?} differs from the independent filter"
        );
        nonempty += usize::from(!want.is_empty());
    }
    assert!(nonempty >= 12, "most queries have results ({nonempty})");
    assert_eq!(
        ours(&sd, &root, "café", &[]),
        ours(&sd, &root, "CAFE", &[]),
        "accents and case are ignored"
    );

    // Filters.
    assert_eq!(
        ours(&sd, &root, "invoice", &["--ext", "pdf"]),
        truth(&root, "invoice", &["--ext", "pdf"])
    );
    assert_eq!(
        ours(&sd, &root, "", &["--larger-than", "100000"]),
        truth(&root, "", &["--larger-than", "100000"])
    );
    assert_eq!(
        ours(&sd, &root, "2019", &["--kind", "image"]),
        truth(&root, "2019", &["--kind", "image"])
    );
    // 2020-01-01 UTC.
    assert_eq!(
        ours(&sd, &root, "report", &["--modified-after", "2020-01-01"]),
        truth(&root, "report", &["--modified-after", "1577836800"])
    );

    // Ranking: an exact name first, then names starting with the query. The query is a folder
    // the generator made ("Invoices YEAR"), lowercased.
    let mut folders = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                folders.push(e.file_name().to_string_lossy().into_owned());
                stack.push(e.path());
            }
        }
    }
    let folder = folders
        .into_iter()
        .filter(|n| n.starts_with("Invoices "))
        .min()
        .expect("an \"Invoices YEAR\" folder");
    let query = folder.to_lowercase();
    let r = sd.json(["search", &query]);
    let first = r["hits"][0]["name"].as_str().unwrap().to_lowercase();
    assert!(first.starts_with(&query), "{first} first for {query}");
    let r = sd.json(["search", "mod", "--limit", "5"]);
    assert_eq!(
        r["hits"][0]["name"], "mod.rs",
        "shortest prefix match first: {}",
        r["hits"][0]
    );

    // Renames and deletes show up after a rescan.
    let hit = sd.json(["search", "invoice", "--ext", "pdf", "--limit", "1"]);
    let old = json_path(&hit["hits"][0]["path"]);
    let new = old.with_file_name("zzqx renamed.pdf");
    std::fs::rename(&old, &new).unwrap();
    sd.json(["location", "rescan", "1"]);
    let r = sd.json(["search", "zzqx"]);
    assert_eq!(r["total"], 1);
    assert_eq!(json_path(&r["hits"][0]["path"]), new);
    assert_eq!(
        r["hits"][0]["id"], hit["hits"][0]["id"],
        "a rename keeps the entry"
    );
}

/// Searches for `query` right away and again until `check` holds on the result (bounded);
/// returns every answer it got on the way.
fn search_until(
    sd: &Sd,
    query: &str,
    step: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut answers = Vec::new();
    loop {
        let r = sd.json(["search", query, "--limit", "100", "--include-hidden"]);
        let done = check(&r);
        answers.push(r);
        if done {
            return answers;
        }
        assert!(
            Instant::now() < deadline,
            "after {step}: the search for {query:?} never showed it: {}",
            answers.last().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn hit_paths(r: &serde_json::Value) -> Vec<PathBuf> {
    r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| json_path(&h["path"]))
        .collect()
}

#[test]
fn search_follows_changes_on_disk_without_reading_everything_again() {
    let sd = Sd::new();
    let root = corpus(sd.tmp.path(), 3000);
    sd.json([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--no-default-rules".as_ref(),
        "--no-gitignore".as_ref(),
    ]);
    let first = sd.json(["search", "invoice"]);
    assert!(
        first["index_built_ms"].is_u64(),
        "the first search reads every entry: {first}"
    );

    // A folder holding files, and one of them: renamed below, its files' paths must follow.
    let (folder, inner) = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.file_name().unwrap().to_str().is_some())
        .find_map(|d| {
            let file = std::fs::read_dir(&d)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.is_file() && p.file_name().unwrap().to_str().is_some())?;
            Some((d, file))
        })
        .expect("a top folder with a file");
    let inner_name = inner.file_name().unwrap().to_str().unwrap().to_owned();
    let mut answers = Vec::new();

    // Each change is looked for right after it is made, as a user would.
    let created = root.join("zqv needle one.txt");
    write(&created, b"new");
    answers.extend(search_until(&sd, "zqv needle", "a new file", |r| {
        hit_paths(r) == [created.clone()]
    }));

    let renamed = root.join("zqv folder renamed");
    std::fs::rename(&folder, &renamed).unwrap();
    let moved_inner = renamed.join(&inner_name);
    answers.extend(search_until(
        &sd,
        &format!("\"{inner_name}\""),
        "renaming its folder",
        |r| hit_paths(r).contains(&moved_inner) && !hit_paths(r).contains(&inner),
    ));

    let moved = renamed.join("zqv needle moved.txt");
    std::fs::rename(&created, &moved).unwrap();
    answers.extend(search_until(&sd, "zqv needle", "a move", |r| {
        hit_paths(r) == [moved.clone()]
    }));

    std::fs::write(&moved, vec![b'x'; 70_000]).unwrap();
    answers.extend(search_until(&sd, "zqv needle", "a write", |r| {
        r["hits"][0]["size"] == 70_000
    }));

    std::fs::remove_file(&moved).unwrap();
    answers.extend(search_until(&sd, "zqv needle", "a delete", |r| {
        r["total"] == 0
    }));

    // None of that read every entry again; and the index now answers as a fresh one would.
    for r in &answers {
        assert!(
            r["index_built_ms"].is_null(),
            "a search after a change read every entry again: {r}"
        );
    }
    for q in ["invoice", "zqv", &inner_name, "e", "2019 beach"] {
        assert_eq!(
            ours(&sd, &root, q, &[]),
            truth(&root, q, &[]),
            "query {q:?}"
        );
    }
    assert_eq!(
        ours(&sd, &root, "", &["--larger-than", "60000"]),
        truth(&root, "", &["--larger-than", "60000"])
    );
}

#[test]
fn tags_favourites_and_notes() {
    let sd = Sd::new();
    let root = sd.tmp.path().join("org");
    let photo: Vec<u8> = [
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00".as_slice(),
        &[42u8; 5000],
    ]
    .concat();
    write(&root.join("Photos/IMG_1.jpg"), &photo);
    write(&root.join("Backup/IMG_1 copy.jpg"), &photo);
    write(&root.join("Documents/inv-2031.pdf"), b"%PDF-1.7 invoice");
    write(&root.join("Documents/plan.md"), b"# plan");
    sd.ok(["library", "create", "Org"]);
    sd.json([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--mode".as_ref(),
        "content".as_ref(),
    ]);
    let p = |rel: &str| root.join(rel);

    assert_eq!(
        sd.json(["tag", "create", "Work", "--color", "#3366ff"])["color"],
        "#3366ff"
    );
    assert_eq!(
        sd.json(["tag", "create", "Work/Invoices"])["path"],
        "Work/Invoices"
    );
    assert_eq!(sd.fails(["tag", "create", "Work"])["code"], "conflict");
    assert_eq!(
        sd.fails(["tag", "create", "Bad", "--color", "blue"])["code"],
        "invalid"
    );
    sd.json([
        "tag".as_ref(),
        "apply".as_ref(),
        "Work/Invoices".as_ref(),
        p("Documents/inv-2031.pdf").as_os_str(),
    ]);
    // A parent tag matches its children's files.
    let r = sd.json(["search", "--tag", "Work"]);
    assert_eq!(r["total"], 1);
    assert_eq!(
        json_path(&r["hits"][0]["path"]),
        p("Documents/inv-2031.pdf")
    );

    // Content tags: every copy carries them, and they survive a move.
    sd.json(["tag", "create", "Family"]);
    sd.json([
        "tag".as_ref(),
        "apply".as_ref(),
        "Family".as_ref(),
        "--content".as_ref(),
        p("Photos/IMG_1.jpg").as_os_str(),
    ]);
    assert_eq!(
        sd.json(["search", "--tag", "Family"])["total"],
        2,
        "both copies carry a content tag"
    );
    let info = sd.json([
        "file".as_ref(),
        "info".as_ref(),
        p("Backup/IMG_1 copy.jpg").as_os_str(),
    ]);
    assert_eq!(info["attached"]["content_tags"][0], "Family");
    std::fs::create_dir_all(p("Albums")).unwrap();
    std::fs::rename(p("Backup/IMG_1 copy.jpg"), p("Albums/moved.jpg")).unwrap();
    sd.json(["location", "rescan", "1"]);
    let r = sd.json(["search", "--tag", "Family", "--sort", "name"]);
    let paths: Vec<_> = r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| json_path(&h["path"]))
        .collect();
    assert_eq!(paths, vec![p("Photos/IMG_1.jpg"), p("Albums/moved.jpg")]);
    assert_eq!(
        sd.json(["search", "--not-tag", "Family", "--ext", "jpg"])["total"],
        0
    );
    let err = sd.fails([
        "tag".as_ref(),
        "apply".as_ref(),
        "Family".as_ref(),
        "--content".as_ref(),
        p("Photos").as_os_str(),
    ]);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("no content identity"),
        "{err}"
    );

    // Rename keeps assignments; so does moving a tag under another.
    sd.json(["tag", "rename", "Work/Invoices", "Bills"]);
    assert_eq!(sd.json(["search", "--tag", "Work/Bills"])["total"], 1);
    sd.json(["tag", "rename", "Work/Bills", "Family/Bills"]);
    assert_eq!(sd.json(["search", "--tag", "Family"])["total"], 3);
    assert_eq!(
        sd.fails(["tag", "rename", "Family", "Family/Bills/Loop"])["code"],
        "invalid"
    );
    let tags = sd.json(["tag", "list"]);
    let bills = tags
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["path"] == "Family/Bills")
        .unwrap();
    assert_eq!(bills["entries"], 1);

    // Delete asks (here: refuses without --yes, no terminal) when the tag is in use.
    let err = sd.fails(["tag", "delete", "Family"]);
    assert_eq!(err["code"], "conflict");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("1 files and 1 contents"),
        "{err}"
    );
    sd.json(["tag", "delete", "Work"]); // unused now: no question asked
    let d = sd.json(["tag", "delete", "Family", "--yes"]);
    assert_eq!(d["tags"], 2);
    assert_eq!(sd.json(["tag", "list"]).as_array().unwrap().len(), 0);
    assert_eq!(sd.json(["search", "--ext", "jpg"])["total"], 2);

    // Favourites, hidden, notes.
    sd.json(["favorite".as_ref(), p("Documents/plan.md").as_os_str()]);
    assert_eq!(sd.json(["search", "--favorite"])["total"], 1);
    sd.json([
        "note".as_ref(),
        p("Documents/plan.md").as_os_str(),
        "draft for Q3".as_ref(),
    ]);
    assert_eq!(
        sd.json(["note".as_ref(), p("Documents/plan.md").as_os_str()])["note"],
        "draft for Q3"
    );
    sd.json([
        "note".as_ref(),
        p("Documents/plan.md").as_os_str(),
        "--clear".as_ref(),
    ]);
    assert!(sd.json(["note".as_ref(), p("Documents/plan.md").as_os_str()])["note"].is_null());
    sd.json(["hide".as_ref(), p("Documents/plan.md").as_os_str()]);
    assert_eq!(
        sd.json(["search", "plan"])["total"],
        0,
        "hidden files stay out of results"
    );
    assert_eq!(sd.json(["search", "plan", "--hidden"])["total"], 1);
    assert_eq!(sd.json(["search", "plan", "--include-hidden"])["total"], 1);
    sd.json([
        "hide".as_ref(),
        p("Documents/plan.md").as_os_str(),
        "--off".as_ref(),
    ]);
    assert_eq!(sd.json(["search", "plan"])["total"], 1);
}

fn attached(sd: &Sd, path: &Path) -> serde_json::Value {
    sd.json(["file".as_ref(), "info".as_ref(), path.as_os_str()])["attached"].clone()
}

/// Issue 10.8: a tagged, annotated file moved with a plain `mv` from one location to another
/// keeps its tag and note, whichever location is rescanned first.
#[test]
fn organisation_follows_a_file_moved_between_locations() {
    let sd = Sd::new();
    let (one, two) = (sd.tmp.path().join("one"), sd.tmp.path().join("two"));
    write(&one.join("first.txt"), b"first");
    write(&one.join("second.txt"), b"second");
    write(&one.join("sub/deep.txt"), b"deep");
    write(&two.join("other.txt"), b"other");
    for root in [&one, &two] {
        sd.json([
            "location".as_ref(),
            "add".as_ref(),
            root.as_os_str(),
            "--no-watch".as_ref(),
        ]);
    }
    sd.ok(["tag", "create", "Keep"]);
    for f in ["first.txt", "second.txt", "sub/deep.txt"] {
        let p = one.join(f);
        sd.ok([
            "tag".as_ref(),
            "apply".as_ref(),
            "Keep".as_ref(),
            p.as_os_str(),
        ]);
        sd.ok([
            "note".as_ref(),
            p.as_os_str(),
            format!("note of {f}").as_ref(),
        ]);
    }
    sd.ok(["favorite".as_ref(), one.join("first.txt").as_os_str()]);

    // The source location is rescanned first: the organisation waits for the file.
    std::fs::rename(one.join("first.txt"), two.join("first.txt")).unwrap();
    std::fs::rename(one.join("sub"), two.join("sub")).unwrap();
    sd.json(["location", "rescan", "1"]);
    sd.json(["location", "rescan", "2"]);
    let a = attached(&sd, &two.join("first.txt"));
    assert_eq!(a["tags"], serde_json::json!(["Keep"]), "{a}");
    assert_eq!(a["note"], "note of first.txt");
    assert_eq!(a["favorite"], true);
    let a = attached(&sd, &two.join("sub/deep.txt"));
    assert_eq!(
        a["tags"],
        serde_json::json!(["Keep"]),
        "a file inside a moved folder: {a}"
    );
    assert_eq!(a["note"], "note of sub/deep.txt");

    // The destination is rescanned first: the entry there gets it when the source lets go.
    std::fs::rename(one.join("second.txt"), two.join("second.txt")).unwrap();
    sd.json(["location", "rescan", "2"]);
    sd.json(["location", "rescan", "1"]);
    let a = attached(&sd, &two.join("second.txt"));
    assert_eq!(a["tags"], serde_json::json!(["Keep"]), "{a}");
    assert_eq!(a["note"], "note of second.txt");

    // Exactly the three moved files carry the tag, nothing else.
    let hits = sd.json(["search", "", "--tag", "Keep"]);
    assert_eq!(hits["total"], 3, "{hits}");
}

/// Issue 10.8: a location whose folder is renamed in place follows it; one moved further away
/// is pointed at its new place with `location set ID --path`, keeping entries, tags and notes.
#[test]
fn a_moved_location_folder_is_followed_or_set() {
    let sd = Sd::new();
    let root = sd.tmp.path().join("photos");
    write(&root.join("a/pic.jpg"), b"jpeg");
    sd.json(["location".as_ref(), "add".as_ref(), root.as_os_str()]);
    sd.ok(["tag", "create", "Keep"]);
    sd.ok([
        "tag".as_ref(),
        "apply".as_ref(),
        "Keep".as_ref(),
        root.join("a/pic.jpg").as_os_str(),
    ]);
    let id = sd.json([
        "file".as_ref(),
        "info".as_ref(),
        root.join("a/pic.jpg").as_os_str(),
    ])["entry"]["id"]
        .clone();

    // Renamed in place: found by the folder's identity, followed, rescanned.
    let renamed = sd.tmp.path().join("pictures");
    std::fs::rename(&root, &renamed).unwrap();
    super::wait_until(
        "the location follows its renamed folder",
        std::time::Duration::from_secs(20),
        || {
            let info = sd.json(["location", "info", "1"]);
            json_path(&info["path"]) == renamed
                && info["online"] == true
                && info["state"] == "ready"
        },
    );
    let hits = sd.json(["search", "pic"]);
    assert_eq!(
        json_path(&hits["hits"][0]["path"]),
        renamed.join("a/pic.jpg"),
        "{hits}"
    );
    assert_eq!(hits["total"], 1, "no stale result at the old path: {hits}");
    let info = sd.json([
        "file".as_ref(),
        "info".as_ref(),
        renamed.join("a/pic.jpg").as_os_str(),
    ]);
    assert_eq!(info["entry"]["id"], id, "same entry");
    assert_eq!(info["attached"]["tags"], serde_json::json!(["Keep"]));

    // Moved elsewhere: offline until the user says where it went.
    let far = sd.tmp.path().join("archive/2026/pictures");
    std::fs::create_dir_all(far.parent().unwrap()).unwrap();
    std::fs::rename(&renamed, &far).unwrap();
    super::wait_until(
        "the location goes offline",
        std::time::Duration::from_secs(20),
        || sd.json(["location", "info", "1"])["online"] == false,
    );
    let set = sd.json([
        "location".as_ref(),
        "set".as_ref(),
        "1".as_ref(),
        "--path".as_ref(),
        far.as_os_str(),
    ]);
    let job = set["rescan_job"]
        .as_i64()
        .expect("a moved folder is rescanned");
    assert_eq!(sd.wait_job("My Library", job)["state"], "completed");
    let info = sd.json([
        "file".as_ref(),
        "info".as_ref(),
        far.join("a/pic.jpg").as_os_str(),
    ]);
    assert_eq!(info["entry"]["id"], id, "same entry: {info}");
    assert_eq!(info["attached"]["tags"], serde_json::json!(["Keep"]));
    let loc = sd.json(["location", "info", "1"]);
    assert_eq!(json_path(&loc["path"]), far);
    assert_eq!(loc["online"], true);
    // A folder that is not a directory, or overlaps another location, is refused.
    let other = sd.tmp.path().join("other");
    write(&other.join("f"), b"f");
    sd.json(["location".as_ref(), "add".as_ref(), other.as_os_str()]);
    let err = sd.fails([
        "location".as_ref(),
        "set".as_ref(),
        "1".as_ref(),
        "--path".as_ref(),
        other.join("f").as_os_str(),
    ]);
    assert_eq!(err["code"], "invalid", "{err}");
    let err = sd.fails([
        "location".as_ref(),
        "set".as_ref(),
        "1".as_ref(),
        "--path".as_ref(),
        other.as_os_str(),
    ]);
    assert_eq!(err["code"], "conflict", "{err}");
}
