//! Unions tagged by an integer field (`type`, `source`), which serde's `#[serde(tag)]` cannot
//! dispatch on: read the object, take the tag out, deserialize the rest as the variant's
//! struct; write the struct and put the tag back in front.

use serde::de::DeserializeOwned;
use serde::ser::Error as _;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// Takes the integer `tag` out of an object.
pub(crate) fn split<E: serde::de::Error>(
    value: Value,
    tag: &'static str,
) -> Result<(i64, Map<String, Value>), E> {
    let Value::Object(mut map) = value else {
        return Err(E::custom(format_args!(
            "expected an object with an integer `{tag}`, found {}",
            kind_of(&value)
        )));
    };
    let code = match map.remove(tag) {
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| E::custom(format_args!("{tag}: expected an integer, found {n}")))?,
        Some(other) => {
            return Err(E::custom(format_args!(
                "{tag}: expected an integer, found {}",
                kind_of(&other)
            )))
        }
        None => return Err(E::missing_field(tag)),
    };
    Ok((code, map))
}

/// Deserializes the rest of a tagged object as `T`; an error names the path inside it.
pub(crate) fn typed<T: DeserializeOwned, E: serde::de::Error>(
    map: Map<String, Value>,
) -> Result<T, E> {
    serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            E::custom(e.into_inner())
        } else {
            E::custom(format_args!("{path}: {}", e.into_inner()))
        }
    })
}

/// Writes `inner` (an object) with the integer `tag` first.
pub(crate) fn write<S: Serializer, T: Serialize>(
    s: S,
    tag: &'static str,
    code: i64,
    inner: &T,
) -> Result<S::Ok, S::Error> {
    match serde_json::to_value(inner).map_err(S::Error::custom)? {
        Value::Object(fields) => {
            let mut out = Map::with_capacity(fields.len() + 1);
            out.insert(tag.to_owned(), Value::from(code));
            out.extend(fields);
            out.serialize(s)
        }
        _ => Err(S::Error::custom("a tagged variant must be an object")),
    }
}

/// Writes an unknown variant: its tag and the fields as they came.
pub(crate) fn write_raw<S: Serializer>(
    s: S,
    tag: &'static str,
    code: i64,
    fields: &Map<String, Value>,
) -> Result<S::Ok, S::Error> {
    let mut out = Map::with_capacity(fields.len() + 1);
    out.insert(tag.to_owned(), Value::from(code));
    out.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
    out.serialize(s)
}

/// `null`, `a string`, … for error messages.
pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// For fields that are optional *and* nullable: present `null` deserializes to `Some(null)`,
/// so it is written back (`#[serde(default, deserialize_with = "present")]`).
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}
