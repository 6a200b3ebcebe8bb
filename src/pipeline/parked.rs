//! Records produced while a commit runs, kept for the next transaction.
//!
//! While the [`Committer`](crate::sink::Committer) holds the [`Sink`], inputs
//! are still decided (Kafka messages and the decision API's calls): their
//! records are copied into one reusable byte buffer, in the order they were
//! produced, and replayed into the Sink as soon as the next transaction
//! begins. Once warm the buffers' capacity is reused: parking allocates
//! nothing per record (dead letters aside, which the Sink allocates for too).

use crate::sink::{DeadLetter, Sink};
use std::ops::Range;

/// Where records go: the open transaction's [`Sink`], or the parking buffer
/// while a commit runs. Same calls, same meaning as [`Sink`]'s.
pub(super) trait Produce {
    /// Queues a record to `topic`, partitioned by `key`.
    fn send(&mut self, topic: &str, key: &[u8], payload: &[u8]);
    /// Queues a record to an explicit partition.
    fn send_to_partition(&mut self, topic: &str, partition: i32, key: &[u8], payload: &[u8]);
    /// Queues a record to an explicit partition with one header.
    fn send_with_header(
        &mut self,
        topic: &str,
        partition: i32,
        key: &[u8],
        payload: &[u8],
        header: (&'static str, &[u8]),
    );
    /// Queues a dead letter ([`Sink::send_dead_letter`]).
    fn send_dead_letter(
        &mut self,
        dlq_topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        dl: &DeadLetter<'_>,
    );
}

/// Where the open batch's records go now: a plain enum, so producing a record
/// is a match, not a virtual call.
pub(super) enum Out<'a> {
    /// The open transaction.
    Sink(&'a mut Sink),
    /// Parked while a commit runs.
    Parked(&'a mut Parked),
}

impl Produce for Out<'_> {
    fn send(&mut self, topic: &str, key: &[u8], payload: &[u8]) {
        match self {
            Out::Sink(s) => Sink::send(s, topic, key, payload),
            Out::Parked(p) => p.send(topic, key, payload),
        }
    }

    fn send_to_partition(&mut self, topic: &str, partition: i32, key: &[u8], payload: &[u8]) {
        match self {
            Out::Sink(s) => Sink::send_to_partition(s, topic, partition, key, payload),
            Out::Parked(p) => p.send_to_partition(topic, partition, key, payload),
        }
    }

    fn send_with_header(
        &mut self,
        topic: &str,
        partition: i32,
        key: &[u8],
        payload: &[u8],
        header: (&'static str, &[u8]),
    ) {
        match self {
            Out::Sink(s) => Sink::send_with_header(s, topic, partition, key, payload, header),
            Out::Parked(p) => p.send_with_header(topic, partition, key, payload, header),
        }
    }

    fn send_dead_letter(
        &mut self,
        dlq_topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        dl: &DeadLetter<'_>,
    ) {
        match self {
            Out::Sink(s) => Sink::send_dead_letter(s, dlq_topic, key, payload, dl),
            Out::Parked(p) => p.send_dead_letter(dlq_topic, key, payload, dl),
        }
    }
}

/// How a parked record is sent again.
#[derive(Debug, Clone)]
enum Kind {
    Keyed,
    ToPartition,
    /// The header's name, and its value's range in the buffer.
    WithHeader(&'static str, Range<usize>),
    /// Source partition and offset; the source topic, reason and error are in
    /// the buffer.
    DeadLetter {
        partition: i32,
        offset: i64,
        has_key: bool,
        topic: Range<usize>,
        reason: Range<usize>,
        error: Range<usize>,
    },
}

/// One parked record: ranges of [`Parked::bytes`].
#[derive(Debug, Clone)]
struct Record {
    kind: Kind,
    topic: Range<usize>,
    partition: i32,
    key: Range<usize>,
    payload: Range<usize>,
}

/// Records parked for the next transaction, in the order produced.
#[derive(Debug, Default)]
pub(super) struct Parked {
    bytes: Vec<u8>,
    records: Vec<Record>,
}

impl Parked {
    /// Whether no record is parked.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Records parked.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Forgets every parked record (keeping the buffers' capacity).
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.records.clear();
    }

    fn put(&mut self, b: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(b);
        start..self.bytes.len()
    }

    fn push(&mut self, kind: Kind, topic: &str, partition: i32, key: &[u8], payload: &[u8]) {
        let topic = self.put(topic.as_bytes());
        let key = self.put(key);
        let payload = self.put(payload);
        self.records.push(Record {
            kind,
            topic,
            partition,
            key,
            payload,
        });
    }

    /// Sends every parked record to `to`, in order, and forgets them.
    pub fn drain_into(&mut self, to: &mut impl Produce) {
        let text = |r: &Range<usize>| std::str::from_utf8(&self.bytes[r.clone()]).unwrap_or("");
        for r in &self.records {
            let (topic, key, payload) = (
                text(&r.topic),
                &self.bytes[r.key.clone()],
                &self.bytes[r.payload.clone()],
            );
            match &r.kind {
                Kind::Keyed => to.send(topic, key, payload),
                Kind::ToPartition => to.send_to_partition(topic, r.partition, key, payload),
                Kind::WithHeader(name, value) => {
                    let value = &self.bytes[value.clone()];
                    to.send_with_header(topic, r.partition, key, payload, (name, value))
                }
                Kind::DeadLetter {
                    partition,
                    offset,
                    has_key,
                    topic: source,
                    reason,
                    error,
                } => {
                    let dl = DeadLetter {
                        topic: text(source),
                        partition: *partition,
                        offset: *offset,
                        reason: text(reason),
                        error: text(error),
                    };
                    to.send_dead_letter(topic, has_key.then_some(key), payload, &dl);
                }
            }
        }
        self.clear();
    }
}

impl Produce for Parked {
    fn send(&mut self, topic: &str, key: &[u8], payload: &[u8]) {
        self.push(Kind::Keyed, topic, -1, key, payload);
    }

    fn send_to_partition(&mut self, topic: &str, partition: i32, key: &[u8], payload: &[u8]) {
        self.push(Kind::ToPartition, topic, partition, key, payload);
    }

    fn send_with_header(
        &mut self,
        topic: &str,
        partition: i32,
        key: &[u8],
        payload: &[u8],
        (name, value): (&'static str, &[u8]),
    ) {
        let value = self.put(value);
        self.push(
            Kind::WithHeader(name, value),
            topic,
            partition,
            key,
            payload,
        );
    }

    fn send_dead_letter(
        &mut self,
        dlq_topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        dl: &DeadLetter<'_>,
    ) {
        let kind = Kind::DeadLetter {
            partition: dl.partition,
            offset: dl.offset,
            has_key: key.is_some(),
            topic: self.put(dl.topic.as_bytes()),
            reason: self.put(dl.reason.as_bytes()),
            error: self.put(dl.error.as_bytes()),
        };
        self.push(kind, dlq_topic, -1, key.unwrap_or(&[]), payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a [`Produce`] was asked to send, written out.
    #[derive(Default)]
    struct Log(Vec<String>);

    impl Produce for Log {
        fn send(&mut self, topic: &str, key: &[u8], payload: &[u8]) {
            self.0.push(format!("send {topic} {key:?} {payload:?}"));
        }
        fn send_to_partition(&mut self, topic: &str, partition: i32, key: &[u8], payload: &[u8]) {
            self.0
                .push(format!("to {topic}/{partition} {key:?} {payload:?}"));
        }
        fn send_with_header(
            &mut self,
            topic: &str,
            partition: i32,
            key: &[u8],
            payload: &[u8],
            header: (&'static str, &[u8]),
        ) {
            self.0.push(format!(
                "header {topic}/{partition} {key:?} {payload:?} {header:?}"
            ));
        }
        fn send_dead_letter(
            &mut self,
            dlq_topic: &str,
            key: Option<&[u8]>,
            payload: &[u8],
            dl: &DeadLetter<'_>,
        ) {
            self.0
                .push(format!("dead {dlq_topic} {key:?} {payload:?} {dl:?}"));
        }
    }

    /// Every kind of record, in any order and with empty or long fields,
    /// comes out of the parking buffer exactly as sent straight to the Sink.
    #[test]
    fn parked_records_replay_exactly_as_sent() {
        let long = vec![7u8; 3000];
        let dl = DeadLetter {
            topic: "payments",
            partition: 3,
            offset: 42,
            reason: "invalid_json",
            error: "expected a value at line 1 column 2",
        };
        let script = |to: &mut dyn Produce| {
            to.send("decisions", b"acc-1", b"{\"d\":1}");
            to.send_dead_letter("dlq", None, b"", &dl);
            to.send_to_partition("terminals", 2, b"", &long);
            to.send_with_header(
                "payments",
                1,
                b"acc-2",
                b"{}",
                ("fraudstream.api.fallback", &br#"{"action":"review"}"#[..]),
            );
            to.send_dead_letter("dlq", Some(b"k"), &long, &dl);
            to.send("decisions", b"", b"");
        };
        let mut direct = Log::default();
        script(&mut direct);
        let mut parked = Parked::default();
        for round in 0..3 {
            script(&mut parked);
            assert!(!parked.is_empty());
            let mut replayed = Log::default();
            parked.drain_into(&mut replayed);
            assert_eq!(replayed.0, direct.0, "round {round}");
            assert!(parked.is_empty());
        }
    }

    /// Once warm, parking reuses its buffers.
    #[test]
    fn parking_reuses_its_buffers() {
        let mut parked = Parked::default();
        let mut sink = Log::default();
        for _ in 0..2 {
            for i in 0..100u8 {
                parked.send("decisions", &[i], &[i; 200]);
            }
            let capacity = (parked.bytes.capacity(), parked.records.capacity());
            parked.drain_into(&mut sink);
            assert_eq!(
                (parked.bytes.capacity(), parked.records.capacity()),
                capacity
            );
        }
        let before = parked.bytes.as_ptr();
        for i in 0..100u8 {
            parked.send("decisions", &[i], &[i; 200]);
        }
        assert_eq!(parked.bytes.as_ptr(), before, "no reallocation once warm");
    }
}
