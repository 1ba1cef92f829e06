//! How one CIM value looks in each output: typed JSON, or plain text for CSV and tables.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::cim::{Instance, Property, Reference, Value};

use super::columns::same_name;
use super::scan::json_needs_escapes;

/// The column every row starts with, as PowerShell names it.
pub const COMPUTER_COLUMN: &str = "PSComputerName";

/// A value serialized with its type kept: numbers as numbers (NaN and infinities as `null`,
/// which JSON cannot express), datetimes and intervals as ISO 8601 strings, references as
/// `{ "ResourceURI", "Selectors", "Address"? }`, embedded instances as objects with `CimClass`.
pub struct JsonValue<'a>(pub &'a Value);

impl Serialize for JsonValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Bool(v) => s.serialize_bool(*v),
            Value::SInt8(v) => s.serialize_i8(*v),
            Value::UInt8(v) => s.serialize_u8(*v),
            Value::SInt16(v) => s.serialize_i16(*v),
            Value::UInt16(v) => s.serialize_u16(*v),
            Value::SInt32(v) => s.serialize_i32(*v),
            Value::UInt32(v) => s.serialize_u32(*v),
            Value::SInt64(v) => s.serialize_i64(*v),
            Value::UInt64(v) => s.serialize_u64(*v),
            Value::Real32(v) if v.is_finite() => s.serialize_f32(*v),
            Value::Real64(v) if v.is_finite() => s.serialize_f64(*v),
            Value::Real32(_) | Value::Real64(_) => s.serialize_unit(),
            Value::Char16(v) => s.serialize_char(*v),
            Value::String(v) => s.serialize_str(v),
            Value::DateTime(v) => s.collect_str(v),
            Value::Interval(v) => s.collect_str(v),
            Value::Reference(r) => JsonReference(r).serialize(s),
            Value::Instance(i) => JsonInstance(i).serialize(s),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&JsonValue(item))?;
                }
                seq.end()
            }
        }
    }
}

struct JsonReference<'a>(&'a Reference);

impl Serialize for JsonReference<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("ResourceURI", &r.resource_uri)?;
        map.serialize_entry("Selectors", &Selectors(&r.selectors))?;
        // Only WS-Man gives an address; leaving it out elsewhere keeps DCOM output identical.
        if let Some(address) = &r.address {
            map.serialize_entry("Address", address)?;
        }
        map.end()
    }
}

struct Selectors<'a>(&'a [(String, String)]);

impl Serialize for Selectors<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// An embedded instance: `{ "CimClass": class, props… }`.
struct JsonInstance<'a>(&'a Instance);

impl Serialize for JsonInstance<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("CimClass", &self.0.class_name)?;
        for p in &self.0.properties {
            // A property spelled like the class key would make a duplicate JSON key.
            if !p.name.eq_ignore_ascii_case("CimClass") {
                map.serialize_entry(&p.name, &JsonValue(&p.value))?;
            }
        }
        map.end()
    }
}

/// One output row as a JSON object: `PSComputerName` first, then the properties.
///
/// With a non-empty `properties` list the row has exactly those, in that order (a property the
/// instance lacks is `null`, extra ones are left out), so every row of a query has the same
/// keys; otherwise the instance's own properties in their order.
pub(crate) struct JsonRow<'a> {
    pub computer: &'a str,
    pub instance: &'a Instance,
    /// The query's property list as [`listed`] returns it: each name once, no `PSComputerName`.
    pub properties: &'a [String],
    /// Where each listed property is in the instance (`usize::MAX` when absent).
    at: &'a [usize],
}

impl<'a> JsonRow<'a> {
    /// The row of `instance` with `properties` listed, located in `at`, which holds the
    /// previous row's positions (see [`locate_listed`]); a writer keeps `at` from row to row.
    pub(crate) fn located(
        computer: &'a str,
        instance: &'a Instance,
        properties: &'a [String],
        at: &'a mut Vec<usize>,
    ) -> JsonRow<'a> {
        locate_listed(properties, &instance.properties, at);
        JsonRow { computer, instance, properties, at }
    }
}

/// Finds each listed property in `props`, leaving its index (`usize::MAX` when absent) in `at`,
/// which holds the previous row's: the rows of a query order their properties alike, so a
/// listed name usually costs one comparison instead of a search. All are located before any is
/// written, so the lookups touch the instance together.
fn locate_listed(properties: &[String], props: &[Property], at: &mut Vec<usize>) {
    at.resize(properties.len(), usize::MAX);
    for (name, at) in properties.iter().zip(at.iter_mut()) {
        if !props.get(*at).is_some_and(|p| same_name(&p.name, name)) {
            *at = props.iter().position(|p| same_name(&p.name, name)).unwrap_or(usize::MAX);
        }
    }
}

impl Serialize for JsonRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry(COMPUTER_COLUMN, self.computer)?;
        for (name, value) in self.entries() {
            map.serialize_entry(name, &JsonValue(value))?;
        }
        map.end()
    }
}

impl JsonRow<'_> {
    /// The row's properties after `PSComputerName`: the listed ones (a missing one as null),
    /// or all of the instance's.
    fn entries(&self) -> impl Iterator<Item = (&str, &Value)> {
        let all = self.properties.is_empty();
        let own = self
            .instance
            .properties
            .iter()
            .filter(move |p| all && !p.name.eq_ignore_ascii_case(COMPUTER_COLUMN))
            .map(|p| (p.name.as_str(), &p.value));
        let props = &self.instance.properties;
        let listed = self.properties.iter().zip(self.at).map(move |(name, &i)| match props.get(i) {
            Some(p) => (p.name.as_str(), &p.value),
            None => (name.as_str(), &Value::Null),
        });
        own.chain(listed)
    }

    /// Appends the row as compact JSON: the same bytes as serializing it with serde_json, with
    /// names, strings, integers, booleans and nulls written directly (every row is mostly
    /// those) and the rest left to serde_json.
    pub(crate) fn write_to(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.push(b'{');
        json_str(out, COMPUTER_COLUMN)?;
        out.push(b':');
        json_str(out, self.computer)?;
        for (name, value) in self.entries() {
            out.push(b',');
            json_str(out, name)?;
            out.push(b':');
            json_value(out, value)?;
        }
        out.push(b'}');
        Ok(())
    }
}

fn json_str(out: &mut Vec<u8>, text: &str) -> serde_json::Result<()> {
    if json_needs_escapes(text) {
        return serde_json::to_writer(&mut *out, text);
    }
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
    Ok(())
}

fn json_value(out: &mut Vec<u8>, value: &Value) -> serde_json::Result<()> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(v) => out.extend_from_slice(if *v { b"true" } else { b"false" }),
        Value::SInt8(v) => json_int(out, *v),
        Value::UInt8(v) => json_int(out, *v),
        Value::SInt16(v) => json_int(out, *v),
        Value::UInt16(v) => json_int(out, *v),
        Value::SInt32(v) => json_int(out, *v),
        Value::UInt32(v) => json_int(out, *v),
        Value::SInt64(v) => json_int(out, *v),
        Value::UInt64(v) => json_int(out, *v),
        Value::String(v) => return json_str(out, v),
        other => return serde_json::to_writer(&mut *out, &JsonValue(other)),
    }
    Ok(())
}

/// serde_json writes integers with itoa too: the same digits.
fn json_int(out: &mut Vec<u8>, v: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// The columns a property list makes after `PSComputerName` (always the first column): each
/// name once, at its first place, repeats (case-insensitive, as WMI names are) and
/// `PSComputerName` itself left out. Borrowed when there is nothing to leave out; worked out
/// once per file or page, not per row.
pub(crate) fn listed(names: &[String]) -> Cow<'_, [String]> {
    let is_repeat = |i: usize, name: &String| {
        name.eq_ignore_ascii_case(COMPUTER_COLUMN) || names[..i].iter().any(|earlier| earlier.eq_ignore_ascii_case(name))
    };
    if !names.iter().enumerate().any(|(i, n)| is_repeat(i, n)) {
        return Cow::Borrowed(names);
    }
    Cow::Owned(names.iter().enumerate().filter(|&(i, n)| !is_repeat(i, n)).map(|(_, n)| n.clone()).collect())
}

/// Appends the plain-text form of a value, as CSV cells and tables show it: `True`/`False` as
/// PowerShell writes booleans, null as nothing, datetimes and intervals in ISO 8601, infinities
/// as .NET spells them, references via their display form, embedded instances as compact JSON,
/// and array items joined with `separator`.
pub fn write_text(out: &mut String, value: &Value, separator: &str) {
    match value {
        Value::Null => {}
        Value::Real32(v) => write_real(out, *v, f64::from(*v)),
        Value::Real64(v) => write_real(out, *v, *v),
        Value::String(v) => out.push_str(v),
        Value::Instance(i) => {
            // Serializing our own types to a String cannot fail: every key is a string.
            if let Ok(json) = serde_json::to_string(&JsonInstance(i)) {
                out.push_str(&json);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(separator);
                }
                write_text(out, item, separator);
            }
        }
        Value::Bool(v) => out.push_str(if *v { "True" } else { "False" }),
        Value::SInt8(v) => push_int(out, *v),
        Value::UInt8(v) => push_int(out, *v),
        Value::SInt16(v) => push_int(out, *v),
        Value::UInt16(v) => push_int(out, *v),
        Value::SInt32(v) => push_int(out, *v),
        Value::UInt32(v) => push_int(out, *v),
        Value::SInt64(v) => push_int(out, *v),
        Value::UInt64(v) => push_int(out, *v),
        Value::Char16(v) => out.push(*v),
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// Integers are most cells of an inventory; `itoa` writes them without the formatting
/// machinery's per-call overhead, with the same digits.
fn push_int(out: &mut String, v: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(v));
}

/// A real as .NET prints it (what PowerShell's CSV has): the shortest digits that read back to
/// the same value, in exponent form (`1E+15`, `1E-05`) outside 1e-4 ≤ |v| < 1e15, where plain
/// digits would run to hundreds of characters. `real` is the value in its own width (an f32's
/// shortest digits differ from its f64's); `wide` is the same value as f64, for the range checks.
fn write_real<T: std::fmt::Display + std::fmt::LowerExp>(out: &mut String, real: T, wide: f64) {
    let magnitude = wide.abs();
    if wide.is_nan() {
        out.push_str("NaN");
    } else if wide.is_infinite() {
        out.push_str(if wide > 0.0 { "Infinity" } else { "-Infinity" });
    } else if magnitude != 0.0 && !(1e-4..1e15).contains(&magnitude) {
        let exp = format!("{real:e}");
        let (mantissa, power) = exp.split_once('e').unwrap_or((&exp, "0"));
        let (sign, digits) = match power.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', power),
        };
        let _ = write!(out, "{mantissa}E{sign}{digits:0>2}");
    } else {
        let _ = write!(out, "{real}");
    }
}

/// The plain-text form of a value (see [`write_text`]).
pub fn text(value: &Value, separator: &str) -> String {
    let mut s = String::new();
    write_text(&mut s, value, separator);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cim::{DateTime, Interval};

    fn json(v: &Value) -> String {
        serde_json::to_string(&JsonValue(v)).unwrap()
    }

    #[test]
    fn json_keeps_types() {
        assert_eq!(json(&Value::UInt64(u64::MAX)), "18446744073709551615");
        assert_eq!(json(&Value::SInt64(i64::MIN)), "-9223372036854775808");
        assert_eq!(json(&Value::SInt8(-3)), "-3");
        assert_eq!(json(&Value::Real32(0.1)), "0.1");
        assert_eq!(json(&Value::Real64(f64::NAN)), "null");
        assert_eq!(json(&Value::Real32(f32::NEG_INFINITY)), "null");
        assert_eq!(json(&Value::Bool(false)), "false");
        assert_eq!(json(&Value::Char16('"')), r#""\"""#);
        assert_eq!(json(&Value::Null), "null");
        assert_eq!(json(&Value::DateTime(DateTime::from_unix(0, 5))), r#""1970-01-01T00:00:00.000005Z""#);
        assert_eq!(json(&Value::Interval(Interval { microseconds: 90_000_000 })), r#""P0DT0H1M30S""#);
        assert_eq!(json(&Value::Array(vec![Value::UInt8(1), Value::Null])), "[1,null]");
    }

    #[test]
    fn json_reference_and_instance() {
        let r = Reference {
            address: None,
            resource_uri: "http://x/Win32_Service".into(),
            selectors: vec![("Name".into(), "a\"b".into())],
        };
        assert_eq!(
            json(&Value::Reference(Box::new(r.clone()))),
            r#"{"ResourceURI":"http://x/Win32_Service","Selectors":{"Name":"a\"b"}}"#
        );
        let with_addr = Reference { address: Some("http://h/wsman".into()), ..r };
        assert!(json(&Value::Reference(Box::new(with_addr))).ends_with(r#","Address":"http://h/wsman"}"#));
        let inst = Instance::new("MSFT_X").with("A", Value::UInt16(7)).with("CimClass", Value::Null);
        assert_eq!(json(&Value::Instance(Box::new(inst))), r#"{"CimClass":"MSFT_X","A":7}"#);
    }

    #[test]
    fn row_projects_and_puts_computer_first() {
        let inst = Instance::new("C")
            .with("PSComputerName", Value::String("spoof".into()))
            .with("Name", Value::String("n".into()))
            .with("Size", Value::UInt64(5));
        let mut at = Vec::new();
        let all = JsonRow::located("h1", &inst, &[], &mut at);
        assert_eq!(serde_json::to_string(&all).unwrap(), r#"{"PSComputerName":"h1","Name":"n","Size":5}"#);
        let props = ["size".to_string(), "Missing".into(), "SIZE".into(), "pscomputername".into()];
        let props = listed(&props);
        let some = JsonRow::located("h1", &inst, &props, &mut at);
        assert_eq!(serde_json::to_string(&some).unwrap(), r#"{"PSComputerName":"h1","Size":5,"Missing":null}"#);
    }

    #[test]
    fn text_forms() {
        let sep = "|";
        assert_eq!(text(&Value::Bool(true), sep), "True");
        assert_eq!(text(&Value::Null, sep), "");
        assert_eq!(text(&Value::Real64(f64::INFINITY), sep), "Infinity");
        assert_eq!(text(&Value::Real32(f32::NEG_INFINITY), sep), "-Infinity");
        assert_eq!(text(&Value::Real64(f64::NAN), sep), "NaN");
        assert_eq!(text(&Value::Real32(1.5), sep), "1.5");
        assert_eq!(text(&Value::Real32(0.1), sep), "0.1", "an f32's own shortest digits");
        assert_eq!(text(&Value::Real64(1e14), sep), "100000000000000");
        assert_eq!(text(&Value::Real64(1e15), sep), "1E+15");
        assert_eq!(text(&Value::Real64(-2.5e300), sep), "-2.5E+300");
        assert_eq!(text(&Value::Real64(0.0001), sep), "0.0001");
        assert_eq!(text(&Value::Real64(0.00001), sep), "1E-05");
        assert_eq!(text(&Value::Real32(3.4e38), sep), "3.4E+38");
        assert_eq!(text(&Value::Real64(-0.0), sep), "-0");
        assert_eq!(
            text(&Value::Array(vec![Value::String("a".into()), Value::Null, Value::Bool(false)]), sep),
            "a||False"
        );
        let inst = Instance::new("K").with("V", Value::Array(vec![Value::UInt8(1)]));
        assert_eq!(text(&Value::Instance(Box::new(inst)), sep), r#"{"CimClass":"K","V":[1]}"#);
        let r =
            Reference { address: None, resource_uri: "Win32_Disk".into(), selectors: vec![("K".into(), "v".into())] };
        assert_eq!(text(&Value::Reference(Box::new(r)), sep), "Win32_Disk?K=v");
    }
}

/// Values for the tests that compare the direct writers with the formatting they replace.
#[cfg(test)]
pub(crate) mod strategies {
    use proptest::prelude::*;

    use super::*;
    use crate::cim::{DateTime, Interval};

    /// Text with everything CSV quotes and JSON escapes, and any other.
    pub(crate) fn text() -> BoxedStrategy<String> {
        prop_oneof![
            Just(String::new()),
            Just("\"".to_string()),
            Just("a,b".to_string()),
            Just("quote \" backslash \\ nl \n crlf \r\n tab \t nul \0 del \u{7f} ✓ Zürich 東京".to_string()),
            "[a-z,;\"\\\r\n\u{0}-\u{1f}]{0,20}",
            any::<String>(),
        ]
        .boxed()
    }

    /// Every kind of value but arrays and embedded instances, NaN and infinities included.
    pub(crate) fn scalar() -> BoxedStrategy<Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i8>().prop_map(Value::SInt8),
            any::<u8>().prop_map(Value::UInt8),
            any::<i16>().prop_map(Value::SInt16),
            any::<u16>().prop_map(Value::UInt16),
            any::<i32>().prop_map(Value::SInt32),
            any::<u32>().prop_map(Value::UInt32),
            any::<i64>().prop_map(Value::SInt64),
            any::<u64>().prop_map(Value::UInt64),
            prop_oneof![Just(f32::NAN), Just(f32::INFINITY), any::<f32>()].prop_map(Value::Real32),
            prop_oneof![Just(f64::NAN), Just(f64::NEG_INFINITY), any::<f64>()].prop_map(Value::Real64),
            any::<char>().prop_map(Value::Char16),
            text().prop_map(|s| Value::String(s.into())),
            (any::<i32>(), 0u32..1_000_000).prop_map(|(s, us)| Value::DateTime(DateTime::from_unix(s.into(), us))),
            any::<u64>().prop_map(|us| Value::Interval(Interval { microseconds: us.into() })),
            (text(), text()).prop_map(|(k, v)| Value::Reference(Box::new(Reference {
                address: None,
                resource_uri: k.clone(),
                selectors: vec![(k, v)],
            }))),
        ]
        .boxed()
    }

    /// Any value: mostly scalars, some arrays and embedded instances.
    pub(crate) fn value() -> BoxedStrategy<Value> {
        prop_oneof![
            4 => scalar(),
            1 => prop::collection::vec(scalar(), 0..3).prop_map(Value::Array),
            1 => (text(), scalar()).prop_map(|(n, v)| Value::Instance(Box::new(Instance::new("E").with(n, v)))),
        ]
        .boxed()
    }
}

/// The JSON rows written directly against serde_json serializing the same [`JsonRow`].
#[cfg(test)]
mod same_as_serde_json {
    use proptest::prelude::*;

    use super::strategies::{text, value};
    use super::*;

    proptest! {
        #[test]
        fn rows_match(
            computer in text(),
            props in prop::collection::vec((prop_oneof![text(), Just("PSComputerName".to_string())], value()), 0..6),
            list in prop::collection::vec(prop_oneof![text(), Just("a".to_string()), Just("A".to_string())], 0..4),
        ) {
            let mut inst = Instance::new("C");
            for (n, v) in &props {
                inst.push(n.as_str(), v.clone());
            }
            for properties in [&[][..], &list[..]] {
                let mut at = Vec::new();
                let row = JsonRow::located(&computer, &inst, properties, &mut at);
                let mut ours = Vec::new();
                row.write_to(&mut ours).unwrap();
                prop_assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&row).unwrap());
            }
        }
    }
}
