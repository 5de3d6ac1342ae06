//! Spacedrive networking: the device's network identity, its iroh endpoint, pairing with a
//! short code, the trusted devices list, Spacedrop to devices that are not paired, and the
//! framing every peer protocol uses.
//!
//! Architecture Invariant: this crate is the only one that speaks to the network; the engine
//! (`sd-core`) knows nothing of it. Every protocol is an ALPN constant
//! (`spacedrive/<name>/<version>`) behind one [`iroh::protocol::Router`]; every message from a
//! peer is a length-capped, versioned [`frame`], and a malformed one ends that connection with
//! a logged reason, never a panic.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sd_net::{DeviceInfo, Net, NetConfig};
//! let cfg = |dir: &str| NetConfig {
//!     data_dir: dir.into(),
//!     bind: "127.0.0.1:0".parse().unwrap(),
//!     info: DeviceInfo { device_id: None, name: dir.into(), os: "linux".into(), addrs: vec![], relay: None },
//!     handler: std::sync::Arc::new(|_peer, _request| serde_json::json!({"ok": null})),
//!     mdns: false,
//!     relay: None,
//!     spacedrop: None,
//!     transfer: std::sync::Arc::new(sd_net::transfer::ShareNothing),
//! };
//! let (host, guest) = (Net::start(cfg("/tmp/a")).await?, Net::start(cfg("/tmp/b")).await?);
//! let (code, paired) = host.pair_generate();
//! guest.pair_join(&code.to_string(), host.intro_addr().unwrap()).await?;
//! println!("paired with {}", paired.await??.name);
//! # Ok(()) }
//! ```

pub mod devices;
pub mod frame;
pub mod identity;
pub mod net;
pub mod pair;
pub mod rpc;
pub mod spacedrop;
pub mod transfer;

pub use devices::{DeviceInfo, Devices, TrustedDevice};
pub use iroh::EndpointId;
pub use net::{Nearby, Net, NetConfig, NetError, Relay, RelayState, SpacedropTo};
pub use pair::{Code, PairError};
pub use rpc::CallError;
pub use transfer::{Refusal, TransferError};
