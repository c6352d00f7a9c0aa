//! evaluate + plan on a large generated inventory: 100,000 Kubernetes objects (20,000 of them
//! Pods and workload templates referencing the rest) and 50,000 image versions.
//! Target on the 2-core CI machine: under 1 s and under 300 MB. Figures go in BENCHMARKS.md.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{Duration, TimeZone, Utc};
use criterion::{Criterion, criterion_group};
use driftsweep::evaluate::evaluate;
use driftsweep::inventory::registry::{Children, ImageVersion, Repository};
use driftsweep::inventory::{Container, Inventory, KubeObject, ObjectRef};
use driftsweep::manifests::Desired;
use driftsweep::plan::plan;
use driftsweep::policy::{AuditedKind, Policy, validate_source};

/// Counts live and peak heap bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const NAMESPACES: usize = 50;
const REPOSITORIES: usize = 50;
const VERSIONS_PER_REPOSITORY: usize = 1_000;

fn policy() -> Policy {
    let namespaces: Vec<String> = (0..NAMESPACES).map(|i| format!("ns-{i}")).collect();
    let repositories: Vec<String> = (0..REPOSITORIES)
        .map(|i| format!("      - reg.example.com/p/app-{i}"))
        .collect();
    let yaml = format!(
        "version: 1\nname: bench\nkubernetes:\n  namespaces: [{}]\n  delete_pvcs: true\nregistry:\n  repositories:\n{}\n  scan: [reg.example.com/p]\nsafety:\n  max_deletions: 1000000\n",
        namespaces.join(", "),
        repositories.join("\n")
    );
    validate_source(&yaml).expect("bench policy is valid")
}

fn object(kind: &str, ns: usize, name: String, i: usize) -> KubeObject {
    let now = Utc
        .with_ymd_and_hms(2026, 11, 29, 0, 0, 0)
        .single()
        .expect("valid time");
    KubeObject {
        api_version: "v1".into(),
        kind: kind.into(),
        namespace: Some(format!("ns-{ns}")),
        name,
        uid: Some(format!("uid-{kind}-{i}")),
        resource_version: Some(i.to_string()),
        created: Some(now - Duration::days(30 + (i % 300) as i64)),
        ..KubeObject::default()
    }
}

/// 80,000 audited objects and 20,000 Pods/workloads, each workload referencing a ConfigMap,
/// a Secret, a PVC and a ServiceAccount (so about a quarter of them are in use).
fn inventory() -> Inventory {
    let mut objects = Vec::with_capacity(100_050);
    for i in 0..NAMESPACES {
        let mut ns = object("Namespace", 0, format!("ns-{i}"), i);
        ns.namespace = None;
        objects.push(ns);
    }
    let per_kind = 20_000;
    for (kind, prefix) in [
        ("ConfigMap", "cm"),
        ("Secret", "secret"),
        ("ServiceAccount", "sa"),
        ("PersistentVolumeClaim", "pvc"),
    ] {
        for i in 0..per_kind {
            objects.push(object(kind, i % NAMESPACES, format!("{prefix}-{i}"), i));
        }
    }
    for i in 0..20_000 {
        let kind = ["Pod", "Deployment", "StatefulSet", "CronJob"][i % 4];
        let mut w = object(kind, i % NAMESPACES, format!("w-{i}"), i);
        let ns = format!("ns-{}", i % NAMESPACES);
        // Reference objects in the same namespace: cm-i lives in ns-(i % NAMESPACES).
        let target = (i * 4) % per_kind;
        let target = target - target % NAMESPACES + i % NAMESPACES;
        w.uses = vec![
            ObjectRef {
                kind: AuditedKind::ConfigMap,
                namespace: ns.clone(),
                name: format!("cm-{target}"),
            },
            ObjectRef {
                kind: AuditedKind::Secret,
                namespace: ns.clone(),
                name: format!("secret-{target}"),
            },
            ObjectRef {
                kind: AuditedKind::PersistentVolumeClaim,
                namespace: ns.clone(),
                name: format!("pvc-{target}"),
            },
            ObjectRef {
                kind: AuditedKind::ServiceAccount,
                namespace: ns,
                name: format!("sa-{target}"),
            },
        ];
        let repo = i % REPOSITORIES;
        let version = i % VERSIONS_PER_REPOSITORY;
        w.containers = vec![Container {
            name: "app".into(),
            image: format!("reg.example.com/p/app-{repo}:v{version}"),
        }];
        if kind == "Pod" {
            w.image_ids = vec![format!(
                "reg.example.com/p/app-{repo}@sha256:{:064x}",
                repo * VERSIONS_PER_REPOSITORY + version
            )];
        }
        objects.push(w);
    }
    let now = Utc
        .with_ymd_and_hms(2026, 11, 29, 0, 0, 0)
        .single()
        .expect("valid time");
    let registry = (0..REPOSITORIES)
        .map(|r| Repository {
            name: format!("reg.example.com/p/app-{r}"),
            versions: (0..VERSIONS_PER_REPOSITORY)
                .map(|v| ImageVersion {
                    digest: format!("sha256:{:064x}", r * VERSIONS_PER_REPOSITORY + v),
                    tags: vec![format!("v{v}")],
                    media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
                    uploaded: Some(now - Duration::hours(v as i64 * 9)),
                    created: None,
                    size: Some(50_000_000),
                    children: Children::None,
                })
                .collect(),
        })
        .collect();
    Inventory {
        kubernetes: Some(objects),
        registry,
        ..Inventory::default()
    }
}

fn evaluate_and_plan(policy: &Policy, desired: &Desired, inventory: &Inventory) -> usize {
    let now = Utc
        .with_ymd_and_hms(2026, 11, 29, 12, 0, 0)
        .single()
        .expect("valid time");
    let mut findings = evaluate(policy, desired, inventory, now);
    let plan = plan(&mut findings, &policy.safety, now);
    plan.deletions.len()
}

fn bench(c: &mut Criterion) {
    let policy = policy();
    let desired = Desired::default();
    let inventory = inventory();
    let mut group = c.benchmark_group("evaluate+plan");
    group.sample_size(10);
    group.bench_function("100k objects, 50k image versions", |b| {
        b.iter(|| evaluate_and_plan(&policy, &desired, &inventory))
    });
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    let policy = policy();
    let desired = Desired::default();
    let before = LIVE.load(Ordering::Relaxed);
    let inventory = inventory();
    let inventory_bytes = LIVE.load(Ordering::Relaxed) - before;
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    let base = LIVE.load(Ordering::Relaxed);
    let start = std::time::Instant::now();
    let deletions = evaluate_and_plan(&policy, &desired, &inventory);
    let elapsed = start.elapsed();
    let peak = PEAK.load(Ordering::Relaxed);
    println!(
        "memory: inventory {:.1} MB; evaluate+plan peak {:.1} MB above it; total peak {:.1} MB; one run {:.0} ms, {deletions} deletions",
        inventory_bytes as f64 / 1e6,
        (peak - base) as f64 / 1e6,
        peak as f64 / 1e6,
        elapsed.as_secs_f64() * 1e3
    );
    drop(inventory);
    benches();
    Criterion::default().configure_from_args().final_summary();
}
