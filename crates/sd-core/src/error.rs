//! The engine's error type.

use std::path::PathBuf;

/// Everything the engine can fail with. Per-path problems during a scan are *not* errors of this
/// type: they are counted and reported in the job result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "library {name:?} is in use by another Spacedrive daemon (pid {pid}); stop that daemon first"
    )]
    LibraryLocked { name: String, pid: String },
    #[error(
        "library {name:?} was written by a newer Spacedrive (schema {found}, this build knows up to {supported}); upgrade Spacedrive to open it. The library was not modified."
    )]
    NewerVersion {
        name: String,
        found: i64,
        supported: i64,
    },
    /// An encrypted library no key has opened since the daemon started (or since `library lock`).
    #[error(
        "library {name:?} is encrypted and locked; unlock it with `spacedrive library unlock {name:?}`"
    )]
    KeyNeeded { name: String },
    /// The passphrase given is not the library's. Nothing was changed.
    #[error("wrong passphrase for library {name:?}")]
    WrongPassphrase { name: String },
    #[error("library at {path} is damaged: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    /// A name that could mean more than one thing; the message lists the candidates.
    #[error("{0}")]
    Ambiguous(String),
    #[error("the library's writer thread has stopped")]
    WriterGone,
    /// Another device cannot be reached now (or networking is off); trying again may work.
    #[error("{0}")]
    Unreachable(String),
    /// Another device refused: what was asked is outside what it shares.
    #[error("{0}")]
    Forbidden(String),
    /// Another device does not (or no longer) trust this one.
    #[error("{0}")]
    NotPaired(String),
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A short machine-readable code for API clients.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Db(_) => "database",
            Error::Json(_) => "json",
            Error::LibraryLocked { .. } => "library_locked",
            Error::NewerVersion { .. } => "newer_version",
            Error::KeyNeeded { .. } => "locked",
            Error::WrongPassphrase { .. } => "wrong_passphrase",
            Error::Corrupt { .. } => "corrupt",
            Error::NotFound(_) => "not_found",
            Error::Invalid(_) => "invalid",
            Error::Conflict(_) => "conflict",
            Error::Ambiguous(_) => "ambiguous",
            Error::WriterGone => "internal",
            Error::Unreachable(_) => "unreachable",
            Error::Forbidden(_) => "forbidden",
            Error::NotPaired(_) => "not_paired",
        }
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
