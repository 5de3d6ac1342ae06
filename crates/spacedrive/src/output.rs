//! Human-readable rendering: sizes, times, tables and progress bars. JSON output bypasses all of it.

use indicatif::{ProgressBar, ProgressStyle};
use sd_core::fileops::FileOpProgress;
use sd_core::index::IndexProgress;
use sd_core::jobs::JobProgress;
use sd_core::jobs::{JobInfo, JobSpec};

/// Writes one line to stdout (the crate's `println!`). A closed stdout (`spacedrive dupes | head`)
/// ends the process quietly with status 0; another write error ends it with a message.
pub fn print_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing the output: {e}");
        std::process::exit(1);
    }
}

/// A name or path as text output shows it: lossy UTF-8, with control characters (newlines,
/// escape sequences, …) escaped as `\n`, `\t`, `\x1b`, `\u{9b}`, so a file name cannot forge
/// lines or drive the terminal. JSON output carries the exact bytes instead.
pub fn shown(name: &std::ffi::OsStr) -> String {
    escape_controls(&name.to_string_lossy())
}

/// `s` in double quotes, escaped as a JSON string (how the CLI has always quoted a tag name).
pub fn quoted(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// [`shown`] for text that is already a string (names of locations, libraries, tags; messages
/// that quote paths).
pub fn escape_controls(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `1536` → `1.5 KiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `1234567` → `1,234,567`.
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The time zone times are shown in and dates without a zone are read in: the system's (`TZ`,
/// else `/etc/localtime`), UTC when it cannot be found.
pub fn time_zone() -> &'static jiff::tz::TimeZone {
    static TZ: std::sync::OnceLock<jiff::tz::TimeZone> = std::sync::OnceLock::new();
    TZ.get_or_init(|| jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC))
}

/// Unix milliseconds → `2026-11-21 06:47`, in the local time zone ([`time_zone`]).
pub fn time_ms(ms: i64) -> String {
    let ts = jiff::Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    });
    time_in(ts, time_zone())
}

/// Nanoseconds → same format as [`time_ms`].
pub fn time_ns(ns: i64) -> String {
    // Every i64 of nanoseconds (1677–2262) is a valid jiff timestamp.
    let ts =
        jiff::Timestamp::from_nanosecond(i128::from(ns)).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    time_in(ts, time_zone())
}

fn time_in(ts: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> String {
    ts.to_zoned_datetime(tz.clone())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

/// Milliseconds of duration → `1.2 s` / `3 min 4 s`.
pub fn duration_ms(ms: i64) -> String {
    if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000)
    }
}

/// Prints rows as left-aligned columns (the last column is not padded). Control characters in
/// cells are escaped ([`escape_controls`]): a name can neither break a row nor drive the terminal.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| escape_controls(c)).collect())
        .collect();
    let rows = &rows;
    let cols = header.len();
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(cols) {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(w[i] - c.chars().count() + 2));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// A listing's name column: folders end in `/`, symlinks show their target (names lossily).
pub fn entry_name(
    kind: sd_core::index::walk::EntryKind,
    shown: String,
    target: Option<&sd_core::names::JsonPath>,
) -> String {
    use sd_core::index::walk::EntryKind;
    match (kind, target) {
        (EntryKind::Dir, _) => format!("{shown}/"),
        (EntryKind::Symlink, Some(t)) => format!("{shown} -> {}", self::shown(t.0.as_os_str())),
        _ => shown,
    }
}

/// One-line summary of an index job's progress.
pub fn index_message(p: &IndexProgress) -> String {
    let phase = match p.phase {
        sd_core::index::Phase::Discovery => "indexing",
        sd_core::index::Phase::Cleanup => "cleaning up",
        sd_core::index::Phase::Aggregation => "summing sizes",
        sd_core::index::Phase::Content => {
            return format!(
                "identifying content: {} of {} files, {} read",
                count(p.content_done),
                count(p.content_total),
                bytes(p.content_bytes)
            );
        }
        sd_core::index::Phase::Done => "done",
    };
    let mut s = format!(
        "{phase}: {} files, {} dirs, {}",
        count(p.files),
        count(p.dirs),
        bytes(p.bytes)
    );
    if p.errors > 0 {
        s.push_str(&format!(", {} unreadable", count(p.errors)));
    }
    s
}

/// A progress bar for a job, on stderr (hidden when stderr is not a terminal).
pub fn job_bar(job: &JobInfo) -> ProgressBar {
    let total = match &job.progress {
        JobProgress::Index(p) => p.expected,
        JobProgress::FileOp(p) => Some(p.bytes_total.max(p.steps_total)),
        JobProgress::TransferPull(p) => Some(p.bytes_total.max(p.files_total)),
        JobProgress::TransferPush(p) => Some(p.bytes_total.max(p.files_total)),
        JobProgress::Sidecar(p) => Some(p.total),
    };
    let bar = match total {
        Some(n) if n > 0 => {
            let b = ProgressBar::new(n);
            b.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {percent:>3}% {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b
        }
        _ => {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{prefix} {spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b
        }
    };
    bar.set_prefix(format!("job {} {}", job.id, describe(job)));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    update_bar(&bar, job);
    bar
}

/// Moves a job's bar to its latest progress.
pub fn update_bar(bar: &ProgressBar, job: &JobInfo) {
    let msg = match &job.progress {
        JobProgress::Index(p) => {
            if p.phase == sd_core::index::Phase::Content && p.content_total > 0 {
                bar.set_length(p.content_total);
                bar.set_position(p.content_done);
            } else {
                bar.set_position(p.files + p.dirs + p.symlinks + p.other);
            }
            index_message(p)
        }
        JobProgress::FileOp(p) => {
            if p.bytes_total > 0 {
                bar.set_length(p.bytes_total);
                bar.set_position(p.bytes_done);
            } else {
                bar.set_length(p.steps_total.max(1));
                bar.set_position(p.steps_done);
            }
            file_op_message(p)
        }
        JobProgress::TransferPull(_) | JobProgress::TransferPush(_) => {
            let (done, total) = transfer_position(&job.progress);
            bar.set_length(total.max(1));
            bar.set_position(done);
            progress_message(&job.progress)
        }
        JobProgress::Sidecar(p) => {
            bar.set_length(p.total.max(1));
            bar.set_position(p.done);
            sidecar_message(p)
        }
    };
    let paused = if job.state == sd_core::jobs::JobState::Paused {
        " (paused)"
    } else {
        ""
    };
    bar.set_message(format!("{msg}{paused}"));
}

/// One-line summary of any job's progress.
pub fn progress_message(p: &JobProgress) -> String {
    match p {
        JobProgress::Index(p) => index_message(p),
        JobProgress::FileOp(p) => file_op_message(p),
        JobProgress::TransferPull(p) => {
            let phase = match p.pull {
                sd_core::transfer::PullPhase::Receiving => String::new(),
                sd_core::transfer::PullPhase::Waiting => format!(
                    "waiting for {} ({}); ",
                    p.from,
                    p.waiting.as_deref().unwrap_or("unreachable")
                ),
                sd_core::transfer::PullPhase::RemovingSources => "removing moved sources; ".into(),
                sd_core::transfer::PullPhase::UpdatingIndex => "updating the index; ".into(),
                sd_core::transfer::PullPhase::Done => "done; ".into(),
            };
            transfer_message(
                &phase,
                p.files_done,
                p.files_total,
                p.bytes_done,
                p.bytes_total,
                p.failed,
            )
        }
        JobProgress::TransferPush(p) => {
            let phase = match (&p.push, &p.waiting) {
                (sd_core::transfer::PushPhase::Waiting, w) => format!(
                    "waiting for {} ({}); ",
                    p.to,
                    w.as_deref().unwrap_or("unreachable")
                ),
                _ => String::new(),
            };
            transfer_message(
                &phase,
                p.files_done,
                p.files_total,
                p.bytes_done,
                p.bytes_total,
                p.failed,
            )
        }
        JobProgress::Sidecar(p) => sidecar_message(p),
    }
}

/// Bytes (or files, when there are no bytes) done and in all, of a transfer.
fn transfer_position(p: &JobProgress) -> (u64, u64) {
    let (fd, ft, bd, bt) = match p {
        JobProgress::TransferPull(p) => (p.files_done, p.files_total, p.bytes_done, p.bytes_total),
        JobProgress::TransferPush(p) => (p.files_done, p.files_total, p.bytes_done, p.bytes_total),
        _ => (0, 0, 0, 0),
    };
    if bt > 0 { (bd, bt) } else { (fd, ft) }
}

fn transfer_message(phase: &str, fd: u64, ft: u64, bd: u64, bt: u64, failed: u64) -> String {
    let mut s = format!(
        "{phase}{} of {} files, {} of {}",
        count(fd),
        count(ft),
        bytes(bd),
        bytes(bt)
    );
    if failed > 0 {
        s.push_str(&format!(", {} failed", count(failed)));
    }
    s
}

/// One-line summary of a sidecar job's progress.
pub fn sidecar_message(p: &sd_core::sidecar::SidecarProgress) -> String {
    let mut s = format!(
        "{} of {} contents; {} thumbnails, {} with metadata, {} texts",
        count(p.done),
        count(p.total),
        count(p.thumbnails),
        count(p.metadata),
        count(p.texts)
    );
    if p.failed > 0 {
        s.push_str(&format!(", {} failed", count(p.failed)));
    }
    if p.removed > 0 {
        s.push_str(&format!(", {} collected", count(p.removed)));
    }
    s
}

/// One-line summary of a file operation's progress.
pub fn file_op_message(p: &FileOpProgress) -> String {
    use sd_core::fileops::FileOpPhase;
    let phase = match p.phase {
        FileOpPhase::Working => "",
        FileOpPhase::RemovingSources => "removing moved sources; ",
        FileOpPhase::UpdatingIndex => "updating the index; ",
        FileOpPhase::Done => "done; ",
    };
    let mut s = format!(
        "{phase}{} of {} steps, {} of {}",
        count(p.steps_done),
        count(p.steps_total),
        bytes(p.bytes_done),
        bytes(p.bytes_total)
    );
    if p.failed > 0 {
        s.push_str(&format!(", {} failed", count(p.failed)));
    }
    s
}

/// `index location 3`.
pub fn describe(job: &JobInfo) -> String {
    match &job.spec {
        JobSpec::Index(p) if p.initial => format!("index location {}", p.location_id),
        JobSpec::Index(p) if !p.subtrees.is_empty() => {
            format!(
                "update location {} ({} folders changed)",
                p.location_id,
                p.subtrees.len()
            )
        }
        JobSpec::Index(p) => format!("rescan location {}", p.location_id),
        JobSpec::FileOp(p) if p.undoes.is_some() => {
            format!("undo of action {}", p.undoes.unwrap_or_default())
        }
        JobSpec::FileOp(p) => p.op.as_str().to_string(),
        JobSpec::TransferPull(p) => format!(
            "{} from {}",
            if p.move_source { "move" } else { "copy" },
            p.device_name
        ),
        JobSpec::TransferPush(p) => format!(
            "{} to {}",
            if p.move_source { "move" } else { "copy" },
            p.device_name
        ),
        JobSpec::Sidecar(p) => format!("sidecars ({})", p.reason),
    }
}

/// What a finished job did, in one paragraph.
pub fn job_summary(job: &JobInfo) -> String {
    if matches!(
        job.progress,
        JobProgress::TransferPull(_) | JobProgress::TransferPush(_)
    ) {
        return format!(
            "{} job {} {}: {}",
            describe(job),
            job.id,
            job.state.as_str(),
            progress_message(&job.progress)
        );
    }
    if let JobProgress::Sidecar(p) = &job.progress {
        return sidecar_summary(job, p);
    }
    let JobProgress::FileOp(p) = &job.progress else {
        return index_summary(job);
    };
    let took = match (job.started_at, job.finished_at) {
        (Some(a), Some(b)) => format!(" in {}", duration_ms(b - a)),
        _ => String::new(),
    };
    let mut s = format!(
        "{} job {} {}{took}: {} of {} steps, {}",
        describe(job),
        job.id,
        job.state.as_str(),
        count(p.steps_done),
        count(p.steps_total),
        bytes(p.bytes_done)
    );
    let parts = [
        (p.copied, "copied and verified"),
        (p.renamed, "renamed"),
        (p.linked, "hard-linked"),
        (p.dirs_made, "folders made"),
        (p.trashed, "moved to the trash"),
        (p.deleted, "deleted"),
        (p.restored, "restored"),
        (
            p.sources_removed,
            "sources removed after their copy was verified",
        ),
        (
            p.already_done,
            "already in place after a restart (not copied again)",
        ),
        (p.skipped, "skipped"),
        (p.failed, "failed"),
        (p.sources_kept, "sources kept (not removed)"),
    ];
    let list: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{} {what}", count(*n)))
        .collect();
    if !list.is_empty() {
        s.push_str(&format!("\n  {}", list.join(", ")));
    }
    if !p.strategies.is_empty() {
        let st: Vec<String> = p
            .strategies
            .iter()
            .map(|(k, v)| format!("{k} {}", count(*v)))
            .collect();
        s.push_str(&format!("\n  strategy: {}", st.join(", ")));
    }
    for e in p.errors.iter().take(10) {
        s.push_str(&format!("\n  {}", escape_controls(e)));
    }
    // A job that completed with errors keeps their summary in `error`: listed just above.
    if let Some(e) = &job.error
        && job.state != sd_core::jobs::JobState::CompletedWithErrors
    {
        s.push_str(&format!("\n  error: {}", escape_controls(e)));
    }
    s
}

/// What a finished sidecar job did, in one paragraph.
fn sidecar_summary(job: &JobInfo, p: &sd_core::sidecar::SidecarProgress) -> String {
    let mut s = format!(
        "{} job {} {} in {}: {}",
        describe(job),
        job.id,
        job.state.as_str(),
        duration_ms(p.ms as i64),
        sidecar_message(p)
    );
    if p.unsupported > 0 || p.deferred > 0 {
        s.push_str(&format!(
            "\n  {} unsupported (no decoder or tool), {} left queued (file gone or changed)",
            count(p.unsupported),
            count(p.deferred)
        ));
    }
    for f in p.failures.iter().take(10) {
        s.push_str(&format!(
            "\n  {} ({}): {}",
            shown(f.path.0.as_os_str()),
            f.kind,
            escape_controls(&f.reason)
        ));
    }
    if let Some(e) = &job.error {
        s.push_str(&format!("\n  error: {}", escape_controls(e)));
    }
    s
}

/// What a finished index job did, in one paragraph.
fn index_summary(job: &JobInfo) -> String {
    let Some(p) = job.progress.index() else {
        return String::new();
    };
    let took = match (job.started_at, job.finished_at) {
        (Some(a), Some(b)) => format!(" in {}", duration_ms(b - a)),
        _ => String::new(),
    };
    let t = p.totals.unwrap_or_default();
    let mut s = format!(
        "{} job {} {}{took}: {} files, {} dirs, {}",
        describe(job),
        job.id,
        job.state.as_str(),
        count(t.files),
        count(t.dirs),
        bytes(t.bytes)
    );
    s.push_str(&format!(
        "\n  changes: {} new, {} modified, {} moved, {} deleted; {} ignored by rules",
        count(p.new),
        count(p.modified),
        count(p.moved),
        count(p.deleted),
        count(p.ignored)
    ));
    if p.content_total > 0 || p.content_done > 0 {
        s.push_str(&format!(
            "\n  content: {} files identified in {}, {} read; {} full hashes for shared ids; {} queued for thumbnails/extraction",
            count(p.content_done),
            duration_ms(p.content_ms as i64),
            bytes(p.content_bytes),
            count(p.integrity_hashed),
            count(p.queued)
        ));
    }
    if let Some(d) = p.resumed_after_dirs {
        s.push_str(&format!(
            "\n  resumed from a checkpoint after {} directories",
            count(d)
        ));
    }
    if p.errors > 0 {
        s.push_str(&format!("\n  {} paths could not be read:", count(p.errors)));
        for e in p.error_samples.iter().take(10) {
            s.push_str(&format!(
                "\n    {}: {}",
                shown(e.path.0.as_os_str()),
                escape_controls(&e.message)
            ));
        }
    }
    if let Some(e) = &job.error {
        s.push_str(&format!("\n  error: {}", escape_controls(e)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(12), "12");
        assert_eq!(escape_controls("plain café"), "plain café");
        assert_eq!(
            escape_controls("a\nb\tc\x1b[31md\u{9b}e\u{7f}"),
            "a\\nb\\tc\\x1b[31md\\u{9b}e\\x7f"
        );
        let utc = &jiff::tz::TimeZone::UTC;
        let ms = |ms: i64| time_in(jiff::Timestamp::from_millisecond(ms).unwrap(), utc);
        assert_eq!(ms(0), "1970-01-01 00:00");
        assert_eq!(ms(1_735_689_600_000), "2025-01-01 00:00");
        assert_eq!(ms(951_782_400_000), "2000-02-29 00:00");
        let paris = &jiff::tz::TimeZone::get("Europe/Paris").unwrap();
        assert_eq!(
            time_in(jiff::Timestamp::from_millisecond(0).unwrap(), paris),
            "1970-01-01 01:00"
        );
        // Never a panic or a wrapped year at the ends of the range.
        assert_eq!(&time_ns(i64::MAX)[..4], "2262");
        assert_eq!(&time_ns(i64::MIN + 1)[..4], "1677");
        assert!(!time_ms(i64::MAX).is_empty());
        assert!(!time_ms(i64::MIN).is_empty());
    }
}
