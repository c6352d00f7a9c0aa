//! The policy reference in Markdown, generated from the policy's JSON Schema (which is itself
//! generated from the policy types), so the documentation cannot drift from the code.
//! `driftsweep policy reference` prints it; `docs/policy-reference.md` is its output.

use serde_json::{Map, Value};

/// The command that regenerates `docs/policy-reference.md`.
pub const REGENERATE: &str = "cargo run --quiet -- policy reference > docs/policy-reference.md";

const INTRO: &str = "\
Run `driftsweep policy check FILE` to validate a policy: it lists every problem with its line.
`driftsweep policy schema` prints the JSON Schema this table is generated from. Unknown fields
are errors. Relative paths resolve against the policy file's folder. Glob patterns use `*` and
`?`. `policies/aia.yaml` is a complete example.

In the default column, *required* means required when the section around it is present, and
*optional* means the field may be left out, with the meaning its description gives.
";

/// Every policy field with its type, default and description, as a Markdown document.
pub fn reference_markdown() -> String {
    let schema = super::schema();
    let defs = schema.get("$defs").and_then(Value::as_object);
    let mut rows = Vec::new();
    fields(&schema, "", defs, &mut rows);

    let mut out = String::new();
    out.push_str("# Policy reference\n\n");
    out.push_str(&format!(
        "<!-- Generated from the policy types by `driftsweep policy reference`; do not edit.\n     \
         Regenerate: {REGENERATE} -->\n\n"
    ));
    if let Some(description) = schema.get("description").and_then(Value::as_str) {
        out.push_str(&one_line(description));
        out.push_str("\n\n");
    }
    out.push_str(INTRO);
    out.push_str("\n| field | type | default | meaning |\n| --- | --- | --- | --- |\n");
    for row in rows {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            row.path,
            cell(&row.kind),
            cell(&row.default),
            cell(&row.description)
        ));
    }
    out
}

struct Row {
    path: String,
    kind: String,
    default: String,
    description: String,
}

/// What a schema node is, once `$ref` and `anyOf [X, null]` are looked through.
enum Shape<'a> {
    Object(&'a Value),
    ListOfObjects(&'a Value),
    Leaf(String),
}

/// Appends a row for each property of `object` (required ones first, in declaration order,
/// then the rest by name), descending into nested objects and lists of objects.
fn fields(object: &Value, prefix: &str, defs: Option<&Map<String, Value>>, rows: &mut Vec<Row>) {
    let Some(properties) = object.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = object
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut names: Vec<&str> = required
        .iter()
        .copied()
        .filter(|n| properties.contains_key(*n))
        .collect();
    names.extend(
        properties
            .keys()
            .map(String::as_str)
            .filter(|n| !required.contains(n)),
    );
    for name in names {
        let property = &properties[name];
        let path = format!("{prefix}{name}");
        let shape = shape(property, defs);
        let default = match (required.contains(&name), property.get("default")) {
            (true, _) => "required".to_string(),
            (false, Some(Value::Object(o))) if o.is_empty() => "optional".to_string(),
            (false, Some(Value::Object(_))) => "the defaults below".to_string(),
            (false, Some(value)) => format!("`{}`", flow(value)),
            (false, None) => "optional".to_string(),
        };
        let kind = match &shape {
            Shape::Object(_) => "object".to_string(),
            Shape::ListOfObjects(_) => "list of objects".to_string(),
            Shape::Leaf(kind) => kind.clone(),
        };
        let description = property
            .get("description")
            .or_else(|| resolve(property, defs).get("description"))
            .and_then(Value::as_str)
            .map(one_line)
            .unwrap_or_default();
        rows.push(Row {
            path: path.clone(),
            kind,
            default,
            description,
        });
        match shape {
            // A map by name (`deploy.environments`): its values' fields, under `<name>`.
            Shape::Object(def) if def.get("properties").is_none() => {
                if let Some(values) = def.get("additionalProperties").filter(|v| v.is_object()) {
                    fields(
                        resolve(values, defs),
                        &format!("{path}.<name>."),
                        defs,
                        rows,
                    );
                }
            }
            Shape::Object(def) => fields(def, &format!("{path}."), defs, rows),
            Shape::ListOfObjects(def) => fields(def, &format!("{path}[]."), defs, rows),
            Shape::Leaf(_) => {}
        }
    }
}

fn shape<'a>(node: &'a Value, defs: Option<&'a Map<String, Value>>) -> Shape<'a> {
    let node = resolve(node, defs);
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        return Shape::Leaf(
            values
                .iter()
                .map(|v| format!("`{}`", flow(v)))
                .collect::<Vec<_>>()
                .join(" | "),
        );
    }
    match primary_type(node) {
        Some("object") => Shape::Object(node),
        Some("array") => {
            let items = node.get("items").unwrap_or(&Value::Null);
            match shape(items, defs) {
                Shape::Object(def) => Shape::ListOfObjects(def),
                Shape::ListOfObjects(_) => Shape::Leaf("list of lists".to_string()),
                Shape::Leaf(kind) if kind.contains('`') => Shape::Leaf(format!("list of {kind}")),
                Shape::Leaf(kind) => Shape::Leaf(format!("list of {kind}s")),
            }
        }
        Some("boolean") => Shape::Leaf("bool".to_string()),
        Some(other) => Shape::Leaf(other.to_string()),
        None => Shape::Leaf("any".to_string()),
    }
}

/// Follows `$ref`, and `anyOf: [X, {type: null}]` (an optional section) to `X`.
fn resolve<'a>(node: &'a Value, defs: Option<&'a Map<String, Value>>) -> &'a Value {
    if let Some(name) = node
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
        && let Some(def) = defs.and_then(|d| d.get(name))
    {
        return resolve(def, defs);
    }
    if let Some(any_of) = node.get("anyOf").and_then(Value::as_array) {
        let not_null: Vec<&Value> = any_of
            .iter()
            .filter(|v| v.get("type").and_then(Value::as_str) != Some("null"))
            .collect();
        if let [only] = not_null[..] {
            return resolve(only, defs);
        }
    }
    node
}

/// The node's type, ignoring `null` in `type: [T, "null"]`.
fn primary_type(node: &Value) -> Option<&str> {
    match node.get("type")? {
        Value::String(t) => Some(t),
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null"),
        _ => None,
    }
}

/// A value as YAML flow style, the way a policy file would write it.
fn flow(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(flow).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{k}: {}", flow(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Escapes what would end a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_policy_reference_matches_the_policy_types() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/policy-reference.md");
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        let generated = reference_markdown();
        if on_disk != generated {
            let first_difference = on_disk
                .lines()
                .zip(generated.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| on_disk.lines().count().min(generated.lines().count()));
            panic!(
                "`docs/policy-reference.md` does not match the policy types (first difference \
                 at line {}): the types changed, or the file was edited by hand.\nhint: \
                 regenerate it with `{REGENERATE}`",
                first_difference + 1
            );
        }
    }

    #[test]
    fn every_field_has_a_row_with_its_type_and_default() {
        let text = reference_markdown();
        for row in [
            "| `version` | integer | required |",
            "| `kubernetes` | object | optional |",
            "| `kubernetes.kinds` | list of strings | `[ConfigMap, Secret, ServiceAccount, PersistentVolumeClaim]` |",
            "| `kubernetes.keep` | list of objects | `[]` |",
            "| `kubernetes.keep[].name` | string | required |",
            "| `kubernetes.keep[].kind` | string | optional |",
            "| `registry.keep_recent` | integer | `10` |",
            "| `registry.protect_in_use` | bool | `true` |",
            "| `gcp.firewall_rules.allowed` | list of strings | required |",
            "| `safety` | object | the defaults below |",
            "| `safety.opt_out_annotation` | string | `driftsweep.io/keep` |",
            "| `report.email.smtp.port` | integer | `587` |",
            "| `report.email.smtp.tls` | `starttls` \\| `implicit` \\| `none` | `starttls` |",
        ] {
            assert!(text.contains(row), "no row starting {row:?} in:\n{text}");
        }
    }

    #[test]
    fn every_field_is_described() {
        for line in reference_markdown()
            .lines()
            .filter(|l| l.starts_with("| `"))
        {
            assert!(
                !line.ends_with("|  |"),
                "field without a description: {line}"
            );
        }
    }
}
