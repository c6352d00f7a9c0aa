//! One run at a time: a `coordination.k8s.io/v1` Lease (`driftsweep` for enforce,
//! `driftsweep-deploy` in an environment's namespace for deploy and rollback), taken with
//! optimistic concurrency (create, or update at the resourceVersion read), renewed while the
//! run lasts and released at its end. A lease not renewed for its duration has expired (its
//! holder died) and may be taken over.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::inventory::cluster::{Cluster, ClusterError};

pub const LEASE_NAME: &str = "driftsweep";

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "another driftsweep run holds the Lease `{namespace}/{name}`: {holder}, renewed at {renewed}; it expires {duration} s after that\nhint: wait for it to finish; if it died, the Lease expires by itself"
    )]
    Held {
        namespace: String,
        name: String,
        holder: String,
        renewed: String,
        duration: i64,
    },
    #[error("cannot take the Lease `{namespace}/{name}`: {source}{hint}")]
    Api {
        namespace: String,
        name: String,
        source: ClusterError,
        hint: &'static str,
    },
}

/// A held lease; dropping it stops renewing (call `release` to hand it back at once).
pub struct Lease {
    cluster: Cluster,
    namespace: String,
    name: String,
    holder: String,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

fn path(namespace: &str) -> String {
    format!("/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases")
}

fn micro_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn request(method: &str, uri: &str, body: Option<&Value>) -> http::Request<Vec<u8>> {
    let mut builder = http::Request::builder().method(method).uri(uri);
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    // A method and a path we built ourselves always make a valid request.
    builder
        .body(body.map(|b| b.to_string().into_bytes()).unwrap_or_default())
        .unwrap_or_default()
}

/// How long a lease lasts unrenewed: `DRIFTSWEEP_LEASE_SECONDS`, default 60.
pub fn duration_seconds() -> i64 {
    std::env::var("DRIFTSWEEP_LEASE_SECONDS")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|&s| s > 0)
        .unwrap_or(60)
}

impl Lease {
    /// Takes enforce's lease for `holder`, or says who has it.
    pub async fn acquire(
        cluster: &Cluster,
        namespace: &str,
        holder: &str,
    ) -> Result<Lease, LeaseError> {
        Self::acquire_named(cluster, namespace, LEASE_NAME, holder).await
    }

    /// Takes the lease `name` in `namespace` for `holder`, or says who has it.
    pub async fn acquire_named(
        cluster: &Cluster,
        namespace: &str,
        name: &str,
        holder: &str,
    ) -> Result<Lease, LeaseError> {
        let duration = duration_seconds();
        let api = |source: ClusterError| {
            let hint = match source.code() {
                Some(404) => {
                    "\nhint: create the namespace (k8s/driftsweep does) or set `safety.lease_namespace`"
                }
                Some(403) => {
                    "\nhint: grant the Role `driftsweep-lease` in k8s/driftsweep/rbac.yaml"
                }
                _ => "",
            };
            LeaseError::Api {
                namespace: namespace.to_string(),
                name: name.to_string(),
                source,
                hint,
            }
        };
        let now = Utc::now();
        let spec = json!({
            "holderIdentity": holder,
            "leaseDurationSeconds": duration,
            "acquireTime": micro_time(now),
            "renewTime": micro_time(now),
        });
        let current = cluster
            .send_json(request("GET", &format!("{}/{name}", path(namespace)), None))
            .await;
        match current {
            Err(e) if e.code() == Some(404) => {
                let body = json!({
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": spec,
                });
                match cluster
                    .send_json(request("POST", &path(namespace), Some(&body)))
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.code() == Some(409) => {
                        return Err(held_by_racer(cluster, namespace, name).await);
                    }
                    Err(e) => return Err(api(e)),
                }
            }
            Err(e) => return Err(api(e)),
            Ok(mut lease) => {
                let held_by = lease
                    .pointer("/spec/holderIdentity")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if !held_by.is_empty() && held_by != holder && !expired(&lease, now) {
                    return Err(held(namespace, name, &lease));
                }
                lease["spec"] = spec;
                match cluster
                    .send_json(request(
                        "PUT",
                        &format!("{}/{name}", path(namespace)),
                        Some(&lease),
                    ))
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.code() == Some(409) => {
                        return Err(held_by_racer(cluster, namespace, name).await);
                    }
                    Err(e) => return Err(api(e)),
                }
            }
        }
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = tokio::spawn(renew(
            cluster.clone(),
            format!("{}/{name}", path(namespace)),
            holder.to_string(),
            duration,
            lost.clone(),
        ));
        Ok(Lease {
            cluster: cluster.clone(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            holder: holder.to_string(),
            lost,
            renewer,
        })
    }

    /// False once a renewal failed: another run may have taken over, so stop deleting.
    pub fn held(&self) -> bool {
        !self.lost.load(Ordering::SeqCst)
    }

    /// Hands the lease back so the next run need not wait for it to expire.
    pub async fn release(self) {
        self.renewer.abort();
        let uri = format!("{}/{}", path(&self.namespace), self.name);
        if let Ok(mut lease) = self.cluster.send_json(request("GET", &uri, None)).await
            && lease
                .pointer("/spec/holderIdentity")
                .and_then(Value::as_str)
                == Some(self.holder.as_str())
        {
            lease["spec"]["holderIdentity"] = Value::Null;
            if let Err(e) = self
                .cluster
                .send_json(request("PUT", &uri, Some(&lease)))
                .await
            {
                tracing::warn!(error = %e, "could not release the Lease; it expires by itself");
            }
        }
    }
}

fn expired(lease: &Value, now: DateTime<Utc>) -> bool {
    let duration = lease
        .pointer("/spec/leaseDurationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let renewed = lease
        .pointer("/spec/renewTime")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    match renewed {
        Some(t) => now > t + chrono::Duration::seconds(duration),
        None => true,
    }
}

fn held(namespace: &str, name: &str, lease: &Value) -> LeaseError {
    let text = |p: &str| {
        lease
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string()
    };
    LeaseError::Held {
        namespace: namespace.to_string(),
        name: name.to_string(),
        holder: text("/spec/holderIdentity"),
        renewed: text("/spec/renewTime"),
        duration: lease
            .pointer("/spec/leaseDurationSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0),
    }
}

/// Someone else won the race between our read and our write: name them.
async fn held_by_racer(cluster: &Cluster, namespace: &str, name: &str) -> LeaseError {
    let uri = format!("{}/{name}", path(namespace));
    match cluster.send_json(request("GET", &uri, None)).await {
        Ok(lease) => held(namespace, name, &lease),
        Err(source) => LeaseError::Api {
            namespace: namespace.to_string(),
            name: name.to_string(),
            source,
            hint: "",
        },
    }
}

async fn renew(
    cluster: Cluster,
    uri: String,
    holder: String,
    duration: i64,
    lost: Arc<AtomicBool>,
) {
    let every = Duration::from_secs_f64((duration as f64 / 3.0).max(0.5));
    loop {
        tokio::time::sleep(every).await;
        let renewed = async {
            let mut lease = cluster.send_json(request("GET", &uri, None)).await?;
            if lease
                .pointer("/spec/holderIdentity")
                .and_then(Value::as_str)
                != Some(&holder)
            {
                return Ok(false);
            }
            lease["spec"]["renewTime"] = Value::String(micro_time(Utc::now()));
            cluster
                .send_json(request("PUT", &uri, Some(&lease)))
                .await
                .map(|_| true)
        }
        .await;
        match renewed {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!("the Lease was taken over; no further deletions");
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "the Lease could not be renewed; no further deletions");
                lost.store(true, Ordering::SeqCst);
                return;
            }
        }
    }
}
