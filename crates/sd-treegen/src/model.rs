//! What the trees look like: names, extensions, sizes and magic bytes per theme and profile.
//! Plain data; `plan.rs` draws from it.

pub(crate) const KIB: u64 = 1024;
pub(crate) const MIB: u64 = 1024 * 1024;

/// Directories nest at most this deep below the root.
pub(crate) const MAX_DEPTH: u32 = 8;
/// Names are clipped to this many bytes (a suffix such as " (2).jpg" still fits in NAME_MAX).
pub(crate) const NAME_BYTES: usize = 200;

/// File and directory times fall in 2015-01-01 ..= 2025-01-01 (UTC).
pub(crate) const MTIME_LO: i64 = 1_420_070_400;
pub(crate) const MTIME_HI: i64 = 1_735_689_600;

/// Shape parameters of a profile.
pub(crate) struct Shape {
    pub files_per_dir: f64,
    pub dup_frac: f64,
    pub samesize_frac: f64,
    pub hidden_frac: f64,
    pub hidden_dir_frac: f64,
    /// One hard link per this many files (0: none).
    pub hardlink_per: usize,
    /// One symbolic link per this many files (at least 6 in any tree).
    pub symlink_per: usize,
    /// Metadata stress: mostly empty files, the rest 1–256 bytes of text, no projects.
    pub tiny: bool,
}

pub(crate) const REALISTIC: Shape = Shape {
    files_per_dir: 18.0,
    dup_frac: 0.10,
    samesize_frac: 0.02,
    hidden_frac: 0.02,
    hidden_dir_frac: 0.015,
    hardlink_per: 5000,
    symlink_per: 1000,
    tiny: false,
};

pub(crate) const TINY: Shape = Shape {
    files_per_dir: 25.0,
    dup_frac: 0.10,
    samesize_frac: 0.0,
    hidden_frac: 0.02,
    hidden_dir_frac: 0.01,
    hardlink_per: 0,
    symlink_per: 1000,
    tiny: true,
};

pub(crate) const WORDS: &[&str] = &[
    "report", "notes", "draft", "final", "budget", "summary", "invoice", "meeting", "project",
    "photo", "holiday", "family", "beach", "mountain", "city", "river", "garden", "recipe",
    "travel", "music", "video", "archive", "backup", "old", "new", "misc", "data", "test",
    "sample", "config", "readme", "schedule", "plan", "design", "sketch", "scan", "receipt",
    "letter", "contract", "parser", "engine", "index", "cache", "query", "server", "client",
    "worker", "queue", "stream", "buffer", "vector", "matrix", "graph", "node", "tree", "edge",
    "render", "shader", "kernel", "alpha", "beta", "gamma", "delta", "omega", "spring", "summer",
    "autumn", "winter", "monday", "friday", "lake", "harbour", "station", "ledger",
];

/// Words beyond ASCII: accents (composed and not), other scripts, emoji, right-to-left text.
pub(crate) const UNI_WORDS: &[&str] = &[
    "café",
    "résumé",
    "naïve",
    "Größe",
    "Ärger",
    "東京",
    "写真",
    "日本語",
    "Москва",
    "Документы",
    "Ελληνικά",
    "español",
    "niño",
    "façade",
    "smörgåsbord",
    "crème brûlée",
    "Zürich",
    "São Paulo",
    "København",
    "Ωmega",
    "🎉",
    "📷",
    "✓",
    "데이터",
    "مرحبا",
    "שלום",
    "हिन्दी",
    "Ünïcödé",
    "Ça va",
    "Łódź",
    "cafe\u{301} decomposed",
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Theme {
    Photos,
    Code,
    Docs,
    Videos,
    Mixed,
}

pub(crate) const THEMES: [Theme; 5] = [
    Theme::Photos,
    Theme::Code,
    Theme::Docs,
    Theme::Videos,
    Theme::Mixed,
];
/// Cumulative weights of THEMES: photos 30, code 30, docs 20, videos 3, mixed 17.
pub(crate) const THEME_CUMULATIVE: [f64; 5] = [30.0, 60.0, 80.0, 83.0, 100.0];

/// Folder name templates: `{year}`, `{mm}`, `{word}` (each its own draw) and `{uni}`.
pub(crate) fn dir_templates(t: Theme) -> &'static [&'static str] {
    match t {
        Theme::Photos => &[
            "Photos",
            "{year}",
            "{year}-{mm} Vacation",
            "Camera Roll",
            "Family 👨‍👩‍👧",
            "写真",
            "Holiday in {uni}",
            "DCIM",
            "100CANON",
            "{word} {year}",
            "Screenshots",
            "Wedding {year}",
            "Best of {uni}",
        ],
        Theme::Code => &[
            "src",
            "lib",
            "tests",
            "crates",
            "{word}-{word}",
            "examples",
            "benches",
            "utils",
            "mod_{word}",
            "{word}_{word}",
            "internal",
            "bin",
            "assets",
            "docs",
        ],
        Theme::Docs => &[
            "Documents",
            "Документы",
            "Invoices {year}",
            "Taxes {year}",
            "Work",
            "Letters",
            "Résumés",
            "{word} {word}",
            "Scans",
            "Contracts {uni}",
            "Meeting notes",
        ],
        Theme::Videos => &[
            "Videos",
            "Movies",
            "GoPro",
            "Clips {year}",
            "{word} footage",
            "Recordings",
        ],
        Theme::Mixed => &[
            "Downloads",
            "Desktop",
            "misc",
            "New Folder",
            "New Folder (2)",
            "{word} {word}",
            "Archive {year}",
            "{uni}",
            "stuff",
            "tmp old",
            "Shared with {uni}",
            "{word}",
        ],
    }
}

/// Hidden folders, some of which the default rules leave out (`.Trash-1000`).
pub(crate) const HIDDEN_DIRS: &[&str] = &[
    ".cache",
    ".config",
    ".thumbnails",
    ".local",
    ".Trash-1000",
    ".idea",
    ".vscode",
];

/// Extensions per theme with their weights ("" is a name without an extension).
pub(crate) fn extensions(t: Theme) -> &'static [(&'static str, f64)] {
    match t {
        Theme::Photos => &[
            ("jpg", 60.0),
            ("JPG", 10.0),
            ("png", 10.0),
            ("heic", 3.0),
            ("mp4", 1.5),
            ("mov", 0.5),
            ("txt", 1.0),
            ("json", 1.0),
            ("xmp", 2.0),
        ],
        Theme::Code => &[
            ("rs", 45.0),
            ("toml", 5.0),
            ("md", 8.0),
            ("txt", 4.0),
            ("json", 6.0),
            ("py", 8.0),
            ("lock", 1.0),
            ("", 3.0),
            ("png", 2.0),
            ("log", 2.0),
            ("html", 2.0),
            ("yml", 2.0),
        ],
        Theme::Docs => &[
            ("pdf", 35.0),
            ("docx", 25.0),
            ("txt", 15.0),
            ("xlsx", 5.0),
            ("md", 5.0),
            ("jpg", 5.0),
            ("png", 5.0),
            ("csv", 5.0),
        ],
        Theme::Videos => &[
            ("mp4", 60.0),
            ("mov", 10.0),
            ("jpg", 10.0),
            ("srt", 10.0),
            ("txt", 5.0),
        ],
        Theme::Mixed => &[
            ("jpg", 20.0),
            ("png", 10.0),
            ("pdf", 12.0),
            ("docx", 8.0),
            ("txt", 15.0),
            ("zip", 3.0),
            ("mp4", 1.0),
            ("rs", 5.0),
            ("md", 5.0),
            ("json", 5.0),
            ("csv", 3.0),
            ("", 2.0),
        ],
    }
}

/// Extensions of the tiny profile (drawn uniformly).
pub(crate) const TINY_EXTS: &[&str] = &["rs", "txt", "json", "md", "py", "keep", "", "toml", "yml"];

/// Whether a file of this extension is filled with text (else binary, behind magic bytes).
pub(crate) fn is_text(ext: &str) -> bool {
    matches!(
        ext,
        "txt"
            | "md"
            | "rs"
            | "py"
            | "json"
            | "toml"
            | "lock"
            | "log"
            | "html"
            | "yml"
            | "csv"
            | "srt"
            | "xmp"
            | ""
            | "keep"
    )
}

/// Size model per extension: (P(1–50 MiB), P(64 KiB–1 MiB), median of the small ones, σ).
pub(crate) fn size_model(ext: &str) -> (f64, f64, u64, f64) {
    match ext {
        "mp4" => (0.020, 0.30, 48 * KIB, 0.8),
        "mov" => (0.015, 0.30, 48 * KIB, 0.8),
        "jpg" | "JPG" => (0.0004, 0.030, 12 * KIB, 0.8),
        "heic" => (0.0, 0.03, 12 * KIB, 0.7),
        "png" => (0.0003, 0.020, 8 * KIB, 1.0),
        "pdf" => (0.0010, 0.040, 12 * KIB, 1.0),
        "docx" => (0.0003, 0.015, 10 * KIB, 0.9),
        "xlsx" => (0.0, 0.02, 10 * KIB, 0.9),
        "zip" => (0.01, 0.20, 40 * KIB, 1.0),
        _ => (0.0, 0.003, 3 * KIB, 1.2),
    }
}

/// The first bytes of a binary file, so type detection by content has something to find.
pub(crate) fn magic(ext: &str) -> &'static [u8] {
    match ext {
        "jpg" => b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
        "JPG" => b"\xff\xd8\xff\xe1\x00\x18Exif\x00\x00",
        "png" => b"\x89PNG\r\n\x1a\n",
        "pdf" => b"%PDF-1.7\n",
        "mp4" => b"\x00\x00\x00\x18ftypmp42",
        "mov" => b"\x00\x00\x00\x14ftypqt  ",
        "heic" => b"\x00\x00\x00\x18ftypheic",
        "docx" | "xlsx" => b"PK\x03\x04\x14\x00\x06\x00",
        "zip" => b"PK\x03\x04\x0a\x00\x00\x00",
        _ => b"",
    }
}

/// The `.gitignore` of every generated project. Kept to plain patterns (an anchored and an
/// unanchored folder, a glob, a name) that an independent checker can apply by hand.
pub(crate) const GITIGNORE: &[u8] =
    b"# generated project: build output stays out of the index\n/target/\ntarget/\n*.log\nnode_modules/\n.DS_Store\n";

/// Names that are not valid UTF-8: Latin-1 bytes, and a lone continuation byte. `{}` is a counter.
pub(crate) const NON_UTF8_NAMES: &[(&[u8], &[u8])] = &[
    (b"caf\xe9 menu ", b".txt"),
    (b"r\xe9sum\xe9 ", b".pdf"),
    (b"bad \x80\xff name ", b".bin"),
];
