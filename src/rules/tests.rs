use super::compile::{compile, Scope};
use super::program::Screen;
use super::reload::{RuleStore, RulesSource};
use super::text::CompiledList;
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

/// Test events carry `ts` and `amount` as a producer sends them: an epoch-ms
/// number is a time, and a seconds number is rejected as live rejects it;
/// `6e3` is the amount 6000. Each (ts, ts, amount, count, error) is a case.
#[test]
fn test_events_read_numbers_as_the_live_parser_does() {
    let cases = [
        ("1704103200000", "1704103500000", "10", "2", None),
        ("1704103200000", "\"2024-01-01T10:05:00Z\"", "10", "2", None),
        ("1704103200000", "1704103800001", "10", "1", None),
        ("1704103200000", "1704103200000", "6e3", "2", None),
        ("1704103200000", "1704103500000", "\"10.00\"", "2", None),
        (
            "1704103200",
            "1704103500",
            "10",
            "2",
            Some("timestamp_in_seconds"),
        ),
        // Microseconds: live, in the future; in a test (any date goes), after
        // the latest event time the state holds.
        (
            "1704103200000",
            "1704103500000000",
            "10",
            "2",
            Some("invalid_timestamp"),
        ),
        (
            "1704103200000",
            "1704103500000",
            "6e-3",
            "2",
            Some("invalid_amount"),
        ),
    ];
    for (t1, t2, amount, count, error) in cases {
        let event =
            |ts: &str| format!("{{ account_id: a1, terminal_id: t1, amount: {amount}, ts: {ts} }}");
        let text = format!(
            "{RULE_HEAD}    when: account.tx_count_10m == {count}\n    tests:\n      - name: n\n        events: [ {}, {} ]\n        expect: hit\n",
            event(t1),
            event(t2)
        );
        match (load(&[("rules/a.yaml", &text)]), error) {
            (Ok(_), None) => {}
            (Err(e), Some(reason)) => {
                let msg = e.0[0].to_string();
                assert!(msg.contains(reason), "{t1} {t2} {amount}: {msg}");
            }
            (Ok(_), Some(_)) => panic!("{t1} {t2} {amount}: accepted"),
            (Err(e), None) => panic!("{t1} {t2} {amount}: {}", e.0[0]),
        }
    }
}

/// Arithmetic on decimal amounts compares as the decimals do (each case: the
/// condition, the amount, the account's 30-day mean, whether it holds), with
/// its screen and without; amounts a cent apart stay apart.
#[test]
fn arithmetic_on_amounts_compares_as_the_decimals_do() {
    let set = default_set();
    let scope = Scope::new(&set, &[]);
    let (amount, avg) = (
        set.index_of("amount").unwrap(),
        set.index_of("account.avg_amount_30d").unwrap(),
    );
    let cases = [
        ("amount * 3 > 0.3", 0.10, 0.0, false),
        ("amount * 3 == 0.3", 0.10, 0.0, true),
        ("3 * amount <= 0.3", 0.10, 0.0, true),
        ("amount - 0.1 >= 0.2", 0.30, 0.0, true),
        ("amount - 0.1 < 0.2", 0.30, 0.0, false),
        ("amount > 3 * account.avg_amount_30d", 0.30, 0.10, false),
        ("amount >= 3 * account.avg_amount_30d", 0.30, 0.10, true),
        ("amount / account.avg_amount_30d >= 3", 0.30, 0.10, true),
        ("amount / account.avg_amount_30d < 3", 0.30, 0.10, false),
        ("amount + account.avg_amount_30d == 0.3", 0.10, 0.20, true),
        ("amount + account.avg_amount_30d != 0.3", 0.10, 0.20, false),
        ("amount * 3 between 0.3 and 0.6", 0.10, 0.0, true),
        ("amount * 1.1 between 0 and 1.1", 1.0, 0.0, true),
        ("amount > 999999999.98", 999_999_999.99, 0.0, true),
        ("amount == 999999999.98", 999_999_999.99, 0.0, false),
        ("amount * 100 > 9999999999998", 99_999_999_999.99, 0.0, true),
        (
            "amount > account.avg_amount_30d",
            99_999_999_999.99,
            99_999_999_999.98,
            true,
        ),
        ("amount > 0.01", 0.02, 0.0, true),
        ("amount == 0", 0.0, 0.0, true),
        ("amount > 0", 0.01, 0.0, true),
    ];
    for (src, a, m, want) in cases {
        let mut lists = Vec::new();
        let program = compile(src, &scope, &mut lists).unwrap();
        let mut nums = vec![f64::NAN; set.len()];
        (nums[amount], nums[avg]) = (a, m);
        let texts = Texts::new([None; text::N_TEXT], 0);
        let unscreened = program.run(&mut [0.0; program::MAX_STACK], &nums, &texts, &lists);
        assert_eq!(unscreened == 1.0, want, "{src} with {a}, {m}");
        assert_eq!(program.fires(&nums, &texts, &lists), want, "{src} screened");
    }
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
    // Bounds that include their constant are loosened by the comparison's tolerance.
    assert_eq!(
        screen("country == 'DE' and 3 >= amount"),
        Screen::between([amount, amount], -inf, 3.0)
    );
    assert!(Screen::between([amount, amount], -inf, 3.0).hi > 3.0);
    assert_eq!(
        screen("amount != 5 and (country == 'DE' and amount < -2)"),
        bounded(-inf, (-2f64).next_down())
    );
    assert_eq!(
        screen("amount between 10 and 20"),
        Screen::between([amount, amount], 10.0, 20.0)
    );
    assert_eq!(
        screen("amount == 7"),
        Screen::between([amount, amount], 7.0, 7.0)
    );
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
        Screen::between([avg, amount], 1.0, 2.0)
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
    use super::program::{Cmp, Op};
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
            Op::Cmp(Cmp::Gt),
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
            Op::Cmp(Cmp::Gt),
        ]
    );
}

#[test]
fn screened_evaluation_finds_the_same_hits_as_running_every_rule() {
    let set = load_feature_set("model").unwrap();
    let files = crate::demo::synthetic::synthetic_rule_files(100, &set.names);
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let rs = Ruleset::from_files(&refs, &set).unwrap();
    let texts: Vec<Texts> = [("RU", "term-7"), ("de", "term-x")]
        .iter()
        .map(|&(country, terminal)| {
            let mut fields = [None; 9];
            fields[Scope::string_field("country").unwrap() as usize] = Some(country);
            fields[Scope::string_field("terminal.id").unwrap() as usize] = Some(terminal);
            rs.texts(fields)
        })
        .collect();
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
        let texts = &texts[event % 2];
        // Screens row by row, and (where the CPU can) eight at a time, alternately.
        let wide = event % 2 == 1 && super::wide_available();
        rs.evaluate_by(&nums, texts, &mut hits, wide);
        wide_runs += usize::from(wide);
        let (mut live, mut shadow) = (Vec::new(), Vec::new());
        for (i, r) in rs.rules.iter().enumerate() {
            let fires = r
                .program
                .run(&mut [0.0; program::MAX_STACK], &nums, texts, &rs.lists)
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
    rs.evaluate(&nums, &Texts::default(), &mut hits);
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
        rs.evaluate(&nums, &Texts::default(), &mut hits);
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

proptest! {
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
        Just("is"), Just("missing"), Just("lists.a"), Just("max("), Just("country"), Just("currency"),
        Just("mcc"), Just("'0742'"), Just("'eur'"),
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
                    rs.evaluate(&nums, &Texts::default(), &mut hits);
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
    let shutdown = crate::ops::lifecycle::Shutdown::new();
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
