//! Aligned columns for a terminal, as `Format-Table` shows them. Buffers every row, since a
//! column's width is known only at the end; meant for `cimrun query`, not for fleet runs.

use std::io::{self, Write};

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::cim::{Instance, Value};

use super::columns::Columns;
use super::value::write_text;

/// Settings of the table writer.
#[derive(Debug, Clone)]
pub struct TableOptions {
    /// Widest cell, in terminal columns; wider ones are cut and end with `…` (at least 2).
    pub max_cell_width: usize,
    /// Joins the items of array values in one cell (default `;`).
    pub array_separator: String,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions { max_cell_width: 40, array_separator: ";".to_string() }
    }
}

/// Writes instances as an aligned text table: a header, a dashed rule, one line per row.
/// Numeric columns (header included) are right-aligned. Control characters in values (which could drive the
/// terminal) are shown as spaces or `�`.
pub struct TableWriter<W: Write> {
    out: W,
    properties: Vec<String>,
    options: TableOptions,
    columns: Option<Columns>,
    rows: Vec<Vec<String>>,
    numeric: Vec<bool>,
}

impl<W: Write> TableWriter<W> {
    /// A writer; nothing is written before `finish`.
    pub fn new(out: W, properties: &[String], options: TableOptions) -> TableWriter<W> {
        TableWriter {
            out,
            properties: properties.to_vec(),
            options,
            columns: None,
            rows: Vec::new(),
            numeric: Vec::new(),
        }
    }

    /// Adds one instance as a row.
    pub fn write_row(&mut self, computer: &str, instance: &Instance) -> io::Result<()> {
        let columns = self.columns.get_or_insert_with(|| Columns::from_first(&self.properties, instance, "table"));
        if self.numeric.is_empty() {
            // PSComputerName is text; property columns are numeric until a row says otherwise.
            self.numeric = (0..columns.len()).map(|i| i > 0).collect();
        }
        let values: Vec<Option<&Value>> = columns.row(instance).collect();
        let mut cells = Vec::with_capacity(values.len() + 1);
        cells.push(self.cell(computer));
        for (i, value) in values.into_iter().enumerate() {
            let mut raw = String::new();
            if let Some(v) = value {
                write_text(&mut raw, v, &self.options.array_separator);
                if !is_number(v)
                    && let Some(n) = self.numeric.get_mut(i + 1)
                {
                    *n = false;
                }
            }
            cells.push(self.cell(&raw));
        }
        self.rows.push(cells);
        Ok(())
    }

    fn cell(&self, raw: &str) -> String {
        let max = self.options.max_cell_width.max(2);
        let clean: String = raw
            .chars()
            .map(|c| match c {
                '\n' | '\r' | '\t' => ' ',
                c if c.is_control() => '\u{fffd}',
                c => c,
            })
            .collect();
        if clean.width() <= max {
            return clean;
        }
        // Cut by display width (a CJK character takes two columns) and keep one for `…`.
        let mut out = String::new();
        let mut used = 0;
        for c in clean.chars() {
            let w = c.width().unwrap_or(0);
            if used + w > max - 1 {
                break;
            }
            used += w;
            out.push(c);
        }
        out.push('…');
        out
    }

    /// Writes the table and returns the underlying writer. With no rows, only a header (when
    /// the property list names the columns), or nothing.
    pub fn finish(mut self) -> io::Result<W> {
        let columns = match self.columns.take() {
            Some(c) => c,
            None if !self.properties.is_empty() => Columns::from_first(&self.properties, &Instance::default(), "table"),
            None => return Ok(self.out),
        };
        let header: Vec<String> = columns.header().map(|h| self.cell(h)).collect();
        let mut widths: Vec<usize> = header.iter().map(|h| h.width()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.width());
            }
        }
        let rule: Vec<String> = header.iter().map(|h| "-".repeat(h.width())).collect();
        for line in std::iter::once(&header).chain(std::iter::once(&rule)).chain(self.rows.iter()) {
            let mut text = String::new();
            for (i, (cell, width)) in line.iter().zip(&widths).enumerate() {
                if i > 0 {
                    text.push(' ');
                }
                let pad = " ".repeat(width.saturating_sub(cell.width()));
                if self.numeric.get(i).copied().unwrap_or(false) {
                    text.push_str(&pad);
                    text.push_str(cell);
                } else {
                    text.push_str(cell);
                    text.push_str(&pad);
                }
            }
            writeln!(self.out, "{}", text.trim_end())?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

fn is_number(v: &Value) -> bool {
    v.as_f64().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(rows: &[(&str, Instance)], options: TableOptions) -> String {
        let mut w = TableWriter::new(Vec::new(), &[], options);
        for (c, i) in rows {
            w.write_row(c, i).unwrap();
        }
        String::from_utf8(w.finish().unwrap()).unwrap()
    }

    #[test]
    fn aligned_with_numbers_right() {
        let a = Instance::new("C").with("Name", Value::String("C:".into())).with("Size", Value::UInt64(5));
        let b = Instance::new("C").with("Name", Value::String("Data".into())).with("Size", Value::UInt64(12345));
        let out = render(&[("host1", a), ("h2", b)], TableOptions::default());
        assert_eq!(
            out,
            "PSComputerName Name  Size\n\
             -------------- ----  ----\n\
             host1          C:       5\n\
             h2             Data 12345\n"
        );
    }

    #[test]
    fn long_and_hostile_cells() {
        let a = Instance::new("C")
            .with("V", Value::String("abcdefghij".into()))
            .with("W", Value::String("a\u{1b}[31mred\nx".into()));
        let out = render(&[("h", a)], TableOptions { max_cell_width: 5, ..TableOptions::default() });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "PSCo… V     W");
        assert_eq!(lines[2], "h     abcd… a\u{fffd}[3…");
        assert!(!out.contains('\u{1b}'));
    }

    #[test]
    fn wide_characters_take_two_columns() {
        let a = Instance::new("C").with("City", Value::String("東京都千代田区".into()));
        let b = Instance::new("C").with("City", Value::String("Paris".into()));
        let out = render(&[("h1", a), ("h2", b)], TableOptions { max_cell_width: 8, ..TableOptions::default() });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "PSCompu… City");
        // 東京都 is six columns wide: with `…`, seven of the eight allowed.
        assert_eq!(lines[2], "h1       東京都…");
        assert_eq!(lines[3], "h2       Paris");
    }

    #[test]
    fn empty_without_properties_is_empty() {
        assert_eq!(render(&[], TableOptions::default()), "");
    }
}
