//! Client-side evaluation of WHERE conditions against instances, with WMI's semantics.

use std::borrow::Cow;
use std::cmp::Ordering;

use super::lexer::{Number, parse_number};
use super::like::fold;
use super::{CmpOp, Expr, Literal};
use crate::cim::{DateTime, Instance, Interval, Value};

impl Expr {
    /// True when `instance` satisfies this condition, evaluated as WMI would:
    ///
    /// - Property names and string comparisons are case-insensitive; `__CLASS` is the instance's
    ///   class name unless the instance has a property of that name.
    /// - Numbers compare by value across integer widths and reals. A string literal compared
    ///   with a numeric property is read as a number (`DriveType = "3"`), and a number compared
    ///   with a string property reads the property's text as one; text that is not a number
    ///   never matches.
    /// - Booleans compare with `TRUE`/`FALSE`, with the integers 1/0 and with the strings
    ///   `"true"`/`"false"`/`"1"`/`"0"`.
    /// - Datetimes compare as instants with DMTF (`20240101000000.000000+000`) or ISO 8601 text
    ///   (`2024-01-01T00:00:00Z`, `2024-01-01`); intervals with DMTF or `P1DT2H` text.
    /// - A missing or null property makes every comparison and `LIKE` false, negated or not;
    ///   only `IS [NOT] NULL` sees it. As in WMI, `= NULL` means `IS NULL` and `<> NULL` means
    ///   `IS NOT NULL`; other comparisons with NULL are false.
    /// - `LIKE` applies to string and char16 properties.
    /// - Arrays (which WMI's own WQL cannot filter on): a comparison, `LIKE` or `ISA` holds when
    ///   it holds for any element, so `<>` and `NOT LIKE` mean "some element differs".
    /// - `ISA` compares the class name of an embedded instance or a reference,
    ///   case-insensitively; without class schemas, subclasses do not match their parent.
    /// - Logic is two-valued: `NOT` inverts the result, so `NOT (X = 1)` holds for a null `X`.
    ///   A reference or embedded instance compares with nothing.
    pub fn matches(&self, instance: &Instance) -> bool {
        match self {
            Expr::And(l, r) => l.matches(instance) && r.matches(instance),
            Expr::Or(l, r) => l.matches(instance) || r.matches(instance),
            Expr::Not(e) => !e.matches(instance),
            Expr::Compare { property, op, value: Literal::Null } => {
                let null = lookup(instance, property).is_none_or(|v| v.is_null());
                match op {
                    CmpOp::Eq => null,
                    CmpOp::Ne => !null,
                    _ => false,
                }
            }
            Expr::Compare { property, op, value } => {
                any(instance, property, |v| compare(v, value).is_some_and(|ord| holds(*op, ord)))
            }
            Expr::Like { property, pattern, negated } => {
                any(instance, property, |v| match v {
                    Value::String(s) => pattern.matches(s) != *negated,
                    Value::Char16(c) => pattern.matches(c.encode_utf8(&mut [0; 4])) != *negated,
                    _ => false,
                })
            }
            Expr::IsNull { property, negated } => {
                lookup(instance, property).is_none_or(|v| v.is_null()) != *negated
            }
            Expr::Isa { property, class } => {
                any(instance, property, |v| class_of(v).is_some_and(|c| c.eq_ignore_ascii_case(class)))
            }
        }
    }
}

/// A property's value; `__CLASS` falls back to the instance's class name, as WMI provides it.
fn lookup<'a>(instance: &'a Instance, property: &str) -> Option<Cow<'a, Value>> {
    match instance.get(property) {
        Some(v) => Some(Cow::Borrowed(v)),
        None if property.eq_ignore_ascii_case("__CLASS") => {
            Some(Cow::Owned(Value::String(instance.class_name.as_ref().into())))
        }
        None => None,
    }
}

/// Applies `test` to the property's value, or to each element when it is an array.
fn any(instance: &Instance, property: &str, test: impl Fn(&Value) -> bool) -> bool {
    match lookup(instance, property).as_deref() {
        None | Some(Value::Null) => false,
        Some(Value::Array(items)) => items.iter().any(test),
        Some(v) => test(v),
    }
}

fn holds(op: CmpOp, ord: Ordering) -> bool {
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    }
}

/// Orders a property value against a literal, converting as WMI does; `None` when they cannot
/// be compared (which makes every operator false).
fn compare(value: &Value, lit: &Literal) -> Option<Ordering> {
    match value {
        Value::String(s) => match lit {
            Literal::String(l) => Some(cmp_text(s, l)),
            Literal::Bool(l) => parse_bool(s).map(|b| b.cmp(l)),
            _ => cmp_numbers(parse_number(s.trim()).ok()?, literal_number(lit)?),
        },
        Value::Char16(c) => match lit {
            Literal::String(l) => Some(cmp_text(c.encode_utf8(&mut [0; 4]), l)),
            _ => cmp_numbers(Number::Int(u32::from(*c).into()), literal_number(lit)?),
        },
        Value::Bool(b) => match lit {
            Literal::Bool(l) => Some(b.cmp(l)),
            Literal::String(l) => parse_bool(l).map(|l| b.cmp(&l)),
            _ => cmp_numbers(Number::Int(i128::from(*b)), literal_number(lit)?),
        },
        Value::Real32(_) | Value::Real64(_) => {
            cmp_numbers(Number::Real(value.as_f64()?), literal_number(lit)?)
        }
        Value::DateTime(d) => match lit {
            Literal::String(l) => Some(instant(d).cmp(&instant(&parse_datetime(l)?))),
            _ => None,
        },
        Value::Interval(i) => match lit {
            Literal::String(l) => {
                let l = Interval::parse_dmtf(l.trim()).or_else(|| Interval::parse_xs_duration(l.trim()))?;
                Some(i.cmp(&l))
            }
            _ => None,
        },
        Value::Null | Value::Array(_) | Value::Reference(_) | Value::Instance(_) => None,
        _ => cmp_numbers(Number::Int(value.as_i128()?), literal_number(lit)?),
    }
}

/// A literal as a number: integers and reals as they are, booleans as 1/0, strings parsed.
fn literal_number(lit: &Literal) -> Option<Number> {
    match lit {
        Literal::Integer(n) => Some(Number::Int(*n)),
        Literal::Real(r) => Some(Number::Real(*r)),
        Literal::Bool(b) => Some(Number::Int(i128::from(*b))),
        Literal::String(s) => parse_number(s.trim()).ok(),
        Literal::Null => None,
    }
}

fn cmp_numbers(a: Number, b: Number) -> Option<Ordering> {
    match (a, b) {
        (Number::Int(a), Number::Int(b)) => Some(a.cmp(&b)),
        (Number::Real(a), Number::Real(b)) => a.partial_cmp(&b),
        (Number::Int(a), Number::Real(b)) => cmp_int_real(a, b),
        (Number::Real(a), Number::Int(b)) => cmp_int_real(b, a).map(Ordering::reverse),
    }
}

/// Exact integer-to-real ordering: converting a 64-bit integer to f64 would round it.
fn cmp_int_real(i: i128, r: f64) -> Option<Ordering> {
    if r.is_nan() {
        return None;
    }
    // WQL integers fit in ±2^64, far inside these bounds.
    const LIMIT: f64 = 1e30;
    if r >= LIMIT {
        return Some(Ordering::Less);
    }
    if r <= -LIMIT {
        return Some(Ordering::Greater);
    }
    let floor = r.floor();
    Some(match i.cmp(&(floor as i128)) {
        Ordering::Equal if r > floor => Ordering::Less,
        ord => ord,
    })
}

fn cmp_text(a: &str, b: &str) -> Ordering {
    a.chars().map(fold).cmp(b.chars().map(fold))
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// A datetime literal: DMTF, ISO 8601, or an ISO date alone (midnight UTC).
fn parse_datetime(s: &str) -> Option<DateTime> {
    let s = s.trim();
    DateTime::parse_dmtf(s).or_else(|| DateTime::parse_iso8601(s)).or_else(|| {
        let date_only =
            s.len() == 10 && s.bytes().enumerate().all(|(i, c)| matches!(i, 4 | 7) == (c == b'-'));
        if date_only { DateTime::parse_iso8601(&format!("{s}T00:00:00Z")) } else { None }
    })
}

/// Microseconds since the Unix epoch, UTC, so datetimes in different offsets compare correctly.
fn instant(d: &DateTime) -> i128 {
    let days = days_from_civil(d.year.into(), d.month.into(), d.day.into());
    let secs = days * 86_400 + i128::from(d.hour) * 3600 + i128::from(d.minute) * 60 + i128::from(d.second)
        - i128::from(d.offset_minutes) * 60;
    secs * 1_000_000 + i128::from(d.microsecond)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i128, m: i128, d: i128) -> i128 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The class an `ISA` test looks at: an embedded instance's class, or the last segment of a
/// reference's resource URI or WMI class path.
fn class_of(v: &Value) -> Option<&str> {
    match v {
        Value::Instance(i) => Some(&i.class_name),
        Value::Reference(r) => r.resource_uri.rsplit(['/', ':', '\\']).next(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cim::Reference;
    use crate::wql::parse_condition;

    fn disk() -> Instance {
        Instance::new("Win32_LogicalDisk")
            .with("DeviceID", Value::String("C:".into()))
            .with("DriveType", Value::UInt32(3))
            .with("Size", Value::UInt64(u64::MAX - 1))
            .with("FreeSpace", Value::SInt64(-5))
            .with("Load", Value::Real32(0.5))
            .with("Ratio", Value::Real64(2.75))
            .with("Letter", Value::Char16('C'))
            .with("Compressed", Value::Bool(false))
            .with("Dirty", Value::Bool(true))
            .with("VolumeName", Value::Null)
            .with("Caption", Value::String("Local Disk ÉTÉ".into()))
            .with("Count", Value::String(" 42 ".into()))
            .with("InstallDate", Value::DateTime(DateTime::parse_dmtf("20240315120000.000000+060").unwrap()))
            .with("Uptime", Value::Interval(Interval::parse_dmtf("00000001000000.000000:000").unwrap()))
            .with("Flags", Value::Array(vec![Value::UInt16(1), Value::UInt16(7)]))
            .with("Names", Value::Array(vec![Value::String("alpha".into()), Value::String("Beta".into())]))
            .with("Owner", Value::Instance(Box::new(Instance::new("Win32_Account"))))
            .with(
                "Service",
                Value::Reference(Box::new(Reference {
                    address: None,
                    resource_uri: "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_Service"
                        .into(),
                    selectors: vec![("Name".into(), "x".into())],
                })),
            )
    }

    /// Evaluates each condition against [`disk`] and checks the expected result.
    fn check(cases: &[(&str, bool)]) {
        let d = disk();
        for (text, expected) in cases {
            let e = parse_condition(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(e.matches(&d), *expected, "{text}");
        }
    }

    #[test]
    fn integers_across_widths_and_reals() {
        check(&[
            ("DriveType = 3", true),
            ("drivetype = 3", true),
            ("DriveType <> 3", false),
            ("DriveType != 4", true),
            ("DriveType > 2 AND DriveType < 4", true),
            ("DriveType >= 3 AND DriveType <= 3", true),
            ("DriveType = 3.0", true),
            ("DriveType < 3.5", true),
            ("DriveType > 2.9999", true),
            ("DriveType = 0x3", true),
            ("2 < DriveType", true),
            ("Size = 18446744073709551614", true),
            ("Size < 18446744073709551615", true),
            ("Size > 9223372036854775807", true),
            ("Size > 1.8e19", true),
            ("FreeSpace < 0", true),
            ("FreeSpace = -5.0", true),
            ("FreeSpace > -5.5", true),
            ("Load = 0.5", true),
            ("Load < 1", true),
            ("Ratio > 2", true),
            ("Ratio <= 2.75", true),
            ("Ratio = 3", false),
        ]);
    }

    #[test]
    fn strings_convert_to_and_from_numbers() {
        check(&[
            ("DriveType = '3'", true),
            ("DriveType = \"3\"", true),
            ("DriveType = ' 3 '", true),
            ("DriveType = '4'", false),
            ("DriveType > '2'", true),
            ("DriveType = 'three'", false),
            ("DriveType <> 'three'", false),
            ("Count = 42", true),
            ("Count > 41.5", true),
            ("DeviceID = 3", false),
            ("DeviceID <> 3", false),
            ("Load = '0.5'", true),
        ]);
    }

    #[test]
    fn strings_are_case_insensitive() {
        check(&[
            ("DeviceID = 'c:'", true),
            ("DeviceID <> 'C:'", false),
            ("Caption = 'local disk été'", true),
            ("Caption > 'LOCAL'", true),
            ("Caption < 'm'", true),
            ("DeviceID < 'D:'", true),
        ]);
    }

    #[test]
    fn booleans_and_char16() {
        check(&[
            ("Dirty = TRUE", true),
            ("Dirty = true AND Compressed = FALSE", true),
            ("Dirty = 1", true),
            ("Compressed = 0", true),
            ("Compressed = 1", false),
            ("Dirty = 2", false),
            ("Dirty = 'True'", true),
            ("Compressed = 'false'", true),
            ("Dirty = 'maybe'", false),
            ("Letter = 'c'", true),
            ("Letter = 67", true),
            ("Letter LIKE '[a-d]'", true),
            ("Caption = TRUE", false),
        ]);
        assert!(parse_condition("Dirty > Compressed = FALSE").is_err());
    }

    #[test]
    fn nulls_and_missing_properties() {
        check(&[
            ("VolumeName IS NULL", true),
            ("VolumeName IS NOT NULL", false),
            ("VolumeName = NULL", true),
            ("VolumeName <> NULL", false),
            ("NULL = VolumeName", true),
            ("VolumeName = 'x'", false),
            ("VolumeName <> 'x'", false),
            ("VolumeName LIKE '%'", false),
            ("VolumeName NOT LIKE 'x'", false),
            ("VolumeName < NULL", false),
            ("NoSuchProperty IS NULL", true),
            ("NoSuchProperty = 1", false),
            ("NoSuchProperty <> 1", false),
            ("DeviceID IS NOT NULL", true),
            ("DeviceID = NULL", false),
            ("DeviceID <> NULL", true),
            ("DeviceID > NULL", false),
            // Two-valued logic: NOT inverts a false comparison on a null property.
            ("NOT VolumeName = 'x'", true),
        ]);
    }

    #[test]
    fn like() {
        check(&[
            ("DeviceID LIKE 'c%'", true),
            ("DeviceID LIKE '_:'", true),
            ("DeviceID NOT LIKE 'D%'", true),
            ("DeviceID NOT LIKE 'c%'", false),
            ("Caption LIKE '%été'", true),
            ("DriveType LIKE '3'", false),
        ]);
    }

    #[test]
    fn datetimes_and_intervals() {
        check(&[
            ("InstallDate = '20240315120000.000000+060'", true),
            ("InstallDate = '20240315110000.000000+000'", true),
            ("InstallDate = '2024-03-15T11:00:00Z'", true),
            ("InstallDate = '2024-03-15T12:00:00+01:00'", true),
            ("InstallDate > '2024-03-15'", true),
            ("InstallDate < '2024-03-16'", true),
            ("InstallDate >= '20240315110000.000001+000'", false),
            ("InstallDate < '1999-01-01T00:00:00Z'", false),
            ("InstallDate = 'yesterday'", false),
            ("InstallDate <> 'yesterday'", false),
            ("InstallDate = 20240315", false),
            ("Uptime = '00000001000000.000000:000'", true),
            ("Uptime = 'P1D'", true),
            ("Uptime > 'PT23H'", true),
            ("Uptime < 'PT23H'", false),
        ]);
    }

    #[test]
    fn arrays_match_any_element() {
        check(&[
            ("Flags = 7", true),
            ("Flags = 2", false),
            ("Flags > 5", true),
            ("Flags <> 1", true),
            ("Names = 'BETA'", true),
            ("Names LIKE 'al%'", true),
            ("Names NOT LIKE 'al%'", true),
            ("Names IS NULL", false),
        ]);
        let i = Instance::new("X").with("Empty", Value::Array(vec![]));
        assert!(!parse_condition("Empty = 1").unwrap().matches(&i));
        assert!(!parse_condition("Empty <> 1").unwrap().matches(&i));
    }

    #[test]
    fn isa_and_class() {
        check(&[
            ("Owner ISA 'Win32_Account'", true),
            ("Owner ISA 'win32_account'", true),
            ("Owner ISA 'Win32_UserAccount'", false),
            ("Service ISA 'Win32_Service'", true),
            ("Service ISA 'Win32_Process'", false),
            ("DeviceID ISA 'Win32_Account'", false),
            ("VolumeName ISA 'Win32_Account'", false),
            ("Owner = 'Win32_Account'", false),
            ("__CLASS = 'win32_logicaldisk'", true),
            ("__Class LIKE 'Win32_%'", true),
        ]);
        let path = Instance::new("X").with(
            "P",
            Value::Reference(Box::new(Reference {
                resource_uri: r"\\HOST\root\cimv2:Win32_Service".into(),
                ..Default::default()
            })),
        );
        assert!(parse_condition("P ISA 'Win32_Service'").unwrap().matches(&path));
        // A real __CLASS property wins over the instance's class name.
        let own = Instance::new("X").with("__CLASS", Value::String("Y".into()));
        assert!(parse_condition("__CLASS = 'Y'").unwrap().matches(&own));
    }

    #[test]
    fn logic() {
        check(&[
            ("DriveType = 3 AND DeviceID = 'C:'", true),
            ("DriveType = 3 AND DeviceID = 'D:'", false),
            ("DriveType = 4 OR DeviceID = 'C:'", true),
            ("DriveType = 4 OR DeviceID = 'D:'", false),
            ("NOT DriveType = 4", true),
            ("NOT (DriveType = 3 AND DeviceID = 'C:')", false),
            ("DriveType = 4 OR DriveType = 3 AND DeviceID = 'D:'", false),
            ("(DriveType = 4 OR DriveType = 3) AND DeviceID = 'C:'", true),
        ]);
    }

    #[test]
    fn int_real_ordering_is_exact() {
        assert_eq!(cmp_int_real(9_007_199_254_740_993, 9_007_199_254_740_992.0), Some(Ordering::Greater));
        assert_eq!(cmp_int_real(-1, -0.5), Some(Ordering::Less));
        assert_eq!(cmp_int_real(-1, -1.0), Some(Ordering::Equal));
        assert_eq!(cmp_int_real(0, f64::NAN), None);
        assert_eq!(cmp_int_real(i128::from(u64::MAX), 1e300), Some(Ordering::Less));
        assert_eq!(cmp_int_real(i128::from(i64::MIN), -1e300), Some(Ordering::Greater));
    }

    #[test]
    fn instants_match_cim_epoch_conversion() {
        for secs in [0i64, 951_782_400, -86_400, 4_102_444_800, -2_208_988_800, 1_700_000_000] {
            let d = DateTime::from_unix(secs, 7);
            assert_eq!(instant(&d), i128::from(secs) * 1_000_000 + 7, "{d}");
        }
    }
}
