//! `fraudstream rules check | test | explain`: the analyst's tools.

use crate::features::load_feature_set;
use crate::rules::compile::{compile, Scope};
use crate::rules::Ruleset;
use crate::source::currency::RatesSource;
use clap::{Args, Subcommand};
use std::path::PathBuf;

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
    match args.command {
        RulesCommand::Check { dir } => match Ruleset::load_dir(&dir, &set) {
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
                Ok(0)
            }
            Err(e) => {
                for err in &e.0 {
                    println!("{err}");
                }
                println!("{} error(s)", e.0.len());
                Ok(1)
            }
        },
        RulesCommand::Test { dir } => {
            let (outcomes, compile_errors) = crate::rules::test_dir(&dir, &set);
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
            Ok(i32::from(failed > 0 || !compile_errors.is_empty()))
        }
        RulesCommand::Explain { expr } => {
            let scope = Scope::new(&set, &[]);
            let mut lists = Vec::new();
            match compile(&expr, &scope, &mut lists) {
                Ok(program) => {
                    println!("{expr}");
                    println!(
                        "compiles to {} instructions (stack depth {}):",
                        program.ops.len(),
                        program.max_depth()
                    );
                    for (i, op) in program.ops.iter().enumerate() {
                        let note = match op {
                            crate::rules::program::Op::Load(slot)
                            | crate::rules::program::Op::CmpConst { slot, .. } => {
                                let names = set
                                    .names
                                    .iter()
                                    .chain(
                                        crate::rules::compile::EXTRA_NUMBERS
                                            .iter()
                                            .map(|s| s.to_string())
                                            .collect::<Vec<_>>()
                                            .iter(),
                                    )
                                    .cloned()
                                    .collect::<Vec<_>>();
                                format!(
                                    "   ; {}",
                                    names.get(*slot as usize).cloned().unwrap_or_default()
                                )
                            }
                            crate::rules::program::Op::StrEq { field, text, .. } => {
                                format!(
                                    "   ; {} == {:?}",
                                    crate::rules::compile::STRING_FIELDS[*field as usize],
                                    program.texts[*text as usize]
                                )
                            }
                            crate::rules::program::Op::StrIn { field, .. }
                            | crate::rules::program::Op::StrIsMissing { field, .. } => {
                                format!(
                                    "   ; {}",
                                    crate::rules::compile::STRING_FIELDS[*field as usize]
                                )
                            }
                            _ => String::new(),
                        };
                        println!("  {i:>3}  {op:?}{note}");
                    }
                    Ok(0)
                }
                Err(e) => {
                    println!("{expr}\n{}^ {}", " ".repeat(e.at), e.message);
                    Ok(1)
                }
            }
        }
    }
}
