//! Remote activation blobs and RemoteCreateInstance, checked both ways against impacket: it
//! decodes the request we send, and we decode the request blob its DCOMConnection sends and
//! a reply built from its ScmReplyInfoData/PropsOutInfo structures.

mod dcom_peer;

use cimrun::protocol::dcom::activation::{
    self, ActivatedInterface, ActivationReply, ActivationRequest, RemoteCreateInstance, RemoteCreateInstanceReply,
};
use cimrun::protocol::dcom::calls::{CLSID_WBEM_LEVEL1_LOGIN, IID_IWBEM_LEVEL1_LOGIN};
use cimrun::protocol::dcom::objref::{DualStringArray, ObjRef, SecurityBinding, StringBinding};
use cimrun::protocol::dcom::orpc::{ComVersion, InterfacePointer, OrpcThat, OrpcThis};
use proptest::prelude::*;
use serde_json::json;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn request() -> RemoteCreateInstance {
    let mut orpc = OrpcThis::new([0x42; 16]);
    orpc.flags = 1;
    let act = ActivationRequest::new(CLSID_WBEM_LEVEL1_LOGIN, vec![IID_IWBEM_LEVEL1_LOGIN]);
    RemoteCreateInstance { orpc, properties: act.interface_pointer() }
}

#[test]
fn impacket_decodes_our_activation_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rci.bin");
    std::fs::write(&path, request().encode()).unwrap();
    let mut got = dcom_peer::run("wmio_activation_impacket.py", [std::ffi::OsStr::new("decode"), path.as_os_str()]);
    assert_eq!(got.remove("this_size"), got.get("size").cloned(), "thisSize is the property's own size");
    assert_eq!(got.remove("total"), got.get("header_total").cloned());
    let want = json!({
        "orpc_flags": 1,
        "unk_outer_null": true,
        "objref_iid": hex(&activation::IID_IACTIVATION_PROPERTIES_IN),
        "objref_clsid": hex(&activation::CLSID_ACTIVATION_PROPERTIES_IN),
        "header_total": got["header_total"],
        "size": got["size"],
        "clsids": [
            hex(&activation::CLSID_INSTANTIATION_INFO),
            hex(&activation::CLSID_ACTIVATION_CONTEXT_INFO),
            hex(&activation::CLSID_SERVER_LOCATION_INFO),
            hex(&activation::CLSID_SCM_REQUEST_INFO),
        ],
        "class_id": hex(&CLSID_WBEM_LEVEL1_LOGIN),
        "class_ctx": 0x10,
        "iids": [hex(&IID_IWBEM_LEVEL1_LOGIN)],
        "client_version": [5, 7],
        "imp_level": 2,
        "protseqs": [7],
        "machine_name_null": true,
    });
    assert_eq!(serde_json::Value::Object(got), want);
}

/// impacket's blobs: (request blob, reply blob, what the peer says they hold).
fn impacket_blobs() -> (Vec<u8>, Vec<u8>, serde_json::Map<String, serde_json::Value>) {
    let dir = tempfile::tempdir().unwrap();
    let said = dcom_peer::run("wmio_activation_impacket.py", [std::ffi::OsStr::new("encode"), dir.path().as_os_str()]);
    let read = |f: &str| std::fs::read(dir.path().join(f)).unwrap();
    (read("request_blob.bin"), read("reply_blob.bin"), said)
}

#[test]
fn we_decode_impacket_activation_blobs() {
    let (request_blob, reply_blob, said) = impacket_blobs();
    let req = ActivationRequest::decode_blob(&request_blob).unwrap();
    assert_eq!(hex(&req.clsid), said["request"]["class_id"]);
    assert_eq!(json!(req.iids.iter().map(|i| hex(i)).collect::<Vec<_>>()), said["request"]["iids"]);
    assert_eq!(json!(req.protseqs), said["request"]["protseqs"]);

    let reply = ActivationReply::decode_blob(&reply_blob).unwrap();
    assert_eq!(reply.oxid, said["oxid"].as_u64().unwrap());
    assert_eq!(hex(&reply.ipid_rem_unknown), said["ipid"]);
    assert_eq!(reply.authn_hint as u64, said["authn_hint"].as_u64().unwrap());
    assert_eq!(json!([reply.server_version.major, reply.server_version.minor]), said["version"]);
    let bindings: Vec<_> = reply.bindings.string_bindings.iter().map(|b| json!([b.tower_id, b.address])).collect();
    assert_eq!(json!(bindings), said["bindings"]);
    let security: Vec<_> = reply.bindings.security_bindings.iter().map(|b| json!([b.authn_svc, b.principal])).collect();
    assert_eq!(json!(security), said["security"]);
    let [iface] = reply.interfaces.as_slice() else { panic!("{:?}", reply.interfaces) };
    assert_eq!((hex(&iface.iid), iface.hresult), (said["iid"].as_str().unwrap().to_string(), 0));
    assert_eq!(hex(&iface.pointer.as_ref().unwrap().0), said["objref"]);
}

fn reply() -> ActivationReply {
    ActivationReply {
        oxid: 0x1122_3344_5566_7788,
        bindings: DualStringArray {
            string_bindings: vec![
                StringBinding { tower_id: 7, address: "WIN-HOST[49667]".into() },
                StringBinding { tower_id: 7, address: "192.0.2.10[49667]".into() },
            ],
            security_bindings: vec![SecurityBinding { authn_svc: 10, principal: String::new() }],
        },
        ipid_rem_unknown: [7; 16],
        authn_hint: 6,
        server_version: ComVersion::V5_7,
        interfaces: vec![
            ActivatedInterface {
                iid: IID_IWBEM_LEVEL1_LOGIN,
                hresult: 0,
                pointer: Some(InterfacePointer(vec![9; 70])),
            },
            ActivatedInterface { iid: [1; 16], hresult: 0x8000_4002, pointer: None },
        ],
    }
}

#[test]
fn blobs_round_trip_and_stubs_carry_them() {
    let act = ActivationRequest::new(CLSID_WBEM_LEVEL1_LOGIN, vec![IID_IWBEM_LEVEL1_LOGIN, [3; 16]]);
    assert_eq!(ActivationRequest::decode_blob(&act.blob()).unwrap(), act);
    let rci = request();
    assert_eq!(RemoteCreateInstance::decode(&rci.encode()).unwrap(), rci);

    let out = reply();
    let blob = out.blob();
    assert_eq!(ActivationReply::decode_blob(&blob).unwrap(), out);
    // As the SCM returns it: an OBJREF_CUSTOM inside the reply stub.
    let objref =
        ObjRef::Custom { iid: [0; 16], clsid: activation::CLSID_ACTIVATION_PROPERTIES_OUT, object_data: blob.clone() };
    let stub = RemoteCreateInstanceReply {
        orpc: OrpcThat { flags: 0 },
        interface: Some(InterfacePointer(objref.encode())),
        hresult: 0,
    };
    let decoded = RemoteCreateInstanceReply::decode(&stub.encode()).unwrap();
    assert_eq!(activation::reply_blob(&decoded).unwrap(), blob);
    let empty = RemoteCreateInstanceReply { interface: None, hresult: 0x8007_0005, ..stub };
    assert!(activation::reply_blob(&empty).is_err());
}

#[test]
fn every_truncation_is_an_error() {
    let blob = reply().blob();
    for len in 0..blob.len() {
        assert!(ActivationReply::decode_blob(&blob[..len]).is_err(), "{len}");
    }
    let req = ActivationRequest::new(CLSID_WBEM_LEVEL1_LOGIN, vec![IID_IWBEM_LEVEL1_LOGIN]).blob();
    for len in 0..req.len() {
        assert!(ActivationRequest::decode_blob(&req[..len]).is_err(), "{len}");
    }
}

#[test]
fn a_blob_without_instantiation_info_is_refused() {
    // A reply blob holds PropsOutInfo and ScmReplyInfo only.
    assert!(ActivationRequest::decode_blob(&reply().blob()).is_err());
    assert!(ActivationReply::decode_blob(&request().properties.0[48..]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn corrupted_blobs_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), which in 0usize..2) {
        let mut blob = if which == 0 { reply().blob() } else { ActivationRequest::new([1; 16], vec![[2; 16]]).blob() };
        let len = blob.len();
        for (at, b) in flips {
            blob[at % len] = b;
        }
        let _ = ActivationReply::decode_blob(&blob);
        let _ = ActivationRequest::decode_blob(&blob);
        let _ = RemoteCreateInstance::decode(&blob);
    }
}
