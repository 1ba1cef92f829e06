//! `run.fail_if`: when a finished run counts as failed (exit code 1).
//!
//! ```text
//! never
//! failed > 0                      (the default)
//! unreachable > 5% or auth_failed >= 1
//! ```
//! A category is `failed` (any failure) or an error category of the run report
//! ([`Category::as_str`](crate::protocol::Category::as_str)). A count compares the number of
//! (computer, query) tasks in that category; a percentage compares it to all tasks.

use std::collections::BTreeMap;
use std::fmt;

use crate::protocol::Category;

/// The parsed `run.fail_if`.
#[derive(Debug, Clone, PartialEq)]
pub enum FailPolicy {
    /// The run never counts as failed.
    Never,
    /// Failed when any condition holds.
    Any(Vec<Condition>),
}

/// `CATEGORY OP NUMBER[%]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// `failed` or a category name.
    pub category: String,
    pub op: Op,
    pub threshold: Threshold,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
}

/// What the count is compared with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// A number of tasks.
    Count(usize),
    /// A percentage of all tasks.
    Percent(f64),
}

/// A `fail_if` that does not parse; `offset` is the byte where the problem starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fail_if: {message}")]
pub struct FailIfError {
    pub offset: usize,
    pub message: String,
}

impl Default for FailPolicy {
    /// `failed > 0`.
    fn default() -> Self {
        FailPolicy::Any(vec![Condition { category: "failed".into(), op: Op::Gt, threshold: Threshold::Count(0) }])
    }
}

/// The category names a condition may use.
pub fn categories() -> impl Iterator<Item = &'static str> {
    std::iter::once("failed").chain(Category::ALL.iter().map(|c| c.as_str()))
}

/// Parses a `fail_if` text; `None` (absent) is the default policy.
pub fn parse(text: Option<&str>) -> Result<FailPolicy, FailIfError> {
    let Some(text) = text else {
        return Ok(FailPolicy::default());
    };
    let tokens = tokenize(text);
    if let [(_, word)] = tokens.as_slice()
        && word.eq_ignore_ascii_case("never")
    {
        return Ok(FailPolicy::Never);
    }
    let mut conditions = Vec::new();
    let mut rest = tokens.as_slice();
    loop {
        let (condition, after) = condition(text, rest)?;
        conditions.push(condition);
        match after {
            [] => return Ok(FailPolicy::Any(conditions)),
            [(_, or), more @ ..] if or.eq_ignore_ascii_case("or") => rest = more,
            [(offset, other), ..] => {
                return Err(FailIfError { offset: *offset, message: format!("expected `or`, found `{other}`") });
            }
        }
    }
}

type Token<'a> = (usize, &'a str);

/// Splits into words, numbers and operators, keeping each token's byte offset.
fn tokenize(text: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        let class = |c: char| -> u8 {
            if c.is_whitespace() {
                0
            } else if matches!(c, '<' | '>' | '=' | '!') {
                1
            } else if c == '%' {
                2
            } else {
                3
            }
        };
        let kind = class(c);
        let mut end = start;
        while let Some(&(i, c)) = chars.peek() {
            if class(c) != kind || (kind == 2 && i > start) {
                break;
            }
            end = i + c.len_utf8();
            chars.next();
        }
        if kind != 0 {
            tokens.push((start, &text[start..end]));
        }
    }
    tokens
}

fn condition<'t, 'a>(text: &str, tokens: &'t [Token<'a>]) -> Result<(Condition, &'t [Token<'a>]), FailIfError> {
    let end = text.len();
    let Some(((c_at, category), rest)) = tokens.split_first() else {
        return Err(FailIfError { offset: end, message: "expected a condition such as `failed > 0`".into() });
    };
    let category = category.to_ascii_lowercase();
    if !categories().any(|c| c == category) {
        return Err(FailIfError {
            offset: *c_at,
            message: format!(
                "unknown category `{category}`; expected `never` or one of: {}",
                categories().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    let Some(((op_at, op), rest)) = rest.split_first() else {
        return Err(FailIfError { offset: end, message: format!("expected a comparison after `{category}`") });
    };
    let op = match *op {
        ">" => Op::Gt,
        ">=" => Op::Ge,
        "<" => Op::Lt,
        "<=" => Op::Le,
        "=" | "==" => Op::Eq,
        other => {
            return Err(FailIfError {
                offset: *op_at,
                message: format!("expected one of > >= < <= ==, found `{other}`"),
            });
        }
    };
    let Some(((n_at, number), rest)) = rest.split_first() else {
        return Err(FailIfError { offset: end, message: "expected a number or a percentage".into() });
    };
    let bad_number = || FailIfError { offset: *n_at, message: format!("expected a number, found `{number}`") };
    match rest.split_first() {
        Some(((_, "%"), rest)) => {
            let pct: f64 = number.parse().map_err(|_| bad_number())?;
            if !(0.0..=100.0).contains(&pct) {
                return Err(FailIfError { offset: *n_at, message: "a percentage is between 0 and 100".into() });
            }
            Ok((Condition { category, op, threshold: Threshold::Percent(pct) }, rest))
        }
        _ => {
            let n: usize = number.parse().map_err(|_| bad_number())?;
            Ok((Condition { category, op, threshold: Threshold::Count(n) }, rest))
        }
    }
}

impl FailPolicy {
    /// Whether a run with these failure counts (category name → failed tasks; an `ok` entry,
    /// if present, is not a failure) out of `total` tasks counts as failed.
    pub fn is_failure(&self, counts: &BTreeMap<String, usize>, total: usize) -> bool {
        let FailPolicy::Any(conditions) = self else {
            return false;
        };
        let failed: usize = counts.iter().filter(|(k, _)| k.as_str() != "ok").map(|(_, n)| n).sum();
        conditions.iter().any(|c| {
            let count = if c.category == "failed" { failed } else { counts.get(&c.category).copied().unwrap_or(0) };
            match c.threshold {
                Threshold::Count(n) => c.op.holds(count as f64, n as f64),
                Threshold::Percent(p) => {
                    let pct = if total == 0 { 0.0 } else { count as f64 * 100.0 / total as f64 };
                    c.op.holds(pct, p)
                }
            }
        })
    }
}

impl Op {
    fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Op::Gt => left > right,
            Op::Ge => left >= right,
            Op::Lt => left < right,
            Op::Le => left <= right,
            Op::Eq => left == right,
        }
    }
}

impl fmt::Display for FailPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let FailPolicy::Any(conditions) = self else {
            return f.write_str("never");
        };
        for (i, c) in conditions.iter().enumerate() {
            let op = match c.op {
                Op::Gt => ">",
                Op::Ge => ">=",
                Op::Lt => "<",
                Op::Le => "<=",
                Op::Eq => "==",
            };
            let sep = if i == 0 { "" } else { " or " };
            match c.threshold {
                Threshold::Count(n) => write!(f, "{sep}{} {op} {n}", c.category)?,
                Threshold::Percent(p) => write!(f, "{sep}{} {op} {p}%", c.category)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn default_fails_on_any_failure() {
        let p = parse(None).unwrap();
        assert_eq!(p.to_string(), "failed > 0");
        assert!(!p.is_failure(&counts(&[("ok", 10)]), 10));
        assert!(p.is_failure(&counts(&[("ok", 9), ("timed_out", 1)]), 10));
    }

    #[test]
    fn never_never_fails() {
        let p = parse(Some(" Never ")).unwrap();
        assert_eq!(p, FailPolicy::Never);
        assert!(!p.is_failure(&counts(&[("unreachable", 10)]), 10));
    }

    #[test]
    fn percentages_compare_with_all_tasks() {
        let p = parse(Some("unreachable > 5%")).unwrap();
        assert!(!p.is_failure(&counts(&[("unreachable", 5)]), 100));
        assert!(p.is_failure(&counts(&[("unreachable", 6)]), 100));
        assert!(!p.is_failure(&counts(&[("access_denied", 50)]), 100));
        assert!(!p.is_failure(&counts(&[]), 0));
    }

    #[test]
    fn conditions_join_with_or() {
        let p = parse(Some("failed >= 3 or auth_failed>0")).unwrap();
        assert_eq!(p.to_string(), "failed >= 3 or auth_failed > 0");
        assert!(p.is_failure(&counts(&[("timed_out", 2), ("unreachable", 1)]), 10));
        assert!(p.is_failure(&counts(&[("auth_failed", 1)]), 10));
        assert!(!p.is_failure(&counts(&[("timed_out", 2)]), 10));
    }

    #[test]
    fn errors_have_offsets() {
        let e = parse(Some("failed > 0 or bogus > 1")).unwrap_err();
        assert_eq!(e.offset, 14);
        assert!(e.message.starts_with("unknown category `bogus`"));
        assert_eq!(parse(Some("failed >> 1")).unwrap_err().offset, 7);
        assert_eq!(parse(Some("failed > x")).unwrap_err().offset, 9);
        assert_eq!(parse(Some("failed > 1 and x")).unwrap_err().offset, 11);
        assert_eq!(parse(Some("failed >")).unwrap_err().offset, 8);
        assert_eq!(parse(Some("")).unwrap_err().offset, 0);
        assert!(parse(Some("failed > 150%")).is_err());
    }
}
