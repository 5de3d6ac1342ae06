//! The one handler: a [`Request`] in, its typed answer out. Picks the library, calls the domain
//! function, shapes the answer; the SQL and the rules live in sd-core.

use std::sync::Arc;

use sd_core::actions::Action;
use sd_core::control::Control;
use sd_core::library::Library;
use sd_core::location::{self, AddOptions};
use sd_core::node::Slot;
use sd_core::{Node, index, jobs, query};

use crate::response::*;
use crate::{ApiError, Request};

/// The name of the library created when a command needs one and there is none yet.
const FIRST_LIBRARY: &str = "My Library";

/// Answers one request against `node`. `events.subscribe` is a stream, not an answer: a
/// transport serves it with [`crate::subscribe`]; here it is a `bad_request`. `daemon.stop`
/// answers `{"stopping": true}`; stopping is the transport's to do once it has answered.
pub fn handle(node: &Node, req: Request) -> Result<Response, ApiError> {
    handle_with(node, None, req)
}

/// [`handle`], with the device's network node for the `network.*` and `remote` calls (without
/// one they answer `unreachable`: networking is off).
pub fn handle_with(
    node: &Node,
    net: Option<&dyn crate::Network>,
    req: Request,
) -> Result<Response, ApiError> {
    let network = || {
        net.ok_or_else(|| {
            ApiError::new(
                crate::ErrorCode::Unreachable,
                "networking is off in this daemon",
            )
        })
    };
    Ok(match req {
        Request::NetworkStatus => Response::NetworkStatus(network()?.status()),
        Request::NetworkPairGenerate => Response::PairCode(network()?.pair_generate()?),
        Request::NetworkPairWait => Response::Device(network()?.pair_wait()?),
        Request::NetworkPairCancel => {
            network()?.pair_cancel();
            Response::Stopping(Stopping { stopping: true })
        }
        Request::NetworkPairJoin { code, addr } => {
            Response::Device(network()?.pair_join(&code, addr.as_deref())?)
        }
        Request::NetworkDevices => Response::Devices(network()?.devices()),
        Request::NetworkRevoke { device } => Response::Revoked(network()?.revoke(&device)?),
        Request::NetworkPing { device } => Response::Pong(network()?.ping(&device)?),
        Request::NetworkRelaySet { url, ca_pem } => {
            Response::NetworkStatus(network()?.set_relay(url.as_deref(), ca_pem.as_deref())?)
        }
        Request::SpacedropSend { paths, to, addr } => {
            let paths: Vec<std::path::PathBuf> = paths.into_iter().map(|p| p.0).collect();
            Response::SpacedropSent(network()?.spacedrop().send(
                &paths,
                to.as_deref(),
                addr.as_deref(),
                &mut |_| {},
            )?)
        }
        Request::SpacedropList => Response::SpacedropOffers(network()?.spacedrop().list()),
        Request::SpacedropWait { after } => {
            Response::SpacedropNext(network()?.spacedrop().wait(after.unwrap_or(0)))
        }
        Request::SpacedropAccept { id } => {
            Response::SpacedropLanded(network()?.spacedrop().accept(id)?)
        }
        Request::SpacedropDecline { id } => {
            Response::SpacedropOffer(network()?.spacedrop().decline(id)?)
        }
        Request::SpacedropConfig { dir, receive } => {
            Response::SpacedropConfig(network()?.spacedrop().config(dir.as_deref(), receive)?)
        }
        Request::Remote { device, request } => {
            if !request.remote_readable() {
                return Err(ApiError::new(
                    crate::ErrorCode::Forbidden,
                    "a paired device can only read here: daemon status, libraries and locations",
                ));
            }
            Response::Remote(network()?.call(&device, &request)?)
        }
        Request::Status => Response::Status(Status {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").into(),
            data_dir: node.data_dir.clone().into(),
            device: node.device.clone(),
            libraries: node.slots().len(),
            uptime_ms: process_uptime_ms(),
        }),
        Request::Stop => Response::Stopping(Stopping { stopping: true }),
        Request::LibraryCreate {
            name,
            passphrase,
            remember,
        } => {
            let encrypt = passphrase.as_ref().map(|p| (p.expose(), remember));
            if passphrase.is_none() && remember {
                return Err(ApiError::new(
                    crate::ErrorCode::Invalid,
                    "`remember` keeps an encrypted library's key: give a passphrase too",
                ));
            }
            if let Some(p) = &passphrase {
                check_new_passphrase(p.expose())?;
            }
            Response::Library(library_info(node, &*node.create_library(&name, encrypt)?)?)
        }
        Request::LibraryUnlock {
            library,
            passphrase,
            remember,
        } => {
            let (lib, _) = node.unlock_library(&library, passphrase.expose(), remember)?;
            Response::Library(library_info(node, &lib)?)
        }
        Request::LibraryLock { library } => Response::LibraryLock(LockedNow {
            locked: node.lock_library(&library)?,
        }),
        Request::LibraryEncrypt {
            library,
            passphrase,
            remember,
        } => {
            check_new_passphrase(passphrase.expose())?;
            let (lib, _) = node.encrypt_library(&library, passphrase.expose(), remember)?;
            Response::Library(library_info(node, &lib)?)
        }
        Request::LibraryDecrypt {
            library,
            passphrase,
        } => Response::Library(library_info(
            node,
            &*node.decrypt_library(&library, passphrase.expose())?,
        )?),
        Request::LibraryPassphrase {
            library,
            passphrase,
            new_passphrase,
        } => {
            check_new_passphrase(new_passphrase.expose())?;
            Response::Library(library_info(
                node,
                &*node.change_passphrase(&library, passphrase.expose(), new_passphrase.expose())?,
            )?)
        }
        Request::LibraryList => Response::Libraries(library_list(node)),
        Request::LibraryInfo { library } => {
            Response::Library(library_info(node, &*node.library(library.as_deref())?)?)
        }
        Request::LibraryRename { library, new_name } => Response::Library(library_info(
            node,
            &*node.rename_library(&library, &new_name)?,
        )?),
        Request::LibraryDelete { library } => Response::LibraryDeleted(LibraryDeleted {
            deleted: node.delete_library(&library)?,
        }),
        Request::LibraryUse { library } => {
            Response::Library(library_info(node, &*node.use_library(&library)?)?)
        }
        Request::LocationAdd {
            library,
            path,
            name,
            mode,
            rules,
            watch,
        } => {
            // Check the folder before anything is created on its behalf (the default library).
            match std::fs::metadata(&path.0) {
                Ok(md) if md.is_dir() => {}
                Ok(_) => {
                    return Err(sd_core::Error::Invalid(format!(
                        "{} is not a folder; a location is a folder",
                        path.0.display()
                    ))
                    .into());
                }
                Err(x) => {
                    return Err(sd_core::Error::Invalid(format!(
                        "cannot add {} as a location: {x}",
                        path.0.display()
                    ))
                    .into());
                }
            }
            let (lib, created) = node.library_or_create(library.as_deref(), FIRST_LIBRARY)?;
            let created_library = created.then(|| lib.name());
            let opts = AddOptions {
                name,
                mode,
                rules,
                watch,
            };
            let (location, job_id) = node.add_location(&lib, &path.0, opts)?;
            // Link it to its volume now rather than at the watcher's next sync.
            if let Ok(volumes) = sd_core::volume::detect() {
                let _ = sd_core::volume::track(&lib, &volumes);
            }
            Response::Started(Started {
                library_id: lib.id.to_string(),
                location,
                job_id,
                new_job: true,
                created_library,
            })
        }
        Request::LocationList { library } => {
            Response::Locations(location::list(&*node.library(library.as_deref())?)?)
        }
        Request::LocationInfo { library, id } => {
            let lib = node.library(library.as_deref())?;
            let location = location::get(&lib, id)?;
            let counts = location::entry_counts(&lib, id)?;
            let last_job = location.last_job_id.and_then(|j| jobs::get(&lib, j).ok());
            Response::Location(LocationDetail {
                location,
                symlinks: counts.symlinks,
                entries: counts.entries,
                last_job,
                watcher: node.watch_state(lib.id, id),
            })
        }
        Request::LocationRescan { library, id } => {
            let lib = node.library(library.as_deref())?;
            let (job_id, new_job) = location::rescan(&lib, id)?;
            Response::Started(Started {
                library_id: lib.id.to_string(),
                location: location::get(&lib, id)?,
                job_id,
                new_job,
                created_library: None,
            })
        }
        Request::LocationUpdate {
            library,
            id,
            changes,
        } => {
            let lib = node.library(library.as_deref())?;
            let (location, rescan) = location::update(&lib, id, changes, &node.data_dir)?;
            let (rescan_job, rescan_after_job) = match rescan {
                Some(location::RulesRescan::Now { job }) => (Some(job), None),
                Some(location::RulesRescan::After { job }) => (None, Some(job)),
                None => (None, None),
            };
            Response::LocationUpdated(LocationUpdated {
                location,
                rescan_job,
                rescan_after_job,
            })
        }
        Request::LocationRemove { library, id } => {
            let lib = node.library(library.as_deref())?;
            Response::LocationRemoved(LocationRemoved {
                location_id: id,
                entries_removed: location::remove(&lib, id)?,
            })
        }
        Request::EntriesList {
            library,
            path,
            recursive,
            sort,
            limit,
            offset,
        } => {
            let lib = node.library(library.as_deref())?;
            let offset = offset.unwrap_or(0);
            Response::Listing(query::list(&lib, &path.0, recursive, sort, limit, offset)?)
        }
        Request::QuickScan { path, scope, rules } => Response::QuickScan(
            index::ephemeral::quick_scan(&path.0, scope, rules, &Control::default())?,
        ),
        Request::Dupes {
            library,
            path,
            min_size,
        } => Response::Dupes(match path {
            Some(p) => {
                // Not read from the library, but a library named that does not exist is
                // still an error, never silently ignored.
                if library.is_some() {
                    node.library(library.as_deref())?;
                }
                sd_core::dupes::in_path(&p.0, min_size, &Control::default())?
            }
            None => sd_core::dupes::in_library(&*node.library(library.as_deref())?, min_size)?,
        }),
        Request::FileInfo { library, path } => {
            let lib = node.library(library.as_deref())?;
            Response::FileInfo(Box::new(sd_core::dupes::file_info(&lib, &path.0)?))
        }
        Request::Verify { library, path } => {
            // Works on any file; the library, when there is one, says whether it matches.
            let lib = node.library(library.as_deref()).ok();
            Response::Verified(sd_core::dupes::verify(lib.as_deref(), &path.0)?)
        }
        Request::Thumbnail {
            library,
            path,
            size,
        } => Response::Thumbnail(sd_core::sidecar::thumbnail(
            &*node.library(library.as_deref())?,
            &path.0,
            size,
        )?),
        Request::SidecarStatus { library } => Response::SidecarStatus(Box::new(
            sd_core::sidecar::status(&*node.library(library.as_deref())?)?,
        )),
        Request::SidecarRegenerate { library, kind } => Response::Regenerated(
            sd_core::sidecar::regenerate(&node.library(library.as_deref())?, kind.as_deref())?,
        ),
        Request::Search { library, query } => {
            let lib = node.library(library.as_deref())?;
            Response::Search(sd_core::search::search(&lib, &query)?)
        }
        Request::TagList { library } => Response::Tags(sd_core::organise::list(
            &*node.library(library.as_deref())?,
        )?),
        Request::Preview { library, action } => {
            let lib = library_for(node, library.as_deref(), &action)?;
            Response::Preview(Box::new(sd_core::actions::preview(&lib, &action)?))
        }
        Request::Action { library, action } => {
            let lib = library_for(node, library.as_deref(), &action)?;
            let answer = sd_core::actions::commit(&lib, action)?;
            // The engine answers as JSON (the same value is its audit summary); read it once
            // here, so every client gets the typed answer.
            let committed: Committed = serde_json::from_value(answer).map_err(|e| {
                ApiError::internal(format!("the engine's answer to an action: {e}"))
            })?;
            Response::Committed(Box::new(committed))
        }
        Request::AuditList { library, limit } => {
            let lib = node.library(library.as_deref())?;
            Response::Audit(sd_core::audit::list(&lib, limit.unwrap_or(50))?)
        }
        Request::AuditVerify { library } => {
            Response::AuditVerified(sd_core::audit::verify(&*node.library(library.as_deref())?)?)
        }
        Request::VolumeList { library } => {
            let mounted = sd_core::volume::detect()?;
            let tracked = match node.library(library.as_deref()) {
                Ok(lib) => sd_core::volume::tracked(&lib)?,
                Err(_) => Vec::new(),
            };
            Response::Volumes(Volumes { mounted, tracked })
        }
        Request::SpeedTest {
            library,
            path,
            size_mb,
        } => {
            let speed = sd_core::volume::speed_test(&path.0, size_mb.clamp(1, 4096) << 20)?;
            if let Ok(lib) = node.library(library.as_deref())
                && let Ok(volumes) = sd_core::volume::detect()
                && let Some(fp) =
                    sd_core::volume::volume_of(&volumes, &speed.dir.0).and_then(|v| v.fingerprint)
            {
                sd_core::volume::record_speed(&lib, &fp, &speed)?;
            }
            Response::Speed(speed)
        }
        Request::JobList { library, limit } => {
            let lib = node.library(library.as_deref())?;
            Response::Jobs(jobs::list(&lib, limit.unwrap_or(50))?)
        }
        Request::JobInfo { library, id } => Response::Job(Box::new(jobs::get(
            &*node.library(library.as_deref())?,
            id,
        )?)),
        Request::JobPause { library, id } => Response::Job(Box::new(jobs::pause(
            &node.library(library.as_deref())?,
            id,
        )?)),
        Request::JobResume { library, id } => Response::Job(Box::new(jobs::resume(
            &node.library(library.as_deref())?,
            id,
        )?)),
        Request::JobCancel { library, id } => Response::Job(Box::new(jobs::cancel(
            &node.library(library.as_deref())?,
            id,
        )?)),
        Request::Subscribe { .. } => {
            return Err(ApiError::bad_request(
                "events.subscribe answers with a stream; this transport does not serve it",
            ));
        }
    })
}

/// The library an action is recorded in. A file operation on a fresh machine creates the
/// default library (its jobs and audit log live there), as `location add` does.
fn library_for(node: &Node, sel: Option<&str>, action: &Action) -> sd_core::Result<Arc<Library>> {
    // A transfer runs in the library whose location holds its end here (which then follows).
    let here = match (sel, action) {
        (
            None,
            Action::Transfer {
                pull: true, dest, ..
            }
            | Action::Fetch { dest, .. },
        ) => Some(dest),
        (None, Action::Transfer { sources, .. }) => sources.first(),
        _ => None,
    };
    if let Some(p) = here.and_then(|p| sd_core::transfer::real_path(&p.0).ok())
        && let Some(lib) = sd_core::transfer::library_holding(&node.libraries(), &p)
    {
        return Ok(lib);
    }
    let file_op = matches!(
        action,
        Action::Copy { .. }
            | Action::Move { .. }
            | Action::Rename { .. }
            | Action::Delete { .. }
            | Action::Transfer { .. }
            | Action::Fetch { .. }
    );
    if file_op {
        return node
            .library_or_create(sel, FIRST_LIBRARY)
            .map(|(lib, _)| lib);
    }
    node.library(sel)
}

fn library_list(node: &Node) -> Vec<LibrarySummary> {
    // The library a command naming none would act on: one rule, `Node::library`'s.
    let default = node.library(None).ok().map(|l| l.id);
    node.slots()
        .into_iter()
        .map(|s| match s {
            Slot::Open(l) => LibrarySummary {
                id: Some(l.id.to_string()),
                name: l.name(),
                path: l.dir().to_path_buf().into(),
                default: default == Some(l.id),
                status: LibraryStatus::Open,
                error: None,
                locations: location::list(&l).ok().map(|v| v.len()),
                encrypted: Some(l.is_encrypted()),
            },
            Slot::Locked(l) => LibrarySummary {
                id: Some(l.id.to_string()),
                name: l.name.clone(),
                path: l.dir.clone().into(),
                default: node.default_library() == Some(l.id),
                status: LibraryStatus::Unavailable(crate::ErrorCode::Locked),
                error: Some(
                    sd_core::Error::KeyNeeded {
                        name: l.name.clone(),
                    }
                    .to_string(),
                ),
                locations: None,
                encrypted: Some(true),
            },
            Slot::Unavailable(u) => LibrarySummary {
                id: None,
                name: u.name,
                path: u.dir.into(),
                default: false,
                status: LibraryStatus::Unavailable(crate::ErrorCode::from_core(&u.code)),
                error: Some(u.reason),
                locations: None,
                encrypted: None,
            },
        })
        .collect()
}

/// A new passphrase must not be empty (nor only spaces).
fn check_new_passphrase(p: &str) -> Result<(), ApiError> {
    if p.trim().is_empty() {
        return Err(ApiError::new(
            crate::ErrorCode::Invalid,
            "the passphrase is empty; choose one (a few words are easier to remember and harder to guess than a short password)",
        ));
    }
    Ok(())
}

fn library_info(node: &Node, lib: &Library) -> Result<LibraryInfo, ApiError> {
    let config = lib.config()?;
    let stats = sd_core::library::stats(lib)?;
    Ok(LibraryInfo {
        id: lib.id.to_string(),
        name: lib.name(),
        path: lib.dir().to_path_buf().into(),
        created_at: config.created_at,
        schema_version: stats.schema_version,
        config_version: config.version,
        locations: stats.locations as usize,
        entries: stats.entries,
        disk_bytes: lib.disk_bytes(),
        jobs_running: jobs::running_ids(lib).len(),
        contents: stats.contents,
        intelligence_queue: stats.intelligence_queue,
        encrypted: lib.is_encrypted(),
        key_file: (lib.is_encrypted() && node.keys().get(lib.id).is_some())
            .then(|| node.keys().path(lib.id).into()),
    })
}

/// How long this process (the daemon serving the API) has run: its start time in
/// `/proc/self/stat` against the system's uptime, 0 if either cannot be read.
fn process_uptime_ms() -> u64 {
    let read = || -> Option<u64> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Field 22, counted after the command name (which may hold spaces, inside parentheses).
        let start_ticks: u64 = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(19)?
            .parse()
            .ok()?;
        let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
        let uptime_s: f64 = uptime.split_whitespace().next()?.parse().ok()?;
        // SAFETY: sysconf only reads a configuration value; any name is valid to ask for.
        let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if ticks_per_s <= 0 {
            return None;
        }
        let started_ms = start_ticks * 1000 / ticks_per_s as u64;
        Some(((uptime_s * 1000.0) as u64).saturating_sub(started_ms))
    };
    read().unwrap_or(0)
}
