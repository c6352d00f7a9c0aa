//! Static IP addresses (`gcp.addresses`), regional and global. Only an address that is
//! `RESERVED` (held, not attached) and lists no users is ever a deletion candidate; one whose
//! `purpose` says a Google service holds it (`VPC_PEERING` ranges of private service access,
//! Private Service Connect, NAT) is kept however it looks, since those list no users.
//!
//! Regional addresses are named `REGION/NAME` (a name is unique only within its region),
//! global ones `NAME`. The snapshot file `addresses.json` holds both: the REST list body
//! `{"items": [...]}` `snapshot` writes, the aggregated list the API returns
//! (`{"items": {"regions/R": {"addresses": [...]}}}`), or the array `gcloud compute addresses
//! list --format=json` prints.

use google_cloud_compute_v1::client::{Addresses, GlobalAddresses};
use serde_json::Value;

use super::{Boxed, Deletion, FileError, Files, Kind, Listed, Reverify, Target, parse_file};
use crate::inventory::gcp_common::{
    labels, required, scoped_items, short_name, strings, text, time,
};
use crate::inventory::gcp_live::{
    COMPUTE, GcpClients, GcpDelete, aggregated_list, client, compute_delete, compute_deleted,
    compute_get, compute_list,
};
use crate::inventory::{GcpKind, GcpResource};

pub const FILE: &str = "addresses.json";

/// The only status an address can be deleted in: reserved and attached to nothing.
pub const RESERVED: &str = "RESERVED";

/// The purposes of addresses a user reserves for a VM or a load balancer; any other purpose
/// (`VPC_PEERING`, `PRIVATE_SERVICE_CONNECT`, `NAT_AUTO`, `SHARED_LOADBALANCER_VIP`,
/// `IPSEC_INTERCONNECT`, `DNS_RESOLVER`, `SERVERLESS`, ...) belongs to a Google service that
/// uses it without listing itself as a user.
pub const USER_PURPOSES: &[&str] = &["GCE_ENDPOINT"];

pub static KIND: Kind = Kind {
    kind: GcpKind::Address,
    what: "static addresses",
    audited: |p| p.addresses.is_some(),
    allowed: |p| p.addresses.as_ref().map(|a| a.allowed.as_slice()),
    floor: &["gke-*", "k8s-*", "k8s1-*", "k8s2-*"],
    list,
    parse,
    current,
    delete,
    reverify: Reverify {
        id: Some("id"),
        created: Some("creationTimestamp"),
    },
    auditor: &["compute.addresses.list", "compute.globalAddresses.list"],
    enforcer: &[
        "compute.addresses.get",
        "compute.addresses.delete",
        "compute.regionOperations.get",
        "compute.globalAddresses.get",
        "compute.globalAddresses.delete",
        "compute.globalOperations.get",
    ],
};

fn list(clients: &GcpClients) -> Boxed<'_, Listed> {
    Box::pin(async move {
        let mut listed = Listed::default();
        let regional = regional(clients).await;
        let global = match client!(clients, GlobalAddresses, COMPUTE) {
            Ok(c) => compute_list!(c, clients.project.clone(), "globalAddresses.list"),
            Err(e) => Err(e),
        };
        let both = regional.and_then(|mut r| {
            r.extend(global?);
            Ok(r)
        });
        listed.store(KIND.what, FILE, "items", both);
        listed
    })
}

/// Every regional address, through the aggregated list (every page; an unreachable region
/// fails it). Global addresses are listed on their own.
async fn regional(clients: &GcpClients) -> Result<Vec<Value>, String> {
    let c = client!(clients, Addresses, COMPUTE)?;
    aggregated_list!(
        c,
        clients.project,
        "addresses.aggregatedList",
        "regions/",
        addresses
    )
}

fn parse(files: &dyn Files) -> Result<Option<Vec<GcpResource>>, FileError> {
    parse_file(files, FILE, parse_addresses)
}

/// Addresses of any of the shapes above; regional ones named `REGION/NAME`.
pub fn parse_addresses(body: &Value) -> Result<Vec<GcpResource>, String> {
    scoped_items(body, "addresses")?
        .into_iter()
        .map(|(path, o)| {
            let short = required(o, &path, "name")?;
            let region = text(o, "region").map(|r| short_name(&r).to_string());
            let name = match &region {
                Some(r) => format!("{r}/{short}"),
                None => short.to_string(),
            };
            // `projects/P/regions/R/addresses/N`, from the link the API gives it.
            let resource_name =
                text(o, "selfLink").and_then(|l| l.find("projects/").map(|i| l[i..].to_string()));
            Ok(GcpResource {
                id: text(o, "id"),
                self_link: text(o, "selfLink"),
                resource_name,
                created: time(o, &path, "creationTimestamp")?,
                description: text(o, "description"),
                labels: labels(o),
                status: text(o, "status"),
                purpose: text(o, "purpose"),
                used_by: strings(o, "users"),
                ..GcpResource::of(GcpKind::Address, &name)
            })
        })
        .collect()
}

/// `REGION/NAME` → (Some(region), name); `NAME` → (None, name).
fn split(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((region, short)) => (Some(region), short),
        None => (None, name),
    }
}

fn current<'a>(
    clients: &'a GcpClients,
    target: &'a Target<'a>,
) -> Boxed<'a, Result<Option<Value>, String>> {
    Box::pin(async move {
        match split(target.name) {
            (Some(region), short) => {
                compute_get!("addresses.get", clients, Addresses, set_address(short), region region)
            }
            (None, short) => compute_get!(
                "globalAddresses.get",
                clients,
                GlobalAddresses,
                set_address(short)
            ),
        }
    })
}

/// Why the address read again must not be deleted, if it must not.
pub fn still_unused(current: &Value) -> Result<(), String> {
    let status = current.get("status").and_then(Value::as_str).unwrap_or("");
    let users = current
        .get("users")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if status != RESERVED || users > 0 {
        return Err(format!(
            "in use since the audit (status {}, {users} users)",
            if status.is_empty() { "unknown" } else { status }
        ));
    }
    Ok(())
}

fn delete<'a>(
    clients: &'a GcpClients,
    d: &'a Deletion<'a>,
) -> Boxed<'a, Result<GcpDelete, String>> {
    Box::pin(async move {
        if let Err(why) = still_unused(d.current) {
            return Ok(GcpDelete::Skipped(why));
        }
        let result = match split(d.name) {
            (Some(region), short) => {
                compute_delete!(clients, Addresses, set_address(short), region region)
            }
            (None, short) => compute_delete!(clients, GlobalAddresses, set_address(short)),
        };
        compute_deleted(result)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn addresses_are_read_from_every_shape_a_user_may_record() {
        let one = json!({"name": "ip", "status": "RESERVED", "region":
            "https://www.googleapis.com/compute/v1/projects/p/regions/us-central1",
            "selfLink": "https://www.googleapis.com/compute/v1/projects/p/regions/us-central1/addresses/ip"});
        let global = json!({"name": "lb", "status": "IN_USE", "users": ["u"]});
        let rest = json!({"items": [one.clone(), global.clone()]});
        let aggregated = json!({"items": {"regions/us-central1": {"addresses": [one.clone()]},
            "regions/europe-west1": {"warning": {"code": "NO_RESULTS_ON_PAGE"}}}});
        let gcloud = json!([one, global]);
        for body in [&rest, &gcloud] {
            let a = parse_addresses(body).unwrap();
            assert_eq!(a[0].name, "us-central1/ip");
            assert_eq!(
                a[0].resource_name.as_deref(),
                Some("projects/p/regions/us-central1/addresses/ip")
            );
            assert_eq!(a[1].name, "lb");
            assert_eq!(a[1].used_by, ["u"]);
            assert_eq!(a[1].status.as_deref(), Some("IN_USE"));
        }
        assert_eq!(parse_addresses(&aggregated).unwrap().len(), 1);
        assert_eq!(
            parse_addresses(&json!({"items": [{"status": "RESERVED"}]})).unwrap_err(),
            "items[0].name: missing"
        );
        assert!(
            parse_addresses(&json!([7]))
                .unwrap_err()
                .contains("[0]: expected an object")
        );
    }

    #[test]
    fn an_address_is_deleted_only_while_it_is_still_reserved_and_unused() {
        assert!(still_unused(&json!({"status": "RESERVED"})).is_ok());
        assert!(still_unused(&json!({"status": "RESERVED", "users": ["vm"]})).is_err());
        assert!(still_unused(&json!({"status": "IN_USE"})).is_err());
        assert!(still_unused(&json!({})).is_err(), "unknown status: kept");
    }
}
