//! JSON (one array per file, one object a line, streamed) and NDJSON (one object a line).

use std::io::{self, Write};

use crate::cim::Instance;

use super::value::{JsonRow, listed};

/// How a JSON array written here ends when it has items; a file is continued by cutting
/// this off and writing `,` and more items.
const TAIL_WITH_ITEMS: &[u8] = b"\n]\n";
/// How an empty array written here ends (`[]\n`).
const TAIL_EMPTY: &[u8] = b"]\n";

/// Writes instances as one JSON array of objects, streamed: `[`, the objects one per line,
/// `]`. Nothing but the current object is held in memory.
///
/// Each object is `{ "PSComputerName": …, properties… }` with typed values (see
/// [`JsonValue`](super::JsonValue)).
pub struct JsonWriter<W: Write> {
    out: W,
    properties: Vec<String>,
    started: bool,
    has_items: bool,
    /// The item being built, written whole.
    line: Vec<u8>,
    /// Where each listed property was in the previous row ([`JsonRow::located`]).
    at: Vec<usize>,
}

impl<W: Write> JsonWriter<W> {
    /// A writer that opens the array with the first row (or at `finish`).
    pub fn new(out: W, properties: &[String]) -> JsonWriter<W> {
        JsonWriter {
            out,
            properties: listed(properties).into_owned(),
            started: false,
            has_items: false,
            line: Vec::new(),
            at: Vec::new(),
        }
    }

    /// A writer continuing an array whose `[` and items are already written and whose tail
    /// was cut off (see [`resume_point`]).
    pub(crate) fn resume(out: W, properties: &[String], has_items: bool) -> JsonWriter<W> {
        JsonWriter {
            out,
            properties: listed(properties).into_owned(),
            started: true,
            has_items,
            line: Vec::new(),
            at: Vec::new(),
        }
    }

    /// Writes one instance as an array item.
    pub fn write_row(&mut self, computer: &str, instance: &Instance) -> io::Result<()> {
        let JsonWriter { out, properties, started, has_items, line, at } = self;
        write_item(out, line, started, has_items, &JsonRow::located(computer, instance, properties, at))
    }

    /// Writes one instance with its own property list (as [`listed`] returns it): one file may
    /// hold several queries.
    pub(crate) fn write_row_with(
        &mut self,
        computer: &str,
        instance: &Instance,
        properties: &[String],
    ) -> io::Result<()> {
        let JsonWriter { out, started, has_items, line, at, .. } = self;
        write_item(out, line, started, has_items, &JsonRow::located(computer, instance, properties, at))
    }

    /// Closes the array (an empty one is `[]`), flushes and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.started {
            self.out.write_all(b"[")?;
        }
        self.out.write_all(if self.has_items { TAIL_WITH_ITEMS } else { TAIL_EMPTY })?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn write_item(
    out: &mut impl Write,
    line: &mut Vec<u8>,
    started: &mut bool,
    has_items: &mut bool,
    row: &JsonRow,
) -> io::Result<()> {
    let sep: &[u8] = match (*started, *has_items) {
        (false, _) => b"[\n",
        (true, true) => b",\n",
        (true, false) => b"\n",
    };
    line.clear();
    line.extend_from_slice(sep);
    row.write_to(line)?;
    out.write_all(line)?;
    *started = true;
    *has_items = true;
    Ok(())
}

fn write_line(out: &mut impl Write, line: &mut Vec<u8>, row: &JsonRow) -> io::Result<()> {
    line.clear();
    row.write_to(line)?;
    line.push(b'\n');
    out.write_all(line)
}

/// Where to cut a finished JSON file written by [`JsonWriter`] to continue it, given its
/// length and its last bytes (at least three when it is that long): the new length, and
/// whether the array already has items. `None` when the file does not end as ours do.
pub(crate) fn resume_point(len: u64, last: &[u8]) -> Option<(u64, bool)> {
    if last.ends_with(TAIL_WITH_ITEMS) && len > TAIL_WITH_ITEMS.len() as u64 + 1 {
        len.checked_sub(TAIL_WITH_ITEMS.len() as u64).map(|cut| (cut, true))
    } else if last.ends_with(b"[]\n") {
        len.checked_sub(TAIL_EMPTY.len() as u64).map(|cut| (cut, false))
    } else {
        None
    }
}

/// Writes instances as newline-delimited JSON: one object per line, the same objects as
/// [`JsonWriter`]'s items.
pub struct NdjsonWriter<W: Write> {
    out: W,
    properties: Vec<String>,
    /// The line being built, written whole.
    line: Vec<u8>,
    /// Where each listed property was in the previous row ([`JsonRow::located`]).
    at: Vec<usize>,
}

impl<W: Write> NdjsonWriter<W> {
    /// A writer; continuing a file needs nothing more than appending.
    pub fn new(out: W, properties: &[String]) -> NdjsonWriter<W> {
        NdjsonWriter { out, properties: listed(properties).into_owned(), line: Vec::new(), at: Vec::new() }
    }

    /// Writes one instance as a line.
    pub fn write_row(&mut self, computer: &str, instance: &Instance) -> io::Result<()> {
        let row = JsonRow::located(computer, instance, &self.properties, &mut self.at);
        write_line(&mut self.out, &mut self.line, &row)
    }

    /// Writes one instance with its own property list (as [`listed`] returns it): one file may
    /// hold several queries.
    pub(crate) fn write_row_with(
        &mut self,
        computer: &str,
        instance: &Instance,
        properties: &[String],
    ) -> io::Result<()> {
        write_line(&mut self.out, &mut self.line, &JsonRow::located(computer, instance, properties, &mut self.at))
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cim::{DateTime, Interval, Reference, Value};

    fn every_type() -> Instance {
        let r = Reference {
            address: Some("http://h:5985/wsman".into()),
            resource_uri: "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_Service".into(),
            selectors: vec![("Name".into(), "Spooler".into())],
        };
        let embedded = Instance::new("MSFT_NetAddress").with("IP", Value::String("10.0.0.1".into()));
        Instance::new("T")
            .with("Null", Value::Null)
            .with("Bool", Value::Bool(true))
            .with("S8", Value::SInt8(i8::MIN))
            .with("U8", Value::UInt8(u8::MAX))
            .with("S16", Value::SInt16(i16::MIN))
            .with("U16", Value::UInt16(u16::MAX))
            .with("S32", Value::SInt32(i32::MIN))
            .with("U32", Value::UInt32(u32::MAX))
            .with("S64", Value::SInt64(i64::MIN))
            .with("U64", Value::UInt64(u64::MAX))
            .with("R32", Value::Real32(1.25))
            .with("R64", Value::Real64(-2.5e300))
            .with("NaN", Value::Real64(f64::NAN))
            .with("Inf", Value::Real32(f32::INFINITY))
            .with("C16", Value::Char16('\u{1}'))
            .with("Str", Value::String("quote \" backslash \\ nl \n tab \t ✓ \u{7f}".into()))
            .with("Dt", Value::DateTime(DateTime::parse_dmtf("20240102030405.000006+060").unwrap()))
            .with("Iv", Value::Interval(Interval { microseconds: 93_784_000_005 }))
            .with("Ref", Value::Reference(Box::new(r)))
            .with("Emb", Value::Instance(Box::new(embedded)))
            .with("Arr", Value::Array(vec![Value::UInt64(u64::MAX), Value::Null, Value::String("x".into())]))
            .with("Empty", Value::Array(vec![]))
    }

    #[test]
    fn every_type_parses_back_with_its_type() {
        let mut w = JsonWriter::new(Vec::new(), &[]);
        w.write_row("host\"1", &every_type()).unwrap();
        w.write_row("host2", &Instance::new("T")).unwrap();
        let out = w.finish().unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let rows = parsed.as_array().unwrap();
        assert_eq!(rows.len(), 2);
        let r = &rows[0];
        let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
        assert_eq!(keys.first().map(|k| k.as_str()), Some("PSComputerName"));
        assert_eq!(r["PSComputerName"], "host\"1");
        assert!(r["Null"].is_null());
        assert_eq!(r["Bool"], true);
        assert_eq!(r["S8"], -128);
        assert_eq!(r["U64"].as_u64(), Some(u64::MAX));
        assert_eq!(r["S64"].as_i64(), Some(i64::MIN));
        assert_eq!(r["R32"].as_f64(), Some(1.25));
        assert_eq!(r["R64"].as_f64(), Some(-2.5e300));
        assert!(r["NaN"].is_null() && r["Inf"].is_null());
        assert_eq!(r["C16"], "\u{1}");
        assert_eq!(r["Str"], "quote \" backslash \\ nl \n tab \t ✓ \u{7f}");
        assert_eq!(r["Dt"], "2024-01-02T03:04:05.000006+01:00");
        assert_eq!(r["Iv"], "P1DT2H3M4.000005S");
        assert_eq!(r["Ref"]["Selectors"]["Name"], "Spooler");
        assert!(r["Ref"]["ResourceURI"].as_str().unwrap().ends_with("Win32_Service"));
        assert_eq!(r["Emb"]["CimClass"], "MSFT_NetAddress");
        assert_eq!(r["Emb"]["IP"], "10.0.0.1");
        assert_eq!(r["Arr"][0].as_u64(), Some(u64::MAX));
        assert!(r["Arr"][1].is_null());
        assert_eq!(r["Empty"], serde_json::json!([]));
        assert_eq!(rows[1], serde_json::json!({"PSComputerName": "host2"}));
    }

    #[test]
    fn exact_array_layout() {
        let i = Instance::new("C").with("A", Value::UInt8(1));
        let mut w = JsonWriter::new(Vec::new(), &[]);
        w.write_row("a", &i).unwrap();
        w.write_row("b", &i).unwrap();
        let out = String::from_utf8(w.finish().unwrap()).unwrap();
        assert_eq!(out, "[\n{\"PSComputerName\":\"a\",\"A\":1},\n{\"PSComputerName\":\"b\",\"A\":1}\n]\n");
        let empty = JsonWriter::new(Vec::new(), &[]).finish().unwrap();
        assert_eq!(empty, b"[]\n");
    }

    #[test]
    fn resume_continues_a_valid_array() {
        let i = Instance::new("C").with("A", Value::UInt8(1));
        for first_rows in [0usize, 1, 2] {
            let mut w = JsonWriter::new(Vec::new(), &[]);
            for _ in 0..first_rows {
                w.write_row("a", &i).unwrap();
            }
            let mut done = w.finish().unwrap();
            let tail = &done[done.len().saturating_sub(3)..];
            let (cut, has_items) = resume_point(done.len() as u64, tail).unwrap();
            assert_eq!(has_items, first_rows > 0);
            done.truncate(cut as usize);
            let mut w = JsonWriter::resume(done, &[], has_items);
            w.write_row("b", &i).unwrap();
            let out = w.finish().unwrap();
            let parsed: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
            assert_eq!(parsed.len(), first_rows + 1, "{}", String::from_utf8_lossy(&out));
            assert_eq!(parsed.last().unwrap()["PSComputerName"], "b");
        }
        assert_eq!(resume_point(5, b"}\n]"), None);
        assert_eq!(resume_point(3, b"\n]\n"), None);
        assert_eq!(resume_point(1, b"[]\n"), None, "inconsistent input is refused, not a panic");
    }

    #[test]
    fn ndjson_one_object_per_line() {
        let mut w = NdjsonWriter::new(Vec::new(), &["Str".into()]);
        w.write_row("h", &every_type()).unwrap();
        w.write_row("h", &Instance::new("T")).unwrap();
        let out = String::from_utf8(w.finish().unwrap()).unwrap();
        let lines: Vec<&str> = out.split_terminator('\n').collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1], r#"{"PSComputerName":"h","Str":null}"#);
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first.as_object().unwrap().len(), 2);
    }

    #[test]
    fn listed_properties_are_found_whatever_order_each_row_has() {
        // Each listed name is first looked for where the previous row had it: rows that order
        // their properties differently, or lack some, still get each value under its name.
        let list: Vec<String> = ["C", "A", "B"].map(String::from).to_vec();
        let rows = [
            Instance::new("T").with("A", Value::UInt8(1)).with("B", Value::UInt8(2)).with("C", Value::UInt8(3)),
            Instance::new("T").with("C", Value::UInt8(6)).with("B", Value::UInt8(5)).with("A", Value::UInt8(4)),
            Instance::new("T").with("b", Value::UInt8(8)).with("Z", Value::UInt8(0)),
            Instance::new("T").with("A", Value::UInt8(7)).with("C", Value::UInt8(9)).with("B", Value::UInt8(8)),
        ];
        let expected = [
            r#"{"PSComputerName":"h","C":3,"A":1,"B":2}"#,
            r#"{"PSComputerName":"h","C":6,"A":4,"B":5}"#,
            r#"{"PSComputerName":"h","C":null,"A":null,"b":8}"#,
            r#"{"PSComputerName":"h","C":9,"A":7,"B":8}"#,
        ];
        let mut fixed = NdjsonWriter::new(Vec::new(), &list);
        let mut shared = NdjsonWriter::new(Vec::new(), &[]);
        let mut array = JsonWriter::new(Vec::new(), &list);
        for row in &rows {
            fixed.write_row("h", row).unwrap();
            shared.write_row_with("h", row, &list).unwrap();
            array.write_row("h", row).unwrap();
        }
        let lines = expected.join("\n");
        for w in [fixed, shared] {
            assert_eq!(String::from_utf8(w.finish().unwrap()).unwrap(), format!("{lines}\n"));
        }
        let items = expected.join(",\n");
        assert_eq!(String::from_utf8(array.finish().unwrap()).unwrap(), format!("[\n{items}\n]\n"));
    }

    #[test]
    fn a_property_list_with_repeats_makes_each_key_once() {
        // Repeats (any case) and PSComputerName in the list are left out, whichever way the
        // list reaches the writer: at construction, or with each page of a shared file.
        let list: Vec<String> = ["str", "PSComputerName", "U8", "STR", "Missing", "u8"].map(String::from).to_vec();
        let expected = r#"{"PSComputerName":"h","Str":"text","U8":255,"Missing":null}"#;
        let instance = Instance::new("T").with("U8", Value::UInt8(255)).with("Str", Value::String("text".into()));
        let mut fixed = NdjsonWriter::new(Vec::new(), &list);
        fixed.write_row("h", &instance).unwrap();
        let mut shared = NdjsonWriter::new(Vec::new(), &[]);
        shared.write_row_with("h", &instance, &listed(&list)).unwrap();
        for w in [fixed, shared] {
            assert_eq!(String::from_utf8(w.finish().unwrap()).unwrap(), format!("{expected}\n"));
        }
        let mut array = JsonWriter::new(Vec::new(), &list);
        array.write_row("h", &instance).unwrap();
        assert_eq!(String::from_utf8(array.finish().unwrap()).unwrap(), format!("[\n{expected}\n]\n"));
    }

    #[test]
    fn listed_borrows_a_clean_list() {
        let clean: Vec<String> = ["Name", "State"].map(String::from).to_vec();
        assert!(matches!(listed(&clean), std::borrow::Cow::Borrowed(_)));
        let messy: Vec<String> = ["Name", "name", "pscomputername", "State", "NAME"].map(String::from).to_vec();
        assert_eq!(listed(&messy).as_ref(), ["Name", "State"]);
        assert!(listed(&[]).is_empty());
    }
}
