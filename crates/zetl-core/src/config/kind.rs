//! `source:` and `target:` are mappings whose `kind` picks the settings type. serde's own
//! tagged enums buffer the mapping and lose the key path of an error inside it ("invalid
//! value: integer `-5`, expected u64", without saying it is `snapshot.chunk_rows`): here the
//! kind is read first and the rest is read as that kind's settings, with the path kept.

use serde::de::{DeserializeOwned, Deserializer, Error};
use serde::Deserialize;
use serde_yaml::Value;

/// Reads the `kind:` mapping at `section` (`source`, `target`); returns the kind and the other
/// keys. A missing or unknown kind is an error listing `kinds`.
pub fn split_kind<'de, D: Deserializer<'de>>(
    d: D,
    section: &str,
    kinds: &'static [&'static str],
) -> Result<(String, Value), D::Error> {
    let listed = kinds.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
    let expected = format!("a mapping with `kind:` (one of {listed})");
    let mut map = match Value::deserialize(d)? {
        Value::Mapping(map) => map,
        // The text may hold a secret (a URL with its password): the file's errors are scrubbed
        // of those before they are shown.
        Value::String(s) => {
            return Err(D::Error::custom(format!("{section}: found the text \"{s}\", expected {expected}")))
        }
        _ => return Err(D::Error::custom(format!("{section}: expected {expected}"))),
    };
    match map.remove("kind") {
        Some(Value::String(kind)) if kinds.contains(&kind.as_str()) => Ok((kind, Value::Mapping(map))),
        Some(Value::String(kind)) => {
            Err(D::Error::custom(format!("{section}.kind: unknown kind `{kind}`, expected one of {listed}")))
        }
        Some(_) => Err(D::Error::custom(format!("{section}.kind: expected one of {listed}"))),
        None => Err(D::Error::custom(format!("{section}: missing `kind` (one of {listed})"))),
    }
}

/// One kind's settings from the rest of its mapping (`section`: `source`, `target`); an
/// error names the key path in it, as `source.snapshot.chunk_rows`.
pub fn settings<T: DeserializeOwned, E: Error>(section: &str, rest: Value) -> Result<T, E> {
    serde_path_to_error::deserialize(rest).map_err(|e| {
        let path = e.path().to_string();
        match path.as_str() {
            "." => E::custom(format!("{section}: {}", e.into_inner())),
            _ => E::custom(format!("{section}.{path}: {}", e.into_inner())),
        }
    })
}
