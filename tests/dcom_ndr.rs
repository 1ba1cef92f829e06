//! NDR request stubs: the recorded impacket stubs decode to their fields in ours, and every
//! stub we encode decodes with impacket's NDR classes to the same fields.

mod dcom_peer;

use cimrun::protocol::dcom::DecodeError;
use cimrun::protocol::dcom::calls::{ComVersion, EnumNext, ExecQuery, NtlmLogin, OrpcThis};
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

#[test]
fn impacket_decodes_what_we_encode() {
    let dir = tempfile::tempdir().unwrap();
    let (login, query, next) = samples();
    let no_locale = NtlmLogin { preferred_locale: None, network_resource: Some("//./root/cimv2".into()), ..login.clone() };
    let stubs = [
        ("ntlmlogin", "login.bin", login.encode()),
        ("ntlmlogin", "login2.bin", no_locale.encode()),
        ("execquery", "query.bin", query.encode()),
        ("next", "next.bin", next.encode()),
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
        with(json!({"network_resource": "//host/root/Microsoft/Windows/Storage", "preferred_locale": "en-US", "lflags": 0, "ctx": false}))
    );
    assert_eq!(
        get("login2.bin"),
        with(json!({"network_resource": "//./root/cimv2", "preferred_locale": null, "lflags": 0, "ctx": false}))
    );
    assert_eq!(
        get("query.bin"),
        with(json!({"language": "WQL", "query": "SELECT * FROM Win32_Service WHERE Name LIKE 'wü%'", "lflags": 0x30, "ctx": false}))
    );
    assert_eq!(get("next.bin"), with(json!({"timeout": 5000, "count": 100})));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_stubs_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = NtlmLogin::decode(&data);
        let _ = ExecQuery::decode(&data);
        let _ = EnumNext::decode(&data);
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
