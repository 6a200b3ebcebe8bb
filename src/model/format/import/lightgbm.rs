//! LightGBM's text model (`Booster.save_model`) and its JSON dump
//! (`Booster.dump_model`).
//!
//! LightGBM sends a present value left when `x <= threshold` (the format's rule
//! as it is). A missing value: with `missing_type` NaN, where `default_left`
//! says; with None, LightGBM reads it as 0.0, so it goes where 0.0 goes, which
//! is fixed per node (`0.0 <= threshold`: left). `missing_type` Zero
//! (`zero_as_missing`) and categorical splits are refused. The init score is
//! folded into the first tree's leaves by LightGBM, so the base margin is 0.

use super::{at, Failure, Parsed};
use crate::model::format::trees::{Gbt, Missing, Node};
use serde::Deserialize;
use std::collections::HashMap;

/// Parses either form, told apart by the first character.
pub(super) fn parse(bytes: &[u8]) -> Result<Parsed, Failure> {
    if bytes.trim_ascii_start().starts_with(b"{") {
        return parse_json(bytes);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        at(
            "file",
            format!(
                "not text (byte {}); expected LightGBM's text model or its JSON dump",
                e.valid_up_to()
            ),
        )
    })?;
    parse_text(text)
}

/// How a LightGBM split treats missing values (`missing_type`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum MissingType {
    None,
    Zero,
    NaN,
}

/// One split as LightGBM describes it.
struct Split {
    feature: i64,
    threshold: f64,
    categorical: bool,
    default_left: bool,
    missing: MissingType,
}

/// The format's `(feature, threshold, missing direction)` of `s`, at `place`,
/// for a model of `features` features.
///
/// A threshold of +inf (LightGBM's split of missing against present values)
/// becomes the largest finite number, as model files hold finite thresholds:
/// only a present value of +inf, which no feature computes, then goes the
/// other way.
fn convert(s: &Split, place: &str, features: usize) -> Result<(u16, f64, Missing), Failure> {
    if s.categorical {
        return Err(at(place, "a categorical split; categorical features are not supported (encode them as numbers before training)"));
    }
    let feature = u16::try_from(s.feature)
        .ok()
        .filter(|&f| usize::from(f) < features)
        .ok_or_else(|| {
            at(
                place,
                format!(
                    "split feature {} is out of range: the model names {features} features",
                    s.feature
                ),
            )
        })?;
    let threshold = match s.threshold {
        t if t.is_finite() => t,
        f64::INFINITY => f64::MAX,
        t => {
            return Err(at(
                place,
                format!("threshold {t:?}; expected a number or +inf"),
            ))
        }
    };
    let left = match s.missing {
        MissingType::NaN => s.default_left,
        // LightGBM turns a missing value into 0.0 and compares that.
        MissingType::None => 0.0 <= s.threshold,
        MissingType::Zero => return Err(at(place, "missing_type Zero (zero_as_missing=true) is not supported: it treats 0 as missing; retrain with zero_as_missing=false")),
    };
    Ok((
        feature,
        threshold,
        if left { Missing::Left } else { Missing::Right },
    ))
}

/// Checks the header values every form shares.
fn check_header(
    num_class: i64,
    per_iteration: i64,
    objective: &str,
    average_output: bool,
) -> Result<(), Failure> {
    if num_class != 1 || per_iteration != 1 {
        return Err(at("num_class", format!("{num_class} classes ({per_iteration} trees per iteration); expected a binary model (1)")));
    }
    if average_output {
        return Err(at(
            "average_output",
            "a random forest (boosting=rf averages its trees); expected a boosted model",
        ));
    }
    let mut words = objective.split_whitespace();
    let sigmoid = words
        .clone()
        .find_map(|w| w.strip_prefix("sigmoid:"))
        .map_or(Some(1.0), |s| s.parse::<f64>().ok());
    if words.next() != Some("binary") || sigmoid != Some(1.0) {
        return Err(at(
            "objective",
            format!(
                "'{objective}' is not supported; expected binary (logistic loss) with sigmoid:1"
            ),
        ));
    }
    Ok(())
}

/// The lines of one tree of the text model: key to `(line, value)`.
type TreeLines<'a> = HashMap<&'a str, (usize, &'a str)>;

/// The `(line, value)` of `key=` in `map`, or an error at `place`.
fn field<'a>(map: &TreeLines<'a>, key: &str, place: &str) -> Result<(usize, &'a str), Failure> {
    map.get(key)
        .copied()
        .ok_or_else(|| at(place, format!("no '{key}=' line")))
}

fn parse_text(text: &str) -> Result<Parsed, Failure> {
    let mut header: TreeLines = HashMap::new();
    let mut flags = Vec::new();
    let mut trees: Vec<(usize, TreeLines)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let (n, line) = (i + 1, line.trim_end());
        if line == "end of trees" {
            break;
        }
        match line.split_once('=') {
            Some(("Tree", _)) => trees.push((n, HashMap::new())),
            Some((key, value)) => {
                let map = trees.last_mut().map_or(&mut header, |t| &mut t.1);
                map.insert(key, (n, value));
            }
            None if trees.is_empty() => flags.push(line),
            None => {}
        }
    }
    if flags.first() != Some(&"tree") {
        return Err(at(
            "line 1",
            "expected 'tree': the first line of LightGBM's text model",
        ));
    }
    let int = |map: &TreeLines, key: &str, place: &str| -> Result<i64, Failure> {
        let (n, v) = field(map, key, place)?;
        v.trim().parse().map_err(|_| {
            at(
                format!("line {n}"),
                format!("{key}={v}: expected an integer"),
            )
        })
    };
    check_header(
        int(&header, "num_class", "header")?,
        int(&header, "num_tree_per_iteration", "header")?,
        field(&header, "objective", "header")?.1,
        flags.contains(&"average_output"),
    )?;
    let features: Vec<String> = field(&header, "feature_names", "header")?
        .1
        .split_whitespace()
        .map(String::from)
        .collect();
    let mut gbt = Gbt::default();
    let mut cover = Some(Vec::new());
    for (t, (line, tree)) in trees.iter().enumerate() {
        let counts = text_tree(t, *line, tree, features.len(), &mut gbt)?;
        cover = cover.zip(counts).map(|(mut c, counts)| {
            c.extend(counts);
            c
        });
    }
    gbt.cover = cover.unwrap_or_default();
    Ok(Parsed {
        gbt,
        features,
        version: field(&header, "version", "header")?.1.to_string(),
        objective: field(&header, "objective", "header")?.1.to_string(),
        fill_split_values: false,
    })
}

/// Appends tree `t` (its `Tree=` at `line`) to `gbt`: internal node `i` at
/// `first + i`, leaf `j` after the `num_leaves - 1` internal nodes. Returns
/// the nodes' training counts (their cover) in that order, if the tree has them.
fn text_tree(
    t: usize,
    line: usize,
    tree: &TreeLines,
    features: usize,
    gbt: &mut Gbt,
) -> Result<Option<Vec<f64>>, Failure> {
    let tree = TextTree {
        line,
        lines: tree,
        place: format!("tree {t} (line {line})"),
    };
    let leaves = tree.leaves()?;
    let splits = leaves - 1;
    let [feature, threshold, decision, left, right] = [
        "split_feature",
        "threshold",
        "decision_type",
        "left_child",
        "right_child",
    ]
    .map(|k| tree.numbers(k, splits));
    let leaf_value = tree.numbers("leaf_value", leaves)?;
    let (threshold, decision) = (threshold?, decision?);
    let (feature, left, right) = (feature?, left?, right?);
    let internal = tree
        .numbers("internal_value", splits)
        .unwrap_or_else(|_| vec![0.0; splits]);
    let first = gbt.nodes.len() as i64;
    let node = |c: f64| -> Result<u32, Failure> {
        let c = c as i64;
        let index = if c >= 0 { c } else { splits as i64 + !c };
        match (c >= 0 && (c as usize) < splits) || (c < 0 && ((!c) as usize) <= splits) {
            true => Ok((first + index) as u32),
            false => Err(at(
                &tree.place,
                format!("child {c} is out of range for {leaves} leaves"),
            )),
        }
    };
    for i in 0..splits {
        let split = text_split(feature[i], threshold[i], decision[i]);
        let (f, threshold, missing) = convert(&split, &format!("tree {t}, node {i}"), features)?;
        gbt.nodes.push(Node {
            feature: f,
            threshold,
            left: node(left[i])?,
            right: node(right[i])?,
            value: internal[i],
            missing,
        });
    }
    gbt.nodes.extend(leaf_value.iter().map(|&v| Node::leaf(v)));
    gbt.roots.push(first as u32);
    tree.cover(splits)
}

/// The split of a text model's node: `decision_type` bit 0 marks a
/// categorical split, bit 1 `default_left`, bits 2-3 the missing type.
fn text_split(feature: f64, threshold: f64, decision: f64) -> Split {
    let d = decision as i64;
    Split {
        feature: feature as i64,
        threshold,
        categorical: d & 1 != 0,
        default_left: d & 2 != 0,
        missing: match (d >> 2) & 3 {
            0 => MissingType::None,
            1 => MissingType::Zero,
            _ => MissingType::NaN,
        },
    }
}

/// One tree of the text model, read line by line.
struct TextTree<'a, 'b> {
    /// Its `Tree=` line.
    line: usize,
    lines: &'b TreeLines<'a>,
    /// `tree T (line N)`, for errors about the whole tree.
    place: String,
}

impl<'a> TextTree<'a, '_> {
    /// The `len` values of `key=`; none when the line is absent and `len` is 0.
    fn list(&self, key: &str, len: usize) -> Result<Vec<&'a str>, Failure> {
        let Some(&(n, v)) = self.lines.get(key) else {
            return match len {
                0 => Ok(Vec::new()),
                _ => Err(at(&self.place, format!("no '{key}=' line"))),
            };
        };
        let items: Vec<&str> = v.split_whitespace().collect();
        if items.len() != len {
            return Err(at(
                format!("line {n}"),
                format!("{key} has {} values; expected {len}", items.len()),
            ));
        }
        Ok(items)
    }

    /// [`TextTree::list`] as numbers.
    fn numbers(&self, key: &str, len: usize) -> Result<Vec<f64>, Failure> {
        let n = self.lines.get(key).map_or(self.line, |v| v.0);
        self.list(key, len)?
            .iter()
            .map(|s| {
                s.parse::<f64>()
                    .map_err(|_| at(format!("line {n}"), format!("{key}: '{s}' is not a number")))
            })
            .collect()
    }

    /// `num_leaves`, for a tree without categorical splits or linear leaves.
    fn leaves(&self) -> Result<usize, Failure> {
        let leaves = self.numbers("num_leaves", 1)?[0];
        if !(1.0..=f64::from(u32::MAX)).contains(&leaves) || leaves.fract() != 0.0 {
            return Err(at(
                &self.place,
                format!("num_leaves={leaves}: expected a whole number from 1"),
            ));
        }
        if self.numbers("num_cat", 1).is_ok_and(|c| c[0] != 0.0) {
            return Err(at(&self.place, "categorical splits (num_cat > 0) are not supported (encode categories as numbers before training)"));
        }
        if self.numbers("is_linear", 1).is_ok_and(|l| l[0] != 0.0) {
            return Err(at(
                &self.place,
                "a linear tree (linear_tree=true) is not supported",
            ));
        }
        Ok(leaves as usize)
    }

    /// The training counts of the `splits` internal nodes and then the
    /// leaves (their cover), if the tree has them.
    fn cover(&self, splits: usize) -> Result<Option<Vec<f64>>, Failure> {
        if splits == 0 {
            // A lone leaf's cover divides nothing.
            return Ok(Some(vec![0.0]));
        }
        if !(self.lines.contains_key("internal_count") && self.lines.contains_key("leaf_count")) {
            return Ok(None);
        }
        let mut counts = self.numbers("internal_count", splits)?;
        counts.extend(self.numbers("leaf_count", splits + 1)?);
        Ok(Some(counts))
    }
}

/// The JSON dump's top level (fields fraudstream does not need are ignored).
#[derive(Deserialize)]
struct Dump {
    version: String,
    num_class: i64,
    num_tree_per_iteration: i64,
    objective: String,
    #[serde(default)]
    average_output: bool,
    feature_names: Vec<String>,
    tree_info: Vec<DumpTree>,
}

#[derive(Deserialize)]
struct DumpTree {
    tree_structure: DumpNode,
}

/// A node of the dump: a split (with children) or a leaf (with `leaf_value`).
#[derive(Deserialize)]
struct DumpNode {
    split_feature: Option<i64>,
    threshold: Option<f64>,
    decision_type: Option<String>,
    #[serde(default)]
    default_left: bool,
    missing_type: Option<String>,
    internal_value: Option<f64>,
    internal_count: Option<f64>,
    leaf_count: Option<f64>,
    left_child: Option<Box<DumpNode>>,
    right_child: Option<Box<DumpNode>>,
    leaf_value: Option<f64>,
    #[serde(default)]
    leaf_features: Vec<serde_json::Value>,
}

fn parse_json(bytes: &[u8]) -> Result<Parsed, Failure> {
    let value: serde_json::Value = serde_json::from_slice(bytes)?;
    if value.get("learner").is_some() {
        return Err(at(
            "file",
            "an XGBoost model; import it with --from xgboost",
        ));
    }
    // serde_json's nesting limit (128) bounds the trees' depth here; parsed
    // again for the positions of its errors.
    let dump: Dump = serde_json::from_slice(bytes)?;
    check_header(
        dump.num_class,
        dump.num_tree_per_iteration,
        &dump.objective,
        dump.average_output,
    )?;
    let mut gbt = Gbt::default();
    let mut cover = Some(Vec::new());
    for (t, tree) in dump.tree_info.iter().enumerate() {
        gbt.roots.push(gbt.nodes.len() as u32);
        // Nodes in depth-first order; each split's children are patched in
        // when they are placed.
        let mut stack: Vec<(&DumpNode, Option<(usize, bool)>)> = vec![(&tree.tree_structure, None)];
        while let Some((n, parent)) = stack.pop() {
            let index = gbt.nodes.len();
            if let Some((p, is_left)) = parent {
                let p = &mut gbt.nodes[p];
                *(if is_left { &mut p.left } else { &mut p.right }) = index as u32;
            }
            let place = format!("tree {t}, node {index}");
            gbt.nodes
                .push(json_node(n, &place, dump.feature_names.len())?);
            // The training counts are the cover; a lone leaf's divides nothing.
            let count = match (&n.left_child, parent) {
                (Some(_), _) => n.internal_count,
                (None, Some(_)) => n.leaf_count,
                (None, None) => Some(n.leaf_count.unwrap_or(0.0)),
            };
            cover = cover.zip(count).map(|(mut c, count)| {
                c.push(count);
                c
            });
            if let (Some(l), Some(r)) = (&n.left_child, &n.right_child) {
                stack.push((r, Some((index, false))));
                stack.push((l, Some((index, true))));
            }
        }
    }
    gbt.cover = cover.unwrap_or_default();
    Ok(Parsed {
        gbt,
        features: dump.feature_names,
        version: dump.version,
        objective: dump.objective,
        fill_split_values: false,
    })
}

/// The format's node for `n` (children still to be patched in).
fn json_node(n: &DumpNode, place: &str, features: usize) -> Result<Node, Failure> {
    if !n.leaf_features.is_empty() {
        return Err(at(
            place,
            "a linear tree (linear_tree=true) is not supported",
        ));
    }
    let (Some(feature), Some(threshold), Some(_), Some(_)) =
        (n.split_feature, n.threshold, &n.left_child, &n.right_child)
    else {
        let value = n.leaf_value.ok_or_else(|| at(place, "neither a split (split_feature, threshold, left_child, right_child) nor a leaf (leaf_value)"))?;
        return Ok(Node::leaf(value));
    };
    let missing = match n.missing_type.as_deref() {
        Some("NaN") => MissingType::NaN,
        Some("Zero") => MissingType::Zero,
        Some("None") | None => MissingType::None,
        Some(other) => {
            return Err(at(
                place,
                format!("missing_type '{other}'; expected None, Zero or NaN"),
            ))
        }
    };
    let split = Split {
        feature,
        threshold,
        categorical: n.decision_type.as_deref().is_some_and(|d| d != "<="),
        default_left: n.default_left,
        missing,
    };
    let (feature, threshold, missing) = convert(&split, place, features)?;
    Ok(Node {
        feature,
        threshold,
        left: 0,
        right: 0,
        value: n.internal_value.unwrap_or(0.0),
        missing,
    })
}
