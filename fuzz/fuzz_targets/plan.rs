//! The plan reader, from a file's bytes: what `enforce --plan FILE` does before it deletes
//! anything (input checks, the report JSON, its schema, `check_plan` with its name checks),
//! then the match of the plan against an inventory. Enforce builds backup paths from a
//! plan's run id and names, so a plan that passes must not be able to name a path outside
//! its folder.
#![no_main]

use driftsweep::enforce::{self, names};
use driftsweep::evaluate::{Action, Findings};
use driftsweep::input;
use driftsweep::inventory::Provider;
use driftsweep::report::{Report, SCHEMA};
use libfuzzer_sys::fuzz_target;

fn escapes(s: &str) -> bool {
    s.split('/').any(|c| c.is_empty() || c == "." || c == "..") || s.contains(['\\', '\0'])
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = input::text(data.to_vec(), input::PLAN) else {
        return;
    };
    let Ok(plan) = serde_json::from_str::<Report>(&text) else {
        return;
    };
    if plan.schema != SCHEMA {
        return;
    }
    // Checked as of its own time, under its own policy: only the names can refuse it.
    let now = plan.evaluated_at.max(plan.started_at);
    let digest = plan.policy.digest.clone();
    if enforce::check_plan(&plan, "plan.json", &digest, u32::MAX, now).is_err() {
        return;
    }
    assert!(
        names::is_path_component(&plan.run_id) && !escapes(&plan.run_id),
        "a plan with the run id {:?} passed",
        plan.run_id
    );
    for f in plan.findings.iter().filter(|f| f.action == Action::Delete) {
        match f.provider {
            Provider::Kubernetes => {
                for part in [Some(&f.kind), f.namespace.as_ref(), Some(&f.name)]
                    .into_iter()
                    .flatten()
                {
                    assert!(names::is_path_component(part), "{part:?} passed");
                }
            }
            Provider::Registry => assert!(!escapes(&f.name), "{:?} passed", f.name),
            Provider::Gcp => assert!(names::is_path_component(&f.name), "{:?} passed", f.name),
        }
    }
    // Enforce matches the plan against what it lists now; against itself, only planned
    // deletions may be selected.
    let current = Findings {
        items: plan.findings.clone(),
        gaps: Vec::new(),
    };
    let selection = enforce::select(current, Some(&plan));
    for &i in &selection.deletions {
        assert_eq!(selection.findings.items[i].action, Action::Delete);
    }
});
