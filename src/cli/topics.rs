//! `fraudstream topics`: every topic the configuration needs, with its settings;
//! `--create` creates the missing ones.

use super::run::RunArgs;
use crate::config;
use crate::pipeline::topics::{self, Create, Partitions, TopicStatus};
use clap::Args;
use std::fmt::Write;

/// Flags of `topics`.
#[derive(Debug, Args)]
pub struct TopicsArgs {
    /// Create every missing topic (the internal ones are also created by `run`).
    #[arg(long)]
    pub create: bool,
    /// Partitions of the input topic, when `--create` must create it too.
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Where the brokers and topics are.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Prints (or creates) the topics; fails if any is missing or wrongly partitioned.
pub fn run(args: TopicsArgs) -> anyhow::Result<()> {
    let cfg = config::load(args.run.config.as_deref(), args.run.overrides())?;
    let create = if args.create {
        Create::All {
            input_partitions: args.partitions,
        }
    } else {
        Create::Nothing
    };
    let statuses = topics::survey(&cfg, create)?;
    print!("{}", table(&statuses));
    // Without --create, a missing internal topic is fine: `run` creates it.
    let required: Vec<TopicStatus> = statuses
        .into_iter()
        .filter(|s| args.create || !(s.spec.internal && s.found.is_none()))
        .collect();
    topics::check(&required)?;
    Ok(())
}

/// One line per topic: name, role, partition rule, settings, what was found.
pub fn table(statuses: &[TopicStatus]) -> String {
    let input = statuses.first().and_then(|s| s.found);
    let mut out = format!(
        "{:<32} {:<21} {:<11} {:<24} status\n",
        "topic", "role", "partitions", "settings"
    );
    for s in statuses {
        let rule = match (s.spec.partitions, input) {
            (Partitions::Any, _) if s.spec.role == "input" => "N".to_string(),
            (Partitions::Any, _) => "any".to_string(),
            (Partitions::SameAsInput, Some(n)) => format!("{n} (= input)"),
            (Partitions::SameAsInput, None) => "= input".to_string(),
            (Partitions::AtLeastInput, Some(n)) => format!(">= {n}"),
            (Partitions::AtLeastInput, None) => ">= input".to_string(),
        };
        let settings: Vec<String> = s
            .spec
            .settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let settings = if settings.is_empty() {
            "-".to_string()
        } else {
            settings.join(",")
        };
        let status = match (s.found, input) {
            (None, _) if s.spec.internal => "missing (`run` creates it)".to_string(),
            (None, _) => "missing".to_string(),
            (Some(n), Some(i)) => match topics::partition_problem(&s.spec, n, "", i) {
                Some(_) => format!("WRONG: {n} partitions"),
                None if s.created => format!("created, {n} partitions"),
                None => format!("ok, {n} partitions"),
            },
            (Some(n), None) => format!("{n} partitions"),
        };
        let _ = writeln!(
            out,
            "{:<32} {:<21} {:<11} {:<24} {status}",
            s.spec.name, s.spec.role, rule, settings
        );
    }
    out
}
