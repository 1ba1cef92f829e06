//! Splits WQL text into tokens, each with its byte span for diagnostics.

use super::{CmpOp, ParseError};

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    /// A name or keyword; keywords are recognized by the parser, case-insensitively.
    Ident(String),
    Str(String),
    Int(i128),
    Real(f64),
    Op(CmpOp),
    LParen,
    RParen,
    Comma,
    Star,
    Eof,
}

/// A token and where it is in the text.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token {
    pub tok: Tok,
    pub offset: usize,
    pub len: usize,
}

impl Token {
    /// True when this token is the keyword `kw` (given in upper case).
    pub fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.tok, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }

    /// How an error message names this token.
    pub fn describe(&self) -> String {
        match &self.tok {
            Tok::Ident(s) if super::parser::is_reserved(s) => s.to_ascii_uppercase(),
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Str(_) => "a string".into(),
            Tok::Int(_) | Tok::Real(_) => "a number".into(),
            Tok::Op(op) => format!("`{}`", op.as_str()),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Star => "`*`".into(),
            Tok::Eof => "end of text".into(),
        }
    }
}

/// Lowest and highest integer WQL accepts: the range of sint64 and uint64 together.
const INT_MIN: i128 = i64::MIN as i128;
const INT_MAX: i128 = u64::MAX as i128;

/// Tokenizes the whole text; the last token is always [`Tok::Eof`].
pub(super) fn tokenize(text: &str) -> Result<Vec<Token>, ParseError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let start = i;
        let tok = match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'(' => single(&mut i, Tok::LParen),
            b')' => single(&mut i, Tok::RParen),
            b',' => single(&mut i, Tok::Comma),
            b'*' => single(&mut i, Tok::Star),
            b'=' => single(&mut i, Tok::Op(CmpOp::Eq)),
            b'<' | b'>' | b'!' => {
                let next = bytes.get(i + 1).copied();
                let (op, n) = match (b, next) {
                    (b'<', Some(b'=')) => (CmpOp::Le, 2),
                    (b'<', Some(b'>')) => (CmpOp::Ne, 2),
                    (b'<', _) => (CmpOp::Lt, 1),
                    (b'>', Some(b'=')) => (CmpOp::Ge, 2),
                    (b'>', _) => (CmpOp::Gt, 1),
                    (_, Some(b'=')) => (CmpOp::Ne, 2),
                    _ => return Err(ParseError::at(start, 1, "unexpected `!` (did you mean `!=`?)")),
                };
                i += n;
                Tok::Op(op)
            }
            b'\'' | b'"' => {
                let (s, end) = string(text, start)?;
                i = end;
                Tok::Str(s)
            }
            b'0'..=b'9' | b'-' | b'+' | b'.' => {
                let end = number_end(bytes, start);
                if end == start {
                    return Err(ParseError::at(start, 1, format!("unexpected `{}`", b as char)));
                }
                i = end;
                let slice = text.get(start..end).unwrap_or_default();
                match parse_number(slice) {
                    Ok(Number::Int(n)) => Tok::Int(n),
                    Ok(Number::Real(r)) => Tok::Real(r),
                    Err(msg) => return Err(ParseError::at(start, end - start, msg)),
                }
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                while bytes.get(i).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') {
                    i += 1;
                }
                Tok::Ident(text.get(start..i).unwrap_or_default().to_string())
            }
            _ => {
                let c = text.get(start..).and_then(|s| s.chars().next()).unwrap_or('?');
                return Err(ParseError::at(start, c.len_utf8(), format!("unexpected character `{c}`")));
            }
        };
        out.push(Token { tok, offset: start, len: i - start });
    }
    out.push(Token { tok: Tok::Eof, offset: text.len(), len: 0 });
    Ok(out)
}

fn single(i: &mut usize, tok: Tok) -> Tok {
    *i += 1;
    tok
}

/// Reads a quoted string starting at `start` (the quote); returns its value and the end offset.
/// WMI accepts `\\`, `\'` and `\"` inside either kind of quote, and nothing else after a backslash.
fn string(text: &str, start: usize) -> Result<(String, usize), ParseError> {
    let rest = text.get(start..).unwrap_or_default();
    let mut chars = rest.char_indices();
    let quote = chars.next().map(|(_, c)| c).unwrap_or('\'');
    let mut value = String::new();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e @ ('\\' | '\'' | '"'))) => value.push(e),
                Some((_, e)) => {
                    return Err(ParseError::at(
                        start + at,
                        1 + e.len_utf8(),
                        format!("invalid escape `\\{e}` in string (only \\\\, \\' and \\\" are allowed)"),
                    ));
                }
                None => break,
            },
            c if c == quote => return Ok((value, start + at + 1)),
            c => value.push(c),
        }
    }
    Err(ParseError::at(start, rest.len(), "unterminated string"))
}

/// End of the number-like run at `start`: sign (`-` or `+`), digits, letters (for hex and to catch `3abc`),
/// `.`, and a sign right after an exponent `e`.
fn number_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    if matches!(bytes.get(i), Some(b'-' | b'+')) {
        i += 1;
        if !bytes.get(i).is_some_and(|c| c.is_ascii_digit() || *c == b'.') {
            return start;
        }
    }
    let is_hex = bytes.get(i) == Some(&b'0') && matches!(bytes.get(i + 1), Some(b'x' | b'X'));
    while let Some(&c) = bytes.get(i) {
        let exp_sign =
            (c == b'+' || c == b'-') && !is_hex && i > start && matches!(bytes.get(i - 1), Some(b'e' | b'E'));
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || exp_sign {
            i += 1;
        } else {
            break;
        }
    }
    i
}

/// A numeric literal's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Number {
    Int(i128),
    Real(f64),
}

/// Parses a WQL number: decimal or `0x` hex integer (optionally signed), or a real with a
/// fraction and/or exponent. Also used to convert string values compared with numbers.
pub(super) fn parse_number(s: &str) -> Result<Number, &'static str> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let magnitude = if let Some(hex) = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        if hex.is_empty() || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err("invalid hexadecimal number");
        }
        u128::from_str_radix(hex, 16).ok()
    } else if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
        digits.parse::<u128>().ok()
    } else {
        let valid =
            digits.bytes().all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
                && digits.bytes().any(|c| c.is_ascii_digit());
        return match s.parse::<f64>() {
            Ok(r) if valid && r.is_finite() => Ok(Number::Real(r)),
            Ok(_) if valid => Err("number out of range"),
            _ => Err("invalid number"),
        };
    };
    let value = magnitude
        .and_then(|m| i128::try_from(m).ok())
        .map(|m| if neg { -m } else { m })
        .filter(|v| (INT_MIN..=INT_MAX).contains(v));
    value.map(Number::Int).ok_or("integer out of range (WQL integers are 64-bit)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        tokenize(text).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn operators_and_punctuation() {
        use CmpOp::*;
        assert_eq!(
            toks("= <> != < <= > >= ( ) , *"),
            vec![
                Tok::Op(Eq),
                Tok::Op(Ne),
                Tok::Op(Ne),
                Tok::Op(Lt),
                Tok::Op(Le),
                Tok::Op(Gt),
                Tok::Op(Ge),
                Tok::LParen,
                Tok::RParen,
                Tok::Comma,
                Tok::Star,
                Tok::Eof
            ]
        );
        assert_eq!(toks("a<=1"), vec![Tok::Ident("a".into()), Tok::Op(Le), Tok::Int(1), Tok::Eof]);
    }

    #[test]
    fn numbers() {
        assert_eq!(
            toks("42 -7 0x1F -0x10 1.5 -2.5e3 1e300 .5"),
            vec![
                Tok::Int(42),
                Tok::Int(-7),
                Tok::Int(31),
                Tok::Int(-16),
                Tok::Real(1.5),
                Tok::Real(-2500.0),
                Tok::Real(1e300),
                Tok::Real(0.5),
                Tok::Eof
            ]
        );
        assert_eq!(toks("+5 +0x10 +2.5"), vec![Tok::Int(5), Tok::Int(16), Tok::Real(2.5), Tok::Eof]);
        assert_eq!(toks("18446744073709551615"), vec![Tok::Int(u64::MAX as i128), Tok::Eof]);
        assert_eq!(toks("-9223372036854775808"), vec![Tok::Int(i64::MIN as i128), Tok::Eof]);
    }

    #[test]
    fn bad_numbers_are_errors_with_their_span() {
        for (text, msg) in [
            ("x = 18446744073709551616", "integer out of range (WQL integers are 64-bit)"),
            ("x = -9223372036854775809", "integer out of range (WQL integers are 64-bit)"),
            ("x = 0x", "invalid hexadecimal number"),
            ("x = 0xFG", "invalid hexadecimal number"),
            ("x = 3abc", "invalid number"),
            ("x = 1.2.3", "invalid number"),
            ("x = 1e999", "number out of range"),
            (
                "x = 99999999999999999999999999999999999999999",
                "integer out of range (WQL integers are 64-bit)",
            ),
        ] {
            let e = tokenize(text).unwrap_err();
            assert_eq!((e.offset, e.len, e.message.as_str()), (4, text.len() - 4, msg), "{text}");
        }
        for text in ["x = - 1", "x = + 1", "x = +-1"] {
            let e = tokenize(text).unwrap_err();
            assert_eq!((e.offset, e.len), (4, 1), "{text}");
        }
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            toks(r#"'a' "b" 'it\'s' "say \"hi\"" 'C:\\Windows' '"' "'""#),
            vec![
                Tok::Str("a".into()),
                Tok::Str("b".into()),
                Tok::Str("it's".into()),
                Tok::Str("say \"hi\"".into()),
                Tok::Str(r"C:\Windows".into()),
                Tok::Str("\"".into()),
                Tok::Str("'".into()),
                Tok::Eof
            ]
        );
        assert_eq!(toks("'héllo wörld'"), vec![Tok::Str("héllo wörld".into()), Tok::Eof]);
    }

    #[test]
    fn bad_strings() {
        let e = tokenize(r"x = 'C:\Windows'").unwrap_err();
        assert_eq!((e.offset, e.len), (7, 2));
        assert!(e.message.contains(r"invalid escape `\W`"), "{}", e.message);
        let e = tokenize("x = 'open").unwrap_err();
        assert_eq!((e.offset, e.len, e.message.as_str()), (4, 5, "unterminated string"));
        let e = tokenize(r"x = 'ends in backslash\").unwrap_err();
        assert_eq!(e.message, "unterminated string");
    }

    #[test]
    fn unexpected_characters() {
        let e = tokenize("a = 1 ; b").unwrap_err();
        assert_eq!((e.offset, e.len, e.message.as_str()), (6, 1, "unexpected character `;`"));
        let e = tokenize("a = é").unwrap_err();
        assert_eq!((e.offset, e.len), (4, 2));
        let e = tokenize("a ! 1").unwrap_err();
        assert_eq!((e.offset, e.len), (2, 1));
    }
}
