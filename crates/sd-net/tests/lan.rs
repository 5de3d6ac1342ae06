//! LAN discovery: two nodes in separate network namespaces joined by a veth pair find each other
//! by mDNS and pair without an address. Needs root (`ip netns`); skips with a message otherwise.

use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use sd_net::{DeviceInfo, Net, NetConfig};

struct Namespaces {
    names: [String; 2],
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

impl Namespaces {
    /// Two namespaces, `10.77.<n>.1` and `.2`, joined by a veth pair; `None` where the kernel or
    /// the user's rights refuse.
    fn create() -> Option<Namespaces> {
        let pid = std::process::id();
        let names = [format!("sdn{pid}a"), format!("sdn{pid}b")];
        let ns = Namespaces { names };
        let [a, b] = &ns.names;
        let (va, vb) = (format!("v{pid}a"), format!("v{pid}b"));
        let net = pid % 200 + 20;
        let ok = ip(&["netns", "add", a])
            && ip(&["netns", "add", b])
            && ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb])
            && ip(&["link", "set", &va, "netns", a])
            && ip(&["link", "set", &vb, "netns", b])
            && ip(&[
                "-n",
                a,
                "addr",
                "add",
                &format!("10.77.{net}.1/24"),
                "dev",
                &va,
            ])
            && ip(&[
                "-n",
                b,
                "addr",
                "add",
                &format!("10.77.{net}.2/24"),
                "dev",
                &vb,
            ])
            && ip(&["-n", a, "link", "set", &va, "up"])
            && ip(&["-n", b, "link", "set", &vb, "up"])
            && ip(&["-n", a, "link", "set", "lo", "up"])
            && ip(&["-n", b, "link", "set", "lo", "up"])
            // mDNS sends to 224.0.0.251: a namespace without a default route needs one for it.
            && ip(&["-n", a, "route", "add", "224.0.0.0/4", "dev", &va])
            && ip(&["-n", b, "route", "add", "224.0.0.0/4", "dev", &vb]);
        ok.then_some(ns)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.names {
            ip(&["netns", "del", n]);
        }
    }
}

/// Runs `f` on a thread (and its tokio runtime) inside network namespace `name`.
fn in_namespace<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/var/run/netns/{name}");
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).expect("namespace file");
        // SAFETY: `fd` is an open namespace descriptor; setns changes only this thread's network
        // namespace (threads it starts afterwards inherit it).
        let r = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
}

/// A runtime for one node (its threads inherit the caller's network namespace).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn node(dir: std::path::PathBuf, name: &'static str) -> Net {
    {
        Net::start(NetConfig {
            data_dir: dir,
            bind: "0.0.0.0:0".parse().unwrap(),
            info: DeviceInfo {
                device_id: None,
                name: name.into(),
                os: "linux".into(),
                addrs: vec![],
                relay: None,
            },
            handler: std::sync::Arc::new(|_, _| serde_json::json!({"ok": null})),
            mdns: true,
            transfer: std::sync::Arc::new(sd_net::transfer::ShareNothing),
            relay: None,
            spacedrop: None,
        })
        .await
        .expect("starting a node")
    }
}

#[test]
fn devices_on_a_lan_find_each_other_and_pair_without_an_address() {
    let Some(ns) = Namespaces::create() else {
        eprintln!("SKIPPED: cannot create network namespaces here (needs root and `ip netns`)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (code_tx, code_rx) = mpsc::channel::<String>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let dir_a = tmp.path().join("a");
    let host = in_namespace(&ns.names[0], move || {
        runtime().block_on(async move {
            let net = node(dir_a, "host").await;
            let (code, paired) = net.pair_generate();
            code_tx.send(code.to_string()).unwrap();
            let r = tokio::time::timeout(Duration::from_secs(40), paired).await;
            // Stay up until the guest has finished.
            let _ =
                tokio::task::spawn_blocking(move || done_rx.recv_timeout(Duration::from_secs(40)))
                    .await;
            net.shutdown().await;
            r.map_err(|_| "timed out".to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
                .and_then(|r| r.map_err(|e| e.to_string()))
        })
    });
    let dir_b = tmp.path().join("b");
    let guest = in_namespace(&ns.names[1], move || {
        runtime().block_on(async move {
            let net = node(dir_b, "guest").await;
            let code = code_rx.recv_timeout(Duration::from_secs(20)).unwrap();
            let r = net.pair_join_nearby(&code, Duration::from_secs(30)).await;
            if r.is_err() {
                eprintln!("seen on the LAN: {:?}", net.nearby());
            }
            let _ = done_tx.send(());
            net.shutdown().await;
            r.map_err(|e| e.to_string())
        })
    });
    let g = guest.join().unwrap();
    let h = host.join().unwrap();
    let g = g.expect("the guest paired by mDNS");
    assert_eq!(g.name, "host");
    assert!(!g.addrs.is_empty(), "the host's LAN address was learnt");
    assert_eq!(h.expect("the host paired").name, "guest");
}
