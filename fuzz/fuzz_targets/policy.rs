//! The policy loader, from a file's bytes: the checks `input` makes on every file, then
//! YAML, the schema and the rules. A policy decides what is deleted, so a text the loader
//! half-read (cut at a NUL) must never pass as a policy.
#![no_main]

use driftsweep::input;
use driftsweep::policy::validate_source;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The path `policy::load` takes: bounded, UTF-8, no NUL, then validation.
    if let Ok(text) = input::text(data.to_vec(), input::POLICY) {
        assert!(!text.contains('\0'), "input let a NUL through");
        let _ = validate_source(&text);
    }
    // A caller that skips `input` (text built in memory) must not be able to slip a NUL past
    // the loader either: yaml-rust2 would stop there and drop the rest of the policy.
    let lossy = String::from_utf8_lossy(data);
    if lossy.contains('\0') {
        assert!(
            validate_source(&lossy).is_err(),
            "a policy text holding a NUL byte was accepted"
        );
    }
});
