//! A reviewed plan is data from outside: anyone who can edit the JSON chooses its run id and
//! its names, and enforce builds backup paths and API requests from them. Each is checked
//! against what its system allows (Kubernetes' DNS rules, the distribution spec, GCP's naming
//! rules) before anything is built from it; `"../../elsewhere"` as a run id wrote the backup
//! outside `--backup`.

use crate::evaluate::{Action, Finding};
use crate::inventory::{GcpKind, Provider};
use crate::report::Report;

/// One name a plan may not carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadName {
    /// Where: `run_id`, or `findings[3] (ConfigMap app/x)`.
    pub at: String,
    /// The field, as the report's JSON spells it.
    pub field: &'static str,
    pub value: String,
    /// What it must be, in words.
    pub rule: &'static str,
}

type Check = Result<(), (&'static str, String, &'static str)>;

/// Checks the run id and every planned deletion's names; the first bad one is returned.
pub fn check(plan: &Report) -> Result<(), BadName> {
    if !is_run_id(&plan.run_id) {
        return Err(BadName {
            at: "the plan".to_string(),
            field: "run_id",
            value: plan.run_id.clone(),
            rule: "a run id as driftsweep writes it, e.g. `20261129T073000Z-1a2b3c`",
        });
    }
    for (i, f) in plan.findings.iter().enumerate() {
        // Only planned deletions reach a path or a request.
        if f.action != Action::Delete {
            continue;
        }
        finding(f).map_err(|(field, value, rule)| BadName {
            at: format!(
                "findings[{i}] ({} {})",
                printable(&f.kind),
                printable(&crate::report::in_namespace(f, &f.name))
            ),
            field,
            value,
            rule,
        })?;
    }
    Ok(())
}

/// `20261129T073000Z-1a2b3c`, as `commands::run_id` makes it.
pub fn is_run_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 23
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
        && b[16] == b'-'
        && b[17..]
            .iter()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

fn require(ok: bool, field: &'static str, value: &str, rule: &'static str) -> Check {
    if ok {
        Ok(())
    } else {
        Err((field, printable(value), rule))
    }
}

fn finding(f: &Finding) -> Check {
    let id = &f.identity;
    match f.provider {
        Provider::Kubernetes => {
            require(is_kind(&f.kind), "kind", &f.kind, KIND)?;
            if let Some(ns) = &f.namespace {
                require(is_dns_label(ns), "namespace", ns, DNS_LABEL)?;
            }
            if f.kind == "Namespace" {
                require(is_dns_label(&f.name), "name", &f.name, DNS_LABEL)?;
            } else {
                require(is_dns_subdomain(&f.name), "name", &f.name, DNS_SUBDOMAIN)?;
            }
            if let Some(v) = &id.api_version {
                require(
                    is_api_version(v),
                    "identity.api_version",
                    v,
                    "`v1` or `GROUP/VERSION`, e.g. `apps/v1`",
                )?;
            }
            if let Some(uid) = &id.uid {
                require(is_token(uid), "identity.uid", uid, TOKEN)?;
            }
            if let Some(rv) = &id.resource_version {
                require(is_token(rv), "identity.resource_version", rv, TOKEN)?;
            }
        }
        Provider::Registry => {
            require(f.kind == "Image", "kind", &f.kind, "`Image`")?;
            let repository = id.repository.as_deref().unwrap_or_default();
            require(
                is_repository(repository),
                "identity.repository",
                repository,
                "`HOST/PATH` with lowercase path components, e.g. `us-docker.pkg.dev/p/r/app`",
            )?;
            let digest = id.digest.as_deref().unwrap_or_default();
            require(is_digest(digest), "identity.digest", digest, DIGEST)?;
            require(
                f.name == format!("{repository}@{digest}"),
                "name",
                &f.name,
                "`REPOSITORY@DIGEST` of its identity",
            )?;
            for tag in id.tags.iter().flatten() {
                require(
                    is_tag(tag),
                    "identity.tags",
                    tag,
                    "a tag: letters, digits, `_`, `.`, `-`, at most 128",
                )?;
            }
            if let Some(parent) = &id.parent {
                require(is_digest(parent), "identity.parent", parent, DIGEST)?;
            }
            require(
                f.namespace.is_none(),
                "namespace",
                "",
                "absent for an image",
            )?;
        }
        Provider::Gcp => {
            let Some(kind) = GcpKind::parse(&f.kind) else {
                return Err((
                    "kind",
                    printable(&f.kind),
                    "one of `FirewallRule`, `Bucket`, `IamServiceAccount`, `SslCertificate`, `Certificate`, `Address`, `Disk`, `Snapshot`, `ForwardingRule`, `TargetProxy`, `UrlMap`, `BackendService`, `BackendBucket`, `HealthCheck`, `LogSink`, `LogBucket`, `SqlInstance`, `SqlBackup`",
                ));
            };
            let (ok, rule) = match kind {
                GcpKind::FirewallRule
                | GcpKind::SslCertificate
                | GcpKind::Certificate
                | GcpKind::Snapshot => (is_rfc1035(&f.name), RFC1035),
                GcpKind::Bucket => (is_bucket(&f.name), BUCKET),
                GcpKind::IamServiceAccount => (is_account_email(&f.name), EMAIL),
                GcpKind::Address => (is_address_name(&f.name), ADDRESS),
                GcpKind::TargetProxy => (
                    crate::inventory::gcp::target_proxy::split(&f.name).is_ok()
                        && f.name.split('/').all(is_rfc1035),
                    "a target proxy name: `TYPE/NAME` or `REGION/TYPE/NAME`, TYPE one of `http`, `https`, `ssl`, `tcp`",
                ),
                GcpKind::ForwardingRule => (
                    is_address_name(&f.name),
                    "a forwarding rule name: `REGION/NAME` or `NAME`, of GCP names",
                ),
                GcpKind::UrlMap | GcpKind::BackendService | GcpKind::HealthCheck => (
                    is_address_name(&f.name),
                    "a load balancer part's name: `REGION/NAME` or `NAME`, of GCP names",
                ),
                GcpKind::BackendBucket => (is_rfc1035(&f.name), RFC1035),
                GcpKind::SqlInstance => (is_sql_instance_name(&f.name), SQL_INSTANCE),
                GcpKind::SqlBackup => (is_sql_backup_name(&f.name), SQL_BACKUP),
                GcpKind::Disk => (
                    f.name.split_once('/').is_some() && is_address_name(&f.name),
                    "a disk name: `ZONE/NAME` of two GCP names",
                ),
                GcpKind::LogSink => (is_log_id(&f.name), LOG_ID),
                GcpKind::LogBucket => (
                    f.name
                        .split_once('/')
                        .is_some_and(|(l, b)| is_dns_label(l) && is_log_id(b)),
                    "a log bucket name: `LOCATION/BUCKET`, LOCATION a location (`global`, `us-central1`), BUCKET letters, digits, `_`, `-` and `.`, at most 100",
                ),
            };
            require(ok, "name", &f.name, rule)?;
            if let Some(full) = &id.resource_name {
                let (ok, rule) = match kind {
                    // Certificate Manager is called by it.
                    GcpKind::Certificate => (
                        is_certificate_name(full, &f.name),
                        "`projects/PROJECT/locations/LOCATION/certificates/NAME` of this name",
                    ),
                    GcpKind::Disk => (
                        is_resource_name(full, address_short(&f.name)) && full.contains("/disks/"),
                        "`projects/PROJECT/zones/ZONE/disks/NAME` of this name",
                    ),
                    GcpKind::TargetProxy => (
                        is_resource_name(full, address_short(&f.name)) && full.contains("/target"),
                        "`projects/PROJECT/global/targetHttpsProxies/NAME` (or another proxy collection, or regional) of this name",
                    ),
                    GcpKind::ForwardingRule => (
                        is_resource_name(full, address_short(&f.name))
                            && full.contains("/forwardingRules/"),
                        "`projects/PROJECT/regions/REGION/forwardingRules/NAME` or `projects/PROJECT/global/forwardingRules/NAME` of this name",
                    ),
                    GcpKind::LogBucket => (
                        is_resource_name(full, address_short(&f.name))
                            && full.contains("/locations/")
                            && full.contains("/buckets/"),
                        "`projects/PROJECT/locations/LOCATION/buckets/BUCKET` of this name",
                    ),
                    GcpKind::UrlMap | GcpKind::BackendService | GcpKind::HealthCheck => {
                        let collection = match kind {
                            GcpKind::UrlMap => "/urlMaps/",
                            GcpKind::BackendService => "/backendServices/",
                            _ => "/healthChecks/",
                        };
                        (
                            is_resource_name(full, address_short(&f.name))
                                && full.contains(collection),
                            "`projects/PROJECT/global/COLLECTION/NAME` or `projects/PROJECT/regions/REGION/COLLECTION/NAME` of this name, COLLECTION the kind's",
                        )
                    }
                    GcpKind::SqlBackup => (
                        is_resource_name(full, address_short(&f.name))
                            && (full.contains("/backupRuns/") || full.contains("/backups/")),
                        "`projects/PROJECT/instances/INSTANCE/backupRuns/ID` or `projects/PROJECT/backups/ID` of this name",
                    ),
                    GcpKind::Address => (
                        is_resource_name(full, address_short(&f.name))
                            && full.contains("/addresses/"),
                        "`projects/PROJECT/regions/REGION/addresses/NAME` or `projects/PROJECT/global/addresses/NAME` of this name",
                    ),
                    _ => (
                        is_resource_name(full, &f.name),
                        "`projects/PROJECT/…/NAME` of this name, of plain segments",
                    ),
                };
                require(ok, "identity.resource_name", full, rule)?;
            }
            require(
                f.namespace.is_none(),
                "namespace",
                "",
                "absent for a GCP resource",
            )?;
        }
    }
    Ok(())
}

const KIND: &str = "a Kubernetes kind: a capital letter, then letters and digits";
const DNS_LABEL: &str = "a DNS label: lowercase letters, digits and `-`, at most 63";
const DNS_SUBDOMAIN: &str =
    "a DNS subdomain: DNS labels joined by `.`, lowercase letters, digits and `-`, at most 253";
const TOKEN: &str = "letters, digits, `.`, `_` and `-`, at most 128";
const DIGEST: &str = "`sha256:` and 64 lowercase hex digits";
const RFC1035: &str =
    "a GCP name: a lowercase letter, then lowercase letters, digits and `-`, at most 63";
const BUCKET: &str = "a bucket name: lowercase letters, digits, `-`, `_` and `.`, 3 to 222, starting and ending with a letter or digit, no `..`";
const EMAIL: &str =
    "a service account email: `NAME@DOMAIN` of lowercase letters, digits, `-` and `.`";

/// A value as an error shows it: escaped, and cut at 120 characters.
fn printable(s: &str) -> String {
    let escaped: String = s.escape_debug().collect();
    match escaped.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &escaped[..i]),
        None => escaped,
    }
}

fn is_alnum_lower(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && is_alnum_lower(b[0])
        && is_alnum_lower(b[b.len() - 1])
        && b.iter().all(|&c| is_alnum_lower(c) || c == b'-')
}

pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_kind(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_uppercase()
        && b.iter().all(u8::is_ascii_alphanumeric)
}

fn is_api_version(s: &str) -> bool {
    let version = |v: &str| {
        let b = v.as_bytes();
        !b.is_empty() && b.len() <= 63 && b[0] == b'v' && b.iter().all(|&c| is_alnum_lower(c))
    };
    match s.split_once('/') {
        None => version(s),
        Some((group, v)) => is_dns_subdomain(group) && version(v),
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
    })
}

fn is_tag(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `host[:port]/path`, the path in the distribution spec's lowercase components.
fn is_repository(s: &str) -> bool {
    let Some((host, path)) = s.split_once('/') else {
        return false;
    };
    let (name, port) = host.split_once(':').unwrap_or((host, ""));
    let host_ok = !name.is_empty()
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        })
        && port.bytes().all(|c| c.is_ascii_digit())
        && port.len() <= 5;
    host_ok
        && s.len() <= 255
        && path.split('/').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && is_alnum_lower(b[0])
                && is_alnum_lower(b[b.len() - 1])
                && !c.contains("..")
                && b.iter()
                    .all(|&c| is_alnum_lower(c) || matches!(c, b'.' | b'_' | b'-'))
        })
}

fn is_rfc1035(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && is_alnum_lower(b[b.len() - 1])
        && b.iter().all(|&c| is_alnum_lower(c) || c == b'-')
}

const ADDRESS: &str = "an address name: a GCP name, or `REGION/NAME` of two GCP names";

/// `NAME` (global) or `REGION/NAME` (regional).
fn is_address_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((region, name)) => is_rfc1035(region) && is_rfc1035(name),
        None => is_rfc1035(s),
    }
}

const LOG_ID: &str =
    "a Cloud Logging id: a letter or digit, then letters, digits, `_`, `-` and `.`, at most 100";

/// A sink's or a log bucket's id (`_Default` starts with `_`, but the floor keeps it).
fn is_log_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 100
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

/// Cloud SQL: lowercase letters, digits and hyphens, starting with a letter, at most 98
/// (the project id and the name together).
fn is_sql_instance_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 98
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

const SQL_INSTANCE: &str =
    "a Cloud SQL instance name: a lowercase letter, then lowercase letters, digits and `-`";

/// `INSTANCE/RUN_ID` (a backup run) or `INSTANCE/backups/ID` (a project backup).
fn is_sql_backup_name(s: &str) -> bool {
    let id = |p: &str| {
        !p.is_empty()
            && p.len() <= 128
            && p.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'))
    };
    match s.split('/').collect::<Vec<_>>()[..] {
        [instance, run] => {
            is_sql_instance_name(instance)
                && !run.is_empty()
                && run.bytes().all(|c| c.is_ascii_digit())
        }
        [instance, "backups", backup] => is_sql_instance_name(instance) && id(backup),
        _ => false,
    }
}

const SQL_BACKUP: &str =
    "a Cloud SQL backup name: `INSTANCE/RUN_ID` (digits) or `INSTANCE/backups/ID`";

fn address_short(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

fn is_bucket(s: &str) -> bool {
    let b = s.as_bytes();
    (3..=222).contains(&b.len())
        && is_alnum_lower(b[0])
        && is_alnum_lower(b[b.len() - 1])
        && !s.contains("..")
        && b.iter()
            .all(|&c| is_alnum_lower(c) || matches!(c, b'-' | b'_' | b'.'))
}

fn is_account_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let part = |p: &str| {
        let b = p.as_bytes();
        !b.is_empty()
            && b.len() <= 100
            && is_alnum_lower(b[0])
            && is_alnum_lower(b[b.len() - 1])
            && !p.contains("..")
            && b.iter()
                .all(|&c| is_alnum_lower(c) || matches!(c, b'-' | b'.'))
    };
    part(local) && part(domain) && !local.contains('.')
}

fn is_certificate_name(full: &str, name: &str) -> bool {
    let parts: Vec<&str> = full.split('/').collect();
    parts.len() == 6
        && parts[0] == "projects"
        && parts[2] == "locations"
        && parts[4] == "certificates"
        && parts[5] == name
        && [parts[1], parts[3]].iter().all(|p| is_dns_label(p))
}

/// `projects/p/serviceAccounts/NAME`: plain segments ending in the resource's name.
fn is_resource_name(full: &str, name: &str) -> bool {
    full.starts_with("projects/")
        && full.rsplit('/').next() == Some(name)
        && full.split('/').all(|p| {
            is_path_component(p)
                && p.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'@' | b'.' | b'_' | b'-'))
        })
}

/// One component of a backup path: not empty, not `.` or `..`, no separator, no NUL. The
/// backup path builder checks every component with this, whatever validated the names before.
pub fn is_path_component(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s != "." && s != ".." && !s.contains(['/', '\\', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_what_driftsweep_writes() {
        assert!(is_run_id("20261129T073000Z-1a2b3c"));
        for bad in [
            "../../elsewhere",
            "20261129T073000Z-1A2B3C",
            "20261129T073000Z-1a2b3c/..",
            "",
        ] {
            assert!(!is_run_id(bad), "{bad}");
        }
    }

    #[test]
    fn names_follow_their_systems_rules() {
        assert!(is_dns_subdomain("kube-root-ca.crt") && !is_dns_subdomain("a..b"));
        assert!(!is_dns_subdomain("..") && !is_dns_subdomain("A"));
        assert!(
            is_api_version("apps/v1")
                && is_api_version("v1")
                && is_api_version("cert-manager.io/v1beta1")
        );
        assert!(!is_api_version("v1/../x") && !is_api_version("apps/v1/x"));
        assert!(
            is_repository("127.0.0.1:5000/team/app") && is_repository("us-docker.pkg.dev/p/r/a__b")
        );
        assert!(!is_repository("r.io/../x") && !is_repository("/r.io/x") && !is_repository("r.io"));
        assert!(is_account_email(
            "123-compute@developer.gserviceaccount.com"
        ));
        assert!(is_account_email(
            "service-123@gcp-sa-gkehub.iam.gserviceaccount.com"
        ));
        assert!(!is_account_email("../x@p.iam.gserviceaccount.com"));
        assert!(is_bucket("aia-prod.appspot.com") && !is_bucket("../b") && !is_bucket("a/b"));
        assert!(is_log_id("Old_sink.v2") && !is_log_id("..") && !is_log_id("a/b"));
        assert!(!is_log_id(".x") && !is_log_id(&"a".repeat(101)));
        assert!(
            is_path_component("a@sha256:00")
                && !is_path_component("..")
                && !is_path_component("a/b")
        );
    }
}
