//! `fraudstream demo`: an embedded broker, a synthetic payment stream with fraud,
//! the real processor, and a live view of the decisions read back from Kafka.

mod embedded;
pub mod generator;
pub mod history;
pub mod loadtest;
pub mod synthetic;

pub use embedded::{flush, producer, reader, send, EmbeddedKafka, Reader};
pub use generator::{Generator, Pattern};

use crate::config::Config;
use crate::ops::lifecycle::{Health, Shutdown};
use crate::ops::metrics::Metrics;
use crate::source::time::now_ms;
use rdkafka::message::Message;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Events to generate; 0 runs until shutdown.
    pub events: u64,
    /// Events per second.
    pub rate: u64,
    /// Generator seed.
    pub seed: u64,
    /// Accounts in the synthetic population.
    pub accounts: usize,
    /// Print a progress line every second.
    pub progress: bool,
    /// Simulated days the demo's model learns from, after a history as long
    /// as the feature set's longest window; 0 for rules alone on empty state.
    pub history_days: u32,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            events: 30_000,
            rate: 2_000,
            seed: 42,
            accounts: 1_000,
            progress: true,
            history_days: 14,
        }
    }
}

/// What the demo saw, read back from the output and dead-letter topics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DemoSummary {
    /// Messages produced to the input topic.
    pub events: u64,
    /// Decisions read back.
    pub decisions: u64,
    /// Decisions to allow.
    pub allow: u64,
    /// Decisions to review.
    pub review: u64,
    /// Decisions to block.
    pub block: u64,
    /// Dead-lettered messages read back.
    pub dlq: u64,
    /// Fraudulent events in the stream.
    pub frauds: u64,
    /// Frauds reviewed or blocked.
    pub frauds_caught: u64,
    /// Frauds blocked.
    pub frauds_blocked: u64,
    /// Frauds caught, by who flagged them: they add up to `frauds_caught`.
    pub frauds_caught_by: FlaggedSplit,
    /// Legitimate payments reviewed or blocked (good customers bothered).
    pub legit_flagged: u64,
    /// Good customers bothered, by who flagged them: they add up to `legit_flagged`.
    pub legit_flagged_by: FlaggedSplit,
    /// The version of the model that scored the decisions (`none`: rules alone).
    pub model_version: String,
    /// Messages of the history played through the processor before the live
    /// stream (not counted anywhere else in the summary).
    pub history_events: u64,
    /// The first decision that flagged a fraud with the model's reasons, as
    /// written to the output topic.
    #[serde(skip)]
    pub example: Option<serde_json::Value>,
    /// Frauds and how many were caught, per pattern.
    pub by_pattern: BTreeMap<String, (u64, u64)>,
    /// How often each reason code appeared, on frauds and on genuine payments.
    pub reasons: BTreeMap<String, (u64, u64)>,
    /// Hot-path latency percentiles from the decisions, microseconds.
    pub latency_us_p50: u64,
    /// 99th percentile.
    pub latency_us_p99: u64,
    /// 99.9th percentile.
    pub latency_us_p999: u64,
    /// Decisions per second over the run.
    pub events_per_sec: f64,
    /// Wall time of the run, seconds.
    pub duration_secs: f64,
}

/// Flagged payments by who flagged them (see [`DemoSummary`]).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct FlaggedSplit {
    /// The rules alone would have flagged them, the model alone not.
    pub rules_only: u64,
    /// The model alone would have flagged them, the rules alone not.
    pub model_only: u64,
    /// Either alone would have, or only both together did.
    pub both: u64,
}

impl FlaggedSplit {
    /// Counts a flagged decision by its `flagged_by` (absent: no model scored).
    fn count(&mut self, flagged_by: Option<&str>) {
        match flagged_by {
            Some("model") => self.model_only += 1,
            Some("both") => self.both += 1,
            _ => self.rules_only += 1,
        }
    }
}

/// The stream the demo plays: its generator, the history at its start (played
/// through the processor, not tallied) and the model trained on that history.
pub struct Prepared {
    /// The generator, at the first message of the history (or of the live
    /// stream, without a history).
    pub generator: Generator,
    /// Messages of the history, malformed ones included.
    pub history: u64,
    /// Malformed messages among them (dead-lettered while the history plays).
    pub history_malformed: u64,
    /// The directory of the model and its history (to remove afterwards);
    /// `None` for rules alone.
    pub model_dir: Option<std::path::PathBuf>,
}

/// Plans the stream and, with `opts.history_days`, trains the demo's model on
/// its history in a fresh directory under the system's temporary one and
/// points `config` at it. The history ends at the midnight (UTC) before the
/// live stream, and starts the feature set's reach before the training days.
pub fn prepare_model(opts: &DemoOptions, config: &mut Config) -> anyhow::Result<Prepared> {
    let step = Generator::step_ms(opts.accounts);
    // The simulated clock ends at about now; unlimited runs start a week back and
    // then stay at the wall clock.
    let span = if opts.events == 0 {
        7 * DAY_MS
    } else {
        opts.events as i64 * step
    };
    if opts.history_days == 0 {
        let warmup = (opts.events / 5).min(5_000);
        return Ok(Prepared {
            generator: Generator::new(opts.seed, opts.accounts, warmup, now_ms() - span),
            history: 0,
            history_malformed: 0,
            model_dir: None,
        });
    }
    let dir = std::env::temp_dir().join(format!("fraudstream-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let started = Instant::now();
    let reach_s = crate::features::load_feature_set(&config.features.set)?.history_reach_s();
    let history = history::HistoryOptions {
        days: opts.history_days,
        reach_days: reach_s.div_ceil(86_400),
        accounts: opts.accounts,
        seed: opts.seed,
        end_ms: (now_ms() - span).div_euclid(DAY_MS) * DAY_MS,
    };
    let (stats, fitted) = history::train_model(&history, &config.features.set, &dir)?;
    if opts.progress {
        let v = fitted.file.validation.as_ref();
        eprintln!(
            "model: {} simulated days of history ({} payments, {} frauds): the first {} fill the windows, the model learns from the last {} and validates on {} before them, in {:.1} s; validation AUC {:.3}, AP {:.3}",
            history.total_days(),
            stats.payments,
            stats.frauds,
            history.reach_days,
            opts.history_days,
            history.total_days() - history.reach_days - opts.history_days,
            started.elapsed().as_secs_f64(),
            v.map_or(f64::NAN, |v| v.auc),
            v.map_or(f64::NAN, |v| v.average_precision),
        );
    }
    config.model.path = dir.join("demo.json").display().to_string();
    Ok(Prepared {
        generator: history.generator(),
        history: stats.messages,
        history_malformed: stats.malformed,
        model_dir: Some(dir),
    })
}

const DAY_MS: i64 = 86_400_000;

/// Most history messages produced and not yet read back: the embedded broker
/// keeps only 5 MiB per partition.
const HISTORY_IN_FLIGHT: u64 = 20_000;

/// Runs the demo until `opts.events` are decided (or `shutdown`), and returns the summary.
pub fn run(
    opts: &DemoOptions,
    config: Config,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: Shutdown,
) -> anyhow::Result<DemoSummary> {
    run_with_api(opts, config, metrics, health, shutdown, None)
}

/// [`run`] with the pipeline also deciding the decision API's `calls`.
pub fn run_with_api(
    opts: &DemoOptions,
    mut config: Config,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: Shutdown,
    calls: Option<crate::api::call::CallReceiver>,
) -> anyhow::Result<DemoSummary> {
    let Prepared {
        generator: gen,
        history,
        history_malformed,
        model_dir,
    } = prepare_model(opts, &mut config)?;
    // One input partition: a terminal's windows then see all its payments, as
    // the model learnt them from the history, and a decision API call is
    // decided on the same state as the topic's payments (terminal
    // repartitioning does not combine with the API; `run` refuses both).
    let kafka = EmbeddedKafka::start(&config, 1)?;
    config.kafka.brokers = kafka.bootstrap_servers();
    let brokers = config.kafka.brokers.clone();
    tracing::info!(brokers = %brokers, "embedded Kafka broker started");

    let pipeline_stop = Shutdown::new();
    let pipeline = spawn_pipeline(config.clone(), (metrics, health), &pipeline_stop, calls)?;

    let truth: Arc<Mutex<Vec<Pattern>>> = Arc::default();
    let produced = Arc::new(AtomicU64::new(0));
    let read_back = Arc::new(AtomicU64::new(0));
    let producing_done = Shutdown::new();
    let generator = spawn_generator(
        (opts, gen, history),
        &config,
        (&truth, &produced, &read_back),
        &producing_done,
        &shutdown,
    )?;

    let mut consumer = reader(
        &brokers,
        &[&config.kafka.output_topic, &config.kafka.dlq_topic],
        kafka.partitions,
    )?;
    let mut started = Instant::now();
    let mut s = DemoSummary {
        history_events: history,
        ..DemoSummary::default()
    };
    let mut latencies: Vec<u32> = Vec::new();
    let mut last_progress = Instant::now();
    let mut stopped_at: Option<Instant> = None;
    let mut last_record = Instant::now();
    let mut all = 0u64;
    loop {
        if let Some(msg) = consumer.poll(Duration::from_millis(50)) {
            last_record = Instant::now();
            all += 1;
            read_back.store(all, Ordering::Relaxed);
            let payload = msg.payload().unwrap_or(&[]);
            if msg.topic() == config.kafka.dlq_topic {
                s.dlq += 1;
            } else if let Ok(d) = serde_json::from_slice::<serde_json::Value>(payload) {
                tally(&mut s, &d, (&truth, history), &mut latencies);
            }
            if all == history {
                // The live stream starts: its rate and latency are measured from here.
                started = Instant::now();
                // Also with --quiet: a load test of the API waits for this line
                // (scripts/api-bench.sh), not to measure it during the replay.
                let newline = if opts.progress { "\n" } else { "" };
                eprintln!("{newline}history replayed ({history} payments): the live stream starts");
            }
        }
        let total = produced.load(Ordering::Relaxed);
        if opts.progress && last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            if all == 0 && history > 0 {
                // librdkafka's mock cluster holds a new group's first assignment 3 s.
                eprint!("\rwaiting for the processor's first partition assignment...   ");
                let _ = std::io::stderr().flush();
            } else if all < history {
                eprint!("\r{all:>7}/{history} history payments through the processor (its state for the live stream)   ");
                let _ = std::io::stderr().flush();
            } else {
                // The history's malformed messages are not the live stream's.
                let dlq = s.dlq.saturating_sub(history_malformed);
                print_progress(&s, (total - history, dlq), started.elapsed());
            }
        }
        // Everything read back, or (if the embedded broker's 5 MiB per partition
        // dropped old records before they were read) nothing new for 10 s.
        let finished = producing_done.is_triggered()
            && (all >= total || last_record.elapsed() > Duration::from_secs(10));
        if finished {
            break;
        }
        if shutdown.is_triggered() {
            // After Ctrl-C, drain what was produced for a few seconds, then stop.
            let t = *stopped_at.get_or_insert_with(Instant::now);
            if t.elapsed() > Duration::from_secs(5) && producing_done.is_triggered() {
                break;
            }
        }
    }
    s.duration_secs = started.elapsed().as_secs_f64();
    s.events = produced.load(Ordering::Relaxed).saturating_sub(history);
    s.dlq = s.dlq.saturating_sub(history_malformed);
    s.events_per_sec = s.decisions as f64 / s.duration_secs.max(1e-9);
    set_latencies(&mut s, latencies);
    if opts.progress {
        print_progress(&s, (s.events, s.dlq), started.elapsed());
        eprintln!();
    }
    pipeline_stop.trigger();
    generator
        .join()
        .map_err(|_| anyhow::anyhow!("generator thread panicked"))??;
    pipeline
        .join()
        .map_err(|_| anyhow::anyhow!("pipeline thread panicked"))??;
    drop(consumer);
    drop(kafka);
    if let Some(dir) = model_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(s)
}

/// Runs the processor on a thread of its own, deciding the decision API's
/// `calls` too when there are any.
fn spawn_pipeline(
    config: Config,
    (metrics, health): (Arc<Metrics>, Arc<Health>),
    stop: &Shutdown,
    calls: Option<crate::api::call::CallReceiver>,
) -> std::io::Result<
    std::thread::JoinHandle<Result<crate::pipeline::RunStats, crate::pipeline::PipelineError>>,
> {
    let stop = stop.clone();
    std::thread::Builder::new()
        .name("pipeline".into())
        .spawn(move || match calls {
            Some(calls) => {
                let rules = crate::rules::reload::RulesSource::from_config(&config.rules);
                crate::pipeline::run_with_api(&config, rules, metrics, health, stop, calls)
            }
            None => crate::pipeline::run(&config, metrics, health, stop),
        })
}

/// A count shared between the generator and the reader.
type Counter = Arc<AtomicU64>;

/// Generates the demo's payments and labels into the embedded broker
/// (`config.kafka.brokers`) on a thread of its own: first the `history`
/// messages of `gen`, as fast as they are read back (`read_back`), then the
/// live stream. Counts them in `produced` and their patterns in `truth`;
/// triggers `done` when it stops.
fn spawn_generator(
    (opts, gen, history): (&DemoOptions, Generator, u64),
    config: &Config,
    (truth, produced, read_back): (&Arc<Mutex<Vec<Pattern>>>, &Counter, &Counter),
    done: &Shutdown,
    stop: &Shutdown,
) -> std::io::Result<std::thread::JoinHandle<anyhow::Result<()>>> {
    let (opts, truth, counters, done, stop) = (
        opts.clone(),
        truth.clone(),
        (produced.clone(), read_back.clone()),
        done.clone(),
        stop.clone(),
    );
    let (brokers, input, labels) = (
        config.kafka.brokers.clone(),
        config.kafka.input_topic.clone(),
        config.kafka.labels_topic.clone(),
    );
    std::thread::Builder::new()
        .name("generator".into())
        .spawn(move || -> anyhow::Result<()> {
            let topics = (brokers.as_str(), input.as_str(), labels.as_str());
            let result = generate(&opts, (gen, history), topics, (&truth, &counters), &stop);
            done.trigger();
            result
        })
}

/// The 50th, 99th and 99.9th percentiles of `latencies` (microseconds), into `s`.
fn set_latencies(s: &mut DemoSummary, mut latencies: Vec<u32>) {
    latencies.sort_unstable();
    let pct = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as u64
    };
    (s.latency_us_p50, s.latency_us_p99, s.latency_us_p999) = (pct(0.5), pct(0.99), pct(0.999));
}

/// Counts decision `d` into `s`, unless it decides a message of the history
/// (sequence numbers below `history`).
fn tally(
    s: &mut DemoSummary,
    d: &serde_json::Value,
    (truth, history): (&Mutex<Vec<Pattern>>, u64),
    latencies: &mut Vec<u32>,
) {
    let seq = d["event_id"]
        .as_str()
        .and_then(|id| id.strip_prefix("ev-"))
        .and_then(|n| n.parse::<usize>().ok());
    if seq.is_some_and(|q| (q as u64) < history) {
        return;
    }
    s.decisions += 1;
    let action = d["action"].as_str().unwrap_or("");
    match action {
        "allow" => s.allow += 1,
        "review" => s.review += 1,
        "block" => s.block += 1,
        _ => {}
    }
    latencies.push(
        d["latency_us"]
            .as_u64()
            .unwrap_or(0)
            .min(u64::from(u32::MAX)) as u32,
    );
    let pattern = seq
        .and_then(|i| truth.lock().ok()?.get(i).copied())
        .unwrap_or(Pattern::Legit);
    let flagged = action != "allow";
    tally_model(s, d, pattern.is_fraud(), flagged);
    for r in d["reasons"].as_array().into_iter().flatten() {
        let e = s
            .reasons
            .entry(r["code"].as_str().unwrap_or("?").to_string())
            .or_default();
        if pattern.is_fraud() {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    if pattern.is_fraud() {
        s.frauds += 1;
        s.frauds_caught += u64::from(flagged);
        s.frauds_blocked += u64::from(action == "block");
        let e = s.by_pattern.entry(pattern.name().to_string()).or_default();
        e.0 += 1;
        e.1 += u64::from(flagged);
    } else if flagged {
        s.legit_flagged += 1;
    }
}

/// The model's share of decision `d`: its version, who flagged a flagged
/// payment, and the first fraud it explained.
fn tally_model(s: &mut DemoSummary, d: &serde_json::Value, fraud: bool, flagged: bool) {
    if let Some(v) = d["model_version"]
        .as_str()
        .filter(|&v| v != s.model_version)
    {
        s.model_version = v.to_string();
    }
    if !flagged {
        return;
    }
    let by = d["flagged_by"].as_str();
    let split = if fraud {
        &mut s.frauds_caught_by
    } else {
        &mut s.legit_flagged_by
    };
    split.count(by);
    let explained = d["reasons"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["code"].as_str().is_some_and(|c| c.starts_with("model:")));
    if fraud && explained && s.example.is_none() {
        s.example = Some(d.clone());
    }
}

fn print_progress(s: &DemoSummary, (produced, dlq): (u64, u64), elapsed: Duration) {
    let eps = s.decisions as f64 / elapsed.as_secs_f64().max(1e-9);
    eprint!(
        "\r{:>7} produced | {:>7} decided ({:>5} review, {:>4} block) | {:>3} DLQ | frauds caught {}/{} | {:>6.0} ev/s   ",
        produced, s.decisions, s.review, s.block, dlq, s.frauds_caught, s.frauds, eps
    );
    let _ = std::io::stderr().flush();
}

/// Says once that the simulated clock has caught up with the wall clock.
fn announce_real_time() {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        eprintln!(
            "\nthe simulated payments have reached the present: they now come at the simulated customers' own pace (a few a minute); the decision API answers as before"
        );
    });
}

/// Produces the `history` first messages of `gen` as fast as they are read
/// back, then `opts.events` more at `opts.rate`, plus labels (a chargeback
/// feed, accelerated): with a history, every payment a simulated day later,
/// as the history the model learns from is labelled.
fn generate(
    opts: &DemoOptions,
    (mut gen, history): (Generator, u64),
    (brokers, input, labels): (&str, &str, &str),
    (truth, (produced, read_back)): (&Mutex<Vec<Pattern>>, &(Counter, Counter)),
    stop: &Shutdown,
) -> anyhow::Result<()> {
    let producer = producer(brokers)?;
    // With a model, labels come as in the history it learned from. Rules alone
    // keep the feed their thresholds were set on: frauds and 2 % of genuine
    // payments, two simulated hours later.
    let (delay_ms, every) = match history {
        0 => (2 * 3_600_000, 50),
        _ => (i64::from(history::LABEL_DELAY_DAYS) * DAY_MS, 1),
    };
    let label_delay = (delay_ms / Generator::step_ms(opts.accounts)).max(1) as u64;
    let mut pending_labels: VecDeque<(u64, String, u64, bool)> = VecDeque::new();
    let mut started = Instant::now();
    let mut n = 0u64;
    while (opts.events == 0 || n < history + opts.events) && !stop.is_triggered() {
        if n < history {
            while n >= read_back.load(Ordering::Relaxed) + HISTORY_IN_FLIGHT && !stop.is_triggered()
            {
                producer.poll(Duration::from_millis(1));
            }
            started = Instant::now();
        } else {
            let due =
                started + Duration::from_secs_f64((n - history) as f64 / opts.rate.max(1) as f64);
            let now = Instant::now();
            if due > now + Duration::from_millis(2) {
                std::thread::sleep(due - now);
            }
        }
        // An unlimited run reaches the present after its first simulated week:
        // from then on payments come at the simulated customers' own pace, as
        // dense as the history the model learnt from, not `opts.rate` at once.
        if opts.events == 0 && gen.clock_ms() > now_ms() {
            announce_real_time();
            while gen.clock_ms() > now_ms() && !stop.is_triggered() {
                producer.poll(Duration::from_millis(50));
            }
        }
        let g = gen.next(now_ms());
        if let Ok(mut t) = truth.lock() {
            t.push(g.pattern);
        }
        send(&producer, input, g.key.as_bytes(), &g.payload)?;
        if g.pattern.is_fraud() || (g.pattern == Pattern::Legit && g.seq % every == 0) {
            pending_labels.push_back((g.seq + label_delay, g.key, g.seq, g.pattern.is_fraud()));
        }
        while pending_labels.front().is_some_and(|l| l.0 <= n) {
            let (_, key, seq, fraud) = pending_labels.pop_front().expect("front exists");
            let label = format!(
                r#"{{"event_id":"ev-{seq}","label":"{}"}}"#,
                if fraud { "fraud" } else { "legit" }
            );
            if !labels.is_empty() {
                send(&producer, labels, key.as_bytes(), label.as_bytes())?;
            }
        }
        n += 1;
        produced.store(n, Ordering::Relaxed);
        producer.poll(Duration::ZERO);
    }
    flush(&producer)?;
    Ok(())
}
