//! WQL: the query language of WMI, parsed into an AST.
//!
//! The AST validates queries before any host is contacted, renders the WQL text sent to
//! servers, and evaluates WHERE filters client-side where a protocol cannot (the local provider).
//!
//! - [`parse`] reads `SELECT * | prop[, prop…] FROM Class [WHERE condition]`, [`parse_condition`]
//!   a condition alone; errors carry the byte span of the offending token.
//! - `Display` on [`Query`] and [`Expr`] prints WQL that parses back to the same tree.
//! - [`Expr::matches`] evaluates a condition against an instance with WMI's conversions.

mod display;
mod eval;
mod lexer;
mod like;
mod parser;

pub use like::Pattern;
pub use parser::{MAX_CONDITIONS, MAX_DEPTH, MAX_LEN, parse, parse_condition};

/// A parsed `SELECT props FROM class [WHERE expr]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Selected properties in order; empty means `*`.
    pub properties: Vec<String>,
    /// The class queried (`FROM`).
    pub class: String,
    /// The `WHERE` condition, if any.
    pub filter: Option<Expr>,
}

/// A WHERE expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// `property op literal` (a literal on the left is normalized to the right, op flipped).
    Compare {
        property: String,
        op: CmpOp,
        value: Literal,
    },
    /// `property [NOT] LIKE 'pattern'` with WQL's `%`, `_`, `[abc]`, `[^a-z]`.
    Like {
        property: String,
        pattern: Pattern,
        negated: bool,
    },
    /// `property IS [NOT] NULL`.
    IsNull {
        property: String,
        negated: bool,
    },
    /// `property ISA 'Class'` (embedded object class test).
    Isa {
        property: String,
        class: String,
    },
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A literal in a WHERE clause.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    String(String),
    Integer(i128),
    Real(f64),
    Bool(bool),
    Null,
}

/// A syntax error with its byte position in the query text, for diagnostics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// Byte offset of the offending token in the text.
    pub offset: usize,
    /// Byte length of the offending token (at least 1 where there is one).
    pub len: usize,
    /// What was wrong: "expected FROM, found `FRM`", "… is not supported".
    pub message: String,
}

impl Expr {
    /// The property names the condition reads, each once (compared case-insensitively), in
    /// order of first use: what a schema check or a projection needs to know.
    pub fn properties(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        // A stack instead of recursion, so any tree depth is safe.
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            let name = match e {
                Expr::And(l, r) | Expr::Or(l, r) => {
                    stack.push(r);
                    stack.push(l);
                    continue;
                }
                Expr::Not(inner) => {
                    stack.push(inner);
                    continue;
                }
                Expr::Compare { property, .. }
                | Expr::Like { property, .. }
                | Expr::IsNull { property, .. }
                | Expr::Isa { property, .. } => property.as_str(),
            };
            if !out.iter().any(|p| p.eq_ignore_ascii_case(name)) {
                out.push(name);
            }
        }
        out
    }
}

impl CmpOp {
    /// The operator with its operands swapped: `3 < X` is `X > 3`.
    pub fn flipped(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
            op @ (CmpOp::Eq | CmpOp::Ne) => op,
        }
    }

    /// The operator as WQL writes it (`<>` for not-equal).
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_in_order_of_first_use() {
        let e = parse_condition("(b = 1 OR NOT A LIKE 'x') AND B IS NULL AND c ISA 'K' AND a <> 2").unwrap();
        assert_eq!(e.properties(), ["b", "A", "c"]);
    }

    #[test]
    fn flipped_operators() {
        use CmpOp::*;
        let pairs = [(Eq, Eq), (Ne, Ne), (Lt, Gt), (Le, Ge), (Gt, Lt), (Ge, Le)];
        for (op, flipped) in pairs {
            assert_eq!(op.flipped(), flipped);
            assert_eq!(op.flipped().flipped(), op);
        }
    }
}
