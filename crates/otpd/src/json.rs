//! JSON as every front door reads it: one behaviour for duplicate object keys — refused,
//! at any depth — instead of serde_json's silent "last one wins" (which `Value`, maps and
//! untyped fields follow) beside serde's "duplicate field" errors for typed structs. A body
//! that names a key twice is ambiguous, and two parsers (a proxy's, ours) may read it
//! differently; refusing it is the only answer both sides agree on.

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;
use std::fmt;

/// Parses `bytes` as JSON into `T`, refusing any object that names a key twice.
///
/// Errors: serde_json's error for malformed JSON or a wrong shape, or
/// `duplicate key "<key>" at line L column C`.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    serde_json::from_slice::<NoDuplicateKeys>(bytes)?;
    serde_json::from_slice(bytes)
}

/// [`from_slice`] for text.
pub fn from_str<T: DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    from_slice(text.as_bytes())
}

/// Any JSON value, checked for duplicate keys and otherwise ignored.
struct NoDuplicateKeys;

impl<'de> Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Check)
    }
}

struct Check;

impl<'de> Visitor<'de> for Check {
    type Value = NoDuplicateKeys;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
        Ok(NoDuplicateKeys)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format_args!("duplicate key {key:?}")));
            }
            map.next_value::<NoDuplicateKeys>()?;
        }
        Ok(NoDuplicateKeys)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        for text in [
            r#"{"a":1,"a":2}"#,
            r#"{"a":{"b":1,"b":1}}"#,
            r#"[{"x":[{"k":1,"k":2}]}]"#,
            r#"{"a\u0062":1,"ab":2}"#,
        ] {
            let e = from_str::<Value>(text).unwrap_err();
            assert!(e.to_string().contains("duplicate key"), "{text}: {e}");
        }
        let v: Value = from_str(r#"{"a":{"a":1},"b":[{"a":2},{"a":3}]}"#).unwrap();
        assert_eq!(v["b"][1]["a"], 3);
    }

    proptest! {
        /// Arbitrary input never panics, and whatever serde_json reads without duplicate
        /// keys reads the same here.
        #[test]
        fn agrees_with_serde_json_on_arbitrary_input(text in ".{0,64}") {
            let plain = serde_json::from_str::<Value>(&text);
            let strict = from_str::<Value>(&text);
            if let Ok(v) = strict {
                prop_assert_eq!(Some(v), plain.ok());
            }
        }

        /// Objects built without repeated keys always pass.
        #[test]
        fn objects_without_repeats_pass(keys in proptest::collection::btree_set("[a-z]{1,4}", 0..8)) {
            let object: serde_json::Map<String, Value> =
                keys.iter().map(|k| (k.clone(), Value::from(k.len()))).collect();
            let text = Value::Object(object.clone()).to_string();
            prop_assert_eq!(from_str::<Value>(&text).ok(), Some(Value::Object(object)));
        }
    }
}
