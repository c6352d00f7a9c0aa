//! Helpers shared by the GCP list parsers: every GCP list response is an object with one
//! array of resources, and every resource error must name its path.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::kubernetes::{parse_time, type_name};

/// One item of a list response, with its path (`items[3]`) for error messages.
pub type Item<'a> = (String, &'a Map<String, Value>);

/// The items of a list response under `key` (absent or null means none).
pub fn items<'a>(body: &'a Value, key: &str) -> Result<Vec<Item<'a>>, String> {
    let obj = body
        .as_object()
        .ok_or_else(|| format!("expected a list response object, found {}", type_name(body)))?;
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_object()
                    .map(|o| (format!("{key}[{i}]"), o))
                    .ok_or_else(|| {
                        format!("{key}[{i}]: expected an object, found {}", type_name(item))
                    })
            })
            .collect(),
        Some(other) => Err(format!(
            "{key}: expected a list, found {}",
            type_name(other)
        )),
    }
}

pub fn required<'a>(o: &'a Map<String, Value>, path: &str, key: &str) -> Result<&'a str, String> {
    match o.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(other) if !other.is_string() => Err(format!(
            "{path}.{key}: expected a string, found {}",
            type_name(other)
        )),
        _ => Err(format!("{path}.{key}: missing")),
    }
}

pub fn text(o: &Map<String, Value>, key: &str) -> Option<String> {
    match o.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

pub fn time(
    o: &Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<Option<DateTime<Utc>>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_time(s)
            .map(Some)
            .map_err(|e| format!("{path}.{key}: `{s}` is not an RFC 3339 time ({e})")),
        Some(other) => Err(format!(
            "{path}.{key}: expected a time, found {}",
            type_name(other)
        )),
    }
}

pub fn labels(o: &Map<String, Value>) -> BTreeMap<String, String> {
    match o.get("labels") {
        Some(Value::Object(m)) => m
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect(),
        _ => BTreeMap::new(),
    }
}

pub fn strings(o: &Map<String, Value>, key: &str) -> Vec<String> {
    match o.get(key) {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// The last segment of a resource name or URL.
pub fn short_name(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

fn object_at(path: String, v: &Value) -> Result<Item<'_>, String> {
    match v.as_object() {
        Some(o) => Ok((path, o)),
        None => Err(format!(
            "{path}: expected an object, found {}",
            type_name(v)
        )),
    }
}

fn listed_at<'a>(key: &str, v: &'a Value) -> Result<Vec<Item<'a>>, String> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, item)| object_at(format!("{key}[{i}]"), item))
            .collect(),
        other => Err(format!(
            "{key}: expected a list, found {}",
            type_name(other)
        )),
    }
}

/// The resources under `field` of a list body (`{"items": [...]}`), an aggregated list body
/// (`{"items": {"regions/R": {field: [...]}}}`) or a bare array (what gcloud prints).
pub fn scoped_items<'a>(body: &'a Value, field: &str) -> Result<Vec<Item<'a>>, String> {
    match body {
        Value::Array(_) => listed_at("", body),
        Value::Object(o) => match o.get("items") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(items @ Value::Array(_)) => listed_at("items", items),
            Some(Value::Object(scopes)) => {
                let mut out = Vec::new();
                for (scope, scoped) in scopes {
                    let key = format!("items.{scope}.{field}");
                    out.extend(listed_at(&key, scoped.get(field).unwrap_or(&Value::Null))?);
                }
                Ok(out)
            }
            Some(other) => Err(format!(
                "items: expected a list or scoped lists, found {}",
                type_name(other)
            )),
        },
        other => Err(format!(
            "expected a list response or an array, found {}",
            type_name(other)
        )),
    }
}
