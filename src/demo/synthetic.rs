//! Synthetic rulesets of any size over any feature set, for benchmarks, the
//! load test and allocation tests. Each rule mixes the constructs analysts use:
//! comparisons, arithmetic, `and`/`or`, `between`, `default`, lists and text fields.

/// `n` rules (YAML) over the features `names`, and their list files, as
/// `(path, content)` pairs.
pub fn synthetic_rule_files(n: usize, names: &[String]) -> Vec<(String, String)> {
    // Thresholds sit high, so that (as in production) few rules fire on most
    // events and evaluation, not explanation, is what gets measured.
    let shapes = [
        "{a} > {k}00 and {b} > {k}0",
        "{a} > {k}0 * default({b}, 50) + {k}000 and {c} >= 5",
        "{a} > {k}000 and ({b} >= 0.9{k} or {c} > {k})",
        "{a} between {k}000 and {k}050",
        "country in lists.synthetic_countries and {a} > {k}0",
        "terminal.id not in lists.synthetic_terminals and {a} > {k}00",
        "max({a}, {b}) > {k}00000 and not ({c} == 1)",
        "{a} > {k}00 and {b} < 60",
    ];
    let feature = |i: usize| names[i % names.len()].as_str();
    let mut rules = String::from("rules:\n");
    for i in 0..n {
        let k = 2 + i % 7;
        let when = shapes[i % shapes.len()]
            .replace("{k}", &k.to_string())
            .replace("{a}", feature(i * 7 + 1))
            .replace("{b}", feature(i * 11 + 2))
            .replace("{c}", feature(i * 13 + 3));
        let (action, mode) = match i % 10 {
            0 => ("block", "shadow"),
            1..=3 => ("review", "live"),
            _ => ("score", "live"),
        };
        rules.push_str(&format!(
            "  - id: synthetic_{i}\n    when: \"{when}\"\n    action: {action}\n    score: 0.{s}\n    mode: {mode}\n    priority: {p}\n    reason: {{ code: synthetic_{i}, text: Synthetic rule {i} }}\n",
            s = 1 + i % 8,
            p = i % 13,
        ));
    }
    vec![
        ("rules/synthetic.yaml".to_string(), rules),
        (
            "rules/lists/synthetic_countries.txt".to_string(),
            "RU\nNG\nBR\nVN\nKP\n".to_string(),
        ),
        (
            "rules/lists/synthetic_terminals.txt".to_string(),
            (0..200).map(|i| format!("term-{i}\n")).collect(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hundred_synthetic_rules_compile_over_every_builtin_set() {
        for name in ["default", "handbook", "model"] {
            let set = crate::features::load_feature_set(name).unwrap();
            let files = synthetic_rule_files(100, &set.names);
            let refs: Vec<(&str, &str)> = files
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            let rs = crate::rules::Ruleset::from_files(&refs, &set).unwrap();
            assert_eq!(rs.rules.len(), 100, "{name}");
        }
    }
}
