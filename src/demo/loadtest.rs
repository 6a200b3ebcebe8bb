//! `fraudstream loadtest`: the processor against a Kafka-only baseline, in one run.
//!
//! Each phase gets a fresh embedded broker, the same pre-generated events and the
//! same client settings and guarantee (transactions, `read_committed`). Phase (a)
//! runs the pipeline in `passthrough` mode (input bytes copied to the output);
//! phase (b) runs it in `decide` mode with the `model` feature set, 100 synthetic
//! rules and the shipped model. A producer thread keeps at most `in_flight` events
//! between produced and read back, so the broker's retention is never outrun and
//! end-to-end latency includes that bounded queue.

use crate::config::{Config, Mode};
use crate::demo::synthetic::synthetic_rule_files;
use crate::demo::{flush, producer, reader, send, EmbeddedKafka, Reader};
use crate::model::ModelFile;
use crate::ops::latency::LatencyHistogram;
use crate::ops::lifecycle::{Health, Shutdown};
use crate::ops::metrics::Metrics;
use crate::rules::reload::RulesSource;
use crate::source::time::now_ms;
use rdkafka::message::Message;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The shipped model, so the load test runs from any directory.
const SHIPPED_MODEL: &str = include_str!("../../models/handbook.json");

/// Load test settings.
#[derive(Debug, Clone)]
pub struct LoadTestOptions {
    /// Events per phase.
    pub events: u64,
    /// Distinct accounts in the generated stream.
    pub accounts: usize,
    /// Partitions of every topic.
    pub partitions: i32,
    /// Most events produced but not yet read back.
    pub in_flight: u64,
    /// Synthetic rules over the `model` feature set.
    pub rules: usize,
    /// Model file; `None` for the shipped one.
    pub model: Option<PathBuf>,
    /// Score with only the model's first this many trees (the issue's reference is 100).
    pub trees: Option<usize>,
    /// Route events through a terminal topic (terminal features across partitions).
    pub repartition_terminals: bool,
    /// Generator seed.
    pub seed: u64,
    /// Serve the decision API here during the processor phase (for a load tool).
    pub api_addr: Option<String>,
}

impl Default for LoadTestOptions {
    fn default() -> Self {
        Self {
            events: 200_000,
            accounts: 10_000,
            partitions: 4,
            in_flight: 40_000,
            rules: 100,
            model: None,
            trees: None,
            repartition_terminals: false,
            seed: 7,
            api_addr: None,
        }
    }
}

/// What one phase measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseReport {
    /// Events per second, first produce to last output read back.
    pub eps: f64,
    /// That interval, seconds.
    pub seconds: f64,
    /// Hot path (event read to output handed to the producer), microseconds.
    pub hot_path_us_p50: f64,
    /// 99th percentile.
    pub hot_path_us_p99: f64,
    /// 99.9th percentile.
    pub hot_path_us_p999: f64,
    /// With terminal features repartitioned, the hot path above is the deciding
    /// step; this is the routing step's p99 (input read to routed record handed to
    /// the producer), microseconds. 0 otherwise.
    pub route_us_p99: f64,
    /// Input produced to output read back (`read_committed`), milliseconds.
    pub e2e_ms_p50: f64,
    /// 99th percentile.
    pub e2e_ms_p99: f64,
    /// CPU of the whole process (broker, clients and processor), seconds.
    pub cpu_seconds: f64,
    /// CPU of the processor's polling thread alone, seconds.
    pub processor_thread_cpu_seconds: f64,
    /// Peak resident memory of the process during the phase, bytes.
    pub peak_rss_bytes: u64,
    /// Events that went to the dead-letter topic instead (0 for a valid stream).
    pub dead_letters: u64,
    /// Decisions to review or block (these also carry model explanations).
    pub flagged: u64,
}

/// The load test's result: both phases and their ratio.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadTestReport {
    /// Events per phase.
    pub events: u64,
    /// Distinct accounts.
    pub accounts: usize,
    /// Partitions.
    pub partitions: i32,
    /// Rules in phase (b).
    pub rules: usize,
    /// Model version in phase (b).
    pub model: String,
    /// Phase (a) events per second.
    pub passthrough_eps: f64,
    /// Phase (b) events per second.
    pub processor_eps: f64,
    /// `processor_eps / passthrough_eps`.
    pub ratio: f64,
    /// Phase (b) hot path p50, microseconds.
    pub hot_path_us_p50: f64,
    /// Phase (b) hot path p99, microseconds.
    pub hot_path_us_p99: f64,
    /// Phase (b) hot path p99.9, microseconds.
    pub hot_path_us_p999: f64,
    /// Phase (b) end-to-end p50, milliseconds.
    pub e2e_ms_p50: f64,
    /// Phase (b) end-to-end p99, milliseconds.
    pub e2e_ms_p99: f64,
    /// Phase (b) peak RSS, bytes.
    pub peak_rss_bytes: u64,
    /// Phase (a) in full.
    pub passthrough: PhaseReport,
    /// Phase (b) in full.
    pub processor: PhaseReport,
}

/// Runs both phases and reports. `progress` is told each phase's name.
pub fn run(
    opts: &LoadTestOptions,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<LoadTestReport> {
    progress("generating events");
    let events = generate(opts);
    let dir = std::env::temp_dir().join(format!("fraudstream-loadtest-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let model_path = match &opts.model {
        Some(p) => p.clone(),
        None => {
            let p = dir.join("handbook.json");
            std::fs::write(&p, SHIPPED_MODEL)?;
            p
        }
    };
    let model_path = match opts.trees {
        Some(n) => {
            let file: ModelFile = serde_json::from_str(&std::fs::read_to_string(&model_path)?)?;
            let small = file
                .first_trees(n)
                .ok_or_else(|| anyhow::anyhow!("{} has no trees", model_path.display()))?;
            let p = dir.join("first-trees.json");
            small.save(&p)?;
            p
        }
        None => model_path,
    };
    let set = crate::features::load_feature_set("default")?;
    let model = crate::model::Model::load(&model_path, &set)?;

    let mut config = Config::default();
    // The load test's payments are all in the base currency: run anywhere, rates or not.
    if !std::path::Path::new(&config.currency.rates).exists() {
        config.currency.rates.clear();
    }
    config.kafka.group_id = "fraudstream-loadtest".into();
    config.metrics.addr = String::new();
    config.features.set = "default".into();
    // The mock broker answers a fetch with no data yet only when this expires
    // (a real broker answers as soon as data arrives).
    config
        .kafka
        .consumer
        .insert("fetch.wait.max.ms".into(), "10".into());
    config.model.path = model_path.display().to_string();
    config.processing.mode = Mode::Passthrough;
    progress("(a) pass-through baseline");
    let passthrough = phase(opts, &config, &events, RulesSource::Files(Vec::new()));
    config.processing.mode = Mode::Decide;
    if opts.repartition_terminals {
        config.kafka.terminal_topic = "fraudstream-by-terminal".into();
    }
    progress("(b) processor");
    let rules = RulesSource::Files(synthetic_rule_files(opts.rules, &set.names));
    let processor = phase(opts, &config, &events, rules);
    let _ = std::fs::remove_dir_all(&dir);
    let (passthrough, processor) = (passthrough?, processor?);
    Ok(LoadTestReport {
        events: events.len() as u64,
        accounts: opts.accounts,
        partitions: opts.partitions,
        rules: opts.rules,
        model: model.version.clone(),
        passthrough_eps: passthrough.eps,
        processor_eps: processor.eps,
        ratio: processor.eps / passthrough.eps,
        hot_path_us_p50: processor.hot_path_us_p50,
        hot_path_us_p99: processor.hot_path_us_p99,
        hot_path_us_p999: processor.hot_path_us_p999,
        e2e_ms_p50: processor.e2e_ms_p50,
        e2e_ms_p99: processor.e2e_ms_p99,
        peak_rss_bytes: processor.peak_rss_bytes,
        passthrough,
        processor,
    })
}

/// `(key, payload)` of every event, all valid, ending now: the handbook's
/// simulator (the data the shipped model was trained on), so the model and the
/// features see the distributions they were built for. Customers and terminals
/// sit on a 100 x 100 grid; each customer pays at terminals within radius 5, on
/// average 0..4 times a day around midday, amounts normal around its own mean.
pub fn generate(opts: &LoadTestOptions) -> Vec<(String, Vec<u8>)> {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use std::fmt::Write;
    const DAY_MS: i64 = 86_400_000;
    let mut rng = SmallRng::seed_from_u64(opts.seed);
    let n_customers = opts.accounts.max(1);
    let n_terminals = (2 * n_customers).max(20);
    let terminals: Vec<(f64, f64)> = (0..n_terminals)
        .map(|_| (rng.gen_range(0.0..100.0), rng.gen_range(0.0..100.0)))
        .collect();
    // Terminals near each customer: a few picked among the random ones nearby.
    let customers: Vec<(f64, f64, Vec<u32>)> = (0..n_customers)
        .map(|_| {
            let (x, y) = (rng.gen_range(0.0..100.0), rng.gen_range(0.0..100.0));
            let mean = rng.gen_range(5.0..100.0);
            let per_day = rng.gen_range(0.0..4.0);
            let near: Vec<u32> = (0..64)
                .map(|_| rng.gen_range(0..n_terminals as u32))
                .filter(|&t| {
                    let (tx, ty) = terminals[t as usize];
                    (tx - x).hypot(ty - y) < 25.0
                })
                .take(8)
                .collect();
            let near = if near.is_empty() {
                vec![rng.gen_range(0..n_terminals as u32)]
            } else {
                near
            };
            (mean, per_day, near)
        })
        .collect();
    // Customers average 2 payments a day; a third more days than that needs, all
    // before today, so no event time is in the future.
    let days = (opts.events as f64 / (1.5 * n_customers as f64)).ceil() as i64 + 1;
    let start = (now_ms() / DAY_MS - days) * DAY_MS;
    let normal = |rng: &mut SmallRng| (0..12).map(|_| rng.gen::<f64>()).sum::<f64>() - 6.0;
    let mut out = Vec::with_capacity(opts.events as usize);
    let mut day_events: Vec<(i64, usize, u32, f64)> = Vec::new();
    for day in 0.. {
        if out.len() as u64 >= opts.events || day >= days {
            break;
        }
        day_events.clear();
        for (c, (mean, per_day, near)) in customers.iter().enumerate() {
            // Poisson(per_day) by inversion; times normal around midday.
            let (mut k, mut p, l) = (0, 1.0, (-per_day).exp());
            loop {
                p *= rng.gen::<f64>();
                if p <= l {
                    break;
                }
                k += 1;
            }
            for _ in 0..k {
                let secs = (43_200.0 + normal(&mut rng) * 20_000.0).clamp(0.0, 86_399.0);
                let mut amount = mean + normal(&mut rng) * mean / 2.0;
                if amount <= 0.0 {
                    amount = rng.gen_range(0.01..2.0 * mean);
                }
                let terminal = near[rng.gen_range(0..near.len())];
                day_events.push((
                    start + day * DAY_MS + (secs * 1000.0) as i64,
                    c,
                    terminal,
                    amount,
                ));
            }
        }
        day_events.sort_unstable_by_key(|e| e.0);
        for &(ts, c, t, amount) in &day_events {
            let seq = out.len();
            if seq as u64 >= opts.events {
                break;
            }
            let mut json = String::with_capacity(200);
            let _ = write!(
                json,
                r#"{{"event_id":"ev-{seq}","ts":{ts},"account_id":"acc-{c}","card_id":"card-{c}","terminal_id":"term-{t}","amount":{amount:.2},"currency":"EUR","channel":"pos"}}"#
            );
            out.push((format!("acc-{c}"), json.into_bytes()));
        }
    }
    out
}

/// The sequence number in a generated event id (`"event_id":"ev-N"`), which both
/// the events and the decisions carry.
fn sequence_of(payload: &[u8]) -> Option<usize> {
    const MARK: &[u8] = b"\"event_id\":\"ev-";
    let at = payload.windows(MARK.len()).position(|w| w == MARK)? + MARK.len();
    let digits = payload[at..].iter().take_while(|b| b.is_ascii_digit());
    digits.fold(Some(0usize), |n, &d| {
        n?.checked_mul(10)?.checked_add(usize::from(d - b'0'))
    })
}

fn phase(
    opts: &LoadTestOptions,
    config: &Config,
    events: &[(String, Vec<u8>)],
    rules: RulesSource,
) -> anyhow::Result<PhaseReport> {
    let mut config = config.clone();
    let kafka = EmbeddedKafka::start(&config, opts.partitions)?;
    config.kafka.brokers = kafka.bootstrap_servers();
    let brokers = config.kafka.brokers.clone();
    let output = config.kafka.output_topic.clone();
    let dlq = config.kafka.dlq_topic.clone();
    let input = config.kafka.input_topic.clone();
    reset_peak_rss();
    let cpu_before = process_cpu_seconds();

    let health = Health::new();
    let stop = Shutdown::new();
    let metrics = Arc::new(Metrics::new());
    let (_api_runtime, calls) = start_api(opts, &mut config, &metrics)?;
    let pipeline = start_processor(config, rules, calls, (&metrics, &health, &stop))?;

    let n = events.len();
    let started = Instant::now();
    let produced_at: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let read_back = Arc::new(AtomicU64::new(0));
    let producer_thread = spawn_producer(
        events,
        (&brokers, &input),
        opts.in_flight,
        started,
        (produced_at.clone(), read_back.clone()),
    )?;

    let mut consumer = reader(&brokers, &[&output, &dlq], opts.partitions)?;
    let back = read_outputs(
        &mut consumer,
        &dlq,
        started,
        &produced_at,
        &read_back,
        || producer_thread.is_finished(),
    )?;
    if back.count < n {
        // Stalled after the producer stopped: say why if it failed.
        let produced = producer_thread
            .join()
            .map_err(|_| anyhow::anyhow!("producer thread panicked"))?;
        produced?;
        stop.trigger();
        let stats = pipeline.join().map(|r| r.0);
        let count = back.count;
        anyhow::bail!(
            "{count} of {n} records read back after all were produced; processor: {stats:?}"
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    producer_thread
        .join()
        .map_err(|_| anyhow::anyhow!("producer thread panicked"))??;
    stop.trigger();
    let (stats, thread_cpu) = pipeline
        .join()
        .map_err(|_| anyhow::anyhow!("pipeline thread panicked"))?;
    let stats = stats?;
    let us = |ns: u64| ns as f64 / 1000.0;
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(PhaseReport {
        eps: n as f64 / seconds,
        seconds,
        hot_path_us_p50: us(stats.hot_path_ns.quantile(0.5)),
        hot_path_us_p99: us(stats.hot_path_ns.quantile(0.99)),
        hot_path_us_p999: us(stats.hot_path_ns.quantile(0.999)),
        route_us_p99: us(stats.route_ns.quantile(0.99)),
        e2e_ms_p50: ms(back.e2e_us.quantile(0.5)),
        e2e_ms_p99: ms(back.e2e_us.quantile(0.99)),
        cpu_seconds: process_cpu_seconds() - cpu_before,
        processor_thread_cpu_seconds: thread_cpu,
        peak_rss_bytes: peak_rss_bytes(),
        dead_letters: back.dead_letters,
        flagged: ["review", "block"]
            .map(|a| metrics.decisions.with_label_values(&[a]).get())
            .iter()
            .sum(),
    })
}

/// The processor's thread: its run's statistics and the CPU seconds it used.
type ProcessorThread = std::thread::JoinHandle<(
    Result<crate::pipeline::RunStats, crate::pipeline::PipelineError>,
    f64,
)>;

/// Runs the processor on a thread of its own (serving `calls` when the
/// decision API is on), once it is ready.
fn start_processor(
    config: Config,
    rules: RulesSource,
    calls: Option<crate::api::call::CallReceiver>,
    (metrics, health, stop): (&Arc<Metrics>, &Arc<Health>, &Shutdown),
) -> anyhow::Result<ProcessorThread> {
    let (health, stop, metrics) = (health.clone(), stop.clone(), metrics.clone());
    let ready = health.clone();
    let pipeline = std::thread::Builder::new()
        .name("pipeline".into())
        .spawn(move || {
            let stats = match calls {
                Some(calls) => {
                    crate::pipeline::run_with_api(&config, rules, metrics, health, stop, calls)
                }
                None => crate::pipeline::run_with_rules(&config, rules, metrics, health, stop),
            };
            (stats, thread_cpu_seconds())
        })?;
    let waited = Instant::now();
    while !ready.is_ready() {
        anyhow::ensure!(
            !pipeline.is_finished() && waited.elapsed() < Duration::from_secs(60),
            "the processor did not become ready"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(pipeline)
}

/// With `--api-addr` (and the processor deciding), serves the decision API
/// and sets `api.addr` in `config`: its runtime and the calls it receives.
#[allow(clippy::type_complexity)]
fn start_api(
    opts: &LoadTestOptions,
    config: &mut Config,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<(
    Option<tokio::runtime::Runtime>,
    Option<crate::api::call::CallReceiver>,
)> {
    let api = opts
        .api_addr
        .as_ref()
        .filter(|_| config.processing.mode == Mode::Decide);
    let Some(addr) = api else {
        return Ok((None, None));
    };
    config.api.addr = addr.clone();
    let (rt, (bound, calls)) = serve_api(config, metrics)?;
    eprintln!("decision API: POST http://{bound}/v1/decisions");
    Ok((Some(rt), Some(calls)))
}

/// Produces `events` to `input` on `brokers` from a thread of its own, at
/// most `in_flight` ahead of those read back, noting when each was sent
/// (nanoseconds after `started`) in `produced_at`.
fn spawn_producer(
    events: &[(String, Vec<u8>)],
    (brokers, input): (&str, &str),
    in_flight: u64,
    started: Instant,
    (produced_at, read_back): (Arc<Vec<AtomicU64>>, Arc<AtomicU64>),
) -> std::io::Result<std::thread::JoinHandle<anyhow::Result<()>>> {
    let events = events.to_vec();
    let in_flight = in_flight.max(1);
    let (brokers, input) = (brokers.to_string(), input.to_string());
    std::thread::Builder::new()
        .name("loadtest-producer".into())
        .spawn(move || -> anyhow::Result<()> {
            let p = producer(&brokers)?;
            for (seq, (key, payload)) in events.iter().enumerate() {
                while seq as u64 >= read_back.load(Ordering::Relaxed) + in_flight {
                    // Sleep rather than spin: the harness must not take CPU
                    // from what it measures.
                    p.poll(Duration::ZERO);
                    std::thread::sleep(Duration::from_micros(500));
                }
                produced_at[seq].store(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                send(&p, &input, key.as_bytes(), payload)?;
                p.poll(Duration::ZERO);
            }
            flush(&p)?;
            Ok(())
        })
}

/// What the consumer read back of a phase's events.
struct ReadBack {
    /// Distinct events read back, decided or dead-lettered.
    count: usize,
    /// Of which dead letters.
    dead_letters: u64,
    /// Microseconds from each event's production to its output being read.
    e2e_us: LatencyHistogram,
}

/// Reads every event's decision or dead letter from `consumer` (whose
/// dead-letter topic is `dlq`), counting them in `read_back`; stops early when
/// nothing comes for 5 s after `producer_done`, and fails after 30 s without
/// output.
fn read_outputs(
    consumer: &mut Reader,
    dlq: &str,
    started: Instant,
    produced_at: &[AtomicU64],
    read_back: &AtomicU64,
    producer_done: impl Fn() -> bool,
) -> anyhow::Result<ReadBack> {
    let n = produced_at.len();
    let mut back = ReadBack {
        count: 0,
        dead_letters: 0,
        e2e_us: LatencyHistogram::default(),
    };
    let mut seen = vec![false; n];
    let mut last_progress = Instant::now();
    while back.count < n {
        let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
            if producer_done() && last_progress.elapsed() > Duration::from_secs(5) {
                break;
            }
            anyhow::ensure!(
                last_progress.elapsed() < Duration::from_secs(30),
                "no output for 30 s after {} of {n} records",
                back.count
            );
            continue;
        };
        let at = started.elapsed().as_nanos() as u64;
        if let Some(seq) = msg.payload().and_then(sequence_of).filter(|&s| s < n) {
            if !std::mem::replace(&mut seen[seq], true) {
                back.count += 1;
                if msg.topic() == dlq {
                    back.dead_letters += 1;
                }
                read_back.store(back.count as u64, Ordering::Relaxed);
                let sent = produced_at[seq].load(Ordering::Relaxed);
                back.e2e_us.record(at.saturating_sub(sent) / 1000);
                last_progress = Instant::now();
            }
        }
    }
    Ok(back)
}

/// Serves the decision API on a one-thread runtime of its own (as `run` has it).
fn serve_api(
    config: &Config,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<(
    tokio::runtime::Runtime,
    (std::net::SocketAddr, crate::api::call::CallReceiver),
)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let served = rt.block_on(crate::api::serve(config, metrics.clone()))?;
    Ok((rt, served))
}

fn cpu_seconds_of(who: libc::c_int) -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// User plus system CPU of the whole process, seconds.
fn process_cpu_seconds() -> f64 {
    cpu_seconds_of(libc::RUSAGE_SELF)
}

/// User plus system CPU of the calling thread, seconds.
fn thread_cpu_seconds() -> f64 {
    cpu_seconds_of(libc::RUSAGE_THREAD)
}

/// Resets the kernel's peak-RSS mark (`VmHWM`), so each phase reports its own.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory since the last reset, bytes (`VmHWM`).
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_sequence_in_events_and_decisions() {
        assert_eq!(sequence_of(br#"{"event_id":"ev-1234","ts":1}"#), Some(1234));
        assert_eq!(
            sequence_of(br#"{"v":1,"event_id":"ev-0","action":"allow"}"#),
            Some(0)
        );
        assert_eq!(sequence_of(br#"{"event_id":"other"}"#), None);
    }

    #[test]
    fn a_small_load_test_decides_every_event_and_measures_both_phases() {
        let opts = LoadTestOptions {
            events: 3_000,
            accounts: 500,
            partitions: 2,
            in_flight: 1_000,
            rules: 20,
            ..LoadTestOptions::default()
        };
        let r = run(&opts, |_| {}).unwrap();
        for p in [&r.passthrough, &r.processor] {
            assert!(p.eps > 0.0 && p.seconds > 0.0, "{p:?}");
            assert!(p.hot_path_us_p50 > 0.0 && p.hot_path_us_p50 <= p.hot_path_us_p99);
            assert!(p.hot_path_us_p99 <= p.hot_path_us_p999);
            assert!(p.e2e_ms_p50 <= p.e2e_ms_p99);
            assert!(p.cpu_seconds > 0.0 && p.peak_rss_bytes > 0);
        }
        assert!((r.ratio - r.processor_eps / r.passthrough_eps).abs() < 1e-9);
        assert!(r.model.starts_with("handbook@"), "{}", r.model);
        let json = serde_json::to_value(&r).unwrap();
        for key in [
            "events",
            "passthrough_eps",
            "processor_eps",
            "ratio",
            "hot_path_us_p50",
            "hot_path_us_p99",
            "hot_path_us_p999",
            "e2e_ms_p99",
            "peak_rss_bytes",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
    }
}
