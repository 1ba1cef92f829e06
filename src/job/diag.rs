//! Errors found in a job file, each with its position and a snippet of the line.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a diagnostic points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiagSource {
    /// A position in the job file.
    File,
    /// A `--set KEY=VALUE` override, quoted as given.
    Override(String),
    /// The job file as a whole (e.g. it could not be read).
    Whole,
}

/// One error in a job file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDiagnostic {
    /// What is wrong, in one line.
    pub message: String,
    /// 1-based line in the job file; 0 when the error is not at a file position.
    pub line: usize,
    /// 1-based column (in characters); 0 when the error is not at a file position.
    pub column: usize,
    /// Characters to underline from `column` (at least 1).
    pub len: usize,
    /// The file, an override, or the job as a whole.
    pub source: DiagSource,
    /// The source line the error is on, for the snippet.
    pub snippet: Option<String>,
}

/// Every error found while loading one job file. `Display` prints one block per error, each
/// starting with a `PATH:LINE:COL: error: MESSAGE` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics {
    /// The job file's path, as given.
    pub path: PathBuf,
    /// The errors, in file order (overrides last).
    pub errors: Vec<JobDiagnostic>,
    /// The job file's text, for the graphical rendering.
    source: Option<Arc<str>>,
}

impl Diagnostics {
    /// A single error about the file as a whole.
    pub(crate) fn whole(path: &Path, message: impl Into<String>) -> Diagnostics {
        Diagnostics {
            path: path.to_path_buf(),
            errors: vec![JobDiagnostic {
                message: message.into(),
                line: 0,
                column: 0,
                len: 0,
                source: DiagSource::Whole,
                snippet: None,
            }],
            source: None,
        }
    }

    /// Renders every error with miette's graphical handler (Unicode frame, labels, colour when
    /// `color`), for terminals; `Display` is the plain, grep-able form for logs and scripts.
    pub fn render_graphical(&self, color: bool) -> String {
        let theme = if color { miette::GraphicalTheme::unicode() } else { miette::GraphicalTheme::unicode_nocolor() };
        let handler = miette::GraphicalReportHandler::new_themed(theme);
        let name = self.path.display().to_string();
        let mut out = String::new();
        for e in &self.errors {
            let (message, span) = match &e.source {
                DiagSource::File => (e.message.clone(), self.byte_span(e)),
                DiagSource::Override(text) => (format!("--set {text}: {}", e.message), None),
                DiagSource::Whole => (e.message.clone(), None),
            };
            let report = GraphicalError {
                message,
                src: miette::NamedSource::new(&name, self.source.as_deref().unwrap_or("").to_string()),
                span,
            };
            if handler.render_report(&mut out, &report).is_err() {
                out.push_str(&format!("{name}: error: {}\n", e.message));
            }
        }
        if self.errors.len() > 1 {
            out.push_str(&format!("{} errors in {name}\n", self.errors.len()));
        }
        out
    }

    /// The byte range of an error's position in the source, from its line and (character) column.
    fn byte_span(&self, e: &JobDiagnostic) -> Option<miette::SourceSpan> {
        let text = self.source.as_deref()?;
        let mut offset = 0usize;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            if i + 1 == e.line {
                let start: usize = line.chars().take(e.column.saturating_sub(1)).map(char::len_utf8).sum();
                let len: usize =
                    line.chars().skip(e.column.saturating_sub(1)).take(e.len.max(1)).map(char::len_utf8).sum();
                return Some(miette::SourceSpan::new((offset + start).into(), len));
            }
            offset += line.len();
        }
        None
    }
}

/// One error as miette renders it.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
struct GraphicalError {
    message: String,
    #[source_code]
    src: miette::NamedSource<String>,
    #[label("here")]
    span: Option<miette::SourceSpan>,
}

/// Collects diagnostics against one text.
pub(crate) struct Collector<'t> {
    text: &'t str,
    overrides: &'t [String],
    pub errors: Vec<JobDiagnostic>,
}

impl<'t> Collector<'t> {
    pub fn new(text: &'t str, overrides: &'t [String]) -> Self {
        Collector { text, overrides, errors: Vec::new() }
    }

    /// Records an error at a node's position.
    pub fn at(&mut self, pos: super::yaml::Pos, message: impl Into<String>) {
        use super::yaml::Origin;
        let message = message.into();
        let diag = match pos.origin {
            Origin::File => self.file_error(pos.line, pos.column, pos.len, message),
            Origin::Override(i) => self.override_error(i, message),
        };
        self.errors.push(diag);
    }

    /// Records an error at a line and column of the file.
    pub fn file(&mut self, line: usize, column: usize, message: impl Into<String>) {
        let diag = self.file_error(line, column, 1, message.into());
        self.errors.push(diag);
    }

    /// Records an error in the override with index `i`.
    pub fn override_at(&mut self, i: usize, message: impl Into<String>) {
        let diag = self.override_error(i, message.into());
        self.errors.push(diag);
    }

    fn file_error(&self, line: usize, column: usize, len: usize, message: String) -> JobDiagnostic {
        let snippet = line.checked_sub(1).and_then(|l| self.text.lines().nth(l)).map(str::to_string);
        JobDiagnostic { message, line, column, len: len.max(1), source: DiagSource::File, snippet }
    }

    fn override_error(&self, i: usize, message: String) -> JobDiagnostic {
        let text = self.overrides.get(i).cloned().unwrap_or_default();
        JobDiagnostic { message, line: 0, column: 0, len: 0, source: DiagSource::Override(text), snippet: None }
    }

    /// The diagnostics in file order, overrides last; `None` when there are none.
    pub fn finish(mut self, path: &Path) -> Option<Diagnostics> {
        if self.errors.is_empty() {
            return None;
        }
        self.errors.sort_by_key(|d| (matches!(d.source, DiagSource::Override(_)), d.line, d.column));
        self.errors.dedup();
        Some(Diagnostics { path: path.to_path_buf(), errors: self.errors, source: Some(Arc::from(self.text)) })
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match &e.source {
                DiagSource::File => writeln!(f, "{path}:{}:{}: error: {}", e.line, e.column, e.message)?,
                DiagSource::Override(text) => writeln!(f, "{path}: --set {text}: error: {}", e.message)?,
                DiagSource::Whole => writeln!(f, "{path}: error: {}", e.message)?,
            }
            if let Some(line) = &e.snippet {
                let number = e.line.to_string();
                let pad = " ".repeat(number.len());
                // Tabs keep their width in the caret line so the caret stays under its column.
                let lead: String =
                    line.chars().take(e.column.saturating_sub(1)).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
                let width = e.len.min(line.chars().count().saturating_sub(e.column.saturating_sub(1))).max(1);
                writeln!(f, "{pad} |")?;
                writeln!(f, "{number} | {line}")?;
                writeln!(f, "{pad} | {lead}{}", "^".repeat(width))?;
            }
        }
        if self.errors.len() > 1 {
            writeln!(f, "\n{} errors in {path}", self.errors.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::yaml::{Origin, Pos};

    #[test]
    fn display_has_a_grepable_line_and_a_caret() {
        let text = "version: 1\nrun:\n  throttle: 0\n";
        let mut c = Collector::new(text, &[]);
        c.at(Pos { origin: Origin::File, line: 3, column: 13, len: 1 }, "throttle must be at least 1");
        let d = c.finish(Path::new("jobs/x.yaml")).unwrap();
        assert_eq!(
            d.to_string(),
            "jobs/x.yaml:3:13: error: throttle must be at least 1\n  |\n3 |   throttle: 0\n  |             ^\n"
        );
    }

    #[test]
    fn overrides_are_named_instead_of_positions() {
        let overrides = vec!["run.throttle=0".to_string()];
        let mut c = Collector::new("version: 1\n", &overrides);
        c.at(Pos { origin: Origin::Override(0), line: 1, column: 1, len: 1 }, "throttle must be at least 1");
        c.file(1, 1, "first");
        let d = c.finish(Path::new("j.yaml")).unwrap();
        assert_eq!(d.errors[0].message, "first");
        assert_eq!(d.errors[1].source, DiagSource::Override("run.throttle=0".into()));
        assert!(d.to_string().contains("j.yaml: --set run.throttle=0: error: throttle must be at least 1\n"));
        assert!(d.to_string().ends_with("2 errors in j.yaml\n"));
    }

    #[test]
    fn graphical_rendering_labels_the_exact_span() {
        let text = "version: 1\nrun:\n  thröttle: 0\n";
        let mut c = Collector::new(text, &[]);
        c.at(Pos { origin: Origin::File, line: 3, column: 3, len: 8 }, "unknown field `thröttle`");
        let d = c.finish(Path::new("jobs/x.yaml")).unwrap();
        let span = d.byte_span(&d.errors[0]).unwrap();
        assert_eq!(&text[span.offset()..span.offset() + span.len()], "thröttle");
        let out = d.render_graphical(false);
        assert!(out.contains("unknown field `thröttle`"), "{out}");
        assert!(out.contains("jobs/x.yaml:3:3"), "{out}");
        assert!(out.contains("thröttle: 0"), "{out}");
    }
}
