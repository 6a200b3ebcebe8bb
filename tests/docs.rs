//! The documents follow the code: every `fraudstream COMMAND --flag` written in
//! README.md, BENCHMARKS.md, models/*.md or docs/*.md names a command and a
//! flag `--help` lists; the configuration tables of docs/reference.md name
//! exactly the keys of the `Config` type (which `config/default.toml` may only
//! use), each with its default; its metric and dead-letter tables list exactly
//! what the code defines. Issue 22 item 5.

use clap::CommandFactory;
use fraudstream::cli::Cli;
use fraudstream::config::Config;
use std::collections::BTreeMap;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md, BENCHMARKS.md, the model card and format, and every docs/*.md,
/// as (name, text).
fn documents() -> Vec<(String, String)> {
    let mut files: Vec<_> = [
        "README.md",
        "BENCHMARKS.md",
        "models/README.md",
        "models/FORMAT.md",
    ]
    .iter()
    .map(|f| root().join(f))
    .collect();
    let mut guides: Vec<_> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    guides.sort();
    files.extend(guides);
    files
        .into_iter()
        .map(|p| {
            let name = p.strip_prefix(root()).unwrap().display().to_string();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// The code of a document, each piece with its line: the lines of fenced
/// blocks (a line ending in `\` joined with the next) and the inline code
/// spans of each paragraph (a span may cross a line break).
fn code_of(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    let mut pending: Option<(usize, String)> = None;
    let mut paragraph: Option<(usize, String)> = None;
    let spans = |paragraph: Option<(usize, String)>, out: &mut Vec<(usize, String)>| {
        if let Some((start, text)) = paragraph {
            let pieces = text.split('`').skip(1).step_by(2);
            out.extend(pieces.map(|span| (start, span.to_string())));
        }
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            spans(paragraph.take(), &mut out);
            fenced = !fenced;
        } else if fenced {
            let (start, mut joined) = pending.take().unwrap_or((i + 1, String::new()));
            joined.push_str(line.trim_end().trim_end_matches('\\'));
            joined.push(' ');
            if line.trim_end().ends_with('\\') {
                pending = Some((start, joined));
            } else {
                out.push((start, joined));
            }
        } else if line.trim().is_empty() {
            spans(paragraph.take(), &mut out);
        } else {
            let (_, text) = paragraph.get_or_insert((i + 1, String::new()));
            text.push_str(line);
            text.push(' ');
        }
    }
    spans(paragraph, &mut out);
    out
}

/// Each command line in a piece of code: the words after `fraudstream` (or
/// `cargo run --release --`) up to the end of the shell command.
fn invocations(code: &str) -> Vec<Vec<String>> {
    let code = code.replace("cargo run --release --", "fraudstream");
    let mut out = Vec::new();
    for command in code.split(['|', ';', '&', '>', '(', ')']) {
        let command = command.split(" #").next().unwrap();
        let words: Vec<&str> = command.split_whitespace().collect();
        for (k, w) in words.iter().enumerate() {
            if *w == "fraudstream" || w.ends_with("/fraudstream") {
                let args = words[k + 1..]
                    .iter()
                    .take_while(|a| **a != "fraudstream" && !a.ends_with("/fraudstream"))
                    .map(|a| a.trim_matches(['[', ']', '\'', '"', ',', '.']).to_string())
                    .collect();
                out.push(args);
            }
        }
    }
    out
}

/// The command-line interface, built (global flags propagated to every subcommand).
fn cli() -> clap::Command {
    let mut cli = Cli::command();
    cli.build();
    cli
}

/// Checks one invocation against the CLI: the subcommands exist and every
/// `--flag` is one of the (sub)command's (global flags included: `cli` is built).
fn check_invocation(cli: &clap::Command, args: &[String]) -> Result<(), String> {
    let mut command = cli;
    let mut words = args.iter().peekable();
    while let Some(word) = words.peek() {
        if command.get_subcommands().next().is_none() || word.starts_with('-') {
            break;
        }
        command = command
            .find_subcommand(word.as_str())
            .ok_or_else(|| format!("no subcommand `{word}` of `{}`", command.get_name()))?;
        words.next();
    }
    if command.get_subcommands().next().is_some() && command.get_name() != cli.get_name() {
        return Err(format!("`{}` needs a subcommand", command.get_name()));
    }
    for word in words.filter(|w| w.starts_with("--") && w.len() > 2) {
        let flag = word[2..].split('=').next().unwrap();
        let known =
            flag == "version" || command.get_arguments().any(|a| a.get_long() == Some(flag));
        if !known {
            return Err(format!("`{}` has no flag --{flag}", command.get_name()));
        }
    }
    Ok(())
}

#[test]
fn every_documented_command_and_flag_exists() {
    let cli = cli();
    let mut problems = Vec::new();
    let mut checked = 0;
    for (name, text) in documents() {
        for (line, code) in code_of(&text) {
            for args in invocations(&code) {
                checked += 1;
                if let Err(e) = check_invocation(&cli, &args) {
                    problems.push(format!("{name}:{line}: {e} (in `{}`)", code.trim()));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        checked > 50,
        "only {checked} commands found in the documents"
    );
}

/// A mistyped flag, an unknown subcommand and a missing nested subcommand are
/// caught: the check can fail.
#[test]
fn a_wrong_flag_or_command_is_reported() {
    let cli = cli();
    let cases = [
        ("fraudstream backtest --modle m.json", "no flag --modle"),
        ("fraudstream retrain --input x", "no subcommand `retrain`"),
        ("fraudstream rules tset rules/", "no subcommand `tset`"),
        ("fraudstream model --from lightgbm", "needs a subcommand"),
        ("cargo run --release -- demo --evnts 5", "no flag --evnts"),
    ];
    for (code, expected) in cases {
        let args = &invocations(code)[0];
        let e = check_invocation(&cli, args).unwrap_err();
        assert!(e.contains(expected), "{code}: {e}");
    }
    let good = "fraudstream rules test rules/ | tail -1 # --not-a-flag";
    assert_eq!(check_invocation(&cli, &invocations(good)[0]), Ok(()));
}

/// Every key of the configuration with its default, from the `Config` type:
/// `section.key` -> value (a map such as `kafka.client` is one key).
fn config_keys() -> BTreeMap<String, toml::Value> {
    let value = toml::Value::try_from(Config::default()).unwrap();
    let mut keys = BTreeMap::new();
    for (section, table) in value.as_table().unwrap() {
        for (key, v) in table.as_table().unwrap() {
            keys.insert(format!("{section}.{key}"), v.clone());
        }
    }
    keys
}

/// The rows of the tables under `## Configuration` in docs/reference.md: the
/// key (first cell) and its default (second cell), each with its line.
fn documented_keys(reference: &str) -> Vec<(usize, String, String)> {
    let mut rows = Vec::new();
    let mut inside = false;
    for (i, line) in reference.lines().enumerate() {
        if line.starts_with("## ") {
            inside = line == "## Configuration";
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if !inside || cells.len() < 4 || !cells[1].starts_with('`') {
            continue;
        }
        let key = cells[1].trim_matches('`').to_string();
        rows.push((i + 1, key, cells[2].trim_matches('`').to_string()));
    }
    rows
}

#[test]
fn the_configuration_reference_matches_the_config_type() {
    let keys = config_keys();
    let reference = std::fs::read_to_string(root().join("docs/reference.md")).unwrap();
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    for (line, key, default) in documented_keys(&reference) {
        let Some(value) = keys.get(&key) else {
            problems.push(format!(
                "docs/reference.md:{line}: `{key}` is not a config key"
            ));
            continue;
        };
        let written = toml::from_str::<toml::Table>(&format!("v = {default}"))
            .map(|t| t["v"].clone())
            .map_err(|e| e.message().to_string());
        if written.as_ref() != Ok(value) {
            problems.push(format!(
                "docs/reference.md:{line}: `{key}` defaults to {value}, the table says {default}"
            ));
        }
        seen.push(key);
    }
    for key in keys.keys().filter(|k| !seen.contains(k)) {
        problems.push(format!(
            "docs/reference.md: config key `{key}` is not documented"
        ));
    }
    let shipped: toml::Table =
        toml::from_str(&std::fs::read_to_string(root().join("config/default.toml")).unwrap())
            .unwrap();
    for (section, table) in &shipped {
        for key in table.as_table().unwrap().keys() {
            let key = format!("{section}.{key}");
            if !keys.contains_key(&key) {
                problems.push(format!("config/default.toml: `{key}` is not a config key"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every metric defined in src/ops/metrics.rs (where every metric name lives) is
/// in docs/reference.md, and every `fraudstream_*` name the documents give is
/// one of them.
#[test]
fn the_metric_reference_matches_the_metrics_module() {
    let source = std::fs::read_to_string(root().join("src/ops/metrics.rs")).unwrap();
    let exported: Vec<String> = source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("fraudstream_") && !s.contains(' '))
        .map(String::from)
        .collect();
    assert!(
        exported.len() > 30,
        "only {} metric names found",
        exported.len()
    );
    let reference = std::fs::read_to_string(root().join("docs/reference.md")).unwrap();
    let mut problems: Vec<String> = exported
        .iter()
        .filter(|n| !reference.contains(&format!("`{n}`")))
        .map(|n| format!("docs/reference.md: metric `{n}` is not documented"))
        .collect();
    for (name, text) in documents() {
        for (line, code) in code_of(&text) {
            let code = code.trim();
            let is_name = code.starts_with("fraudstream_")
                && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            let base = code
                .trim_end_matches("_bucket")
                .trim_end_matches("_count")
                .trim_end_matches("_sum");
            if is_name && !exported.iter().any(|n| n == code || n == base) {
                problems.push(format!("{name}:{line}: `{code}` is not an exported metric"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The dead-letter table of docs/reference.md lists exactly the reasons the
/// parser gives (the `fraudstream.error.reason` header values), no more, no less.
#[test]
fn the_dead_letter_reasons_match_the_parser() {
    let reference = std::fs::read_to_string(root().join("docs/reference.md")).unwrap();
    let section = reference
        .split("\n## ")
        .find(|s| s.starts_with("Dead letters"))
        .expect("a Dead letters section");
    let mut documented: Vec<&str> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .collect();
    let mut codes: Vec<&str> = fraudstream::source::event::InvalidReason::ALL
        .iter()
        .map(|r| r.code())
        .collect();
    documented.sort();
    codes.sort();
    assert_eq!(documented, codes);
}
