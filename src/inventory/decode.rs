//! List pages of the data kinds (ConfigMaps, and Secrets as metadata), decoded straight into
//! records.
//!
//! These are most of what a cluster holds (in the cluster, 25,000 of 27,000 objects),
//! and a record needs little of them: the metadata, a Secret's type, and the namespaces a
//! ConfigMap's values name through cluster DNS. Building a generic JSON tree of each page only
//! to read that cost two thirds of an audit's time and most of its memory. Here the page is
//! read once: metadata into a small typed struct (`managedFields`, often the largest part,
//! is skipped unread), every other string scanned for DNS names where it lies.
//!
//! The generic reader ([`KubeObject::from_json`]) stays the definition: a page this decoder
//! refuses for any reason (an unusual value, a field of another type) is decoded again by it,
//! so a strange object is read exactly as before or named in the same error, and a test
//! checks that both readers make the same record of the same object.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::kubernetes::{KubeObject, LAST_APPLIED_ANNOTATION, ObjectRef, OwnerRef, parse_time};
use super::relations::{sql_refs_in, svc_namespaces};
use crate::policy::AuditedKind;

/// What a list page says of itself: where the next page starts.
#[derive(Debug, Default, Deserialize)]
pub(super) struct PageMeta {
    #[serde(default, rename = "continue")]
    pub next: Option<String>,
}

/// A list page of data-kind items (its metadata, where the next page starts, is read by
/// the lister).
#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    items: Option<Vec<DataItem>>,
}

/// A list page of Secrets of one type: only their keys are needed.
#[derive(Deserialize)]
struct KeyPage {
    #[serde(default)]
    items: Option<Vec<KeyItem>>,
}

#[derive(Deserialize)]
struct KeyItem {
    metadata: KeyMeta,
}

#[derive(Deserialize)]
struct KeyMeta {
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// The metadata a record reads; the rest (`managedFields` above all) is skipped unread.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<ResourceVersion>,
    creation_timestamp: Option<String>,
    deletion_timestamp: Option<IgnoredAny>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<Owner>>,
}

/// `resourceVersion` is a string; the generic reader also takes a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum ResourceVersion {
    Text(String),
    Number(serde_json::Number),
}

#[derive(Deserialize)]
struct Owner {
    kind: Option<String>,
    name: Option<String>,
    uid: Option<String>,
}

/// One ConfigMap or Secret of a page.
struct DataItem {
    metadata: Option<Meta>,
    secret_type: Option<String>,
    /// Namespaces named through cluster DNS outside `metadata` and `status`.
    dns: Vec<String>,
    /// Cloud SQL connection names and addresses outside `metadata` and `status`.
    sql: Vec<String>,
}

impl<'de> Deserialize<'de> for DataItem {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(DataItemVisitor)
    }
}

struct DataItemVisitor;

/// The fields of a ConfigMap or a Secret.
const FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "data",
    "binaryData",
    "stringData",
    "immutable",
    "type",
    "status",
];

impl<'de> Visitor<'de> for DataItemVisitor {
    type Value = DataItem;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DataItem, A::Error> {
        let mut item = DataItem {
            metadata: None,
            secret_type: None,
            dns: Vec::new(),
            sql: Vec::new(),
        };
        let mut seen_metadata = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "metadata" => {
                    if seen_metadata {
                        return Err(de::Error::duplicate_field("metadata"));
                    }
                    seen_metadata = true;
                    item.metadata = map.next_value()?;
                }
                "status" => {
                    map.next_value::<IgnoredAny>()?;
                }
                // A Secret's type; on a ConfigMap an unknown field, scanned like the rest.
                "type" => {
                    let value: Option<String> = map.next_value()?;
                    if let Some(text) = &value {
                        item.dns.extend(svc_namespaces(text));
                        item.sql.extend(sql_refs_in(text));
                    }
                    item.secret_type = value;
                }
                "apiVersion" | "kind" | "data" | "binaryData" | "stringData" | "immutable" => {
                    map.next_value_seed(Scan {
                        dns: &mut item.dns,
                        sql: &mut item.sql,
                    })?
                }
                // Not a ConfigMap's or a Secret's field: the generic reader reads the page.
                other => return Err(de::Error::unknown_field(other, FIELDS)),
            }
        }
        Ok(item)
    }
}

/// Walks any JSON value, keeping only the namespaces its strings name through cluster DNS and
/// the Cloud SQL instances they name (what `relations::analyse` reads of every value but
/// metadata and status).
struct Scan<'a> {
    dns: &'a mut Vec<String>,
    sql: &'a mut Vec<String>,
}

impl Scan<'_> {
    fn again(&mut self) -> Scan<'_> {
        Scan {
            dns: &mut *self.dns,
            sql: &mut *self.sql,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Scan<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Scan<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.dns.extend(svc_namespaces(v));
        self.sql.extend(sql_refs_in(v));
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self.again())?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(self.again())?;
        }
        Ok(())
    }
}

/// A page of ConfigMaps (`kind`) or of Secrets' metadata, as records. `secret_type` gives a Secret its type (metadata lists do not carry it). `None`
/// when this decoder does not take the page: the caller reads it with the generic reader.
pub fn data_page(
    bytes: &[u8],
    api_version: &str,
    kind: &str,
    mut secret_type: impl FnMut(&str, &str) -> Option<String>,
) -> Option<Vec<KubeObject>> {
    let page: Page = serde_json::from_slice(bytes).ok()?;
    let items = page.items.unwrap_or_default();
    let mut records = Vec::with_capacity(items.len());
    for item in items {
        let mut item = item;
        if kind == "Secret" {
            // A metadata list's item has no type of its own: the typed lists give it.
            let meta = item.metadata.as_ref()?;
            item.secret_type = secret_type(
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default(),
            );
            item.dns.clear();
            item.sql.clear();
        }
        records.push(record(item, api_version, kind)?);
    }
    Some(records)
}

/// A page of Secrets listed by type: their (namespace, name).
pub fn key_page(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    let page: KeyPage = serde_json::from_slice(bytes).ok()?;
    let keys = page
        .items
        .unwrap_or_default()
        .into_iter()
        .map(|i| {
            (
                i.metadata.namespace.unwrap_or_default(),
                i.metadata.name.unwrap_or_default(),
            )
        })
        .collect();
    Some(keys)
}

/// A list page's items as generic JSON, each without `metadata.managedFields`, which no
/// decision reads and [`redact`](super::kubernetes::redact) removes from every record: in a
/// page of Pods it is a third of the bytes and most of the small maps a generic tree would
/// build only to drop. `None` when the page is not what this reader expects (an item or its
/// metadata not an object, `items` not a list): the caller reads it with the generic
/// reader, which names the problem as before.
pub fn items_without_managed_fields(bytes: &[u8]) -> Option<Vec<Value>> {
    #[derive(Deserialize)]
    struct GenericPage {
        #[serde(default)]
        items: Option<Vec<Item>>,
    }
    let page: GenericPage = serde_json::from_slice(bytes).ok()?;
    Some(
        page.items
            .unwrap_or_default()
            .into_iter()
            .map(|item| item.0)
            .collect(),
    )
}

/// An object, its `metadata` read by [`Metadata`].
struct Item(Value);

/// An object's metadata without `managedFields` (skipped unread).
struct Metadata(Value);

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(FieldsVisitor { metadata: true })
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(FieldsVisitor { metadata: false })
            .map(|item| Metadata(item.0))
    }
}

/// An object's fields (`metadata: true`: its `metadata` read as [`Metadata`]) or its
/// metadata's (`false`: `managedFields` skipped).
struct FieldsVisitor {
    metadata: bool,
}

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Item;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
        let mut fields = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = if self.metadata && key == "metadata" {
                map.next_value::<Metadata>()?.0
            } else if !self.metadata && key == "managedFields" {
                map.next_value::<IgnoredAny>()?;
                continue;
            } else {
                map.next_value::<Value>()?
            };
            fields.insert(key, value);
        }
        Ok(Item(Value::Object(fields)))
    }
}

/// The record `KubeObject::from_json` makes of the same object, or `None` where that reader
/// might say something else (it then reads the page).
fn record(item: DataItem, api_version: &str, kind: &str) -> Option<KubeObject> {
    let meta = item.metadata?;
    let name = meta.name.filter(|n| !n.is_empty())?;
    let namespace = meta.namespace.filter(|n| !n.is_empty());
    let created = match &meta.creation_timestamp {
        Some(text) => Some(parse_time(text).ok()?),
        None => None,
    };
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.remove(LAST_APPLIED_ANNOTATION);
    let owners = meta
        .owner_references
        .unwrap_or_default()
        .into_iter()
        .map(|o| OwnerRef {
            kind: o.kind.unwrap_or_default(),
            name: o.name.unwrap_or_default(),
            uid: o.uid,
        })
        .collect();
    let mut record = KubeObject {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        namespace,
        name,
        uid: meta.uid,
        resource_version: meta.resource_version.map(|v| match v {
            ResourceVersion::Text(s) => s,
            ResourceVersion::Number(n) => n.to_string(),
        }),
        created,
        deleting: meta.deletion_timestamp.is_some(),
        labels: meta.labels.unwrap_or_default(),
        annotations,
        owners,
        ..KubeObject::default()
    };
    if kind == "Secret" {
        record.secret_type = item.secret_type;
        if record.secret_type.as_deref() == Some("kubernetes.io/service-account-token")
            && let (Some(ns), Some(sa)) = (
                record.namespace.clone(),
                record
                    .annotations
                    .get("kubernetes.io/service-account.name")
                    .cloned(),
            )
        {
            record.uses.push(ObjectRef {
                kind: AuditedKind::ServiceAccount,
                namespace: ns,
                name: sa,
            });
        }
    } else {
        let mut dns = item.dns;
        let own = record.namespace.clone().unwrap_or_default();
        dns.retain(|ns| ns != &own);
        dns.sort();
        dns.dedup();
        record.namespace_refs = dns;
        let mut sql = item.sql;
        sql.sort();
        sql.dedup();
        record.cloud_sql_refs = sql;
    }
    Some(record)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    fn generic(item: &Value, api_version: &str, kind: &str) -> Result<KubeObject, String> {
        let mut item = item.clone();
        item["apiVersion"] = json!(api_version);
        item["kind"] = json!(kind);
        KubeObject::from_json(&item)
    }

    fn page_of(items: &[Value]) -> Vec<u8> {
        serde_json::to_vec(&json!({"kind": "ConfigMapList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "9", "continue": "next-page"}, "items": items}))
        .unwrap()
    }

    /// Both readers, on one object: the same record, or the typed one declines (which it
    /// must not do of an ordinary object, `must_take`, that the generic reader reads).
    fn same_record(item: &Value, kind: &str, secret_type: Option<&str>, must_take: bool) {
        let bytes = page_of(std::slice::from_ref(item));
        let typed = data_page(&bytes, "v1", kind, |_, _| secret_type.map(str::to_string));
        let mut expected = item.clone();
        if let Some(t) = secret_type {
            expected["type"] = json!(t);
        }
        let generic = generic(&expected, "v1", kind);
        match typed {
            Some(records) => {
                let generic = generic.unwrap_or_else(|e| {
                    panic!("the typed reader took what the generic refuses ({e}): {item}")
                });
                assert_eq!(
                    format!("{:?}", records[0]),
                    format!("{generic:?}"),
                    "{item}"
                );
            }
            // The generic reader reads the page instead: the same result by definition.
            None => assert!(
                !(must_take && generic.is_ok()),
                "the typed reader declined an ordinary object: {item}"
            ),
        }
    }

    #[test]
    fn a_configmap_becomes_the_record_the_generic_reader_makes() {
        let cm = json!({"metadata": {"name": "app-config", "namespace": "aia-staging",
            "uid": "u-1", "resourceVersion": "77", "creationTimestamp": "2026-10-01T00:00:00Z",
            "labels": {"app": "api"},
            "annotations": {"team": "x", LAST_APPLIED_ANNOTATION: "{\"data\":{\"p\":\"secret\"}}"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u-2"}],
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:data": {}}}]},
            "data": {"url": "http://api.billing.svc.cluster.local:8080", "self": "x.aia-staging.svc",
                "n": "nothing", "DB_HOST": "aia-prod:europe-west4:orders", "DB_IP": "10.2.3.4:5432"},
            "binaryData": {"b": "YmluYXJ5"}, "immutable": true});
        same_record(&cm, "ConfigMap", None, true);
        let bytes = page_of(&[cm]);
        let records = data_page(&bytes, "v1", "ConfigMap", |_, _| None).unwrap();
        assert_eq!(records[0].namespace_refs, ["billing"]);
        // The databases its data names keep their Cloud SQL instances.
        assert_eq!(
            records[0].cloud_sql_refs,
            ["10.2.3.4", "aia-prod:europe-west4:orders"]
        );
        assert!(!records[0].annotations.contains_key(LAST_APPLIED_ANNOTATION));
    }

    #[test]
    fn a_service_account_token_keeps_its_account_as_before() {
        let secret = json!({"metadata": {"name": "sa-token", "namespace": "n",
            "annotations": {"kubernetes.io/service-account.name": "builder"}}});
        same_record(
            &secret,
            "Secret",
            Some("kubernetes.io/service-account-token"),
            true,
        );
        let bytes = page_of(&[secret]);
        let records = data_page(&bytes, "v1", "Secret", |_, _| {
            Some("kubernetes.io/service-account-token".to_string())
        })
        .unwrap();
        assert_eq!(
            records[0].uses.len(),
            1,
            "the token keeps its ServiceAccount"
        );
    }

    #[test]
    fn what_the_typed_reader_does_not_take_is_left_to_the_generic_one() {
        for odd in [
            json!({"metadata": {"name": "n", "labels": {"replicas": 3}}}),
            json!({"metadata": {"name": ""}}),
            json!({"metadata": {"name": "n", "creationTimestamp": "yesterday"}}),
            json!({"metadata": {"name": 5}}),
            json!({"data": {}}),
        ] {
            let bytes = page_of(std::slice::from_ref(&odd));
            assert!(
                data_page(&bytes, "v1", "ConfigMap", |_, _| None).is_none(),
                "{odd}"
            );
        }
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9-]{0,12}",
            "[a-z]{1,6}\\.[a-z]{1,6}\\.svc(\\.cluster\\.local)?(:[0-9]{2,4})?",
            "http://[a-z]{1,5}\\.[a-z-]{1,8}\\.svc[A-Za-z./]{0,6}",
            ".{0,16}",
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            text().prop_map(Value::String),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|n| json!(n)),
            Just(Value::Null),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn both_readers_make_the_same_record_of_any_object(
            name in "[a-z0-9-]{0,10}",
            namespace in prop::option::of("[a-z-]{0,10}"),
            labels in prop::collection::btree_map("[a-z./]{1,10}", text(), 0..3),
            annotations in prop::collection::btree_map("[a-z./-]{1,12}", text(), 0..3),
            rv in prop_oneof![Just(json!("12")), Just(json!(12)), Just(Value::Null)],
            deleting in prop_oneof![Just(None), Just(Some(Value::Null)), Just(Some(json!("2026-11-01T00:00:00Z")))],
            data in prop::collection::btree_map("[a-z]{1,6}", json_value(), 0..4),
            extra in prop::option::of((
                prop_oneof![Just("immutable"), Just("binaryData"), Just("spec")], json_value())),
            status in prop::option::of(json_value()),
            kind in prop_oneof![Just("ConfigMap"), Just("Secret")],
            secret_type in prop::option::of(prop_oneof![
                Just("Opaque"), Just("kubernetes.io/service-account-token")]),
        ) {
            let mut meta = json!({"name": name, "labels": labels, "annotations": annotations,
                "resourceVersion": rv, "creationTimestamp": "2026-10-01T00:00:00Z",
                "ownerReferences": [{"kind": "Pod", "name": "p"}]});
            if let Some(ns) = namespace { meta["namespace"] = json!(ns); }
            if let Some(d) = deleting { meta["deletionTimestamp"] = d; }
            let mut item = json!({"metadata": meta, "data": data});
            let ordinary = !matches!(extra, Some(("spec", _)));
            if let Some((key, value)) = extra { item[key] = value; }
            if let Some(s) = status { item["status"] = s; }
            let secret_type = if kind == "Secret" { secret_type } else { None };
            same_record(&item, kind, secret_type, ordinary);
        }
    }
}
