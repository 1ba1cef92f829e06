//! cimrun's DCE/RPC client with NTLMv2 against the DCOM/WMI emulator (tests/peers/dcom_emulator.py,
//! built on impacket). The emulator verifies our NTLMv2 proof, our MIC and the signature of every
//! request fragment with impacket's NTLM code, and seals and signs its answers, which we verify.
//! A missing python or impacket fails these tests rather than skipping them.

mod dcom_emulator;
#[allow(dead_code)]
mod dcom_peer;

use cimrun::protocol::Category;
use cimrun::protocol::dcom::activation::{
    self, ActivationReply, ActivationRequest, IID_IREMOTE_SCM_ACTIVATOR, RemoteCreateInstance,
};
use cimrun::protocol::dcom::calls::{
    CLSID_WBEM_LEVEL1_LOGIN, EnumNext, EnumNextReply, ExecQuery, GetSmartEnum, IID_IENUM_WBEM_CLASS_OBJECT,
    IID_IWBEM_FETCH_SMART_ENUM, IID_IWBEM_LEVEL1_LOGIN, IID_IWBEM_SERVICES, IID_IWBEM_WCO_SMART_ENUM, InterfaceReply,
    NtlmLogin, SmartNext, SmartNextReply,
};
use cimrun::protocol::dcom::objref::ObjRef;
use cimrun::protocol::dcom::orpc::{InterfacePointer, OrpcThis, StatusReply};
use cimrun::protocol::dcom::remunknown::{
    IID_IREM_UNKNOWN2, RemInterfaceRef, RemQueryInterface, RemQueryInterfaceReply, RemRelease,
};
use cimrun::protocol::dcom::rpc::AuthLevel;
use cimrun::protocol::dcom::wmio;
use dcom_emulator::{Emulator, PASSWORD, Wire};

const CID: [u8; 16] = [0x42; 16];
/// WBEM_S_FALSE: fewer objects than asked remain.
const WBEM_S_FALSE: u32 = 1;

fn ipid(pointer: &InterfacePointer) -> [u8; 16] {
    match pointer.objref().unwrap() {
        ObjRef::Standard { std, .. } => std.ipid,
        other => panic!("expected a standard OBJREF, got {other:?}"),
    }
}

/// RemoteCreateInstance on the activation port: the object exporter's port and the
/// IWbemLevel1Login IPID, and the IRemUnknown IPID.
fn activate(emu: &Emulator, level: AuthLevel, max_frag: u16) -> (u16, [u8; 16], [u8; 16], Wire) {
    let mut scm = Wire::open(emu.activation_port, level, PASSWORD, IID_IREMOTE_SCM_ACTIVATOR, max_frag).unwrap();
    let request = ActivationRequest::new(CLSID_WBEM_LEVEL1_LOGIN, vec![IID_IWBEM_LEVEL1_LOGIN]);
    let call = RemoteCreateInstance { orpc: OrpcThis::new(CID), properties: request.interface_pointer() };
    let stub = scm.call(0, RemoteCreateInstance::OPNUM, None, &call.encode()).unwrap();
    let reply = InterfaceReply::decode(&stub).unwrap();
    assert_eq!(reply.hresult, 0);
    let reply = ActivationReply::decode_blob(&activation::reply_blob(&reply).unwrap()).unwrap();
    let port = reply
        .bindings
        .string_bindings
        .iter()
        .find_map(|b| b.address.strip_prefix("127.0.0.1[")?.strip_suffix(']')?.parse().ok())
        .expect("a 127.0.0.1[port] string binding");
    let login = ipid(reply.interfaces[0].pointer.as_ref().unwrap());
    (port, login, reply.ipid_rem_unknown, scm)
}

/// How the test reads the enumerator.
#[derive(Clone, Copy, PartialEq)]
enum Reader {
    /// IEnumWbemClassObject::Next, half the rows per call.
    Next,
    /// IWbemWCOSmartEnum::Next in batches of this many.
    Smart(u32),
}

fn query(level: AuthLevel, max_frag: u16, rows: u32, wql: &str) -> (Emulator, usize, usize) {
    query_with(level, max_frag, rows, wql, Reader::Next)
}

fn query_with(level: AuthLevel, max_frag: u16, rows: u32, wql: &str, reader: Reader) -> (Emulator, usize, usize) {
    let rows_arg = rows.to_string();
    let frag_arg = max_frag.to_string();
    let emu = Emulator::start(&["--rows", &rows_arg, "--max-frag", &frag_arg]);
    let (port, login, rem_unknown, scm) = activate(&emu, level, max_frag);
    assert_eq!(port, emu.object_port);

    let mut obj = Wire::open(port, level, PASSWORD, IID_IWBEM_LEVEL1_LOGIN, max_frag).unwrap();
    let call = NtlmLogin {
        orpc: OrpcThis::new(CID),
        network_resource: Some("//./root/cimv2".into()),
        preferred_locale: None,
        flags: 0,
    };
    let reply = InterfaceReply::decode(&obj.call(0, NtlmLogin::OPNUM, Some(login), &call.encode()).unwrap()).unwrap();
    assert_eq!(reply.hresult, 0);
    let services = ipid(reply.interface.as_ref().unwrap());

    let ctx = obj.alter(IID_IWBEM_SERVICES).unwrap();
    let call = ExecQuery::wql(OrpcThis::new(CID), wql);
    let reply =
        InterfaceReply::decode(&obj.call(ctx, ExecQuery::OPNUM, Some(services), &call.encode()).unwrap()).unwrap();
    assert_eq!(reply.hresult, 0);
    let enumerator = ipid(reply.interface.as_ref().unwrap());

    let ctx_rem = obj.alter(IID_IREM_UNKNOWN2).unwrap();
    if let Reader::Smart(batch) = reader {
        assert_eq!(smart_enum(&mut obj, ctx_rem, rem_unknown, enumerator, batch), rows as usize);
        return release(emu, obj, scm, ctx_rem, rem_unknown, [services, enumerator]);
    }
    let ctx = obj.alter(IID_IENUM_WBEM_CLASS_OBJECT).unwrap();
    let batch = rows.div_ceil(2);
    let mut seen = 0;
    loop {
        let call = EnumNext { orpc: OrpcThis::new(CID), timeout: 5000, count: batch };
        let reply =
            EnumNextReply::decode(&obj.call(ctx, EnumNext::OPNUM, Some(enumerator), &call.encode()).unwrap()).unwrap();
        for object in &reply.objects {
            let ObjRef::Custom { object_data, .. } = object.objref().unwrap() else { panic!("not an OBJREF_CUSTOM") };
            let decoded = wmio::decode_encoding_unit(&object_data).unwrap();
            assert_eq!(decoded.class.name, "Win32_UTCTime");
        }
        seen += reply.objects.len();
        if reply.hresult == WBEM_S_FALSE {
            break;
        }
        assert_eq!((reply.hresult, reply.objects.len()), (0, batch as usize));
    }
    assert_eq!(seen, rows as usize);
    release(emu, obj, scm, ctx_rem, rem_unknown, [services, enumerator])
}

fn release(
    emu: Emulator,
    mut obj: Wire,
    scm: Wire,
    ctx: u16,
    rem_unknown: [u8; 16],
    ipids: [[u8; 16]; 2],
) -> (Emulator, usize, usize) {
    let refs = ipids.map(|ipid| RemInterfaceRef { ipid, public_refs: 5, private_refs: 0 }).to_vec();
    let call = RemRelease { orpc: OrpcThis::new(CID), refs };
    let reply =
        StatusReply::decode(&obj.call(ctx, RemRelease::OPNUM, Some(rem_unknown), &call.encode()).unwrap()).unwrap();
    assert_eq!(reply.hresult, 0);
    (emu, scm.fragments_sent, obj.fragments_sent)
}

/// IWbemFetchSmartEnum from the enumerator, then WBEMDATA batches through one class cache.
fn smart_enum(obj: &mut Wire, ctx_rem: u16, rem_unknown: [u8; 16], enumerator: [u8; 16], batch: u32) -> usize {
    let call = RemQueryInterface {
        orpc: OrpcThis::new(CID),
        ipid: enumerator,
        refs: 5,
        iids: vec![IID_IWBEM_FETCH_SMART_ENUM],
    };
    let stub = obj.call(ctx_rem, RemQueryInterface::OPNUM, Some(rem_unknown), &call.encode()).unwrap();
    let reply = RemQueryInterfaceReply::decode(&stub).unwrap();
    assert_eq!((reply.hresult, reply.results.len(), reply.results[0].hresult), (0, 1, 0));
    let fetch = reply.results[0].std.ipid;

    let ctx = obj.alter(IID_IWBEM_FETCH_SMART_ENUM).unwrap();
    let stub = obj.call(ctx, GetSmartEnum::OPNUM, Some(fetch), &GetSmartEnum { orpc: OrpcThis::new(CID) }.encode());
    let reply = InterfaceReply::decode(&stub.unwrap()).unwrap();
    let smart = ipid(reply.interface.as_ref().unwrap());

    let ctx = obj.alter(IID_IWBEM_WCO_SMART_ENUM).unwrap();
    let mut cache = wmio::packet::ClassCache::new();
    let mut seen = 0;
    loop {
        let call = SmartNext { orpc: OrpcThis::new(CID), proxy_guid: [0x77; 16], timeout: 5000, count: batch };
        let reply =
            SmartNextReply::decode(&obj.call(ctx, SmartNext::OPNUM, Some(smart), &call.encode()).unwrap()).unwrap();
        if reply.returned > 0 {
            let objects = wmio::packet::decode_object_array(&reply.buffer, &mut cache).unwrap();
            assert_eq!(objects.len(), reply.returned as usize);
            for o in &objects {
                assert_eq!(o.class.name, "Win32_UTCTime");
                assert!(o.instance.is_some());
            }
        }
        seen += reply.returned as usize;
        if reply.hresult == WBEM_S_FALSE {
            break;
        }
    }
    assert_eq!(cache.len(), 1, "the class came once");
    seen
}

fn check_log(emu: &Emulator, level: AuthLevel, sent: [usize; 2]) -> Vec<serde_json::Value> {
    let conns = emu.connections();
    assert_eq!(conns.len(), 2);
    for (conn, sent) in conns.iter().zip(sent) {
        let auth = &conn["auth"];
        assert_eq!((auth["user"].as_str(), auth["domain"].as_str()), (Some("alice"), Some("LAB")), "{conn}");
        assert_eq!((auth["proof"].as_str(), auth["mic"].as_str()), (Some("ok"), Some("ok")), "{conn}");
        assert_eq!(conn["level"].as_u64(), Some(level as u64));
        assert_eq!(conn["bad_signatures"].as_u64(), Some(0));
        assert_eq!(conn["verified_signatures"].as_u64(), Some(sent as u64), "every fragment verified: {conn}");
    }
    conns
}

#[test]
fn a_query_at_packet_privacy() {
    let (emu, scm, obj) = query(AuthLevel::Privacy, 5840, 5, "SELECT * FROM Win32_UTCTime");
    let conns = check_log(&emu, AuthLevel::Privacy, [scm, obj]);
    let requests: Vec<u64> =
        conns[1]["requests"].as_array().unwrap().iter().map(|r| r["opnum"].as_u64().unwrap()).collect();
    assert_eq!(requests, [6, 20, 4, 4, 5]);
    assert_eq!(conns[1]["alter_contexts"].as_array().unwrap().len(), 3);
}

#[test]
fn a_query_at_packet_integrity() {
    let (emu, scm, obj) = query(AuthLevel::Integrity, 5840, 3, "SELECT * FROM Win32_UTCTime");
    check_log(&emu, AuthLevel::Integrity, [scm, obj]);
}

#[test]
fn small_fragments_both_ways() {
    // A 3 KB query goes out in several request fragments; 30 objects of ~1 KB come back in many.
    let wql = format!("SELECT * FROM Win32_UTCTime{}", " ".repeat(1500));
    let (emu, scm, obj) = query(AuthLevel::Privacy, 1024, 30, &wql);
    let conns = check_log(&emu, AuthLevel::Privacy, [scm, obj]);
    let exec = &conns[1]["requests"][1];
    assert_eq!(exec["opnum"].as_u64(), Some(20));
    assert!(exec["stub_len"].as_u64().unwrap() > 3000);
    let calls = conns[1]["requests"].as_array().unwrap().len();
    assert!(obj > calls, "requests were fragmented: {obj} fragments for {calls} calls");
    assert!(conns[1]["fragments_out"].as_u64().unwrap() > 30, "{}", conns[1]);
}

#[test]
fn a_wrong_password_is_access_denied() {
    let emu = Emulator::start(&[]);
    let mut scm =
        Wire::open(emu.activation_port, AuthLevel::Privacy, "wrong", IID_IREMOTE_SCM_ACTIVATOR, 5840).unwrap();
    let request = ActivationRequest::new(CLSID_WBEM_LEVEL1_LOGIN, vec![IID_IWBEM_LEVEL1_LOGIN]);
    let call = RemoteCreateInstance { orpc: OrpcThis::new(CID), properties: request.interface_pointer() };
    let err = scm.call(0, RemoteCreateInstance::OPNUM, None, &call.encode()).unwrap_err();
    assert_eq!((err.category, err.code.as_deref()), (Category::AccessDenied, Some("0x00000005")));
    assert_eq!(emu.connections()[0]["auth"]["proof"].as_str(), Some("bad"));
}

#[test]
fn a_bad_server_signature_is_refused() {
    let emu = Emulator::start(&["--corrupt-signature", "1"]);
    let mut scm =
        Wire::open(emu.activation_port, AuthLevel::Integrity, PASSWORD, IID_IREMOTE_SCM_ACTIVATOR, 5840).unwrap();
    let request = ActivationRequest::new(CLSID_WBEM_LEVEL1_LOGIN, vec![IID_IWBEM_LEVEL1_LOGIN]);
    let call = RemoteCreateInstance { orpc: OrpcThis::new(CID), properties: request.interface_pointer() };
    let err = scm.call(0, RemoteCreateInstance::OPNUM, None, &call.encode()).unwrap_err();
    assert_eq!(err.category, Category::ProtocolError);
    assert!(err.message.contains("signature"), "{err}");
}

#[test]
fn an_unknown_operation_faults_as_unsupported() {
    let emu = Emulator::start(&[]);
    let (port, login, _, _) = activate(&emu, AuthLevel::Privacy, 5840);
    let mut obj = Wire::open(port, AuthLevel::Privacy, PASSWORD, IID_IWBEM_LEVEL1_LOGIN, 5840).unwrap();
    let err = obj.call(0, 9, Some(login), &[0; 32]).unwrap_err();
    assert_eq!((err.category, err.code.as_deref()), (Category::Unsupported, Some("0x1c010002")));
    // The association survives a fault: the next call on it works.
    let call = NtlmLogin {
        orpc: OrpcThis::new(CID),
        network_resource: Some("root/nope".into()),
        preferred_locale: None,
        flags: 0,
    };
    let reply = InterfaceReply::decode(&obj.call(0, NtlmLogin::OPNUM, Some(login), &call.encode()).unwrap()).unwrap();
    assert_eq!((reply.hresult, reply.interface), (0x8004_100E, None));
}

#[test]
fn smart_enum_batches_send_the_class_once() {
    let (emu, scm, obj) = query_with(AuthLevel::Privacy, 5840, 25, "SELECT * FROM Win32_UTCTime", Reader::Smart(10));
    let conns = check_log(&emu, AuthLevel::Privacy, [scm, obj]);
    let requests: Vec<u64> =
        conns[1]["requests"].as_array().unwrap().iter().map(|r| r["opnum"].as_u64().unwrap()).collect();
    // NTLMLogin, ExecQuery, RemQueryInterface, GetSmartEnum, 3 batches (10, 10, 5), RemRelease.
    assert_eq!(requests, [6, 20, 3, 3, 3, 3, 3, 5]);
    assert_eq!(conns[1]["noclass_objects"].as_u64(), Some(24));
}
