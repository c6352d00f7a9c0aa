//! The YAML walker that reads policies, manifests and snapshot files, from a file's bytes.
//! Its bounds (nesting, alias expansion) are what keep a hostile manifest from exhausting
//! memory, so the target checks that what it returns stays inside them.
#![no_main]

use driftsweep::input;
use driftsweep::yaml::{MAX_ALIAS_NODES, MAX_DEPTH, parse_documents, parse_values};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Nesting of a value: a scalar is 0, `[1]` is 1.
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn nodes(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(nodes).sum::<usize>(),
        Value::Object(map) => 1 + map.values().map(nodes).sum::<usize>(),
        _ => 1,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = input::text(data.to_vec(), input::MANIFEST) else {
        return;
    };
    let documents = parse_documents(&text);
    let values = parse_values(&text);
    // One loader serves policies (with locations) and manifests (without): they must agree.
    match (&documents, &values) {
        (Ok(docs), Ok(values)) => {
            assert_eq!(docs.len(), values.len(), "the two entry points disagree");
            for (d, v) in docs.iter().zip(values) {
                assert_eq!(&d.value, v, "the two entry points disagree");
            }
            let mut total = 0;
            for v in values {
                assert!(depth(v) <= MAX_DEPTH, "nesting past MAX_DEPTH was returned");
                total += nodes(v);
            }
            // Every node is either written in the text (at least one byte each) or added
            // by an alias, and aliases may add at most MAX_ALIAS_NODES.
            assert!(
                total <= text.len() + MAX_ALIAS_NODES,
                "{total} nodes from {} bytes: alias expansion is unbounded",
                text.len()
            );
        }
        (Err(_), Err(_)) => {}
        _ => panic!(
            "parse_documents and parse_values disagree: {:?} vs {:?}",
            documents.as_ref().map(Vec::len),
            values.as_ref().map(Vec::len)
        ),
    }
});
