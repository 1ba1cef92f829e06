//! NDR request stubs: the recorded impacket stubs decode to their fields in ours, and every
//! stub we encode decodes with impacket's NDR classes to the same fields.

mod dcom_peer;

use cimrun::protocol::dcom::DecodeError;
use cimrun::protocol::dcom::calls::{
    EnumNext, EnumNextReply, ExecQuery, GetSmartEnum, NtlmLogin, SmartNext, SmartNextReply,
};
use cimrun::protocol::dcom::objref::{ObjRef, StdObjRef};
use cimrun::protocol::dcom::orpc::{ComVersion, InterfacePointer, InterfaceReply, OrpcThat, OrpcThis, StatusReply};
use cimrun::protocol::dcom::remunknown::{
    QiResult, RemInterfaceRef, RemQueryInterface, RemQueryInterfaceReply, RemRelease,
};
use cimrun::protocol::dcom::wmio;
use proptest::prelude::*;
use serde_json::json;

fn recorded(name: &str) -> Vec<u8> {
    let path = format!("{}/../shared/testdata/wmio/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const CID: [u8; 16] = [0x11; 16];

#[test]
fn recorded_ntlmlogin_decodes() {
    let stub = recorded("ntlmlogin_req.bin");
    let call = NtlmLogin::decode(&stub).unwrap();
    assert_eq!(call.orpc, OrpcThis { version: ComVersion { major: 5, minor: 7 }, flags: 0, cid: CID });
    assert_eq!(call.network_resource.as_deref(), Some("//./root/cimv2"));
    assert_eq!(call.preferred_locale, None);
    assert_eq!(call.flags, 0);
    // Same layout as the recording: only referent ids and padding bytes may differ.
    assert_eq!(call.encode().len(), stub.len());
    assert_eq!(NtlmLogin::decode(&call.encode()).unwrap(), call);
}

#[test]
fn recorded_execquery_decodes() {
    let stub = recorded("execquery_req.bin");
    let call = ExecQuery::decode(&stub).unwrap();
    assert_eq!(call.orpc, OrpcThis::new(CID));
    assert_eq!(call.language, "WQL");
    assert_eq!(call.query, "SELECT Name,Version FROM Win32_OperatingSystem");
    assert_eq!(call.flags, 0x30);
    assert_eq!(call, ExecQuery::wql(OrpcThis::new(CID), "SELECT Name,Version FROM Win32_OperatingSystem"));
    assert_eq!(call.encode().len(), stub.len());
    assert_eq!(ExecQuery::decode(&call.encode()).unwrap(), call);
}

#[test]
fn recorded_next_decodes_and_encodes_identically() {
    let stub = recorded("next_req.bin");
    let call = EnumNext::decode(&stub).unwrap();
    assert_eq!(call, EnumNext { orpc: OrpcThis::new(CID), timeout: 0xFFFF_FFFF, count: 50 });
    // No pointers or padding: the encoding is byte for byte the recording.
    assert_eq!(call.encode(), stub);
}

#[test]
fn truncated_stubs_are_errors() {
    for name in ["ntlmlogin_req.bin", "execquery_req.bin", "next_req.bin"] {
        let stub = recorded(name);
        for len in 0..stub.len() {
            let prefix = &stub[..len];
            let failed = match name {
                "ntlmlogin_req.bin" => NtlmLogin::decode(prefix).is_err(),
                "execquery_req.bin" => ExecQuery::decode(prefix).is_err(),
                _ => EnumNext::decode(prefix).is_err(),
            };
            assert!(failed, "{name}: prefix of {len} bytes decoded");
        }
    }
}

#[test]
fn pointers_we_do_not_send_are_refused() {
    let mut stub = recorded("next_req.bin");
    // ORPCTHIS.extensions (offset 28) set to a referent id.
    stub[28] = 4;
    assert!(matches!(EnumNext::decode(&stub), Err(DecodeError::Invalid { what: "ORPCTHIS.extensions", .. })));
}

fn samples() -> (NtlmLogin, ExecQuery, EnumNext) {
    let orpc = OrpcThis { version: ComVersion { major: 5, minor: 6 }, flags: 1, cid: *b"0123456789abcdef" };
    (
        NtlmLogin {
            orpc,
            network_resource: Some("//host/root/Microsoft/Windows/Storage".into()),
            preferred_locale: Some("en-US".into()),
            flags: 0,
        },
        ExecQuery::wql(orpc, "SELECT * FROM Win32_Service WHERE Name LIKE 'wü%'"),
        EnumNext { orpc, timeout: 5000, count: 100 },
    )
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn impacket_decodes_what_we_encode() {
    let dir = tempfile::tempdir().unwrap();
    let (login, query, next) = samples();
    let orpc = login.orpc;
    let no_locale =
        NtlmLogin { preferred_locale: None, network_resource: Some("//./root/cimv2".into()), ..login.clone() };
    let qi = RemQueryInterface { orpc, ipid: [9; 16], refs: 1, iids: vec![[1; 16], [2; 16]] };
    let release = RemRelease {
        orpc,
        refs: vec![
            RemInterfaceRef { ipid: [3; 16], public_refs: 5, private_refs: 0 },
            RemInterfaceRef { ipid: [4; 16], public_refs: 1, private_refs: 2 },
        ],
    };
    let stubs = [
        ("ntlmlogin", "login.bin", login.encode()),
        ("ntlmlogin", "login2.bin", no_locale.encode()),
        ("execquery", "query.bin", query.encode()),
        ("next", "next.bin", next.encode()),
        ("getsmartenum", "smart.bin", GetSmartEnum { orpc }.encode()),
        ("remqi", "qi.bin", qi.encode()),
        ("remrelease", "release.bin", release.encode()),
    ];
    let mut args = Vec::new();
    for (kind, file, bytes) in &stubs {
        let path = dir.path().join(file);
        std::fs::write(&path, bytes).unwrap();
        args.push(format!("{kind}={}", path.display()));
    }
    let out = dcom_peer::run("wmio_ndr_impacket.py", &args);
    let get = |file: &str| out[dir.path().join(file).to_str().unwrap()].clone();
    let header = json!({"version": [5, 6], "flags": 1, "cid": "30313233343536373839616263646566", "extensions": false});
    let with = |extra: serde_json::Value| {
        let mut h = header.clone();
        h.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        h
    };
    assert_eq!(
        get("login.bin"),
        with(
            json!({"network_resource": "//host/root/Microsoft/Windows/Storage", "preferred_locale": "en-US", "lflags": 0, "ctx": false})
        )
    );
    assert_eq!(
        get("login2.bin"),
        with(json!({"network_resource": "//./root/cimv2", "preferred_locale": null, "lflags": 0, "ctx": false}))
    );
    assert_eq!(
        get("query.bin"),
        with(
            json!({"language": "WQL", "query": "SELECT * FROM Win32_Service WHERE Name LIKE 'wü%'", "lflags": 0x30, "ctx": false})
        )
    );
    assert_eq!(get("next.bin"), with(json!({"timeout": 5000, "count": 100})));
    assert_eq!(get("smart.bin"), header);
    assert_eq!(
        get("qi.bin"),
        with(json!({"ipid": hex(&[9; 16]), "refs": 1, "count": 2, "iids": [hex(&[1; 16]), hex(&[2; 16])]}))
    );
    assert_eq!(get("release.bin"), with(json!({"count": 2, "refs": [[hex(&[3; 16]), 5, 0], [hex(&[4; 16]), 1, 2]]})));
}

#[test]
fn we_decode_what_impacket_encodes() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures: Vec<String> = ["fixture_0.objref.bin", "fixture_2.objref.bin"]
        .iter()
        .map(|f| format!("{}/../shared/testdata/wmio/{f}", env!("CARGO_MANIFEST_DIR")))
        .collect();
    let mut args = vec!["encode".to_string(), dir.path().display().to_string()];
    args.extend(fixtures.iter().cloned());
    let said = dcom_peer::run("wmio_ndr_impacket.py", &args);

    let login = InterfaceReply::decode(&std::fs::read(dir.path().join("login_reply.bin")).unwrap()).unwrap();
    let want = &said["login_reply"];
    assert_eq!(login.hresult, want["hresult"].as_u64().unwrap() as u32);
    let Ok(ObjRef::Standard { iid, std, resolver }) = login.interface.unwrap().objref() else {
        panic!("not a standard OBJREF")
    };
    assert_eq!(hex(&iid), want["iid"]);
    assert_eq!(std.public_refs as u64, want["public_refs"].as_u64().unwrap());
    assert_eq!(std.oxid, want["oxid"].as_u64().unwrap());
    assert_eq!(std.oid, want["oid"].as_u64().unwrap());
    assert_eq!(hex(&std.ipid), want["ipid"]);
    let bindings: Vec<_> = resolver.string_bindings.iter().map(|b| json!([b.tower_id, b.address])).collect();
    assert_eq!(json!(bindings), want["bindings"]);
    let security: Vec<_> = resolver.security_bindings.iter().map(|b| json!([b.authn_svc, b.principal])).collect();
    assert_eq!(json!(security), want["security"]);

    let next = EnumNextReply::decode(&std::fs::read(dir.path().join("next_reply.bin")).unwrap()).unwrap();
    let want = &said["next_reply"];
    assert_eq!((next.returned, next.hresult), (2, 1));
    let objects: Vec<_> = next.objects.iter().map(|o| hex(&o.0)).collect();
    assert_eq!(json!(objects), want["objects"]);
    // And the objects they carry are WMI instances.
    let Ok(ObjRef::Custom { object_data, .. }) = next.objects[0].objref() else { panic!("not a custom OBJREF") };
    let utc = wmio::decode_encoding_unit(&object_data).unwrap();
    assert_eq!(utc.class.name, "Win32_UTCTime");
}

#[test]
fn replies_round_trip() {
    let orpc = OrpcThat { flags: 0 };
    let reply = EnumNextReply {
        orpc,
        objects: vec![InterfacePointer(vec![1; 5]), InterfacePointer(vec![2; 3])],
        returned: 2,
        hresult: 1,
    };
    assert_eq!(EnumNextReply::decode(&reply.encode(10)).unwrap(), reply);
    let smart = SmartNextReply { orpc, returned: 3, buffer: b"WBEMDATA and more".to_vec(), hresult: 0 };
    assert_eq!(SmartNextReply::decode(&smart.encode()).unwrap(), smart);
    let std = StdObjRef { flags: 0, public_refs: 5, oxid: 1 << 40, oid: 7, ipid: [5; 16] };
    let qi = RemQueryInterfaceReply {
        orpc,
        results: vec![QiResult { hresult: 0, std: std.clone() }, QiResult { hresult: 0x8000_4002, std }],
        hresult: 0,
    };
    let bytes = qi.encode();
    // ORPCTHAT, referent, conformance, then 8-aligned 48-byte elements, then the HRESULT.
    assert_eq!(bytes.len(), 16 + 2 * 48 + 4);
    assert_eq!(RemQueryInterfaceReply::decode(&bytes).unwrap(), qi);
    let status = StatusReply { orpc, hresult: 0x8001_0108 };
    assert_eq!(StatusReply::decode(&status.encode()).unwrap(), status);
}

#[test]
fn smart_next_sends_the_guid_by_reference() {
    let call = SmartNext { orpc: OrpcThis::new(CID), proxy_guid: [0xAB; 16], timeout: -1, count: 500 };
    let bytes = call.encode();
    // ORPCTHIS (32), the GUID itself (no referent id), lTimeout, uCount.
    assert_eq!(bytes.len(), 32 + 16 + 4 + 4);
    assert_eq!(bytes[32..48], [0xAB; 16]);
    assert_eq!(SmartNext::decode(&bytes).unwrap(), call);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_stubs_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = NtlmLogin::decode(&data);
        let _ = ExecQuery::decode(&data);
        let _ = EnumNext::decode(&data);
        let _ = EnumNextReply::decode(&data);
        let _ = SmartNextReply::decode(&data);
        let _ = InterfaceReply::decode(&data);
        let _ = RemQueryInterfaceReply::decode(&data);
        let _ = RemRelease::decode(&data);
        let _ = RemQueryInterface::decode(&data);
        let _ = ObjRef::decode(&data);
    }

    #[test]
    fn encodings_round_trip(resource in "\\PC{0,40}", query in "\\PC{0,80}", timeout in any::<u32>(), count in any::<u32>()) {
        let (mut login, mut exec, mut next) = samples();
        login.network_resource = Some(resource);
        exec.query = query;
        next.timeout = timeout;
        next.count = count;
        prop_assert_eq!(NtlmLogin::decode(&login.encode()).unwrap(), login);
        prop_assert_eq!(ExecQuery::decode(&exec.encode()).unwrap(), exec);
        prop_assert_eq!(EnumNext::decode(&next.encode()).unwrap(), next);
    }
}
