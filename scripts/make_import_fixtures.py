#!/usr/bin/env python3
"""Writes the LightGBM and XGBoost fixtures of tests/fixtures/model-import/
(run with the virtualenv of scripts/python-deps.sh; the output is committed):

- lightgbm.txt, lightgbm.json, xgboost.json: small binary models on synthetic
  rows over six features of the `model` feature set, three of them missing in
  part of the training rows and two never (so LightGBM gives them
  missing_type None), one of those split below zero;
- probes.csv: rows whose values sit on every threshold either model uses, one
  step either side of it (in 64 bits, and for XGBoost's 32-bit comparisons on
  and around the point where rounding to 32 bits crosses it), or are missing,
  with each library's predicted probability (17 significant digits);
- xgboost-contributions.csv: XGBoost's per-feature explanations (Saabas,
  `approx_contribs`) of the first 500 probe rows;
- xgboost-shap.csv, lightgbm-shap.csv: each library's exact TreeSHAP values
  (`pred_contribs=True`, `pred_contrib=True`) of the same rows, then the
  expected margin (`bias`); `write_shap` remakes them from the committed
  models and probes.
- lightgbm-categorical.txt, lightgbm-zero-as-missing.txt,
  xgboost-categorical.json: models `fraudstream model import` must refuse.

    make_import_fixtures.py [OUT_DIR]
"""

import json
import os
import sys

import lightgbm as lgb
import numpy as np
import pandas as pd
import xgboost as xgb

NAMES = [
    "TX_AMOUNT",
    "CUSTOMER_ID_NB_TX_1DAY_WINDOW",
    "AMOUNT_TO_CUSTOMER_AVG_30D",
    "CUSTOMER_ID_SECS_SINCE_LAST",
    "TERMINAL_ID_RISK_7DAY_WINDOW",
    "CUSTOMER_ID_AVG_AMOUNT_1DAY_TO_30DAY",
]


def training_rows(rng, n):
    x = pd.DataFrame(
        {
            "TX_AMOUNT": np.round(rng.gamma(2.0, 30.0, n), 2),
            "CUSTOMER_ID_NB_TX_1DAY_WINDOW": rng.integers(0, 12, n).astype(float),
            "AMOUNT_TO_CUSTOMER_AVG_30D": rng.lognormal(0.0, 0.6, n),
            "CUSTOMER_ID_SECS_SINCE_LAST": rng.integers(0, 200000, n).astype(float),
            "TERMINAL_ID_RISK_7DAY_WINDOW": np.round(rng.random(n) ** 3, 3),
            # Never missing in training, and split below zero: LightGBM reads a
            # missing value there as 0.0, which goes right.
            "CUSTOMER_ID_AVG_AMOUNT_1DAY_TO_30DAY": rng.normal(0.0, 1.0, n),
        }
    )
    logit = (
        (x["TX_AMOUNT"] - 90) / 40
        + (x["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] > 6) * 1.5
        + np.log(x["AMOUNT_TO_CUSTOMER_AVG_30D"]) * 1.2
        - x["CUSTOMER_ID_SECS_SINCE_LAST"] / 80000
        + x["TERMINAL_ID_RISK_7DAY_WINDOW"] * 3
        + (x["CUSTOMER_ID_AVG_AMOUNT_1DAY_TO_30DAY"] < -0.7) * 2.0
    )
    # Missing values that mean something: a missing ratio or gap is riskier.
    for name, share in [("AMOUNT_TO_CUSTOMER_AVG_30D", 0.2), ("CUSTOMER_ID_SECS_SINCE_LAST", 0.15), ("TX_AMOUNT", 0.05)]:
        hit = rng.random(n) < share
        x.loc[hit, name] = np.nan
        logit = logit + hit * 1.0
    y = (rng.random(n) < 1 / (1 + np.exp(-(logit - 1.5)))).astype(int)
    return x, y


def lightgbm_thresholds(booster):
    found = {name: set() for name in NAMES}

    def walk(node):
        if "split_index" in node:
            found[NAMES[node["split_feature"]]].add(node["threshold"])
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in booster.dump_model()["tree_info"]:
        walk(tree["tree_structure"])
    return found


def xgboost_thresholds(model_path):
    found = {name: set() for name in NAMES}
    with open(model_path) as f:
        trees = json.load(f)["learner"]["gradient_booster"]["model"]["trees"]
    for tree in trees:
        for i, left in enumerate(tree["left_children"]):
            if left != -1:
                found[NAMES[tree["split_indices"][i]]].add(tree["split_conditions"][i])
    return found


def probe_values(lgb_cuts, xgb_cuts):
    """Per feature: values on and next to each threshold, as each library compares them."""
    values = {}
    for name in NAMES:
        v = {0.0, -0.0}
        for t in lgb_cuts[name]:
            if np.isfinite(t):
                v.update([t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf)])
        for t in xgb_cuts[name]:
            t32 = np.float32(t)
            below = np.nextafter(t32, np.float32(-np.inf))
            mid = (float(below) + float(t32)) / 2
            v.update([float(t32), float(np.nextafter(t32, np.float32(np.inf))), float(below)])
            v.update([mid, np.nextafter(mid, np.inf), np.nextafter(mid, -np.inf)])
        values[name] = sorted(v)
    return values


def refused_models(out, x, y):
    small = {"objective": "binary", "num_leaves": 4, "verbose": -1, "num_threads": 1, "seed": 3}
    cat = x.copy()
    cat["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] = cat["CUSTOMER_ID_NB_TX_1DAY_WINDOW"].astype(int)
    # A label only categories explain, so that the trees split on them.
    y_cat = np.isin(cat["CUSTOMER_ID_NB_TX_1DAY_WINDOW"], [2, 5, 7]).astype(int)
    booster = lgb.train(
        small,
        lgb.Dataset(cat, label=y_cat, categorical_feature=["CUSTOMER_ID_NB_TX_1DAY_WINDOW"]),
        num_boost_round=3,
    )
    booster.save_model(os.path.join(out, "lightgbm-categorical.txt"))
    zeros = x.fillna(0.0)
    booster = lgb.train(dict(small, zero_as_missing=True), lgb.Dataset(zeros, label=y), num_boost_round=3)
    booster.save_model(os.path.join(out, "lightgbm-zero-as-missing.txt"))
    cat["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] = cat["CUSTOMER_ID_NB_TX_1DAY_WINDOW"].astype("category")
    forest = xgb.train(
        {"objective": "binary:logistic", "max_depth": 2, "nthread": 1, "seed": 3},
        xgb.DMatrix(cat, label=y_cat, enable_categorical=True),
        num_boost_round=3,
    )
    forest.save_model(os.path.join(out, "xgboost-categorical.json"))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/model-import"
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(2026)
    x, y = training_rows(rng, 4000)
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 8, "max_depth": 4, "min_data_in_leaf": 10,
         "learning_rate": 0.2, "num_threads": 1, "deterministic": True, "seed": 7, "verbose": -1},
        lgb.Dataset(x, label=y),
        num_boost_round=20,
    )
    booster.save_model(os.path.join(out, "lightgbm.txt"))
    with open(os.path.join(out, "lightgbm.json"), "w") as f:
        json.dump(booster.dump_model(), f)
    forest = xgb.train(
        {"objective": "binary:logistic", "max_depth": 4, "eta": 0.2, "tree_method": "hist",
         "nthread": 1, "seed": 7},
        xgb.DMatrix(x, label=y),
        num_boost_round=20,
    )
    xgb_path = os.path.join(out, "xgboost.json")
    forest.save_model(xgb_path)

    values = probe_values(lightgbm_thresholds(booster), xgboost_thresholds(xgb_path))
    rows = 3000
    probes = pd.DataFrame(
        {
            name: np.where(
                rng.random(rows) < 0.12,
                np.nan,
                rng.choice(np.array(values[name]), rows),
            )
            for name in NAMES
        }
    )
    probes.insert(0, "TRANSACTION_ID", [str(i) for i in range(rows)])
    probes["lightgbm"] = booster.predict(probes[NAMES])
    probes["xgboost"] = forest.predict(xgb.DMatrix(probes[NAMES]))
    probes.to_csv(os.path.join(out, "probes.csv"), index=False, float_format="%.17g")
    # XGBoost's own per-feature explanations (Saabas: approx_contribs) of the
    # first rows, then its bias column.
    first = probes.head(500)
    contribs = forest.predict(xgb.DMatrix(first[NAMES]), pred_contribs=True, approx_contribs=True)
    explained = pd.DataFrame(contribs, columns=NAMES + ["bias"])
    explained.insert(0, "TRANSACTION_ID", first["TRANSACTION_ID"])
    explained.to_csv(os.path.join(out, "xgboost-contributions.csv"), index=False, float_format="%.17g")
    write_shap(out, booster, forest, probes)
    refused_models(out, x, y)


def write_shap(out, booster, forest, probes):
    """Each library's exact path-dependent TreeSHAP values of the first 500
    probe rows, with the expected margin as a last `bias` column."""
    first = probes.head(500)
    for name, contribs in [
        ("xgboost", forest.predict(xgb.DMatrix(first[NAMES]), pred_contribs=True)),
        ("lightgbm", booster.predict(first[NAMES], pred_contrib=True)),
    ]:
        explained = pd.DataFrame(contribs, columns=NAMES + ["bias"])
        explained.insert(0, "TRANSACTION_ID", first["TRANSACTION_ID"])
        explained.to_csv(os.path.join(out, f"{name}-shap.csv"), index=False, float_format="%.17g")


if __name__ == "__main__":
    main()
