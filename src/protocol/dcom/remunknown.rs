//! `IRemUnknown` (MS-DCOM 3.1.1.5.6): asking an object for another interface, and releasing
//! references so the server can free the objects a query created.

use super::ndr::{NdrReader, NdrWriter};
use super::objref::StdObjRef;
use super::orpc::{OrpcThat, OrpcThis};
use super::{DecodeError, guid};

/// `IRemUnknown` `{00000131-0000-0000-C000-000000000046}`.
pub const IID_IREM_UNKNOWN: [u8; 16] = guid(0x0000_0131, 0, 0, [0xC0, 0, 0, 0, 0, 0, 0, 0x46]);
/// `IRemUnknown2` `{00000143-0000-0000-C000-000000000046}`, what the activation's IPID answers to.
pub const IID_IREM_UNKNOWN2: [u8; 16] = guid(0x0000_0143, 0, 0, [0xC0, 0, 0, 0, 0, 0, 0, 0x46]);

/// `RemQueryInterface` (opnum 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemQueryInterface {
    pub orpc: OrpcThis,
    /// The interface to ask (its IPID).
    pub ipid: [u8; 16],
    pub refs: u32,
    pub iids: Vec<[u8; 16]>,
}

impl RemQueryInterface {
    pub const OPNUM: u16 = 3;

    pub fn encode(&self) -> Vec<u8> {
        let mut w = NdrWriter::new();
        self.orpc.encode(&mut w);
        w.guid(&self.ipid);
        w.u32(self.refs);
        w.u16(self.iids.len() as u16);
        w.u32(self.iids.len() as u32);
        for iid in &self.iids {
            w.guid(iid);
        }
        w.into_bytes()
    }

    pub fn decode(stub: &[u8]) -> Result<RemQueryInterface, DecodeError> {
        let mut r = NdrReader::new(stub);
        let orpc = OrpcThis::decode(&mut r)?;
        let ipid = r.guid("ripid")?;
        let refs = r.u32("cRefs")?;
        let count = r.u16("cIids")?;
        conformance(&mut r, count, "iids")?;
        let iids = (0..count).map(|_| r.guid("iid")).collect::<Result<_, _>>()?;
        r.finish("RemQueryInterface")?;
        Ok(RemQueryInterface { orpc, ipid, refs, iids })
    }
}

/// One `REMQIRESULT`: the outcome for one IID and, on success, the new interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QiResult {
    pub hresult: u32,
    pub std: StdObjRef,
}

/// The reply to `RemQueryInterface`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemQueryInterfaceReply {
    pub orpc: OrpcThat,
    pub results: Vec<QiResult>,
    pub hresult: u32,
}

impl RemQueryInterfaceReply {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = NdrWriter::new();
        self.orpc.encode(&mut w);
        if w.pointer(!self.results.is_empty()) {
            w.u32(self.results.len() as u32);
            for q in &self.results {
                // REMQIRESULT holds hypers, so each element is 8-byte aligned.
                w.align(8);
                w.u32(q.hresult);
                w.align(8);
                w.raw(&q.std.to_bytes());
            }
        }
        w.u32(self.hresult);
        w.into_bytes()
    }

    pub fn decode(stub: &[u8]) -> Result<RemQueryInterfaceReply, DecodeError> {
        let mut r = NdrReader::new(stub);
        let orpc = OrpcThat::decode(&mut r)?;
        let mut results = Vec::new();
        if r.pointer("ppQIResults")? {
            let count = r.u32("ppQIResults conformance")?;
            // Each element takes 48 bytes, which bounds what a lying count can allocate.
            for _ in 0..count.min(stub.len() as u32 / 48 + 1) {
                r.align(8)?;
                let hresult = r.u32("REMQIRESULT.hResult")?;
                r.align(8)?;
                let std = StdObjRef::read(r.cursor())?;
                results.push(QiResult { hresult, std });
            }
            if results.len() != count as usize {
                return Err(DecodeError::invalid("ppQIResults", 0, format!("{count} results claimed")));
            }
        }
        let hresult = r.u32("HRESULT")?;
        r.finish("RemQueryInterface reply")?;
        Ok(RemQueryInterfaceReply { orpc, results, hresult })
    }
}

/// One `REMINTERFACEREF`: references to give back on one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemInterfaceRef {
    pub ipid: [u8; 16],
    pub public_refs: u32,
    pub private_refs: u32,
}

/// `RemRelease` (opnum 5); the reply is a [`super::orpc::StatusReply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemRelease {
    pub orpc: OrpcThis,
    pub refs: Vec<RemInterfaceRef>,
}

impl RemRelease {
    pub const OPNUM: u16 = 5;

    pub fn encode(&self) -> Vec<u8> {
        let mut w = NdrWriter::new();
        self.orpc.encode(&mut w);
        w.u16(self.refs.len() as u16);
        w.u32(self.refs.len() as u32);
        for r in &self.refs {
            w.guid(&r.ipid);
            w.u32(r.public_refs);
            w.u32(r.private_refs);
        }
        w.into_bytes()
    }

    pub fn decode(stub: &[u8]) -> Result<RemRelease, DecodeError> {
        let mut r = NdrReader::new(stub);
        let orpc = OrpcThis::decode(&mut r)?;
        let count = r.u16("cInterfaceRefs")?;
        conformance(&mut r, count, "InterfaceRefs")?;
        let mut refs = Vec::new();
        for _ in 0..count {
            refs.push(RemInterfaceRef {
                ipid: r.guid("REMINTERFACEREF.ipid")?,
                public_refs: r.u32("REMINTERFACEREF.cPublicRefs")?,
                private_refs: r.u32("REMINTERFACEREF.cPrivateRefs")?,
            });
        }
        r.finish("RemRelease")?;
        Ok(RemRelease { orpc, refs })
    }
}

/// A top-level `[size_is(n)]` array's conformance, which must equal the count argument.
fn conformance(r: &mut NdrReader<'_>, n: u16, what: &'static str) -> Result<(), DecodeError> {
    let max = r.u32(what)?;
    if max != u32::from(n) {
        return Err(DecodeError::invalid(what, 0, format!("conformance {max} for {n} elements")));
    }
    Ok(())
}
