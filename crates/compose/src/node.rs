//! The YAML of a compose file as a tree that remembers where each value came from.
//!
//! Interpolation and the merge of several files work on this tree; typing (into [`crate::model`])
//! goes through JSON, and a typing error is mapped back to the file and line of the value at
//! fault through [`Node::locate`].

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_saphyr::Spanned;

use crate::error::{Error, Result};

/// Where a value was written: file index (into the project's list of files) and 1-based line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Index of the file in the list given to the loader.
    pub file: usize,
    /// 1-based line (0: unknown, e.g. a value the loader made).
    pub line: u64,
}

/// One YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub kind: Kind,
    /// Where it was written.
    pub pos: Pos,
}

/// A YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `~`, `null` or nothing.
    Null,
    /// `true`/`false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in the file's order; each key with its own position.
    Map(Vec<(Key, Node)>),
}

/// A mapping key with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key.
    pub name: String,
    /// Where it was written.
    pub pos: Pos,
}

impl Node {
    /// A node made by the loader (no position in a file).
    pub fn new(kind: Kind) -> Self {
        Node { kind, pos: Pos::default() }
    }

    /// A string node.
    pub fn str(s: impl Into<String>) -> Self {
        Node::new(Kind::Str(s.into()))
    }

    /// Parse one YAML document; `file` is its index in the project's file list, `name` its
    /// display name in errors.
    pub fn parse(text: &str, file: usize, name: &str) -> Result<Node> {
        if text.trim().is_empty() {
            return Ok(Node::new(Kind::Map(Vec::new())));
        }
        // `mode: 0440` is octal in compose files (YAML 1.1's reading, as Docker Compose has it).
        let mut options = serde_saphyr::Options::default();
        options.legacy_octal_numbers = true;
        let raw: Raw = serde_saphyr::from_str_with_options(text, options).map_err(|e| Error::Yaml {
            file: name.to_string(),
            message: first_line(&e.to_string()),
        })?;
        Ok(raw.into_node(file))
    }

    /// The entries when this is a mapping.
    pub fn as_map(&self) -> Option<&Vec<(Key, Node)>> {
        match &self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The entries when this is a mapping (mutable).
    pub fn as_map_mut(&mut self) -> Option<&mut Vec<(Key, Node)>> {
        match &mut self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value under `key` when this is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?.iter().find(|(k, _)| k.name == key).map(|(_, v)| v)
    }

    /// The value under `key` when this is a mapping (mutable).
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.as_map_mut()?.iter_mut().find(|(k, _)| k.name == key).map(|(_, v)| v)
    }

    /// The string when this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// This scalar as text (numbers and booleans as YAML writes them); None for null and
    /// collections.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.kind {
            Kind::Str(s) => Some(s.clone()),
            Kind::Int(i) => Some(i.to_string()),
            Kind::Float(f) => Some(f.to_string()),
            Kind::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// The node as JSON (positions dropped).
    pub fn to_json(&self) -> Value {
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::from(*i),
            Kind::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null),
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(v) => Value::Array(v.iter().map(Node::to_json).collect()),
            Kind::Map(m) => Value::Object(m.iter().map(|(k, v)| (k.name.clone(), v.to_json())).collect()),
        }
    }

    /// The position of the value at a serde path (`services.web.ports[0]`), as close as the
    /// tree knows it: the deepest node on the path that exists (for an unknown key, the key).
    pub fn locate(&self, path: &str) -> Pos {
        let mut node = self;
        let mut pos = self.pos;
        for seg in path_segments(path) {
            let next = match (&node.kind, seg) {
                (Kind::Map(m), Seg::Key(k)) => m.iter().find(|(key, _)| key.name == k).map(|(key, v)| (key.pos, v)),
                (Kind::Seq(v), Seg::Index(i)) => v.get(i).map(|n| (n.pos, n)),
                _ => None,
            };
            match next {
                Some((p, n)) => {
                    pos = if p.line > 0 { p } else { n.pos };
                    node = n;
                }
                None => break,
            }
        }
        if node.pos.line > 0 && !matches!(node.kind, Kind::Map(_) | Kind::Seq(_)) {
            node.pos
        } else {
            pos
        }
    }
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Split `a.b[2].c` into segments (serde_path_to_error's display form).
fn path_segments(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() && key != "?" {
            out.push(Seg::Key(key));
        }
        while let Some(end) = rest.find(']') {
            if let Ok(i) = rest[1..end].parse() {
                out.push(Seg::Index(i));
            }
            rest = &rest[end + 1..];
        }
    }
    out
}

fn first_line(s: &str) -> String {
    let l = s.lines().next().unwrap_or(s).trim_start_matches("error: ");
    l.split(", set DuplicateKeyPolicy").next().unwrap_or(l).to_string()
}

/// What serde-saphyr gives: every value spanned, every key spanned.
struct Raw(Spanned<RawKind>);

enum RawKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Raw>),
    Map(Vec<(Spanned<String>, Raw)>),
}

impl Raw {
    fn into_node(self, file: usize) -> Node {
        let pos = Pos {
            file,
            line: self.0.referenced.line(),
        };
        let kind = match self.0.value {
            RawKind::Null => Kind::Null,
            RawKind::Bool(b) => Kind::Bool(b),
            RawKind::Int(i) => Kind::Int(i),
            RawKind::Float(f) => Kind::Float(f),
            RawKind::Str(s) => Kind::Str(s),
            RawKind::Seq(v) => Kind::Seq(v.into_iter().map(|r| r.into_node(file)).collect()),
            RawKind::Map(m) => Kind::Map(
                m.into_iter()
                    .map(|(k, v)| {
                        let key = Key {
                            pos: Pos {
                                file,
                                line: k.referenced.line(),
                            },
                            name: k.value,
                        };
                        (key, v.into_node(file))
                    })
                    .collect(),
            ),
        };
        Node { kind, pos }
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Raw(Spanned::deserialize(d)?))
    }
}

impl<'de> Deserialize<'de> for RawKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawKind;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_unit<E>(self) -> std::result::Result<RawKind, E> {
        Ok(RawKind::Null)
    }
    fn visit_none<E>(self) -> std::result::Result<RawKind, E> {
        Ok(RawKind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<RawKind, D::Error> {
        RawKind::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<RawKind, E> {
        Ok(RawKind::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<RawKind, E> {
        Ok(RawKind::Int(v))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<RawKind, E> {
        i64::try_from(v).map(RawKind::Int).map_err(|_| E::custom("integer too large"))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<RawKind, E> {
        Ok(RawKind::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<RawKind, E> {
        Ok(RawKind::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<RawKind, E> {
        Ok(RawKind::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> std::result::Result<RawKind, A::Error> {
        let mut v = Vec::new();
        while let Some(n) = a.next_element()? {
            v.push(n);
        }
        Ok(RawKind::Seq(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> std::result::Result<RawKind, A::Error> {
        let mut v: Vec<(Spanned<String>, Raw)> = Vec::new();
        while let Some((k, n)) = a.next_entry::<Spanned<String>, Raw>()? {
            v.push((k, n));
        }
        Ok(RawKind::Map(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_merge_keys() {
        let y = "x: &a\n  image: busybox\n  ports: [\"80:80\", 8080]\ny:\n  <<: *a\n  command: echo hi\n";
        let n = Node::parse(y, 0, "f").unwrap();
        assert_eq!(n.get("y").unwrap().get("image").unwrap().as_str(), Some("busybox"));
        assert_eq!(n.locate("x.ports[1]").line, 3);
        assert_eq!(n.locate("y.command").line, 6);
        assert_eq!(n.locate("y.nope").line, 4);
        assert_eq!(
            n.get("x").unwrap().get("ports").unwrap().to_json(),
            serde_json::json!(["80:80", 8080])
        );
    }

    #[test]
    fn syntax_errors_name_the_file_and_line() {
        let e = Node::parse("x:\n  - a\n   b: c\n", 0, "compose.yaml").unwrap_err().to_string();
        assert!(e.contains("compose.yaml") && e.contains("line 3"), "{e}");
        let e = Node::parse("a: 1\na: 2\n", 0, "c.yml").unwrap_err().to_string();
        assert!(
            e.contains("line 2") && e.contains("duplicate mapping key: a") && !e.contains("Policy"),
            "{e}"
        );
    }
}
