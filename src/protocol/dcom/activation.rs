//! Remote activation (MS-DCOM 2.2.22, 3.1.2.5.2.3.3): `IRemoteSCMActivator::RemoteCreateInstance`
//! and the activation property blobs it carries.
//!
//! The request asks the SCM on port 135 to create an object (`WbemLevel1Login`) and return
//! one interface on it; the reply says which object exporter serves it (OXID, string
//! bindings), its `IRemUnknown`, the authentication level it wants, and the interface itself.
//! Each property is an NDR type serialization (MS-RPCE 2.2.6) of one structure.

use super::cursor::Cursor;
use super::ndr::{NdrReader, NdrWriter};
use super::objref::{DualStringArray, ObjRef};
use super::orpc::{ComVersion, InterfacePointer, OrpcThis, decode_interface, encode_interface};
use super::{DecodeError, guid};

const COM_SUFFIX: [u8; 8] = [0xC0, 0, 0, 0, 0, 0, 0, 0x46];

/// `{000001A2-0000-0000-C000-000000000046}`, the activation properties sent.
pub const CLSID_ACTIVATION_PROPERTIES_IN: [u8; 16] = guid(0x0000_01A2, 0, 0, COM_SUFFIX);
/// `{000001A3-…}`, the activation properties returned.
pub const CLSID_ACTIVATION_PROPERTIES_OUT: [u8; 16] = guid(0x0000_01A3, 0, 0, COM_SUFFIX);
/// `{000001A2-…}` is also the IID the blob is marshaled as (`IActivationPropertiesIn`).
pub const IID_IACTIVATION_PROPERTIES_IN: [u8; 16] = guid(0x0000_01A2, 0, 0, COM_SUFFIX);
/// `IRemoteSCMActivator` `{000001A0-0000-0000-C000-000000000046}`, served on port 135.
pub const IID_IREMOTE_SCM_ACTIVATOR: [u8; 16] = guid(0x0000_01A0, 0, 0, COM_SUFFIX);
pub const CLSID_INSTANTIATION_INFO: [u8; 16] = guid(0x0000_01AB, 0, 0, COM_SUFFIX);
pub const CLSID_ACTIVATION_CONTEXT_INFO: [u8; 16] = guid(0x0000_01A5, 0, 0, COM_SUFFIX);
pub const CLSID_SERVER_LOCATION_INFO: [u8; 16] = guid(0x0000_01A4, 0, 0, COM_SUFFIX);
pub const CLSID_SCM_REQUEST_INFO: [u8; 16] = guid(0x0000_01AA, 0, 0, COM_SUFFIX);
pub const CLSID_PROPS_OUT_INFO: [u8; 16] = guid(0x0000_0339, 0, 0, COM_SUFFIX);
pub const CLSID_SCM_REPLY_INFO: [u8; 16] = guid(0x0000_01B6, 0, 0, COM_SUFFIX);

/// `CLSCTX_REMOTE_SERVER`: create the object in a process on the remote machine.
const CLSCTX_REMOTE_SERVER: u32 = 0x10;
/// `MSHCTX_DIFFERENTMACHINE`, the destination context of a remote activation.
const MSHCTX_DIFFERENTMACHINE: u32 = 2;
/// Protocol sequence id of `ncacn_ip_tcp` in string bindings and requested protseqs.
pub const TOWER_NCACN_IP_TCP: u16 = 7;

/// What we ask the SCM for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationRequest {
    pub clsid: [u8; 16],
    pub iids: Vec<[u8; 16]>,
    pub client_version: ComVersion,
    /// `RPC_C_IMP_LEVEL_*` the client will use.
    pub imp_level: u32,
    pub protseqs: Vec<u16>,
}

/// One interface the SCM returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivatedInterface {
    pub iid: [u8; 16],
    pub hresult: u32,
    pub pointer: Option<InterfacePointer>,
}

/// What the SCM answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationReply {
    pub oxid: u64,
    /// Where the object exporter listens and which security services it offers.
    pub bindings: DualStringArray,
    pub ipid_rem_unknown: [u8; 16],
    /// The lowest authentication level the server accepts (`RPC_C_AUTHN_LEVEL_*`).
    pub authn_hint: u32,
    pub server_version: ComVersion,
    pub interfaces: Vec<ActivatedInterface>,
}

/// One type-serialized property: its class id and NDR body.
struct Property {
    clsid: [u8; 16],
    body: Vec<u8>,
}

/// Wraps an NDR body in the MS-RPCE 2.2.6 type serialization headers, padded to 8 bytes.
fn serialize(mut body: Vec<u8>) -> Vec<u8> {
    while !body.len().is_multiple_of(8) {
        body.push(0);
    }
    let mut out = Vec::with_capacity(16 + body.len());
    out.extend([1, 0x10, 8, 0]);
    out.extend(0xCCCC_CCCCu32.to_le_bytes());
    out.extend((body.len() as u32).to_le_bytes());
    out.extend(0xCCCC_CCCCu32.to_le_bytes());
    out.extend(body);
    out
}

/// Strips the type serialization headers, checking version and little-endian byte order.
fn deserialize<'a>(c: &mut Cursor<'a>, what: &'static str) -> Result<&'a [u8], DecodeError> {
    let offset = c.offset();
    let version = c.u8(what)?;
    let endianness = c.u8(what)?;
    if version != 1 || endianness != 0x10 {
        return Err(DecodeError::invalid(
            what,
            offset,
            format!("serialization version {version}, endianness {endianness:#x}"),
        ));
    }
    let header_len = c.u16(what)? as usize;
    c.skip(header_len.saturating_sub(4), what)?;
    let len = c.u32(what)? as usize;
    c.skip(4, what)?;
    c.bytes(len, what)
}

/// The activation blob (MS-DCOM 2.2.22.1): sizes, the custom header, then the properties.
fn blob(properties: &[Property], header_clsid: [u8; 16]) -> Vec<u8> {
    let props: Vec<Vec<u8>> = properties.iter().map(|p| serialize(p.body.clone())).collect();
    let header_for = |total: u32, header_size: u32| {
        let mut w = NdrWriter::new();
        w.u32(total);
        w.u32(header_size);
        w.u32(0);
        w.u32(MSHCTX_DIFFERENTMACHINE);
        w.u32(properties.len() as u32);
        w.guid(&header_clsid);
        w.pointer(true);
        w.pointer(true);
        w.pointer(false);
        w.u32(properties.len() as u32);
        properties.iter().for_each(|p| w.guid(&p.clsid));
        w.u32(props.len() as u32);
        props.iter().for_each(|p| w.u32(p.len() as u32));
        serialize(w.into_bytes())
    };
    // The header holds its own size and the total, which do not change its length.
    let header_size = header_for(0, 0).len() as u32;
    let total = header_size + props.iter().map(|p| p.len() as u32).sum::<u32>();
    let mut out = Vec::new();
    out.extend(total.to_le_bytes());
    out.extend(0u32.to_le_bytes());
    out.extend(header_for(total, header_size));
    props.iter().for_each(|p| out.extend(p));
    out
}

/// Splits a blob into (class id, property NDR body) pairs.
/// A property's class id and NDR body.
type RawProperty = ([u8; 16], Vec<u8>);

fn properties(blob: &[u8]) -> Result<Vec<RawProperty>, DecodeError> {
    let mut c = Cursor::new(blob);
    let total = c.u32("ActivationBlob.dwSize")? as usize;
    c.skip(4, "ActivationBlob.dwReserved")?;
    let mut all = c.take(total, "ActivationBlob")?;
    let header_start = all.offset();
    let header_body = deserialize(&mut all, "CustomHeader")?;
    let mut r = NdrReader::new(header_body);
    r.u32("CustomHeader.totalSize")?;
    let header_size = r.u32("CustomHeader.headerSize")? as usize;
    r.u32("CustomHeader.dwReserved")?;
    r.u32("CustomHeader.destCtx")?;
    let count = r.u32("CustomHeader.cIfs")?;
    r.guid("CustomHeader.classInfoClsid")?;
    let has_clsids = r.pointer("CustomHeader.pclsid")?;
    let has_sizes = r.pointer("CustomHeader.pSizes")?;
    r.pointer("CustomHeader.pdwReserved")?;
    if !has_clsids || !has_sizes {
        return Err(DecodeError::invalid("CustomHeader", header_start, "no property class ids or sizes"));
    }
    let clsids = conformant(&mut r, count, "CustomHeader.pclsid", |r| r.guid("clsid"))?;
    let sizes = conformant(&mut r, count, "CustomHeader.pSizes", |r| r.u32("size"))?;

    // Properties start headerSize bytes after the header's start, within dwSize.
    let mut props = all.at(header_size, "CustomHeader.headerSize")?;
    let mut out = Vec::with_capacity(clsids.len());
    for (clsid, size) in clsids.into_iter().zip(sizes) {
        let mut one = props.take(size as usize, "activation property")?;
        out.push((clsid, deserialize(&mut one, "activation property")?.to_vec()));
    }
    Ok(out)
}

/// A conformant array whose size must equal `count`, read element by element.
fn conformant<T>(
    r: &mut NdrReader<'_>,
    count: u32,
    what: &'static str,
    mut item: impl FnMut(&mut NdrReader<'_>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let max = r.u32(what)?;
    if max != count {
        return Err(DecodeError::invalid(what, 0, format!("{max} elements where {count} were announced")));
    }
    // Every element takes at least a byte, which bounds a lying count.
    let mut out = Vec::with_capacity((count as usize).min(r.remaining()));
    for _ in 0..count {
        out.push(item(r)?);
    }
    Ok(out)
}

impl ActivationRequest {
    /// A request for `iids` on a new `clsid` object, as Windows clients send it over TCP.
    pub fn new(clsid: [u8; 16], iids: Vec<[u8; 16]>) -> ActivationRequest {
        ActivationRequest {
            clsid,
            iids,
            client_version: ComVersion::V5_7,
            imp_level: 2,
            protseqs: vec![TOWER_NCACN_IP_TCP],
        }
    }

    /// The `IActivationPropertiesIn` blob.
    pub fn blob(&self) -> Vec<u8> {
        let instantiation = |this_size: u32| {
            let mut w = NdrWriter::new();
            w.guid(&self.clsid);
            w.u32(CLSCTX_REMOTE_SERVER);
            w.u32(0); // actvflags
            w.u32(0); // fIsSurrogate
            w.u32(self.iids.len() as u32);
            w.u32(0); // instFlag
            w.pointer(true);
            w.u32(this_size);
            w.u16(self.client_version.major);
            w.u16(self.client_version.minor);
            w.u32(self.iids.len() as u32);
            self.iids.iter().for_each(|i| w.guid(i));
            w.into_bytes()
        };
        // thisSize is the serialized size of the property itself, which it does not change.
        let this_size = serialize(instantiation(0)).len() as u32;

        let mut context = NdrWriter::new();
        (0..4).for_each(|_| context.u32(0)); // clientOK, bReserved1, dwReserved1, dwReserved2
        context.pointer(false); // pIFDClientCtx
        context.pointer(false); // pIFDPrototypeCtx

        let mut location = NdrWriter::new();
        location.pointer(false); // machineName
        (0..3).for_each(|_| location.u32(0)); // processId, apartmentId, contextId

        let mut scm = NdrWriter::new();
        scm.pointer(false); // pdwReserved
        scm.pointer(true); // remoteRequest
        scm.u32(self.imp_level);
        scm.u16(self.protseqs.len() as u16);
        scm.pointer(true);
        scm.u32(self.protseqs.len() as u32);
        self.protseqs.iter().for_each(|p| scm.u16(*p));

        blob(
            &[
                Property { clsid: CLSID_INSTANTIATION_INFO, body: instantiation(this_size) },
                Property { clsid: CLSID_ACTIVATION_CONTEXT_INFO, body: context.into_bytes() },
                Property { clsid: CLSID_SERVER_LOCATION_INFO, body: location.into_bytes() },
                Property { clsid: CLSID_SCM_REQUEST_INFO, body: scm.into_bytes() },
            ],
            CLSID_ACTIVATION_PROPERTIES_IN,
        )
    }

    /// The blob as the OBJREF_CUSTOM that `pActProperties` carries.
    pub fn interface_pointer(&self) -> InterfacePointer {
        let objref = ObjRef::Custom {
            iid: IID_IACTIVATION_PROPERTIES_IN,
            clsid: CLSID_ACTIVATION_PROPERTIES_IN,
            object_data: self.blob(),
        };
        InterfacePointer(objref.encode())
    }

    /// Reads the request back from its blob (InstantiationInfo and ScmRequestInfo).
    pub fn decode_blob(blob: &[u8]) -> Result<ActivationRequest, DecodeError> {
        let mut request = ActivationRequest::new([0; 16], Vec::new());
        let mut seen = false;
        for (clsid, body) in properties(blob)? {
            let mut r = NdrReader::new(&body);
            if clsid == CLSID_INSTANTIATION_INFO {
                seen = true;
                request.clsid = r.guid("classId")?;
                r.u32("classCtx")?;
                r.u32("actvflags")?;
                r.u32("fIsSurrogate")?;
                let count = r.u32("cIID")?;
                r.u32("instFlag")?;
                let has_iids = r.pointer("pIID")?;
                r.u32("thisSize")?;
                request.client_version =
                    ComVersion { major: r.u16("clientCOMVersion")?, minor: r.u16("clientCOMVersion")? };
                request.iids =
                    if has_iids { conformant(&mut r, count, "pIID", |r| r.guid("iid"))? } else { Vec::new() };
            } else if clsid == CLSID_SCM_REQUEST_INFO {
                r.pointer("pdwReserved")?;
                if r.pointer("remoteRequest")? {
                    request.imp_level = r.u32("ClientImpLevel")?;
                    let count = r.u16("cRequestedProtseqs")?;
                    request.protseqs = if r.pointer("pRequestedProtseqs")? {
                        conformant(&mut r, count.into(), "pRequestedProtseqs", |r| r.u16("protseq"))?
                    } else {
                        Vec::new()
                    };
                }
            }
        }
        if !seen {
            return Err(DecodeError::invalid("ActivationBlob", 0, "no InstantiationInfo property"));
        }
        Ok(request)
    }
}

impl ActivationReply {
    /// The `IActivationPropertiesOut` blob (PropsOutInfo, then ScmReplyInfo).
    pub fn blob(&self) -> Vec<u8> {
        let mut out = NdrWriter::new();
        let n = self.interfaces.len() as u32;
        out.u32(n);
        out.pointer(true);
        out.pointer(true);
        out.pointer(true);
        out.u32(n);
        self.interfaces.iter().for_each(|i| out.guid(&i.iid));
        out.u32(n);
        self.interfaces.iter().for_each(|i| out.u32(i.hresult));
        out.u32(n);
        for i in &self.interfaces {
            out.pointer(i.pointer.is_some());
        }
        for p in self.interfaces.iter().filter_map(|i| i.pointer.as_ref()) {
            p.encode_body(&mut out);
        }

        let mut scm = NdrWriter::new();
        scm.pointer(false); // pdwReserved
        scm.pointer(true); // remoteReply
        scm.u64(self.oxid);
        scm.pointer(true);
        scm.guid(&self.ipid_rem_unknown);
        scm.u32(self.authn_hint);
        scm.u16(self.server_version.major);
        scm.u16(self.server_version.minor);
        // DUALSTRINGARRAY is a conformant structure: its array size comes first.
        let dsa = self.bindings.encode();
        scm.u32(dsa.len().saturating_sub(4) as u32 / 2);
        scm.raw(&dsa);

        blob(
            &[
                Property { clsid: CLSID_PROPS_OUT_INFO, body: out.into_bytes() },
                Property { clsid: CLSID_SCM_REPLY_INFO, body: scm.into_bytes() },
            ],
            CLSID_ACTIVATION_PROPERTIES_OUT,
        )
    }

    /// Reads the SCM's answer from the `IActivationPropertiesOut` blob.
    pub fn decode_blob(blob: &[u8]) -> Result<ActivationReply, DecodeError> {
        let mut interfaces = None;
        let mut scm = None;
        for (clsid, body) in properties(blob)? {
            let mut r = NdrReader::new(&body);
            if clsid == CLSID_PROPS_OUT_INFO {
                interfaces = Some(props_out(&mut r)?);
            } else if clsid == CLSID_SCM_REPLY_INFO {
                scm = Some(scm_reply(&mut r)?);
            }
        }
        let (Some(interfaces), Some((oxid, bindings, ipid_rem_unknown, authn_hint, server_version))) =
            (interfaces, scm)
        else {
            return Err(DecodeError::invalid("ActivationBlob", 0, "no PropsOutInfo or ScmReplyInfo property"));
        };
        Ok(ActivationReply { oxid, bindings, ipid_rem_unknown, authn_hint, server_version, interfaces })
    }
}

fn props_out(r: &mut NdrReader<'_>) -> Result<Vec<ActivatedInterface>, DecodeError> {
    let count = r.u32("PropsOutInfo.cIfs")?;
    let (has_iids, has_results, has_data) = (r.pointer("piid")?, r.pointer("phresults")?, r.pointer("ppIntfData")?);
    if !(has_iids && has_results && has_data) {
        return Err(DecodeError::invalid("PropsOutInfo", 0, "a NULL array"));
    }
    let iids = conformant(r, count, "piid", |r| r.guid("iid"))?;
    let results = conformant(r, count, "phresults", |r| r.u32("hresult"))?;
    let present = conformant(r, count, "ppIntfData", |r| r.pointer("interface"))?;
    let mut out = Vec::with_capacity(iids.len());
    for ((iid, hresult), p) in iids.into_iter().zip(results).zip(present) {
        let pointer = if p { Some(InterfacePointer::decode_body(r, "ppIntfData element")?) } else { None };
        out.push(ActivatedInterface { iid, hresult, pointer });
    }
    Ok(out)
}

type ScmReply = (u64, DualStringArray, [u8; 16], u32, ComVersion);

fn scm_reply(r: &mut NdrReader<'_>) -> Result<ScmReply, DecodeError> {
    r.pointer("ScmReplyInfoData.pdwReserved")?;
    if !r.pointer("remoteReply")? {
        return Err(DecodeError::invalid("ScmReplyInfoData.remoteReply", 0, "NULL"));
    }
    let oxid = r.u64("Oxid")?;
    let has_bindings = r.pointer("pdsaOxidBindings")?;
    let ipid = r.guid("ipidRemUnknown")?;
    let authn_hint = r.u32("authnHint")?;
    let version = ComVersion { major: r.u16("serverVersion")?, minor: r.u16("serverVersion")? };
    let bindings = if has_bindings {
        let max = r.u32("DUALSTRINGARRAY conformance")? as usize;
        // wNumEntries and wSecurityOffset, then `max` 16-bit entries.
        let raw = r.bytes(4 + max.saturating_mul(2), "DUALSTRINGARRAY")?;
        DualStringArray::decode(raw)?
    } else {
        DualStringArray::default()
    };
    Ok((oxid, bindings, ipid, authn_hint, version))
}

/// `IRemoteSCMActivator::RemoteCreateInstance` (opnum 4) request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCreateInstance {
    pub orpc: OrpcThis,
    /// The `IActivationPropertiesIn` OBJREF.
    pub properties: InterfacePointer,
}

impl RemoteCreateInstance {
    pub const OPNUM: u16 = 4;

    pub fn encode(&self) -> Vec<u8> {
        let mut w = NdrWriter::new();
        self.orpc.encode(&mut w);
        w.pointer(false); // pUnkOuter
        encode_interface(&mut w, Some(&self.properties));
        w.into_bytes()
    }

    pub fn decode(stub: &[u8]) -> Result<RemoteCreateInstance, DecodeError> {
        let mut r = NdrReader::new(stub);
        let orpc = OrpcThis::decode(&mut r)?;
        if decode_interface(&mut r, "pUnkOuter")?.is_some() {
            return Err(DecodeError::invalid("pUnkOuter", 0, "aggregation is not supported"));
        }
        let properties = decode_interface(&mut r, "pActProperties")?
            .ok_or_else(|| DecodeError::invalid("pActProperties", 0, "NULL"))?;
        r.finish("RemoteCreateInstance")?;
        Ok(RemoteCreateInstance { orpc, properties })
    }
}

/// The reply's activation properties, unwrapped from their OBJREF_CUSTOM.
pub fn reply_blob(reply: &super::orpc::InterfaceReply) -> Result<Vec<u8>, DecodeError> {
    match reply.interface.as_ref().map(InterfacePointer::objref).transpose()? {
        Some(ObjRef::Custom { object_data, .. }) => Ok(object_data),
        _ => Err(DecodeError::invalid("ppActProperties", 0, "not an OBJREF_CUSTOM")),
    }
}

/// The reply to RemoteCreateInstance is an interface reply.
pub type RemoteCreateInstanceReply = super::orpc::InterfaceReply;
