//! File types: content kind, MIME type and how sure we are, from magic bytes and the extension.
//!
//! The data comes from two well-kept registries: `infer` (magic-number signatures) and
//! `mime_guess` (extension → MIME). This module only maps MIME types to the content kinds the
//! product shows and decides between the two sources.

use std::ffi::OsStr;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// What a file is, broadly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ContentKind {
    Image,
    Video,
    Audio,
    Document,
    Book,
    Archive,
    Code,
    Text,
    Database,
    Font,
    Executable,
    Unknown,
}

impl ContentKind {
    pub const ALL: [ContentKind; 12] = [
        ContentKind::Image,
        ContentKind::Video,
        ContentKind::Audio,
        ContentKind::Document,
        ContentKind::Book,
        ContentKind::Archive,
        ContentKind::Code,
        ContentKind::Text,
        ContentKind::Database,
        ContentKind::Font,
        ContentKind::Executable,
        ContentKind::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ContentKind::Image => "image",
            ContentKind::Video => "video",
            ContentKind::Audio => "audio",
            ContentKind::Document => "document",
            ContentKind::Book => "book",
            ContentKind::Archive => "archive",
            ContentKind::Code => "code",
            ContentKind::Text => "text",
            ContentKind::Database => "database",
            ContentKind::Font => "font",
            ContentKind::Executable => "executable",
            ContentKind::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<ContentKind> {
        ContentKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Kinds later jobs (thumbnails, media metadata, text extraction) want to see.
    pub fn wants_intelligence(self) -> bool {
        matches!(
            self,
            ContentKind::Image
                | ContentKind::Video
                | ContentKind::Audio
                | ContentKind::Document
                | ContentKind::Book
                | ContentKind::Text
                | ContentKind::Code
        )
    }
}

/// Where the verdict came from, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// Magic bytes and extension agree.
    MagicAndExtension,
    /// Magic bytes only (the extension says something else, or nothing).
    Magic,
    /// Extension only (no signature recognised).
    Extension,
    /// Neither; the bytes look like text, or nothing is known.
    Guess,
}

/// The verdict for one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FileType {
    pub kind: ContentKind,
    pub mime: Option<&'static str>,
    pub confidence: Confidence,
}

/// Extensions of source code and structured text, which MIME registries file under text/* or
/// application/* without telling code from prose.
const CODE_EXTENSIONS: &[&str] = &[
    "rs", "py", "js", "mjs", "cjs", "ts", "tsx", "jsx", "c", "h", "cc", "cpp", "cxx", "hpp", "hh",
    "go", "java", "kt", "kts", "swift", "rb", "php", "sh", "bash", "zsh", "fish", "ps1", "cs",
    "fs", "scala", "lua", "pl", "r", "sql", "html", "htm", "css", "scss", "sass", "less", "toml",
    "yaml", "yml", "json", "xml", "vue", "svelte", "zig", "hs", "ml", "ex", "exs", "erl", "clj",
    "dart", "m", "mm", "gradle", "cmake", "proto", "graphql", "nix", "lock", "ini", "cfg", "conf",
];

/// Containers whose magic bytes say only "zip": the extension tells which format it is.
const ZIP_BASED: &[&str] = &[
    "docx", "xlsx", "pptx", "odt", "ods", "odp", "epub", "jar", "apk", "xpi", "kmz",
];

fn kind_of_mime(mime: &str, ext: &str) -> ContentKind {
    let (top, sub) = mime.split_once('/').unwrap_or((mime, ""));
    if CODE_EXTENSIONS.contains(&ext) && (top == "text" || top == "application") {
        return ContentKind::Code;
    }
    match top {
        "image" => return ContentKind::Image,
        "video" => return ContentKind::Video,
        "audio" => return ContentKind::Audio,
        "font" => return ContentKind::Font,
        "text" => return ContentKind::Text,
        _ => {}
    }
    match sub {
        "pdf" | "msword" | "rtf" | "vnd.ms-excel" | "vnd.ms-powerpoint" => ContentKind::Document,
        s if s.starts_with("vnd.openxmlformats-officedocument")
            || s.starts_with("vnd.oasis.opendocument") =>
        {
            ContentKind::Document
        }
        "epub+zip" | "x-mobipocket-ebook" => ContentKind::Book,
        "zip"
        | "x-tar"
        | "gzip"
        | "x-gzip"
        | "x-7z-compressed"
        | "vnd.rar"
        | "x-rar-compressed"
        | "x-bzip2"
        | "x-xz"
        | "zstd"
        | "x-lzip"
        | "java-archive"
        | "vnd.android.package-archive" => ContentKind::Archive,
        "vnd.sqlite3" | "x-sqlite3" => ContentKind::Database,
        "x-executable"
        | "x-sharedlib"
        | "x-mach-binary"
        | "vnd.microsoft.portable-executable"
        | "x-msdownload"
        | "wasm" => ContentKind::Executable,
        s if s.starts_with("font") || s.starts_with("x-font") => ContentKind::Font,
        "json" | "xml" | "javascript" | "toml" => ContentKind::Code,
        _ => ContentKind::Unknown,
    }
}

/// Classifies a file from its name and first bytes (8 KiB is plenty).
pub fn detect(name: &OsStr, header: &[u8]) -> FileType {
    let ext = Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    let by_ext = (!ext.is_empty())
        .then(|| mime_guess::from_ext(&ext).first_raw())
        .flatten();
    if let Some(m) = infer::get(header) {
        let magic = m.mime_type();
        if magic == "application/zip"
            && ZIP_BASED.contains(&ext.as_str())
            && let Some(e) = by_ext
        {
            return FileType {
                kind: kind_of_mime(e, &ext),
                mime: Some(e),
                confidence: Confidence::MagicAndExtension,
            };
        }
        let confidence = if by_ext == Some(magic) || m.extension() == ext {
            Confidence::MagicAndExtension
        } else {
            Confidence::Magic
        };
        let kind = match m.matcher_type() {
            infer::MatcherType::Image => ContentKind::Image,
            infer::MatcherType::Video => ContentKind::Video,
            infer::MatcherType::Audio => ContentKind::Audio,
            infer::MatcherType::Book => ContentKind::Book,
            infer::MatcherType::Font => ContentKind::Font,
            _ => kind_of_mime(magic, &ext),
        };
        return FileType {
            kind,
            mime: Some(magic),
            confidence,
        };
    }
    if let Some(e) = by_ext {
        return FileType {
            kind: kind_of_mime(e, &ext),
            mime: Some(e),
            confidence: Confidence::Extension,
        };
    }
    let texty = !header.is_empty()
        && !header.contains(&0)
        && std::str::from_utf8(trim_partial_utf8(header)).is_ok();
    if texty {
        let kind = if CODE_EXTENSIONS.contains(&ext.as_str()) {
            ContentKind::Code
        } else {
            ContentKind::Text
        };
        return FileType {
            kind,
            mime: Some("text/plain"),
            confidence: Confidence::Guess,
        };
    }
    FileType {
        kind: ContentKind::Unknown,
        mime: None,
        confidence: Confidence::Guess,
    }
}

/// The header may end in the middle of a multi-byte character; drop that tail before checking.
fn trim_partial_utf8(b: &[u8]) -> &[u8] {
    match std::str::from_utf8(b) {
        Ok(_) => b,
        Err(e) if e.error_len().is_none() => &b[..e.valid_up_to()],
        Err(_) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(name: &str, header: &[u8]) -> FileType {
        detect(OsStr::new(name), header)
    }

    #[test]
    fn magic_extension_and_guesses() {
        let jpg = d("IMG_1.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00rest");
        assert_eq!(
            (jpg.kind, jpg.mime, jpg.confidence),
            (
                ContentKind::Image,
                Some("image/jpeg"),
                Confidence::MagicAndExtension
            )
        );
        // A PNG named .txt: the bytes win.
        let png = d("notes.txt", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
        assert_eq!(
            (png.kind, png.confidence),
            (ContentKind::Image, Confidence::Magic)
        );
        let pdf = d("Invoice 1.pdf", b"%PDF-1.7\n");
        assert_eq!(pdf.kind, ContentKind::Document);
        let docx = d("Report.docx", b"PK\x03\x04\x14\x00\x06\x00");
        assert_eq!(docx.kind, ContentKind::Document);
        assert!(docx.mime.unwrap().contains("wordprocessingml"));
        assert_eq!(
            d("a.zip", b"PK\x03\x04\x0a\x00\x00\x00").kind,
            ContentKind::Archive
        );
        assert_eq!(
            d("movie.mp4", b"\x00\x00\x00\x18ftypmp42").kind,
            ContentKind::Video
        );
        let rs = d("main.rs", b"fn main() {}\n");
        assert_eq!(
            (rs.kind, rs.confidence),
            (ContentKind::Code, Confidence::Extension)
        );
        assert_eq!(d("notes.md", b"# notes").kind, ContentKind::Text);
        assert_eq!(d("README", b"plain words").kind, ContentKind::Text);
        assert_eq!(d("blob", b"\x00\x01\x02\x03").kind, ContentKind::Unknown);
        assert_eq!(d("db", b"SQLite format 3\0").kind, ContentKind::Database);
        let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
        elf.resize(64, 0);
        assert_eq!(d("prog", &elf).kind, ContentKind::Executable);
        // A header cut inside a multi-byte character is still text.
        assert_eq!(
            d("x", "café".as_bytes().split_at(4).0).kind,
            ContentKind::Text
        );
    }
}
