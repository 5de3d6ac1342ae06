//! `volume`: mounted volumes and the ones the library tracks; a speed test.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use sd_api::{Request, Volumes};
use sd_core::names::JsonPath;

use crate::client::Client;
use crate::{absolute, output, print_json};

#[derive(Subcommand)]
pub enum VolumeCmd {
    /// Name, filesystem, capacity and free space, kind, storage class, fingerprint, online
    List {
        /// Include virtual filesystems (proc, tmpfs, overlay, …)
        #[arg(long)]
        all: bool,
    },
    /// Sequential write and read speed (writes a temporary file in PATH and removes it)
    SpeedTest {
        path: PathBuf,
        /// Size of the test file in MiB
        #[arg(long, default_value = "256")]
        size_mb: u64,
    },
}

pub fn run(client: &Client, lib: Option<String>, cmd: VolumeCmd, json: bool) -> Result<()> {
    match cmd {
        VolumeCmd::List { all } => list(client, lib, all, json),
        VolumeCmd::SpeedTest { path, size_mb } => speed_test(client, lib, path, size_mb, json),
    }
}

fn list(client: &Client, lib: Option<String>, all: bool, json: bool) -> Result<()> {
    let v: Volumes = client.call(&Request::VolumeList { library: lib })?;
    if json {
        return print_json(&v);
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    for m in v
        .mounted
        .iter()
        .filter(|m| all || m.kind != sd_core::volume::VolumeKind::Virtual)
    {
        let t = v
            .tracked
            .iter()
            .find(|t| Some(&t.fingerprint) == m.fingerprint.as_ref());
        rows.push(vec![
            m.name.clone(),
            output::shown(m.mount_point.0.as_os_str()),
            m.fs_type.clone(),
            format!("{:?}", m.kind).to_lowercase(),
            format!("{:?}", m.storage_class).to_lowercase(),
            output::bytes(m.capacity),
            output::bytes(m.free),
            "yes".into(),
            m.fingerprint.clone().unwrap_or_else(|| "-".into()),
            t.and_then(|t| t.read_mb_s.zip(t.write_mb_s))
                .map(|(r, w)| format!("{r:.0}/{w:.0} MB/s"))
                .unwrap_or_default(),
        ]);
    }
    for t in v.tracked.iter().filter(|t| !t.online) {
        rows.push(vec![
            t.name.clone(),
            t.mount_point
                .as_ref()
                .map(|p| format!("(was {})", output::shown(p.0.as_os_str())))
                .unwrap_or_default(),
            t.fs_type.clone(),
            t.kind.clone(),
            t.storage_class.clone(),
            output::bytes(t.capacity),
            output::bytes(t.free),
            format!("no, last seen {}", output::time_ms(t.last_seen)),
            t.fingerprint.clone(),
            t.read_mb_s
                .zip(t.write_mb_s)
                .map(|(r, w)| format!("{r:.0}/{w:.0} MB/s"))
                .unwrap_or_default(),
        ]);
    }
    output::table(
        &[
            "NAME",
            "MOUNTED AT",
            "FS",
            "KIND",
            "CLASS",
            "SIZE",
            "FREE",
            "ONLINE",
            "FINGERPRINT",
            "READ/WRITE",
        ],
        &rows,
    );
    Ok(())
}

fn speed_test(
    client: &Client,
    lib: Option<String>,
    path: PathBuf,
    size_mb: u64,
    json: bool,
) -> Result<()> {
    if !json {
        eprintln!(
            "writing and reading {size_mb} MiB in {} …",
            output::shown(path.as_os_str())
        );
    }
    let s: sd_core::volume::Speed = client.call(&Request::SpeedTest {
        library: lib,
        path: JsonPath(absolute(&path)?),
        size_mb,
    })?;
    if json {
        return print_json(&s);
    }
    println!(
        "{}: write {:.0} MB/s, read {:.0} MB/s ({} tested; the test file was removed)",
        output::shown(s.dir.0.as_os_str()),
        s.write_mb_s,
        s.read_mb_s,
        output::bytes(s.bytes)
    );
    Ok(())
}
