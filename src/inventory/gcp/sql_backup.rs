//! Cloud SQL backups (`gcp.sql_backups`): retention per instance, as image versions have per
//! repository. Two APIs hold them: the backup runs of each instance (automated and on-demand,
//! named `INSTANCE/RUN_ID`), and the project's backups (`projects/P/backups/ID`), which hold
//! what outlives an instance: its final backup and the backups retained after its deletion
//! (named `INSTANCE/backups/ID`, so a name never collides with a run's numeric id). Cloud
//! Custodian's `gcp.sql-backup-run` sees only the first.
//!
//! Files: `sqlBackups.json` (the project's backups, `{"backups": [...]}` or `gcloud sql
//! backups list --format=json`'s array), beside it `sqlInstances.json` (the instance list, the
//! same file `gcp.sql_instances` reads) and `sqlBackupRuns/INSTANCE.json` for every Cloud SQL
//! primary in it (`{"items": [...]}` or `gcloud sql backups list --instance INSTANCE
//! --format=json`). A project backup that is also one of the listed runs (its `backupRun`) is
//! the run: counting it twice would halve `keep_recent`.
//!
//! Enforce reads the backup again, deletes it only while it is still `SUCCESSFUL` and started
//! when the reviewed one did (the record's etag), and follows the delete's operation to its
//! end. A deleted backup cannot be brought back.

use std::collections::BTreeSet;

use chrono::SecondsFormat;
use google_cloud_sql_v1::client::{SqlBackupRunsService, SqlBackupsService};
use serde_json::{Map, Value};

use super::sql_instance::{self, PRIMARY, SQL, enum_name};
use super::{Boxed, Deletion, FileError, Files, Kind, Listed, Reverify, Target, parse_file};
use crate::inventory::gcp_common::{required, scoped_items, short_name, text, time};
use crate::inventory::gcp_live::{
    GcpClients, GcpDelete, client, describe, get, list_paged, not_found, with_retries,
};
use crate::inventory::{GcpKind, GcpResource};
use crate::policy::{GcpPolicy, any_match};

pub const FILE: &str = "sqlBackups.json";

/// The only status a backup is deleted in.
pub const SUCCESSFUL: &str = "SUCCESSFUL";

/// The type of the backup Cloud SQL takes when an instance is deleted.
pub const FINAL: &str = "FINAL";

/// The types retention applies to (a `FINAL` one only with `delete_final_backups`).
pub const TYPES: &[&str] = &["AUTOMATED", "ON_DEMAND", FINAL];

/// How driftsweep's own backups begin their description (`sql_instance`'s backup before a
/// deletion and the final backup it asks for).
pub const OWN_PREFIX: &str = "driftsweep: ";

/// Where the project's backups name themselves: `INSTANCE/backups/ID`.
const PROJECT_BACKUP: &str = "/backups/";

pub static KIND: Kind = Kind {
    kind: GcpKind::SqlBackup,
    what: "Cloud SQL backups",
    audited: |p| p.sql_backups.is_some(),
    allowed: |p| p.sql_backups.as_ref().map(|b| b.allowed.as_slice()),
    floor: &[],
    list,
    parse,
    current,
    delete,
    // A run's id is in its name and its start time tells a new one; a project backup has no
    // id field (its name is its id). The record's etag (its start time, as one text) is
    // compared for both in `delete`.
    reverify: Reverify {
        id: Some("id"),
        created: Some("startTime"),
    },
    // The Backups API is authorised by the backup run permissions.
    auditor: &["cloudsql.instances.list", "cloudsql.backupRuns.list"],
    enforcer: &["cloudsql.backupRuns.get", "cloudsql.backupRuns.delete"],
};

/// The backup runs of one instance, as a snapshot stores them.
pub fn runs_file(instance: &str) -> String {
    format!("sqlBackupRuns/{instance}.json")
}

fn list(clients: &GcpClients) -> Boxed<'_, Listed> {
    Box::pin(async move {
        let mut listed = Listed::default();
        let instances = match sql_instance::instances(clients).await {
            Ok(items) => items,
            Err(e) => {
                listed.failed.push((
                    "Cloud SQL instances (whose backups are listed)".to_string(),
                    e,
                ));
                return listed;
            }
        };
        let body = serde_json::json!({ "items": instances });
        let owners = match sql_instance::parse_instances(&body) {
            Ok(all) => all
                .into_iter()
                .filter(has_runs)
                .map(|i| i.name)
                .collect::<Vec<String>>(),
            Err(e) => {
                listed.failed.push((KIND.what.to_string(), e));
                return listed;
            }
        };
        listed.files.insert(sql_instance::FILE.to_string(), body);
        for name in owners {
            let got = runs(clients, &name).await;
            listed.store(
                &format!("backup runs of Cloud SQL instance {name}"),
                &runs_file(&name),
                "items",
                got,
            );
        }
        let got = project_backups(clients).await;
        listed.store(KIND.what, FILE, "backups", got);
        listed
    })
}

/// Whether an instance has backup runs: only a Cloud SQL primary is backed up (a replica or
/// an external primary never is).
fn has_runs(instance: &GcpResource) -> bool {
    instance
        .sql
        .as_ref()
        .is_some_and(|s| s.instance_type.as_deref() == Some(PRIMARY))
}

/// Every page of one instance's backup runs.
async fn runs(clients: &GcpClients, instance: &str) -> Result<Vec<Value>, String> {
    let c = client!(clients, SqlBackupRunsService, SQL)?;
    list_paged(
        |token| {
            let c = c.clone();
            let project = clients.project.clone();
            let instance = instance.to_string();
            async move {
                let page = c
                    .list()
                    .set_project(project)
                    .set_instance(instance)
                    .set_max_results(500)
                    .set_page_token(token)
                    .send()
                    .await?;
                Ok((
                    page.items.iter().map(run_json).collect(),
                    page.next_page_token,
                ))
            }
        },
        "backupRuns.list",
    )
    .await
}

/// Every page of the project's backups. A region the API could not reach fails the list:
/// what it left out could be one of an instance's newest backups.
async fn project_backups(clients: &GcpClients) -> Result<Vec<Value>, String> {
    let c = client!(clients, SqlBackupsService, SQL)?;
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let page = with_retries("backups.list", || {
            c.list_backups()
                .set_parent(format!("projects/{}", clients.project))
                .set_page_size(500)
                .set_page_token(token.clone())
                .send()
        })
        .await?;
        sql_instance::complete("backups.list", &page.warnings)?;
        items.extend(page.backups.iter().map(backup_json));
        if page.next_page_token.is_empty() {
            return Ok(items);
        }
        token = page.next_page_token;
    }
}

/// `v` with the enums the verdict reads spelled as names (the client asks for numbers;
/// gcloud and the documentation print names). A number the client does not know stays one.
fn with_names(mut v: Value, names: &[(&str, Option<&str>)]) -> Value {
    if let Some(o) = v.as_object_mut() {
        for (key, name) in names {
            if let Some(name) = name {
                o.insert((*key).to_string(), Value::String((*name).to_string()));
            }
        }
    }
    v
}

fn run_json(r: &google_cloud_sql_v1::model::BackupRun) -> Value {
    with_names(
        serde_json::to_value(r).unwrap_or(Value::Null),
        &[("status", r.status.name()), ("type", r.r#type.name())],
    )
}

fn backup_json(b: &google_cloud_sql_v1::model::Backup) -> Value {
    with_names(
        serde_json::to_value(b).unwrap_or(Value::Null),
        &[("state", b.state.name()), ("type", b.r#type.name())],
    )
}

const RUN_STATUSES: &[(i64, &str)] = &[
    (0, "SQL_BACKUP_RUN_STATUS_UNSPECIFIED"),
    (1, "ENQUEUED"),
    (2, "OVERDUE"),
    (3, "RUNNING"),
    (4, "FAILED"),
    (5, "SUCCESSFUL"),
    (6, "SKIPPED"),
    (7, "DELETION_PENDING"),
    (8, "DELETION_FAILED"),
    (9, "DELETED"),
];

const RUN_TYPES: &[(i64, &str)] = &[
    (0, "SQL_BACKUP_RUN_TYPE_UNSPECIFIED"),
    (1, "AUTOMATED"),
    (2, "ON_DEMAND"),
];

const BACKUP_STATES: &[(i64, &str)] = &[
    (0, "SQL_BACKUP_STATE_UNSPECIFIED"),
    (1, "ENQUEUED"),
    (2, "RUNNING"),
    (3, "FAILED"),
    (4, "SUCCESSFUL"),
    (5, "DELETING"),
    (6, "DELETION_FAILED"),
];

const BACKUP_TYPES: &[(i64, &str)] = &[
    (0, "SQL_BACKUP_TYPE_UNSPECIFIED"),
    (1, "AUTOMATED"),
    (2, "ON_DEMAND"),
    (3, "FINAL"),
];

fn parse(files: &dyn Files) -> Result<Option<Vec<GcpResource>>, FileError> {
    let Some(backups) = parse_file(files, FILE, parse_backups)? else {
        return Ok(None);
    };
    let Some(instances) = parse_file(files, sql_instance::FILE, sql_instance::parse_instances)?
    else {
        return Err(FileError {
            file: sql_instance::FILE.to_string(),
            message: format!(
                "absent beside `{FILE}`: without the instances nothing says whose backup runs to read; record it with `gcloud sql instances list --format=json`"
            ),
        });
    };
    let mut out = Vec::new();
    for instance in instances.iter().filter(|i| has_runs(i)) {
        let file = runs_file(&instance.name);
        let Some(mut runs) = parse_file(files, &file, |b| parse_runs(&instance.name, b))? else {
            return Err(FileError {
                message: format!(
                    "absent: the backup runs of instance `{0}` (in `{1}`); record them with `gcloud sql backups list --instance {0} --format=json`",
                    instance.name,
                    sql_instance::FILE
                ),
                file,
            });
        };
        out.append(&mut runs);
    }
    let runs: BTreeSet<String> = out.iter().map(|r| r.name.clone()).collect();
    for (backup, run) in backups {
        if run.is_some_and(|r| runs.contains(&r)) {
            continue;
        }
        out.push(backup);
    }
    Ok(Some(out))
}

/// When a backup started (a run's `startTime`, else `enqueuedTime`; a project backup's
/// `backupInterval.startTime`), as one text whatever digits of the second it was written
/// with: the record's etag.
fn started(
    o: &Map<String, Value>,
    path: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
    if let Some(interval) = o.get("backupInterval").and_then(Value::as_object) {
        return time(interval, &format!("{path}.backupInterval"), "startTime");
    }
    Ok(time(o, path, "startTime")?.or(time(o, path, "enqueuedTime")?))
}

fn fingerprint(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The backup runs of `instance`: a list body or gcloud's array.
pub fn parse_runs(instance: &str, body: &Value) -> Result<Vec<GcpResource>, String> {
    scoped_items(body, "items")?
        .into_iter()
        .map(|(path, o)| {
            let id = text(o, "id").ok_or_else(|| format!("{path}.id: missing"))?;
            let created = started(o, &path)?;
            Ok(GcpResource {
                id: Some(id.clone()),
                self_link: text(o, "selfLink"),
                resource_name: text(o, "selfLink")
                    .and_then(|l| l.find("projects/").map(|i| l[i..].to_string())),
                etag: created.map(fingerprint),
                created,
                description: text(o, "description").filter(|d| !d.is_empty()),
                status: enum_name(o, "status", RUN_STATUSES),
                purpose: enum_name(o, "type", RUN_TYPES),
                source: Some(instance.to_string()),
                ..GcpResource::of(GcpKind::SqlBackup, &format!("{instance}/{id}"))
            })
        })
        .collect()
}

/// The project's backups (a `{"backups": [...]}` body or gcloud's array), each with the name
/// of the run it also is (`INSTANCE/RUN_ID`), when it says.
pub fn parse_backups(body: &Value) -> Result<Vec<(GcpResource, Option<String>)>, String> {
    let items = match body {
        Value::Object(o) if o.contains_key("backups") => {
            crate::inventory::gcp_common::items(body, "backups")?
        }
        _ => scoped_items(body, "backups")?,
    };
    items
        .into_iter()
        .map(|(path, o)| {
            let full = required(o, &path, "name")?;
            let instance = required(o, &path, "instance")?;
            let created = started(o, &path)?;
            // A deleted instance's backups are counted apart from those of an instance made
            // again under its name: they are the only copy of another database.
            let source = match text(o, "instanceDeletionTime") {
                Some(t) => format!("{instance} (deleted {t})"),
                None => instance.to_string(),
            };
            let run = text(o, "backupRun")
                .filter(|r| !r.is_empty())
                .map(|r| format!("{instance}/{}", short_name(&r)));
            let resource = GcpResource {
                resource_name: Some(full.to_string()),
                self_link: text(o, "selfLink"),
                etag: created.map(fingerprint),
                created,
                description: text(o, "description").filter(|d| !d.is_empty()),
                status: enum_name(o, "state", BACKUP_STATES),
                purpose: enum_name(o, "type", BACKUP_TYPES),
                source: Some(source),
                ..GcpResource::of(
                    GcpKind::SqlBackup,
                    &format!("{instance}{PROJECT_BACKUP}{}", short_name(full)),
                )
            };
            Ok((resource, run))
        })
        .collect()
}

/// What a name says: the instance, and a run's id or a project backup's.
enum Named<'a> {
    Run(&'a str, i64),
    Project(&'a str),
}

fn named(name: &str) -> Result<Named<'_>, String> {
    let bad = || format!("`{name}` is not `INSTANCE/RUN_ID` or `INSTANCE/backups/ID`");
    let (instance, rest) = name.split_once('/').ok_or_else(bad)?;
    match rest.strip_prefix("backups/") {
        Some(id) if !id.is_empty() && !id.contains('/') => Ok(Named::Project(id)),
        Some(_) => Err(bad()),
        None => rest
            .parse()
            .map(|id| Named::Run(instance, id))
            .map_err(|_| bad()),
    }
}

fn current<'a>(
    clients: &'a GcpClients,
    target: &'a Target<'a>,
) -> Boxed<'a, Result<Option<Value>, String>> {
    Box::pin(async move {
        let p = clients.project.clone();
        match named(target.name)? {
            Named::Run(instance, id) => {
                let c = client!(clients, SqlBackupRunsService, SQL)?;
                let got = get!(
                    c.get()
                        .set_project(p.clone())
                        .set_instance(instance)
                        .set_id(id)
                        .send(),
                    "backupRuns.get"
                )?;
                Ok(got.map(|v| match serde_json::from_value(v.clone()) {
                    Ok(typed) => run_json(&typed),
                    Err(_) => v,
                }))
            }
            Named::Project(id) => {
                let c = client!(clients, SqlBackupsService, SQL)?;
                let got = get!(
                    c.get_backup()
                        .set_name(format!("projects/{p}/backups/{id}"))
                        .send(),
                    "backups.get"
                )?;
                Ok(got.map(|v| match serde_json::from_value(v.clone()) {
                    Ok(typed) => backup_json(&typed),
                    Err(_) => v,
                }))
            }
        }
    })
}

/// Why the backup read again must not be deleted, if it must not: it is not the reviewed one
/// (`reviewed`: the record's etag), it is no longer `SUCCESSFUL`, or something keeps it now.
pub fn still_deletable(
    name: &str,
    current: &Value,
    reviewed: Option<&str>,
    policy: &GcpPolicy,
) -> Result<(), String> {
    let Some(o) = current.as_object() else {
        return Err("the backup read again is not an object".to_string());
    };
    let Some(p) = policy.sql_backups.as_ref() else {
        return Err("the policy no longer audits `gcp.sql_backups`".to_string());
    };
    let now = started(o, "backup")?.map(fingerprint);
    if now.as_deref() != reviewed {
        return Err(format!(
            "changed since review: started {} (was {})",
            now.as_deref().unwrap_or("never"),
            reviewed.unwrap_or("never")
        ));
    }
    let project = o.contains_key("backupInterval") || o.contains_key("state");
    let status = if project {
        enum_name(o, "state", BACKUP_STATES)
    } else {
        enum_name(o, "status", RUN_STATUSES)
    };
    if status.as_deref() != Some(SUCCESSFUL) {
        return Err(format!(
            "status {} since the review",
            status.as_deref().unwrap_or("unknown")
        ));
    }
    let kind = enum_name(o, "type", if project { BACKUP_TYPES } else { RUN_TYPES });
    if !kind.as_deref().is_some_and(|t| TYPES.contains(&t)) {
        return Err(format!(
            "type {} is not a backup retention applies to",
            kind.as_deref().unwrap_or("unknown")
        ));
    }
    let own = text(o, "description").is_some_and(|d| d.starts_with(OWN_PREFIX));
    if (kind.as_deref() == Some(FINAL) || own) && !p.delete_final_backups {
        return Err(
            "a final backup, or driftsweep's before a deletion (`delete_final_backups` is off)"
                .to_string(),
        );
    }
    let instance = name.split('/').next().unwrap_or(name);
    if any_match(&p.allowed, instance) {
        return Err(format!("instance `{instance}` is allowed since the review"));
    }
    Ok(())
}

fn delete<'a>(
    clients: &'a GcpClients,
    d: &'a Deletion<'a>,
) -> Boxed<'a, Result<GcpDelete, String>> {
    Box::pin(async move {
        if let Err(why) = still_deletable(d.name, d.current, d.etag, d.policy) {
            return Ok(GcpDelete::Skipped(why));
        }
        let p = clients.project.clone();
        let (sent, what) = match named(d.name)? {
            Named::Run(instance, id) => {
                let c = client!(clients, SqlBackupRunsService, SQL)?;
                (
                    c.delete()
                        .set_project(p.clone())
                        .set_instance(instance)
                        .set_id(id)
                        .send()
                        .await,
                    "backupRuns.delete",
                )
            }
            Named::Project(id) => {
                let c = client!(clients, SqlBackupsService, SQL)?;
                (
                    c.delete_backup()
                        .set_name(format!("projects/{p}/backups/{id}"))
                        .send()
                        .await,
                    "backups.delete",
                )
            }
        };
        let op = match sent {
            Ok(op) => op,
            Err(e) if not_found(&e) => return Ok(GcpDelete::AlreadyGone),
            Err(e) => return Err(describe(what, &e)),
        };
        sql_instance::wait(clients, op, what).await?;
        Ok(GcpDelete::Deleted(Some(
            "a deleted Cloud SQL backup cannot be brought back; its record is in the backup"
                .to_string(),
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn instances() -> Value {
        json!({"items": [
            {"name": "db", "project": "p", "instanceType": "CLOUD_SQL_INSTANCE"},
            {"name": "db-replica", "project": "p", "instanceType": 3, "masterInstanceName": "db"}
        ]})
    }

    fn files(backups: Value, runs: Option<Value>) -> BTreeMap<String, Value> {
        let mut f = BTreeMap::from([
            (FILE.to_string(), backups),
            (sql_instance::FILE.to_string(), instances()),
        ]);
        if let Some(r) = runs {
            f.insert(runs_file("db"), r);
        }
        f
    }

    #[test]
    fn runs_and_project_backups_are_read_named_apart_and_counted_once() {
        let runs = json!({"items": [
            {"id": "1700000000000", "status": 5, "type": 1, "instance": "db",
             "startTime": "2026-01-01T00:00:00.000Z",
             "selfLink": "https://sqladmin.googleapis.com/v1/projects/p/instances/db/backupRuns/1700000000000"},
            {"id": 1700000000001_i64, "status": "FAILED", "type": "ON_DEMAND",
             "enqueuedTime": "2026-01-02T00:00:00Z", "description": "by hand"}
        ]});
        let backups = json!({"backups": [
            {"name": "projects/p/backups/abc", "instance": "gone", "type": 3, "state": 4,
             "backupInterval": {"startTime": "2025-06-01T00:00:00Z"},
             "instanceDeletionTime": "2025-06-01T00:00:05Z",
             "description": "driftsweep: final backup of gone"},
            {"name": "projects/p/backups/dup", "instance": "db", "type": "AUTOMATED",
             "state": "SUCCESSFUL", "backupRun": "projects/p/instances/db/backupRuns/1700000000000",
             "backupInterval": {"startTime": "2026-01-01T00:00:00Z"}}
        ]});
        let parsed = parse(&files(backups, Some(runs))).unwrap().unwrap();
        let names: Vec<&str> = parsed.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["db/1700000000000", "db/1700000000001", "gone/backups/abc"]
        );
        let run = &parsed[0];
        assert_eq!(run.status.as_deref(), Some("SUCCESSFUL"));
        assert_eq!(run.purpose.as_deref(), Some("AUTOMATED"));
        assert_eq!(run.source.as_deref(), Some("db"));
        assert_eq!(run.etag.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(
            run.resource_name.as_deref(),
            Some("projects/p/instances/db/backupRuns/1700000000000")
        );
        assert_eq!(parsed[1].status.as_deref(), Some("FAILED"));
        assert!(
            parsed[1].created.is_some(),
            "enqueued time when it never started"
        );
        let fin = &parsed[2];
        assert_eq!(fin.purpose.as_deref(), Some("FINAL"));
        assert_eq!(fin.status.as_deref(), Some("SUCCESSFUL"));
        assert_eq!(
            fin.source.as_deref(),
            Some("gone (deleted 2025-06-01T00:00:05Z)")
        );
        assert_eq!(fin.resource_name.as_deref(), Some("projects/p/backups/abc"));
        // gcloud's arrays read the same.
        let gcloud = files(json!([]), Some(json!([])));
        assert_eq!(parse(&gcloud).unwrap().unwrap().len(), 0);
    }

    #[test]
    fn a_snapshot_without_the_instances_or_a_primarys_runs_is_refused() {
        assert!(parse(&BTreeMap::new()).unwrap().is_none(), "not recorded");
        let e = parse(&files(json!({"backups": []}), None)).unwrap_err();
        assert_eq!(
            e.file, "sqlBackupRuns/db.json",
            "the replica has none: {e:?}"
        );
        let mut f = files(json!({"backups": []}), Some(json!({})));
        f.remove(sql_instance::FILE);
        assert_eq!(parse(&f).unwrap_err().file, sql_instance::FILE);
        assert!(
            parse_runs("db", &json!({"items": [{"status": 5}]}))
                .unwrap_err()
                .contains("id")
        );
    }

    #[test]
    fn names_say_which_api_holds_the_backup() {
        assert!(matches!(named("db/17").unwrap(), Named::Run("db", 17)));
        assert!(matches!(
            named("db/backups/x1").unwrap(),
            Named::Project("x1")
        ));
        for bad in ["db", "db/x", "db/backups/", "db/backups/a/b"] {
            assert!(named(bad).is_err(), "{bad}");
        }
    }

    fn policy(delete_final: bool) -> GcpPolicy {
        serde_json::from_value(json!({"sql_backups": {"allowed": ["aia-*"],
            "delete_final_backups": delete_final}}))
        .unwrap()
    }

    #[test]
    fn a_backup_is_deleted_only_while_it_is_the_reviewed_successful_one() {
        let t = "2026-01-01T00:00:00Z";
        let run = json!({"id": "1", "status": "SUCCESSFUL", "type": "AUTOMATED",
            "startTime": "2026-01-01T00:00:00.000Z"});
        assert!(still_deletable("db/1", &run, Some(t), &policy(false)).is_ok());
        assert!(
            still_deletable("db/1", &run, Some("2026-01-02T00:00:00Z"), &policy(false)).is_err()
        );
        assert!(still_deletable("aia-db/1", &run, Some(t), &policy(false)).is_err());
        let mut failed = run.clone();
        failed["status"] = json!("DELETION_PENDING");
        assert!(still_deletable("db/1", &failed, Some(t), &policy(false)).is_err());
        let mut own = run.clone();
        own["description"] = json!("driftsweep: backup of db before deleting it");
        assert!(still_deletable("db/1", &own, Some(t), &policy(false)).is_err());
        assert!(still_deletable("db/1", &own, Some(t), &policy(true)).is_ok());
        let fin = json!({"name": "projects/p/backups/a", "state": 4, "type": 3,
            "backupInterval": {"startTime": t}});
        assert!(still_deletable("gone/backups/a", &fin, Some(t), &policy(false)).is_err());
        assert!(still_deletable("gone/backups/a", &fin, Some(t), &policy(true)).is_ok());
        let unaudited: GcpPolicy = serde_json::from_value(json!({})).unwrap();
        assert!(still_deletable("db/1", &run, Some(t), &unaudited).is_err());
    }
}
