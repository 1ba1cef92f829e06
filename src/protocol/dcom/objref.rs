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
                let std = StdObjRef {
                    flags: c.u32("STDOBJREF.flags")?,
                    public_refs: c.u32("STDOBJREF.cPublicRefs")?,
                    oxid: c.u64("STDOBJREF.oxid")?,
                    oid: c.u64("STDOBJREF.oid")?,
                    ipid: c.guid("STDOBJREF.ipid")?,
                };
                let resolver = DualStringArray::decode_body(&mut c)?;
                Ok(ObjRef::Standard { iid, std, resolver })
            }
            FLAGS_CUSTOM => {
                let clsid = c.guid("OBJREF_CUSTOM.clsid")?;
                c.skip(4, "OBJREF_CUSTOM.cbExtension")?;
                // MS-DCOM calls this field reserved; WMI puts the size of pObjectData in it.
                let size = c.u32("OBJREF_CUSTOM.size")? as usize;
                let object_data = c.bytes(size, "OBJREF_CUSTOM.pObjectData")?.to_vec();
                Ok(ObjRef::Custom { iid, clsid, object_data })
            }
            other => Err(DecodeError::invalid("OBJREF.flags", offset, format!("{other:#x} is not standard or custom"))),
        }
    }
}

impl DualStringArray {
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
