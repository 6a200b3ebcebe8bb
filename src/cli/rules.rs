//! `fraudstream rules check | test | explain`: the analyst's tools.

use crate::features::{load_feature_set, FeatureSet};
use crate::rules::compile::{compile, Scope, EXTRA_NUMBERS, STRING_FIELDS};
use crate::rules::program::Op;
use crate::rules::Ruleset;
use crate::source::currency::RatesSource;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

/// Flags of `rules`.
#[derive(Debug, Args)]
pub struct RulesArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: RulesCommand,
    /// Feature set the rules are compiled against (built-in name or TOML path).
    #[arg(long, global = true, default_value = "default")]
    pub feature_set: String,
}

/// Subcommands of `rules`.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Parse and compile every file; print `file:line:col` errors; exit 1 on any.
    Check {
        /// Rules directory.
        #[arg(default_value = "rules")]
        dir: PathBuf,
    },
    /// Run every rule's in-file tests; print each case; exit 1 on any failure.
    Test {
        /// Rules directory.
        #[arg(default_value = "rules")]
        dir: PathBuf,
    },
    /// Show how an expression compiles (names resolved to slots, bytecode).
    Explain {
        /// The expression, e.g. "account.tx_count_10m > 5 and amount > 100".
        expr: String,
    },
}

/// Installs the rates the rules' tests convert amounts with: those of the
/// configuration in the working directory (as `run` finds `config/default.toml`).
/// Without the rates file only base-currency test events convert, and the
/// message says where the file was looked for.
fn install_rates() -> anyhow::Result<()> {
    let config = crate::config::load(None, figment::Figment::new())?;
    let table = RatesSource::from_config(&config.currency)?.load_or_base_only()?;
    if table.as_of_ms().is_none() && !config.currency.rates.is_empty() {
        eprintln!(
            "note: {}: test events in currencies other than {} cannot be converted",
            table.source(),
            table.base().code()
        );
    }
    crate::source::currency::install(std::sync::Arc::new(table));
    Ok(())
}

/// Runs a `rules` subcommand; returns the process exit code.
pub fn run(args: RulesArgs) -> anyhow::Result<i32> {
    let set = load_feature_set(&args.feature_set)?;
    install_rates()?;
    Ok(match args.command {
        RulesCommand::Check { dir } => check(&dir, &set),
        RulesCommand::Test { dir } => test(&dir, &set),
        RulesCommand::Explain { expr } => explain(&expr, &set),
    })
}

/// `rules check`: the load's warnings and errors, or what loaded.
fn check(dir: &Path, set: &FeatureSet) -> i32 {
    match Ruleset::load_dir(dir, set) {
        Ok(rs) => {
            for warning in &rs.warnings {
                println!("{warning}");
            }
            println!(
                "ok: {} rules ({}), {} tests passed, version {}",
                rs.rules.len(),
                rs.counts()
                    .iter()
                    .map(|(k, v)| format!("{v} {k}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                rs.tests_passed,
                rs.version
            );
            0
        }
        Err(e) => {
            for err in &e.0 {
                println!("{err}");
            }
            println!("{} error(s)", e.0.len());
            1
        }
    }
}

/// `rules test`: every case, passed or failed with why.
fn test(dir: &Path, set: &FeatureSet) -> i32 {
    let (outcomes, compile_errors) = crate::rules::test_dir(dir, set);
    for err in &compile_errors {
        println!("ERROR {err}");
    }
    let mut failed = 0;
    for o in &outcomes {
        if o.passed {
            println!("PASS {} :: {}", o.rule, o.name);
        } else {
            failed += 1;
            let detail = o
                .error
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            println!("FAIL {} :: {}\n     {detail}", o.rule, o.name);
        }
    }
    let passed = outcomes.len() - failed;
    println!("{passed} passed, {failed} failed");
    i32::from(failed > 0 || !compile_errors.is_empty())
}

/// `rules explain`: the bytecode of `expr`, each instruction with the name it reads.
fn explain(expr: &str, set: &FeatureSet) -> i32 {
    let scope = Scope::new(set, &[]);
    let program = match compile(expr, &scope, &mut Vec::new()) {
        Ok(program) => program,
        Err(e) => {
            println!("{expr}\n{}^ {}", " ".repeat(e.at), e.message);
            return 1;
        }
    };
    println!("{expr}");
    println!(
        "compiles to {} instructions (stack depth {}):",
        program.ops.len(),
        program.max_depth()
    );
    for (i, op) in program.ops.iter().enumerate() {
        let note = match op {
            Op::Load(slot) | Op::CmpConst { slot, .. } => {
                let mut names = set.names.iter().map(String::as_str).chain(EXTRA_NUMBERS);
                format!("   ; {}", names.nth(*slot as usize).unwrap_or_default())
            }
            Op::StrEq { field, text, .. } => format!(
                "   ; {} == {:?}",
                STRING_FIELDS[*field as usize], program.texts[*text as usize]
            ),
            Op::StrIn { field, .. } | Op::StrIsMissing { field, .. } => {
                format!("   ; {}", STRING_FIELDS[*field as usize])
            }
            _ => String::new(),
        };
        println!("  {i:>3}  {op:?}{note}");
    }
    0
}
