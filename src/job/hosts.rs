//! Computer names: `web[01:12].corp` ranges, host list files, duplicates removed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::model::SessionSpec;

/// The most names one pattern, or one session, may expand to.
pub const MAX_HOSTS: usize = 1_000_000;

/// The longest computer name a pattern may expand to: a DNS name has at most 253 characters
/// (RFC 1035). Without it a short pattern with a long suffix and a large range expands to gigabytes.
pub const MAX_NAME_LEN: usize = 253;

/// Why a computer name or host list is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("empty computer name")]
    Empty,
    #[error("computer name {0:?} contains whitespace")]
    Whitespace(String),
    #[error("unclosed `[` in {0:?}")]
    Unclosed(String),
    #[error("`]` without `[` in {0:?}")]
    Unopened(String),
    #[error("invalid range `[{range}]` in {pattern:?}: expected `[FIRST:LAST]` with FIRST <= LAST, both numbers")]
    BadRange { pattern: String, range: String },
    #[error("{pattern:?} expands to more than {MAX_HOSTS} names")]
    TooMany { pattern: String },
    #[error("{pattern:?} expands to names longer than {MAX_NAME_LEN} characters")]
    TooLong { pattern: String },
    #[error("cannot read host list {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}:{line}: {source}")]
    InFile {
        path: PathBuf,
        line: usize,
        #[source]
        source: Box<HostError>,
    },
}

/// Expands numeric ranges: `web[01:12].corp` is web01.corp … web12.corp (the first number's
/// width sets the zero padding); several ranges give every combination, in order.
pub fn expand(pattern: &str) -> Result<Vec<String>, HostError> {
    Ok(parse(pattern)?.names())
}

/// Checks a pattern without building its names (validation needs only the verdict), and
/// returns how many names it stands for.
pub fn check(pattern: &str) -> Result<usize, HostError> {
    Ok(parse(pattern)?.count)
}

/// A pattern checked but not expanded: literal text alternating with numeric ranges.
struct Pattern {
    parts: Vec<Part>,
    count: usize,
}

enum Part {
    Text(String),
    Range { first: u64, last: u64, width: usize },
}

fn parse(pattern: &str) -> Result<Pattern, HostError> {
    let pattern_trimmed = pattern.trim();
    if pattern_trimmed.is_empty() {
        return Err(HostError::Empty);
    }
    if pattern_trimmed.chars().any(char::is_whitespace) {
        return Err(HostError::Whitespace(pattern.to_string()));
    }
    let mut parts = Vec::new();
    let mut rest = pattern_trimmed;
    let mut count: usize = 1;
    // The length of the longest name, counted before any name is built.
    let mut longest: usize = 0;
    while let Some(open) = rest.find(['[', ']']) {
        if rest[open..].starts_with(']') {
            return Err(HostError::Unopened(pattern.to_string()));
        }
        let Some(close) = rest[open..].find(']').map(|c| open + c) else {
            return Err(HostError::Unclosed(pattern.to_string()));
        };
        parts.push(Part::Text(rest[..open].to_string()));
        let range = &rest[open + 1..close];
        let (first, last, width) = parse_range(range)
            .ok_or_else(|| HostError::BadRange { pattern: pattern.to_string(), range: range.to_string() })?;
        count = usize::try_from(last - first + 1)
            .ok()
            .and_then(|n| count.checked_mul(n))
            .filter(|&t| t <= MAX_HOSTS)
            .ok_or_else(|| HostError::TooMany { pattern: pattern.to_string() })?;
        longest += open + width.max(last.to_string().len());
        parts.push(Part::Range { first, last, width });
        rest = &rest[close + 1..];
    }
    longest += rest.len();
    if longest > MAX_NAME_LEN {
        return Err(HostError::TooLong { pattern: pattern.to_string() });
    }
    parts.push(Part::Text(rest.to_string()));
    Ok(Pattern { parts, count })
}

impl Pattern {
    /// Every name, the first range varying slowest.
    fn names(&self) -> Vec<String> {
        let mut names = vec![String::new()];
        for part in &self.parts {
            names = match part {
                Part::Text(t) => names
                    .into_iter()
                    .map(|mut n| {
                        n.push_str(t);
                        n
                    })
                    .collect(),
                Part::Range { first, last, width } => names
                    .iter()
                    .flat_map(|prefix| (*first..=*last).map(move |n| format!("{prefix}{n:0width$}", width = *width)))
                    .collect(),
            };
        }
        names
    }
}

/// `01:12` → (1, 12, width 2); `None` when it is not a valid range.
fn parse_range(range: &str) -> Option<(u64, u64, usize)> {
    let (first, last) = range.split_once(':')?;
    let is_number = |s: &str| !s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit());
    if !is_number(first) || !is_number(last) {
        return None;
    }
    let (a, b): (u64, u64) = (first.parse().ok()?, last.parse().ok()?);
    (a <= b).then_some((a, b, first.len()))
}

/// Every computer of a session: `computers` (ranges expanded), then `computers_from` (one name
/// per line, `#` comments, blank lines skipped), duplicates removed ignoring case, first
/// occurrence kept. An empty list means the local machine.
pub fn computers(session: &SessionSpec, base_dir: &Path) -> Result<Vec<String>, HostError> {
    let mut all = Vec::new();
    for pattern in &session.computers {
        all.extend(expand(pattern)?);
        // Checked per pattern: many patterns of a million names each add up before the end.
        if all.len() > MAX_HOSTS {
            return Err(HostError::TooMany { pattern: session.name.clone() });
        }
    }
    if let Some(file) = &session.computers_from {
        all.extend(read_list(&base_dir.join(file))?);
    }
    if all.len() > MAX_HOSTS {
        return Err(HostError::TooMany { pattern: session.name.clone() });
    }
    Ok(dedup(all))
}

/// Reads a host list file; each line may itself be a range pattern.
pub fn read_list(path: &Path) -> Result<Vec<String>, HostError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| HostError::Read { path: path.to_path_buf(), message: e.to_string() })?;
    let mut names = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let expanded = expand(line).map_err(|e| HostError::InFile {
            path: path.to_path_buf(),
            line: i + 1,
            source: Box::new(e),
        })?;
        names.extend(expanded);
        if names.len() > MAX_HOSTS {
            return Err(HostError::TooMany { pattern: path.display().to_string() });
        }
    }
    Ok(names)
}

fn dedup(names: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    names.into_iter().filter(|n| seen.insert(n.to_ascii_lowercase())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_keep_zero_padding() {
        let names = expand("web[01:12].corp").unwrap();
        assert_eq!(names.len(), 12);
        assert_eq!(names[0], "web01.corp");
        assert_eq!(names[11], "web12.corp");
        assert_eq!(expand("h[8:10]").unwrap(), ["h8", "h9", "h10"]);
        assert_eq!(expand("h[098:100]").unwrap(), ["h098", "h099", "h100"]);
    }

    #[test]
    fn several_ranges_give_the_cartesian_product() {
        assert_eq!(expand("r[1:2]n[1:3]").unwrap(), ["r1n1", "r1n2", "r1n3", "r2n1", "r2n2", "r2n3"]);
    }

    #[test]
    fn plain_names_pass_through() {
        assert_eq!(expand(" srv01.corp ").unwrap(), ["srv01.corp"]);
        assert_eq!(expand("10.0.0.1").unwrap(), ["10.0.0.1"]);
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert_eq!(expand(""), Err(HostError::Empty));
        assert_eq!(expand("  "), Err(HostError::Empty));
        assert!(matches!(expand("web[01:12"), Err(HostError::Unclosed(_))));
        assert!(matches!(expand("web01]"), Err(HostError::Unopened(_))));
        assert!(matches!(expand("web[12:01]"), Err(HostError::BadRange { .. })));
        assert!(matches!(expand("web[a:c]"), Err(HostError::BadRange { .. })));
        assert!(matches!(expand("web[1]"), Err(HostError::BadRange { .. })));
        assert!(matches!(expand("web[1:]"), Err(HostError::BadRange { .. })));
        assert!(matches!(expand("a b"), Err(HostError::Whitespace(_))));
    }

    #[test]
    fn names_longer_than_dns_allows_are_refused_before_expansion() {
        let long = format!("a[0:999999]{}", "x".repeat(4000));
        assert_eq!(expand(&long), Err(HostError::TooLong { pattern: long.clone() }));
        // The range's width counts: 250 + 4 digits is over the limit, 250 + 3 is not.
        let base = "h".repeat(250);
        assert!(matches!(expand(&format!("{base}[1:1000]")), Err(HostError::TooLong { .. })));
        assert_eq!(expand(&format!("{base}[1:999]")).map(|v| v.len()), Ok(999));
        assert_eq!(expand(&"n".repeat(MAX_NAME_LEN)).map(|v| v.len()), Ok(1));
        assert!(matches!(expand(&"n".repeat(MAX_NAME_LEN + 1)), Err(HostError::TooLong { .. })));
    }

    #[test]
    fn expansion_is_capped() {
        assert!(matches!(expand("h[0:999][0:999]"), Ok(v) if v.len() == 1_000_000));
        assert!(matches!(expand("h[0:999][0:1000]"), Err(HostError::TooMany { .. })));
        assert!(matches!(expand("h[0:99999999999]"), Err(HostError::TooMany { .. })));
        assert!(matches!(expand("h[0:9999999999999999999]"), Err(HostError::BadRange { .. })));
    }

    #[test]
    fn computers_merge_files_and_drop_duplicates_ignoring_case() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hosts.txt"), "# fleet\nWEB02.corp\n\nnew[1:2]  # rack 3\nsrv01\n").unwrap();
        let session: SessionSpec = serde_json::from_value(serde_json::json!({
            "name": "s",
            "computers": ["srv01", "web[01:02].corp"],
            "computers_from": "hosts.txt",
        }))
        .unwrap();
        assert_eq!(computers(&session, dir.path()).unwrap(), ["srv01", "web01.corp", "web02.corp", "new1", "new2"]);
    }

    #[test]
    fn host_file_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.txt");
        std::fs::write(&path, "a\nb[3:1]\n").unwrap();
        let e = read_list(&path).unwrap_err();
        assert!(matches!(&e, HostError::InFile { line: 2, .. }), "{e}");
        assert!(matches!(read_list(&dir.path().join("missing")), Err(HostError::Read { .. })));
    }
}
