//! Volumes: real mounts, a loop-mounted filesystem going offline and coming back elsewhere.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::{Mounted, Sd, json_path, wait_until};

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn volume_list_shows_the_machines_mounts() {
    let sd = Sd::new();
    let v = sd.json(["volume", "list", "--all"]);
    let listed: Vec<PathBuf> = v["mounted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| json_path(&m["mount_point"]))
        .collect();
    // Independent reading of the mount table.
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for line in table.lines() {
        let mp = line.split(' ').nth(4).unwrap().replace("\\040", " ");
        assert!(
            listed.contains(&PathBuf::from(&mp)),
            "{mp} missing from volume list"
        );
    }
    let root = v["mounted"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mount_point"] == "/")
        .expect("/ is listed");
    assert!(root["capacity"].as_u64().unwrap() > 0);
    assert!(root["free"].as_u64().unwrap() <= root["capacity"].as_u64().unwrap());
    assert_eq!(root["kind"], "system");
    let proc_fs = v["mounted"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["fs_type"] == "proc")
        .unwrap();
    assert_eq!(proc_fs["kind"], "virtual");
    assert!(proc_fs["fingerprint"].is_null());

    let dir = sd.tmp.path().join("speed");
    std::fs::create_dir_all(&dir).unwrap();
    let s = sd.json([
        "volume".as_ref(),
        "speed-test".as_ref(),
        dir.as_os_str(),
        "--size-mb".as_ref(),
        "8".as_ref(),
    ]);
    assert_eq!(s["bytes"], 8 << 20);
    assert!(s["write_mb_s"].as_f64().unwrap() > 0.0 && s["read_mb_s"].as_f64().unwrap() > 0.0);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "the speed test removes its file"
    );
}

#[test]
fn a_volume_goes_offline_and_comes_back_elsewhere() {
    let sd = Sd::new();
    let image = sd.tmp.path().join("usb.img");
    let made = Command::new("truncate")
        .args(["-s", "32M"])
        .arg(&image)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&image)
            .status()
            .is_ok_and(|s| s.success());
    let first = sd.tmp.path().join("mnt-a");
    let Some(mut mounted) = made
        .then(|| Mounted::mount(&["-o".as_ref(), "loop".as_ref(), image.as_os_str()], &first))
        .flatten()
    else {
        eprintln!("skipped: this machine does not allow loop-mounting a filesystem");
        return;
    };
    std::fs::create_dir_all(first.join("data/photos")).unwrap();
    std::fs::write(
        first.join("data/photos/beach.jpg"),
        b"\xff\xd8\xff\xe0 beach",
    )
    .unwrap();
    std::fs::write(first.join("data/notes.txt"), b"notes").unwrap();
    sd.ok(["library", "create", "V"]);
    sd.json([
        "location".as_ref(),
        "add".as_ref(),
        first.join("data").as_os_str(),
    ]);
    let fingerprint = {
        let v = sd.json(["volume", "list"]);
        let m = v["mounted"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| json_path(&m["mount_point"]) == first)
            .unwrap()
            .clone();
        assert_eq!(m["kind"], "external");
        let fp = m["fingerprint"]
            .as_str()
            .expect("an ext4 image has a fingerprint")
            .to_owned();
        assert!(fp.starts_with("ext4:"));
        assert_eq!(v["tracked"][0]["fingerprint"], fp.as_str());
        fp
    };
    let id_before = sd.json(["search", "beach"])["hits"][0]["id"].clone();

    // Unplugged: the location goes offline, its files stay searchable.
    mounted.unmount();
    wait_until("the location to go offline", LIMIT, || {
        sd.json(["location", "info", "1"])["online"] == false
    });
    let v = sd.json(["volume", "list"]);
    assert_eq!(v["tracked"][0]["online"], false);
    let hit = sd.json(["search", "beach"]);
    assert_eq!(hit["total"], 1, "offline files stay searchable");
    let err = sd.fails(["location", "rescan", "1"]);
    assert!(
        err["message"].as_str().unwrap().contains("offline"),
        "{err}"
    );
    assert_eq!(
        sd.json(["location", "info", "1"])["files"],
        2,
        "nothing was deleted"
    );

    // Back, at another mount point: matched by fingerprint, followed, rescanned.
    let second = sd.tmp.path().join("mnt-b");
    let _mounted = Mounted::mount(
        &["-o".as_ref(), "loop".as_ref(), image.as_os_str()],
        &second,
    )
    .expect("remount");
    std::fs::write(second.join("data/added while away.txt"), b"new").unwrap();
    wait_until("the location to come back", LIMIT, || {
        let l = sd.json(["location", "info", "1"]);
        l["online"] == true
            && json_path(&l["path"]) == second.join("data")
            && l["files"] == 3
            && l["state"] == "ready"
    });
    let v = sd.json(["volume", "list"]);
    assert_eq!(
        v["tracked"].as_array().unwrap().len(),
        1,
        "the same volume, not a new one"
    );
    assert_eq!(v["tracked"][0]["fingerprint"], fingerprint.as_str());
    assert_eq!(json_path(&v["tracked"][0]["mount_point"]), second);
    let hit = sd.json(["search", "beach"]);
    assert_eq!(
        json_path(&hit["hits"][0]["path"]),
        second.join("data/photos/beach.jpg")
    );
    assert_eq!(hit["hits"][0]["id"], id_before, "entries kept their ids");
    sd.ok(["stop"]); // release the watch before the guard unmounts
}
