//! Text matching: lists keep values as written, codes ignore case, list
//! problems are reported at `file:line:col`, and a hash match never decides.

use super::missing_tests::field_case_passes;
use super::text::text_hash;
use super::*;
use crate::features::load_feature_set;

fn load(files: &[(&str, &str)]) -> Result<Ruleset, RulesError> {
    Ruleset::from_files(files, &load_feature_set("default").unwrap())
}

/// A rule file with one rule `when` and its in-file tests (YAML flow lines).
fn rule(when: &str, tests: &[&str]) -> String {
    let mut text = format!(
        "rules:\n  - id: r\n    when: \"{when}\"\n    action: review\n    reason: {{ code: r, text: t }}\n    tests:\n"
    );
    for t in tests {
        text.push_str(&format!("      - {t}\n"));
    }
    text
}

#[test]
fn field_case_07_list_values_are_kept_as_written() {
    field_case_passes("07-list-values", 3);
}

#[test]
fn a_hash_collision_never_passes_for_a_listed_or_written_text() {
    // A real 64-bit collision of the text hash (see the list file).
    let (ours, forged) = ("POS-38fd3e73d2a78d29", "POS-6def6a1a7605c1c1");
    assert_eq!(text_hash(ours, false), text_hash(forged, false));
    assert_eq!(
        text_hash(ours, false),
        crate::state::key_hash(text::TEXT_SEED, ours.as_bytes())
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/forged-hash/rules");
    let (outcomes, errors) = test_dir(&dir, &load_feature_set("default").unwrap());
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(outcomes.len(), 10);
    for o in outcomes {
        assert!(o.passed, "{} :: {}: {:?}", o.rule, o.name, o.error);
    }
}

#[test]
fn codes_match_whatever_their_case_and_other_text_only_as_written() {
    // (condition, list file, test cases): every case must pass.
    let cases: [(&str, &str, &[&str]); 6] = [
        (
            "country == 'fr'",
            "",
            &[
                "{ features: { country: FR }, expect: hit }",
                "{ features: { country: fr }, expect: hit }",
                "{ features: { country: DE }, expect: miss }",
            ],
        ),
        (
            "country in lists.l",
            "ru\nNg # Nigeria\n",
            &[
                "{ features: { country: RU }, expect: hit }",
                "{ features: { country: nG }, expect: hit }",
                "{ features: { country: BR }, expect: miss }",
            ],
        ),
        (
            "currency not in ['eur', 'Usd']",
            "",
            &[
                "{ features: { currency: EUR }, expect: miss }",
                "{ features: { currency: usd }, expect: miss }",
                "{ features: { currency: JPY }, expect: hit }",
            ],
        ),
        (
            "country == currency",
            "",
            &["{ features: { country: abc, currency: ABC }, expect: hit }"],
        ),
        (
            "terminal.id == 'pos-1'",
            "",
            &[
                "{ features: { terminal.id: pos-1 }, expect: hit }",
                "{ features: { terminal.id: POS-1 }, expect: miss }",
            ],
        ),
        (
            "terminal.id in lists.l or device.id in lists.l",
            "T1\n",
            &[
                "{ features: { terminal.id: t1 }, expect: miss }",
                "{ features: { device.id: T1 }, expect: hit }",
            ],
        ),
    ];
    for (when, list, tests) in cases {
        let text = rule(when, tests);
        let mut files = vec![("rules/r.yaml", text.as_str())];
        if !list.is_empty() || when.contains("lists.") {
            files.push(("rules/lists/l.txt", list));
        }
        let rs = load(&files).unwrap_or_else(|e| panic!("{when}: {e}"));
        assert_eq!(rs.tests_passed, tests.len(), "{when}");
    }
    // A code read from an event: an event's lower-case country matches.
    let text = rule(
        "country in lists.l",
        &["{ events: [ { account_id: a, terminal_id: t, amount: 5, ts: '2024-01-01T10:00:00Z', country: de } ], expect: hit }"],
    );
    load(&[("rules/r.yaml", &text), ("rules/lists/l.txt", "DE\n")]).unwrap();
}

#[test]
fn list_values_that_can_never_match_are_errors_at_their_place() {
    // (condition, list file, expected "line:col: message" of each error).
    let cases: [(&str, &str, &[&str]); 6] = [
        (
            "currency in lists.l",
            "EUR\n  EURO\n# comment\nusd\nE1R # typo\n",
            &[
                "2:3: 'EURO' can never match: the rules compare this list with currency (currency is a 3-letter ISO 4217 code)",
                "5:1: 'E1R' can never match",
            ],
        ),
        (
            "mcc in lists.l",
            "5411\n0742\n12345\n",
            &["2:1: '0742' can never match", "3:1: '12345' can never match"],
        ),
        (
            "amount in lists.l",
            "5\n5.5\nfive\n",
            &["3:1: 'five' can never match: the rules compare this list with a number"],
        ),
        // A value one use can match is fine.
        ("mcc in lists.l or terminal.id in lists.l", "0742\n", &[]),
        ("amount in lists.l or mcc in lists.l", "0742\n", &[]),
        // Unused lists are not checked against any field.
        ("amount > 1", "0742\nx\n", &[]),
    ];
    for (when, list, want) in cases {
        let text = rule(when, &[]);
        let got = match load(&[("rules/r.yaml", &text), ("rules/lists/l.txt", list)]) {
            Ok(_) => Vec::new(),
            Err(e) => e.0,
        };
        assert_eq!(got.len(), want.len(), "{when}: {got:?}");
        for (e, w) in got.iter().zip(want.iter()) {
            assert_eq!(e.file, "rules/lists/l.txt");
            let at = format!("{}:{}: {}", e.line, e.col, e.message);
            assert!(at.starts_with(w), "{when}: {at}");
        }
    }
}

#[test]
fn text_constants_that_can_never_match_are_errors_at_their_place() {
    // (condition, the constant at fault, the message)
    let cases = [
        (
            "currency == 'EURO'",
            "'EURO'",
            "'EURO' can never match: currency is a 3-letter",
        ),
        (
            "mcc != '0742'",
            "'0742'",
            "'0742' can never match: mcc is a number",
        ),
        (
            "currency in ['EUR', 'euro']",
            "'euro'",
            "'euro' can never match",
        ),
        (
            "mcc in ['5411', 7995]",
            "7995",
            "a number in a list compared with text; quote it",
        ),
        (
            "amount in [5, '6']",
            "'6'",
            "text in a list compared with a number",
        ),
        (
            "terminal.id == ''",
            "''",
            "'' can never match: terminal.id holds 1 to 256 bytes",
        ),
    ];
    for (when, constant, want) in cases {
        let text = format!(
            "rules:\n  - id: r\n    action: review\n    reason: {{ code: r, text: t }}\n    when: {when}\n"
        );
        let e = load(&[("rules/r.yaml", &text)]).unwrap_err();
        assert_eq!(e.0.len(), 1, "{when}: {e}");
        let e = &e.0[0];
        assert!(e.message.starts_with(want), "{when}: {e}");
        // The column points at the constant ("    when: " is 10 characters).
        let at = when.find(constant).unwrap();
        assert_eq!((e.line, e.col), (5, 11 + at), "{when}: {e}");
    }
}

#[test]
fn duplicate_list_values_are_warnings_at_their_place() {
    // (condition, list, expected "line:col" of each warning)
    let cases: [(&str, &str, &[&str]); 4] = [
        (
            "terminal.id in lists.l",
            "T1\nT2\n  T1  # again\n",
            &["3:3"],
        ),
        // As a terminal id, case tells values apart; as a code it does not.
        ("terminal.id in lists.l", "t1\nT1\n", &[]),
        ("country in lists.l", "fr\nDE\nFR\n", &["3:1"]),
        ("amount > 1", "x\nx\n", &["2:1"]),
    ];
    for (when, list, want) in cases {
        let text = rule(when, &[]);
        let rs = load(&[("rules/r.yaml", &text), ("rules/lists/l.txt", list)]).unwrap();
        let got: Vec<String> = rs
            .warnings
            .iter()
            .map(|w| format!("{}:{}", w.line, w.col))
            .collect();
        assert_eq!(got, want, "{when}: {:?}", rs.warnings);
        for w in &rs.warnings {
            assert_eq!(w.file, "rules/lists/l.txt");
            assert!(w.message.starts_with("warning: "), "{w}");
            assert!(w.message.contains("is listed again (first on line"), "{w}");
        }
    }
}
