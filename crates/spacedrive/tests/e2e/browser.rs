//! The web UI in a real browser (headless Chromium over the DevTools protocol): log in with the
//! URL `spacedrive ui` prints, browse into a folder, search, tag a file, copy a file through
//! the preview, trash the copy with the keyboard and undo that from the history — asserting on
//! the page and on the disk. Screenshots of the main views go to
//! `target/tmp/ui-screenshots/` (`CARGO_TARGET_TMPDIR`).
//!
//! Skipped, saying so, when no Chromium is installed (`.ci/run` installs Debian's).

use std::path::PathBuf;
use std::time::Duration;

use super::cdp::{Browser, chromium};
use super::http::Http;
use super::{Sd, wait_until, write};

fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots")
}

#[test]
fn browse_search_tag_copy_trash_and_undo_in_a_browser() {
    let Some(bin) = chromium() else {
        eprintln!(
            "SKIPPED: no chromium on PATH (apt-get install chromium) — the browser test did not run"
        );
        return;
    };
    let sd = Sd::new();
    let root = sd.tmp.path().join("Home");
    write(
        &root.join("Documents/report-2026.txt"),
        b"the quarterly report",
    );
    write(&root.join("Documents/letter.md"), b"# Dear reader");
    write(&root.join("Documents/budget.csv"), b"a,b\n1,2\n");
    write(
        &root.join("Pictures/cat.jpg"),
        &[0xff, 0xd8, 0xff, 0xe0, 0, 0x10],
    );
    write(&root.join("Music/song.mp3"), b"ID3 not really");
    std::fs::create_dir_all(root.join("Backup")).unwrap();
    for i in 0..40 {
        write(
            &root.join(format!("Archive/old-{i:03}.log")),
            format!("log {i}").as_bytes(),
        );
    }
    sd.ok([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--mode".as_ref(),
        "content".as_ref(),
    ]);
    let h = Http::of(&sd);
    let mut b = Browser::launch(&bin, 1366, 820);

    // Log in with the printed URL: the cookie is set and the first location opens.
    b.goto(&h.login_url);
    b.wait_for(
        "the location in the sidebar",
        "document.querySelector('[data-location]')",
    );
    b.wait_for(
        "the folder view",
        "document.querySelector('.row[data-name=\"Documents\"]')",
    );
    assert!(
        b.eval("location.pathname === '/' && !location.search.includes('token')")
            .as_bool()
            .unwrap()
    );
    b.screenshot(&shots().join("1-folder.png"));

    // Browse into Documents (double-click), breadcrumbs follow.
    b.double_click(".row[data-name=\"Documents\"]");
    b.wait_for(
        "the folder's files",
        "document.querySelector('.row[data-name=\"report-2026.txt\"]')",
    );
    let crumbs = b.eval("document.querySelector('.crumbs').innerText");
    assert!(crumbs.as_str().unwrap().contains("Documents"), "{crumbs}");
    // The keyboard walks the list; the details pane follows the cursor.
    b.click(".row[data-name=\"budget.csv\"]");
    b.key("ArrowDown");
    b.wait_for(
        "details of the next file",
        "document.querySelector('#details h2').innerText === 'letter.md'",
    );
    b.screenshot(&shots().join("2-details.png"));

    // Search as you type.
    b.key("/");
    b.type_text("report");
    b.wait_for(
        "search results",
        "document.querySelector('#search-status') && document.querySelector('#search-status').innerText.startsWith('1 results')",
    );
    b.wait_for(
        "the hit",
        "document.querySelector('.row[data-name=\"report-2026.txt\"]')",
    );
    b.screenshot(&shots().join("3-search.png"));

    // Tag the hit with a new tag.
    b.click(".row[data-name=\"report-2026.txt\"]");
    b.click("#act-tag");
    b.click("#tag-name");
    b.type_text("Important");
    b.click(".modal button[data-value=\"apply\"]");
    b.wait_for(
        "the tag in the details",
        "document.querySelector('#detail-tags [data-tag=\"Important\"]')",
    );
    b.wait_for(
        "the tag in the sidebar",
        "document.querySelector('.sidebar [data-tag=\"Important\"]')",
    );
    let tagged = sd.json(["search", "--tag", "Important"]);
    assert_eq!(tagged["total"], 1, "{tagged}");

    // Copy it into Backup: the destination, the preview, confirm, the job runs to its end.
    b.key("Escape");
    b.click("#search");
    b.eval("document.querySelector('#search').value = ''; document.querySelector('#search').dispatchEvent(new Event('input'))");
    b.click("[data-location]");
    b.wait_for(
        "the location again",
        "document.querySelector('.row[data-name=\"Documents\"]')",
    );
    b.double_click(".row[data-name=\"Documents\"]");
    b.click(".row[data-name=\"report-2026.txt\"]");
    b.click("#act-copy");
    b.wait_for("the destination picker", "document.querySelector('#dest')");
    b.wait_for(
        "the picker's folders",
        "document.querySelector('.picker button')",
    );
    b.screenshot(&shots().join("4a-picker.png"));
    let dest = root.join("Backup");
    b.eval(&format!(
        "document.querySelector('#dest').value = {}",
        serde_json::to_string(dest.to_str().unwrap()).unwrap()
    ));
    b.click(".modal button[data-value=\"ok\"]");
    b.wait_for("the preview's steps", "document.querySelector('.steps') && document.querySelector('.steps').innerText.includes('copy')");
    let steps = b.eval("document.querySelector('.steps').innerText");
    assert!(
        steps.as_str().unwrap().contains("Backup/report-2026.txt"),
        "{steps}"
    );
    b.screenshot(&shots().join("4-preview.png"));
    assert!(
        !dest.join("report-2026.txt").exists(),
        "nothing happens before the confirmation"
    );
    b.click("#confirm");
    b.wait_for(
        "the copy job to finish",
        "document.querySelector('.toast[data-state=\"completed\"]')",
    );
    let copy = dest.join("report-2026.txt");
    assert_eq!(std::fs::read(&copy).unwrap(), b"the quarterly report");

    // Trash the copy with the keyboard (Delete → preview → confirm).
    b.click(".crumbs button");
    b.wait_for(
        "the location root",
        "document.querySelector('.row[data-name=\"Backup\"]')",
    );
    b.double_click(".row[data-name=\"Backup\"]");
    b.click(".row[data-name=\"report-2026.txt\"]");
    b.key("Delete");
    b.wait_for("the trash preview", "document.querySelector('.steps') && document.querySelector('.steps').innerText.includes('trash')");
    b.click("#confirm");
    wait_until("the copy to leave", Duration::from_secs(30), || {
        !copy.exists()
    });
    b.wait_for("the folder without it", "!document.querySelector('.row[data-name=\"report-2026.txt\"]') && document.querySelector('.empty')");

    // Undo it from the history: the file comes back.
    b.click("[data-view=\"history\"]");
    b.wait_for("an undoable trash", "document.querySelector('#undo-last') && document.querySelector('#undo-last').innerText.includes('file.trash')");
    b.screenshot(&shots().join("5-history.png"));
    b.click("#undo-last");
    b.wait_for("the undo preview", "document.querySelector('#confirm')");
    b.click("#confirm");
    wait_until("the copy to come back", Duration::from_secs(30), || {
        std::fs::read(&copy).is_ok_and(|b| b == b"the quarterly report")
    });
    b.wait_for("the undo in the history", "document.querySelector('tr[data-audit] td') && [...document.querySelectorAll('tr[data-audit]')].some(r => r.innerText.includes('undo'))");

    // Jobs and duplicates pages render; the dark theme too.
    b.click("[data-view=\"jobs\"]");
    b.wait_for("the jobs", "document.querySelectorAll('.job').length >= 3");
    b.screenshot(&shots().join("6-jobs.png"));
    // The restored file and its original are one content: a duplicate group, once the watcher
    // has indexed it.
    wait_until(
        "the duplicate pair in the index",
        Duration::from_secs(30),
        || {
            sd.json(["dupes"])["groups"]
                .as_array()
                .is_some_and(|g| !g.is_empty())
        },
    );
    b.click("[data-view=\"dupes\"]");
    b.wait_for("the duplicate group", "document.querySelector('.group')");
    b.click("#theme-toggle");
    b.eval("document.documentElement.dataset.theme === 'dark' || document.querySelector('#theme-toggle').click()");
    b.wait_for(
        "the dark theme",
        "document.documentElement.dataset.theme === 'dark'",
    );
    b.screenshot(&shots().join("7-dupes-dark.png"));

    let errors: Vec<&String> = b
        .console
        .iter()
        .filter(|l| l.starts_with("exception") || l.starts_with("console.error"))
        .collect();
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
}

/// `bench/ui.sh`'s measurements, against an existing data folder with an indexed library
/// (`SD_BENCH_DATA`): time to the first rows of the folder view (`SD_BENCH_FOLDER`) and of a
/// search (`SD_BENCH_QUERY`) by the page's navigation timing, and `location.list` over HTTP
/// against the Unix socket, interleaved, same run. Prints figures; asserts nothing on timings.
#[test]
#[ignore = "a benchmark: run by bench/ui.sh"]
fn ui_bench() {
    use std::io::{BufRead, BufReader, Read, Write};
    let (Ok(data), Ok(folder)) = (
        std::env::var("SD_BENCH_DATA"),
        std::env::var("SD_BENCH_FOLDER"),
    ) else {
        eprintln!("SD_BENCH_DATA and SD_BENCH_FOLDER are needed (see bench/ui.sh)");
        return;
    };
    let query = std::env::var("SD_BENCH_QUERY").unwrap_or_else(|_| "report".into());
    let runs: usize = std::env::var("SD_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);
    let bin = chromium().expect("chromium");
    let out = std::process::Command::new(super::BIN)
        .args(["--data-dir", &data, "--json", "ui", "--no-open"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ui: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let login = ui["url"].as_str().unwrap().to_owned();
    let addr: std::net::SocketAddr = ui["listen"].as_str().unwrap().parse().unwrap();
    let token = login.split_once("token=").unwrap().1.to_owned();
    let mut b = Browser::launch(&bin, 1366, 820);
    b.goto(&login);
    b.wait_for("the UI", "document.querySelector('.side-item')");
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut first_render = |route: serde_json::Value| {
        let url = format!("http://{addr}/#{}", urlencode(&route.to_string()));
        let mut times = Vec::new();
        for _ in 0..runs {
            // A fresh load each time (a new hash alone would not reload the page).
            b.goto(&url);
            b.call("Page.reload", serde_json::json!({"ignoreCache": false}));
            b.wait_for("the page to load", "document.readyState === 'complete'");
            let t = b.wait_for(
                "the first rows",
                "performance.getEntriesByName('sd-first-rows').length && performance.getEntriesByName('sd-first-rows')[0].startTime",
            );
            times.push(t.as_f64().unwrap());
        }
        median(times)
    };
    let folder_ms = first_render(serde_json::json!({"view": "browse", "path": folder}));
    let search_ms = first_render(
        serde_json::json!({"view": "search", "text": query, "filters": {}, "order": "relevance"}),
    );
    println!("first render, folder view of {folder}: {folder_ms:.0} ms (median of {runs})");
    println!("first render, search results for {query:?}: {search_ms:.0} ms (median of {runs})");

    let req = r#"{"method": "location.list", "params": {"library": null}}"#;
    let sock = std::path::Path::new(&data).join("daemon.sock");
    let mut http = Vec::new();
    let mut unix = Vec::new();
    for _ in 0..300 {
        let t = std::time::Instant::now();
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "POST /api/v1/rpc HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{req}",
            req.len()
        )
        .unwrap();
        let mut body = Vec::new();
        s.read_to_end(&mut body).unwrap();
        http.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = std::time::Instant::now();
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        writeln!(s, "{req}").unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        unix.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (h, u) = (median(http), median(unix));
    println!(
        "location.list p50: HTTP {h:.2} ms, Unix socket {u:.2} ms ({:.2}x)",
        h / u
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|c| match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (c as char).to_string()
            }
            _ => format!("%{c:02X}"),
        })
        .collect()
}

#[test]
fn a_locked_library_is_unlocked_from_the_browser() {
    let Some(bin) = chromium() else {
        eprintln!(
            "SKIPPED: no chromium on PATH (apt-get install chromium) — the browser test did not run"
        );
        return;
    };
    let sd = Sd::new().plain_by_default();
    let root = sd.tmp.path().join("Private");
    write(&root.join("diary.txt"), b"dear diary");
    let pass = sd.tmp.path().join("pass");
    std::fs::write(&pass, "open sesame\n").unwrap();
    let vault = sd.json([
        "library".as_ref(),
        "create".as_ref(),
        "Vault".as_ref(),
        "--encrypt".as_ref(),
        "--passphrase-file".as_ref(),
        pass.as_os_str(),
    ]);
    let id = vault["id"].as_str().unwrap().to_owned();
    sd.ok(["-L", "Vault", "location", "add", root.to_str().unwrap()]);
    sd.ok(["stop"]);

    let h = Http::of(&sd);
    let mut b = Browser::launch(&bin, 1366, 820);
    b.goto(&h.login_url);
    b.wait_for(
        "the locked library in the picker",
        "[...document.querySelectorAll('#library option')].some(o => o.textContent === 'Vault (locked)')",
    );
    b.eval(&format!(
        "const s = document.getElementById('library'); s.value = '{id}'; s.dispatchEvent(new Event('change'))"
    ));
    b.wait_for(
        "the passphrase dialog",
        "document.querySelector('.modal input[type=password]')",
    );
    // A wrong passphrase: the dialog stays and says so.
    b.click(".modal input[type=password]");
    b.type_text("open sesame!");
    b.click(".modal button[data-value=\"true\"]");
    b.wait_for(
        "the refusal",
        "document.querySelector('.modal .problem') && !document.querySelector('.modal .problem').hidden && document.querySelector('.modal .problem').textContent.includes('wrong passphrase')",
    );
    assert_eq!(sd.json(["library", "list"])[0]["status"], "locked");
    b.screenshot(&shots().join("8-unlock.png"));
    // The right one opens it: its location shows.
    b.eval("document.querySelector('.modal input[type=password]').value = ''");
    b.click(".modal input[type=password]");
    b.type_text("open sesame");
    b.click(".modal button[data-value=\"true\"]");
    b.wait_for(
        "the unlocked library's location",
        "!document.querySelector('.modal') && document.querySelector('[data-location]')",
    );
    assert_eq!(sd.json(["library", "list"])[0]["status"], "open");
}
