//! ORPC framing shared by every DCOM call (MS-DCOM 2.2.13–2.2.14): the ORPCTHIS/ORPCTHAT
//! headers, marshaled interface pointers and HRESULTs.

use super::DecodeError;
use super::ndr::{NdrReader, NdrWriter};
use super::objref::ObjRef;

/// COM protocol version of an ORPC call (MS-DCOM 2.2.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComVersion {
    pub major: u16,
    pub minor: u16,
}

impl ComVersion {
    /// 5.7, what current Windows speaks.
    pub const V5_7: ComVersion = ComVersion { major: 5, minor: 7 };
}

/// `ORPCTHIS` (MS-DCOM 2.2.13.3), the header of every ORPC request. Extensions are never sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrpcThis {
    pub version: ComVersion,
    pub flags: u32,
    /// Causality id, the same for every call made on behalf of one logical operation.
    pub cid: [u8; 16],
}

impl OrpcThis {
    pub fn new(cid: [u8; 16]) -> OrpcThis {
        OrpcThis { version: ComVersion::V5_7, flags: 0, cid }
    }

    pub(crate) fn encode(&self, w: &mut NdrWriter) {
        w.u16(self.version.major);
        w.u16(self.version.minor);
        w.u32(self.flags);
        w.u32(0); // reserved1
        w.guid(&self.cid);
        w.pointer(false); // extensions
    }

    pub(crate) fn decode(r: &mut NdrReader<'_>) -> Result<OrpcThis, DecodeError> {
        let version = ComVersion { major: r.u16("COMVERSION.MajorVersion")?, minor: r.u16("COMVERSION.MinorVersion")? };
        let flags = r.u32("ORPCTHIS.flags")?;
        r.u32("ORPCTHIS.reserved1")?;
        let cid = r.guid("ORPCTHIS.cid")?;
        no_pointee(r, "ORPCTHIS.extensions")?;
        Ok(OrpcThis { version, flags, cid })
    }
}

/// `ORPCTHAT` (MS-DCOM 2.2.13.4), the header of every ORPC response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrpcThat {
    pub flags: u32,
}

impl OrpcThat {
    pub fn encode(&self, w: &mut NdrWriter) {
        w.u32(self.flags);
        w.pointer(false);
    }

    /// Reads the header; extensions, which only debugging hooks send, are refused.
    pub fn decode(r: &mut NdrReader<'_>) -> Result<OrpcThat, DecodeError> {
        let flags = r.u32("ORPCTHAT.flags")?;
        no_pointee(r, "ORPCTHAT.extensions")?;
        Ok(OrpcThat { flags })
    }
}

pub(crate) fn no_pointee(r: &mut NdrReader<'_>, what: &'static str) -> Result<(), DecodeError> {
    if r.pointer(what)? {
        return Err(DecodeError::invalid(what, 0, "a non-NULL pointer where only NULL is supported"));
    }
    Ok(())
}

/// A marshaled interface pointer (`MInterfacePointer`, MS-DCOM 2.2.14): the OBJREF bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfacePointer(pub Vec<u8>);

impl InterfacePointer {
    /// Decodes the OBJREF it carries.
    pub fn objref(&self) -> Result<ObjRef, DecodeError> {
        ObjRef::decode(&self.0)
    }

    /// The pointee: the hoisted conformance, `ulCntData`, then `abData`.
    pub(crate) fn encode_body(&self, w: &mut NdrWriter) {
        let n = self.0.len() as u32;
        w.u32(n);
        w.u32(n);
        w.raw(&self.0);
    }

    pub(crate) fn decode_body(r: &mut NdrReader<'_>, what: &'static str) -> Result<InterfacePointer, DecodeError> {
        let max = r.u32(what)?;
        let count = r.u32(what)?;
        if count != max {
            return Err(DecodeError::invalid(what, 0, format!("ulCntData {count} with conformance {max}")));
        }
        Ok(InterfacePointer(r.bytes(count as usize, what)?.to_vec()))
    }
}

/// A top-level `[unique] MInterfacePointer*`.
pub(crate) fn encode_interface(w: &mut NdrWriter, p: Option<&InterfacePointer>) {
    if let Some(p) = p {
        w.pointer(true);
        p.encode_body(w);
    } else {
        w.pointer(false);
    }
}

pub(crate) fn decode_interface(
    r: &mut NdrReader<'_>,
    what: &'static str,
) -> Result<Option<InterfacePointer>, DecodeError> {
    if r.pointer(what)? { InterfacePointer::decode_body(r, what).map(Some) } else { Ok(None) }
}

/// The reply of calls that return one interface and an HRESULT (`NTLMLogin`, `ExecQuery`,
/// `GetSmartEnum`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceReply {
    pub orpc: OrpcThat,
    pub interface: Option<InterfacePointer>,
    pub hresult: u32,
}

impl InterfaceReply {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = NdrWriter::new();
        self.orpc.encode(&mut w);
        encode_interface(&mut w, self.interface.as_ref());
        w.u32(self.hresult);
        w.into_bytes()
    }

    pub fn decode(stub: &[u8]) -> Result<InterfaceReply, DecodeError> {
        let mut r = NdrReader::new(stub);
        let orpc = OrpcThat::decode(&mut r)?;
        let interface = decode_interface(&mut r, "interface pointer")?;
        let hresult = r.u32("HRESULT")?;
        r.finish("reply")?;
        Ok(InterfaceReply { orpc, interface, hresult })
    }
}

/// The reply of calls that return only an HRESULT (`RemRelease`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusReply {
    pub orpc: OrpcThat,
    pub hresult: u32,
}

impl StatusReply {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = NdrWriter::new();
        self.orpc.encode(&mut w);
        w.u32(self.hresult);
        w.into_bytes()
    }

    pub fn decode(stub: &[u8]) -> Result<StatusReply, DecodeError> {
        let mut r = NdrReader::new(stub);
        let orpc = OrpcThat::decode(&mut r)?;
        let hresult = r.u32("HRESULT")?;
        r.finish("reply")?;
        Ok(StatusReply { orpc, hresult })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_reply_round_trips() {
        let reply = InterfaceReply {
            orpc: OrpcThat { flags: 0 },
            interface: Some(InterfacePointer(vec![1, 2, 3])),
            hresult: 0,
        };
        assert_eq!(InterfaceReply::decode(&reply.encode()).unwrap(), reply);
        let none = InterfaceReply { interface: None, hresult: 0x8004_1010, ..reply };
        assert_eq!(InterfaceReply::decode(&none.encode()).unwrap(), none);
        let mut lying = reply.encode();
        lying[12] = 9;
        assert!(InterfaceReply::decode(&lying).is_err());
    }

    #[test]
    fn orpcthat_round_trips_and_refuses_extensions() {
        let mut w = NdrWriter::new();
        OrpcThat { flags: 1 }.encode(&mut w);
        let b = w.into_bytes();
        assert_eq!(OrpcThat::decode(&mut NdrReader::new(&b)).unwrap(), OrpcThat { flags: 1 });
        let with_ext = [0u8, 0, 0, 0, 4, 0, 2, 0];
        assert!(OrpcThat::decode(&mut NdrReader::new(&with_ext)).is_err());
    }
}
