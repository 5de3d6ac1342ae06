//! What users type into `search`: dates in the forms people write them, impossible dates, dates
//! far from now, files stamped far from now, and queries far longer than any file name.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use super::{Sd, json_path, write};

/// Writes `name` under `root` with its modification time at `unix_secs`.
fn stamped(root: &Path, name: &str, unix_secs: i64) {
    let p = root.join(name);
    write(&p, name.as_bytes());
    let t = if unix_secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix_secs as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(unix_secs.unsigned_abs())
    };
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// Names (sorted) of the files `search dt` finds with `filters`.
fn found(sd: &Sd, filters: &[&str]) -> Vec<String> {
    let mut args = vec!["search", "dt", "--limit", "100"];
    args.extend(filters);
    let r = sd.json(args);
    let mut names: Vec<String> = r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            json_path(&h["path"])
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn date_filters_take_the_forms_users_type_and_never_overflow() {
    let mut sd = Sd::new();
    sd.env("TZ", "UTC");
    let root = sd.tmp.path().join("when");
    stamped(&root, "dt-c.txt", 1_550_188_800); // 2019-02-15 00:00Z
    stamped(&root, "dt-a.txt", 1_551_519_000); // 2019-03-02 09:30Z
    stamped(&root, "dt-b.txt", 1_551_522_600); // 2019-03-02 10:30Z
    stamped(&root, "dt-n.txt", 1_622_505_600); // 2021-06-01 00:00Z
    // 2400-01-01: past what nanoseconds in an i64 hold (2262), legal on ext4 and tmpfs.
    stamped(&root, "dt-f.txt", 13_569_465_600);
    // The content phase reads every file's stamp too.
    let r = sd.json([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--mode".as_ref(),
        "content".as_ref(),
    ]);
    assert_eq!(r["job"]["state"], "completed", "{r}");
    let all = ["dt-a.txt", "dt-b.txt", "dt-c.txt", "dt-f.txt", "dt-n.txt"];
    assert_eq!(found(&sd, &[]), all);

    // Far dates: clamped to the representable range, not wrapped around.
    assert_eq!(found(&sd, &["--modified-before", "2500-01-01"]), all);
    assert_eq!(
        found(&sd, &["--modified-after", "2263-01-01"]),
        ["dt-f.txt"]
    );
    assert_eq!(found(&sd, &["--modified-after", "1600-01-01"]), all);
    assert!(found(&sd, &["--modified-before", "1600-01-01"]).is_empty());
    let e = sd.fails(["search", "dt", "--modified-after", "99999-01-01"]);
    assert!(e["message"].as_str().unwrap().contains("2019-03-02"), "{e}");

    // Impossible days are refused with the reason, not rolled over into March.
    let e = sd.fails(["search", "dt", "--modified-after", "2019-02-30"]);
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains("February 2019 has 28 days"), "{msg}");
    assert!(
        msg.contains("2019-03-02T10:00"),
        "the message lists the forms: {msg}"
    );

    // Months, times, offsets and zones.
    assert_eq!(
        found(&sd, &["--modified-after", "2019-03"]),
        ["dt-a.txt", "dt-b.txt", "dt-f.txt", "dt-n.txt"]
    );
    assert_eq!(found(&sd, &["--modified-before", "2019-03"]), ["dt-c.txt"]);
    assert_eq!(
        found(&sd, &["--modified-after", "2019-03-02T10:00"]),
        ["dt-b.txt", "dt-f.txt", "dt-n.txt"]
    );
    assert_eq!(
        found(&sd, &["--modified-after", "2019-03-02 10:00"]),
        ["dt-b.txt", "dt-f.txt", "dt-n.txt"]
    );
    for paris_ten in ["2019-03-02T10:00+01:00", "2019-03-02T10:00[Europe/Paris]"] {
        assert_eq!(
            found(
                &sd,
                &[
                    "--modified-after",
                    paris_ten,
                    "--modified-before",
                    "2019-03-02T10:00Z"
                ]
            ),
            ["dt-a.txt"],
            "{paris_ten}"
        );
    }
    assert_eq!(
        found(
            &sd,
            &["--modified-after", "2019", "--modified-before", "2020"]
        ),
        ["dt-a.txt", "dt-b.txt", "dt-c.txt"]
    );
    // A range that cannot match is a mistake worth saying.
    let e = sd.fails([
        "search",
        "dt",
        "--modified-after",
        "2020",
        "--modified-before",
        "2019",
    ]);
    assert!(e["message"].as_str().unwrap().contains("swap"), "{e}");

    // Shown in the local time zone, the one dates without a zone are read in.
    let shown = |sd: &Sd| {
        let out = sd.ok(["ls", root.to_str().unwrap()]);
        let line = |n: &str| {
            out.lines()
                .find(|l| l.contains(n))
                .unwrap_or_else(|| panic!("{n} in {out}"))
                .to_owned()
        };
        (line("dt-b.txt"), line("dt-f.txt"))
    };
    let (b, f) = shown(&sd);
    assert!(b.contains("2019-03-02 10:30"), "{b}");
    assert!(f.contains("2262-04-11"), "{f}");
    sd.clear_env();
    sd.env("TZ", "Europe/Paris");
    assert!(shown(&sd).0.contains("2019-03-02 11:30"));
    assert_eq!(
        found(&sd, &["--modified-after", "2019-03-02T11:00"]),
        ["dt-b.txt", "dt-f.txt", "dt-n.txt"],
        "read in Paris time"
    );
}

#[test]
fn a_huge_query_is_refused_quickly() {
    let sd = Sd::new();
    let root = sd.tmp.path().join("q");
    for i in 0..200 {
        write(&root.join(format!("word{i} other.txt")), b"x");
    }
    sd.json([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--no-watch".as_ref(),
    ]);
    // 50,000 words (one letter each, to stay under the kernel's 128 KiB per argument).
    let huge: Vec<String> = (0..50_000)
        .map(|i| char::from(b'a' + (i % 26) as u8).to_string())
        .collect();
    let started = Instant::now();
    let e = sd.fails(["search", &huge.join(" ")]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains("at most"), "{msg}");
    // Many distinct short words: also refused, with the limit named.
    let many: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
    let e = sd.fails(["search", &many.join(" ")]);
    assert!(e["message"].as_str().unwrap().contains("32"), "{e}");
    // Repeating a word changes nothing and is not counted twice.
    let repeated = vec!["other"; 100].join(" ");
    let r = sd.json(["search", &repeated, "--limit", "1"]);
    assert_eq!(r["total"], 200, "{r}");
    let r = sd.json(["search", "word7 other"]);
    assert_eq!(r["total"], 11, "word7, word70..79: {r}");
}
