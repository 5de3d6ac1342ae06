//! Calls between paired devices (ALPN [`ALPN`]): one bidirectional stream per call, one
//! [`crate::frame`] each way. The body is the same JSON request and answer as on the local
//! socket; what a peer may call is decided by the daemon's handler, not here.
//!
//! Only trusted devices get in: a connection from any other endpoint id is closed at once with
//! [`NOT_PAIRED`], which the caller turns into a clear error. A revoked device is therefore
//! refused from its next connection on, and is told (best effort) when it is revoked so it drops
//! this device too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler};
use iroh::{Endpoint, EndpointAddr, EndpointId};
use serde::{Deserialize, Serialize};

use crate::devices::{Devices, TrustedDevice};
use crate::frame;

/// The call protocol, version 1.
pub const ALPN: &[u8] = b"spacedrive/rpc/1";
/// Largest call or answer (the same cap as a request on the local socket).
pub const CAP: usize = 1 << 20;
/// Close code: the caller is not a trusted device here.
pub const NOT_PAIRED: u32 = 403;
/// Close code: a frame broke the protocol.
const BAD_FRAME: u32 = 400;
/// How long a call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves one call: the request's JSON in, the answer's JSON out.
pub type Handler = Arc<dyn Fn(EndpointId, serde_json::Value) -> serde_json::Value + Send + Sync>;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Msg {
    Call {
        request: serde_json::Value,
    },
    Answer {
        answer: serde_json::Value,
    },
    Ping,
    Pong,
    /// "I revoked you": the receiver drops the sender from its trusted list.
    Revoked,
    Ok,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    #[error("{device} refused the connection: this device is not (or no longer) paired with it")]
    NotPaired { device: String },
    #[error("{device} is unreachable: {reason}")]
    Unreachable { device: String, reason: String },
    #[error("{device} broke the protocol: {reason}")]
    Protocol { device: String, reason: String },
}

/// The serving side.
#[derive(Clone)]
pub struct RpcServer {
    devices: Arc<Devices>,
    handler: Handler,
}

impl std::fmt::Debug for RpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RpcServer")
    }
}

impl RpcServer {
    pub fn new(devices: Arc<Devices>, handler: Handler) -> RpcServer {
        RpcServer { devices, handler }
    }

    async fn serve_stream(
        &self,
        peer: EndpointId,
        mut send: iroh::endpoint::SendStream,
        mut recv: iroh::endpoint::RecvStream,
    ) -> Result<(), String> {
        let msg: Msg = frame::read(&mut recv, CAP)
            .await
            .map_err(|e| e.to_string())?;
        let reply = match msg {
            Msg::Call { request } => {
                let handler = self.handler.clone();
                let answer = tokio::task::spawn_blocking(move || handler(peer, request))
                    .await
                    .map_err(|e| format!("handler: {e}"))?;
                Msg::Answer { answer }
            }
            Msg::Ping => Msg::Pong,
            Msg::Revoked => {
                let id = peer.to_string();
                if let Err(e) = self.devices.revoke(&id) {
                    tracing::debug!(error = %e, "revoked by a device we did not know");
                } else {
                    tracing::info!(%id, "the other device revoked this pairing; dropped it too");
                }
                Msg::Ok
            }
            other => return Err(format!("unexpected {other:?}")),
        };
        frame::write(&mut send, &reply, CAP)
            .await
            .map_err(|e| e.to_string())?;
        let _ = send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
        Ok(())
    }
}

impl ProtocolHandler for RpcServer {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let peer = conn.remote_id();
        if !self.devices.is_trusted(&peer.to_string()) {
            tracing::info!(%peer, "refused a call from a device that is not paired");
            conn.close(NOT_PAIRED.into(), b"not paired");
            return Ok(());
        }
        self.devices.seen(&peer.to_string(), None);
        loop {
            let (send, recv) = match conn.accept_bi().await {
                Ok(s) => s,
                Err(_) => return Ok(()), // the caller hung up
            };
            // Revoked while connected: refused from its next call on.
            if !self.devices.is_trusted(&peer.to_string()) {
                tracing::info!(%peer, "refused a call from a device that was revoked");
                conn.close(NOT_PAIRED.into(), b"not paired");
                return Ok(());
            }
            let me = self.clone();
            let c = conn.clone();
            tokio::spawn(async move {
                if let Err(reason) = me.serve_stream(peer, send, recv).await {
                    tracing::info!(%peer, %reason, "closing a connection that broke the protocol");
                    c.close(BAD_FRAME.into(), b"protocol error");
                }
            });
        }
    }
}

/// Dials paired devices: one cached connection per device and protocol, reached at the
/// addresses it was last seen at, or through its relay or this device's.
#[derive(Clone)]
pub(crate) struct Dialer {
    endpoint: Endpoint,
    conns: Arc<Mutex<Conns>>,
}

/// Live connections by device and protocol.
type Conns = HashMap<(EndpointId, &'static [u8]), Connection>;

impl Dialer {
    pub(crate) fn new(endpoint: Endpoint) -> Dialer {
        Dialer {
            endpoint,
            conns: Arc::default(),
        }
    }

    /// A live connection to `dev` for protocol `alpn`.
    pub(crate) async fn connection(
        &self,
        dev: &TrustedDevice,
        alpn: &'static [u8],
    ) -> Result<(EndpointId, Connection), CallError> {
        let unreachable = |reason: String| CallError::Unreachable {
            device: dev.name.clone(),
            reason,
        };
        let id: EndpointId = dev
            .id
            .parse()
            .map_err(|_| unreachable(format!("its stored id {:?} is malformed", dev.id)))?;
        if let Some(c) = self
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(id, alpn))
            && c.close_reason().is_none()
        {
            return Ok((id, c.clone()));
        }
        let mut target = EndpointAddr::new(id);
        for a in dev.addrs.iter().filter_map(|a| a.parse().ok()) {
            target = target.with_ip_addr(a);
        }
        // Through a relay when the direct addresses fail: the one it said it uses, and this
        // device's own (devices sharing a self-hosted relay meet there).
        let relays: Vec<iroh::RelayUrl> = dev
            .relay
            .iter()
            .filter_map(|r| r.parse().ok())
            .chain(self.endpoint.addr().relay_urls().cloned())
            .collect();
        for r in relays {
            target = target.with_relay_url(r);
        }
        let conn =
            tokio::time::timeout(Duration::from_secs(10), self.endpoint.connect(target, alpn))
                .await
                .map_err(|_| unreachable("no answer within 10 s".into()))?
                .map_err(|e| unreachable(e.to_string()))?;
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((id, alpn), conn.clone());
        Ok((id, conn))
    }

    /// Drops the cached connection to `id` for `alpn` (it broke); closes it with `code`.
    pub(crate) fn forget(&self, id: EndpointId, alpn: &'static [u8], code: Option<(u32, &[u8])>) {
        let c = self
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(id, alpn));
        if let (Some(c), Some((code, why))) = (c, code) {
            c.close(code.into(), why);
        }
    }
}

/// Whether `conn` was closed by the other side because this device is not paired there.
pub(crate) fn refused(conn: &Connection) -> bool {
    conn.close_reason().is_some_and(|r| {
        matches!(&r, iroh::endpoint::ConnectionError::ApplicationClosed(c) if c.error_code == NOT_PAIRED.into())
    })
}

/// The calling side.
#[derive(Clone)]
pub struct RpcClient {
    dialer: Dialer,
    devices: Arc<Devices>,
}

impl RpcClient {
    pub(crate) fn new(dialer: Dialer, devices: Arc<Devices>) -> RpcClient {
        RpcClient { dialer, devices }
    }

    async fn exchange(&self, dev: &TrustedDevice, msg: &Msg) -> Result<Msg, CallError> {
        let (id, conn) = self.dialer.connection(dev, ALPN).await?;
        let result = async {
            let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
            frame::write(&mut send, msg, CAP)
                .await
                .map_err(|e| e.to_string())?;
            let _ = send.finish();
            frame::read::<_, Msg>(&mut recv, CAP)
                .await
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(CALL_TIMEOUT, result).await {
            Ok(Ok(m)) => {
                self.devices.seen(&dev.id, None);
                Ok(m)
            }
            outcome => {
                self.dialer.forget(id, ALPN, None);
                if refused(&conn) {
                    return Err(CallError::NotPaired {
                        device: dev.name.clone(),
                    });
                }
                let reason = match outcome {
                    Ok(Err(e)) => e,
                    _ => format!("no answer within {} s", CALL_TIMEOUT.as_secs()),
                };
                Err(CallError::Unreachable {
                    device: dev.name.clone(),
                    reason,
                })
            }
        }
    }

    /// Calls `request` on `dev`; returns its answer (`{"ok": …}` or `{"error": …}`).
    pub async fn call(
        &self,
        dev: &TrustedDevice,
        request: serde_json::Value,
    ) -> Result<serde_json::Value, CallError> {
        match self.exchange(dev, &Msg::Call { request }).await? {
            Msg::Answer { answer } => Ok(answer),
            other => Err(CallError::Protocol {
                device: dev.name.clone(),
                reason: format!("answered {other:?}"),
            }),
        }
    }

    /// Round-trip time of one ping to `dev`.
    pub async fn ping(&self, dev: &TrustedDevice) -> Result<Duration, CallError> {
        let t = Instant::now();
        match self.exchange(dev, &Msg::Ping).await? {
            Msg::Pong => Ok(t.elapsed()),
            other => Err(CallError::Protocol {
                device: dev.name.clone(),
                reason: format!("answered {other:?}"),
            }),
        }
    }

    /// Tells `dev` it was revoked (best effort, a few seconds at most).
    pub async fn tell_revoked(&self, dev: &TrustedDevice) -> bool {
        let told =
            tokio::time::timeout(Duration::from_secs(3), self.exchange(dev, &Msg::Revoked)).await;
        if let Ok(id) = dev.id.parse::<EndpointId>() {
            self.dialer.forget(id, ALPN, Some((0, b"revoked")));
        }
        matches!(told, Ok(Ok(Msg::Ok)))
    }
}
