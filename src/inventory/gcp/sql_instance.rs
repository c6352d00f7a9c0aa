//! Cloud SQL instances (`gcp.sql_instances`). An instance is a database: it is deleted only
//! when the policy opts in (`delete_databases: true`), and never while deletion protection is
//! on, while it has read replicas or is one (Cloud SQL backs up no replica), or while a Pod or
//! workload names its connection name (`PROJECT:REGION:INSTANCE`, as the Cloud SQL Auth Proxy
//! and the connectors are given it) or one of its addresses. Those verdicts are the
//! evaluation's (`evaluate::gcp::sql`).
//!
//! Enforce reads the instance again, takes an on-demand backup run and waits for its operation
//! to end without error, then deletes it with Cloud SQL's final backup (kept
//! `final_backup_days`, outliving the instance), waiting for that operation too. A backup that
//! fails leaves the instance. The snapshot file `sqlInstances.json` holds the REST list body
//! (`{"items": [...]}`) or what `gcloud sql instances list --format=json` prints (an array).

use google_cloud_sql_v1::client::{
    SqlBackupRunsService, SqlInstancesService, SqlOperationsService,
};
use serde_json::Value;

use super::{Boxed, Deletion, FileError, Files, Kind, Listed, Reverify, Target, parse_file};
use crate::inventory::gcp_common::{required, scoped_items, text, time};
use crate::inventory::gcp_live::{GcpClients, GcpDelete, client, describe, get, with_retries};
use crate::inventory::{GcpKind, GcpResource, SqlFacts};

pub const FILE: &str = "sqlInstances.json";

/// `DRIFTSWEEP_GCP_SQL_ENDPOINT`: the Cloud SQL Admin API's endpoint.
pub const SQL: &str = "DRIFTSWEEP_GCP_SQL_ENDPOINT";

/// The only state an instance is deleted in (a stopped one is `RUNNABLE` too, and its backup
/// fails, which keeps it).
pub const RUNNABLE: &str = "RUNNABLE";

/// The only type deleted: a primary of Cloud SQL's own (not a replica, an external primary or a
/// read pool).
pub const PRIMARY: &str = "CLOUD_SQL_INSTANCE";

/// How long enforce waits for one Cloud SQL operation (a backup, a delete).
const OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

pub static KIND: Kind = Kind {
    kind: GcpKind::SqlInstance,
    what: "Cloud SQL instances",
    audited: |p| p.sql_instances.is_some(),
    allowed: |p| p.sql_instances.as_ref().map(|a| a.allowed.as_slice()),
    floor: &[],
    list,
    parse,
    current,
    delete,
    // An instance has no server id: its creation time tells a re-created one, and its
    // settings version any change of its settings since the review.
    reverify: Reverify {
        id: Some("/settings/settingsVersion"),
        created: Some("createTime"),
    },
    auditor: &["cloudsql.instances.list"],
    enforcer: &[
        "cloudsql.instances.get",
        "cloudsql.backupRuns.create",
        "cloudsql.instances.delete",
    ],
};

fn list(clients: &GcpClients) -> Boxed<'_, Listed> {
    Box::pin(async move {
        let mut listed = Listed::default();
        let items = instances(clients).await;
        listed.store(KIND.what, FILE, "items", items);
        listed
    })
}

/// Every instance, every page, read once per run: the instances and their backups' owners
/// are both it.
pub(super) async fn instances(clients: &GcpClients) -> Result<Vec<Value>, String> {
    let all = clients
        .shared_list(FILE, || async {
            list_instances(clients).await.map(Value::Array)
        })
        .await?;
    match all {
        Value::Array(items) => Ok(items),
        other => Err(format!("instances.list: not a list: {other}")),
    }
}

/// Every instance, every page. A region the API could not reach (a `REGION_UNREACHABLE`
/// warning) fails the list: what it left out could be referenced or a replica's primary.
async fn list_instances(clients: &GcpClients) -> Result<Vec<Value>, String> {
    let c = client!(clients, SqlInstancesService, SQL)?;
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let page = with_retries("instances.list", || {
            c.list()
                .set_project(clients.project.clone())
                .set_max_results(500u32)
                .set_page_token(token.clone())
                .send()
        })
        .await?;
        complete("instances.list", &page.warnings)?;
        items.extend(page.items.iter().map(rest_json));
        if page.next_page_token.is_empty() {
            return Ok(items);
        }
        token = page.next_page_token;
    }
}

/// An error when a page's warnings say the list left something out (a `REGION_UNREACHABLE`,
/// or any warning this code does not know).
pub(super) fn complete(
    what: &str,
    warnings: &[google_cloud_sql_v1::model::ApiWarning],
) -> Result<(), String> {
    use google_cloud_sql_v1::model::api_warning::SqlApiWarningCode;
    match warnings
        .iter()
        .find(|w| !matches!(w.code, SqlApiWarningCode::Unspecified))
    {
        Some(w) => Err(format!(
            "{what}: incomplete ({}): {}",
            w.code.name().unwrap_or("warning"),
            w.message
        )),
        None => Ok(()),
    }
}

/// An instance as REST JSON, with the enums the verdict reads spelled as names (the client
/// asks for numbers; gcloud and the documentation print names).
fn rest_json(i: &google_cloud_sql_v1::model::DatabaseInstance) -> Value {
    let mut v = serde_json::to_value(i).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        for (key, name) in [
            ("state", i.state.name()),
            ("instanceType", i.instance_type.name()),
            ("databaseVersion", i.database_version.name()),
        ] {
            if let Some(name) = name {
                o.insert(key.to_string(), Value::String(name.to_string()));
            }
        }
    }
    v
}

fn parse(files: &dyn Files) -> Result<Option<Vec<GcpResource>>, FileError> {
    parse_file(files, FILE, parse_instances)
}

/// An enum field as its name, whether the body spells it as a name or as a number.
pub(super) fn enum_name(
    o: &serde_json::Map<String, Value>,
    key: &str,
    names: &[(i64, &str)],
) -> Option<String> {
    match o.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => {
            let n = n.as_i64()?;
            Some(
                names
                    .iter()
                    .find(|(v, _)| *v == n)
                    .map_or_else(|| n.to_string(), |(_, name)| name.to_string()),
            )
        }
        _ => None,
    }
}

const STATES: &[(i64, &str)] = &[
    (0, "SQL_INSTANCE_STATE_UNSPECIFIED"),
    (1, "RUNNABLE"),
    (2, "SUSPENDED"),
    (3, "PENDING_DELETE"),
    (4, "PENDING_CREATE"),
    (5, "MAINTENANCE"),
    (6, "FAILED"),
    (7, "ONLINE_MAINTENANCE"),
    (8, "REPAIRING"),
];

const TYPES: &[(i64, &str)] = &[
    (0, "SQL_INSTANCE_TYPE_UNSPECIFIED"),
    (1, "CLOUD_SQL_INSTANCE"),
    (2, "ON_PREMISES_INSTANCE"),
    (3, "READ_REPLICA_INSTANCE"),
    (5, "READ_POOL_INSTANCE"),
    (7, "GREEN_INSTANCE"),
];

/// The settings version as text (an int64: a string in REST JSON, a number in some tools).
pub fn settings_version(instance: &Value) -> Option<String> {
    match instance.pointer("/settings/settingsVersion")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Instances of a list body or gcloud's array.
pub fn parse_instances(body: &Value) -> Result<Vec<GcpResource>, String> {
    let mut out = Vec::new();
    for (path, o) in scoped_items(body, "items")? {
        let name = required(o, &path, "name")?;
        let project = required(o, &path, "project")?.to_string();
        let settings = o.get("settings").and_then(Value::as_object);
        let deletion_protection = match settings.and_then(|s| s.get("deletionProtectionEnabled")) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            // Anything else is read as protected.
            Some(_) => true,
        };
        let mut addresses: Vec<String> = o
            .get("ipAddresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| m.get("ipAddress").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        addresses.extend(text(o, "dnsName"));
        let instance_type = enum_name(o, "instanceType", TYPES);
        let replicas: Vec<String> = o
            .get("replicaNames")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|r| format!("read replica {r}"))
            .collect();
        out.push(GcpResource {
            id: settings_version(&Value::Object(o.clone())),
            self_link: text(o, "selfLink"),
            resource_name: Some(format!("projects/{project}/instances/{name}")),
            etag: text(o, "etag"),
            created: time(o, &path, "createTime")?,
            labels: settings
                .and_then(|s| s.get("userLabels"))
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                        .collect()
                })
                .unwrap_or_default(),
            status: enum_name(o, "state", STATES),
            used_by: replicas,
            sql: Some(Box::new(SqlFacts {
                project: project.clone(),
                connection_name: text(o, "connectionName"),
                addresses,
                deletion_protection,
                instance_type,
                primary: text(o, "masterInstanceName").filter(|m| !m.is_empty()),
            })),
            ..GcpResource::of(GcpKind::SqlInstance, name)
        });
    }
    Ok(out)
}

fn current<'a>(
    clients: &'a GcpClients,
    target: &'a Target<'a>,
) -> Boxed<'a, Result<Option<Value>, String>> {
    Box::pin(async move {
        let c = client!(clients, SqlInstancesService, SQL)?;
        let got = get!(
            c.get()
                .set_project(clients.project.clone())
                .set_instance(target.name)
                .send(),
            "instances.get"
        )?;
        Ok(got.map(|v| match serde_json::from_value(v.clone()) {
            Ok(typed) => rest_json(&typed),
            Err(_) => v,
        }))
    })
}

/// Why the instance read again must not be deleted, if it must not.
pub fn still_deletable(current: &Value, policy: &crate::policy::GcpPolicy) -> Result<(), String> {
    let parsed = parse_instances(&Value::Array(vec![current.clone()]))?;
    let Some(r) = parsed.first() else {
        return Err("the instance read again is not an instance".to_string());
    };
    let facts = r.sql.as_deref().cloned().unwrap_or_default();
    if !policy
        .sql_instances
        .as_ref()
        .is_some_and(|p| p.delete_databases)
    {
        return Err("the policy no longer sets `delete_databases: true`".to_string());
    }
    if facts.deletion_protection {
        return Err("deletion protection was turned on since the review".to_string());
    }
    if !r.used_by.is_empty() || facts.primary.is_some() {
        return Err("it has read replicas or is one since the review".to_string());
    }
    if facts.instance_type.as_deref() != Some(PRIMARY) {
        return Err(format!(
            "instance type {} is not a Cloud SQL primary",
            facts.instance_type.as_deref().unwrap_or("unknown")
        ));
    }
    if r.status.as_deref() != Some(RUNNABLE) {
        return Err(format!(
            "state {} since the review",
            r.status.as_deref().unwrap_or("unknown")
        ));
    }
    Ok(())
}

/// Waits for a Cloud SQL operation to be `DONE`; an error in it, or no end within the
/// timeout, is an error.
pub(super) async fn wait(
    clients: &GcpClients,
    op: google_cloud_sql_v1::model::Operation,
    what: &str,
) -> Result<(), String> {
    use google_cloud_sql_v1::model::operation::SqlOperationStatus;
    let c = client!(clients, SqlOperationsService, SQL)?;
    let started = std::time::Instant::now();
    let mut op = op;
    let mut poll = 0u32;
    loop {
        if let Some(errors) = op.error.as_ref().filter(|e| !e.errors.is_empty()) {
            let text = errors
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.code, e.message))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(format!("{what}: the operation failed: {text}"));
        }
        if matches!(op.status, SqlOperationStatus::Done) {
            return Ok(());
        }
        if started.elapsed() > OPERATION_TIMEOUT {
            return Err(format!(
                "{what}: operation `{}` not done after {} minutes",
                op.name,
                OPERATION_TIMEOUT.as_secs() / 60
            ));
        }
        if poll > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(
                (250u64 << poll.min(6)).min(15_000),
            ))
            .await;
        }
        poll += 1;
        let name = op.name.clone();
        op = with_retries("operations.get", || {
            c.get()
                .set_project(clients.project.clone())
                .set_operation(name.clone())
                .send()
        })
        .await?;
    }
}

fn delete<'a>(
    clients: &'a GcpClients,
    d: &'a Deletion<'a>,
) -> Boxed<'a, Result<GcpDelete, String>> {
    Box::pin(async move {
        if let Err(why) = still_deletable(d.current, d.policy) {
            return Ok(GcpDelete::Skipped(why));
        }
        let days = d
            .policy
            .sql_instances
            .as_ref()
            .map_or(30, |p| p.final_backup_days);
        let p = clients.project.clone();
        // The data is what no record brings back: a backup first, and only one whose
        // operation ended without error lets the delete go on.
        let runs = client!(clients, SqlBackupRunsService, SQL)?;
        let description = format!(
            "driftsweep: backup of {} before deleting it ({})",
            d.name,
            d.now.to_rfc3339()
        );
        let backup = google_cloud_sql_v1::model::BackupRun::new()
            .set_description(description.clone())
            .set_instance(d.name);
        let taken = runs
            .insert()
            .set_project(p.clone())
            .set_instance(d.name)
            .set_body(backup)
            .send()
            .await
            .map_err(|e| describe("backupRuns.insert", &e));
        let taken = match taken {
            Ok(op) => wait(clients, op, "backupRuns.insert").await,
            Err(e) => Err(e),
        };
        if let Err(e) = taken {
            return Err(format!(
                "not deleted: its backup before deletion failed: {e}"
            ));
        }
        let instances = client!(clients, SqlInstancesService, SQL)?;
        let deleted = instances
            .delete()
            .set_project(p.clone())
            .set_instance(d.name)
            .set_enable_final_backup(true)
            .set_final_backup_ttl_days(i64::from(days))
            .set_final_backup_description(format!("driftsweep: final backup of {}", d.name))
            .send()
            .await;
        let op = match deleted {
            Ok(op) => op,
            Err(e) if crate::inventory::gcp_live::not_found(&e) => {
                return Ok(GcpDelete::AlreadyGone);
            }
            Err(e) => return Err(describe("instances.delete", &e)),
        };
        wait(clients, op, "instances.delete").await?;
        Ok(GcpDelete::Deleted(Some(format!(
            "backup run `{description}` taken first and a final backup kept {days} days; restore with: gcloud sql backups list --project {p} --filter instance={name} then gcloud sql backups restore BACKUP --restore-instance {name} --project {p} (the instance must be created again first)",
            name = d.name
        ))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(delete: bool) -> crate::policy::GcpPolicy {
        serde_json::from_value(
            json!({"sql_instances": {"allowed": ["aia-*"], "delete_databases": delete}}),
        )
        .unwrap()
    }

    fn instance() -> Value {
        json!({"name": "old-db", "project": "p", "state": "RUNNABLE",
            "instanceType": "CLOUD_SQL_INSTANCE", "connectionName": "p:us-central1:old-db",
            "createTime": "2025-01-01T00:00:00.000Z",
            "ipAddresses": [{"type": "PRIVATE", "ipAddress": "10.1.2.3"}],
            "settings": {"settingsVersion": "7", "deletionProtectionEnabled": false,
                "userLabels": {"team": "x"}}})
    }

    #[test]
    fn instances_are_read_with_what_keeps_them_whether_enums_are_names_or_numbers() {
        let mut numbers = instance();
        numbers["state"] = json!(1);
        numbers["instanceType"] = json!(3);
        numbers["masterInstanceName"] = json!("main");
        for (body, kind) in [
            (json!({"items": [instance()]}), "CLOUD_SQL_INSTANCE"),
            (json!([numbers]), "READ_REPLICA_INSTANCE"),
        ] {
            let r = &parse_instances(&body).unwrap()[0];
            assert_eq!(r.name, "old-db");
            assert_eq!(r.status.as_deref(), Some("RUNNABLE"));
            assert_eq!(r.id.as_deref(), Some("7"));
            let sql = r.sql.as_deref().unwrap();
            assert_eq!(sql.instance_type.as_deref(), Some(kind));
            assert_eq!(sql.connection_name.as_deref(), Some("p:us-central1:old-db"));
            assert_eq!(sql.addresses, ["10.1.2.3"]);
            assert_eq!(r.labels["team"], "x");
        }
        let with_replica = json!([{"name": "main", "project": "p", "replicaNames": ["main-r"]}]);
        assert_eq!(
            parse_instances(&with_replica).unwrap()[0].used_by,
            ["read replica main-r"]
        );
        let protected = json!([{"name": "x", "project": "p",
            "settings": {"deletionProtectionEnabled": "yes"}}]);
        assert!(
            parse_instances(&protected).unwrap()[0]
                .sql
                .as_ref()
                .unwrap()
                .deletion_protection
        );
        assert!(
            parse_instances(&json!([{"name": "x"}]))
                .unwrap_err()
                .contains("project")
        );
    }

    #[test]
    fn an_instance_is_deleted_only_while_nothing_changed_that_would_keep_it() {
        assert!(still_deletable(&instance(), &policy(true)).is_ok());
        assert!(still_deletable(&instance(), &policy(false)).is_err());
        for (pointer, value) in [
            ("/settings/deletionProtectionEnabled", json!(true)),
            ("/replicaNames", json!(["old-db-r"])),
            ("/masterInstanceName", json!("main")),
            ("/instanceType", json!("READ_REPLICA_INSTANCE")),
            ("/state", json!("MAINTENANCE")),
        ] {
            let mut i = instance();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            let target = if parent.is_empty() {
                &mut i
            } else {
                i.pointer_mut(parent).unwrap()
            };
            target[key] = value;
            assert!(still_deletable(&i, &policy(true)).is_err(), "{pointer}");
        }
    }
}
