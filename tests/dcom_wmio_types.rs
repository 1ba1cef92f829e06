//! Every CIM type, NULL and default, embedded objects, method parts and instance qualifiers,
//! on objects written by tests/dcom_build from the MS-WMIO text.

mod dcom_build;

use cimrun::cim::{DateTime, Instance, Interval, Reference, Value};
use cimrun::protocol::dcom::DecodeError;
use cimrun::protocol::dcom::wmio::{self, DecodedObject};
use dcom_build::{W, code, *};

fn part_value(name: &str, size: u32) -> Value {
    Value::Instance(Box::new(
        Instance::new("Part").with("Name", Value::String(name.into())).with("Size", Value::UInt32(size)),
    ))
}

fn decode(unit: &[u8]) -> DecodedObject {
    wmio::decode_encoding_unit(unit).unwrap_or_else(|e| panic!("{e}"))
}

fn expected_item() -> Vec<(&'static str, Value)> {
    let s = |v: &str| Value::String(v.into());
    vec![
        ("Id", Value::UInt32(7)),
        ("S8", Value::SInt8(-5)),
        ("U8", Value::UInt8(250)),
        ("S16", Value::SInt16(-1234)),
        ("U16", Value::UInt16(65000)),
        ("S32", Value::SInt32(-70000)),
        ("U64", Value::UInt64(u64::MAX)),
        ("S64", Value::SInt64(i64::MIN)),
        ("R32", Value::Real32(1.5)),
        ("R64", Value::Real64(-2.25e100)),
        ("Flag", Value::Bool(true)),
        ("Off", Value::Bool(false)),
        ("Letter", Value::Char16('Ж')),
        ("Ascii", s("plain")),
        ("Wide", s("Grüße 世界")),
        ("When", Value::DateTime(DateTime::parse_dmtf("20240102030405.123456-420").unwrap())),
        ("Took", Value::Interval(Interval { microseconds: ((86_400 + 2 * 3600 + 3 * 60 + 4) * 1_000_000) + 5 })),
        ("Wild", s("2024****030405.123456+000")),
        (
            "Owner",
            Value::Reference(Box::new(Reference {
                address: Some(r"\\SRV\root\cimv2".into()),
                resource_uri: "Win32_Account".into(),
                selectors: vec![("Domain".into(), "D".into()), ("Name".into(), "u".into())],
            })),
        ),
        ("Part", part_value("p0", 1)),
        ("Numbers", Value::Array(vec![Value::UInt16(1), Value::UInt16(2), Value::UInt16(65535)])),
        ("Names", Value::Array(vec![s("a"), s("ü"), s("世")])),
        ("Flags", Value::Array(vec![Value::Bool(true), Value::Bool(false)])),
        ("Parts", Value::Array(vec![part_value("p1", 2), part_value("p2", 3)])),
        ("Empty", Value::Array(Vec::new())),
        // NdTable bit 0: NULL, whatever the value table holds.
        ("Missing", Value::Null),
        // Bit 1 alone: the class default.
        ("Defaulted", s("from class")),
        ("Nulled", Value::Null),
        ("Both", Value::Null),
        ("DefaultNum", Value::UInt32(42)),
    ]
}

#[test]
fn every_type_decodes_to_its_cim_value() {
    let o = decode(&item(true, false));
    let d = o.decoration.as_ref().unwrap();
    assert_eq!((d.server.as_str(), d.namespace.as_str()), ("HOST", r"root\test"));
    assert_eq!(o.class.superclasses, ["Base"]);
    assert_eq!(o.class.keys().collect::<Vec<_>>(), ["Id"]);
    let inst = o.instance.unwrap();
    assert_eq!(inst.class_name, "Item");
    let got: Vec<(&str, Value)> = inst.properties.iter().map(|p| (p.name.as_str(), p.value.clone())).collect();
    let want = expected_item();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
}

#[test]
fn instance_property_qualifier_sets_are_parsed_past() {
    let with = decode(&item(true, true)).instance.unwrap();
    let without = decode(&item(true, false)).instance.unwrap();
    assert_eq!(with, without);
}

#[test]
fn class_objects_skip_methods_and_keep_defaults() {
    let props = item_props();
    let parent = class_part(None, &[], None, &[]);
    let class = class_part(Some("Item"), &["Base"], Some("all types"), &props);
    let o = decode(&encoding_unit(&class_block(&parent, &class, 3)));
    assert!(o.instance.is_none());
    assert_eq!(o.class.name, "Item");
    assert_eq!(o.class.qualifiers[0].value, Value::String("all types".into()));
    let defaults: Vec<_> = o
        .class
        .properties
        .iter()
        .filter(|p| !p.default.is_null())
        .map(|p| (p.name.as_str(), p.default.clone()))
        .collect();
    let from_class = Value::String("from class".into());
    assert_eq!(
        defaults,
        [
            ("Defaulted", from_class.clone()),
            ("Nulled", from_class.clone()),
            ("Both", from_class),
            ("DefaultNum", Value::UInt32(42))
        ]
    );
    // An embedded class (not instance) reads as its defaults.
    assert_eq!(o.into_instance().get("DefaultNum"), Some(&Value::UInt32(42)));
}

#[test]
fn a_methods_part_that_overruns_is_an_error() {
    let parent = class_part(None, &[], None, &[]);
    let class = class_part(Some("C"), &[], None, &part_props());
    let mut block = class_block(&parent, &class, 2);
    // The last methods part: claim one more method than its length holds.
    let methods = methods_part(2);
    let at = block.len() - methods.len() + 4;
    block[at] = 3;
    assert!(wmio::decode_object_block(&block).is_err());
}

/// An object nested `depth` levels deep through an object property.
fn nested(depth: usize) -> Vec<u8> {
    let props = vec![Prop::new("Child", code::OBJECT)];
    let class = class_part(Some("Node"), &[], None, &props);
    let mut block = instance_block(None, &class, &instance_part("Node", &props, &[(0b01, None)], false));
    for _ in 0..depth {
        block = instance_block(None, &class, &instance_part("Node", &props, &[(0, Some(W::Object(block)))], false));
    }
    block
}

#[test]
fn embedded_objects_nest_to_a_limit() {
    let ok = wmio::decode_object_block(&nested(10)).unwrap().into_instance();
    let mut depth = 0;
    let mut cur = &ok;
    while let Some(Value::Instance(child)) = cur.get("Child") {
        depth += 1;
        cur = child;
    }
    assert_eq!(depth, 10);
    assert_eq!(wmio::decode_object_block(&nested(40)), Err(DecodeError::TooDeep(16)));
}

#[test]
fn crafted_truncations_are_errors() {
    let unit = item(true, true);
    for len in (0..unit.len()).step_by(7) {
        assert!(wmio::decode_encoding_unit(&unit[..len]).is_err(), "{len}");
    }
}
