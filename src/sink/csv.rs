//! RFC 4180 CSV: UTF-8 without a BOM, CRLF line ends, a header row, quoting only when needed.

use std::io::{self, Write};

use crate::cim::{Instance, Value};

use super::columns::Columns;
use super::scan::csv_needs_quotes;
use super::value::write_text;

/// Settings of the CSV writer.
#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// Joins the items of array values in one cell (default `;`).
    pub array_separator: String,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions { array_separator: ";".to_string() }
    }
}

/// Writes instances as CSV rows to any `io::Write`.
///
/// Columns are `PSComputerName`, then the query's property list in its order if it has one,
/// otherwise the first instance's properties in their order. Later instances are matched to
/// the columns by name, case-insensitively: a missing property is an empty cell, and a property
/// with no column is dropped, with a single `tracing` warning per writer, so every row keeps
/// the header's column count.
pub struct CsvWriter<W: Write> {
    out: W,
    properties: Vec<String>,
    columns: Option<Columns>,
    separator: String,
    label: String,
    /// The row being built: cells are formatted straight into it and it is written whole.
    line: String,
}

impl<W: Write> CsvWriter<W> {
    /// A writer that writes the header with the first row.
    pub fn new(out: W, properties: &[String], options: &CsvOptions) -> CsvWriter<W> {
        CsvWriter {
            out,
            properties: properties.to_vec(),
            columns: None,
            separator: options.array_separator.clone(),
            label: "csv".to_string(),
            line: String::new(),
        }
    }

    /// A writer continuing a file whose header (these property columns, after
    /// `PSComputerName`) is already written.
    pub(crate) fn resume(out: W, columns: Vec<String>, options: &CsvOptions, label: &str) -> CsvWriter<W> {
        let mut w = CsvWriter::new(out, &[], options).labelled(label);
        w.columns = Some(Columns::fixed(columns, label));
        w
    }

    /// Names the output in the warning about dropped properties (e.g. the file's path).
    pub(crate) fn labelled(mut self, label: &str) -> CsvWriter<W> {
        self.label = label.to_string();
        self
    }

    /// Writes one instance as a row (and the header before the first one).
    pub fn write_row(&mut self, computer: &str, instance: &Instance) -> io::Result<()> {
        if self.columns.is_none() {
            let columns = Columns::from_first(&self.properties, instance, &self.label);
            self.write_header(&columns)?;
            self.columns = Some(columns);
        }
        let CsvWriter { out, columns: Some(columns), separator, line, .. } = self else {
            return Ok(());
        };
        line.clear();
        push_field(line, computer);
        for value in columns.row(instance) {
            line.push(',');
            let start = line.len();
            if let Some(v) = value {
                write_text(line, v, separator);
                if !never_quoted(v) {
                    quote_from(line, start);
                }
            }
        }
        end_record(line);
        out.write_all(line.as_bytes())
    }

    fn write_header(&mut self, columns: &Columns) -> io::Result<()> {
        let line = &mut self.line;
        line.clear();
        for (i, name) in columns.header().enumerate() {
            if i > 0 {
                line.push(',');
            }
            push_field(line, name);
        }
        end_record(line);
        self.out.write_all(line.as_bytes())
    }

    /// Flushes and returns the underlying writer. With no rows written and a property list
    /// given, the header alone is written, so an empty result still names its columns.
    pub fn finish(mut self) -> io::Result<W> {
        if self.columns.is_none() && !self.properties.is_empty() {
            let columns = Columns::from_first(&self.properties, &Instance::default(), &self.label);
            self.write_header(&columns)?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Whether the text of a value can never need quotes: numbers, booleans, datetimes and
/// intervals are written with digits, letters and `+-.:` only.
fn never_quoted(value: &Value) -> bool {
    matches!(
        value,
        Value::Null
            | Value::Bool(_)
            | Value::SInt8(_)
            | Value::UInt8(_)
            | Value::SInt16(_)
            | Value::UInt16(_)
            | Value::SInt32(_)
            | Value::UInt32(_)
            | Value::SInt64(_)
            | Value::UInt64(_)
            | Value::Real32(_)
            | Value::Real64(_)
            | Value::DateTime(_)
            | Value::Interval(_)
    )
}

/// Appends one field, quoted when needed.
fn push_field(line: &mut String, text: &str) {
    let start = line.len();
    line.push_str(text);
    quote_from(line, start);
}

/// Quotes the field that starts at `start` (the end of `line`) if it holds a delimiter, a quote
/// or a line break, doubling its quotes (RFC 4180); other fields stay bare.
fn quote_from(line: &mut String, start: usize) {
    let Some(field) = line.get(start..) else { return };
    if !csv_needs_quotes(field) {
        return;
    }
    let field = field.to_string();
    line.truncate(start);
    line.push('"');
    for (i, part) in field.split('"').enumerate() {
        if i > 0 {
            line.push_str("\"\"");
        }
        line.push_str(part);
    }
    line.push('"');
}

/// Ends a record with CRLF. A record of a single empty field is written `""`, or it would
/// read back as an empty line.
fn end_record(line: &mut String) {
    if line.is_empty() {
        line.push_str("\"\"");
    }
    line.push_str("\r\n");
}

/// The header's property columns (after `PSComputerName`) of a CSV file this module wrote,
/// so that a file can be continued.
pub(crate) fn read_header(input: impl io::Read) -> io::Result<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(input);
    let mut record = csv::StringRecord::new();
    if !reader.read_record(&mut record).map_err(csv_io)? {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "the file has no header row"));
    }
    let mut fields = record.iter();
    if fields.next() != Some(super::value::COMPUTER_COLUMN) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "the header does not start with PSComputerName"));
    }
    Ok(fields.map(str::to_string).collect())
}

/// The csv crate's error as the `io::Error` every writer returns; only its I/O errors can
/// happen here, the rest (unequal lengths) would be our bug and is kept as a message.
fn csv_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => io,
        other => io::Error::other(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    fn render(props: &[String], rows: &[(&str, Instance)], options: &CsvOptions) -> String {
        let mut w = CsvWriter::new(Vec::new(), props, options);
        for (computer, inst) in rows {
            w.write_row(computer, inst).unwrap();
        }
        String::from_utf8(w.finish().unwrap()).unwrap()
    }

    #[test]
    fn exact_bytes_with_quoting() {
        let a = Instance::new("C")
            .with("Name", s("plain"))
            .with("Note", s("say \"hi\", then\nleave"))
            .with("On", Value::Bool(true));
        let b = Instance::new("C").with("on", Value::Bool(false)).with("NAME", s("Zürich ✓ 東京"));
        let out = render(&[], &[("h1", a), ("h,2", b)], &CsvOptions::default());
        assert_eq!(
            out,
            "PSComputerName,Name,Note,On\r\n\
             h1,plain,\"say \"\"hi\"\", then\nleave\",True\r\n\
             \"h,2\",Zürich ✓ 東京,,False\r\n"
        );
        assert!(!out.starts_with('\u{feff}'));
    }

    #[test]
    fn property_list_orders_columns_and_drops_extras() {
        let props = ["Size".to_string(), "DeviceID".into()];
        let d = Instance::new("Win32_LogicalDisk")
            .with("DeviceID", s("C:"))
            .with("FreeSpace", Value::UInt64(1))
            .with("Size", Value::UInt64(u64::MAX));
        let out = render(&props, &[("h", d)], &CsvOptions::default());
        assert_eq!(out, "PSComputerName,Size,DeviceID\r\nh,18446744073709551615,C:\r\n");
    }

    #[test]
    fn arrays_use_the_separator() {
        let i = Instance::new("C").with("IP", Value::Array(vec![s("10.0.0.1"), s("fe80::1")]));
        let out = render(&[], &[("h", i)], &CsvOptions { array_separator: " | ".into() });
        assert_eq!(out, "PSComputerName,IP\r\nh,10.0.0.1 | fe80::1\r\n");
    }

    #[test]
    fn empty_result_with_properties_writes_the_header() {
        assert_eq!(render(&["A".into()], &[], &CsvOptions::default()), "PSComputerName,A\r\n");
        assert_eq!(render(&[], &[], &CsvOptions::default()), "");
    }

    #[test]
    fn resumed_writer_adds_rows_without_header() {
        let mut w = CsvWriter::resume(Vec::new(), vec!["B".into(), "A".into()], &CsvOptions::default(), "t");
        w.write_row("h", &Instance::new("C").with("A", Value::UInt8(1))).unwrap();
        assert_eq!(String::from_utf8(w.finish().unwrap()).unwrap(), "h,,1\r\n");
    }

    #[test]
    fn dropped_properties_warn_once_per_writer() {
        #[derive(Clone, Default)]
        struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl io::Write for Capture {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let capture = Capture::default();
        let sink = capture.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || sink.clone()).with_ansi(false).finish();
        tracing::subscriber::with_default(subscriber, || {
            for file in ["one.csv", "two.csv"] {
                let mut w = CsvWriter::new(Vec::new(), &["A".into()], &CsvOptions::default()).labelled(file);
                for _ in 0..3 {
                    w.write_row("h", &Instance::new("C").with("A", s("1")).with("Extra", s("x"))).unwrap();
                }
                assert_eq!(w.finish().unwrap(), b"PSComputerName,A\r\nh,1\r\nh,1\r\nh,1\r\n");
            }
        });
        let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        assert_eq!(logs.matches("left out of this output").count(), 2, "{logs}");
        assert!(logs.contains("one.csv") && logs.contains("two.csv") && logs.contains("Extra"), "{logs}");
    }

    #[test]
    fn header_reads_back() {
        let cols = read_header("PSComputerName,\"a,b\",C\r\nh,1,2\r\n".as_bytes()).unwrap();
        assert_eq!(cols, ["a,b", "C"]);
        assert!(read_header("".as_bytes()).is_err());
        assert!(read_header("X,Y\r\n".as_bytes()).is_err());
    }
}

/// The rows this writer makes against the csv crate's writer (what it used before) fed the
/// same cells, for tricky text and every kind of value.
#[cfg(test)]
mod same_as_csv_crate {
    use proptest::prelude::*;

    use super::*;
    use crate::sink::value::strategies::{text, value};
    use crate::sink::value::write_text;

    /// A cell's text as it was made before integers, booleans and characters were written
    /// directly: through `Value`'s `Display`.
    fn old_text(v: &Value, sep: &str) -> String {
        match v {
            Value::Array(items) => items.iter().map(|i| old_text(i, sep)).collect::<Vec<_>>().join(sep),
            Value::Null | Value::String(_) | Value::Real32(_) | Value::Real64(_) | Value::Instance(_) => {
                let mut s = String::new();
                write_text(&mut s, v, sep);
                s
            }
            other => other.to_string(),
        }
    }

    fn reference(rows: &[(String, Vec<Value>)], sep: &str) -> String {
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .terminator(csv::Terminator::CRLF)
            .quote_style(csv::QuoteStyle::Necessary)
            .from_writer(Vec::new());
        let width = rows.first().map_or(0, |(_, v)| v.len());
        let header: Vec<String> =
            std::iter::once("PSComputerName".to_string()).chain((0..width).map(|i| format!("P,\"{i}\""))).collect();
        w.write_record(&header).unwrap();
        for (computer, values) in rows {
            let cells = std::iter::once(computer.clone()).chain(values.iter().map(|v| old_text(v, sep)));
            w.write_record(cells.collect::<Vec<_>>()).unwrap();
        }
        String::from_utf8(w.into_inner().unwrap()).unwrap()
    }

    proptest! {
        #[test]
        fn rows_match(
            rows in prop::collection::vec((text(), prop::collection::vec(value(), 4)), 1..6),
            sep in prop_oneof![Just(";".to_string()), Just(",".to_string()), Just("\"|\"".to_string())],
        ) {
            let props: Vec<String> = (0..4).map(|i| format!("P,\"{i}\"")).collect();
            let mut w = CsvWriter::new(Vec::new(), &[], &CsvOptions { array_separator: sep.clone() });
            for (computer, values) in &rows {
                let mut inst = Instance::new("C");
                for (name, v) in props.iter().zip(values) {
                    inst.push(name.as_str(), v.clone());
                }
                w.write_row(computer, &inst).unwrap();
            }
            let ours = String::from_utf8(w.finish().unwrap()).unwrap();
            prop_assert_eq!(ours, reference(&rows, &sep));
        }
    }

    #[test]
    fn a_record_of_one_empty_field_is_quoted() {
        let mut w = CsvWriter::new(Vec::new(), &[], &CsvOptions::default());
        w.write_row("", &Instance::new("C")).unwrap();
        let rows = [(String::new(), Vec::new())];
        assert_eq!(String::from_utf8(w.finish().unwrap()).unwrap(), reference(&rows, ";"));
    }
}
