//! MS-WMIO decoding against the specification's worked examples (MS-WMIO section 4), a
//! Windows-produced Win32_UTCTime, impacket-encoded objects, and WBEMDATA batches.

use cimrun::cim::Value;
use cimrun::cim::schema::CimType;
use cimrun::protocol::dcom::DecodeError;
use cimrun::protocol::dcom::objref::ObjRef;
use cimrun::protocol::dcom::wmio::packet::{ClassCache, decode_object_array};
use cimrun::protocol::dcom::wmio::{self, DecodedObject};
use proptest::prelude::*;

fn vector(name: &str) -> Vec<u8> {
    let path = format!("{}/../shared/testdata/wmio/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The MS-WMIO encoding unit inside an OBJREF_CUSTOM fixture.
fn objref_data(name: &str) -> Vec<u8> {
    match ObjRef::decode(&vector(name)).unwrap() {
        ObjRef::Custom { object_data, .. } => object_data,
        other => panic!("{name}: expected OBJREF_CUSTOM, got {other:?}"),
    }
}

fn values(o: &DecodedObject) -> Vec<(String, Value)> {
    o.instance.as_ref().unwrap().properties.iter().map(|p| (p.name.to_string(), p.value.clone())).collect()
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

// Expected values below quote the MS-WMIO "Structure Examples" section (v20240423, pp. 40-46),
// whose MOF is:
//   Class base { [key] sint32 Id; };
//   [Description("MyClass Example")]
//   class MyClass : Base { [read, write] string Data1; string Data2 = "defaultValue"; uint32 Array[ ]; };
// and the instance given in section 2.2.65 (InstPropQualSet), encoded by the same section:
//   instance of MyClass { Array = {1, 2, 3}; [test] Data1 = "StringField"; Id = 123; };

#[test]
fn spec_example_base_class() {
    // Spec: "The preceding sample ObjectEncodingLength value is 0xD0, which is larger than the
    // actual required number of octets." The hex carries 192 bytes after the header, so the
    // encoding unit is (rightly) truncated; the object block itself is complete.
    let data = vector("mswmio_baseClass.bin");
    assert!(matches!(
        wmio::decode_encoding_unit(&data),
        Err(DecodeError::Truncated { what: "ObjectBlock", need: 208, have: 192, .. })
    ));
    let o = wmio::decode_object_block(&data[8..]).unwrap();
    let d = o.decoration.unwrap();
    // Spec: "the value is DPRAVAT-DEV followed by an 8-bit NULL terminator"; "the value is ROOT".
    assert_eq!((d.server.as_str(), d.namespace.as_str()), ("DPRAVAT-DEV", "ROOT"));
    // Spec: "Bit 0 set. This is a CIM class definition (not a CIM instance)."
    assert!(o.instance.is_none());
    // Spec: "The CIM class name is the first item in the heap, or an Encoded-String with the
    // value of base" (the heap bytes read "Base"); "There is no list of superclasses because
    // base is the basest class."
    assert_eq!(o.class.name, "Base");
    assert!(o.class.superclasses.is_empty());
    // Spec: "There is one CIM property in this CIM class"; "Encoded-String ID, the name of the
    // property"; "CIM-TYPE-SINT32 == 3"; "The dictionary reference is key."
    let [id] = o.class.properties.as_slice() else { panic!("{:?}", o.class.properties) };
    assert_eq!((id.name.as_str(), id.wire_type.cim_type, id.is_key), ("Id", CimType::SInt32, true));
    // Spec: "the bit value 01 indicates that the property has a default value of NULL";
    // "No value is defined for the CIM property by default in the CIM class definition."
    assert_eq!(id.default, Value::Null);
    assert_eq!(o.class.keys().collect::<Vec<_>>(), ["Id"]);
}

#[test]
fn spec_example_derived_class() {
    let o = wmio::decode_encoding_unit(&vector("mswmio_myClass.bin")).unwrap();
    let c = &o.class;
    // MOF: `[Description("MyClass Example")] class MyClass : Base`.
    assert_eq!(c.name, "MyClass");
    assert_eq!(c.superclasses, ["Base"]);
    assert_eq!(c.qualifiers.iter().find(|q| q.name == "Description").map(|q| &q.value), Some(&s("MyClass Example")));
    let props: Vec<_> = c
        .properties
        .iter()
        .map(|p| (p.name.as_str(), p.wire_type.cim_type, p.wire_type.is_array, p.wire_type.inherited))
        .collect();
    assert_eq!(
        props,
        [
            ("Id", CimType::SInt32, false, true),
            ("Data1", CimType::String, false, false),
            ("Data2", CimType::String, false, false),
            ("Array", CimType::UInt32, true, false),
        ]
    );
    assert_eq!(c.keys().collect::<Vec<_>>(), ["Id"]);
    // MOF: `string Data2 = "defaultValue";` is the only property with a class default.
    let defaults: Vec<_> = c.properties.iter().map(|p| p.default.clone()).collect();
    assert_eq!(defaults, [Value::Null, Value::Null, s("defaultValue"), Value::Null]);
    // MOF: `[read, write] string Data1;`
    let data1 = c.property("data1").unwrap();
    let names: Vec<_> = data1.qualifiers.iter().map(|q| q.name.as_str()).collect();
    assert!(names.contains(&"read") && names.contains(&"write"), "{names:?}");
}

#[test]
fn spec_example_instance_takes_class_default() {
    let o = wmio::decode_encoding_unit(&vector("mswmio_instanceMyClass.bin")).unwrap();
    assert_eq!(o.instance.as_ref().unwrap().class_name, "MyClass");
    // MOF (2.2.65): `instance of MyClass { Array = {1, 2, 3}; [test] Data1 = "StringField";
    // Id = 123; };` Data2 is not assigned, so it takes the class default: 2.2.3, "Because
    // default values from CIM class definitions can be used in a CIM instance ... the NdTable
    // bits are set to indicate whether NULL or a default value is in use for each property."
    assert_eq!(
        values(&o),
        [
            ("Id".into(), Value::SInt32(123)),
            ("Data1".into(), s("StringField")),
            // NdTable bit 1 alone: the value is the class default, not NULL.
            ("Data2".into(), s("defaultValue")),
            ("Array".into(), Value::Array(vec![Value::UInt32(1), Value::UInt32(2), Value::UInt32(3)])),
        ]
    );
}

#[test]
fn windows_utc_time_instance() {
    let o = wmio::decode_encoding_unit(&objref_data("fixture_0.objref.bin")).unwrap();
    let d = o.decoration.as_ref().unwrap();
    assert_eq!((d.server.as_str(), d.namespace.as_str()), ("SEVENX64", r"root\cimv2"));
    assert_eq!(o.class.name, "Win32_UTCTime");
    assert_eq!(o.class.superclasses, ["Win32_CurrentTime"]);
    let u = |v| Value::UInt32(v);
    assert_eq!(
        values(&o),
        [
            ("Year".into(), u(2021)),
            ("Month".into(), u(6)),
            ("Day".into(), u(8)),
            ("DayOfWeek".into(), u(2)),
            ("WeekInMonth".into(), u(2)),
            ("Quarter".into(), u(2)),
            ("Hour".into(), u(0)),
            ("Minute".into(), u(0)),
            ("Second".into(), u(35)),
            ("Milliseconds".into(), Value::Null),
        ]
    );
}

#[test]
fn impacket_encoded_fixtures_decode() {
    let expect = [
        ("fixture_1.objref.bin", "ActiveScriptEventConsumer", vec!["Name"]),
        ("fixture_2.objref.bin", "__IntervalTimerInstruction", vec!["TimerId"]),
        ("fixture_3.objref.bin", "__EventFilter", vec!["Name"]),
        ("fixture_4.objref.bin", "__FilterToConsumerBinding", vec!["Filter", "Consumer"]),
    ];
    for (file, class, keys) in expect {
        let o = wmio::decode_encoding_unit(&objref_data(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(o.class.name, class);
        assert_eq!(o.class.keys().collect::<Vec<_>>(), keys, "{file}");
        assert_eq!(o.instance.as_ref().unwrap().properties.len(), o.class.properties.len());
    }
    let binding = wmio::decode_encoding_unit(&objref_data("fixture_4.objref.bin")).unwrap();
    let inst = binding.instance.unwrap();
    assert!(matches!(inst.get("Filter"), Some(Value::Reference(_))));
    assert_eq!(inst.get("DeliverSynchronously"), Some(&Value::Bool(false)));
}

/// Splits fixture_0's object block into (flags+decoration, class part, instance part).
fn split_instance_block(block: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut pos = 1;
    for _ in 0..2 {
        // Compressed encoded strings: a zero flag, then the text up to a NUL.
        let nul = block[pos + 1..].iter().position(|&b| b == 0).unwrap();
        pos += nul + 2;
    }
    let class_len = u32::from_le_bytes(block[pos..pos + 4].try_into().unwrap()) as usize;
    (block[..pos].to_vec(), block[pos..pos + class_len].to_vec(), block[pos + class_len..].to_vec())
}

fn packet(kind: u8, class_id: [u8; 16], object: &[u8]) -> Vec<u8> {
    let mut inner = Vec::new();
    if kind == 1 {
        inner.extend(8u32.to_le_bytes());
        inner.extend((object.len() as u32).to_le_bytes());
    } else {
        inner.extend(0x18u32.to_le_bytes());
        inner.extend((object.len() as u32).to_le_bytes());
        inner.extend(class_id);
    }
    inner.extend(object);
    let mut out = Vec::new();
    out.extend(9u32.to_le_bytes());
    out.extend((inner.len() as u32).to_le_bytes());
    out.push(kind);
    out.extend(inner);
    out
}

fn object_array(packets: &[Vec<u8>]) -> Vec<u8> {
    let objects: Vec<u8> = packets.concat();
    let mut out = Vec::new();
    out.extend(0u32.to_le_bytes());
    out.extend(b"WBEMDATA");
    out.extend(0x1Au32.to_le_bytes());
    out.extend((objects.len() as u32 + 20).to_le_bytes());
    out.extend(0u32.to_le_bytes());
    out.extend([1u8, 0]);
    out.extend(8u32.to_le_bytes());
    out.extend((objects.len() as u32 + 12).to_le_bytes());
    out.extend(12u32.to_le_bytes());
    out.extend((objects.len() as u32).to_le_bytes());
    out.extend((packets.len() as u32).to_le_bytes());
    out.extend(objects);
    out
}

#[test]
fn object_array_resolves_instances_through_the_class_cache() {
    let unit = objref_data("fixture_0.objref.bin");
    let block = &unit[8..];
    let (head, _class, mut instance) = split_instance_block(block);
    // A second instance without its class, with a different Second (value table offset 0x20
    // after EncodingLength, InstanceFlags, InstanceClassName and the 3-byte NdTable).
    instance[4 + 1 + 4 + 3 + 0x20] = 59;
    let no_class = [head, instance].concat();
    let id = [7u8; 16];

    let mut cache = ClassCache::new();
    let first = object_array(&[packet(2, id, block), packet(3, id, &no_class)]);
    let objs = decode_object_array(&first, &mut cache).unwrap();
    assert_eq!(objs.len(), 2);
    assert_eq!(cache.len(), 1);
    assert_eq!(objs[0].instance.as_ref().unwrap().get("Second"), Some(&Value::UInt32(35)));
    let second = objs[1].instance.as_ref().unwrap();
    assert_eq!(second.class_name, "Win32_UTCTime");
    assert_eq!(second.get("Second"), Some(&Value::UInt32(59)));
    assert_eq!(second.get("Milliseconds"), Some(&Value::Null));

    // A later batch refers to the class by id only.
    let later = object_array(&[packet(3, id, &no_class), packet(1, [0; 16], &vector("mswmio_myClass.bin")[8..])]);
    let objs = decode_object_array(&later, &mut cache).unwrap();
    assert_eq!(objs[0].instance.as_ref().unwrap().get("Year"), Some(&Value::UInt32(2021)));
    assert_eq!(objs[1].class.name, "MyClass");
    assert!(objs[1].instance.is_none());

    // Without the class, the instance cannot be read.
    let err = decode_object_array(&later, &mut ClassCache::new()).unwrap_err();
    assert!(matches!(err, DecodeError::UnknownClass(_)), "{err}");
}

#[test]
fn object_array_framing_errors() {
    let mut cache = ClassCache::new();
    let good = object_array(&[]);
    assert!(decode_object_array(&good, &mut cache).unwrap().is_empty());
    let mut bad_sig = good.clone();
    bad_sig[4] = b'X';
    assert!(matches!(decode_object_array(&bad_sig, &mut cache), Err(DecodeError::Invalid { what: "abSignature", .. })));
    let mut many = good.clone();
    let n = many.len();
    many[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(decode_object_array(&many, &mut cache), Err(DecodeError::Truncated { .. })));
    let bad_kind = object_array(&[packet(9, [0; 16], &[])]);
    assert!(matches!(
        decode_object_array(&bad_kind, &mut cache),
        Err(DecodeError::Invalid { what: "bObjectType", .. })
    ));
}

fn full_units() -> Vec<Vec<u8>> {
    vec![
        vector("mswmio_myClass.bin"),
        vector("mswmio_instanceMyClass.bin"),
        objref_data("fixture_0.objref.bin"),
        objref_data("fixture_4.objref.bin"),
    ]
}

#[test]
fn every_truncation_is_an_error() {
    for unit in full_units() {
        wmio::decode_encoding_unit(&unit).unwrap();
        for len in 0..unit.len() {
            assert!(wmio::decode_encoding_unit(&unit[..len]).is_err(), "prefix of {len} bytes decoded");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = wmio::decode_encoding_unit(&data);
        let _ = wmio::decode_object_block(&data);
        let _ = decode_object_array(&data, &mut ClassCache::new());
        let _ = ObjRef::decode(&data);
    }

    #[test]
    fn object_paths_never_panic(path in "[\\\\a-zA-Zü:.=,\"@ 0-9]{0,40}", any_text in "\\PC{0,40}") {
        for p in [&path, &any_text] {
            let r = wmio::path::parse(p);
            // A path that does not parse is kept whole, so nothing is ever lost.
            if r.selectors.is_empty() && r.address.is_none() {
                prop_assert!(p.starts_with(&r.resource_uri));
            }
        }
    }

    #[test]
    fn corrupted_vectors_never_panic(which in 0usize..4, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut unit = full_units().swap_remove(which);
        let len = unit.len();
        for (at, byte) in flips {
            unit[at % len] = byte;
        }
        let _ = wmio::decode_encoding_unit(&unit);
        let _ = wmio::decode_object_block(&unit[8..]);
        let wrapped = object_array(&[packet(2, [1; 16], &unit[8..]), packet(3, [1; 16], &unit[8..])]);
        let _ = decode_object_array(&wrapped, &mut ClassCache::new());
    }
}
