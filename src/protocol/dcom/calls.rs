//! The stubs of the WMI calls a query makes (MS-WMI 3.1.4): requests and their replies, each
//! with an encoder and a decoder (we send requests and read replies; tests and fuzzers use both).

use super::ndr::{NdrReader, NdrWriter};
use super::orpc::{InterfacePointer, OrpcThat, OrpcThis, no_pointee};
use super::{DecodeError, guid};

pub use super::orpc::InterfaceReply;

const WBEM_SUFFIX: [u8; 8] = [0xA0, 0x75, 0x00, 0xC0, 0x4F, 0xB6, 0x88, 0x20];

/// `{8BC3F05E-D86B-11D0-A075-00C04FB68820}`, the object WMI logins start from.
pub const CLSID_WBEM_LEVEL1_LOGIN: [u8; 16] = guid(0x8BC3_F05E, 0xD86B, 0x11D0, WBEM_SUFFIX);
/// `{F309AD18-D86A-11D0-A075-00C04FB68820}`
pub const IID_IWBEM_LEVEL1_LOGIN: [u8; 16] = guid(0xF309_AD18, 0xD86A, 0x11D0, WBEM_SUFFIX);
/// `{9556DC99-828C-11CF-A37E-00AA003240C7}`
pub const IID_IWBEM_SERVICES: [u8; 16] =
    guid(0x9556_DC99, 0x828C, 0x11CF, [0xA3, 0x7E, 0x00, 0xAA, 0x00, 0x32, 0x40, 0xC7]);
/// `{027947E1-D731-11CE-A357-000000000001}`
pub const IID_IENUM_WBEM_CLASS_OBJECT: [u8; 16] =
    guid(0x0279_47E1, 0xD731, 0x11CE, [0xA3, 0x57, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01]);
/// `{1C1C45EE-4395-11D2-B60B-00104B703EFD}`
pub const IID_IWBEM_FETCH_SMART_ENUM: [u8; 16] =
    guid(0x1C1C_45EE, 0x4395, 0x11D2, [0xB6, 0x0B, 0x00, 0x10, 0x4B, 0x70, 0x3E, 0xFD]);
/// `{423EC01E-2E35-11D2-B604-00104B703EFD}`
pub const IID_IWBEM_WCO_SMART_ENUM: [u8; 16] =
    guid(0x423E_C01E, 0x2E35, 0x11D2, [0xB6, 0x04, 0x00, 0x10, 0x4B, 0x70, 0x3E, 0xFD]);

fn optional_wstr(w: &mut NdrWriter, s: Option<&str>) {
    if let Some(s) = s {
        w.pointer(true);
        w.conformant_varying_wstr(s);
    } else {
        w.pointer(false);
    }
}

fn read_optional_wstr(r: &mut NdrReader<'_>, what: &'static str) -> Result<Option<String>, DecodeError> {
    if r.pointer(what)? { r.conformant_varying_wstr(what).map(Some) } else { Ok(None) }
}

fn bstr(w: &mut NdrWriter, s: &str) {
    w.pointer(true);
    w.flagged_word_blob(s);
}

fn read_bstr(r: &mut NdrReader<'_>, what: &'static str) -> Result<String, DecodeError> {
    if !r.pointer(what)? {
        return Err(DecodeError::invalid(what, 0, "a NULL BSTR"));
    }
    r.flagged_word_blob(what)
}

/// `IWbemLevel1Login::NTLMLogin` (opnum 6): opens a namespace, returning `IWbemServices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtlmLogin {
    pub orpc: OrpcThis,
    /// The namespace, as `//./root/cimv2`.
    pub network_resource: Option<String>,
    pub preferred_locale: Option<String>,
    pub flags: i32,
}

impl NtlmLogin {
    pub const OPNUM: u16 = 6;

    pub fn encode(&self) -> Vec<u8> {
        let mut w = NdrWriter::new();
        self.orpc.encode(&mut w);
        optional_wstr(&mut w, self.network_resource.as_deref());
        optional_wstr(&mut w, self.preferred_locale.as_deref());
        w.u32(self.flags as u32);
        w.pointer(false); // pCtx
        w.into_bytes()
    }

    pub fn decode(stub: &[u8]) -> Result<NtlmLogin, DecodeError> {
        let mut r = NdrReader::new(stub);
        let orpc = OrpcThis::decode(&mut r)?;
        let network_resource = read_optional_wstr(&mut r, "wszNetworkResource")?;
        let preferred_locale = read_optional_wstr(&mut r, "wszPreferredLocale")?;
        let flags = r.u32("lFlags")? as i32;
        no_pointee(&mut r, "pCtx")?;
        r.finish("NTLMLogin")?;
        Ok(NtlmLogin { orpc, network_resource, preferred_locale, flags })
    }
}

/// `WBEM_FLAG_RETURN_IMMEDIATELY`: the call returns before the query has run.
pub const WBEM_FLAG_RETURN_IMMEDIATELY: i32 = 0x10;
/// `WBEM_FLAG_FORWARD_ONLY`: the enumerator cannot be reset, so the server keeps no copy.
pub const WBEM_FLAG_FORWARD_ONLY: i32 = 0x20;

/// `IWbemServices::ExecQuery` (opnum 20): starts a query, returning `IEnumWbemClassObject`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecQuery {
    pub orpc: OrpcThis,
    pub language: String,
    pub query: String,
    pub flags: i32,
}

impl ExecQuery {
    pub const OPNUM: u16 = 20;

    /// A WQL query with the flags a streaming client uses.
    pub fn wql(orpc: OrpcThis, query: &str) -> ExecQuery {
        ExecQuery {
            orpc,
            language: "WQL".into(),
            query: query.into(),
            flags: WBEM_FLAG_RETURN_IMMEDIATELY | WBEM_FLAG_FORWARD_ONLY,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = NdrWriter::new();
        self.orpc.encode(&mut w);
        bstr(&mut w, &self.language);
        bstr(&mut w, &self.query);
        w.u32(self.flags as u32);
        w.pointer(false); // pCtx
        w.into_bytes()
    }

    pub fn decode(stub: &[u8]) -> Result<ExecQuery, DecodeError> {
        let mut r = NdrReader::new(stub);
        let orpc = OrpcThis::decode(&mut r)?;
        let language = read_bstr(&mut r, "strQueryLanguage")?;
        let query = read_bstr(&mut r, "strQuery")?;
        let flags = r.u32("lFlags")? as i32;
        no_pointee(&mut r, "pCtx")?;
        r.finish("ExecQuery")?;
        Ok(ExecQuery { orpc, language, query, flags })
    }
}

/// `IEnumWbemClassObject::Next` (opnum 4): asks for up to `count` objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumNext {
    pub orpc: OrpcThis,
    /// Milliseconds, or `0xFFFFFFFF` (WBEM_INFINITE).
    pub timeout: u32,
    pub count: u32,
}

impl EnumNext {
    pub const OPNUM: u16 = 4;

    pub fn encode(&self) -> Vec<u8> {
        let mut w = NdrWriter::new();
        self.orpc.encode(&mut w);
        w.u32(self.timeout);
        w.u32(self.count);
        w.into_bytes()
    }

    pub fn decode(stub: &[u8]) -> Result<EnumNext, DecodeError> {
        let mut r = NdrReader::new(stub);
        let orpc = OrpcThis::decode(&mut r)?;
        let timeout = r.u32("lTimeout")?;
        let count = r.u32("uCount")?;
        r.finish("Next")?;
        Ok(EnumNext { orpc, timeout, count })
    }
}

/// The reply to `IEnumWbemClassObject::Next`: up to `uCount` `IWbemClassObject` pointers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumNextReply {
    pub orpc: OrpcThat,
    /// The objects, each an OBJREF_CUSTOM holding an MS-WMIO encoding unit.
    pub objects: Vec<InterfacePointer>,
    pub returned: u32,
    /// `WBEM_S_FALSE` (1) when fewer than asked remain, `WBEM_S_TIMEDOUT` when none came in time.
    pub hresult: u32,
}

impl EnumNextReply {
    /// Encodes with `requested` as the array's conformance, as the server sizes it by `uCount`.
    pub fn encode(&self, requested: u32) -> Vec<u8> {
        let mut w = NdrWriter::new();
        self.orpc.encode(&mut w);
        w.u32(requested.max(self.objects.len() as u32));
        w.u32(0);
        w.u32(self.objects.len() as u32);
        for _ in &self.objects {
            w.pointer(true);
        }
        for o in &self.objects {
            o.encode_body(&mut w);
        }
        w.u32(self.returned);
        w.u32(self.hresult);
        w.into_bytes()
    }

    pub fn decode(stub: &[u8]) -> Result<EnumNextReply, DecodeError> {
        let mut r = NdrReader::new(stub);
        let orpc = OrpcThat::decode(&mut r)?;
        let max = r.u32("apObjects conformance")?;
        let first = r.u32("apObjects offset")?;
        let count = r.u32("apObjects count")?;
        if first != 0 || count > max {
            return Err(DecodeError::invalid("apObjects", 0, format!("offset {first}, {count} of {max} elements")));
        }
        // Referent ids first, then the pointees they stand for, in the same order.
        let ids = r.bytes((count as usize).saturating_mul(4), "apObjects referents")?;
        let present: Vec<bool> = ids.chunks_exact(4).map(|id| id.iter().any(|&b| b != 0)).collect();
        let mut objects = Vec::with_capacity(present.len());
        for p in present {
            if p {
                objects.push(InterfacePointer::decode_body(&mut r, "apObjects element")?);
            }
        }
        let returned = r.u32("puReturned")?;
        let hresult = r.u32("HRESULT")?;
        r.finish("Next reply")?;
        Ok(EnumNextReply { orpc, objects, returned, hresult })
    }
}

/// `IWbemFetchSmartEnum::GetSmartEnum` (opnum 3): no arguments beyond the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetSmartEnum {
    pub orpc: OrpcThis,
}

impl GetSmartEnum {
    pub const OPNUM: u16 = 3;

    pub fn encode(&self) -> Vec<u8> {
        let mut w = NdrWriter::new();
        self.orpc.encode(&mut w);
        w.into_bytes()
    }

    pub fn decode(stub: &[u8]) -> Result<GetSmartEnum, DecodeError> {
        let mut r = NdrReader::new(stub);
        let orpc = OrpcThis::decode(&mut r)?;
        r.finish("GetSmartEnum")?;
        Ok(GetSmartEnum { orpc })
    }
}

/// `IWbemWCOSmartEnum::Next` (opnum 3): asks for a batch as one `WBEMDATA` buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmartNext {
    pub orpc: OrpcThis,
    /// Identifies the client's class cache to the server (MS-WMI 3.1.4.7.1).
    pub proxy_guid: [u8; 16],
    pub timeout: i32,
    pub count: u32,
}

impl SmartNext {
    pub const OPNUM: u16 = 3;

    pub fn encode(&self) -> Vec<u8> {
        let mut w = NdrWriter::new();
        self.orpc.encode(&mut w);
        // REFGUID is a top-level [in] reference pointer: only the GUID travels.
        w.guid(&self.proxy_guid);
        w.u32(self.timeout as u32);
        w.u32(self.count);
        w.into_bytes()
    }

    pub fn decode(stub: &[u8]) -> Result<SmartNext, DecodeError> {
        let mut r = NdrReader::new(stub);
        let orpc = OrpcThis::decode(&mut r)?;
        let proxy_guid = r.guid("proxyGUID")?;
        let timeout = r.u32("lTimeout")? as i32;
        let count = r.u32("uCount")?;
        r.finish("SmartNext")?;
        Ok(SmartNext { orpc, proxy_guid, timeout, count })
    }
}

/// The reply to `IWbemWCOSmartEnum::Next`: a `WBEMDATA` buffer (see `wmio::packet`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmartNextReply {
    pub orpc: OrpcThat,
    pub returned: u32,
    pub buffer: Vec<u8>,
    pub hresult: u32,
}

impl SmartNextReply {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = NdrWriter::new();
        self.orpc.encode(&mut w);
        w.u32(self.returned);
        w.u32(self.buffer.len() as u32);
        w.pointer(true);
        w.u32(self.buffer.len() as u32);
        w.raw(&self.buffer);
        w.u32(self.hresult);
        w.into_bytes()
    }

    pub fn decode(stub: &[u8]) -> Result<SmartNextReply, DecodeError> {
        let mut r = NdrReader::new(stub);
        let orpc = OrpcThat::decode(&mut r)?;
        let returned = r.u32("puReturned")?;
        let size = r.u32("pdwBuffSize")?;
        let buffer = if r.pointer("pBuffer")? {
            let max = r.u32("pBuffer conformance")?;
            if max != size {
                return Err(DecodeError::invalid("pBuffer", 0, format!("conformance {max}, pdwBuffSize {size}")));
            }
            r.bytes(size as usize, "pBuffer")?.to_vec()
        } else {
            Vec::new()
        };
        let hresult = r.u32("HRESULT")?;
        r.finish("SmartNext reply")?;
        Ok(SmartNextReply { orpc, returned, buffer, hresult })
    }
}
