//! The one place YAML is read: serde-saphyr checks the text (syntax, alias budgets), then the
//! document becomes a tree of nodes that remember where they came from, so that every later
//! error — from serde or from validation — can name a line and column.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde_saphyr::granit_parser::{self, Event, Parser, ScalarStyle};

/// Where a node's text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The job file.
    File,
    /// The `--set` override with this index.
    Override(usize),
}

/// A node's position: 1-based line and column, and its length in characters on that line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub origin: Origin,
    pub line: usize,
    pub column: usize,
    pub len: usize,
}

/// A YAML node with its position. `id` is unique within a tree, so an error can name the node.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub id: usize,
    pub pos: Pos,
    pub kind: Kind,
}

/// A node's content. Scalars keep their text; their type is decided by what the reader asks for.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Scalar { text: String, plain: bool },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// One step of a path into the tree.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// A YAML error that stops reading: bad syntax, or a document that breaks the budgets.
#[derive(Debug, Clone)]
pub(crate) struct FatalError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

/// Hands out node ids.
#[derive(Debug, Default)]
pub(crate) struct Ids(Cell<usize>);

impl Ids {
    pub fn next(&self) -> usize {
        let id = self.0.get() + 1;
        self.0.set(id);
        id
    }
}

/// The largest number of nodes a document may expand to (aliases included). serde-saphyr's
/// budget already refuses alias bombs; this keeps the tree bounded on its own terms too.
const MAX_NODES: usize = 200_000;

/// A key given twice in one mapping: where it first was, where it is again, and its name.
pub(crate) type Duplicate = (Pos, Pos, String);

/// Parses one YAML document into a node tree. Of duplicate keys the first is kept; the others
/// are returned for the caller to report.
pub(crate) fn parse(text: &str, ids: &Ids) -> Result<(Node, Vec<Duplicate>), FatalError> {
    check_with_saphyr(text)?;
    let mut builder = Builder { ids, anchors: Vec::new(), duplicates: Vec::new(), nodes: 0 };
    let mut parser = Parser::new_from_str(text);
    let mut root = None;
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|e| scan_error(&e))?;
        match event {
            Event::StreamStart | Event::DocumentStart(..) | Event::DocumentEnd => {}
            Event::StreamEnd => break,
            _ if root.is_some() => {
                return Err(FatalError {
                    message: "a job file holds one YAML document".into(),
                    line: span.start.line(),
                    column: span.start.col() + 1,
                });
            }
            event => root = Some(builder.node(event, span, &mut parser)?),
        }
    }
    let root = root.unwrap_or(Node {
        id: ids.next(),
        pos: Pos { origin: Origin::File, line: 1, column: 1, len: 1 },
        kind: Kind::Scalar { text: String::new(), plain: true },
    });
    Ok((root, builder.duplicates))
}

/// Runs serde-saphyr over the text for its syntax checks and alias/size budgets.
fn check_with_saphyr(text: &str) -> Result<(), FatalError> {
    // Duplicate keys are reported by the tree builder, all of them, not only the first.
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::FirstWins;
    match serde_saphyr::from_str_with_options::<de::IgnoredAny>(text, options) {
        Ok(_) => Ok(()),
        Err(e) => {
            let (line, column) = e.location().map(|l| (l.line() as usize, l.column() as usize)).unwrap_or((1, 1));
            Err(FatalError { message: saphyr_message(&e), line, column })
        }
    }
}

/// serde-saphyr's message without its own position and snippet (ours are added later).
fn saphyr_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("invalid YAML");
    // "message at line L, column C (…)" → "message"
    let message = first.find(" at line ").map_or(first, |i| &first[..i]);
    if message.starts_with("budget breached") {
        return format!("the document is too large or its aliases expand too far ({message})");
    }
    message.to_string()
}

fn scan_error(e: &granit_parser::ScanError) -> FatalError {
    let m = e.marker();
    FatalError { message: e.kind().to_string(), line: m.line(), column: m.col() + 1 }
}

struct Builder<'i> {
    ids: &'i Ids,
    anchors: Vec<(usize, Node)>,
    duplicates: Vec<Duplicate>,
    nodes: usize,
}

impl Builder<'_> {
    fn node<'a>(
        &mut self,
        event: Event<'a>,
        span: granit_parser::Span,
        parser: &mut Parser<'a, granit_parser::StrInput<'a>>,
    ) -> Result<Node, FatalError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(FatalError {
                message: format!("the document has more than {MAX_NODES} nodes"),
                line: span.start.line(),
                column: span.start.col() + 1,
            });
        }
        let start = Pos {
            origin: Origin::File,
            line: span.start.line(),
            column: span.start.col() + 1,
            len: if span.end.line() == span.start.line() {
                span.end.col().saturating_sub(span.start.col()).max(1)
            } else {
                1
            },
        };
        let (node, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                // `!!str 123` is a string however it is written.
                let tagged_str = tag.is_some_and(|t| t.suffix() == "str");
                let plain = matches!(style, ScalarStyle::Plain) && !tagged_str;
                let kind = Kind::Scalar { text: text.into_owned(), plain };
                (Node { id: self.ids.next(), pos: start, kind }, anchor)
            }
            Event::SequenceStart(_, anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (event, span) = next(parser)?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(event, span, parser)?);
                }
                (Node { id: self.ids.next(), pos: Pos { len: 1, ..start }, kind: Kind::Seq(items) }, anchor)
            }
            Event::MappingStart(_, anchor, _) => {
                let mut pairs: Vec<(Node, Node)> = Vec::new();
                loop {
                    let (event, span) = next(parser)?;
                    if matches!(event, Event::MappingEnd) {
                        break;
                    }
                    let key = self.node(event, span, parser)?;
                    let (event, span) = next(parser)?;
                    let value = self.node(event, span, parser)?;
                    let name = key.scalar().map(str::to_string);
                    let first = name.as_deref().and_then(|n| pairs.iter().find(|(k, _)| k.scalar() == Some(n)));
                    match (first, name) {
                        (Some((first, _)), Some(name)) => self.duplicates.push((first.pos, key.pos, name)),
                        _ => pairs.push((key, value)),
                    }
                }
                (Node { id: self.ids.next(), pos: Pos { len: 1, ..start }, kind: Kind::Map(pairs) }, anchor)
            }
            Event::Alias(anchor) => {
                let target = self.anchors.iter().rev().find(|(a, _)| *a == anchor).map(|(_, n)| n.clone());
                let Some(target) = target else {
                    return Err(FatalError { message: "unknown alias".into(), line: start.line, column: start.column });
                };
                self.nodes += target.count();
                if self.nodes > MAX_NODES {
                    return Err(FatalError {
                        message: format!("aliases expand the document beyond {MAX_NODES} nodes"),
                        line: start.line,
                        column: start.column,
                    });
                }
                (target.renumbered(self.ids), 0)
            }
            _ => {
                return Err(FatalError {
                    message: "unexpected YAML event".into(),
                    line: start.line,
                    column: start.column,
                });
            }
        };
        if anchor != 0 {
            self.anchors.push((anchor, node.clone()));
        }
        Ok(node)
    }
}

fn next<'a>(
    parser: &mut Parser<'a, granit_parser::StrInput<'a>>,
) -> Result<(Event<'a>, granit_parser::Span), FatalError> {
    loop {
        match parser.next_event() {
            Some(Ok((Event::Anchor(..), _))) => continue,
            #[allow(unreachable_patterns)]
            Some(Ok((event, span))) => return Ok((event, span)),
            Some(Err(e)) => return Err(scan_error(&e)),
            None => {
                return Err(FatalError { message: "unexpected end of YAML".into(), line: 1, column: 1 });
            }
        }
    }
}

impl Node {
    /// A scalar node made from `--set` text, typed like YAML would type it.
    pub fn synthetic(ids: &Ids, pos: Pos, kind: Kind) -> Node {
        Node { id: ids.next(), pos, kind }
    }

    /// The text of a scalar node.
    pub fn scalar(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The value under `key` of a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.pair(key).map(|(_, v)| v)
    }

    /// The key and value nodes under `key` of a mapping node.
    pub fn pair(&self, key: &str) -> Option<(&Node, &Node)> {
        match &self.kind {
            Kind::Map(pairs) => pairs.iter().find(|(k, _)| k.scalar() == Some(key)).map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// The node at `path`, or the deepest node on the way to it.
    pub fn at(&self, path: &[Step<'_>]) -> &Node {
        let mut node = self;
        for step in path {
            let child = match (step, &node.kind) {
                (Step::Key(k), _) => node.get(k),
                (Step::Index(i), Kind::Seq(items)) => items.get(*i),
                _ => None,
            };
            match child {
                Some(c) => node = c,
                None => break,
            }
        }
        node
    }

    fn count(&self) -> usize {
        1 + match &self.kind {
            Kind::Scalar { .. } => 0,
            Kind::Seq(items) => items.iter().map(Node::count).sum(),
            Kind::Map(pairs) => pairs.iter().map(|(k, v)| k.count() + v.count()).sum(),
        }
    }

    fn renumbered(mut self, ids: &Ids) -> Node {
        self.id = ids.next();
        self.kind = match self.kind {
            Kind::Seq(items) => Kind::Seq(items.into_iter().map(|n| n.renumbered(ids)).collect()),
            Kind::Map(pairs) => {
                Kind::Map(pairs.into_iter().map(|(k, v)| (k.renumbered(ids), v.renumbered(ids))).collect())
            }
            scalar => scalar,
        };
        self
    }

    /// Finds the node with `id`.
    pub fn find(&self, id: usize) -> Option<&Node> {
        if self.id == id {
            return Some(self);
        }
        match &self.kind {
            Kind::Scalar { .. } => None,
            Kind::Seq(items) => items.iter().find_map(|n| n.find(id)),
            Kind::Map(pairs) => pairs.iter().find_map(|(k, v)| k.find(id).or_else(|| v.find(id))),
        }
    }

    /// Removes the node with `id` from its parent: the whole pair when it is a key or a value,
    /// the item when it is in a sequence. Returns the parent's id and, for a pair, its key.
    pub fn remove(&mut self, id: usize) -> Option<(usize, Option<String>)> {
        let parent = self.id;
        match &mut self.kind {
            Kind::Scalar { .. } => None,
            Kind::Seq(items) => {
                if let Some(i) = items.iter().position(|n| n.id == id) {
                    items.remove(i);
                    return Some((parent, None));
                }
                items.iter_mut().find_map(|n| n.remove(id))
            }
            Kind::Map(pairs) => {
                if let Some(i) = pairs.iter().position(|(k, v)| k.id == id || v.id == id) {
                    let (key, _) = pairs.remove(i);
                    return Some((parent, key.scalar().map(str::to_string)));
                }
                pairs.iter_mut().find_map(|(k, v)| k.remove(id).or_else(|| v.remove(id)))
            }
        }
    }

    /// A short description of the node's type, for error messages.
    fn unexpected(&self) -> de::Unexpected<'_> {
        match &self.kind {
            Kind::Scalar { text, plain: true } => match resolve(text) {
                Resolved::Null => de::Unexpected::Other("null"),
                Resolved::Bool(b) => de::Unexpected::Bool(b),
                Resolved::Int(i) => match i64::try_from(i) {
                    Ok(i) => de::Unexpected::Signed(i),
                    Err(_) => de::Unexpected::Other("integer"),
                },
                Resolved::Float(f) => de::Unexpected::Float(f),
                Resolved::Str => de::Unexpected::Str(text),
            },
            Kind::Scalar { text, .. } => de::Unexpected::Str(text),
            Kind::Seq(_) => de::Unexpected::Seq,
            Kind::Map(_) => de::Unexpected::Map,
        }
    }
}

/// A plain scalar's type under the YAML 1.2 core schema.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Resolved {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str,
}

/// Resolves a plain scalar's type under the YAML 1.2 core schema.
pub(crate) fn resolve(text: &str) -> Resolved {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        _ => {}
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return i128::from_str_radix(hex, 16).map_or(Resolved::Str, Resolved::Int);
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return i128::from_str_radix(oct, 8).map_or(Resolved::Str, Resolved::Int);
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<i128>().map_or(Resolved::Str, Resolved::Int);
    }
    let looks_float = digits.bytes().next().is_some_and(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if looks_float && let Ok(f) = text.parse::<f64>() {
        return Resolved::Float(f);
    }
    Resolved::Str
}

/// A deserialization error, tied to the innermost node being read when it happened.
#[derive(Debug, Clone)]
pub(crate) struct DeError {
    pub message: String,
    pub node: Option<usize>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError { message: msg.to_string(), node: None }
    }
}

impl DeError {
    fn at(mut self, node: &Node) -> DeError {
        self.node.get_or_insert(node.id);
        self
    }
}

/// Reads a node tree with serde.
pub(crate) struct NodeDe<'a>(pub &'a Node);

impl<'a> NodeDe<'a> {
    fn int<T: TryFrom<i128>>(&self) -> Result<T, DeError> {
        let node = self.0;
        let n = match &node.kind {
            Kind::Scalar { text, plain: true } => match resolve(text) {
                Resolved::Int(i) => Some(i),
                _ => None,
            },
            _ => None,
        };
        let Some(n) = n else {
            return Err(de::Error::invalid_type(node.unexpected(), &"an integer"));
        };
        T::try_from(n).map_err(|_| {
            let ty = std::any::type_name::<T>();
            <DeError as de::Error>::custom(format!("{n} is out of range for this field (a {ty})"))
        })
    }

    fn float(&self) -> Result<f64, DeError> {
        match &self.0.kind {
            Kind::Scalar { text, plain: true } => match resolve(text) {
                Resolved::Int(i) => Ok(i as f64),
                Resolved::Float(f) => Ok(f),
                _ => Err(de::Error::invalid_type(self.0.unexpected(), &"a number")),
            },
            _ => Err(de::Error::invalid_type(self.0.unexpected(), &"a number")),
        }
    }
}

macro_rules! de_int {
    ($($method:ident $visit:ident $ty:ty),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let node = self.0;
            self.int::<$ty>().and_then(|n| visitor.$visit(n)).map_err(|e: DeError| e.at(node))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let node = self.0;
        let result = match &node.kind {
            Kind::Scalar { text, plain: true } => match resolve(text) {
                Resolved::Null => visitor.visit_unit(),
                Resolved::Bool(b) => visitor.visit_bool(b),
                Resolved::Int(i) => match (u64::try_from(i), i64::try_from(i)) {
                    (Ok(u), _) => visitor.visit_u64(u),
                    (_, Ok(s)) => visitor.visit_i64(s),
                    _ => visitor.visit_i128(i),
                },
                Resolved::Float(f) => visitor.visit_f64(f),
                Resolved::Str => visitor.visit_str(text),
            },
            Kind::Scalar { text, .. } => visitor.visit_str(text),
            Kind::Seq(items) => visitor.visit_seq(SeqAccess { items: items.iter() }),
            Kind::Map(pairs) => visitor.visit_map(MapAccess { pairs: pairs.iter(), value: None }),
        };
        result.map_err(|e: DeError| e.at(node))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let node = self.0;
        let result = match &node.kind {
            Kind::Scalar { text, plain: true } => match resolve(text) {
                Resolved::Bool(b) => visitor.visit_bool(b),
                _ => Err(de::Error::invalid_type(node.unexpected(), &"true or false")),
            },
            _ => Err(de::Error::invalid_type(node.unexpected(), &"true or false")),
        };
        result.map_err(|e: DeError| e.at(node))
    }

    de_int!(
        deserialize_i8 visit_i8 i8, deserialize_i16 visit_i16 i16, deserialize_i32 visit_i32 i32,
        deserialize_i64 visit_i64 i64, deserialize_u8 visit_u8 u8, deserialize_u16 visit_u16 u16,
        deserialize_u32 visit_u32 u32, deserialize_u64 visit_u64 u64
    );

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let node = self.0;
        self.float().and_then(|f| visitor.visit_f64(f)).map_err(|e: DeError| e.at(node))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let node = self.0;
        let result = match &node.kind {
            // A plain null is not an empty string: `name:` left blank is a mistake.
            Kind::Scalar { text, plain: true } if resolve(text) == Resolved::Null => {
                Err(de::Error::invalid_type(de::Unexpected::Other("null"), &"a string"))
            }
            Kind::Scalar { text, .. } => visitor.visit_str(text),
            _ => Err(de::Error::invalid_type(node.unexpected(), &"a string")),
        };
        result.map_err(|e: DeError| e.at(node))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let node = self.0;
        match &node.kind {
            Kind::Scalar { text, plain: true } if resolve(text) == Resolved::Null => {
                visitor.visit_none().map_err(|e: DeError| e.at(node))
            }
            _ => visitor.visit_some(self).map_err(|e: DeError| e.at(node)),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let node = self.0;
        match &node.kind {
            Kind::Scalar { text, plain: true } if resolve(text) == Resolved::Null => {
                visitor.visit_unit().map_err(|e: DeError| e.at(node))
            }
            _ => Err(de::Error::invalid_type(node.unexpected(), &"null")).map_err(|e: DeError| e.at(node)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, DeError> {
        let node = self.0;
        visitor.visit_newtype_struct(self).map_err(|e: DeError| e.at(node))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let node = self.0;
        let result = match &node.kind {
            Kind::Seq(items) => visitor.visit_seq(SeqAccess { items: items.iter() }),
            _ => Err(de::Error::invalid_type(node.unexpected(), &"a list")),
        };
        result.map_err(|e: DeError| e.at(node))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let node = self.0;
        let result = match &node.kind {
            Kind::Map(pairs) => visitor.visit_map(MapAccess { pairs: pairs.iter(), value: None }),
            _ => Err(de::Error::invalid_type(node.unexpected(), &"a mapping")),
        };
        result.map_err(|e: DeError| e.at(node))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let node = self.0;
        let result = match &node.kind {
            Kind::Scalar { text, .. } => {
                let variant: de::value::StrDeserializer<'_, DeError> = text.as_str().into_deserializer();
                visitor.visit_enum(variant)
            }
            _ => Err(de::Error::invalid_type(node.unexpected(), &"one of the listed names")),
        };
        result.map_err(|e: DeError| e.at(node))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct SeqAccess<'a> {
    items: std::slice::Iter<'a, Node>,
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some(node) => seed.deserialize(NodeDe(node)).map(Some).map_err(|e: DeError| e.at(node)),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapAccess<'a> {
    pairs: std::slice::Iter<'a, (Node, Node)>,
    value: Option<&'a Node>,
}

impl<'de> de::MapAccess<'de> for MapAccess<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        match self.pairs.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(NodeDe(key)).map(Some).map_err(|e| e.at(key))
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        match self.value.take() {
            Some(node) => seed.deserialize(NodeDe(node)).map_err(|e: DeError| e.at(node)),
            None => Err(<DeError as de::Error>::custom("a value was read before its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.pairs.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn tree(text: &str) -> Node {
        parse(text, &Ids::default()).map(|(n, _)| n).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn positions_are_one_based() {
        let root = tree("a: 1\nb:\n  - x\n  - 'y'\n");
        let y = root.at(&[Step::Key("b"), Step::Index(1)]);
        assert_eq!((y.pos.line, y.pos.column, y.pos.len), (4, 5, 3));
        assert_eq!(y.scalar(), Some("y"));
        let a = root.pair("a").map(|(k, _)| k.pos);
        assert_eq!(a.map(|p| (p.line, p.column)), Some((1, 1)));
    }

    #[test]
    fn duplicate_keys_are_all_reported() {
        let (root, dups) = parse("a: 1\nb: 2\na: 3\nb: 4\n", &Ids::default()).unwrap();
        let lines: Vec<_> = dups.iter().map(|(first, dup, name)| (first.line, dup.line, name.as_str())).collect();
        assert_eq!(lines, vec![(1, 3, "a"), (2, 4, "b")]);
        assert_eq!(root.get("a").and_then(Node::scalar), Some("1"));
    }

    #[test]
    fn aliases_expand_and_bombs_are_refused() {
        let root = tree("x: &a [1, 2]\ny: *a\n");
        assert!(matches!(&root.get("y").map(|n| &n.kind), Some(Kind::Seq(items)) if items.len() == 2));
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (i, c) in "bcdefghij".chars().enumerate() {
            let prev = (b'a' + i as u8) as char;
            bomb.push_str(&format!(
                "{c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        assert!(parse(&bomb, &Ids::default()).is_err());
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse("a: [1, 2\nb: 3\n", &Ids::default()).unwrap_err();
        assert!(e.line >= 1 && !e.message.is_empty(), "{e:?}");
    }

    #[test]
    fn plain_scalars_resolve_like_yaml_1_2() {
        assert_eq!(resolve("~"), Resolved::Null);
        assert_eq!(resolve("True"), Resolved::Bool(true));
        assert_eq!(resolve("yes"), Resolved::Str);
        assert_eq!(resolve("-12"), Resolved::Int(-12));
        assert_eq!(resolve("0x1F"), Resolved::Int(31));
        assert_eq!(resolve("1.5e3"), Resolved::Float(1500.0));
        assert_eq!(resolve("60s"), Resolved::Str);
        assert_eq!(resolve("1.2.3.4"), Resolved::Str);
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct S {
        port: u16,
        name: String,
        tags: Option<Vec<String>>,
    }

    #[test]
    fn errors_point_at_the_innermost_node() {
        let root = tree("port: 5986\nname: x\ntags: [a, {b: 1}]\n");
        let e = S::deserialize(NodeDe(&root)).unwrap_err();
        let node = root.find(e.node.unwrap()).unwrap();
        assert_eq!((node.pos.line, node.pos.column), (3, 11), "{}", e.message);
        assert!(e.message.contains("invalid type: map"), "{}", e.message);

        let root = tree("port: 70000\nname: x\n");
        let e = S::deserialize(NodeDe(&root)).unwrap_err();
        assert_eq!(root.find(e.node.unwrap()).map(|n| n.pos.line), Some(1));

        let root = tree("port: 1\nnmae: x\n");
        let e = S::deserialize(NodeDe(&root)).unwrap_err();
        let node = root.find(e.node.unwrap()).unwrap();
        assert_eq!((node.pos.line, node.pos.column), (2, 1));
        assert!(e.message.starts_with("unknown field `nmae`"), "{}", e.message);
    }

    #[test]
    fn quoted_numbers_stay_strings_and_plain_numbers_read_as_strings() {
        let root = tree("port: '5986'\nname: 2024\n");
        assert!(S::deserialize(NodeDe(&root)).is_err());
        let root = tree("port: 5986\nname: 2024\n");
        assert_eq!(S::deserialize(NodeDe(&root)).map(|s| s.name).ok().as_deref(), Some("2024"));
    }

    #[test]
    fn str_tags_make_strings() {
        let root = tree("port: !!str 5986\nname: x\n");
        assert!(matches!(&root.get("port").map(|n| &n.kind), Some(Kind::Scalar { plain: false, .. })));
    }

    #[test]
    fn remove_drops_the_pair_or_item() {
        let mut root = tree("a: [1, 2, 3]\nb: 2\n");
        let two = root.at(&[Step::Key("a"), Step::Index(1)]).id;
        assert!(root.remove(two).is_some());
        let b = root.get("b").map(|n| n.id).unwrap();
        assert_eq!(root.remove(b).map(|(_, k)| k), Some(Some("b".to_string())));
        assert!(root.get("b").is_none());
        assert!(matches!(&root.get("a").map(|n| &n.kind), Some(Kind::Seq(items)) if items.len() == 2));
    }
}
