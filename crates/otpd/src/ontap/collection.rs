//! ONTAP's collection conventions (NetApp "ONTAP REST API: query parameters"): field
//! filters with `*` wildcards, `|` alternatives and `!` negation (case-insensitive),
//! `fields` (`*` for all), `max_records` with a `_links.next.href` the client follows
//! verbatim, `return_records`, `return_timeout`, `order_by`, and `num_records`. One engine
//! for every collection of the dialect; the records come from the core's directory, page by
//! page, in name order, so a million accounts are walked with bounded memory.

use super::error::OntapError;
use crate::app::AppState;
use otpd_core::{DirectoryEntry, DirectoryQuery, Principal};
use serde_json::{Map, Value, json};
use std::time::{Duration, Instant};

/// Records in one answer at most, whatever `max_records` says: a larger collection is
/// answered in pages linked by `_links.next`. An answer is built whole before it is sent:
/// a page of 10,000 full records held about 115 MiB at its peak, one of 1,000 about 12 MiB.
pub const MAX_PAGE: usize = 1_000;

/// Field filters in one query at most: each is matched against every record walked.
const MAX_FILTERS: usize = 16;

/// Accounts read from the core per batch.
const BATCH: u32 = 500;

/// One collection of the dialect.
pub struct Collection {
    /// Its path, e.g. `/api/security/login/totps`.
    pub path: &'static str,
    /// The field the records are ordered by (the account's name), as `order_by` names it.
    pub order_field: &'static str,
    /// The fields every record carries (its key).
    pub key_fields: &'static [&'static str],
    /// Every field a record may carry (leaves, dotted): what `fields` and filters may name.
    pub fields: &'static [&'static str],
    /// The fields that are booleans (their filters take `true`/`false` only).
    pub booleans: &'static [&'static str],
    /// Only accounts with an active authenticator.
    pub with_factor_only: bool,
}

impl Collection {
    /// The query parameter carrying the cursor of the next page.
    fn start_param(&self) -> String {
        format!("start.{}", self.order_field)
    }

    fn knows(&self, field: &str) -> bool {
        knows(self.fields, field)
    }
}

/// Whether `field` is one of `fields` or an object holding some (`owner` for `owner.uuid`).
fn knows(fields: &[&str], field: &str) -> bool {
    fields.iter().any(|known| {
        *known == field
            || known
                .strip_prefix(field)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// The parameters of a call on one record: `fields` among `known` where `with_fields`
/// (every field without it), and the ones ONTAP takes on every call and that change nothing
/// here (`return_timeout`, `return_records`); anything else is a 400 naming it.
pub fn single(raw: Option<&str>, known: &[&str], with_fields: bool) -> Result<Fields, OntapError> {
    let mut chosen = Fields::All;
    for (name, value) in pairs(raw)? {
        match name.as_str() {
            "fields" if with_fields => chosen = fields(&value, |f| knows(known, f))?,
            "return_timeout" => {
                return_timeout(&value)?;
            }
            "return_records" => {
                boolean(&name, &value)?;
            }
            _ => return Err(OntapError::unexpected(&name)),
        }
    }
    Ok(chosen)
}

/// A parsed collection query.
#[derive(Debug)]
pub struct ListQuery {
    /// Every parameter as received, decoded, in order (for the links).
    pairs: Vec<(String, String)>,
    filters: Vec<(String, String)>,
    fields: Fields,
    max_records: Option<usize>,
    return_records: bool,
    return_timeout: Duration,
    descending: bool,
    start: Option<String>,
}

/// What `fields` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fields {
    /// No `fields`: the key fields (and `_links`).
    Key,
    /// `*` or `**`: everything.
    All,
    /// These, besides the key fields.
    These(Vec<String>),
}

/// The decoded parameters of a query string (`+` is a space, `%XX` a byte); a string that
/// does not decode is a 400.
pub fn pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, OntapError> {
    let invalid = || OntapError::invalid("query", "The query string is not valid.");
    let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(raw.unwrap_or(""))
        .map_err(|_| invalid())?;
    // The decoder replaces bytes that are no UTF-8 with U+FFFD: refused rather than
    // matched (or echoed in `_links.self`) as something the client did not send.
    if pairs
        .iter()
        .any(|(k, v)| k.contains('\u{fffd}') || v.contains('\u{fffd}'))
    {
        return Err(invalid());
    }
    Ok(pairs)
}

/// `true`/`false` in any case (Python sends `True`).
pub fn boolean(name: &str, value: &str) -> Result<bool, OntapError> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(OntapError::invalid(
            name,
            format!("The value \"{value}\" is invalid for \"{name}\": expected true or false."),
        ))
    }
}

/// `return_timeout`: 0 to 120 seconds.
pub fn return_timeout(value: &str) -> Result<Duration, OntapError> {
    value
        .parse::<u64>()
        .ok()
        .filter(|s| *s <= 120)
        .map(Duration::from_secs)
        .ok_or_else(|| {
            OntapError::invalid(
                "return_timeout",
                "return_timeout must be a number of seconds from 0 to 120.",
            )
        })
}

/// `fields=a,b.c` against what `knows` accepts.
pub fn fields(value: &str, knows: impl Fn(&str) -> bool) -> Result<Fields, OntapError> {
    let mut these = Vec::new();
    for field in value.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        if field == "*" || field == "**" {
            return Ok(Fields::All);
        }
        if !knows(field) {
            return Err(OntapError::invalid(
                "fields",
                format!("The value \"{field}\" is invalid for field \"fields\"."),
            ));
        }
        these.push(field.to_owned());
    }
    Ok(Fields::These(these))
}

impl ListQuery {
    /// Parses a collection's query string; any parameter that is neither a control
    /// parameter nor a field of the collection is a 400 naming it.
    pub fn parse(raw: Option<&str>, c: &Collection) -> Result<Self, OntapError> {
        let pairs = pairs(raw)?;
        let mut q = ListQuery {
            pairs: pairs.clone(),
            filters: Vec::new(),
            fields: Fields::Key,
            max_records: None,
            return_records: true,
            return_timeout: Duration::from_secs(15),
            descending: false,
            start: None,
        };
        let start = c.start_param();
        for (name, value) in pairs {
            match name.as_str() {
                "fields" => q.fields = fields(&value, |f| c.knows(f))?,
                "max_records" => {
                    q.max_records = Some(
                        value
                            .parse::<usize>()
                            .ok()
                            .filter(|n| *n >= 1)
                            .ok_or_else(|| {
                                OntapError::invalid(
                                    "max_records",
                                    "max_records must be a positive number.",
                                )
                            })?,
                    );
                }
                "return_records" => q.return_records = boolean(&name, &value)?,
                "return_timeout" => q.return_timeout = return_timeout(&value)?,
                "order_by" => q.descending = order(&value, c)?,
                _ if name == start => q.start = Some(value),
                _ if c.fields.contains(&name.as_str()) => {
                    if q.filters.len() == MAX_FILTERS {
                        return Err(OntapError::invalid(
                            &name,
                            format!("At most {MAX_FILTERS} field filters per query."),
                        ));
                    }
                    if c.booleans.contains(&name.as_str()) {
                        for alternative in value.split('|') {
                            boolean(&name, alternative.trim_start_matches('!'))?;
                        }
                    }
                    q.filters.push((name, value));
                }
                _ => return Err(OntapError::unexpected(&name)),
            }
        }
        Ok(q)
    }

    fn matches(&self, record: &Value) -> bool {
        self.filters.iter().all(|(field, pattern)| {
            values_at(record, field)
                .iter()
                .any(|value| matches_pattern(pattern, value))
        })
    }

    /// The literal start of the names a filter on the order field admits (`alice`,
    /// `adm*`), lower-cased: the walk starts just before it and ends once past it. None for
    /// alternatives, negations and a leading `*`.
    fn name_prefix(&self, c: &Collection) -> Option<String> {
        let (_, pattern) = self.filters.iter().find(|(f, _)| f == c.order_field)?;
        if pattern.contains('|') || pattern.starts_with('!') {
            return None;
        }
        let literal = pattern.split('*').next().unwrap_or_default().to_lowercase();
        (!literal.is_empty()).then_some(literal)
    }

    /// Answers the query over a fixed set of records (a collection of one SVM).
    pub fn answer_fixed(&self, c: &Collection, all: Vec<Value>) -> Value {
        let matched: Vec<Value> = all
            .iter()
            .filter(|r| self.matches(r))
            .map(|r| project(r, c.key_fields, &self.fields))
            .take(self.max_records.unwrap_or(MAX_PAGE))
            .collect();
        let links = json!({ "self": { "href": self.self_href(c) } });
        if self.return_records {
            json!({ "records": matched, "num_records": matched.len(), "_links": links })
        } else {
            json!({ "num_records": matched.len(), "_links": links })
        }
    }

    /// The href of this page (the request as made).
    fn self_href(&self, c: &Collection) -> String {
        href(
            c.path,
            self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }

    /// The href of the page after `cursor`: every parameter as received, the cursor replaced.
    fn next_href(&self, c: &Collection, cursor: &str) -> String {
        let start = c.start_param();
        let kept = self
            .pairs
            .iter()
            .filter(|(k, _)| *k != start)
            .map(|(k, v)| (k.as_str(), v.as_str()));
        href(c.path, kept.chain([(start.as_str(), cursor)]))
    }
}

/// `order_by=<field> [asc|desc]`: only the account name orders a collection (owner fields
/// are one value for all records, so ordering by them changes nothing and is accepted).
fn order(value: &str, c: &Collection) -> Result<bool, OntapError> {
    let mut descending = false;
    for clause in value.split(',') {
        let mut words = clause.split_whitespace();
        let field = words.next().unwrap_or_default();
        let direction = words.next().unwrap_or("asc");
        if words.next().is_some()
            || !matches!(direction.to_ascii_lowercase().as_str(), "asc" | "desc")
        {
            return Err(OntapError::invalid(
                "order_by",
                format!("The value \"{clause}\" is invalid for field \"order_by\"."),
            ));
        }
        if field == c.order_field {
            descending = direction.eq_ignore_ascii_case("desc");
        } else if !field.starts_with("owner.") || !c.knows(field) {
            return Err(OntapError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "3",
                format!(
                    "Ordering by \"{field}\" is not supported; order by \"{}\".",
                    c.order_field
                ),
            )
            .target("order_by"));
        }
    }
    Ok(descending)
}

fn href<'a>(path: &str, pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let pairs: Vec<_> = pairs.collect();
    if pairs.is_empty() {
        return path.to_owned();
    }
    match serde_urlencoded::to_string(pairs) {
        Ok(query) => format!("{path}?{query}"),
        Err(_) => path.to_owned(),
    }
}

/// The string forms of the value(s) at a dotted `path` (through arrays: any element).
fn values_at(record: &Value, path: &str) -> Vec<String> {
    let mut here = vec![record];
    for part in path.split('.') {
        here = here
            .into_iter()
            .flat_map(|v| match v {
                Value::Array(items) => items.iter().filter_map(|i| i.get(part)).collect(),
                other => other.get(part).into_iter().collect::<Vec<_>>(),
            })
            .collect();
    }
    here.into_iter()
        .flat_map(|v| match v {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        })
        .filter_map(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect()
}

/// ONTAP's query value: alternatives split by `|`, each optionally negated by a leading `!`,
/// `*` matching any run of characters; case-insensitive.
pub fn matches_pattern(pattern: &str, value: &str) -> bool {
    let value: Vec<char> = value.to_lowercase().chars().collect();
    pattern.split('|').any(|alternative| {
        let (negated, glob) = match alternative.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, alternative),
        };
        let glob: Vec<char> = glob.to_lowercase().chars().collect();
        wildcard(&glob, &value) != negated
    })
}

/// Whether `glob` (with `*`) matches all of `text`: linear, backtracking only to the last
/// star.
fn wildcard(glob: &[char], text: &[char]) -> bool {
    let (mut g, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if g < glob.len() && glob[g] == '*' {
            star = Some((g, t));
            g += 1;
        } else if g < glob.len() && glob[g] == text[t] {
            g += 1;
            t += 1;
        } else if let Some((sg, st)) = star {
            g = sg + 1;
            t = st + 1;
            star = Some((sg, st + 1));
        } else {
            return false;
        }
    }
    glob[g..].iter().all(|c| *c == '*')
}

/// The record with only the key fields and those asked for (and every `_links` on the way).
pub fn project(full: &Value, key_fields: &[&str], fields: &Fields) -> Value {
    let asked: Vec<&str> = match fields {
        Fields::All => return full.clone(),
        Fields::Key => Vec::new(),
        Fields::These(these) => these.iter().map(String::as_str).collect(),
    };
    let mut out = Map::new();
    let Some(src) = full.as_object() else {
        return Value::Object(out);
    };
    for path in key_fields.iter().copied().chain(asked) {
        let parts: Vec<&str> = path.split('.').collect();
        copy(src, &mut out, &parts);
    }
    if let Some(links) = src.get("_links") {
        out.insert("_links".into(), links.clone());
    }
    Value::Object(out)
}

fn copy(src: &Map<String, Value>, dst: &mut Map<String, Value>, path: &[&str]) {
    let Some((head, rest)) = path.split_first() else {
        return;
    };
    let Some(value) = src.get(*head) else {
        return;
    };
    if rest.is_empty() {
        dst.insert((*head).into(), value.clone());
        return;
    }
    let Some(child) = value.as_object() else {
        return;
    };
    let Value::Object(out) = dst
        .entry(*head)
        .or_insert_with(|| Value::Object(Map::new()))
    else {
        return;
    };
    if let Some(links) = child.get("_links") {
        out.insert("_links".into(), links.clone());
    }
    copy(child, out, rest);
}

/// Answers a collection query: walks the core's directory in name order from the query's
/// cursor, keeps the records that match its filters, and stops at `max_records` (at most
/// [`MAX_PAGE`]) or when `return_timeout` has passed — then with a `_links.next` from where
/// it stopped. With `return_records=false` only `num_records` (every match) is answered.
pub async fn answer(
    state: &AppState,
    principal: &Principal,
    c: &Collection,
    q: &ListQuery,
    record: impl Fn(&DirectoryEntry) -> Value,
) -> Result<Value, OntapError> {
    // Within the request timeout too (its 503 would carry no ONTAP body).
    let deadline = Instant::now() + q.return_timeout.min(state.request_timeout / 2);
    let page = q.max_records.unwrap_or(MAX_PAGE).min(MAX_PAGE);
    let mut records = Vec::new();
    let mut matched = 0usize;
    let mut cursor = q.start.clone();
    let mut next = None;
    // Names order bytewise (DirectoryQuery): those with a prefix are one run.
    let prefix = q.name_prefix(c).filter(|_| !q.descending);
    if let Some(prefix) = &prefix {
        let mut floor = prefix.clone();
        floor.pop();
        if cursor.as_deref().is_none_or(|c| c.to_lowercase() < floor) {
            cursor = Some(floor);
        }
    }
    'walk: loop {
        let batch = state
            .service
            .list_directory(
                principal,
                &DirectoryQuery {
                    after: cursor.clone(),
                    descending: q.descending,
                    limit: BATCH,
                    with_factor_only: c.with_factor_only,
                    prefix: None,
                },
            )
            .await?;
        let last_batch = batch.len() < BATCH as usize;
        let count = batch.len();
        for (i, entry) in batch.into_iter().enumerate() {
            if let Some(prefix) = &prefix {
                let name = entry.username.to_lowercase();
                if name.as_str() > prefix.as_str() && !name.starts_with(prefix.as_str()) {
                    break 'walk;
                }
            }
            cursor = Some(entry.username.clone());
            let full = record(&entry);
            if !q.matches(&full) {
                continue;
            }
            matched += 1;
            if q.return_records {
                records.push(project(&full, c.key_fields, &q.fields));
                if records.len() == page {
                    if !(last_batch && i + 1 == count) {
                        next = cursor.clone();
                    }
                    break 'walk;
                }
            }
        }
        if last_batch {
            break;
        }
        if Instant::now() >= deadline {
            next = cursor.clone();
            break;
        }
    }
    let mut links = json!({ "self": { "href": q.self_href(c) } });
    if let Some(cursor) = next {
        links["next"] = json!({ "href": q.next_href(c, &cursor) });
    }
    Ok(if q.return_records {
        json!({ "records": records, "num_records": records.len(), "_links": links })
    } else {
        json!({ "num_records": matched, "_links": links })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches_pattern("alice", "Alice"));
        assert!(matches_pattern("a*", "alice"));
        assert!(matches_pattern("*ic*", "alice"));
        assert!(matches_pattern("bob|al*", "alice"));
        assert!(!matches_pattern("bob|carol", "alice"));
        assert!(matches_pattern("!bob", "alice"));
        assert!(!matches_pattern("!al*", "alice"));
        assert!(matches_pattern("*", ""));
        assert!(!matches_pattern("a", ""));
        assert!(matches_pattern("a**e", "alice"));
    }

    #[test]
    fn projection_keeps_keys_links_and_asked_fields() {
        let full = json!({
            "owner": {"uuid": "u", "name": "n", "_links": {"self": {"href": "/o"}}},
            "account": {"name": "alice", "_links": {"self": {"href": "/a"}}},
            "comment": "c", "enabled": true,
            "_links": {"self": {"href": "/s"}}
        });
        let keys = ["owner.uuid", "account.name"];
        let key_only = project(&full, &keys, &Fields::Key);
        assert_eq!(
            key_only,
            json!({
                "owner": {"uuid": "u", "_links": {"self": {"href": "/o"}}},
                "account": {"name": "alice", "_links": {"self": {"href": "/a"}}},
                "_links": {"self": {"href": "/s"}}
            })
        );
        let with = project(
            &full,
            &keys,
            &Fields::These(vec!["enabled".into(), "owner".into()]),
        );
        assert_eq!(with["enabled"], json!(true));
        assert_eq!(with["owner"]["name"], json!("n"));
        assert!(with.get("comment").is_none());
        assert_eq!(project(&full, &keys, &Fields::All), full);
    }
}
