//! Connection-oriented DCE/RPC (C706 chapter 12, MS-RPCE 2.2.2) as a sans-IO client: it turns
//! calls into PDUs and PDUs into results, and leaves reading and writing sockets to the caller.
//!
//! One [`Connection`] is one association: a bind (with the NTLM NEGOTIATE), its bind_ack (the
//! CHALLENGE) answered by an auth3 (the AUTHENTICATE), then requests on presentation contexts
//! added with alter_context. At packet integrity every PDU after the handshake is signed over
//! all its bytes up to the signature (MS-RPCE 3.3.1.5.2.2: NTLM always signs the header); at
//! packet privacy the stub is sealed too. Every signature the server sends is verified.

use super::cursor::Cursor;
use super::ntlm::{Nonces, NtlmClient};
use crate::protocol::ntlm::{NtlmSession, SIGNATURE_LEN};
use crate::protocol::{Category, Error};

/// PDU types (C706 12.6.4.1).
pub mod ptype {
    pub const REQUEST: u8 = 0;
    pub const RESPONSE: u8 = 2;
    pub const FAULT: u8 = 3;
    pub const BIND: u8 = 11;
    pub const BIND_ACK: u8 = 12;
    pub const BIND_NAK: u8 = 13;
    pub const ALTER_CONTEXT: u8 = 14;
    pub const ALTER_CONTEXT_RESP: u8 = 15;
    pub const AUTH3: u8 = 16;
    pub const SHUTDOWN: u8 = 17;
}

/// `pfc_flags` bits.
pub mod pfc {
    pub const FIRST_FRAG: u8 = 0x01;
    pub const LAST_FRAG: u8 = 0x02;
    pub const DID_NOT_EXECUTE: u8 = 0x20;
    pub const OBJECT_UUID: u8 = 0x80;
}

/// Length of the common header of every PDU.
pub const HEADER_LEN: usize = 16;
/// Length of the sec_trailer that precedes an auth value.
const TRAILER_LEN: usize = 8;
/// NTLM as an RPC authentication service (RPC_C_AUTHN_WINNT).
pub const AUTHN_WINNT: u8 = 10;
/// The transfer syntax every context proposes: NDR 2.0.
pub const NDR: SyntaxId = SyntaxId {
    uuid: super::guid(0x8a88_5d04, 0x1ceb, 0x11c9, [0x9f, 0xe8, 0x08, 0x00, 0x2b, 0x10, 0x48, 0x60]),
    major: 2,
    minor: 0,
};
/// Fragment size we offer and, absent a smaller answer, use: what Windows offers over TCP.
pub const DEFAULT_MAX_FRAG: u16 = 5840;
/// Largest reassembled response we accept, so a peer cannot make us buffer without bound.
pub const MAX_RESPONSE: usize = 64 << 20;

/// An interface or transfer syntax: UUID (wire order) and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntaxId {
    pub uuid: [u8; 16],
    pub major: u16,
    pub minor: u16,
}

impl SyntaxId {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend(self.uuid);
        out.extend(self.major.to_le_bytes());
        out.extend(self.minor.to_le_bytes());
    }
}

/// RPC authentication levels (MS-RPCE 2.2.1.1.8) this client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AuthLevel {
    /// No authentication (only for tests and unauthenticated endpoints).
    None = 1,
    /// Every PDU signed.
    Integrity = 5,
    /// Every PDU signed and every stub sealed.
    Privacy = 6,
}

/// The common header (C706 12.6.3.1), after checking the version and data representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub ptype: u8,
    pub flags: u8,
    pub frag_len: u16,
    pub auth_len: u16,
    pub call_id: u32,
}

impl Header {
    /// Decodes and checks the first 16 bytes of a PDU.
    pub fn decode(pdu: &[u8]) -> Result<Header, Error> {
        let mut c = Cursor::new(pdu);
        let version = (c.u8("rpc_vers")?, c.u8("rpc_vers_minor")?);
        let ptype = c.u8("PTYPE")?;
        let flags = c.u8("pfc_flags")?;
        let drep = c.bytes(4, "packed_drep")?;
        let frag_len = c.u16("frag_length")?;
        let auth_len = c.u16("auth_length")?;
        let call_id = c.u32("call_id")?;
        if version != (5, 0) {
            return Err(protocol(format!("RPC version {}.{} where 5.0 was expected", version.0, version.1)));
        }
        // Little-endian integers, ASCII, IEEE floats: the only representation we decode.
        if drep.first().is_none_or(|d| d & 0xf0 != 0x10) {
            return Err(protocol(format!("big-endian or non-ASCII data representation {drep:02x?}")));
        }
        if (frag_len as usize) < HEADER_LEN + if auth_len > 0 { TRAILER_LEN + auth_len as usize } else { 0 } {
            return Err(protocol(format!(
                "fragment length {frag_len} cannot hold its header and {auth_len} auth bytes"
            )));
        }
        Ok(Header { ptype, flags, frag_len, auth_len, call_id })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend([5, 0, self.ptype, self.flags, 0x10, 0, 0, 0]);
        out.extend(self.frag_len.to_le_bytes());
        out.extend(self.auth_len.to_le_bytes());
        out.extend(self.call_id.to_le_bytes());
    }
}

/// The length of the PDU whose first [`HEADER_LEN`] bytes are `header`, for framing a stream.
pub fn frame_length(header: &[u8]) -> Result<usize, Error> {
    Header::decode(header).map(|h| h.frag_len as usize)
}

fn protocol(message: impl Into<String>) -> Error {
    Error::new(Category::ProtocolError, message)
}

/// A fault status as the shared error taxonomy (MS-RPCE 2.2.2.11 and MS-ERREF codes).
pub fn fault_error(status: u32) -> Error {
    let (category, what) = match status {
        5 | 0x8007_0005 => (Category::AccessDenied, "access denied"),
        0x1c01_0003 => (Category::Unsupported, "the server does not offer this interface (nca_s_unk_if)"),
        0x1c01_0002 => (Category::Unsupported, "operation number out of range (nca_s_op_rng_error)"),
        0x6d1 => (Category::Unsupported, "procedure number out of range (RPC_S_PROCNUM_OUT_OF_RANGE)"),
        0x721 => (Category::AuthFailed, "security package error (RPC_S_SEC_PKG_ERROR)"),
        0x6f7 => (Category::ProtocolError, "the server could not decode the request (RPC_X_BAD_STUB_DATA)"),
        0x1c01_000b => (Category::ProtocolError, "protocol error (nca_s_proto_error)"),
        0x1c00_001b => (Category::ServerFault, "the server ran out of resources (nca_s_fault_remote_no_memory)"),
        0x1c01_0013 => (Category::ProtocolError, "bad header checksum or signature (nca_s_fault_sec_pkg_error)"),
        0x6be => (Category::ServerFault, "the remote procedure call failed (RPC_S_CALL_FAILED)"),
        0x1c00_0021 => (Category::Cancelled, "the call was cancelled (nca_s_fault_cancel)"),
        _ => (Category::ServerFault, "the server faulted the call"),
    };
    Error::new(category, format!("RPC fault 0x{status:08x}: {what}")).with_code(format!("0x{status:08x}"))
}

/// A bind or alter_context the server turned down, as an error.
fn rejection(result: u16, reason: u16) -> Error {
    let why = match reason {
        1 => "abstract syntax (interface) not supported",
        2 => "transfer syntax NDR not supported",
        3 => "local limit exceeded",
        _ => "reason not specified",
    };
    Error::new(Category::Unsupported, format!("presentation context rejected (result {result}): {why}"))
}

/// A bind_nak reason (C706 12.6.3.8 and MS-RPCE 2.2.2.5) as an error.
fn nak_error(reason: u16) -> Error {
    let (category, why) = match reason {
        1 => (Category::ConnectionFailed, "temporary congestion"),
        2 => (Category::QuotaExceeded, "local limit exceeded"),
        4 => (Category::Unsupported, "protocol version not supported"),
        8 => (Category::AuthFailed, "authentication type not recognized"),
        9 => (Category::AuthFailed, "invalid checksum"),
        _ => (Category::ServerFault, "reason not specified"),
    };
    Error::new(category, format!("bind refused: {why}")).with_code(format!("bind_nak {reason}"))
}

/// A response being reassembled.
#[derive(Debug)]
struct Pending {
    call_id: u32,
    stub: Vec<u8>,
    started: bool,
}

/// The client end of one DCE/RPC association.
#[derive(Debug)]
pub struct Connection {
    level: AuthLevel,
    ntlm: Option<NtlmClient>,
    session: Option<NtlmSession>,
    max_xmit: u16,
    max_recv: u16,
    assoc_group: u32,
    next_call: u32,
    next_context: u16,
    /// The bind or alter_context awaiting its answer: call id and context id.
    negotiating: Option<(u32, u16)>,
    pending: Option<Pending>,
}

/// The auth_context_id of our one security context.
const AUTH_CONTEXT_ID: u32 = 0x0001_0000;

impl Connection {
    /// A connection at `level`; `ntlm` must be given for integrity and privacy.
    pub fn new(level: AuthLevel, ntlm: Option<NtlmClient>) -> Result<Connection, Error> {
        if level > AuthLevel::None && ntlm.is_none() {
            return Err(Error::new(Category::AuthFailed, "packet integrity and privacy need credentials"));
        }
        Ok(Connection {
            level,
            ntlm: if level > AuthLevel::None { ntlm } else { None },
            session: None,
            max_xmit: DEFAULT_MAX_FRAG,
            max_recv: DEFAULT_MAX_FRAG,
            assoc_group: 0,
            next_call: 1,
            next_context: 0,
            negotiating: None,
            pending: None,
        })
    }

    /// Sets the fragment size offered in the bind (at least 1024 and a multiple of 8).
    pub fn with_max_frag(mut self, max: u16) -> Connection {
        let max = (max.max(1024) / 8) * 8;
        self.max_xmit = max;
        self.max_recv = max;
        self
    }

    /// The largest fragment we send, as the server accepted it.
    pub fn max_xmit_frag(&self) -> u16 {
        self.max_xmit
    }

    /// The association group the server assigned (0 before the bind_ack).
    pub fn assoc_group(&self) -> u32 {
        self.assoc_group
    }

    fn call_id(&mut self) -> u32 {
        let id = self.next_call;
        self.next_call = self.next_call.wrapping_add(1).max(1);
        id
    }

    /// The bind PDU for `interface` on presentation context 0, carrying the NTLM NEGOTIATE.
    pub fn bind(&mut self, interface: SyntaxId) -> Vec<u8> {
        let token = self.ntlm.as_ref().map(|n| n.negotiate().to_vec());
        self.context_pdu(ptype::BIND, interface, token)
    }

    /// An alter_context PDU adding `interface`; its context id is returned by
    /// [`Connection::alter_context_resp`]. The association's security context covers it, so it
    /// carries no auth verifier.
    pub fn alter_context(&mut self, interface: SyntaxId) -> Vec<u8> {
        self.context_pdu(ptype::ALTER_CONTEXT, interface, None)
    }

    fn context_pdu(&mut self, kind: u8, interface: SyntaxId, token: Option<Vec<u8>>) -> Vec<u8> {
        let call_id = self.call_id();
        let context = self.next_context;
        self.next_context = self.next_context.wrapping_add(1);
        self.negotiating = Some((call_id, context));
        let mut body = Vec::with_capacity(72);
        body.extend(self.max_xmit.to_le_bytes());
        body.extend(self.max_recv.to_le_bytes());
        body.extend(self.assoc_group.to_le_bytes());
        body.extend([1, 0, 0, 0]);
        body.extend(context.to_le_bytes());
        body.extend([1, 0]);
        interface.encode(&mut body);
        NDR.encode(&mut body);
        let auth = token.map(|t| (self.level as u8, t));
        unsigned_pdu(kind, call_id, &body, auth.as_ref().map(|(l, t)| (*l, t.as_slice())))
    }

    /// Reads the bind_ack (or bind_nak); with NTLM, answers the challenge with the auth3 PDU to
    /// send next, after which the connection signs and seals.
    pub fn bind_ack(&mut self, pdu: &[u8], nonces: Nonces, now: u64) -> Result<Option<Vec<u8>>, Error> {
        let (header, token) = self.context_reply(pdu, ptype::BIND_ACK)?;
        let Some(ntlm) = self.ntlm.take() else {
            return Ok(None);
        };
        let token = token.ok_or_else(|| protocol("the bind_ack carries no NTLM challenge"))?;
        let (authenticate, session) = ntlm.authenticate(&token, nonces, now)?;
        self.session = Some(session);
        // auth3 has a 4-byte pad body (MS-RPCE 2.2.2.10) and reuses the bind's call id.
        Ok(Some(unsigned_pdu(ptype::AUTH3, header.call_id, &[0; 4], Some((self.level as u8, &authenticate)))))
    }

    /// Reads the alter_context_resp; returns the context id to use for the interface.
    pub fn alter_context_resp(&mut self, pdu: &[u8]) -> Result<u16, Error> {
        let context = self.negotiating.map(|(_, c)| c);
        self.context_reply(pdu, ptype::ALTER_CONTEXT_RESP)?;
        context.ok_or_else(|| protocol("alter_context_resp with no alter_context outstanding"))
    }

    /// Checks a bind_ack or alter_context_resp and returns its header and auth value.
    fn context_reply(&mut self, pdu: &[u8], expected: u8) -> Result<(Header, Option<Vec<u8>>), Error> {
        let header = Header::decode(pdu)?;
        let (call_id, _) = self.negotiating.take().ok_or_else(|| protocol("a context reply nobody asked for"))?;
        if header.call_id != call_id {
            return Err(protocol(format!("reply to call {} while waiting for {call_id}", header.call_id)));
        }
        match header.ptype {
            p if p == expected => {}
            ptype::BIND_NAK => {
                let reason = Cursor::new(pdu).at(HEADER_LEN, "bind_nak")?.u16("provider_reject_reason")?;
                return Err(nak_error(reason));
            }
            ptype::FAULT => return Err(fault_error(fault_status(pdu)?)),
            other => {
                return Err(protocol(format!("PDU type {other} where {expected} was expected")));
            }
        }
        let frame = pdu.get(..header.frag_len as usize).ok_or_else(|| protocol("PDU shorter than its frag_length"))?;
        let (body_end, token) = if header.auth_len > 0 {
            let start = frame.len() - header.auth_len as usize;
            (start - TRAILER_LEN, frame.get(start..).map(<[u8]>::to_vec))
        } else {
            (frame.len(), None)
        };
        let mut c = Cursor::new(frame.get(..body_end).unwrap_or_default());
        c.skip(HEADER_LEN, "header")?;
        let max_xmit = c.u16("max_xmit_frag")?;
        let max_recv = c.u16("max_recv_frag")?;
        let group = c.u32("assoc_group_id")?;
        let addr_len = c.u16("sec_addr length")? as usize;
        c.skip(addr_len, "sec_addr")?;
        let pad = (4 - c.offset() % 4) % 4;
        c.skip(pad, "sec_addr pad")?;
        let results = c.u8("n_results")?;
        c.skip(3, "reserved")?;
        if results != 1 {
            return Err(protocol(format!("{results} context results for the 1 context proposed")));
        }
        let result = c.u16("result")?;
        let reason = c.u16("reason")?;
        let syntax = c.bytes(20, "transfer_syntax")?;
        if result != 0 {
            return Err(rejection(result, reason));
        }
        let mut ndr = Vec::with_capacity(20);
        NDR.encode(&mut ndr);
        if syntax != ndr.as_slice() {
            return Err(protocol("the server accepted a transfer syntax other than NDR 2.0"));
        }
        if expected == ptype::BIND_ACK {
            // We send fragments the server can receive, and never more than we offered.
            self.max_xmit = max_recv.min(self.max_xmit);
            self.max_recv = max_xmit.max(self.max_recv);
            if self.max_xmit < 1024 {
                return Err(protocol(format!("the server receives fragments of only {max_recv} bytes")));
            }
            self.assoc_group = group;
        }
        Ok((header, token))
    }

    /// The request PDUs of one call, fragmented to the negotiated size and signed (and sealed).
    pub fn request(
        &mut self,
        context: u16,
        opnum: u16,
        object: Option<[u8; 16]>,
        stub: &[u8],
    ) -> Result<(u32, Vec<Vec<u8>>), Error> {
        if self.level > AuthLevel::None && self.session.is_none() {
            return Err(Error::new(Category::AuthFailed, "request before the NTLM handshake finished"));
        }
        if self.pending.is_some() {
            return Err(protocol("a call is already outstanding on this connection"));
        }
        let call_id = self.call_id();
        let head_len = HEADER_LEN + 8 + if object.is_some() { 16 } else { 0 };
        let auth_len = if self.session.is_some() { TRAILER_LEN + SIGNATURE_LEN } else { 0 };
        // Whole 16-byte blocks per fragment, so only the last one needs padding.
        let room = (self.max_xmit as usize).saturating_sub(head_len + auth_len + 15) / 16 * 16;
        if room == 0 {
            return Err(protocol("fragment size too small for a request"));
        }
        let mut chunks: Vec<&[u8]> = stub.chunks(room).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let last = chunks.len() - 1;
        let mut offset = 0usize;
        let mut pdus = Vec::with_capacity(chunks.len());
        for (i, chunk) in chunks.into_iter().enumerate() {
            let mut flags = 0;
            if i == 0 {
                flags |= pfc::FIRST_FRAG;
            }
            if i == last {
                flags |= pfc::LAST_FRAG;
            }
            if object.is_some() {
                flags |= pfc::OBJECT_UUID;
            }
            let mut body = Vec::with_capacity(8 + 16);
            body.extend(((stub.len() - offset) as u32).to_le_bytes());
            body.extend(context.to_le_bytes());
            body.extend(opnum.to_le_bytes());
            if let Some(o) = object {
                body.extend(o);
            }
            offset += chunk.len();
            pdus.push(seal_pdu(self.session.as_mut(), self.level, ptype::REQUEST, flags, call_id, &body, chunk)?);
        }
        self.pending = Some(Pending { call_id, stub: Vec::new(), started: false });
        Ok((call_id, pdus))
    }

    /// Feeds one response, fault or shutdown PDU of the outstanding call. Returns the whole stub
    /// after the last fragment, `None` while more fragments are due.
    pub fn response(&mut self, pdu: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let result = self.response_inner(pdu);
        if !matches!(result, Ok(None)) {
            self.pending = None;
        }
        result
    }

    fn response_inner(&mut self, pdu: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let header = Header::decode(pdu)?;
        let frame = pdu.get(..header.frag_len as usize).ok_or_else(|| protocol("PDU shorter than its frag_length"))?;
        let pending = self.pending.as_ref().ok_or_else(|| protocol("a response with no call outstanding"))?;
        if header.ptype == ptype::SHUTDOWN {
            return Err(Error::new(Category::ConnectionFailed, "the server shut the association down"));
        }
        if header.call_id != pending.call_id {
            return Err(protocol(format!("response to call {} while waiting for {}", header.call_id, pending.call_id)));
        }
        if header.ptype != ptype::RESPONSE && header.ptype != ptype::FAULT {
            return Err(protocol(format!("PDU type {} in answer to a request", header.ptype)));
        }
        if header.flags & pfc::FIRST_FRAG != 0 && pending.started {
            return Err(protocol("a first fragment in the middle of a response"));
        }
        if header.flags & pfc::FIRST_FRAG == 0 && !pending.started {
            return Err(protocol("a response that does not start with a first fragment"));
        }
        let stub = open_pdu(self.session.as_mut(), self.level, &header, frame, 8)?;
        if header.ptype == ptype::FAULT {
            return Err(fault_error(Cursor::new(&stub).u32("fault status")?));
        }
        let pending = self.pending.as_mut().ok_or_else(|| protocol("a response with no call outstanding"))?;
        pending.started = true;
        if pending.stub.len() + stub.len() > MAX_RESPONSE {
            return Err(protocol(format!("response larger than {MAX_RESPONSE} bytes")));
        }
        pending.stub.extend(stub);
        if header.flags & pfc::LAST_FRAG != 0 { Ok(Some(std::mem::take(&mut pending.stub))) } else { Ok(None) }
    }
}

/// Builds one PDU of a call: header, body, stub, then (with a security context) the pad,
/// trailer and signature, with the stub sealed at packet privacy.
pub(crate) fn seal_pdu(
    session: Option<&mut NtlmSession>,
    level: AuthLevel,
    kind: u8,
    flags: u8,
    call_id: u32,
    body: &[u8],
    stub: &[u8],
) -> Result<Vec<u8>, Error> {
    let Some(session) = session else {
        let mut all = body.to_vec();
        all.extend(stub);
        return Ok(unsigned_pdu_flags(kind, flags, call_id, &all, None));
    };
    let pad = (16 - stub.len() % 16) % 16;
    let stub_start = HEADER_LEN + body.len();
    let total = stub_start + stub.len() + pad + TRAILER_LEN + SIGNATURE_LEN;
    let frag_len = u16::try_from(total).map_err(|_| protocol("PDU longer than 64 KiB"))?;
    let mut pdu = Vec::with_capacity(total);
    Header { ptype: kind, flags, frag_len, auth_len: SIGNATURE_LEN as u16, call_id }.encode(&mut pdu);
    pdu.extend(body);
    pdu.extend(stub);
    pdu.resize(stub_start + stub.len() + pad, 0);
    pdu.extend([AUTHN_WINNT, level as u8, pad as u8, 0]);
    pdu.extend(AUTH_CONTEXT_ID.to_le_bytes());
    let sealed_end = stub_start + stub.len() + pad;
    if level == AuthLevel::Privacy {
        let mut sealed = pdu.get(stub_start..sealed_end).unwrap_or_default().to_vec();
        session.seal(&mut sealed);
        let signature = session.sign(&pdu);
        if let Some(region) = pdu.get_mut(stub_start..sealed_end) {
            region.copy_from_slice(&sealed);
        }
        pdu.extend(signature);
    } else {
        let signature = session.sign(&pdu);
        pdu.extend(signature);
    }
    Ok(pdu)
}

/// Verifies (and unseals) a PDU of a call and returns its stub, which starts `body` bytes
/// after the header (8 in a response or fault, whose stub starts with its status).
pub(crate) fn open_pdu(
    session: Option<&mut NtlmSession>,
    level: AuthLevel,
    header: &Header,
    frame: &[u8],
    body: usize,
) -> Result<Vec<u8>, Error> {
    let body_end = HEADER_LEN + body;
    let Some(session) = session else {
        if header.auth_len != 0 {
            return Err(protocol("an auth verifier on an unauthenticated connection"));
        }
        return frame.get(body_end..).map(<[u8]>::to_vec).ok_or_else(|| protocol("response shorter than its header"));
    };
    if header.auth_len == 0 {
        // A fault carries no data, and Windows sends some unsigned (when the security
        // context itself failed); anything else must be signed.
        if header.ptype == ptype::FAULT {
            return frame.get(body_end..).map(<[u8]>::to_vec).ok_or_else(|| protocol("fault shorter than its header"));
        }
        return Err(protocol("an unsigned response at packet integrity"));
    }
    if header.auth_len as usize != SIGNATURE_LEN {
        return Err(protocol(format!("an NTLM signature of {} bytes", header.auth_len)));
    }
    let sig_start = frame.len() - SIGNATURE_LEN;
    let trailer_start = sig_start - TRAILER_LEN;
    let mut t = Cursor::new(frame.get(trailer_start..sig_start).unwrap_or_default());
    let (auth_type, their_level, pad) = (t.u8("auth_type")?, t.u8("auth_level")?, t.u8("auth_pad_length")? as usize);
    t.skip(1, "auth_reserved")?;
    let context_id = t.u32("auth_context_id")?;
    if auth_type != AUTHN_WINNT || their_level != level as u8 || context_id != AUTH_CONTEXT_ID {
        return Err(protocol(format!(
            "sec_trailer for service {auth_type}, level {their_level}, context {context_id:#x} on our NTLM context"
        )));
    }
    if trailer_start < body_end || trailer_start - body_end < pad {
        return Err(protocol("auth padding longer than the stub"));
    }
    let mut plain = frame.to_vec();
    if level == AuthLevel::Privacy
        && let Some(region) = plain.get_mut(body_end..trailer_start)
    {
        session.unseal(region);
    }
    let signature = frame.get(sig_start..).unwrap_or_default();
    session.verify(plain.get(..sig_start).unwrap_or_default(), signature)?;
    plain.truncate(trailer_start - pad);
    Ok(plain.split_off(body_end))
}

/// Status of a fault PDU with no auth verifier.
fn fault_status(pdu: &[u8]) -> Result<u32, Error> {
    Ok(Cursor::new(pdu).at(HEADER_LEN + 8, "fault")?.u32("fault status")?)
}

fn unsigned_pdu(kind: u8, call_id: u32, body: &[u8], auth: Option<(u8, &[u8])>) -> Vec<u8> {
    unsigned_pdu_flags(kind, pfc::FIRST_FRAG | pfc::LAST_FRAG, call_id, body, auth)
}

/// A PDU whose auth value (an NTLM token, if any) is not a signature over it.
fn unsigned_pdu_flags(kind: u8, flags: u8, call_id: u32, body: &[u8], auth: Option<(u8, &[u8])>) -> Vec<u8> {
    let pad = if auth.is_some() { (4 - (HEADER_LEN + body.len()) % 4) % 4 } else { 0 };
    let auth_len = auth.map_or(0, |(_, t)| t.len());
    let total = HEADER_LEN + body.len() + pad + if auth.is_some() { TRAILER_LEN + auth_len } else { 0 };
    let mut pdu = Vec::with_capacity(total);
    Header { ptype: kind, flags, frag_len: total as u16, auth_len: auth_len as u16, call_id }.encode(&mut pdu);
    pdu.extend(body);
    if let Some((level, token)) = auth {
        pdu.resize(pdu.len() + pad, 0);
        pdu.extend([AUTHN_WINNT, level, pad as u8, 0]);
        pdu.extend(AUTH_CONTEXT_ID.to_le_bytes());
        pdu.extend(token);
    }
    pdu
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ntlm::{Side, flags};
    use proptest::prelude::*;

    const IFACE: SyntaxId = SyntaxId { uuid: [7; 16], major: 1, minor: 0 };
    const NONCES: Nonces = Nonces { client_challenge: [0xaa; 8], session_key: [0x55; 16] };
    /// What our client asks for, as a server that grants everything would answer.
    const GRANTED: u32 = flags::UNICODE
        | flags::SIGN
        | flags::SEAL
        | flags::NTLM
        | flags::ALWAYS_SIGN
        | flags::EXTENDED_SESSION_SECURITY
        | flags::TARGET_INFO
        | flags::VERSION
        | flags::N128
        | flags::KEY_EXCH
        | flags::N56;

    fn challenge() -> Vec<u8> {
        let mut ch = b"NTLMSSP\0".to_vec();
        ch.extend(2u32.to_le_bytes());
        ch.extend([0, 0, 0, 0, 56, 0, 0, 0]);
        ch.extend(GRANTED.to_le_bytes());
        ch.extend([1, 2, 3, 4, 5, 6, 7, 8]);
        ch.extend([0; 8]);
        ch.extend([4, 0, 4, 0, 56, 0, 0, 0]);
        ch.extend([10, 0, 0, 0, 0, 0, 0, 15]);
        ch.extend([0, 0, 0, 0]);
        ch
    }

    fn context_reply(kind: u8, call_id: u32, max_recv: u16, result: u16, reason: u16, token: Option<&[u8]>) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(4280u16.to_le_bytes());
        body.extend(max_recv.to_le_bytes());
        body.extend(0x1234u32.to_le_bytes());
        body.extend([4, 0]);
        body.extend(b"135\0");
        body.extend([0, 0]); // to a multiple of 4 from the PDU start
        body.extend([1, 0, 0, 0]);
        body.extend(result.to_le_bytes());
        body.extend(reason.to_le_bytes());
        NDR.encode(&mut body);
        unsigned_pdu(kind, call_id, &body, token.map(|t| (6, t)))
    }

    /// A bound connection at `level` with `max` byte fragments, and the server's NTLM session.
    fn bound(level: AuthLevel, max: u16) -> (Connection, NtlmSession) {
        let ntlm = NtlmClient::new("DOM\\user", "pw", "WS", level == AuthLevel::Privacy);
        let mut conn = Connection::new(level, Some(ntlm)).unwrap().with_max_frag(max);
        let bind = conn.bind(IFACE);
        let h = Header::decode(&bind).unwrap();
        assert_eq!((h.ptype, h.frag_len as usize, h.call_id), (ptype::BIND, bind.len(), 1));
        assert_eq!(&bind[32..52], [[7u8; 16].as_slice(), &[1, 0, 0, 0]].concat().as_slice());
        let token = &bind[bind.len() - h.auth_len as usize..];
        assert_eq!(&token[..8], b"NTLMSSP\0");
        let ack = context_reply(ptype::BIND_ACK, 1, max, 0, 0, Some(&challenge()));
        let auth3 = conn.bind_ack(&ack, NONCES, 0).unwrap().unwrap();
        let h3 = Header::decode(&auth3).unwrap();
        assert_eq!((h3.ptype, h3.call_id, conn.assoc_group()), (ptype::AUTH3, 1, 0x1234));
        let authenticate = &auth3[auth3.len() - h3.auth_len as usize..];
        let negotiated = u32::from_le_bytes(authenticate[60..64].try_into().unwrap());
        (conn, NtlmSession::new(negotiated, &NONCES.session_key, Side::Server))
    }

    fn response_pdus(
        server: &mut NtlmSession,
        level: AuthLevel,
        call_id: u32,
        stub: &[u8],
        room: usize,
    ) -> Vec<Vec<u8>> {
        let chunks: Vec<&[u8]> = stub.chunks(room).collect();
        let last = chunks.len() - 1;
        chunks
            .iter()
            .enumerate()
            .map(|(i, chunk)| {
                let mut fl = 0;
                if i == 0 {
                    fl |= pfc::FIRST_FRAG;
                }
                if i == last {
                    fl |= pfc::LAST_FRAG;
                }
                let body = [(stub.len() as u32).to_le_bytes().as_slice(), &[0, 0, 0, 0]].concat();
                seal_pdu(Some(server), level, ptype::RESPONSE, fl, call_id, &body, chunk).unwrap()
            })
            .collect()
    }

    #[test]
    fn fragmented_calls_round_trip_signed_and_sealed() {
        for level in [AuthLevel::Integrity, AuthLevel::Privacy] {
            let (mut conn, mut server) = bound(level, 1024);
            let stub: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
            let (call_id, pdus) = conn.request(0, 6, Some([9; 16]), &stub).unwrap();
            assert_eq!(pdus.len(), 6, "{level:?}");
            let mut received = Vec::new();
            for (i, pdu) in pdus.iter().enumerate() {
                let h = Header::decode(pdu).unwrap();
                assert!(pdu.len() <= 1024 && h.frag_len as usize == pdu.len());
                assert_eq!(h.flags & pfc::FIRST_FRAG != 0, i == 0);
                assert_eq!(h.flags & pfc::LAST_FRAG != 0, i == pdus.len() - 1);
                assert_eq!(&pdu[24..40], &[9; 16]);
                let chunk = open_pdu(Some(&mut server), level, &h, pdu, 24).unwrap();
                let in_clear = pdu[40..40 + chunk.len()] == chunk[..];
                assert_eq!(in_clear, level == AuthLevel::Integrity);
                received.extend(chunk);
            }
            assert_eq!(received, stub);

            let reply: Vec<u8> = (0..3000u32).map(|i| (i % 13) as u8).collect();
            let frags = response_pdus(&mut server, level, call_id, &reply, 1200);
            assert_eq!(conn.response(&frags[0]).unwrap(), None);
            assert_eq!(conn.response(&frags[1]).unwrap(), None);
            assert_eq!(conn.response(&frags[2]).unwrap(), Some(reply));
        }
    }

    #[test]
    fn a_tampered_or_unsigned_response_is_refused() {
        let (mut conn, mut server) = bound(AuthLevel::Privacy, 4096);
        let (call_id, _) = conn.request(0, 3, None, b"abc").unwrap();
        let mut pdu = response_pdus(&mut server, AuthLevel::Privacy, call_id, b"hello world", 100).remove(0);
        pdu[25] ^= 1;
        let err = conn.response(&pdu).unwrap_err();
        assert_eq!(err.category, Category::ProtocolError);
        assert!(err.message.contains("signature"), "{err}");

        let (mut conn, _) = bound(AuthLevel::Integrity, 4096);
        let (call_id, _) = conn.request(0, 3, None, b"abc").unwrap();
        let body = [4u32.to_le_bytes().as_slice(), &[0, 0, 0, 0], b"data"].concat();
        let unsigned = unsigned_pdu(ptype::RESPONSE, call_id, &body, None);
        assert!(conn.response(&unsigned).unwrap_err().message.contains("unsigned"));
    }

    #[test]
    fn faults_and_refusals_map_to_the_taxonomy() {
        let (mut conn, mut server) = bound(AuthLevel::Integrity, 4096);
        let (call_id, _) = conn.request(0, 3, None, b"x").unwrap();
        let body = [0u32.to_le_bytes().as_slice(), &[0, 0, 0, 0]].concat();
        let fault = seal_pdu(
            Some(&mut server),
            AuthLevel::Integrity,
            ptype::FAULT,
            3,
            call_id,
            &body,
            &[3, 0, 1, 0x1c, 0, 0, 0, 0],
        );
        let err = conn.response(&fault.unwrap()).unwrap_err();
        assert_eq!((err.category, err.code.as_deref()), (Category::Unsupported, Some("0x1c010003")));

        // Unsigned faults are accepted: they carry nothing but a status.
        let (call_id, _) = conn.request(0, 3, None, b"x").unwrap();
        let fault = unsigned_pdu(ptype::FAULT, call_id, &[0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0], None);
        assert_eq!(conn.response(&fault).unwrap_err().category, Category::AccessDenied);

        let mut conn = Connection::new(AuthLevel::Integrity, Some(NtlmClient::new("u", "p", "w", false))).unwrap();
        conn.bind(IFACE);
        let nak = unsigned_pdu(ptype::BIND_NAK, 1, &[9, 0, 0, 0], None);
        assert_eq!(conn.bind_ack(&nak, NONCES, 0).unwrap_err().category, Category::AuthFailed);

        let mut conn = Connection::new(AuthLevel::Integrity, Some(NtlmClient::new("u", "p", "w", false))).unwrap();
        conn.bind(IFACE);
        let rejected = context_reply(ptype::BIND_ACK, 1, 4096, 2, 1, Some(&challenge()));
        assert_eq!(conn.bind_ack(&rejected, NONCES, 0).unwrap_err().category, Category::Unsupported);
    }

    #[test]
    fn alter_context_adds_a_context_without_reauthenticating() {
        let (mut conn, mut server) = bound(AuthLevel::Privacy, 4096);
        let alter = conn.alter_context(SyntaxId { uuid: [8; 16], major: 0, minor: 0 });
        let h = Header::decode(&alter).unwrap();
        assert_eq!((h.ptype, h.auth_len, h.call_id), (ptype::ALTER_CONTEXT, 0, 2));
        assert_eq!(u16::from_le_bytes([alter[28], alter[29]]), 1);
        let resp = context_reply(ptype::ALTER_CONTEXT_RESP, 2, 4096, 0, 0, None);
        assert_eq!(conn.alter_context_resp(&resp).unwrap(), 1);
        // Sequence numbers carry on across contexts.
        let (_, pdus) = conn.request(1, 3, None, b"after alter").unwrap();
        let h = Header::decode(&pdus[0]).unwrap();
        assert_eq!(open_pdu(Some(&mut server), AuthLevel::Privacy, &h, &pdus[0], 8).unwrap()[..11], *b"after alter");
    }

    #[test]
    fn responses_out_of_order_are_protocol_errors() {
        let (mut conn, mut server) = bound(AuthLevel::Integrity, 4096);
        let (call_id, _) = conn.request(0, 3, None, b"x").unwrap();
        let frags = response_pdus(&mut server, AuthLevel::Integrity, call_id + 1, b"y", 16);
        assert_eq!(conn.response(&frags[0]).unwrap_err().category, Category::ProtocolError);
        assert!(conn.response(&frags[0]).unwrap_err().message.contains("no call outstanding"));
    }

    proptest! {
        #[test]
        fn fragments_fit_the_negotiated_size(len in 0usize..20_000, max in 1024u16..6000, object in any::<bool>()) {
            let (mut conn, mut server) = bound(AuthLevel::Privacy, max);
            let stub: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let (_, pdus) = conn.request(1, 2, object.then_some([5; 16]), &stub).unwrap();
            let mut received = Vec::new();
            for pdu in &pdus {
                prop_assert!(pdu.len() <= conn.max_xmit_frag() as usize);
                let h = Header::decode(pdu).unwrap();
                received.extend(open_pdu(Some(&mut server), AuthLevel::Privacy, &h, pdu, if object { 24 } else { 8 }).unwrap());
            }
            prop_assert_eq!(received, stub);
        }

        #[test]
        fn arbitrary_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200), cut in 0usize..64) {
            let _ = Header::decode(&data);
            let (mut conn, _) = bound(AuthLevel::Privacy, 4096);
            let _ = conn.request(0, 1, None, b"q");
            let mut pdu = data.clone();
            // Also try it behind a plausible header, so the body decoders run.
            let mut framed = vec![5, 0, ptype::RESPONSE, 3, 0x10, 0, 0, 0];
            framed.extend(((data.len() + 16) as u16).to_le_bytes());
            framed.extend(((cut % 40) as u16).to_le_bytes());
            framed.extend(2u32.to_le_bytes());
            framed.extend(&data);
            let _ = conn.response(&framed);
            pdu.truncate(cut.min(pdu.len()));
            let _ = conn.response(&pdu);
            let mut fresh = Connection::new(AuthLevel::Integrity, Some(NtlmClient::new("u", "p", "w", false))).unwrap();
            fresh.bind(IFACE);
            framed[2] = ptype::BIND_ACK;
            framed[12..16].copy_from_slice(&1u32.to_le_bytes());
            let _ = fresh.bind_ack(&framed, NONCES, 0);
        }
    }
}
