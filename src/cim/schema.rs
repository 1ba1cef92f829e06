//! Built-in knowledge of common classes: property names, CIM types, and which are arrays.
//!
//! WS-Man sends every value as text with no type, and a one-element array looks exactly like a
//! scalar, so typing values needs knowledge of the class, as PowerShell gets from the class
//! schema. The table lives in `classes.txt` (one class per block) so it is easy to review.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::{DateTime, Interval, Name, Value};

/// A CIM scalar type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CimType {
    Boolean,
    SInt8,
    UInt8,
    SInt16,
    UInt16,
    SInt32,
    UInt32,
    SInt64,
    UInt64,
    Real32,
    Real64,
    Char16,
    String,
    DateTime,
    Reference,
    Instance,
}

impl CimType {
    /// Parses a type name as MOF spells it (`uint32`, `datetime`, `ref`/`reference`, `object`/`instance`).
    pub fn from_name(name: &str) -> Option<CimType> {
        Some(match name.to_ascii_lowercase().as_str() {
            "boolean" | "bool" => CimType::Boolean,
            "sint8" => CimType::SInt8,
            "uint8" => CimType::UInt8,
            "sint16" => CimType::SInt16,
            "uint16" => CimType::UInt16,
            "sint32" => CimType::SInt32,
            "uint32" => CimType::UInt32,
            "sint64" => CimType::SInt64,
            "uint64" => CimType::UInt64,
            "real32" => CimType::Real32,
            "real64" => CimType::Real64,
            "char16" => CimType::Char16,
            "string" => CimType::String,
            "datetime" => CimType::DateTime,
            "ref" | "reference" => CimType::Reference,
            "object" | "instance" => CimType::Instance,
            _ => return None,
        })
    }

    /// Converts the text form of a value (as WS-Man sends it) to a typed value.
    /// Returns `None` when the text is not a valid value of the type.
    pub fn parse_text(self, text: &str) -> Option<Value> {
        let t = text.trim();
        Some(match self {
            CimType::Boolean if t.eq_ignore_ascii_case("true") || t == "1" => Value::Bool(true),
            CimType::Boolean if t.eq_ignore_ascii_case("false") || t == "0" => Value::Bool(false),
            CimType::Boolean => return None,
            CimType::SInt8 => Value::SInt8(t.parse().ok()?),
            CimType::UInt8 => Value::UInt8(t.parse().ok()?),
            CimType::SInt16 => Value::SInt16(t.parse().ok()?),
            CimType::UInt16 => Value::UInt16(t.parse().ok()?),
            CimType::SInt32 => Value::SInt32(t.parse().ok()?),
            CimType::UInt32 => Value::UInt32(t.parse().ok()?),
            CimType::SInt64 => Value::SInt64(t.parse().ok()?),
            CimType::UInt64 => Value::UInt64(t.parse().ok()?),
            CimType::Real32 => Value::Real32(parse_real(t)? as f32),
            CimType::Real64 => Value::Real64(parse_real(t)?),
            CimType::Char16 => {
                // WS-Man sends char16 as a character; WMI text forms also use the code unit.
                let mut chars = text.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Value::Char16(c),
                    _ => Value::Char16(char::from_u32(t.parse::<u16>().ok()? as u32)?),
                }
            }
            CimType::String => Value::String(text.into()),
            CimType::DateTime => {
                if let Some(d) = DateTime::parse_dmtf(t).or_else(|| DateTime::parse_iso8601(t)) {
                    Value::DateTime(d)
                } else {
                    Value::Interval(Interval::parse_dmtf(t).or_else(|| Interval::parse_xs_duration(t))?)
                }
            }
            CimType::Reference | CimType::Instance => return None,
        })
    }
}

fn parse_real(t: &str) -> Option<f64> {
    match t {
        "INF" => Some(f64::INFINITY),
        "-INF" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => t.parse().ok(),
    }
}

/// One property of a known class.
#[derive(Debug, Clone, PartialEq)]
pub struct PropertySchema {
    /// Shared: a provider clones it into each instance.
    pub name: Name,
    pub cim_type: CimType,
    pub is_array: bool,
}

/// A known class: its properties in the order Windows lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassSchema {
    pub name: String,
    pub superclass: Option<String>,
    pub properties: Vec<PropertySchema>,
}

impl ClassSchema {
    /// Looks a property up, case-insensitively.
    pub fn property(&self, name: &str) -> Option<&PropertySchema> {
        self.properties.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }
}

/// Looks a class up by name, case-insensitively.
pub fn class(name: &str) -> Option<&'static ClassSchema> {
    table().get(&name.to_ascii_lowercase())
}

/// Every known class.
pub fn classes() -> impl Iterator<Item = &'static ClassSchema> {
    table().values()
}

fn table() -> &'static HashMap<String, ClassSchema> {
    static TABLE: OnceLock<HashMap<String, ClassSchema>> = OnceLock::new();
    TABLE.get_or_init(|| {
        parse_table(include_str!("classes.txt"))
            .expect("classes.txt is checked by a unit test")
            .into_iter()
            .map(|c| (c.name.to_ascii_lowercase(), c))
            .collect()
    })
}

/// Parses the class table format:
///
/// ```text
/// class Win32_OperatingSystem : CIM_OperatingSystem
///   BootDevice string
///   MUILanguages string[]
/// ```
fn parse_table(text: &str) -> Result<Vec<ClassSchema>, String> {
    let mut out: Vec<ClassSchema> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("class ") {
            let (name, sup) = match rest.split_once(':') {
                Some((a, b)) => (a.trim(), Some(b.trim().to_string())),
                None => (rest.trim(), None),
            };
            out.push(ClassSchema { name: name.to_string(), superclass: sup, properties: Vec::new() });
            continue;
        }
        let cls = out.last_mut().ok_or(format!("line {}: property before any class", n + 1))?;
        let mut parts = line.split_whitespace();
        let (Some(pname), Some(ty), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("line {}: expected `Name type`", n + 1));
        };
        let (ty, is_array) = match ty.strip_suffix("[]") {
            Some(t) => (t, true),
            None => (ty, false),
        };
        let cim_type = CimType::from_name(ty).ok_or(format!("line {}: unknown type {ty}", n + 1))?;
        if cls.property(pname).is_some() {
            return Err(format!("line {}: {pname} listed twice in {}", n + 1, cls.name));
        }
        cls.properties.push(PropertySchema { name: Name::from(pname), cim_type, is_array });
    }
    let mut seen = std::collections::HashSet::new();
    for c in &out {
        if !seen.insert(c.name.to_ascii_lowercase()) {
            return Err(format!("class {} listed twice", c.name));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_parses() {
        parse_table(include_str!("classes.txt")).unwrap();
    }

    #[test]
    fn table_format_errors_are_reported() {
        assert!(parse_table("  A string").is_err());
        assert!(parse_table("class C\n  A strng").is_err());
        assert!(parse_table("class C\n  A string\n  a uint8").is_err());
        let t = parse_table("class C : B\n  A string[]\n  N uint64").unwrap();
        assert_eq!(t[0].superclass.as_deref(), Some("B"));
        assert!(t[0].properties[0].is_array);
        assert_eq!(t[0].property("n").unwrap().cim_type, CimType::UInt64);
    }

    #[test]
    fn text_conversion() {
        assert_eq!(CimType::Boolean.parse_text("TRUE"), Some(Value::Bool(true)));
        assert_eq!(CimType::UInt64.parse_text("18446744073709551615"), Some(Value::UInt64(u64::MAX)));
        assert_eq!(CimType::UInt8.parse_text("256"), None);
        assert!(matches!(CimType::DateTime.parse_text("20130319054036.500000-420"), Some(Value::DateTime(_))));
        assert!(matches!(CimType::DateTime.parse_text("00000001020304.000005:000"), Some(Value::Interval(_))));
        assert_eq!(CimType::Char16.parse_text("65"), Some(Value::Char16('A')));
    }
}
