//! Health checks (`gcp.health_checks`), global and regional: the bottom of a load balancer's
//! chain. Backend services name them (`healthChecks`); so do managed instance groups, for
//! autohealing (`autoHealingPolicies[].healthCheck`), which are listed (the aggregated list,
//! zonal and regional) but not audited, so a check one names is always kept. A check with
//! `sourceRegions` is one Cloud DNS routing policies use (only they may), and those are not
//! listed: it is always kept. Without the backend services' or the groups' file no check is
//! unused. Legacy HTTP(S) health checks (`httpHealthChecks`, of target pools) are another
//! collection, not listed.
//!
//! Named `NAME` or `REGION/NAME`; snapshot files `healthChecks.json` and
//! `instanceGroupManagers.json`.

use google_cloud_compute_v1::client::{HealthChecks, InstanceGroupManagers, RegionHealthChecks};
use serde_json::{Value, json};

use super::chain::{self, global_and_regional};
use super::{Boxed, Deletion, FileError, Files, Kind, Listed, Reverify, Target, parse_file};
use crate::inventory::gcp_live::{
    COMPUTE, GcpClients, GcpDelete, aggregated_list, client, compute_delete, compute_deleted,
    compute_get,
};
use crate::inventory::{GcpKind, GcpResource};

pub const FILE: &str = "healthChecks.json";

/// Managed instance groups, zonal and regional, read for their autohealing checks.
pub const GROUPS: &str = "instanceGroupManagers.json";

pub static KIND: Kind = Kind {
    kind: GcpKind::HealthCheck,
    what: "health checks",
    audited: |p| p.health_checks.is_some(),
    allowed: |p| p.health_checks.as_ref().map(|a| a.allowed.as_slice()),
    floor: super::forwarding_rule::FLOOR,
    list,
    parse,
    current,
    delete,
    reverify: Reverify {
        id: Some("id"),
        created: Some("creationTimestamp"),
    },
    auditor: &[
        "compute.backendServices.list",
        "compute.instanceGroupManagers.list",
        "compute.healthChecks.list",
    ],
    enforcer: &[
        "compute.healthChecks.get",
        "compute.healthChecks.delete",
        "compute.globalOperations.get",
        "compute.regionHealthChecks.get",
        "compute.regionHealthChecks.delete",
        "compute.regionOperations.get",
    ],
};

fn list(clients: &GcpClients) -> Boxed<'_, Listed> {
    Box::pin(async move {
        let mut listed = Listed::default();
        let checks =
            global_and_regional!(clients, FILE, HealthChecks, health_checks, "healthChecks");
        listed.store_body(KIND.what, FILE, checks);
        let services = super::backend_service::listed_services(clients).await;
        listed.store_body("backend services", super::backend_service::FILE, services);
        let groups = async {
            let c = client!(clients, InstanceGroupManagers, COMPUTE)?;
            // Both scopes: zonal groups under `zones/`, regional ones under `regions/`.
            aggregated_list!(
                c,
                clients.project,
                "instanceGroupManagers.aggregatedList",
                "",
                instance_group_managers
            )
            .map(|i| json!({"items": i}))
        }
        .await;
        listed.store_body("instance group managers", GROUPS, groups);
        listed
    })
}

/// Why a health check is kept whatever names it: what may name it is not listed.
pub fn unlisted_referrers(check: &serde_json::Map<String, Value>) -> Option<String> {
    check
        .get("sourceRegions")
        .and_then(Value::as_array)
        .is_some_and(|r| !r.is_empty())
        .then(|| {
            "has source regions: a Cloud DNS routing policy uses it, and those are not listed"
                .to_string()
        })
}

fn parse_checks(body: &Value) -> Result<Vec<GcpResource>, String> {
    chain::parse_parts(GcpKind::HealthCheck, body, "healthChecks", |c, o| {
        c.used_by.extend(unlisted_referrers(o));
    })
}

fn parse(files: &dyn Files) -> Result<Option<Vec<GcpResource>>, FileError> {
    let Some(mut checks) = parse_file(files, FILE, parse_checks)? else {
        return Ok(None);
    };
    const COLL: &str = "healthChecks";
    let services = chain::named_in(
        files,
        super::backend_service::FILE,
        "backendServices",
        COLL,
        &super::forwarding_rule::scoped_name,
        &|o| chain::field_of(o, "healthChecks"),
    )?;
    match services {
        Some(named) => chain::refer(&mut checks, GcpKind::BackendService, &named),
        None => chain::unproven(
            &mut checks,
            "backend services",
            super::backend_service::FILE,
        ),
    }
    let groups = chain::named_in(
        files,
        GROUPS,
        "instanceGroupManagers",
        COLL,
        &|o, short| {
            let scope = crate::inventory::gcp_common::text(o, "zone")
                .or_else(|| crate::inventory::gcp_common::text(o, "region"));
            match scope {
                Some(s) => format!("{}/{short}", crate::inventory::gcp_common::short_name(&s)),
                None => short.to_string(),
            }
        },
        &|o| chain::field_of(o, "autoHealingPolicies"),
    )?;
    match groups {
        Some(named) => chain::used(&mut checks, "instance group manager", &named),
        None => chain::unproven(&mut checks, "instance group managers", GROUPS),
    }
    Ok(Some(checks))
}

fn current<'a>(
    clients: &'a GcpClients,
    target: &'a Target<'a>,
) -> Boxed<'a, Result<Option<Value>, String>> {
    Box::pin(async move {
        match super::forwarding_rule::split(target.name) {
            (Some(r), n) => compute_get!(
                "regionHealthChecks.get",
                clients,
                RegionHealthChecks,
                set_health_check(n),
                region r
            ),
            (None, n) => compute_get!(
                "healthChecks.get",
                clients,
                HealthChecks,
                set_health_check(n)
            ),
        }
    })
}

fn delete<'a>(
    clients: &'a GcpClients,
    d: &'a Deletion<'a>,
) -> Boxed<'a, Result<GcpDelete, String>> {
    Box::pin(async move {
        if let Some(why) = d.current.as_object().and_then(unlisted_referrers) {
            return Ok(GcpDelete::Skipped(why));
        }
        let result = match super::forwarding_rule::split(d.name) {
            (Some(r), n) => {
                compute_delete!(clients, RegionHealthChecks, set_health_check(n), region r)
            }
            (None, n) => compute_delete!(clients, HealthChecks, set_health_check(n)),
        };
        compute_deleted(result)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::gcp::chain::by_name;
    use std::collections::BTreeMap;

    const H: &str = "https://www.googleapis.com/compute/v1/projects/p";

    fn files() -> BTreeMap<String, Value> {
        let mut files = BTreeMap::new();
        files.insert(
            FILE.to_string(),
            json!({"items": [{"name": "web"}, {"name": "heal"}, {"name": "lonely"},
                {"name": "dns", "sourceRegions": ["us-east1", "us-west1", "europe-west1"]},
                {"name": "web", "region": format!("{H}/regions/r")}]}),
        );
        files.insert(
            super::super::backend_service::FILE.to_string(),
            json!({"items": [{"name": "svc", "healthChecks": [format!("{H}/global/healthChecks/web")]},
                {"name": "rsvc", "region": format!("{H}/regions/r"),
                 "healthChecks": [format!("{H}/regions/r/healthChecks/web")]}]}),
        );
        files.insert(
            GROUPS.to_string(),
            json!({"items": {"zones/r-a": {"instanceGroupManagers": [{"name": "mig",
                "zone": format!("{H}/zones/r-a"),
                "autoHealingPolicies": [{"healthCheck": format!("{H}/global/healthChecks/heal")}]}]}}}),
        );
        files
    }

    #[test]
    fn a_health_check_knows_its_services_groups_and_dns_policies() {
        let c = parse(&files()).unwrap().unwrap();
        assert_eq!(by_name(&c, "web").referrers[0].name, "svc");
        assert_eq!(by_name(&c, "r/web").referrers[0].name, "r/rsvc");
        assert_eq!(
            by_name(&c, "heal").used_by,
            ["instance group manager r-a/mig"]
        );
        assert!(by_name(&c, "dns").used_by[0].contains("Cloud DNS"));
        let lonely = by_name(&c, "lonely");
        assert!(lonely.referrers.is_empty() && lonely.used_by.is_empty());
    }

    #[test]
    fn no_health_check_is_unused_without_the_services_and_the_groups() {
        for missing in [super::super::backend_service::FILE, GROUPS] {
            let mut files = files();
            files.remove(missing);
            let c = parse(&files).unwrap().unwrap();
            assert!(
                !by_name(&c, "lonely").used_by.is_empty(),
                "{missing} absent: kept"
            );
        }
    }
}
