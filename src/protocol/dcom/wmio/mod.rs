//! The MS-WMIO object encoding: how `IWbemClassObject` classes and instances travel.
//!
//! An object is an `ObjectBlock`: flags, an optional decoration (server and namespace), then
//! either a class (parent and current class parts) or an instance (its class part followed by
//! the instance's own values). Each class part carries its property table, the defaults in a
//! value table, and a heap holding names, strings and qualifiers. Instances sent by
//! `IWbemWCOSmartEnum::Next` may omit their class; [`packet`] resolves those through a cache.

mod encoding;
pub mod packet;
pub mod path;

use std::sync::Arc;

use crate::cim::schema::CimType;
use crate::cim::{Instance, Name, Value};

use super::DecodeError;
use super::cursor::Cursor;
use encoding::{Heap, encoded_string, encoded_value, has_key, qualifier_set_extent, qualifiers};
pub use encoding::{Qualifier, WireType};

/// How deep embedded objects may nest before decoding gives up (a guard against crafted input).
pub(crate) const MAX_DEPTH: usize = 16;

/// The `EncodingUnit` signature (MS-WMIO 2.2.1).
const SIGNATURE: u32 = 0x1234_5678;

const FLAG_CLASS: u8 = 0x01;
const FLAG_INSTANCE: u8 = 0x02;
const FLAG_DECORATION: u8 = 0x04;

/// The server and namespace an object came from (MS-WMIO 2.2.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoration {
    pub server: String,
    pub namespace: String,
}

/// One property of a class, in declaration order.
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyDef {
    /// Shared: every instance of the class carries a clone of it.
    pub name: Name,
    pub wire_type: WireType,
    pub qualifiers: Vec<Qualifier>,
    /// The class's default value (NULL when it has none), after the NdTable bits.
    pub default: Value,
    /// Whether the property carries the `key` qualifier, i.e. identifies the instance.
    pub is_key: bool,
    declaration_order: u16,
    value_offset: u32,
}

/// A decoded class definition: what an instance needs to be read and identified.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClassDef {
    /// Empty for the anonymous parent of a root class.
    pub name: String,
    /// Superclasses, nearest first (the `DerivationList`).
    pub superclasses: Vec<String>,
    pub qualifiers: Vec<Qualifier>,
    /// Properties in declaration order.
    pub properties: Vec<PropertyDef>,
    /// Length of NdTable plus ValueTable, which instances of the class share.
    nd_value_table_len: usize,
}

impl ClassDef {
    /// The key properties' names, in declaration order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.properties.iter().filter(|p| p.is_key).map(|p| p.name.as_str())
    }

    /// Looks a property up, case-insensitively as WMI does.
    pub fn property(&self, name: &str) -> Option<&PropertyDef> {
        self.properties.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// An instance holding every property's default, as an embedded class reads.
    fn defaults(&self) -> Instance {
        let mut inst = Instance::new(self.name.clone());
        for p in &self.properties {
            inst.push(p.name.clone(), p.default.clone());
        }
        inst
    }
}

/// A decoded object block: its class, and the instance when it is one.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedObject {
    pub decoration: Option<Decoration>,
    pub class: Arc<ClassDef>,
    /// `None` when the object is a class.
    pub instance: Option<Instance>,
}

impl DecodedObject {
    /// The instance, or the class's defaults when the object is a class.
    pub fn into_instance(self) -> Instance {
        match self.instance {
            Some(i) => i,
            None => self.class.defaults(),
        }
    }
}

/// Decodes an `EncodingUnit` (MS-WMIO 2.2.1): signature, length, object block, as the
/// `pObjectData` of an `IWbemClassObject` OBJREF carries it.
pub fn decode_encoding_unit(data: &[u8]) -> Result<DecodedObject, DecodeError> {
    let mut c = Cursor::new(data);
    let offset = c.offset();
    let signature = c.u32("EncodingUnit.Signature")?;
    if signature != SIGNATURE {
        return Err(DecodeError::invalid("EncodingUnit.Signature", offset, format!("{signature:#010x}")));
    }
    let len = c.u32("ObjectEncodingLength")? as usize;
    let mut block = c.take(len, "ObjectBlock")?;
    object_block(&mut block, 0)
}

/// Decodes a bare `ObjectBlock` (MS-WMIO 2.2.5), as `WBEMOBJECT_CLASS`/`_INSTANCE` carry it.
pub fn decode_object_block(data: &[u8]) -> Result<DecodedObject, DecodeError> {
    object_block(&mut Cursor::new(data), 0)
}

pub(crate) fn object_block(c: &mut Cursor<'_>, depth: usize) -> Result<DecodedObject, DecodeError> {
    let (flags, decoration) = flags_and_decoration(c)?;
    if flags & FLAG_CLASS != 0 {
        let parent = class_and_methods(c, None, depth)?;
        let class = class_and_methods(c, Some(&parent), depth)?;
        Ok(DecodedObject { decoration, class: Arc::new(class), instance: None })
    } else {
        let class = Arc::new(class_part(c, None, depth)?);
        let instance = instance_part(c, &class, depth)?;
        Ok(DecodedObject { decoration, class, instance: Some(instance) })
    }
}

/// `ObjectFlags` and the optional `Decoration`; exactly one of class/instance must be set.
fn flags_and_decoration(c: &mut Cursor<'_>) -> Result<(u8, Option<Decoration>), DecodeError> {
    let offset = c.offset();
    let flags = c.u8("ObjectFlags")?;
    if (flags & FLAG_CLASS != 0) == (flags & FLAG_INSTANCE != 0) {
        return Err(DecodeError::invalid("ObjectFlags", offset, format!("{flags:#04x} is neither class nor instance")));
    }
    let decoration = if flags & FLAG_DECORATION != 0 {
        let server = encoded_string(c, "DecServerName")?;
        let namespace = encoded_string(c, "DecNamespaceName")?;
        Some(Decoration { server, namespace })
    } else {
        None
    };
    Ok((flags, decoration))
}

/// A `ClassAndMethodsPart`: the class part, then a methods part we parse past.
fn class_and_methods(c: &mut Cursor<'_>, parent: Option<&ClassDef>, depth: usize) -> Result<ClassDef, DecodeError> {
    let class = class_part(c, parent, depth)?;
    methods_part(c)?;
    Ok(class)
}

/// `MethodsPart` (MS-WMIO 2.2.38): checked for structure, not decoded (we never call methods).
fn methods_part(c: &mut Cursor<'_>) -> Result<(), DecodeError> {
    let mut part = c.self_sized("MethodsPart.EncodingLength")?;
    let count = part.u16("MethodCount")? as usize;
    part.skip(2, "MethodCountPadding")?;
    // MethodDescription: name, flags, padding, origin, qualifiers, in and out signatures.
    part.skip(count.saturating_mul(24), "MethodDescription")?;
    Heap::read(&mut part, "MethodHeap")?;
    Ok(())
}

/// One entry of the `PropertyLookupTable`, resolved through the heap.
struct RawProperty<'a> {
    name: String,
    wire_type: WireType,
    declaration_order: u16,
    value_offset: u32,
    qualifiers: Cursor<'a>,
}

/// A `ClassPart` (MS-WMIO 2.2.15) into a class definition; `parent` supplies defaults the
/// NdTable marks as inherited.
fn class_part(c: &mut Cursor<'_>, parent: Option<&ClassDef>, depth: usize) -> Result<ClassDef, DecodeError> {
    let mut part = c.self_sized("ClassHeader.EncodingLength")?;
    part.skip(1, "ClassHeader.ReservedOctet")?;
    let name_ref = part.u32("ClassNameRef")?;
    let nd_value_table_len = part.u32("NdTableValueTableLength")? as usize;

    let mut derivation = part.self_sized("DerivationList.EncodingLength")?;
    let mut superclasses = Vec::new();
    while !derivation.is_empty() {
        superclasses.push(encoded_string(&mut derivation, "ClassNameEncoding")?);
        derivation.skip(4, "ClassNameLength")?;
    }

    let class_qualifiers = qualifier_set_extent(&mut part)?;
    let count = part.u32("PropertyCount")? as usize;
    let lookups = part.take(count.saturating_mul(8), "PropertyLookupTable")?;
    let nd_values = part.take(nd_value_table_len, "NdTable+ValueTable")?;
    let heap = Heap::read(&mut part, "ClassHeap")?;

    let name = heap.optional_string(name_ref, "ClassNameRef")?.unwrap_or_default();
    let qualifiers = qualifiers(class_qualifiers, &heap, depth)?;
    let mut raw = lookup_table(lookups, count, &heap)?;
    raw.sort_by_key(|p| p.declaration_order);

    let table = NdValueTable::split(nd_values, count)?;
    let mut properties = Vec::with_capacity(raw.len());
    for p in raw {
        let quals = encoding::qualifiers(p.qualifiers, &heap, depth)?;
        let inherited = || parent.and_then(|c| c.property(&p.name)).map(|d| d.default.clone());
        let default = match table.flags(p.declaration_order) {
            Nd::Null => Value::Null,
            // A class part lists its ancestors' properties too; without the parent at hand the
            // value table is what this part knows of the inherited default.
            Nd::Inherited => match inherited() {
                Some(v) => v,
                None => table.value(p.value_offset, p.wire_type, &heap, depth)?,
            },
            Nd::Value => table.value(p.value_offset, p.wire_type, &heap, depth)?,
        };
        properties.push(PropertyDef {
            is_key: has_key(&quals),
            name: p.name.into(),
            wire_type: p.wire_type,
            qualifiers: quals,
            default,
            declaration_order: p.declaration_order,
            value_offset: p.value_offset,
        });
    }
    Ok(ClassDef { name, superclasses, qualifiers, properties, nd_value_table_len })
}

/// The `PropertyLookupTable` entries with their `PropertyInfo` from the heap (MS-WMIO 2.2.30).
fn lookup_table<'a>(
    mut lookups: Cursor<'a>,
    count: usize,
    heap: &Heap<'a>,
) -> Result<Vec<RawProperty<'a>>, DecodeError> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let name = heap.string(lookups.u32("PropertyNameRef")?, "PropertyNameRef")?;
        let mut info = heap.at(lookups.u32("PropertyInfoRef")?, "PropertyInfoRef")?;
        let offset = info.offset();
        let wire_type = WireType::from_code(info.u32("PropertyType")?, offset)?;
        let declaration_order = info.u16("DeclarationOrder")?;
        let value_offset = info.u32("ValueTableOffset")?;
        info.skip(4, "ClassOfOrigin")?;
        let qualifiers = qualifier_set_extent(&mut info)?;
        out.push(RawProperty { name, wire_type, declaration_order, value_offset, qualifiers });
    }
    Ok(out)
}

/// What the two NdTable bits of a property say (MS-WMIO 2.2.27).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nd {
    /// Bit 0: the value is NULL (whatever bit 1 says).
    Null,
    /// Bit 1 alone: the value is the default inherited from the class (or superclass).
    Inherited,
    /// Neither bit: the value table holds the value.
    Value,
}

/// An NdTable followed by its ValueTable.
struct NdValueTable<'a> {
    nd: &'a [u8],
    values: Cursor<'a>,
}

impl<'a> NdValueTable<'a> {
    fn split(mut c: Cursor<'a>, count: usize) -> Result<NdValueTable<'a>, DecodeError> {
        let nd_len = if count == 0 { 0 } else { (count - 1) / 4 + 1 };
        let nd = c.bytes(nd_len, "NdTable")?;
        Ok(NdValueTable { nd, values: c.rest() })
    }

    /// The NdTable is indexed by declaration order, two bits per property, low bits first.
    fn flags(&self, order: u16) -> Nd {
        let i = usize::from(order);
        let bits = self.nd.get(i / 4).map_or(0, |b| b >> ((i % 4) * 2) & 0b11);
        match bits {
            b if b & 0b01 != 0 => Nd::Null,
            0b10 => Nd::Inherited,
            _ => Nd::Value,
        }
    }

    fn value(&self, offset: u32, t: WireType, heap: &Heap<'_>, depth: usize) -> Result<Value, DecodeError> {
        let mut c = self.values.at(offset as usize, "ValueTableOffset")?;
        encoded_value(&mut c, t, heap, depth)
    }
}

/// The instance half of `InstanceType` (MS-WMIO 2.2.53), also the body of
/// `EncodingUnitInstanceNoClass` (2.2.3), read against its class.
fn instance_part(c: &mut Cursor<'_>, class: &ClassDef, depth: usize) -> Result<Instance, DecodeError> {
    let mut part = c.self_sized("InstanceType.EncodingLength")?;
    part.skip(1, "InstanceFlags")?;
    let name_ref = part.u32("InstanceClassName")?;
    let nd_values = part.take(class.nd_value_table_len, "NdTable+InstanceData")?;
    qualifier_set_extent(&mut part)?;
    let offset = part.offset();
    match part.u8("InstPropQualSetFlag")? {
        1 => {}
        2 => {
            for _ in &class.properties {
                qualifier_set_extent(&mut part)?;
            }
        }
        flag => return Err(DecodeError::invalid("InstPropQualSetFlag", offset, format!("{flag} is neither 1 nor 2"))),
    }
    let heap = Heap::read(&mut part, "InstanceHeap")?;

    let name = heap.optional_string(name_ref, "InstanceClassName")?.unwrap_or_else(|| class.name.clone());
    let table = NdValueTable::split(nd_values, class.properties.len())?;
    let mut instance = Instance::new(name);
    for p in &class.properties {
        let value = match table.flags(p.declaration_order) {
            Nd::Null => Value::Null,
            Nd::Inherited => p.default.clone(),
            // impacket's encoder leaves arrays and objects it has no value for pointing at
            // the class name (heap offset 0) instead of setting the NULL bit; those bytes are a
            // string, never a valid array or object, so they read as NULL.
            Nd::Value if refers_to_class_name(&table, p, name_ref) => Value::Null,
            Nd::Value => table.value(p.value_offset, p.wire_type, &heap, depth)?,
        };
        instance.push(p.name.clone(), value);
    }
    Ok(instance)
}

fn refers_to_class_name(table: &NdValueTable<'_>, p: &PropertyDef, name_ref: u32) -> bool {
    let by_ref = p.wire_type.is_array || p.wire_type.cim_type == CimType::Instance;
    by_ref
        && table.values.at(p.value_offset as usize, "ValueTableOffset").and_then(|mut c| c.u32("HeapRef")).ok()
            == Some(name_ref)
}

/// Decodes an `EncodingUnitInstanceNoClass` against the class it was sent without.
pub(crate) fn instance_no_class(c: &mut Cursor<'_>, class: &Arc<ClassDef>) -> Result<DecodedObject, DecodeError> {
    let offset = c.offset();
    let (flags, decoration) = flags_and_decoration(c)?;
    if flags & FLAG_CLASS != 0 {
        return Err(DecodeError::invalid("ObjectFlags", offset, "a class where an instance without class belongs"));
    }
    let instance = instance_part(c, class, 0)?;
    Ok(DecodedObject { decoration, class: class.clone(), instance: Some(instance) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nd_bits_follow_the_spec_table() {
        let t = NdValueTable { nd: &[0b1110_0100], values: Cursor::new(&[]) };
        assert_eq!(t.flags(0), Nd::Value);
        assert_eq!(t.flags(1), Nd::Null);
        assert_eq!(t.flags(2), Nd::Inherited);
        assert_eq!(t.flags(3), Nd::Null);
        assert_eq!(t.flags(4), Nd::Value);
    }

    #[test]
    fn rejects_bad_signature_and_flags() {
        assert!(matches!(decode_encoding_unit(&[0; 8]), Err(DecodeError::Invalid { .. })));
        assert!(matches!(decode_object_block(&[0x03]), Err(DecodeError::Invalid { .. })));
        assert!(matches!(decode_object_block(&[0x00]), Err(DecodeError::Invalid { .. })));
        assert!(matches!(decode_object_block(&[]), Err(DecodeError::Truncated { .. })));
    }
}
