//! Spacedrop (ALPN [`ALPN`]): files offered to a nearby device that is *not* paired, accepted or
//! declined by a person there.
//!
//! The sender dials from a fresh endpoint with a new key for every drop ([`send`]), so nothing
//! links two drops to one sender. One bidirectional stream per drop:
//! 1. `hello` → `hi {name, receiving}` (a sender looking for a device by name may stop here);
//! 2. `offer {sender, files: [{path, size}]}` → the receiver checks it ([`sanitise`]) and holds it
//!    in its [`Inbox`] until a person accepts, declines, or it expires ([`TTL`]); the answer is
//!    `accepted`, `declined`, `expired` or `refused {reason}`;
//! 3. after `accepted`, each file in order: its bytes as `[u32 BE length][bytes]` pieces ended by
//!    a zero length, then `end {hash}` (BLAKE3 of the bytes the sender read); finally the
//!    receiver answers `landed {names}` or `failed {reason}`.
//!
//! Both screens show a six-digit [`fingerprint`] of the two endpoint ids and the offer, so a
//! person can tell their drop from someone else's. Where the bytes land is the daemon's
//! [`Opener`]: this module moves frames and bytes, checks every count against the offer, and
//! writes nothing itself.
//!
//! Architecture Invariant: nothing an offer says is trusted. Frames are capped at [`CAP`],
//! pieces at [`PIECE`], files at [`MAX_FILES`], the total at [`MAX_TOTAL`]; a path with `..`,
//! `.` or an empty part is refused, and separators, NUL and control characters inside a name
//! are replaced (never interpreted). A file that sends more bytes than it offered ends the drop.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iroh::endpoint::{Connection, RecvStream, SendStream, presets};
use iroh::protocol::{AcceptError, ProtocolHandler};
use iroh::{Endpoint, EndpointAddr, EndpointId, SecretKey};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

use crate::frame;
use crate::net::Nearby;

/// The Spacedrop protocol, version 1.
pub const ALPN: &[u8] = b"spacedrive/spacedrop/1";
/// Largest frame (an offer of [`MAX_FILES`] deep paths fits).
pub const CAP: usize = 4 << 20;
/// Largest piece of a file's bytes.
pub const PIECE: usize = 1 << 20;
/// Most files in one offer.
pub const MAX_FILES: usize = 10_000;
/// Largest total size of one offer (1 TiB); the receiver also refuses more than its free space.
pub const MAX_TOTAL: u64 = 1 << 40;
/// Deepest path in an offer.
pub const MAX_DEPTH: usize = 32;
/// Longest file name, in bytes (the usual file system limit).
pub const MAX_NAME: usize = 255;
/// Longest sender name shown, in characters.
const MAX_SENDER: usize = 64;
/// How long an offer waits for a person before it expires.
pub const TTL: Duration = Duration::from_secs(120);
/// Close code: the peer broke the protocol.
const BAD_FRAME: u32 = 400;

/// One file offered: its path inside the drop (a single name, or a folder's relative path) and
/// its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferFile {
    pub path: Vec<String>,
    pub size: u64,
}

/// What a sender offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// The sender's device name, as it says (not verified: there is no pairing).
    pub sender: String,
    pub files: Vec<OfferFile>,
}

impl Offer {
    pub fn total(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Msg {
    Hello,
    Hi { name: String, receiving: bool },
    Offer(Offer),
    Accepted,
    Declined,
    Expired,
    Refused { reason: String },
    End { hash: String },
    Failed { reason: String },
    Landed { names: Vec<String> },
}

/// Checks an offer from a peer and makes its names safe to show and to create: the offer as it
/// may be used, or why it is refused. Pure, for tests and fuzzing.
pub fn sanitise(offer: Offer) -> Result<Offer, String> {
    if offer.files.is_empty() {
        return Err("the offer holds no file".into());
    }
    if offer.files.len() > MAX_FILES {
        return Err(format!(
            "the offer holds {} files; at most {MAX_FILES} are accepted",
            offer.files.len()
        ));
    }
    let mut total: u64 = 0;
    let mut files = Vec::with_capacity(offer.files.len());
    let mut file_paths = std::collections::HashSet::new();
    let mut folders = std::collections::HashSet::new();
    for f in offer.files {
        total = total
            .checked_add(f.size)
            .filter(|t| *t <= MAX_TOTAL)
            .ok_or_else(|| format!("the offer is larger than the {MAX_TOTAL}-byte limit"))?;
        if f.path.is_empty() || f.path.len() > MAX_DEPTH {
            return Err(format!(
                "a path has {} parts (1 to {MAX_DEPTH} accepted)",
                f.path.len()
            ));
        }
        let mut path = Vec::with_capacity(f.path.len());
        for part in &f.path {
            path.push(clean_name(part)?);
        }
        // Two files at one path, or a file where another file's folder goes: refused, not
        // guessed at.
        let clash = folders.contains(&path)
            || (1..path.len()).any(|d| file_paths.contains(&path[..d]))
            || !file_paths.insert(path.clone());
        if clash {
            return Err(format!(
                "{:?} is offered twice, or as both a file and a folder",
                path.join("/")
            ));
        }
        for d in 1..path.len() {
            folders.insert(path[..d].to_vec());
        }
        files.push(OfferFile { path, size: f.size });
    }
    let sender: String = offer
        .sender
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_SENDER)
        .collect();
    let sender = match sender.trim() {
        "" => "unnamed device".to_string(),
        s => s.to_string(),
    };
    Ok(Offer { sender, files })
}

/// One name of an offered path: refused when it could climb or vanish (`..`, `.`, empty), else
/// with separators, NUL and control characters replaced by `_` and cut to [`MAX_NAME`] bytes.
fn clean_name(part: &str) -> Result<String, String> {
    if part.is_empty() || part == "." || part == ".." {
        return Err(format!(
            "the path part {part:?} is refused (it could name a place outside the drop)"
        ));
    }
    let mut s: String = part
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if s.len() > MAX_NAME {
        let mut end = MAX_NAME;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    if s == "." || s == ".." {
        return Err(format!("the path part {part:?} is refused"));
    }
    Ok(s)
}

/// Six digits both screens show for one drop: from the sender's (ephemeral) id, the receiver's
/// id and the offer as sent.
pub fn fingerprint(sender: &EndpointId, receiver: &EndpointId, offer: &Offer) -> String {
    let mut h = blake3::Hasher::new_derive_key("spacedrive spacedrop fingerprint v1");
    h.update(sender.as_bytes());
    h.update(receiver.as_bytes());
    h.update(&serde_json::to_vec(offer).unwrap_or_default());
    let b = h.finalize();
    let n = u32::from_be_bytes([
        b.as_bytes()[0],
        b.as_bytes()[1],
        b.as_bytes()[2],
        b.as_bytes()[3],
    ]);
    format!("{:06}", n % 1_000_000)
}

/// An offer waiting for a person, as the inbox shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub id: u64,
    /// The sender's network id for this drop only.
    pub peer: String,
    pub fingerprint: String,
    /// Sanitised.
    pub offer: Offer,
    /// Unix milliseconds.
    pub expires_at: i64,
}

/// Where accepted files go: the daemon's folder.
pub trait Opener: Send + Sync + 'static {
    /// Whether `offer` can be received at all (e.g. free space); checked when it arrives.
    fn admit(&self, offer: &Offer) -> Result<(), String>;
    /// Starts landing an accepted offer (nothing is written before this).
    fn open(&self, pending: &Pending) -> Result<Box<dyn Landing>, String>;
}

/// An accepted drop being written. Dropped without [`Landing::commit`], it leaves nothing behind.
pub trait Landing: Send {
    /// File `index` of the offer starts.
    fn begin(&mut self, index: usize) -> std::io::Result<()>;
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// The current file is complete; `hash` is the sender's BLAKE3 of the bytes it read.
    fn end(&mut self, hash: [u8; 32]) -> Result<(), String>;
    /// Every file arrived verified: moves them into place (never over anything); their names.
    fn commit(self: Box<Self>) -> Result<Vec<String>, String>;
}

enum Decision {
    Accept(
        Box<dyn Landing>,
        oneshot::Sender<Result<Vec<String>, String>>,
    ),
    Decline,
}

/// Why a person's answer to an offer could not be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InboxError {
    #[error("no offer {0} is waiting (it may have expired or been withdrawn)")]
    NotFound(u64),
    #[error("{0}")]
    Landing(String),
}

struct Waiting {
    pending: Pending,
    decide: oneshot::Sender<Decision>,
}

/// Offers waiting for a person. Cheap to clone.
#[derive(Clone)]
pub struct Inbox {
    inner: Arc<InboxInner>,
}

struct InboxInner {
    receiving: AtomicBool,
    ttl: Duration,
    next: AtomicU64,
    waiting: Mutex<BTreeMap<u64, Waiting>>,
    /// The newest offer's id.
    newest: watch::Sender<u64>,
    opener: Arc<dyn Opener>,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inbox")
    }
}

impl Inbox {
    /// An inbox whose offers expire after `ttl`, landing accepted ones through `opener`.
    pub fn new(opener: Arc<dyn Opener>, receiving: bool, ttl: Duration) -> Inbox {
        Inbox {
            inner: Arc::new(InboxInner {
                receiving: AtomicBool::new(receiving),
                ttl,
                next: AtomicU64::new(1),
                waiting: Mutex::new(BTreeMap::new()),
                newest: watch::channel(0).0,
                opener,
            }),
        }
    }

    pub fn receiving(&self) -> bool {
        self.inner.receiving.load(Ordering::SeqCst)
    }

    /// Turns receiving on or off; off also declines every waiting offer.
    pub fn set_receiving(&self, on: bool) {
        self.inner.receiving.store(on, Ordering::SeqCst);
        if !on {
            let all = std::mem::take(&mut *self.lock());
            for (_, w) in all {
                let _ = w.decide.send(Decision::Decline);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Waiting>> {
        self.inner.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Offers waiting now, oldest first.
    pub fn list(&self) -> Vec<Pending> {
        self.lock().values().map(|w| w.pending.clone()).collect()
    }

    /// The first waiting offer newer than `after`, waiting for one at most `wait`.
    pub async fn next_after(&self, after: u64, wait: Duration) -> Option<Pending> {
        let mut rx = self.inner.newest.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(p) = self
                .lock()
                .range(after + 1..)
                .next()
                .map(|(_, w)| w.pending.clone())
            {
                return Some(p);
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return None;
            }
        }
    }

    /// Accepts offer `id`: resolves when its files have landed (their names) or failed.
    pub fn accept(
        &self,
        id: u64,
    ) -> Result<oneshot::Receiver<Result<Vec<String>, String>>, InboxError> {
        let w = self.lock().remove(&id).ok_or(InboxError::NotFound(id))?;
        let landing = match self.inner.opener.open(&w.pending) {
            Ok(l) => l,
            Err(e) => {
                let _ = w.decide.send(Decision::Decline);
                return Err(InboxError::Landing(e));
            }
        };
        let (tx, rx) = oneshot::channel();
        w.decide
            .send(Decision::Accept(landing, tx))
            .map_err(|_| InboxError::NotFound(id))?;
        Ok(rx)
    }

    /// Declines offer `id`: nothing is written.
    pub fn decline(&self, id: u64) -> Result<Pending, InboxError> {
        let w = self.lock().remove(&id).ok_or(InboxError::NotFound(id))?;
        let _ = w.decide.send(Decision::Decline);
        Ok(w.pending)
    }

    fn hold(
        &self,
        peer: EndpointId,
        fingerprint: String,
        offer: Offer,
    ) -> (u64, oneshot::Receiver<Decision>) {
        let id = self.inner.next.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        let pending = Pending {
            id,
            peer: peer.to_string(),
            fingerprint,
            offer,
            expires_at: crate::devices::now_ms() + self.inner.ttl.as_millis() as i64,
        };
        self.lock().insert(
            id,
            Waiting {
                pending,
                decide: tx,
            },
        );
        self.inner.newest.send_replace(id);
        (id, rx)
    }
}

/// Why serving a drop stopped early.
enum Broke {
    Gone,
    Protocol(String),
}

impl From<frame::FrameError> for Broke {
    fn from(e: frame::FrameError) -> Broke {
        match e {
            frame::FrameError::Closed | frame::FrameError::Io(_) => Broke::Gone,
            other => Broke::Protocol(other.to_string()),
        }
    }
}

/// The receiving side: open to every device, paired or not.
#[derive(Clone)]
pub struct SpacedropServer {
    id: EndpointId,
    name: String,
    inbox: Inbox,
}

impl std::fmt::Debug for SpacedropServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpacedropServer")
    }
}

impl SpacedropServer {
    pub fn new(id: EndpointId, name: String, inbox: Inbox) -> SpacedropServer {
        SpacedropServer { id, name, inbox }
    }

    async fn serve(
        &self,
        conn: &Connection,
        mut tx: SendStream,
        mut rx: RecvStream,
    ) -> Result<(), Broke> {
        let peer = conn.remote_id();
        match frame::read::<_, Msg>(&mut rx, CAP).await? {
            Msg::Hello => {}
            _ => return Err(Broke::Protocol("expected hello".into())),
        }
        let hi = Msg::Hi {
            name: self.name.clone(),
            receiving: self.inbox.receiving(),
        };
        frame::write(&mut tx, &hi, CAP).await?;
        let offer = match frame::read::<_, Msg>(&mut rx, CAP).await {
            Ok(Msg::Offer(o)) => o,
            Ok(_) => return Err(Broke::Protocol("expected an offer".into())),
            Err(frame::FrameError::Closed) => return Ok(()), // only looked
            Err(e) => return Err(e.into()),
        };
        let fp = fingerprint(&peer, &self.id, &offer);
        let refusal = if !self.inbox.receiving() {
            Err("this device is not receiving Spacedrop".to_string())
        } else {
            sanitise(offer).and_then(|o| self.inbox.inner.opener.admit(&o).map(|()| o))
        };
        let offer = match refusal {
            Ok(o) => o,
            Err(reason) => {
                tracing::info!(%peer, %reason, "refused a Spacedrop offer");
                frame::write(&mut tx, &Msg::Refused { reason }, CAP).await?;
                return finish(tx).await;
            }
        };
        tracing::info!(%peer, files = offer.files.len(), bytes = offer.total(), "Spacedrop offer");
        let files = offer.files.clone();
        let (id, decision) = self.inbox.hold(peer, fp, offer);
        let decided = tokio::select! {
            d = decision => d.ok(),
            _ = tokio::time::sleep(self.inbox.inner.ttl) => None,
            _ = conn.closed() => None,
        };
        // Whatever ended the wait, the offer is no longer waiting.
        self.inbox.lock().remove(&id);
        match decided {
            None => {
                frame::write(&mut tx, &Msg::Expired, CAP).await?;
                finish(tx).await
            }
            Some(Decision::Decline) => {
                frame::write(&mut tx, &Msg::Declined, CAP).await?;
                finish(tx).await
            }
            Some(Decision::Accept(landing, done)) => {
                frame::write(&mut tx, &Msg::Accepted, CAP).await?;
                let r = receive(&files, landing, &mut rx).await;
                let answer = match &r {
                    Ok(names) => Msg::Landed {
                        names: names.clone(),
                    },
                    Err(Broke::Protocol(reason)) => Msg::Failed {
                        reason: reason.clone(),
                    },
                    Err(Broke::Gone) => Msg::Failed {
                        reason: "the sender went away".into(),
                    },
                };
                let _ = done.send(match &answer {
                    Msg::Landed { names } => Ok(names.clone()),
                    Msg::Failed { reason } => Err(reason.clone()),
                    _ => Err(String::new()),
                });
                let _ = frame::write(&mut tx, &answer, CAP).await;
                let _ = finish(tx).await;
                r.map(|_| ())
            }
        }
    }
}

async fn finish(mut tx: SendStream) -> Result<(), Broke> {
    let _ = tx.finish();
    let _ = tokio::time::timeout(Duration::from_secs(5), tx.stopped()).await;
    Ok(())
}

/// Reads every offered file into `landing`, checking each byte count against the offer.
async fn receive(
    files: &[OfferFile],
    mut landing: Box<dyn Landing>,
    rx: &mut RecvStream,
) -> Result<Vec<String>, Broke> {
    let mut buf = vec![0u8; PIECE];
    let io = |e: std::io::Error| Broke::Protocol(format!("writing: {e}"));
    for (i, f) in files.iter().enumerate() {
        tokio::task::block_in_place(|| landing.begin(i)).map_err(io)?;
        let mut got: u64 = 0;
        loop {
            let mut len = [0u8; 4];
            rx.read_exact(&mut len).await.map_err(|_| Broke::Gone)?;
            let n = u32::from_be_bytes(len) as usize;
            if n == 0 {
                break;
            }
            if n > PIECE || got + n as u64 > f.size {
                return Err(Broke::Protocol(format!(
                    "file {} sent more bytes than it offered ({})",
                    i, f.size
                )));
            }
            rx.read_exact(&mut buf[..n])
                .await
                .map_err(|_| Broke::Gone)?;
            got += n as u64;
            tokio::task::block_in_place(|| landing.write(&buf[..n])).map_err(io)?;
        }
        let hash = match frame::read::<_, Msg>(rx, CAP).await? {
            Msg::End { hash } => {
                unhex(&hash).ok_or_else(|| Broke::Protocol("malformed hash".into()))?
            }
            Msg::Failed { reason } => {
                return Err(Broke::Protocol(format!("the sender failed: {reason}")));
            }
            _ => return Err(Broke::Protocol("expected the end of a file".into())),
        };
        if got != f.size {
            return Err(Broke::Protocol(format!(
                "{:?}: {got} bytes arrived of the {} offered",
                f.path.join("/"),
                f.size
            )));
        }
        tokio::task::block_in_place(|| landing.end(hash)).map_err(Broke::Protocol)?;
    }
    tokio::task::block_in_place(|| landing.commit()).map_err(Broke::Protocol)
}

impl ProtocolHandler for SpacedropServer {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let peer = conn.remote_id();
        // One drop per connection.
        let Ok((tx, rx)) = conn.accept_bi().await else {
            return Ok(());
        };
        if let Err(Broke::Protocol(reason)) = self.serve(&conn, tx, rx).await {
            tracing::info!(%peer, %reason, "closing a Spacedrop that broke the protocol");
            conn.close(BAD_FRAME.into(), b"protocol error");
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
        Ok(())
    }
}

fn hex(b: &[u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Where to send a drop.
#[derive(Debug, Clone)]
pub enum Target {
    /// A device's introduction address (`network status`'s `intro`).
    Addr(SocketAddr),
    /// The device named so among `nearby` (exact name); `None`: the only one receiving.
    Nearby {
        name: Option<String>,
        nearby: Vec<Nearby>,
    },
}

/// A file to send: read when its turn comes.
pub type OpenFile =
    Box<dyn FnMut(usize) -> std::io::Result<Box<dyn crate::transfer::Source>> + Send>;

/// What the sender sees happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The offer is waiting for a person on `to`, who sees `fingerprint`.
    Offered { to: String, fingerprint: String },
    /// Accepted; `done` of `total` bytes sent.
    Sending { done: u64, total: u64 },
}

/// How a drop ended, when it was not a success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpacedropError {
    #[error("{0}")]
    Unreachable(String),
    #[error("{to} declined")]
    Declined { to: String },
    #[error("nobody on {to} answered within {} s; the offer expired", TTL.as_secs())]
    Expired { to: String },
    #[error("{to} refused the offer: {reason}")]
    Refused { to: String, reason: String },
    #[error("{0}")]
    Ambiguous(String),
    #[error("the drop failed: {0}")]
    Failed(String),
}

/// A drop that landed: where, and the names it has there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub to: String,
    pub fingerprint: String,
    pub names: Vec<String>,
}

/// Offers `offer` to `target` from a new endpoint with a new key (bound to `ip`), and sends the
/// files when a person accepts. `open(i)` reads file `i` of the offer.
pub async fn send(
    ip: IpAddr,
    target: Target,
    offer: Offer,
    mut open: OpenFile,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Sent, SpacedropError> {
    let unreachable = |e: String| SpacedropError::Unreachable(e);
    let endpoint = Endpoint::builder(presets::Minimal)
        .secret_key(SecretKey::generate())
        .relay_mode(iroh::RelayMode::Disabled)
        .clear_ip_transports()
        .bind_addr(SocketAddr::new(ip, 0))
        .map_err(|e| unreachable(e.to_string()))?
        .bind()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let r = send_from(&endpoint, target, offer, &mut open, progress).await;
    endpoint.close().await;
    r
}

async fn send_from(
    endpoint: &Endpoint,
    target: Target,
    offer: Offer,
    open: &mut OpenFile,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Sent, SpacedropError> {
    let (conn, mut tx, mut rx, to) = match target {
        Target::Addr(addr) => {
            let id = crate::net::introduction(addr)
                .await
                .map_err(|e| SpacedropError::Unreachable(e.to_string()))?;
            let (c, tx, mut rx) = dial(endpoint, EndpointAddr::new(id).with_ip_addr(addr)).await?;
            let (name, _) = greet(&mut rx).await?;
            (c, tx, rx, name)
        }
        Target::Nearby { name, nearby } => {
            let mut found = Vec::new();
            for n in nearby {
                let mut at = EndpointAddr::new(n.id);
                for a in &n.addrs {
                    at = at.with_ip_addr(*a);
                }
                let Ok((c, tx, mut rx)) = dial(endpoint, at).await else {
                    continue;
                };
                match greet(&mut rx).await {
                    Ok((their, receiving))
                        if receiving && name.as_deref().is_none_or(|w| w == their) =>
                    {
                        found.push((c, tx, rx, their))
                    }
                    _ => c.close(0u32.into(), b"not this one"),
                }
            }
            if found.len() > 1 {
                let names: Vec<String> = found.iter().map(|f| f.3.clone()).collect();
                for f in &found {
                    f.0.close(0u32.into(), b"ambiguous");
                }
                return Err(SpacedropError::Ambiguous(format!(
                    "{} devices nearby are receiving ({}); name one with --to",
                    names.len(),
                    names.join(", ")
                )));
            }
            found.pop().ok_or_else(|| {
                SpacedropError::Unreachable(match &name {
                    Some(n) => format!("no device named {n:?} is receiving Spacedrop nearby; give its address with --addr"),
                    None => "no device nearby is receiving Spacedrop; give its address with --addr".into(),
                })
            })?
        }
    };
    let wire = |e: frame::FrameError| SpacedropError::Failed(e.to_string());
    let fp = fingerprint(&endpoint.id(), &conn.remote_id(), &offer);
    frame::write(&mut tx, &Msg::Offer(offer.clone()), CAP)
        .await
        .map_err(wire)?;
    progress(Progress::Offered {
        to: to.clone(),
        fingerprint: fp.clone(),
    });
    let answer = tokio::time::timeout(TTL * 2, frame::read::<_, Msg>(&mut rx, CAP))
        .await
        .map_err(|_| SpacedropError::Expired { to: to.clone() })?
        .map_err(wire)?;
    match answer {
        Msg::Accepted => {}
        Msg::Declined => return Err(SpacedropError::Declined { to }),
        Msg::Expired => return Err(SpacedropError::Expired { to }),
        Msg::Refused { reason } => return Err(SpacedropError::Refused { to, reason }),
        _ => return Err(SpacedropError::Failed("unexpected answer".into())),
    }
    let total = offer.total();
    let mut done = 0u64;
    progress(Progress::Sending { done, total });
    let mut buf = vec![0u8; PIECE];
    let gone = |e: std::io::Error| SpacedropError::Failed(format!("the receiver went away: {e}"));
    for (i, f) in offer.files.iter().enumerate() {
        let mut src = tokio::task::block_in_place(|| open(i))
            .map_err(|e| SpacedropError::Failed(format!("{}: {e}", f.path.join("/"))))?;
        let mut sent = 0u64;
        let mut failed = None;
        while sent < f.size {
            let want = ((f.size - sent) as usize).min(PIECE);
            match tokio::task::block_in_place(|| src.read(&mut buf[..want])) {
                Ok(0) => {
                    failed = Some("the file shrank while it was sent".to_string());
                    break;
                }
                Ok(n) => {
                    tx.write_all(&(n as u32).to_be_bytes())
                        .await
                        .map_err(|e| gone(std::io::Error::other(e)))?;
                    tx.write_all(&buf[..n])
                        .await
                        .map_err(|e| gone(std::io::Error::other(e)))?;
                    sent += n as u64;
                    done += n as u64;
                    progress(Progress::Sending { done, total });
                }
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        tx.write_all(&0u32.to_be_bytes())
            .await
            .map_err(|e| gone(std::io::Error::other(e)))?;
        let end = match &failed {
            None => Msg::End {
                hash: hex(&src.finish()),
            },
            Some(reason) => Msg::Failed {
                reason: format!("{}: {reason}", f.path.join("/")),
            },
        };
        frame::write(&mut tx, &end, CAP).await.map_err(wire)?;
        if let Some(reason) = failed {
            return Err(SpacedropError::Failed(reason));
        }
    }
    let _ = tx.finish();
    match frame::read::<_, Msg>(&mut rx, CAP).await.map_err(wire)? {
        Msg::Landed { names } => {
            conn.close(0u32.into(), b"done");
            Ok(Sent {
                to,
                fingerprint: fp,
                names,
            })
        }
        Msg::Failed { reason } => Err(SpacedropError::Failed(reason)),
        _ => Err(SpacedropError::Failed("unexpected answer".into())),
    }
}

async fn dial(
    endpoint: &Endpoint,
    at: EndpointAddr,
) -> Result<(Connection, SendStream, RecvStream), SpacedropError> {
    let conn = tokio::time::timeout(Duration::from_secs(10), endpoint.connect(at, ALPN))
        .await
        .map_err(|_| SpacedropError::Unreachable("no answer within 10 s".into()))?
        .map_err(|e| SpacedropError::Unreachable(e.to_string()))?;
    let (mut tx, rx) = conn
        .open_bi()
        .await
        .map_err(|e| SpacedropError::Unreachable(e.to_string()))?;
    frame::write(&mut tx, &Msg::Hello, CAP)
        .await
        .map_err(|e| SpacedropError::Unreachable(e.to_string()))?;
    Ok((conn, tx, rx))
}

/// The receiver's name and whether it is receiving.
async fn greet(rx: &mut RecvStream) -> Result<(String, bool), SpacedropError> {
    match tokio::time::timeout(Duration::from_secs(10), frame::read::<_, Msg>(rx, CAP)).await {
        Ok(Ok(Msg::Hi { name, receiving })) => Ok((
            name.chars()
                .filter(|c| !c.is_control())
                .take(MAX_SENDER)
                .collect(),
            receiving,
        )),
        Ok(Ok(_)) => Err(SpacedropError::Unreachable(
            "not a Spacedrop receiver".into(),
        )),
        Ok(Err(e)) => Err(SpacedropError::Unreachable(e.to_string())),
        Err(_) => Err(SpacedropError::Unreachable(
            "no greeting within 10 s".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(paths: &[&[&str]]) -> Offer {
        Offer {
            sender: "laptop".into(),
            files: paths
                .iter()
                .map(|p| OfferFile {
                    path: p.iter().map(|s| s.to_string()).collect(),
                    size: 1,
                })
                .collect(),
        }
    }

    #[test]
    fn hostile_offers_are_refused_or_sanitised() {
        // Climbing, absolute (an empty first part), `.`: refused.
        for bad in [
            &[&["..", "etc", "passwd"][..]][..],
            &[&["", "etc", "passwd"][..]],
            &[&["a", ".", "b"][..]],
            &[&[][..]],
        ] {
            assert!(sanitise(offer(bad)).is_err(), "{bad:?}");
        }
        // Separators, NUL and control characters inside a name: replaced, never interpreted.
        let o = sanitise(offer(&[&["a/../../b\0c\n"]])).unwrap();
        assert_eq!(o.files[0].path, vec!["a_.._.._b_c_".to_string()]);
        let o = sanitise(offer(&[&["..\\x"]])).unwrap();
        assert_eq!(o.files[0].path, vec![".._x".to_string()]);
        // A name that becomes `..` after cleaning cannot occur; one made of separators is `_`s.
        assert_eq!(sanitise(offer(&[&["/"]])).unwrap().files[0].path, vec!["_"]);
        // Duplicates and file/folder clashes are refused.
        assert!(sanitise(offer(&[&["a"], &["a"]])).is_err());
        assert!(sanitise(offer(&[&["a"], &["a", "b"]])).is_err());
        assert!(sanitise(offer(&[&["a", "b"], &["a"]])).is_err());
        assert!(sanitise(offer(&[&["a", "b"], &["a", "c"]])).is_ok());
        // Absurd sizes and counts.
        let mut big = offer(&[&["a"], &["b"]]);
        big.files[0].size = u64::MAX;
        assert!(sanitise(big).is_err());
        let mut over = offer(&[&["a"]]);
        over.files[0].size = MAX_TOTAL + 1;
        assert!(sanitise(over).is_err());
        let many = Offer {
            sender: "x".into(),
            files: (0..=MAX_FILES)
                .map(|i| OfferFile {
                    path: vec![i.to_string()],
                    size: 0,
                })
                .collect(),
        };
        assert!(sanitise(many).is_err());
        // Long names are cut at a character boundary; the sender's name loses control characters.
        let long = "é".repeat(300);
        let mut o = offer(&[&[long.as_str()]]);
        o.sender = "\u{1b}[31mevil\u{7}".into();
        let o = sanitise(o).unwrap();
        assert!(o.files[0].path[0].len() <= MAX_NAME);
        assert_eq!(o.sender, "[31mevil");
    }

    /// Property: whatever frame arrives, decoding and sanitising never panic, and what passes has
    /// only safe names within the limits.
    #[test]
    fn decoder_and_sanitiser_never_panic_and_pass_only_safe_offers() {
        let mut x: u64 = 0x243f_6a88_85a3_08d3;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = [
            "a", "..", ".", "/", "\0", "", "é", "b.txt", "\\", "\n", "x/../y",
        ];
        for _ in 0..5_000 {
            let files = (0..next() % 6)
                .map(|_| OfferFile {
                    path: (0..next() % 4)
                        .map(|_| {
                            (0..1 + next() % 3)
                                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                                .collect::<String>()
                        })
                        .collect(),
                    size: match next() % 4 {
                        0 => u64::MAX - next() % 10,
                        1 => next() % (MAX_TOTAL / 2),
                        _ => next() % 1000,
                    },
                })
                .collect();
            let o = Msg::Offer(Offer {
                sender: "s".into(),
                files,
            });
            let mut bytes = Vec::new();
            let body = serde_json::to_vec(&o).unwrap();
            bytes.push(frame::VERSION);
            bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
            bytes.extend_from_slice(&body);
            // Sometimes corrupt it.
            if next() % 3 == 0 && !bytes.is_empty() {
                let i = (next() as usize) % bytes.len();
                bytes[i] = next() as u8;
            }
            let Ok(Msg::Offer(offer)) = frame::decode::<Msg>(&bytes, CAP) else {
                continue;
            };
            if let Ok(clean) = sanitise(offer) {
                assert!(clean.total() <= MAX_TOTAL);
                for f in &clean.files {
                    assert!(!f.path.is_empty() && f.path.len() <= MAX_DEPTH);
                    for p in &f.path {
                        assert!(!p.is_empty() && p != "." && p != "..", "{p:?}");
                        assert!(!p.contains('/') && !p.contains('\0') && p.len() <= MAX_NAME);
                    }
                }
            }
        }
    }

    #[test]
    fn fingerprints_bind_ids_and_offer() {
        let (a, b) = (
            SecretKey::generate().public(),
            SecretKey::generate().public(),
        );
        let o = offer(&[&["a"]]);
        let f = fingerprint(&a, &b, &o);
        assert_eq!(f.len(), 6);
        assert_eq!(f, fingerprint(&a, &b, &o));
        assert_ne!(f, fingerprint(&b, &a, &o));
    }
}
