//! The content hash of a model file, over a canonical form of its JSON value
//! that does not depend on how the file was formatted (whitespace, key order,
//! how a float was written: `0.1`, `1e-1` and `0.10000000000000000555` are one
//! number). Defined in `models/FORMAT.md`; kept here in one place.

use serde_json::Value;

/// Tags of the canonical encoding, one byte before each value.
const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const NUMBER: u8 = 3;
const STRING: u8 = 4;
const ARRAY: u8 = 5;
const OBJECT: u8 = 6;

/// The content hash of `file`, a model file's JSON value, ignoring its
/// top-level `content_hash` member: 16 lowercase hex digits.
pub fn content_hash(file: &Value) -> String {
    let mut h = Fnv::default();
    match file {
        Value::Object(members) => encode_object(
            members.iter().filter(|(k, _)| k.as_str() != "content_hash"),
            &mut h,
        ),
        other => encode(other, &mut h),
    }
    format!("{:016x}", h.finish())
}

/// Feeds the canonical encoding of `v` to `h`: a tag byte, then for a number
/// its IEEE-754 binary64 value (-0 as +0) in 8 big-endian bytes; for a string
/// its UTF-8 length (u64, big-endian) and bytes; for an array its length and
/// elements; for an object its member count and members sorted by key bytes,
/// each as the key's string encoding followed by the value's.
fn encode(v: &Value, h: &mut Fnv) {
    match v {
        Value::Null => h.write(&[NULL]),
        Value::Bool(false) => h.write(&[FALSE]),
        Value::Bool(true) => h.write(&[TRUE]),
        Value::Number(n) => {
            // Every number of a model file is a binary64 value (counts and
            // indices are far below 2^53); + 0.0 turns -0 into +0.
            let x = n.as_f64().unwrap_or(f64::NAN) + 0.0;
            h.write(&[NUMBER]);
            h.write(&x.to_bits().to_be_bytes());
        }
        Value::String(s) => encode_str(s, h),
        Value::Array(items) => {
            h.write(&[ARRAY]);
            h.write(&(items.len() as u64).to_be_bytes());
            items.iter().for_each(|item| encode(item, h));
        }
        Value::Object(members) => encode_object(members.iter(), h),
    }
}

fn encode_str(s: &str, h: &mut Fnv) {
    h.write(&[STRING]);
    h.write(&(s.len() as u64).to_be_bytes());
    h.write(s.as_bytes());
}

fn encode_object<'a>(members: impl Iterator<Item = (&'a String, &'a Value)>, h: &mut Fnv) {
    let mut sorted: Vec<_> = members.collect();
    sorted.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    h.write(&[OBJECT]);
    h.write(&(sorted.len() as u64).to_be_bytes());
    for (k, v) in sorted {
        encode_str(k, h);
        encode(v, h);
    }
}

/// FNV-1a (64-bit) with the splitmix64 finaliser, so that every input bit
/// reaches every output bit.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(text: &str) -> String {
        content_hash(&serde_json::from_str(text).unwrap())
    }

    #[test]
    fn formatting_does_not_change_the_hash_and_content_does() {
        let a =
            hash(r#"{"a": [1, 0.1, -0.0, "x"], "b": {"c": true, "d": null}, "content_hash": "1"}"#);
        let same = [
            r#"{"b":{"d":null,"c":true},"a":[1.0,1e-1,0,"x"]}"#,
            "{\n\t\"a\" : [ 1E0 , 0.1000000000000000055511151231257827 , 0.0 , \"\\u0078\" ] ,\n \"b\" : { \"c\" : true , \"d\" : null } , \"content_hash\" : \"other\" }",
        ];
        for text in same {
            assert_eq!(hash(text), a, "{text}");
        }
        let different = [
            r#"{"a": [1, 0.1, 0, "x"], "b": {"c": false, "d": null}}"#,
            r#"{"a": [1, 0.10000000000000002, 0, "x"], "b": {"c": true, "d": null}}"#,
            r#"{"a": [0.1, 1, 0, "x"], "b": {"c": true, "d": null}}"#,
            r#"{"a": [1, 0.1, 0, "x"], "b": {"c": true}}"#,
            r#"{"a": [1, 0.1, 0, "x"], "b": {"c": true, "d": null}, "e": []}"#,
            r#"{"a": [1, 0.1, 0, "x", []], "b": {"c": true, "d": null}}"#,
            r#"{"a": [1, 0.1, 0, "x"], "b": {"c": true, "d": null, "content_hash": "1"}}"#,
        ];
        for text in different {
            assert_ne!(hash(text), a, "{text}");
        }
    }

    /// Pins the definition: this value hashes to what the independent Python
    /// implementation (`scripts/model_content_hash.py`) gives, so a change of
    /// the encoding (which would reject every model file) fails here.
    #[test]
    fn the_definition_is_pinned() {
        assert_eq!(hash(r#"{"a": [1.5, "é"], "b": {}}"#), "940ff61b0af2fa13");
    }
}
