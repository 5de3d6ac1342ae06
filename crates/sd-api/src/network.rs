//! The network part of the API: what a transport needs from the device's network node, as a
//! trait, so this crate stays free of networking. The daemon implements it over `sd-net`.

use serde::{Deserialize, Serialize};

use crate::ApiError;

/// The device's network node, as the API uses it. Calls block until they have an answer.
pub trait Network: Send + Sync {
    fn status(&self) -> NetworkStatus;
    /// Opens pairing with a new code (withdrawing any earlier one).
    fn pair_generate(&self) -> Result<PairCode, ApiError>;
    /// Waits until the open pairing ends.
    fn pair_wait(&self) -> Result<Device, ApiError>;
    fn pair_cancel(&self);
    /// Pairs with the device showing `code`, at `addr` or found on the LAN.
    fn pair_join(&self, code: &str, addr: Option<&str>) -> Result<Device, ApiError>;
    fn devices(&self) -> Vec<Device>;
    fn revoke(&self, device: &str) -> Result<Revoked, ApiError>;
    fn ping(&self, device: &str) -> Result<Pong, ApiError>;
    /// Uses the relay at `url` from now on (with `ca_pem`'s certificates trusted for it), or
    /// none; kept across restarts.
    fn set_relay(&self, url: Option<&str>, ca_pem: Option<&str>)
    -> Result<NetworkStatus, ApiError>;
    /// Sends `request` to `device`; its answer's `ok` value, or its error.
    fn call(&self, device: &str, request: &crate::Request) -> Result<serde_json::Value, ApiError>;
    /// Spacedrop to and from devices that are not paired.
    fn spacedrop(&self) -> &dyn Spacedrop;
}

/// `network.status`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NetworkStatus {
    /// This device's network id (its iroh endpoint id, from `network.key`).
    pub id: String,
    /// This device's identity (`device.json`): the id its libraries record it by.
    pub device_id: String,
    /// UDP sockets the endpoint listens on (QUIC).
    pub listening: Vec<String>,
    /// The TCP introduction port (`--addr HOST:PORT` on another device reaches this one).
    pub intro: Option<String>,
    /// LAN discovery (mDNS) on or off.
    pub discovery: bool,
    /// Devices seen on the LAN now.
    pub nearby: usize,
    pub paired: usize,
    /// The relay in use; none: direct connections only.
    pub relay: Option<RelayStatus>,
}

/// The relay a device keeps a home connection to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RelayStatus {
    pub url: String,
    /// A private CA is trusted for it.
    pub custom_ca: bool,
    /// Connected to it now.
    pub connected: bool,
    /// Why the last attempt to connect failed.
    pub error: Option<String>,
}

/// `network.pair_generate`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PairCode {
    pub code: String,
    /// Unix milliseconds.
    pub expires_at: i64,
    /// Where another device reaches this one with `--addr`.
    pub addrs: Vec<String>,
}

/// A paired device (`network.devices`, `network.pair_wait`, `network.pair_join`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Device {
    /// Its network id.
    pub id: String,
    /// Its device identity, as it said when pairing.
    pub device_id: Option<String>,
    pub name: String,
    pub os: String,
    pub paired_at: i64,
    pub last_seen: Option<i64>,
    pub addrs: Vec<String>,
    /// Seen on the LAN now, or answered a ping just now.
    pub online: bool,
    /// Round-trip time of that ping, in milliseconds.
    pub latency_ms: Option<f64>,
}

/// `network.revoke`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Revoked {
    pub device: Device,
    /// Whether the other device was reached and dropped this one too.
    pub told: bool,
}

/// `network.ping`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Pong {
    pub device: Device,
    pub rtt_ms: f64,
}

/// An offer waiting on this device (`spacedrop.list`, `spacedrop.wait`, `spacedrop.decline`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SpacedropOffer {
    /// What `spacedrop.accept` and `spacedrop.decline` take.
    pub id: u64,
    /// The sender's name, as it says (it is not paired: nothing vouches for it).
    pub sender: String,
    /// The sender's network id for this drop only (a new one every drop).
    pub peer: String,
    /// Six digits the sender's screen shows too.
    pub fingerprint: String,
    pub files: Vec<SpacedropFile>,
    /// Total bytes.
    pub size: u64,
    /// Unix milliseconds.
    pub expires_at: i64,
}

/// One file of an offer: its path inside the drop, already made safe.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SpacedropFile {
    pub path: String,
    pub size: u64,
}

/// `spacedrop.send`: the drop landed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SpacedropSent {
    /// The receiver's name.
    pub to: String,
    pub fingerprint: String,
    /// The names the drop's top-level files and folders have there.
    pub names: Vec<String>,
    pub files: usize,
    pub size: u64,
}

/// `spacedrop.accept`: the files landed, verified.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SpacedropLanded {
    pub id: u64,
    /// The Spacedrop folder.
    pub dir: String,
    /// The top-level names the drop has in it (renamed `name (1).ext` beside what was there).
    pub names: Vec<String>,
}

/// `spacedrop.config`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SpacedropConfig {
    /// Where accepted files land.
    pub dir: String,
    /// Offers are shown (on) or refused at once (off).
    pub receive: bool,
}

/// A line a `spacedrop.send` streams before its answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SpacedropProgress {
    /// Waiting for a person on `to`, whose screen shows `fingerprint`.
    Offered { to: String, fingerprint: String },
    /// Accepted: `done` of `total` bytes sent.
    Sending { done: u64, total: u64 },
}

/// Spacedrop: sending to and receiving from devices that are not paired.
pub trait Spacedrop: Send + Sync {
    /// Offers `paths` (files and folders) to the device named `to` nearby, or at `addr`; blocks
    /// until the drop landed, was declined, refused or expired, telling `progress` along the way.
    fn send(
        &self,
        paths: &[std::path::PathBuf],
        to: Option<&str>,
        addr: Option<&str>,
        progress: &mut dyn FnMut(SpacedropProgress),
    ) -> Result<SpacedropSent, ApiError>;
    fn list(&self) -> Vec<SpacedropOffer>;
    /// The first offer newer than `after`, waiting up to a minute (`None`: none came).
    fn wait(&self, after: u64) -> Option<SpacedropOffer>;
    fn accept(&self, id: u64) -> Result<SpacedropLanded, ApiError>;
    fn decline(&self, id: u64) -> Result<SpacedropOffer, ApiError>;
    /// Changes what is given, then returns the settings.
    fn config(&self, dir: Option<&str>, receive: Option<bool>)
    -> Result<SpacedropConfig, ApiError>;
}
