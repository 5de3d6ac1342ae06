//! Volumes: the mounted filesystems, what they are, and a fingerprint that survives remounting.
//!
//! Mounts come from `/proc/self/mountinfo`, sizes from `statvfs`. The fingerprint is the
//! filesystem's own UUID (or serial number) read from its superblock on the source device (or,
//! where the device cannot be opened, the UUID-derived `f_fsid` of ext4 and btrfs) —
//! never the mount point, never a marker file written into the volume — so a drive that comes
//! back at another mount point is recognised. Filesystems without one (tmpfs, overlay, proc, …)
//! get none and are classified `virtual`.

use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::names::JsonPath;
use crate::{Error, Result};

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone)]
pub struct Mount {
    pub mount_id: u64,
    pub major: u32,
    pub minor: u32,
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub source: String,
    pub read_only: bool,
}

/// What kind of storage a volume is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum VolumeKind {
    /// Holds the operating system (`/`, `/boot`, `/usr`, …).
    System,
    /// A local disk or image mounted elsewhere.
    External,
    /// The kernel marks the device removable (USB sticks, SD cards).
    Removable,
    Network,
    /// No backing device (tmpfs, overlay, proc, …).
    Virtual,
}

/// Physical storage class, for the copy strategy: `hot` (SSD, NVMe, RAM), `cold` (spinning
/// disks, network).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum StorageClass {
    Hot,
    Cold,
}

/// A mounted volume.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Volume {
    pub name: String,
    pub mount_point: JsonPath,
    pub fs_type: String,
    pub source: String,
    pub kind: VolumeKind,
    pub storage_class: StorageClass,
    pub capacity: u64,
    pub free: u64,
    pub read_only: bool,
    /// `<fs type>:<uuid or serial>`, from the filesystem itself; `None` for virtual filesystems
    /// and devices that cannot be read.
    pub fingerprint: Option<String>,
}

fn unescape(s: &str) -> PathBuf {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(Ok(v)) = b
                .get(i + 1..i + 4)
                .map(|o| u8::from_str_radix(&String::from_utf8_lossy(o), 8))
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}

/// Parses mountinfo text.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            let (major, minor) = l.get(2)?.split_once(':')?;
            Some(Mount {
                mount_id: l.first()?.parse().ok()?,
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                mount_point: unescape(l.get(4)?),
                read_only: l.get(5).is_some_and(|o| o.split(',').any(|x| x == "ro")),
                fs_type: r.first()?.to_string(),
                source: r.get(1).map(|s| s.to_string()).unwrap_or_default(),
            })
        })
        .collect()
}

/// The mounts of this process's mount namespace.
pub fn mounts() -> Result<Vec<Mount>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("/proc/self/mountinfo", e))?;
    Ok(parse_mountinfo(&text))
}

/// Filesystems with no device of their own besides the kernel interfaces of [`PSEUDO`]: in
/// memory, layered or automounted. Both together are the `virtual` volume kind.
const IN_MEMORY: &[&str] = &["tmpfs", "ramfs", "overlay", "squashfs", "autofs"];
/// Kernel interface filesystems: their "files" are live views of the kernel (reading some blocks
/// or has side effects, sizes are made up, links loop), so they are never locations.
const PSEUDO: &[&str] = &[
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "mqueue",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "fusectl",
    "configfs",
    "hugetlbfs",
    "nsfs",
    "binfmt_misc",
    "efivarfs",
    "rpc_pipefs",
    "nfsd",
    "selinuxfs",
    "fuse.lxcfs",
];
/// Folders that hold kernel interfaces whatever is mounted there (`/dev` is often a plain tmpfs
/// in containers).
const PSEUDO_DIRS: &[&str] = &["/proc", "/sys", "/dev"];

/// Why `path` can never be a location, if it cannot: it is (or is inside) a kernel interface
/// filesystem such as /proc, /sys, /dev or a cgroup tree.
pub fn refused_location(path: &Path) -> Option<String> {
    refused_among(path, &mounts().unwrap_or_default())
}

/// [`refused_location`] against mounts already read (a caller checking many locations reads
/// `/proc/self/mountinfo` once).
pub fn refused_among(path: &Path, mounts: &[Mount]) -> Option<String> {
    if let Some(d) = PSEUDO_DIRS.iter().find(|d| path.starts_with(d)) {
        return Some(format!(
            "{} is inside {d}, a kernel interface, not files; Spacedrive does not index it",
            path.display()
        ));
    }
    let m = mounts
        .iter()
        .filter(|m| path.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.as_os_str().len())?;
    PSEUDO.contains(&m.fs_type.as_str()).then(|| {
        format!(
            "{} is on a {} filesystem (mounted at {}), a kernel interface, not files; Spacedrive does not index it",
            path.display(),
            m.fs_type,
            m.mount_point.display()
        )
    })
}

const NETWORK: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "fuse.sshfs",
    "9p",
    "afs",
    "ceph",
    "glusterfs",
    "davfs",
];
const SYSTEM_MOUNTS: &[&str] = &[
    "/",
    "/boot",
    "/boot/efi",
    "/usr",
    "/var",
    "/home",
    "/opt",
    "/nix",
];

/// Reads the filesystem UUID (or serial) from the superblock of `device`.
pub fn fs_fingerprint(device: &Path, fs_type: &str) -> Option<String> {
    let mut f = std::fs::File::open(device).ok()?;
    let mut buf = vec![0u8; 0x10100];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    let b = &buf[..n];
    let uuid = |off: usize| -> Option<String> {
        let u = b.get(off..off + 16)?;
        if u.iter().all(|x| *x == 0) {
            return None;
        }
        Some(uuid::Uuid::from_slice(u).ok()?.to_string())
    };
    let hex_le = |off: usize, len: usize| -> Option<String> {
        let s = b.get(off..off + len)?;
        if s.iter().all(|x| *x == 0) {
            return None;
        }
        Some(s.iter().rev().map(|x| format!("{x:02X}")).collect())
    };
    let id = match fs_type {
        // ext2/3/4: superblock at 1024, magic 0xEF53 at +56, UUID at +104.
        "ext2" | "ext3" | "ext4" if b.get(1024 + 56..1024 + 58) == Some(&[0x53, 0xEF]) => {
            uuid(1024 + 104)
        }
        "xfs" if b.get(0..4) == Some(b"XFSB") => uuid(32),
        "btrfs" if b.get(0x10040..0x10048) == Some(b"_BHRfS_M") => uuid(0x10020),
        "vfat" | "msdos" if b.get(0x52..0x57) == Some(b"FAT32") => hex_le(0x43, 4),
        "vfat" | "msdos" => hex_le(0x27, 4),
        "exfat" if b.get(3..11) == Some(b"EXFAT   ") => hex_le(100, 4),
        "ntfs" | "ntfs3" | "fuseblk" if b.get(3..11) == Some(b"NTFS    ") => hex_le(0x48, 8),
        _ => None,
    }?;
    Some(format!("{fs_type}:{id}"))
}

fn sys_block_flag(major: u32, minor: u32, file: &str) -> Option<bool> {
    // /sys/dev/block/M:m is the partition (or disk); the flags live on the whole disk.
    let base = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    for p in [
        base.join(file),
        base.join("..").join(file),
        base.join("queue").join(file.trim_start_matches("queue/")),
    ] {
        if let Ok(v) = std::fs::read_to_string(&p) {
            return Some(v.trim() == "1");
        }
    }
    None
}

/// Where the device cannot be opened (containers often forbid it), ext2/3/4 and btrfs still
/// expose their UUID: the kernel derives `statfs.f_fsid` from it (the UUID's two halves XORed;
/// btrfs mixes in the root id), so it is as stable across mounts as the UUID itself.
fn fsid_fingerprint(mount_point: &Path, fs_type: &str) -> Option<String> {
    if !matches!(fs_type, "ext2" | "ext3" | "ext4" | "btrfs") {
        return None;
    }
    let c = CString::new(mount_point.as_os_str().as_bytes()).ok()?;
    // SAFETY: `statvfs` is plain old data, for which all-zero bytes are a valid value.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path alive for the call; `s` is a valid, writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 || s.f_fsid == 0 {
        return None;
    }
    Some(format!("{fs_type}:fsid-{:016x}", s.f_fsid))
}

/// Bytes an unprivileged user can still write on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    statvfs(path).map(|(_, free)| free)
}

fn statvfs(path: &Path) -> Option<(u64, u64)> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `statvfs` is plain old data, for which all-zero bytes are a valid value.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path alive for the call; `s` is a valid, writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    let frsize = s.f_frsize as u64;
    Some((s.f_blocks as u64 * frsize, s.f_bavail as u64 * frsize))
}

fn describe(m: &Mount) -> Volume {
    let fs = m.fs_type.as_str();
    let is_virtual = PSEUDO.contains(&fs) || IN_MEMORY.contains(&fs) || !m.source.starts_with('/');
    let is_network = NETWORK.contains(&m.fs_type.as_str())
        || m.source.starts_with("//")
        || m.source.contains(":/");
    // Read every time: mount ids and loop devices are reused, so nothing about a mount says it
    // still holds the filesystem seen before (a superblock read per block mount is cheap).
    let fingerprint = if is_virtual || is_network {
        None
    } else {
        fs_fingerprint(Path::new(&m.source), &m.fs_type)
            .or_else(|| fsid_fingerprint(&m.mount_point, &m.fs_type))
    };
    let removable = sys_block_flag(m.major, m.minor, "removable").unwrap_or(false);
    let rotational = sys_block_flag(m.major, m.minor, "queue/rotational").unwrap_or(false);
    let mp = m.mount_point.to_string_lossy();
    let kind = if is_network {
        VolumeKind::Network
    } else if is_virtual {
        VolumeKind::Virtual
    } else if removable || mp.starts_with("/media/") || mp.starts_with("/run/media/") {
        VolumeKind::Removable
    } else if SYSTEM_MOUNTS.contains(&mp.as_ref()) {
        VolumeKind::System
    } else {
        VolumeKind::External
    };
    let (capacity, free) = statvfs(&m.mount_point).unwrap_or((0, 0));
    let name = m
        .mount_point
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| {
            if mp == "/" {
                "System".into()
            } else {
                mp.to_string()
            }
        });
    Volume {
        name,
        mount_point: JsonPath(m.mount_point.clone()),
        fs_type: m.fs_type.clone(),
        source: m.source.clone(),
        kind,
        storage_class: if is_network || rotational {
            StorageClass::Cold
        } else {
            StorageClass::Hot
        },
        capacity,
        free,
        read_only: m.read_only,
        fingerprint,
    }
}

/// Every mounted volume.
pub fn detect() -> Result<Vec<Volume>> {
    Ok(volumes_of(&mounts()?))
}

/// The volumes of mounts already read.
pub fn volumes_of(mounts: &[Mount]) -> Vec<Volume> {
    mounts.iter().map(describe).collect()
}

/// The volume holding `path` (the mount with the longest mount point that contains it).
pub fn volume_of(volumes: &[Volume], path: &Path) -> Option<Volume> {
    volumes
        .iter()
        .filter(|v| path.starts_with(&v.mount_point.0))
        .max_by_key(|v| v.mount_point.0.as_os_str().len())
        .cloned()
}

/// A volume as the library remembers it (also while it is not mounted).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Tracked {
    pub id: i64,
    pub fingerprint: String,
    pub name: String,
    pub fs_type: String,
    pub kind: String,
    pub storage_class: String,
    pub capacity: u64,
    pub free: u64,
    /// Where it was last mounted.
    pub mount_point: Option<JsonPath>,
    pub online: bool,
    pub last_seen: i64,
    pub read_mb_s: Option<f64>,
    pub write_mb_s: Option<f64>,
    /// Locations on this volume.
    pub locations: u64,
}

/// The volumes the library knows.
pub fn tracked(lib: &crate::library::Library) -> Result<Vec<Tracked>> {
    let conn = lib.reader()?;
    let mut q = conn.prepare(
        "SELECT v.id, fingerprint, v.name, fs_type, kind, storage_class, capacity, free, mount_point, v.online, last_seen,
                read_mb_s, write_mb_s, (SELECT count(*) FROM locations l WHERE l.volume_id = v.id)
           FROM volumes v ORDER BY v.id",
    )?;
    let rows = q.query_map([], |r| {
        Ok(Tracked {
            id: r.get(0)?,
            fingerprint: r.get(1)?,
            name: r.get(2)?,
            fs_type: r.get(3)?,
            kind: r.get(4)?,
            storage_class: r.get(5)?,
            capacity: r.get::<_, i64>(6)? as u64,
            free: r.get::<_, i64>(7)? as u64,
            mount_point: crate::names::opt_from_sql(r.get_ref(8)?)?
                .map(|p| JsonPath(PathBuf::from(p))),
            online: r.get(9)?,
            last_seen: r.get(10)?,
            read_mb_s: r.get(11)?,
            write_mb_s: r.get(12)?,
            locations: r.get::<_, i64>(13)? as u64,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Brings the library's volumes and locations in line with what is mounted now: volumes seen
/// are online (with their current mount point), the others offline; each location is linked to
/// its volume, follows it to a new mount point, and is online exactly when its folder is there.
/// Returns the locations that just came back (they need a rescan).
pub fn track(lib: &crate::library::Library, volumes: &[Volume]) -> Result<Vec<i64>> {
    use crate::names;
    use rusqlite::params;
    let locs = crate::location::row::list(lib)?;
    let vols: Vec<Volume> = volumes.to_vec();
    lib.writer.transaction(move |tx| {
        let now = crate::store::now_ms();
        let mut seen = Vec::new();
        for v in vols.iter().filter(|v| v.fingerprint.is_some()) {
            let fp = v.fingerprint.clone().unwrap_or_default();
            // Only volumes that hold a location, or were tracked before, are remembered.
            // A location not yet linked to a volume, whose folder is here, links this one. (A
            // linked location whose volume is away must not: its path would fall under `/`.)
            let holds = locs.iter().any(|l| {
                l.volume_id.is_none()
                    && l.path.0.is_dir()
                    && volume_of(&vols, &l.path.0).is_some_and(|lv| lv.fingerprint.as_deref() == Some(&fp))
            });
            let known: Option<(bool, i64, Option<rusqlite::types::Value>)> = tx
                .query_row("SELECT online, last_seen, mount_point FROM volumes WHERE fingerprint = ?1", [&fp], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .ok();
            // Unchanged and refreshed within the minute: no write (this runs every second).
            let mount_now = names::to_value(v.mount_point.0.as_os_str());
            if let Some((true, last_seen, Some(mp))) = &known
                && *mp == mount_now
                && now - last_seen < 60_000
            {
                seen.push(fp);
                continue;
            }
            if holds || known.is_some() {
                tx.execute(
                    "INSERT INTO volumes (fingerprint, name, fs_type, kind, storage_class, capacity, free, mount_point, online, last_seen)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, ?9)
                     ON CONFLICT(fingerprint) DO UPDATE SET name = ?2, fs_type = ?3, kind = ?4, storage_class = ?5,
                        capacity = ?6, free = ?7, mount_point = ?8, online = 1, last_seen = ?9",
                    params![
                        fp,
                        v.name,
                        v.fs_type,
                        serde_json::to_value(v.kind)?.as_str().unwrap_or(""),
                        serde_json::to_value(v.storage_class)?.as_str().unwrap_or(""),
                        v.capacity as i64,
                        v.free as i64,
                        names::to_sql(v.mount_point.0.as_os_str()),
                        now
                    ],
                )?;
                seen.push(fp);
            }
        }
        let placeholders = seen.iter().map(|s| format!("'{}'", s.replace('\'', "''"))).collect::<Vec<_>>().join(",");
        tx.execute(&format!("UPDATE volumes SET online = 0 WHERE online = 1 AND fingerprint NOT IN ({placeholders})"), [])?;
        let mut back = Vec::new();
        for loc in &locs {
            let (mut volume_id, rel, was_online): (Option<i64>, Option<PathBuf>, bool) = tx.query_row(
                "SELECT volume_id, volume_path, online FROM locations WHERE id = ?1",
                [loc.id],
                |r| Ok((r.get(0)?, names::opt_from_sql(r.get_ref(1)?)?.map(PathBuf::from), r.get(2)?)),
            )?;
            let mut rel = rel;
            if volume_id.is_none()
                && loc.path.0.is_dir()
                && let Some(v) = volume_of(&vols, &loc.path.0)
                && let Some(fp) = &v.fingerprint
            {
                let id: Option<i64> = tx
                    .query_row("SELECT id FROM volumes WHERE fingerprint = ?1", [fp], |r| r.get(0))
                    .ok();
                if let Some(id) = id {
                    let r = loc.path.0.strip_prefix(&v.mount_point.0).unwrap_or(Path::new("")).to_path_buf();
                    tx.execute(
                        "UPDATE locations SET volume_id = ?2, volume_path = ?3 WHERE id = ?1",
                        params![loc.id, id, names::to_sql(r.as_os_str())],
                    )?;
                    volume_id = Some(id);
                    rel = Some(r);
                }
            }
            let mut path = loc.path.0.clone();
            let (online, volume_here) = match volume_id {
                Some(vid) => {
                    let fp: String = tx.query_row("SELECT fingerprint FROM volumes WHERE id = ?1", [vid], |r| r.get(0))?;
                    match vols.iter().find(|v| v.fingerprint.as_deref() == Some(fp.as_str())) {
                        Some(v) => {
                            let expected = v.mount_point.0.join(rel.clone().unwrap_or_default());
                            if expected != path {
                                tracing::info!(location = loc.id, "volume moved; following it");
                                tx.execute(
                                    "UPDATE locations SET path = ?2 WHERE id = ?1",
                                    params![loc.id, names::to_sql(expected.as_os_str())],
                                )?;
                                path = expected;
                            }
                            (path.is_dir(), true)
                        }
                        None => (false, false),
                    }
                }
                None => (path.is_dir(), true),
            };
            if !online && volume_here {
                // The drive is here but the folder is not: renamed in place? Found by the
                // identity of its root (same filesystem, same inode) among its old siblings.
                let inode: Option<i64> = tx
                    .query_row("SELECT inode FROM entries WHERE id = ?1", [loc.root_entry_id], |r| r.get(0))
                    .ok();
                if let Some(found) = inode.and_then(|i| renamed_root(&path, loc.dev, i as u64)) {
                    tracing::info!(location = loc.id, "location folder renamed; following it");
                    crate::location::row::set_path(tx, loc.id, loc.root_entry_id, &found, loc.dev, inode.unwrap_or(0) as u64)?;
                    back.push(loc.id); // online again, rescanned at its new path
                    continue;
                }
            }
            if online != was_online {
                tx.execute("UPDATE locations SET online = ?2 WHERE id = ?1", params![loc.id, online])?;
                if online {
                    back.push(loc.id);
                }
            }
        }
        Ok(back)
    })
}

/// A directory beside `old` (which is gone) that is the same directory: same filesystem, same
/// inode. Only the old parent is read, so a folder renamed in place is found; one moved further
/// away needs `location set ID --path`.
fn renamed_root(old: &Path, dev: u64, inode: u64) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let parent = old.parent()?;
    std::fs::read_dir(parent).ok()?.flatten().find_map(|e| {
        let md = std::fs::symlink_metadata(e.path()).ok()?;
        (md.is_dir() && md.ino() == inode && md.dev() == dev).then(|| e.path())
    })
}

/// Records a speed test's result on the tracked volume with this fingerprint.
pub fn record_speed(lib: &crate::library::Library, fingerprint: &str, s: &Speed) -> Result<()> {
    let (fp, r, w) = (fingerprint.to_owned(), s.read_mb_s, s.write_mb_s);
    lib.writer.run(move |c| {
        c.execute(
            "UPDATE volumes SET read_mb_s = ?2, write_mb_s = ?3 WHERE fingerprint = ?1",
            rusqlite::params![fp, r, w],
        )?;
        Ok(())
    })
}

/// Sequential write and read throughput of the volume holding `dir`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Speed {
    pub dir: JsonPath,
    pub bytes: u64,
    pub write_mb_s: f64,
    pub read_mb_s: f64,
}

/// Writes `bytes` to a temporary file in `dir` (fsync'd), drops it from the page cache, reads it
/// back, and removes it. The only file it creates is that temporary one.
pub fn speed_test(dir: &Path, bytes: u64) -> Result<Speed> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let dir = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".spacedrive-speed-test-")
        .tempfile_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    let path = tmp.path().to_path_buf();
    let chunk: Vec<u8> = (0..(1 << 20))
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let t = std::time::Instant::now();
    let mut f = tmp.as_file();
    let mut written = 0u64;
    while written < bytes {
        let n = chunk.len().min((bytes - written) as usize);
        f.write_all(&chunk[..n]).map_err(|e| Error::io(&path, e))?;
        written += n as u64;
    }
    f.sync_all().map_err(|e| Error::io(&path, e))?;
    let write_s = t.elapsed().as_secs_f64();
    // SAFETY: `f` is open for the call; the advice only drops cached pages of this file.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    let mut r = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
    let mut buf = vec![0u8; 1 << 20];
    let t = std::time::Instant::now();
    let mut read = 0u64;
    loop {
        let n = r.read(&mut buf).map_err(|e| Error::io(&path, e))?;
        if n == 0 {
            break;
        }
        read += n as u64;
    }
    let read_s = t.elapsed().as_secs_f64();
    drop(tmp); // removes the file
    let mb = written as f64 / 1e6;
    Ok(Speed {
        dir: JsonPath(dir),
        bytes: read,
        write_mb_s: mb / write_s.max(1e-9),
        read_mb_s: mb / read_s.max(1e-9),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_parse_with_escapes() {
        let text = "36 35 98:0 /mnt1 /mnt/my\\040drive rw,noatime master:1 - ext4 /dev/sdb1 rw,errors=continue\n\
                    22 27 0:21 / /proc rw,relatime - proc proc rw\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].mount_point, PathBuf::from("/mnt/my drive"));
        assert_eq!((m[0].major, m[0].minor), (98, 0));
        assert_eq!(m[0].fs_type, "ext4");
        assert_eq!(m[0].source, "/dev/sdb1");
        assert_eq!(m[1].fs_type, "proc");
        assert_eq!(describe(&m[1]).kind, VolumeKind::Virtual);
    }

    #[test]
    fn speed_test_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let s = speed_test(dir.path(), 4 << 20).unwrap();
        assert_eq!(s.bytes, 4 << 20);
        assert!(s.write_mb_s > 0.0 && s.read_mb_s > 0.0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
