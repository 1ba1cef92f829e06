//! A small MS-WMIO writer for tests: builds classes and instances with every CIM type, so the
//! decoder is exercised on what the recorded vectors lack (datetimes, references, embedded
//! objects, arrays of every kind, both string encodings, method parts, instance qualifiers).
//!
//! It writes what MS-WMIO section 2.2 describes, independently of the decoder's code.

#![allow(dead_code)]

/// CIM type codes (MS-WMIO 2.2.32 `CimType`).
pub mod code {
    pub const SINT16: u32 = 2;
    pub const SINT32: u32 = 3;
    pub const REAL32: u32 = 4;
    pub const REAL64: u32 = 5;
    pub const STRING: u32 = 8;
    pub const BOOLEAN: u32 = 11;
    pub const OBJECT: u32 = 13;
    pub const SINT8: u32 = 16;
    pub const UINT8: u32 = 17;
    pub const UINT16: u32 = 18;
    pub const UINT32: u32 = 19;
    pub const SINT64: u32 = 20;
    pub const UINT64: u32 = 21;
    pub const DATETIME: u32 = 101;
    pub const REFERENCE: u32 = 102;
    pub const CHAR16: u32 = 103;
    pub const ARRAY: u32 = 0x2000;
}

/// A value as the writer lays it out.
#[derive(Clone, Debug)]
pub enum W {
    /// A number, stored in the value table as these little-endian bytes.
    Inline(Vec<u8>),
    /// A string (also datetime and reference) in the heap.
    Str(String),
    /// An array of fixed-size elements: count, then the elements' bytes.
    Numbers(u32, Vec<u8>),
    Strings(Vec<String>),
    /// An embedded object: its ObjectBlock bytes.
    Object(Vec<u8>),
    Objects(Vec<Vec<u8>>),
}

/// One property: name, type code (with the array flag), qualifiers, and its class-level value
/// with the NdTable bits (bit 0 NULL, bit 1 inherited default).
#[derive(Clone, Debug)]
pub struct Prop {
    pub name: &'static str,
    pub code: u32,
    pub key: bool,
    pub default: Option<W>,
}

impl Prop {
    pub fn new(name: &'static str, code: u32) -> Prop {
        Prop { name, code, key: false, default: None }
    }

    pub fn key(mut self) -> Prop {
        self.key = true;
        self
    }

    pub fn default(mut self, w: W) -> Prop {
        self.default = Some(w);
        self
    }
}

fn le32(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}

/// A heap being written; offsets are what HeapRefs hold.
#[derive(Default)]
pub struct Heap {
    pub bytes: Vec<u8>,
}

impl Heap {
    /// An EncodedString: compressed when every character fits a byte, UTF-16 otherwise.
    pub fn string(&mut self, s: &str) -> u32 {
        let at = self.bytes.len() as u32;
        if s.chars().all(|c| (c as u32) < 0x100) {
            self.bytes.push(0);
            self.bytes.extend(s.chars().map(|c| c as u8));
            self.bytes.push(0);
        } else {
            self.bytes.push(1);
            for u in s.encode_utf16().chain([0]) {
                self.bytes.extend(u.to_le_bytes());
            }
        }
        at
    }

    fn raw(&mut self, b: &[u8]) -> u32 {
        let at = self.bytes.len() as u32;
        self.bytes.extend(b);
        at
    }

    /// The value-table bytes of a value, putting what it refers to in the heap.
    pub fn value(&mut self, w: &W) -> Vec<u8> {
        match w {
            W::Inline(b) => b.clone(),
            W::Str(s) => le32(self.string(s)).to_vec(),
            W::Numbers(n, b) => {
                let mut block = le32(*n).to_vec();
                block.extend(b);
                le32(self.raw(&block)).to_vec()
            }
            W::Strings(items) => le32(self.ref_array(items.len(), |h, i| h.string(&items[i]))).to_vec(),
            W::Object(o) => le32(self.object(o)).to_vec(),
            W::Objects(items) => le32(self.ref_array(items.len(), |h, i| h.object(&items[i]))).to_vec(),
        }
    }

    /// An array of heap references: count and reference table first, the items right after
    /// it, in order (the layout Windows uses, and the one impacket assumes).
    fn ref_array(&mut self, n: usize, mut item: impl FnMut(&mut Heap, usize) -> u32) -> u32 {
        let at = self.bytes.len();
        self.bytes.extend(le32(n as u32));
        self.bytes.extend(vec![0u8; 4 * n]);
        for i in 0..n {
            let r = item(self, i);
            let slot = at + 4 + 4 * i;
            self.bytes[slot..slot + 4].copy_from_slice(&le32(r));
        }
        at as u32
    }

    fn object(&mut self, block: &[u8]) -> u32 {
        // ObjectEncodingLength: the size of the ObjectBlock that follows (MS-WMIO 2.2.4).
        let mut enc = le32(block.len() as u32).to_vec();
        enc.extend(block);
        self.raw(&enc)
    }

    /// The Heap block: length with the top bit set, then the bytes.
    pub fn finish(&self) -> Vec<u8> {
        let mut out = le32(self.bytes.len() as u32 | 0x8000_0000).to_vec();
        out.extend(&self.bytes);
        out
    }
}

/// Size of a property's slot in the value table.
pub fn slot(code: u32) -> usize {
    if code & code::ARRAY != 0 {
        return 4;
    }
    match code {
        code::SINT8 | code::UINT8 => 1,
        code::SINT16 | code::UINT16 | code::BOOLEAN | code::CHAR16 => 2,
        code::SINT64 | code::UINT64 | code::REAL64 => 8,
        _ => 4,
    }
}

fn with_length(body: Vec<u8>) -> Vec<u8> {
    let mut out = le32(body.len() as u32 + 4).to_vec();
    out.extend(body);
    out
}

/// A QualifierSet holding `key` (by dictionary reference) and a `Description` string.
fn qualifier_set(heap: &mut Heap, key: bool, description: Option<&str>) -> Vec<u8> {
    let mut body = Vec::new();
    if key {
        body.extend(le32(0x8000_0001));
        body.push(0x13);
        body.extend(le32(code::BOOLEAN));
        body.extend(0xFFFFu16.to_le_bytes());
    }
    if let Some(d) = description {
        body.extend(le32(heap.string("Description")));
        body.push(0);
        body.extend(le32(code::STRING));
        body.extend(le32(heap.string(d)));
    }
    with_length(body)
}

/// NdTable bits and value-table bytes for values in declaration order.
fn nd_and_values(heap: &mut Heap, props: &[Prop], values: &[(u8, Option<W>)]) -> Vec<u8> {
    let mut nd = vec![0u8; if props.is_empty() { 0 } else { (props.len() - 1) / 4 + 1 }];
    let mut table = Vec::new();
    for (i, (p, (bits, v))) in props.iter().zip(values).enumerate() {
        nd[i / 4] |= (bits & 3) << ((i % 4) * 2);
        let bytes = match v {
            Some(w) => heap.value(w),
            None => vec![0xFF; slot(p.code)],
        };
        assert_eq!(bytes.len(), slot(p.code), "{}", p.name);
        table.extend(bytes);
    }
    nd.extend(table);
    nd
}

/// A ClassPart with its properties' defaults (a NULL default where none is given).
pub fn class_part(name: Option<&str>, supers: &[&str], description: Option<&str>, props: &[Prop]) -> Vec<u8> {
    let mut heap = Heap::default();
    let name_ref = name.map_or(u32::MAX, |n| heap.string(n));
    let mut derivation = Vec::new();
    for s in supers {
        let start = derivation.len();
        derivation.push(0);
        derivation.extend(s.bytes());
        derivation.push(0);
        let len = (derivation.len() - start) as u32;
        derivation.extend(le32(len));
    }
    let class_quals = qualifier_set(&mut heap, false, description);

    // PropertyInfo blocks in the heap, value-table offsets in declaration order.
    let mut offset = 0u32;
    let mut lookups: Vec<(&str, u32, u32)> = Vec::new();
    for (order, p) in props.iter().enumerate() {
        let name_ref = heap.string(p.name);
        let quals = qualifier_set(&mut heap, p.key, None);
        let mut info = le32(p.code).to_vec();
        info.extend((order as u16).to_le_bytes());
        info.extend(le32(offset));
        info.extend(le32(0));
        info.extend(quals);
        lookups.push((p.name, name_ref, heap.raw(&info)));
        offset += slot(p.code) as u32;
    }
    // The lookup table is sorted by name, unlike declaration order.
    lookups.sort_by_key(|(n, _, _)| n.to_ascii_lowercase());
    let defaults: Vec<(u8, Option<W>)> =
        props.iter().map(|p| (if p.default.is_some() { 0 } else { 1 }, p.default.clone())).collect();
    let nd_values = nd_and_values(&mut heap, props, &defaults);

    let mut body = vec![0u8];
    body.extend(le32(name_ref));
    body.extend(le32(nd_values.len() as u32));
    body.extend(with_length(derivation));
    body.extend(class_quals);
    body.extend(le32(props.len() as u32));
    for (_, n, i) in &lookups {
        body.extend(le32(*n));
        body.extend(le32(*i));
    }
    body.extend(nd_values);
    body.extend(heap.finish());
    with_length(body)
}

/// A MethodsPart with `methods` descriptions pointing nowhere, and a small method heap.
pub fn methods_part(methods: u16) -> Vec<u8> {
    let mut heap = Heap::default();
    let mut body = methods.to_le_bytes().to_vec();
    body.extend([0, 0]);
    for i in 0..methods {
        body.extend(le32(heap.string(&format!("Method{i}"))));
        body.extend([0, 0, 0, 0]);
        body.extend(le32(0));
        body.extend([0xFF; 12]);
    }
    body.extend(heap.finish());
    with_length(body)
}

/// The instance half of InstanceType: values with their NdTable bits, in declaration order.
pub fn instance_part(class: &str, props: &[Prop], values: &[(u8, Option<W>)], prop_qualifiers: bool) -> Vec<u8> {
    let mut heap = Heap::default();
    let name_ref = heap.string(class);
    let nd_values = nd_and_values(&mut heap, props, values);
    let mut body = vec![0u8];
    body.extend(le32(name_ref));
    body.extend(nd_values);
    body.extend(qualifier_set(&mut heap, false, Some("instance qualifier")));
    if prop_qualifiers {
        body.push(2);
        for _ in props {
            body.extend(qualifier_set(&mut heap, false, Some("property qualifier")));
        }
    } else {
        body.push(1);
    }
    body.extend(heap.finish());
    with_length(body)
}

/// An ObjectBlock for an instance, with a decoration when `decoration` is given.
pub fn instance_block(decoration: Option<(&str, &str)>, class_part: &[u8], instance_part: &[u8]) -> Vec<u8> {
    let mut out = vec![if decoration.is_some() { 0x06 } else { 0x02 }];
    if let Some((server, ns)) = decoration {
        for s in [server, ns] {
            out.push(0);
            out.extend(s.bytes());
            out.push(0);
        }
    }
    out.extend(class_part);
    out.extend(instance_part);
    out
}

/// An ObjectBlock for a class: an anonymous parent part, then the class, each with methods.
pub fn class_block(parent: &[u8], class: &[u8], methods: u16) -> Vec<u8> {
    let mut out = vec![0x01];
    out.extend(parent);
    out.extend(methods_part(0));
    out.extend(class);
    out.extend(methods_part(methods));
    out
}

/// An EncodingUnit around an ObjectBlock.
pub fn encoding_unit(block: &[u8]) -> Vec<u8> {
    let mut out = le32(0x1234_5678).to_vec();
    out.extend(le32(block.len() as u32));
    out.extend(block);
    out
}

// The `Item` test object: one property of every type, plus NULL and default cases.

pub fn num<const N: usize>(b: [u8; N]) -> Option<W> {
    Some(W::Inline(b.to_vec()))
}

pub fn text(s: &str) -> Option<W> {
    Some(W::Str(s.into()))
}

pub fn part_props() -> Vec<Prop> {
    vec![Prop::new("Name", code::STRING).key(), Prop::new("Size", code::UINT32)]
}

/// An embedded `Part` instance's ObjectBlock.
pub fn part(name: &str, size: u32) -> Vec<u8> {
    let props = part_props();
    instance_block(
        None,
        &class_part(Some("Part"), &[], None, &props),
        &instance_part("Part", &props, &[(0, text(name)), (0, num(size.to_le_bytes()))], false),
    )
}

pub const OWNER: &str = r#"\\SRV\root\cimv2:Win32_Account.Domain="D",Name="u""#;

/// The `Item` class: one property per type, plus four that exercise NULL and defaults.
pub fn item_props() -> Vec<Prop> {
    use code::*;
    vec![
        Prop::new("Id", UINT32).key(),
        Prop::new("S8", SINT8),
        Prop::new("U8", UINT8),
        Prop::new("S16", SINT16),
        Prop::new("U16", UINT16),
        Prop::new("S32", SINT32),
        Prop::new("U64", UINT64),
        Prop::new("S64", SINT64),
        Prop::new("R32", REAL32),
        Prop::new("R64", REAL64),
        Prop::new("Flag", BOOLEAN),
        Prop::new("Off", BOOLEAN),
        Prop::new("Letter", CHAR16),
        Prop::new("Ascii", STRING),
        Prop::new("Wide", STRING),
        Prop::new("When", DATETIME),
        Prop::new("Took", DATETIME),
        Prop::new("Wild", DATETIME),
        Prop::new("Owner", REFERENCE),
        Prop::new("Part", OBJECT),
        Prop::new("Numbers", UINT16 | ARRAY),
        Prop::new("Names", STRING | ARRAY),
        Prop::new("Flags", BOOLEAN | ARRAY),
        Prop::new("Parts", OBJECT | ARRAY),
        Prop::new("Empty", UINT32 | ARRAY),
        Prop::new("Missing", STRING),
        Prop::new("Defaulted", STRING).default(W::Str("from class".into())),
        Prop::new("Nulled", STRING).default(W::Str("from class".into())),
        Prop::new("Both", STRING).default(W::Str("from class".into())),
        Prop::new("DefaultNum", UINT32).default(W::Inline(42u32.to_le_bytes().to_vec())),
    ]
}

pub fn item_values() -> Vec<(u8, Option<W>)> {
    vec![
        (0, num(7u32.to_le_bytes())),
        (0, num((-5i8).to_le_bytes())),
        (0, num(250u8.to_le_bytes())),
        (0, num((-1234i16).to_le_bytes())),
        (0, num(65000u16.to_le_bytes())),
        (0, num((-70000i32).to_le_bytes())),
        (0, num(u64::MAX.to_le_bytes())),
        (0, num(i64::MIN.to_le_bytes())),
        (0, num(1.5f32.to_le_bytes())),
        (0, num((-2.25e100f64).to_le_bytes())),
        (0, num(0xFFFFu16.to_le_bytes())),
        (0, num(0u16.to_le_bytes())),
        (0, num(0x416u16.to_le_bytes())),
        (0, text("plain")),
        (0, text("Grüße 世界")),
        (0, text("20240102030405.123456-420")),
        (0, text("00000001020304.000005:000")),
        (0, text("2024****030405.123456+000")),
        (0, text(OWNER)),
        (0, Some(W::Object(part("p0", 1)))),
        (0, Some(W::Numbers(3, [1u16, 2, 65535].iter().flat_map(|v| v.to_le_bytes()).collect()))),
        (0, Some(W::Strings(vec!["a".into(), "ü".into(), "世".into()]))),
        (0, Some(W::Numbers(2, vec![0xFF, 0xFF, 0, 0]))),
        (0, Some(W::Objects(vec![part("p1", 2), part("p2", 3)]))),
        (0, Some(W::Numbers(0, Vec::new()))),
        (0b01, None),
        (0b10, None),
        (0b01, text("ignored")),
        (0b11, None),
        (0b10, num(9u32.to_le_bytes())),
    ]
}

/// The `Item` instance as an EncodingUnit; without `reals` it leaves out the real32/real64
/// properties (impacket cannot decode those).
pub fn item(reals: bool, prop_qualifiers: bool) -> Vec<u8> {
    let keep = |name: &str| reals || !name.starts_with('R');
    let (props, values): (Vec<Prop>, Vec<_>) =
        item_props().into_iter().zip(item_values()).filter(|(p, _)| keep(p.name)).unzip();
    let block = instance_block(
        Some(("HOST", r"root\test")),
        &class_part(Some("Item"), &["Base"], Some("all types"), &props),
        &instance_part("Item", &props, &values, prop_qualifiers),
    );
    encoding_unit(&block)
}
