//! Making the sidecars of one content: which kinds apply, reading the file once, each
//! generator's result as rows — under a time limit and with a decoder's panic caught, so a
//! hostile file becomes `failed: reason`, never a crashed or stuck job.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use super::layout::Layout;
use super::picture::{self as img, ImageError, Limits};
use super::text::{self, Reader, TextError};
use super::tools::{self, Tools};
use super::{GENERATOR, Media, Status};
use crate::filetype::ContentKind;

/// How long making one content's sidecars may take before it is recorded as failed.
pub const ITEM_TIME: Duration = Duration::from_secs(120);
/// The largest file decoded for a thumbnail or its metadata.
pub const MAX_IMAGE_FILE: u64 = 256 << 20;

/// The kinds to make for one content.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wants {
    pub thumbnail: bool,
    pub metadata: bool,
    pub text: bool,
}

impl Wants {
    pub fn any(self) -> bool {
        self.thumbnail || self.metadata || self.text
    }
}

/// The kinds that apply to a content: thumbnails for pictures, videos and PDFs, metadata for
/// pictures, text for text, code, HTML and PDF — and a metadata row (then `unsupported`) for a
/// content none applies to, so that every handled content has a row.
pub fn applicable(kind: ContentKind, mime: Option<&str>, ext: &str) -> Wants {
    let pdf = mime == Some("application/pdf");
    let thumbnail = matches!(kind, ContentKind::Image | ContentKind::Video) || pdf;
    let text = text::reader_for(kind, mime, ext).is_some();
    Wants {
        thumbnail,
        metadata: kind == ContentKind::Image || !(thumbnail || text),
        text,
    }
}

/// One content to handle.
#[derive(Debug, Clone)]
pub struct Work {
    pub content_id: i64,
    pub kind: ContentKind,
    pub mime: Option<String>,
    pub size: u64,
    /// A file with this content.
    pub path: PathBuf,
    pub wants: Wants,
}

/// One sidecar row as made.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub kind: &'static str,
    pub variant: &'static str,
    pub status: Status,
    pub reason: Option<String>,
    /// The extension of its file (written before the row), if it has one.
    pub ext: Option<&'static str>,
    pub size: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

impl Row {
    fn empty(kind: &'static str, variant: &'static str, status: Status, reason: String) -> Row {
        Row {
            kind,
            variant,
            status,
            reason: Some(reason),
            ext: None,
            size: 0,
            width: None,
            height: None,
        }
    }
}

/// What handling one content produced.
#[derive(Debug, Clone)]
pub enum Outcome {
    Made {
        content_id: i64,
        path: PathBuf,
        rows: Vec<Row>,
        /// Set when metadata was made (`None` inside: none could be read).
        media: Option<Option<Media>>,
        /// Set when text was made (`None` inside: no text).
        text: Option<Option<String>>,
        bytes_written: u64,
    },
    /// The file is gone or changed since it was identified: the content stays queued.
    Deferred { content_id: i64, reason: String },
}

/// Every row `wants` asks for, with the same status and reason (a failure of the whole item).
fn all_rows(wants: Wants, status: Status, reason: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    if wants.thumbnail {
        for (v, _) in img::VARIANTS {
            rows.push(Row::empty("thumbnail", v, status, reason.to_owned()));
        }
    }
    if wants.metadata {
        rows.push(Row::empty("metadata", "media", status, reason.to_owned()));
    }
    if wants.text {
        rows.push(Row::empty("text", "plain", status, reason.to_owned()));
    }
    rows
}

/// Makes `work`'s sidecars on a thread of its own, waiting at most [`ITEM_TIME`]; a panic or a
/// timeout becomes failed rows. (A decoder that never returns is left behind on its thread —
/// Rust cannot stop a thread — and the job goes on.)
pub fn guarded(work: Work, layout: &Layout, tools: &Tools, limits: Limits) -> Outcome {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let (w, l, t) = (work.clone(), layout.clone(), tools.clone());
    let spawned = std::thread::Builder::new()
        .name("sd-sidecar-item".into())
        .spawn(move || {
            super::lower_priority();
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                make(&w, &l, &t, &limits)
            }));
            let _ = tx.send(out);
        });
    let failed = |reason: String| Outcome::Made {
        content_id: work.content_id,
        path: work.path.clone(),
        rows: all_rows(work.wants, Status::Failed, &reason),
        media: work.wants.metadata.then_some(None),
        text: work.wants.text.then_some(None),
        bytes_written: 0,
    };
    if let Err(e) = spawned {
        return failed(format!("cannot start a thread: {e}"));
    }
    match rx.recv_timeout(ITEM_TIME) {
        Ok(Ok(out)) => out,
        Ok(Err(panic)) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            failed(format!("the decoder crashed on this file ({msg})"))
        }
        Err(_) => failed(format!(
            "took longer than {} s; given up",
            ITEM_TIME.as_secs()
        )),
    }
}

/// Reads at most `max` bytes of `work`'s file; `Err` when it is gone or no longer the content.
fn read(work: &Work, max: u64) -> Result<Vec<u8>, String> {
    let mut f = std::fs::File::open(&work.path).map_err(|e| format!("cannot open: {e}"))?;
    let len = f.metadata().map_err(|e| format!("cannot stat: {e}"))?.len();
    if len != work.size {
        return Err(format!(
            "changed since it was identified ({len} bytes, was {})",
            work.size
        ));
    }
    let mut buf = Vec::with_capacity(len.min(max) as usize);
    f.by_ref()
        .take(max)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read: {e}"))?;
    Ok(buf)
}

/// Makes `work`'s sidecars: reads the file once, writes thumbnail files (each whole, see
/// `layout`), returns the rows, metadata and text for the caller to commit.
pub fn make(work: &Work, layout: &Layout, tools: &Tools, limits: &Limits) -> Outcome {
    let ext = work
        .path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mime = work.mime.as_deref();
    let pdf = mime == Some("application/pdf");
    let wants = work.wants;
    let image_like = work.kind == ContentKind::Image;
    let text_reader = text::reader_for(work.kind, mime, &ext);
    // What to read: a picture whole (up to its limit), a PDF whole (for its text), text up to
    // the cap. A video is read by ffmpeg.
    let need = if image_like && (wants.thumbnail || wants.metadata) {
        Some(MAX_IMAGE_FILE)
    } else if wants.text && text_reader == Some(Reader::Pdf) {
        Some(text::MAX_PDF)
    } else if wants.text {
        Some(text::MAX_TEXT as u64)
    } else {
        None
    };
    let bytes = match need {
        Some(max) => match read(work, max) {
            Ok(b) => b,
            Err(reason) => {
                return Outcome::Deferred {
                    content_id: work.content_id,
                    reason,
                };
            }
        },
        None => match std::fs::metadata(&work.path) {
            Ok(m) if m.len() == work.size => Vec::new(),
            Ok(_) => {
                return Outcome::Deferred {
                    content_id: work.content_id,
                    reason: "changed since it was identified".into(),
                };
            }
            Err(e) => {
                return Outcome::Deferred {
                    content_id: work.content_id,
                    reason: format!("cannot stat: {e}"),
                };
            }
        },
    };
    let too_big = image_like && work.size > MAX_IMAGE_FILE;
    let mut rows = Vec::new();
    let mut written = 0u64;
    let mut shown = None;

    if wants.thumbnail {
        let made: Result<Vec<img::Thumb>, ImageError> = if too_big {
            Err(ImageError::Failed(format!(
                "file over {} MiB; not decoded",
                MAX_IMAGE_FILE >> 20
            )))
        } else if image_like {
            img::thumbnails(&bytes, &img::VARIANTS, limits).map(|(t, s)| {
                shown = Some(s);
                t
            })
        } else if work.kind == ContentKind::Video || pdf {
            from_tool(work, pdf, tools, limits)
        } else {
            Err(ImageError::Unsupported("no thumbnail for this kind".into()))
        };
        match made {
            Ok(thumbs) => {
                for t in thumbs {
                    let dest = layout.file(work.content_id, "thumbnail", t.variant, "webp");
                    match layout.write(&dest, &t.webp) {
                        Ok(()) => {
                            written += t.webp.len() as u64;
                            rows.push(Row {
                                kind: "thumbnail",
                                variant: t.variant,
                                status: Status::Ready,
                                reason: None,
                                ext: Some("webp"),
                                size: t.webp.len() as u64,
                                width: Some(t.width),
                                height: Some(t.height),
                            });
                        }
                        Err(e) => rows.push(Row::empty(
                            "thumbnail",
                            t.variant,
                            Status::Failed,
                            format!("writing {}: {e}", dest.display()),
                        )),
                    }
                }
            }
            Err(e) => {
                let status = match e {
                    ImageError::Unsupported(_) => Status::Unsupported,
                    ImageError::Failed(_) => Status::Failed,
                };
                for (v, _) in img::VARIANTS {
                    rows.push(Row::empty("thumbnail", v, status, e.to_string()));
                }
            }
        }
    }

    let mut media = None;
    if wants.metadata {
        if image_like && !too_big {
            let exif = img::exif(&bytes);
            let orientation = exif
                .as_ref()
                .and_then(|e| e.orientation)
                .and_then(|o| image::metadata::Orientation::from_exif(o as u8))
                .unwrap_or(image::metadata::Orientation::NoTransforms);
            let dims = shown.or_else(|| {
                // A header claiming more than the limits is not believed.
                img::dimensions(&bytes, limits)
                    .filter(|(w, h)| img::within(*w, *h, limits))
                    .map(|(w, h)| img::displayed(w, h, orientation))
            });
            if dims.is_none() && exif.is_none() {
                rows.push(Row::empty(
                    "metadata",
                    "media",
                    Status::Failed,
                    "neither the picture's size nor EXIF could be read".into(),
                ));
                media = Some(None);
            } else {
                let tz = jiff::tz::TimeZone::system();
                let e = exif.unwrap_or_default();
                let m = Media {
                    width: dims.map(|d| d.0),
                    height: dims.map(|d| d.1),
                    taken_at: e
                        .taken
                        .as_ref()
                        .and_then(|(t, o)| img::exif_time(t, o.as_deref(), &tz)),
                    make: e.make,
                    model: e.model,
                    lens: e.lens,
                    latitude: e.latitude,
                    longitude: e.longitude,
                    orientation: e.orientation,
                };
                rows.push(Row {
                    kind: "metadata",
                    variant: "media",
                    status: Status::Ready,
                    reason: None,
                    ext: None,
                    size: 0,
                    width: m.width,
                    height: m.height,
                });
                media = Some(Some(m));
            }
        } else {
            let reason = if too_big {
                format!("file over {} MiB; not decoded", MAX_IMAGE_FILE >> 20)
            } else {
                format!(
                    "no metadata reader for {} content{}",
                    work.kind.as_str(),
                    mime.map(|m| format!(" ({m})")).unwrap_or_default()
                )
            };
            let status = if too_big {
                Status::Failed
            } else {
                Status::Unsupported
            };
            rows.push(Row::empty("metadata", "media", status, reason));
            media = Some(None);
        }
    }

    let mut text_out = None;
    if wants.text {
        let made = match text_reader {
            Some(how) => text::extract(&bytes, how),
            None => Err(TextError::Unsupported(
                "no text reader for this kind".into(),
            )),
        };
        match made {
            Ok(t) => {
                rows.push(Row {
                    kind: "text",
                    variant: "plain",
                    status: Status::Ready,
                    reason: None,
                    ext: None,
                    size: t.len() as u64,
                    width: None,
                    height: None,
                });
                text_out = Some((!t.trim().is_empty()).then_some(t));
            }
            Err(TextError::Unsupported(r)) => {
                rows.push(Row::empty("text", "plain", Status::Unsupported, r));
                text_out = Some(None);
            }
            Err(TextError::Failed(r)) => {
                rows.push(Row::empty("text", "plain", Status::Failed, r));
                text_out = Some(None);
            }
        }
    }
    Outcome::Made {
        content_id: work.content_id,
        path: work.path.clone(),
        rows,
        media,
        text: text_out,
        bytes_written: written,
    }
}

/// Thumbnails from a frame an outside program renders (a video's, a PDF's first page).
fn from_tool(
    work: &Work,
    pdf: bool,
    tools: &Tools,
    limits: &Limits,
) -> Result<Vec<img::Thumb>, ImageError> {
    let tool = if pdf { "pdftoppm" } else { "ffmpeg" };
    let found = if pdf {
        tools.pdftoppm.is_some()
    } else {
        tools.ffmpeg.is_some()
    };
    if !found {
        return Err(ImageError::Unsupported(format!(
            "{tool} is not installed; install it, then `spacedrive sidecar regenerate --kind thumbnail`"
        )));
    }
    let png = if pdf {
        tools::pdf_page(tools, &work.path)
    } else {
        tools::video_frame(tools, &work.path)
    };
    png.map_err(ImageError::Failed)
        .and_then(|png| img::thumbnails(&png, &img::VARIANTS, limits).map(|(t, _)| t))
}

/// The generator versions rows are made with, by kind.
pub fn generator(kind: &str) -> i64 {
    GENERATOR
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(0, |(_, v)| *v)
}
