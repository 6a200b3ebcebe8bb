//! Chaos: the processor as a separate process, SIGKILLed at random moments and
//! restarted, against librdkafka's mock cluster (a real Kafka protocol server).
//! Every event ends with exactly one decision, equal to an uninterrupted run's,
//! with terminal features per partition and repartitioned.

mod common;

#[test]
fn sigkill_at_random_moments_loses_nothing_duplicates_nothing_and_restores_state() {
    let cluster = common::Cluster::start(2);
    common::chaos::run_chaos(&cluster.config, 2, 2_000, 4);
}

/// The same with terminal features repartitioned: each event is routed through
/// the terminal topic and decided by its terminal's owner, two transactions per
/// event, and both sides' state restored. The `default` feature set and starter
/// rules, whose terminal counts have no delay (the shipped model's do), so a
/// terminal state lost in a kill changes the decisions.
#[test]
fn sigkill_with_terminal_features_repartitioned_loses_and_duplicates_nothing() {
    let cluster = common::Cluster::start_with(2, |c| {
        c.kafka.terminal_topic = "fraudstream-by-terminal".into();
    });
    common::chaos::run_chaos_with(&cluster.config, 2, 1_500, 3, |c| {
        c.features.set = "default".into();
        c.model.path.clear();
        c.rules.dir = "builtin".into();
    });
}
