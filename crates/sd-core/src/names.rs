//! Raw file names and paths: stored exactly, shown lossily, serialised losslessly.
//!
//! On Unix a file name is any byte string without `/` or NUL. The index stores valid UTF-8 names
//! as SQLite TEXT and anything else as a BLOB of the raw bytes, so every name round-trips. In JSON
//! a path is a plain string when it is UTF-8 and `{"bytes": "<base64>"}` otherwise.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The SQL value for a name or path: TEXT when it is UTF-8, otherwise a BLOB.
pub fn to_sql(name: &OsStr) -> ToSqlOutput<'_> {
    match name.to_str() {
        Some(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        None => ToSqlOutput::Borrowed(ValueRef::Blob(name.as_bytes())),
    }
}

/// The raw bytes of a name read back from SQL (TEXT or BLOB).
pub fn from_sql(v: ValueRef<'_>) -> rusqlite::Result<OsString> {
    match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => Ok(OsString::from_vec(b.to_vec())),
        other => Err(rusqlite::Error::FromSqlConversionFailure(
            0,
            other.data_type(),
            "expected a TEXT or BLOB name".into(),
        )),
    }
}

/// Like [`from_sql`], for a column that may be NULL.
pub fn opt_from_sql(v: ValueRef<'_>) -> rusqlite::Result<Option<OsString>> {
    match v {
        ValueRef::Null => Ok(None),
        other => from_sql(other).map(Some),
    }
}

/// An owned SQL value for a name (for parameter lists built at run time).
pub fn to_value(name: &OsStr) -> Value {
    match name.to_str() {
        Some(s) => Value::Text(s.to_owned()),
        None => Value::Blob(name.as_bytes().to_vec()),
    }
}

/// A path that serialises losslessly: a string if UTF-8, else `{"bytes": base64}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JsonPath(pub PathBuf);

impl JsonPath {
    /// The path as one string for a TEXT column: itself when UTF-8, else its JSON
    /// `{"bytes": …}` form — which no path can be taken for, since it is not absolute.
    pub fn to_text(&self) -> String {
        match self.0.to_str() {
            Some(s) if !s.starts_with('{') => s.to_owned(),
            _ => serde_json::json!({"bytes": STANDARD.encode(self.0.as_os_str().as_bytes())})
                .to_string(),
        }
    }

    /// The inverse of [`JsonPath::to_text`].
    pub fn from_text(s: &str) -> JsonPath {
        if s.starts_with('{')
            && let Ok(p) = serde_json::from_str::<JsonPath>(s)
        {
            return p;
        }
        JsonPath(PathBuf::from(s))
    }
}

impl From<PathBuf> for JsonPath {
    fn from(p: PathBuf) -> Self {
        JsonPath(p)
    }
}

impl From<&Path> for JsonPath {
    fn from(p: &Path) -> Self {
        JsonPath(p.to_path_buf())
    }
}

impl Serialize for JsonPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_os(self.0.as_os_str(), s)
    }
}

impl<'de> Deserialize<'de> for JsonPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_os(d).map(|o| JsonPath(PathBuf::from(o)))
    }
}

/// The schema of [`JsonPath`] and [`JsonName`]: a string, or `{"bytes": base64}` when not UTF-8.
#[cfg(feature = "schema")]
fn os_schema(what: &str) -> schemars::Schema {
    schemars::json_schema!({
        "description": format!("{what}: a string when it is valid UTF-8, else its raw bytes as {{\"bytes\": standard base64}}"),
        "anyOf": [
            {"type": "string"},
            {"type": "object", "properties": {"bytes": {"type": "string", "contentEncoding": "base64"}},
             "required": ["bytes"], "additionalProperties": false}
        ]
    })
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for JsonPath {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "JsonPath".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        os_schema("An absolute path")
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for JsonName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "JsonName".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        os_schema("A file name")
    }
}

/// A file name that serialises like [`JsonPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JsonName(pub OsString);

impl Serialize for JsonName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_os(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for JsonName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_os(d).map(JsonName)
    }
}

fn serialize_os<S: Serializer>(o: &OsStr, s: S) -> Result<S::Ok, S::Error> {
    match o.to_str() {
        Some(text) => s.serialize_str(text),
        None => {
            use serde::ser::SerializeMap;
            let mut m = s.serialize_map(Some(1))?;
            m.serialize_entry("bytes", &STANDARD.encode(o.as_bytes()))?;
            m.end()
        }
    }
}

fn deserialize_os<'de, D: Deserializer<'de>>(d: D) -> Result<OsString, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Text(String),
        Bytes { bytes: String },
    }
    match Repr::deserialize(d)? {
        Repr::Text(t) => Ok(OsString::from(t)),
        Repr::Bytes { bytes } => STANDARD
            .decode(bytes)
            .map(OsString::from_vec)
            .map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_utf8_paths_round_trip_through_json() {
        let raw = PathBuf::from(OsString::from_vec(b"/tmp/caf\xe9 menu.txt".to_vec()));
        let json = serde_json::to_string(&JsonPath(raw.clone())).unwrap();
        assert_eq!(json, r#"{"bytes":"L3RtcC9jYWbpIG1lbnUudHh0"}"#);
        let back: JsonPath = serde_json::from_str(&json).unwrap();
        assert_eq!(back.0, raw);
        let text: JsonPath = serde_json::from_str(r#""/tmp/café""#).unwrap();
        assert_eq!(text.0, PathBuf::from("/tmp/café"));
    }

    #[test]
    fn any_path_round_trips_through_text() {
        for raw in [
            &b"/tmp/x\xffy.txt"[..],
            b"/tmp/plain.txt",
            b"{odd",
            b"{\"bytes\":\"AA==\"}",
        ] {
            let p = JsonPath(PathBuf::from(OsString::from_vec(raw.to_vec())));
            assert_eq!(JsonPath::from_text(&p.to_text()), p, "{raw:?}");
        }
    }
}
