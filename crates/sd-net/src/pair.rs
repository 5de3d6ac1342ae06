//! Pairing two devices with a short code (ALPN [`ALPN`]).
//!
//! One device (the host) runs `pair generate`: it gets a code of eight digits, valid five
//! minutes, for one pairing. The other (the guest) runs `pair join CODE` and dials the host. Both
//! run SPAKE2 over the code, with the two endpoint ids (authenticated by the QUIC handshake) as
//! the SPAKE2 identities, then prove they hold the same key (key confirmation, host first):
//! - an eavesdropper sees two SPAKE2 messages and two MACs, from which no guess of the code can
//!   be checked offline;
//! - a party that does not know the code — even one racing the real guest after seeing the mDNS
//!   traffic — gets one online guess per connection, and the code is burned after
//!   [`MAX_FAILURES`] failed attempts;
//! - a relay in the middle would have to run SPAKE2 with each side under its own endpoint id,
//!   which again needs the code.
//!
//! Messages are [`crate::frame`]s capped at [`CAP`] bytes. Anything unexpected ends the attempt
//! (counted as a failure) with a logged reason.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iroh::EndpointId;
use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler};
use serde::{Deserialize, Serialize};
use spake2::{Ed25519Group, Identity, Password, Spake2};
use tokio::sync::oneshot;

use crate::devices::{DeviceInfo, Devices, TrustedDevice};
use crate::frame;

/// The pairing protocol, version 1.
pub const ALPN: &[u8] = b"spacedrive/pair/1";
/// Largest pairing message.
pub const CAP: usize = 16 * 1024;
/// Failed attempts after which a code is burned.
pub const MAX_FAILURES: u32 = 3;
/// How long a code is valid.
pub const CODE_TTL: Duration = Duration::from_secs(300);
/// How long either side waits for the other's next message.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// Why pairing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PairError {
    #[error(
        "wrong code: the other device did not accept it (each wrong try counts; a code is burned after {MAX_FAILURES})"
    )]
    WrongCode,
    #[error("the other device refused: {0}")]
    Refused(String),
    #[error("the code was burned after {MAX_FAILURES} failed attempts; generate a new one")]
    Burned,
    #[error("the code expired; generate a new one")]
    Expired,
    #[error("pairing was cancelled")]
    Cancelled,
    #[error("cannot reach the other device: {0}")]
    Unreachable(String),
    #[error("pairing failed: {0}")]
    Protocol(String),
}

/// A pairing code: eight digits, shown as `1234-5678`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code(String);

impl Code {
    /// A new random code (from the operating system's generator).
    pub fn generate() -> Code {
        // 32 random bytes from a fresh secret key: the OS generator, without another dependency.
        let bytes = iroh::SecretKey::generate().to_bytes();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default()) % 100_000_000;
        Code(format!("{n:08}"))
    }

    /// Reads a code as a user types it: digits, with any separators.
    pub fn parse(s: &str) -> Result<Code, PairError> {
        let digits: String = s.chars().filter(char::is_ascii_digit).collect();
        let others = s
            .chars()
            .any(|c| !c.is_ascii_digit() && !matches!(c, '-' | ' '));
        if digits.len() != 8 || others {
            return Err(PairError::Protocol(format!(
                "{s:?} is not a pairing code: it has eight digits, like 1234-5678"
            )));
        }
        Ok(Code(digits))
    }

    fn password(&self) -> Password {
        Password::new(self.0.as_bytes())
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", &self.0[..4], &self.0[4..])
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum GuestMsg {
    Hello { spake: Vec<u8> },
    Confirm { mac: Vec<u8>, device: DeviceInfo },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum HostMsg {
    Spake { spake: Vec<u8>, mac: Vec<u8> },
    Refused { reason: String },
    Paired { device: DeviceInfo },
}

/// The MAC one side sends to prove it derived the same key.
fn confirmation(
    key: &[u8],
    role: &str,
    host: &EndpointId,
    guest: &EndpointId,
    a: &[u8],
    b: &[u8],
) -> blake3::Hash {
    let k = blake3::derive_key("spacedrive pairing v1 key confirmation", key);
    let mut h = blake3::Hasher::new_keyed(&k);
    for part in [role.as_bytes(), host.as_bytes(), guest.as_bytes(), a, b] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize()
}

/// Whether `mac`, as received, is the MAC `want` (any length other than 32 bytes is not).
fn proves(mac: &[u8], want: blake3::Hash) -> bool {
    // blake3::Hash compares in constant time.
    <[u8; 32]>::try_from(mac).is_ok_and(|t| blake3::Hash::from(t) == want)
}

/// The host's next message, on the guest's side.
async fn host_reply(recv: &mut iroh::endpoint::RecvStream) -> Result<HostMsg, PairError> {
    tokio::time::timeout(STEP_TIMEOUT, frame::read(recv, CAP))
        .await
        .map_err(|_| PairError::Protocol("the other device did not answer".into()))?
        .map_err(|e| PairError::Protocol(e.to_string()))
}

fn ids(host: &EndpointId, guest: &EndpointId) -> (Identity, Identity) {
    (
        Identity::new(host.as_bytes()),
        Identity::new(guest.as_bytes()),
    )
}

struct Session {
    code: Code,
    expires: Instant,
    failures: u32,
    done: Option<oneshot::Sender<Result<TrustedDevice, PairError>>>,
}

impl Session {
    fn end(&mut self, r: Result<TrustedDevice, PairError>) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(r);
        }
    }
}

/// The host side: holds the current code (at most one) and answers guests.
#[derive(Clone)]
pub struct PairHost {
    id: EndpointId,
    info: DeviceInfo,
    devices: Arc<Devices>,
    session: Arc<Mutex<Option<Session>>>,
}

impl std::fmt::Debug for PairHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairHost").field("id", &self.id).finish()
    }
}

impl PairHost {
    pub fn new(id: EndpointId, info: DeviceInfo, devices: Arc<Devices>) -> PairHost {
        PairHost {
            id,
            info,
            devices,
            session: Arc::default(),
        }
    }

    /// Starts accepting one guest with a new code (replacing any earlier code). The receiver
    /// gets the paired device, or why pairing ended without one.
    pub fn generate(&self) -> (Code, oneshot::Receiver<Result<TrustedDevice, PairError>>) {
        let code = Code::generate();
        let (tx, rx) = oneshot::channel();
        let mut s = self.session.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = s.as_mut() {
            old.end(Err(PairError::Cancelled));
        }
        *s = Some(Session {
            code: code.clone(),
            expires: Instant::now() + CODE_TTL,
            failures: 0,
            done: Some(tx),
        });
        (code, rx)
    }

    /// Withdraws the current code.
    pub fn cancel(&self) {
        if let Some(mut s) = self
            .session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            s.end(Err(PairError::Cancelled));
        }
    }

    /// The code a guest may use now, counting this attempt as a failure until it succeeds.
    fn attempt(&self) -> Result<Code, String> {
        let mut guard = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = guard.as_mut() else {
            return Err(
                "this device is not pairing; run `spacedrive network pair generate` on it".into(),
            );
        };
        if Instant::now() > s.expires {
            s.end(Err(PairError::Expired));
            *guard = None;
            return Err("the code expired".into());
        }
        s.failures += 1;
        Ok(s.code.clone())
    }

    /// A failed attempt that was counted: burns the code at the limit.
    fn failed(&self, code: &Code) {
        let mut guard = self.session.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = guard.as_mut().filter(|s| &s.code == code)
            && s.failures >= MAX_FAILURES
        {
            tracing::warn!("pairing code burned after {MAX_FAILURES} failed attempts");
            s.end(Err(PairError::Burned));
            *guard = None;
        }
    }

    async fn serve(&self, conn: &Connection) -> Result<(), String> {
        let guest = conn.remote_id();
        let (mut send, mut recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
        let step =
            |what: &'static str| move |_| format!("timed out waiting for the guest's {what}");
        let hello: GuestMsg = tokio::time::timeout(STEP_TIMEOUT, frame::read(&mut recv, CAP))
            .await
            .map_err(step("hello"))?
            .map_err(|e| e.to_string())?;
        let GuestMsg::Hello { spake: b } = hello else {
            return Err("expected a hello".into());
        };
        let code = match self.attempt() {
            Ok(c) => c,
            Err(reason) => {
                let _ = frame::write(
                    &mut send,
                    &HostMsg::Refused {
                        reason: reason.clone(),
                    },
                    CAP,
                )
                .await;
                let _ = send.finish();
                return Err(reason);
            }
        };
        let outcome = self
            .exchange(&code, guest, b, &mut send, &mut recv, conn)
            .await;
        if outcome.is_err() {
            self.failed(&code);
        }
        outcome
    }

    async fn exchange(
        &self,
        code: &Code,
        guest: EndpointId,
        b: Vec<u8>,
        send: &mut iroh::endpoint::SendStream,
        recv: &mut iroh::endpoint::RecvStream,
        conn: &Connection,
    ) -> Result<(), String> {
        let (id_a, id_b) = ids(&self.id, &guest);
        let (state, a) = Spake2::<Ed25519Group>::start_a(&code.password(), &id_a, &id_b);
        let key = state
            .finish(&b)
            .map_err(|e| format!("bad SPAKE2 message: {e:?}"))?;
        let mac = confirmation(&key, "host", &self.id, &guest, &a, &b);
        frame::write(
            send,
            &HostMsg::Spake {
                spake: a.clone(),
                mac: mac.as_bytes().to_vec(),
            },
            CAP,
        )
        .await
        .map_err(|e| e.to_string())?;
        let confirm: GuestMsg = tokio::time::timeout(STEP_TIMEOUT, frame::read(recv, CAP))
            .await
            .map_err(|_| "timed out waiting for the guest's confirmation".to_string())?
            .map_err(|e| format!("the guest gave up ({e}): it had another code"))?;
        let GuestMsg::Confirm {
            mac: theirs,
            device,
        } = confirm
        else {
            return Err("expected a confirmation".into());
        };
        let want = confirmation(&key, "guest", &self.id, &guest, &a, &b);
        let ok = proves(&theirs, want);
        if !ok {
            let _ = frame::write(
                send,
                &HostMsg::Refused {
                    reason: "wrong code".into(),
                },
                CAP,
            )
            .await;
            let _ = send.finish();
            return Err("the guest's confirmation did not match: wrong code".into());
        }
        // One pairing per code: take the session, or lose a race to another guest.
        let session = {
            let mut guard = self.session.lock().unwrap_or_else(|p| p.into_inner());
            match guard.as_ref() {
                Some(s) if &s.code == code => guard.take(),
                _ => None,
            }
        };
        let Some(mut session) = session else {
            let _ = frame::write(
                send,
                &HostMsg::Refused {
                    reason: "the code was already used".into(),
                },
                CAP,
            )
            .await;
            return Err("the code was already used".into());
        };
        let addrs = device.addrs.clone();
        let dev = self
            .devices
            .trust(&guest.to_string(), &device, addrs)
            .map_err(|e| e.to_string());
        match dev {
            Ok(dev) => {
                frame::write(
                    send,
                    &HostMsg::Paired {
                        device: self.info.clone(),
                    },
                    CAP,
                )
                .await
                .map_err(|e| e.to_string())?;
                let _ = send.finish();
                tracing::info!(device = %dev.name, id = %dev.id, "paired");
                session.end(Ok(dev));
                // Let the guest read the last frame before the connection goes.
                let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
                Ok(())
            }
            Err(e) => {
                session.end(Err(PairError::Protocol(e.clone())));
                Err(e)
            }
        }
    }
}

impl ProtocolHandler for PairHost {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        if let Err(reason) = self.serve(&conn).await {
            tracing::info!(peer = %conn.remote_id(), %reason, "pairing attempt failed");
            // Give the guest a moment to read a refusal before the connection goes.
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
            conn.close(1u32.into(), b"pairing failed");
        }
        Ok(())
    }
}

/// The guest side: proves knowledge of `code` to the host behind `conn` and, when the host
/// proves it too, trusts it.
pub async fn join(
    conn: &Connection,
    my_id: EndpointId,
    code: &Code,
    info: &DeviceInfo,
    devices: &Devices,
    addrs: Vec<String>,
) -> Result<TrustedDevice, PairError> {
    let host = conn.remote_id();
    let proto = |e: frame::FrameError| PairError::Protocol(e.to_string());
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|e| PairError::Unreachable(e.to_string()))?;
    let (id_a, id_b) = ids(&host, &my_id);
    let (state, b) = Spake2::<Ed25519Group>::start_b(&code.password(), &id_a, &id_b);
    frame::write(&mut send, &GuestMsg::Hello { spake: b.clone() }, CAP)
        .await
        .map_err(proto)?;
    let reply = host_reply(&mut recv).await?;
    let (a, mac) = match reply {
        HostMsg::Spake { spake, mac } => (spake, mac),
        HostMsg::Refused { reason } => return Err(PairError::Refused(reason)),
        HostMsg::Paired { .. } => return Err(PairError::Protocol("unexpected message".into())),
    };
    let key = state
        .finish(&a)
        .map_err(|e| PairError::Protocol(format!("bad SPAKE2 message: {e:?}")))?;
    let want = confirmation(&key, "host", &host, &my_id, &a, &b);
    if !proves(&mac, want) {
        conn.close(2u32.into(), b"wrong code");
        return Err(PairError::WrongCode);
    }
    let mine = confirmation(&key, "guest", &host, &my_id, &a, &b);
    frame::write(
        &mut send,
        &GuestMsg::Confirm {
            mac: mine.as_bytes().to_vec(),
            device: info.clone(),
        },
        CAP,
    )
    .await
    .map_err(proto)?;
    let done = host_reply(&mut recv).await?;
    match done {
        HostMsg::Paired { device } => {
            let mut addrs = addrs;
            for a in &device.addrs {
                if !addrs.contains(a) {
                    addrs.push(a.clone());
                }
            }
            let dev = devices
                .trust(&host.to_string(), &device, addrs)
                .map_err(|e| PairError::Protocol(e.to_string()))?;
            conn.close(0u32.into(), b"paired");
            Ok(dev)
        }
        HostMsg::Refused { reason } => Err(PairError::Refused(reason)),
        HostMsg::Spake { .. } => Err(PairError::Protocol("unexpected message".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_as_typed() {
        let c = Code::generate();
        assert_eq!(c.to_string().len(), 9);
        assert_eq!(Code::parse(&c.to_string()).unwrap(), c);
        assert_eq!(Code::parse("1234 5678").unwrap().to_string(), "1234-5678");
        assert!(Code::parse("1234-567").is_err());
        assert!(Code::parse("1234-5678x").is_err());
    }
}
