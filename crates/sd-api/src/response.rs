//! Answers: one type per method, as docs/API.md documents them. [`Response`] holds any of them
//! so a transport can write an answer without knowing which method it answers; a client knows
//! the method it called and reads the answer as that method's type.

use sd_core::audit::{AuditRow, Verification};
use sd_core::device::DeviceIdentity;
use sd_core::dupes::{DupReport, FileInfo, Verified};
use sd_core::index::ephemeral::QuickScan;
use sd_core::jobs::JobInfo;
use sd_core::location::Location;
use sd_core::names::JsonPath;
use sd_core::organise::Tag;
use sd_core::query::Listing;
use sd_core::volume::{Speed, Tracked, Volume};
use serde::{Deserialize, Serialize};

use crate::ErrorCode;

/// Any method's answer, serialised as exactly that answer (`{"ok": <this>}` on the socket).
// One answer is built, written and dropped per request: its size on the stack does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum Response {
    /// `daemon.status`
    Status(Status),
    /// `daemon.stop`, `network.pair_cancel`
    Stopping(Stopping),
    /// `network.status`, `network.relay_set`
    NetworkStatus(crate::NetworkStatus),
    /// `network.pair_generate`
    PairCode(crate::PairCode),
    /// `network.pair_wait`, `network.pair_join`
    Device(crate::Device),
    /// `network.devices`
    Devices(Vec<crate::Device>),
    /// `network.revoke`
    Revoked(crate::Revoked),
    /// `network.ping`
    Pong(crate::Pong),
    /// `spacedrop.send`
    SpacedropSent(crate::SpacedropSent),
    /// `spacedrop.list`
    SpacedropOffers(Vec<crate::SpacedropOffer>),
    /// `spacedrop.wait`: the offer, or `null` when none came within a minute.
    SpacedropNext(Option<crate::SpacedropOffer>),
    /// `spacedrop.accept`
    SpacedropLanded(crate::SpacedropLanded),
    /// `spacedrop.decline`
    SpacedropOffer(crate::SpacedropOffer),
    /// `spacedrop.config`
    SpacedropConfig(crate::SpacedropConfig),
    /// `remote`: the other device's answer, as it sent it.
    Remote(serde_json::Value),
    /// `library.create`, `library.info`, `library.rename`, `library.use`, `library.unlock`,
    /// `library.encrypt`, `library.decrypt`, `library.passphrase`
    Library(LibraryInfo),
    /// `library.lock`
    LibraryLock(LockedNow),
    /// `library.list`
    Libraries(Vec<LibrarySummary>),
    /// `library.delete`
    LibraryDeleted(LibraryDeleted),
    /// `location.add`, `location.rescan`
    Started(Started),
    /// `location.list`
    Locations(Vec<Location>),
    /// `location.info`
    Location(LocationDetail),
    /// `location.update`
    LocationUpdated(LocationUpdated),
    /// `location.remove`
    LocationRemoved(LocationRemoved),
    /// `entries.list`
    Listing(Listing),
    /// `index.quick_scan`
    QuickScan(QuickScan),
    /// `dupes.find`
    Dupes(DupReport),
    /// `file.info`
    FileInfo(Box<FileInfo>),
    /// `file.verify`
    Verified(Verified),
    /// `search`
    Search(sd_core::search::Results),
    /// `sidecar.thumbnail`
    Thumbnail(sd_core::sidecar::Thumbnail),
    /// `sidecar.status`
    SidecarStatus(Box<sd_core::sidecar::StatusReport>),
    /// `sidecar.regenerate`
    Regenerated(sd_core::sidecar::Regenerated),
    /// `tag.list`
    Tags(Vec<Tag>),
    /// `action.preview`
    Preview(Box<sd_core::actions::Preview>),
    /// `action.commit`
    Committed(Box<Committed>),
    /// `audit.list`
    Audit(Vec<AuditRow>),
    /// `audit.verify`
    AuditVerified(Verification),
    /// `volume.list`
    Volumes(Volumes),
    /// `volume.speed_test`
    Speed(Speed),
    /// `job.list`
    Jobs(Vec<JobInfo>),
    /// `job.info`, `job.pause`, `job.resume`, `job.cancel`
    Job(Box<JobInfo>),
}

/// `daemon.status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Status {
    pub pid: u32,
    pub version: String,
    pub data_dir: JsonPath,
    pub device: DeviceIdentity,
    pub libraries: usize,
    pub uptime_ms: u64,
}

/// `daemon.stop`: always `{"stopping": true}`; the transport stops once it has answered.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Stopping {
    pub stopping: bool,
}

/// Whether a library of `library.list` is usable: `open`, or the error code that kept it closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum LibraryStatus {
    Open,
    /// Why it could not be opened (`library_locked`, `newer_version`, `corrupt`, …).
    #[serde(untagged)]
    Unavailable(ErrorCode),
}

impl std::fmt::Display for LibraryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LibraryStatus::Open => f.write_str("open"),
            LibraryStatus::Unavailable(code) => code.fmt(f),
        }
    }
}

/// One row of `library.list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LibrarySummary {
    pub id: Option<String>,
    pub name: String,
    pub path: JsonPath,
    pub default: bool,
    pub status: LibraryStatus,
    pub error: Option<String>,
    pub locations: Option<usize>,
    /// Whether the library is encrypted (`null` when its config could not be read).
    pub encrypted: Option<bool>,
}

/// `library.info` (and what `library.create`, `library.rename` and `library.use` answer).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LibraryInfo {
    pub id: String,
    pub name: String,
    pub path: JsonPath,
    pub created_at: i64,
    pub schema_version: i64,
    pub config_version: u32,
    pub locations: usize,
    pub entries: u64,
    pub disk_bytes: u64,
    pub jobs_running: usize,
    /// Distinct contents identified, and those waiting for later jobs (thumbnails, extraction).
    pub contents: u64,
    pub intelligence_queue: u64,
    pub encrypted: bool,
    /// Where the key of an encrypted library is remembered (`--remember`), if it is.
    pub key_file: Option<JsonPath>,
}

/// `library.lock`: the name of the library now locked.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LockedNow {
    pub locked: String,
}

/// `library.delete`: the name of the library whose folder was removed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LibraryDeleted {
    pub deleted: String,
}

/// `location.add` and `location.rescan`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Started {
    pub library_id: String,
    pub location: Location,
    pub job_id: i64,
    /// False when the location was already being indexed and `job_id` is that job.
    pub new_job: bool,
    /// Set when `location.add` had to create a library first.
    pub created_library: Option<String>,
}

/// `location.info`: the location plus counts the list view leaves out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LocationDetail {
    #[serde(flatten)]
    pub location: Location,
    pub symlinks: u64,
    pub entries: u64,
    pub last_job: Option<JobInfo>,
    /// `live`, `off`, `starting`, or `degraded: why`.
    pub watcher: String,
}

/// `location.update`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LocationUpdated {
    pub location: Location,
    /// The rescan a rules change started now.
    pub rescan_job: Option<i64>,
    /// The index job (running or paused, reading the old rules) after which a full rescan runs.
    pub rescan_after_job: Option<i64>,
}

/// `location.remove`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LocationRemoved {
    pub location_id: i64,
    pub entries_removed: u64,
}

/// `volume.list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Volumes {
    pub mounted: Vec<Volume>,
    /// Empty when there is no library yet.
    pub tracked: Vec<Tracked>,
}

/// `action.commit`: a file operation started as a job, or an organising change made.
#[allow(clippy::large_enum_variant)] // one per request, see `Response`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum Committed {
    /// `copy`, `move`, `rename`, `delete`, and the undo of a file operation.
    Job(JobStarted),
    /// Tags, favourites, hidden flags, notes, and their undos.
    Organised(Organised),
}

/// A file operation's job and the totals of its plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JobStarted {
    pub job: JobInfo,
    pub plan: PlanSummary,
}

/// The totals of a committed plan (`action.preview` shows every step).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PlanSummary {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    /// How many steps the job runs.
    pub steps: usize,
    pub conflicts: u64,
    pub skipped: u64,
    pub strategy: String,
    pub undoable: bool,
}

/// An organising change, recorded in the audit log as row `audit_id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Organised {
    #[serde(flatten)]
    pub change: Change,
    pub audit_id: i64,
    /// For an undo: the audit row it reversed, and that row's effect in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
}

/// What an organising action changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum Change {
    /// `tag_create`, `tag_rename` (and undoing a rename): the tag as it is now.
    Tag(Tag),
    /// `tag_delete`.
    TagDeleted(TagDeleted),
    /// `tag_apply` / `tag_remove`.
    Tagged(Tagged),
    /// Undoing `tag_apply` / `tag_remove`.
    Retagged(Retagged),
    /// `favorite`, `hide`, `note` (`on_content` absent when undoing one).
    Marked(Marked),
}

/// `tag_delete`: the tag deleted with its children, and the assignments that went with them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TagDeleted {
    pub deleted: String,
    pub tags: u64,
    pub removed_from_entries: u64,
    pub removed_from_contents: u64,
}

/// How many assignments a tag change made or took away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum TagCount {
    Added(u64),
    Removed(u64),
}

/// `tag_apply` / `tag_remove`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Tagged {
    pub tag: String,
    #[serde(flatten)]
    pub count: TagCount,
    pub on_content: bool,
}

/// The undo of a tag change, by tag id (the tag may have been renamed since).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Retagged {
    pub tag_id: i64,
    #[serde(flatten)]
    pub count: TagCount,
}

/// `favorite`, `hide`, `note`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Marked {
    pub updated: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_content: Option<bool>,
}

/// One line of an `events.subscribe` stream.
#[allow(clippy::large_enum_variant)] // written as soon as it is made, see `Response`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum StreamLine {
    /// `{"event": {"type": "job", "data": Job}}`
    Event(sd_core::events::Event),
    /// `{"heartbeat": true}`, after two seconds of silence.
    Heartbeat(bool),
    /// `{"error": {"code", "message"}}`; the stream ends.
    Error(crate::ApiError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// The engine answers organising actions as JSON (also its audit summary); each shape reads
    /// into [`Committed`] and writes back byte for byte.
    #[test]
    fn organising_answers_round_trip() {
        let tag = json!({"id": 3, "name": "Invoices", "path": "Work/Invoices", "parent_id": 1,
            "color": null, "namespace": null, "entries": 0, "contents": 0, "audit_id": 9});
        let undone_rename = json!({"id": 3, "name": "Bills", "path": "Bills", "parent_id": null,
            "color": "#3366ff", "namespace": "x", "entries": 2, "contents": 1, "audit_id": 10,
            "undid": 9, "effect": "renamed tag Bills back"});
        let deleted = json!({"deleted": "Work", "tags": 2, "removed_from_entries": 4,
            "removed_from_contents": 1, "audit_id": 11});
        let added = json!({"tag": "Work", "added": 2, "on_content": false, "audit_id": 12});
        let removed = json!({"tag": "Work", "removed": 1, "on_content": true, "audit_id": 13});
        let retag = json!({"tag_id": 4, "added": 1, "audit_id": 14, "undid": 13, "effect": "x"});
        let marked = json!({"updated": 2, "on_content": false, "audit_id": 15});
        let unmarked = json!({"updated": 2, "audit_id": 16, "undid": 15, "effect": "y"});
        type Case = (Value, fn(&Change) -> bool);
        let cases: [Case; 8] = [
            (tag, |c| matches!(c, Change::Tag(_))),
            (undone_rename, |c| matches!(c, Change::Tag(_))),
            (deleted, |c| matches!(c, Change::TagDeleted(_))),
            (
                added,
                |c| matches!(c, Change::Tagged(t) if t.count == TagCount::Added(2) && !t.on_content),
            ),
            (
                removed,
                |c| matches!(c, Change::Tagged(t) if t.count == TagCount::Removed(1)),
            ),
            (retag, |c| matches!(c, Change::Retagged(_))),
            (
                marked,
                |c| matches!(c, Change::Marked(m) if m.on_content == Some(false)),
            ),
            (
                unmarked,
                |c| matches!(c, Change::Marked(m) if m.on_content.is_none()),
            ),
        ];
        for (wire, is) in cases {
            let c: Committed = serde_json::from_value(wire.clone()).unwrap();
            let Committed::Organised(o) = &c else {
                panic!("{wire} read as a job")
            };
            assert!(is(&o.change), "{wire} read as {:?}", o.change);
            assert_eq!(serde_json::to_value(&c).unwrap(), wire);
            let r = Response::Committed(Box::new(c));
            assert_eq!(serde_json::to_value(&r).unwrap(), wire);
        }
    }

    #[test]
    fn library_status_is_open_or_a_code() {
        for (s, text) in [
            (LibraryStatus::Open, "open"),
            (
                LibraryStatus::Unavailable(ErrorCode::LibraryLocked),
                "library_locked",
            ),
            (
                LibraryStatus::Unavailable(ErrorCode::NewerVersion),
                "newer_version",
            ),
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), text);
            assert_eq!(s.to_string(), text);
            assert_eq!(
                serde_json::from_value::<LibraryStatus>(json!(text)).unwrap(),
                s
            );
        }
    }

    #[test]
    fn stream_lines_are_as_documented() {
        assert_eq!(
            serde_json::to_value(StreamLine::Heartbeat(true)).unwrap(),
            json!({"heartbeat": true})
        );
        assert_eq!(
            serde_json::to_value(StreamLine::Error(crate::ApiError::new(
                ErrorCode::NotFound,
                "no job 7"
            )))
            .unwrap(),
            json!({"error": {"code": "not_found", "message": "no job 7"}})
        );
    }
}
