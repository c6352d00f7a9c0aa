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

/// Parses every document of a YAML stream. Empty documents are skipped.
pub fn parse_documents(source: &str) -> Result<Vec<Document>, YamlError> {
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
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(source);
    parser.load(&mut builder, true).map_err(|e| YamlError {
        line: e.marker().line(),
        column: e.marker().col() + 1,
        message: e.info().to_string(),
    })?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder
        .documents
        .into_iter()
        .filter(|d| !d.value.is_null())
        .collect())
}

enum Frame {
    Seq(Vec<Value>, usize),
    Map(Map<String, Value>, Option<String>, usize),
}

#[derive(Default)]
struct Builder {
    documents: Vec<Document>,
    stack: Vec<Frame>,
    current: Option<Value>,
    locations: HashMap<String, Location>,
    anchors: HashMap<usize, Value>,
    error: Option<YamlError>,
}

impl Builder {
    fn pointer(&self) -> String {
        let mut p = String::new();
        for frame in &self.stack {
            match frame {
                Frame::Seq(items, _) => {
                    p.push('/');
                    p.push_str(&items.len().to_string());
                }
                Frame::Map(_, Some(key), _) => {
                    p.push('/');
                    p.push_str(&key.replace('~', "~0").replace('/', "~1"));
                }
                Frame::Map(_, None, _) => {}
            }
        }
        p
    }

    /// Whether the next scalar is a mapping key rather than a value.
    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map(_, None, _)))
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

    fn push_value(&mut self, value: Value, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            Some(Frame::Seq(items, _)) => items.push(value),
            Some(Frame::Map(map, key, _)) => {
                if let Some(k) = key.take() {
                    map.insert(k, value);
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
                self.anchors.clear();
            }
            Event::DocumentEnd => {
                let value = self.current.take().unwrap_or(Value::Null);
                self.documents.push(Document {
                    value,
                    locations: std::mem::take(&mut self.locations),
                });
            }
            Event::Scalar(text, style, anchor, tag) => {
                if self.expecting_key() {
                    let key = key_text(&scalar(text, style, tag.as_ref()));
                    let pointer = format!(
                        "{}/{}",
                        self.pointer(),
                        key.replace('~', "~0").replace('/', "~1")
                    );
                    if let Some(Frame::Map(map, slot, _)) = self.stack.last_mut() {
                        if map.contains_key(&key) {
                            self.fail(mark, format!("duplicate key `{key}`"));
                            return;
                        }
                        *slot = Some(key);
                    }
                    self.locations.insert(pointer, location);
                } else {
                    self.locations.entry(self.pointer()).or_insert(location);
                    let value = scalar(text, style, tag.as_ref());
                    self.push_value(value, anchor);
                }
            }
            Event::SequenceStart(anchor, _) => {
                if self.expecting_key() {
                    self.fail(mark, "a sequence cannot be a mapping key".to_string());
                    return;
                }
                self.locations.entry(self.pointer()).or_insert(location);
                self.stack.push(Frame::Seq(Vec::new(), anchor));
            }
            Event::MappingStart(anchor, _) => {
                if self.expecting_key() {
                    self.fail(mark, "a mapping cannot be a mapping key".to_string());
                    return;
                }
                self.locations.entry(self.pointer()).or_insert(location);
                self.stack.push(Frame::Map(Map::new(), None, anchor));
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(items, anchor)) = self.stack.pop() {
                    self.push_value(Value::Array(items), anchor);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(map, _, anchor)) = self.stack.pop() {
                    self.push_value(Value::Object(map), anchor);
                }
            }
            Event::Alias(id) => {
                let value = self.anchors.get(&id).cloned();
                match value {
                    Some(v) => {
                        if self.expecting_key() {
                            self.fail(mark, "an alias cannot be a mapping key".to_string());
                            return;
                        }
                        self.locations.entry(self.pointer()).or_insert(location);
                        self.push_value(v, 0);
                    }
                    None => self.fail(mark, "alias to an unknown anchor".to_string()),
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

    #[test]
    fn reports_syntax_errors_with_line() {
        let err = parse_documents("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.line >= 1);
    }
}
