//! Who owns which input partition, so that an instance can forward a call to
//! the owner of its account's partition ([`super::forward`]).
//!
//! Kafka Streams shares `application.server` through the assignor's user data;
//! librdkafka offers no custom assignor, so every instance instead publishes an
//! owner record on each assignment and revocation to a compacted internal topic
//! ([`topic`]: `<group_id>-api-owners`, keyed by input partition), and every
//! instance tails that topic into a partition → URL table ([`Owners`]).
//!
//! Records carry the consumer group's generation, so a late record never undoes
//! a newer one: the owner of a partition at generation `g` replaces any owner of
//! an older generation, and a release clears a partition only when it still names
//! the releasing instance at that generation or an older one. A release is
//! written and acknowledged inside the revocation callback, before the group can
//! hand the partition to another instance.

use crate::config::{client_config, Config};
use arc_swap::ArcSwap;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Why the owners topic cannot be published to or followed.
#[derive(Debug, thiserror::Error)]
pub enum OwnersError {
    /// The producer or consumer of the owners topic could not be created.
    #[error("owners topic client: {0}")]
    Client(#[from] KafkaError),
    /// The follower thread could not start.
    #[error("cannot start the owners topic follower: {0}")]
    Thread(#[from] std::io::Error),
}

/// The owners topic of `config`'s consumer group, named like Kafka Streams'
/// internal topics (`<application id>-<name>`); `None` when the API does not
/// forward (no `api.advertised_url`).
pub fn topic(config: &Config) -> Option<String> {
    (!config.api.advertised_url.is_empty() && !config.api.addr.is_empty())
        .then(|| format!("{}-api-owners", config.kafka.group_id))
}

/// One record of the owners topic (JSON), keyed by the partition number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRecord {
    /// Input partition.
    pub partition: i32,
    /// `kafka.instance_id` of the instance that owns or released it.
    pub instance: String,
    /// That instance's `api.advertised_url`.
    pub url: String,
    /// Consumer group generation of the assignment or revocation.
    pub generation: i32,
    /// True when assigned, false when released.
    pub owned: bool,
}

/// The owner of a partition, as the table knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// `kafka.instance_id` of the owner.
    pub instance: Arc<str>,
    /// Its `api.advertised_url`, without a trailing `/`.
    pub url: Arc<str>,
    generation: i32,
}

/// The partition → owner table, read by every call and written by the follower.
#[derive(Default)]
pub struct Owners {
    table: ArcSwap<Vec<Option<Owner>>>,
    partitions: AtomicI32,
}

impl Owners {
    /// The owner of input partition `partition`, if one is known.
    pub fn owner(&self, partition: i32) -> Option<Owner> {
        self.table.load().get(partition.max(0) as usize)?.clone()
    }

    /// Partitions of the input topic; 0 until the follower has read its metadata.
    pub fn partitions(&self) -> i32 {
        self.partitions.load(Ordering::Acquire)
    }

    /// Applies one record (see the module doc for the ordering rules).
    pub fn apply(&self, r: &OwnerRecord) {
        if r.partition < 0 {
            return;
        }
        let mut table = Vec::clone(&self.table.load());
        let i = r.partition as usize;
        if table.len() <= i {
            table.resize(i + 1, None);
        }
        let slot = &mut table[i];
        if let Some(cur) = slot.as_ref() {
            if cur.generation > r.generation {
                return;
            }
            if !r.owned && *cur.instance != *r.instance {
                return;
            }
        }
        *slot = r.owned.then(|| Owner {
            instance: r.instance.as_str().into(),
            url: r.url.trim_end_matches('/').into(),
            generation: r.generation,
        });
        self.table.store(Arc::new(table));
    }
}

/// The consumer group generation `consumer` is in (`-1` outside a group): the
/// new generation in an assignment callback, the one ending in a revocation.
pub fn generation<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> i32 {
    use rdkafka::bindings as rd;
    let rk = consumer.client().native_ptr();
    // SAFETY: `rk` is the live handle of `consumer`, borrowed for this call. The
    // group metadata is a copy owned here: read once, then destroyed once.
    unsafe {
        let md = rd::rd_kafka_consumer_group_metadata(rk);
        if md.is_null() {
            return -1;
        }
        let generation = rd::rd_kafka_consumer_group_metadata_generation_id(md);
        rd::rd_kafka_consumer_group_metadata_destroy(md);
        generation
    }
}

/// Publishes this instance's owner records (from the pipeline's rebalance callbacks).
pub struct Publisher {
    producer: BaseProducer,
    topic: String,
    instance: String,
    url: String,
    timeout: Duration,
}

impl Publisher {
    /// A publisher for `config` (which has an owners [`topic`]).
    pub fn new(config: &Config) -> Result<Self, OwnersError> {
        let producer = client_config(config)
            .set("enable.idempotence", "true")
            .set("linger.ms", "0")
            .create()?;
        Ok(Self {
            producer,
            topic: topic(config).unwrap_or_default(),
            instance: config.kafka.instance_id.clone(),
            url: config.api.advertised_url.trim_end_matches('/').to_string(),
            timeout: Duration::from_millis(config.processing.kafka_timeout_ms),
        })
    }

    /// Records that this instance owns (`owned`) or released `partitions` at
    /// `generation`, and waits until the records are written (at most
    /// `processing.kafka_timeout_ms`): a release must be in the log before the
    /// group can give the partition to another instance.
    pub fn publish(&self, partitions: &[i32], generation: i32, owned: bool) {
        if partitions.is_empty() {
            return;
        }
        for &partition in partitions {
            let record = OwnerRecord {
                partition,
                instance: self.instance.clone(),
                url: self.url.clone(),
                generation,
                owned,
            };
            let value = serde_json::to_vec(&record).unwrap_or_default();
            let key = partition.to_string();
            let sent = self.producer.send(
                BaseRecord::to(&self.topic)
                    .partition(partition)
                    .key(&key)
                    .payload(&value),
            );
            if let Err((e, _)) = sent {
                tracing::error!(error = %e, partition, owned, "cannot publish the partition's owner");
            }
        }
        if let Err(e) = self.producer.flush(self.timeout) {
            tracing::error!(error = %e, ?partitions, owned, "owner records not acknowledged in time");
        }
        tracing::info!(?partitions, generation, owned, "owner records published");
    }
}

/// Follows the owners topic into `owners` on a thread of its own, from the
/// beginning, until `owners` is dropped. Waits for the owners and input topics
/// to exist (`run` creates the owners topic after the API starts).
pub fn follow(config: &Config, owners: &Arc<Owners>) -> Result<(), OwnersError> {
    let owners_topic = topic(config).unwrap_or_default();
    // librdkafka wants a group even to assign; this one never joins nor commits.
    let consumer: BaseConsumer = client_config(config)
        .set("group.id", format!("{owners_topic}-reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("allow.auto.create.topics", "false")
        .set("fetch.wait.max.ms", "50")
        .create()?;
    let input = config.kafka.input_topic.clone();
    let weak = Arc::downgrade(owners);
    std::thread::Builder::new()
        .name("api-owners".into())
        .spawn(move || tail(&consumer, &owners_topic, &input, &weak))?;
    Ok(())
}

fn tail(consumer: &BaseConsumer, owners_topic: &str, input: &str, owners: &Weak<Owners>) {
    let mut assigned = false;
    while let Some(table) = owners.upgrade() {
        if !assigned {
            assigned = assign_all(consumer, owners_topic, input, &table);
            if !assigned {
                drop(table);
                std::thread::sleep(Duration::from_millis(200));
            }
            continue;
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => match msg.payload().map(serde_json::from_slice::<OwnerRecord>) {
                Some(Ok(record)) => table.apply(&record),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, offset = msg.offset(), "unreadable owner record skipped")
                }
                None => {}
            },
            Some(Err(e)) => tracing::warn!(error = %e, "reading the owners topic"),
            None => {}
        }
    }
}

/// Assigns every partition of the owners topic from the beginning and notes the
/// input topic's partition count; false while either topic is missing.
fn assign_all(consumer: &BaseConsumer, owners_topic: &str, input: &str, owners: &Owners) -> bool {
    let Ok(md) = consumer.fetch_metadata(None, Duration::from_secs(5)) else {
        return false;
    };
    let count = |name: &str| {
        md.topics()
            .iter()
            .find(|t| t.name() == name && t.error().is_none())
            .map_or(0, |t| t.partitions().len() as i32)
    };
    let (n_owners, n_input) = (count(owners_topic), count(input));
    if n_owners == 0 || n_input == 0 {
        return false;
    }
    let mut tpl = TopicPartitionList::new();
    for p in 0..n_owners {
        let _ = tpl.add_partition_offset(owners_topic, p, Offset::Beginning);
    }
    if let Err(e) = consumer.assign(&tpl) {
        tracing::warn!(error = %e, "cannot read the owners topic yet");
        return false;
    }
    owners.partitions.store(n_input, Ordering::Release);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(partition: i32, instance: &str, generation: i32, owned: bool) -> OwnerRecord {
        OwnerRecord {
            partition,
            instance: instance.into(),
            url: format!("http://{instance}:8080/"),
            generation,
            owned,
        }
    }

    fn owner_of(o: &Owners, p: i32) -> Option<String> {
        o.owner(p).map(|o| o.instance.to_string())
    }

    /// Every order in which two instances' records for one partition can
    /// arrive, against the owner they must leave.
    #[test]
    fn a_late_record_never_undoes_a_newer_one() {
        let a_owns = rec(0, "a", 4, true);
        let a_releases = rec(0, "a", 4, false);
        let b_owns = rec(0, "b", 5, true);
        let b_releases = rec(0, "b", 5, false);
        let cases: [(&[&OwnerRecord], Option<&str>); 8] = [
            (&[&a_owns], Some("a")),
            (&[&a_owns, &a_releases], None),
            (&[&a_owns, &a_releases, &b_owns], Some("b")),
            // A release that arrives after the next owner's record is ignored...
            (&[&a_owns, &b_owns, &a_releases], Some("b")),
            // ...and so is an older assignment arriving late.
            (&[&b_owns, &a_owns], Some("b")),
            (&[&b_owns, &a_owns, &a_releases], Some("b")),
            (&[&a_owns, &b_owns, &b_releases], None),
            // Another instance's release of the same generation is not ours.
            (&[&a_owns, &rec(0, "b", 4, false)], Some("a")),
        ];
        for (i, (records, want)) in cases.iter().enumerate() {
            let o = Owners::default();
            for r in *records {
                o.apply(r);
            }
            assert_eq!(owner_of(&o, 0).as_deref(), *want, "case {i}");
        }
    }

    #[test]
    fn owners_are_per_partition_and_urls_lose_their_trailing_slash() {
        let o = Owners::default();
        o.apply(&rec(3, "b", 1, true));
        o.apply(&rec(1, "a", 1, true));
        assert_eq!(owner_of(&o, 1).as_deref(), Some("a"));
        assert_eq!(owner_of(&o, 3).as_deref(), Some("b"));
        assert_eq!(owner_of(&o, 0), None);
        assert_eq!(owner_of(&o, 9), None);
        assert_eq!(&*o.owner(3).unwrap().url, "http://b:8080");
        o.apply(&rec(-1, "a", 9, true));
        assert_eq!(owner_of(&o, 1).as_deref(), Some("a"));
    }

    #[test]
    fn the_topic_is_named_after_the_group_and_exists_only_when_forwarding() {
        let mut c = Config::default();
        assert_eq!(topic(&c), None);
        c.api.addr = "127.0.0.1:8080".into();
        assert_eq!(topic(&c), None);
        c.api.advertised_url = "http://10.0.0.7:8080".into();
        c.kafka.group_id = "fraud-eu".into();
        assert_eq!(topic(&c).as_deref(), Some("fraud-eu-api-owners"));
    }
}
