//! The device's network node: an iroh endpoint (from the minimal preset: no vendor relays, no
//! DNS/pkarr publishing, no port mapping), its protocols behind one [`Router`], and a tiny TCP
//! *introduction* listener on the same port number.
//!
//! The introduction exists because an iroh connection is dialed to an endpoint id, and a user
//! pairing by `--addr HOST:PORT` knows only the address: the listener answers one line,
//! `spacedrive-net/1 <endpoint id>`, and closes. What it says is not trusted: pairing binds the
//! code to the ids the QUIC handshake authenticated, so a wrong introduction only makes the
//! attempt fail.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use iroh::endpoint::presets;
use iroh::protocol::Router;
use iroh::{Endpoint, EndpointAddr, EndpointId};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::devices::{DeviceInfo, Devices, DevicesError, TrustedDevice};
use crate::pair::{self, Code, PairError, PairHost};
use crate::rpc::{self, CallError, RpcClient, RpcServer};
use crate::transfer::{TransferClient, TransferServer};

/// The introduction line's prefix.
const INTRO: &str = "spacedrive-net/1";

/// How to start the node.
#[derive(Clone)]
pub struct NetConfig {
    /// The data folder: holds `network.key` and `devices.json`.
    pub data_dir: PathBuf,
    /// Where to listen (UDP for QUIC, TCP for the introduction), e.g. `0.0.0.0:0`.
    pub bind: SocketAddr,
    /// This device's name and OS, told to devices it pairs with.
    pub info: DeviceInfo,
    /// Serves calls from paired devices.
    pub handler: rpc::Handler,
    /// Serves transfers to paired devices.
    pub transfer: Arc<dyn crate::transfer::Handler>,
    /// Announce this device and find others on the local network (mDNS).
    pub mdns: bool,
    /// A relay to keep a home connection to (none: direct connections only).
    pub relay: Option<Relay>,
    /// Receives Spacedrop offers from devices that are not paired (none: the protocol is off).
    pub spacedrop: Option<crate::spacedrop::Inbox>,
}

/// A relay server: devices that cannot reach each other directly (different networks, NAT)
/// meet through it. Its traffic is end-to-end encrypted; the relay sees only endpoint ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    pub url: iroh::RelayUrl,
    /// Root certificates to trust for it besides the public ones (a self-hosted relay whose
    /// certificate comes from a private CA).
    pub ca: Vec<rustls_pki_types::CertificateDer<'static>>,
}

impl Relay {
    /// A relay from what a user typed: an `https://` (or `http://`) URL, and optionally the PEM
    /// text of the CA certificates to trust for it.
    pub fn parse(url: &str, ca_pem: Option<&str>) -> Result<Relay, String> {
        let parsed: iroh::RelayUrl = url.parse().map_err(|e| {
            format!("{url:?} is not a URL ({e}); give one like https://relay.example.org")
        })?;
        if !matches!(parsed.scheme(), "https" | "http") || parsed.host().is_none() {
            return Err(format!(
                "{url:?} is not a relay URL: it must start with https:// (or http://) and name a host"
            ));
        }
        let ca = match ca_pem {
            None => Vec::new(),
            Some(pem) => {
                use rustls_pki_types::pem::PemObject;
                let certs = rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("the CA file is not PEM certificates: {e}"))?;
                if certs.is_empty() {
                    return Err(
                        "the CA file holds no certificate (expected -----BEGIN CERTIFICATE-----)"
                            .into(),
                    );
                }
                certs
            }
        };
        Ok(Relay { url: parsed, ca })
    }
}

/// The home relay's connection, as `network status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayState {
    pub url: String,
    pub connected: bool,
    /// Why the last attempt to connect failed.
    pub error: Option<String>,
}

impl std::fmt::Debug for NetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetConfig")
            .field("data_dir", &self.data_dir)
            .field("bind", &self.bind)
            .field("info", &self.info)
            .field("mdns", &self.mdns)
            .field("relay", &self.relay)
            .finish()
    }
}

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    #[error("network identity: {0}")]
    Identity(std::io::Error),
    #[error(transparent)]
    Devices(#[from] DevicesError),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
}

/// A running network node.
pub struct Net {
    endpoint: Endpoint,
    router: Router,
    devices: Arc<Devices>,
    pairing: PairHost,
    rpc: RpcClient,
    transfer: TransferClient,
    lan: Option<Lan>,
    info: DeviceInfo,
    /// The IP the node listens on (Spacedrop's ephemeral endpoints bind there too).
    ip: std::net::IpAddr,
    intro_addr: Option<SocketAddr>,
    intro: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Net {
    /// Loads (or creates) the identity and starts listening.
    pub async fn start(cfg: NetConfig) -> Result<Net, NetError> {
        let key = crate::identity::load_or_create(&cfg.data_dir).map_err(NetError::Identity)?;
        let devices = Arc::new(Devices::open(&cfg.data_dir)?);
        let bind_err = |reason: String| NetError::Bind {
            addr: cfg.bind,
            reason,
        };
        let mut builder = Endpoint::builder(presets::Minimal).secret_key(key);
        builder = match &cfg.relay {
            None => builder.relay_mode(iroh::RelayMode::Disabled),
            Some(r) => {
                // No QUIC address discovery: the relay is only a meeting point.
                let map = iroh::RelayMap::from(iroh::RelayConfig::new(r.url.clone(), None));
                let b = builder.relay_mode(iroh::RelayMode::Custom(map));
                if r.ca.is_empty() {
                    b
                } else {
                    b.ca_tls_config(
                        iroh::tls::CaTlsConfig::embedded().with_extra_roots(r.ca.clone()),
                    )
                }
            }
        };
        let endpoint = builder
            .clear_ip_transports()
            .bind_addr(cfg.bind)
            .map_err(|e| bind_err(e.to_string()))?
            .bind()
            .await
            .map_err(|e| bind_err(e.to_string()))?;
        let lan = if cfg.mdns {
            match Lan::start(&endpoint) {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!(error = %e, "no LAN discovery (mDNS); pair with --addr instead");
                    None
                }
            }
        } else {
            None
        };
        let mut info = cfg.info.clone();
        info.addrs = own_addrs(&endpoint.bound_sockets());
        info.relay = cfg.relay.as_ref().map(|r| r.url.to_string());
        let pairing = PairHost::new(endpoint.id(), info.clone(), devices.clone());
        let mut router = Router::builder(endpoint.clone()).accept(pair::ALPN, pairing.clone());
        if let Some(inbox) = &cfg.spacedrop {
            // Open to every device, as pairing is: the only two a stranger may reach.
            router = router.accept(
                crate::spacedrop::ALPN,
                crate::spacedrop::SpacedropServer::new(
                    endpoint.id(),
                    cfg.info.name.clone(),
                    inbox.clone(),
                ),
            );
        }
        let router = router
            .accept(
                rpc::ALPN,
                RpcServer::new(devices.clone(), cfg.handler.clone()),
            )
            .accept(
                crate::transfer::ALPN,
                TransferServer::new(devices.clone(), cfg.transfer.clone()),
            )
            .spawn();
        let dialer = crate::rpc::Dialer::new(endpoint.clone());
        let rpc = RpcClient::new(dialer.clone(), devices.clone());
        let transfer = TransferClient::new(dialer);
        // The introduction listens on the QUIC socket's port, TCP side.
        let quic = endpoint.bound_sockets();
        let port = quic.first().map(|a| a.port()).unwrap_or(0);
        let intro_at = SocketAddr::new(cfg.bind.ip(), port);
        let (intro_addr, intro) = match tokio::net::TcpListener::bind(intro_at).await {
            Ok(l) => {
                let addr = l.local_addr().ok();
                let id = endpoint.id();
                (addr, tokio::spawn(introduce(l, id)))
            }
            Err(e) => {
                tracing::warn!(addr = %intro_at, error = %e, "no introduction listener: pairing by --addr to this device will not work");
                (None, tokio::spawn(async {}))
            }
        };
        tracing::info!(id = %endpoint.id(), addrs = ?quic, "network up");
        Ok(Net {
            endpoint,
            router,
            devices,
            pairing,
            rpc,
            transfer,
            lan,
            info,
            ip: cfg.bind.ip(),
            intro_addr,
            intro: std::sync::Mutex::new(Some(intro)),
        })
    }

    /// This device's network id.
    pub fn id(&self) -> EndpointId {
        self.endpoint.id()
    }

    /// The UDP sockets the endpoint listens on.
    pub fn listening(&self) -> Vec<SocketAddr> {
        self.endpoint.bound_sockets()
    }

    /// The introduction listener's address, if it runs.
    pub fn intro_addr(&self) -> Option<SocketAddr> {
        self.intro_addr
    }

    pub fn devices(&self) -> &Devices {
        &self.devices
    }

    /// Opens pairing with a new code (valid [`pair::CODE_TTL`], one device, burned after
    /// [`pair::MAX_FAILURES`] failures); the receiver gets the outcome.
    /// While the code is open, the device says so on the LAN (mDNS), so a guest can find it
    /// without an address.
    pub fn pair_generate(&self) -> (Code, oneshot::Receiver<Result<TrustedDevice, PairError>>) {
        let (code, done) = self.pairing.generate();
        if self.lan.is_none() {
            return (code, done);
        }
        self.endpoint
            .set_user_data_for_address_lookup(PAIRING.parse().ok());
        // Stop saying it when pairing ends, whichever way.
        let (tx, rx) = oneshot::channel();
        let endpoint = self.endpoint.clone();
        tokio::spawn(async move {
            let r = done.await.unwrap_or(Err(PairError::Cancelled));
            endpoint.set_user_data_for_address_lookup(None);
            let _ = tx.send(r);
        });
        (code, rx)
    }

    /// Withdraws the current pairing code.
    pub fn pair_cancel(&self) {
        self.pairing.cancel();
    }

    /// The home relay and whether the endpoint is connected to it (none configured: `None`).
    pub fn relay(&self) -> Option<RelayState> {
        use iroh::Watcher;
        let url = self.info.relay.clone()?;
        let status = self.endpoint.home_relay_status().get();
        let home = status.iter().find(|s| s.url().to_string() == url);
        Some(RelayState {
            url,
            connected: home.is_some_and(|s| s.is_connected()),
            error: home.and_then(|s| s.last_error()).map(|e| e.to_string()),
        })
    }

    /// Whether LAN discovery runs.
    pub fn discovery(&self) -> bool {
        self.lan.is_some()
    }

    /// Devices seen on the LAN now: their ids, addresses, and whether they are pairing.
    pub fn nearby(&self) -> Vec<Nearby> {
        self.lan.as_ref().map(Lan::nearby).unwrap_or_default()
    }

    /// Pairs with the device on the LAN that is pairing now (found by mDNS within `wait`),
    /// using `code`. Every device that announces pairing is tried until one accepts.
    pub async fn pair_join_nearby(
        &self,
        code: &str,
        wait: Duration,
    ) -> Result<TrustedDevice, PairError> {
        let code = Code::parse(code)?;
        let Some(lan) = &self.lan else {
            return Err(PairError::Unreachable(
                "LAN discovery is off; give the other device's address with --addr HOST:PORT"
                    .into(),
            ));
        };
        let deadline = tokio::time::Instant::now() + wait;
        let mut tried = std::collections::HashSet::new();
        let mut last = None;
        loop {
            let fresh: Vec<Nearby> = lan
                .nearby()
                .into_iter()
                .filter(|n| n.pairing && !tried.contains(&n.id))
                .collect();
            for n in fresh {
                tried.insert(n.id);
                let mut target = EndpointAddr::new(n.id);
                for a in &n.addrs {
                    target = target.with_ip_addr(*a);
                }
                let conn = match tokio::time::timeout(
                    Duration::from_secs(10),
                    self.endpoint.connect(target, pair::ALPN),
                )
                .await
                {
                    Ok(Ok(c)) => c,
                    Ok(Err(e)) => {
                        last = Some(PairError::Unreachable(e.to_string()));
                        continue;
                    }
                    Err(_) => continue,
                };
                let addrs = n.addrs.iter().map(ToString::to_string).collect();
                match pair::join(&conn, self.id(), &code, &self.info, &self.devices, addrs).await {
                    Ok(d) => return Ok(d),
                    Err(e) => last = Some(e),
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(last.unwrap_or_else(|| {
                    PairError::Unreachable(format!(
                        "no device on the local network is pairing (looked for {} s); run `spacedrive network pair generate` on it, or give its address with --addr",
                        wait.as_secs()
                    ))
                }));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Pairs with the device at `addr` (its introduction port, as `pair generate` shows it)
    /// using `code`.
    pub async fn pair_join(
        &self,
        code: &str,
        addr: SocketAddr,
    ) -> Result<TrustedDevice, PairError> {
        let code = Code::parse(code)?;
        let id = introduction(addr).await?;
        let target = EndpointAddr::new(id).with_ip_addr(addr);
        let conn = tokio::time::timeout(
            Duration::from_secs(15),
            self.endpoint.connect(target, pair::ALPN),
        )
        .await
        .map_err(|_| PairError::Unreachable(format!("{addr} did not answer within 15 s")))?
        .map_err(|e| PairError::Unreachable(format!("{addr}: {e}")))?;
        pair::join(
            &conn,
            self.id(),
            &code,
            &self.info,
            &self.devices,
            vec![addr.to_string()],
        )
        .await
    }

    /// Calls `request` (the local socket's JSON) on the paired device `device` (name or id).
    pub async fn call(
        &self,
        device: &str,
        request: serde_json::Value,
    ) -> Result<serde_json::Value, CallError> {
        let dev = self.find(device)?;
        self.rpc.call(&dev, request).await
    }

    /// Round-trip time to the paired device `device`.
    pub async fn ping(&self, device: &str) -> Result<(TrustedDevice, Duration), CallError> {
        let dev = self.find(device)?;
        let rtt = self.rpc.ping(&dev).await?;
        Ok((dev, rtt))
    }

    /// Revokes the pairing with `device`: refused here from now on, and told (best effort) so it
    /// drops this device too. Returns the device and whether it was told.
    pub async fn revoke(&self, device: &str) -> Result<(TrustedDevice, bool), DevicesError> {
        let dev = self.devices.find(device)?;
        let told = self.rpc.tell_revoked(&dev).await;
        self.devices.revoke(&dev.id)?;
        Ok((dev, told))
    }

    /// Offers `offer` by Spacedrop to `to` (an introduction address, or a device nearby by name),
    /// from a fresh endpoint with a new key: see [`crate::spacedrop::send`].
    pub async fn spacedrop_send(
        &self,
        to: SpacedropTo,
        offer: crate::spacedrop::Offer,
        open: crate::spacedrop::OpenFile,
        progress: &mut (dyn FnMut(crate::spacedrop::Progress) + Send),
    ) -> Result<crate::spacedrop::Sent, crate::spacedrop::SpacedropError> {
        let target = match to {
            SpacedropTo::Addr(a) => crate::spacedrop::Target::Addr(a),
            SpacedropTo::Nearby(name) => {
                if self.lan.is_none() {
                    return Err(crate::spacedrop::SpacedropError::Unreachable(
                        "LAN discovery is off; give the other device's address with --addr HOST:PORT".into(),
                    ));
                }
                // Devices announce themselves every few seconds; give a fresh start time to see them.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                while self.nearby().is_empty() && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                crate::spacedrop::Target::Nearby {
                    name,
                    nearby: self.nearby(),
                }
            }
        };
        crate::spacedrop::send(self.ip, target, offer, open, progress).await
    }

    /// Moves files to and from paired devices.
    pub fn transfer(&self) -> &TransferClient {
        &self.transfer
    }

    /// The paired device `device` names (name, id or a unique prefix).
    pub fn find(&self, device: &str) -> Result<TrustedDevice, CallError> {
        self.devices
            .find(device)
            .map_err(|e| CallError::Unreachable {
                device: device.to_owned(),
                reason: e.to_string(),
            })
    }

    /// Stops the protocols and closes the endpoint (its port is free when this returns).
    pub async fn shutdown(&self) {
        let intro = self.intro.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(intro) = intro {
            intro.abort();
            let _ = intro.await; // the listener is closed once the task is gone
        }
        if let Err(e) = self.router.shutdown().await {
            tracing::warn!(error = %e, "stopping the network");
        }
    }
}

/// Addresses other devices can use for these sockets: an unspecified IP (`0.0.0.0`) stands for
/// every local address.
pub fn own_addrs(sockets: &[SocketAddr]) -> Vec<String> {
    let mut out = Vec::new();
    for s in sockets {
        if s.ip().is_unspecified() {
            for ip in local_ips()
                .into_iter()
                .filter(|ip| ip.is_ipv4() == s.is_ipv4())
            {
                out.push(SocketAddr::new(ip, s.port()).to_string());
            }
        } else {
            out.push(s.to_string());
        }
    }
    out
}

/// This host's IPv4 interface addresses (loopback last), from the kernel's routing table.
pub fn local_ips() -> Vec<std::net::IpAddr> {
    let mut out = Vec::new();
    // /proc/net/fib_trie lists each local address as a "/32 host LOCAL" leaf after its value.
    if let Ok(t) = std::fs::read_to_string("/proc/net/fib_trie") {
        let mut last: Option<std::net::IpAddr> = None;
        for line in t.lines() {
            let l = line.trim();
            if let Some(ip) = l.strip_prefix("|-- ").and_then(|a| a.parse().ok()) {
                last = Some(ip);
            } else if l.contains("/32 host LOCAL")
                && let Some(ip) = last
                && !out.contains(&ip)
            {
                out.push(ip);
            }
        }
    }
    out.sort_by_key(|ip: &std::net::IpAddr| ip.is_loopback());
    out
}

/// The mDNS user data of a device whose pairing code is open.
const PAIRING: &str = "sd-pairing";
/// The mDNS service name: Spacedrive devices find each other, not every iroh app.
const SERVICE: &str = "spacedrive";

/// A device seen on the local network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nearby {
    pub id: EndpointId,
    pub addrs: Vec<SocketAddr>,
    /// It has a pairing code open.
    pub pairing: bool,
}

/// LAN discovery: the mDNS service, and what it has seen.
struct Lan {
    seen: Arc<std::sync::Mutex<std::collections::HashMap<EndpointId, Nearby>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Lan {
    fn start(endpoint: &Endpoint) -> Result<Lan, String> {
        use iroh_mdns_address_lookup::{DiscoveryEvent, MdnsAddressLookup};
        use n0_future::StreamExt;
        let mdns = MdnsAddressLookup::builder()
            .service_name(SERVICE)
            .build(endpoint.id())
            .map_err(|e| e.to_string())?;
        endpoint
            .address_lookup()
            .map_err(|e| e.to_string())?
            .add(mdns.clone());
        let seen: Arc<std::sync::Mutex<std::collections::HashMap<EndpointId, Nearby>>> =
            Arc::default();
        let s = seen.clone();
        let task = tokio::spawn(async move {
            let mut events = mdns.subscribe().await;
            while let Some(ev) = events.next().await {
                let mut s = s.lock().unwrap_or_else(|p| p.into_inner());
                match ev {
                    DiscoveryEvent::Discovered { endpoint_info, .. } => {
                        let n = Nearby {
                            id: endpoint_info.endpoint_id,
                            addrs: endpoint_info.data.ip_addrs().copied().collect(),
                            pairing: endpoint_info
                                .data
                                .user_data()
                                .is_some_and(|u| u.as_ref() == PAIRING),
                        };
                        tracing::debug!(?n, "seen on the LAN");
                        s.insert(n.id, n);
                    }
                    DiscoveryEvent::Expired { endpoint_id } => {
                        s.remove(&endpoint_id);
                    }
                    _ => {}
                }
            }
        });
        Ok(Lan { seen, _task: task })
    }

    fn nearby(&self) -> Vec<Nearby> {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

/// Answers every connection with this endpoint's id, then closes it.
async fn introduce(l: tokio::net::TcpListener, id: EndpointId) {
    loop {
        let Ok((mut s, _)) = l.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let line = format!("{INTRO} {id}\n");
            let _ =
                tokio::time::timeout(Duration::from_secs(5), s.write_all(line.as_bytes())).await;
        });
    }
}

/// Where a Spacedrop goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpacedropTo {
    /// The device's introduction address.
    Addr(SocketAddr),
    /// The device on the LAN with this exact name (`None`: the only one receiving).
    Nearby(Option<String>),
}

/// Asks `addr` for its endpoint id.
pub(crate) async fn introduction(addr: SocketAddr) -> Result<EndpointId, PairError> {
    let unreachable = |e: String| PairError::Unreachable(format!("{addr}: {e}"));
    let s = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| unreachable("no answer within 5 s".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    let mut line = String::new();
    let mut r = tokio::io::BufReader::new(s).take(200);
    tokio::time::timeout(Duration::from_secs(5), r.read_line(&mut line))
        .await
        .map_err(|_| unreachable("no introduction within 5 s".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    parse_introduction(&line).map_err(unreachable)
}

/// The endpoint id in an introduction line (what another device sent: anything at all).
fn parse_introduction(line: &str) -> Result<EndpointId, String> {
    let id = line
        .trim()
        .strip_prefix(INTRO)
        .map(str::trim)
        .ok_or_else(|| "not a Spacedrive device (or a different version)".to_string())?;
    id.parse()
        .map_err(|_| format!("sent a malformed id {id:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_parse_or_say_why_not() {
        let r = Relay::parse("https://relay.example.org", None).unwrap();
        assert_eq!(r.url.to_string(), "https://relay.example.org/");
        assert!(r.ca.is_empty());
        for bad in [
            "relay.example.org",
            "ftp://relay.example.org",
            "https://",
            "",
        ] {
            assert!(Relay::parse(bad, None).is_err(), "{bad:?}");
        }
        let e = Relay::parse("https://r.example", Some("hello")).unwrap_err();
        assert!(e.contains("no certificate"), "{e}");
        let e = Relay::parse(
            "https://r.example",
            Some("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n"),
        )
        .unwrap_err();
        assert!(e.contains("not PEM"), "{e}");
    }

    #[test]
    fn introductions_parse_or_fail_cleanly() {
        let id = iroh::SecretKey::generate().public();
        assert_eq!(parse_introduction(&format!("{INTRO} {id}\n")), Ok(id));
        assert!(parse_introduction("HTTP/1.1 400 Bad Request").is_err());
        assert!(parse_introduction(&format!("{INTRO} zz")).is_err());
        assert!(parse_introduction("").is_err());
        // Property: whatever bytes arrive (up to the 200 the reader takes), no panic.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 200) as usize;
            let mut bytes = format!("{INTRO} {id}").into_bytes();
            bytes.resize(len, 0);
            let mut y = x;
            for b in bytes.iter_mut() {
                y = y.rotate_left(7);
                if y.is_multiple_of(5) {
                    *b = (y >> 11) as u8;
                }
            }
            let _ = parse_introduction(&String::from_utf8_lossy(&bytes));
        }
    }
}
