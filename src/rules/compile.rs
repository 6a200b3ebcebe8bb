//! Name resolution, type checking and code generation for rule expressions.

use super::parser::{parse, BinOp, Expr, ExprKind, ListRef, Literal, Span};
use super::program::{Cmp, Op, Program, Screen, MAX_STACK};
pub use super::text::STRING_FIELDS;
use super::text::{is_code, never_holds, normalise, CompiledList};
use crate::features::FeatureSet;
use std::collections::HashMap;

/// Numeric names beyond the feature set, appended after the features.
/// `original_amount` is the amount as sent, in the event's `currency` (the
/// feature `amount` is converted into the base currency).
pub const EXTRA_NUMBERS: [&str; 3] = ["model.score", "model.challenger_score", "original_amount"];

/// A compile error at a byte offset of the expression.
#[derive(Debug, Clone, PartialEq)]
pub struct CompileError {
    /// Byte offset in the expression.
    pub at: usize,
    /// What is wrong, what was expected, and a suggestion when there is one.
    pub message: String,
}

/// Every name an expression may use, resolved to slots.
pub struct Scope {
    numbers: HashMap<String, u16>,
    lists: HashMap<String, u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Num,
    Bool,
    StrField(u8),
    StrLit,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Num => "a number",
            Ty::Bool => "a condition",
            Ty::StrField(_) | Ty::StrLit => "text",
        }
    }

    fn is_text(self) -> bool {
        matches!(self, Ty::StrField(_) | Ty::StrLit)
    }
}

impl Scope {
    /// Names of `set` (slots 0..n), then `model.score` and friends, plus `lists`.
    pub fn new(set: &FeatureSet, list_names: &[String]) -> Self {
        let mut numbers: HashMap<String, u16> = set
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u16))
            .collect();
        for (i, n) in EXTRA_NUMBERS.iter().enumerate() {
            numbers.insert(n.to_string(), (set.len() + i) as u16);
        }
        let lists = list_names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u16))
            .collect();
        Self { numbers, lists }
    }

    /// Number of numeric slots (features plus extras).
    pub fn numeric_slots(&self) -> usize {
        self.numbers.len()
    }

    /// Slot of numeric name `name`.
    pub fn number(&self, name: &str) -> Option<u16> {
        self.numbers.get(name).copied()
    }

    /// Slot of string field `name`.
    pub fn string_field(name: &str) -> Option<u8> {
        STRING_FIELDS
            .iter()
            .position(|f| *f == name)
            .map(|i| i as u8)
    }

    fn suggest(&self, name: &str) -> String {
        let candidates = self
            .numbers
            .keys()
            .map(String::as_str)
            .chain(STRING_FIELDS)
            .chain(self.lists.keys().map(|l| l.as_str()));
        let best = candidates
            .map(|c| (strsim::levenshtein(name, c), c))
            .min_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)));
        match best {
            Some((d, c)) if d <= (name.len() / 3).max(2) => format!("; did you mean '{c}'?"),
            _ => String::new(),
        }
    }
}

/// Compiles `src` into a program yielding a condition. Named lists resolve to
/// indices in `lists`; inline lists (`x in ["a", "b"]`) are appended to it.
pub fn compile(
    src: &str,
    scope: &Scope,
    lists: &mut Vec<CompiledList>,
) -> Result<Program, CompileError> {
    let expr = parse(src).map_err(|e| CompileError {
        at: e.at,
        message: e.message,
    })?;
    let (ops, texts, inline, ty) = {
        let mut c = Compiler {
            scope,
            lists: lists.as_slice(),
            ops: Vec::new(),
            texts: Vec::new(),
            inline: Vec::new(),
        };
        let ty = c.emit(&expr)?;
        (c.ops, c.texts, c.inline, ty)
    };
    if ty != Ty::Bool {
        return Err(CompileError {
            at: expr.span.0,
            message: format!("a rule condition must be true or false, but this is {}; add a comparison such as '> 0'", ty.name()),
        });
    }
    let program = Program {
        ops,
        screen: screen_of(&expr, scope),
        texts,
    };
    if program.max_depth() > MAX_STACK {
        return Err(CompileError {
            at: 0,
            message: format!("expression too complex (needs a stack deeper than {MAX_STACK})"),
        });
    }
    lists.extend(inline);
    Ok(program)
}

/// The screen of the first top-level conjunct of `e` that bounds a numeric
/// slot, or the `max`/`min` of two, by constants (`x > 5`, `5 < x`,
/// `x between 1 and 9`, `max(x, y) > 5`); open if none does.
/// Three-valued `and` is false when any conjunct is false, whatever its place.
fn screen_of(e: &Expr, scope: &Scope) -> Screen {
    let slots = |e: &Expr| match &e.kind {
        ExprKind::Name(n) => scope.number(n).map(|s| [s, s]),
        ExprKind::Call(f, args) if (f == "max" || f == "min") && args.len() == 2 => {
            match (&args[0].kind, &args[1].kind) {
                (ExprKind::Name(a), ExprKind::Name(b)) => {
                    Some([scope.number(a)?, scope.number(b)?])
                }
                _ => None,
            }
        }
        _ => None,
    };
    let constant = |e: &Expr| match &e.kind {
        ExprKind::Num(n) => Some(*n),
        ExprKind::Neg(x) => match x.kind {
            ExprKind::Num(n) => Some(-n),
            _ => None,
        },
        _ => None,
    };
    let screen = match &e.kind {
        ExprKind::Binary(BinOp::And, a, b) => {
            let first = screen_of(a, scope);
            return if first == Screen::OPEN {
                screen_of(b, scope)
            } else {
                first
            };
        }
        ExprKind::Binary(BinOp::Cmp(cmp), a, b) => {
            match (slots(a), constant(b), constant(a), slots(b)) {
                (Some(s), Some(c), _, _) => Some(Screen::of_comparison(s, *cmp, c)),
                (_, _, Some(c), Some(s)) => Some(Screen::of_comparison(s, cmp.mirrored(), c)),
                _ => None,
            }
        }
        ExprKind::Between(x, lo, hi) => match (slots(x), constant(lo), constant(hi)) {
            (Some(slots), Some(lo), Some(hi)) if !lo.is_nan() && !hi.is_nan() => {
                Some(Screen::between(slots, lo, hi))
            }
            _ => None,
        },
        _ => None,
    };
    screen.unwrap_or(Screen::OPEN)
}

struct Compiler<'a> {
    scope: &'a Scope,
    lists: &'a [CompiledList],
    ops: Vec<Op>,
    /// Text constants of `StrEq`.
    texts: Vec<Box<str>>,
    /// Lists this expression adds: inline ones, and code copies of named ones.
    inline: Vec<CompiledList>,
}

fn err(span: Span, message: String) -> CompileError {
    CompileError {
        at: span.0,
        message,
    }
}

impl Compiler<'_> {
    fn expect(&mut self, e: &Expr, want: Ty, what: &str) -> Result<(), CompileError> {
        let got = self.emit(e)?;
        if got == want {
            Ok(())
        } else {
            Err(err(
                e.span,
                format!("{what} needs {}, but this is {}", want.name(), got.name()),
            ))
        }
    }

    fn emit(&mut self, e: &Expr) -> Result<Ty, CompileError> {
        match &e.kind {
            ExprKind::Num(n) => {
                self.ops.push(Op::Const(*n));
                Ok(Ty::Num)
            }
            ExprKind::Bool(b) => {
                self.ops.push(Op::Const(if *b { 1.0 } else { 0.0 }));
                Ok(Ty::Bool)
            }
            ExprKind::Str(_) => Ok(Ty::StrLit),
            ExprKind::Name(n) => {
                if let Some(slot) = self.scope.number(n) {
                    self.ops.push(Op::Load(slot));
                    Ok(Ty::Num)
                } else if let Some(f) = Scope::string_field(n) {
                    Ok(Ty::StrField(f))
                } else if n.starts_with("lists.") {
                    Err(err(
                        e.span,
                        format!("list '{n}' can only be used after 'in' or 'not in'"),
                    ))
                } else {
                    Err(err(
                        e.span,
                        format!("unknown feature '{n}'{}", self.scope.suggest(n)),
                    ))
                }
            }
            ExprKind::Neg(x) => {
                self.expect(x, Ty::Num, "'-'")?;
                self.ops.push(Op::Neg);
                Ok(Ty::Num)
            }
            ExprKind::Not(x) => {
                self.expect(x, Ty::Bool, "'not'")?;
                self.ops.push(Op::Not);
                Ok(Ty::Bool)
            }
            ExprKind::Binary(op, a, b) => self.binary(*op, a, b, e.span),
            ExprKind::Between(x, lo, hi) => {
                self.expect(x, Ty::Num, "'between'")?;
                self.expect(lo, Ty::Num, "'between'")?;
                self.expect(hi, Ty::Num, "'between'")?;
                self.ops.push(Op::Between);
                Ok(Ty::Bool)
            }
            ExprKind::IsMissing(x, negate) => {
                match self.emit(x)? {
                    Ty::Num => self.ops.push(Op::IsMissing(*negate)),
                    Ty::StrField(field) => self.ops.push(Op::StrIsMissing {
                        field,
                        negate: *negate,
                    }),
                    other => {
                        return Err(err(
                            x.span,
                            format!(
                                "'is missing' needs a feature or field, but this is {}",
                                other.name()
                            ),
                        ))
                    }
                }
                Ok(Ty::Bool)
            }
            ExprKind::In(x, list, negate) => self.membership(x, list, *negate),
            ExprKind::Call(name, args) => self.call(name, args, e.span),
        }
    }

    fn binary(&mut self, op: BinOp, a: &Expr, b: &Expr, span: Span) -> Result<Ty, CompileError> {
        match op {
            BinOp::And | BinOp::Or => self.logic(op, a, b, span),
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div => self.arithmetic(op, a, b),
            BinOp::Cmp(cmp) => self.comparison(cmp, a, b, span),
        }
    }

    /// `a and b`, `a or b`, short-circuited: a false left side decides `and`,
    /// a true one `or`.
    fn logic(&mut self, op: BinOp, a: &Expr, b: &Expr, span: Span) -> Result<Ty, CompileError> {
        self.expect(a, Ty::Bool, &format!("'{op}'"))?;
        let skip_at = self.ops.len();
        self.ops.push(Op::Const(0.0));
        self.expect(b, Ty::Bool, &format!("'{op}'"))?;
        self.ops
            .push(if op == BinOp::And { Op::And } else { Op::Or });
        let n = u16::try_from(self.ops.len() - skip_at - 1)
            .map_err(|_| err(span, "expression too long".into()))?;
        self.ops[skip_at] = if op == BinOp::And {
            Op::SkipIfFalse(n)
        } else {
            Op::SkipIfTrue(n)
        };
        Ok(Ty::Bool)
    }

    /// `a + b`, `a - b`, `a * b`, `a / b`, with a constant side folded into
    /// the instruction.
    fn arithmetic(&mut self, op: BinOp, a: &Expr, b: &Expr) -> Result<Ty, CompileError> {
        let mark = self.ops.len();
        self.expect(a, Ty::Num, &format!("'{op}'"))?;
        // `c + x` and `c * x` are `x + c` and `x * c` (exactly, in floating point too).
        let left_constant = match self.ops[mark..] {
            [Op::Const(c)] if matches!(op, BinOp::Add | BinOp::Mul) => Some(c),
            _ => None,
        };
        if left_constant.is_some() {
            self.ops.truncate(mark);
        }
        self.expect(b, Ty::Num, &format!("'{op}'"))?;
        let right_constant = match self.ops.last() {
            Some(&Op::Const(c)) if left_constant.is_none() => Some(c),
            _ => None,
        };
        if right_constant.is_some() {
            self.ops.pop();
        }
        self.ops.push(match (op, left_constant.or(right_constant)) {
            (BinOp::Add, Some(c)) => Op::AddConst(c),
            (BinOp::Sub, Some(c)) => Op::SubConst(c),
            (BinOp::Mul, Some(c)) => Op::MulConst(c),
            (BinOp::Div, Some(c)) => Op::DivConst(c),
            (BinOp::Add, None) => Op::Add,
            (BinOp::Sub, None) => Op::Sub,
            (BinOp::Mul, None) => Op::Mul,
            _ => Op::Div,
        });
        Ok(Ty::Num)
    }

    /// `a <cmp> b` over numbers, or `==`/`!=` over text.
    fn comparison(&mut self, cmp: Cmp, a: &Expr, b: &Expr, span: Span) -> Result<Ty, CompileError> {
        let mark = self.ops.len();
        let ta = self.emit(a)?;
        let tb = self.emit(b)?;
        if ta.is_text() || tb.is_text() {
            self.ops.truncate(mark);
            let ins = self.text_comparison(cmp, (a, ta), (b, tb), span)?;
            self.ops.push(ins);
            return Ok(Ty::Bool);
        }
        if ta != Ty::Num || tb != Ty::Num {
            let bad = if ta != Ty::Num { a } else { b };
            return Err(err(
                bad.span,
                format!(
                    "'{}' compares numbers, but this is {}",
                    cmp.symbol(),
                    if ta != Ty::Num { ta.name() } else { tb.name() }
                ),
            ));
        }
        // `feature <cmp> constant`: one instruction instead of three.
        let n = self.ops.len();
        if let [.., Op::Load(slot), Op::Const(c)] = self.ops[..] {
            if matches!(a.kind, ExprKind::Name(_)) && matches!(b.kind, ExprKind::Num(_)) {
                self.ops.truncate(n - 2);
                self.ops.push(Op::CmpConst { slot, cmp, c });
                return Ok(Ty::Bool);
            }
        }
        self.ops.push(Op::Cmp(cmp));
        Ok(Ty::Bool)
    }

    /// The instruction of `a == b` or `a != b` where either side is text.
    fn text_comparison(
        &mut self,
        cmp: Cmp,
        (a, ta): (&Expr, Ty),
        (b, tb): (&Expr, Ty),
        span: Span,
    ) -> Result<Op, CompileError> {
        let negate = match cmp {
            Cmp::Eq => false,
            Cmp::Ne => true,
            _ => {
                return Err(err(
                    span,
                    format!(
                        "text can only be compared with '==' or '!=', not '{}'",
                        cmp.symbol()
                    ),
                ))
            }
        };
        match (ta, tb) {
            (Ty::StrField(field), Ty::StrLit) => self.text_constant(field, b, negate),
            (Ty::StrLit, Ty::StrField(field)) => self.text_constant(field, a, negate),
            (Ty::StrField(x), Ty::StrField(y)) => Ok(Op::StrFieldEq { a: x, b: y, negate }),
            (Ty::StrLit, Ty::StrLit) => Err(err(
                span,
                "comparing two constant texts is always the same; compare a field".into(),
            )),
            _ => Err(err(
                span,
                format!(
                    "cannot compare text with {}",
                    if ta.is_text() { tb.name() } else { ta.name() }
                ),
            )),
        }
    }

    /// `field == 'text'`: the text as the field holds it, unless it never can.
    fn text_constant(&mut self, field: u8, lit: &Expr, negate: bool) -> Result<Op, CompileError> {
        let ExprKind::Str(raw) = &lit.kind else {
            return Err(err(lit.span, "expected a text constant".into()));
        };
        let text = normalise(field, raw);
        if let Some(why) = never_holds(field, &text) {
            return Err(err(lit.span, format!("'{raw}' can never match: {why}")));
        }
        let index = u16::try_from(self.texts.len())
            .map_err(|_| err(lit.span, "too many text constants".into()))?;
        self.texts.push(text.into_boxed_str());
        Ok(Op::StrEq {
            field,
            text: index,
            negate,
        })
    }

    fn membership(&mut self, x: &Expr, list: &ListRef, negate: bool) -> Result<Ty, CompileError> {
        let ty = self.emit(x)?;
        let field = match ty {
            Ty::StrField(f) => Some(f),
            Ty::Num => None,
            other => {
                return Err(err(
                    x.span,
                    format!(
                        "'in' needs a feature or field on its left, but this is {}",
                        other.name()
                    ),
                ))
            }
        };
        let index = match list {
            ListRef::Named(name, span) => self.named_list(name, *span, field)?,
            ListRef::Inline(items) => self.inline_list(items, field)?,
        };
        self.ops.push(match field {
            Some(field) => Op::StrIn {
                field,
                list: index,
                negate,
            },
            None => Op::NumIn {
                list: index,
                negate,
            },
        });
        Ok(Ty::Bool)
    }

    /// The index of list `lists.NAME` as `field` (a number when `None`) reads
    /// it: a code field reads an upper-cased copy, made once.
    fn named_list(
        &mut self,
        name: &str,
        span: Span,
        field: Option<u8>,
    ) -> Result<u16, CompileError> {
        let short = name.strip_prefix("lists.").unwrap_or(name);
        let Some(&i) = self.scope.lists.get(short) else {
            return Err(err(
                span,
                format!("unknown list '{name}'{}", self.list_hint(name)),
            ));
        };
        if !field.is_some_and(is_code) {
            return Ok(i);
        }
        let mut existing = self.lists.iter().chain(&self.inline);
        if let Some(copy) = existing.position(|l| l.code_copy_of == Some(i)) {
            return Ok(copy as u16);
        }
        let copy = (self.lists.len() + self.inline.len()) as u16;
        let named = self.lists.get(usize::from(i)).cloned().unwrap_or_default();
        self.inline.push(named.code_copy(i));
        Ok(copy)
    }

    /// "; did you mean ..." or the known lists, for an unknown list `name`.
    fn list_hint(&self, name: &str) -> String {
        let Some(short) = name.strip_prefix("lists.") else {
            return "; lists are written 'lists.NAME' (files under rules/lists/)".to_string();
        };
        let known: Vec<&str> = self.scope.lists.keys().map(String::as_str).collect();
        let best = known
            .iter()
            .map(|k| (strsim::levenshtein(short, k), *k))
            .min();
        match best {
            Some((d, k)) if d <= 2 => format!("; did you mean 'lists.{k}'?"),
            _ if known.is_empty() => "; known lists: none (add rules/lists/NAME.txt)".to_string(),
            _ => format!("; known lists: {}", known.join(", ")),
        }
    }

    /// Compiles `[a, b, ..]` for `field` (a number when `None`): every item must
    /// be of its type, and a text one that it can hold.
    fn inline_list(
        &mut self,
        items: &[(Literal, Span)],
        field: Option<u8>,
    ) -> Result<u16, CompileError> {
        let (mut texts, mut numbers) = (Vec::new(), Vec::new());
        for (item, span) in items {
            match (item, field) {
                (Literal::Num(n), None) => numbers.push(*n),
                (Literal::Str(s), Some(f)) => {
                    let text = normalise(f, s);
                    if let Some(why) = never_holds(f, &text) {
                        return Err(err(*span, format!("'{s}' can never match: {why}")));
                    }
                    texts.push(text);
                }
                (Literal::Num(_), Some(_)) => {
                    return Err(err(
                        *span,
                        "a number in a list compared with text; quote it".into(),
                    ))
                }
                (Literal::Str(_), None) => {
                    return Err(err(
                        *span,
                        "text in a list compared with a number; remove the quotes".into(),
                    ))
                }
            }
        }
        let code = field.is_some_and(is_code);
        let index = (self.lists.len() + self.inline.len()) as u16;
        self.inline.push(CompiledList::new(
            texts.iter().map(String::as_str),
            numbers,
            code,
        ));
        Ok(index)
    }

    fn call(&mut self, name: &str, args: &[Expr], span: Span) -> Result<Ty, CompileError> {
        let arity_err = |want: &str| {
            err(
                span,
                format!("{name}() takes {want} argument(s), got {}", args.len()),
            )
        };
        match name {
            "min" | "max" => {
                if args.len() < 2 || args.len() > 8 {
                    return Err(arity_err("2 to 8"));
                }
                for a in args {
                    self.expect(a, Ty::Num, &format!("{name}()"))?;
                }
                let n = args.len() as u8;
                self.ops.push(if name == "min" {
                    Op::Min(n)
                } else {
                    Op::Max(n)
                });
            }
            "abs" => {
                if args.len() != 1 {
                    return Err(arity_err("1"));
                }
                self.expect(&args[0], Ty::Num, "abs()")?;
                self.ops.push(Op::Abs);
            }
            "default" => {
                if args.len() != 2 {
                    return Err(arity_err("2"));
                }
                let mark = self.ops.len();
                self.expect(&args[0], Ty::Num, "default()")?;
                self.expect(&args[1], Ty::Num, "default()")?;
                // A feature or a constant, the commonest case, in one instruction.
                if let [Op::Load(slot), Op::Const(d)] = self.ops[mark..] {
                    self.ops.truncate(mark);
                    self.ops.push(Op::LoadOr { slot, d });
                } else {
                    self.ops.push(Op::Default);
                }
            }
            other => {
                return Err(err(
                    span,
                    format!("unknown function '{other}'; expected min, max, abs or default"),
                ));
            }
        }
        Ok(Ty::Num)
    }
}
