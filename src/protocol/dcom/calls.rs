//! ORPC headers and the request stubs of the WMI calls a query makes (MS-DCOM 2.2.13,
//! MS-WMI 3.1.4): encoders for what we send, decoders to check them against recordings.

use super::DecodeError;
use super::ndr::{NdrReader, NdrWriter};

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

    fn encode(&self, w: &mut NdrWriter) {
        w.u16(self.version.major);
        w.u16(self.version.minor);
        w.u32(self.flags);
        w.u32(0); // reserved1
        w.guid(&self.cid);
        w.pointer(false); // extensions
    }

    fn decode(r: &mut NdrReader<'_>) -> Result<OrpcThis, DecodeError> {
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

fn no_pointee(r: &mut NdrReader<'_>, what: &'static str) -> Result<(), DecodeError> {
    if r.pointer(what)? {
        return Err(DecodeError::invalid(what, 0, "a non-NULL pointer where only NULL is supported"));
    }
    Ok(())
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
