//! The daemon's network service: runs an [`sd_net::Net`] on its own tokio runtime and offers it
//! to the API as an [`sd_api::Network`]. Calls from paired devices are answered by
//! [`sd_api::handle`] for the read-only requests ([`sd_api::Request::remote_readable`]), the
//! same typed requests and answers as the local socket.
//!
//! Settings (`<data>/network.json`, created on first start): the port (chosen at random the first
//! time, then kept so paired devices find this one again), LAN discovery (on), and the relay
//! (none; `network relay set` changes it and restarts the endpoint on the same port). For tests,
//! `SPACEDRIVE_NET_HOST` (e.g. `127.0.0.1`: listen there only) and `SPACEDRIVE_MDNS=0` override
//! them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use sd_api::{
    ApiError, Device, ErrorCode, Network, NetworkStatus, PairCode, Pong, RelayStatus, Request,
    Revoked,
};
use sd_core::Node;
use sd_net::{DeviceInfo, Net, NetConfig, PairError, Relay, TrustedDevice};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Settings {
    port: u16,
    mdns: bool,
    /// The relay's URL; none: direct connections only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    relay: Option<String>,
    /// PEM certificates trusted for that relay (a private CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    relay_ca_pem: Option<String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            port: 0,
            mdns: true,
            relay: None,
            relay_ca_pem: None,
        }
    }
}

impl Settings {
    fn load(data_dir: &Path) -> Settings {
        std::fs::read(settings_path(data_dir))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Saved atomically: a crash leaves the old settings or the new.
    fn save(&self, data_dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        sd_core::fsutil::write_atomic(&settings_path(data_dir), &bytes)
            .map_err(std::io::Error::other)
    }

    fn relay(&self) -> Result<Option<Relay>, String> {
        self.relay
            .as_deref()
            .map(|url| Relay::parse(url, self.relay_ca_pem.as_deref()))
            .transpose()
    }
}

type PairResult = Result<TrustedDevice, PairError>;

/// The running network service.
pub struct NetService {
    /// This device's identity (`device.json`), told to devices it pairs with.
    device_id: String,
    pub(crate) rt: tokio::runtime::Runtime,
    /// Replaced whole when the relay changes.
    net: RwLock<Arc<Net>>,
    /// What starts a node: everything but the relay and the port.
    base: NetConfig,
    /// Serialises settings changes.
    settings: Mutex<Settings>,
    waiting: Mutex<Option<oneshot::Receiver<PairResult>>>,
    /// Pushes of this device in progress (shared with what serves transfers).
    pub(crate) grants: crate::transfer::Grants,
    /// Spacedrop's settings and offers (kept across restarts of the node).
    drops: crate::spacedrop::Drops,
    /// This device's name, told to whom it drops files.
    name: String,
}

fn settings_path(data_dir: &Path) -> PathBuf {
    data_dir.join("network.json")
}

impl NetService {
    /// Starts the node for `node`'s data folder; paired devices' calls are answered from `node`.
    pub fn start(node: Arc<Node>) -> anyhow::Result<NetService> {
        let data_dir = node.data_dir.clone();
        let settings = Settings::load(&data_dir);
        let host: std::net::IpAddr = match std::env::var("SPACEDRIVE_NET_HOST") {
            Ok(h) => h
                .parse()
                .map_err(|e| anyhow::anyhow!("SPACEDRIVE_NET_HOST={h:?}: {e}"))?,
            Err(_) => std::net::IpAddr::from([0, 0, 0, 0]),
        };
        let mdns = match std::env::var("SPACEDRIVE_MDNS") {
            Ok(v) => v != "0",
            Err(_) => settings.mdns,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sd-net")
            .enable_all()
            .build()?;
        let info = DeviceInfo {
            device_id: Some(node.device.id.to_string()),
            name: node.device.name.clone(),
            os: node.device.os.clone(),
            addrs: Vec::new(), // filled in by the node once it listens
            relay: None,       // likewise
        };
        let serving = node.clone();
        let handler: sd_net::rpc::Handler =
            Arc::new(move |peer, request| answer(&serving, peer.to_string(), request));
        let grants = crate::transfer::Grants::default();
        let drops = crate::spacedrop::Drops::new(&data_dir);
        let base = NetConfig {
            data_dir,
            bind: SocketAddr::new(host, 0),
            info,
            handler,
            transfer: Arc::new(crate::transfer::Sharing::new(node.clone(), grants.clone())),
            mdns,
            relay: None,
            spacedrop: Some(drops.inbox.clone()),
        };
        let relay = settings.relay().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the relay in network.json is unusable; running without one");
            None
        });
        let mut settings = settings;
        let net = bind(&rt, &base, &mut settings, relay)?;
        Ok(NetService {
            device_id: node.device.id.to_string(),
            rt,
            net: RwLock::new(Arc::new(net)),
            base,
            settings: Mutex::new(settings),
            waiting: Mutex::new(None),
            grants,
            drops,
            name: node.device.name.clone(),
        })
    }

    /// The node as it runs now.
    pub(crate) fn net(&self) -> Arc<Net> {
        self.net.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A paired device as the API shows it; `rtt` when it was just reached.
    fn device(&self, d: TrustedDevice, rtt: Option<Duration>) -> Device {
        let nearby = self.net().nearby().iter().any(|n| n.id.to_string() == d.id);
        Device {
            id: d.id,
            device_id: d.device_id,
            name: d.name,
            os: d.os,
            paired_at: d.paired_at,
            last_seen: d.last_seen,
            addrs: d.addrs,
            online: nearby || rtt.is_some(),
            latency_ms: rtt.map(|r| r.as_secs_f64() * 1000.0),
        }
    }

    /// Addresses another device can use with `--addr`: the introduction port on this host's
    /// addresses.
    fn reachable_at(&self) -> Vec<String> {
        self.net()
            .intro_addr()
            .map(|intro| sd_net::net::own_addrs(&[intro]))
            .unwrap_or_default()
    }
}

/// Starts a node on the kept port (any port when that one is taken by another program, then kept
/// instead, so paired devices find this one again).
fn bind(
    rt: &tokio::runtime::Runtime,
    base: &NetConfig,
    settings: &mut Settings,
    relay: Option<Relay>,
) -> anyhow::Result<Net> {
    let start = |port| {
        let mut cfg = base.clone();
        cfg.bind.set_port(port);
        cfg.relay = relay.clone();
        rt.block_on(Net::start(cfg))
    };
    let net = match start(settings.port) {
        Ok(n) => n,
        Err(sd_net::NetError::Bind { .. }) if settings.port != 0 => start(0)?,
        Err(e) => return Err(e.into()),
    };
    if let Some(port) = net.listening().first().map(|a| a.port())
        && port != settings.port
    {
        settings.port = port;
        if let Err(e) = settings.save(&base.data_dir) {
            tracing::warn!(error = %e, "saving network.json");
        }
    }
    Ok(net)
}

fn pair_error(e: PairError) -> ApiError {
    let code = match e {
        PairError::Unreachable(_) => ErrorCode::Unreachable,
        PairError::Cancelled => ErrorCode::Conflict,
        _ => ErrorCode::Invalid,
    };
    ApiError::new(code, e.to_string())
}

fn call_error(e: sd_net::CallError) -> ApiError {
    let code = match e {
        sd_net::CallError::NotPaired { .. } => ErrorCode::NotPaired,
        _ => ErrorCode::Unreachable,
    };
    ApiError::new(code, e.to_string())
}

fn devices_error(e: sd_net::devices::DevicesError) -> ApiError {
    let code = match e {
        sd_net::devices::DevicesError::NotFound(_) => ErrorCode::NotFound,
        sd_net::devices::DevicesError::Ambiguous(..) => ErrorCode::Ambiguous,
        _ => ErrorCode::Io,
    };
    ApiError::new(code, e.to_string())
}

/// A paired device's call: the read-only requests, answered as on the local socket.
fn answer(node: &Node, peer: String, request: serde_json::Value) -> serde_json::Value {
    let result = serde_json::from_value::<Request>(request)
        .map_err(|e| ApiError::bad_request(format!("malformed request: {e}")))
        .and_then(|req| {
            if req.remote_readable() {
                tracing::debug!(%peer, "remote call");
                sd_api::handle(node, req)
            } else {
                Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "a paired device can only read here: daemon status, libraries and locations",
                ))
            }
        });
    match result
        .and_then(|r| serde_json::to_value(r).map_err(|e| ApiError::internal(e.to_string())))
    {
        Ok(v) => serde_json::json!({ "ok": v }),
        Err(e) => serde_json::json!({ "error": e }),
    }
}

impl sd_api::Spacedrop for NetService {
    fn send(
        &self,
        paths: &[PathBuf],
        to: Option<&str>,
        addr: Option<&str>,
        progress: &mut dyn FnMut(sd_api::SpacedropProgress),
    ) -> Result<sd_api::SpacedropSent, ApiError> {
        crate::spacedrop::send(self, &self.name, paths, to, addr, progress)
    }

    fn list(&self) -> Vec<sd_api::SpacedropOffer> {
        self.drops
            .inbox
            .list()
            .into_iter()
            .map(crate::spacedrop::offer)
            .collect()
    }

    fn wait(&self, after: u64) -> Option<sd_api::SpacedropOffer> {
        self.rt
            .block_on(self.drops.inbox.next_after(after, Duration::from_secs(60)))
            .map(crate::spacedrop::offer)
    }

    fn accept(&self, id: u64) -> Result<sd_api::SpacedropLanded, ApiError> {
        use sd_net::spacedrop::InboxError;
        let done = self.drops.inbox.accept(id).map_err(|e| match e {
            InboxError::NotFound(_) => ApiError::new(ErrorCode::NotFound, e.to_string()),
            _ => ApiError::new(ErrorCode::Io, e.to_string()),
        })?;
        let names = self
            .rt
            .block_on(done)
            .map_err(|_| ApiError::new(ErrorCode::Io, "the drop ended without an outcome"))?
            .map_err(|e| ApiError::new(ErrorCode::Io, format!("nothing was kept: {e}")))?;
        Ok(sd_api::SpacedropLanded {
            id,
            dir: self.drops.dir().to_string_lossy().into_owned(),
            names,
        })
    }

    fn decline(&self, id: u64) -> Result<sd_api::SpacedropOffer, ApiError> {
        self.drops
            .inbox
            .decline(id)
            .map(crate::spacedrop::offer)
            .map_err(|e| ApiError::new(ErrorCode::NotFound, e.to_string()))
    }

    fn config(
        &self,
        dir: Option<&str>,
        receive: Option<bool>,
    ) -> Result<sd_api::SpacedropConfig, ApiError> {
        self.drops.config(dir, receive)
    }
}

impl Network for NetService {
    fn spacedrop(&self) -> &dyn sd_api::Spacedrop {
        self
    }

    fn status(&self) -> NetworkStatus {
        let net = self.net();
        let custom_ca = self
            .settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .relay_ca_pem
            .is_some();
        NetworkStatus {
            id: net.id().to_string(),
            device_id: self.device_id.clone(),
            listening: net.listening().iter().map(ToString::to_string).collect(),
            intro: net.intro_addr().map(|a| a.to_string()),
            discovery: net.discovery(),
            nearby: net.nearby().len(),
            paired: net.devices().list().len(),
            relay: net.relay().map(|r| RelayStatus {
                url: r.url,
                custom_ca,
                connected: r.connected,
                error: r.error,
            }),
        }
    }

    /// Saves the relay, then restarts the node with it on the same port (an open pairing code
    /// is withdrawn). A relay that cannot be parsed changes nothing.
    fn set_relay(
        &self,
        url: Option<&str>,
        ca_pem: Option<&str>,
    ) -> Result<NetworkStatus, ApiError> {
        let relay = url
            .map(|u| Relay::parse(u, ca_pem))
            .transpose()
            .map_err(|e| ApiError::new(ErrorCode::Invalid, e))?;
        {
            let mut settings = self.settings.lock().unwrap_or_else(|p| p.into_inner());
            settings.relay = relay.as_ref().map(|r| r.url.to_string());
            settings.relay_ca_pem = relay.as_ref().and(ca_pem.map(str::to_owned));
            settings
                .save(&self.base.data_dir)
                .map_err(|e| ApiError::new(ErrorCode::Io, format!("saving network.json: {e}")))?;
            let mut net = self.net.write().unwrap_or_else(|p| p.into_inner());
            self.rt.block_on(net.shutdown());
            let fresh = bind(&self.rt, &self.base, &mut settings, relay).map_err(|e| {
                ApiError::new(
                    ErrorCode::Io,
                    format!("the network did not restart: {e:#}; restart the daemon"),
                )
            })?;
            *net = Arc::new(fresh);
        }
        Ok(self.status())
    }

    fn pair_generate(&self) -> Result<PairCode, ApiError> {
        let _guard = self.rt.enter();
        let (code, done) = self.net().pair_generate();
        *self.waiting.lock().unwrap_or_else(|p| p.into_inner()) = Some(done);
        Ok(PairCode {
            code: code.to_string(),
            expires_at: sd_net::devices::now_ms() + sd_net::pair::CODE_TTL.as_millis() as i64,
            addrs: self.reachable_at(),
        })
    }

    fn pair_wait(&self) -> Result<Device, ApiError> {
        let rx = self
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::NotFound,
                    "no pairing is open; run `spacedrive network pair generate`",
                )
            })?;
        let r = self.rt.block_on(async {
            tokio::time::timeout(sd_net::pair::CODE_TTL + Duration::from_secs(5), rx).await
        });
        match r {
            Ok(Ok(Ok(d))) => Ok(self.device(d, None)),
            Ok(Ok(Err(e))) => Err(pair_error(e)),
            Ok(Err(_)) => Err(pair_error(PairError::Cancelled)),
            Err(_) => Err(pair_error(PairError::Expired)),
        }
    }

    fn pair_cancel(&self) {
        self.net().pair_cancel();
    }

    fn pair_join(&self, code: &str, addr: Option<&str>) -> Result<Device, ApiError> {
        let r = match addr {
            Some(a) => {
                let addr: SocketAddr = a.parse().map_err(|_| {
                    ApiError::new(ErrorCode::Invalid, format!("{a:?} is not an address; use HOST:PORT as `network pair generate` shows it, e.g. 192.168.1.20:41641"))
                })?;
                self.rt.block_on(self.net().pair_join(code, addr))
            }
            None => self
                .rt
                .block_on(self.net().pair_join_nearby(code, Duration::from_secs(10))),
        };
        r.map(|d| self.device(d, None)).map_err(pair_error)
    }

    /// Every paired device, each pinged (at most a second, all at once) for online and latency.
    fn devices(&self) -> Vec<Device> {
        let list = self.net().devices().list();
        let rtts: Vec<Option<Duration>> = self.rt.block_on(async {
            let pings = list.iter().map(|d| async move {
                tokio::time::timeout(Duration::from_secs(1), self.net().ping(&d.id))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .map(|(_, rtt)| rtt)
            });
            n0_future::join_all(pings).await
        });
        // Pinging refreshed last-seen times: show the list as it is now.
        let fresh = self.net().devices().list();
        list.into_iter()
            .zip(rtts)
            .map(|(d, rtt)| {
                let d = fresh.iter().find(|f| f.id == d.id).cloned().unwrap_or(d);
                self.device(d, rtt)
            })
            .collect()
    }

    fn revoke(&self, device: &str) -> Result<Revoked, ApiError> {
        let (d, told) = self
            .rt
            .block_on(self.net().revoke(device))
            .map_err(devices_error)?;
        Ok(Revoked {
            device: self.device(d, None),
            told,
        })
    }

    fn ping(&self, device: &str) -> Result<Pong, ApiError> {
        let (d, rtt) = self
            .rt
            .block_on(self.net().ping(device))
            .map_err(call_error)?;
        Ok(Pong {
            device: self.device(d, Some(rtt)),
            rtt_ms: rtt.as_secs_f64() * 1000.0,
        })
    }

    fn call(&self, device: &str, request: &Request) -> Result<serde_json::Value, ApiError> {
        let body = serde_json::to_value(request).map_err(|e| ApiError::internal(e.to_string()))?;
        let answer = self
            .rt
            .block_on(self.net().call(device, body))
            .map_err(call_error)?;
        if let Some(ok) = answer.get("ok") {
            return Ok(ok.clone());
        }
        match answer
            .get("error")
            .cloned()
            .map(serde_json::from_value::<ApiError>)
        {
            Some(Ok(e)) => Err(e),
            _ => Err(ApiError::new(
                ErrorCode::Unreachable,
                format!("{device} sent an answer this build cannot read"),
            )),
        }
    }
}
