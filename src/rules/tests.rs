use super::compile::{compile, Scope};
use super::program::{CompiledList, Screen};
use super::reload::{RuleStore, RulesSource};
use super::*;
use crate::features::load_feature_set;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;

fn default_set() -> FeatureSet {
    load_feature_set("default").unwrap()
}

#[test]
fn shipped_rules_compile_pass_their_tests_and_match_the_directory() {
    let set = default_set();
    let builtin = Ruleset::builtin(&set).unwrap();
    assert!(builtin.rules.len() >= 12, "{} rules", builtin.rules.len());
    assert!(builtin.tests_passed >= 25, "{} tests", builtin.tests_passed);
    assert!(
        builtin.counts().get("shadow").copied().unwrap_or(0) >= 1,
        "the starter set shows shadow mode"
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let from_dir = Ruleset::load_dir(&dir, &set).unwrap();
    assert_eq!(
        from_dir.version, builtin.version,
        "BUILTIN_FILES must list every file under rules/"
    );
    // Priority order.
    assert!(builtin
        .rules
        .windows(2)
        .all(|w| w[0].priority >= w[1].priority));
}

fn load(files: &[(&str, &str)]) -> Result<Ruleset, RulesError> {
    Ruleset::from_files(files, &default_set())
}

const RULE_HEAD: &str =
    "rules:\n  - id: r1\n    action: review\n    reason: { code: r1, text: t }\n";

#[test]
fn errors_give_file_line_col_and_did_you_mean() {
    let text =
        format!("{RULE_HEAD}    when: account.tx_count_10m > 5 and acount.tx_count_1h > 2\n");
    let e = load(&[("rules/a.yaml", &text)]).unwrap_err();
    assert_eq!(e.0.len(), 1);
    let msg = e.0[0].to_string();
    // "    when: " is 10 characters, and the misspelled name starts 29 characters in.
    assert_eq!((e.0[0].line, e.0[0].col), (5, 40), "{msg}");
    assert!(msg.starts_with("rules/a.yaml:5:40: unknown feature 'acount.tx_count_1h'; did you mean 'account.tx_count_1h'?"), "{msg}");

    let cases = [
        ("amount > 'high'", "text can only be compared"),
        ("amount > country", "text can only be compared"),
        ("amount > (country == 'DE')", "compares numbers"),
        ("amount + 1", "must be true or false"),
        ("terminal.id > 3", "text can only be compared"),
        ("terminal.id in lists.trusted_terminalz", "unknown list"),
        ("amount >", "expected a value"),
        ("country == 'DE' and", "expected a value"),
        ("not amount", "needs a condition"),
        ("foo(amount) > 1", "unknown function"),
    ];
    for (expr, want) in cases {
        let text = format!("{RULE_HEAD}    when: {expr}\n");
        let e = load(&[
            ("rules/a.yaml", &text),
            ("rules/lists/trusted_terminals.txt", "t1\n"),
        ])
        .unwrap_err();
        assert!(e.0[0].message.contains(want), "{expr}: {}", e.0[0]);
        assert_eq!(e.0[0].line, 5, "{expr}: {}", e.0[0]);
    }
}

#[test]
fn a_failing_in_file_test_fails_the_load_with_its_location() {
    let text = format!("{RULE_HEAD}    when: amount > 100\n    tests:\n      - name: big\n        features: {{ amount: 50 }}\n        expect: hit\n");
    let e = load(&[("rules/a.yaml", &text)]).unwrap_err();
    let msg = e.0[0].to_string();
    assert!(
        msg.contains("rule 'r1', test 'big': expected hit, but the rule did not fire"),
        "{msg}"
    );
    assert_eq!(e.0[0].line, 9, "{msg}");
}

#[test]
fn duplicate_ids_and_bad_scores_are_rejected() {
    let text = format!("{RULE_HEAD}    when: amount > 1\n  - id: r1\n    action: block\n    when: amount > 2\n    reason: {{ code: x, text: y }}\n");
    let e = load(&[("rules/a.yaml", &text)]).unwrap_err();
    assert!(
        e.0[0].message.contains("duplicate rule id 'r1'"),
        "{}",
        e.0[0]
    );
    let text = format!("{RULE_HEAD}    when: amount > 1\n    score: 1.5\n");
    assert!(load(&[("rules/a.yaml", &text)]).unwrap_err().0[0]
        .message
        .contains("between 0 and 1"));
    let bad_policy = load(&[(
        "rules/policy.yaml",
        "review_threshold: 0.9\nblock_threshold: 0.5\n",
    )])
    .unwrap_err();
    assert!(bad_policy.0[0].message.contains("thresholds"));
}

#[test]
fn screens_come_from_top_level_conjuncts_that_bound_a_feature() {
    let set = default_set();
    let scope = Scope::new(&set, &[]);
    let amount = set.index_of("amount").unwrap() as u16;
    let screen = |src: &str| compile(src, &scope, &mut Vec::new()).unwrap().screen;
    let bounded = |lo: f64, hi: f64| Screen {
        slots: [amount, amount],
        lo,
        hi,
    };
    let inf = f64::INFINITY;
    assert_eq!(
        screen("amount > 500 and country == 'DE'"),
        bounded(500f64.next_up(), inf)
    );
    assert_eq!(
        screen("country == 'DE' and 3 >= amount"),
        bounded(-inf, 3.0)
    );
    assert_eq!(
        screen("amount != 5 and (country == 'DE' and amount < -2)"),
        bounded(-inf, (-2f64).next_down())
    );
    assert_eq!(screen("amount between 10 and 20"), bounded(10.0, 20.0));
    assert_eq!(screen("amount == 7"), bounded(7.0, 7.0));
    let avg = set.index_of("account.avg_amount_30d").unwrap() as u16;
    assert_eq!(
        screen("max(amount, account.avg_amount_30d) > 9 and not (country == 'DE')"),
        Screen {
            slots: [amount, avg],
            lo: 9f64.next_up(),
            hi: inf
        }
    );
    assert_eq!(
        screen("min(account.avg_amount_30d, amount) between 1 and 2"),
        Screen {
            slots: [avg, amount],
            lo: 1.0,
            hi: 2.0
        }
    );
    for open in [
        "max(amount, 2) > 5",
        "max(amount, amount * 2) > 5",
        "max(amount, account.avg_amount_30d, account.tx_count_10m) > 5",
        "abs(amount) > 5",
        "amount > 5 or country == 'DE'",
        "not (amount > 5)",
        "amount != 5",
        "amount * 2 > 5",
        "amount > account.avg_amount_30d",
    ] {
        assert_eq!(screen(open), Screen::OPEN, "{open}");
    }
}

#[test]
fn constants_and_defaults_fuse_into_the_arithmetic() {
    use super::program::Op;
    let set = default_set();
    let scope = Scope::new(&set, &[]);
    let slot = |name: &str| set.index_of(name).unwrap() as u16;
    let ops = |src: &str| compile(src, &scope, &mut Vec::new()).unwrap().ops;
    assert_eq!(
        ops("amount > 80 * default(account.avg_amount_30d, 50) + 8000"),
        [
            Op::Load(slot("amount")),
            Op::LoadOr {
                slot: slot("account.avg_amount_30d"),
                d: 50.0
            },
            Op::MulConst(80.0),
            Op::AddConst(8000.0),
            Op::Gt,
        ]
    );
    // Only `+` and `*` take a constant from the left.
    assert_eq!(
        ops("2 - amount / 4 > 1"),
        [
            Op::Const(2.0),
            Op::Load(slot("amount")),
            Op::DivConst(4.0),
            Op::Sub,
            Op::Const(1.0),
            Op::Gt,
        ]
    );
}

#[test]
fn screened_evaluation_finds_the_same_hits_as_running_every_rule() {
    let set = load_feature_set("model").unwrap();
    let files = synthetic::synthetic_rule_files(100, &set.names);
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let rs = Ruleset::from_files(&refs, &set).unwrap();
    let strs: Vec<u64> = ["RU", "DE"]
        .iter()
        .map(|c| {
            let mut strs = [0u64; 9];
            strs[Scope::string_field("country").unwrap() as usize] = compile::str_hash(c);
            strs[Scope::string_field("terminal.id").unwrap() as usize] =
                compile::str_hash("term-7");
            strs
        })
        .collect::<Vec<_>>()
        .concat();
    // Values around every threshold the synthetic rules use, and missing ones.
    let pool: Vec<f64> = [f64::NAN, -0.0, 0.0, 1.0, 5.0, 60.0, 0.95]
        .into_iter()
        .chain((2..9).flat_map(|k| {
            let k = f64::from(k);
            [
                k,
                k * 10.0,
                k * 100.0,
                k * 1000.0,
                k * 1000.0 + 50.0,
                k * 100_000.0,
            ]
            .into_iter()
            .flat_map(|v| [v.next_down(), v, v.next_up()])
        }))
        .collect();
    let mut rng = SmallRng::seed_from_u64(7);
    let (mut hits, mut fired, mut rejected, mut wide_runs) = (Hits::default(), 0, 0, 0);
    for event in 0..3000 {
        let nums: Vec<f64> = (0..rs.numeric_slots)
            .map(|_| pool[rng.gen_range(0..pool.len())])
            .collect();
        let strs = &strs[(event % 2) * 9..][..9];
        // Screens row by row, and (where the CPU can) eight at a time, alternately.
        let wide = event % 2 == 1 && super::wide_available();
        rs.evaluate_by(&nums, strs, &mut hits, wide);
        wide_runs += usize::from(wide);
        let (mut live, mut shadow) = (Vec::new(), Vec::new());
        for (i, r) in rs.rules.iter().enumerate() {
            let fires = r
                .program
                .run(&mut [0.0; program::MAX_STACK], &nums, strs, &rs.lists)
                == 1.0;
            rejected += usize::from(r.program.screen.rejects(&nums));
            match r.mode {
                RuleMode::Live if fires => live.push(i as u16),
                RuleMode::Shadow if fires => shadow.push(i as u16),
                _ => {}
            }
        }
        fired += live.len() + shadow.len();
        assert_eq!(
            (&hits.live, &hits.shadow),
            (&live, &shadow),
            "event {event}"
        );
    }
    // The comparison means something only if rules both fire and get screened out.
    assert!(
        fired > 1000 && rejected > 100_000,
        "fired {fired}, rejected {rejected}"
    );
    if wide_runs == 0 {
        eprintln!("*** this CPU has no AVX-512: screens eight at a time are not tested ***");
    }
}

#[test]
fn shadow_rules_are_recorded_but_never_change_the_action() {
    let text = "rules:\n  - id: s\n    when: amount > 10\n    action: block\n    score: 1.0\n    mode: shadow\n    reason: { code: s, text: t }\n  - id: off\n    when: amount > 10\n    action: block\n    mode: off\n    reason: { code: o, text: t }\n";
    let set = default_set();
    let rs = Ruleset::from_files(&[("rules/a.yaml", text)], &set).unwrap();
    let mut nums = vec![f64::NAN; rs.numeric_slots];
    nums[set.index_of("amount").unwrap()] = 50.0;
    let mut hits = Hits::default();
    rs.evaluate(&nums, &[0; 9], &mut hits);
    assert_eq!((hits.live.len(), hits.shadow.len()), (0, 1));
    let v = rs
        .policy
        .decide(&rs, &hits.live, crate::decision::ModelInput::NotConfigured);
    assert_eq!(v.action, crate::decision::Action::Allow);
    assert_eq!(v.score, 0.0);
}

#[test]
fn policy_combines_allow_block_review_and_scores() {
    use crate::decision::{Action, ModelInput, PolicyOutcome};
    let text = "rules:
  - { id: allow, when: amount < 1, action: allow, reason: { code: a, text: t }, priority: 100 }
  - { id: block, when: amount > 1000, action: block, reason: { code: b, text: t } }
  - { id: review, when: amount > 500, action: review, reason: { code: r, text: t } }
  - { id: s1, when: amount > 100, action: score, score: 0.3, reason: { code: s1, text: t } }
  - { id: s2, when: amount > 200, action: score, score: 0.5, reason: { code: s2, text: t } }
";
    let set = default_set();
    let rs = Ruleset::from_files(&[("rules/a.yaml", text)], &set).unwrap();
    let amount = set.index_of("amount").unwrap();
    let decide = |a: f64, model: ModelInput| {
        let mut nums = vec![f64::NAN; rs.numeric_slots];
        nums[amount] = a;
        let mut hits = Hits::default();
        rs.evaluate(&nums, &[0; 9], &mut hits);
        rs.policy.decide(&rs, &hits.live, model)
    };
    assert_eq!(
        decide(0.5, ModelInput::Score(0.99)).action,
        Action::Allow,
        "allow-list wins over the model"
    );
    assert_eq!(
        decide(2000.0, ModelInput::NotConfigured).outcome,
        PolicyOutcome::BlockRule
    );
    assert_eq!(
        decide(50.0, ModelInput::NotConfigured).action,
        Action::Allow
    );
    let v = decide(150.0, ModelInput::NotConfigured);
    assert_eq!(v.action, Action::Allow);
    assert!((v.score - 0.3).abs() < 1e-12);
    let v = decide(250.0, ModelInput::NotConfigured);
    assert!((v.score - 0.65).abs() < 1e-12);
    assert_eq!(v.outcome, PolicyOutcome::ReviewThreshold);
    let v = decide(250.0, ModelInput::Score(0.5));
    assert!((v.score - 0.825).abs() < 1e-12);
    assert_eq!(v.outcome, PolicyOutcome::BlockThreshold);
    assert_eq!(
        decide(600.0, ModelInput::NotConfigured).outcome,
        PolicyOutcome::ReviewRule
    );
    assert_eq!(
        decide(50.0, ModelInput::Unavailable).outcome,
        PolicyOutcome::ModelUnavailable
    );
    assert!(rs.policy.reason(PolicyOutcome::ModelUnavailable).is_some());
}

// ---- compiled evaluation equals a reference interpreter ----

#[derive(Debug, Clone)]
enum Gen {
    Num(i32),
    Feat(usize),
    Neg(Box<Gen>),
    Arith(char, Box<Gen>, Box<Gen>),
    Cmp(&'static str, Box<Gen>, Box<Gen>),
    And(Box<Gen>, Box<Gen>),
    Or(Box<Gen>, Box<Gen>),
    Not(Box<Gen>),
    Between(Box<Gen>, Box<Gen>, Box<Gen>),
    Missing(usize, bool),
    InList(Box<Gen>, Vec<i32>, bool),
    StrEq(bool, bool),
    Default(Box<Gen>, Box<Gen>),
    /// `max(...)` (true) or `min(...)` (false).
    Extreme(bool, Vec<Gen>),
}

const FEATS: [&str; 4] = [
    "amount",
    "account.tx_count_10m",
    "account.avg_amount_30d",
    "terminal.fraud_rate_7d",
];

fn num_gen() -> impl Strategy<Value = Gen> {
    let leaf = prop_oneof![
        (-5i32..20).prop_map(Gen::Num),
        (0usize..4).prop_map(Gen::Feat)
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|a| Gen::Neg(Box::new(a))),
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
        ((0usize..4), any::<bool>()).prop_map(|(i, n)| Gen::Missing(i, n)),
        (
            num_gen(),
            proptest::collection::vec(-2i32..10, 1..4),
            any::<bool>()
        )
            .prop_map(|(x, l, n)| Gen::InList(Box::new(x), l, n)),
        (any::<bool>(), any::<bool>()).prop_map(|(a, b)| Gen::StrEq(a, b)),
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
    match g {
        Gen::Num(n) => format!("{n}"),
        Gen::Feat(i) => FEATS[*i].to_string(),
        Gen::Neg(a) => format!("-({})", render(a)),
        Gen::Arith(o, a, b) => format!("({} {o} {})", render(a), render(b)),
        Gen::Cmp(o, a, b) => format!("({} {o} {})", render(a), render(b)),
        Gen::And(a, b) => format!("({} and {})", render(a), render(b)),
        Gen::Or(a, b) => format!("({} or {})", render(a), render(b)),
        Gen::Not(a) => format!("not ({})", render(a)),
        Gen::Between(x, a, b) => format!("({} between {} and {})", render(x), render(a), render(b)),
        Gen::Missing(i, n) => format!("({} is {}missing)", FEATS[*i], if *n { "not " } else { "" }),
        Gen::InList(x, l, n) => format!(
            "({} {}in [{}])",
            render(x),
            if *n { "not " } else { "" },
            l.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Gen::StrEq(ne, de) => format!(
            "(country {} '{}')",
            if *ne { "!=" } else { "==" },
            if *de { "DE" } else { "FR" }
        ),
        Gen::Default(a, b) => format!("default({}, {})", render(a), render(b)),
        Gen::Extreme(max, args) => format!(
            "{}({})",
            if *max { "max" } else { "min" },
            args.iter().map(render).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Reference semantics, written the obvious way: None is missing/unknown.
fn num_ref(g: &Gen, f: &[Option<f64>]) -> Option<f64> {
    match g {
        Gen::Num(n) => Some(f64::from(*n)),
        Gen::Feat(i) => f[*i],
        Gen::Neg(a) => num_ref(a, f).map(|v| -v),
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
        // Missing arguments are ignored; missing only when all are.
        Gen::Extreme(max, args) => {
            args.iter()
                .filter_map(|a| num_ref(a, f))
                .reduce(|x, y| if (y > x) == *max { y } else { x })
        }
        _ => unreachable!(),
    }
}

fn bool_ref(g: &Gen, f: &[Option<f64>], country: Option<&str>) -> Option<bool> {
    match g {
        Gen::Cmp(o, a, b) => {
            let (x, y) = (num_ref(a, f)?, num_ref(b, f)?);
            Some(match *o {
                "<" => x < y,
                "<=" => x <= y,
                ">" => x > y,
                ">=" => x >= y,
                "==" => x == y,
                _ => x != y,
            })
        }
        Gen::Between(x, a, b) => {
            let (x, a, b) = (num_ref(x, f)?, num_ref(a, f)?, num_ref(b, f)?);
            Some(a <= x && x <= b)
        }
        Gen::Missing(i, n) => Some(f[*i].is_none() != *n),
        Gen::InList(x, l, n) => {
            let x = num_ref(x, f)?;
            Some(l.iter().any(|v| f64::from(*v) == x) != *n)
        }
        Gen::StrEq(ne, de) => country.map(|c| (c == if *de { "DE" } else { "FR" }) != *ne),
        Gen::And(a, b) => match (bool_ref(a, f, country), bool_ref(b, f, country)) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        Gen::Or(a, b) => match (bool_ref(a, f, country), bool_ref(b, f, country)) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        Gen::Not(a) => bool_ref(a, f, country).map(|b| !b),
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
    let bounded = prop_oneof![
        (0usize..4).prop_map(Gen::Feat),
        (any::<bool>(), 0usize..4, 0usize..4)
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

/// Compiles `g` and checks its evaluation against [`bool_ref`].
fn check_against_reference(
    g: &Gen,
    values: &[Option<i32>],
    country: Option<&str>,
) -> Result<(), TestCaseError> {
    let set = default_set();
    let scope = Scope::new(&set, &[]);
    let src = render(g);
    let mut lists: Vec<CompiledList> = Vec::new();
    let program = compile(&src, &scope, &mut lists).unwrap_or_else(|e| panic!("{src}: {e:?}"));
    let f: Vec<Option<f64>> = values.iter().map(|v| v.map(f64::from)).collect();
    let mut nums = vec![f64::NAN; scope.numeric_slots()];
    for (i, name) in FEATS.iter().enumerate() {
        nums[set.index_of(name).unwrap()] = f[i].unwrap_or(f64::NAN);
    }
    let mut strs = [0u64; 9];
    strs[Scope::string_field("country").unwrap() as usize] = country.map_or(0, compile::str_hash);
    let want = bool_ref(g, &f, country);
    for got in [
        program.eval(&nums, &strs, &lists),
        program.run(&mut [0.0; program::MAX_STACK], &nums, &strs, &lists),
    ] {
        let got = if got.is_nan() { None } else { Some(got == 1.0) };
        prop_assert_eq!(got, want, "{}", src);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn compiled_evaluation_equals_the_reference_interpreter(
        g in bool_gen(),
        values in proptest::collection::vec(proptest::option::of(-3i32..15), 4),
        country in proptest::option::of(prop_oneof![Just("DE"), Just("FR"), Just("NL")]),
    ) {
        check_against_reference(&g, &values, country)?;
    }

    #[test]
    fn screens_never_reject_a_condition_that_could_be_true(
        g in screened_gen(),
        values in proptest::collection::vec(proptest::option::of(-6i32..21), 4),
        country in proptest::option::of(prop_oneof![Just("DE"), Just("FR"), Just("NL")]),
    ) {
        check_against_reference(&g, &values, country)?;
    }

    #[test]
    fn the_parser_and_compiler_never_panic(src in "\\PC{0,80}") {
        let set = default_set();
        let scope = Scope::new(&set, &[]);
        let _ = compile(&src, &scope, &mut Vec::new());
    }

    #[test]
    fn token_soup_never_panics(tokens in proptest::collection::vec(prop_oneof![
        Just("amount"), Just("and"), Just("or"), Just("not"), Just("("), Just(")"), Just(">"), Just("=="),
        Just("in"), Just("["), Just("]"), Just(","), Just("'x'"), Just("3"), Just("-"), Just("between"),
        Just("is"), Just("missing"), Just("lists.a"), Just("max("), Just("country"),
    ], 0..30)) {
        let set = default_set();
        let scope = Scope::new(&set, &["a".to_string()]);
        let _ = compile(&tokens.join(" "), &scope, &mut vec![CompiledList::default()]);
    }
}

// ---- hot reload ----

fn write_rules(dir: &Path, threshold: u32, rules: usize) {
    let mut text = String::from("rules:\n");
    for i in 0..rules {
        text.push_str(&format!(
            "  - id: r{i}\n    when: amount > {threshold}\n    action: review\n    reason: {{ code: r{i}, text: t }}\n"
        ));
    }
    std::fs::write(dir.join("r.yaml"), text).unwrap();
}

#[test]
fn reload_swaps_a_good_ruleset_and_keeps_the_old_one_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_rules(dir.path(), 10, 1);
    let set = Arc::new(default_set());
    let store = RuleStore::load(RulesSource::Dir(dir.path().to_path_buf()), set).unwrap();
    let v1 = store.current().version.clone();
    write_rules(dir.path(), 20, 2);
    let r2 = store.reload().unwrap();
    assert_ne!(r2.version, v1);
    assert_eq!(store.current().rules.len(), 2);
    std::fs::write(
        dir.path().join("r.yaml"),
        "rules:\n  - id: broken\n    when: amount >\n",
    )
    .unwrap();
    let err = store.reload().unwrap_err();
    assert!(err.to_string().contains("r.yaml"), "{err}");
    assert_eq!(
        store.current().version,
        r2.version,
        "the running ruleset stays"
    );
}

#[test]
fn concurrent_evaluation_during_swaps_always_sees_a_whole_ruleset() {
    let dir = tempfile::tempdir().unwrap();
    write_rules(dir.path(), 10, 1);
    let set = Arc::new(default_set());
    let amount = set.index_of("amount").unwrap();
    let store = Arc::new(RuleStore::load(RulesSource::Dir(dir.path().to_path_buf()), set).unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut hits = Hits::default();
                let mut seen = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let rs = store.current();
                    let mut nums = vec![f64::NAN; rs.numeric_slots];
                    nums[amount] = 15.0;
                    rs.evaluate(&nums, &[0; 9], &mut hits);
                    // Version A: 1 rule at 10 (fires); version B: 3 rules at 20 (none fire).
                    match rs.rules.len() {
                        1 => assert_eq!(hits.live.len(), 1),
                        3 => assert_eq!(hits.live.len(), 0),
                        n => panic!("torn ruleset with {n} rules"),
                    }
                    seen += 1;
                }
                seen
            })
        })
        .collect();
    for i in 0..30 {
        if i % 2 == 0 {
            write_rules(dir.path(), 20, 3);
        } else {
            write_rules(dir.path(), 10, 1);
        }
        store.reload().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
}

#[test]
fn the_watcher_reloads_on_change_and_reports_rejections() {
    let dir = tempfile::tempdir().unwrap();
    write_rules(dir.path(), 10, 1);
    let set = Arc::new(default_set());
    let store = Arc::new(RuleStore::load(RulesSource::Dir(dir.path().to_path_buf()), set).unwrap());
    let v1 = store.current().version.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let shutdown = crate::lifecycle::Shutdown::new();
    let handle = reload::watch(store.clone(), shutdown.clone(), move |r| {
        let _ = tx.send(r.map(|rs| rs.version.clone()).map_err(|e| e.to_string()));
    })
    .unwrap();
    write_rules(dir.path(), 30, 2);
    let got = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("a reload after the change");
    let v2 = got.unwrap();
    assert_ne!(v2, v1);
    std::fs::write(dir.path().join("r.yaml"), "rules: [").unwrap();
    let got = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("a reload attempt");
    assert!(got.unwrap_err().contains("r.yaml"));
    assert_eq!(store.current().version, v2);
    shutdown.trigger();
    handle.join().unwrap();
}
