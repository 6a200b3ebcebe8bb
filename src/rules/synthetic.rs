//! Synthetic rulesets of any size over the default feature set, for benchmarks,
//! the load test and allocation tests. Each rule mixes the constructs analysts
//! use: comparisons, arithmetic, `and`/`or`, `between`, lists and text fields.

/// `n` rules (YAML) and one list file, as `(path, content)` pairs.
pub fn synthetic_rule_files(n: usize) -> Vec<(String, String)> {
    let shapes = [
        "account.tx_count_10m > {k} and amount > {k}0",
        "amount > {k} * default(account.avg_amount_30d, 50) and account.tx_count_30d >= 5",
        "terminal.fraud_share_7d >= 0.{k} or terminal.fraud_count_7d > {k}",
        "account.small_tx_count_10m between 2 and {k}",
        "country in lists.synthetic_countries and account_device.first_seen == 1",
        "terminal.id not in lists.synthetic_terminals and card.tx_count_24h > {k}",
        "max(account.tx_count_1h, card.tx_count_10m) > {k} and not (night == 1)",
        "amount_to_account_avg_30d > {k} and account.secs_since_last < 60",
    ];
    let mut rules = String::from("rules:\n");
    for i in 0..n {
        let k = 2 + i % 7;
        let when = shapes[i % shapes.len()].replace("{k}", &k.to_string());
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
    fn a_hundred_synthetic_rules_compile() {
        let set = crate::features::load_feature_set("default").unwrap();
        let files = synthetic_rule_files(100);
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let rs = crate::rules::Ruleset::from_files(&refs, &set).unwrap();
        assert_eq!(rs.rules.len(), 100);
    }
}
