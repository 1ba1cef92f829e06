//! WQL: the query language of WMI, parsed into an AST.
//!
//! The AST validates queries before any host is contacted, renders the WQL text sent to
//! servers, and evaluates WHERE filters client-side where a protocol cannot (the local provider).

mod display;
mod eval;
mod lexer;
mod like;
mod parser;

pub use like::LikePattern;
pub use parser::{MAX_CONDITIONS, MAX_DEPTH, MAX_LEN, parse, parse_condition};

/// A parsed `SELECT props FROM class [WHERE expr]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Selected properties in order; empty means `*`.
    pub properties: Vec<String>,
    pub class: String,
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
        pattern: String,
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
    pub message: String,
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
