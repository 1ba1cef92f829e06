//! The instance/value model every protocol produces and every sink consumes.
//!
//! Protocols differ wildly on the wire (WS-Man XML, MS-WMIO binary, Linux files), so they all
//! convert into these few types at their edge; nothing downstream knows which protocol ran.

pub mod schema;

use std::fmt;
use std::sync::Arc;

/// A string value: up to 24 bytes inline, so most CIM strings (states, modes, class and
/// host names) need no allocation of their own.
pub type Text = compact_str::CompactString;

/// A CIM property value, typed as CIM types it (DSP0004), so sinks can keep the types.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    SInt8(i8),
    UInt8(u8),
    SInt16(i16),
    UInt16(u16),
    SInt32(i32),
    UInt32(u32),
    SInt64(i64),
    UInt64(u64),
    Real32(f32),
    Real64(f64),
    Char16(char),
    String(Text),
    DateTime(DateTime),
    Interval(Interval),
    /// Boxed: references are rare, and inline they would double the size of every value.
    Reference(Box<Reference>),
    Instance(Box<Instance>),
    Array(Vec<Value>),
}

impl Value {
    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as a signed 128-bit integer, for any integer type (used by WQL comparisons).
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            Value::SInt8(v) => v as i128,
            Value::UInt8(v) => v as i128,
            Value::SInt16(v) => v as i128,
            Value::UInt16(v) => v as i128,
            Value::SInt32(v) => v as i128,
            Value::UInt32(v) => v as i128,
            Value::SInt64(v) => v as i128,
            Value::UInt64(v) => v as i128,
            _ => return None,
        })
    }

    /// The value as a float, for any numeric type.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Real32(v) => Some(v as f64),
            Value::Real64(v) => Some(v),
            _ => self.as_i128().map(|v| v as f64),
        }
    }

    /// The name of the CIM type, as a schema would spell it (`uint32`, `string`, `datetime`…).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::SInt8(_) => "sint8",
            Value::UInt8(_) => "uint8",
            Value::SInt16(_) => "sint16",
            Value::UInt16(_) => "uint16",
            Value::SInt32(_) => "sint32",
            Value::UInt32(_) => "uint32",
            Value::SInt64(_) => "sint64",
            Value::UInt64(_) => "uint64",
            Value::Real32(_) => "real32",
            Value::Real64(_) => "real64",
            Value::Char16(_) => "char16",
            Value::String(_) => "string",
            Value::DateTime(_) => "datetime",
            Value::Interval(_) => "interval",
            Value::Reference(_) => "reference",
            Value::Instance(_) => "instance",
            Value::Array(_) => "array",
        }
    }
}

/// Plain text rendering, as CSV and tables show a value. Arrays are left to the caller,
/// which knows the separator; here they are joined with `;`.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => Ok(()),
            Value::Bool(v) => write!(f, "{}", if *v { "True" } else { "False" }),
            Value::SInt8(v) => write!(f, "{v}"),
            Value::UInt8(v) => write!(f, "{v}"),
            Value::SInt16(v) => write!(f, "{v}"),
            Value::UInt16(v) => write!(f, "{v}"),
            Value::SInt32(v) => write!(f, "{v}"),
            Value::UInt32(v) => write!(f, "{v}"),
            Value::SInt64(v) => write!(f, "{v}"),
            Value::UInt64(v) => write!(f, "{v}"),
            Value::Real32(v) => write!(f, "{v}"),
            Value::Real64(v) => write!(f, "{v}"),
            Value::Char16(v) => write!(f, "{v}"),
            Value::String(v) => f.write_str(v),
            Value::DateTime(v) => write!(f, "{v}"),
            Value::Interval(v) => write!(f, "{v}"),
            Value::Reference(v) => write!(f, "{v}"),
            Value::Instance(v) => write!(f, "{v}"),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(";")?;
                    }
                    write!(f, "{item}")?;
                }
                Ok(())
            }
        }
    }
}

/// A CIM datetime: a point in time with the UTC offset it was reported in.
///
/// Kept as fields rather than a chrono/time type because CIM allows an offset in minutes that
/// must round-trip unchanged, and no dependency is needed for the little arithmetic done here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    pub year: i32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub microsecond: u32,
    /// Offset from UTC in minutes (east positive).
    pub offset_minutes: i16,
}

impl DateTime {
    /// A UTC datetime from seconds and microseconds since the Unix epoch.
    pub fn from_unix(secs: i64, micros: u32) -> DateTime {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        DateTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u8,
            minute: (rem % 3600 / 60) as u8,
            second: (rem % 60) as u8,
            microsecond: micros,
            offset_minutes: 0,
        }
    }

    /// Parses a DMTF datetime (`yyyymmddHHMMSS.mmmmmmsUUU`), as WMI sends it.
    /// Returns `None` for the interval form (`…:000`) and for wildcarded fields (`*`).
    pub fn parse_dmtf(s: &str) -> Option<DateTime> {
        let b = s.as_bytes();
        if b.len() != 25 || b[14] != b'.' || !(b[21] == b'+' || b[21] == b'-') {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let t = s.get(r)?;
            if t.bytes().all(|c| c.is_ascii_digit()) { t.parse().ok() } else { None }
        };
        let offset = num(22..25)? as i16;
        let dt = DateTime {
            year: num(0..4)? as i32,
            month: num(4..6)? as u8,
            day: num(6..8)? as u8,
            hour: num(8..10)? as u8,
            minute: num(10..12)? as u8,
            second: num(12..14)? as u8,
            microsecond: num(15..21)?,
            offset_minutes: if b[21] == b'-' { -offset } else { offset },
        };
        dt.is_valid().then_some(dt)
    }

    /// Parses an ISO 8601 / xs:dateTime (`2013-03-19T05:40:36.123-07:00`, `Z`, or no zone = UTC).
    pub fn parse_iso8601(s: &str) -> Option<DateTime> {
        let (date, time) = s.split_once('T')?;
        let mut d = date.splitn(3, '-');
        let year: i32 = d.next()?.parse().ok()?;
        let month: u8 = d.next()?.parse().ok()?;
        let day: u8 = d.next()?.parse().ok()?;
        let (clock, offset_minutes) = if let Some(c) = time.strip_suffix('Z') {
            (c, 0i16)
        } else if let Some(pos) = time.rfind(['+', '-']) {
            let (c, z) = time.split_at(pos);
            let sign: i16 = if z.starts_with('-') { -1 } else { 1 };
            let (h, m) = z.get(1..)?.split_once(':')?;
            // Two digits each and within a day, so the minutes cannot overflow an i16.
            let two_digits = |t: &str| matches!(t.len(), 1 | 2) && t.bytes().all(|b| b.is_ascii_digit());
            if !two_digits(h) || !two_digits(m) {
                return None;
            }
            let (h, m) = (h.parse::<i16>().ok()?, m.parse::<i16>().ok()?);
            if h > 23 || m > 59 {
                return None;
            }
            (c, sign * (h * 60 + m))
        } else {
            (time, 0)
        };
        let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
        let mut t = hms.splitn(3, ':');
        let hour: u8 = t.next()?.parse().ok()?;
        let minute: u8 = t.next()?.parse().ok()?;
        let second: u8 = t.next()?.parse().ok()?;
        if !frac.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let mut micro = String::from(&frac[..frac.len().min(6)]);
        while micro.len() < 6 {
            micro.push('0');
        }
        let dt = DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            microsecond: micro.parse().ok()?,
            offset_minutes,
        };
        dt.is_valid().then_some(dt)
    }

    fn is_valid(&self) -> bool {
        (1..=12).contains(&self.month)
            && (1..=31).contains(&self.day)
            && self.hour < 24
            && self.minute < 60
            && self.second < 61
            && self.microsecond < 1_000_000
    }
}

/// ISO 8601 with microseconds and the original offset: `2024-01-02T03:04:05.000006+01:00`.
impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )?;
        if self.microsecond != 0 {
            write!(f, ".{:06}", self.microsecond)?;
        }
        if self.offset_minutes == 0 {
            f.write_str("Z")
        } else {
            let sign = if self.offset_minutes < 0 { '-' } else { '+' };
            let m = self.offset_minutes.unsigned_abs();
            write!(f, "{sign}{:02}:{:02}", m / 60, m % 60)
        }
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i32, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    ((if m <= 2 { y + 1 } else { y }) as i32, m, d)
}

/// A CIM interval (a duration), kept to the microsecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval {
    pub microseconds: u128,
}

impl Interval {
    /// Parses a DMTF interval (`ddddddddHHMMSS.mmmmmm:000`).
    pub fn parse_dmtf(s: &str) -> Option<Interval> {
        let b = s.as_bytes();
        // ASCII first: the byte slicing below must never split a character.
        if !s.is_ascii() || b.len() != 25 || b[14] != b'.' || &s[21..] != ":000" {
            return None;
        }
        if !s[..14].bytes().chain(s[15..21].bytes()).all(|c| c.is_ascii_digit()) {
            return None;
        }
        let n = |r: std::ops::Range<usize>| s[r].parse::<u128>().unwrap_or(0);
        let (days, h, m, sec, us) = (n(0..8), n(8..10), n(10..12), n(12..14), n(15..21));
        Some(Interval { microseconds: (((days * 24 + h) * 60 + m) * 60 + sec) * 1_000_000 + us })
    }

    /// Parses an xs:duration (`P1DT2H3M4.5S`), as WS-Man sends `cim:Interval`.
    pub fn parse_xs_duration(s: &str) -> Option<Interval> {
        let rest = s.strip_prefix('P')?;
        let (date, time) = rest.split_once('T').unwrap_or((rest, ""));
        let mut total: f64 = 0.0;
        let mut parse_part = |text: &str, units: &[(char, f64)]| -> Option<()> {
            let mut num = String::new();
            for c in text.chars() {
                if c.is_ascii_digit() || c == '.' {
                    num.push(c);
                } else {
                    let (_, mult) = units.iter().find(|(u, _)| *u == c)?;
                    total += num.parse::<f64>().ok()? * mult;
                    num.clear();
                }
            }
            num.is_empty().then_some(())
        };
        parse_part(date, &[('Y', 365.0 * 86400.0), ('M', 30.0 * 86400.0), ('D', 86400.0)])?;
        parse_part(time, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
        Some(Interval { microseconds: (total * 1_000_000.0).round() as u128 })
    }
}

/// ISO 8601 duration: `P3DT4H5M6.000007S`.
impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.microseconds % 1_000_000;
        let secs = self.microseconds / 1_000_000;
        let (d, h, m, s) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
        write!(f, "P{d}DT{h}H{m}M{s}")?;
        if us != 0 {
            write!(f, ".{us:06}")?;
        }
        f.write_str("S")
    }
}

/// A reference to another instance: a WS-Man endpoint reference or a WMI object path.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reference {
    /// WS-Addressing address, when the protocol gives one.
    pub address: Option<String>,
    /// The resource URI (WS-Man) or class name (WMI path).
    pub resource_uri: String,
    /// Key properties identifying the instance, in the order received.
    pub selectors: Vec<(String, String)>,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.resource_uri)?;
        for (i, (k, v)) in self.selectors.iter().enumerate() {
            write!(f, "{}{k}={v}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

/// A class or property name.
///
/// Every instance of a page repeats the same few dozen names; a protocol hands out clones of
/// one shared name instead of allocating (and the writer freeing) a string per property.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Arc<str>);

impl Name {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Name {
    fn default() -> Name {
        Name::from("")
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name(Arc::from(s))
    }
}

impl From<String> for Name {
    fn from(s: String) -> Name {
        Name(Arc::from(s))
    }
}

impl From<&String> for Name {
    fn from(s: &String) -> Name {
        Name(Arc::from(s.as_str()))
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0.to_string()
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<Name> for str {
    fn eq(&self, other: &Name) -> bool {
        self == &*other.0
    }
}

impl PartialEq<Name> for &str {
    fn eq(&self, other: &Name) -> bool {
        *self == &*other.0
    }
}

impl PartialEq<Name> for String {
    fn eq(&self, other: &Name) -> bool {
        **self == *other.0
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl serde::Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One property of an instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    pub name: Name,
    pub value: Value,
}

/// One CIM instance: a class name and its properties in a stable order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Instance {
    pub class_name: Name,
    pub properties: Vec<Property>,
}

impl Instance {
    /// A new instance with no properties.
    pub fn new(class_name: impl Into<Name>) -> Instance {
        Instance { class_name: class_name.into(), properties: Vec::new() }
    }

    /// Appends a property (builder style).
    pub fn with(mut self, name: impl Into<Name>, value: Value) -> Instance {
        self.push(name, value);
        self
    }

    /// Appends a property.
    pub fn push(&mut self, name: impl Into<Name>, value: Value) {
        self.properties.push(Property { name: name.into(), value });
    }

    /// Looks a property up by name, case-insensitively as WMI does.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.properties.iter().find(|p| p.name.eq_ignore_ascii_case(name)).map(|p| &p.value)
    }

    /// Keeps only the named properties, in the order named; a name the instance lacks becomes
    /// null so every row of a query has the same columns.
    pub fn project(&self, names: &[String]) -> Instance {
        let mut out = Instance::new(self.class_name.clone());
        for n in names {
            let p = self.properties.iter().find(|p| p.name.eq_ignore_ascii_case(n));
            match p {
                Some(p) => out.push(p.name.clone(), p.value.clone()),
                None => out.push(n.as_str(), Value::Null),
            }
        }
        out
    }
}

impl fmt::Display for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {{", self.class_name)?;
        for (i, p) in self.properties.iter().enumerate() {
            write!(f, "{}{} = {}", if i == 0 { " " } else { "; " }, p.name, p.value)?;
        }
        f.write_str(" }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dmtf_datetime_keeps_offset_and_micros() {
        let d = DateTime::parse_dmtf("20130319054036.500000-420").unwrap();
        assert_eq!(d.to_string(), "2013-03-19T05:40:36.500000-07:00");
        assert!(DateTime::parse_dmtf("20130319054036.500000:000").is_none());
        assert!(DateTime::parse_dmtf("2013****054036.500000-420").is_none());
    }

    #[test]
    fn iso_datetime_variants() {
        assert_eq!(
            DateTime::parse_iso8601("2013-03-19T05:40:36.5Z").unwrap().to_string(),
            "2013-03-19T05:40:36.500000Z"
        );
        assert_eq!(
            DateTime::parse_iso8601("2013-03-19T05:40:36-07:00").unwrap().offset_minutes,
            -420
        );
        assert!(DateTime::parse_iso8601("2013-13-19T05:40:36Z").is_none());
    }

    #[test]
    fn iso_datetime_offsets_beyond_a_day_are_refused_not_overflowed() {
        // 725 hours is more minutes than an i16 holds: once a panic under overflow checks.
        assert!(DateTime::parse_iso8601("2013-03-19T05:40:36+725:00").is_none());
        assert!(DateTime::parse_iso8601("2013-03-19T05:40:36+24:00").is_none());
        assert!(DateTime::parse_iso8601("2013-03-19T05:40:36+05:60").is_none());
        assert!(DateTime::parse_iso8601("2013-03-19T05:40:36++5:00").is_none());
        assert_eq!(DateTime::parse_iso8601("2013-03-19T05:40:36+23:59").unwrap().offset_minutes, 1439);
        assert_eq!(DateTime::parse_iso8601("2013-03-19T05:40:36-5:30").unwrap().offset_minutes, -330);
    }

    #[test]
    fn unix_epoch_conversion() {
        assert_eq!(DateTime::from_unix(0, 0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(DateTime::from_unix(951_782_400, 0).to_string(), "2000-02-29T00:00:00Z");
        assert_eq!(DateTime::from_unix(-86_400, 0).to_string(), "1969-12-31T00:00:00Z");
    }

    #[test]
    fn intervals() {
        let i = Interval::parse_dmtf("00000001020304.000005:000").unwrap();
        assert_eq!(i.to_string(), "P1DT2H3M4.000005S");
        assert_eq!(Interval::parse_xs_duration("P1DT2H3M4.000005S"), Some(i));
        assert!(Interval::parse_xs_duration("P1X").is_none());
        // Multi-byte text of the right byte length is rejected, not sliced mid-character.
        assert!(Interval::parse_dmtf("0000000102030é.00005:000").is_none());
        assert!(DateTime::parse_dmtf("2013031905403é.50000-420").is_none());
    }

    #[test]
    fn projection_fills_missing_with_null() {
        let i = Instance::new("C").with("A", Value::UInt8(1)).with("B", Value::Bool(true));
        let p = i.project(&["b".into(), "Z".into()]);
        assert_eq!(p.properties[0].name, "B");
        assert_eq!(p.properties[1].value, Value::Null);
        assert_eq!(p.get("b"), Some(&Value::Bool(true)));
    }
}
