//! From text to a validated [`JobFile`]: parse, apply `--set` overrides, read into the model
//! (recovering after each error to find the next), then validate.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::diag::{Collector, Diagnostics};
use super::model::JobFile;
use super::validate;
use super::yaml::{self, Ids, Kind, Node, NodeDe, Origin, Pos};

/// A job file that parsed and validated.
#[derive(Debug, Clone)]
pub struct LoadedJob {
    /// The job, overrides applied.
    pub file: JobFile,
    /// The job file's path, as given.
    pub path: PathBuf,
    /// The directory relative paths in the job (`computers_from`, password files) start from.
    pub base_dir: PathBuf,
}

/// Stops reading after this many errors: past it the rest is noise.
const MAX_ERRORS: usize = 100;

/// Reads, parses and validates a job file. `overrides` are `KEY=VALUE` texts (`--set`).
pub fn load(path: &Path, overrides: &[String]) -> Result<LoadedJob, Diagnostics> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Diagnostics::whole(path, format!("cannot read the job file: {e}")))?;
    let base_dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    load_str(&text, &path.display().to_string(), &base_dir, overrides)
}

/// Parses and validates job text. `name` is the path shown in diagnostics; relative paths in
/// the job start from `base_dir`.
pub fn load_str(text: &str, name: &str, base_dir: &Path, overrides: &[String]) -> Result<LoadedJob, Diagnostics> {
    let path = PathBuf::from(name);
    let mut diags = Collector::new(text, overrides);
    let ids = Ids::default();
    let (mut root, duplicates) = match yaml::parse(text, &ids) {
        Ok(parsed) => parsed,
        Err(e) => {
            diags.file(e.line, e.column, e.message);
            return Err(diags.finish(&path).unwrap_or_else(|| Diagnostics::whole(&path, "invalid YAML")));
        }
    };
    for (first, dup, key) in duplicates {
        diags.at(dup, format!("duplicate key `{key}` (first at line {})", first.line));
    }
    for (i, text) in overrides.iter().enumerate() {
        if let Err(message) = apply_override(&mut root, i, text, &ids) {
            diags.override_at(i, message);
        }
    }
    let (job, dropped) = read_model(&mut root, &mut diags);
    if let Some(job) = &job {
        validate::validate(job, &root, &dropped, base_dir, &mut diags);
    }
    match (diags.finish(&path), job) {
        (None, Some(file)) => Ok(LoadedJob { file, path, base_dir: base_dir.to_path_buf() }),
        (Some(d), _) => Err(d),
        (None, None) => Err(Diagnostics::whole(&path, "the job file could not be read")),
    }
}

/// What was dropped while recovering from errors. References into a collection that lost
/// entries are not checked, since the entry a reference names may be one that was dropped.
#[derive(Debug, Default)]
pub(crate) struct Dropped {
    /// Ids of mappings and lists that lost an entry.
    pub parents: HashSet<usize>,
    /// (mapping id, key) of every dropped pair.
    pub keys: HashSet<(usize, String)>,
}

/// Deserializes the model; after each error, records it, drops the offending entry and tries
/// again, so that one run reports every independent mistake.
fn read_model(root: &mut Node, diags: &mut Collector<'_>) -> (Option<JobFile>, Dropped) {
    let mut dropped = Dropped::default();
    for _ in 0..MAX_ERRORS {
        let error = match JobFile::deserialize(NodeDe(root)) {
            Ok(job) => return (Some(job), dropped),
            Err(e) => e,
        };
        let node_id = error.node.unwrap_or(root.id);
        let Some(node) = root.find(node_id) else {
            break;
        };
        let pos = node.pos;
        // A "missing field" for a key dropped earlier repeats that key's error.
        let repeated = missing_field(&error.message).is_some_and(|f| dropped.keys.contains(&(node_id, f.to_string())));
        if !repeated {
            diags.at(pos, friendly(&error.message));
        }
        if node_id == root.id {
            break;
        }
        match root.remove(node_id) {
            Some((parent, key)) => {
                dropped.parents.insert(parent);
                if let Some(key) = key {
                    dropped.keys.insert((parent, key));
                }
            }
            None => break,
        }
    }
    (None, dropped)
}

fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}

/// serde's messages, where they are cryptic, in the job file's terms.
fn friendly(message: &str) -> String {
    if message.starts_with("data did not match any variant of untagged enum PasswordSource") {
        return "expected a password source: { env: NAME }, { file: PATH } or { command: [PROGRAM, ARGS...] }".into();
    }
    if let Some(hinted) = suggest(message) {
        return hinted;
    }
    // "expected struct SessionSpec" names a Rust type; the file has mappings.
    match message.find("expected struct ") {
        Some(i) => format!("{}expected a mapping", &message[..i]),
        None => message.to_string(),
    }
}

/// `unknown field `computer`, expected one of `name`, `computers`…` gains "did you mean
/// `computers`?" when one of the expected names is a small typo away.
fn suggest(message: &str) -> Option<String> {
    let (head, expected) = message.split_once(", expected ")?;
    let given = head.strip_prefix("unknown field `").or_else(|| head.strip_prefix("unknown variant `"))?;
    let given = given.strip_suffix('`')?;
    let best = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|name| (edit_distance(given, name), name))
        .filter(|(d, name)| *d <= 2.min(name.len() / 2))
        .min_by_key(|(d, _)| *d)?;
    Some(format!("{head}: did you mean `{}`? (expected {expected})", best.1))
}

/// Levenshtein distance, ignoring case.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row.first().copied().unwrap_or(0);
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let above = row.get(j + 1).copied().unwrap_or(0);
            let left = row.get(j).copied().unwrap_or(0);
            let value = (diagonal + usize::from(ca != cb)).min(above + 1).min(left + 1);
            diagonal = above;
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = value;
            }
        }
    }
    row.last().copied().unwrap_or(0)
}

/// Applies one `KEY=VALUE` override: KEY is a dotted path (`run.throttle`, `sessions.0.port`),
/// VALUE is YAML (`8`, `true`, `60s`, `[a, b]`). Missing mapping keys are created.
fn apply_override(root: &mut Node, index: usize, text: &str, ids: &Ids) -> Result<(), String> {
    let (key, value) = text.split_once('=').ok_or("expected KEY=VALUE")?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(format!("invalid key {key:?}: expected a dotted path such as run.throttle"));
    }
    let (mut value, _) = yaml::parse(value, ids).map_err(|e| format!("invalid value: {}", e.message))?;
    mark_override(&mut value, index);
    let origin = Pos { origin: Origin::Override(index), line: 1, column: 1, len: 1 };
    let segments: Vec<&str> = key.split('.').collect();
    let mut node = root;
    for (depth, segment) in segments.iter().enumerate() {
        let last = depth + 1 == segments.len();
        let here = segments[..depth].join(".");
        // An absent or null value on the way is replaced by an empty mapping.
        if !last
            && matches!(&node.kind, Kind::Scalar { text, plain: true } if yaml::resolve(text) == yaml::Resolved::Null)
        {
            node.kind = Kind::Map(Vec::new());
        }
        node = match &mut node.kind {
            Kind::Map(pairs) => {
                let i = match pairs.iter().position(|(k, _)| k.scalar() == Some(segment)) {
                    Some(i) => i,
                    None => {
                        let key = Kind::Scalar { text: segment.to_string(), plain: false };
                        let empty = Kind::Map(Vec::new());
                        pairs.push((Node::synthetic(ids, origin, key), Node::synthetic(ids, origin, empty)));
                        pairs.len() - 1
                    }
                };
                match pairs.get_mut(i) {
                    Some((_, v)) => v,
                    None => return Err(format!("cannot set {key}")),
                }
            }
            Kind::Seq(items) => {
                let len = items.len();
                let i: usize =
                    segment.parse().map_err(|_| format!("`{here}` is a list: expected an index, found {segment:?}"))?;
                items.get_mut(i).ok_or_else(|| format!("`{here}` has {len} items: there is no item {i}"))?
            }
            Kind::Scalar { .. } => return Err(format!("`{here}` is not a mapping or a list")),
        };
    }
    let id = node.id;
    *node = value;
    node.id = id;
    Ok(())
}

fn mark_override(node: &mut Node, index: usize) {
    node.pos.origin = Origin::Override(index);
    match &mut node.kind {
        Kind::Scalar { .. } => {}
        Kind::Seq(items) => items.iter_mut().for_each(|n| mark_override(n, index)),
        Kind::Map(pairs) => pairs.iter_mut().for_each(|(k, v)| {
            mark_override(k, index);
            mark_override(v, index);
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::diag::DiagSource;

    const MINIMAL: &str =
        "version: 1\nsessions:\n  - name: local\nqueries:\n  - name: os\n    class: Win32_OperatingSystem\n";

    fn load(text: &str, overrides: &[&str]) -> Result<LoadedJob, Diagnostics> {
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        load_str(text, "job.yaml", Path::new("."), &overrides)
    }

    #[test]
    fn a_minimal_job_loads_with_defaults() {
        let job = load(MINIMAL, &[]).unwrap();
        assert_eq!(job.file.run.throttle, 64);
        assert_eq!(job.file.sessions[0].name, "local");
    }

    #[test]
    fn overrides_apply_before_validation() {
        let job =
            load(MINIMAL, &["run.throttle=8", "sessions.0.port=5986", "sessions.0.operation_timeout=2m"]).unwrap();
        assert_eq!(job.file.run.throttle, 8);
        assert_eq!(job.file.sessions[0].port, Some(5986));
        assert_eq!(job.file.sessions[0].operation_timeout.map(|d| d.0.as_secs()), Some(120));
    }

    #[test]
    fn override_errors_name_the_override() {
        let e = load(MINIMAL, &["run.throttle=many", "sessions.3.port=1", "nokey", "run.throtle=2"]).unwrap_err();
        let by_override: Vec<(String, String)> = e
            .errors
            .iter()
            .filter_map(|d| match &d.source {
                DiagSource::Override(o) => Some((o.clone(), d.message.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(by_override.len(), 4, "{e}");
        assert!(by_override.iter().any(|(o, m)| o == "run.throttle=many" && m.contains("invalid type")), "{e}");
        assert!(by_override.iter().any(|(o, m)| o == "sessions.3.port=1" && m.contains("no item 3")), "{e}");
        assert!(by_override.iter().any(|(o, m)| o == "nokey" && m == "expected KEY=VALUE"), "{e}");
        assert!(by_override.iter().any(|(o, m)| o == "run.throtle=2" && m.contains("unknown field `throtle`")), "{e}");
    }

    #[test]
    fn every_independent_error_is_reported() {
        let text = "version: 1\nsessions:\n  - name: a\n    port: x\n    colour: red\n  - name: b\n    port: 70000\nqueries:\n  - name: os\n    clas: C\n";
        let e = load(text, &[]).unwrap_err();
        let at: Vec<(usize, usize)> = e.errors.iter().map(|d| (d.line, d.column)).collect();
        assert_eq!(at, vec![(4, 11), (5, 5), (7, 11), (10, 5)], "{e}");
    }

    #[test]
    fn a_dropped_required_field_is_not_reported_twice() {
        let e = load("version: 1\nsessions:\n  - name: [a]\nqueries: []\n", &[]).unwrap_err();
        assert_eq!(e.errors.len(), 1, "{e}");
        assert_eq!((e.errors[0].line, e.errors[0].column), (3, 11));
    }

    #[test]
    fn missing_sections_are_reported() {
        let e = load("version: 1\n", &[]).unwrap_err();
        assert!(e.errors.iter().any(|d| d.message == "missing field `sessions`"), "{e}");
        let e = load("", &[]).unwrap_err();
        assert_eq!(e.errors.len(), 1, "{e}");
        assert_eq!(e.errors[0].message, "invalid type: null, expected a mapping");
        let e = load("version: 1\nsessions: [local]\nqueries: []\n", &[]).unwrap_err();
        assert_eq!(e.errors[0].message, "invalid type: string \"local\", expected a mapping");
    }

    #[test]
    fn password_sources_refuse_unknown_keys() {
        let text = format!("{MINIMAL}credentials:\n  c:\n    username: u\n    password: {{ env: X, extra: 1 }}\n");
        let e = load(&text, &[]).unwrap_err();
        assert_eq!((e.errors[0].line, e.errors[0].column), (10, 15), "{e}");
        let ok = format!(
            "{MINIMAL}credentials:\n  c:\n    username: u\n    password: {{ command: [pass, show, cimrun] }}\n"
        );
        assert!(load(&ok, &[]).is_ok());
    }

    #[test]
    fn inline_passwords_load_with_the_opt_in_and_stay_out_of_debug() {
        let text = format!(
            "{MINIMAL}credentials:\n  c:\n    username: u\n    password: hunter2\n    allow_inline_password: true\n"
        );
        let job = load(&text, &[]).unwrap();
        assert!(!format!("{job:?}").contains("hunter2"));
        let json = serde_json::to_string(&job.file).unwrap();
        assert!(!json.contains("hunter2") && json.contains(r#""password":"[REDACTED]""#), "{json}");
        assert!(json.contains(r#""allow_inline_password":true"#));
    }

    #[test]
    fn namespaces_and_names_are_checked() {
        let e = load(
            &MINIMAL.replace(
                "class: Win32_OperatingSystem",
                "class: Win32_OperatingSystem\n    namespace: root/\n    properties: [Caption, 'Bad Name']",
            ),
            &[],
        )
        .unwrap_err();
        let at: Vec<(usize, usize)> = e.errors.iter().map(|d| (d.line, d.column)).collect();
        assert_eq!(at, vec![(7, 16), (8, 27)], "{e}");
        assert!(
            load(
                &MINIMAL.replace(
                    "class: Win32_OperatingSystem",
                    "class: Win32_OperatingSystem\n    namespace: 'root\\cimv2'"
                ),
                &[]
            )
            .is_ok()
        );
    }

    #[test]
    fn wql_in_a_block_scalar_points_at_its_first_line() {
        let text = MINIMAL
            .replace("class: Win32_OperatingSystem", "query: >-\n      SELECT Name\n      FROM Win32_Service WHERE");
        let e = load(&text, &[]).unwrap_err();
        assert_eq!(e.errors.len(), 1, "{e}");
        assert_eq!((e.errors[0].line, e.errors[0].column), (7, 7), "{e}");
        assert!(e.errors[0].message.starts_with("invalid WQL query: "), "{e}");
    }

    #[test]
    fn errors_inside_a_one_line_value_point_at_their_token() {
        // Quoted: the column is past the quote; plain: from the value's first character.
        let text = MINIMAL.replace(
            "class: Win32_OperatingSystem",
            "query: 'SELECT Name FROM Win32_Service WHERE State = = 1'",
        );
        let e = load(&text, &[]).unwrap_err();
        assert_eq!((e.errors[0].line, e.errors[0].column), (6, 58), "{e}");
        let e = load(&format!("{MINIMAL}run:\n  fail_if: failed > 0 or\n"), &[]).unwrap_err();
        assert_eq!((e.errors[0].line, e.errors[0].column), (8, 25), "{e}");
    }

    #[test]
    fn typos_get_a_suggestion() {
        assert_eq!(edit_distance("kerbros", "kerberos"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("Computer", "computers"), 1);
        let m = friendly("unknown field `computer`, expected one of `name`, `computers`, `port`");
        assert_eq!(
            m,
            "unknown field `computer`: did you mean `computers`? (expected one of `name`, `computers`, `port`)"
        );
        let m = friendly("unknown variant `kerbros`, expected one of `ntlm`, `kerberos`");
        assert!(m.contains("did you mean `kerberos`?"), "{m}");
        let m = friendly("unknown field `schedule`, expected one of `version`, `options`");
        assert_eq!(m, "unknown field `schedule`, expected one of `version`, `options`");
    }

    #[test]
    fn unreadable_files_are_one_error() {
        let e = super::load(Path::new("/nonexistent/job.yaml"), &[]).unwrap_err();
        assert_eq!(e.errors.len(), 1);
        assert!(e.to_string().starts_with("/nonexistent/job.yaml: error: cannot read the job file"), "{e}");
    }
}
