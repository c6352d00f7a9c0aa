//! The snapshot reader, from a file's bytes. The reader only takes a folder, so the input
//! is written as one file of a snapshot folder: the first byte picks which file (a
//! Kubernetes list in JSON or YAML, a registry tag list, a GCP list, `snapshot.json`,
//! `errors.json`), the rest is its contents. Each file has a folder of its own, made once.
#![no_main]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use driftsweep::inventory::snapshot;
use libfuzzer_sys::fuzz_target;

/// Where the file goes, relative to the snapshot folder.
const FILES: &[&str] = &[
    "kubernetes/objects.json",
    "kubernetes/objects.yaml",
    "registry/example.com/team/app.json",
    "gcp/firewalls.json",
    "gcp/sslCertificates.json",
    "gcp/buckets.json",
    "gcp/serviceAccounts.json",
    "gcp/certificates.json",
    "gcp/targetHttpsProxies.json",
    "gcp/certificateMapEntries.json",
    "snapshot.json",
    "errors.json",
];

fn folders() -> &'static Vec<PathBuf> {
    static FOLDERS: OnceLock<Vec<PathBuf>> = OnceLock::new();
    FOLDERS.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("driftsweep-fuzz-{}", std::process::id()));
        FILES
            .iter()
            .enumerate()
            .map(|(i, file)| {
                let dir = base.join(i.to_string());
                // `snapshot.json` and `errors.json` are read only beside a provider folder.
                for sub in ["kubernetes", "gcp"] {
                    if let Err(e) = std::fs::create_dir_all(dir.join(sub)) {
                        panic!("cannot make the fuzz folder: {e}");
                    }
                }
                if let Some(parent) = dir.join(file).parent()
                    && let Err(e) = std::fs::create_dir_all(parent)
                {
                    panic!("cannot make the fuzz folder: {e}");
                }
                dir
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, contents)) = data.split_first() else {
        return;
    };
    let index = usize::from(which) % FILES.len();
    let dir = &folders()[index];
    if let Err(e) = std::fs::write(dir.join(FILES[index]), contents) {
        panic!("cannot write the fuzz input: {e}");
    }
    let read = snapshot::read(dir);
    if contents.contains(&0) {
        assert!(read.is_err(), "a snapshot file holding a NUL byte was read");
    }
    if let Ok(inventory) = read {
        // The reader refuses two objects with one uid; none may reach the inventory.
        let mut owners = HashMap::new();
        for o in inventory.kubernetes_objects() {
            if let Some(uid) = &o.uid {
                let who = (&o.kind, &o.namespace, &o.name);
                if let Some(first) = owners.insert(uid, who) {
                    assert_eq!(first, who, "two objects with the uid `{uid}`");
                }
            }
        }
    }
});
