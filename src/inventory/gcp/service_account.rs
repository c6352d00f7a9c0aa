//! IAM service accounts (`gcp.service_accounts`), named by email. The IAM API reports no
//! creation time, so an account is disabled first (the time recorded in its description) and
//! deleted by a later enforce run once it stayed disabled `disable_days`.

use google_cloud_iam_admin_v1::client::Iam;
use serde_json::Value;

use super::{Boxed, Deletion, FileError, Files, Kind, Listed, Reverify, Target, parse_file};
use crate::inventory::gcp_common::{items, required, text};
use crate::inventory::gcp_live::{
    GcpClients, GcpDelete, client, get, list_paged, to_json, with_retries,
};
use crate::inventory::{GcpKind, GcpResource};
use crate::policy::GcpPolicy;

pub const FILE: &str = "serviceAccounts.json";
const ENDPOINT: &str = "DRIFTSWEEP_GCP_IAM_ENDPOINT";

pub static KIND: Kind = Kind {
    kind: GcpKind::IamServiceAccount,
    what: "service accounts",
    audited: |p| p.service_accounts.is_some(),
    allowed: |p| p.service_accounts.as_ref().map(|a| a.allowed.as_slice()),
    floor: &[
        "*-compute@developer.gserviceaccount.com",
        "*@appspot.gserviceaccount.com",
        "*@cloudbuild.gserviceaccount.com",
    ],
    list,
    parse,
    current,
    delete,
    reverify: Reverify {
        id: Some("uniqueId"),
        created: None,
    },
    auditor: &["iam.serviceAccounts.list"],
    enforcer: &[
        "iam.serviceAccounts.get",
        "iam.serviceAccounts.update",
        "iam.serviceAccounts.disable",
        "iam.serviceAccounts.delete",
    ],
};

fn list(clients: &GcpClients) -> Boxed<'_, Listed> {
    Box::pin(async move {
        let mut listed = Listed::default();
        let name = format!("projects/{}", clients.project);
        let items = match client!(clients, Iam, ENDPOINT) {
            Ok(client) => {
                list_paged(
                    |token| {
                        let c = client.clone();
                        let name = name.clone();
                        async move {
                            let page = c
                                .list_service_accounts()
                                .set_name(name)
                                .set_page_size(100)
                                .set_page_token(token)
                                .send()
                                .await?;
                            Ok((to_json(page.accounts), page.next_page_token))
                        }
                    },
                    "serviceAccounts.list",
                )
                .await
            }
            Err(e) => Err(e),
        };
        listed.store(KIND.what, FILE, "accounts", items);
        listed
    })
}

fn parse(files: &dyn Files) -> Result<Option<Vec<GcpResource>>, FileError> {
    parse_file(files, FILE, parse_service_accounts)
}

/// A `projects.serviceAccounts.list` response (`{"accounts": [...]}`).
pub fn parse_service_accounts(body: &Value) -> Result<Vec<GcpResource>, String> {
    items(body, "accounts")?
        .into_iter()
        .map(|(path, o)| {
            Ok(GcpResource {
                resource_name: text(o, "name"),
                id: text(o, "uniqueId"),
                etag: text(o, "etag"),
                description: text(o, "description"),
                disabled: o.get("disabled").and_then(Value::as_bool),
                ..GcpResource::of(GcpKind::IamServiceAccount, required(o, &path, "email")?)
            })
        })
        .collect()
}

fn current<'a>(
    clients: &'a GcpClients,
    target: &'a Target<'a>,
) -> Boxed<'a, Result<Option<Value>, String>> {
    Box::pin(async move {
        let c = client!(clients, Iam, ENDPOINT)?;
        let full = format!("projects/-/serviceAccounts/{}", target.name);
        get!(
            c.get_service_account().set_name(full.clone()).send(),
            "serviceAccounts.get"
        )
    })
}

fn delete<'a>(
    clients: &'a GcpClients,
    d: &'a Deletion<'a>,
) -> Boxed<'a, Result<GcpDelete, String>> {
    Box::pin(disable_then_delete(
        clients, d.name, d.current, d.policy, d.now,
    ))
}

/// Two phases: disable and record when; delete once disabled long enough.
async fn disable_then_delete(
    clients: &GcpClients,
    email: &str,
    current: &Value,
    policy: &GcpPolicy,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<GcpDelete, String> {
    let c = client!(clients, Iam, ENDPOINT)?;
    let days = policy
        .service_accounts
        .as_ref()
        .map_or(7, |s| s.disable_days);
    let full = format!("projects/{}/serviceAccounts/{email}", clients.project);
    let description = current
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let disabled = current.get("disabled").and_then(Value::as_bool) == Some(true);
    let unique_id = current
        .get("uniqueId")
        .and_then(Value::as_str)
        .unwrap_or("UNIQUE_ID")
        .to_string();
    if !disabled {
        let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let marked = if description.is_empty() {
            format!("{DISABLED_MARKER}{stamp}]")
        } else {
            format!("{description} {DISABLED_MARKER}{stamp}]")
        };
        let account = google_cloud_iam_admin_v1::model::ServiceAccount::new()
            .set_name(full.clone())
            .set_description(marked);
        with_retries("serviceAccounts.patch", || {
            c.patch_service_account()
                .set_service_account(account.clone())
                .set_update_mask(google_cloud_wkt::FieldMask::default().set_paths(["description"]))
                .send()
        })
        .await?;
        with_retries("serviceAccounts.disable", || {
            c.disable_service_account().set_name(full.clone()).send()
        })
        .await?;
        return Ok(GcpDelete::Disabled(format!(
            "disabled, not deleted: a later enforce deletes it after {days} days if it is still disabled. Undo: gcloud iam service-accounts enable {email} --project {}",
            clients.project
        )));
    }
    let Some(since) = disabled_at(&description) else {
        return Ok(GcpDelete::Skipped(
            "disabled by someone else (no driftsweep record of when); not deleted".to_string(),
        ));
    };
    let due = since + chrono::Duration::days(i64::from(days));
    if now < due {
        return Ok(GcpDelete::Skipped(format!(
            "disabled at {since}; deleted by an enforce run from {due} (`gcp.service_accounts.disable_days`: {days})"
        )));
    }
    match with_retries("serviceAccounts.delete", || {
        c.delete_service_account().set_name(full.clone()).send()
    })
    .await
    {
        Ok(()) => Ok(GcpDelete::Deleted(Some(format!(
            "undo within 30 days: gcloud iam service-accounts undelete {unique_id} --project {}",
            clients.project
        )))),
        Err(e) if e.contains("404") || e.contains("NOT_FOUND") => Ok(GcpDelete::AlreadyGone),
        Err(e) => Err(e),
    }
}

/// The description marker that records when enforce disabled an account.
const DISABLED_MARKER: &str = "[driftsweep: disabled at ";

/// When enforce disabled the account, from its description.
pub fn disabled_at(description: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let start = description.rfind(DISABLED_MARKER)? + DISABLED_MARKER.len();
    let end = description[start..].find(']')? + start;
    chrono::DateTime::parse_from_rfc3339(&description[start..end])
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disable_time_is_read_back_from_the_description() {
        let t = disabled_at("batch jobs [driftsweep: disabled at 2026-11-29T07:30:00Z]").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-29T07:30:00+00:00");
        assert!(disabled_at("no marker").is_none());
        assert!(disabled_at("[driftsweep: disabled at garbage]").is_none());
    }
}
