//! Errors as clients see them: a stable [`ErrorCode`] and a message for people.

use serde::{Deserialize, Serialize};

/// What kind of failure an answer reports. The strings (snake_case) are the API's stable codes,
/// documented in docs/API.md; clients match on them, so a variant is never renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed, oversized or non-UTF-8 request, or an unknown method.
    BadRequest,
    NotFound,
    /// Bad input, or a library that cannot be used; the message says why and what to do.
    Invalid,
    /// Already exists, already running, overlapping locations, a name clash.
    Conflict,
    /// A name that could mean more than one thing; the message lists the candidates.
    Ambiguous,
    /// Another daemon has the library open.
    LibraryLocked,
    /// The library is encrypted and no passphrase has unlocked it (`library.unlock`).
    Locked,
    /// The passphrase is not the library's; nothing was changed.
    WrongPassphrase,
    /// The library was written by a newer build; it is left untouched.
    NewerVersion,
    Corrupt,
    Io,
    Database,
    /// A value the engine could not (de)serialise.
    Json,
    /// A device that cannot be reached, or networking that is off.
    Unreachable,
    /// The other device does not (or no longer) trust this one.
    NotPaired,
    /// A call a paired device may not make here.
    Forbidden,
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Invalid => "invalid",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Ambiguous => "ambiguous",
            ErrorCode::LibraryLocked => "library_locked",
            ErrorCode::Locked => "locked",
            ErrorCode::WrongPassphrase => "wrong_passphrase",
            ErrorCode::NewerVersion => "newer_version",
            ErrorCode::Corrupt => "corrupt",
            ErrorCode::Io => "io",
            ErrorCode::Database => "database",
            ErrorCode::Json => "json",
            ErrorCode::Unreachable => "unreachable",
            ErrorCode::NotPaired => "not_paired",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Internal => "internal",
        }
    }

    /// The code of an engine error's [`sd_core::Error::code`]; a code this build does not know
    /// is `internal`.
    pub fn from_core(code: &str) -> ErrorCode {
        match code {
            "bad_request" => ErrorCode::BadRequest,
            "not_found" => ErrorCode::NotFound,
            "invalid" => ErrorCode::Invalid,
            "conflict" => ErrorCode::Conflict,
            "ambiguous" => ErrorCode::Ambiguous,
            "library_locked" => ErrorCode::LibraryLocked,
            "locked" => ErrorCode::Locked,
            "wrong_passphrase" => ErrorCode::WrongPassphrase,
            "newer_version" => ErrorCode::NewerVersion,
            "corrupt" => ErrorCode::Corrupt,
            "io" => ErrorCode::Io,
            "database" => ErrorCode::Database,
            "json" => ErrorCode::Json,
            "unreachable" => ErrorCode::Unreachable,
            "not_paired" => ErrorCode::NotPaired,
            "forbidden" => ErrorCode::Forbidden,
            _ => ErrorCode::Internal,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as sent to clients: `{"code": …, "message": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// A request refused before it reached a handler.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::BadRequest, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Internal, message)
    }
}

impl From<sd_core::Error> for ApiError {
    fn from(e: sd_core::Error) -> ApiError {
        ApiError::new(ErrorCode::from_core(e.code()), e.to_string())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_on_the_wire_are_as_str() {
        let all = [
            ErrorCode::BadRequest,
            ErrorCode::NotFound,
            ErrorCode::Invalid,
            ErrorCode::Conflict,
            ErrorCode::Ambiguous,
            ErrorCode::LibraryLocked,
            ErrorCode::Locked,
            ErrorCode::WrongPassphrase,
            ErrorCode::NewerVersion,
            ErrorCode::Corrupt,
            ErrorCode::Io,
            ErrorCode::Database,
            ErrorCode::Json,
            ErrorCode::Unreachable,
            ErrorCode::NotPaired,
            ErrorCode::Forbidden,
            ErrorCode::Internal,
        ];
        for c in all {
            let wire = serde_json::to_value(c).unwrap();
            assert_eq!(wire, c.as_str());
            assert_eq!(ErrorCode::from_core(c.as_str()), c);
            assert_eq!(serde_json::from_value::<ErrorCode>(wire).unwrap(), c);
        }
    }

    #[test]
    fn engine_errors_keep_their_codes() {
        let e: ApiError = sd_core::Error::Conflict("taken".into()).into();
        assert_eq!(e, ApiError::new(ErrorCode::Conflict, "taken"));
        let e: ApiError = sd_core::Error::WriterGone.into();
        assert_eq!(e.code, ErrorCode::Internal);
        assert_eq!(
            serde_json::to_string(&ApiError::bad_request("no")).unwrap(),
            r#"{"code":"bad_request","message":"no"}"#
        );
    }
}
