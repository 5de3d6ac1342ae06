//! Durability: SIGKILL mid-index, pause/resume/cancel.

use std::time::Duration;

use super::{Sd, corpus, integrity, wait_until};

/// How long a crash test waits for a job or the daemon.
const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn sigkill_mid_index_resumes_from_checkpoint() {
    let mut sd = Sd::new();
    let root = corpus(sd.tmp.path(), 5000);
    // Slow the daemon's indexer down (one directory per commit, 15 ms apart) so the kill lands
    // mid-scan. The variable must be there when the daemon starts.
    sd.env("SPACEDRIVE_DEBUG_THROTTLE_MS", "15");
    sd.ok(["library", "create", "Crash"]);
    let started = sd.json([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--detach".as_ref(),
    ]);
    let job = started["job_id"].as_i64().unwrap();
    let listed = |sd: &Sd| {
        sd.json(["job", "info", &job.to_string()])["progress"]["dirs_listed"]
            .as_u64()
            .unwrap()
    };
    wait_until("40 directories indexed", LIMIT, || listed(&sd) >= 40);
    sd.kill_daemon(LIMIT);
    let at_kill = {
        // Read the checkpoint straight from the database while no daemon runs.
        let db = sd.data.join("libraries/Crash.sdlibrary/library.db");
        assert_eq!(integrity(&db), "ok");
        let c = super::open_db(&db);
        let p: String = c
            .query_row("SELECT progress FROM jobs WHERE id = ?1", [job], |r| {
                r.get(0)
            })
            .unwrap();
        let state: String = c
            .query_row("SELECT state FROM jobs WHERE id = ?1", [job], |r| r.get(0))
            .unwrap();
        assert_eq!(state, "running", "a killed job is still marked running");
        serde_json::from_str::<serde_json::Value>(&p).unwrap()["dirs_listed"]
            .as_u64()
            .unwrap()
    };
    assert!(at_kill >= 40);
    assert!(
        at_kill < 270,
        "the kill must land mid-scan (listed {at_kill} of ~280 dirs)"
    );

    // Restart without the throttle: any command starts the daemon, which resumes the job.
    sd.clear_env();
    let done = sd.wait_job("Crash", job);
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["resumes"], 1);
    let resumed_after = done["progress"]["resumed_after_dirs"]
        .as_u64()
        .expect("resumed from a checkpoint");
    assert!(
        resumed_after >= at_kill,
        "resumed at {resumed_after}, had {at_kill} at the kill"
    );
    // Directories listed before the kill were not listed again.
    let total_dirs = done["progress"]["dirs_listed"].as_u64().unwrap();
    let expected = super::expected_counts(&root, &[]);
    assert_eq!(
        total_dirs,
        expected["dirs"].as_u64().unwrap() + 1,
        "every directory listed exactly once"
    );

    // The result equals a clean run's.
    sd.ok(["library", "create", "Clean"]);
    sd.json([
        "-L".as_ref(),
        "Clean".as_ref(),
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
    ]);
    let strip = |t: std::collections::BTreeMap<Vec<u8>, (i64, String, u64, u64)>| {
        t.into_iter()
            .map(|(k, v)| (k, v.1, v.2, v.3))
            .collect::<Vec<_>>()
    };
    let crashed = strip(sd.tree("Crash", &root));
    let clean = strip(sd.tree("Clean", &root));
    assert_eq!(crashed.len(), clean.len());
    assert!(
        crashed == clean,
        "crashed-and-resumed index differs from a clean run"
    );
    let loc = sd.json(["-L", "Crash", "location", "info", "1"]);
    assert_eq!(loc["files"], expected["files"]);
    assert_eq!(loc["state"], "ready");
    sd.ok(["stop"]);
    assert_eq!(
        integrity(&sd.data.join("libraries/Crash.sdlibrary/library.db")),
        "ok"
    );
}

#[test]
fn pause_resume_and_cancel() {
    let mut sd = Sd::new();
    let root = corpus(sd.tmp.path(), 2000);
    sd.env("SPACEDRIVE_DEBUG_THROTTLE_MS", "10");
    sd.ok(["library", "create", "Jobs"]);
    let job = sd.json([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--detach".as_ref(),
    ])["job_id"]
        .as_i64()
        .unwrap()
        .to_string();
    let paused = sd.json(["job", "pause", &job]);
    assert_eq!(paused["state"], "paused");
    std::thread::sleep(Duration::from_millis(200));
    let a = sd.json(["job", "info", &job])["progress"]["dirs_listed"]
        .as_u64()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let b = sd.json(["job", "info", &job])["progress"]["dirs_listed"]
        .as_u64()
        .unwrap();
    assert_eq!(a, b, "a paused job makes no progress");
    assert_eq!(sd.json(["job", "resume", &job])["state"], "running");
    let done = sd.wait_job("Jobs", job.parse().unwrap());
    assert_eq!(done["state"], "completed");

    // A rescan cancelled midway leaves the location partial; the next rescan completes it.
    let again = sd.json(["location", "rescan", "1", "--detach"])["job_id"]
        .as_i64()
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_millis(100));
    let cancelled = sd.json(["job", "cancel", &again]);
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    assert_eq!(sd.json(["location", "info", "1"])["state"], "partial");
    sd.ok(["stop"]);
    sd.clear_env();
    let r = sd.json(["location", "rescan", "1"]);
    assert_eq!(r["job"]["state"], "completed");
    assert_eq!(r["location"]["state"], "ready");
    assert_eq!(
        r["location"]["files"],
        super::expected_counts(&root, &[])["files"]
    );

    // Job monitor streams JSON Lines and ends with the job.
    let j = sd.json(["location", "rescan", "1", "--detach"])["job_id"]
        .as_i64()
        .unwrap()
        .to_string();
    let out = sd.ok(["--json", "job", "monitor", &j]);
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "job");
    assert_eq!(last["data"]["state"], "completed");
}

#[test]
fn sigkill_mid_identification_resumes_without_rehashing() {
    let mut sd = Sd::new();
    let root = corpus(sd.tmp.path(), 2000);
    sd.env("SPACEDRIVE_DEBUG_THROTTLE_MS", "3");
    sd.ok(["library", "create", "Ids"]);
    let job = sd.json([
        "location".as_ref(),
        "add".as_ref(),
        root.as_os_str(),
        "--mode".as_ref(),
        "content".as_ref(),
        "--no-default-rules".as_ref(),
        "--no-gitignore".as_ref(),
        "--detach".as_ref(),
    ])["job_id"]
        .as_i64()
        .unwrap();
    let progress = |sd: &Sd| sd.json(["job", "info", &job.to_string()])["progress"].clone();
    wait_until("identification under way", LIMIT, || {
        let p = progress(&sd);
        p["phase"] == "content" && p["content_done"].as_u64().unwrap() >= 100
    });
    sd.kill_daemon(LIMIT);
    let db = sd.data.join("libraries/Ids.sdlibrary/library.db");
    assert_eq!(integrity(&db), "ok");
    let identified_at_kill: i64 = super::open_db(&db)
        .query_row("SELECT count(*) FROM entry_content", [], |r| r.get(0))
        .unwrap();
    assert!(identified_at_kill >= 100);

    sd.clear_env();
    let done = sd.wait_job("Ids", job);
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["resumes"], 1);
    let p = &done["progress"];
    assert_eq!(p["content_done"], p["content_total"]);
    // The files identified before the kill were not hashed again: the resumed run's work list held
    // only the rest (total = before + after, each file once).
    let files_nonempty = std::process::Command::new("find")
        .arg(&root)
        .args(["-type", "f", "-size", "+0"])
        .output()
        .unwrap()
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count() as u64;
    assert_eq!(p["content_total"].as_u64().unwrap(), files_nonempty);
    // Same identities as a clean run: the duplicate report matches one from the unindexed path.
    let lib = sd.json(["dupes"]);
    let cold = sd.json(["dupes".as_ref(), root.as_os_str()]);
    assert_eq!(lib["redundant_files"], cold["redundant_files"]);
    assert_eq!(lib["wasted_bytes"], cold["wasted_bytes"]);
    let c = super::open_db(&db);
    let (rows, copies, pointing): (i64, i64, i64) = c
        .query_row(
            "SELECT (SELECT count(*) FROM content_identities), (SELECT sum(copies) FROM content_identities),
                    (SELECT count(*) FROM entry_content)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(copies, pointing, "copy counts agree with the entries");
    assert!(rows > 0 && rows < pointing);
    assert_eq!(integrity(&db), "ok");
}
