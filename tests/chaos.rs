//! Chaos: the processor as a separate process, SIGKILLed at random moments and
//! restarted, against librdkafka's mock cluster (a real Kafka protocol server).
//! Every event ends with exactly one decision, equal to an uninterrupted run's.

mod common;

#[test]
fn sigkill_at_random_moments_loses_nothing_duplicates_nothing_and_restores_state() {
    let cluster = common::Cluster::start(2);
    common::chaos::run_chaos(&cluster.config, 2, 2_000, 4);
}
