//! The content hash of a model file depends on its JSON value, not on how a
//! JSON library wrote it (`models/FORMAT.md`, "Content hash").

mod common;

use fraudstream::features::load_feature_set;
use fraudstream::model::Model;
use serde_json::Value;
use std::fmt::Write;
use std::path::{Path, PathBuf};

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/handbook.json")
}

/// Writes `v` as JSON another way than serde_json: keys in reverse order, tabs
/// and CRLF, every float in `style` (integers as integers, so that counts and
/// indices still read as integers).
fn write_differently(v: &Value, style: fn(f64) -> String, depth: usize, out: &mut String) {
    let indent = "\t".repeat(depth + 1);
    match v {
        Value::Number(n) if n.is_f64() => out.push_str(&style(n.as_f64().unwrap())),
        Value::Array(items) => {
            out.push_str("[ ");
            for (i, item) in items.iter().enumerate() {
                out.push_str(if i == 0 { "" } else { " ,  " });
                write_differently(item, style, depth + 1, out);
            }
            out.push_str(" ]");
        }
        Value::Object(members) => {
            out.push_str("{\r\n");
            for (i, (k, item)) in members.iter().rev().enumerate() {
                let _ = write!(
                    out,
                    "{}{indent}{} :  ",
                    if i == 0 { "" } else { ",\r\n" },
                    Value::from(k.as_str())
                );
                write_differently(item, style, depth + 1, out);
            }
            out.push_str("\r\n}");
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The shipped model, rewritten with floats in other notations (17
/// significant digits with an exponent, positional with trailing zeros,
/// shortest with an exponent), other whitespace and
/// another key order, keeps its content hash: it loads as the same version.
/// Changing one threshold by one unit in the last place does not.
#[test]
fn reformatting_a_model_file_keeps_its_hash() {
    let set = load_feature_set("default").unwrap();
    let text = std::fs::read_to_string(shipped()).unwrap();
    let version = Model::load(&shipped(), &set).unwrap().version;
    let value: Value = serde_json::from_str(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("handbook.json");
    let styles: [fn(f64) -> String; 3] = [
        |f| format!("{f:.16E}"),
        |f| match format!("{f}") {
            s if s.contains('.') => s + "000",
            s => s + ".0",
        },
        |f| format!("{f:e}"),
    ];
    for style in styles {
        let mut out = String::new();
        write_differently(&value, style, 0, &mut out);
        assert_ne!(out, text);
        std::fs::write(&path, &out).unwrap();
        let reloaded = Model::load(&path, &set).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reloaded.version, version);
    }
    // One threshold one step up: the content changed.
    let mut changed = value.clone();
    let t = &mut changed["gbt"]["nodes"][0]["threshold"];
    *t = Value::from(t.as_f64().unwrap().next_up());
    std::fs::write(&path, serde_json::to_string(&changed).unwrap()).unwrap();
    let e = Model::load(&path, &set).unwrap_err().to_string();
    assert!(e.contains("content_hash"), "{e}");
}

/// The shipped model's hash is what an independent implementation of the
/// canonical form computes with another JSON library (Python's json module):
/// the hash does not depend on serde_json.
#[test]
fn the_hash_is_what_the_python_implementation_computes() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/model_content_hash.py");
    let Ok(out) = std::process::Command::new("python3")
        .arg(&script)
        .arg(shipped())
        .output()
    else {
        common::skip_notice("*** SKIPPED: python3 not found ***");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python = String::from_utf8(out.stdout).unwrap();
    let file: Value = serde_json::from_str(&std::fs::read_to_string(shipped()).unwrap()).unwrap();
    assert_eq!(
        python.split_whitespace().next(),
        file["content_hash"].as_str()
    );
}
