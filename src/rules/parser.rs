//! Lexer and parser of rule expressions into a spanned syntax tree.
//!
//! ```text
//! expr    := and ("or" and)*
//! and     := not ("and" not)*
//! not     := "not" not | cmp
//! cmp     := sum ( ("<"|"<="|">"|">="|"=="|"!=") sum
//!                | "between" sum "and" sum
//!                | ["not"] "in" (NAME | "[" literal ("," literal)* "]")
//!                | "is" ["not"] "missing" )?
//! sum     := prod (("+"|"-") prod)*
//! prod    := unary (("*"|"/") unary)*
//! unary   := "-" unary | primary
//! primary := NUMBER | STRING | "true" | "false" | NAME | NAME "(" expr ("," expr)* ")" | "(" expr ")"
//! ```

use super::program::Cmp;
use std::fmt;

/// Byte range of a node in the expression text.
pub type Span = (usize, usize);

/// A parse error at a byte offset of the expression.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    /// Byte offset in the expression.
    pub at: usize,
    /// What was found and what was expected.
    pub message: String,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `<`, `<=`, `>`, `>=`, `==` or `!=`
    Cmp(Cmp),
    /// `and`
    And,
    /// `or`
    Or,
}

impl fmt::Display for BinOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Cmp(cmp) => cmp.symbol(),
            BinOp::And => "and",
            BinOp::Or => "or",
        })
    }
}

/// A literal inside an inline list.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
}

/// The right-hand side of `in`.
#[derive(Debug, Clone, PartialEq)]
pub enum ListRef {
    /// A named list, `lists.NAME`.
    Named(String, Span),
    /// An inline list, `["a", "b"]`, each item with its span.
    Inline(Vec<(Literal, Span)>),
}

/// A syntax-tree node with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it is.
    pub span: Span,
}

/// Kinds of syntax-tree nodes.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// Number literal.
    Num(f64),
    /// String literal.
    Str(String),
    /// `true` / `false`.
    Bool(bool),
    /// A feature, event field or `model.score`.
    Name(String),
    /// Unary minus.
    Neg(Box<Expr>),
    /// `not`.
    Not(Box<Expr>),
    /// A binary operation.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `x between lo and hi` (inclusive).
    Between(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `x [not] in list`.
    In(Box<Expr>, ListRef, bool),
    /// `x is [not] missing`.
    IsMissing(Box<Expr>, bool),
    /// A function call.
    Call(String, Vec<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Name(String),
    Sym(&'static str),
    End,
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

const SYMBOLS: [&str; 14] = [
    "<=", ">=", "==", "!=", "<", ">", "+", "-", "*", "/", "(", ")", "[", "]",
];

impl Lexer<'_> {
    /// The next token and its start offset.
    fn next(&mut self) -> Result<(Tok, usize), ParseError> {
        let b = self.src.as_bytes();
        while self.pos < b.len() && b[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
        let start = self.pos;
        if start >= b.len() {
            return Ok((Tok::End, start));
        }
        let c = b[start];
        if c == b',' {
            self.pos += 1;
            return Ok((Tok::Sym(","), start));
        }
        if c.is_ascii_digit() || (c == b'.' && b.get(start + 1).is_some_and(u8::is_ascii_digit)) {
            let mut end = start;
            while end < b.len() && (b[end].is_ascii_digit() || b[end] == b'.' || b[end] == b'_') {
                end += 1;
            }
            if end < b.len() && (b[end] == b'e' || b[end] == b'E') {
                end += 1;
                if end < b.len() && (b[end] == b'+' || b[end] == b'-') {
                    end += 1;
                }
                while end < b.len() && b[end].is_ascii_digit() {
                    end += 1;
                }
            }
            let text: String = self.src[start..end].chars().filter(|&c| c != '_').collect();
            self.pos = end;
            return text
                .parse()
                .map(|n| (Tok::Num(n), start))
                .map_err(|_| ParseError {
                    at: start,
                    message: format!("invalid number '{}'", &self.src[start..end]),
                });
        }
        if c == b'"' || c == b'\'' {
            let quote = c;
            let mut end = start + 1;
            while end < b.len() && b[end] != quote {
                end += 1;
            }
            if end >= b.len() {
                return Err(ParseError {
                    at: start,
                    message: "unterminated string; expected a closing quote".into(),
                });
            }
            self.pos = end + 1;
            return Ok((Tok::Str(self.src[start + 1..end].to_string()), start));
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let mut end = start;
            while end < b.len()
                && (b[end].is_ascii_alphanumeric() || b[end] == b'_' || b[end] == b'.')
            {
                end += 1;
            }
            self.pos = end;
            return Ok((
                Tok::Name(self.src[start..end].trim_end_matches('.').to_string()),
                start,
            ));
        }
        for sym in SYMBOLS {
            if self.src[start..].starts_with(sym) {
                self.pos += sym.len();
                return Ok((Tok::Sym(sym), start));
            }
        }
        let ch = self.src[start..].chars().next().unwrap_or('?');
        Err(ParseError {
            at: start,
            message: format!("unexpected character '{ch}'"),
        })
    }
}

/// Parses an expression.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let mut p = Parser {
        lexer: Lexer { src, pos: 0 },
        tok: Tok::End,
        at: 0,
        depth: 0,
    };
    p.bump()?;
    let e = p.expr()?;
    if p.tok != Tok::End {
        return Err(p.unexpected("an operator, 'and', 'or' or the end of the expression"));
    }
    Ok(e)
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    tok: Tok,
    at: usize,
    depth: u32,
}

const MAX_DEPTH: u32 = 64;

impl Parser<'_> {
    fn bump(&mut self) -> Result<(), ParseError> {
        let (tok, at) = self.lexer.next()?;
        self.tok = tok;
        self.at = at;
        Ok(())
    }

    fn end(&self) -> usize {
        self.lexer.pos
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.tok, Tok::Name(n) if n == kw)
    }

    fn eat_kw(&mut self, kw: &str) -> Result<bool, ParseError> {
        if self.is_kw(kw) {
            self.bump()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn eat_sym(&mut self, sym: &'static str) -> Result<bool, ParseError> {
        if self.tok == Tok::Sym(sym) {
            self.bump()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn unexpected(&self, expected: &str) -> ParseError {
        let found = match &self.tok {
            Tok::Num(n) => format!("number {n}"),
            Tok::Str(s) => format!("string \"{s}\""),
            Tok::Name(n) => format!("'{n}'"),
            Tok::Sym(s) => format!("'{s}'"),
            Tok::End => "the end of the expression".to_string(),
        };
        ParseError {
            at: self.at,
            message: format!("expected {expected}, found {found}"),
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError {
                at: self.at,
                message: format!("expression nested deeper than {MAX_DEPTH} levels"),
            });
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let mut left = self.and()?;
        while self.eat_kw("or")? {
            let right = self.and()?;
            left = binary(BinOp::Or, left, right);
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.not()?;
        while self.eat_kw("and")? {
            let right = self.not()?;
            left = binary(BinOp::And, left, right);
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        let start = self.at;
        if self.eat_kw("not")? {
            self.enter()?;
            let inner = self.not()?;
            self.depth -= 1;
            let span = (start, inner.span.1);
            return Ok(Expr {
                kind: ExprKind::Not(Box::new(inner)),
                span,
            });
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Expr, ParseError> {
        let left = self.sum()?;
        let start = left.span.0;
        let op = match &self.tok {
            Tok::Sym("<") => Some(Cmp::Lt),
            Tok::Sym("<=") => Some(Cmp::Le),
            Tok::Sym(">") => Some(Cmp::Gt),
            Tok::Sym(">=") => Some(Cmp::Ge),
            Tok::Sym("==") => Some(Cmp::Eq),
            Tok::Sym("!=") => Some(Cmp::Ne),
            _ => None,
        };
        if let Some(op) = op {
            self.bump()?;
            let right = self.sum()?;
            return Ok(binary(BinOp::Cmp(op), left, right));
        }
        if self.eat_kw("between")? {
            let lo = self.sum()?;
            if !self.eat_kw("and")? {
                return Err(self.unexpected("'and' in 'x between low and high'"));
            }
            let hi = self.sum()?;
            let span = (start, hi.span.1);
            return Ok(Expr {
                kind: ExprKind::Between(Box::new(left), Box::new(lo), Box::new(hi)),
                span,
            });
        }
        let negated_in = if self.is_kw("not") {
            self.bump()?;
            if !self.is_kw("in") {
                return Err(self.unexpected("'in' after 'not' (as in 'x not in lists.name')"));
            }
            true
        } else {
            false
        };
        if self.eat_kw("in")? {
            let list = self.list_ref()?;
            let span = (start, self.end_of_prev());
            return Ok(Expr {
                kind: ExprKind::In(Box::new(left), list, negated_in),
                span,
            });
        }
        if self.eat_kw("is")? {
            let negated = self.eat_kw("not")?;
            if !self.eat_kw("missing")? {
                return Err(
                    self.unexpected("'missing' (as in 'x is missing' or 'x is not missing')")
                );
            }
            let span = (start, self.end_of_prev());
            return Ok(Expr {
                kind: ExprKind::IsMissing(Box::new(left), negated),
                span,
            });
        }
        Ok(left)
    }

    fn end_of_prev(&self) -> usize {
        if self.tok == Tok::End {
            self.end()
        } else {
            self.at
        }
    }

    fn list_ref(&mut self) -> Result<ListRef, ParseError> {
        match self.tok.clone() {
            Tok::Name(n) => {
                let at = self.at;
                self.bump()?;
                Ok(ListRef::Named(n, (at, self.end_of_prev())))
            }
            Tok::Sym("[") => {
                self.bump()?;
                let mut items = Vec::new();
                loop {
                    let start = self.at;
                    let item = match self.tok.clone() {
                        Tok::Num(n) => Literal::Num(n),
                        Tok::Str(s) => Literal::Str(s),
                        Tok::Sym("-") => {
                            self.bump()?;
                            match self.tok {
                                Tok::Num(n) => Literal::Num(-n),
                                _ => return Err(self.unexpected("a number after '-'")),
                            }
                        }
                        _ => return Err(self.unexpected("a number or string in the list")),
                    };
                    self.bump()?;
                    items.push((item, (start, self.end_of_prev())));
                    if self.eat_sym(",")? {
                        continue;
                    }
                    if self.eat_sym("]")? {
                        return Ok(ListRef::Inline(items));
                    }
                    return Err(self.unexpected("',' or ']'"));
                }
            }
            _ => Err(self.unexpected("a list name (lists.NAME) or an inline list [..]")),
        }
    }

    fn sum(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.prod()?;
        loop {
            let op = match self.tok {
                Tok::Sym("+") => BinOp::Add,
                Tok::Sym("-") => BinOp::Sub,
                _ => return Ok(left),
            };
            self.bump()?;
            let right = self.prod()?;
            left = binary(op, left, right);
        }
    }

    fn prod(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.tok {
                Tok::Sym("*") => BinOp::Mul,
                Tok::Sym("/") => BinOp::Div,
                _ => return Ok(left),
            };
            self.bump()?;
            let right = self.unary()?;
            left = binary(op, left, right);
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let start = self.at;
        if self.eat_sym("-")? {
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            let span = (start, inner.span.1);
            return Ok(Expr {
                kind: ExprKind::Neg(Box::new(inner)),
                span,
            });
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let start = self.at;
        let kind = match self.tok.clone() {
            Tok::Num(n) => ExprKind::Num(n),
            Tok::Str(s) => ExprKind::Str(s),
            Tok::Name(n) if n == "true" => ExprKind::Bool(true),
            Tok::Name(n) if n == "false" => ExprKind::Bool(false),
            Tok::Name(n) if KEYWORDS.contains(&n.as_str()) => {
                return Err(self.unexpected("a value (number, string, feature name or '(')"))
            }
            Tok::Name(n) => {
                self.bump()?;
                if self.eat_sym("(")? {
                    let mut args = vec![self.expr()?];
                    while self.eat_sym(",")? {
                        args.push(self.expr()?);
                    }
                    if !self.eat_sym(")")? {
                        return Err(self.unexpected("',' or ')' to close the call"));
                    }
                    return Ok(Expr {
                        kind: ExprKind::Call(n, args),
                        span: (start, self.end_of_prev()),
                    });
                }
                return Ok(Expr {
                    kind: ExprKind::Name(n),
                    span: (start, self.end_of_prev_name(start)),
                });
            }
            Tok::Sym("(") => {
                self.bump()?;
                let inner = self.expr()?;
                if !self.eat_sym(")")? {
                    return Err(self.unexpected("')'"));
                }
                return Ok(Expr {
                    kind: inner.kind,
                    span: (start, self.end_of_prev()),
                });
            }
            _ => return Err(self.unexpected("a value (number, string, feature name or '(')")),
        };
        self.bump()?;
        Ok(Expr {
            kind,
            span: (start, self.end_of_prev()),
        })
    }

    fn end_of_prev_name(&self, start: usize) -> usize {
        let src = self.lexer.src.as_bytes();
        let mut end = start;
        while end < src.len()
            && (src[end].is_ascii_alphanumeric() || src[end] == b'_' || src[end] == b'.')
        {
            end += 1;
        }
        end
    }
}

const KEYWORDS: [&str; 7] = ["and", "or", "not", "in", "between", "is", "missing"];

fn binary(op: BinOp, left: Expr, right: Expr) -> Expr {
    let span = (left.span.0, right.span.1);
    Expr {
        kind: ExprKind::Binary(op, Box::new(left), Box::new(right)),
        span,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Num(n) => format!("{n}"),
            ExprKind::Str(s) => format!("{s:?}"),
            ExprKind::Bool(b) => format!("{b}"),
            ExprKind::Name(n) => n.clone(),
            ExprKind::Neg(x) => format!("(-{})", shape(x)),
            ExprKind::Not(x) => format!("(not {})", shape(x)),
            ExprKind::Binary(op, a, b) => format!("({} {op} {})", shape(a), shape(b)),
            ExprKind::Between(x, a, b) => {
                format!("({} between {} {})", shape(x), shape(a), shape(b))
            }
            ExprKind::In(x, l, n) => {
                format!("({} {}in {l:?})", shape(x), if *n { "not " } else { "" })
            }
            ExprKind::IsMissing(x, n) => {
                format!("({} is {}missing)", shape(x), if *n { "not " } else { "" })
            }
            ExprKind::Call(f, args) => format!(
                "{f}({})",
                args.iter().map(shape).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    #[test]
    fn precedence_and_associativity() {
        let cases = [
            (
                "a + b * c > 3 and not d < 1 or e == 2",
                "((((a + (b * c)) > 3) and (not (d < 1))) or (e == 2))",
            ),
            ("a - b - c", "((a - b) - c)"),
            ("-a * 2", "((-a) * 2)"),
            ("x between 1 and 2 and y", "((x between 1 2) and y)"),
            (
                "account.tx_count_10m > 5 and amount > 3 * account.avg_amount_30d",
                "((account.tx_count_10m > 5) and (amount > (3 * account.avg_amount_30d)))",
            ),
            ("max(a, b + 1) >= 1_000.5", "(max(a, (b + 1)) >= 1000.5)"),
            ("(a or b) and c", "((a or b) and c)"),
            ("x is not missing", "(x is not missing)"),
        ];
        for (src, want) in cases {
            assert_eq!(shape(&parse(src).unwrap()), want, "{src}");
        }
        let e = parse("terminal.id not in lists.trusted").unwrap();
        assert!(
            matches!(e.kind, ExprKind::In(_, ListRef::Named(ref n, _), true) if n == "lists.trusted")
        );
        let e = parse("country in ['RU', \"NG\"]").unwrap();
        assert!(matches!(e.kind, ExprKind::In(_, ListRef::Inline(ref v), false) if v.len() == 2));
    }

    #[test]
    fn errors_say_where_and_what_was_expected() {
        let cases = [
            ("a >", 3, "expected a value"),
            ("a > 5 and", 9, "expected a value"),
            ("(a > 5", 6, "expected ')'"),
            ("a between 1 or 2", 12, "'and' in 'x between"),
            ("a in", 4, "a list name"),
            ("a is present", 5, "'missing'"),
            ("a $ b", 2, "unexpected character '$'"),
            ("'open", 0, "unterminated string"),
            ("a b", 2, "expected an operator"),
        ];
        for (src, at, msg) in cases {
            let e = parse(src).unwrap_err();
            assert_eq!(e.at, at, "{src}: {e:?}");
            assert!(e.message.contains(msg), "{src}: {}", e.message);
        }
        assert!(parse(&"(".repeat(500))
            .unwrap_err()
            .message
            .contains("nested deeper"));
    }
}
