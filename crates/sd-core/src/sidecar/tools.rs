//! Outside programs some sidecars need: `ffmpeg`/`ffprobe` for a video's frame and `pdftoppm`
//! (poppler) for a PDF's first page. Found on `PATH` when a job starts; a content that needs a
//! missing one is recorded `unsupported`, and `sidecar status` says which are there. Each runs
//! with a time limit and writes its picture to a pipe, never to a file: a frame of an encrypted
//! library's video is never on disk in the clear.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How long one run of an outside program may take.
const TOOL_TIME: Duration = Duration::from_secs(60);

/// Which outside programs were found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Tools {
    pub ffmpeg: Option<PathBuf>,
    pub ffprobe: Option<PathBuf>,
    pub pdftoppm: Option<PathBuf>,
}

impl Tools {
    /// Looks for the programs on `PATH`.
    pub fn detect() -> Tools {
        Tools {
            ffmpeg: find("ffmpeg"),
            ffprobe: find("ffprobe"),
            pdftoppm: find("pdftoppm"),
        }
    }
}

/// `name` in a folder of `PATH`, if it is an executable file there.
fn find(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The most a program may print: a 1024-px PNG is far smaller.
const MAX_OUTPUT: u64 = 64 << 20;

/// Runs `cmd` (no input) until it exits or [`TOOL_TIME`] passes; returns what it printed.
fn run(mut cmd: Command, what: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("no pipe from the program")?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let r = stdout.by_ref().take(MAX_OUTPUT).read_to_end(&mut out);
        // Drain the rest so the program is not blocked on a full pipe.
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        r.map(|_| out)
    });
    let deadline = Instant::now() + TOOL_TIME;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = reader.join();
                return Err(format!(
                    "{what} took longer than {} s; stopped",
                    TOOL_TIME.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = reader.join();
                return Err(format!("waiting for {what}: {e}"));
            }
        }
    };
    let out = reader
        .join()
        .map_err(|_| format!("reading {what}'s output failed"))?
        .map_err(|e| format!("reading {what}'s output: {e}"))?;
    if !status.success() {
        return Err(format!("{what} failed ({status})"));
    }
    Ok(out)
}

/// A PNG of the frame at 10% of the video `input`, at most 1024 px wide.
pub fn video_frame(tools: &Tools, input: &Path) -> Result<Vec<u8>, String> {
    let ffmpeg = tools.ffmpeg.as_ref().ok_or("ffmpeg is not installed")?;
    let at = tools
        .ffprobe
        .as_ref()
        .and_then(|p| duration(p, input))
        .map_or(0.0, |d| d * 0.1);
    let mut cmd = Command::new(ffmpeg);
    cmd.args(["-nostdin", "-v", "error", "-ss", &format!("{at:.3}"), "-i"])
        .arg(input)
        .args([
            "-frames:v",
            "1",
            "-vf",
            "scale='min(1024,iw)':-2",
            "-f",
            "image2pipe",
            "-c:v",
            "png",
            "-",
        ]);
    let png = run(cmd, "ffmpeg")?;
    if png.is_empty() {
        return Err("ffmpeg wrote no frame (no video stream?)".into());
    }
    Ok(png)
}

/// The video's duration in seconds, from `ffprobe`.
fn duration(ffprobe: &Path, input: &Path) -> Option<f64> {
    let out = Command::new(ffprobe)
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(input)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|d| d.is_finite() && *d > 0.0)
}

/// A PNG of the PDF's first page, at most 1024 px on its longest side.
pub fn pdf_page(tools: &Tools, input: &Path) -> Result<Vec<u8>, String> {
    let pdftoppm = tools.pdftoppm.as_ref().ok_or("pdftoppm is not installed")?;
    let mut cmd = Command::new(pdftoppm);
    cmd.args([
        "-png",
        "-singlefile",
        "-f",
        "1",
        "-l",
        "1",
        "-scale-to",
        "1024",
    ])
    .arg(input)
    // No output root: the page goes to stdout.
    ;
    let png = run(cmd, "pdftoppm")?;
    if png.is_empty() {
        return Err("pdftoppm wrote no page".into());
    }
    Ok(png)
}
