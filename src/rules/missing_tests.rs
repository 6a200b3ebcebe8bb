//! Compiled evaluation against a reference interpreter, with missing values
//! for every function and text field; missing through every form, screens
//! and AVX-512 screens included.

use super::compile::{compile, Scope};
use super::program::MAX_STACK;
use super::text::CompiledList;
use super::*;
use crate::features::load_feature_set;
use proptest::prelude::*;

fn default_set() -> FeatureSet {
    load_feature_set("default").unwrap()
}

#[derive(Debug, Clone)]
enum Gen {
    Num(i32),
    Feat(usize),
    Neg(Box<Gen>),
    Abs(Box<Gen>),
    Arith(char, Box<Gen>, Box<Gen>),
    Cmp(&'static str, Box<Gen>, Box<Gen>),
    And(Box<Gen>, Box<Gen>),
    Or(Box<Gen>, Box<Gen>),
    Not(Box<Gen>),
    Between(Box<Gen>, Box<Gen>, Box<Gen>),
    Missing(usize, bool),
    InList(Box<Gen>, Vec<i32>, bool),
    Default(Box<Gen>, Box<Gen>),
    /// `max(...)` (true) or `min(...)` (false).
    Extreme(bool, Vec<Gen>),
    /// `FIELD == 'text'` (or `!=`): field, text of its pool.
    TextEq(usize, usize, bool),
    /// `FIELD == FIELD` (or `!=`).
    TextFieldEq(usize, usize, bool),
    /// `FIELD [not] in ['a', ..]`, texts of the field's pool.
    TextIn(usize, Vec<usize>, bool),
    /// `FIELD [not] in lists.mixed`.
    TextInNamed(usize, bool),
    /// `FIELD is [not] missing`.
    TextMissing(usize, bool),
}

/// Numeric features; the last one is missing more often than not.
const FEATS: [&str; 5] = [
    "amount",
    "account.tx_count_10m",
    "account.avg_amount_30d",
    "terminal.fraud_rate_7d",
    "device.tx_count_1h",
];

/// Text fields: two codes (compared regardless of case) and an id.
const TEXT_FIELDS: [&str; 3] = ["country", "currency", "terminal.id"];

/// Texts rules write and events carry, per field: cases differ, `#` inside.
const TEXT_POOLS: [&[&str]; 3] = [
    &["DE", "de", "Fr", "T#2"],
    &["EUR", "eur", "USD"],
    &["T#2", "t#2", "T", "DE"],
];

/// The named list `lists.mixed`.
const MIXED: [&str; 4] = ["de", "EUR", "T#2", "t"];

fn num_gen() -> impl Strategy<Value = Gen> {
    let leaf = prop_oneof![
        (-5i32..20).prop_map(Gen::Num),
        (0..FEATS.len()).prop_map(Gen::Feat)
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|a| Gen::Neg(Box::new(a))),
            inner.clone().prop_map(|a| Gen::Abs(Box::new(a))),
            (
                prop_oneof![Just('+'), Just('-'), Just('*'), Just('/')],
                inner.clone(),
                inner.clone()
            )
                .prop_map(|(o, a, b)| Gen::Arith(o, Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| Gen::Default(Box::new(a), Box::new(b))),
            (any::<bool>(), proptest::collection::vec(inner, 2..4))
                .prop_map(|(max, args)| Gen::Extreme(max, args)),
        ]
    })
}

fn text_gen() -> impl Strategy<Value = Gen> {
    let field = 0..TEXT_FIELDS.len();
    prop_oneof![
        (field.clone(), 0usize..4, any::<bool>()).prop_map(|(f, t, n)| Gen::TextEq(
            f,
            t % TEXT_POOLS[f].len(),
            n
        )),
        (field.clone(), field.clone(), any::<bool>())
            .prop_map(|(a, b, n)| Gen::TextFieldEq(a, b, n)),
        (
            field.clone(),
            proptest::collection::vec(0usize..4, 1..4),
            any::<bool>()
        )
            .prop_map(|(f, ts, n)| Gen::TextIn(
                f,
                ts.into_iter().map(|t| t % TEXT_POOLS[f].len()).collect(),
                n
            )),
        (field.clone(), any::<bool>()).prop_map(|(f, n)| Gen::TextInNamed(f, n)),
        (field, any::<bool>()).prop_map(|(f, n)| Gen::TextMissing(f, n)),
    ]
}

fn bool_gen() -> impl Strategy<Value = Gen> {
    let cmp = (
        prop_oneof![
            Just("<"),
            Just("<="),
            Just(">"),
            Just(">="),
            Just("=="),
            Just("!=")
        ],
        num_gen(),
        num_gen(),
    )
        .prop_map(|(o, a, b)| Gen::Cmp(o, Box::new(a), Box::new(b)));
    let leaf = prop_oneof![
        cmp,
        (num_gen(), num_gen(), num_gen()).prop_map(|(x, a, b)| Gen::Between(
            Box::new(x),
            Box::new(a),
            Box::new(b)
        )),
        ((0..FEATS.len()), any::<bool>()).prop_map(|(i, n)| Gen::Missing(i, n)),
        (
            num_gen(),
            proptest::collection::vec(-2i32..10, 1..4),
            any::<bool>()
        )
            .prop_map(|(x, l, n)| Gen::InList(Box::new(x), l, n)),
        text_gen(),
    ];
    leaf.prop_recursive(3, 16, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Gen::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Gen::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Gen::Not(Box::new(a))),
        ]
    })
}

fn render(g: &Gen) -> String {
    let not = |n: &bool| if *n { "not " } else { "" };
    let eq = |n: &bool| if *n { "!=" } else { "==" };
    match g {
        Gen::Num(n) => format!("{n}"),
        Gen::Feat(i) => FEATS[*i].to_string(),
        Gen::Neg(a) => format!("-({})", render(a)),
        Gen::Abs(a) => format!("abs({})", render(a)),
        Gen::Arith(o, a, b) => format!("({} {o} {})", render(a), render(b)),
        Gen::Cmp(o, a, b) => format!("({} {o} {})", render(a), render(b)),
        Gen::And(a, b) => format!("({} and {})", render(a), render(b)),
        Gen::Or(a, b) => format!("({} or {})", render(a), render(b)),
        Gen::Not(a) => format!("not ({})", render(a)),
        Gen::Between(x, a, b) => format!("({} between {} and {})", render(x), render(a), render(b)),
        Gen::Missing(i, n) => format!("({} is {}missing)", FEATS[*i], not(n)),
        Gen::InList(x, l, n) => format!(
            "({} {}in [{}])",
            render(x),
            not(n),
            l.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Gen::Default(a, b) => format!("default({}, {})", render(a), render(b)),
        Gen::Extreme(max, args) => format!(
            "{}({})",
            if *max { "max" } else { "min" },
            args.iter().map(render).collect::<Vec<_>>().join(", ")
        ),
        Gen::TextEq(f, t, n) => format!("({} {} '{}')", TEXT_FIELDS[*f], eq(n), TEXT_POOLS[*f][*t]),
        Gen::TextFieldEq(a, b, n) => format!("({} {} {})", TEXT_FIELDS[*a], eq(n), TEXT_FIELDS[*b]),
        Gen::TextIn(f, ts, n) => format!(
            "({} {}in [{}])",
            TEXT_FIELDS[*f],
            not(n),
            ts.iter()
                .map(|t| format!("'{}'", TEXT_POOLS[*f][*t]))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Gen::TextInNamed(f, n) => format!("({} {}in lists.mixed)", TEXT_FIELDS[*f], not(n)),
        Gen::TextMissing(f, n) => format!("({} is {}missing)", TEXT_FIELDS[*f], not(n)),
    }
}

/// Reference semantics, written the obvious way: None is missing, and missing
/// in any operand is missing in the result, except through `default`.
fn num_ref(g: &Gen, f: &[Option<f64>]) -> Option<f64> {
    match g {
        Gen::Num(n) => Some(f64::from(*n)),
        Gen::Feat(i) => f[*i],
        Gen::Neg(a) => num_ref(a, f).map(|v| -v),
        Gen::Abs(a) => num_ref(a, f).map(f64::abs),
        Gen::Arith(o, a, b) => {
            let (x, y) = (num_ref(a, f)?, num_ref(b, f)?);
            let v = match o {
                '+' => x + y,
                '-' => x - y,
                '*' => x * y,
                _ if y == 0.0 => return None,
                _ => x / y,
            };
            (!v.is_nan()).then_some(v)
        }
        Gen::Default(a, b) => num_ref(a, f).or_else(|| num_ref(b, f)),
        Gen::Extreme(max, args) => {
            let values: Option<Vec<f64>> = args.iter().map(|a| num_ref(a, f)).collect();
            values?
                .into_iter()
                .reduce(|x, y| if (y > x) == *max { y } else { x })
        }
        _ => unreachable!(),
    }
}

/// Numbers equal as rules compare them: within `SAME_WITHIN` of the larger.
fn close(x: f64, y: f64) -> bool {
    x == y || (x - y).abs() <= super::program::SAME_WITHIN * x.abs().max(y.abs())
}

/// Texts equal as field(s) with `code` compare them.
fn same(a: &str, b: &str, code: bool) -> bool {
    if code {
        a.to_uppercase() == b.to_uppercase()
    } else {
        a == b
    }
}

/// Whether text field `i` of [`TEXT_FIELDS`] is a code.
fn code(i: usize) -> bool {
    i < 2
}

fn bool_ref(g: &Gen, f: &[Option<f64>], t: &[Option<&str>]) -> Option<bool> {
    match g {
        Gen::Cmp(o, a, b) => {
            let (x, y) = (num_ref(a, f)?, num_ref(b, f)?);
            Some(match *o {
                "<" => x < y && !close(x, y),
                "<=" => x <= y || close(x, y),
                ">" => x > y && !close(x, y),
                ">=" => x >= y || close(x, y),
                "==" => close(x, y),
                _ => !close(x, y),
            })
        }
        Gen::Between(x, a, b) => {
            let (x, a, b) = (num_ref(x, f)?, num_ref(a, f)?, num_ref(b, f)?);
            Some((a <= x || close(a, x)) && (x <= b || close(x, b)))
        }
        Gen::Missing(i, n) => Some(f[*i].is_none() != *n),
        Gen::InList(x, l, n) => {
            let x = num_ref(x, f)?;
            Some(l.iter().any(|v| f64::from(*v) == x) != *n)
        }
        Gen::TextEq(i, k, n) => Some(same(t[*i]?, TEXT_POOLS[*i][*k], code(*i)) != *n),
        Gen::TextFieldEq(a, b, n) => Some(same(t[*a]?, t[*b]?, code(*a) || code(*b)) != *n),
        Gen::TextIn(i, ks, n) => {
            let v = t[*i]?;
            Some(ks.iter().any(|&k| same(v, TEXT_POOLS[*i][k], code(*i))) != *n)
        }
        Gen::TextInNamed(i, n) => {
            let v = t[*i]?;
            Some(MIXED.iter().any(|e| same(v, e, code(*i))) != *n)
        }
        Gen::TextMissing(i, n) => Some(t[*i].is_none() != *n),
        Gen::And(a, b) => match (bool_ref(a, f, t), bool_ref(b, f, t)) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        Gen::Or(a, b) => match (bool_ref(a, f, t), bool_ref(b, f, t)) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        Gen::Not(a) => bool_ref(a, f, t).map(|b| !b),
        _ => unreachable!(),
    }
}

/// A condition that starts or ends with a bound a screen can use.
fn screened_gen() -> impl Strategy<Value = Gen> {
    let op = prop_oneof![
        Just("<"),
        Just("<="),
        Just(">"),
        Just(">="),
        Just("=="),
        Just("!=")
    ];
    // A feature, or the maximum or minimum of two.
    let feat = 0..FEATS.len();
    let bounded = prop_oneof![
        feat.clone().prop_map(Gen::Feat),
        (any::<bool>(), feat.clone(), feat)
            .prop_map(|(max, i, j)| Gen::Extreme(max, vec![Gen::Feat(i), Gen::Feat(j)])),
    ];
    let bound = prop_oneof![
        (op, bounded.clone(), -5i32..20, any::<bool>()).prop_map(|(o, f, n, flip)| {
            let (f, n) = (Box::new(f), Box::new(Gen::Num(n)));
            if flip {
                Gen::Cmp(o, n, f)
            } else {
                Gen::Cmp(o, f, n)
            }
        }),
        (bounded, -5i32..20, -5i32..20).prop_map(|(x, a, b)| Gen::Between(
            Box::new(x),
            Box::new(Gen::Num(a)),
            Box::new(Gen::Num(b))
        )),
    ];
    (bound, bool_gen(), any::<bool>()).prop_map(|(b, rest, first)| {
        let (b, rest) = (Box::new(b), Box::new(rest));
        if first {
            Gen::And(b, rest)
        } else {
            Gen::And(rest, b)
        }
    })
}

/// Compiles `g` and checks its evaluation, with and without its screen,
/// against [`bool_ref`]; `texts` index each text field's pool.
fn check_against_reference(
    g: &Gen,
    values: &[Option<i32>],
    texts: &[Option<usize>],
) -> Result<(), TestCaseError> {
    let set = default_set();
    let scope = Scope::new(&set, &["mixed".to_string()]);
    let src = render(g);
    let mut lists = vec![CompiledList::new(MIXED, [], false)];
    let program = compile(&src, &scope, &mut lists).unwrap_or_else(|e| panic!("{src}: {e:?}"));
    let f: Vec<Option<f64>> = values.iter().map(|v| v.map(f64::from)).collect();
    let mut nums = vec![f64::NAN; scope.numeric_slots()];
    for (i, name) in FEATS.iter().enumerate() {
        nums[set.index_of(name).unwrap()] = f[i].unwrap_or(f64::NAN);
    }
    let t: Vec<Option<&str>> = texts
        .iter()
        .zip(TEXT_POOLS)
        .map(|(k, pool)| k.map(|k| pool[k % pool.len()]))
        .collect();
    let mut fields = [None; 9];
    for (name, v) in TEXT_FIELDS.iter().zip(&t) {
        fields[Scope::string_field(name).unwrap() as usize] = *v;
    }
    let want = bool_ref(g, &f, &t);
    let got = program.run(
        &mut [0.0; MAX_STACK],
        &nums,
        &Texts::new(fields, u16::MAX),
        &lists,
    );
    let got = if got.is_nan() { None } else { Some(got == 1.0) };
    prop_assert_eq!(got, want, "{}", src);
    let fires = program.fires(&nums, &Texts::new(fields, u16::MAX), &lists);
    prop_assert_eq!(fires, want == Some(true), "screened: {}", src);
    Ok(())
}

/// Feature values: each missing one time in three, the last two times in three.
fn values_gen(lo: i32, hi: i32) -> impl Strategy<Value = Vec<Option<i32>>> {
    (
        proptest::collection::vec(proptest::option::weighted(0.67, lo..hi), 4),
        proptest::option::weighted(0.33, lo..hi),
    )
        .prop_map(|(mut v, last)| {
            v.push(last);
            v
        })
}

fn texts_gen() -> impl Strategy<Value = Vec<Option<usize>>> {
    proptest::collection::vec(
        proptest::option::weighted(0.75, 0usize..4),
        TEXT_FIELDS.len(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn compiled_evaluation_equals_the_reference_interpreter(
        g in bool_gen(),
        values in values_gen(-3, 15),
        texts in texts_gen(),
    ) {
        check_against_reference(&g, &values, &texts)?;
    }

    #[test]
    fn screens_never_reject_a_condition_that_could_be_true(
        g in screened_gen(),
        values in values_gen(-6, 21),
        texts in texts_gen(),
    ) {
        check_against_reference(&g, &values, &texts)?;
    }
}

/// Forms with one operand `X`: each is unknown when `X` is missing, and known
/// when `X` is 3. Every function and operator, in every operand position.
const PROPAGATING: [&str; 42] = [
    "min(X, 100) >= 50",
    "min(100, X) < 50",
    "min(1, 2, X) < 50",
    "min(X, X) == 3",
    "max(X, 1) > 0",
    "max(1, X) > 0",
    "max(X, 200, 300) > 0",
    "abs(X) >= 0",
    "-X < 100",
    "X + 1 > 0",
    "1 + X > 0",
    "X - 1 > -100",
    "1 - X < 100",
    "X * 2 >= -100",
    "2 * X >= -100",
    "X * 0 == 0",
    "X / 2 > -100",
    "2 / X > -100",
    "X - X == 0",
    "X < 100",
    "X <= 100",
    "X > -100",
    "X >= -100",
    "X == 3",
    "X != 4",
    "100 > X",
    "X > amount",
    "X between 0 and 100",
    "1 between X and 100",
    "1 between 0 and X",
    "min(X, amount) between 0 and 100",
    "max(X, amount) >= 0",
    "X in [3, 4]",
    "X not in [5]",
    "abs(X) in [3]",
    "not (X > 100)",
    "X > 0 and amount > 0",
    "amount > 0 and X > 0",
    "X > 0 or amount < 0",
    "X > 100 or amount < 0",
    "default(X, 1) + X > 0",
    "max(default(X, 0), X) >= 0",
];

/// Forms the rule makes known whatever `X` is: `default()`, `is missing`,
/// and three-valued `and`/`or` whose other side decides.
const DECIDED: [&str; 6] = [
    "default(min(X, 100), 0) >= 0",
    "X is missing or X > 0",
    "X is not missing and X > 0 or amount > 0",
    "min(X, 100) >= 50 or amount > 0",
    "not (min(X, 100) >= 50 and amount < 0)",
    "default(X, 3) == 3",
];

/// One rule per form `F` and one per `not (F)`, over `X` = `account.avg_amount_30d`
/// and `amount` = 1: a form is unknown exactly when neither fires.
fn forms_ruleset(forms: &[&str]) -> (Ruleset, FeatureSet) {
    let forms: Vec<String> = forms
        .iter()
        .map(|f| f.replace('X', "account.avg_amount_30d"))
        .collect();
    let set = default_set();
    let rs = Ruleset::from_files(&[("rules/forms.yaml", &forms_file(&forms))], &set).unwrap();
    (rs, set)
}

/// A rule file with a rule `is_i` for each form `i` and a rule `not_i` for its negation.
fn forms_file(forms: &[String]) -> String {
    let mut text = String::from("rules:\n");
    for (i, form) in forms.iter().enumerate() {
        for (kind, when) in [("is", form.clone()), ("not", format!("not ({form})"))] {
            text.push_str(&format!(
                "  - {{ id: {kind}_{i}, when: \"{when}\", action: score, score: 0.1, reason: {{ code: c, text: t }} }}\n"
            ));
        }
    }
    text
}

/// Which forms are true, false or unknown, with the ruleset evaluated one
/// rule at a time, all at once (screens row by row) and eight screens at a time.
fn outcomes(rs: &Ruleset, set: &FeatureSet, x: f64, n: usize) -> Vec<Option<bool>> {
    let mut nums = vec![f64::NAN; rs.numeric_slots];
    nums[set.index_of("account.avg_amount_30d").unwrap()] = x;
    nums[set.index_of("amount").unwrap()] = 1.0;
    let texts = Texts::default();
    let index = |id: String| rs.rules.iter().position(|r| r.id == id).unwrap();
    let one_by_one: Vec<Option<bool>> = (0..n)
        .map(|i| {
            let is = rs.rule_fires(index(format!("is_{i}")), &nums, &texts);
            let not = rs.rule_fires(index(format!("not_{i}")), &nums, &texts);
            assert!(!(is && not), "form {i} both true and false");
            (is || not).then_some(is)
        })
        .collect();
    let mut hits = Hits::default();
    for wide in [false, wide_available()] {
        rs.evaluate_by(&nums, &texts, &mut hits, wide);
        let all: Vec<Option<bool>> = (0..n)
            .map(|i| {
                let fired = |id: String| hits.live.contains(&(index(id) as u16));
                let (is, not) = (fired(format!("is_{i}")), fired(format!("not_{i}")));
                (is || not).then_some(is)
            })
            .collect();
        assert_eq!(all, one_by_one, "wide {wide}");
    }
    one_by_one
}

#[test]
fn missing_stays_missing_through_every_function_and_operator() {
    let (rs, set) = forms_ruleset(&PROPAGATING);
    assert!(rs.screened.len() >= wide::ScreenLanes::MIN_SCREENS);
    let missing = outcomes(&rs, &set, f64::NAN, PROPAGATING.len());
    let present = outcomes(&rs, &set, 3.0, PROPAGATING.len());
    for (i, form) in PROPAGATING.iter().enumerate() {
        assert_eq!(missing[i], None, "{form} with X missing");
        assert!(present[i].is_some(), "{form} with X = 3 is unknown");
    }
    let (rs, set) = forms_ruleset(&DECIDED);
    for x in [f64::NAN, 3.0] {
        for (form, got) in DECIDED.iter().zip(outcomes(&rs, &set, x, DECIDED.len())) {
            assert!(got.is_some(), "{form} with X = {x} is unknown");
        }
    }
}

#[test]
fn a_missing_text_field_is_unknown_in_every_text_form() {
    let forms = [
        "country == 'FR'",
        "country != 'FR'",
        "country in ['FR']",
        "country not in ['FR']",
        "country in lists.codes",
        "terminal.id not in lists.codes",
        "country == currency",
        "country != terminal.id",
    ];
    let text = forms_file(&forms.map(String::from));
    let files = [
        ("rules/t.yaml", text.as_str()),
        ("rules/lists/codes.txt", "FR\n"),
    ];
    let rs = Ruleset::from_files(&files, &default_set()).unwrap();
    let field = |name| Scope::string_field(name).unwrap() as usize;
    let mut all = [None; 9];
    all[field("country")] = Some("fr");
    all[field("currency")] = Some("EUR");
    all[field("terminal.id")] = Some("T1");
    let nums = vec![f64::NAN; rs.numeric_slots];
    for missing in ["country", "currency", "terminal.id"] {
        let mut fields = all;
        fields[field(missing)] = None;
        let texts = rs.texts(fields);
        for (i, form) in forms.iter().enumerate() {
            let reads = form.contains(missing);
            let fires = |id: String| {
                let r = rs.rules.iter().position(|r| r.id == id).unwrap();
                rs.rule_fires(r, &nums, &texts)
            };
            let known = fires(format!("is_{i}")) || fires(format!("not_{i}"));
            assert_eq!(known, !reads, "{form} with {missing} missing");
        }
    }
}

/// `rules test` passes on a field case copied into `tests/fixtures/field-cases/`,
/// and its every test ran.
pub(super) fn field_case_passes(name: &str, tests: usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/field-cases")
        .join(name)
        .join("rules");
    let (outcomes, errors) = test_dir(&dir, &default_set());
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(outcomes.len(), tests, "{outcomes:?}");
    for o in outcomes {
        assert!(o.passed, "{}: {:?}", o.name, o.error);
    }
}

#[test]
fn field_case_06_min_of_a_missing_feature_does_not_fire() {
    field_case_passes("06-missing-through-functions", 1);
}
