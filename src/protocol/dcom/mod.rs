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
