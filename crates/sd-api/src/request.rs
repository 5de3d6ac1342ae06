//! Requests: every call a client can make, and the limits every transport applies while reading
//! one.

use sd_core::index::ephemeral::Scope;
use sd_core::location::IndexMode;
use sd_core::names::JsonPath;
use sd_core::query::SortBy;
use sd_core::rules::RuleConfig;
use serde::{Deserialize, Serialize};

use crate::ApiError;

/// The largest request a transport accepts, in bytes. Checked while reading, before anything is
/// parsed, so an oversized request costs at most this much memory.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// Reads one request line (the Unix socket's framing) with the limits every transport applies:
/// at most [`MAX_REQUEST_BYTES`], valid UTF-8, a known method with valid parameters. The error is
/// a `bad_request` answer.
pub fn read_request<R: std::io::BufRead>(r: &mut R) -> Result<Request, ApiError> {
    use std::io::{BufRead, Read};
    let mut buf = Vec::new();
    r.by_ref()
        .take(MAX_REQUEST_BYTES as u64 + 1)
        .read_until(b'\n', &mut buf)
        .map_err(|e| ApiError::bad_request(format!("reading the request: {e}")))?;
    parse_request(&buf)
}

/// Parses one request body (a line, an HTTP body, a peer's frame) with the same limits as
/// [`read_request`].
pub fn parse_request(body: &[u8]) -> Result<Request, ApiError> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(ApiError::bad_request(format!(
            "request larger than {MAX_REQUEST_BYTES} bytes; send less per call"
        )));
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::bad_request(format!("request is not valid UTF-8 (byte {}); paths that are not UTF-8 go as {{\"bytes\": base64}}", e.valid_up_to()))
    })?;
    serde_json::from_str(text).map_err(|e| ApiError::bad_request(format!("malformed request: {e}")))
}

/// A passphrase in a request: never shown by `Debug`, wiped from memory when dropped.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(transparent)]
pub struct Passphrase(String);

impl Passphrase {
    pub fn new(p: impl Into<String>) -> Passphrase {
        Passphrase(p.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

impl Drop for Passphrase {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// Every call a client can make. `library` is a name or id; omitted, the default library is used.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "method", content = "params")]
pub enum Request {
    #[serde(rename = "daemon.status")]
    Status,
    #[serde(rename = "daemon.stop")]
    Stop,
    #[serde(rename = "library.create")]
    LibraryCreate {
        name: String,
        /// Encrypts the library from its first byte under this passphrase.
        #[serde(default)]
        passphrase: Option<Passphrase>,
        /// Keeps the derived key in the data folder (owner-only file) so the library opens at
        /// start-up without the passphrase.
        #[serde(default)]
        remember: bool,
    },
    #[serde(rename = "library.unlock")]
    LibraryUnlock {
        library: String,
        passphrase: Passphrase,
        #[serde(default)]
        remember: bool,
    },
    #[serde(rename = "library.lock")]
    LibraryLock { library: String },
    #[serde(rename = "library.encrypt")]
    LibraryEncrypt {
        library: String,
        passphrase: Passphrase,
        #[serde(default)]
        remember: bool,
    },
    #[serde(rename = "library.decrypt")]
    LibraryDecrypt {
        library: String,
        passphrase: Passphrase,
    },
    #[serde(rename = "library.passphrase")]
    LibraryPassphrase {
        library: String,
        passphrase: Passphrase,
        new_passphrase: Passphrase,
    },
    #[serde(rename = "library.list")]
    LibraryList,
    #[serde(rename = "library.info")]
    LibraryInfo { library: Option<String> },
    #[serde(rename = "library.rename")]
    LibraryRename { library: String, new_name: String },
    #[serde(rename = "library.delete")]
    LibraryDelete { library: String },
    #[serde(rename = "library.use")]
    LibraryUse { library: String },
    #[serde(rename = "location.add")]
    LocationAdd {
        library: Option<String>,
        path: JsonPath,
        name: Option<String>,
        mode: IndexMode,
        rules: RuleConfig,
        #[serde(default = "yes")]
        watch: bool,
    },
    #[serde(rename = "location.list")]
    LocationList { library: Option<String> },
    #[serde(rename = "location.info")]
    LocationInfo { library: Option<String>, id: i64 },
    #[serde(rename = "location.rescan")]
    LocationRescan { library: Option<String>, id: i64 },
    /// Changes a location's name, watch toggle or rules (then rescans it).
    #[serde(rename = "location.update")]
    LocationUpdate {
        library: Option<String>,
        id: i64,
        changes: sd_core::location::Changes,
    },
    #[serde(rename = "location.remove")]
    LocationRemove { library: Option<String>, id: i64 },
    #[serde(rename = "entries.list")]
    EntriesList {
        library: Option<String>,
        path: JsonPath,
        recursive: bool,
        sort: SortBy,
        limit: Option<usize>,
        /// Entries to leave out first (in `sort` order), to page through a large folder.
        offset: Option<usize>,
    },
    #[serde(rename = "index.quick_scan")]
    QuickScan {
        path: JsonPath,
        scope: Scope,
        rules: RuleConfig,
    },
    /// Duplicates in the library's index (`path: null`) or under any folder, not indexed.
    #[serde(rename = "dupes.find")]
    Dupes {
        library: Option<String>,
        path: Option<JsonPath>,
        min_size: u64,
    },
    #[serde(rename = "file.info")]
    FileInfo {
        library: Option<String>,
        path: JsonPath,
    },
    #[serde(rename = "file.verify")]
    Verify {
        library: Option<String>,
        path: JsonPath,
    },
    /// The thumbnail of an indexed file (made now when missing): its path.
    #[serde(rename = "sidecar.thumbnail")]
    Thumbnail {
        library: Option<String>,
        path: JsonPath,
        #[serde(default = "thumb_size")]
        size: u32,
    },
    /// Sidecars by kind and status, the queue, the outside tools found, the job.
    #[serde(rename = "sidecar.status")]
    SidecarStatus { library: Option<String> },
    /// Marks sidecars (of one kind) to be made again and starts the job that does it.
    #[serde(rename = "sidecar.regenerate")]
    SidecarRegenerate {
        library: Option<String>,
        kind: Option<String>,
    },
    #[serde(rename = "search")]
    Search {
        library: Option<String>,
        // Boxed: the query is by far the largest request.
        query: Box<sd_core::search::Query>,
    },
    #[serde(rename = "tag.list")]
    TagList { library: Option<String> },
    /// What an action would do (every step, conflicts, bytes, free space), changing nothing.
    #[serde(rename = "action.preview")]
    Preview {
        library: Option<String>,
        action: sd_core::actions::Action,
    },
    /// Carries out an action: file operations (copy, move, rename, delete, undo) start a job and
    /// answer `{"job", "plan"}`; tags, favourites, hidden flags and notes answer what changed.
    #[serde(rename = "action.commit")]
    Action {
        library: Option<String>,
        action: sd_core::actions::Action,
    },
    /// The audit log, newest first.
    #[serde(rename = "audit.list")]
    AuditList {
        library: Option<String>,
        limit: Option<usize>,
    },
    /// Checks the audit log's hash chain.
    #[serde(rename = "audit.verify")]
    AuditVerify { library: Option<String> },
    /// Mounted volumes, and the volumes the library tracks (offline ones too).
    #[serde(rename = "volume.list")]
    VolumeList { library: Option<String> },
    /// Sequential write/read speed of the volume holding `path` (a temporary file, removed after).
    #[serde(rename = "volume.speed_test")]
    SpeedTest {
        library: Option<String>,
        path: JsonPath,
        size_mb: u64,
    },
    #[serde(rename = "job.list")]
    JobList {
        library: Option<String>,
        limit: Option<usize>,
    },
    #[serde(rename = "job.info")]
    JobInfo { library: Option<String>, id: i64 },
    #[serde(rename = "job.pause")]
    JobPause { library: Option<String>, id: i64 },
    #[serde(rename = "job.resume")]
    JobResume { library: Option<String>, id: i64 },
    #[serde(rename = "job.cancel")]
    JobCancel { library: Option<String>, id: i64 },
    /// This device on the network: id, listening addresses, discovery.
    #[serde(rename = "network.status")]
    NetworkStatus,
    /// Opens pairing: a code for one device, valid five minutes.
    #[serde(rename = "network.pair_generate")]
    NetworkPairGenerate,
    /// Waits until the open pairing ends: the paired device, or why not.
    #[serde(rename = "network.pair_wait")]
    NetworkPairWait,
    /// Withdraws the open pairing code.
    #[serde(rename = "network.pair_cancel")]
    NetworkPairCancel,
    /// Pairs with the device showing `code`: at `addr` (`HOST:PORT`), or found on the LAN.
    #[serde(rename = "network.pair_join")]
    NetworkPairJoin { code: String, addr: Option<String> },
    /// Paired devices.
    #[serde(rename = "network.devices")]
    NetworkDevices,
    /// Ends the pairing with a device (on both sides when it can be told).
    #[serde(rename = "network.revoke")]
    NetworkRevoke { device: String },
    /// Round-trip time to a paired device.
    #[serde(rename = "network.ping")]
    NetworkPing { device: String },
    /// Sets the relay (`url`; `null` clears it: direct connections only) and, for a relay with a
    /// private CA, the PEM text of the certificates to trust for it. Restarts the endpoint.
    #[serde(rename = "network.relay_set")]
    NetworkRelaySet {
        url: Option<String>,
        ca_pem: Option<String>,
    },
    /// Offers files and folders by Spacedrop to a device that need not be paired: `to` (its
    /// name, found on the LAN), or at `addr` (its introduction `HOST:PORT`). On the socket, lines
    /// `{"progress": …}` come before the answer.
    #[serde(rename = "spacedrop.send")]
    SpacedropSend {
        paths: Vec<JsonPath>,
        to: Option<String>,
        addr: Option<String>,
    },
    /// Spacedrop offers waiting on this device.
    #[serde(rename = "spacedrop.list")]
    SpacedropList,
    /// Waits (up to a minute) for an offer newer than `after`.
    #[serde(rename = "spacedrop.wait")]
    SpacedropWait { after: Option<u64> },
    /// Accepts a waiting offer; answers when its files have landed.
    #[serde(rename = "spacedrop.accept")]
    SpacedropAccept { id: u64 },
    /// Declines a waiting offer: nothing is written.
    #[serde(rename = "spacedrop.decline")]
    SpacedropDecline { id: u64 },
    /// The Spacedrop folder and whether offers are received; changes what is given.
    #[serde(rename = "spacedrop.config")]
    SpacedropConfig {
        dir: Option<String>,
        receive: Option<bool>,
    },
    /// `request` answered by the paired device `device` (read-only calls only).
    #[serde(rename = "remote")]
    Remote {
        device: String,
        request: Box<Request>,
    },
    /// Streams events. With `job`, starts with that job's current state and ends when it finishes;
    /// without, starts with every unfinished job and streams until the client hangs up.
    #[serde(rename = "events.subscribe")]
    Subscribe {
        library: Option<String>,
        job: Option<i64>,
    },
}

impl Request {
    /// Whether a paired device may make this call here: the read-only ones that show what this
    /// device holds, nothing that changes it.
    pub fn remote_readable(&self) -> bool {
        matches!(
            self,
            Request::Status
                | Request::LibraryList
                | Request::LibraryInfo { .. }
                | Request::LocationList { .. }
                | Request::LocationInfo { .. }
        )
    }
}

fn yes() -> bool {
    true
}

fn thumb_size() -> u32 {
    256
}
