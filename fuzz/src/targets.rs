//! The body of every fuzz target, as plain functions over bytes.
//!
//! The cargo-fuzz binaries call these, and `tests/fuzz_regressions.rs` includes this very file
//! to replay the corpora and crash reproducers in the normal test suite, so a reproducer
//! always exercises exactly the code the fuzzer ran.

use std::path::Path;

use cimrun::cim::{DateTime, Instance, Interval, Reference, Value};
use cimrun::job;
use cimrun::protocol::dcom::activation::{ActivationReply, ActivationRequest, RemoteCreateInstance};
use cimrun::protocol::dcom::calls::{EnumNext, EnumNextReply, ExecQuery, GetSmartEnum, NtlmLogin, SmartNext, SmartNextReply};
use cimrun::protocol::dcom::objref::{DualStringArray, ObjRef};
use cimrun::protocol::dcom::orpc::{InterfacePointer, InterfaceReply, StatusReply};
use cimrun::protocol::dcom::remunknown::{RemQueryInterface, RemQueryInterfaceReply, RemRelease};
use cimrun::protocol::dcom::wmio::{self, packet::ClassCache};
use cimrun::protocol::ntlm::{NtlmSession, Side};
use cimrun::protocol::wsman::encryption;
use cimrun::protocol::wsman::response::{self, Expect, Reply};
use cimrun::wql;

/// A fuzz target: the name of its cargo-fuzz binary and corpus directory, and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("wsman_response", wsman_response),
    ("wsman_fault", wsman_fault),
    ("wsman_encrypted", wsman_encrypted),
    ("wql", wql),
    ("job_load", job_load),
    ("hosts_expand", hosts_expand),
    ("dcom_wmio", dcom_wmio),
    ("dcom_ndr", dcom_ndr),
];

/// The class a response is parsed for: the first `Win32_…` name in it, so the recorded
/// responses of every class reach their own type table.
fn class_hint(data: &[u8]) -> String {
    const PREFIX: &[u8] = b"Win32_";
    let Some(at) = data.windows(PREFIX.len()).position(|w| w == PREFIX) else {
        return "Win32_Process".to_string();
    };
    let name: Vec<u8> =
        data.iter().skip(at).take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').take(128).copied().collect();
    String::from_utf8_lossy(&name).into_owned()
}

/// `protocol::wsman::response::parse` on a whole response body, as after decryption.
pub fn wsman_response(data: &[u8]) {
    let class = class_hint(data);
    let arrays = ["IPAddress".to_string(), "DefaultIPGateway".to_string()];
    let expect = Expect { class: &class, arrays: &arrays, relates_to: None, limits: Default::default() };
    // The charset comes from the header when the body has no BOM; try both kinds the servers send.
    for content_type in [None, Some("application/soap+xml;charset=UTF-16")] {
        if let Ok(Reply::Fault(f)) = response::parse(data, content_type, &expect) {
            let _ = f.to_error();
        }
    }
}

/// The fault path: a body parsed into a fault and mapped to the shared error taxonomy. The
/// input is the content of `s:Fault`, so every mutation lands inside the fault.
pub fn wsman_fault(data: &[u8]) {
    const HEAD: &[u8] = br#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"><s:Header><a:Action>http://schemas.dmtf.org/wbem/wsman/1/wsman/fault</a:Action></s:Header><s:Body><s:Fault>"#;
    const TAIL: &[u8] = b"</s:Fault></s:Body></s:Envelope>";
    let mut body = Vec::with_capacity(HEAD.len() + data.len() + TAIL.len());
    body.extend_from_slice(HEAD);
    body.extend_from_slice(data);
    body.extend_from_slice(TAIL);
    let expect = Expect { class: "Win32_Process", ..Default::default() };
    if let Ok(Reply::Fault(f)) = response::parse(&body, None, &expect) {
        let e = f.to_error();
        let _ = e.to_string();
    }
}

/// The multipart/encrypted framing of sealed bodies.
pub fn wsman_encrypted(data: &[u8]) {
    if let Ok(sealed) = encryption::parse_body(data) {
        let _ = sealed.check_length(sealed.sealed);
        let _ = sealed.protocol.content_type();
        // The transport unseals a copy of the body at this range.
        assert_eq!(data.get(sealed.sealed_range()), Some(sealed.sealed));
        // Unsealing what parsed: any length of data and signature is an answer, never a panic
        // (a fuzzer cannot forge the MAC, so this exercises the decrypt-and-hash pass itself).
        let mut session = NtlmSession::new(0xe28a_8233, &[7; 16], Side::Client);
        let _ = session.unseal_message(&mut sealed.sealed.to_vec(), sealed.signature);
    }
}

/// The instance conditions are evaluated against: one property of every kind of value.
fn sample_instance() -> Instance {
    let embedded = Instance::new("Win32_Embedded").with("Name", Value::String("inner".into()));
    Instance::new("Win32_Sample")
        .with("Name", Value::String("web01.corp".into()))
        .with("Caption", Value::String("Ünïcode [x]%_".into()))
        .with("Enabled", Value::Bool(true))
        .with("DriveType", Value::UInt32(3))
        .with("Small", Value::SInt8(-5))
        .with("Big", Value::UInt64(u64::MAX))
        .with("Neg", Value::SInt64(i64::MIN))
        .with("Ratio", Value::Real64(0.5))
        .with("Float", Value::Real32(f32::NAN))
        .with("Letter", Value::Char16('C'))
        .with("Missing", Value::Null)
        .with("InstallDate", Value::DateTime(DateTime::from_unix(1_700_000_000, 123_456)))
        .with("Uptime", Value::Interval(Interval { microseconds: 93_784_000_005 }))
        .with(
            "Ref",
            Value::Reference(Box::new(Reference {
                address: None,
                resource_uri: "Win32_Service".into(),
                selectors: vec![("Name".into(), "x".into())],
            })),
        )
        .with("Obj", Value::Instance(Box::new(embedded)))
        .with("Addresses", Value::Array(vec![Value::String("10.0.0.1".into()), Value::String("fe80::1".into())]))
        .with("Codes", Value::Array(vec![Value::UInt16(1), Value::UInt16(65535)]))
}

/// `wql::parse`, `wql::parse_condition`, the printed form, and `Expr::matches`.
pub fn wql(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let instance = sample_instance();
    if let Ok(q) = wql::parse(&text) {
        // Display must print WQL that parses back to the same tree.
        let printed = q.to_string();
        assert_eq!(wql::parse(&printed).as_ref(), Ok(&q), "{text:?} printed as {printed:?}");
        if let Some(filter) = &q.filter {
            let _ = filter.matches(&instance);
            let _ = filter.properties();
        }
    }
    if let Ok(e) = wql::parse_condition(&text) {
        let _ = e.matches(&instance);
        let printed = e.to_string();
        assert_eq!(wql::parse_condition(&printed).as_ref(), Ok(&e), "{text:?} printed as {printed:?}");
    }
}

/// `job::load_str` on a job file, with paths resolved in a directory that does not exist so
/// nothing on this machine is read.
pub fn job_load(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let base = Path::new("/nonexistent/cimrun-fuzz");
    if let Err(diags) = job::load_str(&text, "fuzz.yaml", base, &[]) {
        let _ = format!("{diags:?}");
    }
}

/// `job::hosts::expand` on a computer name pattern.
pub fn hosts_expand(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(names) = job::hosts::expand(&text) {
        assert!(!names.is_empty() && names.len() <= job::hosts::MAX_HOSTS, "{text:?}: {} names", names.len());
    }
}

/// The MS-WMIO decoders: an encoding unit, a bare object block, an object array (the smart
/// enumerator's buffer), and an OBJREF with the object it carries.
pub fn dcom_wmio(data: &[u8]) {
    let _ = wmio::decode_encoding_unit(data).map(|o| o.into_instance());
    let _ = wmio::decode_object_block(data);
    let mut cache = ClassCache::new();
    let _ = wmio::packet::decode_object_array(data, &mut cache);
    let _ = wmio::packet::decode_object_array(data, &mut cache);
    objref_and_object(data);
    let _ = DualStringArray::decode(data);
}

fn objref_and_object(abdata: &[u8]) {
    if let Ok(ObjRef::Custom { object_data, .. }) = ObjRef::decode(abdata) {
        let _ = wmio::decode_encoding_unit(&object_data).map(|o| o.into_instance());
    }
}

fn interface(p: &InterfacePointer) {
    if let Ok(ObjRef::Custom { object_data, .. }) = p.objref() {
        let _ = wmio::decode_encoding_unit(&object_data).map(|o| o.into_instance());
    }
}

/// The NDR stub decoders of every DCOM/WMI call and reply, following the objects they carry
/// as the session does.
pub fn dcom_ndr(data: &[u8]) {
    let _ = NtlmLogin::decode(data);
    let _ = ExecQuery::decode(data);
    let _ = EnumNext::decode(data);
    if let Ok(reply) = EnumNextReply::decode(data) {
        reply.objects.iter().for_each(interface);
    }
    let _ = GetSmartEnum::decode(data);
    let _ = SmartNext::decode(data);
    if let Ok(reply) = SmartNextReply::decode(data) {
        let _ = wmio::packet::decode_object_array(&reply.buffer, &mut ClassCache::new());
    }
    if let Ok(reply) = InterfaceReply::decode(data) {
        if let Some(p) = &reply.interface {
            interface(p);
        }
        let _ = cimrun::protocol::dcom::activation::reply_blob(&reply);
    }
    let _ = StatusReply::decode(data);
    let _ = RemQueryInterface::decode(data);
    let _ = RemQueryInterfaceReply::decode(data);
    let _ = RemRelease::decode(data);
    let _ = RemoteCreateInstance::decode(data);
    let _ = ActivationRequest::decode_blob(data);
    let _ = ActivationReply::decode_blob(data);
}
