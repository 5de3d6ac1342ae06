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
