//! OBJREF (MS-DCOM 2.2.18): how an interface pointer is marshaled.
//!
//! WMI returns `IWbemClassObject` pointers as `OBJREF_CUSTOM` whose `pObjectData` is an MS-WMIO
//! encoding unit, and every other interface as `OBJREF_STANDARD` naming the object exporter
//! and the string bindings to reach it.

use super::DecodeError;
use super::cursor::Cursor;

const MEOW: u32 = 0x574F_454D;
const FLAGS_STANDARD: u32 = 0x1;
const FLAGS_CUSTOM: u32 = 0x4;

/// The standard part of a marshaled pointer (`STDOBJREF`, MS-DCOM 2.2.18.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdObjRef {
    pub flags: u32,
    pub public_refs: u32,
    pub oxid: u64,
    pub oid: u64,
    pub ipid: [u8; 16],
}

impl StdObjRef {
    /// Its 40 bytes. Every field sits at its natural alignment when the structure starts
    /// 8-aligned, so this is also its NDR form there.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(40);
        out.extend(self.flags.to_le_bytes());
        out.extend(self.public_refs.to_le_bytes());
        out.extend(self.oxid.to_le_bytes());
        out.extend(self.oid.to_le_bytes());
        out.extend(self.ipid);
        out
    }

    pub(crate) fn read(c: &mut Cursor<'_>) -> Result<StdObjRef, DecodeError> {
        Ok(StdObjRef {
            flags: c.u32("STDOBJREF.flags")?,
            public_refs: c.u32("STDOBJREF.cPublicRefs")?,
            oxid: c.u64("STDOBJREF.oxid")?,
            oid: c.u64("STDOBJREF.oid")?,
            ipid: c.guid("STDOBJREF.ipid")?,
        })
    }
}

/// One string binding: a protocol tower id and a network address (`host[port]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringBinding {
    pub tower_id: u16,
    pub address: String,
}

/// One security binding: an authentication service and a principal name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityBinding {
    pub authn_svc: u16,
    pub principal: String,
}

/// A `DUALSTRINGARRAY` (MS-DCOM 2.2.19): where an object exporter listens and how it authenticates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DualStringArray {
    pub string_bindings: Vec<StringBinding>,
    pub security_bindings: Vec<SecurityBinding>,
}

/// A decoded OBJREF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjRef {
    Standard { iid: [u8; 16], std: StdObjRef, resolver: DualStringArray },
    Custom { iid: [u8; 16], clsid: [u8; 16], object_data: Vec<u8> },
}

impl ObjRef {
    /// Decodes an OBJREF as found in an `MInterfacePointer`'s `abData`.
    pub fn decode(data: &[u8]) -> Result<ObjRef, DecodeError> {
        let mut c = Cursor::new(data);
        let offset = c.offset();
        let signature = c.u32("OBJREF.signature")?;
        if signature != MEOW {
            return Err(DecodeError::invalid("OBJREF.signature", offset, format!("{signature:#010x} is not MEOW")));
        }
        let offset = c.offset();
        let flags = c.u32("OBJREF.flags")?;
        let iid = c.guid("OBJREF.iid")?;
        match flags {
            FLAGS_STANDARD => {
                let std = StdObjRef::read(&mut c)?;
                let resolver = DualStringArray::decode_body(&mut c)?;
                Ok(ObjRef::Standard { iid, std, resolver })
            }
            FLAGS_CUSTOM => {
                let clsid = c.guid("OBJREF_CUSTOM.clsid")?;
                c.skip(4, "OBJREF_CUSTOM.cbExtension")?;
                // MS-DCOM calls this field reserved: WMI puts the size of pObjectData in it,
                // impacket that size plus 8 (the field and cbExtension) in activation
                // properties, and 0 leaves pObjectData running to the end.
                let size = c.u32("OBJREF_CUSTOM.size")? as usize;
                let rest = c.remaining();
                let size = if size == 0 || size == rest + 8 { rest } else { size };
                let object_data = c.bytes(size, "OBJREF_CUSTOM.pObjectData")?.to_vec();
                Ok(ObjRef::Custom { iid, clsid, object_data })
            }
            other => Err(DecodeError::invalid("OBJREF.flags", offset, format!("{other:#x} is not standard or custom"))),
        }
    }
}

impl ObjRef {
    /// Encodes the OBJREF as an `MInterfacePointer`'s `abData` carries it.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(MEOW.to_le_bytes());
        match self {
            ObjRef::Standard { iid, std, resolver } => {
                out.extend(FLAGS_STANDARD.to_le_bytes());
                out.extend(iid);
                out.extend(std.to_bytes());
                out.extend(resolver.encode());
            }
            ObjRef::Custom { iid, clsid, object_data } => {
                out.extend(FLAGS_CUSTOM.to_le_bytes());
                out.extend(iid);
                out.extend(clsid);
                out.extend(0u32.to_le_bytes());
                out.extend((object_data.len() as u32).to_le_bytes());
                out.extend(object_data);
            }
        }
        out
    }
}

impl DualStringArray {
    /// Encodes the array: string bindings, a NUL, security bindings, a NUL, each entry a
    /// NUL-terminated UTF-16 string after its tower id or authentication service.
    pub fn encode(&self) -> Vec<u8> {
        let mut units: Vec<u16> = Vec::new();
        for b in &self.string_bindings {
            units.push(b.tower_id);
            units.extend(b.address.encode_utf16().chain([0]));
        }
        units.push(0);
        let security_offset = units.len() as u16;
        for b in &self.security_bindings {
            units.push(b.authn_svc);
            units.push(0xFFFF);
            units.extend(b.principal.encode_utf16().chain([0]));
        }
        units.push(0);
        let mut out = Vec::with_capacity(4 + units.len() * 2);
        out.extend((units.len() as u16).to_le_bytes());
        out.extend(security_offset.to_le_bytes());
        for u in units {
            out.extend(u.to_le_bytes());
        }
        out
    }

    /// Decodes `wNumEntries`, `wSecurityOffset` and the entries.
    pub fn decode(data: &[u8]) -> Result<DualStringArray, DecodeError> {
        DualStringArray::decode_body(&mut Cursor::new(data))
    }

    fn decode_body(c: &mut Cursor<'_>) -> Result<DualStringArray, DecodeError> {
        let offset = c.offset();
        let entries = c.u16("wNumEntries")? as usize;
        let security_offset = c.u16("wSecurityOffset")? as usize;
        if security_offset > entries {
            return Err(DecodeError::invalid(
                "wSecurityOffset",
                offset,
                format!("{security_offset} is past the {entries} entries"),
            ));
        }
        let mut strings = c.take(security_offset * 2, "string bindings")?;
        let mut security = c.take((entries - security_offset) * 2, "security bindings")?;
        let mut out = DualStringArray::default();
        while strings.remaining() >= 2 {
            let tower_id = strings.u16("wTowerId")?;
            if tower_id == 0 {
                break;
            }
            out.string_bindings.push(StringBinding { tower_id, address: utf16z(&mut strings, "aNetworkAddr")? });
        }
        while security.remaining() >= 2 {
            let authn_svc = security.u16("wAuthnSvc")?;
            if authn_svc == 0 {
                break;
            }
            security.skip(2, "Reserved")?;
            out.security_bindings.push(SecurityBinding { authn_svc, principal: utf16z(&mut security, "aPrincName")? });
        }
        Ok(out)
    }
}

/// A NUL-terminated UTF-16LE string.
fn utf16z(c: &mut Cursor<'_>, what: &'static str) -> Result<String, DecodeError> {
    let mut units = Vec::new();
    loop {
        match c.u16(what)? {
            0 => return Ok(String::from_utf16_lossy(&units)),
            u => units.push(u),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ObjRef {
        ObjRef::Standard {
            iid: [1; 16],
            std: StdObjRef { flags: 0, public_refs: 5, oxid: 0x0102_0304_0506_0708, oid: 9, ipid: [2; 16] },
            resolver: DualStringArray {
                string_bindings: vec![
                    StringBinding { tower_id: 7, address: "HOST[49667]".into() },
                    StringBinding { tower_id: 7, address: "10.0.0.5[49667]".into() },
                ],
                security_bindings: vec![SecurityBinding { authn_svc: 10, principal: String::new() }],
            },
        }
    }

    #[test]
    fn objrefs_round_trip() {
        let std = sample();
        assert_eq!(ObjRef::decode(&std.encode()).unwrap(), std);
        let custom = ObjRef::Custom { iid: [3; 16], clsid: [4; 16], object_data: vec![1, 2, 3] };
        assert_eq!(ObjRef::decode(&custom.encode()).unwrap(), custom);
    }

    #[test]
    fn dual_string_array_layout() {
        let ObjRef::Standard { resolver, .. } = sample() else { unreachable!() };
        let bytes = resolver.encode();
        // 2 bindings of 1+11+1 and 1+15+1 units, a NUL, then 10, 0xFFFF, "", NUL, NUL.
        let entries = 13 + 17 + 1 + 3 + 1;
        assert_eq!(bytes[..4], [entries as u8, 0, 31, 0]);
        assert_eq!(bytes.len(), 4 + entries * 2);
        assert_eq!(DualStringArray::decode(&bytes).unwrap(), resolver);
        assert!(DualStringArray::decode(&[4, 0, 9, 0]).is_err());
    }

    #[test]
    fn bad_objrefs() {
        assert!(ObjRef::decode(b"WOEM").is_err());
        let mut handler = sample().encode();
        handler[4] = 2;
        assert!(matches!(ObjRef::decode(&handler), Err(DecodeError::Invalid { what: "OBJREF.flags", .. })));
        let custom = ObjRef::Custom { iid: [3; 16], clsid: [4; 16], object_data: vec![1, 2, 3] }.encode();
        assert!(ObjRef::decode(&custom[..custom.len() - 1]).is_err());
    }

    #[test]
    fn custom_size_conventions() {
        let mut custom = ObjRef::Custom { iid: [3; 16], clsid: [4; 16], object_data: vec![1, 2, 3] }.encode();
        for size in [0u32, 3 + 8] {
            custom[44..48].copy_from_slice(&size.to_le_bytes());
            let Ok(ObjRef::Custom { object_data, .. }) = ObjRef::decode(&custom) else { panic!("size {size}") };
            assert_eq!(object_data, [1, 2, 3]);
        }
        custom[44..48].copy_from_slice(&2u32.to_le_bytes());
        let Ok(ObjRef::Custom { object_data, .. }) = ObjRef::decode(&custom) else { panic!("size 2") };
        assert_eq!(object_data, [1, 2]);
    }
}
