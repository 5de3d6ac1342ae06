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
        copy.exists()
    });
    assert_eq!(std::fs::read(&copy).unwrap(), b"the quarterly report");
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
