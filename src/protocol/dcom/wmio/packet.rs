//! `WBEMDATA` object arrays (MS-WMI 2.2.14), the batches `IWbemWCOSmartEnum::Next` returns.
//!
//! The server sends each class once, inside the first instance of it (`WBEMOBJECT_INSTANCE`,
//! tagged with a GUID it made up), and later instances of that class without it
//! (`WBEMOBJECT_INSTANCE_NOCLASS`, tagged with the same GUID). The [`ClassCache`] lives as long
//! as the enumeration so instances in later batches still find their class.

use std::collections::HashMap;
use std::sync::Arc;

use super::super::DecodeError;
use super::super::cursor::Cursor;
use super::{ClassDef, DecodedObject, instance_no_class, object_block};

const SIGNATURE: &[u8; 8] = b"WBEMDATA";

/// Classes seen so far in one enumeration, by the GUID the server gave them.
#[derive(Debug, Clone, Default)]
pub struct ClassCache {
    classes: HashMap<[u8; 16], Arc<ClassDef>>,
}

impl ClassCache {
    pub fn new() -> ClassCache {
        ClassCache::default()
    }

    /// The class the server tagged with `id`, if one arrived.
    pub fn get(&self, id: &[u8; 16]) -> Option<&Arc<ClassDef>> {
        self.classes.get(id)
    }

    pub fn len(&self) -> usize {
        self.classes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }
}

/// Decodes one `ObjectArray`, adding the classes it defines to `cache` and resolving the
/// instances sent without their class through it.
pub fn decode_object_array(data: &[u8], cache: &mut ClassCache) -> Result<Vec<DecodedObject>, DecodeError> {
    let mut c = Cursor::new(data);
    let offset = c.offset();
    if c.u32("dwByteOrdering")? != 0 {
        return Err(DecodeError::invalid("dwByteOrdering", offset, "only little-endian (0) is defined"));
    }
    let offset = c.offset();
    if c.bytes(8, "abSignature")? != SIGNATURE {
        return Err(DecodeError::invalid("abSignature", offset, "not WBEMDATA"));
    }
    expect_header(&mut c, "dwSizeOfHeader1", 0x1A)?;
    c.skip(4 + 4 + 1 + 1, "dwDataSize1, dwFlags, bVersion, bPacketType")?;
    expect_header(&mut c, "dwSizeOfHeader2", 8)?;
    c.skip(4, "dwDataSize2")?;
    expect_header(&mut c, "dwSizeOfHeader3", 12)?;
    c.skip(4, "dwDataSize3")?;
    let count = c.u32("dwNumObjects")? as usize;

    // Each object takes at least its 9-byte packet header, which bounds the allocation.
    let mut out = Vec::with_capacity(count.min(c.remaining() / 9));
    for _ in 0..count {
        let offset = c.offset();
        let header = c.u32("WBEM_DATAPACKET_OBJECT.dwSizeOfHeader")? as usize;
        let size = c.u32("WBEM_DATAPACKET_OBJECT.dwSizeOfData")? as usize;
        let kind = c.u8("bObjectType")?;
        if header < 9 {
            return Err(DecodeError::invalid("WBEM_DATAPACKET_OBJECT.dwSizeOfHeader", offset, format!("{header}")));
        }
        c.skip(header - 9, "WBEM_DATAPACKET_OBJECT header")?;
        let mut object = c.take(size, "WBEM_DATAPACKET_OBJECT.Object")?;
        out.push(packet_object(&mut object, kind, offset, cache)?);
    }
    Ok(out)
}

fn expect_header(c: &mut Cursor<'_>, what: &'static str, want: u32) -> Result<(), DecodeError> {
    let offset = c.offset();
    match c.u32(what)? {
        got if got == want => Ok(()),
        got => Err(DecodeError::invalid(what, offset, format!("{got:#x}, expected {want:#x}"))),
    }
}

/// One `WBEMOBJECT_CLASS` (1), `WBEMOBJECT_INSTANCE` (2) or `WBEMOBJECT_INSTANCE_NOCLASS` (3).
fn packet_object(
    c: &mut Cursor<'_>,
    kind: u8,
    offset: usize,
    cache: &mut ClassCache,
) -> Result<DecodedObject, DecodeError> {
    let header = c.u32("dwSizeOfHeader")? as usize;
    let size = c.u32("dwSizeOfData")? as usize;
    match kind {
        1 => {
            c.skip(header.saturating_sub(8), "WBEMOBJECT_CLASS header")?;
            object_block(&mut c.take(size, "WBEMOBJECT_CLASS.ObjectData")?, 0)
        }
        2 | 3 => {
            let id = c.guid("classID")?;
            c.skip(header.saturating_sub(0x18), "WBEMOBJECT_INSTANCE header")?;
            let mut data = c.take(size, "WBEMOBJECT_INSTANCE.ObjectData")?;
            if kind == 2 {
                let object = object_block(&mut data, 0)?;
                cache.classes.insert(id, object.class.clone());
                Ok(object)
            } else {
                let class = cache.get(&id).cloned().ok_or_else(|| DecodeError::UnknownClass(hex(&id)))?;
                instance_no_class(&mut data, &class)
            }
        }
        other => Err(DecodeError::invalid("bObjectType", offset, format!("{other} is not 1, 2 or 3"))),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
