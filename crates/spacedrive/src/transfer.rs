//! Transfers between paired devices, the daemon's part: what this device shares with them
//! ([`Sharing`], serving `sd-net`'s transfer protocol) and the engine's
//! [`Transport`](sd_core::transfer::Transport), over this device's network node
//! ([`crate::network::NetService`]).
//!
//! A paired device may list and read only inside this device's locations, or what a push of
//! this device granted it; it may write (receive a push) only into a location. Every path it
//! sends is resolved here ([`transfer::resolve_within`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sd_core::fileops::Plan;
use sd_core::names::JsonPath;
use sd_core::transfer::{self, Listing, Outgoing, PushRequest, RemoteJob, Removal, Removed};
use sd_core::{Error, Node};
use sd_net::EndpointId;
use sd_net::transfer::{Refusal, Source, Want};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Pushes of this device in progress: token → the device that may read, and what.
pub type Grants = Arc<Mutex<HashMap<String, Grant>>>;

pub struct Grant {
    device: String,
    roots: Vec<PathBuf>,
}

/// The calls of the transfer protocol, as this build sends and answers them.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Call {
    /// Plan receiving a push (a preview); changes nothing.
    PlanPush {
        push: PushRequest,
    },
    /// Receive a push: start the receiving job (or find the one this token started).
    Push {
        push: PushRequest,
    },
    PushStatus {
        token: String,
    },
    PushCancel {
        token: String,
    },
    /// Delete the sources of a move that arrived verified.
    Remove {
        grant: Option<String>,
        items: Vec<Removal>,
    },
    /// Which files here hold the content with this UUID.
    Locate {
        content: String,
    },
    /// A copy from here ended (for the audit log).
    Done {
        grant: Option<String>,
        sources: Vec<JsonPath>,
        summary: Value,
    },
}

fn refusal(e: Error) -> Refusal {
    Refusal {
        code: e.code().to_owned(),
        message: e.to_string(),
    }
}

/// An engine error from a transfer that failed on the network or was refused there.
pub fn core_error(e: sd_net::TransferError) -> Error {
    match e {
        sd_net::TransferError::Call(sd_net::CallError::NotPaired { device }) => Error::NotPaired(
            format!("{device} refused: this device is not (or no longer) paired with it"),
        ),
        sd_net::TransferError::Call(c) => Error::Unreachable(c.to_string()),
        sd_net::TransferError::Refused(r) => match r.code.as_str() {
            "forbidden" => Error::Forbidden(r.message),
            "not_found" => Error::NotFound(r.message),
            "conflict" => Error::Conflict(r.message),
            "unreachable" => Error::Unreachable(r.message),
            "not_paired" => Error::NotPaired(r.message),
            _ => Error::Invalid(r.message),
        },
        other => Error::Invalid(other.to_string()),
    }
}

/// What this device serves to paired devices.
pub struct Sharing {
    node: Arc<Node>,
    grants: Grants,
    /// The shared roots (every location, resolved), kept a moment: a read asks per file.
    shared: Mutex<Option<(Instant, Vec<PathBuf>)>>,
}

impl Sharing {
    pub fn new(node: Arc<Node>, grants: Grants) -> Sharing {
        Sharing {
            node,
            grants,
            shared: Mutex::new(None),
        }
    }

    fn shared(&self) -> Vec<PathBuf> {
        let mut cache = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, roots)) = &*cache
            && at.elapsed() < Duration::from_secs(2)
        {
            return roots.clone();
        }
        let roots = transfer::shared_roots(&self.node.libraries());
        *cache = Some((Instant::now(), roots.clone()));
        roots
    }

    /// What `peer` may read: what push `grant` gave it, or this device's locations.
    fn readable(&self, peer: EndpointId, grant: Option<&str>) -> Result<Vec<PathBuf>, Error> {
        let Some(token) = grant else {
            return Ok(self.shared());
        };
        let grants = self.grants.lock().unwrap_or_else(|p| p.into_inner());
        match grants.get(token) {
            Some(g) if g.device == peer.to_string() => Ok(g.roots.clone()),
            _ => Err(Error::Forbidden(
                "that push is not running here (it ended, or this device restarted and has not resumed it yet)".into(),
            )),
        }
    }

    fn list(
        &self,
        peer: EndpointId,
        grant: Option<&str>,
        sources: Value,
    ) -> Result<Listing, Error> {
        let sources: Vec<JsonPath> = serde_json::from_value(sources)
            .map_err(|e| Error::Invalid(format!("malformed sources: {e}")))?;
        if sources.is_empty() || sources.len() > 10_000 {
            return Err(Error::Invalid("name between 1 and 10000 sources".into()));
        }
        let roots = self.readable(peer, grant)?;
        let mut listing = Listing::default();
        for s in &sources {
            let real = transfer::resolve_within(&roots, &s.0)?;
            listing.add(&real)?;
            listing.roots.push(JsonPath(real));
        }
        Ok(listing)
    }

    /// Plans receiving `push` from `peer` into a location here.
    fn plan_receive(
        &self,
        peer: EndpointId,
        push: &PushRequest,
    ) -> Result<(Plan, Arc<sd_core::library::Library>), Error> {
        let dest = transfer::resolve_within(&self.shared(), &push.dest.0)?;
        let lib = transfer::library_holding(&self.node.libraries(), &dest).ok_or_else(|| {
            Error::Forbidden(format!(
                "{} is outside the folders this device shares",
                push.dest.0.display()
            ))
        })?;
        let t = transfer::transport(&lib)?;
        let (plan, _) = transfer::plan_pull(
            t.as_ref(),
            &peer.to_string(),
            Some(&push.token),
            &push.sources,
            &dest,
            push.policy,
        )?;
        Ok((plan, lib))
    }

    /// The library and receiving job of push `token`.
    fn job_of(&self, token: &str) -> Result<(Arc<sd_core::library::Library>, i64), Error> {
        for lib in self.node.libraries() {
            if let Some(id) = transfer::job_of_push(&lib, token)? {
                return Ok((lib, id));
            }
        }
        Err(Error::NotFound(format!(
            "no receiving job for push {token}"
        )))
    }

    fn remote_job(lib: &sd_core::library::Library, id: i64) -> Result<RemoteJob, Error> {
        let info = sd_core::jobs::get(lib, id)?;
        Ok(RemoteJob {
            job: id,
            state: info.state.as_str().to_owned(),
            error: info.error,
            progress: match info.progress {
                sd_core::jobs::JobProgress::TransferPull(p) => Some(p),
                _ => None,
            },
        })
    }

    fn answer(&self, peer: EndpointId, call: Call) -> Result<Value, Error> {
        Ok(match call {
            Call::PlanPush { push } => serde_json::to_value(self.plan_receive(peer, &push)?.0)?,
            Call::Push { push } => {
                if let Ok((lib, id)) = self.job_of(&push.token) {
                    return Ok(serde_json::to_value(Self::remote_job(&lib, id)?)?);
                }
                let (plan, lib) = self.plan_receive(peer, &push)?;
                let t = transfer::transport(&lib)?;
                let (device, device_name) = t.device(&peer.to_string())?;
                let targets = push
                    .sources
                    .iter()
                    .map(|s| format!("{device_name}:{}", s.0.display()))
                    .chain(std::iter::once(push.dest.0.display().to_string()))
                    .collect();
                let job = transfer::PullJob {
                    device,
                    device_name,
                    grant: Some(push.token.clone()),
                    move_source: push.move_source,
                    expect: None,
                    sources: push.sources.clone(),
                    action: push.action.clone(),
                    targets,
                    committed_at: sd_core::store::now_ms(),
                };
                let id = transfer::start_pull(&lib, job, &plan)?;
                serde_json::to_value(Self::remote_job(&lib, id)?)?
            }
            Call::Locate { content } => {
                let uuid: uuid::Uuid = content
                    .parse()
                    .map_err(|_| Error::Invalid(format!("{content:?} is not a content UUID")))?;
                let mut files = Vec::new();
                for lib in self.node.libraries() {
                    files.extend(transfer::held(&lib, &uuid)?);
                }
                serde_json::to_value(files)?
            }
            Call::PushStatus { token } => {
                let (lib, id) = self.job_of(&token)?;
                serde_json::to_value(Self::remote_job(&lib, id)?)?
            }
            Call::PushCancel { token } => {
                let (lib, id) = self.job_of(&token)?;
                sd_core::jobs::cancel(&lib, id)?;
                Value::Null
            }
            Call::Remove { grant, items } => {
                let roots = self.readable(peer, grant.as_deref())?;
                let mut resolved = Vec::with_capacity(items.len());
                for mut it in items {
                    it.path = JsonPath(transfer::resolve_within(&roots, &it.path.0)?);
                    resolved.push(it);
                }
                let removed: Removed = transfer::remove_sources(&resolved);
                let paths: Vec<PathBuf> = resolved.into_iter().map(|r| r.path.0).collect();
                transfer::rescan_after_removal(&self.node.libraries(), &paths);
                serde_json::to_value(removed)?
            }
            Call::Done {
                grant,
                sources,
                summary,
            } => {
                // A push's own job records it here; a pull from here is recorded now.
                if grant.is_none() {
                    let libs = self.node.libraries();
                    let lib = sources
                        .first()
                        .and_then(|s| transfer::library_holding(&libs, &s.0))
                        .or_else(|| self.node.library(None).ok());
                    if let Some(lib) = lib {
                        let name = transfer::transport(&lib)
                            .and_then(|t| t.device(&peer.to_string()))
                            .map(|(_, n)| n)
                            .unwrap_or_else(|_| peer.to_string());
                        transfer::record_sent(&lib, &name, summary)?;
                    }
                }
                Value::Null
            }
        })
    }
}

/// Runs `f` on a thread of its own: answers that call the network (a push's receiver lists
/// the sender) must not block a thread of the network's runtime.
fn on_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    })
}

impl sd_net::transfer::Handler for Sharing {
    fn list(
        &self,
        peer: EndpointId,
        grant: Option<String>,
        sources: Value,
    ) -> Result<(Vec<Value>, Value), Refusal> {
        let listing = self
            .list(peer, grant.as_deref(), sources)
            .map_err(refusal)?;
        let items = listing
            .items
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| refusal(e.into()))?;
        let rest = serde_json::json!({ "roots": listing.roots, "warnings": listing.warnings });
        Ok((items, rest))
    }

    fn may_read(&self, peer: EndpointId, grant: Option<&str>) -> Result<(), Refusal> {
        self.readable(peer, grant).map(|_| ()).map_err(refusal)
    }

    fn open(
        &self,
        peer: EndpointId,
        grant: Option<&str>,
        want: &Want,
    ) -> Result<Box<dyn Source>, String> {
        let path: JsonPath = serde_json::from_value(want.path.clone())
            .map_err(|e| format!("malformed path: {e}"))?;
        let roots = self.readable(peer, grant).map_err(|e| e.to_string())?;
        let real = transfer::resolve_within(&roots, &path.0).map_err(|e| e.to_string())?;
        let out = Outgoing::open(&real, want.offset, want.prefix.as_deref())
            .map_err(|e| e.to_string())?;
        Ok(Box::new(Sending(out)))
    }

    fn call(&self, peer: EndpointId, request: Value) -> Result<Value, Refusal> {
        let call: Call = serde_json::from_value(request).map_err(|e| Refusal {
            code: "bad_request".into(),
            message: format!("malformed call: {e}"),
        })?;
        on_thread(|| self.answer(peer, call)).map_err(refusal)
    }
}

/// A file being sent, as the network reads it.
pub(crate) struct Sending(pub(crate) Outgoing);

impl Source for Sending {
    fn offset(&self) -> u64 {
        self.0.offset
    }

    fn size(&self) -> u64 {
        self.0.len
    }

    fn mode(&self) -> u32 {
        self.0.mode
    }

    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }

    fn finish(self: Box<Self>) -> [u8; 32] {
        self.0.finish()
    }
}

impl crate::network::NetService {
    fn transfer_call(&self, device: &str, call: &Call) -> Result<Value, Error> {
        let net = self.net();
        let dev = net
            .find(device)
            .map_err(|e| Error::Unreachable(e.to_string()))?;
        let body = serde_json::to_value(call)?;
        self.rt
            .block_on(net.transfer().call(&dev, body))
            .map_err(core_error)
    }
}

impl transfer::Transport for crate::network::NetService {
    fn device(&self, selector: &str) -> Result<(String, String), Error> {
        let d = self.net().devices().find(selector).map_err(|e| match e {
            sd_net::devices::DevicesError::NotFound(_) => Error::NotFound(e.to_string()),
            sd_net::devices::DevicesError::Ambiguous(..) => Error::Ambiguous(e.to_string()),
            other => Error::Invalid(other.to_string()),
        })?;
        Ok((d.id, d.name))
    }

    fn list(
        &self,
        device: &str,
        grant: Option<&str>,
        sources: &[JsonPath],
    ) -> Result<Listing, Error> {
        let net = self.net();
        let dev = net
            .find(device)
            .map_err(|e| Error::Unreachable(e.to_string()))?;
        let v = self
            .rt
            .block_on(net.transfer().list(
                &dev,
                grant.map(str::to_owned),
                serde_json::to_value(sources)?,
            ))
            .map_err(core_error)?;
        serde_json::from_value(v).map_err(|e| {
            Error::Invalid(format!(
                "{} sent a listing this build cannot read: {e}",
                dev.name
            ))
        })
    }

    fn fetch(
        &self,
        device: &str,
        grant: Option<&str>,
        wants: &[transfer::Want],
        sink: &mut dyn FnMut(transfer::Piece<'_>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        use sd_net::transfer::Received;
        let net = self.net();
        let dev = net
            .find(device)
            .map_err(|e| Error::Unreachable(e.to_string()))?;
        let wire = wants
            .iter()
            .map(|w| {
                Ok(Want {
                    path: serde_json::to_value(&w.path)?,
                    offset: w.offset,
                    prefix: w.prefix.clone(),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let mut failure: Option<Error> = None;
        let mut on = |r: Received<'_>| -> bool {
            let piece = match r {
                Received::Start {
                    index,
                    offset,
                    len,
                    mode,
                } => transfer::Piece::Start {
                    index,
                    offset,
                    len,
                    mode,
                },
                Received::Data(b) => transfer::Piece::Data(b),
                Received::End { hash } => transfer::Piece::End { hash },
                Received::Failed { index, reason } => transfer::Piece::Failed { index, reason },
            };
            match sink(piece) {
                Ok(()) => true,
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        };
        let r =
            self.rt.block_on(
                net.transfer()
                    .fetch(&dev, grant.map(str::to_owned), wire, &mut on),
            );
        if let Some(e) = failure {
            return Err(e);
        }
        r.map_err(core_error)
    }

    fn plan_push(&self, device: &str, push: &PushRequest) -> Result<Plan, Error> {
        self.grant(&push.token, device, &push.sources);
        let r = self.transfer_call(device, &Call::PlanPush { push: push.clone() });
        self.ungrant(&push.token);
        Ok(serde_json::from_value(r?)?)
    }

    fn push(&self, device: &str, push: &PushRequest) -> Result<RemoteJob, Error> {
        let v = self.transfer_call(device, &Call::Push { push: push.clone() })?;
        Ok(serde_json::from_value(v)?)
    }

    fn push_status(&self, device: &str, token: &str) -> Result<RemoteJob, Error> {
        let v = self.transfer_call(
            device,
            &Call::PushStatus {
                token: token.to_owned(),
            },
        )?;
        Ok(serde_json::from_value(v)?)
    }

    fn push_cancel(&self, device: &str, token: &str) -> Result<(), Error> {
        self.transfer_call(
            device,
            &Call::PushCancel {
                token: token.to_owned(),
            },
        )?;
        Ok(())
    }

    fn grant(&self, token: &str, device: &str, roots: &[JsonPath]) {
        let device = self
            .net()
            .devices()
            .find(device)
            .map(|d| d.id)
            .unwrap_or_else(|_| device.to_owned());
        let roots = roots
            .iter()
            .filter_map(|r| transfer::real_path(&r.0).ok())
            .collect();
        self.grants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.to_owned(), Grant { device, roots });
    }

    fn ungrant(&self, token: &str) {
        self.grants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token);
    }

    fn remove(
        &self,
        device: &str,
        grant: Option<&str>,
        items: &[Removal],
    ) -> Result<Removed, Error> {
        let v = self.transfer_call(
            device,
            &Call::Remove {
                grant: grant.map(str::to_owned),
                items: items.to_vec(),
            },
        )?;
        Ok(serde_json::from_value(v)?)
    }

    fn locate(&self, uuid: &uuid::Uuid) -> Vec<transfer::Holder> {
        let net = self.net();
        let devices = net.devices().list();
        let Ok(body) = serde_json::to_value(Call::Locate {
            content: uuid.to_string(),
        }) else {
            return Vec::new();
        };
        let answers = self.rt.block_on(async {
            let asks = devices.iter().map(|d| {
                let (net, body) = (&net, body.clone());
                async move {
                    let t = Instant::now();
                    let r =
                        tokio::time::timeout(Duration::from_secs(5), net.transfer().call(d, body))
                            .await;
                    (d, t.elapsed(), r)
                }
            });
            n0_future::join_all(asks).await
        });
        let mut holders: Vec<transfer::Holder> = answers
            .into_iter()
            .filter_map(|(d, rtt, r)| {
                let files: Vec<transfer::HeldFile> = serde_json::from_value(r.ok()?.ok()?).ok()?;
                (!files.is_empty()).then(|| transfer::Holder {
                    device: d.id.clone(),
                    device_name: d.name.clone(),
                    rtt,
                    files,
                })
            })
            .collect();
        holders.sort_by_key(|h| h.rtt);
        holders
    }

    fn tell_done(&self, device: &str, grant: Option<&str>, sources: &[JsonPath], summary: &Value) {
        let call = Call::Done {
            grant: grant.map(str::to_owned),
            sources: sources.to_vec(),
            summary: summary.clone(),
        };
        if let Err(e) = self.transfer_call(device, &call) {
            tracing::debug!(error = %e, "telling the sender a copy ended");
        }
    }
}
