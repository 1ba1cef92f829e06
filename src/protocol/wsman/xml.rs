//! A namespace-aware XML pull reader for WS-Man bodies, borrowing from the text it reads.
//!
//! A response of 50 instances is some 4,000 elements, each read once, so the reader is the
//! largest cost of an inventory run. This one does what WS-Man needs and no more: elements,
//! attributes, text with the predefined entities and character references, CDATA, comments and
//! processing instructions skipped, namespaces resolved per element; a DTD is refused. Every
//! name and text is a slice of the input unless an entity or a carriage return has to be
//! rewritten. Well-formedness is checked as it reads: names, quoting, duplicate attributes,
//! matching end tags, declared prefixes. The differential tests below compare it with
//! quick-xml's reader on the recorded Windows pages and on generated documents.

use std::borrow::Cow;

use crate::swar::has_byte;

/// The namespace bound to the `xml` prefix by definition.
const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";

/// At most this many attributes per element.
const MAX_ATTRIBUTES: usize = 256;

/// A reader error: what was wrong and the byte offset where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct XmlError {
    pub offset: usize,
    pub message: String,
}

impl std::fmt::Display for XmlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

/// What the reader found next.
#[derive(Debug, PartialEq)]
pub(crate) enum Event<'a> {
    /// An element start; `<e/>` is reported as a start followed by an end.
    Start(Tag<'a>),
    End,
    /// Character data with references resolved and line ends normalized (XML 1.0 §2.11); the
    /// text between two tags may arrive in more than one piece.
    Text(Cow<'a, str>),
    Eof,
}

/// An element start.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tag<'a> {
    /// Index of the element's namespace binding (see [`Reader::namespace`]), `None` when it has
    /// no namespace.
    pub ns: Option<usize>,
    /// That binding's serial number, unique in the document (0 without a namespace): equal
    /// serials mean the same URI, so a caller can remember what it made of one.
    pub ns_serial: u64,
    pub local: &'a str,
    /// It has attributes besides namespace declarations (read them with
    /// [`Reader::attributes`]).
    pub has_attributes: bool,
}

/// An element holding nothing but text, read in one step: `<name>text</name>`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Simple<'a> {
    /// As [`Tag::ns`] and [`Tag::ns_serial`].
    pub ns: Option<usize>,
    pub ns_serial: u64,
    pub local: &'a str,
    pub text: Cow<'a, str>,
    /// The one attribute of an empty element (`<p:X xsi:nil="true"/>`): its namespace binding
    /// (resolve it before the next read), local name and value.
    pub attribute: Option<SimpleAttribute<'a>>,
}

/// One attribute, namespace resolved.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Attribute<'a> {
    pub ns: Option<&'a str>,
    pub local: &'a str,
    pub value: Cow<'a, str>,
}

/// A namespace binding in scope.
#[derive(Debug)]
struct Binding<'a> {
    prefix: &'a str,
    uri: Cow<'a, str>,
    /// Unique in the document, unlike the index, which a later binding reuses.
    serial: u64,
}

/// An open element: its qualified name (to match the end tag) and the bindings it added.
#[derive(Debug)]
struct Open<'a> {
    qname: &'a str,
    bindings_before: usize,
}

/// The pull reader.
pub(crate) struct Reader<'a> {
    text: &'a str,
    pos: usize,
    open: Vec<Open<'a>>,
    bindings: Vec<Binding<'a>>,
    /// The element just reported was `<e/>`: its end comes next.
    pending_end: bool,
    /// The element just ended: its bindings go when the next event is read, so the caller can
    /// still resolve with them.
    pending_pop: Option<usize>,
    /// Bindings made so far, for their serial numbers.
    serials: u64,
    /// Default namespace bindings (`xmlns="…"`) in scope: with none, an unprefixed element
    /// needs no lookup.
    defaults: usize,
    /// Changes whenever a binding comes or goes.
    generation: u64,
    /// The last prefix looked up for [`Reader::simple`], in which generation, and the answer.
    last_lookup: (&'a str, u64, Option<usize>),
    /// The attributes (namespace declarations left out) of the last tag read, as it checked
    /// them, for [`Reader::attributes`].
    attrs: Vec<RawAttribute<'a>>,
    /// The last start tag read that had attributes, as read.
    repeat: Repeat<'a>,
}

/// A start tag with attributes and what reading it found. The items of a response open with
/// the same tag (`<p:Win32_Service xmlns:xsi=… xmlns:p=… xmlns:cim=… xsi:type=…>`); a tag with
/// the same bytes reads the same, so it is compared rather than read again.
#[derive(Default)]
struct Repeat<'a> {
    /// From `<` to `>` inclusive (`/>` for an empty element); empty when there is none.
    tag: &'a str,
    name: Scanned<'a>,
    /// The namespace declarations, in order.
    binds: Vec<(&'a str, Cow<'a, str>)>,
    attrs: Vec<RawAttribute<'a>>,
}

fn err<T>(offset: usize, message: impl Into<String>) -> Result<T, XmlError> {
    Err(XmlError { offset, message: message.into() })
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Bytes that end a name, as a table: the reader looks every name byte up.
const ENDS_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let ends = b" \t\r\n>/=<\"'&?![]";
    let mut i = 0;
    while i < ends.len() {
        t[ends[i] as usize] = true;
        i += 1;
    }
    t
};

/// A scanned name: its text and where its one colon is, if it has one.
#[derive(Debug, Clone, Copy, Default)]
struct Scanned<'a> {
    name: &'a str,
    colon: Option<usize>,
}

impl<'a> Scanned<'a> {
    /// Checks it is a name as Namespaces in XML allow: not empty, not starting with `-`, `.`,
    /// a digit or a colon, and a colon only with text on both sides.
    #[inline(always)]
    fn check(&self, at: usize) -> Result<(), XmlError> {
        match self.name.as_bytes().first() {
            None => err(at, "a name is missing"),
            Some(b'-' | b'.' | b'0'..=b'9' | b':') => err(at, format!("{:?} is not a valid name", self.name)),
            Some(_) if self.colon.is_some_and(|c| c + 1 >= self.name.len()) => {
                err(at, format!("{:?} is not a valid qualified name", self.name))
            }
            Some(_) => Ok(()),
        }
    }

    /// (prefix, local name); the prefix is empty when there is none.
    #[inline(always)]
    fn split(&self) -> (&'a str, &'a str) {
        match self.colon {
            Some(c) => (self.name.get(..c).unwrap_or(""), self.name.get(c + 1..).unwrap_or("")),
            None => ("", self.name),
        }
    }
}

/// Resolves the references in `raw` and, for text (not attribute values), normalizes line
/// ends. Borrowed when there is nothing to rewrite.
fn unescape(raw: &str, at: usize, line_ends: bool) -> Result<Cow<'_, str>, XmlError> {
    let b = raw.as_bytes();
    let special = |r: &[u8]| {
        // Most text is a few bytes: a plain loop beats setting up a vector search.
        if r.len() <= SHORT {
            r.iter().position(|&c| c == b'&' || (line_ends && c == b'\r'))
        } else if line_ends {
            memchr::memchr2(b'&', b'\r', r)
        } else {
            memchr::memchr(b'&', r)
        }
    };
    let Some(first) = special(b) else {
        return Ok(Cow::Borrowed(raw));
    };
    let mut out = String::with_capacity(raw.len());
    out.push_str(raw.get(..first).unwrap_or(""));
    let mut i = first;
    while let Some(&c) = b.get(i) {
        if c == b'\r' && line_ends {
            out.push('\n');
            i += if b.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
        } else if c == b'&' {
            let Some(len) = b.get(i + 1..).and_then(|r| r.iter().take(40).position(|&c| c == b';')) else {
                return err(at + i, "an entity reference without its ';'");
            };
            let name = raw.get(i + 1..i + 1 + len).unwrap_or("");
            match name {
                "lt" => out.push('<'),
                "gt" => out.push('>'),
                "amp" => out.push('&'),
                "apos" => out.push('\''),
                "quot" => out.push('"'),
                _ => match name.strip_prefix('#') {
                    Some(num) => out.push(char_ref(num).ok_or_else(|| XmlError {
                        offset: at + i,
                        message: format!("bad character reference &{name};"),
                    })?),
                    None => return err(at + i, format!("undefined entity &{name};")),
                },
            }
            i += len + 2;
        } else {
            let next = b.get(i..).and_then(special).map_or(b.len(), |n| i + n);
            out.push_str(raw.get(i..next).unwrap_or(""));
            i = next;
        }
    }
    Ok(Cow::Owned(out))
}

/// Texts up to this long are searched byte by byte.
const SHORT: usize = 32;

/// The first `needle` in `hay`: a plain loop over the first bytes, where most texts end.
fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    match hay.iter().take(SHORT).position(|&c| c == needle) {
        Some(i) => Some(i),
        None if hay.len() <= SHORT => None,
        None => memchr::memchr(needle, hay.get(SHORT..)?).map(|i| i + SHORT),
    }
}

/// The first `<`, `&` or carriage return in `hay`: where a text ends or needs rewriting.
/// Eight bytes at a time (the classic zero-byte test on a word): texts are short, and a
/// vector search costs more to set up than it saves.
#[inline(always)]
fn find_markup(hay: &[u8]) -> Option<usize> {
    // Only the lowest flagged byte is read: it is exact.
    let mut i = 0;
    while let Some(chunk) = hay.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let m = has_byte(w, b'<') | has_byte(w, b'&') | has_byte(w, b'\r');
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    hay.get(i..)?.iter().position(|&c| matches!(c, b'<' | b'&' | b'\r')).map(|p| i + p)
}

/// The text from `start` to the next `<` (or the end), rewritten only if it holds a reference
/// or a carriage return; with the offset where it ends.
#[inline(always)]
fn text_at(text: &str, start: usize) -> Result<(Cow<'_, str>, usize), XmlError> {
    let b = text.as_bytes();
    let rest = b.get(start..).unwrap_or(&[]);
    let end = match find_markup(rest) {
        None => b.len(),
        Some(n) if rest.get(n) == Some(&b'<') => {
            return Ok((Cow::Borrowed(text.get(start..start + n).unwrap_or("")), start + n));
        }
        Some(n) => rest.get(n..).and_then(|r| find_byte(b'<', r)).map_or(b.len(), |m| start + n + m),
    };
    Ok((unescape(text.get(start..end).unwrap_or(""), start, true)?, end))
}

/// A character reference's number (`65`, `x41`): a Unicode scalar value other than NUL.
fn char_ref(num: &str) -> Option<char> {
    let (digits, radix) = match num.strip_prefix('x') {
        Some(h) => (h, 16),
        None => (num, 10),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let code = u32::from_str_radix(digits, radix).ok()?;
    char::from_u32(code).filter(|&c| c != '\0')
}

impl<'a> Reader<'a> {
    pub(crate) fn new(text: &'a str) -> Reader<'a> {
        Reader {
            text,
            pos: 0,
            open: Vec::new(),
            bindings: Vec::new(),
            pending_end: false,
            pending_pop: None,
            serials: 0,
            defaults: 0,
            generation: 0,
            last_lookup: ("", u64::MAX, None),
            attrs: Vec::new(),
            repeat: Repeat::default(),
        }
    }

    /// The URI of a namespace binding an event reported, valid until the next event is read.
    pub(crate) fn namespace(&self, binding: usize) -> &str {
        self.bindings.get(binding).map_or("", |b| &b.uri)
    }

    /// The attributes of the tag just read (namespace declarations left out), resolved in its
    /// scope. Only valid before the next event is read.
    pub(crate) fn attributes<'r>(&'r self) -> impl Iterator<Item = Result<Attribute<'r>, XmlError>> + 'r
    where
        'a: 'r,
    {
        self.attrs.iter().map(move |&RawAttribute { name, raw, value_at, .. }| {
            let (prefix, local) = name.split();
            let ns = match prefix {
                "" => None,
                "xml" => Some(NS_XML),
                p => match self.lookup(p) {
                    Some(i) => Some(self.namespace(i)),
                    None => return err(value_at, format!("undeclared namespace prefix {p}")),
                },
            };
            unescape(raw, value_at, false).map(|value| Attribute { ns, local, value })
        })
    }

    fn lookup(&self, prefix: &str) -> Option<usize> {
        self.bindings.iter().rposition(|b| b.prefix == prefix)
    }

    /// [`Reader::lookup`] for an element read whole, remembering the last answer: the
    /// properties of an item all carry the item's prefix.
    #[inline(always)]
    fn lookup_cached(&mut self, prefix: &'a str) -> Option<usize> {
        match self.last_lookup {
            (p, generation, found) if generation == self.generation && p == prefix => found,
            _ => {
                let found = self.lookup(prefix);
                self.last_lookup = (prefix, self.generation, found);
                found
            }
        }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn rest_starts_with(&self, s: &str) -> bool {
        self.bytes().get(self.pos..).is_some_and(|r| r.starts_with(s.as_bytes()))
    }

    /// Finds `needle` at or after `from`; the offset of its first byte.
    fn find(&self, from: usize, needle: &str) -> Option<usize> {
        let hay = self.bytes().get(from..)?;
        let n = needle.as_bytes();
        let first = *n.first()?;
        let mut i = 0;
        while let Some(p) = hay.get(i..).and_then(|h| memchr::memchr(first, h)) {
            if hay.get(i + p..).is_some_and(|h| h.starts_with(n)) {
                return Some(from + i + p);
            }
            i += p + 1;
        }
        None
    }

    fn pop_bindings(&mut self) {
        if let Some(n) = self.pending_pop.take().filter(|&n| self.bindings.len() > n) {
            let gone = self.bindings.get(n..).map_or(0, |b| b.iter().filter(|b| b.prefix.is_empty()).count());
            self.defaults -= gone.min(self.defaults);
            self.bindings.truncate(n);
            self.generation += 1;
        }
    }

    /// Reads `<name>text</name>` whole if that is exactly what comes next: no attributes, no
    /// child, comment or CDATA inside, the end tag right after the text. Otherwise reads
    /// nothing and returns `None`, and [`Reader::next`] reads it event by event. Most
    /// properties of an instance have this shape, and reading them whole is several times
    /// cheaper than as three events.
    #[inline(always)]
    pub(crate) fn simple(&mut self) -> Result<Option<Simple<'a>>, XmlError> {
        self.pop_bindings();
        if self.pending_end || self.open.is_empty() {
            return Ok(None);
        }
        let b = self.bytes();
        let start = self.pos;
        if b.get(start) != Some(&b'<') || matches!(b.get(start + 1), None | Some(b'/' | b'!' | b'?')) {
            return Ok(None);
        }
        let (scanned, after) = self.name_at(start + 1)?;
        let qname = scanned.name;
        let (text, attribute, end) = match b.get(after) {
            Some(b'>') => {
                let (text, close) = text_at(self.text, after + 1)?;
                let end = close + 2 + qname.len();
                if b.get(close + 1) != Some(&b'/')
                    || b.get(close + 2..end) != Some(qname.as_bytes())
                    || b.get(end) != Some(&b'>')
                {
                    return Ok(None);
                }
                scanned.check(start + 1)?;
                (text, None, end)
            }
            Some(b'/') if b.get(after + 1) == Some(&b'>') => {
                scanned.check(start + 1)?;
                (Cow::Borrowed(""), None, after + 1)
            }
            Some(b' ') => {
                let Some((attribute, end)) = self.one_attribute(after + 1) else {
                    return Ok(None);
                };
                scanned.check(start + 1)?;
                (Cow::Borrowed(""), Some(attribute), end)
            }
            _ => return Ok(None),
        };
        let (prefix, local) = scanned.split();
        if matches!(prefix, "xml" | "xmlns") {
            return Ok(None);
        }
        let ns = self.element_namespace(prefix, start)?;
        self.pos = end + 1;
        let ns_serial = ns.and_then(|i| self.bindings.get(i)).map_or(0, |b| b.serial);
        Ok(Some(Simple { ns, ns_serial, local, text, attribute }))
    }

    /// The binding of an element's prefix (the default namespace for none), `None` when it has
    /// no namespace; an undeclared prefix is an error. The reserved prefixes are the caller's.
    #[inline(always)]
    fn element_namespace(&mut self, prefix: &'a str, at: usize) -> Result<Option<usize>, XmlError> {
        Ok(match prefix {
            "" if self.defaults == 0 => None,
            "" => self.lookup("").filter(|&i| !self.namespace(i).is_empty()),
            p => match self.lookup_cached(p) {
                Some(i) => Some(i),
                None => return err(at, format!("undeclared namespace prefix {p}")),
            },
        })
    }

    /// `name="value"/>` from `at`: one attribute, not a namespace declaration, closing an
    /// empty element. The attribute and the offset of the final `>`; `None` for anything else,
    /// errors included, which [`Reader::next`] then reports.
    fn one_attribute(&self, at: usize) -> Option<(SimpleAttribute<'a>, usize)> {
        let a = self.attribute_at(at).ok()?;
        let end = self.skip_space(a.end);
        if self.bytes().get(end..end + 2) != Some(b"/>".as_slice()) || a.name.name.starts_with("xmlns") {
            return None;
        }
        let (prefix, local) = a.name.split();
        let ns = match prefix {
            "" => None,
            "xml" | "xmlns" => return None,
            p => Some(self.lookup(p)?),
        };
        Some(((ns, local, unescape(a.raw, a.value_at, false).ok()?), end + 1))
    }

    /// The attribute starting at `at`: `name = "value"`, checked (name, quoting, no `<` in the
    /// value) but not unescaped.
    fn attribute_at(&self, at: usize) -> Result<RawAttribute<'a>, XmlError> {
        let b = self.bytes();
        let (name, after) = self.name_at(at)?;
        name.check(at)?;
        let n = name.name;
        let eq = self.skip_space(after);
        if b.get(eq) != Some(&b'=') {
            return err(eq, format!("attribute {n} has no value"));
        }
        let q = self.skip_space(eq + 1);
        let quote = match b.get(q) {
            Some(&c @ (b'"' | b'\'')) => c,
            _ => return err(q, format!("the value of attribute {n} is not quoted")),
        };
        // Attribute values are mostly namespace URIs, too long for a byte-by-byte search.
        let Some(len) = b.get(q + 1..).and_then(|r| memchr::memchr(quote, r)) else {
            return err(q, format!("the value of attribute {n} is not closed"));
        };
        let raw = self.text.get(q + 1..q + 1 + len).unwrap_or("");
        if raw.contains('<') {
            return err(q, format!("'<' in the value of attribute {n}"));
        }
        Ok(RawAttribute { name, raw, value_at: q + 1, end: q + 2 + len })
    }

    /// Reads the next event.
    pub(crate) fn next(&mut self) -> Result<Event<'a>, XmlError> {
        self.pop_bindings();
        if self.pending_end {
            self.pending_end = false;
            return Ok(self.close());
        }
        let b = self.bytes();
        loop {
            let Some(&c) = b.get(self.pos) else {
                return match self.open.last() {
                    Some(o) => err(self.pos, format!("the document ends inside <{}>", o.qname)),
                    None => Ok(Event::Eof),
                };
            };
            if c != b'<' {
                let (text, end) = text_at(self.text, self.pos)?;
                self.pos = end;
                return Ok(Event::Text(text));
            }
            match b.get(self.pos + 1) {
                Some(b'/') => return self.end_tag(),
                Some(b'!') => {
                    if self.rest_starts_with("<!--") {
                        let Some(end) = self.find(self.pos + 4, "-->") else {
                            return err(self.pos, "a comment is not closed");
                        };
                        self.pos = end + 3;
                    } else if self.rest_starts_with("<![CDATA[") {
                        let start = self.pos + 9;
                        let Some(end) = self.find(start, "]]>") else {
                            return err(self.pos, "a CDATA section is not closed");
                        };
                        self.pos = end + 3;
                        if self.open.is_empty() {
                            return err(start, "CDATA outside the root element");
                        }
                        let raw = self.text.get(start..end).unwrap_or("");
                        return Ok(Event::Text(unescape_cdata(raw)));
                    } else if self.rest_starts_with("<!DOCTYPE") {
                        return err(self.pos, "DTDs are not accepted");
                    } else {
                        return err(self.pos, "malformed markup after '<!'");
                    }
                }
                Some(b'?') => {
                    let Some(end) = self.find(self.pos + 2, "?>") else {
                        return err(self.pos, "a processing instruction is not closed");
                    };
                    self.pos = end + 2;
                }
                _ => return self.start_tag(),
            }
        }
    }

    /// Pops the innermost element; its bindings stay until the next event.
    fn close(&mut self) -> Event<'a> {
        if let Some(o) = self.open.pop() {
            self.pending_pop = Some(o.bindings_before);
        }
        Event::End
    }

    /// A name starting at `at` and the offset after it; a second colon is an error.
    #[inline(always)]
    fn name_at(&self, at: usize) -> Result<(Scanned<'a>, usize), XmlError> {
        let rest = self.bytes().get(at..).unwrap_or(&[]);
        let mut len = rest.len();
        let mut colon = None;
        for (i, &c) in rest.iter().enumerate() {
            if ENDS_NAME[c as usize] {
                len = i;
                break;
            }
            if c == b':' {
                if colon.is_some() {
                    return err(at + i, "a name with two colons");
                }
                colon = Some(i);
            }
        }
        Ok((Scanned { name: self.text.get(at..at + len).unwrap_or(""), colon }, at + len))
    }

    fn skip_space(&self, mut at: usize) -> usize {
        while self.bytes().get(at).is_some_and(|&c| is_space(c)) {
            at += 1;
        }
        at
    }

    fn bind(&mut self, prefix: &'a str, uri: Cow<'a, str>) {
        self.serials += 1;
        self.generation += 1;
        if prefix.is_empty() {
            self.defaults += 1;
        }
        self.bindings.push(Binding { prefix, uri, serial: self.serials });
    }

    fn end_tag(&mut self) -> Result<Event<'a>, XmlError> {
        let start = self.pos;
        // Nearly always the end tag is exactly `</` + the open element's name + `>`.
        if let Some(o) = self.open.last() {
            let after = start + 2 + o.qname.len();
            let b = self.bytes();
            if b.get(start + 2..after) == Some(o.qname.as_bytes()) && b.get(after) == Some(&b'>') {
                self.pos = after + 1;
                return Ok(self.close());
            }
        }
        let (name, after) = self.name_at(start + 2)?;
        let name = name.name;
        let after = self.skip_space(after);
        if self.bytes().get(after) != Some(&b'>') {
            return err(after, format!("malformed end tag </{name}"));
        }
        match self.open.last() {
            Some(o) if o.qname == name => {}
            Some(o) => return err(start, format!("end tag </{name}> does not match <{}>", o.qname)),
            None => return err(start, format!("end tag </{name}> without a start")),
        }
        self.pos = after + 1;
        Ok(self.close())
    }

    fn start_tag(&mut self) -> Result<Event<'a>, XmlError> {
        let start = self.pos;
        let repeat = &self.repeat.tag;
        if !repeat.is_empty() && self.bytes().get(start..start + repeat.len()) == Some(repeat.as_bytes()) {
            return self.repeated_tag(start);
        }
        let (scanned, mut at) = self.name_at(start + 1)?;
        scanned.check(start + 1)?;
        let qname = scanned.name;
        let bindings_before = self.bindings.len();
        self.attrs.clear();
        let mut count = 0usize;
        // The names seen so far, for the duplicate check.
        let mut seen: [&str; 8] = [""; 8];
        let mut many: Option<std::collections::HashSet<&str>> = None;
        let b = self.bytes();
        let empty = loop {
            let spaced = self.skip_space(at);
            match b.get(spaced) {
                Some(b'>') => {
                    at = spaced + 1;
                    break false;
                }
                Some(b'/') if b.get(spaced + 1) == Some(&b'>') => {
                    at = spaced + 2;
                    break true;
                }
                None => return err(start, format!("the document ends inside the tag <{qname}")),
                Some(_) if spaced == at => return err(at, format!("malformed tag <{qname}")),
                Some(_) => {}
            }
            let attribute = self.attribute_at(spaced)?;
            let RawAttribute { name, raw, value_at, end } = attribute;
            let name = name.name;
            if count >= MAX_ATTRIBUTES {
                return err(spaced, format!("more than {MAX_ATTRIBUTES} attributes on <{qname}>"));
            }
            let twice = match many.as_mut() {
                Some(set) => !set.insert(name),
                None => seen.iter().take(count).any(|&n| n == name),
            };
            if twice {
                return err(spaced, format!("attribute {name} given twice"));
            }
            match seen.get_mut(count) {
                Some(slot) => *slot = name,
                // Past the few an element usually has, a set keeps the check linear.
                None if many.is_none() => many = Some(seen.iter().copied().chain([name]).collect()),
                None => {}
            }
            count += 1;
            if name == "xmlns" {
                let uri = unescape(raw, value_at, false)?;
                self.bind("", uri);
            } else if let Some(prefix) = name.strip_prefix("xmlns:") {
                let uri = unescape(raw, value_at, false)?;
                if uri.is_empty() || prefix == "xmlns" {
                    return err(spaced, format!("{name} cannot be bound to {uri:?}"));
                }
                self.bind(prefix, uri);
            } else {
                unescape(raw, value_at, false)?;
                self.attrs.push(attribute);
            }
            at = end;
        };
        let (prefix, local) = scanned.split();
        let ns = match prefix {
            "xmlns" => return err(start, format!("<{qname}> uses the reserved prefix xmlns")),
            "xml" if self.lookup("xml").is_none() => {
                self.bind("xml", Cow::Borrowed(NS_XML));
                Some(self.bindings.len() - 1)
            }
            p => self.element_namespace(p, start)?,
        };
        if count > 0 && prefix != "xml" {
            let r = &mut self.repeat;
            r.tag = self.text.get(start..at).unwrap_or("");
            r.name = scanned;
            r.binds.clear();
            r.binds.extend(self.bindings.iter().skip(bindings_before).map(|b| (b.prefix, b.uri.clone())));
            r.attrs.clear();
            r.attrs.extend_from_slice(&self.attrs);
        }
        Ok(self.opened(Open { qname, bindings_before }, at, empty, ns, local))
    }

    /// Enters the element whose start tag ends before `end`: the event for it.
    fn opened(&mut self, open: Open<'a>, end: usize, empty: bool, ns: Option<usize>, local: &'a str) -> Event<'a> {
        self.open.push(open);
        self.pos = end;
        self.pending_end = empty;
        let ns_serial = ns.and_then(|i| self.bindings.get(i)).map_or(0, |b| b.serial);
        Event::Start(Tag { ns, ns_serial, local, has_attributes: !self.attrs.is_empty() })
    }

    /// [`Reader::start_tag`] for a tag byte for byte the same as [`Reader::repeat`]'s: the same
    /// declarations and attributes, already checked. Only the element's own prefix is looked up
    /// again, as it may be declared outside the tag.
    fn repeated_tag(&mut self, start: usize) -> Result<Event<'a>, XmlError> {
        let r = std::mem::take(&mut self.repeat);
        let bindings_before = self.bindings.len();
        for (prefix, uri) in &r.binds {
            self.bind(prefix, uri.clone());
        }
        self.attrs.clear();
        self.attrs.extend_from_slice(&r.attrs);
        let (prefix, local) = r.name.split();
        let ns = match self.element_namespace(prefix, start) {
            Ok(ns) => ns,
            Err(e) => {
                self.repeat = r;
                return Err(e);
            }
        };
        let open = Open { qname: r.name.name, bindings_before };
        let event = self.opened(open, start + r.tag.len(), r.tag.ends_with("/>"), ns, local);
        self.repeat = r;
        Ok(event)
    }
}

/// CDATA is taken literally but for line ends.
fn unescape_cdata(raw: &str) -> Cow<'_, str> {
    if raw.contains('\r') { Cow::Owned(raw.replace("\r\n", "\n").replace('\r', "\n")) } else { Cow::Borrowed(raw) }
}

/// An attribute as [`Reader::attribute_at`] finds it.
#[derive(Debug, Clone, Copy)]
struct RawAttribute<'a> {
    name: Scanned<'a>,
    /// The value between the quotes, not unescaped, and its offset.
    raw: &'a str,
    value_at: usize,
    /// The offset after the closing quote.
    end: usize,
}

/// The one attribute of an element read whole: namespace binding, local name, value.
type SimpleAttribute<'a> = (Option<usize>, &'a str, Cow<'a, str>);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The events of a document rendered with resolved namespaces, for comparing two readers.
    fn ours(doc: &str) -> Result<Vec<String>, XmlError> {
        let event_by_event = render(doc, false);
        // Reading text-only elements whole must make no difference.
        assert_eq!(event_by_event, render(doc, true), "{doc}");
        event_by_event
    }

    fn render(doc: &str, whole: bool) -> Result<Vec<String>, XmlError> {
        let mut r = Reader::new(doc);
        let mut out = Vec::new();
        let mut text = String::new();
        loop {
            if whole && let Some(el) = r.simple()? {
                if !text.is_empty() {
                    out.push(format!("T {}", std::mem::take(&mut text)));
                }
                let ns = el.ns.map(|i| r.namespace(i).to_string()).unwrap_or_default();
                let attr = match &el.attribute {
                    Some((ans, local, value)) => {
                        format!("{}|{local}={value}", ans.map(|i| r.namespace(i)).unwrap_or(""))
                    }
                    None => String::new(),
                };
                out.push(format!("S {ns}|{} {attr}", el.local));
                if !el.text.is_empty() {
                    out.push(format!("T {}", el.text));
                }
                out.push("E".into());
                continue;
            }
            let ev = r.next()?;
            if let Event::Text(t) = &ev {
                text.push_str(t);
                continue;
            }
            if !text.is_empty() {
                out.push(format!("T {}", std::mem::take(&mut text)));
            }
            match ev {
                Event::Start(tag) => {
                    let ns = tag.ns.map(|i| r.namespace(i).to_string()).unwrap_or_default();
                    let mut attrs: Vec<String> = r
                        .attributes()
                        .map(|a| a.map(|a| format!("{}|{}={}", a.ns.unwrap_or(""), a.local, a.value)))
                        .collect::<Result<_, _>>()?;
                    attrs.sort();
                    out.push(format!("S {ns}|{} {}", tag.local, attrs.join(" ")));
                }
                Event::End => out.push("E".into()),
                Event::Eof => return Ok(out),
                Event::Text(_) => {}
            }
        }
    }

    /// The same rendering through quick-xml's namespace-aware reader.
    fn reference(doc: &str) -> Result<Vec<String>, String> {
        use quick_xml::events::Event as Q;
        use quick_xml::name::ResolveResult;
        let mut r = quick_xml::NsReader::from_str(doc);
        r.config_mut().check_end_names = true;
        let mut out = Vec::new();
        let mut text = String::new();
        loop {
            let (ns, ev) = r.read_resolved_event().map_err(|e| e.to_string())?;
            let ns = match ns {
                ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
                ResolveResult::Unbound => String::new(),
                ResolveResult::Unknown(p) => return Err(format!("unknown prefix {p:?}")),
            };
            let eol = |t: &str| t.replace("\r\n", "\n").replace('\r', "\n");
            match &ev {
                Q::Text(t) => {
                    text.push_str(&eol(&t.decode().map_err(|e| e.to_string())?));
                    continue;
                }
                Q::CData(t) => {
                    text.push_str(&eol(&t.decode().map_err(|e| e.to_string())?));
                    continue;
                }
                Q::GeneralRef(g) => {
                    match g.resolve_char_ref().map_err(|e| e.to_string())? {
                        Some(c) => text.push(c),
                        None => {
                            let name = g.decode().map_err(|e| e.to_string())?;
                            text.push_str(quick_xml::escape::resolve_predefined_entity(&name).ok_or("entity")?);
                        }
                    }
                    continue;
                }
                Q::Comment(_) | Q::Decl(_) | Q::PI(_) => continue,
                Q::DocType(_) => return Err("a DTD".into()),
                _ => {}
            }
            if !text.is_empty() {
                out.push(format!("T {}", std::mem::take(&mut text)));
            }
            let empty = matches!(ev, Q::Empty(_));
            match ev {
                Q::Start(e) | Q::Empty(e) => {
                    let mut attrs = Vec::new();
                    for a in e.attributes() {
                        let a = a.map_err(|e| e.to_string())?;
                        if a.key.as_namespace_binding().is_some() {
                            continue;
                        }
                        let (ans, local) = r.resolve_attribute(a.key);
                        let ans = match ans {
                            ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
                            ResolveResult::Unbound => String::new(),
                            ResolveResult::Unknown(p) => return Err(format!("unknown prefix {p:?}")),
                        };
                        let v = a.unescape_value().map_err(|e| e.to_string())?;
                        attrs.push(format!("{ans}|{}={v}", String::from_utf8_lossy(local.as_ref())));
                    }
                    attrs.sort();
                    out.push(format!(
                        "S {ns}|{} {}",
                        String::from_utf8_lossy(e.local_name().as_ref()),
                        attrs.join(" ")
                    ));
                    if empty {
                        out.push("E".into());
                    }
                }
                Q::End(_) => out.push("E".into()),
                Q::Eof => return Ok(out),
                _ => {}
            }
        }
    }

    fn recorded_pages() -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from("../shared/testdata/wsman")];
        while let Some(d) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else { continue };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "xml")
                    && let Ok(text) = std::fs::read_to_string(&p)
                {
                    out.push((p.display().to_string(), text));
                }
            }
        }
        out
    }

    #[test]
    fn recorded_windows_pages_read_as_quick_xml_reads_them() {
        let pages = recorded_pages();
        assert!(pages.len() > 100, "the recorded pages are missing: {}", pages.len());
        for (path, text) in pages {
            let want = reference(&text);
            let got = ours(&text);
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{path}"),
                (g, w) => panic!("{path}: ours {:?} vs quick-xml {:?}", g.err(), w.err()),
            }
        }
    }

    #[test]
    fn entities_line_ends_cdata_comments_and_scopes() {
        let doc = "<?xml version=\"1.0\"?><!-- c --><a:r xmlns:a=\"urn:a\" xmlns=\"urn:d\" x=\"1&amp;2\">t&lt;&#65;&#x42;\r\nu\rv&#13;<b a:k='v' k=\"&quot;\"/><![CDATA[<x>\r\n]]><?pi x?><c xmlns=\"\"><a:d xmlns:a=\"urn:other\"/></c><e/></a:r>";
        let got = ours(doc).unwrap();
        assert_eq!(got, reference(doc).unwrap());
        assert_eq!(
            got,
            [
                "S urn:a|r |x=1&2",
                "T t<AB\nu\nv\r",
                "S urn:d|b urn:a|k=v |k=\"",
                "E",
                "T <x>\n",
                "S |c ",
                "S urn:other|d ",
                "E",
                "E",
                "S urn:d|e ",
                "E",
                "E"
            ]
        );
    }

    #[test]
    fn repeated_start_tags_read_as_the_first_in_their_own_scope() {
        // The same bytes again, in the same and in other scopes: the attribute prefix q and the
        // element prefix p mean what the scope around each copy says.
        let item = r#"<p:i xmlns:c="urn:c" c:k="1" q:t="x&amp;y"><p:n>a</p:n></p:i>"#;
        let doc = format!(
            r#"<r xmlns:q="urn:q1" xmlns:p="urn:p1">{item}{item}<s xmlns:q="urn:q2" xmlns:p="urn:p2">{item}<p:e q:t="x"/><p:e q:t="x"/></s>{item}</r>"#
        );
        assert_eq!(ours(&doc).map_err(|e| e.to_string()), reference(&doc));
        // A copy outside the scope of its prefix is refused as the first would be.
        let bad = r#"<r><a xmlns:x="urn:x"><x:e k="1" j="2"/></a><x:e k="1" j="2"/></r>"#;
        let e = ours(bad).unwrap_err();
        assert!(e.message.contains("undeclared namespace prefix x"), "{e}");
        assert_eq!(e.offset, bad.rfind("<x:e").unwrap());
    }

    #[test]
    fn empty_elements_read_whole_have_their_names_checked() {
        // `<p:/>` read whole used to pass as an element with an empty local name, while read
        // event by event it was refused (`ours` reads both ways and requires the same answer).
        for doc in [r#"<r xmlns:p="urn:p"><p:/></r>"#, r#"<r><1a/></r>"#, r#"<r><-a x="1"/></r>"#] {
            assert!(ours(doc).is_err(), "{doc}");
        }
        let doc = r#"<r xmlns:p="urn:p"><i><p:N>1</p:N><p:NX>2</p:NX><p:E/></i><i><p:NX>3</p:NX><p:N>4</p:N><p:E x="1"/></i></r>"#;
        assert_eq!(ours(doc).map_err(|e| e.to_string()), reference(doc));
    }

    #[test]
    fn many_attributes_are_checked_for_duplicates() {
        let attrs: String = (0..200).map(|i| format!(" a{i}=\"{i}\"")).collect();
        let doc = format!("<r{attrs}/>");
        assert_eq!(ours(&doc).unwrap().len(), 2);
        for dup in [3, 8, 150] {
            let bad = format!("<r{attrs} a{dup}=\"x\"/>");
            assert!(ours(&bad).unwrap_err().message.contains("given twice"), "a{dup}");
        }
        let too_many: String = (0..300).map(|i| format!(" a{i}=\"{i}\"")).collect();
        assert!(ours(&format!("<r{too_many}/>")).unwrap_err().message.contains("more than 256"));
        let widest: String = (0..256).map(|i| format!(" a{i}=\"{i}\"")).collect();
        assert!(ours(&format!("<r{widest}/>")).is_ok());
    }

    #[test]
    fn malformed_documents_are_refused() {
        for bad in [
            "<a><b></a>",
            "<a>",
            "<a",
            "</a>",
            "<a b>",
            "<a b=c/>",
            "<a b=\"1\" b=\"2\"/>",
            "<a b=\"1\"c=\"2\"/>",
            "<a b=\"<\"/>",
            "<a b=\"1/>",
            "<p:a/>",
            "<a p:b=\"1\"/>",
            "<a>&foo;</a>",
            "<a>&#0;</a>",
            "<a>&#xD800;</a>",
            "<a>&#-1;</a>",
            "<a>&amp</a>",
            "<!DOCTYPE a><a/>",
            "<1a/>",
            "<a:b:c xmlns:a=\"u\"/>",
            "<:a/>",
            "<a xmlns:p=\"\"/>",
            "<a><!-- x </a>",
            "<a><![CDATA[ x </a>",
            "<a><? x </a>",
            "<xmlns:a/>",
        ] {
            assert!(ours(bad).is_err(), "accepted {bad:?}");
        }
        // Each is refused by quick-xml too, unless it is lenient there.
        for bad in ["<a><b></a>", "<a>&foo;</a>", "<p:a/>", "<a b=\"1\" b=\"2\"/>", "<!DOCTYPE a><a/>"] {
            assert!(reference(bad).is_err(), "quick-xml accepted {bad:?}");
        }
    }

    /// Documents built from a small vocabulary of names, prefixes, text and markup.
    fn document() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            "[a-zA-Z0-9 <>&\"'\r\n\u{e9}\u{20ac}]{0,12}".prop_map(|t| t.replace('&', "&amp;").replace('<', "&lt;")),
            Just("&#65;&#x1F600;&gt;".to_string()),
            Just("<![CDATA[a<b>&c\r\n]]>".to_string()),
            Just("<!-- note -->".to_string()),
            Just("<?pi data?>".to_string()),
        ];
        let name = prop_oneof![Just("a"), Just("B"), Just("p:a"), Just("q:x"), Just("Win32_Service"), Just("w:Items")];
        let attr = prop_oneof![
            Just(""),
            Just(" k=\"v\""),
            Just(" p:k='v&amp;w'"),
            Just(" xmlns:p=\"urn:p2\""),
            Just(" xmlns=\"urn:default\""),
            Just(" xmlns=\"\""),
            Just(" xsi:nil=\"true\""),
        ];
        leaf.prop_recursive(4, 64, 6, move |inner| {
            (name.clone(), attr.clone(), proptest::collection::vec(inner, 0..6), any::<bool>()).prop_map(
                |(n, a, kids, empty)| {
                    if empty && kids.is_empty() {
                        format!("<{n}{a}/>")
                    } else {
                        format!("<{n}{a}>{}</{n}>", kids.concat())
                    }
                },
            )
        })
        .prop_map(|body| {
            format!(
                "<r xmlns:p=\"urn:p\" xmlns:q=\"urn:q\" xmlns:w=\"urn:w\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">{body}</r>"
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn names_scanned_by_words_end_where_a_byte_by_byte_scan_ends(name in "[a-zA-Z_:0-9\\-.\\[\u{e9}]{0,30}[ >/=\\]]?[a-z]{0,3}") {
            let r = Reader::new(&name);
            let naive = {
                let b = name.as_bytes();
                let end = b.iter().position(|&c| ENDS_NAME[c as usize]).unwrap_or(b.len());
                let colons: Vec<usize> = b.iter().take(end).enumerate().filter(|(_, c)| **c == b':').map(|(i, _)| i).collect();
                if colons.len() > 1 { None } else { Some((end, colons.first().copied())) }
            };
            let got = r.name_at(0).ok().map(|(s, end)| (end, s.colon));
            prop_assert_eq!(got, naive);
        }

        #[test]
        fn word_search_finds_the_first_markup_byte(hay in proptest::collection::vec(prop_oneof![
            Just(b'<'), Just(b'&'), Just(b'\r'), Just(b'a'), Just(0x3b_u8), Just(0x3d_u8), Just(0xbc_u8), Just(0x80_u8), Just(0u8)
        ], 0..40)) {
            let naive = hay.iter().position(|&c| matches!(c, b'<' | b'&' | b'\r'));
            prop_assert_eq!(find_markup(&hay), naive);
        }

        #[test]
        fn generated_documents_read_as_quick_xml_reads_them(doc in document()) {
            prop_assert_eq!(ours(&doc).map_err(|e| e.to_string()), reference(&doc));
        }

        /// Corrupted recorded text: whatever both readers accept, they read alike, and ours
        /// never panics.
        #[test]
        fn corrupted_pages_read_alike_when_both_accept(at in 0usize..4000, len in 1usize..4, byte in prop_oneof![
            Just(b'<'), Just(b'>'), Just(b'/'), Just(b'&'), Just(b':'), Just(b'"'), Just(b'='), Just(b' '), Just(b'x')
        ]) {
            let page = "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:w=\"urn:w\"><s:Body><w:Items><p:Win32_Service xmlns:p=\"urn:p\" xmlns:xsi=\"urn:xsi\"><p:Name>A&amp;B</p:Name><p:Caption xsi:nil=\"true\"/><p:Desc>line\r\nnext</p:Desc></p:Win32_Service></w:Items></s:Body></s:Envelope>";
            let mut bytes = page.as_bytes().to_vec();
            let at = at % bytes.len();
            for b in bytes.iter_mut().skip(at).take(len) {
                *b = byte;
            }
            let doc = String::from_utf8(bytes).unwrap();
            if let (Ok(a), Ok(b)) = (ours(&doc), reference(&doc)) {
                prop_assert_eq!(a, b);
            }
        }
    }
}
