#!/usr/bin/env python3
"""Trains small LightGBM and XGBoost models on features exported by
`fraudstream features`, saves them in every format `fraudstream model import`
reads, and writes the libraries' own predicted probabilities for the test rows.

    train_reference_models.py --train train.csv --test test.csv \
        --labels transactions.csv.gz [--test-ids ids.csv.gz] [--blank 0.05] --out DIR

Inputs: feature CSVs with TRANSACTION_ID first and one column per feature
(empty = missing), and a labels CSV with TRANSACTION_ID and TX_FRAUD (the
handbook's transactions file is one). With --blank S, a share S of the values
of every other feature is blanked in training (so those features learn where a
missing value goes) and a share S of every test value is blanked (so features
that saw no missing value in training meet one too).

Writes to DIR: lightgbm.txt (save_model), lightgbm.json (dump_model),
xgboost.json (save_model), and scored.csv: TRANSACTION_ID, the test features
exactly as predicted on, then the columns lightgbm and xgboost (probabilities,
17 significant digits). Training is single-threaded and seeded: the same
inputs give the same files.
"""

import argparse
import json
import os

import lightgbm as lgb
import numpy as np
import pandas as pd
import xgboost as xgb


def read_features(path, ids=None):
    frame = pd.read_csv(path, dtype={"TRANSACTION_ID": str})
    if ids is not None:
        frame = frame[frame["TRANSACTION_ID"].isin(ids)]
    return frame.reset_index(drop=True)


def blank(frame, columns, share, rng):
    for c in columns:
        hit = rng.random(len(frame)) < share
        frame.loc[hit, c] = np.nan


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--test-ids")
    p.add_argument("--blank", type=float, default=0.0)
    p.add_argument("--trees", type=int, default=60)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    labels = pd.read_csv(a.labels, usecols=["TRANSACTION_ID", "TX_FRAUD"], dtype={"TRANSACTION_ID": str})
    labels = labels.set_index("TRANSACTION_ID")["TX_FRAUD"]
    ids = None
    if a.test_ids:
        ids = set(pd.read_csv(a.test_ids, usecols=[0], dtype=str).iloc[:, 0])
    train, test = read_features(a.train), read_features(a.test, ids)
    names = [c for c in train.columns if c != "TRANSACTION_ID"]
    rng = np.random.default_rng(20)
    if a.blank > 0:
        blank(train, names[::2], a.blank, rng)
        blank(test, names, a.blank, rng)
    y = labels.loc[train["TRANSACTION_ID"]].to_numpy()
    x, x_test = train[names], test[names]

    booster = lgb.train(
        {
            "objective": "binary",
            "num_leaves": 15,
            "max_depth": 6,
            "learning_rate": 0.1,
            "min_data_in_leaf": 20,
            "num_threads": 1,
            "deterministic": True,
            "seed": 7,
            "verbose": -1,
        },
        lgb.Dataset(x, label=y),
        num_boost_round=a.trees,
    )
    booster.save_model(os.path.join(a.out, "lightgbm.txt"))
    with open(os.path.join(a.out, "lightgbm.json"), "w") as f:
        json.dump(booster.dump_model(), f)

    forest = xgb.train(
        {
            "objective": "binary:logistic",
            "max_depth": 5,
            "eta": 0.1,
            "tree_method": "hist",
            "nthread": 1,
            "seed": 7,
        },
        xgb.DMatrix(x, label=y),
        num_boost_round=a.trees,
    )
    forest.save_model(os.path.join(a.out, "xgboost.json"))

    scored = test[["TRANSACTION_ID"] + names].copy()
    scored["lightgbm"] = booster.predict(x_test)
    scored["xgboost"] = forest.predict(xgb.DMatrix(x_test))
    scored.to_csv(os.path.join(a.out, "scored.csv"), index=False, float_format="%.17g")


if __name__ == "__main__":
    main()
