//! Renders the AST back to WQL text that parses to the same AST.

use std::fmt::{self, Display, Formatter};

use super::{CmpOp, Expr, Literal, Query};

impl Display for Query {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("SELECT ")?;
        if self.properties.is_empty() {
            f.write_str("*")?;
        } else {
            f.write_str(&self.properties.join(", "))?;
        }
        write!(f, " FROM {}", self.class)?;
        if let Some(filter) = &self.filter {
            write!(f, " WHERE {filter}")?;
        }
        Ok(())
    }
}

/// Binding strength, loosest first; an operand is parenthesized when it binds more loosely
/// than its position needs, so the printed text parses back to the same tree.
fn precedence(e: &Expr) -> u8 {
    match e {
        Expr::Or(..) => 0,
        Expr::And(..) => 1,
        Expr::Not(_) => 2,
        _ => 3,
    }
}

fn operand(f: &mut Formatter<'_>, e: &Expr, min: u8) -> fmt::Result {
    if precedence(e) < min { write!(f, "({e})") } else { write!(f, "{e}") }
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            // Both chains are left-associative: a right operand of the same kind needs parentheses.
            Expr::Or(l, r) => {
                operand(f, l, 0)?;
                f.write_str(" OR ")?;
                operand(f, r, 1)
            }
            Expr::And(l, r) => {
                operand(f, l, 1)?;
                f.write_str(" AND ")?;
                operand(f, r, 2)
            }
            Expr::Not(e) => {
                f.write_str("NOT ")?;
                operand(f, e, 2)
            }
            Expr::Compare { property, op, value } => write!(f, "{property} {op} {value}"),
            Expr::Like { property, pattern, negated } => {
                write!(f, "{property} {}LIKE {}", if *negated { "NOT " } else { "" }, Quoted(pattern))
            }
            Expr::IsNull { property, negated } => {
                write!(f, "{property} IS {}NULL", if *negated { "NOT " } else { "" })
            }
            Expr::Isa { property, class } => write!(f, "{property} ISA {}", Quoted(class)),
        }
    }
}

impl Display for CmpOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Literals as WQL writes them. Reals use Rust's shortest round-trip form, which always has a
/// `.` or an exponent, so they read back as reals and not integers.
impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(s) => Quoted(s).fmt(f),
            Literal::Integer(n) => write!(f, "{n}"),
            Literal::Real(r) => write!(f, "{r:?}"),
            Literal::Bool(b) => f.write_str(if *b { "TRUE" } else { "FALSE" }),
            Literal::Null => f.write_str("NULL"),
        }
    }
}

/// A single-quoted WQL string with `\` and `'` escaped.
struct Quoted<'a>(&'a str);

impl Display for Quoted<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("'")?;
        for c in self.0.chars() {
            if c == '\\' || c == '\'' {
                f.write_str("\\")?;
            }
            write!(f, "{c}")?;
        }
        f.write_str("'")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::wql::parser::is_reserved;
    use crate::wql::{parse, parse_condition};

    #[test]
    fn renders_canonical_wql() {
        let q = parse("select name,STATE from Win32_Service where not (a=1 or b<>'x') and c like \"it's\"")
            .unwrap();
        assert_eq!(
            q.to_string(),
            "SELECT name, STATE FROM Win32_Service WHERE NOT (a = 1 OR b <> 'x') AND c LIKE 'it\\'s'"
        );
        assert_eq!(parse("SELECT * FROM X").unwrap().to_string(), "SELECT * FROM X");
        let e = parse_condition(r#"p != "C:\\dir" OR 3 > q AND r IS NOT NULL OR s ISA K OR t NOT LIKE '%'"#)
            .unwrap();
        assert_eq!(
            e.to_string(),
            r"p <> 'C:\\dir' OR q < 3 AND r IS NOT NULL OR s ISA 'K' OR t NOT LIKE '%'"
        );
        let e = parse_condition("a = 1.0 AND b = 1e300 AND c = -0x10 AND d = true AND e = null").unwrap();
        assert_eq!(e.to_string(), "a = 1.0 AND b = 1e300 AND c = -16 AND d = TRUE AND e = NULL");
    }

    #[test]
    fn parenthesizes_only_where_the_tree_needs_it() {
        for text in [
            "a = 1 OR b = 2 OR c = 3",
            "a = 1 OR (b = 2 OR c = 3)",
            "a = 1 AND (b = 2 AND c = 3)",
            "(a = 1 OR b = 2) AND c = 3",
            "a = 1 AND (b = 2 OR c = 3)",
            "NOT NOT a = 1",
            "NOT (a = 1 AND b = 2)",
            "NOT a = 1 AND b = 2",
            "a = 1 OR b = 2 AND c = 3",
        ] {
            assert_eq!(parse_condition(text).unwrap().to_string(), text);
        }
        assert_eq!(parse_condition("((a = 1) AND (b = 2))").unwrap().to_string(), "a = 1 AND b = 2");
    }

    fn ident() -> impl Strategy<Value = String> {
        "[A-Za-z_][A-Za-z0-9_]{0,10}".prop_filter("reserved word", |s| !is_reserved(s))
    }

    fn literal() -> impl Strategy<Value = Literal> {
        prop_oneof![
            any::<String>().prop_map(Literal::String),
            any::<i64>().prop_map(|n| Literal::Integer(n.into())),
            any::<u64>().prop_map(|n| Literal::Integer(n.into())),
            any::<f64>().prop_filter("finite", |r| r.is_finite()).prop_map(Literal::Real),
            any::<bool>().prop_map(Literal::Bool),
            Just(Literal::Null),
        ]
    }

    fn op() -> impl Strategy<Value = CmpOp> {
        prop_oneof![
            Just(CmpOp::Eq),
            Just(CmpOp::Ne),
            Just(CmpOp::Lt),
            Just(CmpOp::Le),
            Just(CmpOp::Gt),
            Just(CmpOp::Ge)
        ]
    }

    fn expr() -> impl Strategy<Value = Expr> {
        let leaf =
            prop_oneof![
                (ident(), op(), literal()).prop_map(|(property, op, value)| Expr::Compare {
                    property,
                    op,
                    value
                }),
                (ident(), any::<String>(), any::<bool>())
                    .prop_map(|(property, pattern, negated)| Expr::Like { property, pattern: pattern.into(), negated }),
                (ident(), any::<bool>()).prop_map(|(property, negated)| Expr::IsNull { property, negated }),
                (ident(), any::<String>()).prop_map(|(property, class)| Expr::Isa { property, class }),
            ];
        leaf.prop_recursive(8, 64, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(l, r)| Expr::And(Box::new(l), Box::new(r))),
                (inner.clone(), inner.clone()).prop_map(|(l, r)| Expr::Or(Box::new(l), Box::new(r))),
                inner.prop_map(|e| Expr::Not(Box::new(e))),
            ]
        })
    }

    fn query() -> impl Strategy<Value = Query> {
        let class = ident().prop_filter("event class", |c| parse(&format!("SELECT * FROM {c}")).is_ok());
        (prop::collection::vec(ident(), 0..4), class, prop::option::of(expr()))
            .prop_map(|(properties, class, filter)| Query { properties, class, filter })
    }

    /// A keyword in random letter case.
    fn keyword(kw: &'static str) -> impl Strategy<Value = String> {
        prop::collection::vec(any::<bool>(), kw.len()).prop_map(move |upper| {
            kw.chars()
                .zip(upper)
                .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
                .collect()
        })
    }

    /// Whitespace between tokens, sometimes none where WQL allows it.
    fn space() -> impl Strategy<Value = &'static str> {
        prop::sample::select(&[" ", "  ", "\t", "\n", " \r\n "][..])
    }

    /// Literals in every spelling the lexer accepts.
    fn spelled_literal() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u32>().prop_map(|n| format!("0x{n:X}")),
            any::<u32>().prop_map(|n| format!("+{n}")),
            (-1e6f64..1e6).prop_map(|r| format!("{r:e}")),
            "[a-z '\"\\\\]{0,8}".prop_map(|s| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))),
            "[a-z '\"\\\\]{0,8}"
                .prop_map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))),
            keyword("TRUE"),
            keyword("FALSE"),
            keyword("NULL"),
        ]
    }

    fn spelled_condition() -> impl Strategy<Value = String> {
        let op = prop::sample::select(&["=", "<>", "!=", "<", "<=", ">", ">="][..]);
        let string = prop_oneof![Just("'x%'".to_string()), Just("\"[^a-c]_\"".to_string())];
        let leaf = prop_oneof![
            (ident(), space(), op.clone(), space(), spelled_literal())
                .prop_map(|(p, s1, o, s2, l)| format!("{p}{s1}{o}{s2}{l}")),
            (spelled_literal(), space(), op, space(), ident())
                .prop_map(|(l, s1, o, s2, p)| format!("{l}{s1}{o}{s2}{p}")),
            (ident(), prop::option::of(keyword("NOT")), keyword("LIKE"), string.clone())
                .prop_map(|(p, n, l, s)| format!("{p} {}{l} {s}", n.map(|n| n + " ").unwrap_or_default())),
            (ident(), keyword("IS"), prop::option::of(keyword("NOT")), keyword("NULL"))
                .prop_map(|(p, i, n, l)| format!("{p} {i} {}{l}", n.map(|n| n + " ").unwrap_or_default())),
            (ident(), keyword("ISA"), prop_oneof![ident(), string])
                .prop_map(|(p, i, c)| format!("{p} {i} {c}")),
        ];
        leaf.prop_recursive(6, 48, 2, |inner| {
            prop_oneof![
                (inner.clone(), keyword("AND"), inner.clone(), space())
                    .prop_map(|(l, k, r, s)| format!("{l}{s}{k}{s}{r}")),
                (inner.clone(), keyword("OR"), inner.clone(), space())
                    .prop_map(|(l, k, r, s)| format!("({l}){s}{k}{s}({r})")),
                (keyword("NOT"), inner.clone()).prop_map(|(k, e)| format!("{k} ({e})")),
                inner.prop_map(|e| format!("(({e}))")),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn query_round_trips(q in query()) {
            let text = q.to_string();
            prop_assert_eq!(parse(&text), Ok(q), "{}", text);
        }

        #[test]
        fn condition_round_trips(e in expr()) {
            let text = e.to_string();
            prop_assert_eq!(parse_condition(&text), Ok(e), "{}", text);
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,80}") {
            let _ = parse(&text);
            let _ = parse_condition(&text);
        }

        #[test]
        fn any_spelling_parses_and_reprints_stably(text in spelled_condition()) {
            let e = parse_condition(&text);
            prop_assert!(e.is_ok(), "{}: {:?}", text, e);
            let e = e.unwrap();
            prop_assert_eq!(parse_condition(&e.to_string()), Ok(e), "{}", text);
        }
    }
}
