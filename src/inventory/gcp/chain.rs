//! What the load balancer kinds below the target proxies share (URL maps, backend services
//! and buckets, health checks): their records, the links one part holds to another, and how
//! a part learns who names it. Not a kind itself.
//!
//! A part is named `NAME` (global) or `REGION/NAME` (regional), and its list is stored as one
//! snapshot file holding both (the global list followed by the regional scopes of the
//! aggregated list). A part is proved unused only from the recorded files of every kind that
//! can name it: one of them missing keeps every part (`unproven`).

use serde_json::{Map, Value};

use super::{FileError, Files, parse_file};
use crate::inventory::gcp_common::{labels, required, scoped_items, text, time};
use crate::inventory::{GcpKind, GcpResource, Referrer};

/// Every global and regional item of one Compute collection, as the body `{"items": [...]}`:
/// the global list, then the regional scopes of the aggregated list (every page of both; an
/// unreachable region fails it). Read once per run whichever kind asks first.
macro_rules! global_and_regional {
    ($clients:expr, $file:expr, $global:ident, $regional_field:ident, $what:literal) => {{
        let clients: &$crate::inventory::gcp_live::GcpClients = $clients;
        clients
            .shared_list($file, || async {
                let c = $crate::inventory::gcp_live::client!(
                    clients,
                    $global,
                    $crate::inventory::gcp_live::COMPUTE
                )?;
                let mut items = $crate::inventory::gcp_live::compute_list!(
                    c,
                    clients.project.clone(),
                    concat!($what, ".list")
                )?;
                items.extend($crate::inventory::gcp_live::aggregated_list!(
                    c,
                    clients.project,
                    concat!($what, ".aggregatedList"),
                    "regions/",
                    $regional_field
                )?);
                Ok(serde_json::json!({ "items": items }))
            })
            .await
    }};
}

pub(crate) use global_and_regional;

/// The records of one collection's file (any shape `scoped_items` reads), named
/// `[REGION/]NAME`, with `fingerprint` as the etag enforce re-checks; `with` adds what the
/// kind reads beyond that from each item.
pub fn parse_parts(
    kind: GcpKind,
    body: &Value,
    field: &str,
    with: fn(&mut GcpResource, &Map<String, Value>),
) -> Result<Vec<GcpResource>, String> {
    scoped_items(body, field)?
        .into_iter()
        .map(|(path, o)| {
            let short = required(o, &path, "name")?;
            let mut part = GcpResource {
                id: text(o, "id"),
                self_link: text(o, "selfLink"),
                resource_name: super::forwarding_rule::resource_name(o),
                etag: text(o, "fingerprint"),
                created: time(o, &path, "creationTimestamp")?,
                description: text(o, "description"),
                labels: labels(o),
                ..GcpResource::of(kind, &super::forwarding_rule::scoped_name(o, short))
            };
            with(&mut part, o);
            Ok(part)
        })
        .collect()
}

/// A kind that reads nothing beyond the common fields.
pub fn nothing_more(_: &mut GcpResource, _: &Map<String, Value>) {}

/// Every Compute link anywhere in `value` (a URL map names its services in default
/// services, path rules, route rules, weighted services, mirrors, ...: reading every string
/// finds a field this code does not know about too).
pub fn links(value: &Value) -> Vec<&str> {
    let mut found = Vec::new();
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) if s.contains("projects/") => found.push(s.as_str()),
            Value::Array(items) => stack.extend(items),
            Value::Object(fields) => stack.extend(fields.values()),
            _ => {}
        }
    }
    found
}

/// The `[REGION/]NAME` of the part of collection `coll` (`backendServices`) a link names.
pub fn part_name(link: &str, coll: &str) -> Option<String> {
    let (region, c, name) = super::target_proxy::link_parts(link)?;
    (c == coll).then(|| match region {
        Some(r) => format!("{r}/{name}"),
        None => name.to_string(),
    })
}

/// The parts of `coll` each item of a referrer's file names, with that item's report name.
pub type Named = Vec<(String, String)>;

/// Reads the referrer file `file` (items under `field`): for each item, its report name
/// (`name_of`) and the names of every `coll` part it links to in the fields `within` selects.
/// `None` when the file is absent.
pub fn named_in(
    files: &dyn Files,
    file: &str,
    field: &str,
    coll: &str,
    name_of: &dyn Fn(&Map<String, Value>, &str) -> String,
    within: &dyn for<'v> Fn(&'v Map<String, Value>) -> Vec<&'v Value>,
) -> Result<Option<Named>, FileError> {
    parse_file(files, file, |body| {
        let mut named = Vec::new();
        for (path, o) in scoped_items(body, field)? {
            let short = required(o, &path, "name")?;
            let referrer = name_of(o, short);
            for v in within(o) {
                for link in links(v) {
                    if let Some(part) = part_name(link, coll) {
                        named.push((part, referrer.clone()));
                    }
                }
            }
        }
        Ok(named)
    })
}

/// One field of the item (`urlMap`, `healthChecks`): only its links count.
pub fn field_of<'v>(o: &'v Map<String, Value>, field: &str) -> Vec<&'v Value> {
    o.get(field).into_iter().collect()
}

/// The whole item: every link in it counts.
pub fn everything(o: &Map<String, Value>) -> Vec<&Value> {
    o.values().collect()
}

/// Gives each part its referrers of `kind` (judged before it, kept or deleted) from `named`.
pub fn refer(parts: &mut [GcpResource], kind: GcpKind, named: &Named) {
    for (part, referrer) in named {
        for p in parts.iter_mut().filter(|p| &p.name == part) {
            let r = Referrer {
                kind,
                name: referrer.clone(),
            };
            if !p.referrers.contains(&r) {
                p.referrers.push(r);
            }
        }
    }
}

/// Keeps each part `named` names as used by `what` (a kind driftsweep does not audit, so
/// nothing it names is deleted): `instance group manager web (autohealing)`.
pub fn used(parts: &mut [GcpResource], what: &str, named: &Named) {
    for (part, referrer) in named {
        for p in parts.iter_mut().filter(|p| &p.name == part) {
            let user = format!("{what} {referrer}");
            if !p.used_by.contains(&user) {
                p.used_by.push(user);
            }
        }
    }
}

/// Nothing proves a part unused without the file of a kind that could name it.
pub fn unproven(parts: &mut [GcpResource], what: &str, file: &str) {
    for p in parts {
        p.used_by
            .push(format!("{what} (not recorded: {file}, so any may name it)"));
    }
}

/// What the target proxies of `types` name in `field` (`urlMap`, `service`), with the
/// proxies' report names (`https/web`); `Err(file)` names the first proxy file not recorded.
pub fn proxies_naming(
    files: &dyn Files,
    coll: &str,
    types: &[&str],
    field: &'static str,
) -> Result<Result<Named, String>, FileError> {
    let mut named = Vec::new();
    for (ty, list, global, regional) in super::target_proxy::TYPES {
        if !types.contains(ty) {
            continue;
        }
        for file in std::iter::once(*global).chain(*regional) {
            let name_of = |o: &Map<String, Value>, short: &str| {
                super::target_proxy::report_name(ty, o, short)
            };
            match named_in(files, file, list, coll, &name_of, &|o| field_of(o, field))? {
                Some(found) => named.extend(found),
                None => return Ok(Err(file.to_string())),
            }
        }
    }
    Ok(Ok(named))
}

/// The part named `name` (tests).
#[cfg(test)]
pub fn by_name<'a>(parts: &'a [GcpResource], name: &str) -> &'a GcpResource {
    parts
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no part {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_link_anywhere_in_a_url_map_is_found() {
        let h = "https://www.googleapis.com/compute/v1/projects/p";
        let map = json!({"defaultService": format!("{h}/global/backendServices/a"),
            "pathMatchers": [{"routeRules": [{"routeAction": {"weightedBackendServices": [
                {"backendService": format!("{h}/regions/r/backendServices/b")}]}}]}],
            "hostRules": [{"hosts": ["example.com"]}]});
        let mut names: Vec<_> = links(&map)
            .into_iter()
            .filter_map(|l| part_name(l, "backendServices"))
            .collect();
        names.sort();
        assert_eq!(names, ["a", "r/b"]);
        assert_eq!(
            part_name(&format!("{h}/global/backendBuckets/a"), "backendServices"),
            None
        );
    }
}
