//! The trusted devices list (`devices.json` in the data folder): every device this one paired
//! with, until revoked. Written atomically (temp + fsync + rename); a device is looked up by
//! exact name or id, or by a unique id prefix / case-insensitive name.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A paired device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedDevice {
    /// Its network id (iroh endpoint id).
    pub id: String,
    /// Its device identity (the UUID its libraries record it by), as it told us when pairing.
    #[serde(default)]
    pub device_id: Option<String>,
    pub name: String,
    pub os: String,
    /// Unix milliseconds.
    pub paired_at: i64,
    pub last_seen: Option<i64>,
    /// Socket addresses it was last reached at.
    pub addrs: Vec<String>,
    /// The relay it said it is reachable through (when it has one configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<String>,
}

/// What a device says about itself when pairing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// The device identity (UUID) its libraries know it by.
    #[serde(default)]
    pub device_id: Option<String>,
    pub name: String,
    pub os: String,
    /// Where it listens (`IP:PORT`), so the other side can call it later.
    #[serde(default)]
    pub addrs: Vec<String>,
    /// The relay URL it is reachable through, when it has one configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<String>,
}

/// Why a device lookup or store update failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevicesError {
    #[error("no paired device named {0:?}; see `spacedrive network devices`")]
    NotFound(String),
    #[error("{0:?} could name more than one paired device: {1}; use the exact name or id")]
    Ambiguous(String, String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is damaged: {source}; move it away to start a new list (devices will have to pair again)"
    )]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The list, kept in memory and on disk.
#[derive(Debug)]
pub struct Devices {
    path: PathBuf,
    list: Mutex<Vec<TrustedDevice>>,
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Devices {
    /// Opens `<data_dir>/devices.json` (an absent file is an empty list).
    pub fn open(data_dir: &Path) -> Result<Devices, DevicesError> {
        let path = data_dir.join("devices.json");
        let list = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|source| DevicesError::Corrupt {
                path: path.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(DevicesError::Io { path, source }),
        };
        Ok(Devices {
            path,
            list: Mutex::new(list),
        })
    }

    pub fn list(&self) -> Vec<TrustedDevice> {
        self.list.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether `id` is a trusted device.
    pub fn is_trusted(&self, id: &str) -> bool {
        self.list
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|d| d.id == id)
    }

    /// Adds (or refreshes) a device. Its name is made unique in the list (`name (2)`).
    pub fn trust(
        &self,
        id: &str,
        info: &DeviceInfo,
        addrs: Vec<String>,
    ) -> Result<TrustedDevice, DevicesError> {
        let mut list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|d| d.id != id);
        let mut name = info.name.clone();
        let mut n = 2;
        while list
            .iter()
            .any(|d| d.name.to_lowercase() == name.to_lowercase())
        {
            name = format!("{} ({n})", info.name);
            n += 1;
        }
        let dev = TrustedDevice {
            id: id.to_owned(),
            device_id: info.device_id.clone(),
            name,
            os: info.os.clone(),
            paired_at: now_ms(),
            last_seen: Some(now_ms()),
            addrs,
            relay: info.relay.clone(),
        };
        list.push(dev.clone());
        self.save(&list)?;
        Ok(dev)
    }

    /// Removes a device; it is refused from its next connection on.
    pub fn revoke(&self, selector: &str) -> Result<TrustedDevice, DevicesError> {
        let dev = self.find(selector)?;
        let mut list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|d| d.id != dev.id);
        self.save(&list)?;
        Ok(dev)
    }

    /// Records that `id` was reached just now (at `addr`, if known). Not saved on every call:
    /// at most once a minute per device.
    pub fn seen(&self, id: &str, addr: Option<String>) {
        let mut list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        let Some(d) = list.iter_mut().find(|d| d.id == id) else {
            return;
        };
        let now = now_ms();
        let stale = d.last_seen.is_none_or(|t| now - t > 60_000);
        d.last_seen = Some(now);
        let moved = addr.as_ref().is_some_and(|a| !d.addrs.contains(a));
        if let Some(a) = addr.filter(|_| moved) {
            d.addrs.insert(0, a);
            d.addrs.truncate(4);
        }
        if stale || moved {
            let snapshot = list.clone();
            if let Err(e) = self.save(&snapshot) {
                tracing::warn!(error = %e, "saving the devices list");
            }
        }
    }

    /// The device `selector` names: exact name or id first, then a unique case-insensitive
    /// name or id prefix.
    pub fn find(&self, selector: &str) -> Result<TrustedDevice, DevicesError> {
        let list = self.list();
        if let Some(d) = list.iter().find(|d| d.name == selector || d.id == selector) {
            return Ok(d.clone());
        }
        let lower = selector.to_lowercase();
        let loose: Vec<&TrustedDevice> = list
            .iter()
            .filter(|d| {
                d.name.to_lowercase() == lower
                    || (!selector.is_empty() && d.id.starts_with(selector))
            })
            .collect();
        match loose.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(DevicesError::NotFound(selector.to_owned())),
            many => Err(DevicesError::Ambiguous(
                selector.to_owned(),
                many.iter()
                    .map(|d| format!("{:?} ({})", d.name, d.id))
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        }
    }

    fn save(&self, list: &[TrustedDevice]) -> Result<(), DevicesError> {
        let io = |source| DevicesError::Io {
            path: self.path.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(list).map_err(|e| io(e.into()))?;
        let tmp = self.path.with_extension("json.tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_find_revoke_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let d = Devices::open(dir.path()).unwrap();
        let info = DeviceInfo {
            device_id: None,
            name: "laptop".into(),
            os: "linux".into(),
            addrs: vec![],
            relay: None,
        };
        d.trust("abc123", &info, vec![]).unwrap();
        let second = d.trust("abd999", &info, vec![]).unwrap();
        assert_eq!(second.name, "laptop (2)", "names stay unique");
        let d = Devices::open(dir.path()).unwrap();
        assert_eq!(d.find("laptop").unwrap().id, "abc123");
        assert_eq!(d.find("LAPTOP (2)").unwrap().id, "abd999");
        assert_eq!(d.find("abc").unwrap().id, "abc123");
        assert!(matches!(d.find("ab"), Err(DevicesError::Ambiguous(..))));
        assert!(matches!(d.find("nope"), Err(DevicesError::NotFound(_))));
        d.revoke("laptop").unwrap();
        assert!(!Devices::open(dir.path()).unwrap().is_trusted("abc123"));
        std::fs::write(dir.path().join("devices.json"), b"{oops").unwrap();
        assert!(matches!(
            Devices::open(dir.path()),
            Err(DevicesError::Corrupt { .. })
        ));
    }
}
