//! DCOM/WMI (MS-DCOM, MS-WMI, MS-WMIO), built as sans-IO cores.
//!
//! Everything here is a pure function over byte slices: decoders never index untrusted data
//! directly (they go through a checked cursor) and never panic, so they can be fuzzed and
//! driven from any transport.
//!
//! - [`wmio`]: the MS-WMIO object encoding (classes, instances) and the `WBEMDATA` object
//!   arrays of `IWbemWCOSmartEnum::Next`, with a class cache.
//! - [`objref`]: the OBJREF marshaling of interface pointers, as `IWbemClassObject` arrives.
//! - [`ndr`], [`orpc`], [`calls`], [`remunknown`], [`activation`]: NDR 2.0 and the stubs of
//!   the ORPC calls a query makes, from remote activation to releasing references.
//! - [`ntlm`]: NTLMv2 (MS-NLMP) with the session security DCE/RPC signs and seals with.
//! - [`rpc`]: connection-oriented DCE/RPC: bind, auth3, alter_context, fragmented calls
//!   signed (packet integrity) or sealed (packet privacy), faults as protocol errors.
//! - [`session`]: [`DcomConnector`], the only part that does I/O: activation, the object
//!   exporter, login, ExecQuery and SmartEnum batches, with a deadline per network step.

pub mod activation;
pub mod calls;
mod cursor;
pub mod ndr;
pub mod ntlm;
pub mod objref;
pub mod orpc;
pub mod remunknown;
pub mod rpc;
pub mod session;
pub mod wmio;

pub use session::DcomConnector;

use super::{Category, Error};

/// Why a DCOM/WMI structure could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The data ended inside a field.
    #[error("truncated {what} at offset {offset}: need {need} bytes, {have} left")]
    Truncated { what: &'static str, offset: usize, need: usize, have: usize },
    /// A field holds a value the specification does not allow.
    #[error("invalid {what} at offset {offset}: {detail}")]
    Invalid { what: &'static str, offset: usize, detail: String },
    /// Embedded objects nest deeper than we follow.
    #[error("embedded objects nest deeper than {0} levels")]
    TooDeep(usize),
    /// An instance refers to a class the class cache does not hold.
    #[error("instance refers to class id {0} that no earlier packet defined")]
    UnknownClass(String),
}

/// Builds a GUID in wire order (little-endian fields) from its text form's parts.
pub(crate) const fn guid(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> [u8; 16] {
    let a = d1.to_le_bytes();
    let b = d2.to_le_bytes();
    let c = d3.to_le_bytes();
    [a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4], d4[5], d4[6], d4[7]]
}

impl DecodeError {
    pub(crate) fn invalid(what: &'static str, offset: usize, detail: impl Into<String>) -> DecodeError {
        DecodeError::Invalid { what, offset, detail: detail.into() }
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Error {
        Error::new(Category::ProtocolError, e.to_string())
    }
}

/// Number of decoders [`decode_any`] can reach; its selector byte is taken modulo this.
pub const DECODERS: u8 = 22;

/// Runs one of the DCOM decoders over `data[1..]`, chosen by `data[0]` (modulo [`DECODERS`]):
/// a single `&[u8]` entry point reaching every public decoder of this module, for fuzzing.
/// Returns whether the chosen decoder accepted the input; it never panics on any input.
///
/// The stateful readers of [`rpc::Connection`] (bind_ack, response) need a handshake first
/// and are driven by the session tests, not from here; [`rpc::Header::decode`] and
/// [`rpc::frame_length`], which parse every PDU they see, are reachable.
pub fn decode_any(data: &[u8]) -> bool {
    let Some((&selector, body)) = data.split_first() else { return false };
    match selector % DECODERS {
        0 => wmio::decode_encoding_unit(body).is_ok(),
        1 => wmio::decode_object_block(body).is_ok(),
        2 => wmio::packet::decode_object_array(body, &mut wmio::packet::ClassCache::default()).is_ok(),
        3 => objref::ObjRef::decode(body).is_ok(),
        4 => objref::DualStringArray::decode(body).is_ok(),
        5 => orpc::InterfaceReply::decode(body).is_ok(),
        6 => orpc::StatusReply::decode(body).is_ok(),
        7 => calls::NtlmLogin::decode(body).is_ok(),
        8 => calls::ExecQuery::decode(body).is_ok(),
        9 => calls::EnumNext::decode(body).is_ok(),
        10 => calls::EnumNextReply::decode(body).is_ok(),
        11 => calls::GetSmartEnum::decode(body).is_ok(),
        12 => calls::SmartNext::decode(body).is_ok(),
        13 => calls::SmartNextReply::decode(body).is_ok(),
        14 => remunknown::RemQueryInterface::decode(body).is_ok(),
        15 => remunknown::RemQueryInterfaceReply::decode(body).is_ok(),
        16 => remunknown::RemRelease::decode(body).is_ok(),
        17 => activation::ActivationRequest::decode_blob(body).is_ok(),
        18 => activation::ActivationReply::decode_blob(body).is_ok(),
        19 => activation::RemoteCreateInstance::decode(body).is_ok(),
        20 => rpc::Header::decode(body).is_ok() | rpc::frame_length(body).is_ok(),
        _ => {
            // An NTLM CHALLENGE message, as the client parses it during the handshake.
            let nonces = ntlm::Nonces { client_challenge: [0; 8], session_key: [0; 16] };
            ntlm::NtlmClient::new("D\\u", "p", "W", true).authenticate(body, nonces, 0).is_ok()
        }
    }
}
