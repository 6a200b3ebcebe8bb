//! A running processor's model reload: a bad model file (here a tree with a
//! cycle, which used to overflow the stack of the reload thread and kill the
//! process) is refused and counted, the running model keeps deciding, and a
//! good file later goes live.

mod common;

use common::{event, read_until, Cluster, Output, Running};
use fraudstream::model::ModelFile;
use fraudstream::source::time::now_ms;
use std::path::Path;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// Waits (at most `WAIT`) until `done` holds: the reload follows the file change.
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "{what} never happened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_bad_model_file_never_replaces_the_running_model() {
    let shipped: ModelFile = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models/handbook.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut cluster = Cluster::start(1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("champion.json");
    shipped.first_trees(20).unwrap().save(&path).unwrap();
    // Rules over the `model` feature set (the starter rules read another).
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("r.yaml"), "rules:\n  - id: huge\n    when: amount > 10000\n    action: block\n    reason: { code: huge, text: Huge }\n").unwrap();
    cluster.config.rules.dir = rules.display().to_string();
    cluster.config.features.set = "default".into();
    cluster.config.model.path = path.display().to_string();
    let running = Running::start(&cluster.config);
    let mut reader = cluster.reader();
    let mut out = Output::default();
    let now = now_ms();
    let mut decide = |id: &str, out: &mut Output| {
        cluster.produce("payments", &[event(id, "acc", now, 300.0)]);
        read_until(&mut reader, out, WAIT, |o| o.decisions.contains_key(id));
        out.decisions[id][0]["model_version"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let first = decide("e1", &mut out);
    assert!(first.starts_with("handbook-first20@"), "{first}");

    // A tree whose split is its own child, saved with a matching content hash.
    let mut cyclic = shipped.first_trees(20).unwrap();
    let g = cyclic.gbt.as_mut().unwrap();
    let root = g.roots[0];
    g.nodes[root as usize].left = root;
    cyclic.save(&path).unwrap();
    wait_for("the reload error", || {
        running.metrics.model_reload_errors.get() == 1
    });
    assert_eq!(decide("e2", &mut out), first, "the running model stays");

    // A good file goes live.
    shipped.first_trees(10).unwrap().save(&path).unwrap();
    wait_for("the reload", || running.metrics.model_reloads.get() == 1);
    let second = decide("e3", &mut out);
    assert!(second.starts_with("handbook-first10@"), "{second}");
    assert_eq!(running.metrics.model_reload_errors.get(), 1);
    running.stop();
}
