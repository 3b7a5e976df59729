//! TrueNAS query filters and options (`middlewared/utils/filter_list.py` semantics) over
//! entries already built: `[[field, op, value], ...]` (all must match; `["OR", [f, ...]]`
//! matches any), and the options clients commonly send — `select`, `order_by` (`-field`
//! descending, `nulls_first:`/`nulls_last:` accepted), `offset`, `limit`, `get`, `count`.

use super::rpc::{Errno, RpcError};
use serde_json::{Map, Value};
use std::cmp::Ordering;

/// Parsed query options.
#[derive(Debug, Default)]
pub struct Options {
    select: Vec<String>,
    order_by: Vec<String>,
    offset: usize,
    limit: usize,
    get: bool,
    count: bool,
}

impl Options {
    /// Reads the `options` object (absent: defaults).
    pub fn parse(value: Option<&Value>) -> Result<Self, RpcError> {
        let mut o = Options::default();
        let Some(value) = value else { return Ok(o) };
        let Value::Object(map) = value else {
            return Err(RpcError::invalid(
                "options",
                "Input should be a valid dictionary or instance of QueryOptions",
            ));
        };
        for (key, v) in map {
            let bad = |what: &str| RpcError::invalid(format!("options.{key}"), what.to_owned());
            match key.as_str() {
                "select" | "order_by" => {
                    let Value::Array(items) = v else {
                        return Err(bad("Input should be a valid list"));
                    };
                    let mut names = Vec::new();
                    for item in items {
                        match item {
                            Value::String(s) => names.push(s.clone()),
                            _ => return Err(bad("Input should be a valid string")),
                        }
                    }
                    if key == "select" {
                        o.select = names;
                    } else {
                        o.order_by = names;
                    }
                }
                "offset" | "limit" => {
                    let n = v
                        .as_u64()
                        .ok_or_else(|| bad("Input should be a valid integer"))?;
                    let n = usize::try_from(n).unwrap_or(usize::MAX);
                    if key == "offset" {
                        o.offset = n;
                    } else {
                        o.limit = n;
                    }
                }
                "get" | "count" => {
                    let b = v
                        .as_bool()
                        .ok_or_else(|| bad("Input should be a valid boolean"))?;
                    if key == "get" {
                        o.get = b;
                    } else {
                        o.count = b;
                    }
                }
                // Accepted and without effect here.
                "extra" | "force_sql_filters" => {}
                _ => return Err(bad("Extra inputs are not permitted")),
            }
        }
        Ok(o)
    }
}

/// A field of an entry by dotted path (`group.bsdgrp_gid`).
fn field<'a>(entry: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(entry, |v, part| v.get(part))
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        _ => None,
    }
}

fn matches(entry: &Value, filter: &Value) -> Result<bool, RpcError> {
    let bad = || RpcError::call(Errno::Einval, format!("Invalid filter {filter}"));
    let Value::Array(parts) = filter else {
        return Err(bad());
    };
    if let [Value::String(or), Value::Array(alternatives)] = parts.as_slice()
        && or == "OR"
    {
        for alt in alternatives {
            // An alternative is one filter or a list of filters that must all match.
            let all = match alt {
                Value::Array(inner) if inner.first().is_some_and(Value::is_array) => {
                    all_match(entry, inner)?
                }
                _ => matches(entry, alt)?,
            };
            if all {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    let [Value::String(name), Value::String(op), value] = parts.as_slice() else {
        return Err(bad());
    };
    let have = field(entry, name).unwrap_or(&Value::Null);
    let text = |v: &Value| v.as_str().map(str::to_owned);
    Ok(match op.as_str() {
        "=" => compare(have, value) == Some(Ordering::Equal),
        "!=" => compare(have, value) != Some(Ordering::Equal),
        ">" => compare(have, value) == Some(Ordering::Greater),
        ">=" => matches!(
            compare(have, value),
            Some(Ordering::Greater | Ordering::Equal)
        ),
        "<" => compare(have, value) == Some(Ordering::Less),
        "<=" => matches!(compare(have, value), Some(Ordering::Less | Ordering::Equal)),
        "in" | "nin" => {
            let Value::Array(set) = value else {
                return Err(bad());
            };
            let found = set
                .iter()
                .any(|v| compare(have, v) == Some(Ordering::Equal));
            found == (op == "in")
        }
        "rin" | "rnin" => {
            let found = match have {
                Value::Array(items) => items
                    .iter()
                    .any(|v| compare(v, value) == Some(Ordering::Equal)),
                Value::String(s) => value.as_str().is_some_and(|v| s.contains(v)),
                _ => false,
            };
            found == (op == "rin")
        }
        "^" | "!^" | "$" | "!$" => {
            let (Some(h), Some(v)) = (text(have), text(value)) else {
                return Ok(op.starts_with('!'));
            };
            let hit = if op.ends_with('^') {
                h.starts_with(&v)
            } else {
                h.ends_with(&v)
            };
            hit != op.starts_with('!')
        }
        _ => {
            return Err(RpcError::call(
                Errno::Einval,
                format!("{op}: unsupported filter operation"),
            ));
        }
    })
}

fn all_match(entry: &Value, filters: &[Value]) -> Result<bool, RpcError> {
    for f in filters {
        if !matches(entry, f)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Applies `filters` and `options` to `entries`, TrueNAS-style.
pub fn run(entries: Vec<Value>, filters: &[Value], options: &Options) -> Result<Value, RpcError> {
    let mut kept = Vec::new();
    for entry in entries {
        if all_match(&entry, filters)? {
            kept.push(entry);
        }
    }
    for key in options.order_by.iter().rev() {
        let key = key
            .trim_start_matches("nulls_first:")
            .trim_start_matches("nulls_last:");
        let (key, descending) = match key.strip_prefix('-') {
            Some(k) => (k, true),
            None => (key, false),
        };
        kept.sort_by(|a, b| {
            let o = compare(
                field(a, key).unwrap_or(&Value::Null),
                field(b, key).unwrap_or(&Value::Null),
            )
            .unwrap_or(Ordering::Equal);
            if descending { o.reverse() } else { o }
        });
    }
    if options.count {
        return Ok(Value::from(kept.len()));
    }
    let kept = kept.into_iter().skip(options.offset);
    let kept: Vec<Value> = if options.limit > 0 {
        kept.take(options.limit).collect()
    } else {
        kept.collect()
    };
    let kept: Vec<Value> = kept
        .into_iter()
        .map(|entry| select(entry, &options.select))
        .collect();
    if options.get {
        return kept
            .into_iter()
            .next()
            .ok_or_else(|| RpcError::call(Errno::Enoent, "MatchNotFound()"));
    }
    Ok(Value::Array(kept))
}

fn select(entry: Value, fields: &[String]) -> Value {
    if fields.is_empty() {
        return entry;
    }
    let mut out = Map::new();
    for name in fields {
        if let Some(v) = field(&entry, name) {
            out.insert(name.clone(), v.clone());
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn users() -> Vec<Value> {
        vec![
            json!({"id": 1, "username": "alice", "locked": false, "roles": ["FULL_ADMIN"]}),
            json!({"id": 2, "username": "bob", "locked": true, "roles": []}),
            json!({"id": 3, "username": "carol", "locked": false, "roles": []}),
        ]
    }

    fn q(filters: Value, options: Value) -> Value {
        let Value::Array(f) = filters else { panic!() };
        run(users(), &f, &Options::parse(Some(&options)).unwrap()).unwrap()
    }

    #[test]
    fn filters_and_options() {
        assert_eq!(q(json!([["username", "=", "bob"]]), json!({}))[0]["id"], 2);
        assert_eq!(
            q(json!([["locked", "=", false]]), json!({"count": true})),
            2
        );
        assert_eq!(
            q(
                json!([["roles", "rin", "FULL_ADMIN"]]),
                json!({"get": true})
            )["username"],
            "alice"
        );
        assert_eq!(
            q(
                json!([["id", "in", [1, 3]]]),
                json!({"order_by": ["-id"], "select": ["username"]})
            ),
            json!([{"username": "carol"}, {"username": "alice"}])
        );
        assert_eq!(
            q(
                json!([["OR", [["id", "=", 1], ["username", "^", "ca"]]]]),
                json!({"count": true})
            ),
            2
        );
        assert_eq!(
            q(json!([]), json!({"offset": 1, "limit": 1}))[0]["username"],
            "bob"
        );
        let none = run(
            users(),
            &[json!(["id", "=", 9])],
            &Options::parse(Some(&json!({"get": true}))).unwrap(),
        );
        assert!(none.is_err());
        assert!(Options::parse(Some(&json!({"bogus": 1}))).is_err());
        assert!(run(users(), &[json!(["id", "~", 1])], &Options::default()).is_err());
    }
}
