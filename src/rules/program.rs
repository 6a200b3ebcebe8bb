//! Compiled rule expressions: bytecode over a fixed feature vector and the
//! event's text fields, evaluated with a fixed-size stack. No hash maps, no
//! allocation.
//!
//! Values are `f64`. Booleans are 1.0 (true), 0.0 (false) or NaN (unknown). A
//! missing feature (NaN) stays missing through every function and operator
//! (`min`, `max`, `abs`, arithmetic), makes a comparison, `between` or `in`
//! unknown, and unknown propagates through `and`/`or`/`not` with three-valued
//! logic; only `default()` and `is missing` turn missing into a value. A rule
//! fires only when its condition is true: a missing feature never silently
//! passes a rule.

use super::text::{is_code, same_text, CompiledList, Texts};

/// Deepest stack a program may use.
pub const MAX_STACK: usize = 32;

/// One instruction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// Push a constant.
    Const(f64),
    /// Push numeric slot `i` (a feature or the model score).
    Load(u16),
    /// Negate the top.
    Neg,
    /// Arithmetic on the top two.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b` (missing when `b` is 0).
    Div,
    /// Add a constant to the top (`x + c` or `c + x`).
    AddConst(f64),
    /// Subtract a constant from the top (`x - c`).
    SubConst(f64),
    /// Multiply the top by a constant (`x * c` or `c * x`).
    MulConst(f64),
    /// Divide the top by a constant (`x / c`; missing when `c` is 0).
    DivConst(f64),
    /// Push numeric slot `slot`, or `d` when it is missing: `default(x, d)`
    /// for a feature and a constant.
    LoadOr {
        /// Numeric slot.
        slot: u16,
        /// The value for missing.
        d: f64,
    },
    /// A comparison of the top two, giving a truth value.
    Cmp(Cmp),
    /// If the top is false, skip the next `n` instructions (the right side of an
    /// `and` and the `And` itself), leaving false as the result.
    SkipIfFalse(u16),
    /// If the top is true, skip the next `n` instructions (`or` short-circuit).
    SkipIfTrue(u16),
    /// Three-valued `and`.
    And,
    /// Three-valued `or`.
    Or,
    /// Three-valued `not`.
    Not,
    /// `x lo hi` -> `lo <= x <= hi`.
    Between,
    /// Whether the top is missing (never unknown); `true` negates.
    IsMissing(bool),
    /// String field `field` equals (or, negated, differs from) a constant.
    StrEq {
        /// Index into the string slots.
        field: u8,
        /// Index of the constant in [`Program::texts`].
        text: u16,
        /// `!=` instead of `==`.
        negate: bool,
    },
    /// Whether string field `field` is missing (never unknown); `true` negates.
    StrIsMissing {
        /// Index into the string slots.
        field: u8,
        /// `is not missing`.
        negate: bool,
    },
    /// String field `a` equals (or differs from) string field `b`.
    StrFieldEq {
        /// First field.
        a: u8,
        /// Second field.
        b: u8,
        /// `!=` instead of `==`.
        negate: bool,
    },
    /// String field is (not) in list `list`.
    StrIn {
        /// Index into the string slots.
        field: u8,
        /// Index into the ruleset's lists.
        list: u16,
        /// `not in`.
        negate: bool,
    },
    /// The top number is (not) in list `list`.
    NumIn {
        /// Index into the ruleset's lists.
        list: u16,
        /// `not in`.
        negate: bool,
    },
    /// `min` of the top `n` (missing if any is).
    Min(u8),
    /// `max` of the top `n` (missing if any is).
    Max(u8),
    /// Absolute value.
    Abs,
    /// `default(x, d)`: `d` when `x` is missing.
    Default,
    /// `nums[slot] <cmp> c` in one step: `Load`, `Const` and a comparison fused
    /// (the commonest rule condition, so the commonest instruction).
    CmpConst {
        /// Numeric slot.
        slot: u16,
        /// The comparison.
        cmp: Cmp,
        /// The constant.
        c: f64,
    },
}

/// A numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
}

impl Cmp {
    /// The comparison as written in a rule (`<`, `<=`, ...).
    pub fn symbol(self) -> &'static str {
        match self {
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
            Cmp::Eq => "==",
            Cmp::Ne => "!=",
        }
    }

    /// The comparison with its sides swapped: `c < x` is `x > c`.
    pub fn mirrored(self) -> Cmp {
        match self {
            Cmp::Lt => Cmp::Gt,
            Cmp::Le => Cmp::Ge,
            Cmp::Gt => Cmp::Lt,
            Cmp::Ge => Cmp::Le,
            same => same,
        }
    }

    /// Three-valued `a <cmp> b`: unknown when either is missing; numbers
    /// within [`SAME_WITHIN`] of each other are equal.
    #[inline]
    pub fn apply(self, a: f64, b: f64) -> f64 {
        if a.is_nan() || b.is_nan() {
            return f64::NAN;
        }
        let same = same(a, b);
        tri(match self {
            Cmp::Lt => a < b && !same,
            Cmp::Le => a <= b || same,
            Cmp::Gt => a > b && !same,
            Cmp::Ge => a >= b || same,
            Cmp::Eq => same,
            Cmp::Ne => !same,
        })
    }
}

/// Relative difference within which rules compare two numbers as equal. Money
/// is exact in features (decimal amounts, see `state::Money`), but a rule's
/// arithmetic is binary floating point: `0.10 * 3` is 0.30000000000000004 and
/// `0.30 - 0.1` is 0.19999999999999998, a few parts in 10^16 off. Two amounts
/// a cent apart differ by more than 10^-14 of themselves below 10^12 base
/// units. A subtraction of nearly equal large numbers (`1e6 + 0.3 - 1e6`)
/// keeps the error of its operands, which no tolerance of the result covers.
pub const SAME_WITHIN: f64 = 1e-14;

/// Whether `a` and `b` (neither missing) are equal within [`SAME_WITHIN`].
#[inline(always)]
fn same(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= SAME_WITHIN * a.abs().max(b.abs())
}

/// `c` moved outwards (`up`: towards +inf) past every number [`same`] as it.
#[inline]
fn loosened(c: f64, up: bool) -> f64 {
    let margin = 2.0 * SAME_WITHIN * c.abs();
    if up {
        c + margin
    } else {
        c - margin
    }
}

/// A range that numeric slot `slots[0]` or `slots[1]` must fall in (bounds
/// included) for a program to be true: one of its top-level `and` conjuncts,
/// such as `amount > 500`, `x between 1 and 9` or `max(a, b) > 9` (the maximum
/// or minimum is one of its arguments, so one of them must be in range). When
/// both are outside it, or either is missing (which makes that conjunct, and
/// so the program, unknown), the program cannot be true and is not interpreted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Screen {
    /// Numeric slots, the same one twice when the bound is on one slot.
    pub slots: [u16; 2],
    /// Smallest value that may pass.
    pub lo: f64,
    /// Largest value that may pass.
    pub hi: f64,
}

impl Screen {
    /// The open screen's slot: past every feature vector, read as present.
    const NO_SLOT: u16 = u16::MAX;

    /// The screen every value passes, missing ones too.
    pub const OPEN: Screen = Screen {
        slots: [Self::NO_SLOT; 2],
        lo: f64::NEG_INFINITY,
        hi: f64::INFINITY,
    };

    /// The values `x` for which `x <cmp> c` can be true (`!=` can be true
    /// anywhere), for `x` in `slots`.
    pub fn of_comparison(slots: [u16; 2], cmp: Cmp, c: f64) -> Screen {
        // Bounds that include `c` take in what compares as equal to it.
        let (lo, hi) = match cmp {
            Cmp::Lt => (f64::NEG_INFINITY, c.next_down()),
            Cmp::Le => (f64::NEG_INFINITY, loosened(c, true)),
            Cmp::Gt => (c.next_up(), f64::INFINITY),
            Cmp::Ge => (loosened(c, false), f64::INFINITY),
            Cmp::Eq => (loosened(c, false), loosened(c, true)),
            Cmp::Ne => return Screen::OPEN,
        };
        if c.is_nan() {
            return Screen::OPEN;
        }
        Screen { slots, lo, hi }
    }

    /// The values `x` in `slots` for which `lo <= x <= hi` can be true (as
    /// [`Cmp::apply`] compares: bounds loosened by [`SAME_WITHIN`]).
    pub fn between(slots: [u16; 2], lo: f64, hi: f64) -> Screen {
        Screen {
            slots,
            lo: loosened(lo, false),
            hi: loosened(hi, true),
        }
    }

    /// Whether this is [`Screen::OPEN`] (no conjunct bounds a slot).
    #[inline]
    pub fn is_open(&self) -> bool {
        self.slots[0] == Self::NO_SLOT
    }

    /// Whether `nums` make the program certainly not true: both slots outside
    /// the range, or either missing.
    #[inline]
    pub fn rejects(&self, nums: &[f64]) -> bool {
        // A slot past `nums` (the open screen's) reads as present: passing is
        // always safe, and the program reads such a slot as missing anyway.
        let value = |slot: u16| nums.get(slot as usize).copied().unwrap_or(0.0);
        // Ordered comparisons: a missing value is never inside.
        let inside = |v: f64| v >= self.lo && v <= self.hi;
        let x = value(self.slots[0]);
        if self.slots[0] == self.slots[1] {
            return !inside(x);
        }
        let y = value(self.slots[1]);
        !(inside(x) | inside(y)) | x.is_nan() | y.is_nan()
    }
}

impl Default for Screen {
    fn default() -> Self {
        Screen::OPEN
    }
}

/// A compiled expression.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Program {
    /// Instructions, in order.
    pub ops: Vec<Op>,
    /// A range a slot must fall in for the program to be true.
    pub screen: Screen,
    /// Text constants [`Op::StrEq`] compares with (codes upper-cased).
    pub texts: Vec<Box<str>>,
}

/// Truth value of a three-valued boolean.
#[inline]
fn tri(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// `a / b`, missing when `b` is 0.
#[inline(always)]
fn divide(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        f64::NAN
    } else {
        a / b
    }
}

/// `x`, or `d` when `x` is missing: `default(x, d)`.
#[inline(always)]
fn or_default(x: f64, d: f64) -> f64 {
    if x.is_nan() {
        d
    } else {
        x
    }
}

/// Whether number `x` is in list `list` of `lists` (or not, negated); unknown
/// when it is missing.
#[inline(always)]
fn num_in(x: f64, lists: &[CompiledList], list: u16, negate: bool) -> f64 {
    if x.is_nan() {
        f64::NAN
    } else {
        tri(lists[list as usize].contains_number(x) != negate)
    }
}

/// Three-valued `a and b`: false if either is, else unknown if either is.
#[inline(always)]
fn and(a: f64, b: f64) -> f64 {
    if a == 0.0 || b == 0.0 {
        0.0
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        1.0
    }
}

/// Three-valued `a or b`: true if either is, else unknown if either is.
#[inline(always)]
fn or(a: f64, b: f64) -> f64 {
    if a == 1.0 || b == 1.0 {
        1.0
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        0.0
    }
}

/// `lo <= x <= hi`, unknown when any is missing.
#[inline(always)]
fn between(x: f64, lo: f64, hi: f64) -> f64 {
    if x.is_nan() || lo.is_nan() || hi.is_nan() {
        f64::NAN
    } else {
        and(Cmp::Ge.apply(x, lo), Cmp::Le.apply(x, hi))
    }
}

/// The smallest (`min`) or largest of `values`, missing if any is; `values`
/// is the stack's top, the first argument last.
#[inline(always)]
fn extreme(values: &[f64], min: bool) -> f64 {
    let mut acc = values[values.len() - 1];
    for &v in values[..values.len() - 1].iter().rev() {
        acc = if acc.is_nan() || v.is_nan() {
            f64::NAN
        } else if (min && v < acc) || (!min && v > acc) {
            v
        } else {
            acc
        };
    }
    acc
}

/// Whether text fields `a` and `b` are the same (or differ, negated);
/// unknown when either is missing.
#[inline(always)]
fn str_field_eq(texts: &Texts, a: u8, b: u8, negate: bool) -> f64 {
    match (texts.get(a), texts.get(b)) {
        (Some(x), Some(y)) => tri(same_text(x, y, is_code(a) || is_code(b)) != negate),
        _ => f64::NAN,
    }
}

/// Whether text field `field` is in `list` (or not, negated); unknown when
/// it is missing.
#[inline(always)]
fn str_in(texts: &Texts, field: u8, list: &CompiledList, negate: bool) -> f64 {
    match texts.get(field) {
        None => f64::NAN,
        Some(v) => tri(list.contains_text(v, texts.hash(field)) != negate),
    }
}

impl Program {
    /// Whether the program is true over numeric slots `nums`, the event's
    /// `texts` and `lists` (the screen first, then the instructions).
    #[inline]
    pub fn fires(&self, nums: &[f64], texts: &Texts, lists: &[CompiledList]) -> bool {
        !self.screen.rejects(nums) && self.run(&mut [0.0; MAX_STACK], nums, texts, lists) == 1.0
    }

    /// Interprets the instructions, without the screen, on a caller-provided
    /// stack reused across programs. Returns 1.0, 0.0 or NaN (unknown).
    ///
    /// Over 100 lines on purpose: one arm per instruction in one loop, so the
    /// stack pointer and program counter stay in registers (the rules bench).
    #[inline]
    pub fn run(
        &self,
        st: &mut [f64; MAX_STACK],
        nums: &[f64],
        texts: &Texts,
        lists: &[CompiledList],
    ) -> f64 {
        let mut sp = 0usize;
        let mut pc = 0usize;
        let ops = &self.ops[..];
        let load = |slot: u16| nums.get(slot as usize).copied().unwrap_or(f64::NAN);
        macro_rules! pop {
            () => {{
                sp -= 1;
                st[sp]
            }};
        }
        macro_rules! push {
            ($v:expr) => {{
                let v = $v;
                st[sp] = v;
                sp += 1;
            }};
        }
        // The top two (`a` below `b`) replaced by `f(a, b)`.
        macro_rules! binary {
            ($f:expr) => {{
                let b = pop!();
                st[sp - 1] = $f(st[sp - 1], b);
            }};
        }
        while pc < ops.len() {
            let op = &ops[pc];
            pc += 1;
            match *op {
                Op::SkipIfFalse(n) => {
                    if st[sp - 1] == 0.0 {
                        pc += n as usize;
                    }
                }
                Op::SkipIfTrue(n) => {
                    if st[sp - 1] == 1.0 {
                        pc += n as usize;
                    }
                }
                Op::Const(v) => push!(v),
                Op::Load(slot) => push!(load(slot)),
                Op::Neg => st[sp - 1] = -st[sp - 1],
                Op::Add => binary!(|a, b| a + b),
                Op::Sub => binary!(|a, b| a - b),
                Op::Mul => binary!(|a, b| a * b),
                Op::Div => binary!(divide),
                Op::AddConst(c) => st[sp - 1] += c,
                Op::SubConst(c) => st[sp - 1] -= c,
                Op::MulConst(c) => st[sp - 1] *= c,
                Op::DivConst(c) => st[sp - 1] = divide(st[sp - 1], c),
                Op::LoadOr { slot, d } => push!(or_default(load(slot), d)),
                Op::CmpConst { slot, cmp, c } => push!(cmp.apply(load(slot), c)),
                // One arm per comparison, so each is inlined without a second
                // dispatch (as before `Cmp` was shared by the parser).
                Op::Cmp(Cmp::Lt) => binary!(|a, b| Cmp::Lt.apply(a, b)),
                Op::Cmp(Cmp::Le) => binary!(|a, b| Cmp::Le.apply(a, b)),
                Op::Cmp(Cmp::Gt) => binary!(|a, b| Cmp::Gt.apply(a, b)),
                Op::Cmp(Cmp::Ge) => binary!(|a, b| Cmp::Ge.apply(a, b)),
                Op::Cmp(Cmp::Eq) => binary!(|a, b| Cmp::Eq.apply(a, b)),
                Op::Cmp(Cmp::Ne) => binary!(|a, b| Cmp::Ne.apply(a, b)),
                Op::And => binary!(and),
                Op::Or => binary!(or),
                Op::Not => st[sp - 1] = 1.0 - st[sp - 1],
                Op::Between => {
                    let hi = pop!();
                    let lo = pop!();
                    st[sp - 1] = between(st[sp - 1], lo, hi);
                }
                Op::IsMissing(negate) => st[sp - 1] = tri(st[sp - 1].is_nan() != negate),
                Op::StrEq {
                    field,
                    text,
                    negate,
                } => push!(self.str_eq(texts, field, text, negate)),
                Op::StrIsMissing { field, negate } => {
                    push!(tri(texts.get(field).is_none() != negate))
                }
                Op::StrFieldEq { a, b, negate } => push!(str_field_eq(texts, a, b, negate)),
                Op::StrIn {
                    field,
                    list,
                    negate,
                } => push!(str_in(texts, field, &lists[list as usize], negate)),
                Op::NumIn { list, negate } => {
                    st[sp - 1] = num_in(st[sp - 1], lists, list, negate);
                }
                Op::Min(n) | Op::Max(n) => {
                    let n = usize::from(n);
                    sp -= n;
                    push!(extreme(&st[sp..sp + n], matches!(op, Op::Min(_))));
                }
                Op::Abs => st[sp - 1] = st[sp - 1].abs(),
                Op::Default => binary!(or_default),
            }
        }
        if sp == 0 {
            f64::NAN
        } else {
            st[sp - 1]
        }
    }

    /// Whether text field `field` equals text constant `text` (or differs,
    /// negated); unknown when the field is missing.
    #[inline(always)]
    fn str_eq(&self, texts: &Texts, field: u8, text: u16, negate: bool) -> f64 {
        match texts.get(field) {
            None => f64::NAN,
            Some(v) => tri(same_text(&self.texts[text as usize], v, is_code(field)) != negate),
        }
    }

    /// The deepest stack the program reaches.
    pub fn max_depth(&self) -> usize {
        let mut depth: i64 = 0;
        let mut max = 0;
        for op in &self.ops {
            depth += match op {
                Op::Const(_)
                | Op::Load(_)
                | Op::LoadOr { .. }
                | Op::CmpConst { .. }
                | Op::StrEq { .. }
                | Op::StrIsMissing { .. }
                | Op::StrFieldEq { .. }
                | Op::StrIn { .. } => 1,
                Op::Neg | Op::Not | Op::IsMissing(_) | Op::NumIn { .. } | Op::Abs => 0,
                Op::AddConst(_) | Op::SubConst(_) | Op::MulConst(_) | Op::DivConst(_) => 0,
                Op::SkipIfFalse(_) | Op::SkipIfTrue(_) => 0,
                Op::Between => -2,
                Op::Min(n) | Op::Max(n) => 1 - i64::from(*n),
                _ => -1,
            };
            max = max.max(depth);
        }
        max.max(0) as usize
    }
}
