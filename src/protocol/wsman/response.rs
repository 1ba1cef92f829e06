//! Responses: EnumerateResponse, PullResponse and GetResponse bodies into CIM instances.
//!
//! The envelope is read as a stream with our namespace-aware reader (`protocol::wsman::xml`), matching
//! (namespace URI, local name) and never prefixes, since servers choose prefixes freely.
//! Items are converted to instances as their events arrive, borrowing names and text from the
//! body: a property holding only text (nearly all of them) costs no allocation but its value,
//! and its name is shared with the same property of the other items. Structured properties
//! (datetimes, references, embedded instances), EPR items and fault bodies are collected into a
//! small element tree.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use super::envelope::{NS_ADDRESSING, NS_ENUMERATION, NS_SOAP, NS_WSMAN};
use super::fault::{self, Fault};
use super::xml::{self, Tag};
use crate::cim::schema::{self, CimType, ClassSchema};
use crate::cim::{DateTime, Instance, Interval, Name, Property, Reference, Value};
use crate::protocol::{Category, Error};

const NS_XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Bounds on what a response may make us allocate.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Deepest element nesting accepted.
    pub max_depth: usize,
    /// Most properties one instance may have.
    pub max_properties: usize,
    /// Longest text of one element or attribute, in bytes.
    pub max_string_bytes: usize,
    /// Most elements in one response. Each costs far more memory parsed than its few bytes
    /// of XML, so the body limit alone would let a long array take gigabytes.
    pub max_elements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // Generous: Windows caps envelopes at MaxEnvelopeSize (512 KiB by default) anyway.
        // Windows' default 500 KiB envelope holds some 25,000 real property elements, and even
        // an 8 MiB one (the most a retry asks for) fewer than 262,144 of 32 bytes or more;
        // parsed, an element costs about 0.5 KiB, so this bounds a response to ~140 MiB.
        Limits {
            max_body_bytes: 64 << 20,
            max_depth: 64,
            max_properties: 4096,
            max_string_bytes: 8 << 20,
            max_elements: 1 << 18,
        }
    }
}

/// One response's worth of an enumeration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    pub items: Vec<Instance>,
    /// The context to send with the next Pull (absent or empty when the server sent none).
    pub context: Option<String>,
    pub end_of_sequence: bool,
}

/// What a response body holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Page(Page),
    Fault(Fault),
}

/// What the parser needs to know about the request.
#[derive(Debug, Clone, Default)]
pub struct Expect<'a> {
    /// The class queried: names XmlFragment and EPR items, and selects the type table.
    pub class: &'a str,
    /// Properties to treat as arrays even when one element arrives.
    pub arrays: &'a [String],
    /// The request's MessageID, which the response's RelatesTo must equal.
    pub relates_to: Option<&'a str>,
    pub limits: Limits,
}

/// Parses a response body. `content_type` supplies the charset when there is no BOM.
pub fn parse(body: &[u8], content_type: Option<&str>, expect: &Expect<'_>) -> Result<Reply, Error> {
    if body.len() > expect.limits.max_body_bytes {
        return Err(protocol(format!(
            "response of {} bytes exceeds the limit of {} bytes",
            body.len(),
            expect.limits.max_body_bytes
        )));
    }
    let text = decode(body, content_type)?;
    let mut x = Xml::new(&text, &expect.limits);
    let mut relates_to: Option<String> = None;
    let mut reply = None;
    let mut first = x.next()?;
    while matches!(&first, Ev::Text(t) if t.trim().is_empty()) {
        first = x.next()?;
    }
    match first {
        Ev::Start(e) if e.is(NS_SOAP, "Envelope") => {}
        Ev::Start(e) => return Err(protocol(format!("expected a SOAP Envelope, found <{}>", e.local()))),
        _ => return Err(protocol("the response holds no SOAP Envelope")),
    }
    while let Some(child) = x.next_child()? {
        if child.is(NS_SOAP, "Header") {
            while let Some(h) = x.next_child()? {
                if h.is(NS_ADDRESSING, "RelatesTo") {
                    relates_to = Some(x.text()?.trim().to_string());
                } else {
                    x.skip()?;
                }
            }
        } else if child.is(NS_SOAP, "Body") {
            reply = Some(body_reply(&mut x, expect)?);
        } else {
            x.skip()?;
        }
    }
    let reply = reply.ok_or_else(|| protocol("the response has no SOAP Body"))?;
    if let (Reply::Page(_), Some(expected)) = (&reply, expect.relates_to) {
        match relates_to.as_deref() {
            Some(got) if got.eq_ignore_ascii_case(expected) => {}
            Some(got) => return Err(protocol(format!("response relates to {got}, not to the request {expected}"))),
            None => return Err(protocol("response has no RelatesTo header")),
        }
    }
    Ok(reply)
}

fn body_reply(x: &mut Xml<'_>, expect: &Expect<'_>) -> Result<Reply, Error> {
    let mut page = Page::default();
    let mut seen = false;
    let mut items = Items::new(expect);
    while let Some(child) = x.next_child()? {
        if child.is(NS_SOAP, "Fault") {
            let tree = x.tree(&child)?;
            return Ok(Reply::Fault(fault::from_tree(&tree)));
        }
        if seen {
            x.skip()?;
            continue;
        }
        seen = true;
        if child.is(NS_ENUMERATION, "EnumerateResponse") || child.is(NS_ENUMERATION, "PullResponse") {
            while let Some(e) = x.next_child()? {
                if e.is(NS_ENUMERATION, "EnumerationContext") {
                    let c = x.text()?.trim().to_string();
                    page.context = (!c.is_empty()).then_some(c);
                } else if e.is(NS_ENUMERATION, "Items") || e.is(NS_WSMAN, "Items") {
                    while let Some(item) = x.next_child()? {
                        page.items.push(items.read(x, &item)?);
                    }
                } else if e.is(NS_ENUMERATION, "EndOfSequence") || e.is(NS_WSMAN, "EndOfSequence") {
                    page.end_of_sequence = true;
                    x.skip()?;
                } else {
                    x.skip()?;
                }
            }
        } else {
            // A WS-Transfer GetResponse: the body is the instance itself.
            page.items.push(items.read(x, &child)?);
            page.end_of_sequence = true;
        }
    }
    if !seen {
        return Err(protocol("the SOAP Body is empty"));
    }
    Ok(Reply::Page(page))
}

/// An EPR item (EnumerateEPR): an instance holding the keys its selectors give.
fn epr_instance(item: &Elem, expect: &Expect<'_>) -> Instance {
    let r = reference(item);
    let mut inst = Instance::new(class_of_uri(&r.resource_uri).unwrap_or(expect.class));
    // The namespace selector of a DMTF EPR addresses the instance; it is not a key property.
    for (k, v) in r.selectors.into_iter().filter(|(k, _)| k != super::uri::CIM_NAMESPACE_SELECTOR) {
        inst.push(k, Value::String(v.into()));
    }
    inst
}

fn class_of_uri(uri: &str) -> Option<&str> {
    uri.rsplit('/').next().filter(|c| !c.is_empty() && *c != "*")
}

/// Reads the items of one response straight into instances, sharing what the items have in
/// common: class and property names, and what the class table says about each property.
struct Items<'e> {
    expect: &'e Expect<'e>,
    builder: Builder<'e>,
    /// Class names seen in this response and their table entries (a response holds one class
    /// and perhaps a few subclasses).
    classes: Vec<(Name, Option<&'static ClassSchema>)>,
}

/// At most this many class names are remembered per response; beyond it each item looks its
/// class up again (a hostile response could name a new class in every item).
const MAX_CLASSES: usize = 64;

impl<'e> Items<'e> {
    fn new(expect: &'e Expect<'e>) -> Items<'e> {
        Items { expect, builder: Builder::new(expect.arrays, &expect.limits), classes: Vec::new() }
    }

    /// The class named `local` (or the class queried, for an XmlFragment) and its table entry.
    fn class(&mut self, start: &Start<'_>) -> (Name, Option<&'static ClassSchema>) {
        let local = start.local();
        let class = if start.is(NS_WSMAN, "XmlFragment") { self.expect.class } else { local };
        if let Some(c) = self.classes.iter().find(|(n, _)| n.as_str() == class) {
            return c.clone();
        }
        // A class enumeration also returns instances of subclasses (Win32_TerminalService among
        // Win32_Service); one we do not know still has every property of the class queried.
        let entry = (Name::from(class), schema::class(class).or_else(|| schema::class(self.expect.class)));
        if self.classes.len() < MAX_CLASSES {
            self.classes.push(entry.clone());
        }
        entry
    }

    /// Reads the item just started.
    fn read(&mut self, x: &mut Xml<'_>, start: &Start<'_>) -> Result<Instance, Error> {
        if start.is(NS_ADDRESSING, "EndpointReference") {
            return Ok(epr_instance(&x.tree(start)?, self.expect));
        }
        let (class, schema) = self.class(start);
        let mut inst = self.builder.begin(class, schema);
        // Addressing children are kept whole: they are how an EPR item is recognized and read.
        let mut addressing: Vec<Elem> = Vec::new();
        let mut epr = false;
        loop {
            if let Some(el) = x.simple()? {
                if el.ns == Ns::Known(NS_ADDRESSING) {
                    let children = if el.text.is_empty() { Vec::new() } else { vec![Node::Text(el.text.into_owned())] };
                    let attrs = el.attribute.map(|(ns, l, v)| (x.ns_text(ns), l.to_string(), v.into_owned()));
                    let tree = Elem {
                        ns: x.ns_text(el.ns),
                        local: el.local.to_string(),
                        attrs: attrs.into_iter().collect(),
                        children,
                    };
                    self.builder.add(&mut inst, el.local, Raw::Tree(Cow::Borrowed(&tree)))?;
                    addressing.push(tree);
                } else {
                    let raw = if el.nil { Raw::Nil } else { Raw::Text(el.text) };
                    self.builder.add(&mut inst, el.local, raw)?;
                }
                continue;
            }
            let Some(child) = x.next_child()? else { break };
            if child.ns == Ns::Known(NS_ADDRESSING) {
                epr |= child.local() == "ReferenceParameters";
                let tree = x.tree(&child)?;
                self.builder.add(&mut inst, &tree.local, Raw::Tree(Cow::Borrowed(&tree)))?;
                addressing.push(tree);
            } else {
                let raw = x.property(&child)?;
                self.builder.add(&mut inst, child.local(), raw)?;
            }
        }
        if epr {
            // Only the addressing children matter to an EPR.
            let children = addressing.into_iter().map(Node::Elem).collect();
            let tree = x.elem_with(start, Vec::new(), children);
            return Ok(epr_instance(&tree, self.expect));
        }
        Ok(inst)
    }
}

/// A property element's content, as far as it had to be read: most hold only text.
enum Raw<'r> {
    Nil,
    Text(Cow<'r, str>),
    /// An element with child elements, converted by [`value`].
    Tree(Cow<'r, Elem>),
}

/// Up to this many distinct names, a name is found by linear search; beyond, through a map.
const LINEAR_NAMES: usize = 48;

/// What the builder knows about one property name.
struct Slot<'s> {
    name: Name,
    /// The class table entry the facts below were looked up in (`facts` is false until then).
    schema: Option<&'s ClassSchema>,
    facts: bool,
    ty: Option<CimType>,
    is_array: bool,
    /// The instance (by serial) in which the name was last seen, and its index there, so a
    /// repeated element joins its array in constant time.
    seen_in: u64,
    at: usize,
}

/// Builds instances property by property, handing out one shared [`Name`] per distinct
/// property name and remembering its type, so the instances of a response after the first
/// cost no name allocation and no class table search.
struct Builder<'s> {
    arrays: &'s [String],
    limits: &'s Limits,
    slots: Vec<Slot<'s>>,
    /// Built once there are more than [`LINEAR_NAMES`] slots.
    index: HashMap<Name, usize>,
    /// The slot after the previous property's: the next element's name, when items list their
    /// properties in the same order.
    cursor: usize,
    serial: u64,
    schema: Option<&'s ClassSchema>,
    /// Properties of the previous instance, to size the next one.
    last_len: usize,
}

impl<'s> Builder<'s> {
    fn new(arrays: &'s [String], limits: &'s Limits) -> Builder<'s> {
        Builder {
            arrays,
            limits,
            slots: Vec::new(),
            index: HashMap::new(),
            cursor: 0,
            serial: 0,
            schema: None,
            last_len: 0,
        }
    }

    /// Starts an instance of `class`, typed by `schema`.
    fn begin(&mut self, class: Name, schema: Option<&'s ClassSchema>) -> Instance {
        self.serial += 1;
        self.cursor = 0;
        self.schema = schema;
        Instance { class_name: class, properties: Vec::with_capacity(self.last_len) }
    }

    #[inline(always)]
    fn slot(&mut self, name: &str) -> usize {
        if self.slots.get(self.cursor).is_some_and(|s| s.name.as_str() == name) {
            return self.cursor;
        }
        let found = if self.slots.len() <= LINEAR_NAMES {
            self.slots.iter().position(|s| s.name.as_str() == name)
        } else {
            self.index.get(name).copied()
        };
        if let Some(i) = found {
            return i;
        }
        let i = self.slots.len();
        let name = Name::from(name);
        self.slots.push(Slot { name, schema: None, facts: false, ty: None, is_array: false, seen_in: 0, at: 0 });
        if i == LINEAR_NAMES {
            self.index.extend(self.slots.iter().enumerate().map(|(i, s)| (s.name.clone(), i)));
        } else if let Some(s) = self.slots.get(i).filter(|_| i > LINEAR_NAMES) {
            self.index.insert(s.name.clone(), i);
        }
        i
    }

    /// Adds one property element to `inst`: a new property, or one more element of an array.
    #[inline(always)]
    fn add(&mut self, inst: &mut Instance, name: &str, raw: Raw<'_>) -> Result<(), Error> {
        let i = self.slot(name);
        self.cursor = i + 1;
        let (schema, arrays, limits, serial) = (self.schema, self.arrays, self.limits, self.serial);
        let Some(slot) = self.slots.get_mut(i) else {
            return Err(protocol("internal error: a property slot went missing"));
        };
        let same_schema = match (slot.schema, schema) {
            (Some(a), Some(b)) => std::ptr::eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !slot.facts || !same_schema {
            let prop = schema.and_then(|s| s.property(&slot.name));
            slot.ty = prop.map(|p| p.cim_type);
            slot.is_array =
                prop.is_some_and(|p| p.is_array) || arrays.iter().any(|a| a.eq_ignore_ascii_case(&slot.name));
            slot.schema = schema;
            slot.facts = true;
        }
        let ty = slot.ty;
        if slot.seen_in == serial {
            // A repeated element: the property is an array.
            let value = raw_value(raw, ty, arrays, limits)?;
            if let Some(p) = inst.properties.get_mut(slot.at) {
                match &mut p.value {
                    Value::Array(items) => items.push(value),
                    first => {
                        let first = std::mem::replace(first, Value::Null);
                        p.value = Value::Array(vec![first, value]);
                    }
                }
            }
            return Ok(());
        }
        if inst.properties.len() >= limits.max_properties {
            return Err(protocol(format!(
                "an instance of {} has more than {} properties",
                inst.class_name, limits.max_properties
            )));
        }
        let value = match raw {
            // A single nil element is a null array, not an array holding a null.
            Raw::Nil => Value::Null,
            Raw::Tree(e) if e.is_nil() => Value::Null,
            raw if slot.is_array => Value::Array(vec![raw_value(raw, ty, arrays, limits)?]),
            raw => raw_value(raw, ty, arrays, limits)?,
        };
        slot.seen_in = serial;
        slot.at = inst.properties.len();
        inst.properties.push(Property { name: slot.name.clone(), value });
        self.last_len = self.last_len.max(inst.properties.len());
        Ok(())
    }
}

#[inline(always)]
fn raw_value(r: Raw<'_>, ty: Option<CimType>, arrays: &[String], limits: &Limits) -> Result<Value, Error> {
    Ok(match r {
        Raw::Nil => Value::Null,
        Raw::Text(text) => text_value(text, ty),
        Raw::Tree(e) => value(&e, ty, arrays, limits)?,
    })
}

#[inline(always)]
fn text_value(text: Cow<'_, str>, ty: Option<CimType>) -> Value {
    match ty {
        None | Some(CimType::String) => Value::String(text.into()),
        // A value the table's type cannot hold is kept as text rather than lost.
        Some(t) => t.parse_text(&text).unwrap_or_else(|| Value::String(text.into())),
    }
}

/// Builds an instance from an element whose children are its properties.
fn instance(
    e: &Elem,
    class: &str,
    schema: Option<&ClassSchema>,
    arrays: &[String],
    limits: &Limits,
) -> Result<Instance, Error> {
    let mut b = Builder::new(arrays, limits);
    let mut inst = b.begin(Name::from(class), schema);
    for c in e.elements() {
        let raw = if c.is_nil() {
            Raw::Nil
        } else if c.elements().next().is_none() {
            Raw::Text(Cow::Owned(c.text()))
        } else {
            Raw::Tree(Cow::Borrowed(c))
        };
        b.add(&mut inst, &c.local, raw)?;
    }
    Ok(inst)
}

/// Converts one property element to a value.
fn value(e: &Elem, ty: Option<CimType>, arrays: &[String], limits: &Limits) -> Result<Value, Error> {
    if e.is_nil() {
        return Ok(Value::Null);
    }
    let mut kids = e.elements();
    let (first, second) = (kids.next(), kids.next());
    if first.is_none() {
        return Ok(text_value(Cow::Owned(e.text()), ty));
    }
    if let (Some(only), None) = (first, second) {
        let t = only.text();
        match only.local.as_str() {
            "Datetime" | "Date" | "Time" | "CIMDateTime" => {
                let v = DateTime::parse_iso8601(t.trim())
                    .or_else(|| DateTime::parse_dmtf(t.trim()))
                    .map(Value::DateTime)
                    .or_else(|| Interval::parse_dmtf(t.trim()).map(Value::Interval));
                return Ok(v.unwrap_or(Value::String(t.into())));
            }
            "Interval" => {
                let v = Interval::parse_xs_duration(t.trim()).or_else(|| Interval::parse_dmtf(t.trim()));
                return Ok(v.map(Value::Interval).unwrap_or(Value::String(t.into())));
            }
            _ => {}
        }
    }
    if e.child(NS_ADDRESSING, "Address").is_some() || e.child(NS_ADDRESSING, "ReferenceParameters").is_some() {
        return Ok(Value::Reference(Box::new(reference(e))));
    }
    // An embedded instance: its class comes from xsi:type (`p:Win32_Foo_Type`).
    let class = e
        .attr(NS_XSI, "type")
        .map(|t| {
            let local = t.rsplit(':').next().unwrap_or(t);
            local.strip_suffix("_Type").unwrap_or(local).to_string()
        })
        .unwrap_or_else(|| e.local.clone());
    Ok(Value::Instance(Box::new(instance(e, &class, schema::class(&class), arrays, limits)?)))
}

/// An endpoint reference: Address, ReferenceParameters/ResourceURI and SelectorSet.
fn reference(e: &Elem) -> Reference {
    let mut r = Reference {
        address: e.child(NS_ADDRESSING, "Address").map(|a| a.text().trim().to_string()),
        ..Reference::default()
    };
    if let Some(p) = e.child(NS_ADDRESSING, "ReferenceParameters") {
        if let Some(u) = p.child(NS_WSMAN, "ResourceURI") {
            r.resource_uri = u.text().trim().to_string();
        }
        if let Some(set) = p.child(NS_WSMAN, "SelectorSet") {
            for s in set.elements().filter(|s| s.is(NS_WSMAN, "Selector")) {
                let name = s.attr_unqualified("Name").unwrap_or_default().to_string();
                r.selectors.push((name, s.text()));
            }
        }
    }
    r
}

/// Decodes a body to text: a BOM wins, then the content type's charset, else UTF-8.
pub fn decode<'b>(body: &'b [u8], content_type: Option<&str>) -> Result<Cow<'b, str>, Error> {
    let charset = content_type
        .and_then(|ct| {
            ct.split(';')
                .filter_map(|p| p.trim().split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("charset"))
                .map(|(_, v)| v.trim().trim_matches('"').to_ascii_lowercase())
        })
        .unwrap_or_default();
    let (bytes, enc) = if let Some(b) = body.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        (b, "utf-8")
    } else if let Some(b) = body.strip_prefix(&[0xFF, 0xFE]) {
        (b, "utf-16le")
    } else if let Some(b) = body.strip_prefix(&[0xFE, 0xFF]) {
        (b, "utf-16be")
    } else {
        (body, charset.as_str())
    };
    let utf16 = |le: bool| -> Result<Cow<'b, str>, Error> {
        if bytes.len() % 2 != 0 {
            return Err(protocol("a UTF-16 body has an odd number of bytes"));
        }
        let units = bytes.chunks_exact(2).map(|c| {
            let pair = [c.first().copied().unwrap_or(0), c.get(1).copied().unwrap_or(0)];
            if le { u16::from_le_bytes(pair) } else { u16::from_be_bytes(pair) }
        });
        let text: Result<String, _> = char::decode_utf16(units).collect();
        text.map(Cow::Owned).map_err(|_| protocol("the body is not valid UTF-16"))
    };
    match enc {
        // Without a BOM, UTF-16 is big-endian (RFC 2781), but Windows writes little-endian;
        // the first character of an XML document is `<`, which tells the two apart.
        "utf-16" => utf16(bytes.get(1) == Some(&0)),
        "utf-16le" | "unicode" => utf16(true),
        "utf-16be" => utf16(false),
        "" | "utf-8" | "utf8" | "us-ascii" | "ascii" => std::str::from_utf8(bytes)
            .map(Cow::Borrowed)
            .map_err(|e| protocol(format!("the body is not valid UTF-8: {e}"))),
        other => Err(protocol(format!("unsupported response charset {other:?}"))),
    }
}

fn protocol(msg: impl Into<String>) -> Error {
    Error::new(Category::ProtocolError, msg)
}

/// An attribute of a collected element: (namespace, local name, value).
pub(crate) type Attribute = (Option<Arc<str>>, String, String);

/// A collected element: what items and faults are converted from.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Elem {
    pub ns: Option<Arc<str>>,
    pub local: String,
    /// (namespace, local name, value) of each attribute.
    pub attrs: Vec<(Option<Arc<str>>, String, String)>,
    pub children: Vec<Node>,
}

/// A child of an element.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Elem(Elem),
    Text(String),
}

impl Elem {
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.local == local && self.ns.as_deref() == Some(ns)
    }

    pub fn elements(&self) -> impl Iterator<Item = &Elem> {
        self.children.iter().filter_map(|c| match c {
            Node::Elem(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    pub fn child(&self, ns: &str, local: &str) -> Option<&Elem> {
        self.elements().find(|e| e.is(ns, local))
    }

    /// All text directly inside the element.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for c in &self.children {
            if let Node::Text(t) = c {
                s.push_str(t);
            }
        }
        s
    }

    pub fn attr(&self, ns: &str, local: &str) -> Option<&str> {
        self.attrs.iter().find(|(n, l, _)| l == local && n.as_deref() == Some(ns)).map(|a| a.2.as_str())
    }

    pub fn attr_unqualified(&self, local: &str) -> Option<&str> {
        self.attrs.iter().find(|(n, l, _)| l == local && n.is_none()).map(|a| a.2.as_str())
    }

    fn is_nil(&self) -> bool {
        is_nil(&self.attrs)
    }
}

/// Whether attributes mark their element `xsi:nil`.
fn is_nil(attrs: &[(Option<Arc<str>>, String, String)]) -> bool {
    attrs.iter().any(|(n, l, v)| l == "nil" && n.as_deref() == Some(NS_XSI) && nil_value(v))
}

fn nil_value(v: &str) -> bool {
    v.trim().eq_ignore_ascii_case("true") || v.trim() == "1"
}

/// The namespaces elements are matched against. A resolved URI equal to one of them is held as
/// the constant itself, so matching costs no lookup and keeps no copy.
const KNOWN_NS: [&str; 5] = [NS_SOAP, NS_ADDRESSING, NS_ENUMERATION, NS_WSMAN, NS_XSI];

/// The namespace of an element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    None,
    Known(&'static str),
    /// Any other URI, by its index among those this response used.
    Other(usize),
}

/// An element read whole: text only, or empty with one attribute.
struct Whole<'a> {
    ns: Ns,
    local: &'a str,
    text: Cow<'a, str>,
    attribute: Option<(Ns, &'a str, Cow<'a, str>)>,
    /// The attribute is `xsi:nil` saying true.
    nil: bool,
}

/// An element start, borrowed from the body; its attributes are read only when needed.
struct Start<'a> {
    ns: Ns,
    tag: Tag<'a>,
    /// An `xsi:nil` attribute says true.
    nil: bool,
}

impl<'a> Start<'a> {
    /// Only for the namespaces of [`KNOWN_NS`], which every caller passes.
    fn is(&self, ns: &str, local: &str) -> bool {
        debug_assert!(KNOWN_NS.contains(&ns), "{ns} is matched but not known");
        matches!(self.ns, Ns::Known(k) if k == ns) && self.tag.local == local
    }

    fn local(&self) -> &'a str {
        self.tag.local
    }
}

enum Ev<'a> {
    Start(Start<'a>),
    End,
    Text(Cow<'a, str>),
    Eof,
}

/// The event stream, with limits, entity handling and empty elements split into start + end.
struct Xml<'a> {
    r: xml::Reader<'a>,
    limits: &'a Limits,
    depth: usize,
    /// Elements started so far.
    elements: usize,
    namespaces: Namespaces,
    /// The namespace binding (by serial) last resolved, and what it resolved to.
    last_serial: (u64, Ns),
}

/// Up to this many other namespaces are searched linearly.
const LINEAR_NAMESPACES: usize = 16;

impl<'a> Xml<'a> {
    fn new(text: &'a str, limits: &'a Limits) -> Xml<'a> {
        Xml {
            r: xml::Reader::new(text),
            limits,
            depth: 0,
            elements: 0,
            namespaces: Namespaces::default(),
            last_serial: (0, Ns::None),
        }
    }

    fn next(&mut self) -> Result<Ev<'a>, Error> {
        let ev = self.r.next().map_err(|e| protocol(format!("malformed XML: {e}")))?;
        Ok(match ev {
            xml::Event::Start(tag) => {
                self.count_element(self.depth + 1)?;
                self.depth += 1;
                let ns = self.resolve(tag.ns, tag.ns_serial);
                let nil = tag.has_attributes && self.scan_attributes()?;
                Ev::Start(Start { ns, tag, nil })
            }
            xml::Event::End => {
                self.depth = self.depth.saturating_sub(1);
                Ev::End
            }
            xml::Event::Text(t) => Ev::Text(t),
            xml::Event::Eof => Ev::Eof,
        })
    }

    /// Reads `<name>text</name>` or `<name a="v"/>` whole when that comes next (see
    /// [`xml::Reader::simple`]).
    #[inline(always)]
    fn simple(&mut self) -> Result<Option<Whole<'a>>, Error> {
        let Some(el) = self.r.simple().map_err(|e| protocol(format!("malformed XML: {e}")))? else {
            return Ok(None);
        };
        self.count_element(self.depth + 1)?;
        if el.text.len() > self.limits.max_string_bytes {
            return Err(protocol("element text exceeds the string limit"));
        }
        let ns = self.resolve(el.ns, el.ns_serial);
        let attribute = match el.attribute {
            Some((binding, local, value)) => {
                if value.len() > self.limits.max_string_bytes {
                    return Err(protocol("attribute value exceeds the string limit"));
                }
                let ans = match binding {
                    Some(i) => self.namespaces.id(self.r.namespace(i)),
                    None => Ns::None,
                };
                Some((ans, local, value))
            }
            None => None,
        };
        let nil = attribute
            .as_ref()
            .is_some_and(|(ns, local, value)| *local == "nil" && *ns == Ns::Known(NS_XSI) && nil_value(value));
        Ok(Some(Whole { ns, local: el.local, text: el.text, attribute, nil }))
    }

    /// Counts an element starting at `depth` against the limits.
    #[inline(always)]
    fn count_element(&mut self, depth: usize) -> Result<(), Error> {
        if depth > self.limits.max_depth {
            return Err(protocol(format!("XML nesting deeper than {}", self.limits.max_depth)));
        }
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            return Err(protocol(format!(
                "more than {} XML elements in one response (an array or a property list too long)",
                self.limits.max_elements
            )));
        }
        Ok(())
    }

    /// The [`Ns`] of a binding the reader reported, remembering the last one resolved.
    #[inline(always)]
    fn resolve(&mut self, binding: Option<usize>, serial: u64) -> Ns {
        match binding {
            Some(_) if self.last_serial.0 == serial => self.last_serial.1,
            Some(i) => {
                let ns = self.namespaces.id(self.r.namespace(i));
                self.last_serial = (serial, ns);
                ns
            }
            None => Ns::None,
        }
    }

    /// Checks the attribute values of the element just read against the string limit, and
    /// tells whether it is `xsi:nil`.
    fn scan_attributes(&self) -> Result<bool, Error> {
        let mut nil = false;
        for a in self.r.attributes() {
            let a = a.map_err(|e| protocol(format!("malformed attribute: {e}")))?;
            if a.value.len() > self.limits.max_string_bytes {
                return Err(protocol("attribute value exceeds the string limit"));
            }
            nil |= a.local == "nil" && a.ns == Some(NS_XSI) && nil_value(&a.value);
        }
        Ok(nil)
    }

    /// The attributes of the element just started, resolved, as a tree keeps them. Must be
    /// called before the next event is read, while the element's namespace scope is current.
    fn attributes(&mut self, tag: &Tag<'_>) -> Result<Vec<Attribute>, Error> {
        if !tag.has_attributes {
            return Ok(Vec::new());
        }
        let mut attrs = Vec::new();
        for a in self.r.attributes() {
            let a = a.map_err(|e| protocol(format!("malformed attribute: {e}")))?;
            let ns = a.ns.map(|uri| self.namespaces.id(uri));
            attrs.push((ns.and_then(|n| self.namespaces.text(n)), a.local.to_string(), a.value.into_owned()));
        }
        Ok(attrs)
    }

    fn ns_text(&self, ns: Ns) -> Option<Arc<str>> {
        self.namespaces.text(ns)
    }

    /// An element from a start (read just now, see [`Xml::attributes`]) and its children.
    fn elem_with(
        &self,
        start: &Start<'_>,
        attrs: Vec<(Option<Arc<str>>, String, String)>,
        children: Vec<Node>,
    ) -> Elem {
        Elem { ns: self.ns_text(start.ns), local: start.local().to_string(), attrs, children }
    }

    /// The next child element of the current element, or `None` at its end.
    fn next_child(&mut self) -> Result<Option<Start<'a>>, Error> {
        loop {
            match self.next()? {
                Ev::Start(s) => return Ok(Some(s)),
                Ev::End => return Ok(None),
                Ev::Text(_) => continue,
                Ev::Eof => return Err(protocol("the response ends in the middle of an element")),
            }
        }
    }

    /// Skips the rest of the element just started.
    fn skip(&mut self) -> Result<(), Error> {
        let mut open = 1usize;
        while open > 0 {
            match self.next()? {
                Ev::Start(_) => open += 1,
                Ev::End => open -= 1,
                Ev::Text(_) => {}
                Ev::Eof => return Err(protocol("the response ends in the middle of an element")),
            }
        }
        Ok(())
    }

    /// The text of the element just started (child elements' text included).
    fn text(&mut self) -> Result<String, Error> {
        let mut s = String::new();
        let mut open = 1usize;
        while open > 0 {
            match self.next()? {
                Ev::Start(_) => open += 1,
                Ev::End => open -= 1,
                Ev::Text(t) => {
                    s.push_str(&t);
                    if s.len() > self.limits.max_string_bytes {
                        return Err(protocol("element text exceeds the string limit"));
                    }
                }
                Ev::Eof => return Err(protocol("the response ends in the middle of an element")),
            }
        }
        Ok(s)
    }

    /// Reads the property element just started: nil, its text, or a tree if it has child
    /// elements (then its attributes are kept too).
    fn property(&mut self, start: &Start<'_>) -> Result<Raw<'a>, Error> {
        if start.nil {
            self.skip()?;
            return Ok(Raw::Nil);
        }
        let attrs = self.attributes(&start.tag)?;
        let mut text: Option<Cow<'a, str>> = None;
        loop {
            match self.next()? {
                Ev::Text(t) => {
                    let joined = match text.take() {
                        None => t,
                        Some(prev) => Cow::Owned(prev.into_owned() + &t),
                    };
                    if joined.len() > self.limits.max_string_bytes {
                        return Err(protocol("element text exceeds the string limit"));
                    }
                    text = Some(joined);
                }
                Ev::End => return Ok(Raw::Text(text.unwrap_or(Cow::Borrowed("")))),
                Ev::Start(child) => {
                    let mut root = self.elem_with(start, attrs, Vec::new());
                    if let Some(t) = text.filter(|t| !t.is_empty()) {
                        root.children.push(Node::Text(t.into_owned()));
                    }
                    root.children.push(Node::Elem(self.tree(&child)?));
                    return Ok(Raw::Tree(Cow::Owned(self.rest(root)?)));
                }
                Ev::Eof => return Err(protocol("the response ends in the middle of an element")),
            }
        }
    }

    /// Collects the element just started into a tree.
    fn tree(&mut self, start: &Start<'_>) -> Result<Elem, Error> {
        let attrs = self.attributes(&start.tag)?;
        let root = self.elem_with(start, attrs, Vec::new());
        self.rest(root)
    }

    /// Collects the rest of an element, read up to here into `root`, into a tree.
    fn rest(&mut self, root: Elem) -> Result<Elem, Error> {
        let mut stack = vec![root];
        let mut text_len = 0usize;
        loop {
            match self.next()? {
                Ev::Start(s) => {
                    text_len = 0;
                    let attrs = self.attributes(&s.tag)?;
                    stack.push(self.elem_with(&s, attrs, Vec::new()));
                }
                Ev::Text(t) => {
                    text_len += t.len();
                    if text_len > self.limits.max_string_bytes {
                        return Err(protocol("element text exceeds the string limit"));
                    }
                    if let Some(top) = stack.last_mut() {
                        match top.children.last_mut() {
                            Some(Node::Text(prev)) => prev.push_str(&t),
                            _ => top.children.push(Node::Text(t.into_owned())),
                        }
                    }
                }
                Ev::End => {
                    let done = stack.pop().ok_or_else(|| protocol("unbalanced XML"))?;
                    text_len = 0;
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(Node::Elem(done)),
                        None => return Ok(done),
                    }
                }
                Ev::Eof => return Err(protocol("the response ends in the middle of an element")),
            }
        }
    }
}

/// Namespace URIs other than [`KNOWN_NS`] seen in a response (a typed item's class
/// namespace), numbered for [`Ns::Other`].
#[derive(Default)]
struct Namespaces {
    list: Vec<Arc<str>>,
    /// Index of `list`, once it is too long to search.
    index: HashMap<Arc<str>, usize>,
    /// The last one matched: every property of a typed item is in its namespace.
    last: usize,
}

impl Namespaces {
    /// The [`Ns`] of a resolved namespace URI, remembering it if it is new.
    fn id(&mut self, uri: &str) -> Ns {
        if self.list.get(self.last).is_some_and(|o| **o == *uri) {
            return Ns::Other(self.last);
        }
        if let Some(k) = KNOWN_NS.iter().find(|k| **k == uri) {
            return Ns::Known(k);
        }
        let found = if self.list.len() <= LINEAR_NAMESPACES {
            self.list.iter().position(|o| **o == *uri)
        } else {
            self.index.get(uri).copied()
        };
        let i = found.unwrap_or_else(|| {
            let n: Arc<str> = Arc::from(uri);
            self.list.push(n.clone());
            let i = self.list.len() - 1;
            if i == LINEAR_NAMESPACES {
                self.index.extend(self.list.iter().enumerate().map(|(i, o)| (o.clone(), i)));
            } else if i > LINEAR_NAMESPACES {
                self.index.insert(n, i);
            }
            i
        });
        self.last = i;
        Ns::Other(i)
    }

    /// The URI of an [`Ns`], as a collected element keeps it.
    fn text(&self, ns: Ns) -> Option<Arc<str>> {
        match ns {
            Ns::None => None,
            Ns::Known(k) => Some(Arc::from(k)),
            Ns::Other(i) => self.list.get(i).cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><s:Header><a:RelatesTo>uuid:R</a:RelatesTo></s:Header><s:Body>"#;
    const TAIL: &str = "</s:Body></s:Envelope>";

    fn expect<'a>(class: &'a str, arrays: &'a [String]) -> Expect<'a> {
        Expect { class, arrays, relates_to: Some("uuid:R"), limits: Limits::default() }
    }

    fn page(body: &str, ex: &Expect<'_>) -> Page {
        match parse(format!("{HEAD}{body}{TAIL}").as_bytes(), None, ex).unwrap() {
            Reply::Page(p) => p,
            Reply::Fault(f) => panic!("unexpected fault {f:?}"),
        }
    }

    #[test]
    fn prefixes_do_not_matter_only_namespaces() {
        let body = r#"<e:PullResponse xmlns:e="http://schemas.xmlsoap.org/ws/2004/09/enumeration"><e:EnumerationContext>uuid:C</e:EnumerationContext><e:Items><q:XmlFragment xmlns:q="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><Name>a</Name></q:XmlFragment></e:Items></e:PullResponse>"#;
        let p = page(body, &expect("C", &[]));
        assert_eq!(p.context.as_deref(), Some("uuid:C"));
        assert!(!p.end_of_sequence);
        assert_eq!(p.items, vec![Instance::new("C").with("Name", Value::String("a".into()))]);
        // An element with the right local name in the wrong namespace is not Items.
        let body = r#"<n:PullResponse><x:Items xmlns:x="urn:other"><w:XmlFragment><Name>a</Name></w:XmlFragment></x:Items><w:EndOfSequence/></n:PullResponse>"#;
        let p = page(body, &expect("C", &[]));
        assert!(p.items.is_empty());
        assert!(p.end_of_sequence);
    }

    #[test]
    fn an_unknown_subclass_is_typed_by_the_class_queried() {
        let body = r#"<n:PullResponse><n:Items><p:Win32_TerminalService xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_TerminalService"><p:AcceptStop>true</p:AcceptStop><p:ProcessId>1720</p:ProcessId><p:TotalSessions>3</p:TotalSessions></p:Win32_TerminalService></n:Items></n:PullResponse>"#;
        let p = page(body, &expect("Win32_Service", &[]));
        let i = &p.items[0];
        assert_eq!(i.class_name, "Win32_TerminalService");
        assert_eq!(i.get("AcceptStop"), Some(&Value::Bool(true)));
        assert_eq!(i.get("ProcessId"), Some(&Value::UInt32(1720)));
        // A property only the subclass has stays text.
        assert_eq!(i.get("TotalSessions"), Some(&Value::String("3".into())));
    }

    #[test]
    fn nil_arrays_references_datetimes_and_embedded() {
        let body = r#"<n:PullResponse><n:Items><w:XmlFragment xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common"><A xsi:nil="true"/><B>1</B><B>2</B><C>x</C><D><cim:Datetime>2013-04-15T16:28:43.488171Z</cim:Datetime></D><E><cim:Interval>P1DT2H</cim:Interval></E><F><a:Address>http://a</a:Address><a:ReferenceParameters><w:ResourceURI>http://r/Win32_Disk</w:ResourceURI><w:SelectorSet><w:Selector Name="DeviceID">C:&amp;</w:Selector></w:SelectorSet></a:ReferenceParameters></F><G xsi:type="p:Win32_Inner_Type"><X>1</X></G><H>&lt;&#65;&gt;</H></w:XmlFragment></n:Items><n:EndOfSequence/></n:PullResponse>"#;
        let arrays = vec!["c".to_string()];
        let p = page(body, &expect("Q", &arrays));
        let i = &p.items[0];
        let names: Vec<_> = i.properties.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["A", "B", "C", "D", "E", "F", "G", "H"]);
        assert_eq!(i.get("A"), Some(&Value::Null));
        assert_eq!(i.get("B"), Some(&Value::Array(vec![Value::String("1".into()), Value::String("2".into())])));
        assert_eq!(i.get("C"), Some(&Value::Array(vec![Value::String("x".into())])));
        assert_eq!(i.get("D").map(|v| v.to_string()).as_deref(), Some("2013-04-15T16:28:43.488171Z"));
        assert_eq!(i.get("E"), Some(&Value::Interval(Interval { microseconds: 93_600_000_000 })));
        let Some(Value::Reference(r)) = i.get("F") else { panic!("not a reference: {i}") };
        assert_eq!(r.address.as_deref(), Some("http://a"));
        assert_eq!(r.resource_uri, "http://r/Win32_Disk");
        assert_eq!(r.selectors, vec![("DeviceID".to_string(), "C:&".to_string())]);
        let Some(Value::Instance(g)) = i.get("G") else { panic!("not an instance") };
        assert_eq!(g.class_name, "Win32_Inner");
        assert_eq!(g.get("X"), Some(&Value::String("1".into())));
        assert_eq!(i.get("H"), Some(&Value::String("<A>".into())));
    }

    #[test]
    fn class_knowledge_types_values_and_makes_arrays() {
        use crate::cim::schema::PropertySchema;
        let prop = |name: &str, cim_type, is_array| PropertySchema { name: name.into(), cim_type, is_array };
        let class = ClassSchema {
            name: "T".into(),
            superclass: None,
            properties: vec![
                prop("Size", CimType::UInt64, false),
                prop("Ok", CimType::Boolean, false),
                prop("Roles", CimType::String, true),
                prop("When", CimType::DateTime, false),
                prop("Odd", CimType::UInt8, false),
            ],
        };
        let tree = Elem {
            ns: None,
            local: "XmlFragment".into(),
            attrs: Vec::new(),
            children: [
                "Size:18446744073709551615",
                "Ok:TRUE",
                "Roles:a",
                "When:20130319054036.500000-420",
                "Odd:300",
                "Free:x",
            ]
            .iter()
            .map(|kv| {
                let (k, v) = kv.split_once(':').unwrap();
                Node::Elem(Elem { ns: None, local: k.into(), attrs: Vec::new(), children: vec![Node::Text(v.into())] })
            })
            .collect(),
        };
        let i = instance(&tree, "T", Some(&class), &[], &Limits::default()).unwrap();
        assert_eq!(i.get("Size"), Some(&Value::UInt64(u64::MAX)));
        assert_eq!(i.get("Ok"), Some(&Value::Bool(true)));
        assert_eq!(i.get("Roles"), Some(&Value::Array(vec![Value::String("a".into())])));
        assert_eq!(i.get("When").map(Value::to_string).as_deref(), Some("2013-03-19T05:40:36.500000-07:00"));
        // Text the table's type cannot hold stays text; unknown properties stay text.
        assert_eq!(i.get("Odd"), Some(&Value::String("300".into())));
        assert_eq!(i.get("Free"), Some(&Value::String("x".into())));
    }

    /// One item collected as a tree and converted (a typed class element, a `w:XmlFragment`, or
    /// an EPR): the reference the streamed conversion is tested against.
    fn item_instance(item: &Elem, expect: &Expect<'_>) -> Result<Instance, Error> {
        if item.is(NS_ADDRESSING, "EndpointReference") || item.child(NS_ADDRESSING, "ReferenceParameters").is_some() {
            return Ok(epr_instance(item, expect));
        }
        let class = if item.is(NS_WSMAN, "XmlFragment") { expect.class } else { item.local.as_str() };
        // A class enumeration also returns instances of subclasses (Win32_TerminalService among
        // Win32_Service); one we do not know still has every property of the class queried.
        let schema = schema::class(class).or_else(|| schema::class(expect.class));
        instance(item, class, schema, expect.arrays, &expect.limits)
    }

    /// Reads an item both ways: streamed, and collected into a tree then converted.
    fn streamed_and_tree(item: &str, class: &str, arrays: &[String]) -> (Instance, Instance) {
        let doc = format!(
            r#"<r xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common">{item}</r>"#
        );
        let ex = expect(class, arrays);
        let read = |stream: bool| {
            let mut x = Xml::new(&doc, &ex.limits);
            let Ev::Start(_) = x.next().unwrap() else { panic!("no root") };
            let start = x.next_child().unwrap().unwrap();
            if stream {
                Items::new(&ex).read(&mut x, &start).unwrap()
            } else {
                item_instance(&x.tree(&start).unwrap(), &ex).unwrap()
            }
        };
        (read(true), read(false))
    }

    #[test]
    fn streamed_items_equal_their_tree_conversion() {
        let arrays = vec!["L".to_string()];
        for (item, class) in [
            (
                r#"<w:XmlFragment><A xsi:nil="true"/><B>1</B>x<B>2</B><C/><B>3</B><L>a</L><L xsi:nil="1"/><M xsi:nil="true"><Y>1</Y></M></w:XmlFragment>"#,
                "Q",
            ),
            (
                r#"<w:XmlFragment><L xsi:nil="true"/><D>t<cim:Datetime>2013-04-15T16:28:43Z</cim:Datetime>u</D><E><cim:Interval>P1D</cim:Interval></E><G xsi:type="p:In_Type"><X>1</X><X><Z>2</Z></X></G><a:Plain>p</a:Plain></w:XmlFragment>"#,
                "Q",
            ),
            (
                r#"<p:Win32_Service xmlns:p="urn:p"><p:Name>S</p:Name><p:ProcessId>12</p:ProcessId><p:AcceptStop>true</p:AcceptStop><p:ExitCode>big</p:ExitCode></p:Win32_Service>"#,
                "Win32_Service",
            ),
            (
                r#"<w:XmlFragment><Name>n</Name><a:Address>http://x</a:Address><a:ReferenceParameters><w:ResourceURI>http://r/Win32_Disk</w:ResourceURI><w:SelectorSet><w:Selector Name="K">v</w:Selector></w:SelectorSet></a:ReferenceParameters></w:XmlFragment>"#,
                "Q",
            ),
            (
                r#"<a:EndpointReference><a:ReferenceParameters><w:ResourceURI>http://r/C</w:ResourceURI><w:SelectorSet><w:Selector Name="N">1</w:Selector></w:SelectorSet></a:ReferenceParameters></a:EndpointReference>"#,
                "C",
            ),
        ] {
            let (streamed, tree) = streamed_and_tree(item, class, &arrays);
            assert_eq!(streamed, tree, "{item}");
            assert!(!streamed.properties.is_empty(), "{item}");
        }
        // Beyond the linear search, grouping goes through the index and still finds repeats.
        let wide: String =
            (0..60).map(|i| format!("<P{i}>{i}</P{i}>")).collect::<String>() + "<P3>again</P3><P59>x</P59>";
        let (streamed, tree) = streamed_and_tree(&format!("<w:XmlFragment>{wide}</w:XmlFragment>"), "Q", &[]);
        assert_eq!(streamed, tree);
        assert_eq!(streamed.properties.len(), 60);
        assert_eq!(
            streamed.get("P3"),
            Some(&Value::Array(vec![Value::String("3".into()), Value::String("again".into())]))
        );
    }

    #[test]
    fn line_ends_are_normalized_but_char_refs_kept() {
        let body = "<n:PullResponse><n:Items><w:XmlFragment><D>a\r\nb\rc&#13;&#10;d</D></w:XmlFragment></n:Items></n:PullResponse>";
        let p = page(body, &expect("C", &[]));
        assert_eq!(p.items[0].get("D"), Some(&Value::String("a\nb\nc\r\nd".into())));
    }

    #[test]
    fn epr_items_become_key_instances() {
        let body = r#"<n:EnumerateResponse><n:EnumerationContext/><w:Items><a:EndpointReference><a:Address>http://x</a:Address><a:ReferenceParameters><w:ResourceURI>http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_Service</w:ResourceURI><w:SelectorSet><w:Selector Name="Name">Spooler</w:Selector><w:Selector Name="__cimnamespace">root/cimv2</w:Selector></w:SelectorSet></a:ReferenceParameters></a:EndpointReference></w:Items><w:EndOfSequence/></n:EnumerateResponse>"#;
        let p = page(body, &expect("Win32_Service", &[]));
        assert_eq!(p.context, None);
        assert_eq!(p.items, vec![Instance::new("Win32_Service").with("Name", Value::String("Spooler".into()))]);
    }

    #[test]
    fn get_response_is_the_instance() {
        let body = r#"<p:Win32_OS xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_OS"><p:Caption>W</p:Caption></p:Win32_OS>"#;
        let p = page(body, &expect("Win32_OS", &[]));
        assert!(p.end_of_sequence);
        assert_eq!(p.items[0].class_name, "Win32_OS");
    }

    #[test]
    fn relates_to_must_match() {
        let body = format!("{HEAD}<n:PullResponse><n:EndOfSequence/></n:PullResponse>{TAIL}");
        let mut ex = expect("C", &[]);
        ex.relates_to = Some("uuid:OTHER");
        assert_eq!(parse(body.as_bytes(), None, &ex).unwrap_err().category, Category::ProtocolError);
        let no_header = body.replace("<a:RelatesTo>uuid:R</a:RelatesTo>", "");
        assert!(parse(no_header.as_bytes(), None, &ex).is_err());
        ex.relates_to = Some("uuid:r");
        assert!(parse(body.as_bytes(), None, &ex).is_ok());
    }

    #[test]
    fn utf16_bodies_by_bom_and_charset() {
        let xml = format!(
            "{HEAD}<n:PullResponse><n:Items><w:XmlFragment><N>é€😀</N></w:XmlFragment></n:Items><n:EndOfSequence/></n:PullResponse>{TAIL}"
        );
        let le: Vec<u8> = xml.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        let be: Vec<u8> = xml.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
        let ex = expect("C", &[]);
        let with_bom = [&[0xFF, 0xFE][..], &le].concat();
        for (body, ct) in [
            (with_bom.as_slice(), None),
            (le.as_slice(), Some("application/soap+xml;charset=UTF-16")),
            (be.as_slice(), Some("application/soap+xml; charset=\"utf-16\"")),
            (be.as_slice(), Some("application/soap+xml;charset=utf-16be")),
        ] {
            let Reply::Page(p) = parse(body, ct, &ex).unwrap() else { panic!() };
            assert_eq!(p.items[0].get("N"), Some(&Value::String("é€😀".into())));
        }
        assert!(parse(&le, None, &ex).is_err());
        assert!(parse(&le[1..], Some("text/xml;charset=utf-16"), &ex).is_err());
    }

    #[test]
    fn limits_and_hostile_input() {
        let ex = expect("C", &[]);
        let dtd = format!("<!DOCTYPE x [<!ENTITY a \"b\">]>{HEAD}<n:PullResponse/>{TAIL}");
        assert!(parse(dtd.as_bytes(), None, &ex).unwrap_err().message.contains("DTD"));
        let ent = format!(
            "{HEAD}<n:PullResponse><n:Items><w:XmlFragment><N>&a;</N></w:XmlFragment></n:Items></n:PullResponse>{TAIL}"
        );
        assert!(parse(ent.as_bytes(), None, &ex).unwrap_err().message.contains("entity"));
        let deep = format!("{HEAD}{}{}{TAIL}", "<x>".repeat(100), "</x>".repeat(100));
        assert!(parse(deep.as_bytes(), None, &ex).unwrap_err().message.contains("deeper"));
        let mut small = expect("C", &[]);
        small.limits.max_properties = 2;
        let wide = format!(
            "{HEAD}<n:PullResponse><n:Items><w:XmlFragment><A/><B/><C/></w:XmlFragment></n:Items></n:PullResponse>{TAIL}"
        );
        assert!(parse(wide.as_bytes(), None, &small).is_err());
        small.limits.max_properties = 4096;
        small.limits.max_elements = 12;
        let long_array = format!(
            "{HEAD}<n:PullResponse><n:Items><w:XmlFragment>{}</w:XmlFragment></n:Items></n:PullResponse>{TAIL}",
            "<A>1</A>".repeat(3)
        );
        assert!(parse(long_array.as_bytes(), None, &small).is_ok());
        let longer = long_array.replace("<A>1</A>", "<A>1</A><A>1</A>");
        assert!(parse(longer.as_bytes(), None, &small).unwrap_err().message.contains("more than 12 XML elements"));
        small.limits.max_body_bytes = 10;
        assert!(parse(wide.as_bytes(), None, &small).unwrap_err().message.contains("exceeds"));
        for garbage in ["", "not xml", "<a><b></a>", "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\">"]
        {
            assert_eq!(parse(garbage.as_bytes(), None, &ex).unwrap_err().category, Category::ProtocolError);
        }
    }
}
