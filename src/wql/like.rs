//! WQL `LIKE` patterns: `%` (any run), `_` (any one character), `[abc]`, `[a-f]`, `[^a-f]`.
//!
//! Matching is case-insensitive, as WMI's is, and uses the two-pointer wildcard algorithm
//! (remember the last `%`, retry one character further on mismatch): O(text × pattern) at
//! worst, never the exponential backtracking a naive recursive matcher shows on `%a%a%a…b`.

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// `%`: any run of characters, possibly empty.
    Any,
    /// `_`: exactly one character.
    One,
    /// A character to match (already case-folded).
    Char(char),
    /// `[…]`: one character in (or, negated, not in) these inclusive ranges.
    Set { negated: bool, ranges: Vec<(char, char)> },
}

impl Part {
    /// Whether this single-character part matches `c` (case-folded).
    fn accepts(&self, c: char) -> bool {
        match self {
            Part::Any | Part::One => true,
            Part::Char(p) => *p == c,
            Part::Set { negated, ranges } => {
                ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
            }
        }
    }
}

/// A `LIKE` pattern as the query wrote it, compiled once when the query is parsed: a filter
/// matches it against every instance, and compiling per instance allocated each time.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    /// `None` when a `[` has no closing `]`: such a pattern matches nothing.
    parts: Option<Vec<Part>>,
}

impl From<String> for Pattern {
    /// Compiles a pattern. As in Microsoft's WQL implementations, a `]` right after `[` or
    /// `[^` closes an empty set (`[]` matches nothing, `[^]` any one character), `-` first in a
    /// set is a member, and a pattern with an unterminated `[` matches nothing. A literal `[`
    /// is written `[[]`, a literal `%` `[%]`.
    fn from(text: String) -> Pattern {
        let parts = compile(&text);
        Pattern { text, parts }
    }
}

impl From<&str> for Pattern {
    fn from(text: &str) -> Pattern {
        Pattern::from(text.to_string())
    }
}

/// Patterns are equal when written the same; the compiled form follows from the text.
impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.text == other.text
    }
}

impl std::ops::Deref for Pattern {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

/// The parts of a pattern; `None` when a `[` is never closed.
fn compile(pattern: &str) -> Option<Vec<Part>> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut parts = Vec::with_capacity(chars.len());
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        i += 1;
        match c {
            '%' => {
                // Consecutive `%` are one `%`; keeping one makes matching simpler.
                if parts.last() != Some(&Part::Any) {
                    parts.push(Part::Any);
                }
            }
            '_' => parts.push(Part::One),
            '[' => {
                let (part, next) = set(&chars, i)?;
                parts.push(part);
                i = next;
            }
            c => parts.push(Part::Char(fold(c))),
        }
    }
    Some(parts)
}

impl Pattern {
    /// True when the whole of `text` matches the pattern, case-insensitively.
    pub fn matches(&self, text: &str) -> bool {
        let Some(parts) = &self.parts else {
            return false;
        };
        let text: Vec<char> = text.chars().map(fold).collect();
        let (mut ti, mut pi) = (0, 0);
        // After a `%`: the pattern position following it and the text position it now covers up to.
        let mut resume: Option<(usize, usize)> = None;
        while let Some(&c) = text.get(ti) {
            match parts.get(pi) {
                Some(Part::Any) => {
                    pi += 1;
                    resume = Some((pi, ti));
                }
                Some(p) if p.accepts(c) => {
                    pi += 1;
                    ti += 1;
                }
                _ => match resume {
                    Some((rp, rt)) => {
                        pi = rp;
                        ti = rt + 1;
                        resume = Some((rp, rt + 1));
                    }
                    None => return false,
                },
            }
        }
        parts.get(pi..).is_some_and(|rest| rest.iter().all(|p| *p == Part::Any))
    }
}

/// Parses a set whose `[` is just before `start`; returns it and the index after its `]`.
fn set(chars: &[char], start: usize) -> Option<(Part, usize)> {
    let mut i = start;
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        let c = *chars.get(i)?;
        if c == ']' {
            return Some((Part::Set { negated, ranges }, i + 1));
        }
        let lo = fold(c);
        // `a-f` is a range unless the `-` is last in the set (then it is a member).
        match (chars.get(i + 1), chars.get(i + 2)) {
            (Some('-'), Some(&hi)) if hi != ']' => {
                ranges.push((lo, fold(hi)));
                i += 3;
            }
            _ => {
                ranges.push((lo, lo));
                i += 1;
            }
        }
    }
}

/// Simple case folding, one character to one, as WMI compares strings case-insensitively.
pub(super) fn fold(c: char) -> char {
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(pattern: &str, text: &str) -> bool {
        Pattern::from(pattern).matches(text)
    }

    #[test]
    fn literals_are_case_insensitive_and_whole() {
        assert!(like("Spooler", "spooler"));
        assert!(like("ÉTÉ", "été"));
        assert!(!like("Spool", "Spooler"));
        assert!(!like("Spooler", "Spool"));
        assert!(like("", ""));
        assert!(!like("", "a"));
    }

    #[test]
    fn percent_and_underscore() {
        assert!(like("%", ""));
        assert!(like("%", "anything"));
        assert!(like("Win%", "Windows"));
        assert!(like("%dows", "Windows"));
        assert!(like("W%n%s", "Windows"));
        assert!(!like("W%x%s", "Windows"));
        assert!(like("_in", "Win"));
        assert!(!like("_in", "in"));
        assert!(like("C:\\%", "C:\\Windows"));
        assert!(like("%%a%%", "bab"));
        assert!(like("a%b%c", "aXbYbZc"));
        assert!(!like("a%b%c", "aXbYbZ"));
    }

    #[test]
    fn sets_and_ranges() {
        assert!(like("[abc]x", "Bx"));
        assert!(!like("[abc]x", "dx"));
        assert!(like("[a-f]1", "E1"));
        assert!(!like("[a-f]1", "g1"));
        assert!(like("[^a-f]1", "g1"));
        assert!(!like("[^a-f]1", "C1"));
        assert!(like("disk[0-9][0-9]", "disk42"));
        assert!(like("[%]", "%"));
        assert!(!like("[%]", "x"));
        assert!(like("[_]", "_"));
        assert!(like("[[]x", "[x"));
        assert!(like("[-a]", "-"));
        assert!(!like("[]", ""));
        assert!(!like("[]x", "x"));
        assert!(like("[^]", "q"));
        assert!(!like("[]]", "]"));
        assert!(like("[^]]", "a]"));
        assert!(like("[a-]", "-"));
        assert!(like("[a-]", "a"));
        assert!(!like("[a-]", "b"));
    }

    #[test]
    fn unterminated_set_matches_nothing() {
        for text in ["[abc", "a", "abc", ""] {
            assert!(!like("[abc", text), "{text}");
            assert!(!like("%[^x", text), "{text}");
        }
        assert!(!like("a[", "a["));
    }

    #[test]
    fn no_exponential_backtracking() {
        let pattern = format!("{}b", "%a".repeat(200));
        let text = "a".repeat(20_000);
        let start = std::time::Instant::now();
        assert!(!like(&pattern, &text));
        let matching = format!("{text}b");
        assert!(like(&pattern, &matching));
        // Quadratic worst case here is 200 × 20 000 steps: milliseconds, not centuries.
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "{:?}", start.elapsed());
    }
}
