//! Recursive-descent parser for WQL data queries, bounded against hostile input.
//!
//! Recursion happens only for parentheses and `NOT`, both counted against [`MAX_DEPTH`];
//! `AND`/`OR` chains are built in loops, and [`MAX_CONDITIONS`] bounds the tree they make so
//! that evaluating, printing or dropping it cannot exhaust the stack either.

use super::lexer::{Tok, Token, tokenize};
use super::{CmpOp, Expr, Literal, ParseError, Query};

/// Longest query text accepted, in bytes.
pub const MAX_LEN: usize = 32 * 1024;
/// Deepest nesting of parentheses and `NOT` accepted.
pub const MAX_DEPTH: usize = 64;
/// Most conditions (comparisons, LIKE, IS NULL, ISA) in one WHERE clause.
pub const MAX_CONDITIONS: usize = 1024;

/// Words WQL reserves: never a property or class name.
const RESERVED: &[&str] = &[
    "AND",
    "ASSOCIATORS",
    "BY",
    "FALSE",
    "FROM",
    "GROUP",
    "HAVING",
    "IS",
    "ISA",
    "KEYSONLY",
    "LIKE",
    "NOT",
    "NULL",
    "OF",
    "OR",
    "REFERENCES",
    "SELECT",
    "TRUE",
    "WHERE",
    "WITHIN",
];

/// True when `word` is a WQL reserved word (any case).
pub(super) fn is_reserved(word: &str) -> bool {
    RESERVED.iter().any(|k| k.eq_ignore_ascii_case(word))
}

/// Reserved words that start query forms this parser does not implement, with the message.
fn unsupported(word: &str) -> Option<&'static str> {
    Some(match word.to_ascii_uppercase().as_str() {
        "ASSOCIATORS" => "ASSOCIATORS OF queries are not supported",
        "REFERENCES" => "REFERENCES OF queries are not supported",
        "WITHIN" => "event queries (WITHIN) are not supported",
        "GROUP" | "BY" => "GROUP BY is not supported (it belongs to event queries)",
        "HAVING" => "HAVING is not supported (it belongs to event queries)",
        "KEYSONLY" => "KEYSONLY is not supported (it belongs to ASSOCIATORS OF queries)",
        _ => return None,
    })
}

/// Intrinsic and extrinsic event classes (`__InstanceCreationEvent`, `__TimerEvent`…) can only
/// be used in notification queries, which a one-shot inventory cannot run.
fn is_event_class(name: &str) -> bool {
    name.starts_with("__")
        && name.len() > 7
        && name.get(name.len() - 5..).is_some_and(|s| s.eq_ignore_ascii_case("Event"))
}

impl ParseError {
    /// An error at `offset`, `len` bytes long.
    pub fn at(offset: usize, len: usize, message: impl Into<String>) -> ParseError {
        ParseError { offset, len, message: message.into() }
    }

    /// The byte range of the offending text.
    pub fn span(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len
    }
}

/// Parses a WQL data query: `SELECT * | prop[, prop…] FROM Class [WHERE condition]`.
pub fn parse(text: &str) -> Result<Query, ParseError> {
    // `ASSOCIATORS OF {path}` would first fail on `{`; name the real problem instead.
    let start = text.len() - text.trim_start().len();
    let word_len = text.get(start..).unwrap_or_default().bytes().take_while(u8::is_ascii_alphabetic).count();
    let word = text.get(start..start + word_len).unwrap_or_default();
    if let Some(msg) = ["ASSOCIATORS", "REFERENCES"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(word))
        .then(|| unsupported(word))
        .flatten()
    {
        return Err(ParseError::at(start, word_len, msg));
    }
    let mut p = Parser::new(text)?;
    p.keyword("SELECT")?;
    let mut properties = Vec::new();
    if p.peek().tok == Tok::Star {
        p.bump();
    } else {
        loop {
            properties.push(p.name("a property name or `*`")?);
            if p.peek().tok != Tok::Comma {
                break;
            }
            p.bump();
        }
    }
    p.keyword("FROM")?;
    let class_tok = p.peek().clone();
    let class = p.name("a class name")?;
    if is_event_class(&class) {
        return Err(ParseError::at(
            class_tok.offset,
            class_tok.len,
            format!("event queries are not supported ({class} is an event class)"),
        ));
    }
    let filter = if p.peek().is_kw("WHERE") {
        p.bump();
        Some(p.condition()?)
    } else {
        None
    };
    p.end(if filter.is_some() { "AND, OR or end of query" } else { "WHERE or end of query" })?;
    Ok(Query { properties, class, filter })
}

/// Parses a WHERE condition alone (a job's `filter:`), e.g. `DriveType = 3 AND Size > 0`.
pub fn parse_condition(text: &str) -> Result<Expr, ParseError> {
    let mut p = Parser::new(text)?;
    let expr = p.condition()?;
    p.end("AND, OR or end of condition")?;
    Ok(expr)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
    conditions: usize,
}

impl Parser {
    fn new(text: &str) -> Result<Parser, ParseError> {
        if text.len() > MAX_LEN {
            // Point at a character boundary so diagnostics can slice the text there.
            let at = (0..=MAX_LEN).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            return Err(ParseError::at(at, text.len() - at, format!("query is longer than {MAX_LEN} bytes")));
        }
        Ok(Parser { tokens: tokenize(text)?, pos: 0, depth: 0, conditions: 0 })
    }

    fn peek(&self) -> &Token {
        // `tokenize` always ends with Eof and `bump` never moves past it.
        static EOF: Token = Token { tok: Tok::Eof, offset: 0, len: 0 };
        self.tokens.get(self.pos).unwrap_or(&EOF)
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::Eof {
            self.pos += 1;
        }
        t
    }

    /// The error for an unexpected token: a "not supported" message for reserved words of
    /// other query forms, else "expected …, found …".
    fn unexpected(&self, expected: &str) -> ParseError {
        let t = self.peek();
        if let Tok::Ident(word) = &t.tok
            && let Some(msg) = unsupported(word)
        {
            return ParseError::at(t.offset, t.len, msg);
        }
        ParseError::at(t.offset, t.len, format!("expected {expected}, found {}", t.describe()))
    }

    fn keyword(&mut self, kw: &str) -> Result<(), ParseError> {
        if self.peek().is_kw(kw) {
            self.bump();
            Ok(())
        } else {
            Err(self.unexpected(kw))
        }
    }

    /// An identifier that is not a reserved word.
    fn name(&mut self, expected: &str) -> Result<String, ParseError> {
        match &self.peek().tok {
            Tok::Ident(s) if !is_reserved(s) => {
                let s = s.clone();
                self.bump();
                Ok(s)
            }
            _ => Err(self.unexpected(expected)),
        }
    }

    fn end(&self, expected: &str) -> Result<(), ParseError> {
        if self.peek().tok == Tok::Eof { Ok(()) } else { Err(self.unexpected(expected)) }
    }

    /// `or := and (OR and)*`
    fn condition(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.conjunction()?;
        while self.peek().is_kw("OR") {
            self.bump();
            let right = self.conjunction()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// `and := unary (AND unary)*`
    fn conjunction(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        while self.peek().is_kw("AND") {
            self.bump();
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// `unary := NOT unary | ( or ) | predicate`
    fn unary(&mut self) -> Result<Expr, ParseError> {
        let t = self.peek().clone();
        let nested = t.is_kw("NOT") || t.tok == Tok::LParen;
        if !nested {
            return self.predicate();
        }
        if self.depth >= MAX_DEPTH {
            return Err(ParseError::at(t.offset, t.len, format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        self.depth += 1;
        self.bump();
        let expr = if t.tok == Tok::LParen {
            let inner = self.condition()?;
            if self.peek().tok != Tok::RParen {
                return Err(self.unexpected("`)`, AND or OR"));
            }
            self.bump();
            inner
        } else {
            Expr::Not(Box::new(self.unary()?))
        };
        self.depth -= 1;
        Ok(expr)
    }

    /// One condition: `prop op lit`, `lit op prop`, `prop [NOT] LIKE 'p'`, `prop IS [NOT] NULL`,
    /// `prop ISA 'Class'`.
    fn predicate(&mut self) -> Result<Expr, ParseError> {
        let first = self.peek().clone();
        if self.conditions >= MAX_CONDITIONS {
            return Err(ParseError::at(
                first.offset,
                first.len,
                format!("more than {MAX_CONDITIONS} conditions"),
            ));
        }
        self.conditions += 1;
        if let Some(value) = self.literal() {
            let op = self.operator("a comparison operator")?;
            let property = match &self.peek().tok {
                Tok::Ident(s) if !is_reserved(s) => self.name("a property name")?,
                Tok::Ident(_) | Tok::Str(_) | Tok::Int(_) | Tok::Real(_) => {
                    return Err(self.unexpected("a property name (WQL compares a property with a literal)"));
                }
                _ => return Err(self.unexpected("a property name")),
            };
            return Ok(Expr::Compare { property, op: op.flipped(), value });
        }
        let property = self.name("a condition")?;
        let t = self.peek().clone();
        if let Tok::Op(_) = t.tok {
            let op = self.operator("a comparison operator")?;
            let value = match self.literal() {
                Some(v) => v,
                None if matches!(&self.peek().tok, Tok::Ident(s) if !is_reserved(s)) => {
                    return Err(self.unexpected("a literal (WQL cannot compare two properties)"));
                }
                None => return Err(self.unexpected("a literal")),
            };
            return Ok(Expr::Compare { property, op, value });
        }
        if t.is_kw("LIKE") || t.is_kw("NOT") {
            self.bump();
            let negated = t.is_kw("NOT");
            if negated {
                self.keyword("LIKE")?;
            }
            let pattern = self.string("a quoted LIKE pattern")?;
            return Ok(Expr::Like { property, pattern: pattern.into(), negated });
        }
        if t.is_kw("IS") {
            self.bump();
            let negated = self.peek().is_kw("NOT");
            if negated {
                self.bump();
            }
            if !self.peek().is_kw("NULL") {
                return Err(self.unexpected(if negated { "NULL" } else { "NULL or NOT NULL" }));
            }
            self.bump();
            return Ok(Expr::IsNull { property, negated });
        }
        if t.is_kw("ISA") {
            self.bump();
            // Quoted as the docs write it; a bare class name is accepted too.
            let class = match &self.peek().tok {
                Tok::Ident(s) if !is_reserved(s) => self.name("a class name")?,
                _ => self.string("a quoted class name")?,
            };
            return Ok(Expr::Isa { property, class });
        }
        Err(self.unexpected("a comparison operator, LIKE, IS or ISA"))
    }

    /// Consumes a literal if one is next.
    fn literal(&mut self) -> Option<Literal> {
        let t = self.peek();
        let lit = match &t.tok {
            Tok::Str(s) => Literal::String(s.clone()),
            Tok::Int(n) => Literal::Integer(*n),
            Tok::Real(r) => Literal::Real(*r),
            _ if t.is_kw("TRUE") => Literal::Bool(true),
            _ if t.is_kw("FALSE") => Literal::Bool(false),
            _ if t.is_kw("NULL") => Literal::Null,
            _ => return None,
        };
        self.bump();
        Some(lit)
    }

    fn operator(&mut self, expected: &str) -> Result<CmpOp, ParseError> {
        match self.peek().tok {
            Tok::Op(op) => {
                self.bump();
                Ok(op)
            }
            _ => Err(self.unexpected(expected)),
        }
    }

    fn string(&mut self, expected: &str) -> Result<String, ParseError> {
        match &self.peek().tok {
            Tok::Str(s) => {
                let s = s.clone();
                self.bump();
                Ok(s)
            }
            _ => Err(self.unexpected(expected)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(property: &str, op: CmpOp, value: Literal) -> Expr {
        Expr::Compare { property: property.into(), op, value }
    }

    fn cond(text: &str) -> Expr {
        parse_condition(text).unwrap_or_else(|e| panic!("{text}: {e} at {}", e.offset))
    }

    /// The error's offset, length and message.
    fn err(result: Result<impl std::fmt::Debug, ParseError>) -> (usize, usize, String) {
        let e = result.unwrap_err();
        (e.offset, e.len, e.message)
    }

    /// Checks that each query fails to parse at (offset, len) with the message.
    fn expect_errors(cases: &[(&str, usize, usize, &str)]) {
        for (text, offset, len, msg) in cases {
            assert_eq!(err(parse(text)), (*offset, *len, msg.to_string()), "{text}");
        }
    }

    #[test]
    fn select_star_and_lists() {
        let q = parse("SELECT * FROM Win32_OperatingSystem").unwrap();
        assert_eq!(q, Query { properties: vec![], class: "Win32_OperatingSystem".into(), filter: None });
        let q = parse("select Name,State ,  __CLASS from Win32_Service").unwrap();
        assert_eq!(q.properties, ["Name", "State", "__CLASS"]);
        assert_eq!(q.class, "Win32_Service");
        let q = parse("\tSeLeCt Name FROM Win32_Service\nWHERE StartMode = 'Auto'\n").unwrap();
        assert_eq!(q.filter, Some(cmp("StartMode", CmpOp::Eq, Literal::String("Auto".into()))));
    }

    #[test]
    fn comparisons_and_flipping() {
        use CmpOp::*;
        for (text, op) in [("=", Eq), ("<>", Ne), ("!=", Ne), ("<", Lt), ("<=", Le), (">", Gt), (">=", Ge)] {
            assert_eq!(cond(&format!("Size {text} 10")), cmp("Size", op, Literal::Integer(10)));
            assert_eq!(cond(&format!("10 {text} Size")), cmp("Size", op.flipped(), Literal::Integer(10)));
        }
        assert_eq!(cond("3 < DriveType"), cmp("DriveType", Gt, Literal::Integer(3)));
        assert_eq!(cond("'x' = Name"), cmp("Name", Eq, Literal::String("x".into())));
        assert_eq!(cond("NULL = Name"), cmp("Name", Eq, Literal::Null));
    }

    #[test]
    fn literals() {
        let lit = |text: &str| match cond(&format!("P = {text}")) {
            Expr::Compare { value, .. } => value,
            other => panic!("{other:?}"),
        };
        assert_eq!(lit("'a\\'b'"), Literal::String("a'b".into()));
        assert_eq!(lit("\"C:\\\\x\""), Literal::String("C:\\x".into()));
        assert_eq!(lit("-12"), Literal::Integer(-12));
        assert_eq!(lit("0xFF"), Literal::Integer(255));
        assert_eq!(lit("2.5"), Literal::Real(2.5));
        assert_eq!(lit("-1e-3"), Literal::Real(-0.001));
        assert_eq!(lit("true"), Literal::Bool(true));
        assert_eq!(lit("FALSE"), Literal::Bool(false));
        assert_eq!(lit("Null"), Literal::Null);
    }

    #[test]
    fn like_is_null_isa() {
        assert_eq!(
            cond("Name LIKE 'Win%'"),
            Expr::Like { property: "Name".into(), pattern: "Win%".into(), negated: false }
        );
        assert_eq!(
            cond("Name not like \"[a-c]_\""),
            Expr::Like { property: "Name".into(), pattern: "[a-c]_".into(), negated: true }
        );
        assert_eq!(
            cond("VolumeName IS NULL"),
            Expr::IsNull { property: "VolumeName".into(), negated: false }
        );
        assert_eq!(
            cond("VolumeName is not null"),
            Expr::IsNull { property: "VolumeName".into(), negated: true }
        );
        let isa = Expr::Isa { property: "TargetInstance".into(), class: "Win32_Process".into() };
        assert_eq!(cond("TargetInstance ISA 'Win32_Process'"), isa);
        assert_eq!(cond("TargetInstance isa Win32_Process"), isa);
    }

    #[test]
    fn precedence_not_over_and_over_or() {
        let a = || cmp("A", CmpOp::Eq, Literal::Integer(1));
        let b = || cmp("B", CmpOp::Eq, Literal::Integer(2));
        let c = || cmp("C", CmpOp::Eq, Literal::Integer(3));
        let bx = |e: Expr| Box::new(e);
        assert_eq!(cond("A = 1 OR B = 2 AND C = 3"), Expr::Or(bx(a()), bx(Expr::And(bx(b()), bx(c())))));
        assert_eq!(cond("A = 1 AND B = 2 OR C = 3"), Expr::Or(bx(Expr::And(bx(a()), bx(b()))), bx(c())));
        assert_eq!(cond("NOT A = 1 AND B = 2"), Expr::And(bx(Expr::Not(bx(a()))), bx(b())));
        assert_eq!(cond("NOT (A = 1 AND B = 2)"), Expr::Not(bx(Expr::And(bx(a()), bx(b())))));
        assert_eq!(cond("(A = 1 OR B = 2) AND C = 3"), Expr::And(bx(Expr::Or(bx(a()), bx(b()))), bx(c())));
        assert_eq!(cond("A = 1 AND B = 2 AND C = 3"), Expr::And(bx(Expr::And(bx(a()), bx(b()))), bx(c())));
        assert_eq!(cond("NOT NOT A = 1"), Expr::Not(bx(Expr::Not(bx(a())))));
        assert_eq!(cond("((A = 1))"), a());
    }

    #[test]
    fn error_positions_and_messages() {
        let cases: &[(&str, usize, usize, &str)] = &[
            ("SELECT * FRM Win32_Service", 9, 3, "expected FROM, found `FRM`"),
            ("SELECT * FROM", 13, 0, "expected a class name, found end of text"),
            ("SELECT FROM X", 7, 4, "expected a property name or `*`, found FROM"),
            ("SELECT Name, FROM X", 13, 4, "expected a property name or `*`, found FROM"),
            ("SELECT Name Caption FROM X", 12, 7, "expected FROM, found `Caption`"),
            ("SELECT * FROM X Y", 16, 1, "expected WHERE or end of query, found `Y`"),
            ("SELECT * FROM X WHERE", 21, 0, "expected a condition, found end of text"),
            ("SELECT * FROM X WHERE A = 1 B", 28, 1, "expected AND, OR or end of query, found `B`"),
            (
                "SELECT * FROM X WHERE A = B",
                26,
                1,
                "expected a literal (WQL cannot compare two properties), found `B`",
            ),
            ("SELECT * FROM X WHERE A =", 25, 0, "expected a literal, found end of text"),
            (
                "SELECT * FROM X WHERE 1 = 2",
                26,
                1,
                "expected a property name (WQL compares a property with a literal), found a number",
            ),
            ("SELECT * FROM X WHERE A LIKE 5", 29, 1, "expected a quoted LIKE pattern, found a number"),
            ("SELECT * FROM X WHERE A NOT = 5", 28, 1, "expected LIKE, found `=`"),
            ("SELECT * FROM X WHERE A IS 5", 27, 1, "expected NULL or NOT NULL, found a number"),
            ("SELECT * FROM X WHERE A IS NOT TRUE", 31, 4, "expected NULL, found TRUE"),
            ("SELECT * FROM X WHERE A ISA 5", 28, 1, "expected a quoted class name, found a number"),
            ("SELECT * FROM X WHERE (A = 1", 28, 0, "expected `)`, AND or OR, found end of text"),
            ("SELECT * FROM X WHERE A = 1)", 27, 1, "expected AND, OR or end of query, found `)`"),
            (
                "SELECT * FROM X WHERE A",
                23,
                0,
                "expected a comparison operator, LIKE, IS or ISA, found end of text",
            ),
            ("SELECT * FROM X WHERE 'a' LIKE A", 26, 4, "expected a comparison operator, found LIKE"),
            ("SELECT * FROM X WHERE AND = 1", 22, 3, "expected a condition, found AND"),
            ("DELETE FROM X", 0, 6, "expected SELECT, found `DELETE`"),
            ("", 0, 0, "expected SELECT, found end of text"),
        ];
        expect_errors(cases);
        assert_eq!(
            err(parse_condition("A = 1 B")),
            (6, 1, "expected AND, OR or end of condition, found `B`".into())
        );
        // A lexer error keeps its own position.
        assert_eq!(err(parse("SELECT * FROM X WHERE A = 'x")), (26, 2, "unterminated string".into()));
    }

    #[test]
    fn other_query_forms_are_not_supported() {
        let cases: &[(&str, usize, usize, &str)] = &[
            ("ASSOCIATORS OF {Win32_Service.Name='x'}", 0, 11, "ASSOCIATORS OF queries are not supported"),
            ("references of {Win32_Service.Name='x'}", 0, 10, "REFERENCES OF queries are not supported"),
            (
                "SELECT * FROM __InstanceCreationEvent WITHIN 5",
                14,
                23,
                "event queries are not supported (__InstanceCreationEvent is an event class)",
            ),
            (
                "SELECT * FROM __instancemodificationevent",
                14,
                27,
                "event queries are not supported (__instancemodificationevent is an event class)",
            ),
            ("SELECT * FROM Win32_Process WITHIN 5", 28, 6, "event queries (WITHIN) are not supported"),
            (
                "SELECT * FROM X WHERE A = 1 GROUP BY B",
                28,
                5,
                "GROUP BY is not supported (it belongs to event queries)",
            ),
            (
                "SELECT * FROM X WHERE A = 1 HAVING B > 1",
                28,
                6,
                "HAVING is not supported (it belongs to event queries)",
            ),
        ];
        expect_errors(cases);
        // Classes about events, not events themselves, are ordinary data.
        assert_eq!(parse("SELECT * FROM __EventFilter").unwrap().class, "__EventFilter");
        assert_eq!(parse("SELECT * FROM __Event_").unwrap().class, "__Event_");
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!("{}A = 1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(cond(&ok), cmp("A", CmpOp::Eq, Literal::Integer(1)));
        let deep = format!("{}A = 1{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
        assert_eq!(
            err(parse_condition(&deep)),
            (MAX_DEPTH, 1, format!("nesting deeper than {MAX_DEPTH} levels"))
        );
        let nots = format!("{}A = 1", "NOT ".repeat(MAX_DEPTH + 1));
        assert_eq!(err(parse_condition(&nots)).0, MAX_DEPTH * 4);
        // Far past the limit: still an error, not a stack overflow.
        let hostile = "(".repeat(MAX_LEN);
        assert_eq!(err(parse_condition(&hostile)).0, MAX_DEPTH);
    }

    #[test]
    fn length_and_condition_count_are_bounded() {
        let long = format!("A = '{}'", "x".repeat(MAX_LEN));
        assert_eq!(
            err(parse_condition(&long)),
            (MAX_LEN, long.len() - MAX_LEN, format!("query is longer than {MAX_LEN} bytes"))
        );
        let wide = format!("A = '{}'", "é".repeat(MAX_LEN / 2));
        let (offset, len, _) = err(parse_condition(&wide));
        assert!(wide.is_char_boundary(offset) && offset + len == wide.len());
        assert_eq!(offset, MAX_LEN - 1);
        let many = vec!["A=1"; MAX_CONDITIONS + 1].join(" OR ");
        let (offset, _, msg) = err(parse_condition(&many));
        assert_eq!((offset, msg.as_str()), (MAX_CONDITIONS * 7, "more than 1024 conditions"));
        // The largest allowed tree can be evaluated, printed, compared, cloned and dropped on a
        // test thread's default stack.
        let most = vec!["A=1"; MAX_CONDITIONS].join(" OR ");
        let e = cond(&most);
        assert!(!e.matches(&crate::cim::Instance::new("X")));
        assert_eq!(parse_condition(&e.to_string()).unwrap(), e.clone());
        drop(e);
    }

    #[test]
    fn never_panics_on_arbitrary_prefixes() {
        // Every prefix and suffix of a query exercising every construct: errors, never panics.
        let text = concat!(
            "SELECT a, b FROM C WHERE NOT (x <> 'é\\'') AND y LIKE \"[^a]%\" ",
            "OR z IS NOT NULL OR 0x1F >= w AND v ISA 'K' OR r = -2.5e3"
        );
        assert!(parse(text).is_ok());
        for (i, _) in text.char_indices() {
            let _ = parse(&text[..i]);
            let _ = parse(&text[i..]);
            let _ = parse_condition(&text[i..]);
        }
    }
}
