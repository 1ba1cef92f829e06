//! The leaves of MS-WMIO: heaps, encoded strings, dictionary references, CIM type codes,
//! encoded values and qualifier sets (MS-WMIO 2.2.59–2.2.82).

use crate::cim::schema::CimType;
use crate::cim::{DateTime, Interval, Value};

use super::super::DecodeError;
use super::super::cursor::Cursor;
use super::{MAX_DEPTH, path};

/// `HeapRef` values with this bit set index the standard string table instead of the heap.
const DICTIONARY_BIT: u32 = 0x8000_0000;
/// A heap reference that points nowhere (a class with no name, a method with no qualifiers).
const NO_REF: u32 = 0xFFFF_FFFF;

/// The standard string table of MS-WMIO 2.2.82 (`DictionaryReference`).
const DICTIONARY: [&str; 11] =
    ["\"", "key", "NADA", "read", "write", "volatile", "provider", "dynamic", "cimwin32", "DWORD", "CIMTYPE"];

/// CIM type codes as MS-WMIO 2.2.32 (`CimType`) numbers them.
const ARRAY_FLAG: u32 = 0x2000;
const INHERITED_FLAG: u32 = 0x4000;

/// A property's or qualifier's type on the wire: the CIM type, whether it is an array, and
/// whether the property was inherited from a superclass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireType {
    pub cim_type: CimType,
    pub is_array: bool,
    pub inherited: bool,
}

impl WireType {
    /// Decodes a `CimType` field.
    pub(crate) fn from_code(code: u32, offset: usize) -> Result<WireType, DecodeError> {
        let cim_type = match code & !(ARRAY_FLAG | INHERITED_FLAG) {
            2 => CimType::SInt16,
            3 => CimType::SInt32,
            4 => CimType::Real32,
            5 => CimType::Real64,
            8 => CimType::String,
            11 => CimType::Boolean,
            13 => CimType::Instance,
            16 => CimType::SInt8,
            17 => CimType::UInt8,
            18 => CimType::UInt16,
            19 => CimType::UInt32,
            20 => CimType::SInt64,
            21 => CimType::UInt64,
            101 => CimType::DateTime,
            102 => CimType::Reference,
            103 => CimType::Char16,
            _ => return Err(DecodeError::invalid("CimType", offset, format!("unknown type code {code:#x}"))),
        };
        Ok(WireType { cim_type, is_array: code & ARRAY_FLAG != 0, inherited: code & INHERITED_FLAG != 0 })
    }

    /// Size of the value as stored inline in a value table or qualifier: numbers in place,
    /// everything else as a 4-byte heap reference.
    fn inline_size(self) -> usize {
        if self.is_array { 4 } else { scalar_size(self.cim_type) }
    }
}

fn scalar_size(t: CimType) -> usize {
    match t {
        CimType::SInt8 | CimType::UInt8 => 1,
        CimType::SInt16 | CimType::UInt16 | CimType::Boolean | CimType::Char16 => 2,
        CimType::SInt64 | CimType::UInt64 | CimType::Real64 => 8,
        _ => 4,
    }
}

/// A heap (MS-WMIO 2.2.66): its length has the top bit set and is 31 bits wide.
#[derive(Debug, Clone)]
pub(crate) struct Heap<'a> {
    data: Cursor<'a>,
}

impl<'a> Heap<'a> {
    pub(crate) fn read(c: &mut Cursor<'a>, what: &'static str) -> Result<Heap<'a>, DecodeError> {
        let len = c.u32(what)? & 0x7FFF_FFFF;
        Ok(Heap { data: c.take(len as usize, what)? })
    }

    /// A cursor at a heap offset.
    pub(crate) fn at(&self, r: u32, what: &'static str) -> Result<Cursor<'a>, DecodeError> {
        self.data.at(r as usize, what)
    }

    /// Resolves a `HeapStringRef`: a dictionary entry or an encoded string in the heap.
    pub(crate) fn string(&self, r: u32, what: &'static str) -> Result<String, DecodeError> {
        if r & DICTIONARY_BIT != 0 {
            let index = (r & !DICTIONARY_BIT) as usize;
            return DICTIONARY.get(index).map(|s| s.to_string()).ok_or_else(|| {
                DecodeError::invalid(what, self.data.offset(), format!("unknown dictionary entry {index}"))
            });
        }
        encoded_string(&mut self.at(r, what)?, what)
    }

    /// Like [`Heap::string`], but [`NO_REF`] means no string.
    pub(crate) fn optional_string(&self, r: u32, what: &'static str) -> Result<Option<String>, DecodeError> {
        if r == NO_REF { Ok(None) } else { self.string(r, what).map(Some) }
    }
}

/// An `EncodedString` (MS-WMIO 2.2.78): a flag octet, then a NUL-terminated string that is
/// either "compressed" (one octet per character, the low byte of UTF-16) or UTF-16LE.
pub(crate) fn encoded_string(c: &mut Cursor<'_>, what: &'static str) -> Result<String, DecodeError> {
    let offset = c.offset();
    match c.u8(what)? {
        0 => {
            let mut s = String::new();
            loop {
                match c.u8(what)? {
                    0 => return Ok(s),
                    b => s.push(char::from(b)),
                }
            }
        }
        1 => {
            let mut units = Vec::new();
            loop {
                match c.u16(what)? {
                    0 => break,
                    u => units.push(u),
                }
            }
            // Windows strings may hold unpaired surrogates; an inventory keeps the rest of the
            // string rather than dropping the whole object.
            Ok(String::from_utf16_lossy(&units))
        }
        flag => Err(DecodeError::invalid(what, offset, format!("string flag {flag} is neither 0 nor 1"))),
    }
}

/// Reads an `EncodedValue` (MS-WMIO 2.2.71) at the cursor, resolving heap references.
pub(crate) fn encoded_value(
    c: &mut Cursor<'_>,
    t: WireType,
    heap: &Heap<'_>,
    depth: usize,
) -> Result<Value, DecodeError> {
    if t.is_array {
        let r = c.u32("array HeapRef")?;
        return array(heap, r, t.cim_type, depth);
    }
    let mut inline = c.take(t.inline_size(), "EncodedValue")?;
    scalar(&mut inline, t.cim_type, heap, depth)
}

fn array(heap: &Heap<'_>, r: u32, t: CimType, depth: usize) -> Result<Value, DecodeError> {
    let mut c = heap.at(r, "array")?;
    let offset = c.offset();
    let count = c.u32("array count")? as usize;
    let size = scalar_size(t);
    if count.saturating_mul(size) > c.remaining() {
        return Err(DecodeError::invalid(
            "array count",
            offset,
            format!("{count} elements of {size} bytes do not fit in {} bytes", c.remaining()),
        ));
    }
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        items.push(scalar(&mut c, t, heap, depth)?);
    }
    Ok(Value::Array(items))
}

/// One scalar: a number in place, or a heap reference to a string, datetime, reference or object.
fn scalar(c: &mut Cursor<'_>, t: CimType, heap: &Heap<'_>, depth: usize) -> Result<Value, DecodeError> {
    Ok(match t {
        CimType::SInt8 => Value::SInt8(c.u8("sint8")? as i8),
        CimType::UInt8 => Value::UInt8(c.u8("uint8")?),
        CimType::SInt16 => Value::SInt16(c.u16("sint16")? as i16),
        CimType::UInt16 => Value::UInt16(c.u16("uint16")?),
        CimType::SInt32 => Value::SInt32(c.u32("sint32")? as i32),
        CimType::UInt32 => Value::UInt32(c.u32("uint32")?),
        CimType::SInt64 => Value::SInt64(c.u64("sint64")? as i64),
        CimType::UInt64 => Value::UInt64(c.u64("uint64")?),
        CimType::Real32 => Value::Real32(f32::from_bits(c.u32("real32")?)),
        CimType::Real64 => Value::Real64(f64::from_bits(c.u64("real64")?)),
        // MS-WMIO 2.2.71: TRUE is 0xFFFF and FALSE is 0; anything else non-zero is taken as true.
        CimType::Boolean => Value::Bool(c.u16("boolean")? != 0),
        CimType::Char16 => {
            let unit = c.u16("char16")?;
            Value::Char16(char::from_u32(unit.into()).unwrap_or(char::REPLACEMENT_CHARACTER))
        }
        CimType::String => Value::String(heap.string(c.u32("string HeapRef")?, "string")?.into()),
        CimType::DateTime => datetime(heap.string(c.u32("datetime HeapRef")?, "datetime")?),
        CimType::Reference => Value::Reference(Box::new(path::parse(&heap.string(c.u32("reference HeapRef")?, "reference")?))),
        CimType::Instance => {
            let r = c.u32("object HeapRef")?;
            if depth >= MAX_DEPTH {
                return Err(DecodeError::TooDeep(MAX_DEPTH));
            }
            // ObjectEncodingLength (MS-WMIO 2.2.4) counts the ObjectBlock, not itself.
            let mut obj = heap.at(r, "embedded object")?;
            let len = obj.u32("embedded ObjectEncodingLength")? as usize;
            let mut block = obj.take(len, "embedded ObjectBlock")?;
            let decoded = super::object_block(&mut block, depth + 1)?;
            Value::Instance(Box::new(decoded.into_instance()))
        }
    })
}

/// A DMTF datetime string: a point in time, an interval, or (wildcards, malformed) the text.
fn datetime(s: String) -> Value {
    if let Some(d) = DateTime::parse_dmtf(&s) {
        return Value::DateTime(d);
    }
    // Interval::parse_dmtf slices by byte position, so it only sees ASCII.
    if s.is_ascii()
        && let Some(i) = Interval::parse_dmtf(&s)
    {
        return Value::Interval(i);
    }
    Value::String(s.into())
}

/// A qualifier: a name, its flavor bits, and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Qualifier {
    pub name: String,
    /// `QualifierFlavor` bits (propagation, amended, origin), as sent.
    pub flavor: u8,
    pub value: Value,
}

/// A `QualifierSet` (MS-WMIO 2.2.59), returned as its raw extent so it can be decoded once
/// the heap that follows it is known.
pub(crate) fn qualifier_set_extent<'a>(c: &mut Cursor<'a>) -> Result<Cursor<'a>, DecodeError> {
    c.self_sized("QualifierSet.EncodingLength")
}

/// Decodes the qualifiers of a set extent against its heap.
pub(crate) fn qualifiers(mut set: Cursor<'_>, heap: &Heap<'_>, depth: usize) -> Result<Vec<Qualifier>, DecodeError> {
    let mut out = Vec::new();
    while !set.is_empty() {
        let name = heap.string(set.u32("QualifierName")?, "QualifierName")?;
        let flavor = set.u8("QualifierFlavor")?;
        let offset = set.offset();
        let t = WireType::from_code(set.u32("QualifierType")?, offset)?;
        let value = encoded_value(&mut set, t, heap, depth)?;
        out.push(Qualifier { name, flavor, value });
    }
    Ok(out)
}

/// Whether a qualifier list marks a key property (`key` set to true).
pub(crate) fn has_key(qualifiers: &[Qualifier]) -> bool {
    qualifiers.iter().any(|q| q.name.eq_ignore_ascii_case("key") && q.value == Value::Bool(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_and_unicode_strings() {
        let mut c = Cursor::new(b"\0Caf\xe9\0");
        assert_eq!(encoded_string(&mut c, "s").unwrap(), "Café");
        let data = [1u8, 0x3a, 0x04, 0x42, 0, 0, 0];
        assert_eq!(encoded_string(&mut Cursor::new(&data), "s").unwrap(), "\u{43a}B");
        assert!(encoded_string(&mut Cursor::new(b"\0abc"), "s").is_err());
        assert!(encoded_string(&mut Cursor::new(b"\x02a\0"), "s").is_err());
    }

    #[test]
    fn dictionary_references() {
        let heap_bytes = [4u8, 0, 0, 0x80, 0, b'x', 0, 0];
        let heap = Heap::read(&mut Cursor::new(&heap_bytes), "heap").unwrap();
        assert_eq!(heap.string(0x8000_0001, "n").unwrap(), "key");
        assert_eq!(heap.string(0x8000_000a, "n").unwrap(), "CIMTYPE");
        assert!(heap.string(0x8000_000b, "n").is_err());
        assert_eq!(heap.string(0, "n").unwrap(), "x");
        assert!(heap.string(9, "n").is_err());
        assert_eq!(heap.optional_string(NO_REF, "n").unwrap(), None);
    }

    #[test]
    fn type_codes() {
        let t = WireType::from_code(0x6011, 0).unwrap();
        assert_eq!((t.cim_type, t.is_array, t.inherited), (CimType::UInt8, true, true));
        assert_eq!(WireType::from_code(101, 0).unwrap().cim_type, CimType::DateTime);
        assert!(WireType::from_code(7, 0).is_err());
    }

    #[test]
    fn datetimes_and_intervals() {
        assert!(matches!(datetime("20210608000035.000000+000".into()), Value::DateTime(_)));
        assert!(matches!(datetime("00000001020304.000005:000".into()), Value::Interval(_)));
        assert_eq!(datetime("2021****000035.000000+000".into()), Value::String("2021****000035.000000+000".into()));
        // Multi-byte text must not reach the byte-slicing interval parser.
        let odd = "00000001020304.00000é:00".to_string();
        assert_eq!(datetime(odd.clone()), Value::String(odd.into()));
    }

    #[test]
    fn array_count_is_bounded_by_the_heap() {
        let heap_bytes = [8u8, 0, 0, 0x80, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3, 4];
        let heap = Heap::read(&mut Cursor::new(&heap_bytes), "heap").unwrap();
        assert!(array(&heap, 0, CimType::UInt32, 0).is_err());
    }
}
