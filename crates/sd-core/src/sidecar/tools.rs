//! Outside programs some sidecars need: `ffmpeg`/`ffprobe` for a video's frame and `pdftoppm`
//! (poppler) for a PDF's first page. Found on `PATH` when a job starts; a content that needs a
//! missing one is recorded `unsupported`, and `sidecar status` says which are there. Each runs
//! with a time limit and writes only into the library's `sidecars/tmp`.

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

/// Runs `cmd` (no input, output discarded) until it exits or [`TOOL_TIME`] passes.
fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let deadline = Instant::now() + TOOL_TIME;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{what} failed ({status})")),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{what} took longer than {} s; stopped",
                    TOOL_TIME.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for {what}: {e}")),
        }
    }
}

/// A PNG of the frame at 10% of the video `input`, at most 1024 px wide, written to `out`.
pub fn video_frame(tools: &Tools, input: &Path, out: &Path) -> Result<(), String> {
    let ffmpeg = tools.ffmpeg.as_ref().ok_or("ffmpeg is not installed")?;
    let at = tools
        .ffprobe
        .as_ref()
        .and_then(|p| duration(p, input))
        .map_or(0.0, |d| d * 0.1);
    let mut cmd = Command::new(ffmpeg);
    cmd.args([
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-ss",
        &format!("{at:.3}"),
        "-i",
    ])
    .arg(input)
    .args([
        "-frames:v",
        "1",
        "-vf",
        "scale='min(1024,iw)':-2",
        "-f",
        "image2",
    ])
    .arg(out);
    run(cmd, "ffmpeg")?;
    if !out.is_file() {
        return Err("ffmpeg wrote no frame (no video stream?)".into());
    }
    Ok(())
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

/// A PNG of the PDF's first page, at most 1024 px on its longest side, written to
/// `out_root` + `.png`.
pub fn pdf_page(tools: &Tools, input: &Path, out_root: &Path) -> Result<PathBuf, String> {
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
    .arg(out_root);
    run(cmd, "pdftoppm")?;
    let png = out_root.with_extension("png");
    if !png.is_file() {
        return Err("pdftoppm wrote no page".into());
    }
    Ok(png)
}
