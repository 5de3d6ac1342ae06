//! This device's identity: a stable id created on first run, plus a name and a hardware summary.

use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Error, Result, fsutil};

/// Who this device is. Stored in `<data dir>/device.json`; the id never changes once created.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DeviceIdentity {
    pub id: Uuid,
    pub name: String,
    pub os: String,
    pub hardware: String,
    pub created_at: i64,
}

impl DeviceIdentity {
    /// Loads the identity, creating it (atomically) on first run.
    pub fn load_or_create(data_dir: &Path) -> Result<DeviceIdentity> {
        let path = data_dir.join("device.json");
        match std::fs::read(&path) {
            Ok(bytes) => {
                let mut id: DeviceIdentity =
                    serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                // Name and hardware can change (renamed host, new RAM); the id never does.
                let fresh = Self::describe(id.id, id.created_at);
                if fresh.name != id.name || fresh.hardware != id.hardware || fresh.os != id.os {
                    id = fresh;
                    fsutil::write_atomic(&path, &serde_json::to_vec_pretty(&id)?)?;
                }
                Ok(id)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = Self::describe(Uuid::new_v4(), crate::store::now_ms());
                fsutil::write_atomic(&path, &serde_json::to_vec_pretty(&id)?)?;
                Ok(id)
            }
            Err(e) => Err(Error::io(path, e)),
        }
    }

    fn describe(id: Uuid, created_at: i64) -> DeviceIdentity {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_owned())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "this device".to_owned());
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let mem_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            })
            .map(|kib| (kib as f64 / 1024.0 / 1024.0).round() as u64)
            .unwrap_or(0);
        DeviceIdentity {
            id,
            name,
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            hardware: format!("{cpus} CPUs, {mem_gib} GiB RAM"),
            created_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_created_once_and_stays_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = DeviceIdentity::load_or_create(dir.path()).unwrap();
        let b = DeviceIdentity::load_or_create(dir.path()).unwrap();
        assert_eq!(a.id, b.id);
        assert!(!a.name.is_empty());
    }
}
