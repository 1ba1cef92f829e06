//! Output paths: handlebars templates over sanitized values, confined to the output directory.
//!
//! Two layers keep a hostile value (a computer name from a host list, a class from a query)
//! from writing anywhere else: every variable value is made a harmless single file-name
//! component before rendering, and the rendered path must still be relative with no `..`.

use std::path::{Component, Path, PathBuf};

use handlebars::Handlebars;
use serde::Serialize;

use super::{RowContext, RunVars, SinkError};

/// Longest sanitized value, in bytes; longer values keep a prefix and a hash of the whole, so
/// distinct long names stay distinct and a file name stays under the usual 255-byte limit.
const MAX_VALUE_BYTES: usize = 96;
const KEEP_PREFIX_BYTES: usize = 78;

/// Makes a variable value safe as (part of) one file-name component, on Linux and Windows:
/// path separators, control characters (NUL included) and the characters Windows reserves
/// (`<>:"|?*`) become `_`; so do `..`, leading dots (no hidden files, no `.`/`..`) and trailing
/// dots and spaces (Windows drops them). A Windows device name (`CON`, `NUL`, `COM1`…) gets a
/// `_` prefix, an empty value becomes `_`, and a very long one is shortened (see above).
pub fn sanitize(value: &str) -> String {
    let mut out: String = value
        .chars()
        .map(|c| match c {
            '/' | '\\' | '<' | '>' | ':' | '"' | '|' | '?' | '*' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    // One pass leaves no `..`: what remains between replaced pairs is at most one dot.
    out = out.replace("..", "__");
    let lead = out.len() - out.trim_start_matches('.').len();
    let trail = out.len() - out.trim_end_matches(['.', ' ']).len();
    if lead > 0 || trail > 0 {
        let body = out.get(lead..out.len().saturating_sub(trail)).unwrap_or("");
        out = format!("{}{}{}", "_".repeat(lead), body, "_".repeat(trail.min(out.len() - lead)));
    }
    if out.is_empty() {
        out.push('_');
    }
    if is_device_name(&out) {
        out.insert(0, '_');
    }
    if out.len() > MAX_VALUE_BYTES {
        let mut cut = KEEP_PREFIX_BYTES;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out = format!("{}~{:016x}", &out[..cut], fnv1a(value.as_bytes()));
    }
    out
}

fn is_device_name(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name).trim_end().to_ascii_uppercase();
    matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$")
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes().get(3).is_some_and(|b| (b'1'..=b'9').contains(b)))
}

/// FNV-1a: a stable hash (the same in every run and build) for shortened names.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// Checks a rendered path and returns it relative, normalized: not empty, not absolute, no
/// `..` component, not naming a directory. `.` components are dropped.
pub(crate) fn confine(rendered: &str) -> Result<PathBuf, &'static str> {
    if rendered.contains('\0') {
        return Err("it contains a NUL character");
    }
    if rendered.ends_with('/') || rendered.ends_with(std::path::MAIN_SEPARATOR) {
        return Err("it names a directory, not a file");
    }
    let mut out = PathBuf::new();
    for c in Path::new(rendered).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("it goes up with `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("it is absolute"),
        }
    }
    if out.as_os_str().is_empty() {
        return Err("it is empty");
    }
    Ok(out)
}

/// The variables a path template sees, all sanitized.
#[derive(Serialize)]
struct Vars<'a> {
    query: &'a str,
    class: &'a str,
    session: &'a str,
    computer: &'a str,
    date: &'a str,
    run_id: &'a str,
}

/// One sink's compiled path template.
#[derive(Debug, Clone)]
pub(crate) struct TemplateInfo {
    /// The template as written, for error messages.
    pub(crate) source: String,
    /// Whether the path changes with the computer: such files are finished per computer.
    pub(crate) uses_computer: bool,
    /// Which of the row's variables the path can depend on, in [`ROW_VARIABLES`] order.
    pub(crate) uses: [bool; 4],
}

/// The variables that change from row to row, in the order of [`TemplateInfo::uses`].
pub(crate) const ROW_VARIABLES: [&str; 4] = ["session", "computer", "query", "class"];

/// Which row variables a template can depend on. A template made only of plain variable
/// references (`{{query}}`, `{{{class}}}`, `{{~ computer ~}}`) depends on those it names;
/// anything else (helpers, blocks, `this`, paths) could reach any variable, so it depends on
/// all of them.
fn row_variables_used(source: &str) -> [bool; 4] {
    let mut uses = [false; 4];
    let mut rest = source;
    while let Some(open) = rest.find("{{") {
        let escaped = rest.get(..open).is_some_and(|before| before.ends_with('\\'));
        let after = rest.get(open + 2..).unwrap_or("");
        let Some(close) = after.find("}}") else { return [true; 4] };
        let inner = after.get(..close).unwrap_or("");
        let name = inner.trim_matches(|c: char| c == '{' || c == '}' || c == '~' || c.is_whitespace());
        let known = ROW_VARIABLES.iter().position(|v| *v == name);
        match known {
            Some(i) if !escaped => {
                if let Some(u) = uses.get_mut(i) {
                    *u = true;
                }
            }
            _ if !escaped && matches!(name, "date" | "run_id") => {}
            _ => return [true; 4],
        }
        rest = after.get(close + 2..).unwrap_or("");
    }
    uses
}

/// Renders the path templates of a run's sinks.
pub(crate) struct PathRenderer {
    hb: Handlebars<'static>,
    date: String,
    run_id: String,
    templates: Vec<TemplateInfo>,
}

impl PathRenderer {
    /// Compiles the templates (strict: an unknown variable is an error, found here by a trial
    /// render rather than at the first row).
    pub(crate) fn new<'t>(
        sources: impl IntoIterator<Item = &'t str>,
        vars: &RunVars,
    ) -> Result<PathRenderer, SinkError> {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(handlebars::no_escape);
        let mut r =
            PathRenderer { hb, date: sanitize(&vars.date), run_id: sanitize(&vars.run_id), templates: Vec::new() };
        for (index, source) in sources.into_iter().enumerate() {
            r.hb.register_template_string(&index.to_string(), source)
                .map_err(|e| SinkError::Template { template: source.to_string(), message: e.to_string() })?;
            r.templates.push(TemplateInfo {
                source: source.to_string(),
                uses_computer: false,
                uses: row_variables_used(source),
            });
            let probe = |computer: &'static str| RowContext {
                session: "session",
                computer,
                query: "query",
                class: "Class",
                properties: &[],
            };
            // A template uses `{{computer}}` when its path changes with the computer.
            let a = r.render(index, &probe("computer-a"))?;
            let b = r.render(index, &probe("computer-b"))?;
            if let Some(t) = r.templates.get_mut(index) {
                t.uses_computer = a != b;
            }
        }
        Ok(r)
    }

    /// The compiled template of sink `index`.
    pub(crate) fn template(&self, index: usize) -> Option<&TemplateInfo> {
        self.templates.get(index)
    }

    /// The path (relative to the output directory) of sink `index` for one row.
    pub(crate) fn render(&self, index: usize, row: &RowContext) -> Result<PathBuf, SinkError> {
        let source = self.templates.get(index).map(|t| t.source.as_str()).unwrap_or("");
        let (query, class, session, computer) =
            (sanitize(row.query), sanitize(row.class), sanitize(row.session), sanitize(row.computer));
        let vars = Vars {
            query: &query,
            class: &class,
            session: &session,
            computer: &computer,
            date: &self.date,
            run_id: &self.run_id,
        };
        let rendered = self
            .hb
            .render(&index.to_string(), &vars)
            .map_err(|e| SinkError::Template { template: source.to_string(), message: e.to_string() })?;
        confine(&rendered).map_err(|reason| SinkError::PathEscapes {
            template: source.to_string(),
            path: PathBuf::from(&rendered),
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_values_become_one_harmless_component() {
        for (raw, want) in [
            ("../../etc/passwd", "______etc_passwd"),
            ("C:\\x", "C__x"),
            ("a/b", "a_b"),
            ("..", "__"),
            (".", "_"),
            (".hidden", "_hidden"),
            ("a\0b\nc\u{7f}", "a_b_c_"),
            ("x...", "x___"),
            ("srv01.corp.example", "srv01.corp.example"),
            ("fe80::1%eth0", "fe80__1%eth0"),
            ("", "_"),
            ("nul", "_nul"),
            ("Com3.txt", "_Com3.txt"),
            ("COM10", "COM10"),
            ("trailing ", "trailing_"),
            ("東京", "東京"),
        ] {
            assert_eq!(sanitize(raw), want, "{raw:?}");
            assert!(confine(&sanitize(raw)).is_ok_and(|p| p.components().count() == 1));
        }
    }

    proptest::proptest! {
        #[test]
        fn any_value_is_one_safe_component(value in "\\PC*|[./\\\\\0:a ]{0,12}") {
            let clean = sanitize(&value);
            proptest::prop_assert!(!clean.is_empty() && clean.len() <= MAX_VALUE_BYTES);
            proptest::prop_assert!(!clean.starts_with('.') && !clean.contains(".."));
            proptest::prop_assert!(!clean.contains(['/', '\\', '\0', ':']));
            proptest::prop_assert!(!clean.chars().any(char::is_control));
            let rendered = confine(&format!("{clean}/x.csv")).unwrap();
            proptest::prop_assert_eq!(rendered.components().count(), 2);
        }
    }

    #[test]
    fn long_values_are_shortened_and_stay_distinct() {
        let a = "é".repeat(300);
        let b = format!("{}x", "é".repeat(299));
        let (sa, sb) = (sanitize(&a), sanitize(&b));
        assert!(sa.len() <= MAX_VALUE_BYTES && sb.len() <= MAX_VALUE_BYTES, "{}", sa.len());
        assert_ne!(sa, sb);
        assert_eq!(sa, sanitize(&a), "stable");
    }

    #[test]
    fn confine_rejects_escapes() {
        assert_eq!(confine("a/./b.csv").unwrap(), PathBuf::from("a/b.csv"));
        assert!(confine("/etc/passwd").is_err());
        assert!(confine("a/../../b").is_err());
        assert!(confine("..").is_err());
        assert!(confine("").is_err());
        assert!(confine("./").is_err());
        assert!(confine("dir/").is_err());
    }

    fn row<'a>(computer: &'a str) -> RowContext<'a> {
        RowContext { session: "s/1", computer, query: "os", class: "Win32_OperatingSystem", properties: &[] }
    }

    #[test]
    fn renders_sanitized_without_html_escaping() {
        let vars = RunVars { run_id: "r1".into(), date: "2026-01-02".into() };
        let r =
            PathRenderer::new(["{{date}}/{{session}}/{{computer}}-{{query}}&{{class}}.csv", "{{query}}.json"], &vars)
                .unwrap();
        assert_eq!(
            r.render(0, &row("../../x<y>")).unwrap(),
            PathBuf::from("2026-01-02/s_1/______x_y_-os&Win32_OperatingSystem.csv")
        );
        assert!(r.template(0).unwrap().uses_computer);
        assert!(!r.template(1).unwrap().uses_computer);
    }

    #[test]
    fn bad_templates_fail_early() {
        let vars = RunVars { run_id: "r".into(), date: "d".into() };
        for (t, escapes) in
            [("{{host}}.csv", false), ("{{#if}}", false), ("/abs/{{query}}", true), ("../{{query}}", true)]
        {
            match PathRenderer::new([t], &vars) {
                Err(SinkError::PathEscapes { .. }) => assert!(escapes, "{t}"),
                Err(SinkError::Template { .. }) => assert!(!escapes, "{t}"),
                other => panic!("{t}: {:?}", other.err()),
            }
        }
    }

    #[test]
    fn row_variables_of_plain_templates_only() {
        assert_eq!(row_variables_used("{{query}}.csv"), [false, false, true, false]);
        assert_eq!(row_variables_used("{{date}}/{{{class}}}-{{~ computer ~}}_{{run_id}}"), [false, true, false, true]);
        assert_eq!(row_variables_used("{{session}}/x.csv"), [true, false, false, false]);
        assert_eq!(row_variables_used("fixed.csv"), [false; 4]);
        for anything in [
            "{{#each this}}{{this}}{{/each}}.csv",
            "{{#if (eq query \"a\")}}a{{else}}b{{/if}}.csv",
            "{{lookup this \"computer\"}}.csv",
            "\\{{query}}.csv",
            "{{query",
        ] {
            assert_eq!(row_variables_used(anything), [true; 4], "{anything}");
        }
    }
}
