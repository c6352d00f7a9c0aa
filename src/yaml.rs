//! YAML → JSON values, keeping where each node came from.
//!
//! Policies must be validated with line numbers for every problem at once, and repository
//! manifests and snapshot files may be multi-document YAML. One loader serves both, so a value
//! read from YAML behaves exactly like the same value read from JSON.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::Yaml;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// One YAML document converted to JSON, with the location of every node, keyed by JSON
/// pointer (`/kubernetes/namespaces/0`). A mapping value is located at its key.
#[derive(Debug, Clone)]
pub struct Document {
    pub value: Value,
    pub locations: HashMap<String, Location>,
    /// Where each node's value itself starts (for a mapping value, not its key): what a
    /// finding about a value (an image reference) points at.
    pub values: HashMap<String, Location>,
}

impl Document {
    /// The location of the node at `pointer`, or of its nearest ancestor that has one.
    pub fn location(&self, pointer: &str) -> Option<Location> {
        let mut p = pointer;
        loop {
            if let Some(loc) = self.locations.get(p) {
                return Some(*loc);
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return None,
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct YamlError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Nesting deeper than this is refused. It is serde_json's own recursion limit, so YAML and
/// JSON inputs are bounded alike, and far deeper than a policy (5 levels) or the schema of a
/// custom resource definition (about 60) goes.
pub const MAX_DEPTH: usize = 128;

/// Nodes that aliases may add to one file once expanded. Manifests use anchors to share a
/// block of labels or environment variables (tens of nodes, a few times); the 509-byte
/// billion-laughs bomb expands to hundreds of millions of nodes (24 GB).
pub const MAX_ALIAS_NODES: usize = 100_000;

/// Parses every document of a YAML stream, with the location of every node (for policies,
/// whose problems are reported by line). Empty documents are skipped.
pub fn parse_documents(source: &str) -> Result<Vec<Document>, YamlError> {
    parse(source, true)
}

/// Parses every document of a YAML stream into values alone (manifests and snapshot files,
/// where a location would only cost memory). Empty documents are skipped.
pub fn parse_values(source: &str) -> Result<Vec<Value>, YamlError> {
    Ok(parse(source, false)?.into_iter().map(|d| d.value).collect())
}

fn parse(source: &str, locations: bool) -> Result<Vec<Document>, YamlError> {
    // yaml-rust2 ends the stream at a NUL and would drop what follows. Files are checked when
    // read (`crate::input`); this keeps any other caller from the same trap.
    if let Some(offset) = source.find('\0') {
        let (line, column) = crate::input::position(source, offset);
        return Err(YamlError {
            line,
            column,
            message: format!("byte {offset} is a NUL byte; the rest of the text would be ignored"),
        });
    }
    let mut builder = Builder {
        record_locations: locations,
        ..Builder::default()
    };
    let mut parser = Parser::new_from_str(source);
    let parsed = parser.load(&mut builder, true);
    // The builder's own error (a limit) came first: the parser only read on past it.
    if let Some(err) = builder.error {
        return Err(err);
    }
    parsed.map_err(|e| YamlError {
        line: e.marker().line(),
        column: e.marker().col() + 1,
        // The scanner counts flow levels in a byte and looks ahead, so past 255 `[` it fails
        // before the builder sees the 129th.
        message: if e.info() == "recursion limit exceeded" {
            format!("nesting reaches level `256`, more than the limit of `{MAX_DEPTH}`")
        } else {
            e.info().to_string()
        },
    })?;
    Ok(builder
        .documents
        .into_iter()
        .filter(|d| !d.value.is_null())
        .collect())
}

/// A collection being built: its items, its anchor, and how many nodes it holds so far
/// (aliases expanded), which an alias to it costs.
enum Frame {
    Seq(Vec<Value>, usize, usize),
    Map(Map<String, Value>, Option<String>, usize, usize),
}

#[derive(Default)]
struct Builder {
    documents: Vec<Document>,
    stack: Vec<Frame>,
    current: Option<Value>,
    record_locations: bool,
    locations: HashMap<String, Location>,
    values: HashMap<String, Location>,
    /// Anchored values and their node counts.
    anchors: HashMap<usize, (Value, usize)>,
    /// Nodes added by aliases so far in this stream.
    alias_nodes: usize,
    error: Option<YamlError>,
}

impl Builder {
    fn pointer(&self) -> String {
        let mut p = String::new();
        for frame in &self.stack {
            match frame {
                Frame::Seq(items, ..) => {
                    p.push('/');
                    p.push_str(&items.len().to_string());
                }
                Frame::Map(_, Some(key), ..) => {
                    p.push('/');
                    p.push_str(&key.replace('~', "~0").replace('/', "~1"));
                }
                Frame::Map(_, None, ..) => {}
            }
        }
        p
    }

    /// Records where the node about to be pushed starts (first mention wins).
    fn locate(&mut self, location: Location) {
        if self.record_locations {
            let pointer = self.pointer();
            self.values.entry(pointer.clone()).or_insert(location);
            self.locations.entry(pointer).or_insert(location);
        }
    }

    /// Whether the next scalar is a mapping key rather than a value.
    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map(_, None, ..)))
    }

    fn fail(&mut self, mark: Marker, message: String) {
        if self.error.is_none() {
            self.error = Some(YamlError {
                line: mark.line(),
                column: mark.col() + 1,
                message,
            });
        }
    }

    /// Refuses a collection that would nest deeper than `MAX_DEPTH`.
    fn deeper(&mut self, mark: Marker) -> bool {
        let depth = self.stack.len() + 1;
        if depth > MAX_DEPTH {
            self.fail(
                mark,
                format!("nesting reaches level `{depth}`, more than the limit of `{MAX_DEPTH}`"),
            );
            return false;
        }
        true
    }

    /// Adds a finished node of `nodes` nodes to its parent.
    fn push_value(&mut self, value: Value, anchor: usize, nodes: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, (value.clone(), nodes));
        }
        match self.stack.last_mut() {
            Some(Frame::Seq(items, _, count)) => {
                items.push(value);
                *count += nodes;
            }
            Some(Frame::Map(map, key, _, count)) => {
                if let Some(k) = key.take() {
                    map.insert(k, value);
                    *count += nodes;
                }
            }
            None => self.current = Some(value),
        }
    }
}

fn scalar(value: String, style: TScalarStyle, tag: Option<&Tag>) -> Value {
    if style != TScalarStyle::Plain {
        return Value::String(value);
    }
    if let Some(tag) = tag
        && tag.handle == "tag:yaml.org,2002:"
        && tag.suffix == "str"
    {
        return Value::String(value);
    }
    match Yaml::from_str(&value) {
        Yaml::Integer(i) => Value::Number(i.into()),
        Yaml::Real(r) => r
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::String(value)),
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Null => Value::Null,
        _ => Value::String(value),
    }
}

fn key_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let location = Location {
            line: mark.line(),
            column: mark.col() + 1,
        };
        match event {
            Event::DocumentStart => {
                self.stack.clear();
                self.current = None;
                self.locations.clear();
                self.values.clear();
                self.anchors.clear();
            }
            Event::DocumentEnd => {
                let value = self.current.take().unwrap_or(Value::Null);
                self.documents.push(Document {
                    value,
                    locations: std::mem::take(&mut self.locations),
                    values: std::mem::take(&mut self.values),
                });
            }
            Event::Scalar(text, style, anchor, tag) => {
                if self.expecting_key() {
                    let key = key_text(&scalar(text, style, tag.as_ref()));
                    let pointer = if self.record_locations {
                        format!(
                            "{}/{}",
                            self.pointer(),
                            key.replace('~', "~0").replace('/', "~1")
                        )
                    } else {
                        String::new()
                    };
                    if let Some(Frame::Map(map, slot, ..)) = self.stack.last_mut() {
                        if map.contains_key(&key) {
                            self.fail(mark, format!("duplicate key `{key}`"));
                            return;
                        }
                        *slot = Some(key);
                    }
                    if self.record_locations {
                        self.locations.insert(pointer, location);
                    }
                } else {
                    self.locate(location);
                    let value = scalar(text, style, tag.as_ref());
                    self.push_value(value, anchor, 1);
                }
            }
            Event::SequenceStart(anchor, _) => {
                if self.expecting_key() {
                    self.fail(mark, "a sequence cannot be a mapping key".to_string());
                    return;
                }
                if !self.deeper(mark) {
                    return;
                }
                self.locate(location);
                self.stack.push(Frame::Seq(Vec::new(), anchor, 1));
            }
            Event::MappingStart(anchor, _) => {
                if self.expecting_key() {
                    self.fail(mark, "a mapping cannot be a mapping key".to_string());
                    return;
                }
                if !self.deeper(mark) {
                    return;
                }
                self.locate(location);
                self.stack.push(Frame::Map(Map::new(), None, anchor, 1));
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(items, anchor, nodes)) = self.stack.pop() {
                    self.push_value(Value::Array(items), anchor, nodes);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(map, _, anchor, nodes)) = self.stack.pop() {
                    self.push_value(Value::Object(map), anchor, nodes);
                }
            }
            Event::Alias(id) => {
                if self.expecting_key() {
                    self.fail(mark, "an alias cannot be a mapping key".to_string());
                    return;
                }
                let Some(nodes) = self.anchors.get(&id).map(|(_, n)| *n) else {
                    self.fail(mark, "alias to an unknown anchor".to_string());
                    return;
                };
                // Counted before the copy is made: the bomb is refused, not built.
                self.alias_nodes = self.alias_nodes.saturating_add(nodes);
                if self.alias_nodes > MAX_ALIAS_NODES {
                    self.fail(
                        mark,
                        format!(
                            "aliases expand to `{}` nodes, more than the limit of `{MAX_ALIAS_NODES}` (aliases of aliases multiply)",
                            self.alias_nodes
                        ),
                    );
                    return;
                }
                let value = self.anchors.get(&id).map(|(v, _)| v.clone());
                if let Some(v) = value {
                    self.locate(location);
                    self.push_value(v, 0, nodes);
                }
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_types_and_records_lines() {
        let docs = parse_documents("a: 1\nb:\n  - x\n  - 'true'\nc: true\nd: ~\n").unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(
            docs[0].value,
            json!({"a": 1, "b": ["x", "true"], "c": true, "d": null})
        );
        assert_eq!(docs[0].locations["/b/1"].line, 4);
        assert_eq!(docs[0].location("/b/1/zzz").unwrap().line, 4);
        assert_eq!(docs[0].locations["/c"].line, 5);
    }

    #[test]
    fn records_where_values_start_apart_from_their_keys() {
        let docs = parse_documents("a:\n  image:   'x:latest'\n  list: [p, q]\n").unwrap();
        assert_eq!(docs[0].locations["/a/image"].column, 3);
        let v = docs[0].values["/a/image"];
        assert_eq!((v.line, v.column), (2, 12));
        let q = docs[0].values["/a/list/1"];
        assert_eq!((q.line, q.column), (3, 13));
    }

    #[test]
    fn splits_documents_and_skips_empty_ones() {
        let docs = parse_documents("---\na: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].value, json!({"b": 2}));
    }

    #[test]
    fn rejects_duplicate_keys_with_line() {
        let err = parse_documents("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("duplicate key `a`"));
    }

    #[test]
    fn resolves_anchors() {
        let docs = parse_documents("x: &v [1, 2]\ny: *v\n").unwrap();
        assert_eq!(docs[0].value, json!({"x": [1, 2], "y": [1, 2]}));
    }

    #[test]
    fn a_nul_is_an_error_not_the_end_of_the_text() {
        let err = parse_documents("a: 1\n# \0\nb: 2\n").unwrap_err();
        assert_eq!((err.line, err.column), (2, 3));
        assert!(
            err.message.contains("byte 7 is a NUL byte"),
            "{}",
            err.message
        );
    }

    /// `levels` levels of nine aliases each: 9^levels nodes once expanded.
    fn alias_bomb(levels: usize) -> String {
        let mut text = "a: &a [x, x, x, x, x, x, x, x, x]\n".to_string();
        let names: Vec<char> = ('a'..='z').collect();
        for w in names.windows(2).take(levels - 1) {
            let refs = vec![format!("*{}", w[0]); 9].join(", ");
            text.push_str(&format!("{}: &{} [{refs}]\n", w[1], w[1]));
        }
        text
    }

    #[test]
    fn aliases_that_expand_past_the_limit_are_refused() {
        // 9^6 = 531,441 nodes from 200 bytes.
        let err = parse_documents(&alias_bomb(6)).unwrap_err();
        assert!(
            err.message.contains("aliases") && err.message.contains("`100000`"),
            "{}",
            err.message
        );
        assert_eq!(err.line, 6, "the alias that crossed the limit");
        // A few aliases, as manifests use them for shared blocks, are fine.
        let docs = parse_documents(&alias_bomb(3)).unwrap();
        assert_eq!(docs[0].value["c"][8][8][8], "x");
    }

    #[test]
    fn the_billion_laughs_bomb_is_refused_quickly() {
        // 9^9 = 387,420,489 nodes: this used to take 24 GB before the parser gave up.
        let err = parse_documents(&alias_bomb(9)).unwrap_err();
        assert!(err.message.contains("aliases"), "{}", err.message);
    }

    #[test]
    fn nesting_past_the_limit_is_refused() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let err = parse_documents(&deep).unwrap_err();
        assert!(
            err.message.contains("`129`") && err.message.contains("`128`"),
            "{}",
            err.message
        );
        let deeper = format!("{}{}", "[".repeat(300), "]".repeat(300));
        let err = parse_values(&deeper).unwrap_err();
        assert!(err.message.contains("limit of `128`"), "{}", err.message);
        let block: String = (0..150).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
        let err = parse_values(&block).unwrap_err();
        assert!(err.message.contains("`129`"), "{}", err.message);
        let ok = format!("{}{}", "[".repeat(128), "]".repeat(128));
        assert!(parse_documents(&ok).is_ok());
    }

    #[test]
    fn reports_syntax_errors_with_line() {
        let err = parse_documents("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.line >= 1);
    }
}
